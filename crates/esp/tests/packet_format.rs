//! Known-answer tests: ESP packets built independently (Python `cryptography` + `hmac`, per
//! RFC 4303/4106/3602/4868/2403/2405/2451/2410) must be produced byte for byte (GCM, NULL) or
//! opened (CBC) by this crate.

mod common;

use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockDecrypt, KeyInit};
use esp::{Auth, Cipher, InboundSa, OutboundSa};

/// IPv4 ICMP echo request, 28 bytes.
const INNER: &str = "4500001c000100004001f7cec0a80001c0a80002080077fe00010001";
const SPI: u32 = 0x1234_5678;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// RFC 4106: nonce = salt (KEYMAT tail) || 8-byte explicit IV, AAD = SPI || seq, ICV 16 bytes;
/// padding 1, 2 to a 4-byte boundary, pad length 2, next header 4.
#[test]
fn gcm128_packet_matches_independent_construction() {
    let keymat = h("feffe9928665731c6d6a8f9467308308cafebabe");
    let mut sa = OutboundSa::new(SPI, Cipher::AesGcm128, &keymat, &[]).unwrap();
    let mut out = [0u8; 128];
    let n = sa.seal(&h(INNER), &mut out).unwrap();
    assert_eq!(
        hex::encode(&out[..n]),
        "12345678000000010000000000000001c944aa85f44f7cb944bb46a4222961439f7ad495d9c174c8f203bbb5715af8fda69fe9bcff95c386763b159df4ea3e24"
    );
    let mut inb = InboundSa::new(SPI, Cipher::AesGcm128, &keymat, &[]).unwrap();
    assert_eq!(inb.open(&mut out[..n]).unwrap(), h(INNER));
}

#[test]
fn gcm256_packet_matches_independent_construction() {
    let keymat = h("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308cafebabe");
    let mut sa = OutboundSa::new(SPI, Cipher::AesGcm256, &keymat, &[]).unwrap();
    let mut out = [0u8; 128];
    let n = sa.seal(&h(INNER), &mut out).unwrap();
    assert_eq!(
        hex::encode(&out[..n]),
        "1234567800000001000000000000000185047d768c6f770ab24eb1dd8960346c9e3d623d22ab21fe5f44fa1d676285dd7834a21961d815fd99018a76eac8d329"
    );
}

/// AES-CBC with IV f0e1…0f, padding 1, 2 to 32 bytes, ICV = truncated HMAC over
/// SPI || seq || IV || ciphertext (RFC 4303 §3.3.4, RFC 4868 §2.3).
#[test]
fn cbc_hmac_packets_from_independent_construction_open() {
    let cases = [
        (
            Cipher::AesCbc128(Auth::HmacSha1_96),
            h("000102030405060708090a0b0c0d0e0f"),
            vec![0x0b; 20],
            "1234567800000001f0e1d2c3b4a5968778695a4b3c2d1e0f39ed347e187a57de6350b95254937a4e528975ca9cdcdf6a3c69470f44f7275230c360906bb0cfec3aca47d3",
        ),
        (
            Cipher::AesCbc256(Auth::HmacSha256_128),
            (0..32).collect(),
            vec![0x0b; 32],
            "1234567800000001f0e1d2c3b4a5968778695a4b3c2d1e0f67973bc889d90ad393ef16a7a5ca7acfc208449cec1767cdebeedc42152fab9a12a76acb9ae26ab14ad392a025d8816c",
        ),
        (
            Cipher::AesCbc256(Auth::HmacSha384_192),
            (0..32).collect(),
            vec![0x0b; 48],
            "1234567800000001f0e1d2c3b4a5968778695a4b3c2d1e0f67973bc889d90ad393ef16a7a5ca7acfc208449cec1767cdebeedc42152fab9a24453101af1ddb96f3f4451ed17cceb50c171e15b4242c45",
        ),
    ];
    for (cipher, ek, ik, packet) in cases {
        let mut inb = InboundSa::new(SPI, cipher, &ek, &ik).unwrap();
        let mut p = h(packet);
        assert_eq!(inb.open(&mut p).unwrap(), h(INNER), "{cipher}");
        // The ICV length on the wire is the truncated one.
        assert_eq!(h(packet).len(), 8 + 16 + 32 + cipher.icv_len());
        // And our own sealing yields the same layout, verifiable by the independent rules.
        let mut out = OutboundSa::new(SPI, cipher, &ek, &ik).unwrap();
        let mut buf = [0u8; 256];
        let n = out.seal(&h(INNER), &mut buf).unwrap();
        assert_eq!(n, h(packet).len());
        assert_eq!(&buf[..8], &h("1234567800000001")[..]);
        check_cbc_packet_independently(cipher, &ek, &ik, &buf[..n], &h(INNER));
    }
}

