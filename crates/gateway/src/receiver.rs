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
use crate::wait::Waiter;
use quinn_udp::UdpSocketState;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A non-blocking eventfd.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd with valid flags; the fd is owned from here on.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by eventfd and is not owned elsewhere.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Makes the fd readable.
    pub fn signal(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writing 8 bytes from a local buffer; a full counter only means "already set".
        unsafe { libc::write(self.0.as_raw_fd(), one.as_ptr().cast(), 8) };
    }

    /// Resets the fd to not readable.
    pub fn clear(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reading 8 bytes into a local buffer; EAGAIN when already clear.
        unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
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
    pub fn fd(&self) -> RawFd {
        self.wake.as_raw_fd()
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
    /// Busy poll after work when on a thread of its own (see `wait.rs`).
    busy_poll: std::time::Duration,
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
        busy_poll: std::time::Duration,
    ) -> Receiver {
        Receiver {
            sock,
            udp,
            tun,
            tun_mtu,
            inbound,
            ike,
            batch: RecvBatch::new(RX_SLOT),
            gro: Coalescer::new(),
            gro_conn: 0,
            busy_poll,
        }
    }

    /// The socket to wait on.
    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
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
            let mut inb = self.inbound.lock().unwrap_or_else(|e| e.into_inner());
            for i in 0..n {
                let (msg, from, seg) = self.batch.get(i);
                // one message may hold several datagrams of `seg` bytes joined by UDP GRO
                for pkt in msg.chunks_mut(seg) {
                    let len = pkt.len();
                    if len == 1 && pkt[0] == 0xff {
                        continue; // NAT keepalive (RFC 3948 §2.3)
                    }
                    if len >= 4 && pkt[..4] == [0, 0, 0, 0] {
                        self.ike.push(from, pkt);
                        ike = true;
                        continue;
                    }
                    let (range, conn) = match inb.open_in_place(pkt) {
                        Ok(r) => r,
                        Err(d) => {
                            if d != PacketDrop::Replayed {
                                debug!(%from, reason = ?d, "ESP packet dropped");
                            }
                            continue;
                        }
                    };
                    clamp_mss(&mut pkt[range.clone()], self.tun_mtu, true);
                    if vnet {
                        match self.gro.push(&pkt[range.clone()]) {
                            Push::Merged => {
                                self.gro_conn = conn;
                                continue;
                            }
                            Push::Rejected if self.gro.pending() => {
                                flush_gro(&self.tun, &mut self.gro, &mut inb, self.gro_conn);
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
                    if let Err(e) = self.tun.write(&pkt[start..range.end]) {
                        if e.kind() != io::ErrorKind::WouldBlock {
                            debug!("TUN write: {e}");
                        }
                        inb.count(Some(conn), PacketDrop::IoError);
                    }
                }
            }
            flush_gro(&self.tun, &mut self.gro, &mut inb, self.gro_conn);
            if n < RECV_BATCH {
                break;
            }
        }
        ike
    }

    /// The receiving thread's loop: waits for datagrams and drains them until `stop` is
    /// signalled.
    pub fn run(mut self, stop: Arc<EventFd>) {
        let mut fds = [
            libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let mut waiter = Waiter::new(self.busy_poll);
        loop {
            match waiter.wait(&mut fds, -1) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::error!("receiver poll: {e}");
                    return;
                }
            }
            if fds[1].revents != 0 {
                return;
            }
            if fds[0].revents != 0 {
                self.drain();
            }
        }
    }
}

/// Writes the pending coalesced super-packet (if any) to the TUN device.
fn flush_gro(tun: &Tun, gro: &mut Coalescer, inb: &mut Inbound, conn: usize) {
    if let Some(p) = gro.flush() {
        if let Err(e) = tun.write(p) {
            if e.kind() != io::ErrorKind::WouldBlock {
                debug!("TUN write (coalesced): {e}");
            }
            inb.count(Some(conn), PacketDrop::IoError);
        }
    }
}
