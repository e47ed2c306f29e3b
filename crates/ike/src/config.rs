//! Connection configuration: identities, pre-shared keys, traffic selectors and
//! strongSwan-style proposal strings, expressed with IANA IKEv2 transform numbers.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::ConfigError;

/// An IKE identity as carried in IDi/IDr payloads (RFC 7296 §3.5).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// ID_IPV4_ADDR (type 1).
    Ipv4(Ipv4Addr),
    /// ID_IPV6_ADDR (type 5).
    Ipv6(Ipv6Addr),
    /// ID_FQDN (type 2).
    Fqdn(String),
}

impl Identity {
    /// IANA ID type number, needed for the ID payload.
    pub fn id_type(&self) -> u8 {
        match self {
            Identity::Ipv4(_) => 1,
            Identity::Fqdn(_) => 2,
            Identity::Ipv6(_) => 5,
        }
    }

    /// Identification data octets as they appear after the ID payload's type/reserved octets.
    pub fn data(&self) -> Vec<u8> {
        match self {
            Identity::Ipv4(a) => a.octets().to_vec(),
            Identity::Ipv6(a) => a.octets().to_vec(),
            Identity::Fqdn(s) => s.as_bytes().to_vec(),
        }
    }

    /// Rebuilds an identity from an ID payload; `None` for types we do not support.
    pub fn from_payload(id_type: u8, data: &[u8]) -> Option<Identity> {
        match id_type {
            1 => <[u8; 4]>::try_from(data)
                .ok()
                .map(|b| Identity::Ipv4(Ipv4Addr::from(b))),
            5 => <[u8; 16]>::try_from(data)
                .ok()
                .map(|b| Identity::Ipv6(Ipv6Addr::from(b))),
            2 => std::str::from_utf8(data)
                .ok()
                .map(|s| Identity::Fqdn(s.to_string())),
            _ => None,
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Ipv4(a) => write!(f, "{a}"),
            Identity::Ipv6(a) => write!(f, "{a}"),
            Identity::Fqdn(s) => write!(f, "{s}"),
        }
    }
}

impl FromStr for Identity {
    type Err = ConfigError;
    /// IP address literals become address identities, anything else an FQDN.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ConfigError::EmptyIdentity);
        }
        Ok(match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => Identity::Ipv4(a),
            Ok(IpAddr::V6(a)) => Identity::Ipv6(a),
            Err(_) => Identity::Fqdn(s.to_string()),
        })
    }
}

/// A pre-shared key; zeroized on drop and never printed, so secrets cannot leak via logs.
#[derive(Clone)]
pub struct Psk(Zeroizing<Vec<u8>>);

impl Psk {
    /// Wraps raw key bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Psk(Zeroizing::new(bytes))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

/// A traffic selector (RFC 7296 §3.13.1): an address range plus protocol and port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    /// First address of the range (inclusive).
    pub start: IpAddr,
    /// Last address of the range (inclusive).
    pub end: IpAddr,
    /// IP protocol number, 0 = any.
    pub protocol: u8,
    /// First port (inclusive).
    pub start_port: u16,
    /// Last port (inclusive).
    pub end_port: u16,
}

fn ip_to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

fn u128_to_ip(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    }
}

impl TrafficSelector {
    /// A prefix (all protocols, all ports) as a selector; host bits of `addr` are ignored.
    pub fn from_prefix(addr: IpAddr, prefix_len: u8) -> Self {
        let (bits, v6) = match addr {
            IpAddr::V4(_) => (32u32, false),
            IpAddr::V6(_) => (128u32, true),
        };
        let plen = u32::from(prefix_len).min(bits);
        let host_bits = bits - plen;
        let all: u128 = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        let host_mask: u128 = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let a = ip_to_u128(addr) & all;
        let start = a & !host_mask & all;
        let end = start | host_mask;
        TrafficSelector {
            start: u128_to_ip(start, v6),
            end: u128_to_ip(end, v6),
            protocol: 0,
            start_port: 0,
            end_port: 65535,
        }
    }

    /// Whether `addr` lies in the selector's address range (protocol and ports not considered).
    pub fn contains(&self, addr: IpAddr) -> bool {
        if self.is_v6() != addr.is_ipv6() {
            return false;
        }
        let a = ip_to_u128(addr);
        ip_to_u128(self.start) <= a && a <= ip_to_u128(self.end)
    }

    /// True for IPv6 selectors (TS_IPV6_ADDR_RANGE).
    pub fn is_v6(&self) -> bool {
        self.start.is_ipv6()
    }

