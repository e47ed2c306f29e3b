//! Published test vectors: RFC 4868 (HMAC-SHA-256/384 as PRF and truncated integrity),
//! RFC 5903 (ECP-256/384 shared secret), RFC 7748 (X25519), and the GCM specification's
//! AES-256 test case 16 through the SK payload's AEAD path (RFC 4106/5282 nonce = salt||IV).

use ike::crypto::{self, DhPrivate};
use ike::{CryptoError, DhGroup, Encryption, Integrity, Prf};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

#[test]
fn rfc4868_prf_hmac_sha256_and_sha384() {
    // RFC 4868 §2.7.1 test case 1 ("Hi There").
    assert_eq!(
        *crypto::prf(Prf::HmacSha256, &[0x0b; 32], &[b"Hi There"]),
        h("198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7")
    );
    assert_eq!(
        *crypto::prf(Prf::HmacSha384, &[0x0b; 48], &[b"Hi There"]),
        h("b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee9737a959796489bddbc4c5df61d5b3297b4fb68dab9f1b582c2")
    );
    // Test case 2 ("Jefe" key, split input exercises incremental update).
    assert_eq!(
        *crypto::prf(
            Prf::HmacSha256,
            &b"Jefe".repeat(8),
            &[b"what do ya want ", b"for nothing?"]
        ),
        h("167f928588c5cc2eef8e3093caa0e87c9ff566a14794aa61648d81621a2a40c6")
    );
}

#[test]
fn rfc4868_truncated_integrity() {
    // AUTH-HMAC-SHA-256-128 and AUTH-HMAC-SHA-384-192: the leftmost 128/192 bits.
    assert_eq!(
        crypto::integrity_icv(Integrity::HmacSha256_128, &[0x0b; 32], &[b"Hi There"]),
        h("198a607eb44bfbc69903a0f1cf2bbdc5")
    );
    assert_eq!(
        crypto::integrity_icv(Integrity::HmacSha384_192, &[0x0b; 48], &[b"Hi There"]),
        h("b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973")
    );
    // HMAC-SHA1-96 (RFC 2202 test case 1, truncated per RFC 2404).
    assert_eq!(
        crypto::integrity_icv(Integrity::HmacSha1_96, &[0x0b; 20], &[b"Hi There"]),
        h("b617318655057264e28bc0b6")
    );
}

#[test]
fn rfc5903_ecp256() {
    let i = DhPrivate::from_private(
        DhGroup::Ecp256,
        &h("C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433"),
    )
    .unwrap();
    let gi = h("DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180 5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3");
    assert_eq!(i.public(), &gi[..], "KE payload is x || y");
    let r = DhPrivate::from_private(
        DhGroup::Ecp256,
        &h("C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53"),
    )
    .unwrap();
    let gr = h("D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63 56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB");
    assert_eq!(r.public(), &gr[..]);
    let girx = h("D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE");
    assert_eq!(*i.agree(&gr).unwrap(), girx);
    assert_eq!(*r.agree(&gi).unwrap(), girx);
    // A point off the curve is refused.
    let mut bad = gr.clone();
    bad[63] ^= 1;
    assert_eq!(
        i.agree(&bad).unwrap_err(),
        CryptoError::InvalidPeerPublicKey
    );
}

#[test]
fn rfc5903_ecp384() {
    let i = DhPrivate::from_private(DhGroup::Ecp384, &h("099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655E35B538041E649EE3FAEF896783AB194")).unwrap();
    let gr = h("E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D0D1AC43A0336DEF96FDA41D0774A3571 DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FFF83FA40142209DFF5EAAD96DB9E6386C");
    assert_eq!(*i.agree(&gr).unwrap(), h("11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4D603135569B9E9D09CF5D4A270F59746"));
    assert_eq!(i.public().len(), 96);
}

#[test]
fn rfc7748_x25519() {
    let alice = DhPrivate::from_private(
        DhGroup::Curve25519,
        &h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
    )
    .unwrap();
    assert_eq!(
        alice.public(),
        &h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")[..]
    );
    let bob_pub = h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    assert_eq!(
        *alice.agree(&bob_pub).unwrap(),
        h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    );
    // The all-zero point yields an all-zero secret, which must be refused.
    assert!(alice.agree(&[0u8; 32]).is_err());
}

