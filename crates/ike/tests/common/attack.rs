//! An attacker on the path between two established endpoints: it sees every datagram and
//! injects its own from either peer's address and ports — forged IKE_SA_INIT requests and
//! responses, replays, truncations, bit flips, encrypted-looking messages with the live SPIs,
//! whole handshakes with a wrong key, garbage. Attacks are decoded from a byte script, so a
//! property test and a fuzz target drive the same attacker; the oracle is that the tunnel
//! survives, not only that nothing panics.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ike::codec::{
    exchange, flags, notify, transform_type, ExchangeType, Header, KePayload, Message,
    NotifyPayload, NotifyType, Payload, PayloadBody, ProposalSub, ProtocolId, SaPayload, Transform,
    TransformType,
};
use ike::{ChildSaKeys, Event};

use super::{Conn, Net, A, B};

/// IKE and ESP proposals of the established pair.
pub const IKE: &str = "aes256gcm16-prfsha384-ecp384";
/// ESP proposal of the established pair (with PFS, so rekeys run a DH too).
pub const ESP: &str = "aes256gcm16-ecp384";

/// What the attacker starts from: an established pair and what each side had then.
pub struct Baseline {
    /// Events each side had reported before the attack.
    pub events: (usize, usize),
    /// IKE SPIs (initiator, responder) of each side's connection.
    pub spis: ((u64, u64), (u64, u64)),
    /// Child SAs installed on each side.
    pub children: (Vec<ChildSaKeys>, Vec<ChildSaKeys>),
    /// NAT flags (local, remote) of each side.
    pub nat: ((bool, bool), (bool, bool)),
}

/// A and B connected (A initiates), with long lifetimes so nothing rekeys by itself.
pub fn established() -> (Net, Baseline) {
    let mut n = super::establish(IKE, ESP);
    n.run_for(Duration::from_millis(10));
    let sa = &n.a.status()[0];
    let sb = &n.b.status()[0];
    assert_eq!(sa.state, "established");
    assert_eq!(sb.state, "established");
    let base = Baseline {
        events: (n.ev_a.len(), n.ev_b.len()),
        spis: ((sa.ike_spi_i, sa.ike_spi_r), (sb.ike_spi_i, sb.ike_spi_r)),
        children: (super::live(&n.ev_a), super::live(&n.ev_b)),
        nat: ((sa.nat_local, sa.nat_remote), (sb.nat_local, sb.nat_remote)),
    };
    assert_eq!(base.children.0.len(), 1);
    assert_eq!(base.children.1.len(), 1);
    (n, base)
}

/// Reads attack parameters off the script; missing bytes read as zero.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |v, _| (v << 8) | u64::from(self.u8()))
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = usize::from(self.u8()) % (max + 1);
        let n = n.min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b.to_vec()
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// Hands `payload` to A (`to_a`) or B as if the other peer sent it from `port`.
fn inject(n: &mut Net, to_a: bool, port: u16, payload: &[u8]) {
    let (dst, dst_ip, src_ip) = if to_a {
        (&mut n.a, A, B)
    } else {
        (&mut n.b, B, A)
    };
    let local_port = if port == 500 { 500 } else { 4500 };
    let _ = dst.handle_datagram(
        n.now,
        SocketAddr::new(dst_ip, local_port),
        SocketAddr::new(src_ip, port),
        payload,
    );
}

fn with_marker(port: u16, msg: Vec<u8>) -> Vec<u8> {
    if port == 500 {
        msg
    } else {
        let mut v = vec![0, 0, 0, 0];
        v.extend(msg);
        v
    }
}

fn transform(kind: TransformType, id: u16) -> Transform {
    Transform {
        kind,
        id,
        attributes: vec![],
    }
}

fn notify_payload(kind: NotifyType, data: Vec<u8>) -> Payload {
    Payload::new(PayloadBody::Notify(NotifyPayload {
        protocol: ProtocolId::Unspecified,
        spi: vec![],
        kind,
        data,
    }))
}