    /// The narrowed selector common to both, per RFC 7296 §2.9; `None` when disjoint.
    pub fn intersect(&self, other: &TrafficSelector) -> Option<TrafficSelector> {
        if self.is_v6() != other.is_v6() || self.end.is_ipv6() != self.is_v6() {
            return None;
        }
        let protocol = match (self.protocol, other.protocol) {
            (0, p) | (p, 0) => p,
            (a, b) if a == b => a,
            _ => return None,
        };
        let sp = self.start_port.max(other.start_port);
        let ep = self.end_port.min(other.end_port);
        if sp > ep {
            return None;
        }
        let s = ip_to_u128(self.start).max(ip_to_u128(other.start));
        let e = ip_to_u128(self.end).min(ip_to_u128(other.end));
        if s > e {
            return None;
        }
        let v6 = self.is_v6();
        Some(TrafficSelector {
            start: u128_to_ip(s, v6),
            end: u128_to_ip(e, v6),
            protocol,
            start_port: sp,
            end_port: ep,
        })
    }

    /// Whether `other` lies entirely within this selector.
    pub fn covers(&self, other: &TrafficSelector) -> bool {
        self.intersect(other).as_ref() == Some(other)
    }

    /// Whether it selects every protocol and port (only such selectors cover an address
    /// range whole).
    pub fn is_any_port(&self) -> bool {
        self.protocol == 0 && self.start_port == 0 && self.end_port == 65535
    }

    /// The parts of `configured` that no selector of `covered` takes whole (by addresses;
    /// selectors restricted to a protocol or ports do not count as covering): what a peer
    /// that narrowed the selectors left out.
    pub fn uncovered(
        configured: &[TrafficSelector],
        covered: &[TrafficSelector],
    ) -> Vec<TrafficSelector> {
        let mut left: Vec<(bool, u128, u128)> = configured
            .iter()
            .map(|t| (t.is_v6(), ip_to_u128(t.start), ip_to_u128(t.end)))
            .collect();
        for c in covered.iter().filter(|c| c.is_any_port()) {
            let (v6, cs, ce) = (c.is_v6(), ip_to_u128(c.start), ip_to_u128(c.end));
            let mut next = Vec::with_capacity(left.len() + 1);
            for (lv6, s, e) in left {
                if lv6 != v6 || ce < s || cs > e {
                    next.push((lv6, s, e));
                    continue;
                }
                if cs > s {
                    next.push((lv6, s, cs - 1));
                }
                if ce < e {
                    next.push((lv6, ce + 1, e));
                }
            }
            left = next;
        }
        left.into_iter()
            .map(|(v6, s, e)| TrafficSelector {
                start: u128_to_ip(s, v6),
                end: u128_to_ip(e, v6),
                protocol: 0,
                start_port: 0,
                end_port: 65535,
            })
            .collect()
    }
}

impl fmt::Display for TrafficSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Print as a prefix when the range is exactly one.
        let v6 = self.is_v6();
        let bits = if v6 { 128 } else { 32 };
        let s = ip_to_u128(self.start);
        let e = ip_to_u128(self.end);
        let diff = s ^ e;
        let host_bits = 128 - diff.leading_zeros();
        let mask: u128 = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        if s & mask == 0 && e & mask == mask && host_bits <= bits {
            write!(f, "{}/{}", self.start, bits - host_bits)?;
        } else {
            write!(f, "{}..{}", self.start, self.end)?;
        }
        if self.protocol != 0 || self.start_port != 0 || self.end_port != 65535 {
            write!(
                f,
                "[{}/{}-{}]",
                self.protocol, self.start_port, self.end_port
            )?;
        }
        Ok(())
    }
}

/// Encryption transforms (transform type 1). The legacy ones (DES, 3DES, NULL) are here
/// because Azure's IPsec/IKE policies still offer them and real on-premises devices use them.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encryption {
    /// ENCR_DES (2), 64-bit key (RFC 2405); broken, for old devices only.
    Des,
    /// ENCR_3DES (3), 192-bit key (RFC 2451); weak, for old devices only.
    TripleDes,
    /// ENCR_NULL (11): no encryption (RFC 2410); ESP only, integrity alone.
    Null,
    /// ENCR_AES_CBC (12), 128-bit key.
    AesCbc128,
    /// ENCR_AES_CBC (12), 192-bit key.
    AesCbc192,
    /// ENCR_AES_CBC (12), 256-bit key.
    AesCbc256,
    /// ENCR_AES_GCM_16 (20), 128-bit key.
    AesGcm16_128,
    /// ENCR_AES_GCM_16 (20), 192-bit key.
    AesGcm16_192,
    /// ENCR_AES_GCM_16 (20), 256-bit key.
    AesGcm16_256,
}

