//! Issue 11 (2): strongSwan rekeys the Child SA and our answer is lost (nftables drops exactly
//! that datagram); strongSwan retransmits about 4 s later. Before the fix we moved outbound
//! traffic to the new SA as soon as we answered, although strongSwan did not have it: ~4 s of
//! one-way blackhole. Now outbound stays on the old SA until strongSwan deletes it (after it
//! got the retransmitted answer): no gap in either direction, and the stream is intact.
use hybridnet_tests::assert_spis_match;
use hybridnet_tests::lifecycle::rekey_with_lost_answer;
use std::time::Duration;
use testkit::swan::{SwanChildSa, SwanTimers};

#[test]
fn a_lost_child_rekey_answer_leaves_no_gap() {
    let r = rekey_with_lost_answer(
        "rekey-lost-child",
        SwanTimers {
            child_rekey: Some("8s".into()),
            child_life: Some("60s".into()),
            ..SwanTimers::default()
        },
        Duration::from_secs(9),
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
            g.longest_gap < Duration::from_secs(1),
            "{dir}: {g:?}\n{}\n{}",
            r.ours_text,
            r.swan_text
        );
    }
    let (before, after) = &r.ours;
    let spi = |c: &gateway::status::ConnectionReport| {
        c.child_sas
            .iter()
            .find(|c| c.active)
            .map(|c| c.spi_in.clone())
    };
    assert_ne!(spi(before), spi(after), "the Child SA was rekeyed");
    let theirs = SwanChildSa::find(&r.swan_sas).expect("strongSwan child");
    assert_spis_match(after, &theirs).unwrap();
    assert_eq!(after.state, "established");
}
