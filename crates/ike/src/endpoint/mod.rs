//! The IKEv2 endpoint: owns every IKE SA of every configured connection, dispatches incoming
//! datagrams by SPI, runs the IKE_SA_INIT / IKE_AUTH / INFORMATIONAL exchanges as initiator and
//! responder, and reports results as events. Sans-IO: the caller moves datagrams and time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::constant_time;

use crate::codec::{
    exchange, find_notify, flags, notify, protocol, AuthPayload, DeletePayload, ExchangeType,
    Header, IdPayload, KePayload, Message, NotifyPayload, NotifyType, Payload, PayloadBody,
    ProtocolId, TsEntry, TsPayload,
};
use crate::config::{
    ConnectionConfig, DhGroup, DownAction, Encryption, Identity, Integrity, TrafficSelector,
};
use crate::cookie::CookieJar;
use crate::crypto::{self, DhPrivate, IkeKeys};
use crate::error::{CryptoError, DecodeError, IkeError};
use crate::proposal::{self, ChildSuite};
use crate::rng::{Random, Rng, SystemRandom};

mod auth;
mod child;
mod connections;
mod dispatch;
mod dos;
mod events;
mod ike_rekey;
mod informational;
mod init;
mod peer_index;
mod state;
mod table;
mod transport;
mod view;
mod wire;

use dos::HalfOpen;
pub use events::{AuthFailure, ChildSaKeys, ConnectionStatus, DownReason, Event, Transmit};
use peer_index::PeerIndex;
use state::*;
use table::SaTable;
use view::MessageView;
use wire::*;

/// Handle for a configured connection, returned by [`Endpoint::add_connection`] and carried by
/// every [`Event`] and [`ConnectionStatus`] about it.
///
/// A type of its own rather than a bare `usize`, so that an IKE endpoint's handle cannot be
/// confused with an index the caller keeps for itself (the gateway's position of a connection
/// in its configuration): the compiler rejects one where the other is meant. Only
/// [`Endpoint::add_connection`] makes one, and an endpoint never hands out the same one twice
/// (not even after [`Endpoint::remove_connection`]); `Display` shows the number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u32);

impl ConnectionId {
    /// The handle of the connection stored at `index` in the endpoint's table.
    fn from_index(index: usize) -> Self {
        // Every connection takes hundreds of bytes of configuration and state: 2^32 of them
        // would need terabytes, so the table runs out of memory before it outgrows a u32.
        ConnectionId(u32::try_from(index).expect("fewer than 2^32 connections"))
    }

    /// Position of the connection in the endpoint's table.
    fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

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
/// Additional Child SAs asked for per IKE SA when the peer narrowed the selectors (with one
/// Child SA per selector pair: on top of one for each pair, for pairs whose Child SA the peer
/// deleted).
const MAX_EXTRA_CHILDREN: u32 = 16;
/// With one Child SA per selector pair, on an IKE SA the peer started: how long the peer gets
/// to set up the remaining pairs itself before we ask for those it left out. A policy-based
/// peer asks for its pairs right after IKE_AUTH; asking for the same pair at the same moment
/// would give it two Child SAs.
pub const PEER_PAIRS_GRACE: Duration = Duration::from_secs(2);

/// Owns all IKE SAs; see the module documentation.
pub struct Endpoint {
    conns: Vec<Option<Connection>>,
    /// The connections that may answer a peer, by its address and identity.
    peer_index: PeerIndex,
    sas: SaTable,
    /// When each SA's timers next fall due (our SPI), earliest first. Entries go stale when an
    /// SA changes or goes; [`Self::refresh_timers`] adds the new time of every changed SA and
    /// drops stale entries from the top, so the top is always the next real deadline.
    sa_due: BinaryHeap<Reverse<(Instant, u64)>>,
    /// When connections try again after going down (connection index), earliest first;
    /// stale entries are dropped the same way.
    retry_due: BinaryHeap<Reverse<(Instant, usize)>>,
    half_open: HalfOpen,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    dropped: u64,
    /// Dropped datagrams by cause ([`IkeError::cause_name`]); a fixed set of keys.
    drops_by_cause: std::collections::BTreeMap<&'static str, u64>,
    cookies: CookieJar,
    /// Every random value the endpoint uses comes from here.
    rng: Rng,
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
    /// An endpoint with no connections, drawing randomness from the system's generator.
    pub fn new() -> Self {
        Self::with_random(Box::new(SystemRandom))
    }

