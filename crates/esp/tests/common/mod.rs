//! Packet builders and keys shared by the esp integration tests.
#![allow(dead_code)]

use esp::{Auth, Cipher, InboundSa, OutboundSa};

/// Every integrity algorithm the crate supports.
pub const ALL_AUTHS: [Auth; 4] = [
    Auth::HmacMd5_96,
    Auth::HmacSha1_96,
    Auth::HmacSha256_128,
    Auth::HmacSha384_192,
];

/// Every transform the crate supports.
pub fn all_ciphers() -> Vec<Cipher> {
    let mut v = vec![Cipher::AesGcm128, Cipher::AesGcm192, Cipher::AesGcm256];
    for a in ALL_AUTHS {
        v.push(Cipher::AesCbc128(a));
        v.push(Cipher::AesCbc192(a));
        v.push(Cipher::AesCbc256(a));
        v.push(Cipher::TripleDesCbc(a));
        v.push(Cipher::DesCbc(a));
        v.push(Cipher::Null(a));
    }
    v
}

/// Deterministic, distinct key material of the right lengths for `cipher`.
pub fn keys(cipher: Cipher, seed: u8) -> (Vec<u8>, Vec<u8>) {
    let enc = (0..cipher.enc_key_len())
        .map(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
        .collect();
    let integ = (0..cipher.integ_key_len())
        .map(|i| {
            seed.wrapping_add(0x80)
                .wrapping_add((i as u8).wrapping_mul(7))
        })
        .collect();
    (enc, integ)
}

/// A matching outbound/inbound pair for one SPI, as two peers would hold it.
pub fn sa_pair(cipher: Cipher, spi: u32) -> (OutboundSa, InboundSa) {
    let (e, i) = keys(cipher, spi as u8);
    (
        OutboundSa::new(spi, cipher, &e, &i).unwrap(),
        InboundSa::new(spi, cipher, &e, &i).unwrap(),
    )
}

/// A complete IPv4/UDP packet of `len` bytes (>= 28) with a recognisable payload.
pub fn ipv4_packet(len: usize, seed: u8) -> Vec<u8> {
    assert!((28..=65535).contains(&len));
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 1, 0, 2]);
    p[16..20].copy_from_slice(&[10, 2, 0, 2]);
    p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(13).wrapping_add(seed);
    }
    p
}

/// A complete IPv6/UDP packet of `len` bytes (>= 48).
pub fn ipv6_packet(len: usize, seed: u8) -> Vec<u8> {
    assert!((48..=65535 + 40).contains(&len));
    let mut p = vec![0u8; len];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[8] = 0xfd;
    p[23] = 1;
    p[24] = 0xfd;
    p[39] = 2;
    for (i, b) in p[48..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7).wrapping_add(seed);
    }
    p
}
