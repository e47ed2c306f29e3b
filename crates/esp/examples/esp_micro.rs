//! Micro-benchmark: ESP seal/open of 1400-byte inner packets on one core, next to the bare
//! aws-lc-rs primitives on the same buffer sizes, so the per-packet cost ESP adds over the
//! cipher itself is visible as a ratio.
//!
//! Prints one tab-separated line per measurement:
//! `cipher  op  esp_pps  raw_pps` (packets per second); `bench/esp-micro.sh` turns them into a
//! table. Usage: `esp-micro [SECONDS_PER_CASE] [INNER_LEN]`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_192_GCM, AES_256_GCM};
use aws_lc_rs::cipher::{
    DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128,
    AES_192, AES_256,
};
use aws_lc_rs::{constant_time, hmac};
use esp::{Auth, Cipher, InboundSa, OutboundSa};

/// Runs `esp` and `raw` (each processing `batch` packets per call) in alternating 20 ms slices
/// for `secs` each, so that load from other processes on a shared machine hits both alike;
/// returns their packets/s.
fn measure_pair(secs: f64, batch: u64, mut esp: impl FnMut(), mut raw: impl FnMut()) -> (f64, f64) {
    fn slice(f: &mut impl FnMut(), batch: u64) -> (u64, Duration) {
        let start = Instant::now();
        let mut packets = 0;
        while start.elapsed() < Duration::from_millis(20) {
            for _ in 0..8 {
                f();
            }
            packets += 8 * batch;
        }
        (packets, start.elapsed())
    }
    slice(&mut esp, batch);
    slice(&mut raw, batch);
    let (mut pe, mut te, mut pr, mut tr) = (0u64, Duration::ZERO, 0u64, Duration::ZERO);
    while (te + tr).as_secs_f64() < 2.0 * secs {
        let (p, t) = slice(&mut esp, batch);
        pe += p;
        te += t;
        let (p, t) = slice(&mut raw, batch);
        pr += p;
        tr += t;
    }
    (pe as f64 / te.as_secs_f64(), pr as f64 / tr.as_secs_f64())
}

fn ipv4_packet(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 6;
    for (i, b) in p[20..].iter_mut().enumerate() {
        *b = i as u8;
    }
    p
}

/// The bare-primitive baseline for one transform: what a packet costs with no ESP framing.
#[allow(clippy::large_enum_variant)]
enum Raw {
    Gcm(LessSafeKey),
    Cbc {
        enc: EncryptingKey,
        dec: DecryptingKey,
        mac: hmac::Key,
        icv: usize,
    },
}

