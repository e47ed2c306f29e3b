//! What a session reports: its state, events for the caller, and why it went down.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;

use crate::codec::{Notification, PathAttributes};

/// The states of RFC 4271 §8.2.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not trying to connect.
    Idle,
    /// Waiting for the TCP connection we asked for.
    Connect,
    /// Waiting for the peer to connect, or for the connect-retry timer.
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Exchanging routes.
    Established,
}
/// What the session asks of the caller or tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Open a TCP connection to the peer (port 179) and report it with `tcp_connected` or
    /// `tcp_failed`.
    Connect,
    /// Close the TCP connection once the pending transmits are written, or give up the
    /// connection attempt in progress.
    Disconnect,
    /// The session is up: routes can be exchanged.
    Established {
        /// The peer's AS.
        peer_as: u32,
        /// The peer's BGP identifier.
        peer_id: Ipv4Addr,
        /// Negotiated hold time (zero: none).
        hold_time: Duration,
    },
    /// The peer announced these prefixes with these attributes.
    RoutesReceived {
        /// Prefixes announced.
        prefixes: Vec<Ipv4Net>,
        /// Their path attributes.
        attributes: PathAttributes,
    },
    /// The peer withdrew these prefixes.
    RoutesWithdrawn {
        /// Prefixes withdrawn.
        prefixes: Vec<Ipv4Net>,
    },
    /// The peer asked for our routes again (ROUTE-REFRESH for IPv4 unicast).
    RouteRefreshRequested,
    /// The session ended: an error or the peer's NOTIFICATION after OPEN was sent, a lost
    /// connection in OpenConfirm or Established, or [`Session::stop`](super::Session::stop). The peer's routes are
    /// gone.
    Down {
        /// Why, in words with [`fmt::Display`].
        reason: DownReason,
    },
}

/// Why a session went down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// [`Session::stop`](super::Session::stop) was called.
    Stopped,
    /// The TCP connection closed or failed.
    ConnectionLost,
    /// We found an error and sent this NOTIFICATION.
    ErrorSent {
        /// The NOTIFICATION sent.
        notification: Notification,
        /// What was wrong, in words.
        detail: String,
    },
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
}

impl fmt::Display for DownReason {
    /// A sentence for status output: what happened and the NOTIFICATION's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::Stopped => f.write_str("stopped"),
            DownReason::ConnectionLost => f.write_str("TCP connection lost"),
            DownReason::ErrorSent {
                notification,
                detail,
            } => write!(f, "{detail} (sent NOTIFICATION {notification})"),
            DownReason::NotificationReceived(n) => write!(f, "peer sent NOTIFICATION {n}"),
        }
    }
}
