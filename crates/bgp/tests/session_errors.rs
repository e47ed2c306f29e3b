//! One session fed crafted octets: each kind of error gets its NOTIFICATION on the wire and a
//! Down with the reason, and nothing panics whatever arrives.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgp::codec::subcode;
use bgp::{
    Capability, DownReason, ErrorCode, Event, Message, Notification, Open, Session, SessionConfig,
    State, Update,
};
use proptest::prelude::*;

const PEER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// A session to AS 65002 with its TCP connection up and its OPEN taken off the wire.
fn open_sent() -> (Session, Instant) {
    let now = Instant::now();
    let mut s = Session::new(SessionConfig::new(
        65001,
        65002,
        Ipv4Addr::new(192, 0, 2, 1),
    ));
    s.start(now);
    assert_eq!(s.poll_event(), Some(Event::Connect));
    s.tcp_connected(now);
    let open = Message::decode(&s.poll_transmit().unwrap()).unwrap();
    assert!(matches!(open, Message::Open(_)));
    assert_eq!(s.state(), State::OpenSent);
    (s, now)
}

fn established() -> (Session, Instant) {
    let (mut s, now) = open_sent();
    feed(&mut s, &Message::Open(Open::new(65002, 90, PEER_ID)), now);
    assert_eq!(sent(&mut s), vec![Message::Keepalive]);
    feed(&mut s, &Message::Keepalive, now);
    assert_eq!(s.state(), State::Established);
    (s, now)
}

fn feed(s: &mut Session, m: &Message, now: Instant) {
    s.handle_bytes(&m.encode().unwrap(), now);
}

fn sent(s: &mut Session) -> Vec<Message> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|b| Message::decode(&b).unwrap())
        .collect()
}

/// The NOTIFICATION the session sent and the reason it reported.
fn failure(s: &mut Session) -> (Notification, String) {
    let Some(Message::Notification(n)) = sent(s).pop() else {
        panic!("no NOTIFICATION sent")
    };
    let reason = std::iter::from_fn(|| s.poll_event())
        .find_map(|e| match e {
            Event::Down { reason } => Some(reason),
            _ => None,
        })
        .expect("Down reported");
    assert!(matches!(reason, DownReason::ErrorSent { .. }));
    assert_eq!(s.state(), State::Idle);
    (n, reason.to_string())
}

#[test]
fn garbage_on_the_stream_is_connection_not_synchronized() {
    let (mut s, now) = open_sent();
    s.handle_bytes(&[0u8; 19], now);
    let (n, reason) = failure(&mut s);
    assert_eq!(n.code, ErrorCode::MessageHeaderError);
    assert_eq!(n.subcode, subcode::CONNECTION_NOT_SYNCHRONIZED);
    assert!(reason.contains("marker"), "{reason}");
}

#[test]
fn update_before_open_is_a_state_machine_error() {
    let (mut s, now) = open_sent();
    feed(&mut s, &Message::Update(Update::default()), now);
    let (n, reason) = failure(&mut s);
    assert_eq!(n.code, ErrorCode::FiniteStateMachineError);
    assert_eq!(n.subcode, subcode::UNEXPECTED_IN_OPEN_SENT);
    assert_eq!(
        reason,
        "unexpected UPDATE in OpenSent (sent NOTIFICATION Finite State Machine Error / \
         Receive Unexpected Message in OpenSent State)"
    );
}

#[test]
fn peer_without_four_octet_as_is_refused() {
    let (mut s, now) = open_sent();
    let mut open = Open::new(65002, 90, PEER_ID);
    open.capabilities
        .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    feed(&mut s, &Message::Open(open), now);
    let (n, reason) = failure(&mut s);
    assert_eq!(n.subcode, subcode::UNSUPPORTED_CAPABILITY);
    assert!(reason.contains("4-octet AS"), "{reason}");
}

#[test]
fn hold_time_of_two_seconds_is_refused() {
    let (mut s, now) = open_sent();
    feed(&mut s, &Message::Open(Open::new(65002, 3, PEER_ID)), now);
    assert_eq!(s.hold_time(), Duration::from_secs(3));
    let (mut s, now) = open_sent();
    let mut bytes = Message::Open(Open::new(65002, 3, PEER_ID))
        .encode()
        .unwrap();
    bytes[23] = 2;
    s.handle_bytes(&bytes, now);
    let (n, _) = failure(&mut s);
    assert_eq!(n.subcode, subcode::UNACCEPTABLE_HOLD_TIME);
}

