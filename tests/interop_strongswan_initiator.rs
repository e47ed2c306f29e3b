//! hybridnet initiates to strongSwan (kernel-libipsec): the tunnel comes up with the expected
//! algorithms, carries ping and a verified TCP transfer both ways, SPIs match on both sides,
//! our counters grow, and the PSK never shows in our log or status.
use hybridnet_tests::Interop;

#[test]
fn hybridnet_initiator_with_strongswan_responder() {
    let lab = Interop::start(
        "swan-init",
        true,
        (&["aes256gcm16-prfsha384-ecp384"], &["aes256gcm16"]),
        ("aes256gcm16-prfsha384-ecp384", "aes256gcm16"),
        None,
    )
    .expect("lab");
    let summary = lab.check_tunnel().expect("tunnel checks");
    eprintln!("{summary}");
    let sas = lab.charon.list_sas();
    assert!(sas.contains("AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384"), "strongSwan IKE SA algorithms:\n{sas}");
    assert!(sas.contains("ESP:AES_GCM_16-256"), "strongSwan CHILD_SA algorithms:\n{sas}");
    let conn = lab.ours.connection("site-b").unwrap();
    assert_eq!(conn.state, "established");
    assert!(conn.esp_algorithms.as_deref().unwrap_or("").contains("AES_GCM_16-256"), "{conn:?}");
    assert!(lab.charon.log().contains("IKE_SA site[1] established"), "strongSwan did not log the IKE SA");
}
