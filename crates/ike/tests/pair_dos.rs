//! Denial of service: floods of IKE_SA_INITs are answered with cookies instead of state (also
//! when spoofed from the peer's own address), the genuine peer still connects, and garbage is
//! dropped and counted without touching the tunnel.

mod common;

use common::*;
use std::net::SocketAddr;
use std::time::Duration;

#[test]
fn cookie_challenge_under_flood_and_legitimate_peer_still_connects() {
    let mut n = Net::new();
    n.b.set_half_open_limits(8, 1000);
    n.add_b(Conn::new(B, A));
    // 20 spoofed IKE_SA_INITs from distinct ports that never complete.
    let mut cookies = 0;
    for port in 0..20u16 {
        let mut spoof = n.endpoint();
        spoof.add_connection(Conn::new(A, B).psk("x").initiate(true).build(), n.now);
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
    n.add_a(Conn::new(A, B).initiate(true));
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
    n.add_b(Conn::new(B, A));
    let spoofed = |n: &mut Net, count: u16| {
        let mut cookies = 0;
        for port in 0..count {
            let mut spoof = n.endpoint();
            spoof.add_connection(Conn::new(A, B).psk("x").initiate(true).build(), n.now);
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
    n.add_a(Conn::new(A, B).initiate(true));
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
