//! Packet capture as Azure's VPN gateway offers it (`packet-capture start/stop` on a gateway
//! or one connection, with its filter shape), written as pcapng: interface 0 holds the inner
//! packets (as they leave or enter the TUN device, decrypted), interface 1 the outer ones
//! (ESP-in-UDP and IKE datagrams, with the IPv4 and UDP headers the kernel puts on them).
//!
//! Off, a capture costs one relaxed atomic load per batch of packets. On, every packet that
//! passes the filter is copied (cut at `MaxPacketBufferSize`) into a buffered file until
//! `MaxFileSize` or the time limit is reached.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Azure's `TracingFlags` bit for outer ESP packets.
pub const TRACE_ESP: u32 = 1;
/// Azure's `TracingFlags` bit for IKE datagrams.
pub const TRACE_IKE: u32 = 2;
/// Azure's `TracingFlags` bit for inner (decrypted) packets.
pub const TRACE_INNER: u32 = 8;
/// pcapng interface of the inner packets.
const IF_INNER: u32 = 0;
/// pcapng interface of the outer packets.
const IF_OUTER: u32 = 1;
/// pcapng LINKTYPE_RAW: packets start with their IP header.
const LINKTYPE_RAW: u16 = 101;

/// Azure's filter document (`filterData`), field for field.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct FilterData {
    /// What to capture: [`TRACE_ESP`] | [`TRACE_IKE`] | [`TRACE_INNER`] (Azure's default 11).
    #[serde(default = "default_flags")]
    pub tracing_flags: u32,
    /// Bytes kept of each packet (Azure's default 120).
    #[serde(default = "default_buffer")]
    pub max_packet_buffer_size: usize,
    /// Megabytes the file may reach (Azure's default 100).
    #[serde(default = "default_file")]
    pub max_file_size: u64,
    /// Five-tuple filters on the inner packets (Azure takes one).
    #[serde(default)]
    pub filters: Vec<Filter>,
}

fn default_flags() -> u32 {
    TRACE_ESP | TRACE_IKE | TRACE_INNER
}
fn default_buffer() -> usize {
    120
}
fn default_file() -> u64 {
    100
}

impl Default for FilterData {
    fn default() -> Self {
        FilterData {
            tracing_flags: default_flags(),
            max_packet_buffer_size: default_buffer(),
            max_file_size: default_file(),
            filters: Vec::new(),
        }
    }
}

/// One five-tuple filter on inner packets.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Filter {
    /// Source prefixes (any when empty).
    #[serde(default)]
    pub source_subnets: Vec<IpNet>,
    /// Destination prefixes (any when empty).
    #[serde(default)]
    pub destination_subnets: Vec<IpNet>,
    /// Source ports (any when empty).
    #[serde(default)]
    pub source_port: Vec<u16>,
    /// Destination ports (any when empty).
    #[serde(default)]
    pub destination_port: Vec<u16>,
    /// IP protocols (any when empty).
    #[serde(default)]
    pub protocol: Vec<u8>,
    /// TCP flags any of which must be set (-1: any packet).
    #[serde(default = "any_flags")]
    pub tcp_flags: i32,
    /// Only packets from the source subnets to the destination subnets, not the reverse.
    #[serde(default)]
    pub capture_single_direction_traffic_only: bool,
}

fn any_flags() -> i32 {
    -1
}

/// Why a capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// One is already running (Azure allows one per scope).
    #[error("a packet capture is already running ({0}); stop it first")]
    Running(String),
    /// The filter document is not Azure's shape.
    #[error("filterData: {0}")]
    Filter(String),
    /// The connection named runs on no tunnel of this gateway.
    #[error("no connection {0:?} on this gateway")]
    NoConnection(String),
    /// The file could not be written.
    #[error("cannot write {path}: {cause}")]
    File {
        /// Where.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
}

