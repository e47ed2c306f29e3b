//! The ESP data path: the installed Child SAs, inbound dispatch by SPI, outbound selection by
//! destination address, and per-connection traffic and drop counters.
//!
//! Nothing here allocates per packet: lookups are a hash probe (inbound) or a scan of a small
//! pre-built route vector (outbound), and ESP is sealed into / opened in caller-owned buffers.
//! SA installation and removal (rare, driven by IKE) may allocate.
//!
//! The two directions are separate halves so that they can run on two threads: [`DataPath`]
//! (outbound SAs, routing, SA bookkeeping) belongs to the thread that reads the TUN device and
//! runs IKE; [`Inbound`] (inbound SAs with their replay windows and receive counters) sits behind
//! a mutex that the receiving thread takes once per batch of datagrams, never per packet. Each
//! direction of every SA is handled by exactly one thread, so every flow stays in order.

use esp::{Auth, Cipher, EspError, InboundSa, OutboundSa};
use ike::config::{Encryption, Integrity, TrafficSelector};
use ike::endpoint::ChildSaKeys;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A Child SA we installed in answer to the peer's rekey carries outbound traffic after this
/// long even if neither the peer's DELETE of the old SA nor traffic on the new one showed
/// that the peer has it (then the old SA is gone or useless anyway).
pub const ACTIVATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Outbound sequence numbers after which a Child SA is replaced: the 32-bit counter must
/// never wrap (RFC 4303 §3.3.3); this leaves 2^29 packets (minutes at line rate) for the
/// rekey to finish.
pub const SEQ_SOFT_LIMIT: u32 = 0xE000_0000;

/// Why the data path wants a Child SA replaced before its time lifetime runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekeyCause {
    /// Its outbound sequence numbers passed [`SEQ_SOFT_LIMIT`].
    Sequence,
    /// It carried its share of the byte lifetime.
    Bytes,
}

/// Why a packet was not forwarded; each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketDrop {
    /// ESP with an SPI that belongs to no installed Child SA.
    UnknownSpi,
    /// Duplicate or too-old sequence number (anti-replay).
    Replayed,
    /// ICV did not verify.
    AuthFailed,
    /// Truncated, misaligned or otherwise unparseable ESP, bad padding or next header.
    Malformed,
    /// The decrypted inner packet's addresses lie outside the Child SA's traffic selectors.
    TsMismatch,
    /// A packet from the TUN device for a configured remote prefix whose Child SA is not up.
    NoChildSa,
    /// A packet from the TUN device for an address no connection covers.
    NoRoute,
    /// A packet from the TUN device that is not a well-formed IPv4/IPv6 packet.
    InvalidInner,
    /// A packet for a configured remote prefix that no Child SA covers although the
    /// connection is up: the peer narrowed the traffic selectors.
    Uncovered,
    /// Sealing failed (sequence numbers exhausted, buffer too small).
    SealFailed,
    /// The socket or TUN device refused the packet.
    IoError,
}

/// Per-reason drop counters (shown in status).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCounters {
    /// See [`PacketDrop::UnknownSpi`].
    pub unknown_spi: u64,
    /// See [`PacketDrop::Replayed`].
    pub replayed: u64,
    /// See [`PacketDrop::AuthFailed`].
    pub auth_failed: u64,
    /// See [`PacketDrop::Malformed`].
    pub malformed: u64,
    /// See [`PacketDrop::TsMismatch`].
    pub ts_mismatch: u64,
    /// See [`PacketDrop::NoChildSa`].
    pub no_child_sa: u64,
    /// See [`PacketDrop::NoRoute`].
    pub no_route: u64,
    /// See [`PacketDrop::Uncovered`].
    #[serde(default)]
    pub uncovered: u64,
    /// See [`PacketDrop::InvalidInner`].
    pub invalid_inner: u64,
    /// See [`PacketDrop::SealFailed`].
    pub seal_failed: u64,
    /// See [`PacketDrop::IoError`].
    pub io_error: u64,
}

impl DropCounters {
    /// Books one dropped packet.
    pub fn count(&mut self, d: PacketDrop) {
        let c = match d {
            PacketDrop::UnknownSpi => &mut self.unknown_spi,
            PacketDrop::Replayed => &mut self.replayed,
            PacketDrop::AuthFailed => &mut self.auth_failed,
            PacketDrop::Malformed => &mut self.malformed,
            PacketDrop::TsMismatch => &mut self.ts_mismatch,
            PacketDrop::NoChildSa => &mut self.no_child_sa,
            PacketDrop::NoRoute => &mut self.no_route,
            PacketDrop::Uncovered => &mut self.uncovered,
            PacketDrop::InvalidInner => &mut self.invalid_inner,
            PacketDrop::SealFailed => &mut self.seal_failed,
            PacketDrop::IoError => &mut self.io_error,
        };
        *c += 1;
    }
    /// Adds another set of counters (the two halves of the data path count separately).
    pub fn add(&mut self, o: &DropCounters) {
        self.unknown_spi += o.unknown_spi;
        self.replayed += o.replayed;
        self.auth_failed += o.auth_failed;
        self.malformed += o.malformed;
        self.ts_mismatch += o.ts_mismatch;
        self.no_child_sa += o.no_child_sa;
        self.no_route += o.no_route;
        self.uncovered += o.uncovered;
        self.invalid_inner += o.invalid_inner;
        self.seal_failed += o.seal_failed;
        self.io_error += o.io_error;
    }
    /// Sum of all reasons.
    pub fn total(&self) -> u64 {
        self.unknown_spi
            + self.replayed
            + self.auth_failed
            + self.malformed
            + self.ts_mismatch
            + self.no_child_sa
            + self.no_route
            + self.uncovered
            + self.invalid_inner
            + self.seal_failed
            + self.io_error
    }
}

fn esp_drop(e: &EspError) -> PacketDrop {
    match e.drop_reason() {
        Some(esp::DropReason::Replayed) => PacketDrop::Replayed,
        Some(esp::DropReason::AuthFailed) => PacketDrop::AuthFailed,
        Some(_) => PacketDrop::Malformed,
        None => PacketDrop::Malformed,
    }
}

/// Traffic counters of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Inner (plaintext IP) bytes.
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
}

/// One installed Child SA as shown in status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildSaReport {
    /// Our inbound SPI (the peer's outbound), 8 lowercase hex digits like `swanctl` prints.
    pub spi_in: String,
    /// Our outbound SPI (the peer's inbound).
    pub spi_out: String,
    /// e.g. `AES_GCM_16_256` or `AES_CBC_128/HMAC_SHA1_96`, plus `/ECP_384` with PFS.
    pub algorithms: String,
    /// Where ESP-in-UDP is sent.
    pub peer: String,
    /// Negotiated local traffic selectors.
    pub local_ts: Vec<String>,
    /// Negotiated remote traffic selectors.
    pub remote_ts: Vec<String>,
    /// Decrypted traffic.
    pub inbound: Traffic,
    /// Encrypted traffic.
    pub outbound: Traffic,
    /// Seconds since installation.
    pub age_secs: u64,
    /// Whether outbound traffic currently uses this SA (the newest ready one of its
    /// selectors).
    pub active: bool,
    /// Installed in answer to the peer's rekey and not yet known to be in use by the peer:
    /// outbound stays on the SA it replaces meanwhile.
    #[serde(default)]
    pub pending: bool,
}

/// Why a Child SA negotiated by IKE could not be put into the data path.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// IKE agreed on a transform the esp crate does not implement.
    #[error("unsupported ESP transform {encryption:?} with integrity {integrity:?}")]
    UnsupportedTransform {
        /// The negotiated encryption.
        encryption: Encryption,
        /// The negotiated integrity algorithm, if any.
        integrity: Option<Integrity>,
    },
    /// The esp crate refused the keys (their lengths do not fit the transform).
    #[error("{direction} SA: {source}")]
    Keys {
        /// "inbound" or "outbound".
        direction: &'static str,
        /// What the esp crate said.
        source: esp::EspError,
    },
}

