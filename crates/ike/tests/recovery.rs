//! A tunnel comes back by itself: after the peer deletes it, after it was refused for a while,
//! after an internal fault — with back-off, and as the connection's recovery settings say.

mod common;

use common::*;
use ike::codec::{exchange, flags, Header};
use ike::{DownAction, DownReason, Event, Identity, Recovery};
use std::time::{Duration, Instant};

const IKE: &str = "aes256gcm16-prfsha384-ecp384";
const ESP: &str = "aes256gcm16";

/// When A sent each IKE_SA_INIT request.
fn init_requests_from_a(n: &Net) -> Vec<Instant> {
    n.wire
        .iter()
        .zip(&n.wire_at)
        .filter(|((from_a, port, p), _)| {
            *from_a
                && *port == 500
                && Header::decode(p).is_ok_and(|h| {
                    h.exchange == exchange::IKE_SA_INIT && h.flags & flags::RESPONSE == 0
                })
        })
        .map(|(_, t)| *t)
        .collect()
}

fn responder(psk: &str) -> ike::ConnectionConfig {
    Conn::new(B, A).ike(IKE).esp(ESP).psk(psk).build()
}

fn initiator(recovery: Recovery) -> ike::ConnectionConfig {
    Conn::new(A, B)
        .ike(IKE)
        .esp(ESP)
        .initiate(true)
        .recovery(recovery)
        .build()
}

/// The peer deletes the IKE SA (a graceful restart) and comes back a moment later: the
/// initiator tries again about a second after the DELETE and is up without anyone acting.
#[test]
fn a_peer_delete_is_followed_by_a_new_attempt() {
    let mut n = Net::new();
    n.add_b(responder("secret"));
    n.add_a(initiator(Recovery::default()));
    n.pump();
    assert_eq!(children(&n.ev_a).len(), 1);
    let deleted = n.now;
    n.b.remove_connection(n.conns_b[0], n.now);
    n.pump();
    assert_eq!(downs(&n.ev_a), vec![DownReason::DeletedByPeer]);
    let st = &n.a.status()[0];
    assert_eq!(st.state, "connecting", "{st:?}");
    let next = st.next_attempt.expect("a next attempt is scheduled");
    let wait = next - deleted;
    assert!(
        wait >= Duration::from_millis(800) && wait <= Duration::from_millis(1200),
        "{wait:?}"
    );
    // the peer is back (its new process) before our attempt
    n.run_for(Duration::from_millis(300));
    n.add_b(responder("secret"));
    n.run_for(Duration::from_secs(2));
    assert_eq!(n.a.status()[0].state, "established");
    assert_eq!(live(&n.ev_a).len(), 1);
    assert_eq!(n.a.status()[0].consecutive_failures, 0, "reset once up");
}

/// A wrong key on the peer for a while: attempts back off (1 s, 2 s, 4 s … capped by
/// `retry_max`, with jitter), the reason stays visible, and once the peer is fixed the
/// tunnel is up within the cap.
#[test]
fn refused_attempts_back_off_up_to_the_cap_and_recover_when_the_peer_is_fixed() {
    let mut n = Net::new();
    n.add_b(responder("wrong"));
    let rec = Recovery {
        retry_max: Duration::from_secs(5),
        ..Recovery::default()
    };
    n.add_a(initiator(rec));
    n.run_for(Duration::from_secs(40));
    let starts = init_requests_from_a(&n);
    assert!(starts.len() >= 8, "{} attempts in 40 s", starts.len());
    let gaps: Vec<f64> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    for (i, want) in [1.0, 2.0, 4.0, 5.0, 5.0].into_iter().enumerate() {
        assert!(
            gaps[i] >= want * 0.8 - 0.01 && gaps[i] <= want * 1.2 + 0.01,
            "gap {i}: {:?} (all: {gaps:?})",
            gaps[i]
        );
    }
    assert!(gaps.iter().all(|g| *g <= 6.01), "capped: {gaps:?}");
    let st = &n.a.status()[0];
    assert!(st
        .last_error
        .as_deref()
        .is_some_and(|e| e.starts_with("AUTHENTICATION_FAILED")));
    assert!(st.consecutive_failures >= 8);
    // the peer's operator fixes the key
    n.b.remove_connection(n.conns_b[0], n.now);
    n.add_b(responder("secret"));
    let fixed = n.now;
    n.run_for(Duration::from_secs(7));
    let st = &n.a.status()[0];
    assert_eq!(st.state, "established", "{st:?}");
    let up = n
        .ev_a
        .iter()
        .rposition(|e| matches!(e, Event::IkeSaEstablished { .. }))
        .is_some();
    assert!(up);
    assert!(n.now - fixed <= Duration::from_secs(7));
}

