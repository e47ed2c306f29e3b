//! A tunnel that cannot come up says why, on both sides: wrong key, proposals or selectors
//! that do not meet, an unsupported critical payload — each with the reason an operator can
//! act on, and the diagnosis not overwritten by what happens after.

mod common;

use common::*;
use std::net::SocketAddr;
use std::time::Duration;

use ike::{AuthFailure, DownReason};

#[test]
fn wrong_psk_reports_authentication_failed_on_both_sides() {
    let mut n = Net::new();
    n.add_b(Conn::new(B, A).psk("right"));
    n.add_a(Conn::new(A, B).psk("wrong").initiate(true));
    n.pump();
    // each side says which side found the key wrong
    assert_eq!(
        downs(&n.ev_a),
        vec![DownReason::AuthenticationFailed(
            AuthFailure::RejectedByPeer
        )]
    );
    assert_eq!(
        downs(&n.ev_b),
        vec![DownReason::AuthenticationFailed(
            AuthFailure::PeerAuthInvalid
        )]
    );
    assert!(downs(&n.ev_b)[0]
        .to_string()
        .contains("the peer's AUTH did not verify with our pre-shared key"));
    assert!(children(&n.ev_a).is_empty());
    let st = &n.a.status()[0];
    // the initiator tries again later (someone may fix the key), saying why and when
    assert_eq!(st.state, "connecting");
    assert!(st.next_attempt.is_some_and(|t| t > n.now));
    assert_eq!(st.consecutive_failures, 1);
    assert!(st
        .last_error
        .as_ref()
        .unwrap()
        .starts_with("AUTHENTICATION_FAILED"));
    assert!(!st.last_error.as_ref().unwrap().contains("wrong"));
    // the responder only answers; it does not retry
    let sb = &n.b.status()[0];
    assert_eq!(sb.state, "down");
    assert_eq!(sb.next_attempt, None);
}

#[test]
fn ike_proposal_mismatch_lists_both_sides_at_responder() {
    let mut n = Net::new();
    n.add_b(Conn::new(B, A));
    n.add_a(Conn::new(A, B).ike("aes128-sha1-modp1024").initiate(true));
    // the initiator waits a moment for a genuine answer after the unauthenticated refusal
    n.run_for(Duration::from_secs(1));
    let da = downs(&n.ev_a);
    // the responder only counts a failed attempt: nothing was authenticated
    assert!(downs(&n.ev_b).is_empty(), "{:?}", n.ev_b);
    let db = attempts(&n.ev_b);
    assert_eq!(
        da,
        vec![DownReason::NoProposalChosen {
            ours: vec!["IKE:aes128-sha1-modp1024".into()],
            theirs: vec![]
        }]
    );
    assert_eq!(
        db,
        vec![DownReason::NoProposalChosen {
            ours: vec!["IKE:aes256gcm16-prfsha384-ecp384".into()],
            theirs: vec!["IKE:aes128-sha1-modp1024".into()]
        }]
    );
    let text = db[0].to_string();
    assert!(
        text.contains("aes256gcm16-prfsha384-ecp384") && text.contains("aes128-sha1-modp1024"),
        "{text}"
    );
    assert!(da[0].to_string().contains("not known"));
    let st = &n.b.status()[0];
    assert_eq!(st.failed_attempts, 1);
    assert_eq!(st.last_error.as_deref(), Some(text.as_str()));
}

