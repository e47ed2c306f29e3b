//! The receive direction of the data path: UDP 4500 → ESP open → TUN, on its own thread when
//! the gateway has more than one (`datapath_threads = 2`), otherwise called from the main loop.
//!
//! Port 4500 carries three things, told apart by their first bytes (RFC 3948 §2.2): a single
//! 0xFF byte is a NAT keepalive, four zero bytes (the non-ESP marker) start an IKE message,
//! anything else is ESP whose first four bytes are the SPI. IKE messages are rare; they are
//! copied into an [`IkeInbox`] for the thread that runs the IKE endpoint, which an eventfd
//! wakes. ESP never leaves this thread: the receive half of the SAs ([`Inbound`]) is locked
//! once per `recvmmsg` batch, decrypted packets are joined into TCP super-packets and written
//! to the TUN device here, so one thread handles every SA's inbound packets in arrival order.

use crate::datapath::{Inbound, PacketDrop};
use crate::offload::{clamp_mss, Coalescer, Push, VNET_HDR_LEN};
use crate::tun::Tun;
use crate::udp::{RecvBatch, RECV_BATCH};
use crate::wait::{ready, WaitPolicy};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::EfdFlags;
use quinn_udp::UdpSocketState;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex};
use tracing::debug;

/// Bytes per receive slot: a whole UDP GRO run of datagrams fits.
const RX_SLOT: usize = 65_536;
/// `recvmmsg` calls per [`Receiver::drain`], so the main loop (when inline) is not starved.
const DRAIN_ROUNDS: usize = 8;
/// IKE messages waiting for the IKE thread beyond this many are dropped (a flood must not
/// grow memory without bound; the peer retransmits).
const INBOX_LIMIT: usize = 1024;

/// An eventfd: how one thread wakes another that sleeps in `poll(2)`.
#[derive(Debug)]
pub struct EventFd(nix::sys::eventfd::EventFd);

impl EventFd {
    /// A non-blocking eventfd.
    pub fn new() -> io::Result<EventFd> {
        let flags = EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC;
        Ok(EventFd(nix::sys::eventfd::EventFd::from_flags(flags)?))
    }

    /// Makes the fd readable.
    pub fn signal(&self) {
        // a full counter (EAGAIN) only means "already set"
        let _ = self.0.write(1);
    }

