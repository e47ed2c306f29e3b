//! The gateway process: a `poll(2)` loop over the UDP 500 socket, the TUN device, the control
//! socket, a signalfd and the receive direction (port 4500 itself, or the eventfd of the IKE
//! messages a receive thread passes on); the IKE endpoint's timers bound the wait. This loop
//! runs IKE and the send direction (TUN → seal → UDP); the receive direction is
//! [`crate::receiver`], inline or on its own thread (`datapath_threads`).

use crate::bgp_side::BgpSide;
use crate::config::{tunnel_mtu, GatewayConfig};
use crate::control::{Access, ControlError, ControlRequest, ControlServer};
use crate::core::{GatewayCore, ProcessFacts, ReloadError};
use crate::datapath::{DataPath, PacketDrop};
use crate::lifecycle::{KEEPALIVE, UPKEEP_INTERVAL};
use crate::offload::{clamp_mss, complete_checksum, plan_super, VnetHdr, GSO_NONE, VNET_HDR_LEN};
use crate::receiver::{EventFd, IkeInbox, Receiver};
use crate::status::{GatewayStatus, ReloadReport};
use crate::tun::{self, Tun};
use crate::udp::{self, GSO_MAX_BYTES, GSO_MAX_SEGMENTS};
use crate::vnet_routes::VnetRoutes;
use crate::wait::ready;
use ike::endpoint::Endpoint;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{setsockopt, sockopt};
use quinn_udp::UdpSocketState;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

/// The largest datagram or packet the loop handles (IPv4 total-length limit).
const MAX_PACKET: usize = 65_535;
/// Room for the ESP header, IV, padding and ICV around a maximum-size inner packet.
const SEAL_SLACK: usize = 128;
/// Packets taken from one source per loop turn, so no source starves the others.
const BATCH: usize = 256;
/// Socket buffer size asked for (forced past rmem_max when running as root).
const SOCKET_BUFFER: usize = 8 << 20;
/// Most time spent flushing DELETEs on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(300);

/// Why the gateway could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A UDP socket could not be opened or bound.
    #[error("cannot bind UDP {addr}: {cause}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        cause: io::Error,
    },
    /// The TUN device could not be created or configured.
    #[error("TUN device {name}: {cause}")]
    Tun {
        /// The name concerned.
        name: String,
        /// The underlying error.
        cause: io::Error,
    },
    /// The routes into the TUN device could not be installed.
    #[error("{0}")]
    Routes(#[from] crate::netlink::RouteError),
    /// The control socket could not be created.
    #[error("{0}")]
    Control(#[from] ControlError),
    /// Signal handling could not be set up.
    #[error("signal handling: {0}")]
    Signal(io::Error),
    /// `poll(2)` failed.
    #[error("poll: {0}")]
    Poll(io::Error),
    /// The receive thread could not be started or stopped unexpectedly.
    #[error("receive thread: {0}")]
    Receiver(io::Error),
    /// The BGP speaker's thread could not be started.
    #[error("BGP: {0}")]
    Bgp(io::Error),
    /// The routes an earlier run left in the VNet router could not be removed.
    #[error("VNet router: {0}")]
    VnetRouter(io::Error),
}

/// How the process was started (things not in the config file).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where the status socket lives.
    pub control_path: PathBuf,
    /// The config file, re-read on `reload` (control socket) and SIGHUP; `None` refuses reloads.
    pub config_path: Option<PathBuf>,
}

/// A running gateway: all state of the event loop.
pub struct Gateway {
    /// The rules: IKE, connections, data path, status.
    core: GatewayCore,
    sock500: UdpSocket,
    sock4500: UdpSocket,
    /// What quinn-udp keeps about `sock4500` (whether GSO still works), shared with the
    /// receive direction.
    udp4500: Arc<UdpSocketState>,
    tun: Arc<Tun>,
    tun_mtu: u16,
    /// IKE messages that arrived on port 4500.
    ike_inbox: Arc<IkeInbox>,
    /// Where the receive direction runs.
    receive: ReceivePath,
    control: ControlServer,
    signals: SignalFd,
    routes: Vec<tun::GwRoute>,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// The config file reloads re-read.
    config_path: Option<PathBuf>,
    /// The BGP speaker, for a gateway with `[bgp]`.
    bgp: Option<BgpSide>,
    /// Our routes in the VNet's router, for a gateway with `[vnet_router]`.
    vnet: Option<VnetRoutes>,
    /// Why the VNet router did not take them, if it did not.
    vnet_error: Option<String>,
    /// The data path's route generation BGP and the VNet routes last followed.
    dp_seen: u64,
    /// The packet capture, shared with the receive direction.
    capture: Arc<crate::capture::Capture>,
    /// Packets per system call on both directions.
    batches: Arc<crate::receiver::BatchSizes>,
}

fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, GatewayError> {
    let s = UdpSocket::bind(addr).map_err(|cause| GatewayError::Bind { addr, cause })?;
    s.set_nonblocking(true)
        .map_err(|cause| GatewayError::Bind { addr, cause })?;
    // the *FORCE options pass rmem_max/wmem_max but need CAP_NET_ADMIN; else the plain ones
    if setsockopt(&s, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
        let _ = setsockopt(&s, sockopt::RcvBuf, &SOCKET_BUFFER);
    }
    if setsockopt(&s, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
        let _ = setsockopt(&s, sockopt::SndBuf, &SOCKET_BUFFER);
    }
    Ok(s)
}

/// Blocks SIGTERM, SIGINT and SIGHUP (reload) and returns a signalfd that reports them.
fn signal_fd() -> io::Result<SignalFd> {
    let set = SigSet::from_iter([Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP]);
    set.thread_block()?;
    Ok(SignalFd::with_flags(
        &set,
        SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
    )?)
}

/// The TUN device's descriptor, for `poll(2)`.
fn tun_fd(tun: &Tun) -> BorrowedFd<'_> {
    // SAFETY: `tun` owns the descriptor, open for as long as the returned borrow of it lives.
    // Kept because `Tun` has no `AsFd` yet: tun.rs is left to the TUN crate evaluation.
    unsafe { BorrowedFd::borrow_raw(tun.as_raw_fd()) }
}

/// Where the receive direction (UDP 4500 → decrypt → TUN) runs.
enum ReceivePath {
    /// Called from the main loop when port 4500 is readable (`datapath_threads = 1`).
    Inline(Box<Receiver>),
    /// On its own thread, stopped through `stop` (`datapath_threads = 2`).
    Thread {
        /// `None` once joined.
        handle: Option<std::thread::JoinHandle<()>>,
        stop: Arc<EventFd>,
    },
}

