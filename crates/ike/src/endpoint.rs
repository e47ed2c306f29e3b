//! The IKEv2 endpoint: owns every IKE SA of every configured connection, dispatches incoming
//! datagrams by SPI, runs the IKE_SA_INIT / IKE_AUTH / INFORMATIONAL exchanges as initiator and
//! responder, and reports results as events. Sans-IO: the caller moves datagrams and time.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use aws_lc_rs::constant_time;

use crate::codec::{
    exchange, find_notify, flags, notify, protocol, AuthPayload, DeletePayload, Header, IdPayload,
    KePayload, Message, NotifyPayload, Payload, PayloadBody, TsEntry, TsPayload,
};
use crate::config::{
    ConnectionConfig, DhGroup, DownAction, Encryption, Identity, Integrity, TrafficSelector,
};
use crate::cookie::CookieJar;
use crate::crypto::{self, DhPrivate, IkeKeys};
use crate::error::{CryptoError, DecodeError, IkeError};
use crate::proposal::{self, ChildSuite};

/// Handle for a configured connection, returned by [`Endpoint::add_connection`].
pub type ConnectionId = usize;

/// First retransmission interval; doubled on every retry (0.5 s, 1 s, 2 s, 4 s, 8 s).
pub const RETRANSMIT_BASE: Duration = Duration::from_millis(500);
/// Number of transmissions of one request before the peer is declared unreachable.
pub const MAX_TRANSMISSIONS: u32 = 5;
/// A responder IKE SA that is not authenticated within this time is discarded.
pub const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// First wait before an initiating connection that went down tries again; it doubles with
/// every consecutive failure up to the connection's `recovery.retry_max`.
pub const RETRY_BASE: Duration = Duration::from_secs(1);
/// Half-open IKE SAs above which IKE_SA_INIT requests must echo a COOKIE (RFC 7296 §2.6).
pub const DEFAULT_COOKIE_THRESHOLD: usize = 32;
/// Half-open IKE SAs per source address above which that source must echo a COOKIE.
pub const DEFAULT_HALF_OPEN_PER_SOURCE: usize = 16;
/// Hard cap on half-open IKE SAs, whatever their sources: even a flood that echoes valid
/// cookies (it receives at the addresses it uses) cannot grow state past it; the oldest
/// half-open SA makes room.
pub const MAX_HALF_OPEN: usize = 4096;
/// How long an initiator keeps waiting for a genuine IKE_SA_INIT response after an
/// unauthenticated error notification arrived (RFC 7296 §2.21.1: anyone can forge those).
pub const UNAUTHENTICATED_ERROR_GRACE: Duration = Duration::from_secs(1);
/// A peer's failed negotiation attempt explains a DELETE of the established IKE SA that
/// arrives within this time (the peer was reconfigured and tried again).
pub const ATTEMPT_EXPLAINS_DELETE: Duration = Duration::from_secs(10);
/// Longest lifetime or timeout honoured (ten years); larger configured values are clamped.
pub const MAX_TIMER: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Nonce length we send (RFC 7296 §2.10: at least half the PRF key size, at least 16 octets).
const NONCE_LEN: usize = 32;
/// Auth method: shared key message integrity code.
const AUTH_PSK: u8 = 2;
/// Additional Child SAs asked for per IKE SA when the peer narrowed the selectors.
const MAX_EXTRA_CHILDREN: u32 = 16;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    Connecting,
    Established,
    Down,
}

struct Connection {
    cfg: ConnectionConfig,
    state: ConnState,
    last_error: Option<String>,
    ike_sa: Option<u64>,
    established_at: Option<Instant>,
    ike_algorithms: Option<String>,
    esp_algorithms: Option<String>,
    retry_at: Option<Instant>,
    dropped: u64,
    /// (we are behind NAT, the peer is behind NAT) from the IKE_SA_INIT of the current
    /// authenticated IKE SA.
    nat: (bool, bool),
    /// Unauthenticated negotiation failures (see [`ConnectionStatus::failed_attempts`]).
    failed_attempts: u64,
    /// Times the connection went down since it was last up (drives the back-off).
    failures: u32,
    /// When and why the last one failed.
    last_attempt: Option<(Instant, DownReason)>,
    /// The peer narrowed the traffic selectors and part of the configured ones has no
    /// Child SA: both selector sets and what is left out.
    selector_warning: Option<String>,
}

struct ChildSa {
    spi_in: u32,
    spi_out: u32,
    local_ts: Vec<TrafficSelector>,
    remote_ts: Vec<TrafficSelector>,
    /// When we (as the rekeying side) replace it; `None` while a rekey runs or after it.
    rekey_at: Option<Instant>,
    /// A rekey of it completed (ours or the peer's): it only waits for its DELETE.
    replaced: bool,
}

/// Our side of a simultaneous rekey of one Child SA (RFC 7296 §2.8.1): the peer's exchange,
/// which we answered while ours was outstanding.
struct Collision {
    /// The peer's nonce and ours in its exchange.
    nonces: (Vec<u8>, Vec<u8>),
}

/// A CREATE_CHILD_SA we started and whose response we await.
enum PendingRekey {
    Child {
        /// The Child SA it replaces (our inbound SPI); `None` asks for an additional Child
        /// SA: the peer narrowed the selectors and this one is for what was left out.
        old_spi_in: Option<u32>,
        new_spi_in: u32,
        ni: Vec<u8>,
        dh: Option<DhPrivate>,
        /// The selectors asked for (for an additional Child SA's refusal message).
        ts: (Vec<TrafficSelector>, Vec<TrafficSelector>),
        /// The peer rekeyed the same Child SA at the same time.
        collision: Option<Collision>,
    },
    Ike {
        new_spi: u64,
        ni: Vec<u8>,
        dh: DhPrivate,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum RequestKind {
    IkeSaInit,
    IkeAuth,
    Dpd,
    DeleteIke,
    DeleteChild(u32),
    Rekey,
}

struct Outstanding {
    msg_id: u32,
    bytes: Vec<u8>,
    tries: u32,
    next_at: Instant,
    kind: RequestKind,
}

/// Initiator waiting for the IKE_SA_INIT response.
struct InitiatorInit {
    dh: DhPrivate,
    cookie: Option<Vec<u8>>,
    restarts: u32,
    /// An error notification answered our request; it is unauthenticated, so it only
    /// ends the attempt if no genuine response arrives within the grace time.
    refused: Option<DownReason>,
}

/// Initiator waiting for the IKE_AUTH response.
struct InitiatorAuth {
    child_spi_in: u32,
}

enum Phase {
    InitiatorInit(InitiatorInit),
    InitiatorAuth(InitiatorAuth),
    ResponderAuth,
    Established,
}

struct IkeSa {
    conn: ConnectionId,
    initiator: bool,
    spi_i: u64,
    spi_r: u64,
    local_port: u16,
    remote: SocketAddr,
    ni: Vec<u8>,
    nr: Vec<u8>,
    init_request: Vec<u8>,
    init_response: Vec<u8>,
    keys: Option<IkeKeys>,
    gcm_iv: u64,
    next_out_id: u32,
    outstanding: Option<Outstanding>,
    queued: VecDeque<RequestKind>,
    peer_next_id: u32,
    cached_response: Option<Vec<u8>>,
    last_request: Vec<u8>,
    children: Vec<ChildSa>,
    phase: Phase,
    created: Instant,
    /// When IKE_AUTH (or the rekey that made it) completed.
    established_at: Option<Instant>,
    last_recv: Instant,
    /// (we are behind NAT, the peer is behind NAT) as IKE_SA_INIT showed; the connection
    /// takes it over only once this SA is authenticated.
    nat: (bool, bool),
    dead: bool,
    quiet: bool,
    /// Set when this SA was replaced by a rekey; it only waits for the peer's DELETE.
    rekeyed_at: Option<Instant>,
    pending_rekey: Option<PendingRekey>,
    /// When we rekey this IKE SA (initiating side only).
    ike_rekey_at: Option<Instant>,
    /// An additional Child SA to ask for (local, remote selectors): the peer narrowed the
    /// selectors and left part of the configured ones out.
    wanted_extra: Option<(Vec<TrafficSelector>, Vec<TrafficSelector>)>,
    /// Additional Child SAs asked for so far on this IKE SA.
    extra_asked: u32,
    /// Selector pairs the peer refused an additional Child SA for.
    refused_extra: Vec<(Vec<TrafficSelector>, Vec<TrafficSelector>)>,
    /// Why the peer refused the last additional Child SA.
    extra_refusal: Option<String>,
}

impl IkeSa {
    /// The IKE SA that replaces `old` after an IKE SA rekey (RFC 7296 §1.3.2): fresh SPIs,
    /// nonces and keys, message IDs from zero, and `old`'s Child SAs moved over.
    #[allow(clippy::too_many_arguments)]
    fn successor(
        old: &mut IkeSa,
        initiator: bool,
        (spi_i, spi_r): (u64, u64),
        (ni, nr): (Vec<u8>, Vec<u8>),
        keys: IkeKeys,
        now: Instant,
        ike_rekey_at: Option<Instant>,
    ) -> IkeSa {
        IkeSa {
            conn: old.conn,
            initiator,
            spi_i,
            spi_r,
            local_port: old.local_port,
            remote: old.remote,
            ni,
            nr,
            init_request: vec![],
            init_response: vec![],
            keys: Some(keys),
            gcm_iv: 0,
            next_out_id: 0,
            outstanding: None,
            queued: VecDeque::new(),
            peer_next_id: 0,
            cached_response: None,
            last_request: vec![],
            children: std::mem::take(&mut old.children),
            phase: Phase::Established,
            created: now,
            established_at: Some(now),
            last_recv: now,
            nat: old.nat,
            dead: false,
            quiet: false,
            rekeyed_at: None,
            pending_rekey: None,
            ike_rekey_at,
            wanted_extra: None,
            extra_asked: 0,
            refused_extra: std::mem::take(&mut old.refused_extra),
            extra_refusal: old.extra_refusal.take(),
        }
    }

    fn our_spi(&self) -> u64 {
        if self.initiator {
            self.spi_i
        } else {
            self.spi_r
        }
    }
}

fn wrap(local_port: u16, remote: SocketAddr, msg: Vec<u8>) -> Transmit {
    let payload = if local_port == 500 {
        msg
    } else {
        let mut v = Vec::with_capacity(msg.len() + 4);
        v.extend_from_slice(&[0, 0, 0, 0]);
        v.extend_from_slice(&msg);
        v
    };
    Transmit {
        local_port,
        remote,
        payload,
    }
}

fn notify_payload(kind: u16, data: Vec<u8>) -> Payload {
    Payload::new(PayloadBody::Notify(NotifyPayload {
        protocol: 0,
        spi: vec![],
        kind,
        data,
    }))
}

fn id_payload(id: &Identity) -> IdPayload {
    IdPayload {
        id_type: id.id_type(),
        data: id.data(),
    }
}

fn ts_to_entry(ts: &TrafficSelector) -> TsEntry {
    let oct = |a: IpAddr| match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    };
    TsEntry {
        ts_type: if ts.is_v6() { 8 } else { 7 },
        protocol: ts.protocol,
        start_port: ts.start_port,
        end_port: ts.end_port,
        start: oct(ts.start),
        end: oct(ts.end),
    }
}

fn entry_to_ts(e: &TsEntry) -> Option<TrafficSelector> {
    let addr = |b: &[u8]| -> Option<IpAddr> {
        match b.len() {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
            16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
            _ => None,
        }
    };
    match e.ts_type {
        7 if e.start.len() == 4 => {}
        8 if e.start.len() == 16 => {}
        _ => return None,
    }
    Some(TrafficSelector {
        start: addr(&e.start)?,
        end: addr(&e.end)?,
        protocol: e.protocol,
        start_port: e.start_port,
        end_port: e.end_port,
    })
}

fn ts_payload(list: &[TrafficSelector]) -> TsPayload {
    TsPayload {
        selectors: list.iter().map(ts_to_entry).collect(),
    }
}

fn ts_list(p: &TsPayload) -> Vec<TrafficSelector> {
    p.selectors.iter().filter_map(entry_to_ts).collect()
}

fn ts_text(list: &[TrafficSelector]) -> String {
    format!(
        "[{}]",
        list.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// RFC 7296 §2.9 narrowing: every intersection of a proposed selector with a configured one.
fn narrow(proposed: &[TrafficSelector], configured: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = vec![];
    for p in proposed {
        for c in configured {
            if let Some(i) = p.intersect(c) {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
    }
    out
}

/// (we are behind NAT, peer is behind NAT) from the NAT_DETECTION payloads of `payloads`;
/// absent payloads mean no NAT.
fn nat_detect(
    payloads: &[Payload],
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
) -> (bool, bool) {
    let hashes = |kind: u16| -> Vec<&[u8]> {
        payloads
            .iter()
            .filter_map(|p| match &p.body {
                PayloadBody::Notify(n) if n.kind == kind => Some(n.data.as_slice()),
                _ => None,
            })
            .collect()
    };
    let dst = hashes(notify::NAT_DETECTION_DESTINATION_IP);
    let src = hashes(notify::NAT_DETECTION_SOURCE_IP);
    let ours = crypto::nat_hash(spi_i, spi_r, local);
    let theirs = crypto::nat_hash(spi_i, spi_r, remote);
    let local_nat = !dst.is_empty() && !dst.contains(&ours.as_slice());
    let remote_nat = !src.is_empty() && !src.contains(&theirs.as_slice());
    (local_nat, remote_nat)
}

fn notify_name(kind: u16) -> String {
    match kind {
        notify::UNSUPPORTED_CRITICAL_PAYLOAD => "UNSUPPORTED_CRITICAL_PAYLOAD".into(),
        4 => "INVALID_IKE_SPI".into(),
        5 => "INVALID_MAJOR_VERSION".into(),
        notify::INVALID_SYNTAX => "INVALID_SYNTAX".into(),
        9 => "INVALID_MESSAGE_ID".into(),
        11 => "INVALID_SPI".into(),
        notify::NO_PROPOSAL_CHOSEN => "NO_PROPOSAL_CHOSEN".into(),
        notify::INVALID_KE_PAYLOAD => "INVALID_KE_PAYLOAD".into(),
        notify::AUTHENTICATION_FAILED => "AUTHENTICATION_FAILED".into(),
        notify::SINGLE_PAIR_REQUIRED => "SINGLE_PAIR_REQUIRED".into(),
        notify::NO_ADDITIONAL_SAS => "NO_ADDITIONAL_SAS".into(),
        notify::INTERNAL_ADDRESS_FAILURE => "INTERNAL_ADDRESS_FAILURE".into(),
        notify::FAILED_CP_REQUIRED => "FAILED_CP_REQUIRED".into(),
        notify::TS_UNACCEPTABLE => "TS_UNACCEPTABLE".into(),
        notify::TEMPORARY_FAILURE => "TEMPORARY_FAILURE".into(),
        notify::CHILD_SA_NOT_FOUND => "CHILD_SA_NOT_FOUND".into(),
        k => format!("notify type {k}"),
    }
}

fn first_error_notify(payloads: &[Payload]) -> Option<u16> {
    payloads.iter().find_map(|p| match &p.body {
        PayloadBody::Notify(n) if n.kind < 16384 => Some(n.kind),
        _ => None,
    })
}

/// A Child SA agreed in IKE_AUTH: suite, inbound SPI, outbound SPI, local and remote selectors.
type NegotiatedChild = (
    ChildSuite,
    u32,
    u32,
    Vec<TrafficSelector>,
    Vec<TrafficSelector>,
);

/// Owns all IKE SAs; see the module documentation.
pub struct Endpoint {
    conns: Vec<Option<Connection>>,
    sas: HashMap<u64, IkeSa>,
    half_open: HashMap<(SocketAddr, u64), u64>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    dropped: u64,
    /// Dropped datagrams by cause ([`IkeError::cause_name`]); a fixed set of keys.
    drops_by_cause: std::collections::BTreeMap<&'static str, u64>,
    cookies: CookieJar,
    cookie_threshold: usize,
    half_open_per_source: usize,
    cookies_sent: u64,
    /// The connection whose next IKE message panics (tests of fault isolation only).
    #[cfg(feature = "fault-injection")]
    fault: Option<ConnectionId>,
}

impl Default for Endpoint {
    fn default() -> Self {
        Self::new()
    }
}

impl Endpoint {
    /// An endpoint with no connections.
    pub fn new() -> Self {
        Endpoint {
            conns: vec![],
            sas: HashMap::new(),
            half_open: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            dropped: 0,
            drops_by_cause: std::collections::BTreeMap::new(),
            cookies: CookieJar::default(),
            cookie_threshold: DEFAULT_COOKIE_THRESHOLD,
            half_open_per_source: DEFAULT_HALF_OPEN_PER_SOURCE,
            cookies_sent: 0,
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }

    /// Adds a connection; an initiating one sends its IKE_SA_INIT right away.
    /// The configuration should have passed [`ConnectionConfig::validate`]; an invalid one is
    /// reported through a `ConnectionDown` event.
    pub fn add_connection(&mut self, mut cfg: ConnectionConfig, now: Instant) -> ConnectionId {
        let id = self.conns.len();
        // Timer arithmetic on Instant must not overflow, whatever the configuration says.
        for d in [
            &mut cfg.ike_lifetime,
            &mut cfg.child_lifetime,
            &mut cfg.dpd_timeout,
        ] {
            *d = (*d).min(MAX_TIMER);
        }
        let invalid = cfg.validate().err();
        let initiate = cfg.initiate;
        self.conns.push(Some(Connection {
            cfg,
            state: if initiate {
                ConnState::Connecting
            } else {
                ConnState::Down
            },
            last_error: None,
            ike_sa: None,
            established_at: None,
            ike_algorithms: None,
            esp_algorithms: None,
            retry_at: None,
            dropped: 0,
            nat: (false, false),
            failed_attempts: 0,
            failures: 0,
            last_attempt: None,
            selector_warning: None,
        }));
        if let Some(e) = invalid {
            self.conn_down(
                id,
                DownReason::Other(format!("invalid configuration: {e}")),
                None,
            );
        } else if initiate {
            self.start_initiator(id, now);
        }
        id
    }

    /// Removes a connection: sends a DELETE for its IKE SAs and reports their Child SAs deleted.
    pub fn remove_connection(&mut self, id: ConnectionId, now: Instant) {
        let spis: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, sa)| sa.conn == id)
            .map(|(k, _)| *k)
            .collect();
        for spi in spis {
            if let Some(mut sa) = self.sas.remove(&spi) {
                self.send_ike_delete(&mut sa);
                self.drop_children(&mut sa);
                self.forget(&sa);
            }
        }
        let _ = now;
        if let Some(slot) = self.conns.get_mut(id) {
            *slot = None;
        }
    }

    /// Feeds one received UDP datagram. `local` is our address/port it arrived on; datagrams on
    /// any port other than 500 must start with the non-ESP marker. Rejected datagrams are
    /// counted and the reason returned; nothing panics on malformed input.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), IkeError> {
        self.cookies.tick(now);
        let r = self.dispatch(now, local, remote, bytes);
        if let Err(e) = &r {
            self.dropped += 1;
            *self.drops_by_cause.entry(e.cause_name()).or_default() += 1;
        }
        r
    }

    /// Runs timers: retransmissions, dead-peer detection, half-open expiry, re-initiation.
    pub fn handle_timeout(&mut self, now: Instant) {
        let retry: Vec<ConnectionId> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                c.as_ref()
                    .and_then(|c| c.retry_at)
                    .filter(|t| *t <= now)
                    .map(|_| i)
            })
            .collect();
        for id in retry {
            if let Some(c) = self.conns[id].as_mut() {
                c.retry_at = None;
            }
            self.start_initiator(id, now);
        }
        let spis: Vec<u64> = self.sas.keys().copied().collect();
        for spi in spis {
            let Some(mut sa) = self.sas.remove(&spi) else {
                continue;
            };
            let ran = std::panic::catch_unwind(AssertUnwindSafe(|| self.sa_timers(&mut sa, now)));
            if ran.is_err() {
                self.internal_fault(&mut sa, now);
            }
            self.put_back(sa);
        }
    }

    /// Next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        let mut consider = |t: Instant| best = Some(best.map_or(t, |b| b.min(t)));
        for c in self.conns.iter().flatten() {
            if let Some(t) = c.retry_at {
                consider(t);
            }
        }
        for sa in self.sas.values() {
            if let Some(o) = &sa.outstanding {
                consider(o.next_at);
            }
            if let Some(t) = sa.rekeyed_at {
                consider(t + HALF_OPEN_TIMEOUT);
                continue;
            }
            if Self::extra_child_ready(sa) {
                consider(sa.last_recv.min(sa.created));
            }
            match sa.phase {
                Phase::ResponderAuth => consider(sa.created + HALF_OPEN_TIMEOUT),
                Phase::Established => {
                    if let (None, Some(t)) = (&sa.outstanding, self.next_rekey(sa)) {
                        consider(t);
                    }
                    if let Some(d) = self.dpd_delay(sa) {
                        if sa.outstanding.is_none() {
                            consider(sa.last_recv + d);
                        }
                    }
                }
                _ => {}
            }
        }
        best
    }

