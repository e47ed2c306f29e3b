//! One peer's BGP finite state machine (RFC 4271 §8): Idle, Connect, Active, OpenSent,
//! OpenConfirm, Established. Sans-IO: the caller owns the TCP connection and the clock, feeds
//! what happened ([`Session::start`], [`Session::tcp_connected`], [`Session::handle_bytes`],
//! [`Session::handle_timeout`], …) and carries out what the session asks for
//! ([`Session::poll_transmit`], [`Session::poll_event`], [`Session::poll_timeout`]).
//!
//! Differences from the RFC's full machine, chosen for a gateway with one configured peer per
//! session: one TCP connection at a time (no collision detection, §6.8), the caller opens it
//! when asked with [`Event::Connect`] or hands over one it accepted; after an error the session
//! starts again by itself after the connect-retry time (automatic start, §8.1.1) until
//! [`Session::stop`]. The peer must support 4-octet AS numbers (RFC 6793), since UPDATEs are
//! decoded with 4-octet AS_PATHs only.

mod config;
mod events;

pub use config::{SessionConfig, DEFAULT_CONNECT_RETRY, DEFAULT_HOLD_TIME, OPEN_HOLD_TIME};
pub use events::{DownReason, Event, State};

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::codec::{
    frame, subcode, Capability, ErrorCode, Message, Notification, Open, RouteRefresh, Update,
    AFI_IPV4, SAFI_UNICAST,
};
use crate::error::EncodeError;

/// The BGP session with one peer; see the module documentation.
pub struct Session {
    config: SessionConfig,
    phase: Phase,
    /// `start` was called and `stop` was not: errors lead to a new attempt.
    started: bool,
    /// Received octets not yet framed into a whole message.
    rx: Vec<u8>,
    tx: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    /// Whole messages received and queued for sending, for status (Azure's
    /// messagesReceived / messagesSent).
    counters: (u64, u64),
}

/// The state with what is valid in it (RFC 4271 §8.2.2).
enum Phase {
    /// Not trying; an automatic start after an error is due at `restart` (§8.1.1).
    Idle { restart: Option<Instant> },
    /// A connection was asked for; the next attempt is due at `retry`.
    Connect { retry: Instant },
    /// Waiting for the peer; our next attempt is due at `retry` (none when passive).
    Active { retry: Option<Instant> },
    /// OPEN sent; the peer's must arrive before `hold`.
    OpenSent { hold: Instant },
    /// The peer's OPEN accepted, its KEEPALIVE awaited.
    OpenConfirm(Negotiated),
    /// Routes flow.
    Established(Negotiated),
}

/// What the OPEN exchange settled, and the timers that run on it.
struct Negotiated {
    /// The peer's OPEN.
    open: Open,
    /// Smaller of both proposals; zero means no hold timer and no keepalives.
    hold_time: Duration,
    /// When the hold timer expires (none with a zero hold time).
    hold: Option<Instant>,
    /// When the next KEEPALIVE is due (none with a zero hold time).
    keepalive: Option<Instant>,
}

impl Negotiated {
    /// Restarts the hold timer: a message arrived.
    fn heard(&mut self, now: Instant) {
        self.hold = (!self.hold_time.is_zero()).then(|| now + self.hold_time);
    }

    /// Restarts the keepalive timer: a KEEPALIVE or UPDATE went out.
    fn spoke(&mut self, now: Instant) {
        // RFC 4271 §10: a third of the hold time; at least a second.
        let interval = (self.hold_time / 3).max(Duration::from_secs(1));
        self.keepalive = (!self.hold_time.is_zero()).then(|| now + interval);
    }
}

impl Session {
    /// A session in Idle; nothing happens before [`Session::start`].
    pub fn new(config: SessionConfig) -> Self {
        Session {
            config,
            phase: Phase::Idle { restart: None },
            started: false,
            rx: Vec::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            counters: (0, 0),
        }
    }

    /// Messages received and messages sent over the session's life (all connections).
    pub fn message_counts(&self) -> (u64, u64) {
        self.counters
    }

