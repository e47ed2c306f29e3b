//! Recorded exchanges with a real strongSwan, replayed deterministically: our side drew every
//! random value from a seeded generator while it was recorded, so fed the same datagrams it
//! must answer with the same octets. The recording is made by
//! `strongswan_interop::record_captures_for_replay` (ignored by default: it needs root and
//! charon), the replay by `replay_strongswan.rs`.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use ike::{ChildSaKeys, ConnectionConfig, Identity};

use super::Conn;

/// The seed our side's randomness came from.
pub const SEED: &[u8] = b"hybridnet capture seed 1";
/// Our address in the recording lab.
pub const OURS: &str = "192.0.2.1";
/// strongSwan's.
pub const THEIRS: &str = "192.0.2.2";
/// IKE proposal of both sides (CBC, so the IVs of our protected messages are random too).
pub const IKE: &str = "aes256-sha256-ecp384";
/// ESP proposal of both sides.
pub const ESP: &str = "aes256gcm16";
/// The pre-shared key of the recording (a test value).
pub const PSK: &str = "capture-psk-not-a-secret";

/// Our connection in the recording; `initiate` picks the role.
pub fn config(initiate: bool) -> ConnectionConfig {
    Conn::new(OURS.parse().unwrap(), THEIRS.parse().unwrap())
        .name("capture")
        .local_id("gw-a.lab.example".parse().unwrap())
        .remote_id(Identity::Fqdn("gw-b.lab.example".into()))
        .psk(PSK)
        .ike(IKE)
        .esp(ESP)
        .dpd(Duration::from_secs(30))
        .initiate(initiate)
        .build()
}

/// One datagram our endpoint received or sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Sent by us (else received).
    pub out: bool,
    /// Milliseconds after the connection was added.
    pub at_ms: u64,
    /// Our port (500 or 4500).
    pub local_port: u16,
    /// strongSwan's address and port.
    pub peer: SocketAddr,
    /// The UDP payload.
    pub bytes: Vec<u8>,
}

/// A fingerprint of a Child SA's keys (SHA-256 over SPIs and keys), so a capture can say which
/// keys the exchange produced without holding them in the clear next to the PSK.
pub fn child_fingerprint(c: &ChildSaKeys) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(&c.spi_in.to_be_bytes());
    ctx.update(&c.spi_out.to_be_bytes());
    for k in [
        &c.enc_key_in,
        &c.enc_key_out,
        &c.integ_key_in,
        &c.integ_key_out,
    ] {
        ctx.update(&(k.len() as u32).to_be_bytes());
        ctx.update(k);
    }
    hex::encode(ctx.finish())
}

/// The capture file: comment lines, then `in|out MS PORT PEER HEX` per datagram and one
/// `child FINGERPRINT` per Child SA installed.
pub fn write(records: &[Record], children: &[String], about: &str) -> String {
    let mut s = String::new();
    for l in about.lines() {
        let _ = writeln!(s, "# {l}");
    }
    for r in records {
        let _ = writeln!(
            s,
            "{} {} {} {} {}",
            if r.out { "out" } else { "in" },
            r.at_ms,
            r.local_port,
            r.peer,
            hex::encode(&r.bytes)
        );
    }
    for c in children {
        let _ = writeln!(s, "child {c}");
    }
    s
}

/// Parses a capture file: (records, child fingerprints).
pub fn read(text: &str) -> (Vec<Record>, Vec<String>) {
    let (mut records, mut children) = (vec![], vec![]);
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["child", fp] => children.push(fp.to_string()),
            [dir, ms, port, peer, hexed] => records.push(Record {
                out: *dir == "out",
                at_ms: ms.parse().expect("ms"),
                local_port: port.parse().expect("port"),
                peer: peer.parse().expect("peer"),
                bytes: hex::decode(hexed).expect("hex"),
            }),
            _ => panic!("bad capture line {l:?}"),
        }
    }
    (records, children)
}
