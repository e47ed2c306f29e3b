//! The BGP speaker's I/O: a thread that owns the listening socket on our BGP address, the
//! TCP connections to the peers and the clock around the sans-IO [`bgp::Speaker`].
//!
//! It runs apart from the packet loop so that a slow or hostile TCP peer never delays
//! packets. The main loop tells it which peers exist and whether their tunnels are up
//! ([`BgpThread::set_peers`], [`BgpThread::set_reachable`]); it publishes what the speaker
//! knows in a [`BgpView`] and makes [`BgpThread::notify_fd`] readable when the forwarding
//! table changed.

use crate::receiver::EventFd;
use bgp::{ConnId, KnownRoute, Output, PeerConfig, PeerStatus, Speaker, SpeakerConfig};
use ipnet::Ipv4Net;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// BGP's TCP port.
pub const BGP_PORT: u16 = 179;
/// Longest sleep of the thread: the published view's durations are at most this old.
const TICK: Duration = Duration::from_secs(1);
/// Bytes read from a connection at once.
const READ_CHUNK: usize = 16 * 1024;
/// Most connections accepted per wake-up (a SYN flood must not starve the sessions).
const ACCEPT_BATCH: usize = 16;
/// Bytes a connection may have waiting to be written before it is given up (a peer that
/// stops reading must not grow our memory).
const MAX_PENDING_WRITE: usize = 1 << 20;

/// What the speaker knows, as last published.
#[derive(Debug, Clone, Default)]
pub struct BgpView {
    /// Bumped whenever `forwarding` may have changed.
    pub generation: u64,
    /// Best learned route per prefix: (prefix, peer).
    pub forwarding: Vec<(Ipv4Net, Ipv4Addr)>,
    /// Every configured peer.
    pub peers: Vec<PeerStatus>,
    /// Our own and all learned routes.
    pub known: Vec<KnownRoute>,
    /// What each peer is sent.
    pub advertised: Vec<(Ipv4Addr, Vec<KnownRoute>)>,
    /// The last inbound connection refused and why.
    pub last_refusal: Option<String>,
    /// Why the speaker cannot listen, if it cannot.
    pub error: Option<String>,
}

/// What the main loop asked for and the thread has not taken yet.
#[derive(Default)]
struct Inbox {
    peers: Option<Vec<PeerConfig>>,
    reachable: Vec<(Ipv4Addr, bool)>,
    stop: bool,
}

struct Shared {
    inbox: Mutex<Inbox>,
    view: Mutex<BgpView>,
    /// Wakes the thread.
    wake: EventFd,
    /// Wakes the main loop: the forwarding table changed.
    notify: EventFd,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running speaker thread.
pub struct BgpThread {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl BgpThread {
    /// Starts the speaker: it listens on `config.bgp_id` port 179 (a custom APIPA address,
    /// 169.254.0.0/16, is first added to the loopback) and tries each peer once it is
    /// reachable.
    pub fn start(config: SpeakerConfig, peers: Vec<PeerConfig>) -> io::Result<BgpThread> {
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox {
                peers: Some(peers),
                ..Inbox::default()
            }),
            view: Mutex::new(BgpView::default()),
            wake: EventFd::new()?,
            notify: EventFd::new()?,
        });
        let s = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("hn-bgp".into())
            .spawn(move || Runner::new(config, s).run())?;
        Ok(BgpThread {
            shared,
            handle: Some(handle),
        })
    }

    /// Replaces the configured peers (after a reload).
    pub fn set_peers(&self, peers: Vec<PeerConfig>) {
        lock(&self.shared.inbox).peers = Some(peers);
        self.shared.wake.signal();
    }

    /// Tells which peers' tunnels are up.
    pub fn set_reachable(&self, reachable: &[(Ipv4Addr, bool)]) {
        lock(&self.shared.inbox)
            .reachable
            .extend_from_slice(reachable);
        self.shared.wake.signal();
    }

    /// Readable when the forwarding table changed; [`BgpThread::view`] clears it.
    pub fn notify_fd(&self) -> BorrowedFd<'_> {
        self.shared.notify.as_fd()
    }

    /// What the speaker knows now; clears [`BgpThread::notify_fd`].
    pub fn view(&self) -> BgpView {
        self.shared.notify.clear();
        lock(&self.shared.view).clone()
    }

    /// What the speaker knows now, leaving the notification alone (for status).
    pub fn view_snapshot(&self) -> BgpView {
        lock(&self.shared.view).clone()
    }

    /// Stops the speaker: a Cease to every peer, connections closed.
    pub fn stop(&mut self) {
        lock(&self.shared.inbox).stop = true;
        self.shared.wake.signal();
        if let Some(h) = self.handle.take() {
            if h.join().is_err() {
                warn!("the BGP thread panicked");
            }
        }
    }
}

impl Drop for BgpThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One TCP connection of the speaker.
struct Conn {
    stream: TcpStream,
    peer: Ipv4Addr,
    /// Our connect() has not completed yet.
    connecting: bool,
    /// Octets waiting to be written.
    out: Vec<u8>,
    /// Close once `out` is written.
    closing: bool,
}

