//! hybridnet initiates to strongSwan (kernel-libipsec): the tunnel comes up with the expected
//! algorithms, carries ping and a verified TCP transfer both ways, SPIs match on both sides,
//! our counters grow, and the PSK never shows in our log or status.
use hybridnet_tests::Interop;
use std::time::Duration;
use testkit::process::wait_for;

#[test]
fn hybridnet_initiator_with_strongswan_responder() {
    let mut lab = Interop::start(
        "swan-init",
        true,
        (&["aes256gcm16-prfsha384-ecp384"], &["aes256gcm16"]),
        ("aes256gcm16-prfsha384-ecp384", "aes256gcm16"),
        None,
    )
    .expect("lab");
    let summary = lab.check_tunnel().expect("tunnel checks");
    eprintln!("{summary}");
    let theirs = lab.wait_up().expect("tunnel").1;
    assert_eq!(
        theirs.ike_algorithms, "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384",
        "strongSwan IKE SA algorithms:\n{:#?}",
        theirs.ike
    );
    assert_eq!(
        theirs.esp_algorithms, "AES_GCM_16-256",
        "strongSwan CHILD_SA algorithms:\n{:#?}",
        theirs.ike
    );
    let conn = lab.ours.connection("site-b").unwrap();
    assert_eq!(conn.state, "established");
    assert!(
        conn.esp_algorithms
            .as_deref()
            .unwrap_or("")
            .contains("AES_GCM_16-256"),
        "{conn:?}"
    );
    assert!(
        lab.charon.log().contains("IKE_SA site[1] established"),
        "strongSwan did not log the IKE SA"
    );

    // SIGTERM: we send DELETE, strongSwan drops the SAs, we exit 0 and leave no route behind
    assert_eq!(
        lab.ours.stop(),
        Some(0),
        "gateway exit status; log:\n{}",
        lab.ours.log()
    );
    wait_for(
        Duration::from_secs(5),
        "strongSwan to delete the SAs after our DELETE",
        || {
            lab.charon
                .sas()
                .ok()
                .filter(|s| s.iter().all(|s| s.name != "site"))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.charon.sas_text()));
    assert!(
        lab.charon.log().contains("received DELETE for IKE_SA site"),
        "strongSwan log lacks our DELETE"
    );
    let routes =
        String::from_utf8_lossy(&lab.net.gw_a.exec("ip", &["route"]).unwrap().stdout).into_owned();
    assert!(
        !routes.contains("10.2.0.0/16"),
        "route left behind: {routes}"
    );
}
