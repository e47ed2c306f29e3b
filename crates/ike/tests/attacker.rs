//! An attacker on the path of an established tunnel: whatever it forges, replays, truncates or
//! mutates, without the key it cannot change the tunnel — both ends keep the same IKE SA and
//! Child SAs, pass traffic, and can still rekey.

mod common;

use common::attack::{assert_survived, attack, established};
use common::{Conn, Net, A, B};
use proptest::prelude::*;
use std::net::SocketAddr;

/// The reported fault: one IKE_SA_INIT from the peer's address offering 3DES/MD5/MODP768
/// took an established tunnel down (the responder's NO_PROPOSAL_CHOSEN path marked the
/// connection down and the runtime removed its ESP SAs).
#[test]
fn a_spoofed_unacceptable_ike_sa_init_leaves_the_tunnel_alone() {
    for (to_a, op) in [(false, 0u8), (true, 0x80)] {
        let (mut n, base) = established();
        attack(&mut n, &base, &[op, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_survived(&mut n, &base).unwrap_or_else(|e| panic!("to_a={to_a}: {e}"));
        let victim = if to_a { &n.a } else { &n.b };
        let st = &victim.status()[0];
        assert_eq!(st.failed_attempts, 1, "counted: {st:?}");
        assert!(
            st.last_failed_attempt
                .as_deref()
                .is_some_and(|e| e.contains("NO_PROPOSAL_CHOSEN")),
            "{st:?}"
        );
        assert_eq!(
            st.last_error, None,
            "the established connection's error is untouched"
        );
    }
}

/// A handshake from the peer's address with a wrong key and INITIAL_CONTACT (which, if it
/// were believed, would make the responder drop the peer's SAs).
#[test]
fn a_wrong_key_handshake_with_initial_contact_changes_nothing() {
    for op in [6u8, 0x86] {
        let (mut n, base) = established();
        attack(&mut n, &base, &[op]);
        assert_survived(&mut n, &base).unwrap();
    }
}

/// Every datagram of the pair's own handshake replayed to both ends, then truncated and
/// flipped at many positions.
#[test]
fn replays_truncations_and_bit_flips_of_the_handshake_change_nothing() {
    let (mut n, base) = established();
    let mut script = vec![];
    for i in 0..n.wire.len() as u16 {
        script.extend_from_slice(&[2, (i >> 8) as u8, i as u8, 0]);
        script.extend_from_slice(&[2, (i >> 8) as u8, i as u8, 1]);
        for cut in [1u16, 4, 28, 40, 100] {
            script.extend_from_slice(&[3, (i >> 8) as u8, i as u8, (cut >> 8) as u8, cut as u8]);
        }
        for pos in [0u16, 8, 17, 19, 27, 30, 50, 90] {
            script.extend_from_slice(&[
                4,
                (i >> 8) as u8,
                i as u8,
                0,
                (pos >> 8) as u8,
                pos as u8,
                0x5a,
            ]);
        }
    }
    // the script caps its steps; run it in slices
    for chunk in script.chunks(64 * 4) {
        attack(&mut n, &base, chunk);
    }
    assert_survived(&mut n, &base).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Random attack scripts: whatever the attacker does, the tunnel survives.
    #[test]
    fn the_established_tunnel_survives_any_unauthenticated_input(
        script in proptest::collection::vec(any::<u8>(), 0..400)
    ) {
        let (mut n, base) = established();
        attack(&mut n, &base, &script);
        if let Err(e) = assert_survived(&mut n, &base) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// RFC 7296 §2.10: a nonce shorter than half the negotiated PRF's key size is refused (16
/// octets pass for PRF_HMAC_SHA2_256, not for PRF_HMAC_SHA2_384, which needs 24).
#[test]
fn a_nonce_shorter_than_half_the_prf_key_is_refused() {
    use ike::codec::{Message, PayloadBody};
    for (ike_proposal, accepted) in [
        ("aes256gcm16-prfsha384-ecp384", false),
        ("aes256gcm16-prfsha256-ecp384", true),
    ] {
        let mut n = Net::new();
        n.add_b(Conn::new(B, A).ike(ike_proposal).psk("k"));
        n.add_a(Conn::new(A, B).ike(ike_proposal).psk("k").initiate(true));
        let (a, b, now) = (&mut n.a, &mut n.b, n.now);
        let mut m = Message::decode(&a.poll_transmit().unwrap().payload).unwrap();
        for p in &mut m.payloads {
            if let PayloadBody::Nonce(n) = &mut p.body {
                n.truncate(16);
            }
        }
        let r = b.handle_datagram(
            now,
            SocketAddr::new(B, 500),
            SocketAddr::new(A, 500),
            &m.encode(),
        );
        assert_eq!(r.is_ok(), accepted, "{ike_proposal}: {r:?}");
        assert_eq!(b.half_open(), usize::from(accepted), "{ike_proposal}");
        if !accepted {
            assert!(format!("{:?}", r.unwrap_err()).contains("half the PRF key size"));
        }
    }
}

/// The harness itself notices a broken tunnel (the oracle can fail): an authenticated DELETE
/// from the real peer is reported.
#[test]
fn the_oracle_notices_a_tunnel_that_went_down() {
    let (mut n, base) = established();
    let now = n.now;
    n.a.remove_connection(n.conns_a[0], now);
    n.pump();
    assert!(assert_survived(&mut n, &base).is_err());
    let _ = (A, B, SocketAddr::new(A, 500));
}
