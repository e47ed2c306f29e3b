//! UPDATE (RFC 4271 §4.3) for IPv4 unicast: withdrawn routes, path attributes, NLRI; the
//! attribute checks of RFC 4271 §6.3.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::open::is_unicast_host;
use super::Reader;
use crate::error::{DecodeError, EncodeError};

/// Attribute flag: optional (else well-known).
pub const FLAG_OPTIONAL: u8 = 0x80;
/// Attribute flag: transitive.
pub const FLAG_TRANSITIVE: u8 = 0x40;
/// Attribute flag: partial (an optional transitive attribute some speaker did not know).
pub const FLAG_PARTIAL: u8 = 0x20;
/// Attribute flag: the length field has two octets.
pub const FLAG_EXTENDED_LENGTH: u8 = 0x10;

/// Attribute type codes this crate interprets (RFC 4271 §5.1).
mod type_code {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
}

/// AS_PATH segment type: unordered set (RFC 4271 §4.3).
const AS_SET: u8 = 1;
/// AS_PATH segment type: ordered sequence.
const AS_SEQUENCE: u8 = 2;

/// An UPDATE message for IPv4 unicast.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// Prefixes no longer reachable.
    pub withdrawn: Vec<Ipv4Net>,
    /// Path attributes of the prefixes in `nlri`.
    pub attributes: PathAttributes,
    /// Prefixes reachable with `attributes`.
    pub nlri: Vec<Ipv4Net>,
}

/// The path attributes of one UPDATE: those this crate interprets, and the others as received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathAttributes {
    /// ORIGIN (well-known mandatory).
    pub origin: Option<Origin>,
    /// AS_PATH with 4-octet ASNs (well-known mandatory).
    pub as_path: Option<AsPath>,
    /// NEXT_HOP (well-known mandatory).
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC (optional non-transitive).
    pub med: Option<u32>,
    /// LOCAL_PREF (well-known, iBGP only).
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE (well-known discretionary) is present.
    pub atomic_aggregate: bool,
    /// Optional attributes this crate does not interpret, in the order received.
    pub other: Vec<RawAttribute>,
}

/// ORIGIN values (RFC 4271 §5.1.1); the order is the best-path preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// Learned from an interior protocol.
    Igp,
    /// Learned from EGP.
    Egp,
    /// Learned some other way.
    Incomplete,
}

/// AS_PATH: segments of 4-octet ASNs, nearest AS first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AsPath {
    /// The segments in wire order.
    pub segments: Vec<AsSegment>,
}

/// One AS_PATH segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AsSegment {
    /// AS_SEQUENCE: the ASes the route crossed, nearest first.
    Sequence(Vec<u32>),
    /// AS_SET: ASes of aggregated routes, unordered.
    Set(Vec<u32>),
}

/// An optional attribute this crate does not interpret, kept to pass it on (RFC 4271 §5).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    /// Flags as received.
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Value.
    pub value: Vec<u8>,
}

impl AsPath {
    /// A path that is one AS_SEQUENCE.
    pub fn sequence(asns: Vec<u32>) -> Self {
        AsPath {
            segments: vec![AsSegment::Sequence(asns)],
        }
    }

    /// Path length for best-path selection: each AS of a sequence counts, a set counts one
    /// (RFC 4271 §9.1.2.2 a).
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                AsSegment::Sequence(asns) => asns.len(),
                AsSegment::Set(_) => 1,
            })
            .sum()
    }

    /// The neighbouring AS the route came from: the first AS of a leading sequence.
    pub fn first_as(&self) -> Option<u32> {
        match self.segments.first() {
            Some(AsSegment::Sequence(asns)) => asns.first().copied(),
            _ => None,
        }
    }

    /// Whether `asn` appears anywhere in the path (loop detection, RFC 4271 §9.1.2).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| match s {
            AsSegment::Sequence(asns) | AsSegment::Set(asns) => asns.contains(&asn),
        })
    }

    /// The path with `asn` prepended, as a speaker sends it to an external peer
    /// (RFC 4271 §5.1.2): into the leading sequence while it has room, else a new one.
    pub fn prepended(&self, asn: u32) -> AsPath {
        let mut segments = self.segments.clone();
        match segments.first_mut() {
            Some(AsSegment::Sequence(asns)) if asns.len() < 255 => asns.insert(0, asn),
            _ => segments.insert(0, AsSegment::Sequence(vec![asn])),
        }
        AsPath { segments }
    }

    /// Parses the attribute value.
    fn decode(value: &[u8]) -> Result<AsPath, DecodeError> {
        let mut segments = Vec::new();
        let mut r = Reader::new(value);
        while !r.is_empty() {
            let kind = r.u8().ok_or(DecodeError::MalformedAsPath)?;
            let count = r.u8().ok_or(DecodeError::MalformedAsPath)?;
            if count == 0 {
                return Err(DecodeError::MalformedAsPath);
            }
            let asns = r
                .take(4 * count as usize)
                .ok_or(DecodeError::MalformedAsPath)?
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            segments.push(match kind {
                AS_SET => AsSegment::Set(asns),
                AS_SEQUENCE => AsSegment::Sequence(asns),
                _ => return Err(DecodeError::MalformedAsPath),
            });
        }
        Ok(AsPath { segments })
    }

    /// The attribute value.
    fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        for segment in &self.segments {
            let (kind, asns) = match segment {
                AsSegment::Set(asns) => (AS_SET, asns),
                AsSegment::Sequence(asns) => (AS_SEQUENCE, asns),
            };
            let count = u8::try_from(asns.len())
                .ok()
                .filter(|&c| c > 0)
                .ok_or(EncodeError::FieldTooLarge("AS_PATH segment"))?;
            out.extend_from_slice(&[kind, count]);
            for asn in asns {
                out.extend_from_slice(&asn.to_be_bytes());
            }
        }
        Ok(out)
    }
}