/// `close_action = clear`: a DELETE from the peer leaves the connection down.
#[test]
fn close_action_clear_leaves_the_connection_down() {
    let mut n = Net::new();
    n.add_b(responder("secret"));
    n.add_a(initiator(Recovery {
        close_action: DownAction::Clear,
        ..Recovery::default()
    }));
    n.pump();
    n.b.remove_connection(n.conns_b[0], n.now);
    n.add_b(responder("secret"));
    n.run_for(Duration::from_secs(30));
    let st = &n.a.status()[0];
    assert_eq!(st.state, "down");
    assert_eq!(st.next_attempt, None);
    assert_eq!(init_requests_from_a(&n).len(), 1);
}

/// `keyingtries = 3`: three failed attempts, then the connection stays down.
#[test]
fn keyingtries_bounds_the_attempts() {
    let mut n = Net::new();
    n.add_b(responder("wrong"));
    n.add_a(initiator(Recovery {
        keyingtries: 3,
        ..Recovery::default()
    }));
    n.run_for(Duration::from_secs(60));
    assert_eq!(init_requests_from_a(&n).len(), 3);
    let st = &n.a.status()[0];
    assert_eq!(st.state, "down");
    assert_eq!(st.next_attempt, None);
}

/// A panic while one connection's IKE message is handled drops that IKE SA only: the sibling
/// connection keeps its SAs untouched, and the faulty one re-initiates and comes back.
#[test]
fn an_internal_fault_stays_with_its_connection() {
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
                .local_ts(&[theirs])
                .remote_ts(&[ours])
                .ike(ike)
                .esp(ESP)
                .remote_id(Identity::Fqdn(id.into())),
        );
        n.add_a(
            Conn::new(A, B)
                .local_ts(&[ours])
                .remote_ts(&[theirs])
                .ike(ike)
                .esp(ESP)
                .local_id(Identity::Fqdn(id.into()))
                .initiate(true),
        );
        n.pump();
    }
    assert_eq!(live(&n.ev_a).len(), 2);
    let before: Vec<u32> = live(&n.ev_a).iter().map(|c| c.spi_in).collect();
    let mark = n.ev_a.len();
    // the next message for A's second connection panics inside the endpoint
    let (faulty_a, faulty_b) = (n.conns_a[1], n.conns_b[1]);
    n.a.inject_fault(faulty_a);
    let now = n.now;
    n.b.rekey_now(faulty_b, false, now);
    n.b.handle_timeout(now);
    n.pump();
    let after: Vec<&Event> = n.ev_a[mark..].iter().collect();
    assert!(
        after.iter().any(|e| matches!(e, Event::ConnectionDown { conn, reason: DownReason::Other(r) } if *conn == faulty_a && r.contains("internal error"))),
        "{after:?}"
    );
    assert!(
        after.iter().all(|e| match e {
            Event::ConnectionDown { conn, .. } | Event::ChildSaDeleted { conn, .. } =>
                *conn == faulty_a,
            _ => true,
        }),
        "the sibling connection is untouched: {after:?}"
    );
    assert!(live(&n.ev_a).iter().any(|c| c.spi_in == before[0]));
    assert_eq!(n.a.status()[0].state, "established");
    // the faulty connection comes back by itself
    n.run_for(Duration::from_secs(3));
    assert_eq!(
        n.a.status()[1].state,
        "established",
        "{:?}",
        n.a.status()[1]
    );
    assert_eq!(live(&n.ev_a).len(), 2);
}

/// The answer to a rekey is lost (Child SA, then IKE SA): the initiator retransmits, the
/// responder answers again from its cache, and both end with the same SAs — nothing goes
/// down, no Child SA is lost, and traffic keys stay mirrored.
#[test]
fn a_lost_rekey_answer_is_recovered_by_retransmission() {
    for ike_rekey in [false, true] {
        let mut n = establish(IKE, "aes256gcm16-ecp384");
        let now = n.now;
        n.a.rekey_now(n.conns_a[0], ike_rekey, now);
        n.a.handle_timeout(now);
        // A's request is the next datagram; B's answer the one after: lose the answer
        n.drop.push(n.sent + 1);
        n.pump();
        // meanwhile B wants a Child SA rekey of its own
        let b_child = live(&n.ev_b)[0].spi_in;
        let now = n.now;
        n.b.rekey_child(n.conns_b[0], b_child, now);
        n.run_for(Duration::from_secs(20));
        assert!(
            downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty(),
            "{:?} {:?}",
            n.ev_a,
            n.ev_b
        );
        let (la, lb) = (live(&n.ev_a), live(&n.ev_b));
        assert_eq!(
            (la.len(), lb.len()),
            (1, 1),
            "ike_rekey={ike_rekey}: {la:?} {lb:?}"
        );
        assert_eq!(la[0].spi_out, lb[0].spi_in);
        assert_eq!(la[0].enc_key_out, lb[0].enc_key_in);
        assert_eq!(la[0].enc_key_in, lb[0].enc_key_out);
        let (sa, sb) = (&n.a.status()[0], &n.b.status()[0]);
        assert_eq!((sa.ike_spi_i, sa.ike_spi_r), (sb.ike_spi_i, sb.ike_spi_r));
        assert_eq!(sa.state, "established");
        // and the IKE SA still works afterwards
        n.run_for(Duration::from_secs(60));
        assert!(downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty());
    }
}

