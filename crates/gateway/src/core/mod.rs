//! The gateway's rules without its I/O, in the sans-IO style of the protocol crates: which
//! initiators start when (pacing), what a reload changes, where ESP goes, when NAT
//! keepalives are due, which Child SAs the data path wants rekeyed early, which routes the
//! tunnels need, and what status says. The runtime (`runtime.rs`) owns sockets, the TUN
//! device and the clock: it feeds datagrams and time in (`handle_*`), carries out what comes
//! out (`poll_*`), and uses the data path for packets. Time is always passed in, so these
//! rules are tested in virtual time.

mod bgp;
pub use bgp::Installed;

use crate::config::{ConnectionSpec, GatewayConfig};
use crate::datapath::{DataPath, RekeyCause};
use crate::lifecycle::{Keepalives, ReloadPlan, UPKEEP_INTERVAL};
use crate::ratelimit::{LogLimiter, Verdict};
use crate::status::{ConnectionReport, GatewayStatus, ReloadReport};
use crate::tun::{range_prefixes, GwRoute};
use ike::config::TrafficSelector;
use ike::endpoint::{ConnectionId, Endpoint, Event, Transmit};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

/// Initiators negotiating their first IKE SA with one peer address at once; the rest wait.
/// Each is a half-open SA at the peer until its IKE_AUTH, so this is our own responder's
/// per-source limit: up to it a hybridnet peer never asks for COOKIEs, and the pipeline is
/// deep enough to keep both sides' CPUs busy (10,000 tunnels to one peer at > 1,000/s).
/// A peer with lower limits (strongSwan drops IKE_SA_INIT past `block_threshold`, 5 per
/// address by default) answers the rest on retransmission or with a COOKIE, which the IKE
/// layer handles; either way all come up.
pub const MAX_STARTING_PER_PEER: usize = ike::endpoint::DEFAULT_HALF_OPEN_PER_SOURCE;
/// Initiators negotiating their first IKE SA at once over all peers: bounds the burst of
/// key-exchange work and datagrams at start-up when connections go to many peers.
pub const MAX_STARTING: usize = 64;
/// A start slot is released after this long even if the IKE SA is not up yet (dead peers
/// must not stall the queue); the connection keeps retrying in the IKE layer.
pub const START_SLOT: Duration = Duration::from_secs(2);

/// Why a reload was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The gateway was started without a config file to re-read.
    #[error("the gateway was started without a config file path")]
    NoConfigPath,
    /// The new file does not parse or validate.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// A setting of the process itself changed: only a restart applies it.
    #[error("{what} changed in {path}: that needs a restart, not a reload")]
    NeedsRestart {
        /// The settings that changed.
        what: String,
        /// The config file.
        path: String,
    },
}

/// Facts about the process only the runtime knows, for the status document.
#[derive(Debug, Clone)]
pub struct ProcessFacts {
    /// The TUN device's name.
    pub tun: String,
    /// Its MTU.
    pub tun_mtu: u16,
    /// Data-path threads in use.
    pub datapath_threads: u8,
    /// IKE datagrams the receive thread could not queue.
    pub inbox_dropped: u64,
    /// Control clients refused by credentials, and turned away as busy.
    pub control: (u64, u64),
}

/// One configured connection as the core tracks it.
#[derive(Default)]
struct Conn {
    /// The IKE endpoint's handle; `None` while the connection waits in the start queue.
    id: Option<ConnectionId>,
    ike_algorithms: Option<String>,
    /// A failure only the data path sees (a Child SA it could not install).
    last_error: Option<String>,
    /// When an initiating connection was handed to the IKE endpoint.
    started: Option<Instant>,
    /// Whether its first IKE SA came up or failed (it no longer holds a start slot).
    settled: bool,
    /// Completed IKE work by kind (IKE SAs set up, Child SAs installed and deleted).
    done: Done,
    /// Failures by cause (the NOTIFY or event name before the detail); empty, without an
    /// allocation, for the many connections that never fail.
    failures: std::collections::BTreeMap<String, u64>,
}

