//! Which connection answers: the responder narrows selectors, picks the sibling connection
//! whose proposals fit, keeps siblings' half-open SAs through INITIAL_CONTACT, and both sides
//! initiating at once end with the same Child SAs.

mod common;

use common::*;

use ike::Identity;

#[test]
fn traffic_selectors_are_narrowed_by_responder() {
    let mut n = Net::new();
    n.add_b(Conn::new(B, A).local_ts(&["10.2.1.0/24"]));
    n.add_a(Conn::new(A, B).local_ts(&["10.0.0.0/8"]).initiate(true));
    n.pump();
    let ca = children(&n.ev_a);
    assert_eq!(ca.len(), 1, "{:?}", n.ev_a);
    assert_eq!(ca[0].local_ts, vec![ts("10.1.0.0/16")]);
    assert_eq!(ca[0].remote_ts, vec![ts("10.2.1.0/24")]);
}

/// Two connections between the same two gateways, told apart by their identities, started at
/// the same instant: the first IKE_AUTH's INITIAL_CONTACT must not tear down the other
/// connection's half-open IKE SA (which the responder provisionally filed under the first
/// connection matching the peer's address).
#[test]
fn initial_contact_spares_half_open_sas_of_sibling_connections() {
    let mut n = Net::new();
    for (id, ours, theirs) in [
        ("one.example", "10.1.0.0/16", "10.2.0.0/16"),
        ("two.example", "10.11.0.0/16", "10.12.0.0/16"),
    ] {
        n.add_b(
            Conn::new(B, A)
                .name(&format!("b-{id}"))
                .local_ts(&[theirs])
                .remote_ts(&[ours])
                .remote_id(Identity::Fqdn(id.into())),
        );
    }
    for (id, ours, theirs) in [
        ("one.example", "10.1.0.0/16", "10.2.0.0/16"),
        ("two.example", "10.11.0.0/16", "10.12.0.0/16"),
    ] {
        n.add_a(
            Conn::new(A, B)
                .name(&format!("a-{id}"))
                .local_ts(&[ours])
                .remote_ts(&[theirs])
                .local_id(Identity::Fqdn(id.into()))
                .initiate(true),
        );
    }
    n.pump();
    n.collect();
    assert_eq!(children(&n.ev_a).len(), 2, "initiator events: {:?}", n.ev_a);
    assert_eq!(children(&n.ev_b).len(), 2, "responder events: {:?}", n.ev_b);
    assert!(
        n.b.status().iter().all(|s| s.state == "established"),
        "{:?}",
        n.b.status().iter().map(|s| &s.state).collect::<Vec<_>>()
    );
}

/// Both sides initiate the same connection at the same moment (strongSwan with
/// start_action=start restarting while we re-initiate): two IKE SAs come up, each with a Child
/// SA, and INITIAL_CONTACT must not make one side drop an SA the other still holds. Both
/// sides end with the same live Child SAs.
#[test]
fn simultaneous_initiation_leaves_both_sides_with_the_same_child_sas() {
    let n = connect("aes256gcm16-prfsha384-ecp384", "aes256gcm16", true);
    let (la, lb) = (live(&n.ev_a), live(&n.ev_b));
    assert!(!la.is_empty(), "{:?}", n.ev_a);
    let mut a_in: Vec<u32> = la.iter().map(|c| c.spi_in).collect();
    let mut b_out: Vec<u32> = lb.iter().map(|c| c.spi_out).collect();
    a_in.sort_unstable();
    b_out.sort_unstable();
    assert_eq!(a_in, b_out, "A's inbound SAs are B's outbound SAs");
    let mut a_out: Vec<u32> = la.iter().map(|c| c.spi_out).collect();
    let mut b_in: Vec<u32> = lb.iter().map(|c| c.spi_in).collect();
    a_out.sort_unstable();
    b_in.sort_unstable();
    assert_eq!(a_out, b_in, "B's inbound SAs are A's outbound SAs");
    assert_eq!(n.a.status()[0].state, "established");
    assert_eq!(n.b.status()[0].state, "established");
}