/// Both ends rekey the same Child SA at the same moment (RFC 7296 §2.8.1): both exchanges
/// complete, the redundant SA is deleted by the side that created it, the old one by the
/// other, and each side ends with the same single Child SA.
#[test]
fn simultaneous_child_rekeys_leave_one_child_sa() {
    for round in 0..8 {
        let mut n = Net::seeded(round).establish(IKE, "aes256gcm16-ecp384");
        let (xa, xb) = (live(&n.ev_a)[0].spi_in, live(&n.ev_b)[0].spi_in);
        let now = n.now;
        assert!(n.a.rekey_child(n.conns_a[0], xa, now));
        assert!(n.b.rekey_child(n.conns_b[0], xb, now));
        n.a.handle_timeout(now);
        n.b.handle_timeout(now);
        n.run_for(Duration::from_secs(5));
        assert!(downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty());
        let (la, lb) = (live(&n.ev_a), live(&n.ev_b));
        assert_eq!((la.len(), lb.len()), (1, 1), "{la:?} {lb:?}");
        assert_ne!(la[0].spi_in, xa);
        assert_eq!(la[0].spi_out, lb[0].spi_in);
        assert_eq!(la[0].enc_key_out, lb[0].enc_key_in);
        assert_eq!(la[0].enc_key_in, lb[0].enc_key_out);
    }
}

/// The peer narrows the selectors and refuses a Child SA for the rest: the initiator asks
/// once, then reports the narrowing with both selector sets and what is left out.
#[test]
fn narrowed_selectors_are_asked_for_once_and_reported() {
    let mut n = Net::new();
    n.add_b(
        Conn::new(B, A)
            .local_ts(&["10.2.1.0/24", "10.2.9.0/24"])
            .ike(IKE)
            .esp(ESP),
    );
    n.add_a(Conn::new(A, B).ike(IKE).esp(ESP).initiate(true));
    n.run_for(Duration::from_secs(5));
    assert!(downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty());
    let la = live(&n.ev_a);
    assert_eq!(la.len(), 1, "{la:?}");
    assert_eq!(la[0].remote_ts.len(), 2, "both /24s in one SA");
    let st = &n.a.status()[0];
    assert_eq!(st.state, "established");
    let w = st.selector_warning.as_deref().expect("a warning");
    assert!(
        w.contains("ours local [10.1.0.0/16] remote [10.2.0.0/16]"),
        "{w}"
    );
    assert!(
        w.contains("10.2.1.0/24") && w.contains("10.2.9.0/24"),
        "{w}"
    );
    assert!(
        w.contains(
            "not tunneled: remote [10.2.0.0/24, 10.2.2.0..10.2.8.255, 10.2.10.0..10.2.255.255]"
        ),
        "what is left out: {w}"
    );
    assert!(w.contains("TS_UNACCEPTABLE"), "why: {w}");
    let creates = n
        .wire
        .iter()
        .filter(|(from_a, _, p)| {
            let p = if p.starts_with(&[0, 0, 0, 0]) {
                &p[4..]
            } else {
                &p[..]
            };
            *from_a
                && Header::decode(p).is_ok_and(|h| {
                    h.exchange == exchange::CREATE_CHILD_SA && h.flags & flags::RESPONSE == 0
                })
        })
        .count();
    assert_eq!(creates, 1, "one request for the rest, not a loop");
    // a later rekey keeps the narrowed SA and does not ask again
    let now = n.now;
    n.a.rekey_now(n.conns_a[0], false, now);
    n.run_for(Duration::from_secs(5));
    assert_eq!(live(&n.ev_a).len(), 1);
    assert!(n.a.status()[0].selector_warning.is_some());
}