impl Encryption {
    /// All supported encryption transforms.
    pub const ALL: [Encryption; 9] = [
        Encryption::Des,
        Encryption::TripleDes,
        Encryption::Null,
        Encryption::AesCbc128,
        Encryption::AesCbc192,
        Encryption::AesCbc256,
        Encryption::AesGcm16_128,
        Encryption::AesGcm16_192,
        Encryption::AesGcm16_256,
    ];
    /// IANA transform ID.
    pub fn iana_id(self) -> u16 {
        match self {
            Encryption::Des => 2,
            Encryption::TripleDes => 3,
            Encryption::Null => 11,
            Encryption::AesCbc128 | Encryption::AesCbc192 | Encryption::AesCbc256 => 12,
            Encryption::AesGcm16_128 | Encryption::AesGcm16_192 | Encryption::AesGcm16_256 => 20,
        }
    }
    /// Key length in bits (of the cipher key, without a GCM salt).
    pub fn key_bits(self) -> u16 {
        match self {
            Encryption::Null => 0,
            Encryption::Des => 64,
            Encryption::AesCbc128 | Encryption::AesGcm16_128 => 128,
            Encryption::TripleDes | Encryption::AesCbc192 | Encryption::AesGcm16_192 => 192,
            Encryption::AesCbc256 | Encryption::AesGcm16_256 => 256,
        }
    }
    /// The Key Length attribute a proposal carries: AES's variable key length; none for the
    /// fixed-key ciphers (RFC 7296 §3.3.5).
    pub fn key_length_attribute(self) -> Option<u16> {
        match self {
            Encryption::Des | Encryption::TripleDes | Encryption::Null => None,
            other => Some(other.key_bits()),
        }
    }
    /// AEAD ciphers need no separate integrity transform.
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            Encryption::AesGcm16_128 | Encryption::AesGcm16_192 | Encryption::AesGcm16_256
        )
    }
    /// Looks up an IANA ID plus key length (absent for the fixed-key ciphers; some peers send
    /// it anyway, with the fixed value).
    pub fn from_iana(id: u16, key_bits: Option<u16>) -> Option<Self> {
        Encryption::ALL.into_iter().find(|e| {
            e.iana_id() == id
                && match e.key_length_attribute() {
                    Some(bits) => key_bits == Some(bits),
                    None => key_bits.is_none() || key_bits == Some(e.key_bits()),
                }
        })
    }
    /// Keying material length (for GCM including the 4-octet salt).
    pub fn keymat_len(self) -> usize {
        self.key_bits() as usize / 8 + if self.is_aead() { 4 } else { 0 }
    }
    /// The cipher's block size, to which CBC plaintext is padded (IKE's SK payload, ESP).
    pub fn block_len(self) -> usize {
        match self {
            Encryption::Des | Encryption::TripleDes => 8,
            Encryption::Null => 1,
            Encryption::AesCbc128 | Encryption::AesCbc192 | Encryption::AesCbc256 => 16,
            Encryption::AesGcm16_128 | Encryption::AesGcm16_192 | Encryption::AesGcm16_256 => 1,
        }
    }
    /// Length of the IV carried in each message (GCM: the explicit 8 octets).
    pub fn iv_len(self) -> usize {
        match self {
            Encryption::Null => 0,
            Encryption::Des | Encryption::TripleDes => 8,
            Encryption::AesCbc128 | Encryption::AesCbc192 | Encryption::AesCbc256 => 16,
            Encryption::AesGcm16_128 | Encryption::AesGcm16_192 | Encryption::AesGcm16_256 => 8,
        }
    }
    /// Whether the transform is too weak to offer by default (the device configuration export
    /// warns about it).
    pub fn is_weak(self) -> bool {
        matches!(
            self,
            Encryption::Des | Encryption::TripleDes | Encryption::Null
        )
    }
    fn token(self) -> &'static str {
        match self {
            Encryption::Des => "des",
            Encryption::TripleDes => "3des",
            Encryption::Null => "null",
            Encryption::AesCbc128 => "aes128",
            Encryption::AesCbc192 => "aes192",
            Encryption::AesCbc256 => "aes256",
            Encryption::AesGcm16_128 => "aes128gcm16",
            Encryption::AesGcm16_192 => "aes192gcm16",
            Encryption::AesGcm16_256 => "aes256gcm16",
        }
    }
    /// strongSwan's upper-case name, as shown in status.
    pub fn name(self) -> &'static str {
        match self {
            Encryption::Des => "DES_CBC",
            Encryption::TripleDes => "3DES_CBC",
            Encryption::Null => "NULL",
            Encryption::AesCbc128 => "AES_CBC_128",
            Encryption::AesCbc192 => "AES_CBC_192",
            Encryption::AesCbc256 => "AES_CBC_256",
            Encryption::AesGcm16_128 => "AES_GCM_16_128",
            Encryption::AesGcm16_192 => "AES_GCM_16_192",
            Encryption::AesGcm16_256 => "AES_GCM_16_256",
        }
    }
}

/// Integrity transforms (transform type 3).
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Integrity {
    /// AUTH_HMAC_MD5_96 (1, RFC 2403); weak, for old devices only.
    HmacMd5_96,
    /// AUTH_HMAC_SHA1_96 (2).
    HmacSha1_96,
    /// AUTH_HMAC_SHA2_256_128 (12).
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192 (13).
    HmacSha384_192,
}