/// The esp crate's transform for a negotiated IKE algorithm pair.
pub fn esp_cipher(enc: Encryption, integ: Option<Integrity>) -> Result<Cipher, InstallError> {
    let auth = integ.map(|i| match i {
        Integrity::HmacMd5_96 => Auth::HmacMd5_96,
        Integrity::HmacSha1_96 => Auth::HmacSha1_96,
        Integrity::HmacSha256_128 => Auth::HmacSha256_128,
        Integrity::HmacSha384_192 => Auth::HmacSha384_192,
    });
    match (enc, auth) {
        (Encryption::AesGcm16_128, None) => Ok(Cipher::AesGcm128),
        (Encryption::AesGcm16_192, None) => Ok(Cipher::AesGcm192),
        (Encryption::AesGcm16_256, None) => Ok(Cipher::AesGcm256),
        (Encryption::AesCbc128, Some(a)) => Ok(Cipher::AesCbc128(a)),
        (Encryption::AesCbc192, Some(a)) => Ok(Cipher::AesCbc192(a)),
        (Encryption::AesCbc256, Some(a)) => Ok(Cipher::AesCbc256(a)),
        (Encryption::TripleDes, Some(a)) => Ok(Cipher::TripleDesCbc(a)),
        (Encryption::Des, Some(a)) => Ok(Cipher::DesCbc(a)),
        (Encryption::Null, Some(a)) => Ok(Cipher::Null(a)),
        _ => Err(InstallError::UnsupportedTransform {
            encryption: enc,
            integrity: integ,
        }),
    }
}

/// An address range of one family as integers, for allocation-free matching.
#[derive(Debug, Clone, Copy)]
struct Range {
    v6: bool,
    start: u128,
    end: u128,
}

fn ip_u128(a: IpAddr) -> (bool, u128) {
    match a {
        IpAddr::V4(v) => (false, u32::from(v) as u128),
        IpAddr::V6(v) => (true, u128::from(v)),
    }
}

impl Range {
    fn of_ts(ts: &TrafficSelector) -> Range {
        let (v6, start) = ip_u128(ts.start);
        let (_, end) = ip_u128(ts.end);
        Range { v6, start, end }
    }
    fn of_net(n: &ipnet::IpNet) -> Range {
        let (v6, start) = ip_u128(n.network());
        let (_, end) = ip_u128(n.broadcast());
        Range { v6, start, end }
    }
    fn contains(&self, v6: bool, a: u128) -> bool {
        self.v6 == v6 && self.start <= a && a <= self.end
    }
    fn size(&self) -> u128 {
        self.end - self.start
    }
    fn covers(&self, o: &Range) -> bool {
        self.v6 == o.v6 && self.start <= o.start && o.end <= self.end
    }
}

/// Source and destination of an IPv4/IPv6 packet, or `None` if it is not one.
pub fn inner_addrs(p: &[u8]) -> Option<(bool, u128, u128)> {
    match p.first()? >> 4 {
        4 if p.len() >= 20 => {
            let s = u32::from_be_bytes([p[12], p[13], p[14], p[15]]);
            let d = u32::from_be_bytes([p[16], p[17], p[18], p[19]]);
            Some((false, s as u128, d as u128))
        }
        6 if p.len() >= 40 => {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&p[8..24]);
            d.copy_from_slice(&p[24..40]);
            Some((true, u128::from_be_bytes(s), u128::from_be_bytes(d)))
        }
        _ => None,
    }
}

fn ts_string(ts: &TrafficSelector) -> String {
    let (v6, s) = ip_u128(ts.start);
    let (_, e) = ip_u128(ts.end);
    let span = e.wrapping_sub(s).wrapping_add(1);
    let bits = if v6 { 128 } else { 32 };
    if span.is_power_of_two() && s % span == 0 {
        let len = bits - span.trailing_zeros();
        format!("{}/{}", ts.start, len)
    } else if span == 0 && v6 {
        // ::/0 spans 2^128 addresses, which wraps to 0
        format!("{}/0", ts.start)
    } else {
        format!("{}-{}", ts.start, ts.end)
    }
}

/// A Child SA's negotiated selectors. One copy per Child SA, shared by its outbound slot,
/// its inbound slot and its routes: with 10,000 tunnels every copy costs a megabyte.
#[derive(PartialEq, Eq)]
struct Selectors {
    local: Box<[TrafficSelector]>,
    remote: Box<[TrafficSelector]>,
}

impl Selectors {
    /// Whether one of `sel`'s address ranges holds `a`.
    fn holds(sel: &[TrafficSelector], v6: bool, a: u128) -> bool {
        sel.iter().any(|t| Range::of_ts(t).contains(v6, a))
    }
    fn ranges(sel: &[TrafficSelector]) -> impl Iterator<Item = Range> + '_ {
        sel.iter().map(Range::of_ts)
    }
}

/// The outbound half of a Child SA plus what status shows about it.
struct ChildSlot {
    conn: usize,
    spi_in: u32,
    spi_out: u32,
    outbound: OutboundSa,
    peer: SocketAddr,
    sel: Arc<Selectors>,
    /// Its algorithms, shown in status.
    cipher: Cipher,
    dh_group: Option<ike::config::DhGroup>,
    installed: Instant,
    traffic_out: Traffic,
    /// Whether it may carry outbound traffic (see [`ChildSaKeys::outbound_now`]).
    ready: bool,
    /// The keys, kept only for an explicit esp_sa export (Wireshark decryption).
    keys: SaKeys,
}

impl ChildSlot {
    /// e.g. `AES_GCM_16_256`, plus `/ECP_384` with PFS.
    fn algorithms(&self) -> String {
        let mut a = self.cipher.name();
        if let Some(g) = self.dh_group {
            a.push('/');
            a.push_str(g.name());
        }
        a
    }
}

/// A Child SA's keys as Wireshark's `esp_sa` table wants them; wiped when dropped. One
/// block (inbound cipher key, outbound cipher key, inbound integrity key, outbound
/// integrity key): one allocation per Child SA instead of four.
struct SaKeys {
    encryption: Encryption,
    integrity: Option<Integrity>,
    enc_len: usize,
    block: zeroize::Zeroizing<Box<[u8]>>,
}

impl SaKeys {
    fn new(k: &ChildSaKeys) -> SaKeys {
        // the joined copy is wiped too, after the exact-size block is made of it
        let joined = zeroize::Zeroizing::new(
            [
                &k.enc_key_in[..],
                &k.enc_key_out,
                &k.integ_key_in,
                &k.integ_key_out,
            ]
            .concat(),
        );
        SaKeys {
            encryption: k.encryption,
            integrity: k.integrity,
            enc_len: k.enc_key_in.len(),
            block: zeroize::Zeroizing::new(joined.as_slice().into()),
        }
    }

    /// (cipher key, integrity key) of the inbound (`true`) or outbound direction.
    fn direction(&self, inbound: bool) -> (&[u8], &[u8]) {
        let (enc, integ) = self.block.split_at(2 * self.enc_len);
        fn half(b: &[u8], inbound: bool) -> &[u8] {
            let (i, o) = b.split_at(b.len() / 2);
            if inbound {
                i
            } else {
                o
            }
        }
        (half(enc, inbound), half(integ, inbound))
    }
}

/// Wireshark's name of an ESP cipher (its `esp_sa` table).
fn wireshark_encryption(e: Encryption) -> &'static str {
    match e {
        Encryption::Des => "DES-CBC [RFC2405]",
        Encryption::TripleDes => "TripleDES-CBC [RFC2451]",
        Encryption::Null => "NULL",
        Encryption::AesCbc128 | Encryption::AesCbc192 | Encryption::AesCbc256 => {
            "AES-CBC [RFC3602]"
        }
        Encryption::AesGcm16_128 | Encryption::AesGcm16_192 | Encryption::AesGcm16_256 => {
            "AES-GCM with 16 octet ICV [RFC4106]"
        }
    }
}

