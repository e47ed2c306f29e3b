//! An attacker on a lab's internet: it sends from the internet namespace with any source
//! address (raw sockets), e.g. a gateway's peer's, and watches what the gateways do about it.

use crate::lifecycle::send_udp_raw_in;
use anyhow::{Context, Result};
use ike::codec::{
    exchange, flags, transform_type, Header, KePayload, Message, Payload, PayloadBody, ProposalSub,
    ProtocolId, SaPayload, Transform, TransformType,
};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// A VPN gateway process of a lab: its record and the public address it speaks IKE on.
#[derive(Debug, Clone)]
pub struct LabGateway {
    /// The lab's record of the process (pid, control socket, log, config).
    pub record: fabric::gateways::GatewayRecord,
    /// Its public address.
    pub address: IpAddr,
}

impl LabGateway {
    /// The gateway's status document.
    pub fn status(&self) -> Result<gateway::GatewayStatus> {
        gateway::status::query(&self.record.control).context("gateway status")
    }

    /// Resident memory of the gateway process (not its supervisor) in KiB (VmRSS).
    pub fn rss_kib(&self) -> Result<u64> {
        let pid = self.status()?.pid;
        let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .context("no VmRSS")
    }

    /// Size of its log in bytes.
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.record.log).map_or(0, |m| m.len())
    }
}

/// The lab directory of lab `id` under state root `state`.
pub fn lab_dir(state: &Path, id: &str) -> PathBuf {
    state.join("labs").join(id)
}

/// The lab's gateway processes by site name.
pub fn lab_gateways(state: &Path, id: &str) -> Result<Vec<(String, LabGateway)>> {
    let mut out = Vec::new();
    for record in fabric::gateways::records(&lab_dir(state, id)) {
        let text = std::fs::read_to_string(&record.config)?;
        let cfg = gateway::GatewayConfig::parse(&text, Path::new("/"))?;
        out.push((
            record.site.clone(),
            LabGateway {
                record,
                address: cfg.local_address,
            },
        ));
    }
    Ok(out)
}

/// One site's gateway.
pub fn lab_gateway(state: &Path, id: &str, site: &str) -> Result<LabGateway> {
    lab_gateways(state, id)?
        .into_iter()
        .find(|(s, _)| s == site)
        .map(|(_, g)| g)
        .with_context(|| format!("no gateway process for site {site}"))
}

fn transform(kind: TransformType, id: u16) -> Transform {
    Transform {
        kind,
        id,
        attributes: vec![],
    }
}

/// An IKE_SA_INIT request no gateway of ours accepts: 3DES, HMAC-MD5, MODP768 (group 1).
pub fn unacceptable_ike_sa_init(spi_i: u64) -> Vec<u8> {
    Message {
        header: Header {
            spi_i,
            spi_r: 0,
            next_payload: 0,
            version: 0x20,
            exchange: exchange::IKE_SA_INIT,
            flags: flags::INITIATOR,
            message_id: 0,
            length: 0,
        },
        payloads: vec![
            Payload::new(PayloadBody::Sa(SaPayload {
                proposals: vec![ProposalSub {
                    number: 1,
                    protocol: ProtocolId::Ike,
                    spi: vec![],
                    transforms: vec![
                        transform(transform_type::ENCR, 3),
                        transform(transform_type::PRF, 1),
                        transform(transform_type::INTEG, 1),
                        transform(transform_type::DH, 1),
                    ],
                }],
            })),
            Payload::new(PayloadBody::Ke(KePayload {
                group: 1,
                data: vec![0x5a; 96],
            })),
            Payload::new(PayloadBody::Nonce(vec![0x17; 32])),
        ],
    }
    .encode()
}

/// Sends `datagrams` from the internet namespace of lab `id`, claiming to come from `from`.
pub fn spoof(id: &str, from: SocketAddr, to: SocketAddr, datagrams: &[Vec<u8>]) -> Result<()> {
    send_udp_raw_in(&format!("hn-{id}-internet"), from, to, datagrams)
}

/// Sends many forged datagrams, each with its own source and destination, from the internet
/// namespace of lab `id` in one go (one raw socket for all of them).
pub fn spoof_many(id: &str, datagrams: &[(SocketAddr, SocketAddr, Vec<u8>)]) -> Result<()> {
    use std::io::Write;
    let script = r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
for line in sys.stdin:
    f = line.split()
    if len(f) != 5:
        continue
    src, sport, dst, dport, payload = f[0], int(f[1]), f[2], int(f[3]), bytes.fromhex(f[4])
    udp = struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0x4242, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    s.sendto(ip + udp, (dst, 0))
"#;
    let mut child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("hn-{id}-internet"),
            "python3",
            "-c",
            script,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("python3")?;
    let mut input = String::new();
    for (from, to, d) in datagrams {
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        input.push_str(&format!(
            "{} {} {} {} {hex}\n",
            from.ip(),
            from.port(),
            to.ip(),
            to.port()
        ));
    }
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "raw UDP sender failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