/// The outcomes every connection has, as plain counters: three map entries with their
/// keys' strings took ~450 bytes per connection.
#[derive(Default)]
struct Done {
    ike_sa_established: u64,
    child_sa_installed: u64,
    child_sa_deleted: u64,
}

impl Conn {
    fn fail(&mut self, key: String) {
        *self.failures.entry(key).or_default() += 1;
    }

    /// Outcomes as status shows them: by name, those that happened.
    fn outcomes(&self) -> std::collections::BTreeMap<String, u64> {
        let mut out = self.failures.clone();
        for (k, v) in [
            ("ike_sa_established", self.done.ike_sa_established),
            ("child_sa_installed", self.done.child_sa_installed),
            ("child_sa_deleted", self.done.child_sa_deleted),
        ] {
            if v > 0 {
                out.insert(k.into(), v);
            }
        }
        out
    }
}

/// The cause of a failure report: its first word (`AUTHENTICATION_FAILED`, `dead peer`, …).
fn cause_of(reason: &str) -> String {
    reason
        .split([':', '(', ';'])
        .next()
        .unwrap_or(reason)
        .trim()
        .to_string()
}

/// All rules of one gateway process; see the module documentation.
pub struct GatewayCore {
    cfg: GatewayConfig,
    endpoint: Endpoint,
    conns: Vec<Conn>,
    /// The IKE endpoint's connection handle → our index (config order, stable over reloads).
    by_ike: HashMap<ConnectionId, usize>,
    dp: DataPath,
    /// Initiating connections not yet handed to the IKE endpoint, per peer address.
    start_queue: HashMap<std::net::IpAddr, VecDeque<usize>>,
    /// Peers with queued initiators, served in turn.
    start_peers: VecDeque<std::net::IpAddr>,
    /// Connections handed to the IKE endpoint that still hold a start slot: (index, when).
    starting: Vec<(usize, Instant)>,
    keepalives: Keepalives,
    /// Keepalives due: (connection index, peer).
    keepalives_due: VecDeque<(usize, SocketAddr)>,
    /// When keepalives, peer moves and early rekeys are next looked at.
    next_upkeep: Instant,
    /// Connection indices removed by a reload (their slots stay so indices remain stable).
    retired: HashSet<usize>,
    reloads: u64,
    /// Per initiating connection: IKE_SA_INIT sent -> first Child SA installed, since it was
    /// last handed to the IKE endpoint (start or reload).
    setup_time: HashMap<usize, Duration>,
    /// Inbound SPIs of Child SAs whose early rekey (sequence numbers, bytes) was requested.
    rekeys_requested: HashSet<u32>,
    /// Learned routes forwarded (see `bgp.rs`).
    bgp_installed: Vec<Installed>,
    /// Learned routes refused, and why.
    bgp_refused: Vec<(ipnet::Ipv4Net, String)>,
    /// Log budget per cause, so hostile input cannot flood the log.
    logs: LogLimiter,
    started: Instant,
    /// The latest time passed in.
    now: Instant,
}

impl GatewayCore {
    /// The rules for `cfg` with an IKE endpoint of the caller's choice (tests pass one with
    /// seeded randomness); every connection is registered (initiators through the start
    /// queue).
    pub fn new(cfg: GatewayConfig, mut endpoint: Endpoint, now: Instant) -> GatewayCore {
        let n = cfg.connections.len();
        endpoint.reserve_connections(n);
        let mut core = GatewayCore {
            endpoint,
            conns: (0..n).map(|_| Conn::default()).collect(),
            by_ike: HashMap::new(),
            dp: DataPath::new(n),
            start_queue: HashMap::new(),
            start_peers: VecDeque::new(),
            starting: Vec::new(),
            keepalives: Keepalives::default(),
            keepalives_due: VecDeque::new(),
            next_upkeep: now,
            retired: HashSet::new(),
            reloads: 0,
            setup_time: HashMap::new(),
            rekeys_requested: HashSet::new(),
            bgp_installed: Vec::new(),
            bgp_refused: Vec::new(),
            logs: LogLimiter::default(),
            started: now,
            now,
            cfg,
        };
        for i in 0..n {
            core.begin(i, now);
        }
        core.start_pending(now);
        core.drain_events(now);
        core
    }

