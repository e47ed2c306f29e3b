//! strongSwan (kernel-libipsec) initiates to hybridnet: the same checks as the initiator
//! scenario with the roles swapped.
use hybridnet_tests::Interop;

#[test]
fn hybridnet_responder_with_strongswan_initiator() {
    let lab = Interop::start(
        "swan-resp",
        false,
        (
            &["aes256-sha256-modp2048", "aes256gcm16-prfsha384-ecp384"],
            &["aes256gcm16", "aes256-sha256"],
        ),
        ("aes256gcm16-prfsha384-ecp384", "aes256gcm16"),
        None,
    )
    .expect("lab");
    let out = lab.charon.initiate(20).unwrap_or_else(|e| {
        panic!(
            "strongSwan initiate failed: {e:#}\nour log:\n{}",
            lab.ours.log()
        )
    });
    assert!(out.contains("completed successfully"), "{out}");
    let summary = lab.check_tunnel().expect("tunnel checks");
    eprintln!("{summary}");
    let theirs = lab.wait_up().expect("tunnel").1;
    assert_eq!(
        theirs.ike_algorithms, "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384",
        "{:#?}",
        theirs.ike
    );
    assert_eq!(theirs.esp_algorithms, "AES_GCM_16-256", "{:#?}", theirs.ike);
}
