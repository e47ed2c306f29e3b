//! Traffic checks between namespaces: ping, and a TCP transfer whose content is verified by
//! SHA-256 on both ends. The TCP ends are plain Rust sockets opened on threads that entered
//! the namespaces (no nc/socat).

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};
use testkit::netns::Netns;
use testkit::process::wait_for_every;

/// Pings `dst` from `ns` `count` times; fails with ping's output if any reply is missing.
pub fn ping(ns: &Netns, dst: &str, count: u32) -> Result<String> {
    let out = ns.exec_unchecked(
        "ping",
        &["-c", &count.to_string(), "-i", "0.2", "-W", "2", dst],
    )?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !text.contains(&format!("{count} received")) {
        bail!("ping {dst} from {} failed:\n{text}", ns.name());
    }
    Ok(text)
}

/// Pings until one reply arrives (the first packets may trigger or wait for a Child SA).
pub fn ping_until_reply(ns: &Netns, dst: &str, timeout: Duration) -> Result<()> {
    // no pause between tries: each ping waits up to a second for its reply
    wait_for_every(
        Duration::ZERO,
        timeout,
        &format!("a ping reply from {dst} in {}", ns.name()),
        || {
            ns.exec_unchecked("ping", &["-c", "1", "-W", "1", dst])
                .is_ok_and(|o| o.status.success())
                .then_some(())
        },
    )
}

/// Deterministic pseudo-random bytes (xorshift64*), so both ends can agree without sharing.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Result of [`tcp_transfer`].
#[derive(Debug, Clone)]
pub struct Transfer {
    /// Bytes the receiver got.
    pub bytes: usize,
    /// Wall time of the transfer.
    pub elapsed: Duration,
}

/// Sends `len` pseudo-random bytes over TCP from `client_ns` to a listener on
/// `server_ip:port` in `server_ns`; the receiver checks length and SHA-256 and echoes the
/// digest back, which the sender checks too.
pub fn tcp_transfer(
    server_ns: &Netns,
    server_ip: &str,
    port: u16,
    client_ns: &Netns,
    len: usize,
) -> Result<Transfer> {
    let seed = 0x9e37_79b9_7f4a_7c15 ^ len as u64 ^ port as u64;
    let data = pattern(len, seed);
    let digest: [u8; 32] = Sha256::digest(&data).into();
    let addr: SocketAddr = format!("{server_ip}:{port}").parse()?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = server_ns.run_in(move || -> Result<(usize, [u8; 32])> {
        let l = TcpListener::bind(addr).with_context(|| format!("bind {addr}"))?;
        ready_tx.send(()).ok();
        l.set_nonblocking(false)?;
        let (mut s, _) = accept_with_timeout(&l, Duration::from_secs(30))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0usize;
        let mut len_buf = [0u8; 8];
        s.read_exact(&mut len_buf).context("read length")?;
        let want = u64::from_be_bytes(len_buf) as usize;
        while total < want {
            let n = s
                .read(&mut buf[..(want - total).min(256 * 1024)])
                .context("read data")?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            total += n;
        }
        let got: [u8; 32] = h.finalize().into();
        s.write_all(&got).context("echo digest")?;
        Ok((total, got))
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .context("TCP server did not start")?;
    let start = Instant::now();
    let client = client_ns.run_in(move || -> Result<[u8; 32]> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .with_context(|| format!("connect {addr}"))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.write_all(&(data.len() as u64).to_be_bytes())?;
        s.write_all(&data).context("send data")?;
        let mut echo = [0u8; 32];
        s.read_exact(&mut echo).context("read digest echo")?;
        Ok(echo)
    });
    let echo = client
        .join()
        .map_err(|_| anyhow::anyhow!("client thread panicked"))??
        .context("TCP client")?;
    let elapsed = start.elapsed();
    let (total, got) = server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))??
        .context("TCP server")?;
    if total != len {
        bail!("receiver got {total} bytes, expected {len}");
    }
    if got != digest || echo != digest {
        bail!("content mismatch: SHA-256 of received data differs from what was sent");
    }
    Ok(Transfer {
        bytes: total,
        elapsed,
    })
}