#[test]
fn modp_groups_agree_and_reject_degenerate_values() {
    for g in [DhGroup::Modp1024, DhGroup::Modp2048, DhGroup::Modp2048s256] {
        let a = DhPrivate::generate(g).unwrap();
        let b = DhPrivate::generate(g).unwrap();
        assert_eq!(a.public().len(), g.public_len());
        let s1 = a.agree(b.public()).unwrap();
        let s2 = b.agree(a.public()).unwrap();
        assert_eq!(*s1, *s2, "{g:?}");
        assert_eq!(
            s1.len(),
            g.public_len(),
            "shared secret padded to modulus length"
        );
        let mut one = vec![0u8; g.public_len()];
        assert!(a.agree(&one).is_err(), "0 rejected");
        *one.last_mut().unwrap() = 1;
        assert!(a.agree(&one).is_err(), "1 rejected");
        assert!(
            a.agree(&[0xff; 256][..g.public_len()]).is_err(),
            ">= p rejected"
        );
        assert!(a.agree(&[0x01; 10]).is_err(), "wrong length rejected");
    }
    // Group 2 with fixed exponents: 2^1 = 2, and (2^3)^5 = (2^5)^3 = 2^15.
    let x = DhPrivate::from_private(DhGroup::Modp1024, &[3]).unwrap();
    let y = DhPrivate::from_private(DhGroup::Modp1024, &[5]).unwrap();
    assert_eq!(*x.public().last().unwrap(), 8);
    let s = x.agree(y.public()).unwrap();
    assert_eq!(&s[s.len() - 2..], &[0x80, 0x00]);
    // Group 24: a value outside the prime-order subgroup (p-1 style is caught by range; use g^0 + 2 = 2).
    let z = DhPrivate::generate(DhGroup::Modp2048s256).unwrap();
    let mut two = vec![0u8; 256];
    two[255] = 2;
    assert!(
        z.agree(&two).is_err(),
        "2 is not in group 24's q-order subgroup"
    );
}

#[test]
fn gcm_spec_test_case_16_via_sk_aead() {
    // McGrew/Viega GCM test case 16: AES-256, 96-bit IV = salt(cafebabe) || IV(facedbaddecaf888).
    let key_salt = h("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308 cafebabe");
    let iv = h("facedbaddecaf888");
    let aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    let pt = h("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
    let mut buf = pt.clone();
    let tag = crypto::aead_seal(Encryption::AesGcm16_256, &key_salt, &iv, &aad, &mut buf).unwrap();
    assert_eq!(buf, h("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"));
    assert_eq!(tag.to_vec(), h("76fc6ece0f4e1768cddf8853bb2d551b"));
    let mut ct = buf.clone();
    ct.extend_from_slice(&tag);
    let n = crypto::aead_open(Encryption::AesGcm16_256, &key_salt, &iv, &aad, &mut ct).unwrap();
    assert_eq!(&ct[..n], &pt[..]);
    ct[0] ^= 1;
    assert!(crypto::aead_open(Encryption::AesGcm16_256, &key_salt, &iv, &aad, &mut ct).is_err());
}

#[test]
fn prf_plus_is_iterated_prf() {
    // T1 = prf(K, S|0x01), T2 = prf(K, T1|S|0x02)
    let k = b"key";
    let s = b"seed";
    let t1 = crypto::prf(Prf::HmacSha256, k, &[s, &[1]]);
    let t2 = crypto::prf(Prf::HmacSha256, k, &[&t1, s, &[2]]);
    let out = crypto::prf_plus(Prf::HmacSha256, k, s, 40);
    assert_eq!(&out[..32], &t1[..]);
    assert_eq!(&out[32..], &t2[..8]);
}

/// RFC 2202 §2 test cases 1 and 2: HMAC-MD5 as PRF_HMAC_MD5 and, truncated to 96 bits
/// (RFC 2403), as AUTH_HMAC_MD5_96.
#[test]
fn hmac_md5_rfc2202() {
    assert_eq!(
        hex::encode(&*crypto::prf(Prf::HmacMd5, &[0x0b; 16], &[b"Hi There"])),
        "9294727a3638bb1c13f48ef8158bfc9d"
    );
    assert_eq!(
        hex::encode(&*crypto::prf(
            Prf::HmacMd5,
            b"Jefe",
            &[b"what do ya want ", b"for nothing?"]
        )),
        "750c783e6ab0b503eaa86e310a5db738"
    );
    assert_eq!(
        hex::encode(crypto::integrity_icv(
            Integrity::HmacMd5_96,
            &[0x0b; 16],
            &[b"Hi There"]
        )),
        "9294727a3638bb1c13f48ef8"
    );
}

/// MODP group 1 (768 bits, RFC 2409 §6.1): both sides compute the same shared secret, of
/// the modulus length, and degenerate peer values are refused.
#[test]
fn modp768_agreement() {
    let a = crypto::DhPrivate::generate(DhGroup::Modp768).unwrap();
    let b = crypto::DhPrivate::generate(DhGroup::Modp768).unwrap();
    assert_eq!(a.public().len(), 96);
    let (sa, sb) = (a.agree(b.public()).unwrap(), b.agree(a.public()).unwrap());
    assert_eq!(*sa, *sb);
    assert_eq!(sa.len(), 96);
    let mut one = vec![0u8; 96];
    one[95] = 1;
    assert!(a.agree(&one).is_err());
    assert!(a.agree(&[0xff; 96]).is_err());
}