    /// An endpoint whose randomness (SPIs, nonces, key-exchange secrets, IVs, cookie secrets,
    /// jitter) comes from `source`: a seeded source makes a recorded exchange replayable.
    pub fn with_random(source: Box<dyn Random>) -> Self {
        let mut rng = Rng::new(source);
        Endpoint {
            conns: vec![],
            peer_index: PeerIndex::default(),
            sas: SaTable::default(),
            sa_due: BinaryHeap::new(),
            retry_due: BinaryHeap::new(),
            half_open: HalfOpen::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            dropped: 0,
            drops_by_cause: std::collections::BTreeMap::new(),
            cookies: CookieJar::new(&mut rng),
            rng,
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
        let id = ConnectionId::from_index(self.conns.len());
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
        self.peer_index
            .insert(id.0, cfg.remote_addr, cfg.remote_id.as_ref());
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
        self.refresh_timers();
        id
    }

    /// Removes a connection: reports its Child SAs deleted at once and closes its IKE SAs on
    /// the peer with a DELETE that is sent again until the peer answers (RFC 7296 §2.1). The
    /// peer may not yet hold an IKE SA as established when the first DELETE arrives — its
    /// IKE_AUTH answer from us can still be in its queue, or ours to it in flight — and would
    /// then keep an SA we dropped; the retransmission reaches it once it does. Half-open SAs
    /// are simply forgotten (the peer cannot have completed them).
    pub fn remove_connection(&mut self, id: ConnectionId, now: Instant) {
        for spi in self.sas.spis_of(id) {
            if let Some(mut sa) = self.sas.remove(&spi) {
                self.drop_children(&mut sa);
                self.forget(&sa);
                if self.close_detached(&mut sa, now) {
                    self.sas.insert(spi, sa);
                }
            }
        }
        if let Some(slot) = self.conns.get_mut(id.index()) {
            if let Some(c) = slot.take() {
                self.peer_index
                    .remove(id.0, c.cfg.remote_addr, c.cfg.remote_id.as_ref());
            }
        }
        self.refresh_timers();
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
        self.cookies.tick(now, &mut self.rng);
        let r = self.dispatch(now, local, remote, bytes);
        if let Err(e) = &r {
            self.dropped += 1;
            *self.drops_by_cause.entry(e.cause_name()).or_default() += 1;
        }
        self.refresh_timers();
        r
    }

    /// Whether a queued re-initiation at `t` of connection `i` is still the one it waits for
    /// (entries of removed connections and of rescheduled retries are stale).
    fn retry_current(&self, t: Instant, i: usize) -> bool {
        self.conns
            .get(i)
            .and_then(|c| c.as_ref())
            .and_then(|c| c.retry_at)
            == Some(t)
    }

    /// Runs timers: retransmissions, dead-peer detection, half-open expiry, re-initiation.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut retry = vec![];
        while let Some(&Reverse((t, i))) = self.retry_due.peek() {
            if t > now {
                break;
            }
            self.retry_due.pop();
            if self.retry_current(t, i) {
                retry.push(ConnectionId::from_index(i));
            }
        }
        retry.sort();
        for id in retry {
            if let Some(c) = self.conns[id.index()].as_mut() {
                c.retry_at = None;
            }
            self.start_initiator(id, now);
        }
        let mut due = vec![];
        while let Some(&Reverse((t, spi))) = self.sa_due.peek() {
            if t > now {
                break;
            }
            self.sa_due.pop();
            due.push(spi);
        }
        due.sort_unstable();
        due.dedup();
        for spi in due {
            let Some(mut sa) = self.sas.remove(&spi) else {
                continue;
            };
            let ran = std::panic::catch_unwind(AssertUnwindSafe(|| self.sa_timers(&mut sa, now)));
            if ran.is_err() {
                self.internal_fault(&mut sa, now);
            }
            self.put_back(sa);
        }
        self.refresh_timers();
    }

