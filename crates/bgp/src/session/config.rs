//! What a session is configured with, and the RFC's suggested timer values.

use std::net::Ipv4Addr;
use std::time::Duration;

/// Hold time proposed when the configuration does not say (RFC 4271 §10).
pub const DEFAULT_HOLD_TIME: u16 = 90;
/// Wait between connection attempts (RFC 4271 §10 suggests 120 s).
pub const DEFAULT_CONNECT_RETRY: Duration = Duration::from_secs(120);
/// Hold timer while waiting for the peer's OPEN (RFC 4271 §8.2.2 suggests 4 minutes).
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// What a session needs to know about itself and its peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our AS number.
    pub local_as: u32,
    /// The AS the peer must announce in its OPEN.
    pub peer_as: u32,
    /// Our BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Hold time we propose in seconds: 0 (no keepalives) or at least 3.
    pub hold_time: u16,
    /// Wait between connection attempts, and before starting again after an error.
    pub connect_retry: Duration,
    /// Only accept connections (start in Active), never ask for one.
    pub passive: bool,
}

impl SessionConfig {
    /// A session between `local_as` and `peer_as` with the RFC's suggested timers.
    pub fn new(local_as: u32, peer_as: u32, bgp_id: Ipv4Addr) -> Self {
        SessionConfig {
            local_as,
            peer_as,
            bgp_id,
            hold_time: DEFAULT_HOLD_TIME,
            connect_retry: DEFAULT_CONNECT_RETRY,
            passive: false,
        }
    }

    /// Whether the peer is in another AS (eBGP).
    pub fn is_external(&self) -> bool {
        self.local_as != self.peer_as
    }
}