/// An IKE_SA_INIT request that nobody will finish: 3DES/MD5/MODP768 (refused), the pair's
/// own proposal with a real KE (accepted: a half-open SA), the right proposal with the
/// wrong KE group, or a KE that is not a curve point.
fn forged_init(n: &mut Net, kind: u8, spi_i: u64, script: &mut Script) -> Vec<u8> {
    if kind % 4 == 1 {
        let mut e = n.endpoint();
        let now = n.now;
        e.add_connection(
            Conn::new(A, B)
                .ike(IKE)
                .esp(ESP)
                .psk("x")
                .initiate(true)
                .build(),
            now,
        );
        return e.poll_transmit().expect("IKE_SA_INIT").payload;
    }
    let (sa, ke) = match kind % 4 {
        0 => (
            SaPayload {
                proposals: vec![ProposalSub {
                    number: 1,
                    protocol: ProtocolId::Ike,
                    spi: vec![],
                    transforms: vec![
                        transform(transform_type::ENCR, 3),
                        transform(transform_type::PRF, 1),
                        transform(transform_type::INTEG, 1),
                        transform(transform_type::DH, 1),
                    ],
                }],
            },
            KePayload {
                group: 1,
                data: vec![7; 96],
            },
        ),
        k => {
            let sa = ike::proposal::ike_sa_payload(&[IKE.parse().expect("proposal")]);
            let ke = if k == 2 {
                KePayload {
                    group: 19,
                    data: vec![1; 64],
                }
            } else {
                KePayload {
                    group: 20,
                    data: script.bytes(96),
                }
            };
            (sa, ke)
        }
    };
    Message {
        header: Header {
            spi_i,
            spi_r: 0,
            next_payload: 0,
            version: 0x20,
            exchange: exchange::IKE_SA_INIT,
            flags: flags::INITIATOR,
            message_id: 0,
            length: 0,
        },
        payloads: vec![
            Payload::new(PayloadBody::Sa(sa)),
            Payload::new(PayloadBody::Ke(ke)),
            Payload::new(PayloadBody::Nonce(vec![9; 32])),
        ],
    }
    .encode()
}

/// An unauthenticated IKE_SA_INIT response to one of the live SPIs.
fn forged_init_response(spi_i: u64, spi_r: u64, script: &mut Script) -> Vec<u8> {
    let kinds = [
        notify::NO_PROPOSAL_CHOSEN,
        notify::INVALID_KE_PAYLOAD,
        notify::COOKIE,
        notify::AUTHENTICATION_FAILED,
        notify::INVALID_SYNTAX,
        notify::TS_UNACCEPTABLE,
    ];
    let k = script.u8();
    let kind = kinds
        .get(usize::from(k) % (kinds.len() + 1))
        .copied()
        .unwrap_or_else(|| NotifyType::from(script.u16()));
    let data = script.bytes(16);
    Message {
        header: Header {
            spi_i,
            spi_r,
            next_payload: 0,
            version: 0x20,
            exchange: exchange::IKE_SA_INIT,
            flags: flags::RESPONSE,
            message_id: 0,
            length: 0,
        },
        payloads: vec![notify_payload(kind, data)],
    }
    .encode()
}

