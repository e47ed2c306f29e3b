//! The inner IP packet that tunnel-mode ESP carries: which next-header value it gets and how
//! long it really is (the decrypted payload may carry more bytes than the packet).

use crate::error::EspError;

/// Next header for an IPv4 inner packet (IP-in-IP).
pub const NEXT_HEADER_IPV4: u8 = 4;
/// Next header for an IPv6 inner packet.
pub const NEXT_HEADER_IPV6: u8 = 41;
/// Next header of a dummy packet (RFC 4303 §2.6), which receivers discard.
pub const NEXT_HEADER_NONE: u8 = 59;

/// Length an IPv4 header claims, if `p` holds at least that much of a well-formed header.
#[inline]
fn ipv4_len(p: &[u8]) -> Option<usize> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    (ihl >= 20 && total >= ihl && total <= p.len()).then_some(total)
}

/// Length an IPv6 header claims (fixed header plus payload length), if `p` holds it.
#[inline]
fn ipv6_len(p: &[u8]) -> Option<usize> {
    if p.len() < 40 || p[0] >> 4 != 6 {
        return None;
    }
    let total = 40 + usize::from(u16::from_be_bytes([p[4], p[5]]));
    (total <= p.len()).then_some(total)
}

/// Next-header value for a packet about to be sealed, after checking it is a complete IPv4 or
/// IPv6 packet, so that the receiver will not drop it as malformed.
#[inline]
pub(crate) fn next_header_for(inner: &[u8]) -> Result<u8, EspError> {
    match inner.first().map(|b| b >> 4) {
        Some(4) if ipv4_len(inner).is_some() => Ok(NEXT_HEADER_IPV4),
        Some(6) if ipv6_len(inner).is_some() => Ok(NEXT_HEADER_IPV6),
        _ => Err(EspError::NotIpPacket),
    }
}

/// Length of the inner packet inside a decrypted `payload` (padding already removed).
#[inline]
pub(crate) fn inner_len(next_header: u8, payload: &[u8]) -> Result<usize, EspError> {
    match next_header {
        NEXT_HEADER_IPV4 => ipv4_len(payload).ok_or(EspError::BadInnerPacket),
        NEXT_HEADER_IPV6 => ipv6_len(payload).ok_or(EspError::BadInnerPacket),
        NEXT_HEADER_NONE => Err(EspError::DummyPacket),
        other => Err(EspError::UnknownNextHeader(other)),
    }
}