/// Wireshark's name of an ESP integrity algorithm.
fn wireshark_integrity(i: Option<Integrity>) -> &'static str {
    match i {
        None => "NULL",
        Some(Integrity::HmacMd5_96) => "HMAC-MD5-96 [RFC2403]",
        Some(Integrity::HmacSha1_96) => "HMAC-SHA-1-96 [RFC2404]",
        Some(Integrity::HmacSha256_128) => "HMAC-SHA-256-128 [RFC4868]",
        Some(Integrity::HmacSha384_192) => "HMAC-SHA-384-192 [RFC4868]",
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The inbound half of a Child SA.
struct InSlot {
    conn: usize,
    sa: InboundSa,
    sel: Arc<Selectors>,
    traffic: Traffic,
}

/// One connection's counters in one half of the data path.
#[derive(Default, Clone)]
struct ConnTraffic {
    traffic: Traffic,
    drops: DropCounters,
}

/// The receive half: inbound Child SAs by SPI, their replay windows and the receive counters.
/// Shared with the receiving thread (see the module doc); lock it once per batch.
#[derive(Default)]
pub struct Inbound {
    /// Boxed: an inbound SA with its replay window is ~650 bytes, and a hash table keeps up
    /// to twice its entries' room free; inline that doubled the cost of every tunnel.
    by_spi: HashMap<u32, Box<InSlot>>,
    traffic: Vec<ConnTraffic>,
    /// Drops not attributable to a connection (unknown SPI, malformed, …).
    global: DropCounters,
}

impl Inbound {
    /// Decrypts in place and returns where the inner packet lies (so the caller can put a
    /// TUN header right in front of it) and its connection.
    pub fn open_in_place(
        &mut self,
        packet: &mut [u8],
    ) -> Result<(std::ops::Range<usize>, usize), PacketDrop> {
        let Some(spi) = esp::spi_of(packet) else {
            self.global.count(PacketDrop::Malformed);
            return Err(PacketDrop::Malformed);
        };
        let Some(slot) = self.by_spi.get_mut(&spi) else {
            self.global.count(PacketDrop::UnknownSpi);
            return Err(PacketDrop::UnknownSpi);
        };
        let conn = slot.conn;
        let range = match slot.sa.open_in_place(packet) {
            Ok(r) => r,
            Err(e) => {
                let d = esp_drop(&e);
                self.traffic[conn].drops.count(d);
                return Err(d);
            }
        };
        let inner = &packet[range.clone()];
        // RFC 4301 §5.2: the inner packet must match the SA's selectors.
        let ok = match inner_addrs(inner) {
            Some((v6, src, dst)) => {
                Selectors::holds(&slot.sel.remote, v6, src)
                    && Selectors::holds(&slot.sel.local, v6, dst)
            }
            None => false,
        };
        if !ok {
            self.traffic[conn].drops.count(PacketDrop::TsMismatch);
            return Err(PacketDrop::TsMismatch);
        }
        slot.traffic.packets += 1;
        slot.traffic.bytes += inner.len() as u64;
        let t = &mut self.traffic[conn].traffic;
        t.packets += 1;
        t.bytes += inner.len() as u64;
        Ok((range, conn))
    }

    /// Books a drop on the receive side (truncated datagram, TUN write failure) against a
    /// connection, or globally.
    pub fn count(&mut self, conn: Option<usize>, d: PacketDrop) {
        match conn {
            Some(c) if c < self.traffic.len() => self.traffic[c].drops.count(d),
            _ => self.global.count(d),
        }
    }

    fn ensure_connections(&mut self, connections: usize) {
        if connections > self.traffic.len() {
            self.traffic.resize(connections, ConnTraffic::default());
        }
    }
}

/// The outbound routing entry: a remote range, the local ranges a packet must come from,
/// and the Child SA (slot) and connection it leads to.
#[derive(Clone)]
struct Route {
    range: Range,
    /// Its Child SA's selectors: the local ones a packet's source must be in.
    sel: Arc<Selectors>,
    slot: usize,
    conn: usize,
}

/// A configured remote prefix of a connection (to tell "SA not up" from "no route").
#[derive(Clone, Copy)]
struct Configured {
    range: Range,
    conn: usize,
}

/// All Child SAs of all connections, plus the counters; owns the send half and shares the
/// receive half ([`Inbound`]).
pub struct DataPath {
    slots: Vec<Option<ChildSlot>>,
    inbound: Arc<Mutex<Inbound>>,
    by_spi: HashMap<u32, usize>,
    /// Slots outbound traffic uses: per connection and selector pair, the newest ready SA.
    active: Vec<bool>,
    /// Per connection: whether any of its Child SAs is active.
    up: Vec<bool>,
    /// Whether some Child SA waits for the peer (kept with the routes).
    pending: bool,
    /// Negotiated remote selectors of active Child SAs, most specific first.
    routes: Vec<Route>,
    /// Configured remote prefixes, to tell "SA not up" from "no route".
    configured: Vec<Configured>,
    /// Per connection with routes of its own (BGP): the prefixes outbound traffic takes it
    /// for, within its Child SAs' selectors (any-to-any selectors do not route).
    routed: Vec<Option<Vec<Range>>>,
    traffic: Vec<ConnTraffic>,
    /// Send-side drops not attributable to a connection (no route, …).
    global: DropCounters,
    /// One-entry cache: the last (family, source, destination) and its route.
    last: Option<(bool, u128, u128, usize)>,
    /// `routes` by destination, built on the first lookup after they changed.
    index: Option<RouteIndex>,
    /// Per connection: its slots.
    conn_slots: Vec<Vec<usize>>,
    /// Empty slots, lowest first (the one an install takes).
    free_slots: std::collections::BTreeSet<usize>,
    /// Bumped whenever the routes are rebuilt (a Child SA came or went).
    generation: u64,
}

/// `routes` cut at every range boundary into segments, each with the routes covering it
/// in route order: a lookup is a binary search and a look at those few routes instead of
/// a scan of all routes (10,000 tunnels: ~10,000 comparisons per packet).
struct RouteIndex {
    /// Per family (IPv4, IPv6): segment starts, ascending.
    starts: [Vec<u128>; 2],
    /// Per family: segment k's routes are `members[offs[k]..offs[k + 1]]`.
    offs: [Vec<u32>; 2],
    members: [Vec<u32>; 2],
}

impl RouteIndex {
    fn build(routes: &[Route]) -> RouteIndex {
        let mut idx = RouteIndex {
            starts: [vec![], vec![]],
            offs: [vec![], vec![]],
            members: [vec![], vec![]],
        };
        for fam in 0..2 {
            let v6 = fam == 1;
            let mut starts: Vec<u128> = routes
                .iter()
                .filter(|r| r.range.v6 == v6)
                .flat_map(|r| [Some(r.range.start), r.range.end.checked_add(1)])
                .flatten()
                .collect();
            starts.sort_unstable();
            starts.dedup();
            let seg = |a: u128| starts.partition_point(|s| *s <= a) - 1;
            let mut count = vec![0u32; starts.len() + 1];
            for r in routes.iter().filter(|r| r.range.v6 == v6) {
                for k in seg(r.range.start)..=seg(r.range.end) {
                    count[k + 1] += 1;
                }
            }
            for k in 1..count.len() {
                count[k] += count[k - 1];
            }
            let mut fill = count.clone();
            let mut members = vec![0u32; count[starts.len()] as usize];
            for (i, r) in routes.iter().enumerate().filter(|(_, r)| r.range.v6 == v6) {
                for k in seg(r.range.start)..=seg(r.range.end) {
                    members[fill[k] as usize] = i as u32;
                    fill[k] += 1;
                }
            }
            idx.starts[fam] = starts;
            idx.offs[fam] = count;
            idx.members[fam] = members;
        }
        idx
    }

    /// The routes whose range holds `dst`, in route order.
    fn candidates(&self, v6: bool, dst: u128) -> &[u32] {
        let fam = usize::from(v6);
        let k = self.starts[fam].partition_point(|s| *s <= dst);
        if k == 0 {
            return &[];
        }
        let (a, b) = (self.offs[fam][k - 1], self.offs[fam][k]);
        &self.members[fam][a as usize..b as usize]
    }
}

/// The outbound SA chosen for a packet (valid until the next install/remove).
#[derive(Debug, Clone, Copy)]
pub struct OutSa {
    idx: usize,
    /// The connection.
    pub conn: usize,
    /// ESP header + IV length: where the inner packet must start in the buffer.
    pub header_len: usize,
    /// Where the ESP packets go.
    pub peer: SocketAddr,
}

/// What an inbound ESP packet turned into.
pub struct Opened<'a> {
    /// The inner IP packet, to be written to the TUN device.
    pub inner: &'a [u8],
    /// The connection it belongs to.
    pub conn: usize,
}

impl DataPath {
    /// An empty data path for `connections` connections.
    pub fn new(connections: usize) -> Self {
        let mut inbound = Inbound::default();
        inbound.ensure_connections(connections);
        DataPath {
            // a Child SA per connection, mostly: no growth by doubling (~370 bytes a slot)
            slots: Vec::with_capacity(connections),
            inbound: Arc::new(Mutex::new(inbound)),
            by_spi: HashMap::new(),
            active: Vec::new(),
            up: vec![false; connections],
            pending: false,
            routes: Vec::new(),
            configured: Vec::new(),
            routed: Vec::new(),
            traffic: vec![ConnTraffic::default(); connections],
            global: DropCounters::default(),
            last: None,
            index: None,
            conn_slots: Vec::new(),
            free_slots: std::collections::BTreeSet::new(),
            generation: 0,
        }
    }

