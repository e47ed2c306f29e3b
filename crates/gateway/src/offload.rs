//! TUN offloads: with `IFF_VNET_HDR` and TSO enabled the kernel hands the gateway TCP
//! super-packets of up to 64 KiB (one read instead of ~45), each prefixed by a
//! `virtio_net_hdr`. They are split into MSS-sized segments here, right before encryption,
//! exactly as the NIC would have: per-segment IP length/ID/checksum, TCP sequence number,
//! FIN/PSH only on the last segment, CWR only on the first, and a full TCP checksum.
//! Non-GSO packets may carry a partial checksum (`NEEDS_CSUM`), which is completed in place.
//! With UDP segmentation offload (`TUN_F_USO4/6`, Linux 6.2+) the same holds for UDP: super-
//! packets read from TUN are split into datagrams of `gso_size`, and decrypted datagrams of one
//! flow are joined into one super-packet per TUN write, so that a stream of small datagrams
//! costs one system call per batch instead of one per datagram.

/// Size of `struct virtio_net_hdr` (without `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_UDP_L4` (UDP segmentation, IPv4 or IPv6).
pub const GSO_UDP_L4: u8 = 5;
/// Most segments joined into one super-packet (the kernel's GRO limit).
const MAX_SEGS: usize = 64;
/// `VIRTIO_NET_HDR_GSO_ECN` (a flag on top of the type).
const GSO_ECN: u8 = 0x80;

/// A parsed `virtio_net_hdr` (native endianness, as TUN uses by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHdr {
    /// `VIRTIO_NET_HDR_F_*`.
    pub flags: u8,
    /// GSO type without the ECN bit.
    pub gso_type: u8,
    /// Length of the headers (unreliable; recomputed from the packet).
    pub hdr_len: u16,
    /// MSS for GSO packets.
    pub gso_size: u16,
    /// Where checksumming starts (for `NEEDS_CSUM`).
    pub csum_start: u16,
    /// Where, after `csum_start`, the checksum is stored.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Reads the header from the first 10 bytes.
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        if b.len() < VNET_HDR_LEN {
            return None;
        }
        let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1] & !GSO_ECN,
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    /// Whether the L4 checksum must still be completed.
    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }
}

/// Why a packet from the TUN device could not be prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// The header points outside the packet or the packet is not the TCP/IP it claims.
    #[error("TUN packet with inconsistent offload header")]
    Malformed,
    /// A GSO type the gateway did not enable (e.g. UDP).
    #[error("unsupported GSO type {0}")]
    UnsupportedGso(u8),
}

/// Adds `data` to a ones'-complement running sum (big-endian 16-bit words). tun-rs's
/// SIMD sum (AVX2/SSE4.1, chosen at run time) made splitting a TSO packet 1.24-1.43 times
/// as fast as the gateway's own scalar loop (`bench/tun-offload.sh`).
pub fn csum_add(sum: u64, data: &[u8]) -> u64 {
    tun_rs::checksum_no_fold(data, sum)
}