    /// Next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Per-connection status.
    pub fn status(&self) -> Vec<ConnectionStatus> {
        self.conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
            .map(|(i, c)| {
                let sa = c.ike_sa.and_then(|s| self.sas.get(&s));
                ConnectionStatus {
                    conn: i,
                    name: c.cfg.name.clone(),
                    state: match c.state {
                        ConnState::Connecting => "connecting",
                        ConnState::Established => "established",
                        ConnState::Down => "down",
                    }
                    .to_string(),
                    ike_algorithms: c.ike_algorithms.clone(),
                    esp_algorithms: c.esp_algorithms.clone(),
                    ike_spi_i: sa.map_or(0, |s| s.spi_i),
                    ike_spi_r: sa.map_or(0, |s| s.spi_r),
                    last_error: c.last_error.clone(),
                    next_attempt: c.retry_at,
                    consecutive_failures: c.failures,
                    established_at: c.established_at,
                    ike_dropped: c.dropped,
                    nat_local: c.nat.0,
                    nat_remote: c.nat.1,
                    remote: sa.map(|s| s.remote),
                    failed_attempts: c.failed_attempts,
                    last_failed_attempt: c.last_attempt.as_ref().map(|(_, r)| r.to_string()),
                    selector_warning: c.selector_warning.clone(),
                }
            })
            .collect()
    }

    /// Sets the denial-of-service limits: above `cookie_threshold` half-open IKE SAs new
    /// initiators must echo a COOKIE; at most `per_source` half-open SAs per peer address.
    pub fn set_half_open_limits(&mut self, cookie_threshold: usize, per_source: usize) {
        self.cookie_threshold = cookie_threshold;
        self.half_open_per_source = per_source;
    }

    /// Makes the handling of the next IKE message of connection `conn` panic, to show that a
    /// fault stays with its connection (tests only).
    #[cfg(feature = "fault-injection")]
    pub fn inject_fault(&mut self, conn: ConnectionId) {
        self.fault = Some(conn);
    }

    /// Number of half-open (responder, not yet authenticated) IKE SAs.
    pub fn half_open(&self) -> usize {
        self.half_open.len()
    }

    /// COOKIE challenges sent so far.
    pub fn cookies_sent(&self) -> u64 {
        self.cookies_sent
    }