    /// Changes whenever the outbound routes were rebuilt: a caller that saw the same value
    /// knows no connection went up or down since.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The receive half, for the thread that decrypts.
    pub fn inbound(&self) -> Arc<Mutex<Inbound>> {
        Arc::clone(&self.inbound)
    }

    fn lock_inbound(&self) -> MutexGuard<'_, Inbound> {
        // a panic elsewhere while holding the lock leaves consistent counters behind
        self.inbound.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a connection's configured remote prefixes (for drop accounting only).
    pub fn set_configured_prefixes(&mut self, conn: usize, prefixes: &[ipnet::IpNet]) {
        self.configured.retain(|r| r.conn != conn);
        // each at the end of its size class, as a stable sort would put it (a sort per
        // connection made starting N connections O(N² log N))
        for p in prefixes {
            let range = Range::of_net(p);
            let at = self
                .configured
                .partition_point(|r| r.range.size() <= range.size());
            self.configured.insert(at, Configured { range, conn });
        }
    }

    /// Routes connection `conn` by `prefixes` rather than by its selectors (`None`: by its
    /// selectors again): a BGP connection's any-to-any Child SA carries only what is routed
    /// to its peer. Also what "no Child SA" is counted against.
    pub fn set_routed_prefixes(&mut self, conn: usize, prefixes: Option<&[ipnet::IpNet]>) {
        if self.routed.len() <= conn {
            self.routed.resize(conn + 1, None);
        }
        self.routed[conn] = prefixes.map(|p| p.iter().map(Range::of_net).collect());
        if let Some(p) = prefixes {
            self.set_configured_prefixes(conn, p);
        }
        self.rebuild_routes_of(conn);
    }

    /// Whether a Child SA of `conn` carries traffic.
    pub fn is_up(&self, conn: usize) -> bool {
        self.up.get(conn).copied().unwrap_or(false)
    }