/// A message with the live SPIs, an exchange and message ID of the attacker's choice and
/// an SK payload it cannot have encrypted.
fn forged_encrypted(spis: (u64, u64), from_initiator: bool, script: &mut Script) -> Vec<u8> {
    let exch = ExchangeType::from(u8::from(exchange::IKE_SA_INIT) + script.u8() % 4);
    let response = script.u8() % 2 == 1;
    let message_id = u32::from(script.u8() % 8);
    let body = script.bytes(120);
    let mut fl = if from_initiator { flags::INITIATOR } else { 0 };
    if response {
        fl |= flags::RESPONSE;
    }
    let header = Header {
        spi_i: spis.0,
        spi_r: spis.1,
        next_payload: 46,
        version: 0x20,
        exchange: exch,
        flags: fl,
        message_id,
        length: (28 + 4 + body.len()) as u32,
    };
    let mut out = Vec::new();
    header.encode(&mut out);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&((4 + body.len()) as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A complete handshake from the peer's address with a wrong pre-shared key (an attacker on
/// the path receives the responses): IKE_SA_INIT and an IKE_AUTH with INITIAL_CONTACT.
fn wrong_key_handshake(n: &mut Net, to_a: bool) {
    let (local, remote) = if to_a { (B, A) } else { (A, B) };
    let mut mallory = n.endpoint();
    mallory.add_connection(
        Conn::new(local, remote)
            .ike(IKE)
            .esp(ESP)
            .psk("guess")
            .initiate(true)
            .build(),
        n.now,
    );
    for _ in 0..4 {
        let mut to_victim = vec![];
        while let Some(t) = mallory.poll_transmit() {
            to_victim.push(t);
        }
        if to_victim.is_empty() {
            break;
        }
        for t in to_victim {
            inject(n, to_a, t.local_port, &t.payload);
        }
        // the victim's answers go to the real peer (which drops them) and to mallory
        let victim = if to_a { &mut n.a } else { &mut n.b };
        let mut answers = vec![];
        while let Some(t) = victim.poll_transmit() {
            answers.push(t);
        }
        for t in answers {
            let _ = mallory.handle_datagram(
                n.now,
                SocketAddr::new(local, t.remote.port()),
                SocketAddr::new(remote, t.local_port),
                &t.payload,
            );
            let peer = if to_a { &mut n.b } else { &mut n.a };
            let _ = peer.handle_datagram(
                n.now,
                SocketAddr::new(local, t.remote.port()),
                SocketAddr::new(remote, t.local_port),
                &t.payload,
            );
        }
    }
    n.pump();
}

/// A datagram seen on the wire, by index (wrapping), with where it came from.
fn seen(n: &Net, i: u16) -> Option<(bool, u16, Vec<u8>)> {
    if n.wire.is_empty() {
        return None;
    }
    Some(n.wire[usize::from(i) % n.wire.len()].clone())
}

/// Runs the attack script against the pair, letting the endpoints answer after each step.
pub fn attack(n: &mut Net, base: &Baseline, script: &[u8]) {
    let mut s = Script(script);
    let mut steps = 0;
    while !s.done() && steps < 64 {
        steps += 1;
        let op = s.u8();
        let to_a = op & 0x80 != 0;
        let port = if op & 0x40 != 0 { 4500 } else { 500 };
        match (op & 0x3f) % 10 {
            0 => {
                let kind = s.u8();
                let spi = s.u64() | 1;
                let m = forged_init(n, kind, spi, &mut s);
                inject(n, to_a, port, &with_marker(port, m));
            }
            1 => {
                let (spi_i, spi_r) = if s.u8() % 2 == 0 {
                    base.spis.0
                } else {
                    (base.spis.0 .0, 0)
                };
                let m = forged_init_response(spi_i, spi_r, &mut s);
                inject(n, to_a, port, &with_marker(port, m));
            }
            2 => {
                let i = s.u16();
                if let Some((from_a, p, bytes)) = seen(n, i) {
                    // to its receiver again, or reflected back to its sender
                    let to = if s.u8() % 2 == 0 { !from_a } else { from_a };
                    inject(n, to, p, &bytes);
                }
            }
            3 => {
                let i = s.u16();
                let cut = usize::from(s.u16());
                if let Some((from_a, p, bytes)) = seen(n, i) {
                    let cut = cut % bytes.len().max(1);
                    inject(n, !from_a, p, &bytes[..cut]);
                }
            }
            4 => {
                let i = s.u16();
                let flips = 1 + s.u8() % 4;
                if let Some((from_a, p, mut bytes)) = seen(n, i) {
                    for _ in 0..flips {
                        let pos = usize::from(s.u16()) % bytes.len().max(1);
                        let x = s.u8().max(1);
                        if let Some(b) = bytes.get_mut(pos) {
                            *b ^= x;
                        }
                    }
                    inject(n, !from_a, p, &bytes);
                }
            }
            5 => {
                // to A the forgery claims to come from the responder B, and vice versa
                let m = forged_encrypted(base.spis.0, !to_a, &mut s);
                inject(n, to_a, 4500, &with_marker(4500, m));
            }
            6 => wrong_key_handshake(n, to_a),
            7 => {
                let g = s.bytes(64);
                inject(n, to_a, port, &g);
            }
            8 => {
                let ms = u64::from(s.u8()) * 40;
                n.run_for(Duration::from_millis(ms));
            }
            _ => {
                // a flood of IKE_SA_INITs from the peer's address, all accepted proposals
                let count = 1 + s.u8() % 48;
                for _ in 0..count {
                    let spi = s.u64() | 1;
                    let m = forged_init(n, 1, spi, &mut s);
                    inject(n, to_a, port, &with_marker(port, m));
                }
            }
        }
        n.pump();
    }
}

fn cipher(c: &ChildSaKeys) -> esp::Cipher {
    match c.encryption {
        ike::Encryption::AesGcm16_256 => esp::Cipher::AesGcm256,
        ike::Encryption::AesGcm16_128 => esp::Cipher::AesGcm128,
        other => panic!("the pair uses GCM, not {other:?}"),
    }
}

/// One packet sealed with `from`'s outbound keys opens with `to`'s inbound keys.
fn passes(from: &ChildSaKeys, to: &ChildSaKeys) -> bool {
    let Ok(mut out) = esp::OutboundSa::new(from.spi_out, cipher(from), &from.enc_key_out, &[])
    else {
        return false;
    };
    let Ok(mut inb) = esp::InboundSa::new(to.spi_in, cipher(to), &to.enc_key_in, &[]) else {
        return false;
    };
    let mut inner = vec![0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0];
    inner.extend_from_slice(&[10, 1, 1, 4, 10, 2, 1, 4, 0, 7, 0, 7, 0, 8, 0, 0]);
    let mut buf = vec![0u8; 256];
    let Ok(len) = out.seal(&inner, &mut buf) else {
        return false;
    };
    inb.open(&mut buf[..len])
        .is_ok_and(|p| p == inner.as_slice())
}

/// The oracle: after the attack both ends still hold the same IKE SA and Child SAs, reported
/// nothing going down, pass traffic both ways, and can still run an exchange (a rekey).
pub fn assert_survived(n: &mut Net, base: &Baseline) -> Result<(), String> {
    n.run_for(Duration::from_secs(2));
    for (side, ev, from) in [("A", &n.ev_a, base.events.0), ("B", &n.ev_b, base.events.1)] {
        for e in &ev[from..] {
            match e {
                Event::ConnectionDown { reason, .. } => {
                    return Err(format!("{side} went down: {reason}"))
                }
                Event::ChildSaDeleted { spi_in, .. } => {
                    return Err(format!("{side} deleted Child SA {spi_in:08x}"))
                }
                Event::ChildSaInstalled { child, .. } => {
                    return Err(format!("{side} installed a Child SA: {child:?}"))
                }
                Event::IkeSaEstablished { .. } => {
                    return Err(format!("{side} established another IKE SA"))
                }
                Event::AttemptFailed { .. } => {}
            }
        }
    }
    let (sa, sb) = (&n.a.status()[0], &n.b.status()[0]);
    for (side, st, spis, nat) in [
        ("A", sa, base.spis.0, base.nat.0),
        ("B", sb, base.spis.1, base.nat.1),
    ] {
        if st.state != "established" || (st.ike_spi_i, st.ike_spi_r) != spis {
            return Err(format!("{side}: {st:?}, expected SPIs {spis:x?}"));
        }
        if (st.nat_local, st.nat_remote) != nat
            || st.remote != Some(SocketAddr::new(other(side), 4500))
        {
            return Err(format!("{side}: NAT flags or peer changed: {st:?}"));
        }
    }
    let (ca, cb) = (&base.children.0[0], &base.children.1[0]);
    if !passes(ca, cb) || !passes(cb, ca) {
        return Err("ESP does not pass between the original Child SAs".into());
    }
    // the IKE SA still works: a Child SA rekey runs through and both sides agree
    let now = n.now;
    n.a.rekey_now(n.conns_a[0], false, now);
    n.run_for(Duration::from_secs(3));
    let (la, lb) = (super::live(&n.ev_a), super::live(&n.ev_b));
    if la.len() != 1 || lb.len() != 1 || la[0].spi_in == ca.spi_in {
        return Err(format!("rekey after the attack failed: A {la:?} B {lb:?}"));
    }
    if !passes(&la[0], &lb[0]) || !passes(&lb[0], &la[0]) {
        return Err("ESP does not pass between the rekeyed Child SAs".into());
    }
    Ok(())
}

fn other(side: &str) -> IpAddr {
    if side == "A" {
        B
    } else {
        A
    }
}