impl Integrity {
    /// All supported integrity transforms.
    pub const ALL: [Integrity; 4] = [
        Integrity::HmacMd5_96,
        Integrity::HmacSha1_96,
        Integrity::HmacSha256_128,
        Integrity::HmacSha384_192,
    ];
    /// IANA transform ID.
    pub fn iana_id(self) -> u16 {
        match self {
            Integrity::HmacMd5_96 => 1,
            Integrity::HmacSha1_96 => 2,
            Integrity::HmacSha256_128 => 12,
            Integrity::HmacSha384_192 => 13,
        }
    }
    /// Looks up an IANA ID.
    pub fn from_iana(id: u16) -> Option<Self> {
        Integrity::ALL.into_iter().find(|i| i.iana_id() == id)
    }
    /// HMAC key length in octets (RFC 4868 / RFC 2404).
    pub fn key_len(self) -> usize {
        match self {
            Integrity::HmacMd5_96 => 16,
            Integrity::HmacSha1_96 => 20,
            Integrity::HmacSha256_128 => 32,
            Integrity::HmacSha384_192 => 48,
        }
    }
    /// Truncated ICV length in octets.
    pub fn icv_len(self) -> usize {
        match self {
            Integrity::HmacMd5_96 | Integrity::HmacSha1_96 => 12,
            Integrity::HmacSha256_128 => 16,
            Integrity::HmacSha384_192 => 24,
        }
    }
    fn token(self) -> &'static str {
        match self {
            Integrity::HmacMd5_96 => "md5",
            Integrity::HmacSha1_96 => "sha1",
            Integrity::HmacSha256_128 => "sha256",
            Integrity::HmacSha384_192 => "sha384",
        }
    }
    /// strongSwan's upper-case name.
    pub fn name(self) -> &'static str {
        match self {
            Integrity::HmacMd5_96 => "HMAC_MD5_96",
            Integrity::HmacSha1_96 => "HMAC_SHA1_96",
            Integrity::HmacSha256_128 => "HMAC_SHA2_256_128",
            Integrity::HmacSha384_192 => "HMAC_SHA2_384_192",
        }
    }
    /// The PRF strongSwan implies when a proposal string names only this integrity algorithm.
    pub fn implied_prf(self) -> Prf {
        match self {
            Integrity::HmacMd5_96 => Prf::HmacMd5,
            Integrity::HmacSha1_96 => Prf::HmacSha1,
            Integrity::HmacSha256_128 => Prf::HmacSha256,
            Integrity::HmacSha384_192 => Prf::HmacSha384,
        }
    }
}

/// Pseudo-random functions (transform type 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prf {
    /// PRF_HMAC_MD5 (1); weak, for old devices only.
    HmacMd5,
    /// PRF_HMAC_SHA1 (2).
    HmacSha1,
    /// PRF_HMAC_SHA2_256 (5).
    HmacSha256,
    /// PRF_HMAC_SHA2_384 (6).
    HmacSha384,
}

impl Prf {
    /// All supported PRFs.
    pub const ALL: [Prf; 4] = [
        Prf::HmacMd5,
        Prf::HmacSha1,
        Prf::HmacSha256,
        Prf::HmacSha384,
    ];
    /// IANA transform ID.
    pub fn iana_id(self) -> u16 {
        match self {
            Prf::HmacMd5 => 1,
            Prf::HmacSha1 => 2,
            Prf::HmacSha256 => 5,
            Prf::HmacSha384 => 6,
        }
    }
    /// Looks up an IANA ID.
    pub fn from_iana(id: u16) -> Option<Self> {
        Prf::ALL.into_iter().find(|p| p.iana_id() == id)
    }
    /// Output (and preferred key) length in octets.
    pub fn output_len(self) -> usize {
        match self {
            Prf::HmacMd5 => 16,
            Prf::HmacSha1 => 20,
            Prf::HmacSha256 => 32,
            Prf::HmacSha384 => 48,
        }
    }
    fn token(self) -> &'static str {
        match self {
            Prf::HmacMd5 => "prfmd5",
            Prf::HmacSha1 => "prfsha1",
            Prf::HmacSha256 => "prfsha256",
            Prf::HmacSha384 => "prfsha384",
        }
    }
    /// strongSwan's upper-case name.
    pub fn name(self) -> &'static str {
        match self {
            Prf::HmacMd5 => "PRF_HMAC_MD5",
            Prf::HmacSha1 => "PRF_HMAC_SHA1",
            Prf::HmacSha256 => "PRF_HMAC_SHA2_256",
            Prf::HmacSha384 => "PRF_HMAC_SHA2_384",
        }
    }
}