fn accept_with_timeout(l: &TcpListener, timeout: Duration) -> Result<(TcpStream, SocketAddr)> {
    l.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    loop {
        match l.accept() {
            Ok((s, a)) => {
                s.set_nonblocking(false)?;
                return Ok((s, a));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    bail!("no TCP connection within {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Opens a TCP connection from `client_ns` to `server_ip:port` in `server_ns` and returns the
/// MSS the server's socket uses toward the client (`TCP_MAXSEG` right after accept, before
/// any data): it reflects the MSS option of the client's SYN as it arrived.
pub fn tcp_server_mss(
    server_ns: &Netns,
    server_ip: &str,
    port: u16,
    client_ns: &Netns,
) -> Result<u32> {
    use std::os::fd::AsRawFd;
    let addr: SocketAddr = format!("{server_ip}:{port}").parse()?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = server_ns.run_in(move || -> Result<u32> {
        let l = TcpListener::bind(addr)?;
        ready_tx.send(()).ok();
        let (s, _) = accept_with_timeout(&l, Duration::from_secs(15))?;
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt into a local c_int.
        if unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_MAXSEG,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        } != 0
        {
            bail!("getsockopt TCP_MAXSEG: {}", std::io::Error::last_os_error());
        }
        Ok(v as u32)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .context("server did not start")?;
    let client = client_ns.run_in(move || -> Result<()> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        std::thread::sleep(Duration::from_millis(300));
        drop(s);
        Ok(())
    });
    client
        .join()
        .map_err(|_| anyhow::anyhow!("client panicked"))??
        .context("client")?;
    server
        .join()
        .map_err(|_| anyhow::anyhow!("server panicked"))??
}

/// UDP probes sent from one namespace to another at a fixed interval; the receiver notes
/// when each arrives, so an outage of one direction shows as the longest silence.
pub struct GapProbe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sender: Option<std::thread::JoinHandle<Result<Result<u64>>>>,
    receiver: Option<std::thread::JoinHandle<Result<Result<Vec<Instant>>>>>,
    started: Instant,
}

/// What a [`GapProbe`] saw.
#[derive(Debug, Clone)]
pub struct GapReport {
    /// Probes sent.
    pub sent: u64,
    /// Probes received.
    pub received: u64,
    /// The longest time without a probe arriving (from the first arrival on).
    pub longest_gap: Duration,
    /// How long after the start the longest gap began.
    pub gap_at: Duration,
}

impl GapProbe {
    /// Starts probing `to_ip:port` in `to` from `from`, one datagram every `interval`.
    pub fn start(
        from: &Netns,
        to: &Netns,
        to_ip: &str,
        port: u16,
        interval: Duration,
    ) -> Result<GapProbe> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let addr: SocketAddr = format!("{to_ip}:{port}").parse()?;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let st = stop.clone();
        let receiver = to.run_in(move || -> Result<Vec<Instant>> {
            let s = std::net::UdpSocket::bind(addr).with_context(|| format!("bind {addr}"))?;
            s.set_read_timeout(Some(Duration::from_millis(50)))?;
            ready_tx.send(()).ok();
            let mut arrivals = Vec::new();
            let mut buf = [0u8; 64];
            while !st.load(Ordering::Relaxed) {
                if s.recv(&mut buf).is_ok() {
                    arrivals.push(Instant::now());
                }
            }
            Ok(arrivals)
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .context("probe receiver did not start")?;
        let st = stop.clone();
        let sender = from.run_in(move || -> Result<u64> {
            let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
            let mut n = 0u64;
            let start = Instant::now();
            while !st.load(Ordering::Relaxed) {
                let _ = s.send_to(&n.to_be_bytes(), addr);
                n += 1;
                let due = interval * n as u32;
                if let Some(w) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(w);
                }
            }
            Ok(n)
        });
        Ok(GapProbe {
            stop,
            sender: Some(sender),
            receiver: Some(receiver),
            started: Instant::now(),
        })
    }

    /// Stops probing and reports.
    pub fn finish(mut self) -> Result<GapReport> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let sent = self
            .sender
            .take()
            .context("sender")?
            .join()
            .map_err(|_| anyhow::anyhow!("probe sender panicked"))??
            .context("probe sender")?;
        let arrivals = self
            .receiver
            .take()
            .context("receiver")?
            .join()
            .map_err(|_| anyhow::anyhow!("probe receiver panicked"))??
            .context("probe receiver")?;
        let mut longest = Duration::ZERO;
        let mut at = Duration::ZERO;
        for w in arrivals.windows(2) {
            let g = w[1] - w[0];
            if g > longest {
                longest = g;
                at = w[0] - self.started;
            }
        }
        Ok(GapReport {
            sent,
            received: arrivals.len() as u64,
            longest_gap: longest,
            gap_at: at,
        })
    }
}

impl Drop for GapProbe {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// One counter of the `Udp:` lines of /proc/net/snmp inside network namespace `netns`, e.g.
/// `InCsumErrors` or `RcvbufErrors` (datagrams the kernel dropped there).
pub fn udp_snmp(netns: &str, field: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", netns, "cat", "/proc/net/snmp"])
        .output()
        .expect("read /proc/net/snmp");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut udp = text.lines().filter(|l| l.starts_with("Udp: "));
    let (names, values) = (udp.next().unwrap_or(""), udp.next().unwrap_or(""));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == field)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no Udp {field} in {netns}: {text}"))
}
