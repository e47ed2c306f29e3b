//! A gateway's BGP speaker with an Established peer fed hostile octets on that peer's
//! connection (after a valid OPEN and KEEPALIVE), in arbitrary splits, with time jumps: it never
//! panics, writes only well-formed messages, and forwards only to configured peers' prefixes
//! that are not its own.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgp::speaker::GATEWAY_CONNECT_RETRY;
use bgp::{Message, Open, Output, PeerConfig, Speaker, SpeakerConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let peer = Ipv4Addr::new(10, 2, 255, 4);
    let own: ipnet::Ipv4Net = "10.1.0.0/16".parse().unwrap();
    let mut s = Speaker::new(SpeakerConfig {
        local_as: 65001,
        bgp_id: Ipv4Addr::new(10, 1, 255, 4),
        hold_time: 9,
        connect_retry: GATEWAY_CONNECT_RETRY,
        originate: vec![own],
    });
    s.set_peers(&[PeerConfig { address: peer, asn: 65002 }], now);
    s.set_reachable(peer, true, now);
    // the peer connects to us (its address is lower than ours: ours is dropped)
    let Some(conn) = s.accept(peer, now) else { return };
    s.handle_bytes(conn, &Message::Open(Open::new(65002, 9, peer)).encode().unwrap(), now);
    s.handle_bytes(conn, &Message::Keepalive.encode().unwrap(), now);
    let (split, rest) = data.split_first().map_or((1, data), |(&b, r)| (usize::from(b % 64) + 1, r));
    let mut t = now;
    for (i, chunk) in rest.chunks(split).enumerate() {
        s.handle_bytes(conn, chunk, t);
        if i % 7 == 6 {
            t += Duration::from_secs(u64::from(chunk[0] % 16));
            s.handle_timeout(t);
        }
    }
    while let Some(o) = s.poll_output() {
        if let Output::Transmit { bytes, .. } = o {
            Message::decode(&bytes).expect("the speaker writes well-formed messages");
        }
    }
    for (prefix, via) in s.forwarding() {
        assert_eq!(via, peer, "forwarding only to the configured peer");
        assert_ne!(prefix, own, "our own prefix is never taken from a peer");
    }
    let _ = s.peer_status(t);
    let _ = s.known_routes();
});
