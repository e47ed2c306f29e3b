//! Three gateways' speakers chained A – B – C over simulated TCP, driven only through the
//! [`Speaker`] API as the gateway runtime drives it: outbound connections are asked for with
//! `Output::Connect` and accepted at the other end, both sides try at once (collision), A
//! learns C's prefix through B, a tunnel going down withdraws at once, an unknown address is
//! refused with the reason.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgp::{ConnId, Output, PeerConfig, Speaker, SpeakerConfig, State};
use ipnet::Ipv4Net;

struct Net {
    now: Instant,
    nodes: Vec<Speaker>,
    /// (node, conn) → (node, conn) of the other end, once connected.
    wires: BTreeMap<(usize, ConnId), (usize, ConnId)>,
}

fn addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, i as u8 + 1)
}

fn node_of(a: Ipv4Addr) -> usize {
    a.octets()[3] as usize - 1
}

impl Net {
    fn new(asns: &[u32]) -> Net {
        let nodes = asns
            .iter()
            .enumerate()
            .map(|(i, asn)| {
                Speaker::new(SpeakerConfig {
                    local_as: *asn,
                    bgp_id: addr(i),
                    hold_time: 9,
                    connect_retry: Duration::from_secs(5),
                    originate: vec![format!("10.{}.0.0/16", i + 1).parse().unwrap()],
                })
            })
            .collect();
        Net {
            now: Instant::now(),
            nodes,
            wires: BTreeMap::new(),
        }
    }

    fn peer(&mut self, a: usize, b: usize, asn_of_b: u32) {
        let mut peers: Vec<PeerConfig> = self.nodes[a]
            .peer_status(self.now)
            .iter()
            .map(|p| PeerConfig {
                address: p.address,
                asn: p.asn,
            })
            .collect();
        peers.push(PeerConfig {
            address: addr(b),
            asn: asn_of_b,
        });
        self.nodes[a].set_peers(&peers, self.now);
    }

    /// Carries every output until the network is quiet. A connection request reaches the
    /// other end one round later (SYNs of both ends can cross), and is dropped if its
    /// initiator gave up on it meanwhile.
    fn settle(&mut self) {
        let mut in_flight: Vec<(usize, ConnId, usize)> = Vec::new();
        for _ in 0..1000 {
            let mut any = !in_flight.is_empty();
            let arriving = std::mem::take(&mut in_flight);
            let mut abandoned = Vec::new();
            for i in 0..self.nodes.len() {
                while let Some(o) = self.nodes[i].poll_output() {
                    any = true;
                    match o {
                        Output::Connect { conn, peer } => in_flight.push((i, conn, node_of(peer))),
                        Output::Transmit { conn, bytes } => {
                            if let Some(&(j, theirs)) = self.wires.get(&(i, conn)) {
                                self.nodes[j].handle_bytes(theirs, &bytes, self.now);
                            }
                        }
                        Output::Close { conn } => {
                            abandoned.push((i, conn));
                            if let Some((j, theirs)) = self.wires.remove(&(i, conn)) {
                                self.wires.remove(&(j, theirs));
                                self.nodes[j].failed(theirs, "closed by the peer", self.now);
                            }
                        }
                    }
                }
            }
            for (i, conn, j) in arriving {
                if abandoned.contains(&(i, conn)) {
                    continue;
                }
                match self.nodes[j].accept(addr(i), self.now) {
                    Some(theirs) => {
                        self.wires.insert((i, conn), (j, theirs));
                        self.wires.insert((j, theirs), (i, conn));
                        self.nodes[i].connected(conn, self.now);
                    }
                    None => self.nodes[i].failed(conn, "connection refused", self.now),
                }
            }
            if !any {
                return;
            }
        }
        panic!("the network did not settle");
    }

    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while self.now < end {
            self.now += Duration::from_millis(250);
            for n in &mut self.nodes {
                n.handle_timeout(self.now);
            }
            self.settle();
        }
    }

    fn state(&self, a: usize, b: usize) -> State {
        self.nodes[a]
            .peer_status(self.now)
            .into_iter()
            .find(|p| p.address == addr(b))
            .unwrap()
            .state
    }

    fn forwarding(&self, a: usize) -> Vec<(Ipv4Net, Ipv4Addr)> {
        self.nodes[a].forwarding()
    }
}

fn chain() -> Net {
    let mut n = Net::new(&[65001, 65002, 65003]);
    n.peer(0, 1, 65002);
    n.peer(1, 0, 65001);
    n.peer(1, 2, 65003);
    n.peer(2, 1, 65002);
    let now = n.now;
    // every end reachable at once: both sides of each pair connect at the same moment
    n.nodes[0].set_reachable(addr(1), true, now);
    n.nodes[1].set_reachable(addr(0), true, now);
    n.nodes[1].set_reachable(addr(2), true, now);
    n.nodes[2].set_reachable(addr(1), true, now);
    n.settle();
    n.advance(Duration::from_secs(1));
    n
}

#[test]
fn simultaneous_connects_end_in_one_established_session_per_pair() {
    let n = chain();
    assert_eq!(n.state(0, 1), State::Established);
    assert_eq!(n.state(1, 0), State::Established);
    assert_eq!(n.state(1, 2), State::Established);
    assert_eq!(n.state(2, 1), State::Established);
    assert_eq!(
        n.wires.len(),
        4,
        "one TCP connection per pair: {:?}",
        n.wires
    );
}