    /// Resets the fd to not readable.
    pub fn clear(&self) {
        // EAGAIN when already clear
        let _ = self.0.read();
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// IKE datagrams that arrived on port 4500, waiting for the IKE endpoint's thread.
#[derive(Debug)]
pub struct IkeInbox {
    queue: Mutex<Vec<(SocketAddr, Vec<u8>)>>,
    wake: EventFd,
    dropped: std::sync::atomic::AtomicU64,
}

impl IkeInbox {
    /// An empty inbox.
    pub fn new() -> io::Result<IkeInbox> {
        Ok(IkeInbox {
            queue: Mutex::new(Vec::new()),
            wake: EventFd::new()?,
            dropped: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn push(&self, from: SocketAddr, msg: &[u8]) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= INBOX_LIMIT {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        q.push((from, msg.to_vec()));
        drop(q);
        self.wake.signal();
    }

    /// Takes every waiting message (oldest first).
    pub fn take(&self) -> Vec<(SocketAddr, Vec<u8>)> {
        self.wake.clear();
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Readable when messages wait.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// Messages dropped because the inbox was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Everything the receive direction owns.
pub struct Receiver {
    sock: UdpSocket,
    /// What quinn-udp keeps about the port-4500 socket (shared with the sending side).
    udp: Arc<UdpSocketState>,
    tun: Arc<Tun>,
    tun_mtu: u16,
    inbound: Arc<Mutex<Inbound>>,
    ike: Arc<IkeInbox>,
    batch: RecvBatch,
    /// Joins decrypted TCP segments into super-packets for the TUN device.
    gro: Coalescer,
    /// Connection of the packets pending in `gro` (for drop accounting).
    gro_conn: usize,
    /// Busy poll and CPU placement when on a thread of its own (see `wait.rs`).
    wait: WaitPolicy,
    /// The packet capture (checked once per batch).
    capture: Arc<crate::capture::Capture>,
    /// Datagrams per receive call, for status.
    batches: Arc<BatchSizes>,
    /// Our port-4500 address, for the outer packets a capture records.
    local: SocketAddr,
}

impl Receiver {
    /// A receiver on (a duplicate of) the port-4500 socket.
    pub fn new(
        sock: UdpSocket,
        udp: Arc<UdpSocketState>,
        tun: Arc<Tun>,
        tun_mtu: u16,
        inbound: Arc<Mutex<Inbound>>,
        ike: Arc<IkeInbox>,
        wait: WaitPolicy,
    ) -> Receiver {
        let uso = tun.uso();
        let local = sock
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 4500)));
        Receiver {
            capture: Arc::default(),
            batches: Arc::default(),
            local,
            sock,
            udp,
            tun,
            tun_mtu,
            inbound,
            ike,
            batch: RecvBatch::new(RX_SLOT),
            gro: Coalescer::new().with_udp(uso),
            gro_conn: 0,
            wait,
        }
    }

    /// Records into `capture` (the gateway's, shared with the send direction) and counts its
    /// batches into `batches`.
    pub fn with_capture(
        mut self,
        capture: Arc<crate::capture::Capture>,
        batches: Arc<BatchSizes>,
    ) -> Receiver {
        self.capture = capture;
        self.batches = batches;
        self
    }

    /// The socket to wait on.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Receives and handles what is queued on port 4500 (up to a bounded amount); returns
    /// whether IKE messages went to the inbox, so an inline caller looks there only then.
    pub fn drain(&mut self) -> bool {
        let mut ike = false;
        let vnet = self.tun.vnet_hdr();
        for _ in 0..DRAIN_ROUNDS {
            let n = match self.batch.recv(&self.udp, &self.sock) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!("recv on UDP 4500: {e}");
                    break;
                }
            };
            if n > 0 {
                self.batches.udp_recv(n);
            }
            let mut inb = self.inbound.lock().unwrap_or_else(|e| e.into_inner());
            let capturing = self.capture.on();
            for i in 0..n {
                let (msg, from, seg) = self.batch.get(i);
                // one message may hold several datagrams of `seg` bytes joined by UDP GRO
                for pkt in msg.chunks_mut(seg) {
                    let len = pkt.len();
                    if len == 1 && pkt[0] == 0xff {
                        continue; // NAT keepalive (RFC 3948 §2.3)
                    }
                    if len >= 4 && pkt[..4] == [0, 0, 0, 0] {
                        if capturing {
                            self.capture.outer(pkt, from, self.local, None, true);
                        }
                        self.ike.push(from, pkt);
                        ike = true;
                        continue;
                    }
                    // opening decrypts in place: a capture keeps the ciphertext first
                    let outer = capturing.then(|| pkt.to_vec());
                    let (range, conn) = match inb.open_in_place(pkt) {
                        Ok(r) => r,
                        Err(d) => {
                            if d != PacketDrop::Replayed {
                                debug!(%from, reason = ?d, "ESP packet dropped");
                            }
                            continue;
                        }
                    };
                    if let Some(o) = outer {
                        self.capture.outer(&o, from, self.local, Some(conn), false);
                        self.capture.inner(&pkt[range.clone()], conn);
                    }
                    clamp_mss(&mut pkt[range.clone()], self.tun_mtu, true);
                    if vnet {
                        match self.gro.push(&pkt[range.clone()]) {
                            Push::Merged => {
                                self.gro_conn = conn;
                                continue;
                            }
                            Push::Rejected if self.gro.pending() => {
                                flush_gro(
                                    &self.tun,
                                    &mut self.gro,
                                    &mut inb,
                                    self.gro_conn,
                                    &self.batches,
                                );
                                if self.gro.push(&pkt[range.clone()]) == Push::Merged {
                                    self.gro_conn = conn;
                                    continue;
                                }
                            }
                            Push::Rejected => {}
                        }
                    }
                    // the ESP header and IV (>= 16 bytes) precede the inner packet: room for
                    // the TUN's virtio_net_hdr without a copy
                    let start = if vnet {
                        range.start - VNET_HDR_LEN
                    } else {
                        range.start
                    };
                    pkt[start..range.start].fill(0);
                    self.batches.tun_write(1);
                    if let Err(e) = self.tun.write(&pkt[start..range.end]) {
                        if e.kind() != io::ErrorKind::WouldBlock {
                            debug!("TUN write: {e}");
                        }
                        inb.count(Some(conn), PacketDrop::IoError);
                    }
                }
            }
            flush_gro(
                &self.tun,
                &mut self.gro,
                &mut inb,
                self.gro_conn,
                &self.batches,
            );
            if n < RECV_BATCH {
                break;
            }
        }
        ike
    }

    /// The receiving thread's loop: waits for datagrams and drains them until `stop` is
    /// signalled.
    pub fn run(mut self, stop: Arc<EventFd>) {
        let mut waiter = self.wait.waiter();
        loop {
            // built each turn: the socket's borrow must end before `drain` takes `self`
            let mut fds = [
                PollFd::new(self.sock.as_fd(), PollFlags::POLLIN),
                PollFd::new(stop.as_fd(), PollFlags::POLLIN),
            ];
            match waiter.wait(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::error!("receiver poll: {e}");
                    return;
                }
            }
            if ready(&fds[1]) {
                return;
            }
            if ready(&fds[0]) {
                self.drain();
            }
        }
    }
}

/// Writes the pending coalesced super-packet (if any) to the TUN device.
fn flush_gro(tun: &Tun, gro: &mut Coalescer, inb: &mut Inbound, conn: usize, batches: &BatchSizes) {
    let segs = gro.segments();
    if let Some(p) = gro.flush() {
        batches.tun_write(segs);
        if let Err(e) = tun.write(p) {
            if e.kind() != io::ErrorKind::WouldBlock {
                debug!("TUN write (coalesced): {e}");
            }
            inb.count(Some(conn), PacketDrop::IoError);
        }
    }
}

/// How many packets the data path took per system call, in buckets: how well batching works
/// (a loop that wakes for one packet at a time pays a syscall and a wake-up per packet).
#[derive(Debug, Default)]
pub struct BatchSizes {
    tun_read: [std::sync::atomic::AtomicU64; 5],
    udp_recv: [std::sync::atomic::AtomicU64; 5],
    tun_write: [std::sync::atomic::AtomicU64; 5],
}

/// The buckets' names, in order.
pub const BATCH_BUCKETS: [&str; 5] = ["1", "2-4", "5-16", "17-64", "65+"];

fn bucket(n: usize) -> usize {
    match n {
        0 | 1 => 0,
        2..=4 => 1,
        5..=16 => 2,
        17..=64 => 3,
        _ => 4,
    }
}

impl BatchSizes {
    /// One pass over the TUN device that read `n` packets (`n > 0`).
    pub fn tun_read(&self, n: usize) {
        self.tun_read[bucket(n)].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// One receive call on port 4500 that returned `n` datagrams (`n > 0`).
    pub fn udp_recv(&self, n: usize) {
        self.udp_recv[bucket(n)].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// One TUN write that carried `n` packets (`n > 0`).
    pub fn tun_write(&self, n: usize) {
        self.tun_write[bucket(n)].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The counts per bucket: (TUN reads, UDP receives, TUN writes), by name.
    pub fn report(&self) -> crate::status::BatchReport {
        let read = |a: &[std::sync::atomic::AtomicU64; 5]| {
            BATCH_BUCKETS
                .iter()
                .zip(a)
                .map(|(b, c)| (b.to_string(), c.load(std::sync::atomic::Ordering::Relaxed)))
                .collect()
        };
        crate::status::BatchReport {
            tun_read: read(&self.tun_read),
            udp_recv: read(&self.udp_recv),
            tun_write: read(&self.tun_write),
        }
    }
}
