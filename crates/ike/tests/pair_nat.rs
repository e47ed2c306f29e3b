//! An initiator behind NAT: the responder follows the translated address and port, and NAT
//! detection reports who is translated.

mod common;

use common::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ike::DownReason;

#[test]
fn responder_follows_initiator_behind_nat() {
    let mut n = Net::new();
    n.nat = true;
    // The responder accepts any peer address (the initiator's is translated).
    n.add_b(Conn::new(B, IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
    n.add_a(Conn::new(A, B).initiate(true));
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
    n.b.remove_connection(n.conns_b[0], now);
    n.pump();
    assert_eq!(downs(&n.ev_a), vec![DownReason::DeletedByPeer]);
    assert_eq!(
        n.a.dropped(),
        0,
        "B forgot the SA after sending DELETE, so only B may drop A's answer"
    );
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
    n.add_b(Conn::new(B, IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
    n.add_a(Conn::new(A, B).initiate(true));
    n.pump();
    let a = &n.a.status()[0];
    assert_eq!((a.nat_local, a.nat_remote), (true, true));
}