#[test]
fn internal_peer_with_our_identifier_is_refused() {
    let now = Instant::now();
    let id = Ipv4Addr::new(192, 0, 2, 1);
    let mut s = Session::new(SessionConfig::new(65001, 65001, id));
    s.start(now);
    s.tcp_connected(now);
    sent(&mut s);
    feed(&mut s, &Message::Open(Open::new(65001, 90, id)), now);
    let (n, _) = failure(&mut s);
    assert_eq!(n.subcode, subcode::BAD_BGP_IDENTIFIER);
}

#[test]
fn malformed_update_in_established_is_an_update_message_error() {
    let (mut s, now) = established();
    let mut bytes = vec![0xff; 16];
    bytes.extend_from_slice(&[0, 27, 2, 0, 0, 0, 4, 0x40, 0x01, 0x01, 0x07]);
    s.handle_bytes(&bytes, now);
    let (n, reason) = failure(&mut s);
    assert_eq!(n.code, ErrorCode::UpdateMessageError);
    assert_eq!(n.subcode, subcode::INVALID_ORIGIN_ATTRIBUTE);
    assert_eq!(n.data, vec![0x40, 0x01, 0x01, 0x07]);
    assert!(reason.contains("Invalid ORIGIN Attribute"), "{reason}");
}

#[test]
fn keepalives_go_out_at_a_third_of_the_hold_time() {
    let (mut s, now) = established();
    std::iter::from_fn(|| s.poll_event()).for_each(drop);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(30)));
    s.handle_timeout(now + Duration::from_secs(30));
    assert_eq!(sent(&mut s), vec![Message::Keepalive]);
    feed(&mut s, &Message::Keepalive, now + Duration::from_secs(50));
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(60)));
    s.handle_timeout(now + Duration::from_secs(60));
    assert_eq!(sent(&mut s), vec![Message::Keepalive]);
    s.handle_timeout(now + Duration::from_secs(140));
    let (n, _) = failure(&mut s);
    assert_eq!(n.code, ErrorCode::HoldTimerExpired);
}

#[test]
fn route_refresh_is_asked_for_and_reported() {
    let (mut s, now) = established();
    assert!(s.request_route_refresh());
    assert!(matches!(sent(&mut s)[..], [Message::RouteRefresh(_)]));
    let rr = Message::RouteRefresh(bgp::RouteRefresh { afi: 1, safi: 1 });
    feed(&mut s, &rr, now);
    assert!(std::iter::from_fn(|| s.poll_event()).any(|e| e == Event::RouteRefreshRequested));
}

proptest! {
    #[test]
    fn arbitrary_octets_never_panic_a_session(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..6),
        valid_prefix in any::<bool>(),
    ) {
        let (mut s, now) = if valid_prefix { established() } else { open_sent() };
        for chunk in &chunks {
            s.handle_bytes(chunk, now);
        }
        while s.poll_transmit().is_some() {}
        while s.poll_event().is_some() {}
        s.handle_timeout(now + Duration::from_secs(1000));
    }
}

#[test]
fn external_as_path_must_start_with_the_peer_as() {
    let (mut s, now) = established();
    let update = Update {
        withdrawn: vec![],
        attributes: bgp::PathAttributes {
            origin: Some(bgp::Origin::Igp),
            as_path: Some(bgp::AsPath::sequence(vec![65099, 65002])),
            next_hop: Some(PEER_ID),
            ..Default::default()
        },
        nlri: vec!["10.2.0.0/16".parse().unwrap()],
    };
    feed(&mut s, &Message::Update(update), now);
    let (n, reason) = failure(&mut s);
    assert_eq!(n.code, ErrorCode::UpdateMessageError);
    assert_eq!(n.subcode, subcode::MALFORMED_AS_PATH);
    assert!(
        reason.starts_with("AS_PATH from the peer starts with AS 65099, not its AS 65002"),
        "{reason}"
    );
}
