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

use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use crate::codec::{
    frame, subcode, Capability, ErrorCode, Message, Notification, Open, PathAttributes,
    RouteRefresh, Update, AFI_IPV4, SAFI_UNICAST,
};
use crate::error::EncodeError;

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
    /// connection in OpenConfirm or Established, or [`Session::stop`]. The peer's routes are
    /// gone.
    Down {
        /// Why, in words with [`fmt::Display`].
        reason: DownReason,
    },
}

/// Why a session went down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// [`Session::stop`] was called.
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

/// The BGP session with one peer; see the module documentation.
pub struct Session {
    config: SessionConfig,
    state: State,
    /// `start` was called and `stop` was not: errors lead to a new attempt.
    started: bool,
    /// Received octets not yet framed into a whole message.
    rx: Vec<u8>,
    tx: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    timers: Timers,
    /// Negotiated hold time (zero: no hold timer, no keepalives).
    hold_time: Duration,
    /// The peer's OPEN, from OpenConfirm on.
    peer_open: Option<Open>,
}

/// Deadlines; `None` when not running.
#[derive(Default)]
struct Timers {
    connect_retry: Option<Instant>,
    hold: Option<Instant>,
    keepalive: Option<Instant>,
    /// Automatic start after an error (RFC 4271 §8.1.1, IdleHoldTimer).
    restart: Option<Instant>,
}

impl Session {
    /// A session in Idle; nothing happens before [`Session::start`].
    pub fn new(config: SessionConfig) -> Self {
        Session {
            config,
            state: State::Idle,
            started: false,
            rx: Vec::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            timers: Timers::default(),
            hold_time: Duration::ZERO,
            peer_open: None,
        }
    }

    /// The configuration the session was made with.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The peer's OPEN, once received and accepted.
    pub fn peer_open(&self) -> Option<&Open> {
        self.peer_open.as_ref()
    }

    /// Negotiated hold time (zero before OpenConfirm or when either side proposed none).
    pub fn hold_time(&self) -> Duration {
        self.hold_time
    }

    /// ManualStart (RFC 4271 §8.1.2): leave Idle, to Connect (or Active when passive).
    pub fn start(&mut self, now: Instant) {
        self.started = true;
        if self.state != State::Idle {
            return;
        }
        self.timers = Timers {
            connect_retry: Some(now + self.config.connect_retry),
            ..Timers::default()
        };
        if self.config.passive {
            self.state = State::Active;
        } else {
            self.state = State::Connect;
            self.events.push_back(Event::Connect);
        }
    }