#[test]
fn a_learns_c_through_b_with_b_prepended() {
    let n = chain();
    let c_prefix: Ipv4Net = "10.3.0.0/16".parse().unwrap();
    assert!(
        n.forwarding(0).contains(&(c_prefix, addr(1))),
        "{:?}",
        n.forwarding(0)
    );
    let route = n.nodes[0]
        .known_routes()
        .into_iter()
        .find(|r| r.prefix == c_prefix)
        .unwrap();
    assert_eq!(route.as_path, vec![65002, 65003]);
    assert_eq!(route.next_hop, Some(addr(1)));
    let to_a: Vec<Ipv4Net> = n.nodes[1]
        .advertised(addr(0))
        .iter()
        .map(|r| r.prefix)
        .collect();
    assert!(to_a.contains(&c_prefix) && to_a.contains(&"10.2.0.0/16".parse().unwrap()));
    assert!(
        !to_a.contains(&"10.1.0.0/16".parse().unwrap()),
        "A's own prefix is not sent back to A: {to_a:?}"
    );
}

#[test]
fn a_tunnel_going_down_withdraws_at_once_and_coming_back_restores() {
    let mut n = chain();
    let c_prefix: Ipv4Net = "10.3.0.0/16".parse().unwrap();
    let now = n.now;
    n.nodes[1].set_reachable(addr(2), false, now);
    n.settle();
    assert!(
        !n.forwarding(0).iter().any(|(p, _)| *p == c_prefix),
        "withdrawn end to end without waiting for a hold timer: {:?}",
        n.forwarding(0)
    );
    assert_eq!(
        n.nodes[1].peer_status(n.now)[1].last_error.as_deref(),
        Some("the tunnel to the peer is down")
    );
    let now = n.now;
    n.nodes[1].set_reachable(addr(2), true, now);
    n.settle();
    n.advance(Duration::from_secs(6));
    assert!(n.forwarding(0).contains(&(c_prefix, addr(1))));
    assert_eq!(n.nodes[1].peer_status(n.now)[1].flaps, 1);
}

#[test]
fn a_silent_peer_is_dropped_at_the_hold_time() {
    let mut n = chain();
    // C vanishes without closing anything: its node stops taking part
    let c = n.nodes.pop().unwrap();
    n.wires.retain(|(i, _), (j, _)| *i != 2 && *j != 2);
    // C's last KEEPALIVE came at most 3 s (a third of the hold time) before it vanished
    n.advance(Duration::from_secs(5));
    assert_eq!(n.state(1, 2), State::Established, "within the hold time");
    n.advance(Duration::from_secs(5));
    assert_ne!(n.state(1, 2), State::Established);
    let why = n.nodes[1].peer_status(n.now)[1].last_error.clone().unwrap();
    assert!(why.contains("hold time of 9 s"), "{why}");
    assert!(!n
        .forwarding(0)
        .iter()
        .any(|(p, _)| *p == "10.3.0.0/16".parse::<Ipv4Net>().unwrap()));
    drop(c);
}

#[test]
fn connections_from_unknown_addresses_are_refused_with_the_reason() {
    let mut n = chain();
    let now = n.now;
    assert_eq!(n.nodes[0].accept(Ipv4Addr::new(10, 9, 9, 9), now), None);
    let why = n.nodes[0].last_refusal().unwrap();
    assert!(
        why.contains("10.9.9.9")
            && why.contains("not a configured BGP peer")
            && why.contains("10.0.0.2"),
        "{why}"
    );
    assert_eq!(
        n.state(0, 1),
        State::Established,
        "the real session is untouched"
    );
}

#[test]
fn a_wrong_asn_is_reported_with_both_numbers() {
    let mut n = Net::new(&[65001, 65002]);
    n.peer(0, 1, 65099);
    n.peer(1, 0, 65001);
    let now = n.now;
    n.nodes[0].set_reachable(addr(1), true, now);
    n.nodes[1].set_reachable(addr(0), true, now);
    n.settle();
    assert_ne!(n.state(0, 1), State::Established);
    let why = n.nodes[0].peer_status(n.now)[0].last_error.clone().unwrap();
    assert!(why.contains("65002") && why.contains("65099"), "{why}");
    let theirs = n.nodes[1].peer_status(n.now)[0].last_error.clone().unwrap();
    assert!(theirs.contains("Bad Peer AS"), "{theirs}");
}

#[test]
fn a_peer_that_never_answers_is_reported_with_its_address() {
    let mut n = Net::new(&[65001, 65002]);
    // A expects its peer at 10.0.0.9, where nothing listens: the SYN is never answered
    let now = n.now;
    n.nodes[0].set_peers(
        &[PeerConfig {
            address: Ipv4Addr::new(10, 0, 0, 9),
            asn: 65002,
        }],
        now,
    );
    n.nodes[0].set_reachable(Ipv4Addr::new(10, 0, 0, 9), true, now);
    // outputs are drained but the Connect goes nowhere
    while n.nodes[0].poll_output().is_some() {}
    n.now += Duration::from_secs(6);
    let now = n.now;
    n.nodes[0].handle_timeout(now);
    let st = &n.nodes[0].peer_status(n.now)[0];
    assert_eq!(st.state, State::Connect);
    let why = st.last_error.clone().unwrap();
    assert!(why.contains("no answer from 10.0.0.9 port 179"), "{why}");
}
