//! Support for the gateway-lifecycle scenarios (issue 4): a two-site topology with gw-a behind
//! a port-changing NAT, a long-running TCP stream whose every byte is checked, and a tiny UDP
//! sender for floods and replayed ESP.

use crate::sites::addrs;
use crate::traffic::pattern;
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use testkit::netns::{unique_id, veth, Netns};
use testkit::process::wait_for_every;

/// gw-a's address inside the NAT.
pub const GW_A_INSIDE: &str = "192.168.50.2";
/// The NAT's inside address (gw-a's default route).
pub const NAT_INSIDE: &str = "192.168.50.1";

/// The two sites with gw-a behind NAT:
///
/// ```text
///  vm-a 10.1.1.4 ── gw-a 192.168.50.2 ── 192.168.50.1 nat 198.51.100.1 ── 198.51.100.2 gw-b ── vm-b 10.2.1.4
/// ```
/// The NAT masquerades with random source ports (`masquerade random`), so gw-a's 500 and
/// 4500 appear on other ports; the NAT's public address is the one gw-b's config names for
/// gw-a (198.51.100.1), so peer configs of the plain topology work unchanged.
pub struct NatSites {
    /// Unique id (part of every namespace name).
    pub id: String,
    /// Host behind gw-a.
    pub vm_a: Netns,
    /// Host behind gw-b.
    pub vm_b: Netns,
    /// Gateway A (behind NAT).
    pub gw_a: Netns,
    /// Gateway B (public).
    pub gw_b: Netns,
    /// The NAT router: the "internet" namespace with nftables masquerade.
    pub nat: Netns,
}

impl NatSites {
    /// Builds the topology with fresh, unique namespace names.
    pub fn new() -> Result<NatSites> {
        let id = unique_id();
        let gw_a = Netns::new(&format!("hn{id}-gwa"))?;
        let gw_b = Netns::new(&format!("hn{id}-gwb"))?;
        let vm_a = Netns::new(&format!("hn{id}-vma"))?;
        let vm_b = Netns::new(&format!("hn{id}-vmb"))?;
        let nat = Netns::new(&format!("hn{id}-nat"))?;
        veth(&vm_a, "vm0", &gw_a, "in0")?;
        veth(&vm_b, "vm0", &gw_b, "in0")?;
        veth(&gw_a, "wan0", &nat, "lan0")?;
        veth(&nat, "wan0", &gw_b, "wan0")?;
        vm_a.addr("vm0", &format!("{}/24", addrs::VM_A))?;
        gw_a.addr("in0", &format!("{}/24", addrs::GW_A_IN))?;
        gw_a.addr("wan0", &format!("{GW_A_INSIDE}/24"))?;
        nat.addr("lan0", &format!("{NAT_INSIDE}/24"))?;
        nat.addr("wan0", &format!("{}/24", addrs::GW_A_WAN))?;
        gw_b.addr("wan0", &format!("{}/24", addrs::GW_B_WAN))?;
        gw_b.addr("in0", &format!("{}/24", addrs::GW_B_IN))?;
        vm_b.addr("vm0", &format!("{}/24", addrs::VM_B))?;
        vm_a.exec("ip", &["route", "add", "default", "via", addrs::GW_A_IN])?;
        vm_b.exec("ip", &["route", "add", "default", "via", addrs::GW_B_IN])?;
        gw_a.exec("ip", &["route", "add", "default", "via", NAT_INSIDE])?;
        gw_a.make_router()?;
        gw_b.make_router()?;
        nat.make_router()?;
        let rules = "table ip hnnat {\n chain post {\n  type nat hook postrouting priority srcnat; policy accept;\n  oifname \"wan0\" ip saddr 192.168.50.0/24 counter masquerade random\n }\n chain keep {\n  type filter hook forward priority filter; policy accept;\n  iifname \"lan0\" udp dport 4500 udp length 9 @th,64,8 0xff counter comment \"keepalive\"\n }\n}\n";
        let mut c = nat.command("nft");
        c.args(["-f", "-"]).stdin(std::process::Stdio::piped());
        let mut child = c.spawn().context("nft")?;
        child
            .stdin
            .take()
            .context("nft stdin")?
            .write_all(rules.as_bytes())?;
        if !child.wait()?.success() {
            bail!("nft rejected the masquerade rules");
        }
        gw_a.exec("ping", &["-c1", "-W2", "-q", addrs::GW_B_WAN])
            .context("the NAT path does not work")?;
        Ok(NatSites {
            id,
            vm_a,
            vm_b,
            gw_a,
            gw_b,
            nat,
        })
    }

