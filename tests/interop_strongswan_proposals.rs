//! Algorithm combinations negotiated with strongSwan, each in its own lab: Azure Stack Hub's
//! fixed policy (IKE AES256/SHA384/ECP384, ESP GCMAES256 with PFS ECP384) and MODP, ECP and
//! Curve25519 combinations with GCM and CBC+HMAC. Each must carry verified traffic and show
//! the expected algorithms in strongSwan's IKE and Child SA (VICI `list-sas`).
use hybridnet_tests::Interop;

fn negotiate(tag: &str, ours_initiate: bool, ike: &str, esp: &str, want_ike: &str, want_esp: &str) {
    let lab = Interop::start(tag, ours_initiate, (&[ike], &[esp]), (ike, esp), None).expect("lab");
    if !ours_initiate {
        lab.charon
            .initiate(20)
            .unwrap_or_else(|e| panic!("strongSwan initiate: {e:#}\nour log:\n{}", lab.ours.log()));
    }
    let summary = lab.check_tunnel().expect("tunnel checks");
    eprintln!("{tag}: {summary}");
    let theirs = lab.wait_up().expect("tunnel").1;
    assert_eq!(theirs.ike_algorithms, want_ike, "{:#?}", theirs.ike);
    assert_eq!(theirs.esp_algorithms, want_esp, "{:#?}", theirs.ike);
}

#[test]
fn azure_stack_hub_policy_cbc_ike() {
    negotiate(
        "ash-cbc",
        true,
        "aes256-sha384-ecp384",
        "aes256gcm16-ecp384",
        "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384",
        "AES_GCM_16-256",
    );
}

#[test]
fn azure_stack_hub_policy_gcm_ike_responder() {
    negotiate(
        "ash-gcm",
        false,
        "aes256gcm16-prfsha384-ecp384",
        "aes256gcm16-ecp384",
        "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384",
        "AES_GCM_16-256",
    );
}

#[test]
fn modp2048_aes128_sha256_with_esp_aes128_sha1() {
    negotiate(
        "modp",
        true,
        "aes128-sha256-modp2048",
        "aes128-sha1",
        "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048",
        "AES_CBC-128/HMAC_SHA1_96",
    );
}

#[test]
fn ecp256_gcm_with_esp_aes128gcm() {
    negotiate(
        "ecp256",
        false,
        "aes256gcm16-prfsha256-ecp256",
        "aes128gcm16",
        "AES_GCM_16-256/PRF_HMAC_SHA2_256/ECP_256",
        "AES_GCM_16-128",
    );
}

#[test]
fn curve25519_cbc_sha384_with_esp_sha256_pfs() {
    negotiate(
        "x25519",
        true,
        "aes256-sha384-curve25519",
        "aes256-sha256-curve25519",
        "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/CURVE_25519",
        "AES_CBC-256/HMAC_SHA2_256_128",
    );
}
