//! An eBGP peer announcing an AS other than the configured one: OPEN Message Error / Bad Peer
//! AS goes out, and both sides report it in words.

mod common;

use std::time::Duration;

use bgp::codec::subcode;
use bgp::{DownReason, ErrorCode, State};
use common::*;

#[test]
fn wrong_peer_as_is_refused_with_the_reason() {
    let mut n = Net::new(&[65001, 65002]);
    n.connect(0, 1, |a, _| a.peer_as = 65099);
    n.start_all();
    assert_ne!(n.state(0, 1), State::Established);
    let downs = n.downs(0, 1);
    let DownReason::ErrorSent { notification, .. } = &downs[0] else {
        panic!("expected a NOTIFICATION sent, got {:?}", downs[0]);
    };
    assert_eq!(notification.code, ErrorCode::OpenMessageError);
    assert_eq!(notification.subcode, subcode::BAD_PEER_AS);
    assert_eq!(
        downs[0].to_string(),
        "peer announced AS 65002 in its OPEN, but AS 65099 is configured for it \
         (sent NOTIFICATION OPEN Message Error / Bad Peer AS)"
    );
    assert_eq!(
        n.downs(1, 0)[0].to_string(),
        "peer sent NOTIFICATION OPEN Message Error / Bad Peer AS"
    );
}

#[test]
fn the_refusal_repeats_on_every_attempt_and_never_establishes() {
    let mut n = Net::new(&[65001, 65002]);
    n.connect(0, 1, |a, _| a.peer_as = 65099);
    n.start_all();
    n.advance(Duration::from_secs(30));
    assert!(n.downs(0, 1).len() >= 3, "{:?}", n.downs(0, 1));
    assert!(!n
        .link(0, 1)
        .events
        .iter()
        .any(|e| matches!(e, bgp::Event::Established { .. })));
}