/// What to capture, where.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CaptureRequest {
    /// The pcapng file to write.
    pub path: PathBuf,
    /// Only this connection's tunnel (its name); the whole gateway when absent.
    #[serde(default)]
    pub connection: Option<String>,
    /// Azure's filter document.
    #[serde(default)]
    pub filter: FilterData,
    /// Stop by itself after this many seconds (Azure stops a capture after at most an hour).
    #[serde(default)]
    pub duration_secs: Option<u64>,
}

/// What a capture recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CaptureReport {
    /// The file.
    pub path: PathBuf,
    /// Packets written.
    pub packets: u64,
    /// Bytes written to the file.
    pub bytes: u64,
    /// Why it stopped writing early, if it did (file size or time limit).
    pub limit_reached: Option<String>,
    /// Whether it is still running.
    pub running: bool,
}

/// The gateway's capture: off, or one running.
#[derive(Default)]
pub struct Capture {
    on: AtomicBool,
    active: Mutex<Option<Active>>,
}

struct Active {
    request: CaptureRequest,
    /// The connection index it is limited to.
    conn: Option<usize>,
    /// That connection's peer addresses: outer packets (IKE included) of other peers are left
    /// out.
    peers: Vec<IpAddr>,
    out: BufWriter<File>,
    started: Instant,
    packets: u64,
    bytes: u64,
    limit_reached: Option<String>,
}

