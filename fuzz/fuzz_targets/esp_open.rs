//! ESP decapsulation fed hostile input. `InboundSa::open` must never panic, must never accept
//! bytes it did not authenticate, and must accept each authentic packet at most once.
//!
//! Input layout: byte 0 picks the transform, byte 1 the mode, the rest is mode-specific:
//! - mode 0: the rest is a received packet (its SPI forced to the SA's so parsing goes deep),
//!   fed to `open` and to the worker path (`OpenContext::open`);
//! - mode 1: the rest is an arbitrary *plaintext* ESP payload, sealed authentically first, so
//!   the padding, next-header and inner-IP checks that run after the ICV see hostile bytes
//!   (and the worker path must reach the same verdict);
//! - mode 2: the rest is a delivery schedule of 16 authentic packets (index, flipped byte),
//!   checking the replay window and tamper detection together.
#![no_main]

use esp::{Auth, Cipher, InboundSa, OutboundSa};
use libfuzzer_sys::fuzz_target;

const SPI: u32 = 0xc0ff_ee01;
const CIPHERS: [Cipher; 13] = [
    Cipher::AesGcm128,
    Cipher::AesGcm192,
    Cipher::AesGcm256,
    Cipher::AesCbc128(Auth::HmacSha1_96),
    Cipher::AesCbc128(Auth::HmacSha256_128),
    Cipher::AesCbc128(Auth::HmacSha384_192),
    Cipher::AesCbc192(Auth::HmacMd5_96),
    Cipher::AesCbc256(Auth::HmacSha1_96),
    Cipher::AesCbc256(Auth::HmacSha256_128),
    Cipher::AesCbc256(Auth::HmacSha384_192),
    Cipher::TripleDesCbc(Auth::HmacSha1_96),
    Cipher::DesCbc(Auth::HmacMd5_96),
    Cipher::Null(Auth::HmacSha256_128),
];

fn sas(cipher: Cipher) -> (OutboundSa, InboundSa) {
    let enc = [0x42u8; 36];
    let integ = [0x17u8; 48];
    let e = &enc[..cipher.enc_key_len()];
    let i = &integ[..cipher.integ_key_len()];
    (
        OutboundSa::new(SPI, cipher, e, i).expect("valid key lengths"),
        InboundSa::new(SPI, cipher, e, i).expect("valid key lengths"),
    )
}

fn ipv4(len: usize, tag: u8) -> Vec<u8> {
    let mut p = vec![tag; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let cipher = CIPHERS[usize::from(data[0]) % CIPHERS.len()];
    let rest = &data[2..];
    let (mut out_sa, mut in_sa) = sas(cipher);
    match data[1] % 3 {
        0 => {
            let mut p = rest.to_vec();
            if p.len() >= 4 {
                p[..4].copy_from_slice(&SPI.to_be_bytes());
            }
            // Unauthenticated bytes must never be accepted (a forgery would need the key),
            // neither by the SA nor by a worker's shared context.
            let mut copy = p.clone();
            assert!(in_sa.context().open(&mut copy).is_err());
            assert!(in_sa.open(&mut p).is_err());
            assert_eq!(in_sa.counters().packets, 0);
            assert_eq!(in_sa.counters().dropped(), 1);
        }
        1 => {
            let mut buf = vec![0u8; rest.len() + 64];
            let n = out_sa
                .seal_raw_payload(rest, &mut buf)
                .expect("buffer is large enough");
            let header = cipher.header_len();
            // The worker path (shared context, then commit) must agree with `open`.
            let mut copy = buf[..n].to_vec();
            let via_context = in_sa.context().open(&mut copy).map(|o| o.inner());
            let direct = in_sa.open_in_place(&mut buf[..n]);
            assert_eq!(via_context, direct);
            match direct {
                Ok(range) => {
                    // the inner packet starts after the header, and never closer to the
                    // buffer's start than the headroom the gateway relies on (NULL moves it)
                    assert_eq!(range.start, header.max(esp::OPEN_HEADROOM));
                    assert!(range.len() <= rest.len());
                    // What comes out is exactly what went in.
                    assert_eq!(&buf[range.clone()], &rest[..range.len()]);
                }
                Err(e) => assert!(e.drop_reason().is_some(), "{e:?} is not a drop reason"),
            }
            let c = in_sa.counters();
            assert_eq!(c.packets + c.dropped() + c.dummy, 1);
            assert_eq!(
                c.auth_failed + c.replayed,
                0,
                "authentic fresh packet: {c:?}"
            );
        }
        _ => {
            let packets: Vec<Vec<u8>> = (0..16u8)
                .map(|i| {
                    let mut b = vec![0u8; 128];
                    let n = out_sa
                        .seal(&ipv4(28 + usize::from(i), i), &mut b)
                        .expect("seal");
                    b.truncate(n);
                    b
                })
                .collect();
            let mut accepted = [false; 16];
            for step in rest.chunks_exact(2) {
                let idx = usize::from(step[0] % 16);
                let mut p = packets[idx].clone();
                let flip = usize::from(step[1]);
                let tampered = flip != 0;
                if tampered {
                    let at = flip % p.len();
                    p[at] ^= 1 << (step[1] % 8) | 1;
                }
                match in_sa.open(&mut p) {
                    Ok(inner) => {
                        assert!(!tampered, "tampered packet accepted");
                        assert!(!accepted[idx], "packet {idx} accepted twice");
                        assert_eq!(inner, &ipv4(28 + idx, idx as u8)[..]);
                        accepted[idx] = true;
                    }
                    Err(e) => {
                        assert!(
                            tampered || accepted[idx],
                            "fresh packet {idx} rejected: {e:?}"
                        );
                    }
                }
            }
            let c = in_sa.counters();
            assert_eq!(c.packets, accepted.iter().filter(|a| **a).count() as u64);
        }
    }
});