/// The peer replaces its connection with one whose proposals we refuse: its DELETE of the old
/// IKE SA and its new IKE_SA_INIT (different ports) can arrive in either order. When the
/// IKE_SA_INIT comes first, the late DELETE of the stale IKE SA must not replace the
/// NO_PROPOSAL_CHOSEN diagnosis with "deleted by peer".
#[test]
fn late_delete_of_the_old_ike_sa_keeps_the_proposal_mismatch() {
    let mut n = establish("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
    n.collect();
    let now = n.now;
    n.a.remove_connection(n.conns_a[0], now);
    n.add_a(Conn::new(A, B).ike("aes128-sha1-modp1024").initiate(true));
    let mut out = vec![];
    while let Some(t) = n.a.poll_transmit() {
        out.push(t);
    }
    assert_eq!(out.len(), 2, "a DELETE and an IKE_SA_INIT");
    for t in out.into_iter().rev() {
        let _ =
            n.b.handle_datagram(now, t.remote, SocketAddr::new(A, t.local_port), &t.payload);
    }
    n.pump();
    let st = &n.b.status()[0];
    assert_eq!(st.state, "down");
    let err = st.last_error.clone().unwrap_or_default();
    assert!(
        err.contains("NO_PROPOSAL_CHOSEN") && err.contains("aes128-sha1-modp1024"),
        "{err}"
    );
    assert!(
        matches!(
            downs(&n.ev_b).last(),
            Some(DownReason::NoProposalChosen { .. })
        ),
        "{:?}",
        downs(&n.ev_b)
    );
}

#[test]
fn esp_proposal_mismatch() {
    let mut n = Net::new();
    n.add_b(Conn::new(B, A).ike("aes256-sha256-modp2048"));
    n.add_a(
        Conn::new(A, B)
            .ike("aes256-sha256-modp2048")
            .esp("aes128-sha1")
            .initiate(true),
    );
    n.pump();
    let da = downs(&n.ev_a);
    let db = downs(&n.ev_b);
    assert!(
        matches!(&da[..], [DownReason::NoProposalChosen { .. }]),
        "{da:?}"
    );
    assert_eq!(
        db,
        vec![DownReason::NoProposalChosen {
            ours: vec!["ESP:aes256gcm16".into()],
            theirs: vec!["ESP:aes128-sha1".into()]
        }]
    );
    assert!(children(&n.ev_a).is_empty() && children(&n.ev_b).is_empty());
    // The initiator closes the useless IKE SA.
    assert!(n.b.status()[0].ike_spi_i == 0 || n.a.status()[0].ike_spi_i == 0);
}

#[test]
fn disjoint_traffic_selectors_are_unacceptable() {
    let mut n = Net::new();
    n.add_b(Conn::new(B, A));
    n.add_a(Conn::new(A, B).local_ts(&["10.9.0.0/16"]).initiate(true));
    n.pump();
    assert!(matches!(
        &downs(&n.ev_a)[..],
        [DownReason::TsUnacceptable { .. }]
    ));
    let db = downs(&n.ev_b);
    let DownReason::TsUnacceptable { ours, theirs } = &db[0] else {
        panic!("{db:?}")
    };
    assert!(
        ours.contains("10.1.0.0/16") && theirs.contains("10.9.0.0/16"),
        "{ours} / {theirs}"
    );
}

#[test]
fn unsupported_critical_payload_is_answered() {
    let mut n = Net::new();
    n.add_b(Conn::new(B, A));
    let mut m = ike::codec::Message {
        header: ike::codec::Header {
            spi_i: 42,
            spi_r: 0,
            next_payload: 0,
            version: 0x20,
            exchange: ike::codec::ExchangeType::IkeSaInit,
            flags: 8,
            message_id: 0,
            length: 0,
        },
        payloads: vec![ike::codec::Payload {
            critical: false,
            body: ike::codec::PayloadBody::Other {
                kind: 222,
                data: vec![0; 4],
            },
        }],
    };
    let mut bytes = m.encode();
    bytes[29] = 0x80; // critical bit of the first payload
    assert!(n
        .b
        .handle_datagram(
            n.now,
            SocketAddr::new(B, 500),
            SocketAddr::new(A, 500),
            &bytes
        )
        .is_err());
    let t = n.b.poll_transmit().expect("answered");
    let r = ike::codec::Message::decode(&t.payload).unwrap();
    assert_eq!(
        r.notify(ike::codec::notify::UNSUPPORTED_CRITICAL_PAYLOAD)
            .unwrap()
            .data,
        vec![222]
    );
    m.payloads.clear();
    assert_eq!(n.b.half_open(), 0);
}
