//! Checks that a lab works end to end: connection status from the gateway processes (as
//! Azure reports it, plus why a connection is not up, in plain words), and VM-to-VM traffic
//! across the tunnels — ping, and a TCP transfer whose content the receiver verifies byte by
//! byte — run from threads inside the VMs' namespaces.

use nix::sched::{setns, CloneFlags};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// A traffic check failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A namespace could not be entered.
    #[error("namespace {netns}: {source}")]
    Netns {
        /// The network namespace concerned.
        netns: String,
        #[source]
        /// The underlying error.
        source: std::io::Error,
    },
    /// `ping` did not get its replies.
    #[error("ping {dst} from {netns}: {detail}")]
    Ping {
        /// The network namespace concerned.
        netns: String,
        /// The dst.
        dst: Ipv4Addr,
        /// What happened, in words.
        detail: String,
    },
    /// The TCP transfer failed or delivered other bytes than were sent.
    #[error("TCP {from} -> {to}:{port}: {cause}")]
    Tcp {
        /// Where it comes from.
        from: String,
        /// Where it goes.
        to: Ipv4Addr,
        /// The port concerned.
        port: u16,
        #[source]
        /// The underlying error.
        cause: TransferError,
    },
}

/// Why a verified TCP transfer failed, on either end.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A thread could not enter its end's namespace.
    #[error("setns: {0}")]
    Setns(#[source] std::io::Error),
    /// The receiver could not listen on its address.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The addr.
        addr: SocketAddr,
        #[source]
        /// The underlying error.
        source: std::io::Error,
    },
    /// A socket option could not be set.
    #[error("{0}")]
    Socket(#[source] std::io::Error),
    /// The receiver got no connection.
    #[error("accept: {0}")]
    Accept(#[source] std::io::Error),
    /// The receiver's read failed.
    #[error("read after {total} bytes: {source}")]
    Read {
        /// How many in all.
        total: u64,
        #[source]
        /// The underlying error.
        source: std::io::Error,
    },
    /// The sender closed the connection early.
    #[error("connection closed after {total} of {len} bytes")]
    Closed {
        /// How many in all.
        total: u64,
        /// The len.
        len: u64,
    },
    /// A byte arrived other than the one sent.
    #[error("byte {0} differs from what was sent")]
    Differs(u64),
    /// The receiver could not confirm what it verified.
    #[error("confirm: {0}")]
    Confirm(#[source] std::io::Error),
    /// The sender could not connect.
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    /// The sender's write failed.
    #[error("send after {sent} bytes: {source}")]
    Send {
        /// How much was sent.
        sent: u64,
        #[source]
        /// The underlying error.
        source: std::io::Error,
    },
    /// The sender got no confirmation.
    #[error("read confirmation: {0}")]
    ReadConfirmation(#[source] std::io::Error),
    /// The receiver did not get to listen in time.
    #[error("the receiver did not start")]
    ReceiverNotStarted,
    /// One end's thread panicked.
    #[error("{0} panicked")]
    Panicked(&'static str),
    /// The counts of the two ends do not match what was meant to be sent.
    #[error("sent {len} bytes, receiver verified {received}, confirmed {confirmed}")]
    Short {
        /// The len.
        len: u64,
        /// How much was received.
        received: u64,
        /// The confirmed.
        confirmed: u64,
    },
}

/// Azure's `connectionStatus` for a gateway's report of one connection: Connected with an
/// active Child SA; NotConnected when down, or when retrying after a failure (Azure shows a
/// dead peer as NotConnected, not as an endless Connecting), or when the IKE SA is up but its
/// Child SA was refused (e.g. TS_UNACCEPTABLE); Connecting on a first attempt.
pub fn connection_status(r: &gateway::status::ConnectionReport) -> &'static str {
    match r.state.as_str() {
        "established" if r.child_sas.iter().any(|c| c.active) => "Connected",
        "established" if r.last_error.is_none() => "Connecting",
        "connecting" if r.last_error.is_none() => "Connecting",
        _ => "NotConnected",
    }
}

/// Why a connection is not connected, in plain words, from the gateway's report (`None` when
/// it is connected).
pub fn explain(r: &gateway::status::ConnectionReport) -> Option<String> {
    if connection_status(r) == "Connected" {
        return None;
    }
    let peer = &r.remote_address;
    let Some(err) = &r.last_error else {
        return Some(format!(
            "negotiating with the peer gateway {peer} (IKE in progress)"
        ));
    };
    let retrying = match (r.state.as_str(), r.retry_in_ms) {
        ("connecting", Some(ms)) => format!(
            "; next attempt in {:.1}s (failed {} time(s) in a row)",
            ms as f64 / 1000.0,
            r.consecutive_failures
        ),
        ("connecting", None) => "; retrying".to_string(),
        _ => String::new(),
    };
    Some(if err.starts_with("AUTHENTICATION_FAILED") {
        format!(
            "pre-shared key mismatch (AUTHENTICATION_FAILED): the sharedKey of this connection and the peer's ({peer}) differ, or the peer expects another identity. Gateway: {err}{retrying}"
        )
    } else if err.starts_with("NO_PROPOSAL_CHOSEN") {
        format!("IPsec/IKE policy mismatch (NO_PROPOSAL_CHOSEN) with {peer}: no proposal is acceptable to both sides; check ipsecPolicies on both connections. {err}{retrying}")
    } else if err.starts_with("TS_UNACCEPTABLE") {
        format!("traffic-selector mismatch (TS_UNACCEPTABLE) with {peer}: the address spaces the two sides configured for each other differ. {err}{retrying}")
    } else if err.starts_with("peer unreachable") {
        format!("peer gateway {peer} unreachable: no answer to IKE (is its gateway running, and UDP 500/4500 reachable?){retrying}")
    } else if err.starts_with("dead peer detection") {
        format!("peer gateway {peer} stopped answering: dead peer detection timed out{retrying}")
    } else if err.contains("deleted by peer") {
        format!("the peer gateway {peer} closed the tunnel (IKE SA deleted by peer, e.g. it was stopped or reconfigured){retrying}")
    } else {
        format!("{err}{retrying}")
    })
}

/// Runs `f` on a thread inside network namespace `netns`.
fn spawn_in<T: Send + 'static>(
    netns: &str,
    f: impl FnOnce() -> Result<T, TransferError> + Send + 'static,
) -> Result<std::thread::JoinHandle<Result<T, TransferError>>, VerifyError> {
    let file = std::fs::File::open(Path::new(crate::netns::NETNS_RUN_DIR).join(netns)).map_err(
        |source| VerifyError::Netns {
            netns: netns.to_string(),
            source,
        },
    )?;
    Ok(std::thread::spawn(move || {
        // affects only this thread, which ends after `f`
        if let Err(e) = setns(&file, CloneFlags::CLONE_NEWNET) {
            return Err(TransferError::Setns(e.into()));
        }
        f()
    }))
}

/// Pings `dst` from `netns` `count` times (0.2 s apart); all must be answered. Returns the
/// time it took.
pub fn ping(netns: &str, dst: Ipv4Addr, count: u32) -> Result<Duration, VerifyError> {
    let start = Instant::now();
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            "ping",
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            "-W",
            "2",
        ])
        .arg(dst.to_string())
        .output()
        .map_err(|source| VerifyError::Netns {
            netns: netns.to_string(),
            source,
        })?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !text.contains(&format!(" {count} received")) {
        return Err(VerifyError::Ping {
            netns: netns.to_string(),
            dst,
            detail: text
                .trim()
                .lines()
                .last()
                .unwrap_or("no output")
                .to_string(),
        });
    }
    Ok(start.elapsed())
}

