//! Sans-IO tunnel-mode ESP (RFC 4303) for the hybridnet gateway.
//!
//! The gateway owns the UDP 4500 socket (RFC 3948 UDP encapsulation) and the TUN device; this
//! crate turns inner IPv4/IPv6 packets into ESP packets starting at the SPI and back, in buffers
//! the caller owns, with no allocation per packet and keys expanded once per SA.
//!
//! Transforms: AES-GCM-16 with 128/192/256-bit keys (RFC 4106), and AES-CBC-128/192/256
//! (RFC 3602), 3DES-CBC (RFC 2451), DES-CBC (RFC 2405) or NULL (RFC 2410) with HMAC-MD5-96,
//! HMAC-SHA1-96, HMAC-SHA2-256-128 or HMAC-SHA2-384-192 (RFC 2403, RFC 2404, RFC 4868); the
//! legacy ones because Azure's IPsec policies can still select them. Sequence numbers are 32-bit
//! (no ESN) and never wrap. Inbound SAs keep a 4032-packet anti-replay window.

#![forbid(unsafe_code)]

mod cipher;
mod crypto;
mod error;
mod inner;
mod replay;
mod sa;

pub use cipher::{Auth, Cipher};
pub use error::{DropReason, EspError};
pub use inner::{NEXT_HEADER_IPV4, NEXT_HEADER_IPV6, NEXT_HEADER_NONE};
pub use replay::{ReplayCheck, ReplayWindow, REPLAY_WINDOW};
pub use sa::{
    Counters, InboundSa, OpenContext, Opened, OutboundSa, SealContext, SeqBlock, OPEN_HEADROOM,
};

/// UDP port of NAT traversal (RFC 3948): IKE with a non-ESP marker, ESP, and keepalives.
pub const NAT_T_PORT: u16 = 4500;

/// The SPI of an ESP packet, to find its inbound SA; `None` when the bytes cannot be ESP: shorter
/// than the SPI and sequence number, or starting with the zero non-ESP marker (i.e. IKE).
pub fn spi_of(packet: &[u8]) -> Option<u32> {
    if packet.len() < 8 {
        return None;
    }
    let spi = u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]]);
    (spi != 0).then_some(spi)
}

/// Whether a UDP payload received on port 4500 is a NAT-keepalive: a single 0xFF byte
/// (RFC 3948 §2.3), to be ignored by the receiver.
pub fn is_nat_keepalive(payload: &[u8]) -> bool {
    payload == [0xFF]
}

/// What a datagram on UDP port 4500 carries (RFC 3948 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Udp4500<'a> {
    /// NAT-keepalive; ignore.
    Keepalive,
    /// IKE message with the 4-byte non-ESP marker already removed.
    Ike(&'a [u8]),
    /// ESP packet for the inbound SA with this SPI (the slice still starts at the SPI).
    Esp {
        /// SPI from the packet.
        spi: u32,
        /// The whole ESP packet.
        packet: &'a [u8],
    },
    /// Too short to be any of the above.
    Invalid,
}

/// Sorts a port-4500 datagram into keepalive, IKE or ESP, so the gateway's demultiplexer is one
/// match.
pub fn classify_udp4500(payload: &[u8]) -> Udp4500<'_> {
    if is_nat_keepalive(payload) {
        return Udp4500::Keepalive;
    }
    if payload.len() >= 4 && payload[..4] == [0, 0, 0, 0] {
        return Udp4500::Ike(&payload[4..]);
    }
    match spi_of(payload) {
        Some(spi) => Udp4500::Esp {
            spi,
            packet: payload,
        },
        None => Udp4500::Invalid,
    }
}
