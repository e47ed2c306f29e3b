//! Two speakers wired to each other come up to Established, exchange the prefixes they
//! originate, and keep the session alive with KEEPALIVEs; the TCP stream may split or merge
//! messages anywhere.

mod common;

use std::time::Duration;

use bgp::{Event, State};
use common::*;

fn pair(delivery: Delivery) -> Net {
    let mut n = Net::new(&[65001, 65002]);
    n.delivery = delivery;
    n.connect(0, 1, |_, b| b.hold_time = 30);
    n.start_all();
    n
}

#[test]
fn sessions_come_up_with_the_smaller_hold_time() {
    let n = pair(Delivery::Whole);
    assert_eq!(n.state(0, 1), State::Established);
    assert_eq!(n.state(1, 0), State::Established);
    assert!(n.link(0, 1).events.contains(&Event::Established {
        peer_as: 65002,
        peer_id: addr(1),
        hold_time: Duration::from_secs(9),
    }));
    assert_eq!(n.link(1, 0).session.hold_time(), Duration::from_secs(9));
    assert_eq!(n.link(0, 1).session.peer_open().unwrap().asn(), 65002);
}

#[test]
fn originated_prefixes_are_exchanged() {
    for delivery in [Delivery::Whole, Delivery::Bytewise, Delivery::Merged] {
        let mut n = pair(delivery);
        n.originate(0, "10.1.0.0/16");
        n.originate(1, "10.2.0.0/16");
        assert_eq!(n.path(0, "10.2.0.0/16"), Some(vec![65002]), "{delivery:?}");
        assert_eq!(n.path(1, "10.1.0.0/16"), Some(vec![65001]), "{delivery:?}");
        let route = n.nodes[1].rib.best(&net("10.1.0.0/16")).unwrap();
        assert_eq!(route.attributes.next_hop, Some(addr(0)));
        assert_eq!(route.attributes.local_pref, None, "no LOCAL_PREF over eBGP");
    }
}

#[test]
fn routes_originated_before_the_session_are_sent_when_it_comes_up() {
    let mut n = Net::new(&[65001, 65002]);
    n.connect(0, 1, |_, _| {});
    n.originate(0, "10.1.0.0/16");
    n.start_all();
    assert_eq!(n.path(1, "10.1.0.0/16"), Some(vec![65001]));
}

#[test]
fn keepalives_hold_the_session_for_minutes() {
    let mut n = pair(Delivery::Whole);
    n.advance(Duration::from_secs(300));
    assert_eq!(n.state(0, 1), State::Established);
    assert_eq!(n.state(1, 0), State::Established);
    assert!(n.downs(0, 1).is_empty() && n.downs(1, 0).is_empty());
}

#[test]
fn internal_peers_exchange_routes_with_local_pref() {
    let mut n = Net::new(&[65001, 65001]);
    n.connect(0, 1, |_, _| {});
    n.start_all();
    assert_eq!(n.state(0, 1), State::Established);
    n.originate(0, "10.1.0.0/16");
    let route = n.nodes[1].rib.best(&net("10.1.0.0/16")).unwrap();
    assert_eq!(route.attributes.local_pref, Some(100));
    assert_eq!(
        n.path(1, "10.1.0.0/16"),
        Some(vec![]),
        "no prepending inside the AS"
    );
}

#[test]
fn four_octet_asns_work_across_as_trans() {
    let mut n = Net::new(&[4_200_000_001, 65002]);
    n.connect(0, 1, |_, _| {});
    n.start_all();
    assert_eq!(n.state(1, 0), State::Established);
    n.originate(0, "10.1.0.0/16");
    assert_eq!(n.path(1, "10.1.0.0/16"), Some(vec![4_200_000_001]));
}

#[test]
fn a_stopped_session_tells_the_peer() {
    let mut n = pair(Delivery::Whole);
    let now = n.now;
    n.link_mut(0, 1).session.stop(now);
    n.drive();
    assert_eq!(n.downs(0, 1)[0].to_string(), "stopped");
    assert_eq!(
        n.downs(1, 0)[0].to_string(),
        "peer sent NOTIFICATION Cease / Administrative Shutdown"
    );
    n.advance(Duration::from_secs(60));
    assert_eq!(n.state(0, 1), State::Idle, "a stopped session stays down");
}

#[test]
fn route_refresh_resends_the_table() {
    let mut n = pair(Delivery::Whole);
    n.originate(0, "10.1.0.0/16");
    n.originate(0, "10.5.0.0/16");
    let before = n.link(1, 0).events.len();
    assert!(n.link_mut(1, 0).session.request_route_refresh());
    n.drive();
    let resent: Vec<_> = n.link(1, 0).events[before..]
        .iter()
        .filter_map(|e| match e {
            Event::RoutesReceived { prefixes, .. } => Some(prefixes.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(resent, vec![vec![net("10.1.0.0/16"), net("10.5.0.0/16")]]);
    assert_eq!(n.path(1, "10.5.0.0/16"), Some(vec![65001]));
}