/// Folds a running sum into the 16-bit ones'-complement checksum.
pub fn csum_fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Completes a partial checksum: the field at `start + offset` holds the pseudo-header sum;
/// the sum over `start..` replaces it.
pub fn complete_checksum(pkt: &mut [u8], start: usize, offset: usize) -> Result<(), OffloadError> {
    let field = start + offset;
    if field + 2 > pkt.len() || start > pkt.len() {
        return Err(OffloadError::Malformed);
    }
    let c = csum_fold(csum_add(0, &pkt[start..]));
    // a computed 0 stays 0 for TCP; for UDP 0 means "no checksum", so send 0xffff
    let c = if c == 0 && pkt.get(if pkt[0] >> 4 == 4 { 9 } else { 6 }) == Some(&17) {
        0xffff
    } else {
        c
    };
    pkt[field..field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// The geometry of a TCP or UDP super-packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Super {
    v6: bool,
    /// UDP segmentation (`GSO_UDP_L4`) rather than TCP.
    udp: bool,
    ip_len: usize,
    /// IP + TCP (or UDP) header length.
    pub hdr_len: usize,
    /// Payload bytes per segment.
    pub mss: usize,
    /// Number of segments.
    pub count: usize,
    payload: usize,
}

/// Validates a TCP or UDP super-packet and returns how it splits.
pub fn plan_super(pkt: &[u8], h: &VnetHdr) -> Result<Super, OffloadError> {
    let ver = pkt.first().map(|b| b >> 4);
    let (v6, udp) = match (h.gso_type, ver) {
        (GSO_TCPV4, Some(4)) => (false, false),
        (GSO_TCPV6, Some(6)) => (true, false),
        (GSO_UDP_L4, Some(4)) => (false, true),
        (GSO_UDP_L4, Some(6)) => (true, true),
        (GSO_TCPV4 | GSO_TCPV6 | GSO_UDP_L4, _) => return Err(OffloadError::Malformed),
        (t, _) => return Err(OffloadError::UnsupportedGso(t)),
    };
    let proto = if udp { 17 } else { 6 };
    let ip_len = if v6 {
        if pkt.len() < 40 || pkt[6] != proto {
            return Err(OffloadError::Malformed);
        }
        40
    } else {
        let ihl = (pkt[0] & 0x0f) as usize * 4;
        if ihl < 20 || pkt.len() < ihl || pkt[9] != proto {
            return Err(OffloadError::Malformed);
        }
        ihl
    };
    let l4_len = if udp {
        8
    } else {
        if pkt.len() < ip_len + 20 {
            return Err(OffloadError::Malformed);
        }
        (pkt[ip_len + 12] >> 4) as usize * 4
    };
    let hdr_len = ip_len + l4_len;
    let mss = h.gso_size as usize;
    if (!udp && l4_len < 20) || pkt.len() < hdr_len || mss == 0 {
        return Err(OffloadError::Malformed);
    }
    let payload = pkt.len() - hdr_len;
    Ok(Super {
        v6,
        udp,
        ip_len,
        hdr_len,
        mss,
        count: payload.div_ceil(mss).max(1),
        payload,
    })
}

impl Super {
    /// Length of segment `i`.
    pub fn segment_len(&self, i: usize) -> usize {
        self.hdr_len + self.mss.min(self.payload - i * self.mss)
    }

    /// Writes segment `i` of `pkt` into `out` (which must hold [`Self::segment_len`] bytes)
    /// with every header field and checksum fixed; returns its length.
    pub fn write_segment(&self, pkt: &[u8], i: usize, out: &mut [u8]) -> usize {
        let start = self.hdr_len + i * self.mss;
        let chunk = self.mss.min(self.payload - i * self.mss);
        let len = self.hdr_len + chunk;
        let out = &mut out[..len];
        out[..self.hdr_len].copy_from_slice(&pkt[..self.hdr_len]);
        out[self.hdr_len..].copy_from_slice(&pkt[start..start + chunk]);
        let l4_len = len - self.ip_len;
        let mut pseudo: u64;
        if self.v6 {
            out[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            pseudo = csum_add(0, &out[8..40]);
        } else {
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            let id = u16::from_be_bytes([pkt[4], pkt[5]]).wrapping_add(i as u16);
            out[4..6].copy_from_slice(&id.to_be_bytes());
            out[10..12].copy_from_slice(&[0, 0]);
            let c = csum_fold(csum_add(0, &out[..self.ip_len]));
            out[10..12].copy_from_slice(&c.to_be_bytes());
            pseudo = csum_add(0, &out[12..20]);
        }
        let t = self.ip_len;
        if self.udp {
            pseudo += 17 + l4_len as u64;
            out[t + 4..t + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            out[t + 6..t + 8].copy_from_slice(&[0, 0]);
            let c = match csum_fold(csum_add(pseudo, &out[t..])) {
                0 => 0xffff, // RFC 768: a computed zero is sent as all ones
                c => c,
            };
            out[t + 6..t + 8].copy_from_slice(&c.to_be_bytes());
            return len;
        }
        pseudo += 6 + l4_len as u64;
        let seq = u32::from_be_bytes([pkt[t + 4], pkt[t + 5], pkt[t + 6], pkt[t + 7]])
            .wrapping_add((i * self.mss) as u32);
        out[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = out[t + 13];
        if i + 1 < self.count {
            flags &= !(0x01 | 0x08); // FIN, PSH only on the last segment
        }
        if i > 0 {
            flags &= !0x80; // CWR only on the first
        }
        out[t + 13] = flags;
        out[t + 16..t + 18].copy_from_slice(&[0, 0]);
        let c = csum_fold(csum_add(pseudo, &out[t..]));
        out[t + 16..t + 18].copy_from_slice(&c.to_be_bytes());
        len
    }
}

/// Lowers the MSS option of a TCP SYN to at most the tunnel's MSS so that peers never send
/// segments the tunnel would have to fragment (like `iptables … --clamp-mss-to-pmtu`).
/// `fix_checksum` is false when the checksum is still partial (completed later). Returns
/// whether the packet was changed.
pub fn clamp_mss(pkt: &mut [u8], tun_mtu: u16, fix_checksum: bool) -> bool {
    let (ip_len, v6) = match pkt.first().map(|b| b >> 4) {
        Some(4)
            if pkt.len() >= 20
                && pkt[9] == 6
                && u16::from_be_bytes([pkt[6], pkt[7]]) & 0x1fff == 0 =>
        {
            (((pkt[0] & 0x0f) as usize) * 4, false)
        }
        Some(6) if pkt.len() >= 40 && pkt[6] == 6 => (40, true),
        _ => return false,
    };
    if pkt.len() < ip_len + 20 || pkt[ip_len + 13] & 0x02 == 0 {
        return false; // not a SYN
    }
    let max = (tun_mtu as usize).saturating_sub(if v6 { 60 } else { 40 }) as u16;
    let t = ip_len;
    let opts_end = (t + ((pkt[t + 12] >> 4) as usize) * 4).min(pkt.len());
    let mut i = t + 20;
    while i < opts_end {
        match pkt[i] {
            0 => break,
            1 => i += 1,
            2 if i + 4 <= opts_end && pkt[i + 1] == 4 => {
                let old = u16::from_be_bytes([pkt[i + 2], pkt[i + 3]]);
                if old <= max {
                    return false;
                }
                pkt[i + 2..i + 4].copy_from_slice(&max.to_be_bytes());
                if fix_checksum {
                    // RFC 1624: HC' = ~(~HC + ~m + m')
                    let hc = u16::from_be_bytes([pkt[t + 16], pkt[t + 17]]);
                    let sum = (!hc) as u64 + (!old) as u64 + max as u64;
                    let c = csum_fold(sum);
                    pkt[t + 16..t + 18].copy_from_slice(&c.to_be_bytes());
                }
                return true;
            }
            _ => {
                if i + 1 >= opts_end || pkt[i + 1] < 2 {
                    break;
                }
                i += pkt[i + 1] as usize;
            }
        }
    }
    false
}

/// Receive-side coalescing (GRO in userspace): consecutive in-order segments of one TCP
/// flow, decrypted from one batch of ESP packets, are joined into a single super-packet
/// written to the TUN device with a GSO `virtio_net_hdr`, so the kernel forwards one 64 KiB
/// packet instead of ~45. The merge rules are the kernel's (`tcp_gro_receive`): same
/// addresses, ports, ACK number, flags (apart from PSH) and TCP options; sequence numbers
/// contiguous; every segment but the last exactly MSS long. With UDP segmentation enabled
/// on the TUN device ([`Coalescer::with_udp`]) UDP datagrams of one flow are joined the same
/// way (`udp_gro_receive`): same addresses, ports and IP fields, IPv4 IDs consecutive, every
/// datagram but the last exactly as long as the first.
pub struct Coalescer {
    buf: Vec<u8>,
    len: usize,
    segs: usize,
    v6: bool,
    /// The pending packet is UDP.
    udp: bool,
    /// Whether UDP may be joined at all (the TUN device takes `GSO_UDP_L4`).
    udp_ok: bool,
    ip_len: usize,
    hdr_len: usize,
    mss: usize,
    next_seq: u32,
    closed: bool,
}

/// What [`Coalescer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The packet is now part of the pending super-packet.
    Merged,
    /// It cannot join: flush the pending packet, then push again or write it as it is.
    Rejected,
}

/// Geometry of a TCP packet that may take part in coalescing.
struct TcpGeom {
    v6: bool,
    ip_len: usize,
    hdr_len: usize,
    seq: u32,
    payload: usize,
    psh: bool,
}

fn tcp_geom(p: &[u8]) -> Option<TcpGeom> {
    let (v6, ip_len) = match p.first()? >> 4 {
        4 if p.len() >= 40
            && p[0] == 0x45
            && p[9] == 6
            && u16::from_be_bytes([p[6], p[7]]) & 0x3fff == 0 =>
        {
            if u16::from_be_bytes([p[2], p[3]]) as usize != p.len() {
                return None;
            }
            (false, 20)
        }
        6 if p.len() >= 60 && p[6] == 6 => {
            if u16::from_be_bytes([p[4], p[5]]) as usize + 40 != p.len() {
                return None;
            }
            (true, 40)
        }
        _ => return None,
    };
    let doff = ((p[ip_len + 12] >> 4) as usize) * 4;
    let hdr_len = ip_len + doff;
    if doff < 20 || p.len() <= hdr_len {
        return None; // no payload: pure ACKs are not merged
    }
    let flags = p[ip_len + 13];
    // only ACK and PSH may be set
    if flags & !0x18 != 0 || flags & 0x10 == 0 {
        return None;
    }
    let seq = u32::from_be_bytes([p[ip_len + 4], p[ip_len + 5], p[ip_len + 6], p[ip_len + 7]]);
    Some(TcpGeom {
        v6,
        ip_len,
        hdr_len,
        seq,
        payload: p.len() - hdr_len,
        psh: flags & 0x08 != 0,
    })
}

/// Geometry of a UDP datagram that may take part in coalescing.
struct UdpGeom {
    v6: bool,
    ip_len: usize,
    payload: usize,
}

/// An unfragmented UDP datagram without IP options whose lengths agree, with payload.
fn udp_geom(p: &[u8]) -> Option<UdpGeom> {
    let (v6, ip_len) = match p.first()? >> 4 {
        4 if p.len() > 28
            && p[0] == 0x45
            && p[9] == 17
            && u16::from_be_bytes([p[6], p[7]]) & 0x3fff == 0
            && u16::from_be_bytes([p[2], p[3]]) as usize == p.len() =>
        {
            (false, 20)
        }
        6 if p.len() > 48
            && p[6] == 17
            && u16::from_be_bytes([p[4], p[5]]) as usize + 40 == p.len() =>
        {
            (true, 40)
        }
        _ => return None,
    };
    if u16::from_be_bytes([p[ip_len + 4], p[ip_len + 5]]) as usize != p.len() - ip_len {
        return None;
    }
    Some(UdpGeom {
        v6,
        ip_len,
        payload: p.len() - ip_len - 8,
    })
}

impl Default for Coalescer {
    fn default() -> Self {
        Self::new()
    }
}

impl Coalescer {
    /// An empty coalescer with a 64 KiB buffer (allocated once).
    pub fn new() -> Self {
        Coalescer {
            buf: vec![0; VNET_HDR_LEN + 65_535],
            len: 0,
            segs: 0,
            v6: false,
            udp: false,
            udp_ok: false,
            ip_len: 0,
            hdr_len: 0,
            mss: 0,
            next_seq: 0,
            closed: false,
        }
    }

    /// Also joins UDP datagrams when `udp` (the TUN device accepted UDP segmentation).
    pub fn with_udp(mut self, udp: bool) -> Self {
        self.udp_ok = udp;
        self
    }

    /// Whether a super-packet is pending.
    pub fn pending(&self) -> bool {
        self.segs > 0
    }

    /// How many packets the pending super-packet joins.
    pub fn segments(&self) -> usize {
        self.segs
    }

    /// Offers one decrypted packet.
    pub fn push(&mut self, p: &[u8]) -> Push {
        let Some(g) = tcp_geom(p) else {
            return self.push_udp(p);
        };
        if self.segs > 0 && self.udp {
            return Push::Rejected;
        }
        if self.segs == 0 {
            self.udp = false;
            self.buf[VNET_HDR_LEN..VNET_HDR_LEN + p.len()].copy_from_slice(p);
            self.len = p.len();
            self.segs = 1;
            self.v6 = g.v6;
            self.ip_len = g.ip_len;
            self.hdr_len = g.hdr_len;
            self.mss = g.payload;
            self.next_seq = g.seq.wrapping_add(g.payload as u32);
            self.closed = g.psh;
            return Push::Merged;
        }
        if self.closed
            || g.v6 != self.v6
            || g.hdr_len != self.hdr_len
            || g.seq != self.next_seq
            || g.payload > self.mss
        {
            return Push::Rejected;
        }
        if self.len + g.payload > 65_535 - if self.v6 { 40 } else { 0 } || self.segs >= MAX_SEGS {
            return Push::Rejected;
        }
        let first = &self.buf[VNET_HDR_LEN..VNET_HDR_LEN + self.hdr_len];
        let ip = g.ip_len;
        let same_ip = if g.v6 {
            first[..4] == p[..4] && first[6..40] == p[6..40] // version/class/flow, next header, hop limit, addresses
        } else {
            first[1] == p[1] && first[6..10] == p[6..10] && first[12..20] == p[12..20]
            // TOS, DF, TTL, proto, addresses
        };
        let same_tcp = first[ip..ip + 4] == p[ip..ip + 4] // ports
            && first[ip + 8..ip + 12] == p[ip + 8..ip + 12] // ACK number
            && (first[ip + 13] & !0x08) == (p[ip + 13] & !0x08)
            && first[ip + 20..g.hdr_len] == p[ip + 20..g.hdr_len]; // options, e.g. timestamps
        if !same_ip || !same_tcp {
            return Push::Rejected;
        }
        let at = VNET_HDR_LEN + self.len;
        self.buf[at..at + g.payload].copy_from_slice(&p[g.hdr_len..]);
        self.len += g.payload;
        self.segs += 1;
        self.next_seq = self.next_seq.wrapping_add(g.payload as u32);
        if g.psh {
            self.buf[VNET_HDR_LEN + ip + 13] |= 0x08;
        }
        // a short segment or PSH ends the run, as in the kernel
        self.closed = g.psh || g.payload < self.mss;
        Push::Merged
    }

    /// `push` for a packet that is not a mergeable TCP segment.
    fn push_udp(&mut self, p: &[u8]) -> Push {
        let g = match udp_geom(p) {
            Some(g) if self.udp_ok => g,
            _ => return Push::Rejected,
        };
        if self.segs == 0 {
            self.buf[VNET_HDR_LEN..VNET_HDR_LEN + p.len()].copy_from_slice(p);
            self.len = p.len();
            self.segs = 1;
            self.udp = true;
            self.v6 = g.v6;
            self.ip_len = g.ip_len;
            self.hdr_len = g.ip_len + 8;
            self.mss = g.payload;
            self.closed = false;
            return Push::Merged;
        }
        if !self.udp
            || self.closed
            || g.v6 != self.v6
            || g.payload > self.mss
            || self.segs >= MAX_SEGS
            || self.len + g.payload > 65_535 - if self.v6 { 40 } else { 0 }
        {
            return Push::Rejected;
        }
        let first = &self.buf[VNET_HDR_LEN..VNET_HDR_LEN + self.hdr_len];
        let ip = g.ip_len;
        let same = if g.v6 {
            first[..4] == p[..4] && first[6..40] == p[6..40]
        } else {
            // TOS, DF, TTL, protocol, addresses; the ID one more per datagram, as the
            // kernel numbers the datagrams it cuts from the super-packet
            let id = u16::from_be_bytes([first[4], first[5]]).wrapping_add(self.segs as u16);
            first[1] == p[1]
                && first[6..10] == p[6..10]
                && first[12..20] == p[12..20]
                && p[4..6] == id.to_be_bytes()
        } && first[ip..ip + 4] == p[ip..ip + 4];
        if !same {
            return Push::Rejected;
        }
        let at = VNET_HDR_LEN + self.len;
        self.buf[at..at + g.payload].copy_from_slice(&p[ip + 8..]);
        self.len += g.payload;
        self.segs += 1;
        // a shorter datagram ends the run
        self.closed = g.payload < self.mss;
        Push::Merged
    }

    /// Finishes the pending packet and returns it with its `virtio_net_hdr` in front, ready
    /// for one TUN write; the coalescer is empty afterwards.
    pub fn flush(&mut self) -> Option<&[u8]> {
        if self.segs == 0 {
            return None;
        }
        let segs = std::mem::take(&mut self.segs);
        let total = self.len;
        let (h, pkt) = self.buf.split_at_mut(VNET_HDR_LEN);
        let pkt = &mut pkt[..total];
        h.fill(0);
        if segs > 1 {
            let ip = self.ip_len;
            let tcp_len = total - ip;
            let mut pseudo;
            if self.v6 {
                pkt[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
                pseudo = csum_add(0, &pkt[8..40]);
            } else {
                pkt[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                pkt[10..12].copy_from_slice(&[0, 0]);
                let c = csum_fold(csum_add(0, &pkt[..20]));
                pkt[10..12].copy_from_slice(&c.to_be_bytes());
                pseudo = csum_add(0, &pkt[12..20]);
            }
            let (proto, check_at, gso) = if self.udp {
                // the UDP length is the whole super-packet's; the kernel adjusts it and the
                // checksum per datagram (`__udp_gso_segment`)
                pkt[ip + 4..ip + 6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
                (17, 6, GSO_UDP_L4)
            } else {
                (6, 16, if self.v6 { GSO_TCPV6 } else { GSO_TCPV4 })
            };
            pseudo += proto + tcp_len as u64;
            // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum, not inverted
            let at = ip + check_at;
            pkt[at..at + 2].copy_from_slice(&(!csum_fold(pseudo)).to_be_bytes());
            h[0] = F_NEEDS_CSUM;
            h[1] = gso;
            h[2..4].copy_from_slice(&(self.hdr_len as u16).to_ne_bytes());
            h[4..6].copy_from_slice(&(self.mss as u16).to_ne_bytes());
            h[6..8].copy_from_slice(&(ip as u16).to_ne_bytes());
            h[8..10].copy_from_slice(&(check_at as u16).to_ne_bytes());
        }
        Some(&self.buf[..VNET_HDR_LEN + total])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify_ip4(p: &[u8]) -> bool {
        csum_fold(csum_add(0, &p[..20])) == 0
    }

    fn verify_tcp(p: &[u8]) -> bool {
        let (ip_len, mut sum) = if p[0] >> 4 == 4 {
            (20, csum_add(0, &p[12..20]))
        } else {
            (40, csum_add(0, &p[8..40]))
        };
        sum += 6 + (p.len() - ip_len) as u64;
        csum_fold(csum_add(sum, &p[ip_len..])) == 0
    }

    /// A TCP super-packet as the kernel hands it over: partial checksum (pseudo header only).
    fn super_packet(v6: bool, payload: usize, flags: u8) -> Vec<u8> {
        let ip_len = if v6 { 40 } else { 20 };
        let mut p = vec![0u8; ip_len + 20 + payload];
        if v6 {
            p[0] = 0x60;
            p[4..6].copy_from_slice(&((20 + payload) as u16).to_be_bytes());
            p[6] = 6;
            p[7] = 64;
            p[8..24].copy_from_slice(&"fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
            p[24..40].copy_from_slice(&"fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        } else {
            p[0] = 0x45;
            let total = (20 + 20 + payload).min(65535) as u16;
            p[2..4].copy_from_slice(&total.to_be_bytes());
            p[4..6].copy_from_slice(&0xfff0u16.to_be_bytes());
            p[6] = 0x40;
            p[8] = 64;
            p[9] = 6;
            p[12..16].copy_from_slice(&[10, 1, 1, 4]);
            p[16..20].copy_from_slice(&[10, 2, 1, 4]);
        }
        let t = ip_len;
        p[t..t + 2].copy_from_slice(&40000u16.to_be_bytes());
        p[t + 2..t + 4].copy_from_slice(&5001u16.to_be_bytes());
        p[t + 4..t + 8].copy_from_slice(&0xffff_f000u32.to_be_bytes()); // wraps during the split
        p[t + 12] = 5 << 4;
        p[t + 13] = flags;
        for (i, b) in p[t + 20..].iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        p
    }

    #[test]
    fn super_packets_split_like_a_nic() {
        for v6 in [false, true] {
            for (payload, mss) in [
                (64_000usize, 1386usize),
                (5000, 1000),
                (1000, 1386),
                (2772, 1386),
            ] {
                let pkt = super_packet(v6, payload, 0x80 | 0x10 | 0x08 | 0x01); // CWR ACK PSH FIN
                let h = VnetHdr {
                    gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
                    gso_size: mss as u16,
                    ..Default::default()
                };
                let s = plan_super(&pkt, &h).unwrap();
                assert_eq!(s.count, payload.div_ceil(mss));
                let mut joined = Vec::new();
                let mut out = vec![0u8; 2000];
                let ip_len = if v6 { 40 } else { 20 };
                for i in 0..s.count {
                    let n = s.write_segment(&pkt, i, &mut out);
                    assert_eq!(n, s.segment_len(i));
                    let seg = &out[..n];
                    assert!(n <= ip_len + 20 + mss);
                    if !v6 {
                        assert!(verify_ip4(seg), "IPv4 header checksum, segment {i}");
                        assert_eq!(u16::from_be_bytes([seg[2], seg[3]]) as usize, n);
                        assert_eq!(
                            u16::from_be_bytes([seg[4], seg[5]]),
                            0xfff0u16.wrapping_add(i as u16)
                        );
                    } else {
                        assert_eq!(u16::from_be_bytes([seg[4], seg[5]]) as usize, n - 40);
                    }
                    assert!(verify_tcp(seg), "TCP checksum, segment {i} (v6 {v6})");
                    let seq = u32::from_be_bytes([
                        seg[ip_len + 4],
                        seg[ip_len + 5],
                        seg[ip_len + 6],
                        seg[ip_len + 7],
                    ]);
                    assert_eq!(seq, 0xffff_f000u32.wrapping_add((i * mss) as u32));
                    let flags = seg[ip_len + 13];
                    let last = i + 1 == s.count;
                    assert_eq!(flags & 0x09 != 0, last, "FIN/PSH only on the last segment");
                    assert_eq!(flags & 0x80 != 0, i == 0, "CWR only on the first");
                    assert!(flags & 0x10 != 0, "ACK on every segment");
                    joined.extend_from_slice(&seg[ip_len + 20..]);
                }
                assert_eq!(joined, pkt[ip_len + 20..], "payload preserved in order");
            }
        }
    }

    #[test]
    fn partial_checksum_is_completed() {
        let mut pkt = super_packet(false, 300, 0x18);
        // the kernel's partial form: pseudo-header sum (not inverted) in the checksum field
        let mut sum = csum_add(0, &pkt[12..20]);
        sum += 6 + 320;
        let partial = !csum_fold(sum);
        pkt[36..38].copy_from_slice(&partial.to_be_bytes());
        complete_checksum(&mut pkt, 20, 16).unwrap();
        assert!(verify_tcp(&pkt));
        assert_eq!(
            complete_checksum(&mut pkt, 20, 400),
            Err(OffloadError::Malformed)
        );
    }

    #[test]
    fn bad_headers_are_rejected() {
        let pkt = super_packet(false, 3000, 0x10);
        let h = VnetHdr {
            gso_type: GSO_TCPV6,
            gso_size: 1000,
            ..Default::default()
        };
        assert_eq!(plan_super(&pkt, &h), Err(OffloadError::Malformed));
        let h = VnetHdr {
            gso_type: 3,
            gso_size: 1000,
            ..Default::default()
        };
        assert_eq!(plan_super(&pkt, &h), Err(OffloadError::UnsupportedGso(3)));
        let h = VnetHdr {
            gso_type: GSO_TCPV4,
            gso_size: 0,
            ..Default::default()
        };
        assert_eq!(plan_super(&pkt, &h), Err(OffloadError::Malformed));
        assert_eq!(
            plan_super(
                &pkt[..30],
                &VnetHdr {
                    gso_type: GSO_TCPV4,
                    gso_size: 100,
                    ..Default::default()
                }
            ),
            Err(OffloadError::Malformed)
        );
    }

    #[test]
    fn mss_of_syn_is_clamped_with_valid_checksum() {
        for v6 in [false, true] {
            let mut pkt = super_packet(v6, 0, 0x02); // SYN, no payload yet
            let ip_len = if v6 { 40 } else { 20 };
            // grow the TCP header by one MSS option (1460) + NOP NOP + SACK-permitted
            let mut opts = vec![2u8, 4, 0x05, 0xb4, 1, 1, 4, 2];
            pkt.append(&mut opts);
            pkt[ip_len + 12] = 7 << 4;
            if v6 {
                pkt[4..6].copy_from_slice(&28u16.to_be_bytes());
            } else {
                let total = pkt.len() as u16;
                pkt[2..4].copy_from_slice(&total.to_be_bytes());
            }
            let mut sum = if v6 {
                csum_add(0, &pkt[8..40])
            } else {
                csum_add(0, &pkt[12..20])
            };
            sum += 6 + 28;
            let c = csum_fold(csum_add(sum, &pkt[ip_len..]));
            pkt[ip_len + 16..ip_len + 18].copy_from_slice(&c.to_be_bytes());
            assert!(verify_tcp(&pkt));
            assert!(clamp_mss(&mut pkt, 1438, true));
            let mss = u16::from_be_bytes([pkt[ip_len + 22], pkt[ip_len + 23]]);
            assert_eq!(mss, if v6 { 1378 } else { 1398 });
            assert!(verify_tcp(&pkt), "checksum updated incrementally (v6 {v6})");
            assert!(!clamp_mss(&mut pkt, 1438, true), "already small enough");
            // a non-SYN is left alone
            pkt[ip_len + 13] = 0x10;
            assert!(!clamp_mss(&mut pkt, 1000, true));
        }
    }

    #[test]
    fn coalesced_segments_split_back_into_the_same_packets() {
        for v6 in [false, true] {
            // a super-packet split like a NIC would, then coalesced again: the result must
            // describe exactly the original stream
            let orig = super_packet(v6, 10 * 1386 + 100, 0x18);
            let ip_len = if v6 { 40 } else { 20 };
            let h = VnetHdr {
                gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
                gso_size: 1386,
                ..Default::default()
            };
            let plan = plan_super(&orig, &h).unwrap();
            let mut c = Coalescer::new();
            let mut seg = vec![0u8; 2000];
            for i in 0..plan.count {
                let n = plan.write_segment(&orig, i, &mut seg);
                assert_eq!(c.push(&seg[..n]), Push::Merged, "segment {i}");
            }
            // after the short last segment nothing more joins
            let n = plan.write_segment(&orig, 0, &mut seg);
            assert_eq!(c.push(&seg[..n]), Push::Rejected);
            let out = c.flush().unwrap().to_vec();
            assert!(!c.pending());
            let hdr = VnetHdr::parse(&out).unwrap();
            assert!(hdr.needs_csum());
            assert_eq!(
                (hdr.gso_size, hdr.csum_start, hdr.csum_offset),
                (1386, ip_len as u16, 16)
            );
            let pkt = &out[VNET_HDR_LEN..];
            assert_eq!(pkt.len(), orig.len());
            assert_eq!(pkt[ip_len + 20..], orig[ip_len + 20..], "payload");
            if !v6 {
                assert!(verify_ip4(pkt));
            }
            // completing the partial checksum gives a valid TCP checksum over the whole packet
            let mut full = pkt.to_vec();
            complete_checksum(&mut full, ip_len, 16).unwrap();
            assert!(verify_tcp(&full));
            // and splitting it again yields segments identical to the first split
            let again = plan_super(pkt, &hdr).unwrap();
            assert_eq!(again.count, plan.count);
            let mut a = vec![0u8; 2000];
            for i in 0..plan.count {
                let n1 = plan.write_segment(&orig, i, &mut seg);
                let n2 = again.write_segment(pkt, i, &mut a);
                assert_eq!(seg[..n1], a[..n2], "segment {i} (v6 {v6})");
            }
        }
    }

    /// One UDP datagram of `payload` bytes (IPv4 ID `id`) with valid checksums.
    fn udp_datagram(v6: bool, id: u16, payload: &[u8]) -> Vec<u8> {
        let ip_len = if v6 { 40 } else { 20 };
        let len = ip_len + 8 + payload.len();
        let mut p = vec![0u8; len];
        if v6 {
            p[0] = 0x60;
            p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
            p[6] = 17;
            p[7] = 64;
            p[8..24].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            p[24..40].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        } else {
            p[0] = 0x45;
            p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            p[4..6].copy_from_slice(&id.to_be_bytes());
            p[6] = 0x40; // DF
            p[8] = 64;
            p[9] = 17;
            p[12..16].copy_from_slice(&[10, 1, 1, 4]);
            p[16..20].copy_from_slice(&[10, 2, 1, 4]);
            let c = csum_fold(csum_add(0, &p[..20]));
            p[10..12].copy_from_slice(&c.to_be_bytes());
        }
        p[ip_len..ip_len + 2].copy_from_slice(&5201u16.to_be_bytes());
        p[ip_len + 2..ip_len + 4].copy_from_slice(&40000u16.to_be_bytes());
        p[ip_len + 4..ip_len + 6].copy_from_slice(&((len - ip_len) as u16).to_be_bytes());
        p[ip_len + 8..].copy_from_slice(payload);
        let mut full = p.clone();
        let pseudo = if v6 {
            csum_add(0, &p[8..40])
        } else {
            csum_add(0, &p[12..20])
        } + 17
            + (len - ip_len) as u64;
        let c = match csum_fold(csum_add(pseudo, &full[ip_len..])) {
            0 => 0xffff,
            c => c,
        };
        full[ip_len + 6..ip_len + 8].copy_from_slice(&c.to_be_bytes());
        full
    }

    #[test]
    fn udp_datagrams_coalesce_and_split_back_into_the_same_datagrams() {
        for v6 in [false, true] {
            let ip_len = if v6 { 40 } else { 20 };
            let dgrams: Vec<Vec<u8>> = (0..10u16)
                .map(|i| {
                    let n = if i == 9 { 20 } else { 36 };
                    let body: Vec<u8> = (0..n).map(|b| (b as u16 * 7 + i) as u8).collect();
                    udp_datagram(v6, 1000 + i, &body)
                })
                .collect();
            // without UDP segmentation on the device nothing joins
            assert_eq!(Coalescer::new().push(&dgrams[0]), Push::Rejected);
            let mut c = Coalescer::new().with_udp(true);
            for (i, d) in dgrams.iter().enumerate() {
                assert_eq!(c.push(d), Push::Merged, "datagram {i} (v6 {v6})");
            }
            // after the short last datagram nothing more joins
            assert_eq!(c.push(&dgrams[0]), Push::Rejected);
            let out = c.flush().unwrap().to_vec();
            let hdr = VnetHdr::parse(&out).unwrap();
            assert!(hdr.needs_csum());
            assert_eq!(
                (hdr.gso_type, hdr.gso_size, hdr.csum_start, hdr.csum_offset),
                (GSO_UDP_L4, 36, ip_len as u16, 6)
            );
            let pkt = &out[VNET_HDR_LEN..];
            assert_eq!(pkt.len(), ip_len + 8 + 9 * 36 + 20);
            if !v6 {
                assert!(verify_ip4(pkt));
            }
            // split as the kernel would: the very datagrams that went in, checksums included
            let plan = plan_super(pkt, &hdr).unwrap();
            assert_eq!(plan.count, 10);
            let mut seg = vec![0u8; 200];
            for (i, d) in dgrams.iter().enumerate() {
                let n = plan.write_segment(pkt, i, &mut seg);
                assert_eq!(&seg[..n], &d[..], "datagram {i} (v6 {v6})");
            }
        }
    }

    #[test]
    fn udp_coalescing_keeps_flows_and_ip_ids_apart() {
        let body = [7u8; 36];
        let mut c = Coalescer::new().with_udp(true);
        assert_eq!(c.push(&udp_datagram(false, 5, &body)), Push::Merged);
        // an IPv4 ID out of sequence: the kernel would not have cut these from one packet
        assert_eq!(c.push(&udp_datagram(false, 9, &body)), Push::Rejected);
        // another destination port
        let mut other = udp_datagram(false, 6, &body);
        other[22..24].copy_from_slice(&4000u16.to_be_bytes());
        assert_eq!(c.push(&other), Push::Rejected);
        // a longer datagram than the first
        assert_eq!(c.push(&udp_datagram(false, 6, &[7u8; 40])), Push::Rejected);
        // a fragment never joins
        let mut frag = udp_datagram(false, 6, &body);
        frag[6] = 0x20; // MF
        assert_eq!(c.push(&frag), Push::Rejected);
        // TCP does not join a pending UDP run
        let tcp = super_packet(false, 100, 0x10);
        assert_eq!(c.push(&tcp[..tcp.len().min(140)]), Push::Rejected);
        // a single datagram goes out as it came, without an offload header
        let out = c.flush().unwrap().to_vec();
        assert_eq!(out[..VNET_HDR_LEN], [0u8; VNET_HDR_LEN]);
        assert_eq!(&out[VNET_HDR_LEN..], &udp_datagram(false, 5, &body)[..]);
    }

    #[test]
    fn coalescer_refuses_what_the_kernel_would_not_merge() {
        let orig = super_packet(false, 3 * 1000, 0x10);
        let h = VnetHdr {
            gso_type: GSO_TCPV4,
            gso_size: 1000,
            ..Default::default()
        };
        let plan = plan_super(&orig, &h).unwrap();
        let mut s0 = vec![0u8; 1100];
        let mut s2 = vec![0u8; 1100];
        let n0 = plan.write_segment(&orig, 0, &mut s0);
        let n2 = plan.write_segment(&orig, 2, &mut s2);
        let mut c = Coalescer::new();
        assert_eq!(c.push(&s0[..n0]), Push::Merged);
        assert_eq!(c.push(&s2[..n2]), Push::Rejected, "gap in sequence numbers");
        // a single pending segment is written unchanged, without GSO
        let out = c.flush().unwrap();
        assert_eq!(&out[..VNET_HDR_LEN], &[0u8; VNET_HDR_LEN]);
        assert_eq!(&out[VNET_HDR_LEN..], &s0[..n0]);
        // SYN, pure ACK and UDP never merge
        let mut syn = s0[..n0].to_vec();
        syn[33] = 0x12;
        assert_eq!(c.push(&syn), Push::Rejected);
        assert_eq!(c.push(&s0[..40]), Push::Rejected);
        let mut udp = s0[..n0].to_vec();
        udp[9] = 17;
        assert_eq!(c.push(&udp), Push::Rejected);
        assert!(c.flush().is_none());
    }

    #[test]
    fn vnet_header_parse() {
        let mut b = [0u8; 10];
        b[0] = 1;
        b[1] = GSO_TCPV4 | GSO_ECN;
        b[4..6].copy_from_slice(&1386u16.to_ne_bytes());
        b[6..8].copy_from_slice(&20u16.to_ne_bytes());
        b[8..10].copy_from_slice(&16u16.to_ne_bytes());
        let h = VnetHdr::parse(&b).unwrap();
        assert!(h.needs_csum());
        assert_eq!(
            (h.gso_type, h.gso_size, h.csum_start, h.csum_offset),
            (GSO_TCPV4, 1386, 20, 16)
        );
        assert!(VnetHdr::parse(&b[..9]).is_none());
    }
}
