//! Best-path selection (RFC 4271 §9.1.2.2) and the UPDATEs the RIB computes per peer, on a
//! speaker in AS 65000 fed routes directly.

use std::net::Ipv4Addr;

use bgp::{
    AsPath, AsSegment, Message, Origin, PathAttributes, PeerInfo, RawAttribute, Rib, RouteSource,
    Update,
};
use ipnet::Ipv4Net;

const LOCAL_AS: u32 = 65000;
const ME: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

fn prefix() -> Ipv4Net {
    "10.9.0.0/16".parse().unwrap()
}

fn peer(n: u8, asn: u32) -> PeerInfo {
    PeerInfo {
        address: Ipv4Addr::new(192, 0, 2, n),
        asn,
        bgp_id: Ipv4Addr::new(10, 0, 0, n),
        local_address: ME,
    }
}

fn attrs(path: &[u32]) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(path.to_vec())),
        next_hop: Some(Ipv4Addr::new(198, 51, 100, 1)),
        ..PathAttributes::default()
    }
}

/// A RIB with the given peers up, each announcing the prefix with its attributes.
fn rib_with(routes: &[(PeerInfo, PathAttributes)]) -> Rib {
    let mut rib = Rib::new(LOCAL_AS);
    for (info, _) in routes {
        rib.peer_up(info.clone());
    }
    for (info, a) in routes {
        rib.receive(info.address, &[prefix()], a);
    }
    rib
}

/// Address of the peer whose route is best.
fn winner(rib: &Rib) -> Ipv4Addr {
    match &rib.best(&prefix()).expect("a best route").source {
        RouteSource::Peer(p) => p.address,
        RouteSource::Local => ME,
    }
}

#[test]
fn highest_local_pref_wins_over_a_shorter_path() {
    let mut long = attrs(&[65010, 65011, 65012]);
    long.local_pref = Some(200);
    let mut short = attrs(&[65010]);
    short.local_pref = Some(100);
    let rib = rib_with(&[(peer(1, LOCAL_AS), short), (peer(2, LOCAL_AS), long)]);
    assert_eq!(winner(&rib), peer(2, LOCAL_AS).address);
}

#[test]
fn local_pref_from_an_external_peer_is_ignored() {
    let mut claimed = attrs(&[65001, 65010, 65011]);
    claimed.local_pref = Some(1000);
    let rib = rib_with(&[(peer(1, 65001), claimed), (peer(2, 65002), attrs(&[65002]))]);
    assert_eq!(winner(&rib), peer(2, 65002).address);
}

#[test]
fn shortest_as_path_wins_and_a_set_counts_once() {
    let rib = rib_with(&[
        (peer(1, 65001), attrs(&[65001, 65010])),
        (peer(2, 65002), attrs(&[65002])),
    ]);
    assert_eq!(winner(&rib), peer(2, 65002).address);

    let mut with_set = attrs(&[]);
    with_set.as_path = Some(AsPath {
        segments: vec![
            AsSegment::Sequence(vec![65001]),
            AsSegment::Set(vec![1, 2, 3, 4]),
        ],
    });
    let rib = rib_with(&[
        (peer(1, 65001), with_set),
        (peer(2, 65002), attrs(&[65002, 7, 8])),
    ]);
    assert_eq!(winner(&rib), peer(1, 65001).address);
}

#[test]
fn lowest_origin_wins() {
    let mut incomplete = attrs(&[65001]);
    incomplete.origin = Some(Origin::Incomplete);
    let mut egp = attrs(&[65002]);
    egp.origin = Some(Origin::Egp);
    let rib = rib_with(&[(peer(1, 65001), incomplete), (peer(2, 65002), egp)]);
    assert_eq!(winner(&rib), peer(2, 65002).address);
}

