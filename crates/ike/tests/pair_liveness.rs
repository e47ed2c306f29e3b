//! Lost datagrams, a silent peer, a DELETE: retransmission with back-off, cached answers to
//! repeated requests, liveness checks and dead-peer detection, teardown from either side.

mod common;

use common::*;
use std::net::SocketAddr;
use std::time::Duration;

use ike::{DownReason, Event};

#[test]
fn retransmission_recovers_from_lost_datagrams() {
    let mut n = Net::new();
    // Lose the first IKE_SA_INIT request and the first IKE_AUTH response.
    n.drop = vec![0, 4];
    n.add_b(Conn::new(B, A));
    n.add_a(Conn::new(A, B).initiate(true));
    n.run_for(Duration::from_secs(5));
    assert_up(
        &n,
        "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384",
        "AES_GCM_16_256",
    );
}

#[test]
fn duplicate_request_gets_cached_response() {
    let mut n = establish("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
    // Replay the IKE_AUTH request (third datagram) to the responder.
    let (_, port, req) = n.wire[2].clone();
    let before = n.sent;
    n.b.handle_datagram(
        n.now,
        SocketAddr::new(B, 4500),
        SocketAddr::new(A, port),
        &req,
    )
    .unwrap();
    let t = n.b.poll_transmit().expect("cached response resent");
    assert_eq!(t.payload, n.wire[3].2);
    assert_eq!(before, n.sent);
    assert_eq!(children(&n.ev_b).len(), 1);
}

#[test]
fn unreachable_peer_gives_up_with_backoff() {
    let mut n = Net::new();
    n.add_a(Conn::new(A, B).initiate(true));
    let start = n.now;
    let mut sends = vec![];
    loop {
        while let Some(_t) = n.a.poll_transmit() {
            sends.push(n.now - start);
        }
        n.collect();
        if !downs(&n.ev_a).is_empty() {
            break;
        }
        let t = n.a.poll_timeout().unwrap();
        n.now = t;
        n.a.handle_timeout(t);
    }
    let ms: Vec<u128> = sends.iter().map(|d| d.as_millis()).collect();
    assert_eq!(ms, vec![0, 500, 1500, 3500, 7500]);
    assert_eq!(n.now - start, Duration::from_millis(15500));
    assert_eq!(downs(&n.ev_a), vec![DownReason::PeerUnreachable]);
    // Re-initiation is scheduled.
    assert_eq!(n.a.status()[0].state, "connecting");
    assert!(n.a.poll_timeout().is_some());
}

#[test]
fn delete_tears_down_both_sides() {
    let mut n = establish("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
    let now = n.now;
    n.a.remove_connection(n.conns_a[0], now);
    n.pump();
    let del_a: Vec<_> = n
        .ev_a
        .iter()
        .filter(|e| matches!(e, Event::ChildSaDeleted { .. }))
        .collect();
    assert_eq!(del_a.len(), 1);
    assert!(n
        .ev_b
        .iter()
        .any(|e| matches!(e, Event::ChildSaDeleted { .. })));
    assert_eq!(downs(&n.ev_b), vec![DownReason::DeletedByPeer]);
    assert_eq!(n.b.status()[0].state, "down");
    assert!(n.a.status().is_empty());
}

#[test]
fn liveness_check_answered_and_dead_peer_detected() {
    let mut n = establish("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
    let before = n.sent;
    n.run_for(Duration::from_secs(20));
    assert!(n.sent >= before + 2, "a DPD exchange happened");
    assert!(downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty());
    // Now B goes silent: everything from A is lost.
    n.drop = (n.sent..n.sent + 1000).collect();
    n.run_for(Duration::from_secs(80));
    assert!(
        downs(&n.ev_a).contains(&DownReason::DpdTimeout)
            || downs(&n.ev_b).contains(&DownReason::DpdTimeout)
    );
}

#[test]
fn responder_initiated_delete_and_liveness() {
    let mut n = establish("aes256-sha256-modp2048", "aes256-sha256");
    // Only the responder checks liveness: A's DPD is effectively disabled by answering first.
    let now = n.now;
    n.b.handle_timeout(now + Duration::from_secs(16));
    n.now = now + Duration::from_secs(16);
    let sent_before = n.sent;
    n.pump();
    assert_eq!(
        n.sent,
        sent_before + 2,
        "responder's DPD request answered by the initiator"
    );
    assert_eq!(n.a.dropped() + n.b.dropped(), 0);
    let now = n.now;
    n.b.remove_connection(n.conns_b[0], now);
    n.pump();
    assert_eq!(downs(&n.ev_a), vec![DownReason::DeletedByPeer]);
    assert!(n
        .ev_a
        .iter()
        .any(|e| matches!(e, Event::ChildSaDeleted { .. })));
    assert_eq!(n.a.dropped(), 0);
}

/// Over a link with 50 ms each way the handshake takes two round trips: B has its Child SA
/// when the IKE_AUTH request reaches it (150 ms), A when the answer does (200 ms), and nothing
/// is sent twice.
#[test]
fn a_handshake_over_a_slow_link_takes_two_round_trips() {
    let mut n = Net::new()
        .latency(Duration::from_millis(50))
        .establish(IKE, ESP);
    assert_eq!(n.in_flight(), 1, "the IKE_SA_INIT request is on its way");
    n.run_for(Duration::from_millis(149));
    assert!(children(&n.ev_b).is_empty());
    n.run_for(Duration::from_millis(1));
    assert_eq!(children(&n.ev_b).len(), 1, "{:?}", n.ev_b);
    assert!(children(&n.ev_a).is_empty());
    n.run_for(Duration::from_millis(50));
    assert_up(
        &n,
        "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384",
        "AES_GCM_16_256",
    );
    assert_eq!(n.sent, 4, "no retransmission:\n{}", n.trace());
}

/// B removes its connection right after answering IKE_AUTH, and its DELETE overtakes that
/// answer on the way to A (as when a busy strongSwan takes the two from its queue in the wrong
/// order): A drops the DELETE of an IKE SA it does not hold as established yet, then takes the
/// answer. B sends the DELETE again until it is answered, so A does not keep an IKE SA and a
/// Child SA that B dropped.
#[test]
fn a_delete_that_overtakes_the_ike_auth_answer_is_sent_again() {
    let mut n = Net::new().latency(Duration::from_millis(50));
    // datagram 3 is B's IKE_AUTH answer: it arrives at 300 ms instead of 200 ms
    n.hold = vec![(3, Duration::from_millis(100))];
    let mut n = n.establish(IKE, ESP);
    n.run_for(Duration::from_millis(150));
    assert_eq!(children(&n.ev_b).len(), 1, "{:?}", n.ev_b);
    let now = n.now;
    n.b.remove_connection(n.conns_b[0], now);
    n.run_for(Duration::from_millis(200));
    assert_eq!(
        children(&n.ev_a).len(),
        1,
        "A took the late answer: {:?}",
        n.ev_a
    );
    assert!(
        !n.ev_a
            .iter()
            .any(|e| matches!(e, Event::ChildSaDeleted { .. })),
        "the first DELETE came too early to count"
    );
    n.run_for(Duration::from_secs(2));
    assert!(
        n.ev_a
            .iter()
            .any(|e| matches!(e, Event::ChildSaDeleted { .. })),
        "A still holds the Child SA B dropped: {:?}",
        n.ev_a
    );
    assert!(
        downs(&n.ev_a).contains(&DownReason::DeletedByPeer),
        "{:?}",
        n.ev_a
    );
    // B's detached IKE SA is gone once A answered
    assert!(n.b.status().is_empty());
}

/// A removes its connection while a request of its IKE SA was lost on the way: the DELETE
/// must wait for that request to be answered (it is sent again) instead of taking the next
/// message ID, which a peer with a window of one ignores while it still expects the lost one
/// (B would keep the IKE SA and its Child SA until its dead-peer detection).
#[test]
fn a_delete_waits_for_the_request_that_was_lost() {
    let mut n = establish(IKE, ESP);
    let spi = children(&n.ev_a)[0].spi_in;
    n.drop = vec![n.sent];
    let now = n.now;
    assert!(n.a.rekey_child(n.conns_a[0], spi, now));
    n.run_for(Duration::from_millis(10));
    assert_eq!(
        n.sent,
        5,
        "the CREATE_CHILD_SA request left:\n{}",
        n.trace()
    );
    let now = n.now;
    n.a.remove_connection(n.conns_a[0], now);
    n.run_for(Duration::from_secs(5));
    assert!(
        downs(&n.ev_b).contains(&DownReason::DeletedByPeer),
        "B never took A's DELETE:\n{}",
        n.trace()
    );
    assert!(n.a.status().is_empty(), "A's detached IKE SA is gone");
}

/// A removes its connection while its rekey of the IKE SA is out (the request was lost and is
/// sent again). B answers it and from then on runs on the new IKE SA, so deleting only the old
/// one would leave B's tunnel up until its dead-peer detection: A takes the answer and deletes
/// the new IKE SA as well.
#[test]
fn a_connection_removed_during_its_ike_rekey_deletes_the_new_ike_sa_too() {
    let mut n = establish(IKE, ESP);
    n.drop = vec![n.sent];
    let now = n.now;
    n.a.rekey_now(n.conns_a[0], true, now);
    n.run_for(Duration::from_millis(10));
    assert_eq!(n.sent, 5, "the IKE SA rekey request left:\n{}", n.trace());
    let now = n.now;
    n.a.remove_connection(n.conns_a[0], now);
    n.run_for(Duration::from_secs(5));
    assert!(
        downs(&n.ev_b).contains(&DownReason::DeletedByPeer),
        "B still runs on the IKE SA A's rekey made:\n{}",
        n.trace()
    );
    assert_eq!(
        n.b.status()[0].state,
        "down",
        "B's connection:\n{}",
        n.trace()
    );
    assert!(n.a.status().is_empty(), "A's detached IKE SAs are gone");
}