impl std::ops::Drop for ReceivePath {
    /// A gateway that fails to start, or is dropped without `run`, must not leave its receive
    /// thread behind.
    fn drop(&mut self) {
        if let ReceivePath::Thread { handle, stop } = self {
            stop.signal();
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}

/// The data-path thread count when the config does not say. A receive thread pays off when
/// the gateway has cores to itself; on a small host it shares with the peer gateway and the
/// VMs (the lab), where measured on 2 cores it carried the same TCP throughput as one loop
/// but added 50 % round-trip time (a cross-thread wake-up per packet burst). So: a receive
/// thread from 4 cores up.
fn default_threads() -> u8 {
    match std::thread::available_parallelism() {
        Ok(n) if n.get() >= 4 => 2,
        _ => 1,
    }
}

/// Child SAs installed or removed since the last trim after which freed memory is handed
/// back (see [`release_free_memory`]): a start-up or reconnect burst, not a rekey here and
/// there.
const TRIM_AFTER_CHILD_SAS: usize = 1000;

/// Hands freed heap pages back to the kernel. glibc keeps them otherwise, so a burst of
/// short-lived memory stays in the process's RSS for good: the parse of a config with
/// 10,000 connections at start-up (~80 MB), or a status document of that many (~20 MB,
/// serialised on the control thread after the snapshot). A few ms, only at those moments.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims the allocator's own free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Gateway {
    /// Opens sockets, the TUN device, routes and the control socket, and registers every
    /// connection with the IKE endpoint (initiators start at once).
    pub fn start(cfg: GatewayConfig, opts: RunOptions) -> Result<Gateway, GatewayError> {
        let signals = signal_fd().map_err(GatewayError::Signal)?;
        let local = cfg.local_address;
        let sock500 = bind_udp(SocketAddr::new(local, 500))?;
        let sock4500 = bind_udp(SocketAddr::new(local, 4500))?;
        let udp4500 = Arc::new(udp::prepare(&sock4500).map_err(|cause| GatewayError::Bind {
            addr: SocketAddr::new(local, 4500),
            cause,
        })?);
        let udp_gro = udp4500.gro_segments() > 1;
        let tun = Tun::open(&cfg.tun.name, true).map_err(|cause| GatewayError::Tun {
            name: cfg.tun.name.clone(),
            cause,
        })?;
        let tun_mtu = match cfg.tun.mtu {
            Some(m) => m,
            None => {
                let path = cfg
                    .path_mtu
                    .or_else(|| tun::interface_mtu_for(local))
                    .unwrap_or(1500);
                let props: Vec<&ike::config::Proposal> = cfg
                    .connections
                    .iter()
                    .flat_map(|c| c.esp_proposals.iter())
                    .collect();
                tunnel_mtu(path, local.is_ipv6(), &props)
            }
        };
        tun.configure(tun_mtu).map_err(|cause| GatewayError::Tun {
            name: tun.name().into(),
            cause,
        })?;
        let access = Access::with_group(cfg.control_group.as_deref())?;
        let control = ControlServer::bind(&opts.control_path, access)?;
        let tun = Arc::new(tun);
        let core = GatewayCore::new(cfg, Endpoint::new(), Instant::now());
        let ike_inbox = Arc::new(IkeInbox::new().map_err(GatewayError::Receiver)?);
        let capture = Arc::new(crate::capture::Capture::default());
        let batches = Arc::new(crate::receiver::BatchSizes::default());
        let receiver = Receiver::new(
            sock4500.try_clone().map_err(GatewayError::Receiver)?,
            Arc::clone(&udp4500),
            Arc::clone(&tun),
            tun_mtu,
            core.datapath_ref().inbound(),
            Arc::clone(&ike_inbox),
            core.config().wait_policy(),
        )
        .with_capture(Arc::clone(&capture), Arc::clone(&batches));
        let threads = core
            .config()
            .datapath_threads
            .unwrap_or_else(default_threads);
        let receive = if threads > 1 {
            let stop = Arc::new(EventFd::new().map_err(GatewayError::Receiver)?);
            let s = Arc::clone(&stop);
            let handle = std::thread::Builder::new()
                .name("hn-receive".into())
                .spawn(move || receiver.run(s))
                .map_err(GatewayError::Receiver)?;
            ReceivePath::Thread {
                handle: Some(handle),
                stop,
            }
        } else {
            ReceivePath::Inline(Box::new(receiver))
        };
        let mut gw = Gateway {
            core,
            sock500,
            sock4500,
            udp4500,
            tun,
            tun_mtu,
            ike_inbox,
            receive,
            control,
            signals,
            routes: Vec::new(),
            rx: vec![0; MAX_PACKET + SEAL_SLACK],
            tx: vec![0; MAX_PACKET + SEAL_SLACK],
            config_path: opts.config_path.clone(),
            bgp: None,
            vnet: None,
            vnet_error: None,
            dp_seen: u64::MAX,
            capture,
            batches,
        };
        let mut seen = std::collections::HashSet::new();
        let prefixes: Vec<ipnet::IpNet> = gw
            .core
            .config()
            .connections
            .iter()
            .flat_map(|c| c.remote_prefixes.iter().copied())
            .filter(|p| seen.insert(*p))
            .collect();
        // in batches over rtnetlink: one `ip` process per route was most of the start-up
        // of a gateway with thousands of connections
        if let Err(e) = crate::netlink::replace_routes(&prefixes, gw.tun.name()) {
            let _ = crate::netlink::delete_routes(&prefixes, gw.tun.name());
            return Err(GatewayError::Routes(e));
        }
        gw.routes = prefixes.into_iter().map(tun::GwRoute::Tun).collect();
        // a BGP peer's /32 into its tunnel, before the speaker tries it
        gw.sync_routes();
        if let Some(r) = gw.core.config().vnet_router.clone() {
            match VnetRoutes::new(&r) {
                Ok(v) => gw.vnet = Some(v),
                Err(cause) => {
                    gw.remove_routes();
                    return Err(GatewayError::VnetRouter(cause));
                }
            }
        }
        gw.bgp = match BgpSide::start(&gw.core) {
            Ok(b) => b,
            Err(cause) => {
                gw.remove_routes();
                return Err(GatewayError::Bgp(cause));
            }
        };
        info!(
            local = %local,
            tun = gw.tun.name(),
            mtu = tun_mtu,
            tso = gw.tun.tso(),
            udp_gro,
            datapath_threads = threads,
            busy_poll_us = gw.core.config().busy_poll.as_micros() as u64,
            cpu_placement = gw.core.config().cpu_placement.as_str(),
            control = %gw.control.path().display(),
            connections = gw.core.config().connections.len(),
            "gateway started"
        );
        for w in &gw.core.config().warnings {
            warn!("{w}");
        }
        gw.flush();
        // the config's parse tree (~8 KB per connection) is gone by now
        release_free_memory();
        Ok(gw)
    }

    /// The control socket path.
    pub fn control_path(&self) -> &Path {
        self.control.path()
    }

    /// The TUN MTU in use.
    pub fn tun_mtu(&self) -> u16 {
        self.tun_mtu
    }

    /// Runs the event loop until SIGTERM/SIGINT, then shuts down gracefully.
    pub fn run(mut self) -> Result<(), GatewayError> {
        let mut waiter = self.core.config().wait_policy().waiter();
        let mut next_housekeeping = Instant::now();
        // a status document was served: give its memory back at the next housekeeping
        // (the control thread serialises and drops it meanwhile)
        let mut trim_due = false;
        // Child SAs at the last trim: a burst of set-ups leaves its handshakes' memory
        // scattered between the SAs that stay
        let mut children_at_trim = self.core.datapath_ref().child_count();
        loop {
            let d = self
                .core
                .poll_timeout()
                .saturating_duration_since(Instant::now());
            // round up so we never wake just before the deadline and spin
            let timeout_ms = d.as_micros().div_ceil(1000).min(1000) as u16;
            // built each turn: the borrows of `self` must end before the handlers take it
            let mut fds = [
                PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.sock500.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.receive_fd(), PollFlags::POLLIN),
                PollFd::new(tun_fd(&self.tun), PollFlags::POLLIN),
                PollFd::new(self.control.fd(), PollFlags::POLLIN),
                // without BGP the signalfd stands in (its readiness is handled above)
                PollFd::new(
                    self.bgp.as_ref().map_or(self.signals.as_fd(), BgpSide::fd),
                    PollFlags::POLLIN,
                ),
            ];
            match waiter.wait(&mut fds, PollTimeout::from(timeout_ms)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(GatewayError::Poll(e)),
            }
            let hit = fds.map(|f| ready(&f));
            if hit[0] {
                let sig = self.read_signal();
                if sig == libc::SIGHUP as u32 {
                    if let Err(e) = self.reload() {
                        error!("reload on SIGHUP refused: {e}");
                    }
                } else {
                    info!(signal = sig, "shutting down");
                    break;
                }
            }
            if hit[1] {
                self.drain_ike_500();
            }
            if hit[2] {
                self.on_receive_ready();
            }
            if hit[3] {
                self.drain_tun();
            }
            if hit[4] {
                for req in self.control.pending() {
                    match req {
                        ControlRequest::Status(reply) => {
                            let _ = reply.try_send(self.status());
                            trim_due = true;
                        }
                        ControlRequest::CaptureStart(req, reply) => {
                            let _ = reply.try_send(self.start_capture(*req));
                        }
                        ControlRequest::CaptureStop(reply) => {
                            let r = self.capture.stop();
                            if let Some(r) = &r {
                                info!(file = %r.path.display(), packets = r.packets, "packet capture stopped");
                            }
                            let _ = reply.try_send(r);
                        }
                        ControlRequest::EspSa(reply) => {
                            warn!("ESP SA keys exported for packet decryption (esp_sa)");
                            let local = self.core.config().local_address;
                            let _ = reply.try_send(self.core.datapath_ref().esp_sa_export(local));
                        }
                        ControlRequest::Reload(reply) => {
                            let outcome = self.reload();
                            if let Err(e) = &outcome {
                                error!("reload refused: {e}");
                            }
                            let _ = reply.try_send(outcome);
                        }
                    }
                }
            }
            if hit[5] && self.bgp.is_some() {
                self.take_bgp_routes();
            }
            let now = Instant::now();
            self.core.handle_timeout(now);
            self.flush();
            // a tunnel came up or went down: BGP and the VNet follow at once
            if self.core.datapath_ref().generation() != self.dp_seen {
                self.dp_seen = self.core.datapath_ref().generation();
                if let Some(b) = &mut self.bgp {
                    b.tick(&self.core);
                }
                self.sync_vnet_routes();
            }
            if now >= next_housekeeping {
                next_housekeeping = now + UPKEEP_INTERVAL;
                let children = self.core.datapath_ref().child_count();
                if std::mem::take(&mut trim_due)
                    || children.abs_diff(children_at_trim) >= TRIM_AFTER_CHILD_SAS
                {
                    release_free_memory();
                    children_at_trim = children;
                }
                self.sync_routes();
                self.sync_vnet_routes();
                if let ReceivePath::Thread {
                    handle: Some(h), ..
                } = &self.receive
                {
                    if h.is_finished() {
                        error!("the receive thread stopped; shutting down");
                        self.shutdown();
                        return Err(GatewayError::Receiver(io::Error::other(
                            "the receive thread stopped unexpectedly",
                        )));
                    }
                }
            }
        }
        self.shutdown();
        Ok(())
    }

