//! The in-memory IKE pair harness shared by the integration tests (and, by `#[path]`, the
//! `ike_tunnel_survives` fuzz target): two seeded endpoints on a network with a virtual clock,
//! latency, loss and reordering ([`net`]), connections from a builder ([`conn`]), and what the
//! scenarios ask of the events.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use ike::{DownReason, Event};

pub mod attack;
pub mod capture;
pub mod conn;
pub mod net;

#[allow(unused_imports)]
pub use conn::{ts, Conn, A, B, ESP, IKE};
#[allow(unused_imports)]
pub use net::{Net, NAT_IP};

/// Child SAs installed, in order.
pub fn children(ev: &[Event]) -> Vec<ike::ChildSaKeys> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildSaInstalled { child, .. } => Some(child.clone()),
            _ => None,
        })
        .collect()
}

/// Unauthenticated attempts refused, with the reason.
pub fn attempts(ev: &[Event]) -> Vec<DownReason> {
    ev.iter()
        .filter_map(|e| match e {
            Event::AttemptFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// Connections that went down, with the reason.
pub fn downs(ev: &[Event]) -> Vec<DownReason> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ConnectionDown { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

impl Net {
    /// The usual tunnel on this network: B responds, A initiates, both with `ike` and `esp`;
    /// returns once both sides are idle (with latency, run the clock to finish).
    pub fn establish(mut self, ike: &str, esp: &str) -> Net {
        self.add_b(Conn::new(B, A).ike(ike).esp(esp));
        self.add_a(Conn::new(A, B).ike(ike).esp(esp).initiate(true));
        self.pump();
        self
    }
}

/// The usual tunnel, up, on a network without latency or loss.
pub fn establish(ike: &str, esp: &str) -> Net {
    Net::new().establish(ike, esp)
}

/// A initiates; B too when `b_initiates` (both at the same moment).
pub fn connect(ike: &str, esp: &str, b_initiates: bool) -> Net {
    let mut n = Net::new();
    n.add_b(Conn::new(B, A).ike(ike).esp(esp).initiate(b_initiates));
    n.add_a(Conn::new(A, B).ike(ike).esp(esp).initiate(true));
    n.pump();
    n
}

/// [`establish`] with the given IKE SA and Child SA lifetimes (seconds) on both sides.
pub fn establish_with_lifetimes(ike: &str, esp: &str, ike_life: u64, child_life: u64) -> Net {
    let lifetimes = |c: Conn| {
        c.ike(ike).esp(esp).lifetimes(
            Duration::from_secs(ike_life),
            Duration::from_secs(child_life),
        )
    };
    let mut n = Net::new();
    n.add_b(lifetimes(Conn::new(B, A)));
    n.add_a(lifetimes(Conn::new(A, B)).initiate(true));
    n.pump();
    n
}

/// The Child SAs currently installed (installed and not yet deleted), by inbound SPI.
pub fn live(ev: &[Event]) -> Vec<ike::ChildSaKeys> {
    let mut v: Vec<ike::ChildSaKeys> = vec![];
    for e in ev {
        match e {
            Event::ChildSaInstalled { child, .. } => v.push(child.clone()),
            Event::ChildSaDeleted { spi_in, .. } => v.retain(|c| c.spi_in != *spi_in),
            _ => {}
        }
    }
    v
}

/// One Child SA up on each side, the two mirrored (SPIs and keys), the IKE SA established on
/// both with `ike_alg` and the Child SA with `esp_alg`.
pub fn assert_up(n: &Net, ike_alg: &str, esp_alg: &str) {
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
