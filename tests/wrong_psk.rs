//! A wrong PSK ends with AUTHENTICATION_FAILED reported clearly on our side, whichever side
//! initiates, and neither PSK appears in our log or status.
use hybridnet_tests::{assert_no_secret, random_psk, Interop};
use std::time::Duration;

const IKE: &str = "aes256gcm16-prfsha384-ecp384";

#[test]
fn wrong_psk_hybridnet_initiates() {
    let theirs = random_psk();
    let lab = Interop::start(
        "psk-init",
        true,
        (&[IKE], &["aes256gcm16"]),
        (IKE, "aes256gcm16"),
        Some(&theirs),
    )
    .expect("lab");
    let err = lab
        .ours
        .wait_error("site-b", Duration::from_secs(20))
        .unwrap();
    eprintln!("our last_error: {err}");
    assert!(err.contains("AUTHENTICATION_FAILED"), "last_error: {err}");
    let c = lab.ours.connection("site-b").unwrap();
    assert_ne!(c.state, "established");
    assert!(c.child_sas.is_empty());
    assert!(lab.ours.status_text().contains("AUTHENTICATION_FAILED"));
    for s in [&lab.psk, &theirs] {
        assert_no_secret(&lab.ours.log(), s, "gateway log").unwrap();
        assert_no_secret(&lab.ours.status_text(), s, "gateway status").unwrap();
    }
    assert!(
        lab.charon
            .sas()
            .unwrap()
            .iter()
            .all(|s| s.children.iter().all(|c| c.state != "INSTALLED")),
        "{}",
        lab.charon.sas_text()
    );
}

#[test]
fn wrong_psk_strongswan_initiates() {
    let theirs = random_psk();
    let lab = Interop::start(
        "psk-resp",
        false,
        (&[IKE], &["aes256gcm16"]),
        (IKE, "aes256gcm16"),
        Some(&theirs),
    )
    .expect("lab");
    let r = lab.charon.initiate(10);
    assert!(r.is_err(), "strongSwan must not establish: {r:?}");
    let err = lab
        .ours
        .wait_error("site-b", Duration::from_secs(10))
        .unwrap();
    eprintln!("our last_error: {err}");
    assert!(err.contains("AUTHENTICATION_FAILED"), "last_error: {err}");
    for s in [&lab.psk, &theirs] {
        assert_no_secret(&lab.ours.log(), s, "gateway log").unwrap();
    }
}
