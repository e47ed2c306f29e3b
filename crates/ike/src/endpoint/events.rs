//! What the endpoint tells its caller: datagrams to send, events (SAs installed and deleted,
//! connections down, failed attempts) and status; none of it holds a secret it prints.

use super::*;

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Our UDP port to send from: 500, or 4500 after the NAT-T float.
    pub local_port: u16,
    /// Destination.
    pub remote: SocketAddr,
    /// UDP payload; starts with the 4-octet non-ESP marker when `local_port != 500`.
    pub payload: Vec<u8>,
}

/// Keys and parameters of an installed Child SA, for the ESP data path.
#[derive(Clone)]
pub struct ChildSaKeys {
    /// SPI the peer puts on packets to us.
    pub spi_in: u32,
    /// SPI we put on packets to the peer.
    pub spi_out: u32,
    /// Cipher.
    pub encryption: Encryption,
    /// Integrity algorithm (None for GCM).
    pub integrity: Option<Integrity>,
    /// Inbound key (GCM: key || 4-octet salt).
    pub enc_key_in: Vec<u8>,
    /// Outbound key (GCM: key || 4-octet salt).
    pub enc_key_out: Vec<u8>,
    /// Inbound HMAC key (empty for GCM).
    pub integ_key_in: Vec<u8>,
    /// Outbound HMAC key (empty for GCM).
    pub integ_key_out: Vec<u8>,
    /// Our side's selectors as negotiated (narrowed).
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's selectors as negotiated (narrowed).
    pub remote_ts: Vec<TrafficSelector>,
    /// Where ESP-in-UDP goes: the peer's IKE address after the float to 4500.
    pub peer: SocketAddr,
    /// PFS group if one was used.
    pub dh_group: Option<DhGroup>,
    /// Whether outbound traffic may move to this SA at once. False when we answered the
    /// peer's rekey: if our answer was lost the peer does not have the SA yet, so traffic
    /// stays on the SA it replaces until the peer deletes that one or uses this one
    /// (make-before-break, RFC 7296 §2.8).
    pub outbound_now: bool,
}

impl Drop for ChildSaKeys {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.enc_key_in.zeroize();
        self.enc_key_out.zeroize();
        self.integ_key_in.zeroize();
        self.integ_key_out.zeroize();
    }
}

impl fmt::Debug for ChildSaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSaKeys")
            .field("spi_in", &format_args!("{:08x}", self.spi_in))
            .field("spi_out", &format_args!("{:08x}", self.spi_out))
            .field("encryption", &self.encryption)
            .field("integrity", &self.integrity)
            .field("keys", &"<redacted>")
            .field("local_ts", &self.local_ts)
            .field("remote_ts", &self.remote_ts)
            .field("peer", &self.peer)
            .field("dh_group", &self.dh_group)
            .field("outbound_now", &self.outbound_now)
            .finish()
    }
}

/// Which side found the authentication wrong: each points at a different fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// The peer answered our AUTH with AUTHENTICATION_FAILED: its pre-shared key differs
    /// from ours, or it expects another identity from us.
    RejectedByPeer,
    /// The peer's AUTH payload did not verify with our pre-shared key: its key differs.
    PeerAuthInvalid,
    /// The peer authenticated as an identity this connection does not accept.
    WrongIdentity,
}

/// Why a connection went down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// PSK/identity mismatch, and which side found it.
    AuthenticationFailed(AuthFailure),
    /// No common proposal. `theirs` is empty when the peer (as responder) did not disclose it.
    NoProposalChosen {
        /// Our proposals.
        ours: Vec<String>,
        /// The peer's proposals, if known.
        theirs: Vec<String>,
    },
    /// No acceptable traffic selectors.
    TsUnacceptable {
        /// Our selectors.
        ours: String,
        /// The peer's selectors, if known.
        theirs: String,
    },
    /// Retransmissions exhausted without an answer.
    PeerUnreachable,
    /// The peer deleted the IKE SA.
    DeletedByPeer,
    /// Dead-peer detection found no answer within the DPD timeout.
    DpdTimeout,
    /// Anything else, with a description.
    Other(String),
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::AuthenticationFailed(AuthFailure::RejectedByPeer) => f.write_str(
                "AUTHENTICATION_FAILED: the peer rejected our AUTH (its pre-shared key differs from ours, or it expects another identity from us)",
            ),
            DownReason::AuthenticationFailed(AuthFailure::PeerAuthInvalid) => f.write_str(
                "AUTHENTICATION_FAILED: the peer's AUTH did not verify with our pre-shared key (its key differs from ours)",
            ),
            DownReason::AuthenticationFailed(AuthFailure::WrongIdentity) => f.write_str(
                "AUTHENTICATION_FAILED: the peer authenticated with an identity this connection does not accept",
            ),
            DownReason::NoProposalChosen { ours, theirs } => {
                write!(f, "NO_PROPOSAL_CHOSEN: our proposals [{}]; ", ours.join(", "))?;
                if theirs.is_empty() {
                    f.write_str("peer's proposals not known (the responder only answers NO_PROPOSAL_CHOSEN)")
                } else {
                    write!(f, "peer's proposals [{}]", theirs.join(", "))
                }
            }
            DownReason::TsUnacceptable { ours, theirs } => write!(f, "TS_UNACCEPTABLE: our selectors {ours}; peer's selectors {theirs}"),
            DownReason::PeerUnreachable => write!(f, "peer unreachable: no answer after {MAX_TRANSMISSIONS} transmissions"),
            DownReason::DeletedByPeer => f.write_str("IKE SA deleted by peer"),
            DownReason::DpdTimeout => f.write_str("dead peer detection timeout"),
            DownReason::Other(s) => f.write_str(s),
        }
    }
}