impl Capture {
    /// Whether a capture runs (checked per batch on the data path).
    #[inline]
    pub fn on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Starts a capture limited to connection index `conn` at `peers` (when the request names
    /// a connection).
    pub fn start(
        &self,
        request: CaptureRequest,
        conn: Option<usize>,
        peers: Vec<IpAddr>,
    ) -> Result<(), CaptureError> {
        let mut a = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(x) = a.as_ref() {
            return Err(CaptureError::Running(x.request.path.display().to_string()));
        }
        if request.filter.filters.len() > 1 {
            return Err(CaptureError::Filter(
                "only one filter at a time, as on Azure".into(),
            ));
        }
        if request.filter.max_packet_buffer_size < 20 {
            return Err(CaptureError::Filter(
                "MaxPacketBufferSize must be at least 20 bytes (an IP header)".into(),
            ));
        }
        let file_err = |cause| CaptureError::File {
            path: request.path.clone(),
            cause,
        };
        let mut out = BufWriter::new(File::create(&request.path).map_err(file_err)?);
        let snap = request.filter.max_packet_buffer_size as u32;
        let mut head = section_header();
        head.extend(interface(snap, "inner (decrypted, TUN side)"));
        head.extend(interface(snap, "outer (ESP-in-UDP and IKE)"));
        out.write_all(&head).map_err(file_err)?;
        *a = Some(Active {
            request,
            conn,
            peers,
            out,
            started: Instant::now(),
            packets: 0,
            bytes: head.len() as u64,
            limit_reached: None,
        });
        self.on.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Stops the capture; what it wrote. `None` when none ran.
    pub fn stop(&self) -> Option<CaptureReport> {
        self.on.store(false, Ordering::Relaxed);
        let mut a = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let mut x = a.take()?;
        let _ = x.out.flush();
        Some(x.report(false))
    }

    /// The running capture's progress.
    pub fn report(&self) -> Option<CaptureReport> {
        let a = self.active.lock().unwrap_or_else(|e| e.into_inner());
        a.as_ref().map(|x| x.report(true))
    }

    /// An inner packet of connection `conn` (outbound: read from the TUN device; inbound:
    /// about to be written to it).
    pub fn inner(&self, packet: &[u8], conn: usize) {
        let mut a = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let Some(x) = a.as_mut() else { return };
        if x.request.filter.tracing_flags & TRACE_INNER == 0
            || x.conn.is_some_and(|c| c != conn)
            || !x.request.filter.filters.iter().all(|f| f.matches(packet))
        {
            return;
        }
        x.write(IF_INNER, packet);
    }

    /// An outer datagram (UDP payload) between `src` and `dst`, of connection `conn` when
    /// known; `ike` tells IKE from ESP.
    pub fn outer(
        &self,
        payload: &[u8],
        src: SocketAddr,
        dst: SocketAddr,
        conn: Option<usize>,
        ike: bool,
    ) {
        let mut a = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let Some(x) = a.as_mut() else { return };
        let flag = if ike { TRACE_IKE } else { TRACE_ESP };
        let other_peer =
            !x.peers.is_empty() && !x.peers.contains(&src.ip()) && !x.peers.contains(&dst.ip());
        if x.request.filter.tracing_flags & flag == 0
            || (x.conn.is_some() && conn.is_some() && x.conn != conn)
            || other_peer
        {
            return;
        }
        let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
            return;
        };
        let mut p = Vec::with_capacity(28 + payload.len());
        let total = (28 + payload.len()).min(usize::from(u16::MAX)) as u16;
        p.extend_from_slice(&[0x45, 0]);
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        p.extend_from_slice(&s.octets());
        p.extend_from_slice(&d.octets());
        let sum = ip_checksum(&p[..20]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(&src.port().to_be_bytes());
        p.extend_from_slice(&dst.port().to_be_bytes());
        p.extend_from_slice(&(total - 20).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        x.write(IF_OUTER, &p);
    }
}

impl Active {
    fn report(&self, running: bool) -> CaptureReport {
        CaptureReport {
            path: self.request.path.clone(),
            packets: self.packets,
            bytes: self.bytes,
            limit_reached: self.limit_reached.clone(),
            running,
        }
    }

    /// Appends an Enhanced Packet Block, within the limits.
    fn write(&mut self, interface: u32, packet: &[u8]) {
        if self.limit_reached.is_some() {
            return;
        }
        if let Some(d) = self.request.duration_secs {
            if self.started.elapsed() >= Duration::from_secs(d) {
                self.limit_reached = Some(format!("the time limit of {d} s"));
                let _ = self.out.flush();
                return;
            }
        }
        let snap = packet.len().min(self.request.filter.max_packet_buffer_size);
        let block = packet_block(interface, &packet[..snap], packet.len());
        let limit = self.request.filter.max_file_size.saturating_mul(1 << 20);
        if self.bytes + block.len() as u64 > limit {
            self.limit_reached = Some(format!(
                "MaxFileSize of {} MB",
                self.request.filter.max_file_size
            ));
            let _ = self.out.flush();
            return;
        }
        if self.out.write_all(&block).is_ok() {
            self.packets += 1;
            self.bytes += block.len() as u64;
        }
    }
}

impl Filter {
    /// Whether an inner IPv4/IPv6 packet passes (both directions unless single-direction).
    pub fn matches(&self, p: &[u8]) -> bool {
        let Some(t) = five_tuple(p) else {
            return false;
        };
        let in_any =
            |nets: &[IpNet], a: IpAddr| nets.is_empty() || nets.iter().any(|n| n.contains(&a));
        let port_ok = |ports: &[u16], port: Option<u16>| {
            ports.is_empty() || port.is_some_and(|x| ports.contains(&x))
        };
        let forward = in_any(&self.source_subnets, t.src)
            && in_any(&self.destination_subnets, t.dst)
            && port_ok(&self.source_port, t.sport)
            && port_ok(&self.destination_port, t.dport);
        let reverse = !self.capture_single_direction_traffic_only
            && in_any(&self.source_subnets, t.dst)
            && in_any(&self.destination_subnets, t.src)
            && port_ok(&self.source_port, t.dport)
            && port_ok(&self.destination_port, t.sport);
        let proto_ok = self.protocol.is_empty() || self.protocol.contains(&t.proto);
        let flags_ok = self.tcp_flags < 0
            || (t.proto == 6
                && t.tcp_flags
                    .is_some_and(|f| i32::from(f) & self.tcp_flags != 0));
        (forward || reverse) && proto_ok && flags_ok
    }
}

struct FiveTuple {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    sport: Option<u16>,
    dport: Option<u16>,
    tcp_flags: Option<u8>,
}

fn five_tuple(p: &[u8]) -> Option<FiveTuple> {
    let (src, dst, proto, l4) = match p.first()? >> 4 {
        4 if p.len() >= 20 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let s: [u8; 4] = p[12..16].try_into().ok()?;
            let d: [u8; 4] = p[16..20].try_into().ok()?;
            (IpAddr::from(s), IpAddr::from(d), p[9], p.get(ihl..)?)
        }
        6 if p.len() >= 40 => {
            let s: [u8; 16] = p[8..24].try_into().ok()?;
            let d: [u8; 16] = p[24..40].try_into().ok()?;
            (IpAddr::from(s), IpAddr::from(d), p[6], &p[40..])
        }
        _ => return None,
    };
    let ports = (matches!(proto, 6 | 17) && l4.len() >= 4).then(|| {
        (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        )
    });
    Some(FiveTuple {
        src,
        dst,
        proto,
        sport: ports.map(|p| p.0),
        dport: ports.map(|p| p.1),
        tcp_flags: (proto == 6 && l4.len() >= 14).then(|| l4[13]),
    })
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A pcapng block: type, body, total length on both ends.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let pad = (4 - body.len() % 4) % 4;
    let total = (12 + body.len() + pad) as u32;
    let mut b = Vec::with_capacity(total as usize);
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(body);
    b.extend(std::iter::repeat_n(0, pad));
    b.extend_from_slice(&total.to_le_bytes());
    b
}

/// An option (code, value) padded to 4 octets.
fn option(code: u16, value: &[u8]) -> Vec<u8> {
    let mut o = Vec::new();
    o.extend_from_slice(&code.to_le_bytes());
    o.extend_from_slice(&(value.len() as u16).to_le_bytes());
    o.extend_from_slice(value);
    o.extend(std::iter::repeat_n(0, (4 - value.len() % 4) % 4));
    o
}

fn section_header() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&(-1i64).to_le_bytes());
    body.extend(option(4, b"hybridnet VPN gateway"));
    body.extend(option(0, &[]));
    block(0x0A0D_0D0A, &body)
}