    /// Starts a capture, limited to the connection the request names.
    fn start_capture(&mut self, req: crate::capture::CaptureRequest) -> Result<(), String> {
        let conn = match &req.connection {
            None => None,
            Some(name) => Some(
                self.core
                    .config()
                    .connections
                    .iter()
                    .position(|c| &c.name == name)
                    .ok_or_else(|| {
                        crate::capture::CaptureError::NoConnection(name.clone()).to_string()
                    })?,
            ),
        };
        let peers = conn
            .map(|i| {
                let mut p: Vec<std::net::IpAddr> = self.core.config().connections[i]
                    .remote_address
                    .into_iter()
                    .collect();
                p.extend(self.core.datapath_ref().peers_of(i).iter().map(|a| a.ip()));
                p.dedup();
                p
            })
            .unwrap_or_default();
        let path = req.path.clone();
        self.capture
            .start(req, conn, peers)
            .map_err(|e| e.to_string())?;
        info!(file = %path.display(), "packet capture started");
        Ok(())
    }

    /// The speaker's forwarding table changed: into the core, the routes and the VNet.
    fn take_bgp_routes(&mut self) {
        if let Some(b) = &mut self.bgp {
            if b.take_routes(&mut self.core) {
                self.sync_routes();
                self.sync_vnet_routes();
            }
        }
    }

