//! Two endpoints talking over an in-memory network with a virtual clock.

mod common;

use common::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ike::{AuthFailure, DownReason, Endpoint, Event, Identity};

fn assert_up(n: &Net, ike_alg: &str, esp_alg: &str) {
    let ca = children(&n.ev_a);
    let cb = children(&n.ev_b);
    assert_eq!(ca.len(), 1, "initiator events: {:?}", n.ev_a);
    assert_eq!(cb.len(), 1, "responder events: {:?}", n.ev_b);
    let (a, b) = (&ca[0], &cb[0]);
    assert_eq!(a.spi_in, b.spi_out);
    assert_eq!(a.spi_out, b.spi_in);
    assert_eq!(a.enc_key_out, b.enc_key_in);
    assert_eq!(a.enc_key_in, b.enc_key_out);
    assert_eq!(a.integ_key_out, b.integ_key_in);
    assert_eq!(a.integ_key_in, b.integ_key_out);
    assert_ne!(a.enc_key_in, a.enc_key_out);
    assert_eq!(a.enc_key_in.len(), a.encryption.keymat_len());
    assert_eq!(a.peer, SocketAddr::new(B, 4500));
    assert_eq!(b.peer, SocketAddr::new(A, 4500));
    assert_eq!(a.local_ts, b.remote_ts);
    for ev in [&n.ev_a, &n.ev_b] {
        let algs: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                Event::IkeSaEstablished { algorithms, .. } => Some(algorithms.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(algs, vec![ike_alg.to_string()]);
    }
    let sa = n.a.status();
    let sb = n.b.status();
    assert_eq!(sa[0].state, "established");
    assert_eq!(sb[0].state, "established");
    assert_eq!(sa[0].ike_spi_i, sb[0].ike_spi_i);
    assert_eq!(sa[0].ike_spi_r, sb[0].ike_spi_r);
    assert_eq!(sa[0].esp_algorithms.as_deref(), Some(esp_alg));
}

#[test]
fn gcm_ike_ecp384() {
    let n = establish("aes256gcm16-prfsha384-ecp384", "aes256gcm16-ecp384");
    assert_up(
        &n,
        "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384",
        "AES_GCM_16_256",
    );
    // IKE_SA_INIT on 500, IKE_AUTH floated to 4500 with the non-ESP marker.
    assert_eq!(n.wire[0].1, 500);
    assert_eq!(n.wire[2].1, 4500);
    assert_eq!(&n.wire[2].2[..4], &[0, 0, 0, 0]);
}

#[test]
fn cbc_modp2048_sha256() {
    let n = establish("aes256-sha256-modp2048", "aes256-sha256");
    assert_up(
        &n,
        "AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048",
        "AES_CBC_256/HMAC_SHA2_256_128",
    );
    assert_eq!(children(&n.ev_a)[0].integ_key_in.len(), 32);
}

#[test]
fn cbc_modp1024_sha1() {
    let n = establish("aes128-sha1-modp1024", "aes128-sha1");
    assert_up(
        &n,
        "AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        "AES_CBC_128/HMAC_SHA1_96",
    );
}

#[test]
fn azure_stack_hub_policy() {
    let n = establish("aes256-sha384-ecp384", "aes256gcm16-ecp384");
    assert_up(
        &n,
        "AES_CBC_256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384",
        "AES_GCM_16_256",
    );
}

#[test]
fn azure_default_ike_offer_group2() {
    // Azure's default phase 1 offers (DH group 2), minus 3DES which we do not implement.
    let n = establish(
        "aes256-sha1-modp1024,aes256-sha256-modp1024,aes128-sha1-modp1024,aes128-sha256-modp1024",
        "aes256gcm16,aes256-sha1,aes256-sha256,aes128-sha1",
    );
    assert_up(
        &n,
        "AES_CBC_256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        "AES_GCM_16_256",
    );
}

#[test]
fn cbc_sha384_ecp384() {
    let n = establish("aes256-sha384-ecp384", "aes256-sha384");
    assert_up(
        &n,
        "AES_CBC_256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384",
        "AES_CBC_256/HMAC_SHA2_384_192",
    );
}

#[test]
fn gcm128_curve25519() {
    let n = establish("aes128gcm16-prfsha256-curve25519", "aes128gcm16");
    assert_up(
        &n,
        "AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519",
        "AES_GCM_16_128",
    );
}

#[test]
fn cbc_modp2048s256_and_ecp256() {
    let n = establish("aes256-sha256-modp2048s256", "aes128-sha256");
    assert_up(
        &n,
        "AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048_256",
        "AES_CBC_128/HMAC_SHA2_256_128",
    );
    let n = establish("aes128-sha256-ecp256", "aes256gcm16");
    assert_up(
        &n,
        "AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_256",
        "AES_GCM_16_256",
    );
}

#[test]
fn invalid_ke_retry_uses_responder_group() {
    let mut n = Net::new();
    n.b.add_connection(
        cfg(
            B,
            A,
            &["10.2.0.0/16"],
            &["10.1.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "secret",
            false,
        ),
        n.now,
    );
    // Initiator's first KE is curve25519 but it also offers ecp384.
    n.a.add_connection(
        cfg(
            A,
            B,
            &["10.1.0.0/16"],
            &["10.2.0.0/16"],
            "aes256gcm16-prfsha384-curve25519-ecp384",
            "aes256gcm16",
            "secret",
            true,
        ),
        n.now,
    );
    n.pump();
    assert_up(
        &n,
        "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384",
        "AES_GCM_16_256",
    );
}

#[test]
fn wrong_psk_reports_authentication_failed_on_both_sides() {
    let mut n = Net::new();
    n.b.add_connection(
        cfg(
            B,
            A,
            &["10.2.0.0/16"],
            &["10.1.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "right",
            false,
        ),
        n.now,
    );
    n.a.add_connection(
        cfg(
            A,
            B,
            &["10.1.0.0/16"],
            &["10.2.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "wrong",
            true,
        ),
        n.now,
    );
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
    n.b.add_connection(
        cfg(
            B,
            A,
            &["10.2.0.0/16"],
            &["10.1.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "s",
            false,
        ),
        n.now,
    );
    n.a.add_connection(
        cfg(
            A,
            B,
            &["10.1.0.0/16"],
            &["10.2.0.0/16"],
            "aes128-sha1-modp1024",
            "aes256gcm16",
            "s",
            true,
        ),
        n.now,
    );
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
    n.a.remove_connection(0, now);
    n.a.add_connection(
        cfg(
            A,
            B,
            &["10.1.0.0/16"],
            &["10.2.0.0/16"],
            "aes128-sha1-modp1024",
            "aes256gcm16",
            "secret",
            true,
        ),
        now,
    );
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
    n.b.add_connection(
        cfg(
            B,
            A,
            &["10.2.0.0/16"],
            &["10.1.0.0/16"],
            "aes256-sha256-modp2048",
            "aes256gcm16",
            "s",
            false,
        ),
        n.now,
    );
    n.a.add_connection(
        cfg(
            A,
            B,
            &["10.1.0.0/16"],
            &["10.2.0.0/16"],
            "aes256-sha256-modp2048",
            "aes128-sha1",
            "s",
            true,
        ),
        n.now,
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
fn traffic_selectors_are_narrowed_by_responder() {
    let mut n = Net::new();
    n.b.add_connection(
        cfg(
            B,
            A,
            &["10.2.1.0/24"],
            &["10.1.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "s",
            false,
        ),
        n.now,
    );
    n.a.add_connection(
        cfg(
            A,
            B,
            &["10.0.0.0/8"],
            &["10.2.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "s",
            true,
        ),
        n.now,
    );
    n.pump();
    let ca = children(&n.ev_a);
    assert_eq!(ca.len(), 1, "{:?}", n.ev_a);
    assert_eq!(ca[0].local_ts, vec![ts("10.1.0.0/16")]);
    assert_eq!(ca[0].remote_ts, vec![ts("10.2.1.0/24")]);
}

#[test]
fn disjoint_traffic_selectors_are_unacceptable() {
    let mut n = Net::new();
    n.b.add_connection(
        cfg(
            B,
            A,
            &["10.2.0.0/16"],
            &["10.1.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "s",
            false,
        ),
        n.now,
    );
    n.a.add_connection(
        cfg(
            A,
            B,
            &["10.9.0.0/16"],
            &["10.2.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "s",
            true,
        ),
        n.now,
    );
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
fn retransmission_recovers_from_lost_datagrams() {
    let mut n = Net::new();
    // Lose the first IKE_SA_INIT request and the first IKE_AUTH response.
    n.drop = vec![0, 4];
    n.b.add_connection(
        cfg(
            B,
            A,
            &["10.2.0.0/16"],
            &["10.1.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "s",
            false,
        ),
        n.now,
    );
    n.a.add_connection(
        cfg(
            A,
            B,
            &["10.1.0.0/16"],
            &["10.2.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "s",
            true,
        ),
        n.now,
    );
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
    n.a.add_connection(
        cfg(
            A,
            B,
            &["10.1.0.0/16"],
            &["10.2.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "s",
            true,
        ),
        n.now,
    );
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
    n.a.remove_connection(0, now);
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
fn garbage_is_dropped_and_counted() {
    let mut n = establish("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
    let local = SocketAddr::new(B, 4500);
    let remote = SocketAddr::new(A, 4500);
    assert!(n
        .b
        .handle_datagram(n.now, local, remote, &[1, 2, 3, 4, 5])
        .is_err());
    assert!(n
        .b
        .handle_datagram(n.now, local, remote, &[0, 0, 0, 0, 1])
        .is_err());
    let mut tampered = n.wire[2].2.clone();
    let l = tampered.len();
    tampered[l - 1] ^= 1;
    assert!(n
        .b
        .handle_datagram(n.now, local, remote, &tampered)
        .is_err());
    assert!(n.b.dropped() >= 3);
    assert_eq!(n.b.status()[0].state, "established");
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
    n.b.remove_connection(0, now);
    n.pump();
    assert_eq!(downs(&n.ev_a), vec![DownReason::DeletedByPeer]);
    assert!(n
        .ev_a
        .iter()
        .any(|e| matches!(e, Event::ChildSaDeleted { .. })));
    assert_eq!(n.a.dropped(), 0);
}

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
fn cookie_challenge_under_flood_and_legitimate_peer_still_connects() {
    let mut n = Net::new();
    n.b.set_half_open_limits(8, 1000);
    n.b.add_connection(
        cfg(
            B,
            A,
            &["10.2.0.0/16"],
            &["10.1.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "secret",
            false,
        ),
        n.now,
    );
    // 20 spoofed IKE_SA_INITs from distinct ports that never complete.
    let mut cookies = 0;
    for port in 0..20u16 {
        let mut spoof = Endpoint::new();
        spoof.add_connection(
            cfg(
                A,
                B,
                &["10.1.0.0/16"],
                &["10.2.0.0/16"],
                "aes256gcm16-prfsha384-ecp384",
                "aes256gcm16",
                "x",
                true,
            ),
            n.now,
        );
        let t = spoof.poll_transmit().unwrap();
        n.b.handle_datagram(
            n.now,
            SocketAddr::new(B, 500),
            SocketAddr::new(A, 10000 + port),
            &t.payload,
        )
        .unwrap();
        let reply = n.b.poll_transmit().unwrap();
        let m = ike::codec::Message::decode(&reply.payload).unwrap();
        if m.notify(ike::codec::notify::COOKIE).is_some() {
            cookies += 1;
        }
    }
    assert_eq!(n.b.half_open(), 8, "state only for the first 8");
    assert_eq!(cookies, 12);
    assert_eq!(n.b.cookies_sent(), 12);
    // The real initiator gets a cookie, echoes it and connects.
    n.a.add_connection(
        cfg(
            A,
            B,
            &["10.1.0.0/16"],
            &["10.2.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "secret",
            true,
        ),
        n.now,
    );
    n.pump();
    assert_eq!(n.b.cookies_sent(), 13);
    assert_eq!(children(&n.ev_a).len(), 1, "{:?}", n.ev_a);
    assert_eq!(n.a.status()[0].state, "established");
    // Half-open SAs expire.
    n.run_for(Duration::from_secs(31));
    assert_eq!(n.b.half_open(), 0);
}

/// A spoofer floods IKE_SA_INITs from the peer's own address: past the per-source limit the
/// responder answers with COOKIEs instead of dropping (RFC 7296 §2.6), so the genuine peer,
/// which receives at that address, echoes the cookie, gets a half-open slot (the oldest
/// spoofed one makes room) and connects while the flood goes on.
#[test]
fn spoofed_flood_from_the_peers_address_cannot_lock_the_peer_out() {
    let mut n = Net::new();
    n.b.set_half_open_limits(1000, 3);
    n.b.add_connection(
        cfg(
            B,
            A,
            &["10.2.0.0/16"],
            &["10.1.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "secret",
            false,
        ),
        n.now,
    );
    let spoofed = |n: &mut Net, count: u16| {
        let mut cookies = 0;
        for port in 0..count {
            let mut spoof = Endpoint::new();
            spoof.add_connection(
                cfg(
                    A,
                    B,
                    &["10.1.0.0/16"],
                    &["10.2.0.0/16"],
                    "aes256gcm16-prfsha384-ecp384",
                    "aes256gcm16",
                    "x",
                    true,
                ),
                n.now,
            );
            let t = spoof.poll_transmit().unwrap();
            n.b.handle_datagram(
                n.now,
                SocketAddr::new(B, 500),
                SocketAddr::new(A, 500 + port % 2),
                &t.payload,
            )
            .expect("answered, never dropped");
            let reply = n.b.poll_transmit().unwrap();
            let m = ike::codec::Message::decode(&reply.payload).unwrap();
            if m.notify(ike::codec::notify::COOKIE).is_some() {
                cookies += 1;
            }
        }
        cookies
    };
    assert_eq!(
        spoofed(&mut n, 5),
        2,
        "cookies once the source has 3 half-open SAs"
    );
    assert_eq!(n.b.half_open(), 3);
    assert_eq!(n.b.dropped(), 0);
    // the genuine peer starts while the source's share is full, and the flood goes on
    n.a.add_connection(
        cfg(
            A,
            B,
            &["10.1.0.0/16"],
            &["10.2.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "secret",
            true,
        ),
        n.now,
    );
    let t = n.a.poll_transmit().unwrap();
    n.b.handle_datagram(
        n.now,
        SocketAddr::new(B, 500),
        SocketAddr::new(A, 500),
        &t.payload,
    )
    .unwrap();
    let cookie = n.b.poll_transmit().unwrap();
    assert_eq!(spoofed(&mut n, 50), 50);
    n.a.handle_datagram(
        n.now,
        SocketAddr::new(A, 500),
        SocketAddr::new(B, 500),
        &cookie.payload,
    )
    .unwrap();
    n.pump();
    assert_eq!(n.a.status()[0].state, "established", "{:?}", n.ev_a);
    assert_eq!(children(&n.ev_a).len(), 1);
    assert!(
        n.b.half_open() <= 3,
        "state stays bounded: {}",
        n.b.half_open()
    );
}

#[test]
fn responder_follows_initiator_behind_nat() {
    let mut n = Net::new();
    n.nat = true;
    // The responder accepts any peer address (the initiator's is translated).
    n.b.add_connection(
        cfg(
            B,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            &["10.2.0.0/16"],
            &["10.1.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "secret",
            false,
        ),
        n.now,
    );
    n.a.add_connection(
        cfg(
            A,
            B,
            &["10.1.0.0/16"],
            &["10.2.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "secret",
            true,
        ),
        n.now,
    );
    n.pump();
    let cb = children(&n.ev_b);
    assert_eq!(cb.len(), 1, "{:?}", n.ev_b);
    assert_eq!(
        cb[0].peer,
        SocketAddr::new(NAT_IP, 44500),
        "ESP goes to the NAT mapping of A's port 4500"
    );
    assert_eq!(children(&n.ev_a)[0].peer, SocketAddr::new(B, 4500));
    // Liveness and DELETE still work through the mapping.
    n.run_for(Duration::from_secs(20));
    let now = n.now;
    n.b.remove_connection(0, now);
    n.pump();
    assert_eq!(downs(&n.ev_a), vec![DownReason::DeletedByPeer]);
    assert_eq!(
        n.a.dropped(),
        0,
        "B forgot the SA after sending DELETE, so only B may drop A's answer"
    );
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

#[test]
fn nat_detection_flags() {
    // Without NAT each side sees the other's deliberately faked source hash only.
    let n = establish("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
    let (a, b) = (&n.a.status()[0], &n.b.status()[0]);
    assert_eq!((a.nat_local, a.nat_remote), (false, true));
    assert_eq!((b.nat_local, b.nat_remote), (false, true));
    // Behind a NAT the initiator learns that its own address is translated.
    let mut n = Net::new();
    n.nat = true;
    n.b.add_connection(
        cfg(
            B,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            &["10.2.0.0/16"],
            &["10.1.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "secret",
            false,
        ),
        n.now,
    );
    n.a.add_connection(
        cfg(
            A,
            B,
            &["10.1.0.0/16"],
            &["10.2.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "secret",
            true,
        ),
        n.now,
    );
    n.pump();
    let a = &n.a.status()[0];
    assert_eq!((a.nat_local, a.nat_remote), (true, true));
}

#[test]
fn unsupported_critical_payload_is_answered() {
    let mut n = Net::new();
    n.b.add_connection(
        cfg(
            B,
            A,
            &["10.2.0.0/16"],
            &["10.1.0.0/16"],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "s",
            false,
        ),
        n.now,
    );
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
        let mut b = cfg(
            B,
            A,
            &[theirs],
            &[ours],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "secret",
            false,
        );
        b.name = format!("b-{id}");
        b.remote_id = Some(Identity::Fqdn(id.into()));
        n.b.add_connection(b, n.now);
    }
    for (id, ours, theirs) in [
        ("one.example", "10.1.0.0/16", "10.2.0.0/16"),
        ("two.example", "10.11.0.0/16", "10.12.0.0/16"),
    ] {
        let mut a = cfg(
            A,
            B,
            &[ours],
            &[theirs],
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "secret",
            true,
        );
        a.name = format!("a-{id}");
        a.local_id = Identity::Fqdn(id.into());
        n.a.add_connection(a, n.now);
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
        let mut b = cfg(
            B,
            A,
            &[theirs],
            &[ours],
            ike,
            "aes256gcm16",
            "secret",
            false,
        );
        b.name = format!("b-{id}");
        b.remote_id = Some(Identity::Fqdn(id.into()));
        n.b.add_connection(b, n.now);
    }
    for (i, (id, ours, theirs, ike)) in setups.into_iter().enumerate() {
        let mut a = cfg(A, B, &[ours], &[theirs], ike, "aes256gcm16", "secret", true);
        a.name = format!("a-{id}");
        a.local_id = Identity::Fqdn(id.into());
        n.a.add_connection(a, n.now);
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
