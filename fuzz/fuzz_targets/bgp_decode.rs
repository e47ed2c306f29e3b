//! The BGP decoder and session fed hostile input: decoding and framing never panic, whatever
//! decodes re-encodes to octets that decode to the same message, every error names a
//! NOTIFICATION that fits on the wire, and an Established session fed the same octets in
//! arbitrary splits neither panics nor writes anything that is not a well-formed message.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgp::codec::frame;
use bgp::{Message, Open, Session, SessionConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = frame(data);
    match Message::decode(data) {
        Ok(m) => {
            let enc = m.encode().expect("a decoded message fits");
            assert_eq!(Message::decode(&enc).expect("re-encoded message must parse"), m);
        }
        Err(e) => {
            let n = Message::Notification(e.notification());
            assert!(n.encode().is_ok(), "NOTIFICATION for {e} must fit");
        }
    }

    let now = Instant::now();
    let mut s = Session::new(SessionConfig::new(65001, 65002, Ipv4Addr::new(192, 0, 2, 1)));
    s.start(now);
    s.tcp_connected(now);
    let peer_open = Message::Open(Open::new(65002, 90, Ipv4Addr::new(192, 0, 2, 2)));
    s.handle_bytes(&peer_open.encode().unwrap(), now);
    s.handle_bytes(&Message::Keepalive.encode().unwrap(), now);
    // The first octet picks how the rest is split across reads.
    let (split, rest) = data.split_first().map_or((1, data), |(&b, r)| (usize::from(b) + 1, r));
    for chunk in rest.chunks(split) {
        s.handle_bytes(chunk, now);
    }
    s.handle_timeout(now + Duration::from_secs(1000));
    while let Some(bytes) = s.poll_transmit() {
        Message::decode(&bytes).expect("the session writes well-formed messages");
    }
    while s.poll_event().is_some() {}
});