/// Diffie-Hellman groups (transform type 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// 768-bit MODP (1, RFC 2409); broken, for old devices only.
    Modp768,
    /// 1024-bit MODP (2).
    Modp1024,
    /// 2048-bit MODP (14).
    Modp2048,
    /// 2048-bit MODP with 256-bit prime order subgroup (24, RFC 5114).
    Modp2048s256,
    /// NIST P-256 (19).
    Ecp256,
    /// NIST P-384 (20).
    Ecp384,
    /// Curve25519 (31).
    Curve25519,
}

impl DhGroup {
    /// All supported groups.
    pub const ALL: [DhGroup; 7] = [
        DhGroup::Modp768,
        DhGroup::Modp1024,
        DhGroup::Modp2048,
        DhGroup::Modp2048s256,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Curve25519,
    ];
    /// IANA group number.
    pub fn iana_id(self) -> u16 {
        match self {
            DhGroup::Modp768 => 1,
            DhGroup::Modp1024 => 2,
            DhGroup::Modp2048 => 14,
            DhGroup::Modp2048s256 => 24,
            DhGroup::Ecp256 => 19,
            DhGroup::Ecp384 => 20,
            DhGroup::Curve25519 => 31,
        }
    }
    /// Looks up an IANA group number.
    pub fn from_iana(id: u16) -> Option<Self> {
        DhGroup::ALL.into_iter().find(|g| g.iana_id() == id)
    }
    /// Length of the KE payload's key exchange data for this group.
    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Modp768 => 96,
            DhGroup::Modp1024 => 128,
            DhGroup::Modp2048 | DhGroup::Modp2048s256 => 256,
            DhGroup::Ecp256 => 64,
            DhGroup::Ecp384 => 96,
            DhGroup::Curve25519 => 32,
        }
    }
    fn token(self) -> &'static str {
        match self {
            DhGroup::Modp768 => "modp768",
            DhGroup::Modp1024 => "modp1024",
            DhGroup::Modp2048 => "modp2048",
            DhGroup::Modp2048s256 => "modp2048s256",
            DhGroup::Ecp256 => "ecp256",
            DhGroup::Ecp384 => "ecp384",
            DhGroup::Curve25519 => "curve25519",
        }
    }
    /// strongSwan's upper-case name.
    pub fn name(self) -> &'static str {
        match self {
            DhGroup::Modp768 => "MODP_768",
            DhGroup::Modp1024 => "MODP_1024",
            DhGroup::Modp2048 => "MODP_2048",
            DhGroup::Modp2048s256 => "MODP_2048_256",
            DhGroup::Ecp256 => "ECP_256",
            DhGroup::Ecp384 => "ECP_384",
            DhGroup::Curve25519 => "CURVE_25519",
        }
    }
}

/// One proposal: the transforms of each type acceptable together (RFC 7296 §3.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proposal {
    /// Encryption algorithms, in preference order.
    pub encryption: Vec<Encryption>,
    /// Integrity algorithms (empty with AEAD ciphers).
    pub integrity: Vec<Integrity>,
    /// PRFs (IKE only; implied from integrity when not given).
    pub prf: Vec<Prf>,
    /// DH groups (IKE: key exchange; ESP: PFS groups, empty = no PFS).
    pub dh: Vec<DhGroup>,
    /// Whether extended sequence numbers are offered (ESP only); we always use "no ESN".
    pub esn: bool,
}