/// Decodes a packet of a non-AEAD transform with raw library calls (aws-lc-rs for AES and the
/// SHA HMACs, RustCrypto's block functions and HMAC-MD5 for the rest), following the RFCs
/// rather than the crate's code: ICV = truncated HMAC over SPI || seq || IV || ciphertext, CBC
/// (or nothing, for NULL) under the IV in the packet, then padding 1, 2, … to the block, pad
/// length and next header 4.
fn check_cbc_packet_independently(cipher: Cipher, ek: &[u8], ik: &[u8], p: &[u8], inner: &[u8]) {
    use aws_lc_rs::cipher::{
        DecryptingKey, DecryptionContext, UnboundCipherKey, AES_128, AES_192, AES_256,
    };
    use aws_lc_rs::hmac;
    let auth = cipher.auth().unwrap();
    let icv_len = auth.icv_len();
    let (data, icv) = p.split_at(p.len() - icv_len);
    let full: Vec<u8> = match auth {
        Auth::HmacMd5_96 => {
            use ::hmac::Mac;
            let mut mac = <::hmac::Hmac<md5::Md5> as Mac>::new_from_slice(ik).unwrap();
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Auth::HmacSha1_96 => sign(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, ik, data),
        Auth::HmacSha256_128 => sign(hmac::HMAC_SHA256, ik, data),
        Auth::HmacSha384_192 => sign(hmac::HMAC_SHA384, ik, data),
    };
    let expected_full = match auth {
        Auth::HmacMd5_96 => 16,
        Auth::HmacSha1_96 => 20,
        Auth::HmacSha256_128 => 32,
        Auth::HmacSha384_192 => 48,
    };
    assert_eq!(full.len(), expected_full);
    assert_eq!(&full[..icv_len], icv, "{cipher}: ICV = truncated HMAC");
    assert_eq!(&p[..4], &h("12345678")[..]);
    let (iv_len, block) = match cipher {
        Cipher::Null(_) => (0, 4),
        Cipher::DesCbc(_) | Cipher::TripleDesCbc(_) => (8, 8),
        _ => (16, 16),
    };
    let iv = &data[8..8 + iv_len];
    let mut body = data[8 + iv_len..].to_vec();
    assert_eq!(body.len() % block, 0, "{cipher}: aligned to {block}");
    let plain = match cipher {
        Cipher::Null(_) => body,
        Cipher::DesCbc(_) => des_cbc_decrypt(&des::Des::new_from_slice(ek).unwrap(), iv, &body),
        Cipher::TripleDesCbc(_) => {
            des_cbc_decrypt(&des::TdesEde3::new_from_slice(ek).unwrap(), iv, &body)
        }
        _ => {
            let aes = match ek.len() {
                16 => &AES_128,
                24 => &AES_192,
                _ => &AES_256,
            };
            let key = DecryptingKey::cbc(UnboundCipherKey::new(aes, ek).unwrap()).unwrap();
            let iv: [u8; 16] = iv.try_into().unwrap();
            key.decrypt(&mut body, DecryptionContext::Iv128(iv.into()))
                .unwrap()
                .to_vec()
        }
    };
    assert_eq!(&plain[..inner.len()], inner, "{cipher}");
    let pad = plain.len() - inner.len() - 2;
    assert!(pad < block, "{cipher}: minimal padding");
    let mut trailer: Vec<u8> = (1..=pad as u8).collect();
    trailer.extend_from_slice(&[pad as u8, 4]);
    assert_eq!(&plain[inner.len()..], &trailer[..], "{cipher}");
}

fn sign(alg: aws_lc_rs::hmac::Algorithm, key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(alg, key);
    aws_lc_rs::hmac::sign(&key, data).as_ref().to_vec()
}

/// CBC decryption written out over the raw block function (not the `cbc` crate the SA uses).
fn des_cbc_decrypt<C: BlockDecrypt>(key: &C, iv: &[u8], body: &[u8]) -> Vec<u8> {
    let mut prev = iv.to_vec();
    let mut out = Vec::with_capacity(body.len());
    for c in body.chunks(8) {
        let mut block = GenericArray::clone_from_slice(c);
        key.decrypt_block(&mut block);
        out.extend(block.iter().zip(&prev).map(|(b, p)| b ^ p));
        prev = c.to_vec();
    }
    out
}

/// RFC 4106 with a 192-bit key: the same construction as the 128-bit case above.
#[test]
fn gcm192_packet_matches_independent_construction() {
    let keymat = h("feffe9928665731c6d6a8f9467308308feffe9928665731ccafebabe");
    let mut sa = OutboundSa::new(SPI, Cipher::AesGcm192, &keymat, &[]).unwrap();
    let mut out = [0u8; 128];
    let n = sa.seal(&h(INNER), &mut out).unwrap();
    assert_eq!(
        hex::encode(&out[..n]),
        "12345678000000010000000000000001c8026ee9741b905aab0907630f4c96cc4805f7069161f5d8b7a3c3bf72df1e64619ed5973800822073ebba82fc0de91b"
    );
    let mut inb = InboundSa::new(SPI, Cipher::AesGcm192, &keymat, &[]).unwrap();
    assert_eq!(inb.open(&mut out[..n]).unwrap(), h(INNER));
}

/// AES-CBC-192, 3DES-CBC (RFC 2451) and DES-CBC (RFC 2405) with HMAC-MD5-96 (RFC 2403) and
/// friends, built independently (Python `cryptography` + `hmac`) with IV f0e1… (its first 8
/// bytes for DES and 3DES) and padding 1, 2 to 32 bytes.
#[test]
fn legacy_cbc_packets_from_independent_construction_open() {
    let tdes_key = h("0123456789abcdef23456789abcdef01456789abcdef0123");
    let cases = [
        (
            Cipher::AesCbc192(Auth::HmacMd5_96),
            (0..24).collect(),
            vec![0x0b; 16],
            "1234567800000001f0e1d2c3b4a5968778695a4b3c2d1e0fbadcf5b844a3a0c63d2e4f2c8e676a9f902433f8253aa5224ee28afe77ffa7a1358bd32326f68ae17492a2f0",
        ),
        (
            Cipher::TripleDesCbc(Auth::HmacMd5_96),
            tdes_key.clone(),
            vec![0x0b; 16],
            "1234567800000001f0e1d2c3b4a5968704d4f931fd66b6cc551f59c843a723d3803b2a305158598c4070e97f665fe54163a753ed1ebfa718e3f84348",
        ),
        (
            Cipher::TripleDesCbc(Auth::HmacSha256_128),
            tdes_key,
            vec![0x0b; 32],
            "1234567800000001f0e1d2c3b4a5968704d4f931fd66b6cc551f59c843a723d3803b2a305158598c4070e97f665fe541496cb1f0d6b28f7517f8ef6505eedbc5",
        ),
        (
            Cipher::DesCbc(Auth::HmacSha1_96),
            h("133457799bbcdff1"),
            vec![0x0b; 20],
            "1234567800000001f0e1d2c3b4a59687677f68ae2c35188746164c4ef105b635cbf555bc463e94217e9939c474dee63f9f554043d945b2b97694528a",
        ),
    ];
    for (cipher, ek, ik, packet) in cases {
        let mut inb = InboundSa::new(SPI, cipher, &ek, &ik).unwrap();
        let mut p = h(packet);
        assert_eq!(inb.open(&mut p).unwrap(), h(INNER), "{cipher}");
        assert_eq!(
            h(packet).len(),
            8 + cipher.iv_len() + 32 + cipher.icv_len(),
            "{cipher}"
        );
        let mut out = OutboundSa::new(SPI, cipher, &ek, &ik).unwrap();
        let mut buf = [0u8; 256];
        let n = out.seal(&h(INNER), &mut buf).unwrap();
        assert_eq!(n, h(packet).len(), "{cipher}");
        assert_eq!(&buf[..8], &h("1234567800000001")[..]);
        check_cbc_packet_independently(cipher, &ek, &ik, &buf[..n], &h(INNER));
    }
}

/// ENCR_NULL (RFC 2410) is deterministic, so the independently built packet is matched byte for
/// byte: SPI, seq, the inner packet in clear, padding 1, 2 to 4 bytes, 2, 4, truncated HMAC.
#[test]
fn null_packets_match_independent_construction() {
    let cases = [
        (
            Cipher::Null(Auth::HmacMd5_96),
            vec![0x0b; 16],
            "12345678000000014500001c000100004001f7cec0a80001c0a80002080077fe0001000101020204f38382fac78d631266cc5849",
        ),
        (
            Cipher::Null(Auth::HmacSha384_192),
            vec![0x0b; 48],
            "12345678000000014500001c000100004001f7cec0a80001c0a80002080077fe00010001010202042b91f574ad6f81edce7249dda28e688feab696789b344c67",
        ),
    ];
    for (cipher, ik, packet) in cases {
        let mut out = OutboundSa::new(SPI, cipher, &[], &ik).unwrap();
        let mut buf = [0u8; 128];
        let n = out.seal(&h(INNER), &mut buf).unwrap();
        assert_eq!(hex::encode(&buf[..n]), packet, "{cipher}");
        let mut inb = InboundSa::new(SPI, cipher, &[], &ik).unwrap();
        assert_eq!(inb.open(&mut buf[..n]).unwrap(), h(INNER), "{cipher}");
    }
}

/// Every inner length modulo the block: the encrypted part is padded to the 8-byte DES block, the
/// 4-byte ESP alignment (NULL) or the 16-byte AES block with the fewest bytes, as the independent
/// decoder sees.
#[test]
fn padding_aligns_to_8_and_4_byte_blocks() {
    let ciphers = [
        Cipher::DesCbc(Auth::HmacMd5_96),
        Cipher::TripleDesCbc(Auth::HmacSha1_96),
        Cipher::Null(Auth::HmacMd5_96),
        Cipher::Null(Auth::HmacSha256_128),
        Cipher::AesCbc192(Auth::HmacSha384_192),
    ];
    for cipher in ciphers {
        let (ek, ik) = common::keys(cipher, 3);
        let mut sa = OutboundSa::new(SPI, cipher, &ek, &ik).unwrap();
        for len in 28..28 + 2 * cipher.block_len() + 1 {
            let inner = common::ipv4_packet(len, len as u8);
            let mut buf = [0u8; 256];
            let n = sa.seal(&inner, &mut buf).unwrap();
            assert_eq!(n, sa.sealed_len(len), "{cipher} len {len}");
            let body = n - cipher.header_len() - cipher.icv_len();
            assert_eq!(
                body,
                (len + 2).div_ceil(cipher.block_len()) * cipher.block_len()
            );
            check_cbc_packet_independently(cipher, &ek, &ik, &buf[..n], &inner);
        }
    }
}

#[test]
fn gcm_iv_is_the_sequence_number_and_aad_is_spi_and_seq() {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let (ek, _) = common::keys(Cipher::AesGcm256, 9);
    let mut sa = OutboundSa::new(0xdead_beef, Cipher::AesGcm256, &ek, &[]).unwrap();
    let raw = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &ek[..32]).unwrap());
    let inner = common::ipv6_packet(100, 3);
    for seq in 1u32..=3 {
        let mut out = vec![0u8; sa.sealed_len(inner.len())];
        let n = sa.seal(&inner, &mut out).unwrap();
        assert_eq!(&out[4..8], &seq.to_be_bytes());
        assert_eq!(&out[8..16], &u64::from(seq).to_be_bytes());
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&ek[32..]);
        nonce[4..].copy_from_slice(&out[8..16]);
        let aad: [u8; 8] = out[..8].try_into().unwrap();
        let plain = raw
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[16..n],
            )
            .unwrap();
        assert_eq!(&plain[..100], &inner[..]);
        // 100 + 2 = 102 -> 104: padding 1, 2; pad length 2; next header 41 (IPv6).
        assert_eq!(&plain[100..], &[1, 2, 2, 41]);
    }
}