impl Update {
    /// Parses the body after the header (at least 4 octets, checked by the caller).
    pub(super) fn decode(body: &[u8]) -> Result<Update, DecodeError> {
        let overrun = DecodeError::MalformedAttributeList("length overruns the message");
        let mut r = Reader::new(body);
        let withdrawn_len = r.u16().ok_or(overrun.clone())?;
        let withdrawn = decode_prefixes(r.take(withdrawn_len as usize).ok_or(overrun.clone())?)?;
        let attrs_len = r.u16().ok_or(overrun.clone())?;
        let attrs = r.take(attrs_len as usize).ok_or(overrun)?;
        let attributes = PathAttributes::decode(attrs)?;
        let nlri = decode_prefixes(r.take(r.buf_len()).unwrap_or_default())?;
        if !nlri.is_empty() {
            let missing = [
                (attributes.origin.is_none(), type_code::ORIGIN),
                (attributes.as_path.is_none(), type_code::AS_PATH),
                (attributes.next_hop.is_none(), type_code::NEXT_HOP),
            ];
            if let Some((_, t)) = missing.iter().find(|(absent, _)| *absent) {
                return Err(DecodeError::MissingWellKnown(*t));
            }
        }
        Ok(Update {
            withdrawn,
            attributes,
            nlri,
        })
    }

    /// Appends the body after the header.
    pub(super) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let withdrawn = encode_prefixes(&self.withdrawn);
        let attrs = self.attributes.encode()?;
        let too_long = |_| EncodeError::TooLong(withdrawn.len() + attrs.len());
        out.extend_from_slice(
            &u16::try_from(withdrawn.len())
                .map_err(too_long)?
                .to_be_bytes(),
        );
        out.extend_from_slice(&withdrawn);
        out.extend_from_slice(&u16::try_from(attrs.len()).map_err(too_long)?.to_be_bytes());
        out.extend_from_slice(&attrs);
        out.extend_from_slice(&encode_prefixes(&self.nlri));
        Ok(())
    }

    /// Octets of an UPDATE with these attributes and no prefixes, header included: what is
    /// left of 4096 is room for prefixes (at most 5 octets each).
    pub fn overhead(attributes: &PathAttributes) -> Result<usize, EncodeError> {
        Ok(super::HEADER_LEN + 4 + attributes.encode()?.len())
    }
}

impl PathAttributes {
    /// Parses the path attributes, checking each known one (RFC 4271 §6.3).
    fn decode(attrs: &[u8]) -> Result<PathAttributes, DecodeError> {
        let mut out = PathAttributes::default();
        let mut seen = [false; 256];
        let mut r = Reader::new(attrs);
        while !r.is_empty() {
            let start = attrs.len() - r.buf_len();
            let overrun = DecodeError::MalformedAttributeList("attribute overruns the list");
            let flags = r.u8().ok_or(overrun.clone())?;
            let kind = r.u8().ok_or(overrun.clone())?;
            let len = if flags & FLAG_EXTENDED_LENGTH != 0 {
                r.u16().ok_or(overrun.clone())?
            } else {
                u16::from(r.u8().ok_or(overrun.clone())?)
            };
            let value = r.take(len as usize).ok_or(overrun)?;
            let raw = &attrs[start..attrs.len() - r.buf_len()];
            if std::mem::replace(&mut seen[kind as usize], true) {
                return Err(DecodeError::MalformedAttributeList(
                    "attribute appears twice",
                ));
            }
            out.decode_one(flags, kind, value, raw)?;
        }
        Ok(out)
    }

