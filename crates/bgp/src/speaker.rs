//! A BGP speaker as a VPN gateway runs one: one [`Session`] per configured peer, one [`Rib`],
//! and the rules that tie them together — which TCP connection a session uses (ours or the
//! peer's, RFC 4271 §6.8 collision resolution), when a peer may be tried at all (its tunnel is
//! up), what each peer is sent when routes change, and what the gateway forwards where.
//!
//! Sans-IO like [`Session`]: the caller owns the listening socket, the TCP connections and the
//! clock. Connections are named by [`ConnId`]s the speaker hands out: it asks for an outbound
//! one with [`Output::Connect`], the caller reports [`Speaker::connected`] or
//! [`Speaker::failed`], offers inbound ones with [`Speaker::accept`], feeds bytes with
//! [`Speaker::handle_bytes`] and carries out [`Output::Transmit`] and [`Output::Close`].

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use crate::codec::{Origin, PathAttributes};
use crate::rib::{PeerInfo, Rib, RouteSource};
use crate::session::{Event, Session, SessionConfig, State};

/// Wait between connection attempts: a gateway's peers sit behind a tunnel that is known to be
/// up, so a lost session is tried again soon rather than after the RFC's 120 s.
pub const GATEWAY_CONNECT_RETRY: Duration = Duration::from_secs(5);

/// A TCP connection of the speaker, as the caller knows it.
pub type ConnId = u64;

/// What the speaker is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpeakerConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier, also our address on every session (the NEXT_HOP we announce).
    pub bgp_id: Ipv4Addr,
    /// Hold time proposed to every peer, in seconds.
    pub hold_time: u16,
    /// Wait between connection attempts.
    pub connect_retry: Duration,
    /// Prefixes announced as our own (the VNet's address space).
    pub originate: Vec<Ipv4Net>,
}

/// One configured peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// Its BGP address (where we connect, and where it connects from).
    pub address: Ipv4Addr,
    /// The AS it must announce.
    pub asn: u32,
}

/// What the caller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection from our address to `peer` port 179, named `conn`.
    Connect {
        /// Name of the new connection.
        conn: ConnId,
        /// Where to.
        peer: Ipv4Addr,
    },
    /// Write these octets to `conn`.
    Transmit {
        /// The connection.
        conn: ConnId,
        /// One whole message.
        bytes: Vec<u8>,
    },
    /// Close `conn` once what was transmitted on it is written (or abandon the attempt).
    Close {
        /// The connection.
        conn: ConnId,
    },
}

/// A route the speaker knows, for `list-learned-routes` and forwarding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownRoute {
    /// The prefix.
    pub prefix: Ipv4Net,
    /// The peer that announced it; `None` for our own prefixes.
    pub peer: Option<Ipv4Addr>,
    /// Its AS path (nearest AS first); empty for our own.
    pub as_path: Vec<u32>,
    /// NEXT_HOP as announced; `None` for our own.
    pub next_hop: Option<Ipv4Addr>,
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// Whether it is the best route to its prefix (in the Loc-RIB).
    pub best: bool,
}

/// A peer as `list-bgp-peer-status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// Its address.
    pub address: Ipv4Addr,
    /// Its configured AS.
    pub asn: u32,
    /// The session's state.
    pub state: State,
    /// Whether its tunnel is up (a peer behind a down tunnel is not tried).
    pub reachable: bool,
    /// How long the session has been Established.
    pub connected_for: Option<Duration>,
    /// Prefixes it announced that we hold.
    pub routes_received: usize,
    /// Prefixes we announce to it.
    pub routes_advertised: usize,
    /// Messages received over all its sessions.
    pub messages_received: u64,
    /// Messages sent over all its sessions.
    pub messages_sent: u64,
    /// How many times an Established session with it ended.
    pub flaps: u32,
    /// Why its last session ended or could not start, in words.
    pub last_error: Option<String>,
}

/// A configured peer and its session.
struct Peer {
    config: PeerConfig,
    session: Session,
    /// The connection the session uses, or is waiting for (outbound).
    conn: Option<ConnId>,
    /// Whether `conn` is an outbound attempt not yet connected.
    connecting: bool,
    reachable: bool,
    established_at: Option<Instant>,
    flaps: u32,
    last_error: Option<String>,
}

/// The speaker; see the module documentation.
pub struct Speaker {
    config: SpeakerConfig,
    rib: Rib,
    peers: BTreeMap<Ipv4Addr, Peer>,
    by_conn: BTreeMap<ConnId, Ipv4Addr>,
    next_conn: ConnId,
    out: VecDeque<Output>,
    /// Bumped whenever the Loc-RIB may have changed.
    generation: u64,
    /// The last inbound connection refused, and why.
    last_refusal: Option<String>,
}