impl FromStr for Proposal {
    type Err = ConfigError;
    /// Parses strongSwan syntax such as "aes256gcm16-prfsha384-ecp384" or "aes256-sha256-modp2048".
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut p = Proposal {
            encryption: vec![],
            integrity: vec![],
            prf: vec![],
            dh: vec![],
            esn: false,
        };
        let mut explicit_prf = false;
        if s.trim().is_empty() {
            return Err(ConfigError::EmptyProposal);
        }
        for tok in s.trim().split('-') {
            let t = tok.to_ascii_lowercase();
            let t = t.as_str();
            fn push<T: PartialEq>(v: &mut Vec<T>, x: T) {
                if !v.contains(&x) {
                    v.push(x);
                }
            }
            match t {
                "des" => push(&mut p.encryption, Encryption::Des),
                "3des" => push(&mut p.encryption, Encryption::TripleDes),
                "null" => push(&mut p.encryption, Encryption::Null),
                "aes128" | "aes128cbc" => push(&mut p.encryption, Encryption::AesCbc128),
                "aes192" | "aes192cbc" => push(&mut p.encryption, Encryption::AesCbc192),
                "aes192gcm16" | "aes192gcm" => push(&mut p.encryption, Encryption::AesGcm16_192),
                "aes256" | "aes256cbc" => push(&mut p.encryption, Encryption::AesCbc256),
                "aes128gcm16" | "aes128gcm" => push(&mut p.encryption, Encryption::AesGcm16_128),
                "aes256gcm16" | "aes256gcm" => push(&mut p.encryption, Encryption::AesGcm16_256),
                "md5" => push(&mut p.integrity, Integrity::HmacMd5_96),
                "sha1" | "sha" => push(&mut p.integrity, Integrity::HmacSha1_96),
                "sha256" | "sha2_256" => push(&mut p.integrity, Integrity::HmacSha256_128),
                "sha384" | "sha2_384" => push(&mut p.integrity, Integrity::HmacSha384_192),
                "prfmd5" => {
                    explicit_prf = true;
                    push(&mut p.prf, Prf::HmacMd5)
                }
                "prfsha1" => {
                    explicit_prf = true;
                    push(&mut p.prf, Prf::HmacSha1)
                }
                "prfsha256" => {
                    explicit_prf = true;
                    push(&mut p.prf, Prf::HmacSha256)
                }
                "prfsha384" => {
                    explicit_prf = true;
                    push(&mut p.prf, Prf::HmacSha384)
                }
                "modp768" => push(&mut p.dh, DhGroup::Modp768),
                "modp1024" => push(&mut p.dh, DhGroup::Modp1024),
                "modp2048" => push(&mut p.dh, DhGroup::Modp2048),
                "modp2048s256" => push(&mut p.dh, DhGroup::Modp2048s256),
                "ecp256" => push(&mut p.dh, DhGroup::Ecp256),
                "ecp384" => push(&mut p.dh, DhGroup::Ecp384),
                "curve25519" | "x25519" => push(&mut p.dh, DhGroup::Curve25519),
                "esn" => p.esn = true,
                "noesn" => p.esn = false,
                _ => return Err(ConfigError::UnknownAlgorithm(tok.to_string())),
            }
        }
        if p.encryption.is_empty() {
            return Err(ConfigError::MissingEncryption(s.to_string()));
        }
        let aead = p.encryption.iter().any(|e| e.is_aead());
        let classic = p.encryption.iter().any(|e| !e.is_aead());
        if aead && classic {
            return Err(ConfigError::MixedAeadAndClassic(s.to_string()));
        }
        if aead && !p.integrity.is_empty() {
            return Err(ConfigError::IntegrityWithAead(s.to_string()));
        }
        if !explicit_prf {
            for i in p.integrity.clone() {
                let prf = i.implied_prf();
                if !p.prf.contains(&prf) {
                    p.prf.push(prf);
                }
            }
        }
        Ok(p)
    }
}

impl Proposal {
    /// Checks that the proposal is complete for IKE (encryption, PRF, integrity unless AEAD, DH).
    pub fn validate_ike(&self) -> Result<(), ConfigError> {
        if self.encryption.contains(&Encryption::Null) {
            return Err(ConfigError::NullForIke(self.to_string()));
        }
        if self.prf.is_empty() {
            return Err(ConfigError::MissingPrf(self.to_string()));
        }
        if self.dh.is_empty() {
            return Err(ConfigError::MissingDhGroup(self.to_string()));
        }
        if self.encryption.iter().any(|e| !e.is_aead()) && self.integrity.is_empty() {
            return Err(ConfigError::MissingIntegrity(self.to_string()));
        }
        Ok(())
    }

    /// Checks that the proposal is complete for ESP (integrity unless AEAD).
    pub fn validate_esp(&self) -> Result<(), ConfigError> {
        if self.encryption.iter().any(|e| !e.is_aead()) && self.integrity.is_empty() {
            return Err(ConfigError::MissingIntegrity(self.to_string()));
        }
        Ok(())
    }
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut toks: Vec<&str> = vec![];
        toks.extend(self.encryption.iter().map(|e| e.token()));
        toks.extend(self.integrity.iter().map(|i| i.token()));
        let mut implied: Vec<Prf> = vec![];
        for i in &self.integrity {
            if !implied.contains(&i.implied_prf()) {
                implied.push(i.implied_prf());
            }
        }
        if self.prf != implied {
            toks.extend(self.prf.iter().map(|p| p.token()));
        }
        toks.extend(self.dh.iter().map(|d| d.token()));
        if self.esn {
            toks.push("esn");
        }
        f.write_str(&toks.join("-"))
    }
}