impl Conn {
    fn new(stream: TcpStream, peer: Ipv4Addr, connecting: bool) -> Conn {
        Conn {
            stream,
            peer,
            connecting,
            out: Vec::new(),
            closing: false,
        }
    }
}

/// The thread's state.
struct Runner {
    speaker: Speaker,
    shared: Arc<Shared>,
    listener: Option<TcpListener>,
    conns: BTreeMap<ConnId, Conn>,
    error: Option<String>,
    published: u64,
    buf: Vec<u8>,
}

impl Runner {
    fn new(config: SpeakerConfig, shared: Arc<Shared>) -> Runner {
        let address = config.bgp_id;
        let (listener, error) = match listen(address) {
            Ok(l) => (Some(l), None),
            Err(e) => {
                let msg = format!("cannot listen on {address}:{BGP_PORT}: {e}");
                warn!("{msg}");
                (None, Some(msg))
            }
        };
        info!(%address, asn = config.local_as, "BGP speaker started");
        Runner {
            speaker: Speaker::new(config),
            shared,
            listener,
            conns: BTreeMap::new(),
            error,
            published: 0,
            buf: vec![0; READ_CHUNK],
        }
    }

    fn run(mut self) {
        let mut last_publish = Instant::now();
        loop {
            let now = Instant::now();
            let timeout = self
                .speaker
                .poll_timeout()
                .map_or(TICK, |t| t.saturating_duration_since(now))
                .min(TICK);
            let ids: Vec<ConnId> = self.conns.keys().copied().collect();
            let (wake, accept, ready) = {
                let mut fds = vec![PollFd::new(self.shared.wake.as_fd(), PollFlags::POLLIN)];
                if let Some(l) = &self.listener {
                    fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
                }
                let first_conn = fds.len();
                for id in &ids {
                    let c = &self.conns[id];
                    let mut flags = PollFlags::POLLIN;
                    if c.connecting || !c.out.is_empty() {
                        flags |= PollFlags::POLLOUT;
                    }
                    fds.push(PollFd::new(c.stream.as_fd(), flags));
                }
                let ms = timeout.as_millis().clamp(1, 1000) as u16;
                if let Err(e) = nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
                    if e != nix::errno::Errno::EINTR {
                        warn!("BGP poll: {e}");
                    }
                }
                let revents = |f: &PollFd| f.revents().unwrap_or(PollFlags::empty());
                let wake = !revents(&fds[0]).is_empty();
                let accept = self.listener.is_some() && !revents(&fds[1]).is_empty();
                let ready: Vec<(ConnId, PollFlags)> = ids
                    .iter()
                    .zip(&fds[first_conn..])
                    .map(|(id, f)| (*id, revents(f)))
                    .filter(|(_, r)| !r.is_empty())
                    .collect();
                (wake, accept, ready)
            };
            let now = Instant::now();
            if wake {
                self.shared.wake.clear();
                if self.take_inbox(now) {
                    self.shutdown();
                    return;
                }
            }
            if accept {
                self.accept(now);
            }
            for (id, flags) in ready {
                self.on_ready(id, flags, now);
            }
            self.speaker.handle_timeout(now);
            self.carry_out(now);
            if self.speaker.generation() != self.published
                || now.saturating_duration_since(last_publish) >= TICK
            {
                last_publish = now;
                self.publish(now);
            }
        }
    }

    /// Applies what the main loop asked; returns whether to stop.
    fn take_inbox(&mut self, now: Instant) -> bool {
        let inbox = std::mem::take(&mut *lock(&self.shared.inbox));
        if let Some(peers) = inbox.peers {
            self.speaker.set_peers(&peers, now);
        }
        for (peer, up) in inbox.reachable {
            self.speaker.set_reachable(peer, up, now);
        }
        self.carry_out(now);
        inbox.stop
    }

    fn accept(&mut self, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            let Some(l) = &self.listener else { return };
            let (stream, from) = match l.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!("BGP accept: {e}");
                    return;
                }
            };
            let IpAddr::V4(peer) = from.ip() else {
                continue;
            };
            match self.speaker.accept(peer, now) {
                Some(id) => {
                    if stream.set_nonblocking(true).is_err() {
                        self.speaker.failed(id, "cannot configure the socket", now);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    self.conns.insert(id, Conn::new(stream, peer, false));
                }
                // dropping the stream closes it
                None => drop(stream),
            }
        }
    }

    fn on_ready(&mut self, id: ConnId, flags: PollFlags, now: Instant) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.connecting {
            if !flags.intersects(PollFlags::POLLOUT | PollFlags::POLLERR | PollFlags::POLLHUP) {
                return;
            }
            match c.stream.take_error() {
                Ok(None) if !flags.contains(PollFlags::POLLERR) => {
                    c.connecting = false;
                    self.speaker.connected(id, now);
                }
                Ok(err) => {
                    let why = format!(
                        "TCP connection to {}:{BGP_PORT} failed: {}",
                        c.peer,
                        err.map_or("error".to_string(), |e| e.to_string())
                    );
                    self.drop_conn(id, &why, now);
                }
                Err(e) => {
                    let why = format!("TCP connection to {}:{BGP_PORT} failed: {e}", c.peer);
                    self.drop_conn(id, &why, now);
                }
            }
            return;
        }
        if flags.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            loop {
                let Some(c) = self.conns.get_mut(&id) else {
                    return;
                };
                match c.stream.read(&mut self.buf) {
                    Ok(0) => {
                        let why = format!("TCP connection closed by {}", c.peer);
                        self.drop_conn(id, &why, now);
                        return;
                    }
                    Ok(n) => self.speaker.handle_bytes(id, &self.buf[..n], now),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let why = format!("TCP connection to {} lost: {e}", c.peer);
                        self.drop_conn(id, &why, now);
                        return;
                    }
                }
            }
        }
        self.write(id, now);
    }

    /// Writes what `id` has waiting; closes it when asked to and done.
    fn write(&mut self, id: ConnId, now: Instant) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        while !c.out.is_empty() && !c.connecting {
            match c.stream.write(&c.out) {
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let why = format!("TCP connection to {} lost: {e}", c.peer);
                    self.drop_conn(id, &why, now);
                    return;
                }
            }
        }
        let Some(c) = self.conns.get(&id) else { return };
        if c.closing && (c.out.is_empty() || c.connecting) {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
            self.conns.remove(&id);
        } else if c.out.len() > MAX_PENDING_WRITE {
            let why = format!("{} stopped reading: over 1 MiB unsent", c.peer);
            self.drop_conn(id, &why, now);
        }
    }

    fn drop_conn(&mut self, id: ConnId, why: &str, now: Instant) {
        if let Some(c) = self.conns.remove(&id) {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
        self.speaker.failed(id, why, now);
    }

    /// Carries out the speaker's outputs.
    fn carry_out(&mut self, now: Instant) {
        while let Some(o) = self.speaker.poll_output() {
            match o {
                Output::Connect { conn, peer } => match connect(self.speaker.config().bgp_id, peer)
                {
                    Ok(stream) => {
                        self.conns.insert(conn, Conn::new(stream, peer, true));
                    }
                    Err(e) => {
                        let why = format!("TCP connection to {peer}:{BGP_PORT} failed: {e}");
                        self.speaker.failed(conn, &why, now);
                    }
                },
                Output::Transmit { conn, bytes } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.out.extend_from_slice(&bytes);
                        self.write(conn, now);
                    }
                }
                Output::Close { conn } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.closing = true;
                        self.write(conn, now);
                    }
                }
            }
        }
    }

    fn publish(&mut self, now: Instant) {
        let s = &self.speaker;
        let view = BgpView {
            generation: s.generation(),
            forwarding: s.forwarding(),
            peers: s.peer_status(now),
            known: s.known_routes(),
            advertised: s
                .peer_status(now)
                .iter()
                .map(|p| (p.address, s.advertised(p.address)))
                .collect(),
            last_refusal: s.last_refusal().map(str::to_string),
            error: self.error.clone(),
        };
        let changed = {
            let mut v = lock(&self.shared.view);
            let changed = v.forwarding != view.forwarding;
            *v = view;
            changed
        };
        self.published = s.generation();
        if changed {
            self.shared.notify.signal();
        }
    }

    /// Cease to every peer, then close.
    fn shutdown(&mut self) {
        let now = Instant::now();
        self.speaker.set_peers(&[], now);
        self.carry_out(now);
        // one last attempt to write the NOTIFICATIONs (non-blocking)
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.write(id, now);
        }
        self.conns.clear();
        self.publish(now);
    }
}

/// The listening socket on our BGP address; a custom APIPA address is added to `lo` first.
fn listen(address: Ipv4Addr) -> io::Result<TcpListener> {
    let bind = || -> io::Result<TcpListener> {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.bind(&SockAddr::from(SocketAddrV4::new(address, BGP_PORT)))?;
        s.listen(16)?;
        s.set_nonblocking(true)?;
        Ok(s.into())
    };
    match bind() {
        Err(e)
            if e.raw_os_error() == Some(libc::EADDRNOTAVAIL)
                && address.octets()[..2] == [169, 254] =>
        {
            crate::tun::run_ip(&["-4", "addr", "add", &format!("{address}/32"), "dev", "lo"])?;
            bind()
        }
        r => r,
    }
}

/// A non-blocking connection from `local` to `peer` port 179, under way.
fn connect(local: Ipv4Addr, peer: Ipv4Addr) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    s.set_nonblocking(true)?;
    s.set_nodelay(true)?;
    s.bind(&SockAddr::from(SocketAddrV4::new(local, 0)))?;
    match s.connect(&SockAddr::from(SocketAddr::new(IpAddr::V4(peer), BGP_PORT))) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(s.into())
}
