//! The pair agrees on algorithms: every suite we offer (GCM and CBC IKE, MODP, ECP and
//! Curve25519 groups, Azure's and Azure Stack Hub's policies) comes up with mirrored keys, and
//! an initiator whose first key exchange guessed wrong retries with the responder's group.

mod common;

use common::*;

#[test]
fn gcm_ike_ecp384() {
    let n = establish("aes256gcm16-prfsha384-ecp384", "aes256gcm16-ecp384");
    assert_up(
        &n,
        "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384",
        "AES_GCM_16_256",
    );
    // IKE_SA_INIT on 500, IKE_AUTH floated to 4500 with the non-ESP marker.
    assert_eq!(n.wire[0].1, 500);
    assert_eq!(n.wire[2].1, 4500);
    assert_eq!(&n.wire[2].2[..4], &[0, 0, 0, 0]);
}

#[test]
fn cbc_modp2048_sha256() {
    let n = establish("aes256-sha256-modp2048", "aes256-sha256");
    assert_up(
        &n,
        "AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048",
        "AES_CBC_256/HMAC_SHA2_256_128",
    );
    assert_eq!(children(&n.ev_a)[0].integ_key_in.len(), 32);
}

#[test]
fn cbc_modp1024_sha1() {
    let n = establish("aes128-sha1-modp1024", "aes128-sha1");
    assert_up(
        &n,
        "AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        "AES_CBC_128/HMAC_SHA1_96",
    );
}

#[test]
fn azure_stack_hub_policy() {
    let n = establish("aes256-sha384-ecp384", "aes256gcm16-ecp384");
    assert_up(
        &n,
        "AES_CBC_256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384",
        "AES_GCM_16_256",
    );
}

#[test]
fn azure_default_ike_offer_group2() {
    // Azure's default phase 1 offers (DH group 2), minus 3DES which we do not implement.
    let n = establish(
        "aes256-sha1-modp1024,aes256-sha256-modp1024,aes128-sha1-modp1024,aes128-sha256-modp1024",
        "aes256gcm16,aes256-sha1,aes256-sha256,aes128-sha1",
    );
    assert_up(
        &n,
        "AES_CBC_256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        "AES_GCM_16_256",
    );
}

#[test]
fn cbc_sha384_ecp384() {
    let n = establish("aes256-sha384-ecp384", "aes256-sha384");
    assert_up(
        &n,
        "AES_CBC_256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384",
        "AES_CBC_256/HMAC_SHA2_384_192",
    );
}

#[test]
fn gcm128_curve25519() {
    let n = establish("aes128gcm16-prfsha256-curve25519", "aes128gcm16");
    assert_up(
        &n,
        "AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519",
        "AES_GCM_16_128",
    );
}

#[test]
fn cbc_modp2048s256_and_ecp256() {
    let n = establish("aes256-sha256-modp2048s256", "aes128-sha256");
    assert_up(
        &n,
        "AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048_256",
        "AES_CBC_128/HMAC_SHA2_256_128",
    );
    let n = establish("aes128-sha256-ecp256", "aes256gcm16");
    assert_up(
        &n,
        "AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_256",
        "AES_GCM_16_256",
    );
}

#[test]
fn invalid_ke_retry_uses_responder_group() {
    let mut n = Net::new();
    n.add_b(Conn::new(B, A));
    // Initiator's first KE is curve25519 but it also offers ecp384.
    n.add_a(
        Conn::new(A, B)
            .ike("aes256gcm16-prfsha384-curve25519-ecp384")
            .initiate(true),
    );
    n.pump();
    assert_up(
        &n,
        "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384",
        "AES_GCM_16_256",
    );
}