    /// Brings the VNet router's routes through us in line with what the core wants.
    fn sync_vnet_routes(&mut self) {
        let Some(v) = &mut self.vnet else { return };
        let want = self.core.vnet_routes();
        if &want == v.installed() && self.vnet_error.is_none() {
            return;
        }
        self.vnet_error = v.sync(&want).err().map(|e| {
            warn!("VNet router routes: {e}");
            e.to_string()
        });
    }

    /// What the loop waits on for the receive direction.
    fn receive_fd(&self) -> BorrowedFd<'_> {
        match &self.receive {
            ReceivePath::Inline(r) => r.fd(),
            ReceivePath::Thread { .. } => self.ike_inbox.fd(),
        }
    }

    /// Port 4500 (inline) or the IKE inbox (threaded) is readable: receive, then hand the
    /// IKE messages that came in on 4500 to the endpoint.
    fn on_receive_ready(&mut self) {
        if let ReceivePath::Inline(r) = &mut self.receive {
            // the inbox's lock and eventfd only when the batch held IKE at all
            if !r.drain() {
                return;
            }
        }
        let local = SocketAddr::new(self.core.config().local_address, 4500);
        for (from, msg) in self.ike_inbox.take() {
            self.core.handle_datagram(Instant::now(), local, from, &msg);
        }
    }

    /// The number of the next pending signal; 0 if none (or the read failed).
    fn read_signal(&self) -> u32 {
        match self.signals.read_signal() {
            Ok(Some(info)) => info.ssi_signo,
            _ => 0,
        }
    }

    fn drain_ike_500(&mut self) {
        let local = SocketAddr::new(self.core.config().local_address, 500);
        for _ in 0..BATCH {
            match self.sock500.recv_from(&mut self.rx) {
                Ok((n, from)) => {
                    if self.capture.on() {
                        self.capture.outer(&self.rx[..n], from, local, None, true);
                    }
                    self.core
                        .handle_datagram(Instant::now(), local, from, &self.rx[..n]);
                }
                Err(e) if would_block(&e) => break,
                Err(e) => {
                    warn!("recv on UDP 500: {e}");
                    break;
                }
            }
        }
    }

    /// Reads what the TUN device holds (up to [`BATCH`] reads), seals it and sends it: sealed
    /// packets are laid out back to back in the send buffer and leave in runs, one UDP GSO
    /// call per run, whether they came from TCP super-packets (split into MSS-sized segments
    /// only here) or are single small packets read one by one.
    fn drain_tun(&mut self) {
        let vnet = self.tun.vnet_hdr();
        let off = if vnet { VNET_HDR_LEN } else { 0 };
        let out = EspOut {
            sock: &self.sock4500,
            state: &self.udp4500,
        };
        let mut run = SendRun::default();
        let capturing = self.capture.on();
        let local4500 = SocketAddr::new(self.core.config().local_address, 4500);
        let capture = capturing.then_some((&*self.capture, local4500));
        let dp = self.core.datapath();
        let mut read = 0;
        for _ in 0..BATCH {
            let n = match self.tun.read(&mut self.rx[..off + MAX_PACKET]) {
                Ok(n) => {
                    read += 1;
                    n
                }
                Err(e) if would_block(&e) => break,
                Err(e) => {
                    warn!("TUN read: {e}");
                    break;
                }
            };
            if n <= off {
                continue;
            }
            let hdr = if vnet {
                VnetHdr::parse(&self.rx[..off]).unwrap_or_default()
            } else {
                VnetHdr::default()
            };
            let pkt = &mut self.rx[off..n];
            let Ok(sa) = dp.route(pkt) else { continue };
            if capturing {
                self.capture.inner(pkt, sa.conn);
            }
            if hdr.gso_type == GSO_NONE {
                clamp_mss(pkt, self.tun_mtu, !hdr.needs_csum());
                if hdr.needs_csum()
                    && complete_checksum(pkt, hdr.csum_start as usize, hdr.csum_offset as usize)
                        .is_err()
                {
                    dp.count(Some(sa.conn), PacketDrop::InvalidInner);
                    continue;
                }
                let len = pkt.len();
                if !run.fits(sa.peer, sa.conn, dp.sealed_len(&sa, len)) {
                    run.flush(&out, &self.tx, dp);
                }
                let at = run.used;
                self.tx[at + sa.header_len..][..len].copy_from_slice(pkt);
                run.seal_and_push(dp, &mut self.tx, &sa, len, capture);
                continue;
            }
            // a TCP super-packet: split into MSS-sized segments straight into the send
            // buffer and seal each in place
            let plan = match plan_super(pkt, &hdr) {
                Ok(p) => p,
                Err(e) => {
                    debug!("TUN super-packet dropped: {e}");
                    dp.count(Some(sa.conn), PacketDrop::InvalidInner);
                    continue;
                }
            };
            for i in 0..plan.count {
                let inner_len = plan.segment_len(i);
                if !run.fits(sa.peer, sa.conn, dp.sealed_len(&sa, inner_len)) {
                    run.flush(&out, &self.tx, dp);
                }
                let at = run.used;
                plan.write_segment(pkt, i, &mut self.tx[at + sa.header_len..]);
                run.seal_and_push(dp, &mut self.tx, &sa, inner_len, capture);
            }
        }
        run.flush(&out, &self.tx, dp);
        if read > 0 {
            self.batches.tun_read(read);
        }
    }

    /// Sends what the core queued: IKE datagrams, then NAT keepalives.
    fn flush(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            let sock = if t.local_port == 500 {
                &self.sock500
            } else {
                &self.sock4500
            };
            if self.capture.on() {
                let local = SocketAddr::new(self.core.config().local_address, t.local_port);
                self.capture.outer(&t.payload, local, t.remote, None, true);
            }
            if let Err(e) = sock.send_to(&t.payload, t.remote) {
                warn!(remote = %t.remote, port = t.local_port, "IKE send failed: {e}");
            }
        }
        while let Some((conn, peer)) = self.core.poll_keepalive() {
            match self.sock4500.send_to(&KEEPALIVE, peer) {
                Ok(_) => self.core.keepalive_sent(conn),
                Err(e) => debug!(%peer, "NAT keepalive: {e}"),
            }
        }
    }

    /// The status document served on the control socket.
    pub fn status(&self) -> GatewayStatus {
        let facts = ProcessFacts {
            tun: self.tun.name().to_string(),
            tun_mtu: self.tun_mtu,
            datapath_threads: match self.receive {
                ReceivePath::Inline(_) => 1,
                ReceivePath::Thread { .. } => 2,
            },
            inbox_dropped: self.ike_inbox.dropped(),
            control: self.control.counters(),
        };
        let mut status = self.core.status(Instant::now(), &facts);
        status.bgp = self.bgp.as_ref().map(|b| b.report(&self.core));
        status.capture = self.capture.report();
        status.batches = self.batches.report();
        status.vnet_routes = self.vnet.as_ref().map(|v| crate::status::VnetRoutesReport {
            routes: v.installed().keys().map(|p| p.to_string()).collect(),
            error: self.vnet_error.clone(),
        });
        status
    }

    /// Re-reads the config file and applies it per connection (see [`GatewayCore::reload`]);
    /// an invalid file changes nothing.
    fn reload(&mut self) -> Result<ReloadReport, ReloadError> {
        let path = self.config_path.clone().ok_or(ReloadError::NoConfigPath)?;
        let new = GatewayConfig::load(&path)?;
        let report = self
            .core
            .reload(new, &path.display().to_string(), Instant::now())?;
        if let Some(b) = &mut self.bgp {
            b.reconfigured(&self.core);
        }
        self.sync_routes();
        self.flush();
        Ok(report)
    }

    /// Makes the gateway's routes match what the core wants. Routes into the tunnel go in
    /// and out in rtnetlink batches; the rare prohibit routes through `ip`.
    fn sync_routes(&mut self) {
        let want = self.core.wanted_routes();
        if want == self.routes {
            return;
        }
        let dev = self.tun.name().to_string();
        let key = |r: &tun::GwRoute| (matches!(r, tun::GwRoute::Tun(_)), r.prefix());
        let want_set: std::collections::HashSet<(bool, ipnet::IpNet)> =
            want.iter().map(key).collect();
        let want_prefixes: std::collections::HashSet<ipnet::IpNet> =
            want.iter().map(|w| w.prefix()).collect();
        let mut gone_tun = vec![];
        self.routes.retain(|r| {
            // a prefix whose kind changes is replaced in place by the add below
            if want_prefixes.contains(&r.prefix()) {
                return want_set.contains(&key(r));
            }
            match r {
                tun::GwRoute::Tun(p) => gone_tun.push(*p),
                tun::GwRoute::Prohibit(_) => {
                    if let Err(e) = r.del(&dev) {
                        warn!("removing route {r:?}: {e}");
                    }
                }
            }
            false
        });
        if let Err(e) = crate::netlink::delete_routes(&gone_tun, &dev) {
            warn!("removing routes: {e}");
        }
        let have: std::collections::HashSet<(bool, ipnet::IpNet)> =
            self.routes.iter().map(key).collect();
        // into the tunnel first, so covered traffic is never refused in between
        let (tun_first, prohibit): (Vec<tun::GwRoute>, Vec<tun::GwRoute>) = want
            .into_iter()
            .filter(|r| !have.contains(&key(r)))
            .partition(|r| matches!(r, tun::GwRoute::Tun(_)));
        let add: Vec<ipnet::IpNet> = tun_first.iter().map(|r| r.prefix()).collect();
        match crate::netlink::replace_routes(&add, &dev) {
            Ok(()) => self.routes.extend(tun_first),
            Err(e) => {
                warn!("routes via {dev}: {e}");
                // one at a time, to keep those the kernel takes
                for r in tun_first {
                    match r.add(&dev) {
                        Ok(()) => self.routes.push(r),
                        Err(e) => warn!("route {r:?} via {dev}: {e}"),
                    }
                }
            }
        }
        for r in prohibit {
            match r.add(&dev) {
                Ok(()) => {
                    if let tun::GwRoute::Prohibit(p) = r {
                        warn!(prefix = %p, "no Child SA covers it (the peer narrowed the selectors): refused with ICMP");
                    }
                    self.routes.push(r)
                }
                Err(e) => warn!("route {r:?} via {dev}: {e}"),
            }
        }
    }

    fn remove_routes(&mut self) {
        let (tun_routes, prohibit): (Vec<tun::GwRoute>, Vec<tun::GwRoute>) =
            std::mem::take(&mut self.routes)
                .into_iter()
                .partition(|r| matches!(r, tun::GwRoute::Tun(_)));
        let prefixes: Vec<ipnet::IpNet> = tun_routes.iter().map(|r| r.prefix()).collect();
        if let Err(e) = crate::netlink::delete_routes(&prefixes, self.tun.name()) {
            warn!("removing routes: {e}");
        }
        for r in prohibit {
            if let Err(e) = r.del(self.tun.name()) {
                warn!("removing route {r:?}: {e}");
            }
        }
    }

    /// Sends DELETE for every IKE SA, removes routes; the TUN device goes with the process.
    fn shutdown(&mut self) {
        if let Some(b) = &mut self.bgp {
            b.stop();
        }
        // the VNet sends to the other instance (if any) before our tunnels go
        if let Some(v) = &mut self.vnet {
            if let Err(e) = v.sync(&Default::default()) {
                warn!("removing VNet router routes: {e}");
            }
        }
        self.core.shutdown(Instant::now());
        self.flush();
        // give the DELETEs a moment to leave and be answered (answers are read, not awaited)
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.core.datapath_ref().child_count() > 0 || Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let left_ms = left.as_millis().clamp(1, u16::MAX.into()) as u16;
            let mut fds = [
                PollFd::new(self.sock500.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.receive_fd(), PollFlags::POLLIN),
            ];
            if !matches!(nix::poll::poll(&mut fds, left_ms), Ok(n) if n > 0) {
                break;
            }
            self.drain_ike_500();
            self.on_receive_ready();
            self.flush();
        }
        if let ReceivePath::Thread { handle, stop } = &mut self.receive {
            stop.signal();
            if handle.take().is_some_and(|h| h.join().is_err()) {
                error!("the receive thread panicked");
            }
        }
        self.remove_routes();
        info!("gateway stopped");
    }
}