/// Two connections to one peer with different IKE proposals: the responder answers each
/// IKE_SA_INIT with the connection whose proposals fit (the identity that finally picks the
/// connection only comes with IKE_AUTH), and the first tunnel stays up while the second is set up.
#[test]
fn responder_picks_the_sibling_connection_whose_proposals_fit() {
    let mut n = Net::new();
    let setups = [
        (
            "one.example",
            "10.1.0.0/16",
            "10.2.0.0/16",
            "aes256gcm16-prfsha384-ecp384",
        ),
        (
            "two.example",
            "10.11.0.0/16",
            "10.12.0.0/16",
            "aes128-sha256-modp2048",
        ),
    ];
    for (id, ours, theirs, ike) in setups {
        n.add_b(
            Conn::new(B, A)
                .name(&format!("b-{id}"))
                .local_ts(&[theirs])
                .remote_ts(&[ours])
                .ike(ike)
                .remote_id(Identity::Fqdn(id.into())),
        );
    }
    for (i, (id, ours, theirs, ike)) in setups.into_iter().enumerate() {
        n.add_a(
            Conn::new(A, B)
                .name(&format!("a-{id}"))
                .local_ts(&[ours])
                .remote_ts(&[theirs])
                .ike(ike)
                .local_id(Identity::Fqdn(id.into()))
                .initiate(true),
        );
        n.pump();
        n.collect();
        assert_eq!(
            children(&n.ev_a).len(),
            i + 1,
            "initiator events: {:?}",
            n.ev_a
        );
        assert_eq!(
            children(&n.ev_b).len(),
            i + 1,
            "responder events: {:?}",
            n.ev_b
        );
    }
    assert!(
        downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty(),
        "{:?} {:?}",
        n.ev_a,
        n.ev_b
    );
    for s in n.b.status() {
        assert_eq!(s.state, "established", "{}", s.name);
    }
}

/// Which configured connection authenticates a peer: among those accepting its identity, one
/// naming the peer's address before one accepting any address, in configuration order. Each
/// of B's connections has its own pre-shared key, so answering with the wrong one fails.
#[test]
fn responder_prefers_the_peer_address_then_any_address_among_those_accepting_the_identity() {
    let any = std::net::IpAddr::from([0u8, 0, 0, 0]);
    let mut n = Net::new();
    // name, peer address, peer identity, key, B's prefix, the peer's prefix
    let b_side = [
        (
            "b-wild-road",
            any,
            Some("road.example"),
            "wild-road-key",
            "10.9.0.0/16",
            "10.7.0.0/16",
        ),
        (
            "b-other",
            A,
            Some("other.example"),
            "other-key",
            "10.8.0.0/16",
            "10.7.0.0/16",
        ),
        (
            "b-road",
            A,
            Some("road.example"),
            "road-key",
            "10.2.0.0/16",
            "10.1.0.0/16",
        ),
        (
            "b-anyone",
            any,
            None,
            "anyone-key",
            "10.12.0.0/16",
            "10.11.0.0/16",
        ),
    ];
    for (name, remote, id, psk, local_ts, remote_ts) in b_side {
        let mut c = Conn::new(B, remote)
            .name(name)
            .psk(psk)
            .local_ts(&[local_ts])
            .remote_ts(&[remote_ts]);
        if let Some(id) = id {
            c = c.remote_id(Identity::Fqdn(id.into()));
        }
        n.add_b(c);
    }
    for (id, psk, ours, theirs) in [
        ("road.example", "road-key", "10.1.0.0/16", "10.2.0.0/16"),
        (
            "stranger.example",
            "anyone-key",
            "10.11.0.0/16",
            "10.12.0.0/16",
        ),
    ] {
        n.add_a(
            Conn::new(A, B)
                .name(&format!("a-{id}"))
                .psk(psk)
                .local_ts(&[ours])
                .remote_ts(&[theirs])
                .local_id(Identity::Fqdn(id.into()))
                .initiate(true),
        );
        n.pump();
        n.collect();
    }
    assert!(
        downs(&n.ev_a).is_empty() && attempts(&n.ev_a).is_empty(),
        "{:?}",
        n.ev_a
    );
    let up: Vec<String> =
        n.b.status()
            .into_iter()
            .filter(|s| s.state == "established")
            .map(|s| s.name)
            .collect();
    assert_eq!(up, ["b-road", "b-anyone"], "{:?}", n.ev_b);
}