    /// The configuration the session was made with.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Current state.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Idle { .. } => State::Idle,
            Phase::Connect { .. } => State::Connect,
            Phase::Active { .. } => State::Active,
            Phase::OpenSent { .. } => State::OpenSent,
            Phase::OpenConfirm(_) => State::OpenConfirm,
            Phase::Established(_) => State::Established,
        }
    }

    /// What the OPEN exchange settled, from OpenConfirm on.
    fn negotiated(&self) -> Option<&Negotiated> {
        match &self.phase {
            Phase::OpenConfirm(n) | Phase::Established(n) => Some(n),
            _ => None,
        }
    }

    /// The peer's OPEN, once received and accepted.
    pub fn peer_open(&self) -> Option<&Open> {
        self.negotiated().map(|n| &n.open)
    }

    /// Negotiated hold time (zero before OpenConfirm or when either side proposed none).
    pub fn hold_time(&self) -> Duration {
        self.negotiated().map_or(Duration::ZERO, |n| n.hold_time)
    }

    /// ManualStart (RFC 4271 §8.1.2): leave Idle, to Connect (or Active when passive).
    pub fn start(&mut self, now: Instant) {
        self.started = true;
        if !matches!(self.phase, Phase::Idle { .. }) {
            return;
        }
        if self.config.passive {
            self.phase = Phase::Active { retry: None };
        } else {
            self.phase = Phase::Connect {
                retry: now + self.config.connect_retry,
            };
            self.events.push_back(Event::Connect);
        }
    }

    /// ManualStop: a Cease / Administrative Shutdown to the peer if it saw our OPEN, then
    /// Idle for good.
    pub fn stop(&mut self, now: Instant) {
        self.started = false;
        match self.phase {
            Phase::Idle { .. } => self.phase = Phase::Idle { restart: None },
            Phase::Connect { .. } | Phase::Active { .. } => {
                self.events.push_back(Event::Disconnect);
                self.phase = Phase::Idle { restart: None };
            }
            Phase::OpenSent { .. } | Phase::OpenConfirm(_) | Phase::Established(_) => {
                self.send(&Message::Notification(Notification::new(
                    ErrorCode::Cease,
                    subcode::ADMINISTRATIVE_SHUTDOWN,
                    vec![],
                )));
                self.go_idle(DownReason::Stopped, now);
            }
        }
    }

    /// The TCP connection to the peer is up (ours, or one we accepted): send OPEN.
    pub fn tcp_connected(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Connect { .. } | Phase::Active { .. }) {
            return;
        }
        self.rx.clear();
        self.send(&Message::Open(Open::new(
            self.config.local_as,
            self.config.hold_time,
            self.config.bgp_id,
        )));
        self.phase = Phase::OpenSent {
            hold: now + OPEN_HOLD_TIME,
        };
    }

    /// The TCP connection failed or was closed by the peer.
    pub fn tcp_failed(&mut self, now: Instant) {
        match self.phase {
            Phase::Idle { .. } => {}
            Phase::Connect { .. } | Phase::Active { .. } | Phase::OpenSent { .. } => {
                // RFC 4271 §8.2.2: wait for the peer or the next attempt in Active.
                self.rx.clear();
                self.tx.clear();
                self.phase = Phase::Active {
                    retry: self.next_attempt(now),
                };
            }
            Phase::OpenConfirm(_) | Phase::Established(_) => {
                self.tx.clear();
                self.go_idle(DownReason::ConnectionLost, now);
            }
        }
    }

    /// Octets read from the TCP connection, in any split: messages are framed across calls.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) {
        if !self.connected() {
            return;
        }
        self.rx.extend_from_slice(bytes);
        let mut used = 0;
        while self.connected() {
            let rest = &self.rx[used..];
            let decoded = match frame(rest) {
                Ok(None) => break,
                Ok(Some(len)) => {
                    used += len;
                    self.counters.0 += 1;
                    Message::decode(&rest[..len])
                }
                Err(e) => Err(e),
            };
            match decoded {
                Ok(message) => self.handle_message(message, now),
                Err(e) => {
                    let detail = format!("malformed message from the peer: {e}");
                    self.fail(e.notification(), detail, now);
                }
            }
        }
        if self.connected() {
            self.rx.drain(..used);
        } else {
            self.rx.clear();
        }
    }

    /// Runs the timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Instant| t <= now;
        match &mut self.phase {
            Phase::Idle { restart: Some(t) } if due(*t) => {
                self.phase = Phase::Idle { restart: None };
                self.start(now);
            }
            Phase::Connect { retry } if due(*retry) => {
                *retry = now + self.config.connect_retry;
                self.events.push_back(Event::Disconnect);
                self.events.push_back(Event::Connect);
            }
            Phase::Active { retry: Some(t) } if due(*t) => {
                self.phase = Phase::Connect {
                    retry: now + self.config.connect_retry,
                };
                self.events.push_back(Event::Connect);
            }
            Phase::OpenSent { hold } if due(*hold) => self.hold_timer_expired(OPEN_HOLD_TIME, now),
            Phase::OpenConfirm(n) | Phase::Established(n) => {
                if n.hold.is_some_and(due) {
                    let hold_time = n.hold_time;
                    self.hold_timer_expired(hold_time, now);
                } else if n.keepalive.is_some_and(due) {
                    n.spoke(now);
                    self.send(&Message::Keepalive);
                }
            }
            _ => {}
        }
    }

    /// Queues an UPDATE for the peer; only sent in Established (the RIB gives a new peer its
    /// whole table when it comes up), and it counts as a keepalive.
    pub fn send_update(&mut self, update: &Update, now: Instant) -> Result<(), EncodeError> {
        let Phase::Established(n) = &mut self.phase else {
            return Ok(());
        };
        let bytes = Message::Update(update.clone()).encode()?;
        n.spoke(now);
        self.counters.1 += 1;
        self.tx.push_back(bytes);
        Ok(())
    }

    /// Asks the peer to send its routes again (RFC 2918), if it advertised route refresh.
    /// Returns whether a request was queued.
    pub fn request_route_refresh(&mut self) -> bool {
        let Phase::Established(n) = &self.phase else {
            return false;
        };
        if !n.open.has(&Capability::RouteRefresh) {
            return false;
        }
        self.send(&Message::RouteRefresh(RouteRefresh {
            afi: AFI_IPV4,
            safi: SAFI_UNICAST,
        }));
        true
    }

    /// Next octets to write to the TCP connection, one message at a time.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }

    /// Whether transmits or events wait to be polled.
    pub fn has_pending(&self) -> bool {
        !self.tx.is_empty() || !self.events.is_empty()
    }

    /// Next event for the caller.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Idle { restart } => *restart,
            Phase::Connect { retry } => Some(*retry),
            Phase::Active { retry } => *retry,
            Phase::OpenSent { hold } => Some(*hold),
            Phase::OpenConfirm(n) | Phase::Established(n) => {
                [n.hold, n.keepalive].into_iter().flatten().min()
            }
        }
    }

    /// Whether a TCP connection is up (OpenSent, OpenConfirm, Established).
    fn connected(&self) -> bool {
        matches!(
            self.phase,
            Phase::OpenSent { .. } | Phase::OpenConfirm(_) | Phase::Established(_)
        )
    }

    /// When Active tries to connect again: after the connect-retry time, never when passive.
    fn next_attempt(&self, now: Instant) -> Option<Instant> {
        (!self.config.passive).then(|| now + self.config.connect_retry)
    }

    /// One whole message in OpenSent, OpenConfirm or Established.
    fn handle_message(&mut self, message: Message, now: Instant) {
        if let Message::Notification(n) = message {
            self.go_idle(DownReason::NotificationReceived(n), now);
            return;
        }
        if let Phase::OpenConfirm(n) | Phase::Established(n) = &mut self.phase {
            n.heard(now);
        }
        let phase = std::mem::replace(&mut self.phase, Phase::Idle { restart: None });
        match (phase, message) {
            (Phase::OpenSent { .. }, Message::Open(open)) => self.handle_open(open, now),
            (Phase::OpenConfirm(n), Message::Keepalive) => {
                self.events.push_back(Event::Established {
                    peer_as: n.open.asn(),
                    peer_id: n.open.bgp_id,
                    hold_time: n.hold_time,
                });
                self.phase = Phase::Established(n);
            }
            (Phase::Established(n), Message::Keepalive) => self.phase = Phase::Established(n),
            (Phase::Established(n), Message::Update(update)) => {
                let peer_as = n.open.asn();
                self.phase = Phase::Established(n);
                self.handle_update(update, peer_as, now);
            }
            (Phase::Established(n), Message::RouteRefresh(rr)) => {
                self.phase = Phase::Established(n);
                if rr.afi == AFI_IPV4 && rr.safi == SAFI_UNICAST {
                    self.events.push_back(Event::RouteRefreshRequested);
                }
            }
            (phase, message) => {
                // RFC 6608: which state the unexpected message arrived in.
                let (sub, state) = match phase {
                    Phase::OpenSent { .. } => (subcode::UNEXPECTED_IN_OPEN_SENT, "OpenSent"),
                    Phase::OpenConfirm(_) => (subcode::UNEXPECTED_IN_OPEN_CONFIRM, "OpenConfirm"),
                    _ => (subcode::UNEXPECTED_IN_ESTABLISHED, "Established"),
                };
                self.phase = phase;
                let detail = format!("unexpected {} in {state}", message.name());
                let n = Notification::new(ErrorCode::FiniteStateMachineError, sub, vec![]);
                self.fail(n, detail, now);
            }
        }
    }

    /// An UPDATE in Established: reported as withdrawn and received routes. From an external
    /// peer the AS_PATH must start with the peer's AS (RFC 4271 §6.3).
    fn handle_update(&mut self, update: Update, peer_as: u32, now: Instant) {
        let first = update
            .attributes
            .as_path
            .as_ref()
            .and_then(|p| p.first_as());
        if self.config.is_external() && !update.nlri.is_empty() && first != Some(peer_as) {
            let detail = match first {
                Some(asn) => {
                    format!("AS_PATH from the peer starts with AS {asn}, not its AS {peer_as}")
                }
                None => format!("AS_PATH from the peer does not start with its AS {peer_as}"),
            };
            let n = Notification::new(
                ErrorCode::UpdateMessageError,
                subcode::MALFORMED_AS_PATH,
                vec![],
            );
            self.fail(n, detail, now);
            return;
        }
        if !update.withdrawn.is_empty() {
            self.events.push_back(Event::RoutesWithdrawn {
                prefixes: update.withdrawn,
            });
        }
        if !update.nlri.is_empty() {
            self.events.push_back(Event::RoutesReceived {
                prefixes: update.nlri,
                attributes: update.attributes,
            });
        }
    }

    /// The peer's OPEN in OpenSent: check it (RFC 4271 §6.2), answer with KEEPALIVE.
    fn handle_open(&mut self, open: Open, now: Instant) {
        if let Err((sub, data, detail)) = self.check_open(&open) {
            let n = Notification::new(ErrorCode::OpenMessageError, sub, data);
            self.fail(n, detail, now);
            return;
        }
        let hold = self.config.hold_time.min(open.hold_time);
        let mut negotiated = Negotiated {
            open,
            hold_time: Duration::from_secs(u64::from(hold)),
            hold: None,
            keepalive: None,
        };
        negotiated.heard(now);
        negotiated.spoke(now);
        self.send(&Message::Keepalive);
        self.phase = Phase::OpenConfirm(negotiated);
    }

    /// The OPEN checks that need our configuration: subcode, data and words on failure.
    fn check_open(&self, open: &Open) -> Result<(), (u8, Vec<u8>, String)> {
        let Some(peer_as) = open.four_octet_as() else {
            let mut data = vec![65, 4];
            data.extend_from_slice(&self.config.local_as.to_be_bytes());
            return Err((
                subcode::UNSUPPORTED_CAPABILITY,
                data,
                "peer does not support 4-octet AS numbers (RFC 6793)".into(),
            ));
        };
        if peer_as != self.config.peer_as {
            return Err((
                subcode::BAD_PEER_AS,
                vec![],
                format!(
                    "peer announced AS {peer_as} in its OPEN, but AS {} is configured for it",
                    self.config.peer_as
                ),
            ));
        }
        if !self.config.is_external() && open.bgp_id == self.config.bgp_id {
            return Err((
                subcode::BAD_BGP_IDENTIFIER,
                vec![],
                format!("internal peer uses our own BGP identifier {}", open.bgp_id),
            ));
        }
        Ok(())
    }

    /// The hold timer ran out after `waited`: NOTIFICATION Hold Timer Expired, down.
    fn hold_timer_expired(&mut self, waited: Duration, now: Instant) {
        let detail = format!(
            "no message from the peer within the hold time of {} s",
            waited.as_secs()
        );
        let n = Notification::new(ErrorCode::HoldTimerExpired, subcode::UNSPECIFIC, vec![]);
        self.fail(n, detail, now);
    }

    /// Queues a NOTIFICATION and goes down with the reason.
    fn fail(&mut self, notification: Notification, detail: String, now: Instant) {
        self.send(&Message::Notification(notification.clone()));
        self.go_idle(
            DownReason::ErrorSent {
                notification,
                detail,
            },
            now,
        );
    }

    /// To Idle: close the connection, report why, start again later unless stopped.
    fn go_idle(&mut self, reason: DownReason, now: Instant) {
        self.phase = Phase::Idle {
            restart: self.started.then(|| now + self.config.connect_retry),
        };
        self.rx.clear();
        self.events.push_back(Event::Disconnect);
        self.events.push_back(Event::Down { reason });
    }

    /// Queues a message this crate built; those always fit.
    fn send(&mut self, message: &Message) {
        let bytes = message.encode().expect(
            "OPEN, KEEPALIVE, NOTIFICATION and ROUTE-REFRESH built here fit in 4096 octets",
        );
        self.counters.1 += 1;
        self.tx.push_back(bytes);
    }
}
