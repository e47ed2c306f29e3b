//! Issue 11 (2), the IKE SA: strongSwan rekeys the IKE SA and our answer is lost (nftables
//! drops exactly that datagram). Its retransmission about 4 s later is answered again from the
//! old IKE SA; both sides end on the same new IKE SA, the Child SA carries on, and no
//! direction of traffic has a gap.
use hybridnet_tests::assert_spis_match;
use hybridnet_tests::lifecycle::rekey_with_lost_answer;
use std::time::Duration;
use testkit::swan::{SwanChildSa, SwanTimers};

#[test]
fn a_lost_ike_rekey_answer_leaves_no_gap() {
    let r = rekey_with_lost_answer(
        "rekey-lost-ike",
        SwanTimers {
            ike_rekey: Some("8s".into()),
            ike_over: Some("60s".into()),
            ..SwanTimers::default()
        },
        Duration::from_secs(9),
    );
    eprintln!(
        "longest gap a→b {:?}, b→a {:?}; probes {}/{} and {}/{}; stream {} bytes",
        r.a_to_b.longest_gap,
        r.b_to_a.longest_gap,
        r.a_to_b.received,
        r.a_to_b.sent,
        r.b_to_a.received,
        r.b_to_a.sent,
        r.stream_bytes
    );
    for (dir, g) in [("a→b", &r.a_to_b), ("b→a", &r.b_to_a)] {
        assert!(
            g.longest_gap < Duration::from_secs(1),
            "{dir}: {g:?}\n{}\n{}",
            r.ours_text,
            r.swan_text
        );
    }
    let (before, after) = &r.ours;
    assert_ne!(
        (&before.ike_spi_i, &before.ike_spi_r),
        (&after.ike_spi_i, &after.ike_spi_r),
        "the IKE SA was rekeyed"
    );
    // strongSwan holds the same IKE SA, and only that one
    assert!(
        r.swan_sas
            .iter()
            .any(|s| s.initiator_spi == after.ike_spi_i && s.responder_spi == after.ike_spi_r),
        "{}\n{}",
        r.ours_text,
        r.swan_text
    );
    assert_eq!(
        r.swan_sas
            .iter()
            .filter(|s| s.state == "ESTABLISHED")
            .count(),
        1,
        "one IKE SA on strongSwan's side:\n{}",
        r.swan_text
    );
    let theirs = SwanChildSa::find(&r.swan_sas).expect("strongSwan child");
    assert_spis_match(after, &theirs).unwrap();
    assert_eq!(after.state, "established");
}