/// What happened, for the runtime to act on (install/remove ESP SAs, update status).
#[derive(Clone, Debug)]
pub enum Event {
    /// IKE SA authenticated.
    IkeSaEstablished {
        /// Connection.
        conn: ConnectionId,
        /// Negotiated algorithms, e.g. "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384".
        algorithms: String,
    },
    /// A Child SA is ready: install it in the ESP path.
    ChildSaInstalled {
        /// Connection.
        conn: ConnectionId,
        /// Keys and selectors.
        child: ChildSaKeys,
    },
    /// A Child SA is gone: remove it from the ESP path.
    ChildSaDeleted {
        /// Connection.
        conn: ConnectionId,
        /// Inbound SPI.
        spi_in: u32,
        /// Outbound SPI.
        spi_out: u32,
    },
    /// The connection failed or was torn down.
    ConnectionDown {
        /// Connection.
        conn: ConnectionId,
        /// Why.
        reason: DownReason,
    },
    /// A negotiation failed before authentication (possibly forged by a stranger): nothing
    /// changed, but an operator wants to hear about it (rate-limited).
    AttemptFailed {
        /// Connection the attempt was meant for.
        conn: ConnectionId,
        /// Why it failed.
        reason: DownReason,
    },
}

/// A snapshot of one connection for `gateway status`; holds no secrets.
#[derive(Clone, Debug)]
pub struct ConnectionStatus {
    /// Connection.
    pub conn: ConnectionId,
    /// Configured name.
    pub name: String,
    /// "connecting", "established" or "down".
    pub state: String,
    /// Negotiated IKE algorithms.
    pub ike_algorithms: Option<String>,
    /// Negotiated ESP algorithms.
    pub esp_algorithms: Option<String>,
    /// Initiator SPI of the current IKE SA (0 if none).
    pub ike_spi_i: u64,
    /// Responder SPI of the current IKE SA (0 if none).
    pub ike_spi_r: u64,
    /// Last failure, human readable.
    pub last_error: Option<String>,
    /// When a connection that is down tries again (it backs off after each failure).
    pub next_attempt: Option<Instant>,
    /// Consecutive failed attempts since the connection was last up.
    pub consecutive_failures: u32,
    /// When the current IKE SA was established.
    pub established_at: Option<Instant>,
    /// IKE datagrams for this connection that were dropped (malformed, failed integrity, ...).
    pub ike_dropped: u64,
    /// NAT detection (RFC 7296 §2.23): our address as seen by the peer differs from ours.
    pub nat_local: bool,
    /// NAT detection: the peer's address differs from what it claims (a NAT in front of the
    /// peer, or a peer that fakes NAT to force UDP encapsulation, like strongSwan's
    /// kernel-libipsec and ourselves).
    pub nat_remote: bool,
    /// Where the current IKE SA sends (follows a NAT-mapped peer); `None` without an IKE SA.
    /// The ESP path must send to the same place.
    pub remote: Option<SocketAddr>,
    /// Negotiations that failed before anything was authenticated (a refused IKE_SA_INIT,
    /// an error answer to ours): anyone on the path can cause these, so they never change
    /// an established connection; they are counted and the last one is kept.
    pub failed_attempts: u64,
    /// The last such failure, human readable.
    pub last_failed_attempt: Option<String>,
    /// Set when the peer narrowed the traffic selectors so that part of the configured ones
    /// is not tunneled: both selector sets, what is left out and why.
    pub selector_warning: Option<String>,
}