    /// Total IKE datagrams dropped, including those that matched no connection.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Dropped IKE datagrams by cause ([`IkeError::cause_name`]).
    pub fn drops_by_cause(&self) -> &std::collections::BTreeMap<&'static str, u64> {
        &self.drops_by_cause
    }

    // ------------------------------------------------------------------ plumbing

    fn cfg(&self, id: ConnectionId) -> Option<&ConnectionConfig> {
        self.conns.get(id)?.as_ref().map(|c| &c.cfg)
    }

    fn dpd_delay(&self, sa: &IkeSa) -> Option<Duration> {
        let t = self.cfg(sa.conn)?.dpd_timeout;
        if t.is_zero() {
            None
        } else {
            Some((t / 3).max(Duration::from_secs(1)))
        }
    }

    fn put_back(&mut self, sa: IkeSa) {
        if sa.dead {
            self.forget(&sa);
        } else {
            self.sas.insert(sa.our_spi(), sa);
        }
    }

    fn forget(&mut self, sa: &IkeSa) {
        if !sa.initiator {
            self.half_open.remove(&(sa.remote, sa.spi_i));
            self.half_open.retain(|_, v| *v != sa.spi_r);
        }
        if let Some(Some(c)) = self.conns.get_mut(sa.conn) {
            if c.ike_sa == Some(sa.our_spi()) {
                c.ike_sa = None;
            }
        }
    }

    fn drop_children(&mut self, sa: &mut IkeSa) {
        for c in sa.children.drain(..) {
            self.events.push_back(Event::ChildSaDeleted {
                conn: sa.conn,
                spi_in: c.spi_in,
                spi_out: c.spi_out,
            });
        }
    }

    fn conn_down(&mut self, id: ConnectionId, mut reason: DownReason, now: Option<Instant>) {
        if let Some(Some(c)) = self.conns.get_mut(id) {
            // The peer deleted the SA right after one of its attempts failed: it was
            // reconfigured, and the failure says why better than the DELETE does.
            if let (DownReason::DeletedByPeer, Some(n), Some((t, why))) =
                (&reason, now, &c.last_attempt)
            {
                if n.saturating_duration_since(*t) <= ATTEMPT_EXPLAINS_DELETE {
                    reason = why.clone();
                }
            }
            c.state = ConnState::Down;
            c.last_error = Some(reason.to_string());
            c.established_at = None;
            c.failures = c.failures.saturating_add(1);
            let rec = c.cfg.recovery;
            let action = match reason {
                DownReason::DeletedByPeer => rec.close_action,
                DownReason::DpdTimeout => rec.dpd_action,
                _ => DownAction::Restart,
            };
            let tries_left = rec.keyingtries == 0 || c.failures < rec.keyingtries;
            if let (true, DownAction::Restart, true, Some(n)) =
                (c.cfg.initiate, action, tries_left, now)
            {
                c.retry_at = Some(n + retry_delay(c.failures, rec.retry_max));
                c.state = ConnState::Connecting;
            } else {
                c.retry_at = None;
            }
        }
        self.events
            .push_back(Event::ConnectionDown { conn: id, reason });
    }

    /// Ends an SA with a reported reason.
    fn fail(&mut self, sa: &mut IkeSa, reason: DownReason, now: Instant) {
        sa.dead = true;
        self.drop_children(sa);
        let conn = self.conns.get(sa.conn).and_then(|c| c.as_ref());
        let current = conn.is_some_and(|c| c.ike_sa.is_none() || c.ike_sa == Some(sa.our_spi()));
        if !sa.quiet && sa.rekeyed_at.is_none() && current {
            self.conn_down(sa.conn, reason, Some(now));
        }
    }

    /// A negotiation failed before anything was authenticated. Anyone who can send from the
    /// peer's address can cause this, so an established connection keeps its state, SAs,
    /// NAT flags, peer and last error: the failure is only counted and remembered (and
    /// becomes the diagnosis of a connection that is not up anyway).
    fn attempt_failed(&mut self, id: ConnectionId, reason: DownReason, now: Instant) {
        if let Some(Some(c)) = self.conns.get_mut(id) {
            c.failed_attempts += 1;
            if c.state != ConnState::Established {
                c.last_error = Some(reason.to_string());
            }
            c.last_attempt = Some((now, reason.clone()));
        }
        self.events
            .push_back(Event::AttemptFailed { conn: id, reason });
    }

    fn count_drop(&mut self, conn: ConnectionId) {
        if let Some(Some(c)) = self.conns.get_mut(conn) {
            c.dropped += 1;
        }
    }

    fn next_iv(&mut self, sa: &mut IkeSa) -> Result<Vec<u8>, CryptoError> {
        let keys = sa.keys.as_ref().ok_or(CryptoError::BadKeyLength)?;
        if keys.suite.encryption.is_aead() {
            sa.gcm_iv += 1;
            Ok(sa.gcm_iv.to_be_bytes().to_vec())
        } else {
            crypto::random_bytes(16)
        }
    }

    fn encrypt(
        &mut self,
        sa: &mut IkeSa,
        exch: u8,
        response: bool,
        msg_id: u32,
        inner: &[Payload],
    ) -> Result<Vec<u8>, CryptoError> {
        let iv = self.next_iv(sa)?;
        let mut fl = if sa.initiator { flags::INITIATOR } else { 0 };
        if response {
            fl |= flags::RESPONSE;
        }
        let header = Header {
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            next_payload: 0,
            version: 0x20,
            exchange: exch,
            flags: fl,
            message_id: msg_id,
            length: 0,
        };
        let keys = sa.keys.as_ref().ok_or(CryptoError::BadKeyLength)?;
        crypto::protect(&keys.direction(sa.initiator), &header, inner, &iv)
    }

    fn respond(
        &mut self,
        sa: &mut IkeSa,
        exch: u8,
        msg_id: u32,
        inner: &[Payload],
    ) -> Result<(), IkeError> {
        let bytes = self.encrypt(sa, exch, true, msg_id, inner)?;
        sa.peer_next_id = msg_id.wrapping_add(1);
        sa.cached_response = Some(bytes.clone());
        self.transmits
            .push_back(wrap(sa.local_port, sa.remote, bytes));
        Ok(())
    }

    fn request_body(kind: &RequestKind) -> (u8, Vec<Payload>) {
        match kind {
            RequestKind::DeleteIke => (
                exchange::INFORMATIONAL,
                vec![Payload::new(PayloadBody::Delete(DeletePayload {
                    protocol: protocol::IKE,
                    spi_size: 0,
                    spis: vec![],
                }))],
            ),
            RequestKind::DeleteChild(spi) => (
                exchange::INFORMATIONAL,
                vec![Payload::new(PayloadBody::Delete(DeletePayload {
                    protocol: protocol::ESP,
                    spi_size: 4,
                    spis: vec![spi.to_be_bytes().to_vec()],
                }))],
            ),
            _ => (exchange::INFORMATIONAL, vec![]),
        }
    }

    /// Sends an encrypted request, or queues it when one is outstanding (window size 1).
    fn send_request(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        kind: RequestKind,
        exch: u8,
        inner: &[Payload],
    ) {
        if sa.outstanding.is_some() {
            if !sa.queued.contains(&kind) {
                sa.queued.push_back(kind);
            }
            return;
        }
        let msg_id = sa.next_out_id;
        match self.encrypt(sa, exch, false, msg_id, inner) {
            Ok(bytes) => {
                sa.next_out_id = sa.next_out_id.wrapping_add(1);
                self.transmits
                    .push_back(wrap(sa.local_port, sa.remote, bytes.clone()));
                sa.outstanding = Some(Outstanding {
                    msg_id,
                    bytes,
                    tries: 1,
                    next_at: now + RETRANSMIT_BASE,
                    kind,
                });
            }
            Err(e) => self.fail(
                sa,
                DownReason::Other(format!("cannot build request: {e}")),
                now,
            ),
        }
    }

    fn send_queued(&mut self, sa: &mut IkeSa, now: Instant) {
        if sa.outstanding.is_none() {
            if let Some(k) = sa.queued.pop_front() {
                let (exch, inner) = Self::request_body(&k);
                self.send_request(sa, now, k, exch, &inner);
            } else if Self::extra_child_ready(sa) {
                self.start_extra_child(sa, now);
            }
        }
    }

    /// Whether an additional Child SA can be asked for now (nothing else in flight).
    fn extra_child_ready(sa: &IkeSa) -> bool {
        sa.wanted_extra.is_some()
            && sa.outstanding.is_none()
            && sa.queued.is_empty()
            && sa.pending_rekey.is_none()
            && sa.rekeyed_at.is_none()
            && matches!(sa.phase, Phase::Established)
    }

    fn sa_timers(&mut self, sa: &mut IkeSa, now: Instant) {
        if matches!(sa.phase, Phase::ResponderAuth) && now >= sa.created + HALF_OPEN_TIMEOUT {
            sa.dead = true;
            return;
        }
        if let Some(t) = sa.rekeyed_at {
            if now >= t + HALF_OPEN_TIMEOUT {
                sa.dead = true;
                return;
            }
        }
        let dpd_timeout = self.cfg(sa.conn).map(|c| c.dpd_timeout).unwrap_or_default();
        if sa.outstanding.as_ref().is_some_and(|o| o.next_at <= now) {
            if let Phase::InitiatorInit(InitiatorInit {
                refused: Some(_), ..
            }) = &sa.phase
            {
                let Phase::InitiatorInit(st) = &mut sa.phase else {
                    unreachable!("matched above")
                };
                let reason = st.refused.take().expect("matched above");
                sa.outstanding = None;
                if let Some(Some(c)) = self.conns.get_mut(sa.conn) {
                    c.failed_attempts += 1;
                    c.last_attempt = Some((now, reason.clone()));
                }
                self.fail(sa, reason, now);
                return;
            }
        }
        if let Some(out) = sa.outstanding.as_mut() {
            if out.next_at <= now {
                let give_up = match out.kind {
                    RequestKind::Dpd => now >= sa.last_recv + dpd_timeout,
                    _ => out.tries >= MAX_TRANSMISSIONS,
                };
                if give_up {
                    let kind = out.kind.clone();
                    sa.outstanding = None;
                    match kind {
                        RequestKind::Dpd => self.fail(sa, DownReason::DpdTimeout, now),
                        RequestKind::DeleteIke if sa.rekeyed_at.is_some() || sa.quiet => {
                            sa.dead = true
                        }
                        _ => self.fail(sa, DownReason::PeerUnreachable, now),
                    }
                    return;
                }
                let wait = RETRANSMIT_BASE * (1u32 << out.tries.min(6));
                out.tries += 1;
                out.next_at = now + wait;
                if out.kind == RequestKind::Dpd {
                    out.next_at = out.next_at.min(sa.last_recv + dpd_timeout);
                }
                let t = wrap(sa.local_port, sa.remote, out.bytes.clone());
                self.transmits.push_back(t);
            }
            return;
        }
        if sa.rekeyed_at.is_some() {
            return;
        }
        if Self::extra_child_ready(sa) {
            self.start_extra_child(sa, now);
            return;
        }
        if matches!(sa.phase, Phase::Established) && sa.queued.is_empty() {
            if let Some(t) = self.next_rekey(sa) {
                if t <= now {
                    self.start_rekey(sa, now);
                    return;
                }
            }
        }
        if matches!(sa.phase, Phase::Established) {
            if let Some(d) = self.dpd_delay(sa) {
                if now >= sa.last_recv + d && sa.queued.is_empty() {
                    self.send_request(sa, now, RequestKind::Dpd, exchange::INFORMATIONAL, &[]);
                }
            }
        }
    }

    fn dispatch(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), IkeError> {
        let data = if local.port() == 500 {
            bytes
        } else {
            if bytes.len() < 4 || bytes[..4] != [0, 0, 0, 0] {
                return Err(IkeError::MissingNonEspMarker);
            }
            &bytes[4..]
        };
        let header = Header::decode(data)?;
        if header.length as usize != data.len() {
            return Err(DecodeError::BadLength("IKE header length").into());
        }
        if header.from_initiator() && header.spi_r == 0 {
            if header.exchange == exchange::IKE_SA_INIT
                && !header.is_response()
                && header.message_id == 0
            {
                return std::panic::catch_unwind(AssertUnwindSafe(|| {
                    self.responder_init(now, local, remote, data)
                }))
                .unwrap_or(Err(IkeError::Internal));
            }
            return Err(IkeError::UnknownSpi(header.spi_i, header.spi_r));
        }
        let our = if header.from_initiator() {
            header.spi_r
        } else {
            header.spi_i
        };
        let Some(mut sa) = self.sas.remove(&our) else {
            return Err(IkeError::UnknownSpi(header.spi_i, header.spi_r));
        };
        if sa.initiator == header.from_initiator() || (!sa.initiator && sa.spi_i != header.spi_i) {
            self.sas.insert(our, sa);
            return Err(IkeError::UnknownSpi(header.spi_i, header.spi_r));
        }
        let res = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.process(&mut sa, now, local, remote, data, &header)
        }));
        let res = match res {
            Ok(r) => r,
            Err(_) => {
                self.internal_fault(&mut sa, now);
                Err(IkeError::Internal)
            }
        };
        if res.is_err() {
            self.count_drop(sa.conn);
        }
        self.put_back(sa);
        res
    }

    /// A bug surfaced (a panic) while one IKE SA was being handled: that SA alone is lost —
    /// its Child SAs are reported deleted and its connection goes down and re-initiates —
    /// while every other connection of the endpoint carries on.
    fn internal_fault(&mut self, sa: &mut IkeSa, now: Instant) {
        self.fail(
            sa,
            DownReason::Other("internal error while handling the IKE SA; it was dropped".into()),
            now,
        );
        sa.dead = true;
        self.drop_children(sa);
    }

    fn process(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        header: &Header,
    ) -> Result<(), IkeError> {
        #[cfg(feature = "fault-injection")]
        if self.fault == Some(sa.conn) {
            self.fault = None;
            panic!("fault injected while handling connection {}", sa.conn);
        }
        if header.is_response() {
            let Some(out) = sa.outstanding.as_ref() else {
                return Err(IkeError::UnexpectedMessageId(header.message_id));
            };
            if out.msg_id != header.message_id {
                return Err(IkeError::UnexpectedMessageId(header.message_id));
            }
            if out.kind == RequestKind::IkeSaInit {
                if header.exchange != exchange::IKE_SA_INIT {
                    return Err(IkeError::UnexpectedExchange(header.exchange));
                }
                return self.initiator_init_response(sa, now, local, remote, data, header);
            }
            let keys = sa
                .keys
                .as_ref()
                .ok_or(IkeError::UnexpectedExchange(header.exchange))?;
            let (_, inner) = crypto::unprotect(&keys.direction(!sa.initiator), data)?;
            sa.last_recv = now;
            let kind = out.kind.clone();
            sa.outstanding = None;
            match kind {
                RequestKind::IkeAuth => {
                    if header.exchange != exchange::IKE_AUTH {
                        return Err(IkeError::UnexpectedExchange(header.exchange));
                    }
                    self.initiator_auth_response(sa, now, &inner);
                }
                RequestKind::DeleteIke => sa.dead = true,
                RequestKind::DeleteChild(spi_in) => {
                    if let Some(pos) = sa.children.iter().position(|c| c.spi_in == spi_in) {
                        let c = sa.children.remove(pos);
                        self.events.push_back(Event::ChildSaDeleted {
                            conn: sa.conn,
                            spi_in: c.spi_in,
                            spi_out: c.spi_out,
                        });
                    }
                }
                RequestKind::Rekey => {
                    if header.exchange != exchange::CREATE_CHILD_SA {
                        return Err(IkeError::UnexpectedExchange(header.exchange));
                    }
                    self.rekey_response(sa, now, &inner)?;
                }
                RequestKind::Dpd | RequestKind::IkeSaInit => {}
            }
            if !sa.dead {
                self.send_queued(sa, now);
            }
            return Ok(());
        }
        // A request from the peer.
        if header.exchange == exchange::IKE_SA_INIT {
            return Err(IkeError::UnexpectedExchange(header.exchange));
        }
        if header.message_id.wrapping_add(1) == sa.peer_next_id && sa.last_request == data {
            if let Some(c) = &sa.cached_response {
                let t = wrap(sa.local_port, sa.remote, c.clone());
                self.transmits.push_back(t);
                return Ok(());
            }
        }
        if header.message_id != sa.peer_next_id {
            return Err(IkeError::UnexpectedMessageId(header.message_id));
        }
        let keys = sa
            .keys
            .as_ref()
            .ok_or(IkeError::UnexpectedExchange(header.exchange))?;
        let inner = match crypto::unprotect(&keys.direction(!sa.initiator), data) {
            Ok((_, inner)) => inner,
            Err(IkeError::Decode(DecodeError::UnsupportedCriticalPayload(t))) => {
                // Authentic but unacceptable: reject the whole message (RFC 7296 §2.5).
                sa.last_request = data.to_vec();
                let n = notify_payload(notify::UNSUPPORTED_CRITICAL_PAYLOAD, vec![t]);
                self.respond(sa, header.exchange, header.message_id, &[n])?;
                return Err(DecodeError::UnsupportedCriticalPayload(t).into());
            }
            Err(e) => return Err(e),
        };
        sa.last_recv = now;
        sa.last_request = data.to_vec();
        // Authenticated: follow the peer's address (NAT mapping, float to 4500).
        sa.remote = remote;
        sa.local_port = local.port();
        match (header.exchange, &sa.phase) {
            (exchange::IKE_AUTH, Phase::ResponderAuth) => {
                self.responder_auth(sa, now, header.message_id, &inner)
            }
            (exchange::INFORMATIONAL, Phase::Established) => {
                self.informational(sa, now, header.message_id, &inner)
            }
            (exchange::CREATE_CHILD_SA, Phase::Established) => {
                self.create_child_sa(sa, now, header.message_id, &inner)
            }
            _ => Err(IkeError::UnexpectedExchange(header.exchange)),
        }
    }

    // ------------------------------------------------------------------ IKE_SA_INIT

    fn start_initiator(&mut self, id: ConnectionId, now: Instant) {
        let Some(cfg) = self.cfg(id).cloned() else {
            return;
        };
        let group = cfg.ike_proposals[0].dh[0];
        let setup = (|| -> Result<(u64, Vec<u8>, DhPrivate), CryptoError> {
            let mut spi = crypto::random_spi64()?;
            while self.sas.contains_key(&spi) {
                spi = crypto::random_spi64()?;
            }
            Ok((
                spi,
                crypto::random_bytes(NONCE_LEN)?,
                DhPrivate::generate(group)?,
            ))
        })();
        let (spi_i, ni, dh) = match setup {
            Ok(v) => v,
            Err(e) => {
                self.conn_down(
                    id,
                    DownReason::Other(format!("cannot start IKE_SA_INIT: {e}")),
                    Some(now),
                );
                return;
            }
        };
        let mut sa = IkeSa {
            conn: id,
            initiator: true,
            spi_i,
            spi_r: 0,
            local_port: 500,
            remote: SocketAddr::new(cfg.remote_addr, 500),
            ni,
            nr: vec![],
            init_request: vec![],
            init_response: vec![],
            keys: None,
            gcm_iv: 0,
            next_out_id: 0,
            outstanding: None,
            queued: VecDeque::new(),
            peer_next_id: 0,
            cached_response: None,
            last_request: vec![],
            children: vec![],
            phase: Phase::InitiatorInit(InitiatorInit {
                dh,
                cookie: None,
                restarts: 0,
                refused: None,
            }),
            created: now,
            established_at: None,
            last_recv: now,
            nat: (false, false),
            dead: false,
            quiet: false,
            rekeyed_at: None,
            pending_rekey: None,
            ike_rekey_at: None,
            wanted_extra: None,
            extra_asked: 0,
            refused_extra: vec![],
            extra_refusal: None,
        };
        self.send_init_request(&mut sa, now, &cfg);
        if let Some(Some(c)) = self.conns.get_mut(id) {
            c.state = ConnState::Connecting;
            c.ike_sa = Some(spi_i);
            c.ike_algorithms = None;
            c.esp_algorithms = None;
        }
        self.put_back(sa);
    }

    fn send_init_request(&mut self, sa: &mut IkeSa, now: Instant, cfg: &ConnectionConfig) {
        let Phase::InitiatorInit(st) = &sa.phase else {
            return;
        };
        let mut payloads = vec![];
        if let Some(c) = &st.cookie {
            payloads.push(notify_payload(notify::COOKIE, c.clone()));
        }
        payloads.push(Payload::new(PayloadBody::Sa(proposal::ike_sa_payload(
            &cfg.ike_proposals,
        ))));
        payloads.push(Payload::new(PayloadBody::Ke(KePayload {
            group: st.dh.group().iana_id(),
            data: st.dh.public().to_vec(),
        })));
        payloads.push(Payload::new(PayloadBody::Nonce(sa.ni.clone())));
        // Deliberately wrong source hash: claims we are behind NAT, so the peer uses UDP
        // encapsulation for ESP (the gateway has no plain-ESP path), as kernel-libipsec does.
        let fake_src = crypto::random_bytes(20).unwrap_or_else(|_| vec![0xff; 20]);
        payloads.push(notify_payload(notify::NAT_DETECTION_SOURCE_IP, fake_src));
        payloads.push(notify_payload(
            notify::NAT_DETECTION_DESTINATION_IP,
            crypto::nat_hash(sa.spi_i, 0, sa.remote),
        ));
        let msg = Message {
            header: Header {
                spi_i: sa.spi_i,
                spi_r: 0,
                next_payload: 0,
                version: 0x20,
                exchange: exchange::IKE_SA_INIT,
                flags: flags::INITIATOR,
                message_id: 0,
                length: 0,
            },
            payloads,
        };
        let bytes = msg.encode();
        sa.init_request = bytes.clone();
        sa.next_out_id = 1;
        self.transmits
            .push_back(wrap(sa.local_port, sa.remote, bytes.clone()));
        sa.outstanding = Some(Outstanding {
            msg_id: 0,
            bytes,
            tries: 1,
            next_at: now + RETRANSMIT_BASE,
            kind: RequestKind::IkeSaInit,
        });
    }

    /// An unauthenticated error answered our IKE_SA_INIT: remember it and keep waiting a
    /// little for a genuine response (RFC 7296 §2.21.1); the timer ends the attempt.
    fn init_refused(sa: &mut IkeSa, reason: DownReason, now: Instant) {
        if let Phase::InitiatorInit(st) = &mut sa.phase {
            st.refused = Some(reason);
        }
        if let Some(out) = sa.outstanding.as_mut() {
            out.next_at = out.next_at.min(now + UNAUTHENTICATED_ERROR_GRACE);
        }
    }

    fn initiator_init_response(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        header: &Header,
    ) -> Result<(), IkeError> {
        let msg = Message::decode(data)?;
        let nat = nat_detect(&msg.payloads, header.spi_i, header.spi_r, local, remote);
        let cfg = self
            .cfg(sa.conn)
            .cloned()
            .ok_or(IkeError::UnknownConnection(sa.conn))?;
        let Phase::InitiatorInit(st) = &mut sa.phase else {
            return Err(IkeError::UnexpectedExchange(header.exchange));
        };
        if let Some(n) = msg.notify(notify::COOKIE) {
            if st.restarts >= 5 || n.data.is_empty() || n.data.len() > 64 {
                return Err(IkeError::InvalidPayload("COOKIE"));
            }
            st.cookie = Some(n.data.clone());
            st.restarts += 1;
            sa.outstanding = None;
            self.send_init_request(sa, now, &cfg);
            return Ok(());
        }
        if let Some(n) = msg.notify(notify::INVALID_KE_PAYLOAD) {
            let want = <[u8; 2]>::try_from(n.data.as_slice())
                .ok()
                .map(u16::from_be_bytes)
                .and_then(DhGroup::from_iana);
            let offered = want.filter(|g| {
                cfg.ike_proposals.iter().any(|p| p.dh.contains(g)) && *g != st.dh.group()
            });
            match offered {
                Some(g) if st.restarts < 5 => match DhPrivate::generate(g) {
                    Ok(dh) => {
                        st.dh = dh;
                        st.restarts += 1;
                        sa.outstanding = None;
                        self.send_init_request(sa, now, &cfg);
                    }
                    Err(e) => self.fail(
                        sa,
                        DownReason::Other(format!("key generation failed: {e}")),
                        now,
                    ),
                },
                _ => {
                    let g = n.data.clone();
                    Self::init_refused(
                        sa,
                        DownReason::Other(format!(
                            "INVALID_KE_PAYLOAD: peer requests DH group {} which we do not offer",
                            hex::encode(g)
                        )),
                        now,
                    )
                }
            }
            return Ok(());
        }
        if msg.notify(notify::NO_PROPOSAL_CHOSEN).is_some() {
            let ours = cfg
                .ike_proposals
                .iter()
                .map(|p| format!("IKE:{p}"))
                .collect();
            Self::init_refused(
                sa,
                DownReason::NoProposalChosen {
                    ours,
                    theirs: vec![],
                },
                now,
            );
            return Ok(());
        }
        if let Some(k) = first_error_notify(&msg.payloads) {
            Self::init_refused(
                sa,
                DownReason::Other(format!("peer answered IKE_SA_INIT with {}", notify_name(k))),
                now,
            );
            return Ok(());
        }
        let (sa_p, ke, nonce) = init_payloads(&msg.payloads)?;
        if header.spi_r == 0 {
            return Err(IkeError::InvalidPayload("responder SPI is zero"));
        }
        let Some(suite) = proposal::accept_ike(&cfg.ike_proposals, sa_p) else {
            Self::init_refused(
                sa,
                DownReason::Other("responder selected an IKE proposal we did not offer".into()),
                now,
            );
            return Ok(());
        };
        if suite.dh != st.dh.group() || ke.group != suite.dh.iana_id() {
            Self::init_refused(
                sa,
                DownReason::Other(
                    "responder's KE group does not match the selected proposal".into(),
                ),
                now,
            );
            return Ok(());
        }
        check_nonce(suite.prf, nonce)?;
        let shared = st.dh.agree(&ke.data)?;
        sa.spi_r = header.spi_r;
        sa.nr = nonce.clone();
        sa.init_response = data.to_vec();
        sa.nat = nat;
        sa.keys = Some(crypto::derive_ike_keys(
            suite, &shared, &sa.ni, &sa.nr, sa.spi_i, sa.spi_r,
        ));
        sa.outstanding = None;
        sa.last_recv = now;
        // Float to 4500 for IKE_AUTH (RFC 7296 §2.23); ESP always goes UDP-encapsulated.
        sa.local_port = 4500;
        sa.remote = if remote.port() == 500 {
            SocketAddr::new(remote.ip(), 4500)
        } else {
            remote
        };
        let child_spi_in = crypto::random_spi32()?;
        sa.phase = Phase::InitiatorAuth(InitiatorAuth { child_spi_in });
        let keys = sa.keys.as_ref().expect("just set");
        let idi = id_payload(&cfg.local_id);
        let auth = crypto::psk_auth(
            suite.prf,
            cfg.psk.bytes(),
            &sa.init_request,
            &sa.nr,
            &keys.sk_pi,
            &idi.rest_of_payload(),
        );
        let mut inner = vec![Payload::new(PayloadBody::IdI(idi))];
        if let Some(r) = &cfg.remote_id {
            inner.push(Payload::new(PayloadBody::IdR(id_payload(r))));
        }
        inner.push(Payload::new(PayloadBody::Auth(AuthPayload {
            method: AUTH_PSK,
            data: auth.to_vec(),
        })));
        // RFC 7296 §2.4: only when this is our only IKE SA with the peer for this connection
        // (a restart, a first contact); not while another one is up, e.g. the peer's own
        // simultaneous attempt, which the peer would otherwise tear down.
        let our_spi = sa.our_spi();
        let alone = !self.sas.iter().any(|(k, o)| {
            *k != our_spi
                && o.conn == sa.conn
                && o.remote.ip() == sa.remote.ip()
                && matches!(o.phase, Phase::Established)
        });
        if alone {
            inner.push(notify_payload(notify::INITIAL_CONTACT, vec![]));
        }
        inner.push(Payload::new(PayloadBody::Sa(proposal::esp_sa_payload(
            &cfg.esp_proposals,
            child_spi_in,
            false,
        ))));
        inner.push(Payload::new(PayloadBody::TsI(ts_payload(&cfg.local_ts))));
        inner.push(Payload::new(PayloadBody::TsR(ts_payload(&cfg.remote_ts))));
        self.send_request(sa, now, RequestKind::IkeAuth, exchange::IKE_AUTH, &inner);
        Ok(())
    }

    fn responder_init(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> Result<(), IkeError> {
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(DecodeError::UnsupportedCriticalPayload(t)) => {
                let h = Header::decode(data)?;
                let reply = Message {
                    header: Header {
                        spi_i: h.spi_i,
                        spi_r: 0,
                        next_payload: 0,
                        version: 0x20,
                        exchange: exchange::IKE_SA_INIT,
                        flags: flags::RESPONSE,
                        message_id: 0,
                        length: 0,
                    },
                    payloads: vec![notify_payload(
                        notify::UNSUPPORTED_CRITICAL_PAYLOAD,
                        vec![t],
                    )],
                };
                self.transmits
                    .push_back(wrap(local.port(), remote, reply.encode()));
                return Err(DecodeError::UnsupportedCriticalPayload(t).into());
            }
            Err(e) => return Err(e.into()),
        };
        let spi_i = msg.header.spi_i;
        if let Some(our) = self.half_open.get(&(remote, spi_i)).copied() {
            if let Some(sa) = self.sas.get(&our) {
                if sa.init_request == data {
                    let t = wrap(local.port(), remote, sa.init_response.clone());
                    self.transmits.push_back(t);
                    return Ok(());
                }
            }
            return Err(IkeError::UnexpectedMessageId(0));
        }
        let candidates = self.responder_candidates(local.ip(), remote.ip(), None);
        let first = *candidates
            .first()
            .ok_or(IkeError::NoMatchingConnection(remote.ip()))?;
        // The identity that picks the final connection only arrives in IKE_AUTH; until then
        // the first connection to this peer whose IKE proposals fit the offer answers.
        let offer = msg.payloads.iter().find_map(|p| match &p.body {
            PayloadBody::Sa(s) => Some(s),
            _ => None,
        });
        let conn = offer
            .and_then(|offer| {
                candidates.iter().copied().find(|&c| {
                    self.cfg(c).is_some_and(|cfg| {
                        proposal::select_ike(&cfg.ike_proposals, offer).is_some()
                    })
                })
            })
            .unwrap_or(first);
        if !self.admit_half_open(local, remote, spi_i, &msg)? {
            return Ok(());
        }
        let cfg = self.cfg(conn).cloned().expect("matched");
        let (sa_p, ke, nonce) = init_payloads(&msg.payloads)?;
        let plain_reply = |payloads: Vec<Payload>, spi_r: u64| {
            Message {
                header: Header {
                    spi_i,
                    spi_r,
                    next_payload: 0,
                    version: 0x20,
                    exchange: exchange::IKE_SA_INIT,
                    flags: flags::RESPONSE,
                    message_id: 0,
                    length: 0,
                },
                payloads,
            }
            .encode()
        };
        let Some((number, suite)) = proposal::select_ike(&cfg.ike_proposals, sa_p) else {
            let bytes = plain_reply(vec![notify_payload(notify::NO_PROPOSAL_CHOSEN, vec![])], 0);
            self.transmits.push_back(wrap(local.port(), remote, bytes));
            // Report it on a connection that is not up if there is one, so that a sibling's
            // failed attempt does not mark a working tunnel down.
            let report = candidates
                .iter()
                .copied()
                .find(|&c| {
                    matches!(self.conns.get(c), Some(Some(c)) if c.state != ConnState::Established)
                })
                .or(Some(first));
            if let Some(report) = report {
                let ours = self
                    .cfg(report)
                    .map(|cfg| {
                        cfg.ike_proposals
                            .iter()
                            .map(|p| format!("IKE:{p}"))
                            .collect()
                    })
                    .unwrap_or_default();
                self.attempt_failed(
                    report,
                    DownReason::NoProposalChosen {
                        ours,
                        theirs: proposal::describe(sa_p),
                    },
                    now,
                );
            }
            return Ok(());
        };
        if ke.group != suite.dh.iana_id() {
            let bytes = plain_reply(
                vec![notify_payload(
                    notify::INVALID_KE_PAYLOAD,
                    suite.dh.iana_id().to_be_bytes().to_vec(),
                )],
                0,
            );
            self.transmits.push_back(wrap(local.port(), remote, bytes));
            return Ok(());
        }
        check_nonce(suite.prf, nonce)?;
        let dh = DhPrivate::generate(suite.dh)?;
        let shared = dh.agree(&ke.data)?;
        let mut spi_r = crypto::random_spi64()?;
        while self.sas.contains_key(&spi_r) {
            spi_r = crypto::random_spi64()?;
        }
        let nr = crypto::random_bytes(NONCE_LEN)?;
        let fake_src = crypto::random_bytes(20)?;
        let payloads = vec![
            Payload::new(PayloadBody::Sa(proposal::ike_reply(number, &suite))),
            Payload::new(PayloadBody::Ke(KePayload {
                group: suite.dh.iana_id(),
                data: dh.public().to_vec(),
            })),
            Payload::new(PayloadBody::Nonce(nr.clone())),
            notify_payload(notify::NAT_DETECTION_SOURCE_IP, fake_src),
            notify_payload(
                notify::NAT_DETECTION_DESTINATION_IP,
                crypto::nat_hash(spi_i, spi_r, remote),
            ),
        ];
        let bytes = plain_reply(payloads, spi_r);
        let keys = crypto::derive_ike_keys(suite, &shared, nonce, &nr, spi_i, spi_r);
        let sa = IkeSa {
            conn,
            initiator: false,
            spi_i,
            spi_r,
            local_port: local.port(),
            remote,
            ni: nonce.clone(),
            nr,
            init_request: data.to_vec(),
            init_response: bytes.clone(),
            keys: Some(keys),
            gcm_iv: 0,
            next_out_id: 0,
            outstanding: None,
            queued: VecDeque::new(),
            peer_next_id: 1,
            cached_response: None,
            last_request: vec![],
            children: vec![],
            phase: Phase::ResponderAuth,
            created: now,
            established_at: None,
            last_recv: now,
            nat: (false, false),
            dead: false,
            quiet: false,
            rekeyed_at: None,
            pending_rekey: None,
            ike_rekey_at: None,
            wanted_extra: None,
            extra_asked: 0,
            refused_extra: vec![],
            extra_refusal: None,
        };
        self.transmits.push_back(wrap(local.port(), remote, bytes));
        self.half_open.insert((remote, spi_i), spi_r);
        let mut sa = sa;
        sa.nat = nat_detect(&msg.payloads, spi_i, 0, local, remote);
        if let Some(Some(c)) = self.conns.get_mut(conn) {
            if c.state != ConnState::Established {
                c.state = ConnState::Connecting;
            }
        }
        self.sas.insert(spi_r, sa);
        Ok(())
    }

    /// Denial-of-service defence for a new IKE_SA_INIT (RFC 7296 §2.6). Under load — many
    /// half-open SAs overall, or many from this source address — the request must echo a
    /// valid COOKIE; otherwise a COOKIE is sent back (no state kept) and `false` returned.
    /// A sender that echoes a valid cookie receives at its address, so it is admitted even
    /// when spoofers fill that address's share: the oldest half-open SA of the source (or
    /// overall, at [`MAX_HALF_OPEN`]) makes room. A spoofer therefore cannot lock out the
    /// peer whose address it uses, and state stays bounded.
    fn admit_half_open(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        spi_i: u64,
        msg: &Message,
    ) -> Result<bool, IkeError> {
        let per_source = self
            .half_open
            .keys()
            .filter(|(a, _)| a.ip() == remote.ip())
            .count();
        let loaded = per_source >= self.half_open_per_source
            || self.half_open.len() >= self.cookie_threshold.min(MAX_HALF_OPEN);
        if !loaded {
            return Ok(true);
        }
        let ni = msg
            .payloads
            .iter()
            .find_map(|p| match &p.body {
                PayloadBody::Nonce(n) => Some(n.as_slice()),
                _ => None,
            })
            .unwrap_or_default();
        let echoed = msg.payloads.first().and_then(|p| match &p.body {
            PayloadBody::Notify(n) if n.kind == notify::COOKIE => Some(n.data.as_slice()),
            _ => None,
        });
        let valid = echoed.is_some_and(|c| self.cookies.verify(c, ni, remote.ip(), spi_i));
        if !valid {
            let Some(cookie) = self.cookies.make(ni, remote.ip(), spi_i) else {
                // no secret (no randomness): refusing is all that is left
                return Err(IkeError::TooManyHalfOpen(remote.ip()));
            };
            let reply = Message {
                header: Header {
                    spi_i,
                    spi_r: 0,
                    next_payload: 0,
                    version: 0x20,
                    exchange: exchange::IKE_SA_INIT,
                    flags: flags::RESPONSE,
                    message_id: 0,
                    length: 0,
                },
                payloads: vec![notify_payload(notify::COOKIE, cookie)],
            }
            .encode();
            self.transmits.push_back(wrap(local.port(), remote, reply));
            self.cookies_sent += 1;
            return Ok(false);
        }
        if per_source >= self.half_open_per_source {
            self.evict_oldest_half_open(Some(remote.ip()));
        }
        while self.half_open.len() >= MAX_HALF_OPEN {
            if !self.evict_oldest_half_open(None) {
                break;
            }
        }
        Ok(true)
    }

    /// Drops the oldest half-open SA (of `source`, if given); whether there was one.
    fn evict_oldest_half_open(&mut self, source: Option<IpAddr>) -> bool {
        let oldest = self
            .half_open
            .iter()
            .filter(|((a, _), _)| source.is_none_or(|s| a.ip() == s))
            .filter_map(|(_, spi)| self.sas.get(spi).map(|sa| (sa.created, *spi)))
            .min();
        let Some((_, spi)) = oldest else {
            return false;
        };
        if let Some(sa) = self.sas.remove(&spi) {
            self.forget(&sa);
        }
        self.half_open.retain(|_, v| *v != spi);
        true
    }

    /// Picks the responder connection for a peer: address match first, then wildcard peers;
    /// with `id`, only connections accepting that identity.
    fn match_responder(
        &self,
        local: IpAddr,
        remote: IpAddr,
        id: Option<&Identity>,
    ) -> Option<ConnectionId> {
        self.responder_candidates(local, remote, id)
            .into_iter()
            .next()
    }

    /// Every connection that may answer this peer, best first: those naming its address, in
    /// configuration order, then those accepting any peer.
    fn responder_candidates(
        &self,
        local: IpAddr,
        remote: IpAddr,
        id: Option<&Identity>,
    ) -> Vec<ConnectionId> {
        let mut exact = Vec::new();
        let mut wildcard = Vec::new();
        for (i, c) in self.conns.iter().enumerate() {
            let Some(c) = c else { continue };
            let cfg = &c.cfg;
            if !(cfg.local_addr.is_unspecified() || cfg.local_addr == local) {
                continue;
            }
            if let (Some(want), Some(got)) = (&cfg.remote_id, id) {
                if want != got {
                    continue;
                }
            }
            if cfg.remote_addr == remote {
                exact.push(i);
            } else if cfg.remote_addr.is_unspecified() {
                wildcard.push(i);
            }
        }
        exact.extend(wildcard);
        exact
    }

    // ------------------------------------------------------------------ IKE_AUTH

    fn responder_auth(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        msg_id: u32,
        inner: &[Payload],
    ) -> Result<(), IkeError> {
        let mut idi = None;
        let mut auth = None;
        let mut esp = None;
        let mut tsi = None;
        let mut tsr = None;
        for p in inner {
            match &p.body {
                PayloadBody::IdI(x) => idi = Some(x),
                PayloadBody::Auth(x) => auth = Some(x),
                PayloadBody::Sa(x) => esp = Some(x),
                PayloadBody::TsI(x) => tsi = Some(x),
                PayloadBody::TsR(x) => tsr = Some(x),
                _ => {}
            }
        }
        let idi = idi.ok_or(IkeError::MissingPayload("IDi"))?;
        let auth = auth.ok_or(IkeError::MissingPayload("AUTH"))?;
        let peer_id = Identity::from_payload(idi.id_type, &idi.data);
        let local_ip = self
            .cfg(sa.conn)
            .map(|c| c.local_addr)
            .unwrap_or(IpAddr::from([0u8; 4]));
        // Prefer the connection chosen at IKE_SA_INIT if it accepts this identity.
        let chosen = match &peer_id {
            Some(id) => {
                let keep = self
                    .cfg(sa.conn)
                    .is_some_and(|c| c.remote_id.as_ref().is_none_or(|w| w == id));
                if keep {
                    Some(sa.conn)
                } else {
                    self.match_responder(local_ip, sa.remote.ip(), Some(id))
                        .or_else(|| {
                            self.match_responder(IpAddr::from([0u8; 4]), sa.remote.ip(), Some(id))
                        })
                }
            }
            None => None,
        };
        let keys = sa.keys.as_ref().expect("responder SA has keys");
        let prf = keys.suite.prf;
        let verified = chosen.and_then(|c| self.cfg(c)).is_some_and(|cfg| {
            let expect = crypto::psk_auth(
                prf,
                cfg.psk.bytes(),
                &sa.init_request,
                &sa.nr,
                &keys.sk_pi,
                &idi.rest_of_payload(),
            );
            auth.method == AUTH_PSK
                && constant_time::verify_slices_are_equal(&expect, &auth.data).is_ok()
        });
        if !verified {
            self.respond(
                sa,
                exchange::IKE_AUTH,
                msg_id,
                &[notify_payload(notify::AUTHENTICATION_FAILED, vec![])],
            )?;
            let why = match chosen {
                Some(c) => {
                    sa.conn = c;
                    AuthFailure::PeerAuthInvalid
                }
                None => AuthFailure::WrongIdentity,
            };
            self.fail(sa, DownReason::AuthenticationFailed(why), now);
            return Ok(());
        }
        let conn = chosen.expect("verified implies chosen");
        sa.conn = conn;
        let cfg = self.cfg(conn).cloned().expect("exists");
        let keys = sa.keys.as_ref().expect("keys");
        let suite = keys.suite;
        let idr = id_payload(&cfg.local_id);
        let our_auth = crypto::psk_auth(
            prf,
            cfg.psk.bytes(),
            &sa.init_response,
            &sa.ni,
            &keys.sk_pr,
            &idr.rest_of_payload(),
        );
        let mut reply = vec![
            Payload::new(PayloadBody::IdR(idr)),
            Payload::new(PayloadBody::Auth(AuthPayload {
                method: AUTH_PSK,
                data: our_auth.to_vec(),
            })),
        ];
        let mut child: Option<NegotiatedChild> = None;
        let mut child_fail = None;
        if let (Some(esp), Some(tsi), Some(tsr)) = (esp, tsi, tsr) {
            let peer_tsi = ts_list(tsi);
            let peer_tsr = ts_list(tsr);
            let n_tsi = narrow(&peer_tsi, &cfg.remote_ts);
            let n_tsr = narrow(&peer_tsr, &cfg.local_ts);
            match proposal::select_esp(&cfg.esp_proposals, esp) {
                None => {
                    reply.push(notify_payload(notify::NO_PROPOSAL_CHOSEN, vec![]));
                    let ours = cfg
                        .esp_proposals
                        .iter()
                        .map(|p| format!("ESP:{p}"))
                        .collect();
                    child_fail = Some(DownReason::NoProposalChosen {
                        ours,
                        theirs: proposal::describe(esp),
                    });
                }
                Some(_) if n_tsi.is_empty() || n_tsr.is_empty() => {
                    reply.push(notify_payload(notify::TS_UNACCEPTABLE, vec![]));
                    child_fail = Some(DownReason::TsUnacceptable {
                        ours: format!(
                            "local {} remote {}",
                            ts_text(&cfg.local_ts),
                            ts_text(&cfg.remote_ts)
                        ),
                        theirs: format!("TSi {} TSr {}", ts_text(&peer_tsi), ts_text(&peer_tsr)),
                    });
                }
                Some((number, csuite, spi_out)) => {
                    let spi_in = crypto::random_spi32()?;
                    reply.push(Payload::new(PayloadBody::Sa(proposal::esp_reply(
                        number, &csuite, spi_in,
                    ))));
                    reply.push(Payload::new(PayloadBody::TsI(ts_payload(&n_tsi))));
                    reply.push(Payload::new(PayloadBody::TsR(ts_payload(&n_tsr))));
                    child = Some((csuite, spi_in, spi_out, n_tsr, n_tsi));
                }
            }
        }
        let initial_contact = find_notify(inner, notify::INITIAL_CONTACT).is_some();
        self.respond(sa, exchange::IKE_AUTH, msg_id, &reply)?;
        sa.phase = Phase::Established;
        let spi_r = sa.spi_r;
        self.half_open.retain(|_, v| *v != spi_r);
        if initial_contact {
            self.drop_stale_sas(conn, sa.remote.ip(), sa.our_spi(), sa.created);
        }
        self.ike_established(sa, now, suite.name());
        if let Some((csuite, spi_in, spi_out, local_ts, remote_ts)) = child {
            let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
            self.install_child(
                sa, now, csuite, spi_in, spi_out, local_ts, remote_ts, None, &ni, &nr, false, true,
            );
            self.check_coverage(sa);
        } else if let Some(r) = child_fail {
            sa.quiet = true;
            self.conn_down(conn, r, Some(now));
        }
        Ok(())
    }

    /// INITIAL_CONTACT: the peer has no other SAs with us, so the ones that were up before
    /// this SA's IKE_SA_INIT arrived (`since`) are stale. SAs that came up while this one was
    /// negotiated are not: they are the peer's own simultaneous attempts (strongSwan restarting
    /// a connection sends INITIAL_CONTACT on each), which it still holds and uses.
    fn drop_stale_sas(&mut self, conn: ConnectionId, peer: IpAddr, keep: u64, since: Instant) {
        let stale: Vec<u64> = self
            .sas
            .iter()
            .filter(|(k, s)| {
                // Only established SAs are stale: half-open ones may belong to other
                // connections to the same peer that are being set up at this moment.
                **k != keep
                    && s.conn == conn
                    && s.remote.ip() == peer
                    && matches!(s.phase, Phase::Established)
                    && s.established_at.unwrap_or(s.created) < since
            })
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(mut s) = self.sas.remove(&k) {
                self.drop_children(&mut s);
                self.forget(&s);
            }
        }
    }

    /// Queues an INFORMATIONAL DELETE of an established IKE SA (fire and forget: the SA is
    /// gone on our side either way).
    fn send_ike_delete(&mut self, sa: &mut IkeSa) {
        if sa.keys.is_none() || !matches!(sa.phase, Phase::Established) {
            return;
        }
        let inner = vec![Payload::new(PayloadBody::Delete(DeletePayload {
            protocol: protocol::IKE,
            spi_size: 0,
            spis: vec![],
        }))];
        let id_out = sa.next_out_id;
        sa.next_out_id = sa.next_out_id.wrapping_add(1);
        if let Ok(bytes) = self.encrypt(sa, exchange::INFORMATIONAL, false, id_out, &inner) {
            self.transmits
                .push_back(wrap(sa.local_port, sa.remote, bytes));
        }
    }

    /// After the Child SAs changed: whether part of the configured selectors has no Child SA
    /// (the peer narrowed them). Sets the connection's warning and, for a connection that
    /// initiates, asks for an additional Child SA for what is left (once per remainder the
    /// peer refused, at most [`MAX_EXTRA_CHILDREN`] per IKE SA).
    fn check_coverage(&mut self, sa: &mut IkeSa) {
        let Some(cfg) = self.cfg(sa.conn).cloned() else {
            return;
        };
        let live = sa.children.iter().filter(|c| !c.replaced);
        let distinct = |v: Vec<TrafficSelector>| -> Vec<TrafficSelector> {
            let mut out: Vec<TrafficSelector> = Vec::with_capacity(v.len());
            for t in v {
                if !out.contains(&t) {
                    out.push(t);
                }
            }
            out
        };
        let cov_l = distinct(live.clone().flat_map(|c| c.local_ts.clone()).collect());
        let cov_r = distinct(live.flat_map(|c| c.remote_ts.clone()).collect());
        let rem_l = TrafficSelector::uncovered(&cfg.local_ts, &cov_l);
        let rem_r = TrafficSelector::uncovered(&cfg.remote_ts, &cov_r);
        let warning = (!rem_l.is_empty() || !rem_r.is_empty()).then(|| {
            let left: Vec<String> = [("local", &rem_l), ("remote", &rem_r)]
                .into_iter()
                .filter(|(_, r)| !r.is_empty())
                .map(|(side, r)| format!("{side} {}", ts_text(r)))
                .collect();
            format!(
                "the peer narrowed the traffic selectors: ours local {} remote {}; its Child SAs cover local {} remote {}; not tunneled: {}{}",
                ts_text(&cfg.local_ts),
                ts_text(&cfg.remote_ts),
                ts_text(&cov_l),
                ts_text(&cov_r),
                left.join(", "),
                sa.extra_refusal
                    .as_ref()
                    .map(|r| format!(" (an additional Child SA for it was refused: {r})"))
                    .unwrap_or_default()
            )
        });
        if let Some(Some(c)) = self.conns.get_mut(sa.conn) {
            c.selector_warning = warning;
        }
        if !cfg.initiate || sa.extra_asked >= MAX_EXTRA_CHILDREN {
            return;
        }
        let want = if !rem_r.is_empty() {
            (cfg.local_ts.clone(), rem_r)
        } else if !rem_l.is_empty() {
            (rem_l, cfg.remote_ts.clone())
        } else {
            return;
        };
        if !sa.refused_extra.contains(&want) {
            sa.wanted_extra = Some(want);
        }
    }

    /// Asks the peer for the additional Child SA [`Self::check_coverage`] queued.
    fn start_extra_child(&mut self, sa: &mut IkeSa, now: Instant) {
        let Some((local, remote)) = sa.wanted_extra.take() else {
            return;
        };
        let Some(cfg) = self.cfg(sa.conn).cloned() else {
            return;
        };
        type Built = (Vec<Payload>, u32, Vec<u8>, Option<DhPrivate>);
        let built = (|| -> Result<Built, CryptoError> {
            let ni = crypto::random_bytes(NONCE_LEN)?;
            let new_spi_in = crypto::random_spi32()?;
            let dh = match cfg.esp_proposals.iter().find_map(|p| p.dh.first().copied()) {
                Some(g) => Some(DhPrivate::generate(g)?),
                None => None,
            };
            let mut inner = vec![
                Payload::new(PayloadBody::Sa(proposal::esp_sa_payload(
                    &cfg.esp_proposals,
                    new_spi_in,
                    dh.is_some(),
                ))),
                Payload::new(PayloadBody::Nonce(ni.clone())),
            ];
            if let Some(d) = &dh {
                inner.push(Payload::new(PayloadBody::Ke(KePayload {
                    group: d.group().iana_id(),
                    data: d.public().to_vec(),
                })));
            }
            inner.push(Payload::new(PayloadBody::TsI(ts_payload(&local))));
            inner.push(Payload::new(PayloadBody::TsR(ts_payload(&remote))));
            Ok((inner, new_spi_in, ni, dh))
        })();
        let Ok((inner, new_spi_in, ni, dh)) = built else {
            return;
        };
        sa.extra_asked += 1;
        sa.pending_rekey = Some(PendingRekey::Child {
            old_spi_in: None,
            new_spi_in,
            ni,
            dh,
            ts: (local, remote),
            collision: None,
        });
        self.send_request(
            sa,
            now,
            RequestKind::Rekey,
            exchange::CREATE_CHILD_SA,
            &inner,
        );
    }

    fn ike_established(&mut self, sa: &mut IkeSa, now: Instant, algorithms: String) {
        sa.ike_rekey_at = self.rekey_deadline(sa.conn, now, false);
        sa.established_at = Some(now);
        if let Some(Some(c)) = self.conns.get_mut(sa.conn) {
            c.state = ConnState::Established;
            c.ike_sa = Some(sa.our_spi());
            c.nat = sa.nat;
            c.established_at = Some(now);
            c.ike_algorithms = Some(algorithms.clone());
            c.last_error = None;
            c.retry_at = None;
            c.failures = 0;
            c.selector_warning = None;
        }
        self.events.push_back(Event::IkeSaEstablished {
            conn: sa.conn,
            algorithms,
        });
    }

    #[allow(clippy::too_many_arguments)]
    /// Derives KEYMAT = prf+(SK_d, [g^ir] | Ni | Nr) and reports the Child SA. `ni`/`nr` and
    /// `we_initiated` refer to the exchange that created it (IKE_AUTH or CREATE_CHILD_SA).
    #[allow(clippy::too_many_arguments)]
    fn install_child(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        suite: ChildSuite,
        spi_in: u32,
        spi_out: u32,
        local_ts: Vec<TrafficSelector>,
        remote_ts: Vec<TrafficSelector>,
        shared: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
        we_initiated: bool,
        outbound_now: bool,
    ) {
        let keys = sa.keys.as_ref().expect("keys");
        let [ei, ai, er, ar] = crypto::child_keymat(
            keys.suite.prf,
            &keys.sk_d,
            shared,
            ni,
            nr,
            suite.encryption,
            suite.integrity,
        );
        let (enc_out, integ_out, enc_in, integ_in) = if we_initiated {
            (ei, ai, er, ar)
        } else {
            (er, ar, ei, ai)
        };
        let child = ChildSaKeys {
            spi_in,
            spi_out,
            encryption: suite.encryption,
            integrity: suite.integrity,
            enc_key_in: enc_in.to_vec(),
            enc_key_out: enc_out.to_vec(),
            integ_key_in: integ_in.to_vec(),
            integ_key_out: integ_out.to_vec(),
            local_ts,
            remote_ts,
            peer: sa.remote,
            dh_group: suite.dh,
            outbound_now,
        };
        let rekey_at = self.rekey_deadline(sa.conn, now, true);
        sa.children.push(ChildSa {
            spi_in,
            spi_out,
            local_ts: child.local_ts.clone(),
            remote_ts: child.remote_ts.clone(),
            rekey_at,
            replaced: false,
        });
        if let Some(Some(c)) = self.conns.get_mut(sa.conn) {
            c.esp_algorithms = Some(suite.name());
        }
        self.events.push_back(Event::ChildSaInstalled {
            conn: sa.conn,
            child,
        });
    }

    fn initiator_auth_response(&mut self, sa: &mut IkeSa, now: Instant, inner: &[Payload]) {
        let Some(cfg) = self.cfg(sa.conn).cloned() else {
            sa.dead = true;
            return;
        };
        if find_notify(inner, notify::AUTHENTICATION_FAILED).is_some() {
            self.fail(
                sa,
                DownReason::AuthenticationFailed(AuthFailure::RejectedByPeer),
                now,
            );
            return;
        }
        let mut idr = None;
        let mut auth = None;
        let mut esp = None;
        let mut tsi = None;
        let mut tsr = None;
        for p in inner {
            match &p.body {
                PayloadBody::IdR(x) => idr = Some(x),
                PayloadBody::Auth(x) => auth = Some(x),
                PayloadBody::Sa(x) => esp = Some(x),
                PayloadBody::TsI(x) => tsi = Some(x),
                PayloadBody::TsR(x) => tsr = Some(x),
                _ => {}
            }
        }
        let (Some(idr), Some(auth)) = (idr, auth) else {
            let why = first_error_notify(inner)
                .map_or("IKE_AUTH response without IDr/AUTH".to_string(), |k| {
                    format!("peer answered IKE_AUTH with {}", notify_name(k))
                });
            self.fail(sa, DownReason::Other(why), now);
            return;
        };
        let keys = sa.keys.as_ref().expect("keys");
        let suite = keys.suite;
        let expect = crypto::psk_auth(
            suite.prf,
            cfg.psk.bytes(),
            &sa.init_response,
            &sa.ni,
            &keys.sk_pr,
            &idr.rest_of_payload(),
        );
        let id_ok = cfg.remote_id.as_ref().is_none_or(|want| {
            Identity::from_payload(idr.id_type, &idr.data).as_ref() == Some(want)
        });
        let auth_ok = auth.method == AUTH_PSK
            && constant_time::verify_slices_are_equal(&expect, &auth.data).is_ok();
        if !(id_ok && auth_ok) {
            // Tell the peer (RFC 7296 §2.21.2), then forget the SA.
            let id_out = sa.next_out_id;
            sa.next_out_id = sa.next_out_id.wrapping_add(1);
            if let Ok(b) = self.encrypt(
                sa,
                exchange::INFORMATIONAL,
                false,
                id_out,
                &[notify_payload(notify::AUTHENTICATION_FAILED, vec![])],
            ) {
                self.transmits.push_back(wrap(sa.local_port, sa.remote, b));
            }
            let why = if id_ok {
                AuthFailure::PeerAuthInvalid
            } else {
                AuthFailure::WrongIdentity
            };
            self.fail(sa, DownReason::AuthenticationFailed(why), now);
            return;
        }
        let Phase::InitiatorAuth(st) = &sa.phase else {
            return;
        };
        let spi_in = st.child_spi_in;
        sa.phase = Phase::Established;
        self.ike_established(sa, now, suite.name());
        let ours_ts = format!(
            "local {} remote {}",
            ts_text(&cfg.local_ts),
            ts_text(&cfg.remote_ts)
        );
        let failure = if find_notify(inner, notify::NO_PROPOSAL_CHOSEN).is_some() {
            Some(DownReason::NoProposalChosen {
                ours: cfg
                    .esp_proposals
                    .iter()
                    .map(|p| format!("ESP:{p}"))
                    .collect(),
                theirs: vec![],
            })
        } else if find_notify(inner, notify::TS_UNACCEPTABLE).is_some() {
            Some(DownReason::TsUnacceptable {
                ours: ours_ts.clone(),
                theirs: "not disclosed (the responder only answers TS_UNACCEPTABLE)".into(),
            })
        } else if let Some(k) = first_error_notify(inner) {
            Some(DownReason::Other(format!(
                "peer refused the Child SA: {}",
                notify_name(k)
            )))
        } else {
            match (esp, tsi, tsr) {
                (Some(esp), Some(tsi), Some(tsr)) => {
                    match proposal::accept_esp(&cfg.esp_proposals, esp) {
                        None => Some(DownReason::Other(
                            "responder selected an ESP proposal we did not offer".into(),
                        )),
                        Some((csuite, spi_out)) => {
                            let l = ts_list(tsi);
                            let r = ts_list(tsr);
                            let inside = |got: &[TrafficSelector], ours: &[TrafficSelector]| {
                                !got.is_empty()
                                    && got.iter().all(|g| ours.iter().any(|o| o.covers(g)))
                            };
                            if inside(&l, &cfg.local_ts) && inside(&r, &cfg.remote_ts) {
                                let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
                                self.install_child(
                                    sa, now, csuite, spi_in, spi_out, l, r, None, &ni, &nr, true,
                                    true,
                                );
                                self.check_coverage(sa);
                                None
                            } else {
                                Some(DownReason::TsUnacceptable {
                                    ours: ours_ts,
                                    theirs: format!(
                                        "TSi {} TSr {} (wider than proposed)",
                                        ts_text(&l),
                                        ts_text(&r)
                                    ),
                                })
                            }
                        }
                    }
                }
                _ => Some(DownReason::Other(
                    "IKE_AUTH response lacks the Child SA payloads".into(),
                )),
            }
        };
        if let Some(reason) = failure {
            // No usable Child SA: report and close the IKE SA.
            self.conn_down(sa.conn, reason, Some(now));
            sa.quiet = true;
            self.send_request(
                sa,
                now,
                RequestKind::DeleteIke,
                exchange::INFORMATIONAL,
                &Self::request_body(&RequestKind::DeleteIke).1,
            );
        }
    }

    // ------------------------------------------------------------------ rekeying (our side)

    /// Soft-lifetime deadline: 85-95 % of the configured lifetime (jitter avoids both sides of a
    /// many-tunnel gateway rekeying in lock step). Only the initiating side rekeys by time, so two
    /// hybridnet peers never collide (RFC 7296 §2.8.1); a responder answers the peer's rekeys.
    fn rekey_deadline(&self, conn: ConnectionId, now: Instant, child: bool) -> Option<Instant> {
        let cfg = self.cfg(conn)?;
        if !cfg.initiate {
            return None;
        }
        let life = if child {
            cfg.child_lifetime
        } else {
            cfg.ike_lifetime
        };
        if life.is_zero() {
            return None;
        }
        let jitter = crypto::random_bytes(1)
            .map(|b| u32::from(b[0]) % 11)
            .unwrap_or(5);
        Some(now + life * (85 + jitter) / 100)
    }

    fn next_rekey(&self, sa: &IkeSa) -> Option<Instant> {
        if sa.pending_rekey.is_some() || sa.rekeyed_at.is_some() {
            return None;
        }
        let ike = sa.ike_rekey_at;
        let child = sa.children.iter().filter_map(|c| c.rekey_at).min();
        match (ike, child) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Starts the earliest due rekey: the IKE SA first, otherwise the oldest Child SA.
    fn start_rekey(&mut self, sa: &mut IkeSa, now: Instant) {
        let Some(cfg) = self.cfg(sa.conn).cloned() else {
            return;
        };
        let Some(keys) = sa.keys.as_ref() else { return };
        let ike_due = sa.ike_rekey_at.is_some_and(|t| t <= now);
        let built = (|| -> Result<(Vec<Payload>, PendingRekey), CryptoError> {
            let ni = crypto::random_bytes(NONCE_LEN)?;
            if ike_due {
                let mut new_spi = crypto::random_spi64()?;
                while self.sas.contains_key(&new_spi) {
                    new_spi = crypto::random_spi64()?;
                }
                let dh = DhPrivate::generate(keys.suite.dh)?;
                let mut sa_p = proposal::ike_sa_payload(&cfg.ike_proposals);
                for p in &mut sa_p.proposals {
                    p.spi = new_spi.to_be_bytes().to_vec();
                }
                let inner = vec![
                    Payload::new(PayloadBody::Sa(sa_p)),
                    Payload::new(PayloadBody::Nonce(ni.clone())),
                    Payload::new(PayloadBody::Ke(KePayload {
                        group: dh.group().iana_id(),
                        data: dh.public().to_vec(),
                    })),
                ];
                return Ok((inner, PendingRekey::Ike { new_spi, ni, dh }));
            }
            let child = sa
                .children
                .iter()
                .filter(|c| c.rekey_at.is_some() && !c.replaced)
                .min_by_key(|c| c.rekey_at)
                .ok_or(CryptoError::KeyGeneration)?;
            let new_spi_in = crypto::random_spi32()?;
            let pfs = cfg.esp_proposals.iter().find_map(|p| p.dh.first().copied());
            let dh = match pfs {
                Some(g) => Some(DhPrivate::generate(g)?),
                None => None,
            };
            let mut inner = vec![
                Payload::new(PayloadBody::Notify(NotifyPayload {
                    protocol: protocol::ESP,
                    spi: child.spi_in.to_be_bytes().to_vec(),
                    kind: notify::REKEY_SA,
                    data: vec![],
                })),
                Payload::new(PayloadBody::Sa(proposal::esp_sa_payload(
                    &cfg.esp_proposals,
                    new_spi_in,
                    dh.is_some(),
                ))),
                Payload::new(PayloadBody::Nonce(ni.clone())),
            ];
            if let Some(d) = &dh {
                inner.push(Payload::new(PayloadBody::Ke(KePayload {
                    group: d.group().iana_id(),
                    data: d.public().to_vec(),
                })));
            }
            inner.push(Payload::new(PayloadBody::TsI(ts_payload(&child.local_ts))));
            inner.push(Payload::new(PayloadBody::TsR(ts_payload(&child.remote_ts))));
            Ok((
                inner,
                PendingRekey::Child {
                    old_spi_in: Some(child.spi_in),
                    new_spi_in,
                    ni,
                    dh,
                    ts: (child.local_ts.clone(), child.remote_ts.clone()),
                    collision: None,
                },
            ))
        })();
        match built {
            Ok((inner, pending)) => {
                if let PendingRekey::Child { old_spi_in, .. } = &pending {
                    if let Some(c) = sa
                        .children
                        .iter_mut()
                        .find(|c| Some(c.spi_in) == *old_spi_in)
                    {
                        c.rekey_at = None;
                    }
                } else {
                    sa.ike_rekey_at = None;
                }
                sa.pending_rekey = Some(pending);
                self.send_request(
                    sa,
                    now,
                    RequestKind::Rekey,
                    exchange::CREATE_CHILD_SA,
                    &inner,
                );
            }
            Err(_) => {
                // Nothing to rekey (or no randomness): try again later.
                sa.ike_rekey_at = sa.ike_rekey_at.map(|_| now + Duration::from_secs(30));
            }
        }
    }

    fn rekey_response(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        inner: &[Payload],
    ) -> Result<(), IkeError> {
        let Some(pending) = sa.pending_rekey.take() else {
            return Ok(());
        };
        let cfg = self
            .cfg(sa.conn)
            .cloned()
            .ok_or(IkeError::UnknownConnection(sa.conn))?;
        let (mut sa_p, mut nonce, mut ke, mut tsi, mut tsr) = (None, None, None, None, None);
        for p in inner {
            match &p.body {
                PayloadBody::Sa(x) => sa_p = Some(x),
                PayloadBody::Nonce(x) => nonce = Some(x),
                PayloadBody::Ke(x) => ke = Some(x),
                PayloadBody::TsI(x) => tsi = Some(x),
                PayloadBody::TsR(x) => tsr = Some(x),
                _ => {}
            }
        }
        let retry = now + Duration::from_secs(30);
        let prf = sa.keys.as_ref().map(|k| k.suite.prf);
        let nonce_fits = |n: &[u8]| -> Option<()> {
            ((16..=256).contains(&n.len()) && prf.is_none_or(|p| check_nonce(p, n).is_ok()))
                .then_some(())
        };
        match pending {
            PendingRekey::Child {
                old_spi_in,
                new_spi_in,
                ni,
                dh,
                ts,
                collision,
            } => {
                let ok = (|| {
                    let (sa_p, nr, tsi, tsr) = (sa_p?, nonce?, tsi?, tsr?);
                    nonce_fits(nr)?;
                    let (suite, spi_out) = proposal::accept_esp(&cfg.esp_proposals, sa_p)?;
                    let shared = match &dh {
                        Some(d) => {
                            let k = ke?;
                            let chosen = sa_p.proposals[0]
                                .transforms
                                .iter()
                                .find(|t| t.kind == crate::codec::transform_type::DH)
                                .map(|t| t.id);
                            if k.group != d.group().iana_id() || chosen != Some(d.group().iana_id())
                            {
                                return None;
                            }
                            Some(d.agree(&k.data).ok()?)
                        }
                        None => None,
                    };
                    Some((
                        ChildSuite {
                            dh: dh.as_ref().map(|d| d.group()),
                            ..suite
                        },
                        spi_out,
                        nr.clone(),
                        shared,
                        ts_list(tsi),
                        ts_list(tsr),
                    ))
                })();
                match (ok, old_spi_in) {
                    (Some((suite, spi_out, nr, shared, l, r)), old) => {
                        self.install_child(
                            sa,
                            now,
                            suite,
                            new_spi_in,
                            spi_out,
                            l,
                            r,
                            shared.as_deref().map(|s| &s[..]),
                            &ni,
                            &nr,
                            true,
                            true,
                        );
                        let Some(old) = old else {
                            self.check_coverage(sa);
                            return Ok(());
                        };
                        if let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == old) {
                            c.replaced = true;
                            c.rekey_at = None;
                        }
                        // RFC 7296 §2.8.1: of two simultaneous rekeys, the exchange holding
                        // the lowest of the four nonces made the redundant SA; whoever
                        // started that exchange deletes what it made, and the other side
                        // deletes the old SA.
                        let doomed = match collision {
                            Some(c) => {
                                let ours = ni.as_slice().min(nr.as_slice());
                                let theirs = c.nonces.0.as_slice().min(c.nonces.1.as_slice());
                                if ours < theirs {
                                    new_spi_in
                                } else {
                                    old
                                }
                            }
                            None => old,
                        };
                        let (exch, body) = Self::request_body(&RequestKind::DeleteChild(doomed));
                        self.send_request(sa, now, RequestKind::DeleteChild(doomed), exch, &body);
                    }
                    (None, Some(old)) => {
                        if let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == old) {
                            if collision.is_some() {
                                // the peer's simultaneous rekey of it went through instead
                                c.replaced = true;
                            } else if !c.replaced {
                                c.rekey_at = Some(retry);
                            }
                        }
                    }
                    (None, None) => {
                        let why = first_error_notify(inner)
                            .map_or("the answer was not acceptable".to_string(), notify_name);
                        sa.refused_extra.push(ts);
                        sa.extra_refusal = Some(why);
                        self.check_coverage(sa);
                    }
                }
            }
            PendingRekey::Ike { new_spi, ni, dh } => {
                let ok = (|| {
                    let (sa_p, nr, k) = (sa_p?, nonce?, ke?);
                    nonce_fits(nr)?;
                    let suite = proposal::accept_ike(&cfg.ike_proposals, sa_p)?;
                    let peer_spi = u64::from_be_bytes(
                        <[u8; 8]>::try_from(sa_p.proposals[0].spi.as_slice()).ok()?,
                    );
                    if suite.dh != dh.group() || k.group != suite.dh.iana_id() {
                        return None;
                    }
                    let shared = dh.agree(&k.data).ok()?;
                    Some((suite, peer_spi, nr.clone(), shared))
                })();
                let Some((suite, peer_spi, nr, shared)) = ok else {
                    sa.ike_rekey_at = Some(retry);
                    return Ok(());
                };
                let old = sa.keys.as_ref().expect("established SA has keys");
                let keys = crypto::derive_rekeyed_ike_keys(
                    old.suite.prf,
                    &old.sk_d,
                    suite,
                    &shared,
                    &ni,
                    &nr,
                    new_spi,
                    peer_spi,
                );
                let new = IkeSa::successor(
                    sa,
                    true,
                    (new_spi, peer_spi),
                    (ni, nr),
                    keys,
                    now,
                    self.rekey_deadline(sa.conn, now, false),
                );
                let mut new = new;
                let collided = sa.rekeyed_at.is_some();
                sa.rekeyed_at = Some(now);
                sa.queued.clear();
                if collided {
                    // The peer rekeyed this IKE SA at the same time (RFC 7296 §2.8.2).
                    self.resolve_ike_rekey_collision(new, now);
                } else {
                    if let Some(Some(c)) = self.conns.get_mut(sa.conn) {
                        c.ike_sa = Some(new_spi);
                        c.ike_algorithms = Some(suite.name());
                    }
                    new.quiet = false;
                    self.sas.insert(new_spi, new);
                }
                let (exch, body) = Self::request_body(&RequestKind::DeleteIke);
                self.send_request(sa, now, RequestKind::DeleteIke, exch, &body);
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ CREATE_CHILD_SA

    /// Peer-initiated CREATE_CHILD_SA: a new or rekeyed Child SA (with optional PFS), or an
    /// IKE SA rekey (RFC 7296 §1.3, §2.8, §2.17, §2.18).
    fn create_child_sa(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        msg_id: u32,
        inner: &[Payload],
    ) -> Result<(), IkeError> {
        let cfg = self
            .cfg(sa.conn)
            .cloned()
            .ok_or(IkeError::UnknownConnection(sa.conn))?;
        let (mut sa_p, mut nonce, mut ke, mut tsi, mut tsr) = (None, None, None, None, None);
        for p in inner {
            match &p.body {
                PayloadBody::Sa(x) => sa_p = Some(x),
                PayloadBody::Nonce(x) => nonce = Some(x),
                PayloadBody::Ke(x) => ke = Some(x),
                PayloadBody::TsI(x) => tsi = Some(x),
                PayloadBody::TsR(x) => tsr = Some(x),
                _ => {}
            }
        }
        let (Some(sa_p), Some(ni)) = (sa_p, nonce) else {
            return self.respond(
                sa,
                exchange::CREATE_CHILD_SA,
                msg_id,
                &[notify_payload(notify::INVALID_SYNTAX, vec![])],
            );
        };
        let prf = sa.keys.as_ref().map(|k| k.suite.prf);
        if !(16..=256).contains(&ni.len()) || prf.is_some_and(|p| check_nonce(p, ni).is_err()) {
            return self.respond(
                sa,
                exchange::CREATE_CHILD_SA,
                msg_id,
                &[notify_payload(notify::INVALID_SYNTAX, vec![])],
            );
        }
        if sa_p
            .proposals
            .first()
            .is_some_and(|p| p.protocol == protocol::IKE)
        {
            return self.rekey_ike_responder(sa, now, msg_id, &cfg, sa_p, ni, ke);
        }
        let (Some(tsi), Some(tsr)) = (tsi, tsr) else {
            return self.respond(
                sa,
                exchange::CREATE_CHILD_SA,
                msg_id,
                &[notify_payload(notify::INVALID_SYNTAX, vec![])],
            );
        };
        // A rekey names the Child SA by the SPI we send on (RFC 7296 §1.3.3).
        let rekey_of = inner.iter().find_map(|p| match &p.body {
            PayloadBody::Notify(n) if n.kind == notify::REKEY_SA => Some(
                <[u8; 4]>::try_from(n.spi.as_slice())
                    .ok()
                    .map(u32::from_be_bytes),
            ),
            _ => None,
        });
        let old_in = match rekey_of {
            None => None,
            Some(spi) => match sa.children.iter().find(|c| Some(c.spi_out) == spi) {
                // RFC 7296 §2.25: a Child SA we do not have (any more)
                None => {
                    return self.respond(
                        sa,
                        exchange::CREATE_CHILD_SA,
                        msg_id,
                        &[notify_payload(notify::CHILD_SA_NOT_FOUND, vec![])],
                    )
                }
                // already replaced by a rekey (it only waits for its DELETE)
                Some(c) if c.replaced => {
                    return self.respond(
                        sa,
                        exchange::CREATE_CHILD_SA,
                        msg_id,
                        &[notify_payload(notify::TEMPORARY_FAILURE, vec![])],
                    )
                }
                Some(c) => Some(c.spi_in),
            },
        };
        let Some((number, suite, spi_out)) =
            proposal::select_esp_pfs(&cfg.esp_proposals, sa_p, ke.is_some())
        else {
            return self.respond(
                sa,
                exchange::CREATE_CHILD_SA,
                msg_id,
                &[notify_payload(notify::NO_PROPOSAL_CHOSEN, vec![])],
            );
        };
        let dh = match (ke, suite.dh) {
            (Some(k), Some(g)) if k.group == g.iana_id() => Some((DhPrivate::generate(g)?, k)),
            (Some(_), Some(g)) => {
                return self.respond(
                    sa,
                    exchange::CREATE_CHILD_SA,
                    msg_id,
                    &[notify_payload(
                        notify::INVALID_KE_PAYLOAD,
                        g.iana_id().to_be_bytes().to_vec(),
                    )],
                );
            }
            _ => None,
        };
        let n_tsi = narrow(&ts_list(tsi), &cfg.remote_ts);
        let n_tsr = narrow(&ts_list(tsr), &cfg.local_ts);
        if n_tsi.is_empty() || n_tsr.is_empty() {
            return self.respond(
                sa,
                exchange::CREATE_CHILD_SA,
                msg_id,
                &[notify_payload(notify::TS_UNACCEPTABLE, vec![])],
            );
        }
        let shared = match &dh {
            Some((d, k)) => Some(d.agree(&k.data)?),
            None => None,
        };
        let nr = crypto::random_bytes(NONCE_LEN)?;
        let spi_in = crypto::random_spi32()?;
        let mut reply = vec![
            Payload::new(PayloadBody::Sa(proposal::esp_reply(number, &suite, spi_in))),
            Payload::new(PayloadBody::Nonce(nr.clone())),
        ];
        if let Some((d, _)) = &dh {
            reply.push(Payload::new(PayloadBody::Ke(KePayload {
                group: d.group().iana_id(),
                data: d.public().to_vec(),
            })));
        }
        reply.push(Payload::new(PayloadBody::TsI(ts_payload(&n_tsi))));
        reply.push(Payload::new(PayloadBody::TsR(ts_payload(&n_tsr))));
        self.respond(sa, exchange::CREATE_CHILD_SA, msg_id, &reply)?;
        let ni = ni.clone();
        // a rekey we answered: the peer may not have the new SA until our answer arrives
        let rekeys_one_of_ours = old_in.is_some();
        if let Some(old) = old_in {
            match &mut sa.pending_rekey {
                // we are rekeying the same Child SA right now (RFC 7296 §2.8.1): both
                // exchanges complete; our answer's arrival settles which SA stays
                Some(PendingRekey::Child {
                    old_spi_in: Some(o),
                    collision,
                    ..
                }) if *o == old => {
                    *collision = Some(Collision {
                        nonces: (ni.clone(), nr.clone()),
                    });
                }
                _ => {
                    if let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == old) {
                        c.replaced = true;
                        c.rekey_at = None;
                    }
                }
            }
        }
        self.install_child(
            sa,
            now,
            suite,
            spi_in,
            spi_out,
            n_tsr,
            n_tsi,
            shared.as_deref().map(|s| &s[..]),
            &ni,
            &nr,
            false,
            !rekeys_one_of_ours,
        );
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn rekey_ike_responder(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        msg_id: u32,
        cfg: &ConnectionConfig,
        sa_p: &crate::codec::SaPayload,
        ni: &[u8],
        ke: Option<&KePayload>,
    ) -> Result<(), IkeError> {
        let Some((number, suite)) = proposal::select_ike(&cfg.ike_proposals, sa_p) else {
            return self.respond(
                sa,
                exchange::CREATE_CHILD_SA,
                msg_id,
                &[notify_payload(notify::NO_PROPOSAL_CHOSEN, vec![])],
            );
        };
        let chosen = sa_p
            .proposals
            .iter()
            .find(|p| p.number == number)
            .expect("selected from these");
        let Ok(peer_spi) = <[u8; 8]>::try_from(chosen.spi.as_slice()).map(u64::from_be_bytes)
        else {
            return self.respond(
                sa,
                exchange::CREATE_CHILD_SA,
                msg_id,
                &[notify_payload(notify::INVALID_SYNTAX, vec![])],
            );
        };
        let ke = match ke {
            Some(k) if k.group == suite.dh.iana_id() => k,
            _ => {
                return self.respond(
                    sa,
                    exchange::CREATE_CHILD_SA,
                    msg_id,
                    &[notify_payload(
                        notify::INVALID_KE_PAYLOAD,
                        suite.dh.iana_id().to_be_bytes().to_vec(),
                    )],
                );
            }
        };
        let dh = DhPrivate::generate(suite.dh)?;
        let shared = dh.agree(&ke.data)?;
        let nr = crypto::random_bytes(NONCE_LEN)?;
        let mut our_spi = crypto::random_spi64()?;
        while self.sas.contains_key(&our_spi) || our_spi == sa.our_spi() {
            our_spi = crypto::random_spi64()?;
        }
        let reply = vec![
            Payload::new(PayloadBody::Sa(proposal::ike_rekey_reply(
                number, &suite, our_spi,
            ))),
            Payload::new(PayloadBody::Nonce(nr.clone())),
            Payload::new(PayloadBody::Ke(KePayload {
                group: suite.dh.iana_id(),
                data: dh.public().to_vec(),
            })),
        ];
        self.respond(sa, exchange::CREATE_CHILD_SA, msg_id, &reply)?;
        let old = sa.keys.as_ref().expect("established SA has keys");
        let keys = crypto::derive_rekeyed_ike_keys(
            old.suite.prf,
            &old.sk_d,
            suite,
            &shared,
            ni,
            &nr,
            peer_spi,
            our_spi,
        );
        // The requester is the original initiator of the new IKE SA; Child SAs move over.
        let new = IkeSa::successor(
            sa,
            false,
            (peer_spi, our_spi),
            (ni.to_vec(), nr),
            keys,
            now,
            None,
        );
        let collided = sa.rekeyed_at.is_some();
        sa.rekeyed_at = Some(now);
        if collided {
            self.resolve_ike_rekey_collision(new, now);
        } else {
            sa.queued.clear();
            if let Some(Some(c)) = self.conns.get_mut(sa.conn) {
                c.ike_sa = Some(our_spi);
                c.ike_algorithms = Some(suite.name());
            }
            self.sas.insert(our_spi, new);
        }
        Ok(())
    }

    /// Both sides rekeyed the same IKE SA: of the two new SAs, the one created by the exchange
    /// holding the lowest of the four nonces is deleted by whoever initiated that exchange
    /// (RFC 7296 §2.8.2). `late` is the new SA finished second; its sibling is the connection's
    /// current IKE SA. Child SAs end up on the survivor.
    fn resolve_ike_rekey_collision(&mut self, late: IkeSa, now: Instant) {
        let Some(early_spi) = self
            .conns
            .get(late.conn)
            .and_then(|c| c.as_ref())
            .and_then(|c| c.ike_sa)
        else {
            self.sas.insert(late.our_spi(), late);
            return;
        };
        let Some(early) = self.sas.remove(&early_spi) else {
            self.sas.insert(late.our_spi(), late);
            return;
        };
        let lowest = [&late.ni, &late.nr, &early.ni, &early.nr]
            .into_iter()
            .min()
            .expect("four nonces")
            .clone();
        let late_loses = lowest == late.ni || lowest == late.nr;
        let (mut loser, mut winner) = if late_loses {
            (late, early)
        } else {
            (early, late)
        };
        winner.children.append(&mut loser.children);
        if let Some(Some(c)) = self.conns.get_mut(winner.conn) {
            c.ike_sa = Some(winner.our_spi());
            c.ike_algorithms = winner.keys.as_ref().map(|k| k.suite.name());
        }
        // Only the initiator of the losing exchange deletes it; otherwise the peer will.
        loser.quiet = true;
        if loser.initiator {
            let (exch, body) = Self::request_body(&RequestKind::DeleteIke);
            self.send_request(&mut loser, now, RequestKind::DeleteIke, exch, &body);
        }
        self.sas.insert(winner.our_spi(), winner);
        self.sas.insert(loser.our_spi(), loser);
    }

    /// Starts a rekey of the connection's IKE SA (`ike`) or its oldest Child SA at the next
    /// `handle_timeout`, regardless of lifetimes (operator command, tests).
    pub fn rekey_now(&mut self, id: ConnectionId, ike: bool, now: Instant) {
        let Some(spi) = self
            .conns
            .get(id)
            .and_then(|c| c.as_ref())
            .and_then(|c| c.ike_sa)
        else {
            return;
        };
        if let Some(sa) = self.sas.get_mut(&spi) {
            if ike {
                sa.ike_rekey_at = Some(now);
            } else if let Some(c) = sa.children.iter_mut().find(|c| !c.replaced) {
                c.rekey_at = Some(now);
            }
        }
    }

    /// Starts a rekey of one Child SA (by our inbound SPI) at the next `handle_timeout`,
    /// whichever side we are: the data path asks for it when the SA's sequence numbers or
    /// bytes run low, which only it can see. Returns whether the Child SA exists.
    pub fn rekey_child(&mut self, id: ConnectionId, spi_in: u32, now: Instant) -> bool {
        let Some(spi) = self
            .conns
            .get(id)
            .and_then(|c| c.as_ref())
            .and_then(|c| c.ike_sa)
        else {
            return false;
        };
        let Some(child) = self.sas.get_mut(&spi).and_then(|sa| {
            sa.children
                .iter_mut()
                .find(|c| c.spi_in == spi_in && !c.replaced)
        }) else {
            return false;
        };
        child.rekey_at = Some(now);
        true
    }

    // ------------------------------------------------------------------ INFORMATIONAL

    fn informational(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        msg_id: u32,
        inner: &[Payload],
    ) -> Result<(), IkeError> {
        let mut reply = vec![];
        let mut delete_ike = false;
        let mut auth_failed = false;
        for p in inner {
            match &p.body {
                PayloadBody::Delete(d) if d.protocol == protocol::IKE => delete_ike = true,
                PayloadBody::Delete(d) if d.protocol == protocol::ESP => {
                    let mut ours = vec![];
                    for s in &d.spis {
                        let Ok(b) = <[u8; 4]>::try_from(s.as_slice()) else {
                            continue;
                        };
                        let spi = u32::from_be_bytes(b);
                        if let Some(pos) = sa.children.iter().position(|c| c.spi_out == spi) {
                            let c = sa.children.remove(pos);
                            ours.push(c.spi_in.to_be_bytes().to_vec());
                            self.events.push_back(Event::ChildSaDeleted {
                                conn: sa.conn,
                                spi_in: c.spi_in,
                                spi_out: c.spi_out,
                            });
                        }
                    }
                    if !ours.is_empty() {
                        reply.push(Payload::new(PayloadBody::Delete(DeletePayload {
                            protocol: protocol::ESP,
                            spi_size: 4,
                            spis: ours,
                        })));
                    }
                }
                PayloadBody::Notify(n) if n.kind == notify::AUTHENTICATION_FAILED => {
                    auth_failed = true
                }
                _ => {}
            }
        }
        if delete_ike {
            reply.clear();
        }
        self.respond(sa, exchange::INFORMATIONAL, msg_id, &reply)?;
        if auth_failed {
            self.fail(
                sa,
                DownReason::AuthenticationFailed(AuthFailure::RejectedByPeer),
                now,
            );
        } else if delete_ike {
            self.fail(sa, DownReason::DeletedByPeer, now);
        }
        Ok(())
    }
}

/// The wait before attempt `failures + 1`: [`RETRY_BASE`] doubled per earlier failure, at
/// most `max`, with ±20 % jitter.
fn retry_delay(failures: u32, max: Duration) -> Duration {
    let base = RETRY_BASE
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(max.max(RETRY_BASE));
    let jitter = crypto::random_bytes(1).map_or(20, |b| u32::from(b[0]) % 41);
    base * (80 + jitter) / 100
}

/// RFC 7296 §2.10: a nonce is at least half the PRF's key size (and at least 16 octets,
/// which [`init_payloads`] checks along with the upper bound).
fn check_nonce(prf: crate::config::Prf, nonce: &[u8]) -> Result<(), IkeError> {
    if nonce.len() < prf.output_len() / 2 {
        return Err(IkeError::InvalidPayload(
            "nonce shorter than half the PRF key size (RFC 7296 §2.10)",
        ));
    }
    Ok(())
}

/// The SA, KE and Nonce payloads every IKE_SA_INIT message carries, in either direction.
fn init_payloads(
    payloads: &[Payload],
) -> Result<(&crate::codec::SaPayload, &KePayload, &Vec<u8>), IkeError> {
    let (mut sa, mut ke, mut nonce) = (None, None, None);
    for p in payloads {
        match &p.body {
            PayloadBody::Sa(s) => sa = Some(s),
            PayloadBody::Ke(k) => ke = Some(k),
            PayloadBody::Nonce(n) => nonce = Some(n),
            _ => {}
        }
    }
    let sa = sa.ok_or(IkeError::MissingPayload("SA"))?;
    let ke = ke.ok_or(IkeError::MissingPayload("KE"))?;
    let nonce = nonce.ok_or(IkeError::MissingPayload("Nonce"))?;
    if !(16..=256).contains(&nonce.len()) {
        return Err(IkeError::InvalidPayload("nonce length"));
    }
    Ok((sa, ke, nonce))
}