#[test]
fn lowest_med_wins_among_routes_from_the_same_neighbouring_as() {
    let mut high = attrs(&[65001]);
    high.med = Some(50);
    let mut low = attrs(&[65001]);
    low.med = Some(10);
    let rib = rib_with(&[(peer(1, 65001), high), (peer(2, 65001), low)]);
    assert_eq!(winner(&rib), peer(2, 65001).address);
}

#[test]
fn med_is_not_compared_across_neighbouring_ases() {
    let mut low = attrs(&[65002]);
    low.med = Some(10);
    let mut high = attrs(&[65001]);
    high.med = Some(50);
    // Peer 1 has the lower BGP identifier: with MEDs incomparable, it wins.
    let rib = rib_with(&[(peer(1, 65001), high), (peer(2, 65002), low)]);
    assert_eq!(winner(&rib), peer(1, 65001).address);
}

#[test]
fn external_wins_over_internal() {
    let rib = rib_with(&[
        (peer(1, LOCAL_AS), attrs(&[65005])),
        (peer(2, 65005), attrs(&[65005])),
    ]);
    assert_eq!(winner(&rib), peer(2, 65005).address);
}

#[test]
fn lowest_bgp_identifier_then_lowest_address_break_ties() {
    let mut a = peer(3, 65001);
    a.bgp_id = Ipv4Addr::new(10, 0, 0, 9);
    let mut b = peer(4, 65002);
    b.bgp_id = Ipv4Addr::new(10, 0, 0, 8);
    let rib = rib_with(&[(a.clone(), attrs(&[65001])), (b.clone(), attrs(&[65002]))]);
    assert_eq!(winner(&rib), b.address);

    b.bgp_id = a.bgp_id;
    let rib = rib_with(&[(b.clone(), attrs(&[65002])), (a.clone(), attrs(&[65001]))]);
    assert_eq!(
        winner(&rib),
        a.address,
        "same identifier: lower peer address"
    );
}

#[test]
fn locally_originated_routes_win() {
    let mut rib = rib_with(&[(peer(1, 65001), attrs(&[65001]))]);
    rib.originate(prefix());
    assert_eq!(rib.best(&prefix()).unwrap().source, RouteSource::Local);
    rib.stop_originating(prefix());
    assert_eq!(winner(&rib), peer(1, 65001).address);
}

#[test]
fn a_path_through_our_own_as_is_dropped_and_replaces_the_old_route() {
    let mut rib = rib_with(&[(peer(1, 65001), attrs(&[65001]))]);
    rib.receive(
        peer(1, 65001).address,
        &[prefix()],
        &attrs(&[65001, LOCAL_AS]),
    );
    assert!(rib.best(&prefix()).is_none());
    assert_eq!(rib.adj_rib_in(peer(1, 65001).address).count(), 0);
}

#[test]
fn the_next_best_takes_over_and_peers_are_told() {
    let mut rib = rib_with(&[
        (peer(1, 65001), attrs(&[65001])),
        (peer(2, 65002), attrs(&[65002, 65010])),
        (peer(3, 65003), attrs(&[65003, 65011, 65012])),
    ]);
    let out = rib.withdraw(peer(1, 65001).address, &[prefix()]);
    assert_eq!(winner(&rib), peer(2, 65002).address);
    let to_3: Vec<&Update> = out
        .iter()
        .filter(|(a, _)| *a == peer(3, 65003).address)
        .map(|(_, u)| u)
        .collect();
    assert_eq!(to_3.len(), 1);
    assert_eq!(
        to_3[0].attributes.as_path,
        Some(AsPath::sequence(vec![LOCAL_AS, 65002, 65010]))
    );
    let to_1: Vec<&Update> = out
        .iter()
        .filter(|(a, _)| *a == peer(1, 65001).address)
        .map(|(_, u)| u)
        .collect();
    assert_eq!(
        to_1[0].nlri,
        vec![prefix()],
        "peer 1 now gets peer 2's route"
    );
    let to_2: Vec<&Update> = out
        .iter()
        .filter(|(a, _)| *a == peer(2, 65002).address)
        .map(|(_, u)| u)
        .collect();
    assert_eq!(
        to_2[0].withdrawn,
        vec![prefix()],
        "peer 2 had peer 1's route, not its own"
    );
}