/// Sealed ESP packets at the start of the send buffer, back to back, that can leave in one
/// UDP GSO call: one connection and peer, equal sizes except a shorter last one, within the
/// kernel's GSO limits.
struct SendRun {
    peer: Option<SocketAddr>,
    conn: usize,
    used: usize,
    count: usize,
    lens: [usize; GSO_MAX_SEGMENTS],
}

impl Default for SendRun {
    fn default() -> Self {
        SendRun {
            peer: None,
            conn: 0,
            used: 0,
            count: 0,
            lens: [0; GSO_MAX_SEGMENTS],
        }
    }
}

impl SendRun {
    /// Seals the inner packet of `inner_len` bytes that the caller wrote at the run's end
    /// (behind room for the ESP header) in place and adds it to the run; `capture` (with our
    /// port-4500 address) records the ESP packet.
    fn seal_and_push(
        &mut self,
        dp: &mut DataPath,
        tx: &mut [u8],
        sa: &crate::datapath::OutSa,
        inner_len: usize,
        capture: Option<(&crate::capture::Capture, SocketAddr)>,
    ) {
        let at = self.used;
        if let Ok(l) = dp.seal_in_place(sa, &mut tx[at..], inner_len) {
            if let Some((c, local)) = capture {
                c.outer(&tx[at..at + l], local, sa.peer, Some(sa.conn), false);
            }
            self.push(sa.peer, sa.conn, l);
        }
    }