impl Raw {
    /// `None` for transforms aws-lc-rs has no primitive for (DES, 3DES, NULL, HMAC-MD5): there
    /// is no bare baseline to compare with.
    fn new(cipher: Cipher, enc_key: &[u8], integ_key: &[u8]) -> Option<Self> {
        Some(match cipher {
            Cipher::AesGcm128 => Raw::Gcm(LessSafeKey::new(
                UnboundKey::new(&AES_128_GCM, &enc_key[..16]).unwrap(),
            )),
            Cipher::AesGcm192 => Raw::Gcm(LessSafeKey::new(
                UnboundKey::new(&AES_192_GCM, &enc_key[..24]).unwrap(),
            )),
            Cipher::AesGcm256 => Raw::Gcm(LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, &enc_key[..32]).unwrap(),
            )),
            Cipher::AesCbc128(a) | Cipher::AesCbc192(a) | Cipher::AesCbc256(a) => {
                let alg = match cipher.key_len() {
                    16 => &AES_128,
                    24 => &AES_192,
                    _ => &AES_256,
                };
                let mac_alg = match a {
                    Auth::HmacMd5_96 => return None,
                    Auth::HmacSha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                    Auth::HmacSha256_128 => hmac::HMAC_SHA256,
                    Auth::HmacSha384_192 => hmac::HMAC_SHA384,
                };
                Raw::Cbc {
                    enc: EncryptingKey::cbc(UnboundCipherKey::new(alg, enc_key).unwrap()).unwrap(),
                    dec: DecryptingKey::cbc(UnboundCipherKey::new(alg, enc_key).unwrap()).unwrap(),
                    mac: hmac::Key::new(mac_alg, integ_key),
                    icv: a.icv_len(),
                }
            }
            Cipher::TripleDesCbc(_) | Cipher::DesCbc(_) | Cipher::Null(_) => return None,
        })
    }

    /// Encrypts `buf[hdr..hdr+body]` and writes the tag after it; `buf[..hdr]` is the AAD/header.
    fn seal(&self, buf: &mut [u8], hdr: usize, body: usize, ctr: u64) {
        match self {
            Raw::Gcm(k) => {
                let mut n = [0u8; 12];
                n[4..].copy_from_slice(&ctr.to_be_bytes());
                let (head, rest) = buf.split_at_mut(hdr);
                let tag = k
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(n),
                        Aad::from(&head[..8]),
                        &mut rest[..body],
                    )
                    .unwrap();
                rest[body..body + 16].copy_from_slice(tag.as_ref());
            }
            Raw::Cbc { enc, mac, icv, .. } => {
                let iv = [ctr as u8; 16];
                enc.less_safe_encrypt(
                    &mut buf[hdr..hdr + body],
                    EncryptionContext::Iv128(iv.into()),
                )
                .unwrap();
                let tag = hmac::sign(mac, &buf[..hdr + body]);
                buf[hdr + body..hdr + body + icv].copy_from_slice(&tag.as_ref()[..*icv]);
            }
        }
    }

    fn open(&self, buf: &mut [u8], hdr: usize, body: usize, ctr: u64) {
        match self {
            Raw::Gcm(k) => {
                let mut n = [0u8; 12];
                n[4..].copy_from_slice(&ctr.to_be_bytes());
                let (head, rest) = buf.split_at_mut(hdr);
                black_box(
                    k.open_in_place(
                        Nonce::assume_unique_for_key(n),
                        Aad::from(&head[..8]),
                        &mut rest[..body + 16],
                    )
                    .unwrap(),
                );
            }
            Raw::Cbc { dec, mac, icv, .. } => {
                let tag = hmac::sign(mac, &buf[..hdr + body]);
                constant_time::verify_slices_are_equal(
                    &tag.as_ref()[..*icv],
                    &buf[hdr + body..hdr + body + icv],
                )
                .unwrap();
                let iv = [ctr as u8; 16];
                black_box(
                    dec.decrypt(
                        &mut buf[hdr..hdr + body],
                        DecryptionContext::Iv128(iv.into()),
                    )
                    .unwrap(),
                );
            }
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args
        .next()
        .map_or(1.0, |s| s.parse().expect("SECONDS_PER_CASE"));
    let inner_len: usize = args.next().map_or(1400, |s| s.parse().expect("INNER_LEN"));
    let inner = ipv4_packet(inner_len);
    let ciphers = [
        Cipher::AesGcm256,
        Cipher::AesGcm128,
        Cipher::AesCbc256(Auth::HmacSha256_128),
        Cipher::AesCbc128(Auth::HmacSha1_96),
    ];
    println!("# inner_len={inner_len} secs_per_case={secs}");
    for cipher in ciphers {
        let enc_key: Vec<u8> = (0..cipher.enc_key_len() as u8).collect();
        let integ_key: Vec<u8> = (0..cipher.integ_key_len() as u8)
            .map(|b| b ^ 0x5c)
            .collect();
        let Some(raw) = Raw::new(cipher, &enc_key, &integ_key) else {
            eprintln!("{cipher}: no aws-lc-rs baseline, skipped");
            continue;
        };
        let hdr = cipher.header_len();
        let sealed_len = cipher.sealed_len(inner_len);
        let body = sealed_len - hdr - cipher.icv_len();
        let mut buf = vec![0u8; sealed_len];
        let mut raw_buf = vec![0u8; sealed_len];
        raw_buf[hdr..hdr + inner_len].copy_from_slice(&inner);

        // seal: inner copied into the packet buffer (the `seal` API) vs. bare in-place AEAD.
        let mut out_sa = OutboundSa::new(1, cipher, &enc_key, &integ_key).unwrap();
        let mut ctr = 0u64;
        let (esp_seal, raw_seal) = measure_pair(
            secs,
            1,
            || {
                black_box(out_sa.seal(black_box(&inner), &mut buf).unwrap());
            },
            || {
                ctr += 1;
                raw.seal(black_box(&mut raw_buf), hdr, body, ctr);
            },
        );
        // seal_in_place: inner already at header_len() (where the TUN read lands).
        let mut out_sa = OutboundSa::new(1, cipher, &enc_key, &integ_key).unwrap();
        buf[hdr..hdr + inner_len].copy_from_slice(&inner);
        let (esp_seal_in_place, raw_seal2) = measure_pair(
            secs,
            1,
            || {
                // Re-plant the IP header the previous encryption overwrote (a TUN read would).
                buf[hdr..hdr + 4].copy_from_slice(&inner[..4]);
                black_box(out_sa.seal_in_place(&mut buf, inner_len).unwrap());
            },
            || {
                ctr += 1;
                raw.seal(black_box(&mut raw_buf), hdr, body, ctr);
            },
        );

        // open: pools of 1024 sealed packets (distinct sequence numbers), each copied to a
        // scratch buffer and opened; both sides pay the same copy.
        const POOL: usize = 1024;
        let mut sealer = OutboundSa::new(2, cipher, &enc_key, &integ_key).unwrap();
        let pool: Vec<Vec<u8>> = (0..POOL)
            .map(|_| {
                let mut b = vec![0u8; sealed_len];
                sealer.seal(&inner, &mut b).unwrap();
                b
            })
            .collect();
        let raw_pool: Vec<Vec<u8>> = (0..POOL as u64)
            .map(|i| {
                let mut b = vec![0u8; sealed_len];
                b[hdr..hdr + inner_len].copy_from_slice(&inner);
                raw.seal(&mut b, hdr, body, i);
                b
            })
            .collect();
        let mut scratch = vec![0u8; sealed_len];
        let mut raw_scratch = vec![0u8; sealed_len];
        let (esp_open, raw_open) = measure_pair(
            secs,
            POOL as u64,
            || {
                let mut in_sa = InboundSa::new(2, cipher, &enc_key, &integ_key).unwrap();
                for p in &pool {
                    scratch.copy_from_slice(p);
                    black_box(in_sa.open(&mut scratch).unwrap());
                }
            },
            || {
                for (i, p) in raw_pool.iter().enumerate() {
                    raw_scratch.copy_from_slice(p);
                    raw.open(&mut raw_scratch, hdr, body, i as u64);
                }
            },
        );

        // seal+open round trip through one buffer, as one core would run both directions.
        let mut out_sa = OutboundSa::new(3, cipher, &enc_key, &integ_key).unwrap();
        let mut in_sa = InboundSa::new(3, cipher, &enc_key, &integ_key).unwrap();
        let mut ctr = 0u64;
        let (esp_rt, raw_rt) = measure_pair(
            secs,
            1,
            || {
                let n = out_sa.seal(&inner, &mut buf).unwrap();
                black_box(in_sa.open(&mut buf[..n]).unwrap());
            },
            || {
                ctr += 1;
                raw_buf[hdr..hdr + inner_len].copy_from_slice(&inner);
                raw.seal(&mut raw_buf, hdr, body, ctr);
                raw.open(&mut raw_buf, hdr, body, ctr);
            },
        );

        for (op, e, r) in [
            ("seal", esp_seal, raw_seal),
            ("seal_in_place", esp_seal_in_place, raw_seal2),
            ("open", esp_open, raw_open),
            ("seal+open", esp_rt, raw_rt),
        ] {
            println!("{cipher}\t{op}\t{e:.0}\t{r:.0}");
        }
    }
}
