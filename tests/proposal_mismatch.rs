//! Proposals without a common choice end with NO_PROPOSAL_CHOSEN on our side, and the message
//! lists our proposals and, where the peer sent them, the peer's.
use hybridnet_tests::Interop;
use std::time::Duration;

const OURS: &str = "aes256gcm16-prfsha384-ecp384";
const THEIRS: &str = "aes128-sha1-modp2048";

#[test]
fn mismatch_when_strongswan_initiates_lists_both_sides() {
    let lab = Interop::start(
        "nopc-resp",
        false,
        (&[OURS], &["aes256gcm16"]),
        (THEIRS, "aes128-sha1"),
        None,
    )
    .expect("lab");
    assert!(lab.charon.initiate(10).is_err(), "must not establish");
    let err = lab
        .ours
        .wait_error("site-b", Duration::from_secs(10))
        .unwrap();
    eprintln!("our last_error: {err}");
    assert!(err.contains("NO_PROPOSAL_CHOSEN"), "{err}");
    assert!(err.contains(OURS), "our proposal missing from: {err}");
    assert!(err.contains(THEIRS), "their proposal missing from: {err}");
    assert!(
        lab.charon.log().contains("NO_PROPOSAL_CHOSEN"),
        "strongSwan should see NO_PROPOSAL_CHOSEN"
    );
}

#[test]
fn mismatch_when_hybridnet_initiates_reports_no_proposal_chosen() {
    let lab = Interop::start(
        "nopc-init",
        true,
        (&[OURS], &["aes256gcm16"]),
        (THEIRS, "aes128-sha1"),
        None,
    )
    .expect("lab");
    let err = lab
        .ours
        .wait_error("site-b", Duration::from_secs(15))
        .unwrap();
    eprintln!("our last_error: {err}");
    assert!(err.contains("NO_PROPOSAL_CHOSEN"), "{err}");
    assert!(err.contains(OURS), "our proposal missing from: {err}");
    let c = lab.ours.connection("site-b").unwrap();
    assert!(c.child_sas.is_empty() && c.state != "established");
}