    /// Installs a Child SA negotiated by IKE. It carries outbound traffic for its selectors
    /// at once, or — when we answered the peer's rekey — once the peer shows it has it.
    pub fn install(
        &mut self,
        conn: usize,
        keys: &ChildSaKeys,
        now: Instant,
    ) -> Result<(), InstallError> {
        let cipher = esp_cipher(keys.encryption, keys.integrity)?;
        let inbound = InboundSa::new(keys.spi_in, cipher, &keys.enc_key_in, &keys.integ_key_in)
            .map_err(|source| InstallError::Keys {
                direction: "inbound",
                source,
            })?;
        let outbound =
            OutboundSa::new(keys.spi_out, cipher, &keys.enc_key_out, &keys.integ_key_out).map_err(
                |source| InstallError::Keys {
                    direction: "outbound",
                    source,
                },
            )?;
        let sel = Arc::new(Selectors {
            local: keys.local_ts.as_slice().into(),
            remote: keys.remote_ts.as_slice().into(),
        });
        let slot = ChildSlot {
            conn,
            spi_in: keys.spi_in,
            spi_out: keys.spi_out,
            outbound,
            peer: keys.peer,
            sel: sel.clone(),
            cipher,
            dh_group: keys.dh_group,
            installed: now,
            traffic_out: Traffic::default(),
            ready: keys.outbound_now,
            keys: SaKeys::new(keys),
        };
        {
            let mut inb = self.lock_inbound();
            inb.ensure_connections(conn + 1);
            inb.by_spi.insert(
                keys.spi_in,
                Box::new(InSlot {
                    conn,
                    sa: inbound,
                    sel,
                    traffic: Traffic::default(),
                }),
            );
        }
        let mut replaced = None;
        if let Some(old) = self.by_spi.get(&keys.spi_in).copied() {
            replaced = self.slots[old].take().map(|s| s.conn);
            self.release_slot(old, replaced);
        }
        let idx = match self.free_slots.pop_first() {
            Some(i) => {
                self.slots[i] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        if self.conn_slots.len() <= conn {
            self.conn_slots.resize(conn + 1, Vec::new());
        }
        // exact: one Child SA per connection mostly (a first push makes room for four)
        self.conn_slots[conn].reserve_exact(1);
        self.conn_slots[conn].push(idx);
        self.by_spi.insert(keys.spi_in, idx);
        if conn >= self.up.len() {
            self.up.resize(conn + 1, false);
            self.traffic.resize(conn + 1, ConnTraffic::default());
        }
        if let Some(other) = replaced.filter(|c| *c != conn) {
            self.rebuild_routes_of(other);
        }
        self.rebuild_routes_of(conn);
        Ok(())
    }

    /// Removes the Child SA with inbound SPI `spi_in`; outbound for its selectors falls back
    /// to the newest remaining Child SA with the same selectors (a rekeyed one waiting to be
    /// used is ready now: the peer deleted the SA it replaced). Returns whether one was
    /// removed.
    pub fn remove(&mut self, spi_in: u32) -> bool {
        self.lock_inbound().by_spi.remove(&spi_in);
        let Some(idx) = self.by_spi.remove(&spi_in) else {
            return false;
        };
        let Some(gone) = self.slots[idx].take() else {
            return false;
        };
        self.release_slot(idx, Some(gone.conn));
        for &i in self
            .conn_slots
            .get(gone.conn)
            .map_or(&[][..], |v| v.as_slice())
        {
            if let Some(s) = self.slots[i].as_mut() {
                if s.sel == gone.sel {
                    s.ready = true;
                }
            }
        }
        self.rebuild_routes_of(gone.conn);
        true
    }

    /// Whether Child SAs wait for the peer before carrying outbound traffic (then call
    /// [`Self::activate_pending`] soon).
    pub fn has_pending(&self) -> bool {
        self.pending
    }

    /// Lets waiting Child SAs carry outbound traffic once the peer used them (traffic
    /// arrived on them) or [`ACTIVATION_TIMEOUT`] passed; returns how many moved.
    pub fn activate_pending(&mut self, now: Instant) -> usize {
        if !self.has_pending() {
            return 0;
        }
        let inb = self.inbound.lock().unwrap_or_else(|e| e.into_inner());
        let mut moved = 0;
        for s in self.slots.iter_mut().flatten().filter(|s| !s.ready) {
            let used = inb
                .by_spi
                .get(&s.spi_in)
                .is_some_and(|i| i.traffic.packets > 0);
            if used || now.saturating_duration_since(s.installed) >= ACTIVATION_TIMEOUT {
                s.ready = true;
                moved += 1;
            }
        }
        drop(inb);
        if moved > 0 {
            self.rebuild_routes();
        }
        moved
    }

    /// The active Child SAs of a connection that must be replaced before their time
    /// lifetime: sequence numbers running out (either side rekeys for that), or, when
    /// `byte_limit` is given, 85-95 % of it carried (jittered by SPI so that many tunnels do
    /// not rekey at once). By inbound SPI.
    pub fn rekey_due(&self, conn: usize, byte_limit: Option<u64>) -> Vec<(u32, RekeyCause)> {
        let inb = self.lock_inbound();
        self.slots_of(conn)
            .filter(|(i, _)| self.active.get(*i).copied().unwrap_or(false))
            .filter_map(|(_, s)| {
                if s.outbound.last_seq() >= SEQ_SOFT_LIMIT {
                    return Some((s.spi_in, RekeyCause::Sequence));
                }
                let limit = byte_limit?;
                let soft = limit / 100 * (85 + u64::from(s.spi_in % 11));
                let inbound = inb.by_spi.get(&s.spi_in).map_or(0, |i| i.traffic.bytes);
                (inbound + s.traffic_out.bytes >= soft).then_some((s.spi_in, RekeyCause::Bytes))
            })
            .collect()
    }

    /// Points every Child SA of a connection at `peer` (the IKE SA followed a peer whose NAT
    /// mapping or address changed); returns how many changed.
    pub fn set_peer(&mut self, conn: usize, peer: SocketAddr) -> usize {
        let mut n = 0;
        for &i in self.conn_slots.get(conn).map_or(&[][..], Vec::as_slice) {
            if let Some(s) = self.slots[i].as_mut().filter(|s| s.peer != peer) {
                s.peer = peer;
                n += 1;
            }
        }
        n
    }

    /// Connection `conn`'s Child SAs with their slots: per-connection work looks at those
    /// few instead of every slot (10,000 tunnels: 10^8 steps a second otherwise).
    fn slots_of(&self, conn: usize) -> impl Iterator<Item = (usize, &ChildSlot)> {
        self.conn_slots
            .get(conn)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.slots[i].as_ref().map(|s| (i, s)))
    }

    /// Where a connection's Child SAs send (its peer, after any NAT move).
    pub fn peers_of(&self, conn: usize) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = self.slots_of(conn).map(|(_, s)| s.peer).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Makes room for connection indices up to `connections - 1` (a reload added some).
    pub fn ensure_connections(&mut self, connections: usize) {
        if connections > self.up.len() {
            self.up.resize(connections, false);
        }
        if connections > self.traffic.len() {
            self.traffic.resize(connections, ConnTraffic::default());
        }
        self.lock_inbound().ensure_connections(connections);
    }

    /// Forgets a removed connection: its Child SAs, configured prefixes and counters.
    pub fn forget_connection(&mut self, conn: usize) {
        self.remove_connection(conn);
        self.configured.retain(|r| r.conn != conn);
        if let Some(r) = self.routed.get_mut(conn) {
            *r = None;
        }
        if let Some(t) = self.traffic.get_mut(conn) {
            *t = ConnTraffic::default();
        }
        if let Some(t) = self.lock_inbound().traffic.get_mut(conn) {
            *t = ConnTraffic::default();
        }
        self.last = None;
    }

    /// Removes every Child SA of a connection.
    pub fn remove_connection(&mut self, conn: usize) {
        let spis: Vec<u32> = self.slots_of(conn).map(|(_, s)| s.spi_in).collect();
        for spi in spis {
            self.remove(spi);
        }
    }

    /// Recomputes which SAs carry outbound traffic — per connection and selector pair, the
    /// newest ready one (the newest of all if none is ready) — and their routes.
    fn rebuild_routes(&mut self) {
        // per (connection, local selectors, remote selectors): the best (ready, installed, slot)
        type Group<'a> = (usize, &'a [TrafficSelector], &'a [TrafficSelector]);
        let mut best: HashMap<Group, (bool, Instant, usize)> = HashMap::new();
        for (i, s) in self.slots.iter().enumerate() {
            let Some(s) = s else { continue };
            let key = (s.conn, &s.sel.local[..], &s.sel.remote[..]);
            let rank = (s.ready, s.installed, i);
            let e = best.entry(key).or_insert(rank);
            if rank > *e {
                *e = rank;
            }
        }
        let mut active = vec![false; self.slots.len()];
        for (_, _, i) in best.into_values() {
            active[i] = true;
        }
        self.routes.clear();
        self.up.iter_mut().for_each(|u| *u = false);
        for (i, s) in self.slots.iter().enumerate() {
            let Some(s) = s.as_ref().filter(|_| active[i]) else {
                continue;
            };
            if let Some(u) = self.up.get_mut(s.conn) {
                *u = true;
            }
            match self.routed.get(s.conn).and_then(Option::as_ref) {
                Some(routed) => self.routes.extend(
                    routed
                        .iter()
                        .filter(|r| Selectors::ranges(&s.sel.remote).any(|sel| sel.covers(r)))
                        .map(|r| Route {
                            range: *r,
                            sel: s.sel.clone(),
                            slot: i,
                            conn: s.conn,
                        }),
                ),
                None => self
                    .routes
                    .extend(Selectors::ranges(&s.sel.remote).map(|range| Route {
                        range,
                        sel: s.sel.clone(),
                        slot: i,
                        conn: s.conn,
                    })),
            }
        }
        self.active = active;
        self.pending = self.slots.iter().flatten().any(|s| !s.ready);
        self.routes.sort_by_key(|r| (r.range.size(), r.slot));
        self.last = None;
        self.index = None;
        self.generation += 1;
    }

    /// Slot `idx` (of connection `conn`) is empty now.
    fn release_slot(&mut self, idx: usize, conn: Option<usize>) {
        if let Some(v) = conn.and_then(|c| self.conn_slots.get_mut(c)) {
            v.retain(|&i| i != idx);
        }
        if let Some(a) = self.active.get_mut(idx) {
            *a = false;
        }
        self.free_slots.insert(idx);
    }

    /// [`Self::rebuild_routes`] for one connection, whose Child SAs or routed prefixes
    /// changed: the other connections' choices and routes stay. A full rebuild for every
    /// Child SA installed made setting up N tunnels O(N²): 6 ms per Child SA at 10,000.
    /// Routes are ordered by (size, slot) in both, so the result is the same.
    fn rebuild_routes_of(&mut self, conn: usize) {
        self.active.resize(self.slots.len(), false);
        let mine = self.conn_slots.get(conn).cloned().unwrap_or_default();
        // per (local selectors, remote selectors) of this connection: the best (ready,
        // installed, slot); a connection has a handful of Child SAs
        let mut best: Vec<(bool, Instant, usize)> = Vec::new();
        let mut mine_waiting = false;
        for &i in &mine {
            let Some(s) = self.slots[i].as_ref() else {
                continue;
            };
            self.active[i] = false;
            mine_waiting |= !s.ready;
            let rank = (s.ready, s.installed, i);
            let same = best
                .iter_mut()
                .find(|(_, _, j)| self.slots[*j].as_ref().is_some_and(|o| o.sel == s.sel));
            match same {
                Some(b) if rank > *b => *b = rank,
                Some(_) => {}
                None => best.push(rank),
            }
        }
        self.routes.retain(|r| r.conn != conn);
        best.sort_by_key(|&(_, _, i)| i);
        for &(_, _, i) in &best {
            self.active[i] = true;
            let Some(s) = self.slots[i].as_ref() else {
                continue;
            };
            let ranges: Vec<Range> = match self.routed.get(conn).and_then(Option::as_ref) {
                Some(routed) => routed
                    .iter()
                    .filter(|r| Selectors::ranges(&s.sel.remote).any(|sel| sel.covers(r)))
                    .copied()
                    .collect(),
                None => Selectors::ranges(&s.sel.remote).collect(),
            };
            for range in ranges {
                // where a stable sort by (size, slot) would put it
                let key = (range.size(), i);
                let at = self
                    .routes
                    .partition_point(|r| (r.range.size(), r.slot) <= key);
                self.routes.insert(
                    at,
                    Route {
                        range,
                        sel: s.sel.clone(),
                        slot: i,
                        conn,
                    },
                );
            }
        }
        if let Some(u) = self.up.get_mut(conn) {
            *u = !best.is_empty();
        }
        // only while some Child SA waits (a rekey) does this look at every slot
        self.pending =
            mine_waiting || (self.pending && self.slots.iter().flatten().any(|s| !s.ready));
        self.last = None;
        self.index = None;
        self.generation += 1;
    }

    /// Decrypts one ESP packet (SPI first, no UDP header) in place (locks the receive half;
    /// the receiving loop locks [`Inbound`] once per batch instead).
    pub fn open<'a>(&mut self, packet: &'a mut [u8]) -> Result<Opened<'a>, PacketDrop> {
        let (range, conn) = self.lock_inbound().open_in_place(packet)?;
        Ok(Opened {
            inner: &packet[range],
            conn,
        })
    }

    /// The first route (most specific first) for `dst` whose local ranges hold `src`.
    fn lookup(&mut self, v6: bool, src: u128, dst: u128) -> Option<usize> {
        let routes = &self.routes;
        self.index
            .get_or_insert_with(|| RouteIndex::build(routes))
            .candidates(v6, dst)
            .iter()
            .map(|&r| r as usize)
            .find(|&r| {
                routes[r].range.contains(v6, dst) && Selectors::holds(&routes[r].sel.local, v6, src)
            })
    }

    /// Picks the outbound Child SA for an inner packet: the most specific active SA whose
    /// remote selectors hold the destination and whose local selectors hold the source
    /// (drops counted).
    pub fn route(&mut self, inner: &[u8]) -> Result<OutSa, PacketDrop> {
        let Some((v6, src, dst)) = inner_addrs(inner) else {
            self.global.count(PacketDrop::InvalidInner);
            return Err(PacketDrop::InvalidInner);
        };
        let r = match self.last {
            Some((lv6, ls, ld, r)) if lv6 == v6 && ls == src && ld == dst => r,
            _ => match self.lookup(v6, src, dst) {
                Some(r) => {
                    self.last = Some((v6, src, dst, r));
                    r
                }
                None => {
                    let d = match self.configured.iter().find(|r| r.range.contains(v6, dst)) {
                        Some(r) => {
                            let d = if self.up.get(r.conn).copied().unwrap_or(false) {
                                PacketDrop::Uncovered
                            } else {
                                PacketDrop::NoChildSa
                            };
                            self.traffic[r.conn].drops.count(d);
                            d
                        }
                        None => {
                            self.global.count(PacketDrop::NoRoute);
                            PacketDrop::NoRoute
                        }
                    };
                    return Err(d);
                }
            },
        };
        let (idx, conn) = (self.routes[r].slot, self.routes[r].conn);
        let slot = self.slots[idx]
            .as_ref()
            .expect("routes point at live slots");
        Ok(OutSa {
            idx,
            conn,
            header_len: slot.outbound.header_len(),
            peer: slot.peer,
        })
    }

    /// Every installed Child SA as lines of Wireshark's `esp_sa` table (both directions,
    /// with their keys), for decrypting an outer capture taken at `local`: only for an
    /// explicit request, since it hands out the keys.
    pub fn esp_sa_export(&self, local: IpAddr) -> Vec<String> {
        let fam = if local.is_ipv4() { "IPv4" } else { "IPv6" };
        let mut out = Vec::new();
        for s in self.slots.iter().flatten() {
            let k = &s.keys;
            let (enc, auth) = (
                wireshark_encryption(k.encryption),
                wireshark_integrity(k.integrity),
            );
            let row = |src: IpAddr, dst: IpAddr, spi: u32, key: &[u8], ikey: &[u8]| {
                format!(
                    "\"{fam}\",\"{src}\",\"{dst}\",\"0x{spi:08x}\",\"{enc}\",\"0x{}\",\"{auth}\",\"{}\"",
                    hex(key),
                    if ikey.is_empty() { String::new() } else { format!("0x{}", hex(ikey)) }
                )
            };
            let ((enc_in, integ_in), (enc_out, integ_out)) =
                (k.direction(true), k.direction(false));
            out.push(row(local, s.peer.ip(), s.spi_out, enc_out, integ_out));
            out.push(row(s.peer.ip(), local, s.spi_in, enc_in, integ_in));
        }
        out
    }

    /// Exact ESP length of an inner packet of `inner_len` bytes on `sa`.
    pub fn sealed_len(&self, sa: &OutSa, inner_len: usize) -> usize {
        self.slots[sa.idx]
            .as_ref()
            .map(|s| s.outbound.sealed_len(inner_len))
            .unwrap_or(usize::MAX)
    }

    /// Seals the inner packet that sits at `buf[sa.header_len..][..inner_len]` in place;
    /// returns the ESP length.
    pub fn seal_in_place(
        &mut self,
        sa: &OutSa,
        buf: &mut [u8],
        inner_len: usize,
    ) -> Result<usize, PacketDrop> {
        let slot = self.slots[sa.idx]
            .as_mut()
            .expect("OutSa points at a live slot");
        match slot.outbound.seal_in_place(buf, inner_len) {
            Ok(n) => {
                slot.traffic_out.packets += 1;
                slot.traffic_out.bytes += inner_len as u64;
                let t = &mut self.traffic[sa.conn].traffic;
                t.packets += 1;
                t.bytes += inner_len as u64;
                Ok(n)
            }
            Err(e) => {
                let d = if matches!(e, EspError::NotIpPacket) {
                    PacketDrop::InvalidInner
                } else {
                    PacketDrop::SealFailed
                };
                self.traffic[sa.conn].drops.count(d);
                Err(d)
            }
        }
    }

    /// Encrypts one inner packet into `out`; returns the ESP length and where to send it.
    pub fn seal(
        &mut self,
        inner: &[u8],
        out: &mut [u8],
    ) -> Result<(usize, SocketAddr), PacketDrop> {
        let sa = self.route(inner)?;
        let h = sa.header_len;
        if out.len() < h + inner.len() {
            self.traffic[sa.conn].drops.count(PacketDrop::SealFailed);
            return Err(PacketDrop::SealFailed);
        }
        out[h..h + inner.len()].copy_from_slice(inner);
        let n = self.seal_in_place(&sa, out, inner.len())?;
        Ok((n, sa.peer))
    }

    /// Books a send-side drop found outside the data path (I/O failure, bad offload
    /// header) against a connection, or globally.
    pub fn count(&mut self, conn: Option<usize>, d: PacketDrop) {
        match conn {
            Some(c) if c < self.traffic.len() => self.traffic[c].drops.count(d),
            _ => self.global.count(d),
        }
    }

    /// Connection-level counters: (inbound, outbound, drops).
    pub fn connection_counters(&self, conn: usize) -> (Traffic, Traffic, DropCounters) {
        let (out, mut drops) = self
            .traffic
            .get(conn)
            .map(|t| (t.traffic, t.drops))
            .unwrap_or_default();
        let inb = self.lock_inbound();
        let (inbound, in_drops) = inb
            .traffic
            .get(conn)
            .map(|t| (t.traffic, t.drops))
            .unwrap_or_default();
        drops.add(&in_drops);
        (inbound, out, drops)
    }

    /// Drops not attributable to a connection.
    pub fn global_drops(&self) -> DropCounters {
        let mut d = self.global;
        d.add(&self.lock_inbound().global);
        d
    }

    /// Status rows for a connection's installed Child SAs, newest first.
    pub fn child_reports(&self, conn: usize, now: Instant) -> Vec<ChildSaReport> {
        let inb = self.lock_inbound();
        let mut v: Vec<(Instant, ChildSaReport)> = self
            .slots_of(conn)
            .map(|(i, s)| {
                (
                    s.installed,
                    ChildSaReport {
                        spi_in: format!("{:08x}", s.spi_in),
                        spi_out: format!("{:08x}", s.spi_out),
                        algorithms: s.algorithms(),
                        peer: s.peer.to_string(),
                        local_ts: s.sel.local.iter().map(ts_string).collect(),
                        remote_ts: s.sel.remote.iter().map(ts_string).collect(),
                        inbound: inb
                            .by_spi
                            .get(&s.spi_in)
                            .map(|i| i.traffic)
                            .unwrap_or_default(),
                        outbound: s.traffic_out,
                        age_secs: now.saturating_duration_since(s.installed).as_secs(),
                        active: self.active.get(i).copied().unwrap_or(false),
                        pending: !s.ready,
                    },
                )
            })
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.0));
        v.into_iter().map(|(_, r)| r).collect()
    }

    /// The remote address ranges the active Child SAs of a connection cover.
    pub fn covered_remote(&self, conn: usize) -> Vec<(IpAddr, IpAddr)> {
        let ip = |v6: bool, a: u128| {
            if v6 {
                IpAddr::V6(std::net::Ipv6Addr::from(a))
            } else {
                IpAddr::V4(std::net::Ipv4Addr::from(a as u32))
            }
        };
        let mut out: Vec<(IpAddr, IpAddr)> = self
            .routes
            .iter()
            .filter(|r| r.conn == conn)
            .map(|r| (ip(r.range.v6, r.range.start), ip(r.range.v6, r.range.end)))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Number of installed Child SAs.
    pub fn child_count(&self) -> usize {
        self.by_spi.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ts(s: &str) -> TrafficSelector {
        let n: ipnet::IpNet = s.parse().unwrap();
        TrafficSelector::from_prefix(n.network(), n.prefix_len())
    }

    /// Keys for one Child SA as seen from side A and from side B (mirror images).
    fn keyed(
        spi_ab: u32,
        spi_ba: u32,
        enc: Encryption,
        integ: Option<Integrity>,
        salt: u8,
    ) -> (ChildSaKeys, ChildSaKeys) {
        let klen = enc.keymat_len();
        let ilen = integ.map_or(0, Integrity::key_len);
        let k_ab: Vec<u8> = (0..klen).map(|i| i as u8 ^ salt).collect();
        let k_ba: Vec<u8> = (0..klen)
            .map(|i| (i as u8).wrapping_mul(7) ^ salt)
            .collect();
        let i_ab: Vec<u8> = (0..ilen).map(|i| i as u8 ^ 0x5a).collect();
        let i_ba: Vec<u8> = (0..ilen).map(|i| i as u8 ^ 0xa5).collect();
        let a = ChildSaKeys {
            spi_in: spi_ba,
            spi_out: spi_ab,
            encryption: enc,
            integrity: integ,
            enc_key_in: k_ba.clone(),
            enc_key_out: k_ab.clone(),
            integ_key_in: i_ba.clone(),
            integ_key_out: i_ab.clone(),
            local_ts: vec![ts("10.1.0.0/16")],
            remote_ts: vec![ts("10.2.0.0/16")],
            peer: "198.51.100.2:4500".parse().unwrap(),
            dh_group: None,
            outbound_now: true,
        };
        let b = ChildSaKeys {
            spi_in: spi_ab,
            spi_out: spi_ba,
            encryption: enc,
            integrity: integ,
            enc_key_in: k_ab,
            enc_key_out: k_ba,
            integ_key_in: i_ab,
            integ_key_out: i_ba,
            local_ts: vec![ts("10.2.0.0/16")],
            remote_ts: vec![ts("10.1.0.0/16")],
            peer: "198.51.100.1:4500".parse().unwrap(),
            dh_group: None,
            outbound_now: true,
        };
        (a, b)
    }

    /// A minimal IPv4/UDP packet src → dst with `len` payload bytes.
    fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> Vec<u8> {
        let total = 28 + len;
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&src.octets());
        p[16..20].copy_from_slice(&dst.octets());
        let mut sum: u32 = 0;
        for i in (0..20).step_by(2) {
            sum += u16::from_be_bytes([p[i], p[i + 1]]) as u32;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        p[20..22].copy_from_slice(&1234u16.to_be_bytes());
        p[22..24].copy_from_slice(&5678u16.to_be_bytes());
        p[24..26].copy_from_slice(&((8 + len) as u16).to_be_bytes());
        for (i, b) in p[28..].iter_mut().enumerate() {
            *b = i as u8;
        }
        p
    }

    const A: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 4);
    const B: Ipv4Addr = Ipv4Addr::new(10, 2, 1, 4);

    fn pair(enc: Encryption, integ: Option<Integrity>) -> (DataPath, DataPath) {
        let (ka, kb) = keyed(0x1000_0001, 0x2000_0002, enc, integ, 0);
        let mut a = DataPath::new(1);
        let mut b = DataPath::new(1);
        a.set_configured_prefixes(0, &["10.2.0.0/16".parse().unwrap()]);
        b.set_configured_prefixes(0, &["10.1.0.0/16".parse().unwrap()]);
        a.install(0, &ka, Instant::now()).unwrap();
        b.install(0, &kb, Instant::now()).unwrap();
        (a, b)
    }

    #[test]
    fn manually_keyed_sas_carry_packets_both_ways_for_every_cipher() {
        let combos = [
            (Encryption::AesGcm16_256, None),
            (Encryption::AesGcm16_128, None),
            (Encryption::AesCbc128, Some(Integrity::HmacSha1_96)),
            (Encryption::AesCbc256, Some(Integrity::HmacSha256_128)),
            (Encryption::AesCbc256, Some(Integrity::HmacSha384_192)),
            (Encryption::AesGcm16_192, None),
            (Encryption::AesCbc192, Some(Integrity::HmacMd5_96)),
            (Encryption::TripleDes, Some(Integrity::HmacSha1_96)),
            (Encryption::Des, Some(Integrity::HmacMd5_96)),
            (Encryption::Null, Some(Integrity::HmacSha256_128)),
        ];
        for (enc, integ) in combos {
            let (mut a, mut b) = pair(enc, integ);
            let mut wire = vec![0u8; 2048];
            for len in [0usize, 1, 100, 1372] {
                let pkt = ipv4(A, B, len);
                let (n, peer) = a.seal(&pkt, &mut wire).unwrap();
                assert_eq!(peer, "198.51.100.2:4500".parse().unwrap());
                assert_eq!(&wire[..4], &0x1000_0001u32.to_be_bytes());
                let opened = b.open(&mut wire[..n]).unwrap();
                assert_eq!(opened.inner, &pkt[..], "{enc:?}/{integ:?} len {len}");
                let back = ipv4(B, A, len);
                let (n, _) = b.seal(&back, &mut wire).unwrap();
                assert_eq!(a.open(&mut wire[..n]).unwrap().inner, &back[..]);
            }
            let (ain, aout, adrops) = a.connection_counters(0);
            assert_eq!((ain.packets, aout.packets, adrops.total()), (4, 4, 0));
            assert_eq!(aout.bytes, (28 * 4 + 1 + 100 + 1372) as u64);
        }
    }

    #[test]
    fn drops_are_counted_by_reason() {
        let (mut a, mut b) = pair(Encryption::AesGcm16_256, None);
        let mut wire = vec![0u8; 2048];
        let pkt = ipv4(A, B, 64);
        let (n, _) = a.seal(&pkt, &mut wire).unwrap();
        let sealed = wire[..n].to_vec();
        // replay
        b.open(&mut sealed.clone()).unwrap();
        assert_eq!(
            b.open(&mut sealed.clone()).err(),
            Some(PacketDrop::Replayed)
        );
        // bit flip in the ciphertext
        let (n, _) = a.seal(&pkt, &mut wire).unwrap();
        let mut flipped = wire[..n].to_vec();
        flipped[30] ^= 0x01;
        assert_eq!(b.open(&mut flipped).err(), Some(PacketDrop::AuthFailed));
        // truncated
        let (n, _) = a.seal(&pkt, &mut wire).unwrap();
        assert_eq!(
            b.open(&mut wire[..n.min(20)].to_vec()).err(),
            Some(PacketDrop::Malformed)
        );
        // unknown SPI
        let mut other = sealed.clone();
        other[..4].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        assert_eq!(b.open(&mut other).err(), Some(PacketDrop::UnknownSpi));
        // a destination inside the configured prefix of no connection / of one without SA
        assert_eq!(
            a.seal(&ipv4(A, Ipv4Addr::new(192, 0, 2, 1), 10), &mut wire)
                .err(),
            Some(PacketDrop::NoRoute)
        );
        assert_eq!(
            a.seal(&[0x60, 0, 0], &mut wire).err(),
            Some(PacketDrop::InvalidInner)
        );
        let (_, _, d) = b.connection_counters(0);
        assert_eq!((d.replayed, d.auth_failed, d.malformed), (1, 1, 1));
        assert_eq!(b.global_drops().unknown_spi, 1);
        assert_eq!(a.global_drops().no_route, 1);
        assert_eq!(a.global_drops().invalid_inner, 1);
        a.remove_connection(0);
        assert_eq!(a.seal(&pkt, &mut wire).err(), Some(PacketDrop::NoChildSa));
        assert_eq!(a.connection_counters(0).2.no_child_sa, 1);
    }

    #[test]
    fn the_key_block_gives_each_direction_its_own_keys() {
        let (a, _) = keyed(
            1,
            2,
            Encryption::AesCbc256,
            Some(Integrity::HmacSha256_128),
            9,
        );
        let k = SaKeys::new(&a);
        assert_eq!(k.direction(true), (&a.enc_key_in[..], &a.integ_key_in[..]));
        assert_eq!(
            k.direction(false),
            (&a.enc_key_out[..], &a.integ_key_out[..])
        );
        let (g, _) = keyed(1, 2, Encryption::AesGcm16_256, None, 9);
        let k = SaKeys::new(&g);
        assert_eq!(k.direction(true), (&g.enc_key_in[..], &[][..]));
        assert_eq!(k.direction(false), (&g.enc_key_out[..], &[][..]));
    }

    #[test]
    fn inner_packet_outside_the_selectors_is_dropped() {
        let (mut a, mut b) = pair(Encryption::AesGcm16_256, None);
        // a peer (here: a's outbound SA) that tunnels a packet from an address outside its
        // selectors must not get it delivered (RFC 4301 §5.2)
        let slot = a.routes[0].slot;
        a.routes.push(Route {
            range: Range::of_net(&"10.2.0.0/16".parse().unwrap()),
            sel: Arc::new(Selectors {
                local: [ts("10.9.0.0/16")].into(),
                remote: [ts("10.2.0.0/16")].into(),
            }),
            slot,
            conn: 0,
        });
        let mut wire = vec![0u8; 2048];
        let (n, _) = a
            .seal(&ipv4(Ipv4Addr::new(10, 9, 9, 9), B, 10), &mut wire)
            .unwrap();
        assert_eq!(b.open(&mut wire[..n]).err(), Some(PacketDrop::TsMismatch));
        assert_eq!(b.connection_counters(0).2.ts_mismatch, 1);
    }

    #[test]
    fn peer_moves_and_connections_come_and_go() {
        let (mut a, mut b) = pair(Encryption::AesGcm16_256, None);
        let mut wire = vec![0u8; 2048];
        let pkt = ipv4(A, B, 10);
        let moved: SocketAddr = "198.51.100.2:61000".parse().unwrap();
        assert_eq!(a.set_peer(0, moved), 1);
        assert_eq!(a.set_peer(0, moved), 0, "already there");
        let (n, peer) = a.seal(&pkt, &mut wire).unwrap();
        assert_eq!(peer, moved, "ESP follows the peer");
        b.open(&mut wire[..n]).unwrap();
        assert_eq!(
            a.child_reports(0, Instant::now())[0].peer,
            moved.to_string()
        );
        // a connection added by a reload gets counters; a removed one is forgotten whole
        a.ensure_connections(3);
        a.count(Some(2), PacketDrop::NoChildSa);
        assert_eq!(a.connection_counters(2).2.no_child_sa, 1);
        a.forget_connection(0);
        assert_eq!(a.child_count(), 0);
        assert_eq!(a.connection_counters(0), Default::default());
        assert_eq!(
            a.route(&pkt).unwrap_err(),
            PacketDrop::NoRoute,
            "its prefixes are gone too"
        );
    }

    #[test]
    fn rekey_switches_outbound_and_keeps_old_inbound_until_deleted() {
        let (ka1, kb1) = keyed(0x1000_0001, 0x2000_0002, Encryption::AesGcm16_256, None, 0);
        let (ka2, kb2) = keyed(
            0x1000_0003,
            0x2000_0004,
            Encryption::AesGcm16_256,
            None,
            0x33,
        );
        let t0 = Instant::now();
        let mut a = DataPath::new(1);
        let mut b = DataPath::new(1);
        a.install(0, &ka1, t0).unwrap();
        b.install(0, &kb1, t0).unwrap();
        let mut wire = vec![0u8; 2048];
        let pkt = ipv4(A, B, 10);
        let (n, _) = a.seal(&pkt, &mut wire).unwrap();
        let in_flight_old = wire[..n].to_vec();
        let t1 = t0 + std::time::Duration::from_secs(1);
        a.install(0, &ka2, t1).unwrap();
        b.install(0, &kb2, t1).unwrap();
        let (n, _) = a.seal(&pkt, &mut wire).unwrap();
        assert_eq!(
            &wire[..4],
            &0x1000_0003u32.to_be_bytes(),
            "new SA used outbound"
        );
        b.open(&mut wire[..n]).unwrap();
        b.open(&mut in_flight_old.clone()).unwrap();
        let reports = b.child_reports(0, t1);
        assert_eq!(reports.len(), 2);
        assert!(reports[0].active && !reports[1].active);
        assert_eq!(reports[0].spi_in, "10000003");
        // deleting the new one falls back to the old one
        assert!(a.remove(0x2000_0004));
        let (_, _) = a.seal(&pkt, &mut wire).unwrap();
        assert_eq!(&wire[..4], &0x1000_0001u32.to_be_bytes());
        assert!(!a.remove(0x2000_0004));
    }

    /// Make-before-break: a Child SA installed in answer to the peer's rekey waits; outbound
    /// stays on the old SA until the peer deletes the old one, uses the new one, or the
    /// activation timeout passes.
    #[test]
    fn an_answered_rekey_waits_until_the_peer_shows_it_has_the_new_sa() {
        let pkt = ipv4(B, A, 10);
        let mut wire = vec![0u8; 2048];
        for trigger in ["delete", "traffic", "timeout"] {
            let (ka1, kb1) = keyed(0x1000_0001, 0x2000_0002, Encryption::AesGcm16_256, None, 0);
            let (mut ka2, mut kb2) = keyed(
                0x1000_0003,
                0x2000_0004,
                Encryption::AesGcm16_256,
                None,
                0x33,
            );
            kb2.outbound_now = false;
            ka2.outbound_now = true;
            let t0 = Instant::now();
            let (mut a, mut b) = (DataPath::new(1), DataPath::new(1));
            a.install(0, &ka1, t0).unwrap();
            b.install(0, &kb1, t0).unwrap();
            b.install(0, &kb2, t0).unwrap();
            assert!(b.has_pending());
            let (_, _) = b.seal(&pkt, &mut wire).unwrap();
            assert_eq!(
                &wire[..4],
                &0x2000_0002u32.to_be_bytes(),
                "still the old SA"
            );
            assert_eq!(b.activate_pending(t0 + Duration::from_secs(1)), 0);
            match trigger {
                "delete" => assert!(b.remove(0x1000_0001)),
                "traffic" => {
                    a.install(0, &ka2, t0).unwrap();
                    let (n, _) = a.seal(&ipv4(A, B, 10), &mut wire).unwrap();
                    b.open(&mut wire[..n]).unwrap();
                    assert_eq!(b.activate_pending(t0 + Duration::from_secs(1)), 1);
                }
                _ => assert_eq!(b.activate_pending(t0 + ACTIVATION_TIMEOUT), 1),
            }
            assert!(!b.has_pending(), "{trigger}");
            let (_, _) = b.seal(&pkt, &mut wire).unwrap();
            assert_eq!(
                &wire[..4],
                &0x2000_0004u32.to_be_bytes(),
                "{trigger}: new SA"
            );
        }
    }

    /// Sequence numbers running out make either side ask for a rekey; bytes only when a byte
    /// lifetime applies.
    #[test]
    fn rekey_is_due_before_sequence_numbers_or_bytes_run_out() {
        let (mut a, _) = pair(Encryption::AesGcm16_256, None);
        assert!(a.rekey_due(0, None).is_empty());
        assert!(a.rekey_due(0, Some(1 << 20)).is_empty());
        let idx = a.routes[0].slot;
        let slot = a.slots[idx].as_mut().unwrap();
        slot.outbound.reserve(SEQ_SOFT_LIMIT - 1).unwrap();
        assert!(a.rekey_due(0, None).is_empty(), "one short of the limit");
        let mut wire = vec![0u8; 2048];
        a.seal(&ipv4(A, B, 1000), &mut wire).unwrap();
        assert_eq!(
            a.rekey_due(0, None),
            vec![(0x2000_0002, RekeyCause::Sequence)]
        );
        let (mut c, _) = pair(Encryption::AesGcm16_256, None);
        for _ in 0..2 {
            c.seal(&ipv4(A, B, 1000), &mut wire).unwrap();
        }
        assert_eq!(
            c.rekey_due(0, Some(2048)),
            vec![(0x2000_0002, RekeyCause::Bytes)]
        );
        assert!(c.rekey_due(0, Some(1 << 30)).is_empty());
    }

    /// A peer that narrowed the selectors: each Child SA carries its own part, by source and
    /// destination; what none covers is dropped as `uncovered` (the connection is up), not
    /// sent into an SA the peer would drop.
    #[test]
    fn narrowed_child_sas_each_carry_their_part() {
        let (mut k1, _) = keyed(0x1000_0001, 0x2000_0002, Encryption::AesGcm16_256, None, 0);
        k1.remote_ts = vec![ts("10.2.1.0/24")];
        let (mut k2, _) = keyed(0x1000_0003, 0x2000_0004, Encryption::AesGcm16_256, None, 1);
        k2.remote_ts = vec![ts("10.2.9.0/24")];
        let mut a = DataPath::new(1);
        a.set_configured_prefixes(0, &["10.2.0.0/16".parse().unwrap()]);
        let mut wire = vec![0u8; 2048];
        assert_eq!(
            a.seal(&ipv4(A, B, 1), &mut wire).err(),
            Some(PacketDrop::NoChildSa)
        );
        a.install(0, &k1, Instant::now()).unwrap();
        a.install(0, &k2, Instant::now()).unwrap();
        a.seal(&ipv4(A, B, 1), &mut wire).unwrap();
        assert_eq!(&wire[..4], &0x1000_0001u32.to_be_bytes());
        a.seal(&ipv4(A, Ipv4Addr::new(10, 2, 9, 9), 1), &mut wire)
            .unwrap();
        assert_eq!(&wire[..4], &0x1000_0003u32.to_be_bytes());
        assert_eq!(
            a.seal(&ipv4(A, Ipv4Addr::new(10, 2, 5, 5), 1), &mut wire)
                .err(),
            Some(PacketDrop::Uncovered)
        );
        assert_eq!(
            a.seal(&ipv4(Ipv4Addr::new(10, 7, 0, 1), B, 1), &mut wire)
                .err(),
            Some(PacketDrop::Uncovered),
            "a source outside the local selectors"
        );
        assert_eq!(a.connection_counters(0).2.uncovered, 2);
        assert!(a.child_reports(0, Instant::now()).iter().all(|r| r.active));
    }

    #[test]
    fn selector_strings() {
        assert_eq!(ts_string(&ts("10.1.0.0/16")), "10.1.0.0/16");
        assert_eq!(ts_string(&ts("0.0.0.0/0")), "0.0.0.0/0");
        assert_eq!(ts_string(&ts("10.1.1.4/32")), "10.1.1.4/32");
        assert_eq!(ts_string(&ts("fd00::/64")), "fd00::/64");
        assert_eq!(ts_string(&ts("::/0")), "::/0");
    }
}