    /// ManualStop: a Cease / Administrative Shutdown to the peer if it saw our OPEN, then
    /// Idle for good.
    pub fn stop(&mut self, now: Instant) {
        self.started = false;
        match self.state {
            State::Idle => self.timers = Timers::default(),
            State::Connect | State::Active => {
                self.events.push_back(Event::Disconnect);
                self.state = State::Idle;
                self.timers = Timers::default();
            }
            State::OpenSent | State::OpenConfirm | State::Established => {
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
        if !matches!(self.state, State::Connect | State::Active) {
            return;
        }
        self.rx.clear();
        self.send(&Message::Open(Open::new(
            self.config.local_as,
            self.config.hold_time,
            self.config.bgp_id,
        )));
        self.timers = Timers {
            hold: Some(now + OPEN_HOLD_TIME),
            ..Timers::default()
        };
        self.state = State::OpenSent;
    }

    /// The TCP connection failed or was closed by the peer.
    pub fn tcp_failed(&mut self, now: Instant) {
        match self.state {
            State::Idle => {}
            State::Connect | State::Active | State::OpenSent => {
                // RFC 4271 §8.2.2: wait for the peer or the next attempt in Active.
                self.rx.clear();
                self.tx.clear();
                self.timers = Timers {
                    connect_retry: Some(now + self.config.connect_retry),
                    ..Timers::default()
                };
                self.state = State::Active;
            }
            State::OpenConfirm | State::Established => {
                self.tx.clear();
                self.go_idle(DownReason::ConnectionLost, now);
            }
        }
    }

    /// Octets read from the TCP connection, in any split: messages are framed across calls.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) {
        if !matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            return;
        }
        self.rx.extend_from_slice(bytes);
        let mut used = 0;
        while self.state != State::Idle {
            let rest = &self.rx[used..];
            let decoded = match frame(rest) {
                Ok(None) => break,
                Ok(Some(len)) => {
                    used += len;
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
        if self.state == State::Idle {
            self.rx.clear();
        } else {
            self.rx.drain(..used);
        }
    }

    /// Runs the timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.timers.restart) {
            self.timers.restart = None;
            self.start(now);
        }
        if due(self.timers.connect_retry) {
            self.timers.connect_retry = Some(now + self.config.connect_retry);
            match self.state {
                State::Connect => {
                    self.events.push_back(Event::Disconnect);
                    self.events.push_back(Event::Connect);
                }
                State::Active if !self.config.passive => {
                    self.state = State::Connect;
                    self.events.push_back(Event::Connect);
                }
                _ => {}
            }
        }
        if due(self.timers.hold) {
            let waited = if self.state == State::OpenSent {
                OPEN_HOLD_TIME
            } else {
                self.hold_time
            };
            let detail = format!(
                "no message from the peer within the hold time of {} s",
                waited.as_secs()
            );
            let n = Notification::new(ErrorCode::HoldTimerExpired, subcode::UNSPECIFIC, vec![]);
            self.fail(n, detail, now);
        }
        if due(self.timers.keepalive) {
            self.send(&Message::Keepalive);
            self.timers.keepalive = Some(now + self.keepalive_interval());
        }
    }

    /// Queues an UPDATE for the peer; only sent in Established (the RIB gives a new peer its
    /// whole table when it comes up), and it counts as a keepalive.
    pub fn send_update(&mut self, update: &Update, now: Instant) -> Result<(), EncodeError> {
        if self.state != State::Established {
            return Ok(());
        }
        let bytes = Message::Update(update.clone()).encode()?;
        self.tx.push_back(bytes);
        if self.timers.keepalive.is_some() {
            self.timers.keepalive = Some(now + self.keepalive_interval());
        }
        Ok(())
    }

    /// Asks the peer to send its routes again (RFC 2918), if it advertised route refresh.
    /// Returns whether a request was queued.
    pub fn request_route_refresh(&mut self) -> bool {
        let supported = self
            .peer_open
            .as_ref()
            .is_some_and(|o| o.has(&Capability::RouteRefresh));
        if self.state != State::Established || !supported {
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

    /// Next event for the caller.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = &self.timers;
        [t.connect_retry, t.hold, t.keepalive, t.restart]
            .into_iter()
            .flatten()
            .min()
    }

    /// One whole message in OpenSent, OpenConfirm or Established.
    fn handle_message(&mut self, message: Message, now: Instant) {
        if let Message::Notification(n) = message {
            self.go_idle(DownReason::NotificationReceived(n), now);
            return;
        }
        match (self.state, message) {
            (State::OpenSent, Message::Open(open)) => self.handle_open(open, now),
            (State::OpenConfirm, Message::Keepalive) => {
                self.restart_hold_timer(now);
                self.state = State::Established;
                let open = self.peer_open.as_ref().expect("OPEN accepted in OpenSent");
                self.events.push_back(Event::Established {
                    peer_as: open.asn(),
                    peer_id: open.bgp_id,
                    hold_time: self.hold_time,
                });
            }
            (State::Established, Message::Keepalive) => self.restart_hold_timer(now),
            (State::Established, Message::Update(update)) => {
                self.restart_hold_timer(now);
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
            (State::Established, Message::RouteRefresh(rr)) => {
                self.restart_hold_timer(now);
                if rr.afi == AFI_IPV4 && rr.safi == SAFI_UNICAST {
                    self.events.push_back(Event::RouteRefreshRequested);
                }
            }
            (state, message) => {
                // RFC 6608: which state the unexpected message arrived in.
                let sub = match state {
                    State::OpenSent => subcode::UNEXPECTED_IN_OPEN_SENT,
                    State::OpenConfirm => subcode::UNEXPECTED_IN_OPEN_CONFIRM,
                    _ => subcode::UNEXPECTED_IN_ESTABLISHED,
                };
                let detail = format!("unexpected {} in {state:?}", message.name());
                let n = Notification::new(ErrorCode::FiniteStateMachineError, sub, vec![]);
                self.fail(n, detail, now);
            }
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
        self.hold_time = Duration::from_secs(u64::from(hold));
        self.peer_open = Some(open);
        self.send(&Message::Keepalive);
        self.timers = Timers::default();
        self.restart_hold_timer(now);
        if hold > 0 {
            self.timers.keepalive = Some(now + self.keepalive_interval());
        }
        self.state = State::OpenConfirm;
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
        self.state = State::Idle;
        self.rx.clear();
        self.peer_open = None;
        self.hold_time = Duration::ZERO;
        self.timers = Timers {
            restart: self.started.then(|| now + self.config.connect_retry),
            ..Timers::default()
        };
        self.events.push_back(Event::Disconnect);
        self.events.push_back(Event::Down { reason });
    }

    /// Restarts the hold timer with the negotiated hold time (none when it is zero).
    fn restart_hold_timer(&mut self, now: Instant) {
        self.timers.hold = (!self.hold_time.is_zero()).then(|| now + self.hold_time);
    }

    /// A third of the hold time (RFC 4271 §10), at least one second.
    fn keepalive_interval(&self) -> Duration {
        (self.hold_time / 3).max(Duration::from_secs(1))
    }

    /// Queues a message this crate built; those always fit.
    fn send(&mut self, message: &Message) {
        let bytes = message.encode().expect(
            "OPEN, KEEPALIVE, NOTIFICATION and ROUTE-REFRESH built here fit in 4096 octets",
        );
        self.tx.push_back(bytes);
    }
}