fn interface(snaplen: u32, name: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&snaplen.to_le_bytes());
    body.extend(option(2, name.as_bytes()));
    body.extend(option(0, &[]));
    block(1, &body)
}

fn packet_block(interface: u32, data: &[u8], original: usize) -> Vec<u8> {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut body = Vec::with_capacity(20 + data.len() + 3);
    body.extend_from_slice(&interface.to_le_bytes());
    body.extend_from_slice(&((us >> 32) as u32).to_le_bytes());
    body.extend_from_slice(&(us as u32).to_le_bytes());
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(&(original as u32).to_le_bytes());
    body.extend_from_slice(data);
    body.extend(std::iter::repeat_n(0, (4 - data.len() % 4) % 4));
    block(6, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn icmp(src: &str, dst: &str) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[9] = 1;
        p[12..16].copy_from_slice(&src.parse::<std::net::Ipv4Addr>().unwrap().octets());
        p[16..20].copy_from_slice(&dst.parse::<std::net::Ipv4Addr>().unwrap().octets());
        p
    }

    #[test]
    fn filters_take_azure_fields_and_both_directions_unless_told() {
        let f: FilterData = serde_json::from_str(
            r#"{"TracingFlags": 8, "MaxPacketBufferSize": 64, "MaxFileSize": 1,
                "Filters": [{"SourceSubnets": ["10.1.1.0/24"], "DestinationSubnets": ["10.2.1.0/24"],
                             "Protocol": [1], "TcpFlags": -1, "CaptureSingleDirectionTrafficOnly": false}]}"#,
        )
        .unwrap();
        let g = &f.filters[0];
        assert!(g.matches(&icmp("10.1.1.4", "10.2.1.4")));
        assert!(g.matches(&icmp("10.2.1.4", "10.1.1.4")), "the reply too");
        assert!(!g.matches(&icmp("10.1.1.4", "10.3.1.4")));
        let mut one_way = g.clone();
        one_way.capture_single_direction_traffic_only = true;
        assert!(!one_way.matches(&icmp("10.2.1.4", "10.1.1.4")));
        let mut tcp = g.clone();
        tcp.protocol = vec![6];
        assert!(!tcp.matches(&icmp("10.1.1.4", "10.2.1.4")));
        assert!(serde_json::from_str::<FilterData>(r#"{"Tracingflags": 1}"#).is_err());
    }

    #[test]
    fn a_capture_writes_pcapng_blocks_within_its_limits() {
        let dir = std::env::temp_dir().join(format!("hn-cap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.pcapng");
        let cap = Capture::default();
        assert!(!cap.on());
        let filter = FilterData {
            max_packet_buffer_size: 24,
            max_file_size: 1,
            ..FilterData::default()
        };
        cap.start(
            CaptureRequest {
                path: path.clone(),
                connection: None,
                filter,
                duration_secs: None,
            },
            None,
            vec![],
        )
        .unwrap();
        assert!(cap.on());
        assert!(matches!(
            cap.start(
                CaptureRequest {
                    path: dir.join("other"),
                    connection: None,
                    filter: FilterData::default(),
                    duration_secs: None
                },
                None,
                vec![]
            ),
            Err(CaptureError::Running(_))
        ));
        cap.inner(&icmp("10.1.1.4", "10.2.1.4"), 0);
        cap.outer(
            &[0xde, 0xad, 0xbe, 0xef],
            "203.0.113.1:4500".parse().unwrap(),
            "198.51.100.1:4500".parse().unwrap(),
            Some(0),
            false,
        );
        // the 1 MB limit stops it without losing what was written
        for _ in 0..40_000 {
            cap.inner(&icmp("10.1.1.4", "10.2.1.4"), 0);
        }
        let r = cap.stop().unwrap();
        assert!(!cap.on());
        assert!(r.limit_reached.unwrap().contains("MaxFileSize of 1 MB"));
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len() as u64, r.bytes);
        assert!(r.bytes <= 1 << 20);
        assert_eq!(&data[..4], &[0x0A, 0x0D, 0x0D, 0x0A]);
        // the first packet block: cut at 24 of 28 bytes
        let epb = data
            .windows(4)
            .position(|w| w == [6, 0, 0, 0])
            .expect("an enhanced packet block");
        let cap_len = u32::from_le_bytes(data[epb + 20..epb + 24].try_into().unwrap());
        let orig_len = u32::from_le_bytes(data[epb + 24..epb + 28].try_into().unwrap());
        assert_eq!((cap_len, orig_len), (24, 28));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_connection_capture_leaves_out_other_peers_outer_packets() {
        let dir = std::env::temp_dir().join(format!("hn-cap-peer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cap = Capture::default();
        let peer: IpAddr = "198.51.100.1".parse().unwrap();
        cap.start(
            CaptureRequest {
                path: dir.join("p.pcapng"),
                connection: Some("c".into()),
                filter: FilterData::default(),
                duration_secs: None,
            },
            Some(0),
            vec![peer],
        )
        .unwrap();
        let local: SocketAddr = "203.0.113.1:500".parse().unwrap();
        cap.outer(
            &[1; 8],
            local,
            "198.51.100.1:500".parse().unwrap(),
            None,
            true,
        );
        cap.outer(&[1; 8], "192.0.2.9:500".parse().unwrap(), local, None, true);
        cap.outer(
            &[1; 8],
            local,
            "198.51.100.1:4500".parse().unwrap(),
            Some(1),
            false,
        );
        let r = cap.stop().unwrap();
        assert_eq!(r.packets, 1, "only the connection's own IKE datagram");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
