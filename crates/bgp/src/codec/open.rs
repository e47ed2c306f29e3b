//! OPEN (RFC 4271 §4.2) and the capabilities optional parameter (RFC 5492).

use std::net::Ipv4Addr;

use super::{Reader, AFI_IPV4, SAFI_UNICAST};
use crate::error::{DecodeError, EncodeError};

/// The 2-octet AS a speaker with a 4-octet ASN puts in OPEN's My AS field (RFC 6793 §9).
pub const AS_TRANS: u16 = 23456;

/// Optional parameter type of capabilities (RFC 5492 §4).
const PARAM_CAPABILITIES: u8 = 2;
/// Capability code: multiprotocol extensions (RFC 4760).
const CAP_MULTIPROTOCOL: u8 = 1;
/// Capability code: route refresh (RFC 2918).
const CAP_ROUTE_REFRESH: u8 = 2;
/// Capability code: 4-octet AS numbers (RFC 6793).
const CAP_FOUR_OCTET_AS: u8 = 65;

/// An OPEN message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// My Autonomous System: the 2-octet ASN, or [`AS_TRANS`] when it does not fit.
    pub my_as: u16,
    /// Proposed hold time in seconds: 0 or at least 3.
    pub hold_time: u16,
    /// BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities, in the order received; written one per optional parameter.
    pub capabilities: Vec<Capability>,
}

/// A capability advertised in OPEN (RFC 5492).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Multiprotocol extensions for one address family (RFC 4760 §8).
    Multiprotocol {
        /// Address family identifier.
        afi: u16,
        /// Subsequent address family identifier.
        safi: u8,
    },
    /// Route refresh (RFC 2918 §2).
    RouteRefresh,
    /// Support for 4-octet AS numbers, with the speaker's ASN (RFC 6793 §3).
    FourOctetAs(u32),
    /// A capability not named here, kept as received.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

impl Open {
    /// The OPEN a speaker with `asn` sends: AS_TRANS in My AS when the ASN needs 4 octets, and
    /// the capabilities this crate implements (IPv4 unicast, route refresh, 4-octet AS).
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr) -> Self {
        Open {
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_id,
            capabilities: vec![
                Capability::Multiprotocol {
                    afi: AFI_IPV4,
                    safi: SAFI_UNICAST,
                },
                Capability::RouteRefresh,
                Capability::FourOctetAs(asn),
            ],
        }
    }

    /// The speaker's ASN: from the 4-octet AS capability when present, else My AS.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// The ASN of the 4-octet AS capability, if the speaker advertised it.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// Whether the speaker advertised `capability`.
    pub fn has(&self, capability: &Capability) -> bool {
        self.capabilities.contains(capability)
    }

    /// Decodes the body after the header (at least 10 octets, checked by the caller).
    pub(super) fn decode(body: &[u8]) -> Result<Open, DecodeError> {
        let malformed = DecodeError::MalformedOpen("truncated");
        let mut r = Reader::new(body);
        let version = r.u8().ok_or(malformed.clone())?;
        if version != 4 {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let my_as = r.u16().ok_or(malformed.clone())?;
        let hold_time = r.u16().ok_or(malformed.clone())?;
        if hold_time == 1 || hold_time == 2 {
            return Err(DecodeError::UnacceptableHoldTime(hold_time));
        }
        let bgp_id = Ipv4Addr::from(r.u32().ok_or(malformed.clone())?);
        if !is_unicast_host(bgp_id) {
            return Err(DecodeError::BadBgpIdentifier(bgp_id));
        }
        let params_len = r.u8().ok_or(malformed)?;
        let params = r
            .take(params_len as usize)
            .ok_or(DecodeError::MalformedOpen(
                "optional parameters overrun the message",
            ))?;
        if !r.is_empty() {
            return Err(DecodeError::MalformedOpen(
                "octets after the optional parameters",
            ));
        }
        Ok(Open {
            my_as,
            hold_time,
            bgp_id,
            capabilities: decode_params(params)?,
        })
    }

    /// Appends the body after the header.
    pub(super) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(4);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());
        let mut params = Vec::new();
        for cap in &self.capabilities {
            let (code, value) = cap.code_and_value();
            let len = u8::try_from(value.len())
                .ok()
                .filter(|&l| l <= 253)
                .ok_or(EncodeError::FieldTooLarge("capability value"))?;
            params.extend_from_slice(&[PARAM_CAPABILITIES, len + 2, code, len]);
            params.extend_from_slice(&value);
        }
        let params_len = u8::try_from(params.len())
            .map_err(|_| EncodeError::FieldTooLarge("optional parameters"))?;
        out.push(params_len);
        out.extend_from_slice(&params);
        Ok(())
    }
}

impl Capability {
    /// Capability code and value as on the wire.
    fn code_and_value(&self) -> (u8, Vec<u8>) {
        match self {
            Capability::Multiprotocol { afi, safi } => {
                let [a, b] = afi.to_be_bytes();
                (CAP_MULTIPROTOCOL, vec![a, b, 0, *safi])
            }
            Capability::RouteRefresh => (CAP_ROUTE_REFRESH, vec![]),
            Capability::FourOctetAs(asn) => (CAP_FOUR_OCTET_AS, asn.to_be_bytes().to_vec()),
            Capability::Unknown { code, value } => (*code, value.clone()),
        }
    }

    /// Parses one capability's value by its code.
    fn decode(code: u8, value: &[u8]) -> Result<Capability, DecodeError> {
        let bad = DecodeError::MalformedOpen("capability length");
        Ok(match code {
            CAP_MULTIPROTOCOL => match value {
                [a, b, _reserved, safi] => Capability::Multiprotocol {
                    afi: u16::from_be_bytes([*a, *b]),
                    safi: *safi,
                },
                _ => return Err(bad),
            },
            CAP_ROUTE_REFRESH if value.is_empty() => Capability::RouteRefresh,
            CAP_ROUTE_REFRESH => return Err(bad),
            CAP_FOUR_OCTET_AS => match value {
                [a, b, c, d] => Capability::FourOctetAs(u32::from_be_bytes([*a, *b, *c, *d])),
                _ => return Err(bad),
            },
            _ => Capability::Unknown {
                code,
                value: value.to_vec(),
            },
        })
    }
}

/// Parses the optional parameters: capabilities only, several per parameter allowed.
fn decode_params(params: &[u8]) -> Result<Vec<Capability>, DecodeError> {
    let overrun = DecodeError::MalformedOpen("optional parameter overruns its field");
    let mut caps = Vec::new();
    let mut r = Reader::new(params);
    while !r.is_empty() {
        let kind = r.u8().ok_or(overrun.clone())?;
        let len = r.u8().ok_or(overrun.clone())?;
        let value = r.take(len as usize).ok_or(overrun.clone())?;
        if kind != PARAM_CAPABILITIES {
            return Err(DecodeError::UnsupportedOptionalParameter(kind));
        }
        let mut c = Reader::new(value);
        while !c.is_empty() {
            let bad = DecodeError::MalformedOpen("capability overruns its parameter");
            let code = c.u8().ok_or(bad.clone())?;
            let len = c.u8().ok_or(bad.clone())?;
            let value = c.take(len as usize).ok_or(bad)?;
            caps.push(Capability::decode(code, value)?);
        }
    }
    Ok(caps)
}

/// Whether `addr` can name a host: not 0.0.0.0, not multicast, not the limited broadcast.
pub(crate) fn is_unicast_host(addr: Ipv4Addr) -> bool {
    !(addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast())
}