/// Everything needed to run one tunnel; supplied by the gateway.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// Name used in status output.
    pub name: String,
    /// Our address.
    pub local_addr: IpAddr,
    /// The peer's address; unspecified = a responder accepting any peer.
    pub remote_addr: IpAddr,
    /// Our identity.
    pub local_id: Identity,
    /// Expected peer identity; `None` accepts any that authenticates.
    pub remote_id: Option<Identity>,
    /// The pre-shared key.
    pub psk: Psk,
    /// Our protected prefixes.
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's protected prefixes.
    pub remote_ts: Vec<TrafficSelector>,
    /// IKE proposals, in preference order (shared: connections of one policy share a list).
    pub ike_proposals: Arc<[Proposal]>,
    /// ESP proposals, in preference order.
    pub esp_proposals: Arc<[Proposal]>,
    /// IKE SA lifetime.
    pub ike_lifetime: Duration,
    /// Child SA lifetime.
    pub child_lifetime: Duration,
    /// Idle time after which liveness is checked; the peer is declared dead when a check is not
    /// answered within this time either. Zero disables dead-peer detection.
    pub dpd_timeout: Duration,
    /// Whether we start the connection (otherwise we wait as responder).
    pub initiate: bool,
    /// How an initiating connection comes back after it went down.
    pub recovery: Recovery,
    /// One Child SA per (local selector, remote selector) pair, each holding exactly that
    /// pair, instead of one Child SA for all of them: Azure's `usePolicyBasedTrafficSelectors`.
    /// On-premises policy-based devices keep one SA per prefix pair and refuse (or narrow) a
    /// proposal that holds several prefixes, so each pair is negotiated on its own: the first
    /// in IKE_AUTH, the others with CREATE_CHILD_SA; as responder, a proposal is narrowed to
    /// one pair. At most [`MAX_SELECTOR_PAIRS`] pairs.
    pub selector_pairs: bool,
}

/// Most selector pairs a connection with [`ConnectionConfig::selector_pairs`] may have: each
/// is a Child SA of its own (an exchange to set up, keys, a rekey), so a typo in a prefix list
/// must not turn into thousands of them.
pub const MAX_SELECTOR_PAIRS: usize = 256;

/// What to do when a connection that is meant to be up goes down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownAction {
    /// Negotiate again, with back-off (strongSwan's `start` / `restart`).
    Restart,
    /// Leave it down until the peer or an operator acts (strongSwan's `none` / `clear`).
    Clear,
}

/// How an initiating connection recovers: a tunnel must come back by itself after the peer
/// deleted it, stopped answering or refused us for a while (someone may fix the peer), the
/// way strongSwan's `close_action`, `dpd_action` and `keyingtries` let an operator choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// After the peer deleted the IKE SA (strongSwan `close_action`).
    pub close_action: DownAction,
    /// After dead-peer detection found no answer (strongSwan `dpd_action`).
    pub dpd_action: DownAction,
    /// Consecutive failed attempts after which the connection stays down; 0 = forever
    /// (strongSwan `keyingtries = 0`, its `%forever`). Any other failure (authentication,
    /// proposals, selectors, unreachable peer) retries while attempts remain.
    pub keyingtries: u32,
    /// The longest wait between attempts: the wait starts at one second and doubles (with
    /// ±20 % jitter, so many tunnels do not retry in step) up to this.
    pub retry_max: Duration,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            close_action: DownAction::Restart,
            dpd_action: DownAction::Restart,
            keyingtries: 0,
            retry_max: Duration::from_secs(30),
        }
    }
}

