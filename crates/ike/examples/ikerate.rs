//! IKE_SA_INIT load generator for `bench/run --only ikerate`: keeps a window of IKE_SA_INIT
//! requests in flight toward one responder for a number of seconds and counts the responses
//! that carry a KE payload, i.e. the handshakes for which the responder did its Diffie-Hellman
//! work. It behaves like a real initiator toward the responder's denial-of-service defence: a
//! COOKIE answer is retried at once with the cookie echoed (RFC 7296 §2.6), and the request
//! then counts only when the real answer arrives.
//!
//! Every request has fresh SPIs and nonces; the KE value is one key pair per run, which the
//! responder cannot tell apart from a fresh one (it generates its own key pair and computes
//! the shared secret either way), so the generator spends no time on Diffie-Hellman and its
//! own CPU use, printed with the result, stays far below the responder's.
//!
//! ```text
//! cargo run --release -p ike --example ikerate -- --target 198.51.100.2:500 \
//!     --sources 198.51.100.10,198.51.100.11 --proposal aes256-sha256-ecp256 --seconds 10
//! ```
//!
//! Output: one JSON line, e.g. `{"seconds":10.0,"completed":23000,"rate":2300.0,...}`.

use ike::codec::{
    exchange, flags, notify, Header, KePayload, Message, NotifyPayload, Payload, PayloadBody,
    ProtocolId,
};
use ike::config::Proposal;
use ike::crypto::DhPrivate;
use ike::proposal::ike_sa_payload;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// A request without an answer for this long is counted lost and its slot reused.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the generator could not run.
#[derive(Debug, thiserror::Error)]
enum RateError {
    /// A command-line argument is missing or malformed.
    #[error("{0}\nusage: ikerate --target ADDR:PORT --sources IP[,IP...] [--ports-per-source N] [--proposal P] [--seconds S] [--window W]")]
    Usage(String),
    /// The proposal does not parse.
    #[error("proposal {0:?}: {1}")]
    Proposal(String, ike::ConfigError),
    /// The key pair for the KE payload could not be made.
    #[error("key pair: {0}")]
    Key(ike::CryptoError),
    /// A socket could not be opened or used.
    #[error("socket {0}: {1}")]
    Socket(SocketAddr, io::Error),
}

struct Args {
    target: SocketAddr,
    sources: Vec<IpAddr>,
    ports_per_source: usize,
    proposal: String,
    seconds: f64,
    window: usize,
}

fn parse_args() -> Result<Args, RateError> {
    let mut a = Args {
        target: "127.0.0.1:500".parse().expect("literal"),
        sources: vec![],
        ports_per_source: 1,
        proposal: "aes256-sha256-ecp256".into(),
        seconds: 10.0,
        window: 128,
    };
    let mut it = std::env::args().skip(1);
    let bad = |what: &str, v: &str| RateError::Usage(format!("{what}: {v:?} is not valid"));
    while let Some(k) = it.next() {
        let v = it
            .next()
            .ok_or_else(|| RateError::Usage(format!("{k} needs a value")))?;
        match k.as_str() {
            "--target" => a.target = v.parse().map_err(|_| bad(&k, &v))?,
            "--sources" => {
                a.sources = v
                    .split(',')
                    .map(|s| s.parse().map_err(|_| bad(&k, s)))
                    .collect::<Result<_, _>>()?
            }
            "--ports-per-source" => a.ports_per_source = v.parse().map_err(|_| bad(&k, &v))?,
            "--proposal" => a.proposal = v,
            "--seconds" => a.seconds = v.parse().map_err(|_| bad(&k, &v))?,
            "--window" => a.window = v.parse().map_err(|_| bad(&k, &v))?,
            _ => return Err(RateError::Usage(format!("unknown option {k}"))),
        }
    }
    if a.sources.is_empty() {
        return Err(RateError::Usage("--sources is required".into()));
    }
    Ok(a)
}

/// xorshift64*: SPIs and nonces only need to be distinct, not secret.
struct Fast(u64);