#[test]
fn export_to_an_external_peer() {
    let mut a = attrs(&[65001, 65020]);
    a.med = Some(5);
    a.other = vec![
        RawAttribute {
            flags: 0xc0,
            type_code: 8,
            value: vec![1, 2, 3, 4],
        },
        RawAttribute {
            flags: 0x80,
            type_code: 99,
            value: vec![9],
        },
    ];
    let mut rib = rib_with(&[(peer(1, 65001), a)]);
    let out = rib.peer_up(peer(2, 65002));
    assert_eq!(out.len(), 1);
    let (to, update) = &out[0];
    assert_eq!(*to, peer(2, 65002).address);
    let sent = &update.attributes;
    assert_eq!(
        sent.as_path,
        Some(AsPath::sequence(vec![LOCAL_AS, 65001, 65020]))
    );
    assert_eq!(sent.next_hop, Some(ME));
    assert_eq!(sent.med, None, "a neighbouring AS's MED stays there");
    assert_eq!(sent.local_pref, None);
    assert_eq!(
        sent.other,
        vec![RawAttribute {
            flags: 0xe0,
            type_code: 8,
            value: vec![1, 2, 3, 4]
        }],
        "optional transitive passed on with the partial bit, non-transitive dropped"
    );
    assert_eq!(rib.adj_rib_out(peer(2, 65002).address).count(), 1);
    assert_eq!(
        rib.adj_rib_out(peer(1, 65001).address).count(),
        0,
        "never sent back"
    );

    let out = rib.peer_up(peer(3, 65020));
    assert!(out.is_empty(), "AS 65020 is in the path: not sent there");
}

#[test]
fn routes_from_internal_peers_are_not_sent_to_internal_peers() {
    let mut rib = rib_with(&[(peer(1, LOCAL_AS), attrs(&[65010]))]);
    assert!(rib.peer_up(peer(2, LOCAL_AS)).is_empty());
    let out = rib.peer_up(peer(3, 65003));
    assert_eq!(out.len(), 1);
}

#[test]
fn peer_down_withdraws_its_routes_from_the_others() {
    let other: Ipv4Net = "10.8.0.0/16".parse().unwrap();
    let mut rib = rib_with(&[(peer(1, 65001), attrs(&[65001]))]);
    rib.peer_up(peer(2, 65002));
    rib.receive(peer(2, 65002).address, &[other], &attrs(&[65002]));
    let out = rib.peer_down(peer(1, 65001).address);
    assert!(rib.best(&prefix()).is_none());
    assert!(rib.best(&other).is_some(), "peer 2's route remains");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, peer(2, 65002).address);
    assert_eq!(out[0].1.withdrawn, vec![prefix()]);
}

#[test]
fn large_tables_are_split_into_messages_that_fit() {
    let mut rib = Rib::new(LOCAL_AS);
    let p = peer(1, 65001);
    rib.peer_up(p.clone());
    let prefixes: Vec<Ipv4Net> = (0..3000u32)
        .map(|i| Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap())
        .collect();
    rib.receive(p.address, &prefixes, &attrs(&[65001]));
    let out = rib.peer_up(peer(2, 65002));
    assert!(out.len() > 1);
    let mut sent = 0;
    for (_, update) in &out {
        let bytes = Message::Update(update.clone()).encode().unwrap();
        assert!(bytes.len() <= 4096);
        sent += update.nlri.len();
    }
    assert_eq!(sent, 3000);
    let out = rib.peer_down(p.address);
    let withdrawn: usize = out.iter().map(|(_, u)| u.withdrawn.len()).sum();
    assert_eq!(withdrawn, 3000);
    for (_, update) in &out {
        assert!(Message::Update(update.clone()).encode().unwrap().len() <= 4096);
    }
}