    /// NAT keepalives (one-byte 0xFF UDP datagrams to port 4500) the NAT forwarded from
    /// gw-a, counted by an nftables rule on the wire.
    pub fn keepalives_forwarded(&self) -> Result<u64> {
        let out = self
            .nat
            .exec("nft", &["list", "chain", "ip", "hnnat", "keep"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("keepalive"))
            .context("no keepalive rule")?;
        line.split("packets ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no packet count in {line:?}"))
    }

    /// The NAT's rules with their counters, for failure messages.
    pub fn nat_counters(&self) -> String {
        self.nat
            .exec_unchecked("nft", &["list", "ruleset"])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

/// A TCP stream from one namespace to another that keeps sending a deterministic pattern at a
/// steady rate until stopped; the receiver compares every byte with the pattern.
pub struct Stream {
    stop: Arc<AtomicBool>,
    /// Bytes the receiver has verified so far.
    pub verified: Arc<AtomicU64>,
    client: Option<JoinHandle<Result<Result<u64>>>>,
    server: Option<JoinHandle<Result<Result<u64>>>>,
}

/// Seed of the stream's pattern.
const STREAM_SEED: u64 = 0x5eed_0f1f_e0c4_c1e5;
/// Bytes per write; the pattern repeats with this period.
const CHUNK: usize = 16 * 1024;

impl Stream {
    /// Starts a stream from `client_ns` to `server_ip:port` in `server_ns` at about
    /// `bytes_per_sec`.
    pub fn start(
        server_ns: &Netns,
        server_ip: &str,
        port: u16,
        client_ns: &Netns,
        bytes_per_sec: u64,
    ) -> Result<Stream> {
        let addr: SocketAddr = format!("{server_ip}:{port}").parse()?;
        let stop = Arc::new(AtomicBool::new(false));
        let verified = Arc::new(AtomicU64::new(0));
        let chunk = pattern(CHUNK, STREAM_SEED);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let want = chunk.clone();
        let v = verified.clone();
        let server = server_ns.run_in(move || -> Result<u64> {
            let l = TcpListener::bind(addr).with_context(|| format!("bind {addr}"))?;
            ready_tx.send(()).ok();
            let (mut s, _) = l.accept()?;
            s.set_read_timeout(Some(Duration::from_secs(20)))?;
            let mut buf = vec![0u8; 64 * 1024];
            let mut total: u64 = 0;
            loop {
                let n = s
                    .read(&mut buf)
                    .with_context(|| format!("stream read after {total} bytes"))?;
                if n == 0 {
                    return Ok(total);
                }
                for (k, b) in buf[..n].iter().enumerate() {
                    let pos = total + k as u64;
                    if *b != want[(pos % CHUNK as u64) as usize] {
                        bail!("stream content differs at byte {pos}");
                    }
                }
                total += n as u64;
                v.store(total, Ordering::Relaxed);
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .context("stream server did not start")?;
        let st = stop.clone();
        let client = client_ns.run_in(move || -> Result<u64> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                .with_context(|| format!("connect {addr}"))?;
            s.set_write_timeout(Some(Duration::from_secs(20)))?;
            let start = Instant::now();
            let mut sent: u64 = 0;
            while !st.load(Ordering::Relaxed) {
                s.write_all(&chunk)
                    .with_context(|| format!("stream write after {sent} bytes"))?;
                sent += CHUNK as u64;
                let due = Duration::from_secs_f64(sent as f64 / bytes_per_sec as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            s.shutdown(std::net::Shutdown::Write)?;
            Ok(sent)
        });
        Ok(Stream {
            stop,
            verified,
            client: Some(client),
            server: Some(server),
        })
    }

    /// Stops sending and returns (bytes sent, bytes received and verified); fails if either
    /// end failed or the receiver did not get every byte.
    pub fn finish(mut self) -> Result<(u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self
            .client
            .take()
            .context("client")?
            .join()
            .map_err(|_| anyhow::anyhow!("client panicked"))??
            .context("stream sender")?;
        let got = self
            .server
            .take()
            .context("server")?
            .join()
            .map_err(|_| anyhow::anyhow!("server panicked"))??
            .context("stream receiver")?;
        if got != sent {
            bail!("stream: sent {sent} bytes, received {got}");
        }
        Ok((sent, got))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Sends raw UDP datagrams from inside `ns` with python3, spoofing the source address and
/// port when `from` is not local to `ns` (IP_TRANSPARENT-free: a raw IPv4 socket with
/// IP_HDRINCL builds the header). Each datagram is given as hex.
pub fn send_udp_raw(
    ns: &Netns,
    from: SocketAddr,
    to: SocketAddr,
    datagrams: &[Vec<u8>],
) -> Result<()> {
    send_udp_raw_in(ns.name(), from, to, datagrams)
}

/// [`send_udp_raw`] inside the namespace named `netns` (e.g. a lab's internet).
pub fn send_udp_raw_in(
    netns: &str,
    from: SocketAddr,
    to: SocketAddr,
    datagrams: &[Vec<u8>],
) -> Result<()> {
    let hex: Vec<String> = datagrams
        .iter()
        .map(|d| d.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let script = r#"
import socket, struct, sys
src, sport, dst, dport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    payload = bytes.fromhex(line)
    udp = struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0x4242, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    s.sendto(ip + udp, (dst, 0))
"#;
    let mut c = std::process::Command::new("ip");
    c.args(["netns", "exec", netns, "python3"]);
    c.args([
        "-c",
        script,
        &from.ip().to_string(),
        &from.port().to_string(),
        &to.ip().to_string(),
        &to.port().to_string(),
    ]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().context("python3")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all((hex.join("\n") + "\n").as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "raw UDP sender failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Replaces `dpd_timeout = "45s"` (the support configs' value) and appends lifetimes.
pub fn with_timers(
    toml: &str,
    dpd: &str,
    ike_lifetime: Option<&str>,
    child_lifetime: Option<&str>,
) -> String {
    let mut extra = format!("dpd_timeout = \"{dpd}\"");
    if let Some(l) = ike_lifetime {
        extra += &format!("\nike_lifetime = \"{l}\"");
    }
    if let Some(l) = child_lifetime {
        extra += &format!("\nchild_lifetime = \"{l}\"");
    }
    toml.replace("dpd_timeout = \"45s\"", &extra)
}

/// Polls a gateway's connection for `duration` and returns the distinct IKE SA SPI pairs and
/// active Child SA inbound SPIs seen, in order; fails if the connection is ever not
/// established with an active Child SA.
pub fn watch_rekeys(
    g: &crate::gw::GatewayProc,
    conn: &str,
    duration: Duration,
) -> Result<(Vec<String>, Vec<String>)> {
    let (mut ike, mut child): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let c = g.connection(conn)?;
        let Some(active) = c.child_sas.iter().find(|s| s.active) else {
            bail!("{conn} has no active Child SA:\n{}", g.status_text());
        };
        if c.state != "established" {
            bail!("{conn} is {}:\n{}", c.state, g.status_text());
        }
        let spi = format!("{}_{}", c.ike_spi_i, c.ike_spi_r);
        if ike.last() != Some(&spi) {
            ike.push(spi);
        }
        if child.last() != Some(&active.spi_in) {
            child.push(active.spi_in.clone());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok((ike, child))
}

/// Real IKE_SA_INIT requests (fresh SPI, nonce and key share each) from `ips`, `per_ip` each,
/// to `remote`:500, built by our own IKE initiator with `ike_proposal`: what a flood of
/// would-be initiators sends, address by address. Returns (source address:port, datagram).
pub fn ike_sa_init_flood(
    ips: &[&str],
    per_ip: u16,
    remote: &str,
    ike_proposal: &str,
) -> Result<Vec<(SocketAddr, Vec<u8>)>> {
    let mut out = Vec::new();
    let now = Instant::now();
    for ip in ips {
        for port in 0..per_ip {
            let toml = format!(
                "local_address = \"{ip}\"\n[[connection]]\nname = \"flood\"\nremote_address = \"{remote}\"\npsk = \"flood-{}\"\nlocal_prefixes = [\"10.66.0.0/16\"]\nremote_prefixes = [\"10.67.0.0/16\"]\nike_proposals = [\"{ike_proposal}\"]\ninitiate = true\n",
                unique_id()
            );
            let cfg = gateway::GatewayConfig::parse(&toml, std::path::Path::new("/"))?;
            let mut ep = ike::endpoint::Endpoint::new();
            ep.add_connection(cfg.connections[0].to_ike(cfg.local_address), now);
            let t = ep
                .poll_transmit()
                .context("the initiator sent no IKE_SA_INIT")?;
            out.push((SocketAddr::new(ip.parse()?, 40000 + port), t.payload));
        }
    }
    Ok(out)
}

/// What [`capture_udp`] captures: UDP from `src` to `dst`:`dport`, at most `max_len` bytes of
/// payload (single ESP packets, not GSO super-packets).
pub struct UdpFlow<'a> {
    /// Source address.
    pub src: &'a str,
    /// Destination address.
    pub dst: &'a str,
    /// Destination port.
    pub dport: u16,
    /// Largest payload kept.
    pub max_len: usize,
}

/// Captures up to `count` UDP payloads of `flow` as seen on `dev` in `ns` with
/// `tcpdump -w file`; runs `during` while capturing.
pub fn capture_udp(
    ns: &Netns,
    dev: &str,
    flow: &UdpFlow,
    count: usize,
    file: &std::path::Path,
    during: impl FnOnce(),
) -> Result<Vec<Vec<u8>>> {
    let filter = format!(
        "udp and src host {} and dst host {} and dst port {} and less {}",
        flow.src,
        flow.dst,
        flow.dport,
        flow.max_len + 42
    );
    let mut c = ns.command("timeout");
    c.args([
        "15",
        "tcpdump",
        "-Z",
        "root",
        "-U",
        "-n",
        "-i",
        dev,
        "-c",
        &count.to_string(),
        "-w",
    ])
    .arg(file)
    .arg(&filter);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().context("tcpdump")?;
    std::thread::sleep(Duration::from_millis(700));
    during();
    let out = child.wait_with_output()?;
    let pcap = std::fs::read(file).with_context(|| {
        format!(
            "tcpdump wrote nothing: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    parse_pcap_udp(&pcap)
}

/// UDP payloads of an Ethernet pcap file (IPv4 only).
pub fn parse_pcap_udp(pcap: &[u8]) -> Result<Vec<Vec<u8>>> {
    if pcap.len() < 24 || pcap[..4] != [0xd4, 0xc3, 0xb2, 0xa1] {
        bail!("not a little-endian pcap file ({} bytes)", pcap.len());
    }
    let le32 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    if le32(&pcap[20..24]) != 1 {
        bail!("pcap link type {} is not Ethernet", le32(&pcap[20..24]));
    }
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= pcap.len() {
        let incl = le32(&pcap[off + 8..off + 12]);
        let frame = pcap
            .get(off + 16..off + 16 + incl)
            .context("truncated pcap record")?;
        off += 16 + incl;
        if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        let ihl = ((ip[0] & 0x0f) as usize) * 4;
        if ip[9] != 17 || ip.len() < ihl + 8 {
            continue;
        }
        let udp = &ip[ihl..];
        let ulen = u16::from_be_bytes([udp[4], udp[5]]) as usize;
        if ulen < 8 || ulen > udp.len() {
            continue;
        }
        out.push(udp[8..ulen].to_vec());
    }
    Ok(out)
}

/// What [`rekeying_pair`] saw; the gateways are still running.
pub struct RekeyingPair {
    /// gw-a, the initiator.
    pub a: crate::gw::GatewayProc,
    /// gw-b, the responder.
    pub b: crate::gw::GatewayProc,
    /// Distinct IKE SA SPI pairs gw-a showed, in order.
    pub ike_seen: Vec<String>,
    /// Distinct active Child SA inbound SPIs gw-a showed, in order.
    pub child_seen: Vec<String>,
    /// Bytes the stream carried, every one verified.
    pub bytes: u64,
}

/// Two hybridnet gateways on `net` (gw-a from `toml_a` initiates, gw-b from `toml_b`
/// responds), established and passing a ping; then a verified TCP stream vm-a → vm-b at
/// `rate` bytes/s on `port` for `watch`, while gw-a's rekeys are watched (the connection must
/// stay established with an active Child SA throughout). Panics with the gateways' log or
/// status on any failure.
pub fn rekeying_pair(
    net: &crate::sites::TwoSites,
    dir: &std::path::Path,
    (toml_a, toml_b): (&str, &str),
    (port, rate): (u16, u64),
    watch: Duration,
) -> RekeyingPair {
    use crate::gw::GatewayProc;
    let b = GatewayProc::start(&net.gw_b, dir, "gw-b", toml_b).expect("gw-b");
    let a = GatewayProc::start(&net.gw_a, dir, "gw-a", toml_a).expect("gw-a");
    a.wait_established("site-b", Duration::from_secs(20))
        .unwrap();
    b.wait_established("site-a", Duration::from_secs(10))
        .unwrap();
    crate::traffic::ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();
    let stream = Stream::start(&net.vm_b, addrs::VM_B, port, &net.vm_a, rate).expect("stream");
    let (ike_seen, child_seen) =
        watch_rekeys(&a, "site-b", watch).unwrap_or_else(|e| panic!("{e:#}\n{}", a.log()));
    let (_, bytes) = stream
        .finish()
        .unwrap_or_else(|e| panic!("stream across rekeys: {e:#}\n{}", a.status_text()));
    RekeyingPair {
        a,
        b,
        ike_seen,
        child_seen,
        bytes,
    }
}

/// An nftables rule in `ns` that drops our IKE CREATE_CHILD_SA *responses* on UDP 4500 (the
/// non-ESP marker, exchange type 36, the response flag): the lost answer to a peer's rekey.
/// [`DropOnce::wait_dropped`] removes it as soon as it dropped one, so the peer's
/// retransmission gets through.
pub struct DropOnce<'a> {
    ns: &'a Netns,
    table: String,
}

impl<'a> DropOnce<'a> {
    /// Installs the rule.
    pub fn create_child_sa_response(ns: &'a Netns) -> Result<DropOnce<'a>> {
        let table = format!("hn_drop_{}", unique_id());
        let rules = format!(
            "table inet {table} {{\n chain out {{\n  type filter hook output priority 0; policy accept;\n  udp sport 4500 @th,64,32 0 @th,240,8 36 @th,248,8 & 0x20 == 0x20 counter drop\n }}\n}}\n"
        );
        let mut c = ns.command("nft");
        c.args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().context("nft")?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(rules.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("nft: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(DropOnce { ns, table })
    }

    /// Packets the rule dropped so far.
    pub fn dropped(&self) -> u64 {
        self.ns
            .exec_unchecked("nft", &["list", "table", "inet", &self.table])
            .ok()
            .and_then(|o| {
                let t = String::from_utf8_lossy(&o.stdout).into_owned();
                t.split("counter packets ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    }

    /// Waits up to `timeout` for the rule to drop a packet, then removes it at once; returns
    /// when it dropped (or `None`).
    pub fn wait_dropped(&self, timeout: Duration) -> Option<Instant> {
        let at = wait_for_every(
            Duration::from_millis(10),
            timeout,
            "a dropped packet",
            || (self.dropped() > 0).then(Instant::now),
        )
        .ok()?;
        self.remove();
        Some(at)
    }

    fn remove(&self) {
        let _ = self
            .ns
            .exec_unchecked("nft", &["delete", "table", "inet", &self.table]);
    }
}

impl Drop for DropOnce<'_> {
    fn drop(&mut self) {
        self.remove();
    }
}

/// What [`rekey_with_lost_answer`] saw.
pub struct LostAnswer {
    /// vm-a → vm-b (our outbound) probe.
    pub a_to_b: crate::traffic::GapReport,
    /// vm-b → vm-a (our inbound) probe.
    pub b_to_a: crate::traffic::GapReport,
    /// Bytes the verified TCP stream carried.
    pub stream_bytes: u64,
    /// Our connection before and after.
    pub ours: (
        gateway::status::ConnectionReport,
        gateway::status::ConnectionReport,
    ),
    /// strongSwan's IKE SAs at the end (VICI `list-sas`).
    pub swan_sas: Vec<testkit::swan::IkeSa>,
    /// The same as `swanctl --list-sas` prints it, for messages.
    pub swan_text: String,
    /// Our gateway's status table at the end.
    pub ours_text: String,
}

/// hybridnet on gw-a (initiates, long lifetimes) and strongSwan on gw-b, which rekeys per
/// `timers`; under a verified TCP stream and UDP probes both ways (every 20 ms), our answer to
/// strongSwan's first CREATE_CHILD_SA is dropped once (nftables), so only its retransmission
/// gets through. Watches for `watch` after the drop.
pub fn rekey_with_lost_answer(
    tag: &str,
    timers: testkit::swan::SwanTimers,
    watch: Duration,
) -> LostAnswer {
    use crate::gw::GatewayProc;
    use crate::traffic::GapProbe;
    use testkit::swan::Charon;
    let net = crate::sites::TwoSites::new().expect("topology");
    let scratch = testkit::process::Scratch::new(tag, &net.id).unwrap();
    let psk = crate::random_psk();
    let (ike, esp) = ("aes256gcm16-prfsha384-ecp384", "aes256gcm16-ecp384");
    let charon = Charon::start(&net.gw_b, &scratch.join("swan-b")).expect("charon");
    let mut conn = crate::swan_b(&psk, false, ike, esp);
    conn.timers = timers;
    charon.load(&conn).expect("swanctl load");
    let a = GatewayProc::start(
        &net.gw_a,
        &scratch.path,
        "gw-a",
        &crate::hybridnet_a(&psk, true, &[ike], &[esp]).to_toml(),
    )
    .expect("gw-a");
    let before = a
        .wait_established("site-b", Duration::from_secs(20))
        .unwrap();
    charon
        .wait_child_installed(Duration::from_secs(10))
        .unwrap();
    crate::traffic::ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();
    let drop = DropOnce::create_child_sa_response(&net.gw_a).expect("nft rule");
    let stream = Stream::start(&net.vm_b, addrs::VM_B, 5701, &net.vm_a, 1 << 20).expect("stream");
    let ab = GapProbe::start(
        &net.vm_a,
        &net.vm_b,
        addrs::VM_B,
        5702,
        Duration::from_millis(20),
    )
    .expect("probe a→b");
    let ba = GapProbe::start(
        &net.vm_b,
        &net.vm_a,
        addrs::VM_A,
        5703,
        Duration::from_millis(20),
    )
    .expect("probe b→a");
    drop.wait_dropped(Duration::from_secs(40))
        .unwrap_or_else(|| panic!("strongSwan never rekeyed:\n{}", charon.log()));
    std::thread::sleep(watch);
    let a_to_b = ab.finish().unwrap();
    let b_to_a = ba.finish().unwrap();
    let (_, stream_bytes) = stream.finish().unwrap_or_else(|e| {
        panic!(
            "stream across the rekey: {e:#}\n{}\n{}",
            a.status_text(),
            charon.sas_text()
        )
    });
    let after = a.connection("site-b").unwrap();
    LostAnswer {
        a_to_b,
        b_to_a,
        stream_bytes,
        ours: (before, after),
        swan_sas: charon.sas().expect("strongSwan's SAs over VICI"),
        swan_text: charon.sas_text(),
        ours_text: a.status_text(),
    }
}