    /// Whether a packet of `need` sealed bytes for `peer` on connection `conn` can join.
    fn fits(&self, peer: SocketAddr, conn: usize, need: usize) -> bool {
        if self.count == 0 {
            return true;
        }
        let seg = self.lens[0];
        self.peer == Some(peer)
            && self.conn == conn
            && self.count < GSO_MAX_SEGMENTS
            && self.used + need <= GSO_MAX_BYTES
            && need <= seg
            && self.lens[self.count - 1] == seg
    }

    /// Adds the packet just sealed at `used`.
    fn push(&mut self, peer: SocketAddr, conn: usize, len: usize) {
        self.peer = Some(peer);
        self.conn = conn;
        self.lens[self.count] = len;
        self.count += 1;
        self.used += len;
    }

    /// Sends the run (if any) and starts an empty one.
    fn flush(&mut self, out: &EspOut<'_>, buf: &[u8], dp: &mut DataPath) {
        if let (Some(peer), true) = (self.peer, self.count > 0) {
            send_run(
                out,
                &buf[..self.used],
                &self.lens[..self.count],
                peer,
                dp,
                self.conn,
            );
        }
        self.used = 0;
        self.count = 0;
    }
}

/// Where sealed ESP packets leave: the port-4500 socket and quinn-udp's state for it.
struct EspOut<'a> {
    sock: &'a UdpSocket,
    state: &'a UdpSocketState,
}

