//! Known-answer tests: ESP packets built independently (Python `cryptography` + `hmac`, per
//! RFC 4303/4106/3602/4868) must be produced byte for byte (GCM) or opened (CBC) by this crate.

mod common;

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
        check_cbc_packet_independently(cipher, &ek, &ik, &buf[..n], &h(INNER));
    }
}

/// Decodes a CBC+HMAC packet with raw aws-lc-rs calls, following the RFCs rather than the
/// crate's code.
fn check_cbc_packet_independently(cipher: Cipher, ek: &[u8], ik: &[u8], p: &[u8], inner: &[u8]) {
    use aws_lc_rs::cipher::{DecryptingKey, DecryptionContext, UnboundCipherKey, AES_128, AES_256};
    use aws_lc_rs::hmac;
    let auth = cipher.auth().unwrap();
    let (alg, full) = match auth {
        Auth::HmacSha1_96 => (hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, 20),
        Auth::HmacSha256_128 => (hmac::HMAC_SHA256, 32),
        Auth::HmacSha384_192 => (hmac::HMAC_SHA384, 48),
    };
    let icv_len = p.len() - (8 + 16 + 32);
    let tag = hmac::sign(&hmac::Key::new(alg, ik), &p[..p.len() - icv_len]);
    assert_eq!(tag.as_ref().len(), full);
    assert_eq!(
        &tag.as_ref()[..icv_len],
        &p[p.len() - icv_len..],
        "ICV = truncated HMAC"
    );
    let aes = if ek.len() == 16 { &AES_128 } else { &AES_256 };
    let key = DecryptingKey::cbc(UnboundCipherKey::new(aes, ek).unwrap()).unwrap();
    let mut body = p[24..p.len() - icv_len].to_vec();
    let iv: [u8; 16] = p[8..24].try_into().unwrap();
    let plain = key
        .decrypt(&mut body, DecryptionContext::Iv128(iv.into()))
        .unwrap();
    assert_eq!(&plain[..inner.len()], inner);
    assert_eq!(&plain[inner.len()..], &[1, 2, 2, 4]);
    assert_eq!(&p[..8], &h("1234567800000001")[..]);
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