impl Fast {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The nonce of the request with initiator SPI `spi`: derived from it, so a retry with a
/// cookie repeats the nonce the cookie was computed over without storing it.
fn nonce_of(spi: u64) -> Vec<u8> {
    (0..4u64)
        .flat_map(|i| (spi ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_be_bytes())
        .collect()
}

/// One IKE_SA_INIT request: [N(COOKIE)], SA, KE, Ni.
fn request(spi: u64, sa: &PayloadBody, ke: &PayloadBody, cookie: Option<&[u8]>) -> Vec<u8> {
    let mut payloads = Vec::with_capacity(4);
    if let Some(c) = cookie {
        payloads.push(Payload::new(PayloadBody::Notify(NotifyPayload {
            protocol: ProtocolId::Unspecified,
            spi: vec![],
            kind: notify::COOKIE,
            data: c.to_vec(),
        })));
    }
    payloads.push(Payload::new(sa.clone()));
    payloads.push(Payload::new(ke.clone()));
    payloads.push(Payload::new(PayloadBody::Nonce(nonce_of(spi))));
    Message {
        header: Header {
            spi_i: spi,
            spi_r: 0,
            next_payload: 0,
            version: 0x20,
            exchange: exchange::IKE_SA_INIT,
            flags: flags::INITIATOR,
            message_id: 0,
            length: 0,
        },
        payloads,
    }
    .encode()
}

#[derive(Default)]
struct Tally {
    sent: u64,
    cookies: u64,
    completed: u64,
    refused: u64,
    lost: u64,
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn run(a: Args) -> Result<String, RateError> {
    let proposal: Proposal = a
        .proposal
        .parse()
        .map_err(|e| RateError::Proposal(a.proposal.clone(), e))?;
    let group = *proposal
        .dh
        .first()
        .ok_or_else(|| RateError::Usage(format!("proposal {:?} has no DH group", a.proposal)))?;
    let key = DhPrivate::generate(group).map_err(RateError::Key)?;
    let sa = PayloadBody::Sa(ike_sa_payload(std::slice::from_ref(&proposal)));
    let ke = PayloadBody::Ke(KePayload {
        group: group.iana_id(),
        data: key.public().to_vec(),
    });
    let mut socks = vec![];
    for ip in &a.sources {
        for _ in 0..a.ports_per_source.max(1) {
            let at = SocketAddr::new(*ip, 0);
            let s = UdpSocket::bind(at).map_err(|e| RateError::Socket(at, e))?;
            s.set_nonblocking(true)
                .map_err(|e| RateError::Socket(at, e))?;
            socks.push(s);
        }
    }
    let mut rng = Fast(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1,
    );
    // initiator SPI -> (socket, sent at)
    let mut pending: HashMap<u64, (usize, Instant)> = HashMap::with_capacity(a.window * 2);
    let mut tally = Tally::default();
    let mut next_sock = 0;
    let mut buf = vec![0u8; 65536];
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(a.seconds);
    let mut next_sweep = t0 + Duration::from_millis(100);
    let send = |s: &UdpSocket, bytes: &[u8]| match s.send_to(bytes, a.target) {
        Ok(_) => Ok(()),
        // a full socket buffer: the request is lost like a dropped datagram
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(RateError::Socket(a.target, e)),
    };
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        while pending.len() < a.window {
            let spi = rng.next() | 1;
            let i = next_sock;
            next_sock = (next_sock + 1) % socks.len();
            send(&socks[i], &request(spi, &sa, &ke, None))?;
            tally.sent += 1;
            pending.insert(spi, (i, now));
        }
        let mut fds: Vec<libc::pollfd> = socks
            .iter()
            .map(|s| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 10) };
        for (i, f) in fds.iter().enumerate() {
            if f.revents & libc::POLLIN == 0 {
                continue;
            }
            while let Ok(n) = socks[i].recv(&mut buf) {
                let Ok(msg) = Message::decode(&buf[..n]) else {
                    continue;
                };
                let spi = msg.header.spi_i;
                if !msg.header.is_response() || !pending.contains_key(&spi) {
                    continue;
                }
                if let Some(c) = msg.notify(notify::COOKIE) {
                    let again = request(spi, &sa, &ke, Some(&c.data));
                    send(&socks[i], &again)?;
                    tally.cookies += 1;
                    pending.insert(spi, (i, Instant::now()));
                } else if msg
                    .payloads
                    .iter()
                    .any(|p| matches!(p.body, PayloadBody::Ke(_)))
                {
                    pending.remove(&spi);
                    tally.completed += 1;
                } else {
                    pending.remove(&spi);
                    tally.refused += 1;
                }
            }
        }
        let now = Instant::now();
        if now >= next_sweep {
            next_sweep = now + Duration::from_millis(100);
            let before = pending.len();
            pending.retain(|_, (_, at)| now.saturating_duration_since(*at) < ANSWER_TIMEOUT);
            tally.lost += (before - pending.len()) as u64;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    Ok(format!(
        "{{\"proposal\":\"{}\",\"sources\":{},\"sockets\":{},\"window\":{},\"seconds\":{secs:.3},\"sent\":{},\"cookies\":{},\"completed\":{},\"refused\":{},\"lost\":{},\"in_flight\":{},\"rate\":{:.1},\"generator_cpu_s\":{cpu:.3},\"generator_cpu_share\":{:.3}}}",
        a.proposal,
        a.sources.len(),
        socks.len(),
        a.window,
        tally.sent,
        tally.cookies,
        tally.completed,
        tally.refused,
        tally.lost,
        pending.len(),
        tally.completed as f64 / secs,
        cpu / secs,
    ))
}

fn main() -> std::process::ExitCode {
    match parse_args().and_then(run) {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ikerate: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
