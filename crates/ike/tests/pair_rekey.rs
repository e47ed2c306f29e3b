//! Rekeying keeps the tunnel up: time-driven Child and IKE SA rekeys, rekeys an operator or
//! the data path asks for, and collisions (both sides rekeying the IKE SA at once), also over
//! a slow network that reorders datagrams.

mod common;

use common::*;
use std::time::Duration;

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
        let mut n = establish("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
        let spi0 = n.a.status()[0].ike_spi_i;
        let now = n.now;
        n.a.rekey_now(0, true, now);
        n.b.rekey_now(0, true, now);
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
        n.a.remove_connection(0, now);
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
    n.a.rekey_now(0, false, now);
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
    assert!(n.b.rekey_child(0, old, now));
    assert!(!n.b.rekey_child(0, old ^ 1, now), "unknown SPI");
    n.b.handle_timeout(now);
    n.pump();
    let (la, lb) = (live(&n.ev_a), live(&n.ev_b));
    assert_eq!((la.len(), lb.len()), (1, 1), "{:?} {:?}", n.ev_a, n.ev_b);
    assert_ne!(lb[0].spi_in, old);
    assert_eq!(la[0].spi_out, lb[0].spi_in);
    assert_eq!(la[0].enc_key_out, lb[0].enc_key_in);
    assert!(downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty());
}