    /// Interprets one attribute; `raw` is all of it, for the NOTIFICATION data.
    fn decode_one(
        &mut self,
        flags: u8,
        kind: u8,
        value: &[u8],
        raw: &[u8],
    ) -> Result<(), DecodeError> {
        let attribute = raw.to_vec();
        let class = flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE | FLAG_PARTIAL);
        let expected_class = match kind {
            type_code::ORIGIN
            | type_code::AS_PATH
            | type_code::NEXT_HOP
            | type_code::LOCAL_PREF
            | type_code::ATOMIC_AGGREGATE => Some(FLAG_TRANSITIVE),
            type_code::MULTI_EXIT_DISC => Some(FLAG_OPTIONAL),
            _ => None,
        };
        let Some(expected_class) = expected_class else {
            if flags & FLAG_OPTIONAL == 0 {
                return Err(DecodeError::UnrecognizedWellKnown {
                    type_code: kind,
                    attribute,
                });
            }
            self.other.push(RawAttribute {
                flags,
                type_code: kind,
                value: value.to_vec(),
            });
            return Ok(());
        };
        if class != expected_class {
            return Err(DecodeError::AttributeFlags {
                type_code: kind,
                attribute,
            });
        }
        let length_error = || DecodeError::AttributeLength {
            type_code: kind,
            attribute: attribute.clone(),
        };
        let u32_value = || {
            <[u8; 4]>::try_from(value)
                .map(u32::from_be_bytes)
                .map_err(|_| length_error())
        };
        match kind {
            type_code::ORIGIN => {
                let [v] = value else {
                    return Err(length_error());
                };
                self.origin = Some(match v {
                    0 => Origin::Igp,
                    1 => Origin::Egp,
                    2 => Origin::Incomplete,
                    _ => return Err(DecodeError::InvalidOrigin { attribute }),
                });
            }
            type_code::AS_PATH => self.as_path = Some(AsPath::decode(value)?),
            type_code::NEXT_HOP => {
                let next_hop = Ipv4Addr::from(u32_value()?);
                if !is_unicast_host(next_hop) {
                    return Err(DecodeError::InvalidNextHop {
                        next_hop,
                        attribute,
                    });
                }
                self.next_hop = Some(next_hop);
            }
            type_code::MULTI_EXIT_DISC => self.med = Some(u32_value()?),
            type_code::LOCAL_PREF => self.local_pref = Some(u32_value()?),
            _ => {
                if !value.is_empty() {
                    return Err(length_error());
                }
                self.atomic_aggregate = true;
            }
        }
        Ok(())
    }

    /// The attributes as on the wire, known ones first in type-code order.
    fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        let well_known = FLAG_TRANSITIVE;
        if let Some(origin) = self.origin {
            push_attribute(&mut out, well_known, type_code::ORIGIN, &[origin as u8]);
        }
        if let Some(path) = &self.as_path {
            push_attribute(&mut out, well_known, type_code::AS_PATH, &path.encode()?);
        }
        if let Some(next_hop) = self.next_hop {
            push_attribute(
                &mut out,
                well_known,
                type_code::NEXT_HOP,
                &next_hop.octets(),
            );
        }
        if let Some(med) = self.med {
            push_attribute(
                &mut out,
                FLAG_OPTIONAL,
                type_code::MULTI_EXIT_DISC,
                &med.to_be_bytes(),
            );
        }
        if let Some(pref) = self.local_pref {
            push_attribute(
                &mut out,
                well_known,
                type_code::LOCAL_PREF,
                &pref.to_be_bytes(),
            );
        }
        if self.atomic_aggregate {
            push_attribute(&mut out, well_known, type_code::ATOMIC_AGGREGATE, &[]);
        }
        for raw in &self.other {
            if raw.value.len() > usize::from(u16::MAX) {
                return Err(EncodeError::FieldTooLarge("attribute value"));
            }
            push_attribute(&mut out, raw.flags, raw.type_code, &raw.value);
        }
        Ok(out)
    }
}

/// Appends one attribute, with a two-octet length when the flags ask for it or the value needs
/// it. The caller has checked the value fits in 65535 octets.
fn push_attribute(out: &mut Vec<u8>, flags: u8, kind: u8, value: &[u8]) {
    match u8::try_from(value.len()) {
        Ok(len) if flags & FLAG_EXTENDED_LENGTH == 0 => out.extend_from_slice(&[flags, kind, len]),
        _ => {
            out.extend_from_slice(&[flags | FLAG_EXTENDED_LENGTH, kind]);
            out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(value);
}

/// Parses a list of (length, prefix) pairs (RFC 4271 §4.3); host bits are cleared.
fn decode_prefixes(buf: &[u8]) -> Result<Vec<Ipv4Net>, DecodeError> {
    let mut out = Vec::new();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let len = r.u8().ok_or(DecodeError::InvalidNetworkField)?;
        if len > 32 {
            return Err(DecodeError::InvalidNetworkField);
        }
        let bytes = r
            .take(usize::from(len).div_ceil(8))
            .ok_or(DecodeError::InvalidNetworkField)?;
        let mut octets = [0u8; 4];
        octets[..bytes.len()].copy_from_slice(bytes);
        let net = Ipv4Net::new(Ipv4Addr::from(octets), len)
            .map_err(|_| DecodeError::InvalidNetworkField)?;
        out.push(net.trunc());
    }
    Ok(out)
}

/// Writes prefixes as (length, significant octets) pairs.
fn encode_prefixes(prefixes: &[Ipv4Net]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in prefixes {
        let len = p.prefix_len();
        out.push(len);
        out.extend_from_slice(&p.network().octets()[..usize::from(len).div_ceil(8)]);
    }
    out
}
