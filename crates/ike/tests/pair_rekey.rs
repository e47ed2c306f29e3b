//! Rekeying keeps the tunnel up: time-driven Child and IKE SA rekeys, rekeys an operator or
//! the data path asks for, and collisions (both sides rekeying the IKE SA at once), also over
//! a slow network that reorders datagrams.

mod common;

use common::*;
use std::time::{Duration, Instant};

use ike::DownReason;

#[test]
fn child_and_ike_rekeys_keep_the_tunnel_up() {
    for (ike, esp, pfs) in [
        (
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16-ecp384",
            Some(ike::DhGroup::Ecp384),
        ),
        ("aes128-sha256-modp2048", "aes128-sha1", None),
    ] {
        let mut n = establish_with_lifetimes(ike, esp, 50, 20);
        let spi0 = n.a.status()[0].ike_spi_i;
        n.run_for(Duration::from_secs(130));
        assert!(
            downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty(),
            "{:?} {:?}",
            n.ev_a,
            n.ev_b
        );
        let installs = children(&n.ev_a).len();
        assert!(
            installs >= 6,
            "at least one Child rekey per ~17-19 s: {installs}"
        );
        assert_eq!(children(&n.ev_b).len(), installs);
        let la = live(&n.ev_a);
        let lb = live(&n.ev_b);
        assert_eq!(la.len(), 1, "old Child SAs are deleted after rekey: {la:?}");
        assert_eq!(lb.len(), 1);
        let (a, b) = (&la[0], &lb[0]);
        assert_eq!((a.spi_in, a.spi_out), (b.spi_out, b.spi_in));
        assert_eq!(a.enc_key_out, b.enc_key_in);
        assert_eq!(a.enc_key_in, b.enc_key_out);
        assert_eq!(a.integ_key_out, b.integ_key_in);
        assert_eq!(a.dh_group, pfs);
        assert_eq!(a.local_ts, vec![ts("10.1.0.0/16")]);
        let (sa, sb) = (&n.a.status()[0], &n.b.status()[0]);
        assert_ne!(sa.ike_spi_i, spi0, "IKE SA was rekeyed");
        assert_eq!((sa.ike_spi_i, sa.ike_spi_r), (sb.ike_spi_i, sb.ike_spi_r));
        assert_eq!(sa.state, "established");
        assert_eq!(sb.state, "established");
        assert_eq!(n.a.dropped() + n.b.dropped(), 0);
        // The tunnel still answers liveness checks over the rekeyed IKE SA.
        let before = n.sent;
        n.run_for(Duration::from_secs(16));
        assert!(n.sent > before);
        assert!(downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty());
    }
}

