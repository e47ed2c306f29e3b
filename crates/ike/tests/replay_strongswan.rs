//! Conformance from captures: exchanges recorded against a real strongSwan (5.9, see the
//! capture headers) are replayed into an endpoint whose randomness comes from the same seed.
//! It must send exactly the octets it sent then (SA payloads, key exchange, nonces, NAT
//! hashes, CBC IVs, AUTH), accept strongSwan's messages, and derive the same Child SA keys —
//! a change in what we send or how we derive keys shows up here without strongSwan installed.

mod common;

use common::capture::{self, Record};
use ike::rng::SeededRandom;
use ike::{Endpoint, Event};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn replay(name: &str, we_initiate: bool) {
    let path = format!("{}/tests/captures/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (records, children) = capture::read(&text);
    assert!(
        records.len() >= 4,
        "{path}: a whole IKE_SA_INIT and IKE_AUTH"
    );
    let mut ep = Endpoint::with_random(Box::new(SeededRandom::new(capture::SEED)));
    let t0 = Instant::now();
    ep.add_connection(capture::config(we_initiate), t0);
    let ours: SocketAddr = format!("{}:500", capture::OURS).parse().unwrap();
    for (i, r) in records.iter().enumerate() {
        let at = t0 + Duration::from_millis(r.at_ms);
        let Record {
            out,
            local_port,
            peer,
            bytes,
            ..
        } = r;
        if *out {
            if ep.poll_timeout().is_some_and(|t| t <= at) {
                ep.handle_timeout(at);
            }
            let t = ep.poll_transmit().unwrap_or_else(|| {
                panic!(
                    "{name}: record {i}: we sent nothing, the capture has {} octets",
                    bytes.len()
                )
            });
            assert_eq!(
                (t.local_port, t.remote),
                (*local_port, *peer),
                "{name}: record {i}: where it went"
            );
            assert!(
                t.payload == *bytes,
                "{name}: record {i}: we sent other octets than recorded\n ours {}\n then {}",
                hex::encode(&t.payload),
                hex::encode(bytes)
            );
        } else {
            let local = SocketAddr::new(ours.ip(), *local_port);
            ep.handle_datagram(at, local, *peer, bytes)
                .unwrap_or_else(|e| {
                    panic!("{name}: record {i}: strongSwan's message refused: {e}")
                });
        }
    }
    assert!(ep.poll_transmit().is_none(), "{name}: nothing more to send");
    let events: Vec<Event> = std::iter::from_fn(|| ep.poll_event()).collect();
    let installed: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaInstalled { child, .. } => Some(capture::child_fingerprint(child)),
            _ => None,
        })
        .collect();
    assert_eq!(
        installed, children,
        "{name}: the same Child SA keys: {events:?}"
    );
    assert_eq!(ep.status()[0].state, "established");
}

#[test]
fn strongswan_initiates_replayed() {
    replay("strongswan-initiates", false);
}

#[test]
fn we_initiate_replayed() {
    replay("we-initiate", true);
}

/// The replay is not vacuous: another seed sends other octets at once.
#[test]
fn another_seed_diverges() {
    let mut a = Endpoint::with_random(Box::new(SeededRandom::new(capture::SEED)));
    let mut b = Endpoint::with_random(Box::new(SeededRandom::new(b"another seed")));
    let t0 = Instant::now();
    a.add_connection(capture::config(true), t0);
    b.add_connection(capture::config(true), t0);
    assert_ne!(
        a.poll_transmit().unwrap().payload,
        b.poll_transmit().unwrap().payload
    );
}