impl ConnectionConfig {
    /// Validates proposals and selectors so mistakes show up before any packet is sent.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ike_proposals.is_empty() {
            return Err(ConfigError::NoIkeProposals);
        }
        if self.esp_proposals.is_empty() {
            return Err(ConfigError::NoEspProposals);
        }
        for p in self.ike_proposals.iter() {
            p.validate_ike()?;
        }
        for p in self.esp_proposals.iter() {
            p.validate_esp()?;
        }
        if self.local_ts.is_empty() || self.remote_ts.is_empty() {
            return Err(ConfigError::NoTrafficSelectors);
        }
        if self.initiate && self.remote_addr.is_unspecified() {
            return Err(ConfigError::InitiatorWithoutPeer);
        }
        let pairs = self.local_ts.len().saturating_mul(self.remote_ts.len());
        if self.selector_pairs && pairs > MAX_SELECTOR_PAIRS {
            return Err(ConfigError::TooManySelectorPairs {
                pairs,
                max: MAX_SELECTOR_PAIRS,
            });
        }
        Ok(())
    }

    /// Every (local, remote) selector pair, local-major in configuration order: the Child
    /// SAs a connection with [`Self::selector_pairs`] negotiates, one each.
    pub fn ts_pairs(&self) -> Vec<(TrafficSelector, TrafficSelector)> {
        self.local_ts
            .iter()
            .flat_map(|l| self.remote_ts.iter().map(move |r| (*l, *r)))
            .collect()
    }

    /// The selectors the Child SA of IKE_AUTH proposes (local, remote): all of them, or with
    /// [`Self::selector_pairs`] the first pair only (the others follow one by one).
    pub fn first_child_ts(&self) -> (Vec<TrafficSelector>, Vec<TrafficSelector>) {
        match (
            self.selector_pairs,
            self.local_ts.first(),
            self.remote_ts.first(),
        ) {
            (true, Some(l), Some(r)) => (vec![*l], vec![*r]),
            _ => (self.local_ts.clone(), self.remote_ts.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> TrafficSelector {
        let (a, l) = s.split_once('/').unwrap();
        TrafficSelector::from_prefix(a.parse().unwrap(), l.parse().unwrap())
    }

    #[test]
    fn prefixes_become_ranges() {
        let t = ts("10.1.2.3/16");
        assert_eq!(t.start, "10.1.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(t.end, "10.1.255.255".parse::<IpAddr>().unwrap());
        assert!(t.contains("10.1.200.1".parse().unwrap()));
        assert!(!t.contains("10.2.0.1".parse().unwrap()));
        assert!(!t.contains("::1".parse().unwrap()));
        assert_eq!(t.to_string(), "10.1.0.0/16");
        let all6 = ts("::/0");
        assert_eq!(
            all6.end,
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
                .parse::<IpAddr>()
                .unwrap()
        );
        assert_eq!(all6.to_string(), "::/0");
        assert_eq!(ts("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(ts("192.0.2.7/32").to_string(), "192.0.2.7/32");
        assert_eq!(ts("fd00::/48").to_string(), "fd00::/48");
    }

    #[test]
    fn narrowing_intersects_ranges_protocols_and_ports() {
        assert_eq!(
            ts("10.0.0.0/8").intersect(&ts("10.1.0.0/16")),
            Some(ts("10.1.0.0/16"))
        );
        assert_eq!(ts("10.1.0.0/16").intersect(&ts("10.2.0.0/16")), None);
        assert_eq!(ts("10.1.0.0/16").intersect(&ts("fd00::/8")), None);
        let mut tcp = ts("10.1.0.0/16");
        tcp.protocol = 6;
        tcp.start_port = 80;
        tcp.end_port = 443;
        let n = ts("10.0.0.0/8").intersect(&tcp).unwrap();
        assert_eq!((n.protocol, n.start_port, n.end_port), (6, 80, 443));
        let mut udp = tcp;
        udp.protocol = 17;
        assert_eq!(tcp.intersect(&udp), None);
        assert!(ts("10.0.0.0/8").covers(&ts("10.3.0.0/16")));
        assert!(!ts("10.3.0.0/16").covers(&ts("10.0.0.0/8")));
        assert_eq!(tcp.to_string(), "10.1.0.0/16[6/80-443]");
    }

    #[test]
    fn identities_and_psk_debug() {
        assert_eq!(
            "gw.example".parse::<Identity>().unwrap(),
            Identity::Fqdn("gw.example".into())
        );
        assert_eq!("192.0.2.1".parse::<Identity>().unwrap().id_type(), 1);
        assert_eq!("2001:db8::1".parse::<Identity>().unwrap().id_type(), 5);
        let id = Identity::Ipv6("2001:db8::1".parse().unwrap());
        assert_eq!(Identity::from_payload(id.id_type(), &id.data()), Some(id));
        assert_eq!(
            format!("{:?}", Psk::new(b"hunter2".to_vec())),
            "Psk(<redacted>)"
        );
        assert!("".parse::<Identity>().is_err());
    }
}

#[cfg(test)]
mod selector_tests {
    use super::TrafficSelector;

    fn ts(s: &str) -> TrafficSelector {
        let (a, l) = s.split_once('/').unwrap();
        TrafficSelector::from_prefix(a.parse().unwrap(), l.parse().unwrap())
    }

    #[test]
    fn uncovered_is_what_narrowing_left_out() {
        let left = TrafficSelector::uncovered(&[ts("10.2.0.0/16")], &[ts("10.2.1.0/24")]);
        let text: Vec<String> = left.iter().map(|t| t.to_string()).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert_eq!(left[0].start.to_string(), "10.2.0.0");
        assert_eq!(left[0].end.to_string(), "10.2.0.255");
        assert_eq!(left[1].start.to_string(), "10.2.2.0");
        assert_eq!(left[1].end.to_string(), "10.2.255.255");
        assert!(TrafficSelector::uncovered(&[ts("10.2.0.0/16")], &[ts("10.0.0.0/8")]).is_empty());
        let both = [ts("10.2.0.0/24"), ts("10.2.1.0/24")];
        assert!(TrafficSelector::uncovered(&[ts("10.2.0.0/23")], &both).is_empty());
        let mut tcp = ts("10.2.0.0/16");
        tcp.protocol = 6;
        assert_eq!(
            TrafficSelector::uncovered(&[ts("10.2.0.0/16")], &[tcp]).len(),
            1
        );
        assert_eq!(
            TrafficSelector::uncovered(&[ts("fd00::/64")], &[ts("10.0.0.0/8")]).len(),
            1
        );
        assert!(TrafficSelector::uncovered(&[ts("0.0.0.0/0")], &[ts("0.0.0.0/0")]).is_empty());
    }
}