    /// The next time SA `sa`'s timers need to run: a retransmission, the half-open or
    /// rekeyed-SA expiry, a rekey, dead-peer detection, an additional Child SA.
    fn sa_deadline(&self, sa: &IkeSa) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        let mut consider = |t: Instant| best = Some(best.map_or(t, |b| b.min(t)));
        if let Some(o) = &sa.outstanding {
            consider(o.next_at);
        }
        if let Some(t) = sa.rekeyed_at {
            consider(t + HALF_OPEN_TIMEOUT);
            return best;
        }
        if let Some(t) = Self::extra_child_due(sa) {
            consider(t);
        }
        match sa.phase.step() {
            Some(Step::ResponderAuth) => consider(sa.created + HALF_OPEN_TIMEOUT),
            Some(Step::Established) => {
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
        best
    }

    /// Brings the timer queues up to date after SAs or connections changed: the new deadline
    /// of every changed SA goes in, and stale entries leave the top of both queues (an SA
    /// whose deadline moved without being marked changed gets its real one back), so
    /// [`Self::poll_timeout`] can read the next deadline off the top. The queues are rebuilt
    /// when stale entries outnumber the live ones, which bounds their size.
    fn refresh_timers(&mut self) {
        for spi in self.sas.take_touched() {
            if let Some(t) = self.sas.get(&spi).and_then(|sa| self.sa_deadline(sa)) {
                self.sa_due.push(Reverse((t, spi)));
            }
        }
        while let Some(&Reverse((t, spi))) = self.sa_due.peek() {
            let real = self.sas.get(&spi).and_then(|sa| self.sa_deadline(sa));
            if real == Some(t) {
                break;
            }
            self.sa_due.pop();
            if let Some(r) = real {
                self.sa_due.push(Reverse((r, spi)));
            }
        }
        if self.sa_due.len() > 2 * self.sas.len() + 64 {
            let all: Vec<Reverse<(Instant, u64)>> = self
                .sas
                .keys()
                .filter_map(|spi| {
                    let sa = self.sas.get(spi)?;
                    Some(Reverse((self.sa_deadline(sa)?, *spi)))
                })
                .collect();
            self.sa_due = all.into();
        }
        while let Some(&Reverse((t, i))) = self.retry_due.peek() {
            if self.retry_current(t, i) {
                break;
            }
            self.retry_due.pop();
        }
        if self.retry_due.len() > 2 * self.conns.len() + 64 {
            let all: Vec<Reverse<(Instant, usize)>> = self
                .conns
                .iter()
                .enumerate()
                .filter_map(|(i, c)| Some(Reverse((c.as_ref()?.retry_at?, i))))
                .collect();
            self.retry_due = all.into();
        }
    }

    /// Next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sa = self.sa_due.peek().map(|Reverse((t, _))| *t);
        let retry = self.retry_due.peek().map(|Reverse((t, _))| *t);
        match (sa, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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
                    conn: ConnectionId::from_index(i),
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

    /// Each connection with an IKE SA: where that SA talks to and whether we are behind a
    /// NAT. What a gateway looks at every second, without building the status of every
    /// connection (names, algorithms, errors: five allocations each).
    pub fn peers(&self) -> impl Iterator<Item = (ConnectionId, SocketAddr, bool)> + '_ {
        self.conns.iter().enumerate().filter_map(|(i, c)| {
            let c = c.as_ref()?;
            let sa = self.sas.get(&c.ike_sa?)?;
            Some((ConnectionId::from_index(i), sa.remote, c.nat.0))
        })
    }

    /// Makes room for `additional` more connections at once: a caller that adds thousands
    /// spares the table's growth by doubling, which leaves up to half of it unused.
    pub fn reserve_connections(&mut self, additional: usize) {
        self.conns.reserve_exact(additional);
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

    /// Starts a rekey of the connection's IKE SA (`ike`) or its oldest Child SA at the next
    /// `handle_timeout`, regardless of lifetimes (operator command, tests).
    pub fn rekey_now(&mut self, id: ConnectionId, ike: bool, now: Instant) {
        let Some(spi) = self
            .conns
            .get(id.index())
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
        self.refresh_timers();
    }

    /// Starts a rekey of one Child SA (by our inbound SPI) at the next `handle_timeout`,
    /// whichever side we are: the data path asks for it when the SA's sequence numbers or
    /// bytes run low, which only it can see. Returns whether the Child SA exists.
    pub fn rekey_child(&mut self, id: ConnectionId, spi_in: u32, now: Instant) -> bool {
        let Some(spi) = self
            .conns
            .get(id.index())
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
        self.refresh_timers();
        true
    }
}
