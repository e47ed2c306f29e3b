//! Issue 11 (2), the hard case: strongSwan's Child SA hard lifetime ends 2 s after its rekey
//! time, and our answer to its rekey is lost; its retransmission (about 4 s later) comes after
//! the old SA expired on its side. Traffic may pause, but never longer than the
//! retransmission interval in either direction, and the tunnel recovers by itself with the
//! stream intact.
use hybridnet_tests::assert_spis_match;
use hybridnet_tests::lifecycle::rekey_with_lost_answer;
use std::time::Duration;
use testkit::swan::{SwanChildSa, SwanTimers};

/// strongSwan's first retransmission timeout (`retransmit_timeout` 4 s).
const RETRANSMIT: Duration = Duration::from_secs(4);

#[test]
fn a_lost_rekey_answer_near_the_hard_lifetime_recovers_within_the_retransmission() {
    let r = rekey_with_lost_answer(
        "rekey-lost-hard",
        SwanTimers {
            child_rekey: Some("8s".into()),
            child_life: Some("10s".into()),
            ..SwanTimers::default()
        },
        Duration::from_secs(10),
    );
    eprintln!(
        "longest gap a→b {:?} (at {:?}), b→a {:?} (at {:?}); probes {}/{} and {}/{}; stream {} bytes",
        r.a_to_b.longest_gap,
        r.a_to_b.gap_at,
        r.b_to_a.longest_gap,
        r.b_to_a.gap_at,
        r.a_to_b.received,
        r.a_to_b.sent,
        r.b_to_a.received,
        r.b_to_a.sent,
        r.stream_bytes
    );
    for (dir, g) in [("a→b", &r.a_to_b), ("b→a", &r.b_to_a)] {
        assert!(
            g.longest_gap < RETRANSMIT,
            "{dir}: {g:?}\n{}\n{}",
            r.ours_text,
            r.swan_text
        );
    }
    let (_, after) = &r.ours;
    assert_eq!(after.state, "established");
    let theirs = SwanChildSa::find(&r.swan_sas).expect("strongSwan child");
    assert_spis_match(after, &theirs).unwrap();
}