/// Sends consecutive ESP packets of `lens` from `buf` to `peer`: one UDP GSO call when they
/// are equal-sized (the last may be shorter) and the socket still segments, otherwise one
/// datagram each.
fn send_run(
    out: &EspOut<'_>,
    buf: &[u8],
    lens: &[usize],
    peer: SocketAddr,
    dp: &mut DataPath,
    conn: usize,
) {
    let total: usize = lens.iter().sum();
    if lens.len() > 1 && lens.len() <= out.state.max_gso_segments() {
        let seg = lens[0];
        let uniform =
            lens[..lens.len() - 1].iter().all(|&l| l == seg) && lens[lens.len() - 1] <= seg;
        if uniform {
            match udp::send(out.state, out.sock, &buf[..total], Some(seg), peer) {
                Ok(()) => return,
                Err(e) if out.state.max_gso_segments() <= 1 => {
                    warn!("UDP GSO refused ({e}); sending packets one by one from now on");
                }
                Err(e) => {
                    debug!(%peer, "ESP GSO send: {e}");
                    for _ in lens {
                        dp.count(Some(conn), PacketDrop::IoError);
                    }
                    return;
                }
            }
        }
    }
    let mut off = 0;
    for &l in lens {
        if let Err(e) = udp::send(out.state, out.sock, &buf[off..off + l], None, peer) {
            debug!(%peer, "ESP send: {e}");
            dp.count(Some(conn), PacketDrop::IoError);
        }
        off += l;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs stay within what one UDP GSO send can carry: one peer and connection, equal
    /// segment sizes with only the last one shorter, at most 64 segments and 65,000 bytes.
    #[test]
    fn send_runs_only_join_what_one_gso_call_can_carry() {
        let p: SocketAddr = "192.0.2.1:4500".parse().unwrap();
        let q: SocketAddr = "192.0.2.2:4500".parse().unwrap();
        let mut run = SendRun::default();
        assert!(run.fits(q, 7, 65_000), "anything starts an empty run");
        run.push(p, 0, 1400);
        assert!(run.fits(p, 0, 1400));
        assert!(!run.fits(q, 0, 1400), "another peer");
        assert!(!run.fits(p, 1, 1400), "another connection");
        assert!(!run.fits(p, 0, 1401), "larger than the segment size");
        assert!(run.fits(p, 0, 90), "a shorter packet may end the run");
        run.push(p, 0, 90);
        assert!(!run.fits(p, 0, 90), "nothing after a shorter packet");
        let mut run = SendRun::default();
        for _ in 0..46 {
            assert!(run.fits(p, 0, 1400));
            run.push(p, 0, 1400);
        }
        assert!(!run.fits(p, 0, 1400), "65,000-byte limit: {}", run.used);
        let mut run = SendRun::default();
        for _ in 0..GSO_MAX_SEGMENTS {
            run.push(p, 0, 100);
        }
        assert!(!run.fits(p, 0, 100), "segment limit");
    }
}