impl Speaker {
    /// A speaker announcing `config.originate`, with no peers yet.
    pub fn new(config: SpeakerConfig) -> Self {
        let mut rib = Rib::new(config.local_as);
        for p in &config.originate {
            rib.originate(*p);
        }
        Speaker {
            config,
            rib,
            peers: BTreeMap::new(),
            by_conn: BTreeMap::new(),
            next_conn: 1,
            out: VecDeque::new(),
            generation: 1,
            last_refusal: None,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &SpeakerConfig {
        &self.config
    }

    /// Changes our prefixes; peers are told what changed.
    pub fn set_originated(&mut self, prefixes: &[Ipv4Net], now: Instant) {
        let old = std::mem::replace(&mut self.config.originate, prefixes.to_vec());
        let mut updates = Vec::new();
        for p in old.iter().filter(|p| !prefixes.contains(p)) {
            updates.extend(self.rib.stop_originating(*p));
        }
        for p in prefixes.iter().filter(|p| !old.contains(p)) {
            updates.extend(self.rib.originate(*p));
        }
        self.dispatch(updates, now);
    }

    /// Makes the configured peers `peers`: new ones are added (tried once reachable), gone
    /// ones and ones whose AS changed are stopped and their routes withdrawn.
    pub fn set_peers(&mut self, peers: &[PeerConfig], now: Instant) {
        let gone: Vec<Ipv4Addr> = self
            .peers
            .values()
            .filter(|p| !peers.contains(&p.config))
            .map(|p| p.config.address)
            .collect();
        for address in gone {
            self.stop_peer(address, now);
            self.peers.remove(&address);
        }
        for pc in peers {
            if self.peers.contains_key(&pc.address) {
                continue;
            }
            let mut sc = SessionConfig::new(self.config.local_as, pc.asn, self.config.bgp_id);
            sc.hold_time = self.config.hold_time;
            sc.connect_retry = self.config.connect_retry;
            self.peers.insert(
                pc.address,
                Peer {
                    config: *pc,
                    session: Session::new(sc),
                    conn: None,
                    connecting: false,
                    reachable: false,
                    established_at: None,
                    flaps: 0,
                    last_error: None,
                },
            );
        }
    }

    /// Whether `peer` can be reached now (its tunnel is up). A peer is tried only while it
    /// is; when it stops being reachable its session ends and its routes are withdrawn at
    /// once rather than at the end of the hold time.
    pub fn set_reachable(&mut self, peer: Ipv4Addr, reachable: bool, now: Instant) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.reachable == reachable {
            return;
        }
        p.reachable = reachable;
        if reachable {
            p.last_error = None;
            p.session.start(now);
            self.drain(peer, now);
        } else {
            self.stop_peer(peer, now);
            if let Some(p) = self.peers.get_mut(&peer) {
                p.last_error = Some("the tunnel to the peer is down".into());
            }
        }
    }

    /// Stops a peer's session (Cease to it if it saw our OPEN); its routes are withdrawn.
    fn stop_peer(&mut self, peer: Ipv4Addr, now: Instant) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.session.stop(now);
            self.drain(peer, now);
        }
    }

    /// An inbound TCP connection from `from` was accepted by the caller: the connection to
    /// use for it, or `None` to close it (not a configured peer, or a session that keeps
    /// its own connection, §6.8: the one opened by the speaker with the higher BGP
    /// identifier survives; a peer's identifier is taken to be its address).
    pub fn accept(&mut self, from: Ipv4Addr, now: Instant) -> Option<ConnId> {
        let configured: Vec<String> = self.peers.keys().map(|a| a.to_string()).collect();
        let Some(p) = self.peers.get_mut(&from) else {
            self.last_refusal = Some(format!(
                "connection from {from} refused: not a configured BGP peer (peers: {})",
                if configured.is_empty() {
                    "none".to_string()
                } else {
                    configured.join(", ")
                }
            ));
            return None;
        };
        let keep_ours = match p.session.state() {
            State::Idle | State::Established | State::OpenConfirm => true,
            // both ends may be connecting at once: both keep the connection of the higher
            // identifier, whichever arrives first, so they cannot refuse each other forever
            State::Connect | State::OpenSent => u32::from(self.config.bgp_id) > u32::from(from),
            State::Active => false,
        };
        if keep_ours {
            return None;
        }
        if let Some(old) = p.conn.take() {
            if p.session.state() == State::OpenSent {
                p.session.tcp_failed(now);
            }
            self.by_conn.remove(&old);
            self.out.push_back(Output::Close { conn: old });
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        let p = self.peers.get_mut(&from).expect("looked up above");
        p.conn = Some(conn);
        p.connecting = false;
        self.by_conn.insert(conn, from);
        p.session.tcp_connected(now);
        self.drain(from, now);
        Some(conn)
    }

    /// Our outbound connection `conn` is up.
    pub fn connected(&mut self, conn: ConnId, now: Instant) {
        let Some(&peer) = self.by_conn.get(&conn) else {
            return;
        };
        if let Some(p) = self.peers.get_mut(&peer) {
            p.connecting = false;
            p.session.tcp_connected(now);
        }
        self.drain(peer, now);
    }

    /// `conn` failed to connect or was closed by the peer; `why` is kept for status.
    pub fn failed(&mut self, conn: ConnId, why: &str, now: Instant) {
        let Some(peer) = self.by_conn.remove(&conn) else {
            return;
        };
        if let Some(p) = self.peers.get_mut(&peer) {
            if p.conn != Some(conn) {
                return;
            }
            p.conn = None;
            p.connecting = false;
            p.last_error = Some(why.to_string());
            p.session.tcp_failed(now);
        }
        self.drain(peer, now);
    }

    /// Octets read from `conn`.
    pub fn handle_bytes(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        let Some(&peer) = self.by_conn.get(&conn) else {
            return;
        };
        if let Some(p) = self.peers.get_mut(&peer) {
            p.session.handle_bytes(bytes, now);
        }
        self.drain(peer, now);
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<Ipv4Addr> = self
            .peers
            .iter()
            .filter(|(_, p)| p.session.poll_timeout().is_some_and(|t| t <= now))
            .map(|(a, _)| *a)
            .collect();
        for peer in due {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.session.handle_timeout(now);
            }
            self.drain(peer, now);
        }
    }

    /// When [`Speaker::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|p| p.session.poll_timeout())
            .min()
    }

    /// The next thing the caller must do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Changes whenever the routes may have changed: a caller that saw the same value has
    /// nothing new to install.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The best route to every prefix learned from a peer: where the gateway forwards.
    pub fn forwarding(&self) -> Vec<(Ipv4Net, Ipv4Addr)> {
        self.rib
            .loc_rib()
            .filter_map(|(prefix, route)| match &route.source {
                RouteSource::Peer(info) => Some((*prefix, info.address)),
                RouteSource::Local => None,
            })
            .collect()
    }

    /// Every route known: our own, and each peer's accepted announcements, the best marked.
    pub fn known_routes(&self) -> Vec<KnownRoute> {
        let mut out: Vec<KnownRoute> = self
            .config
            .originate
            .iter()
            .map(|p| KnownRoute {
                prefix: p.trunc(),
                peer: None,
                as_path: vec![],
                next_hop: None,
                origin: Some(Origin::Igp),
                best: true,
            })
            .collect();
        for address in self.peers.keys() {
            for (prefix, attrs) in self.rib.adj_rib_in(*address) {
                let best = matches!(
                    self.rib.best(prefix).map(|r| &r.source),
                    Some(RouteSource::Peer(info)) if info.address == *address
                );
                out.push(known(*prefix, Some(*address), attrs, best));
            }
        }
        out
    }

    /// What `peer` is being sent.
    pub fn advertised(&self, peer: Ipv4Addr) -> Vec<KnownRoute> {
        self.rib
            .adj_rib_out(peer)
            .map(|(prefix, attrs)| known(*prefix, None, attrs, true))
            .collect()
    }

    /// Every configured peer's state.
    pub fn peer_status(&self, now: Instant) -> Vec<PeerStatus> {
        self.peers
            .values()
            .map(|p| {
                let (received, sent) = p.session.message_counts();
                PeerStatus {
                    address: p.config.address,
                    asn: p.config.asn,
                    state: p.session.state(),
                    reachable: p.reachable,
                    connected_for: p.established_at.map(|t| now.saturating_duration_since(t)),
                    routes_received: self.rib.adj_rib_in(p.config.address).count(),
                    routes_advertised: self.rib.adj_rib_out(p.config.address).count(),
                    messages_received: received,
                    messages_sent: sent,
                    flaps: p.flaps,
                    last_error: p.last_error.clone(),
                }
            })
            .collect()
    }

    /// The last inbound connection refused and why (a peer configured with a wrong address
    /// shows up here).
    pub fn last_refusal(&self) -> Option<&str> {
        self.last_refusal.as_deref()
    }

    /// Carries out what `peer`'s session asked for, and what that caused at other peers.
    fn drain(&mut self, peer: Ipv4Addr, now: Instant) {
        let mut work = VecDeque::from([peer]);
        while let Some(address) = work.pop_front() {
            let Some(p) = self.peers.get_mut(&address) else {
                continue;
            };
            while let Some(bytes) = p.session.poll_transmit() {
                if let Some(conn) = p.conn {
                    self.out.push_back(Output::Transmit { conn, bytes });
                }
            }
            let mut updates = Vec::new();
            while let Some(event) = p.session.poll_event() {
                match event {
                    Event::Connect => {
                        if let Some(old) = p.conn.take() {
                            self.by_conn.remove(&old);
                            self.out.push_back(Output::Close { conn: old });
                        }
                        let conn = self.next_conn;
                        self.next_conn += 1;
                        p.conn = Some(conn);
                        p.connecting = true;
                        self.by_conn.insert(conn, address);
                        self.out.push_back(Output::Connect {
                            conn,
                            peer: address,
                        });
                    }
                    Event::Disconnect => {
                        if p.connecting && p.reachable {
                            // the connect-retry timer gave up on an attempt
                            p.last_error = Some(format!(
                                "no answer from {address} port 179 within {} s: is {address} the peer's BGP address, and does it run BGP?",
                                self.config.connect_retry.as_secs()
                            ));
                        }
                        if let Some(old) = p.conn.take() {
                            self.by_conn.remove(&old);
                            self.out.push_back(Output::Close { conn: old });
                        }
                        p.connecting = false;
                    }
                    Event::Established {
                        peer_as, peer_id, ..
                    } => {
                        p.established_at = Some(now);
                        p.last_error = None;
                        updates.extend(self.rib.peer_up(PeerInfo {
                            address,
                            asn: peer_as,
                            bgp_id: peer_id,
                            local_address: self.config.bgp_id,
                        }));
                        self.generation += 1;
                    }
                    Event::RoutesReceived {
                        prefixes,
                        attributes,
                    } => {
                        updates.extend(self.rib.receive(address, &prefixes, &attributes));
                        self.generation += 1;
                    }
                    Event::RoutesWithdrawn { prefixes } => {
                        updates.extend(self.rib.withdraw(address, &prefixes));
                        self.generation += 1;
                    }
                    Event::RouteRefreshRequested => updates.extend(self.rib.refresh(address)),
                    Event::Down { reason } => {
                        if p.established_at.take().is_some() {
                            p.flaps += 1;
                        }
                        if reason != crate::session::DownReason::Stopped {
                            p.last_error = Some(reason.to_string());
                        }
                        updates.extend(self.rib.peer_down(address));
                        self.generation += 1;
                    }
                }
            }
            for (to, update) in updates {
                if let Some(target) = self.peers.get_mut(&to) {
                    // an UPDATE the RIB built always fits: it splits what does not
                    let _ = target.session.send_update(&update, now);
                    if !work.contains(&to) {
                        work.push_back(to);
                    }
                }
            }
            // events may have queued messages on this session too
            if self
                .peers
                .get(&address)
                .is_some_and(|p| p.session.has_pending())
                && !work.contains(&address)
            {
                work.push_back(address);
            }
        }
    }

    /// Applies UPDATEs the RIB returned outside a session's events.
    fn dispatch(&mut self, updates: Vec<(Ipv4Addr, crate::codec::Update)>, now: Instant) {
        let mut touched = Vec::new();
        for (to, update) in updates {
            if let Some(target) = self.peers.get_mut(&to) {
                let _ = target.session.send_update(&update, now);
                if !touched.contains(&to) {
                    touched.push(to);
                }
            }
        }
        for peer in touched {
            self.drain(peer, now);
        }
        self.generation += 1;
    }
}

fn known(
    prefix: Ipv4Net,
    peer: Option<Ipv4Addr>,
    attrs: &PathAttributes,
    best: bool,
) -> KnownRoute {
    KnownRoute {
        prefix,
        peer,
        as_path: attrs
            .as_path
            .as_ref()
            .map(|p| {
                p.segments
                    .iter()
                    .flat_map(|s| match s {
                        crate::codec::AsSegment::Sequence(a) | crate::codec::AsSegment::Set(a) => {
                            a.clone()
                        }
                    })
                    .collect()
            })
            .unwrap_or_default(),
        next_hop: attrs.next_hop,
        origin: attrs.origin,
        best,
    }
}
