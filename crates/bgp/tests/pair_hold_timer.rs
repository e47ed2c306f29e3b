//! A peer that falls silent: the hold timer expires, a NOTIFICATION Hold Timer Expired goes
//! out, the session reports why and its routes are withdrawn; it comes back once the peer
//! talks again. A hold time of zero means no timer at all.

mod common;

use std::time::Duration;

use bgp::{DownReason, ErrorCode, State};
use common::*;

#[test]
fn silent_peer_expires_the_hold_timer() {
    let mut n = Net::new(&[65001, 65002]);
    n.connect(0, 1, |_, _| {});
    n.start_all();
    n.originate(1, "10.2.0.0/16");
    assert!(n.nodes[0].rib.best(&net("10.2.0.0/16")).is_some());

    n.cut.insert((1, 0));
    n.advance(Duration::from_secs(8));
    assert_eq!(n.state(0, 1), State::Established, "within the hold time");
    n.advance(Duration::from_secs(2));
    let downs = n.downs(0, 1);
    assert_eq!(downs.len(), 1);
    let DownReason::ErrorSent { notification, .. } = &downs[0] else {
        panic!("expected a NOTIFICATION sent, got {:?}", downs[0]);
    };
    assert_eq!(notification.code, ErrorCode::HoldTimerExpired);
    assert_eq!(
        downs[0].to_string(),
        "no message from the peer within the hold time of 9 s (sent NOTIFICATION Hold Timer Expired / Unspecific)"
    );
    assert!(
        n.nodes[0].rib.best(&net("10.2.0.0/16")).is_none(),
        "routes withdrawn"
    );
    assert_eq!(
        n.downs(1, 0)[0].to_string(),
        "peer sent NOTIFICATION Hold Timer Expired / Unspecific",
        "the peer still hears us"
    );

    n.cut.clear();
    n.advance(Duration::from_secs(6));
    assert_eq!(n.state(0, 1), State::Established, "automatic restart");
    assert!(n.nodes[0].rib.best(&net("10.2.0.0/16")).is_some());
}

#[test]
fn zero_hold_time_never_expires() {
    let mut n = Net::new(&[65001, 65002]);
    n.connect(0, 1, |a, _| a.hold_time = 0);
    n.start_all();
    assert_eq!(n.link(1, 0).session.hold_time(), Duration::ZERO);
    n.cut.insert((0, 1));
    n.cut.insert((1, 0));
    n.advance(Duration::from_secs(3600));
    assert_eq!(n.state(0, 1), State::Established);
    assert_eq!(n.state(1, 0), State::Established);
}

#[test]
fn unreachable_peer_is_retried_on_the_connect_retry_timer() {
    let mut n = Net::new(&[65001, 65002]);
    n.connect(0, 1, |_, _| {});
    let now = n.now;
    n.link_mut(0, 1).session.start(now);
    n.drive();
    assert_eq!(n.state(0, 1), State::Active, "connection refused");
    n.advance(Duration::from_secs(12));
    let attempts = n
        .link(0, 1)
        .events
        .iter()
        .filter(|e| **e == bgp::Event::Connect)
        .count();
    assert_eq!(attempts, 3, "at 0, 5 and 10 s");
    let now = n.now;
    n.link_mut(1, 0).session.start(now);
    n.advance(Duration::from_secs(5));
    assert_eq!(n.state(0, 1), State::Established);
}