    /// The configuration in force.
    pub fn config(&self) -> &GatewayConfig {
        &self.cfg
    }

    /// The data path, for the runtime's packet loops.
    pub fn datapath(&mut self) -> &mut DataPath {
        &mut self.dp
    }

    /// The data path, read-only.
    pub fn datapath_ref(&self) -> &DataPath {
        &self.dp
    }

    /// Feeds one received IKE datagram (a drop is counted and logged within the budget).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        bytes: &[u8],
    ) {
        self.now = self.now.max(now);
        if let Err(e) = self.endpoint.handle_datagram(now, local, from, bytes) {
            if let Verdict::Log { suppressed } = self.logs.check(e.cause_name(), now) {
                let port = local.port();
                if suppressed > 0 {
                    debug!(%from, port, suppressed, "IKE datagram dropped: {e} ({suppressed} more of this kind left out of the log)");
                } else {
                    debug!(%from, port, "IKE datagram dropped: {e}");
                }
            }
        }
        self.drain_events(now);
    }

    /// Runs what is due at `now`: IKE timers, queued initiators, Child SAs that waited for
    /// the peer, and (once a second) keepalives, peer moves and early rekeys.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
        }
        self.start_pending(now);
        if self.dp.has_pending() {
            let moved = self.dp.activate_pending(now);
            if moved > 0 {
                debug!(
                    child_sas = moved,
                    "outbound moved to Child SAs the peer now uses"
                );
            }
        }
        if now >= self.next_upkeep {
            self.next_upkeep = now + UPKEEP_INTERVAL;
            self.upkeep(now);
        }
        self.drain_events(now);
    }

    /// When [`Self::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Instant {
        let mut t = self.next_upkeep;
        if let Some(ike) = self.endpoint.poll_timeout() {
            t = t.min(ike);
        }
        if !self.start_peers.is_empty() || self.dp.has_pending() {
            // queued initiators get a slot back by time; waiting Child SAs are looked at often
            t = t.min(self.now + Duration::from_millis(50));
        }
        t
    }

    /// Next IKE datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.endpoint.poll_transmit()
    }

    /// Next NAT keepalive to send: (connection index, peer); report it with
    /// [`Self::keepalive_sent`] once it left the socket.
    pub fn poll_keepalive(&mut self) -> Option<(usize, SocketAddr)> {
        self.keepalives_due.pop_front()
    }

    /// Books a keepalive that left the socket.
    pub fn keepalive_sent(&mut self, conn: usize) {
        self.keepalives.record_sent(conn);
    }

    /// Applies a new configuration per connection (by name): new ones are added, missing ones
    /// deleted, changed ones torn down and set up anew; unchanged ones and their SAs are not
    /// touched. A change to the process itself is refused and nothing changes.
    pub fn reload(
        &mut self,
        new: GatewayConfig,
        path: &str,
        now: Instant,
    ) -> Result<ReloadReport, ReloadError> {
        let mut changed = vec![];
        if new.local_address != self.cfg.local_address {
            changed.push("local_address");
        }
        if new.tun != self.cfg.tun {
            changed.push("[tun]");
        }
        if new.datapath_threads != self.cfg.datapath_threads {
            changed.push("datapath_threads");
        }
        if new.busy_poll != self.cfg.busy_poll {
            changed.push("busy_poll_us");
        }
        if new.cpu_placement != self.cfg.cpu_placement {
            changed.push("cpu_placement");
        }
        if new.control_group != self.cfg.control_group {
            changed.push("control_group");
        }
        if new.bgp != self.cfg.bgp {
            changed.push("[bgp]");
        }
        if new.vnet_router != self.cfg.vnet_router {
            changed.push("[vnet_router]");
        }
        if !changed.is_empty() {
            return Err(ReloadError::NeedsRestart {
                what: changed.join(", "),
                path: path.into(),
            });
        }
        let plan = ReloadPlan::new(
            self.cfg
                .connections
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.retired.contains(i)),
            &new.connections,
        );
        let report = plan.report(&self.cfg.connections, &new.connections);
        for &i in &plan.removed {
            self.retire(i, now);
        }
        for &(i, j) in &plan.replaced {
            self.retire(i, now);
            self.retired.remove(&i);
            self.cfg.connections[i] = new.connections[j].clone();
            self.conns[i] = Conn::default();
            self.begin(i, now);
        }
        for &j in &plan.added {
            self.cfg.connections.push(new.connections[j].clone());
            self.conns.push(Conn::default());
            let i = self.cfg.connections.len() - 1;
            self.dp.ensure_connections(i + 1);
            self.begin(i, now);
        }
        self.start_pending(now);
        self.drain_events(now);
        self.reloads += 1;
        info!(
            added = ?report.added,
            removed = ?report.removed,
            replaced = ?report.replaced,
            unchanged = report.unchanged.len(),
            "config reloaded"
        );
        Ok(report)
    }

    /// Deletes every connection (DELETE to each peer): the process is stopping.
    pub fn shutdown(&mut self, now: Instant) {
        let ids: Vec<ConnectionId> = self.conns.iter().filter_map(|c| c.id).collect();
        for id in ids {
            self.endpoint.remove_connection(id, now);
        }
        self.drain_events(now);
    }

    /// The routes the live connections want: their remote prefixes into the TUN device;
    /// for a connection whose peer narrowed the selectors (and refused more Child SAs), only
    /// what its Child SAs cover goes into the tunnel and the rest of its prefixes is
    /// refused with ICMP (a prohibit route), never dropped silently. A prefix its Child SAs
    /// cover whole stays in the tunnel (with one Child SA per selector pair, another pair
    /// toward it may be what is missing).
    pub fn wanted_routes(&self) -> Vec<GwRoute> {
        let narrowed: HashSet<ConnectionId> = self
            .endpoint
            .status()
            .into_iter()
            .filter(|s| s.selector_warning.is_some())
            .map(|s| s.conn)
            .collect();
        let mut want = Vec::new();
        for i in 0..self.cfg.connections.len() {
            if self.retired.contains(&i) {
                continue;
            }
            let is_narrowed = self.conns[i].id.is_some_and(|id| narrowed.contains(&id));
            let routed = self.routed_prefixes(i);
            if !is_narrowed {
                want.extend(routed.iter().map(|p| GwRoute::Tun(*p)));
                continue;
            }
            let covered = self.dp.covered_remote(i);
            let as_ts: Vec<TrafficSelector> = covered
                .iter()
                .map(|(start, end)| TrafficSelector {
                    start: *start,
                    end: *end,
                    protocol: 0,
                    start_port: 0,
                    end_port: u16::MAX,
                })
                .collect();
            want.extend(routed.iter().map(|p| {
                let whole = TrafficSelector::from_prefix(p.network(), p.prefix_len());
                if TrafficSelector::uncovered(&[whole], &as_ts).is_empty() {
                    GwRoute::Tun(*p)
                } else {
                    GwRoute::Prohibit(*p)
                }
            }));
            for (start, end) in covered {
                want.extend(
                    range_prefixes(start, end)
                        .into_iter()
                        .filter(|p| !routed.contains(p))
                        .map(GwRoute::Tun),
                );
            }
        }
        want.dedup();
        want
    }

    /// The status document; `facts` are what only the runtime knows.
    pub fn status(&self, now: Instant, facts: &ProcessFacts) -> GatewayStatus {
        let ike: HashMap<ConnectionId, ike::endpoint::ConnectionStatus> = self
            .endpoint
            .status()
            .into_iter()
            .map(|s| (s.conn, s))
            .collect();
        let mut ike_dropped = 0;
        let connections = self
            .cfg
            .connections
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.retired.contains(i))
            .map(|(i, spec)| {
                let c = &self.conns[i];
                let st = c.id.and_then(|id| ike.get(&id));
                ike_dropped += st.map(|s| s.ike_dropped).unwrap_or(0);
                self.report(i, spec, c, st, now)
            })
            .collect();
        GatewayStatus {
            pid: std::process::id(),
            local_address: self.cfg.local_address.to_string(),
            tun: facts.tun.clone(),
            tun_mtu: facts.tun_mtu,
            uptime_secs: now.saturating_duration_since(self.started).as_secs(),
            connections,
            drops: self.dp.global_drops(),
            ike_dropped: ike_dropped.max(self.endpoint.dropped()) + facts.inbox_dropped,
            cookies_sent: self.endpoint.cookies_sent(),
            half_open: self.endpoint.half_open() as u64,
            reloads: self.reloads,
            datapath_threads: facts.datapath_threads,
            busy_poll_us: self.cfg.busy_poll.as_micros() as u64,
            cpu_placement: self.cfg.cpu_placement.as_str().into(),
            ike_drops: self
                .endpoint
                .drops_by_cause()
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            log_suppressed: self.logs.suppressed(),
            control_refused: facts.control.0,
            control_busy: facts.control.1,
            bgp: None,
            vnet_routes: None,
            capture: None,
            batches: Default::default(),
        }
    }

    fn report(
        &self,
        i: usize,
        spec: &ConnectionSpec,
        c: &Conn,
        st: Option<&ike::endpoint::ConnectionStatus>,
        now: Instant,
    ) -> ConnectionReport {
        let (inbound, outbound, drops) = self.dp.connection_counters(i);
        let child_sas = self.dp.child_reports(i, now);
        ConnectionReport {
            name: spec.name.clone(),
            remote_address: spec
                .remote_address
                .map(|a| a.to_string())
                .unwrap_or_else(|| "%any".into()),
            state: match (st, c.id) {
                (Some(s), _) => s.state.clone(),
                (None, None) => "queued".into(),
                (None, Some(_)) => "down".into(),
            },
            ike_algorithms: st
                .and_then(|s| s.ike_algorithms.clone())
                .or_else(|| c.ike_algorithms.clone()),
            esp_algorithms: child_sas
                .iter()
                .find(|c| c.active)
                .map(|c| c.algorithms.clone()),
            ike_spi_i: format!("{:016x}", st.map(|s| s.ike_spi_i).unwrap_or(0)),
            ike_spi_r: format!("{:016x}", st.map(|s| s.ike_spi_r).unwrap_or(0)),
            established_secs: st
                .and_then(|s| s.established_at)
                .map(|t| now.saturating_duration_since(t).as_secs()),
            child_sas,
            inbound,
            outbound,
            drops,
            last_error: st
                .and_then(|s| s.last_error.clone())
                .or_else(|| c.last_error.clone()),
            nat_local: st.is_some_and(|s| s.nat_local),
            nat_remote: st.is_some_and(|s| s.nat_remote),
            peer: st.and_then(|s| s.remote).map(|a| a.to_string()),
            keepalives_sent: self.keepalives.sent(i),
            setup_ms: self.setup_time.get(&i).map(|d| d.as_millis() as u64),
            setup_us: self.setup_time.get(&i).map(|d| d.as_micros() as u64),
            failed_attempts: st.map_or(0, |s| s.failed_attempts),
            last_failed_attempt: st.and_then(|s| s.last_failed_attempt.clone()),
            retry_in_ms: st
                .and_then(|s| s.next_attempt)
                .map(|t| t.saturating_duration_since(now).as_millis() as u64),
            consecutive_failures: st.map_or(0, |s| s.consecutive_failures),
            selector_warning: st.and_then(|s| s.selector_warning.clone()),
            outcomes: c.outcomes(),
        }
    }

    /// Sets up connection `i` from its spec: prefixes for drop accounting, then the IKE
    /// endpoint (initiators through the start queue).
    fn begin(&mut self, i: usize, now: Instant) {
        if self.cfg.connections[i].bgp_peer.is_some() {
            self.apply_routed(i);
        } else {
            let prefixes = self.cfg.connections[i].remote_prefixes.clone();
            self.dp.set_routed_prefixes(i, None);
            self.dp.set_configured_prefixes(i, &prefixes);
        }
        if let (true, Some(peer)) = (
            self.cfg.connections[i].initiate,
            self.cfg.connections[i].remote_address,
        ) {
            let q = self.start_queue.entry(peer).or_default();
            if q.is_empty() {
                self.start_peers.push_back(peer);
            }
            q.push_back(i);
        } else {
            self.add_to_endpoint(i, now);
        }
    }

    fn add_to_endpoint(&mut self, i: usize, now: Instant) {
        let c = &self.cfg.connections[i];
        let id = self
            .endpoint
            .add_connection(c.to_ike(self.cfg.local_address), now);
        info!(conn = %c.name, remote = %c.remote_address.map(|a| a.to_string()).unwrap_or_else(|| "%any".into()), initiate = c.initiate, "connection added");
        self.conns[i].id = Some(id);
        self.conns[i].started = Some(now);
        self.by_ike.insert(id, i);
        self.setup_time.remove(&i);
    }

    /// Hands queued initiators to the IKE endpoint while fewer than
    /// [`MAX_STARTING_PER_PEER`] to their peer (and [`MAX_STARTING`] in all) are still
    /// negotiating their first IKE SA, peers taking turns (so a thousand connections do not
    /// all send IKE_SA_INIT in the same instant, and one big peer does not hold up the rest).
    fn start_pending(&mut self, now: Instant) {
        if self.start_peers.is_empty() {
            return;
        }
        let conns = &self.conns;
        self.starting.retain(|&(i, t)| {
            !conns[i].settled
                && conns[i].id.is_some()
                && now.saturating_duration_since(t) < START_SLOT
        });
        let mut per_peer: HashMap<std::net::IpAddr, usize> = HashMap::new();
        for &(i, _) in &self.starting {
            if let Some(p) = self.cfg.connections[i].remote_address {
                *per_peer.entry(p).or_default() += 1;
            }
        }
        // one pass over the waiting peers, each topped up to its share
        for _ in 0..self.start_peers.len() {
            if self.starting.len() >= MAX_STARTING {
                break;
            }
            let Some(peer) = self.start_peers.pop_front() else {
                break;
            };
            let busy = per_peer.entry(peer).or_default();
            let q = self.start_queue.entry(peer).or_default();
            let mut handed = vec![];
            while *busy < MAX_STARTING_PER_PEER && self.starting.len() + handed.len() < MAX_STARTING
            {
                let Some(i) = q.pop_front() else { break };
                handed.push(i);
                *busy += 1;
            }
            if q.is_empty() {
                self.start_queue.remove(&peer);
            } else {
                self.start_peers.push_back(peer);
            }
            for i in handed {
                self.add_to_endpoint(i, now);
                self.starting.push((i, now));
            }
        }
    }

    /// Deletes a connection's SAs (DELETE to the peer) and marks its slot unused.
    fn retire(&mut self, i: usize, now: Instant) {
        if let Some(peer) = self.cfg.connections[i].remote_address {
            if let Some(q) = self.start_queue.get_mut(&peer) {
                q.retain(|&q| q != i);
                if q.is_empty() {
                    self.start_queue.remove(&peer);
                    self.start_peers.retain(|p| *p != peer);
                }
            }
        }
        if let Some(id) = self.conns[i].id.take() {
            self.endpoint.remove_connection(id, now);
            self.by_ike.remove(&id);
        }
        self.drain_events(now);
        self.dp.forget_connection(i);
        self.keepalives.forget(i);
        self.retired.insert(i);
        info!(conn = %self.cfg.connections[i].name, "connection removed");
    }

    /// Once a second: NAT keepalives for connections behind NAT, the ESP destination moved
    /// to where the IKE SA now talks (a peer whose NAT mapping or address changed), and
    /// Child SAs the data path wants rekeyed early.
    fn upkeep(&mut self, now: Instant) {
        let peers: Vec<_> = self.endpoint.peers().collect();
        for (conn, remote, nat_local) in peers {
            let Some(&i) = self.by_ike.get(&conn) else {
                continue;
            };
            // Child SAs only exist after the float to 4500: ESP goes where IKE goes
            if remote.port() != 500 {
                let moved = self.dp.set_peer(i, remote);
                if moved > 0 {
                    info!(conn = %self.cfg.connections[i].name, peer = %remote, child_sas = moved, "peer moved: ESP follows");
                }
            }
            self.rekey_when_due(i, conn, now);
            if self.keepalives.due(i, nat_local, remote, now) {
                self.keepalives_due.push_back((i, remote));
            }
        }
    }

    /// Child SAs the data path wants replaced early: sequence numbers running out (either
    /// side rekeys its own outbound SA), or the byte half of the lifetime (Azure's
    /// saDataSizeKilobytes; the initiating side rekeys, like time lifetimes). Time lifetimes
    /// are the IKE layer's; these are only known in the data path.
    fn rekey_when_due(&mut self, i: usize, conn: ConnectionId, now: Instant) {
        let spec = &self.cfg.connections[i];
        let byte_limit = spec.child_lifetime_bytes.filter(|_| spec.initiate);
        for (spi, cause) in self.dp.rekey_due(i, byte_limit) {
            if self.rekeys_requested.insert(spi) {
                let why = match cause {
                    RekeyCause::Bytes => "Child SA byte lifetime reached",
                    RekeyCause::Sequence => "Child SA outbound sequence numbers near their end",
                };
                info!(conn = %spec.name, spi_in = format_args!("{spi:08x}"), "{why}: rekeying");
                self.endpoint.rekey_child(conn, spi, now);
            }
        }
    }

    /// Applies what the IKE endpoint reported: Child SAs into and out of the data path,
    /// connections down, failed attempts (logged within the budget).
    fn drain_events(&mut self, now: Instant) {
        while let Some(ev) = self.endpoint.poll_event() {
            self.apply_event(ev, now);
        }
    }

    fn apply_event(&mut self, ev: Event, now: Instant) {
        let conn = match &ev {
            Event::IkeSaEstablished { conn, .. }
            | Event::ChildSaInstalled { conn, .. }
            | Event::ChildSaDeleted { conn, .. }
            | Event::ConnectionDown { conn, .. }
            | Event::AttemptFailed { conn, .. } => *conn,
        };
        let Some(&i) = self.by_ike.get(&conn) else {
            return;
        };
        let name = self.cfg.connections[i].name.clone();
        match ev {
            Event::IkeSaEstablished { algorithms, .. } => {
                self.conns[i].done.ike_sa_established += 1;
                info!(conn = %name, %algorithms, "IKE SA established");
                self.conns[i].ike_algorithms = Some(algorithms);
                self.conns[i].last_error = None;
                self.conns[i].settled = true;
            }
            Event::ChildSaInstalled { child, .. } => {
                self.conns[i].done.child_sa_installed += 1;
                if let (true, Some(t0)) = (self.cfg.connections[i].initiate, self.conns[i].started)
                {
                    self.setup_time
                        .entry(i)
                        .or_insert_with(|| now.saturating_duration_since(t0));
                }
                match self.dp.install(i, &child, now) {
                    Ok(()) => info!(
                        conn = %name,
                        spi_in = format_args!("{:08x}", child.spi_in),
                        spi_out = format_args!("{:08x}", child.spi_out),
                        peer = %child.peer,
                        "CHILD_SA installed"
                    ),
                    Err(e) => {
                        error!(conn = %name, "cannot install CHILD_SA: {e}");
                        self.conns[i].last_error = Some(format!("cannot install CHILD_SA: {e}"));
                    }
                }
            }
            Event::ChildSaDeleted {
                spi_in, spi_out, ..
            } => {
                self.rekeys_requested.remove(&spi_in);
                self.conns[i].done.child_sa_deleted += 1;
                if self.dp.remove(spi_in) {
                    info!(conn = %name, spi_in = format_args!("{spi_in:08x}"), spi_out = format_args!("{spi_out:08x}"), "CHILD_SA removed");
                }
            }
            Event::ConnectionDown { reason, .. } => {
                let key = format!("down: {}", cause_of(&reason.to_string()));
                self.conns[i].fail(key);
                warn!(conn = %name, "connection down: {reason}");
                self.dp.remove_connection(i);
                self.conns[i].settled = true;
            }
            Event::AttemptFailed { reason, .. } => {
                let key = format!("failed attempt: {}", cause_of(&reason.to_string()));
                self.conns[i].fail(key);
                if let Verdict::Log { suppressed } = self.logs.check("attempt_failed", now) {
                    warn!(
                        conn = %name,
                        suppressed,
                        "unauthenticated negotiation attempt failed (nothing changed): {reason}"
                    );
                }
            }
        }
    }
}
