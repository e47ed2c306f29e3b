//! Three speakers in a line, A (AS 65001) – B (AS 65002) – C (AS 65003): each learns the
//! others' prefixes through B with B's AS prepended, B never sends a route back where it came
//! from, and when a session goes down its routes are withdrawn end to end.

mod common;

use std::time::Duration;

use bgp::State;
use common::*;

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

fn line() -> Net {
    let mut n = Net::new(&[65001, 65002, 65003]);
    n.connect(A, B, |_, _| {});
    n.connect(B, C, |_, _| {});
    n.start_all();
    assert_eq!(n.state(A, B), State::Established);
    assert_eq!(n.state(C, B), State::Established);
    n.originate(A, "10.1.0.0/16");
    n.originate(C, "10.3.0.0/16");
    n
}

#[test]
fn c_learns_a_prefix_through_b() {
    let n = line();
    assert_eq!(n.path(C, "10.1.0.0/16"), Some(vec![65002, 65001]));
    assert_eq!(n.path(A, "10.3.0.0/16"), Some(vec![65002, 65003]));
    assert_eq!(n.path(B, "10.1.0.0/16"), Some(vec![65001]));
    let route = n.nodes[C].rib.best(&net("10.1.0.0/16")).unwrap();
    assert_eq!(
        route.attributes.next_hop,
        Some(addr(B)),
        "NEXT_HOP self at B"
    );
}

#[test]
fn b_does_not_send_a_route_back_to_its_origin() {
    let n = line();
    let to_a: Vec<_> = n.nodes[B]
        .rib
        .adj_rib_out(addr(A))
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(to_a, vec![net("10.3.0.0/16")]);
    let to_c: Vec<_> = n.nodes[B]
        .rib
        .adj_rib_out(addr(C))
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(to_c, vec![net("10.1.0.0/16")]);
}

#[test]
fn a_loop_is_dropped_on_receive() {
    let mut n = Net::new(&[65001, 65002, 65003]);
    n.connect(A, B, |_, _| {});
    n.connect(B, C, |_, _| {});
    n.connect(C, A, |_, _| {});
    n.start_all();
    n.originate(A, "10.1.0.0/16");
    assert_eq!(
        n.path(C, "10.1.0.0/16"),
        Some(vec![65001]),
        "direct path preferred"
    );
    assert_eq!(n.path(B, "10.1.0.0/16"), Some(vec![65001]));
    // A never accepts its own prefix back, through B or through C.
    let back =
        n.nodes[A].rib.adj_rib_in(addr(B)).count() + n.nodes[A].rib.adj_rib_in(addr(C)).count();
    assert_eq!(back, 0);
}

#[test]
fn a_session_going_down_withdraws_its_routes_downstream() {
    let mut n = line();
    let now = n.now;
    n.link_mut(A, B).session.stop(now);
    n.drive();
    assert_eq!(n.path(B, "10.1.0.0/16"), None);
    assert_eq!(n.path(C, "10.1.0.0/16"), None, "withdrawn at C too");
    assert_eq!(n.path(C, "10.3.0.0/16"), Some(vec![]), "C keeps its own");

    let now = n.now;
    n.link_mut(A, B).session.start(now);
    n.advance(Duration::from_secs(6));
    assert_eq!(
        n.path(C, "10.1.0.0/16"),
        Some(vec![65002, 65001]),
        "back after restart"
    );
}

#[test]
fn a_silent_link_is_withdrawn_after_the_hold_time() {
    let mut n = line();
    n.cut.insert((A, B));
    n.cut.insert((B, A));
    n.advance(Duration::from_secs(10));
    assert_eq!(n.path(C, "10.1.0.0/16"), None);
    assert_eq!(n.path(A, "10.3.0.0/16"), None);
}

#[test]
fn a_redundant_path_takes_over_when_the_best_goes_down() {
    let mut n = Net::new(&[65001, 65002, 65003]);
    n.connect(A, B, |_, _| {});
    n.connect(B, C, |_, _| {});
    n.connect(C, A, |_, _| {});
    n.start_all();
    n.originate(A, "10.1.0.0/16");
    assert_eq!(n.path(C, "10.1.0.0/16"), Some(vec![65001]));
    let now = n.now;
    n.link_mut(C, A).session.stop(now);
    n.drive();
    assert_eq!(n.path(C, "10.1.0.0/16"), Some(vec![65002, 65001]));
}