#[test]
fn simultaneous_ike_rekeys_leave_one_ike_sa_with_the_child() {
    for round in 0..6 {
        // each round its own randomness: who wins the collision depends on the nonces
        let mut n = Net::seeded(round).establish("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
        let spi0 = n.a.status()[0].ike_spi_i;
        let now = n.now;
        n.a.rekey_now(n.conns_a[0], true, now);
        n.b.rekey_now(n.conns_b[0], true, now);
        // Both requests leave before either side sees the other's.
        n.a.handle_timeout(now);
        n.b.handle_timeout(now);
        n.pump();
        n.run_for(Duration::from_secs(40));
        assert!(
            downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty(),
            "round {round}: {:?} / {:?}",
            n.ev_a,
            n.ev_b
        );
        let (sa, sb) = (&n.a.status()[0], &n.b.status()[0]);
        assert_ne!(sa.ike_spi_i, spi0);
        assert_eq!(
            (sa.ike_spi_i, sa.ike_spi_r),
            (sb.ike_spi_i, sb.ike_spi_r),
            "round {round}"
        );
        assert_eq!(live(&n.ev_a).len(), 1);
        assert_eq!(live(&n.ev_b).len(), 1);
        // Both sides delete the old IKE SA at once; an answer to a DELETE for an SA the receiver
        // already removed is dropped as unknown-SPI, never as a connection error.
        assert!(n.a.dropped() + n.b.dropped() <= 2, "round {round}");
        assert_eq!(sa.ike_dropped + sb.ike_dropped, 0, "round {round}");
        // The surviving IKE SA carries the Child SA: deleting it reports the child on both sides.
        let now = n.now;
        n.a.remove_connection(n.conns_a[0], now);
        n.pump();
        assert_eq!(
            downs(&n.ev_b),
            vec![DownReason::DeletedByPeer],
            "round {round}"
        );
        assert!(live(&n.ev_b).is_empty(), "round {round}");
    }
}

#[test]
fn operator_child_rekey() {
    let mut n = establish("aes128-sha256-modp2048", "aes128-sha256-modp2048");
    let now = n.now;
    n.a.rekey_now(n.conns_a[0], false, now);
    n.a.handle_timeout(now);
    n.pump();
    let la = live(&n.ev_a);
    let lb = live(&n.ev_b);
    assert_eq!(children(&n.ev_a).len(), 2);
    assert_eq!((la.len(), lb.len()), (1, 1));
    assert_eq!(la[0].enc_key_out, lb[0].enc_key_in);
    assert_eq!(la[0].integ_key_in, lb[0].integ_key_out);
    assert_eq!(
        la[0].dh_group,
        Some(ike::DhGroup::Modp2048),
        "rekey with PFS group"
    );
    // make-before-break: the initiator of the rekey sends on the new SA at once; the
    // responder only once the peer shows it has it (the data path decides)
    assert!(la[0].outbound_now);
    assert!(!lb[0].outbound_now);
    assert!(
        children(&n.ev_b)[0].outbound_now,
        "the first Child SA is used at once"
    );
}

/// The responder (no time-based rekeys of its own) rekeys a given Child SA when its data
/// path asks (its outbound sequence numbers run low); the initiator answers.
#[test]
fn responder_rekeys_a_child_sa_on_request() {
    let mut n = establish("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
    let old = live(&n.ev_b)[0].spi_in;
    let now = n.now;
    assert!(n.b.rekey_child(n.conns_b[0], old, now));
    assert!(!n.b.rekey_child(n.conns_b[0], old ^ 1, now), "unknown SPI");
    n.b.handle_timeout(now);
    n.pump();
    let (la, lb) = (live(&n.ev_a), live(&n.ev_b));
    assert_eq!((la.len(), lb.len()), (1, 1), "{:?} {:?}", n.ev_a, n.ev_b);
    assert_ne!(lb[0].spi_in, old);
    assert_eq!(la[0].spi_out, lb[0].spi_in);
    assert_eq!(la[0].enc_key_out, lb[0].enc_key_in);
    assert!(downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty());
}

/// The same collision over a slow network: 50 ms each way, and half the datagrams held back
/// up to 80 ms more, so the two rekey requests, their answers and the DELETEs (of the old IKE
/// SA and of the redundant new one) cross on the wire and some arrive after ones sent later,
/// a DELETE sometimes overtaking a rekey's answer (the two scenarios below pin those cases).
/// Each seed ends the same way: one IKE SA, the same on both sides, carrying one Child SA
/// with mirrored SPIs and keys, and nothing reported down.
#[test]
fn ike_rekey_collision_over_a_slow_reordering_network_leaves_one_ike_sa() {
    let mut reordered = 0;
    for seed in 0..64 {
        let mut n = Net::seeded(seed)
            .latency(Duration::from_millis(50))
            .reorder(0.5, Duration::from_millis(80))
            .establish(IKE, "aes256gcm16-ecp384");
        n.run_for(Duration::from_secs(1));
        let spi0 = n.a.status()[0].ike_spi_i;
        assert_eq!(n.b.status()[0].ike_spi_i, spi0, "seed {seed}: up first");
        let before = n.reordered();
        let now = n.now;
        n.a.rekey_now(n.conns_a[0], true, now);
        n.b.rekey_now(n.conns_b[0], true, now);
        n.run_for(Duration::from_secs(40));
        reordered += n.reordered() - before;
        assert_one_ike_sa_with_mirrored_child(&n, spi0, now, &format!("seed {seed}"));
    }
    assert!(
        reordered > 0,
        "the network reordered nothing: the test proves less than it says"
    );
}

/// RFC 7296 §2.8.2, the special case: B's rekey request is held back until A's own rekey has
/// finished and A has sent the DELETE of the old IKE SA. A should refuse B's request with
/// TEMPORARY_FAILURE ("an IKE SA that it is currently trying to close"). Answering it would
/// make an IKE SA that B, having deleted the old one meanwhile, never finishes: a stray whose
/// liveness checks nobody answers or, when the nonces make it the survivor of the collision,
/// a connection that goes down.
#[test]
fn ike_rekey_request_arriving_after_our_rekey_finished_is_refused() {
    let mut n = Net::new()
        .latency(Duration::from_millis(50))
        .establish(IKE, "aes256gcm16-ecp384");
    n.run_for(Duration::from_secs(1));
    let spi0 = n.a.status()[0].ike_spi_i;
    // A's request is the next datagram, B's the one after: it arrives 60 ms late.
    n.hold.push((n.sent + 1, Duration::from_millis(60)));
    let now = n.now;
    n.a.rekey_now(n.conns_a[0], true, now);
    n.b.rekey_now(n.conns_b[0], true, now);
    n.run_for(Duration::from_secs(40));
    assert_one_ike_sa_with_mirrored_child(&n, spi0, now, "B's request late");
}

/// Both sides notice the collision, but B's answer to A's rekey is held back until after B has
/// resolved the collision and sent its DELETEs (of the old IKE SA, and of the losing new one):
/// A must keep waiting for the answer to its own rekey (whose SA B kept), take the Child SA
/// back from the losing SA B deletes, and move both to the survivor; nothing goes down.
#[test]
fn ike_rekey_collision_survives_a_delete_overtaking_the_rekey_answer() {
    let mut n = Net::new()
        .latency(Duration::from_millis(50))
        .establish(IKE, "aes256gcm16-ecp384");
    n.run_for(Duration::from_secs(1));
    let spi0 = n.a.status()[0].ike_spi_i;
    // A's request, B's request, then (both arriving at once) A's answer and B's answer: hold
    // B's answer back 60 ms, past B's DELETEs.
    n.hold.push((n.sent + 3, Duration::from_millis(60)));
    let now = n.now;
    n.a.rekey_now(n.conns_a[0], true, now);
    n.b.rekey_now(n.conns_b[0], true, now);
    n.run_for(Duration::from_secs(40));
    assert_one_ike_sa_with_mirrored_child(&n, spi0, now, "B's answer late");
}

/// After a rekey collision started at `at`: nothing went down, one IKE SA (not `spi0`) the same
/// on both sides and the only one on the wire from 2 s after the collision on, and one Child
/// SA on each side with mirrored SPIs and keys.
fn assert_one_ike_sa_with_mirrored_child(n: &Net, spi0: u64, at: Instant, what: &str) {
    assert!(
        downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty(),
        "{what}: {:?} / {:?}\n{}",
        n.ev_a,
        n.ev_b,
        n.trace()
    );
    let (sa, sb) = (&n.a.status()[0], &n.b.status()[0]);
    assert_ne!(sa.ike_spi_i, spi0, "{what}: rekeyed");
    assert_eq!(
        (sa.ike_spi_i, sa.ike_spi_r),
        (sb.ike_spi_i, sb.ike_spi_r),
        "{what}: one IKE SA, the same on both sides"
    );
    assert_eq!(
        (sa.state.as_str(), sb.state.as_str()),
        ("established", "established"),
        "{what}"
    );
    let (la, lb) = (live(&n.ev_a), live(&n.ev_b));
    assert_eq!((la.len(), lb.len()), (1, 1), "{what}: {la:?} {lb:?}");
    let (a, b) = (&la[0], &lb[0]);
    assert_eq!((a.spi_in, a.spi_out), (b.spi_out, b.spi_in), "{what}");
    assert_eq!(a.enc_key_out, b.enc_key_in, "{what}");
    assert_eq!(a.enc_key_in, b.enc_key_out, "{what}");
    assert_eq!(sa.ike_dropped + sb.ike_dropped, 0, "{what}");
    let settled = at + Duration::from_secs(2);
    let strays: Vec<usize> = (0..n.wire.len())
        .filter(|&i| n.wire_at[i] >= settled && spi_i(&n.wire[i].2) != Some(sa.ike_spi_i))
        .collect();
    assert!(
        strays.is_empty(),
        "{what}: datagrams {strays:?} use another IKE SA than the survivor {:016x}\n{}",
        sa.ike_spi_i,
        n.trace()
    );
    assert_eq!(n.in_flight(), 0, "{what}: the network is quiet");
}

/// The initiator's SPI of an IKE datagram (after the non-ESP marker on port 4500).
fn spi_i(datagram: &[u8]) -> Option<u64> {
    let ike = datagram.strip_prefix(&[0, 0, 0, 0]).unwrap_or(datagram);
    ike::codec::Header::decode(ike).ok().map(|h| h.spi_i)
}