/// Deterministic pseudo-random bytes (xorshift64*), so the receiver can check every byte
/// without the two ends sharing anything.
fn pattern_byte_stream(seed: u64) -> impl FnMut(&mut [u8]) {
    let mut x = seed | 1;
    let mut pending: Vec<u8> = Vec::new();
    move |buf: &mut [u8]| {
        let mut i = 0;
        while i < buf.len() {
            if pending.is_empty() {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                pending.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
            }
            let n = pending.len().min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&pending[..n]);
            pending.drain(..n);
            i += n;
        }
    }
}

/// Result of a verified TCP transfer.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    /// Bytes delivered and verified.
    pub bytes: u64,
    /// Wall time from connect to the receiver's confirmation.
    pub millis: u64,
}

/// Sends `len` pseudo-random bytes over TCP from `client_ns` to a listener on
/// `server_addr:port` in `server_ns`; the receiver compares every byte with the expected
/// stream and answers with the verified count, which the sender checks.
pub fn tcp_transfer(
    server_ns: &str,
    server_addr: Ipv4Addr,
    port: u16,
    client_ns: &str,
    len: u64,
) -> Result<Transfer, VerifyError> {
    let tcp_err = |cause: TransferError| VerifyError::Tcp {
        from: client_ns.to_string(),
        to: server_addr,
        port,
        cause,
    };
    let seed = 0x9e37_79b9_7f4a_7c15 ^ len ^ u64::from(port);
    let addr = SocketAddr::from((server_addr, port));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = spawn_in(server_ns, move || {
        let l = TcpListener::bind(addr).map_err(|source| TransferError::Bind { addr, source })?;
        ready_tx.send(()).ok();
        l.set_nonblocking(true).map_err(TransferError::Socket)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut s = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => return Err(TransferError::Accept(e)),
            }
        };
        s.set_nonblocking(false).map_err(TransferError::Socket)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(TransferError::Socket)?;
        let mut expect = pattern_byte_stream(seed);
        let mut buf = vec![0u8; 64 * 1024];
        let mut want = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        while total < len {
            let n = s
                .read(&mut buf)
                .map_err(|source| TransferError::Read { total, source })?;
            if n == 0 {
                return Err(TransferError::Closed { total, len });
            }
            expect(&mut want[..n]);
            if let Some(i) = (0..n).find(|&i| buf[i] != want[i]) {
                return Err(TransferError::Differs(total + i as u64));
            }
            total += n as u64;
        }
        s.write_all(&total.to_be_bytes())
            .map_err(TransferError::Confirm)?;
        Ok(total)
    })?;
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| tcp_err(TransferError::ReceiverNotStarted))?;
    let start = Instant::now();
    let client = spawn_in(client_ns, move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(TransferError::Connect)?;
        s.set_write_timeout(Some(Duration::from_secs(20)))
            .map_err(TransferError::Socket)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(TransferError::Socket)?;
        let mut gen = pattern_byte_stream(seed);
        let mut buf = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        while sent < len {
            let n = (len - sent).min(buf.len() as u64) as usize;
            gen(&mut buf[..n]);
            s.write_all(&buf[..n])
                .map_err(|source| TransferError::Send { sent, source })?;
            sent += n as u64;
        }
        let mut confirm = [0u8; 8];
        s.read_exact(&mut confirm)
            .map_err(TransferError::ReadConfirmation)?;
        Ok(u64::from_be_bytes(confirm))
    })?;
    let confirmed = client
        .join()
        .map_err(|_| tcp_err(TransferError::Panicked("sender")))?
        .map_err(&tcp_err)?;
    let millis = start.elapsed().as_millis() as u64;
    let received = server
        .join()
        .map_err(|_| tcp_err(TransferError::Panicked("receiver")))?
        .map_err(&tcp_err)?;
    if received != len || confirmed != len {
        return Err(tcp_err(TransferError::Short {
            len,
            received,
            confirmed,
        }));
    }
    Ok(Transfer { bytes: len, millis })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway::status::ConnectionReport;

    fn report(state: &str, err: Option<&str>) -> ConnectionReport {
        serde_json::from_value(serde_json::json!({
            "name": "c", "remote_address": "198.51.100.1", "state": state,
            "ike_algorithms": null, "esp_algorithms": null,
            "ike_spi_i": "0", "ike_spi_r": "0", "established_secs": null, "child_sas": [],
            "inbound": {"bytes": 0, "packets": 0}, "outbound": {"bytes": 0, "packets": 0},
            "drops": gateway::datapath::DropCounters::default(), "last_error": err,
        }))
        .unwrap()
    }

    #[test]
    fn status_and_reasons() {
        assert_eq!(connection_status(&report("connecting", None)), "Connecting");
        assert_eq!(
            connection_status(&report("connecting", Some("dead peer detection timeout"))),
            "NotConnected"
        );
        assert_eq!(
            connection_status(&report("down", Some("AUTHENTICATION_FAILED: x"))),
            "NotConnected"
        );
        let why = explain(&report("down", Some("AUTHENTICATION_FAILED: x"))).unwrap();
        assert!(why.starts_with("pre-shared key mismatch"), "{why}");
        let why = explain(&report(
            "down",
            Some("NO_PROPOSAL_CHOSEN: our proposals [A]; peer's proposals [B]"),
        ))
        .unwrap();
        assert!(
            why.contains("policy mismatch") && why.contains("[A]") && why.contains("[B]"),
            "{why}"
        );
        let why = explain(&report(
            "connecting",
            Some("peer unreachable: no answer after 5 transmissions"),
        ))
        .unwrap();
        assert!(
            why.contains("unreachable") && why.ends_with("retrying"),
            "{why}"
        );
    }

    #[test]
    fn the_pattern_is_the_same_in_any_chunking() {
        let mut a = pattern_byte_stream(7);
        let mut whole = vec![0u8; 1000];
        a(&mut whole);
        let mut b = pattern_byte_stream(7);
        let mut pieces = vec![0u8; 1000];
        for chunk in pieces.chunks_mut(13) {
            b(chunk);
        }
        assert_eq!(whole, pieces);
    }
}
