//! The IKE responder (an `ike::Endpoint` with a responder connection) fed hostile datagrams.
//! It must never panic and must drop or answer everything per RFC 7296.
//!
//! Byte 0 picks the mode:
//! - 0: the rest is a list of raw datagrams (`[len][flags][bytes]`), delivered to port 500 or
//!   4500 from varying source ports, with time advancing between them;
//! - 1: an honest IKE_SA_INIT is run first (so SK keys exist), then the rest is the plaintext
//!   inner payload chain of an IKE_AUTH request, encrypted with the real keys; if the first
//!   rest byte is odd the correct PSK AUTH value is patched in, so Child SA negotiation
//!   (proposals, traffic selectors) sees hostile payloads;
//! - 2: IKE_SA_INIT and a valid IKE_AUTH first, then authenticated requests with hostile
//!   inner payloads and message IDs (`[exchange][msgid delta][len][payloads]`).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ike::codec::*;
use ike::crypto::{self, DhPrivate, IkeKeys, IkeSuite};
use ike::{ConnectionConfig, DhGroup, Encryption, Endpoint, Identity, Prf, Proposal, Psk, TrafficSelector};
use libfuzzer_sys::fuzz_target;

const PSK: &[u8] = b"fuzz-psk";
const US: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn responder(now: Instant) -> Endpoint {
    let mut ep = Endpoint::new();
    ep.add_connection(
        ConnectionConfig {
            name: "fuzz".into(),
            local_addr: US,
            remote_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            local_id: Identity::Ipv4(Ipv4Addr::new(192, 0, 2, 2)),
            remote_id: None,
            psk: Psk::new(PSK.to_vec()),
            local_ts: vec![TrafficSelector::from_prefix("10.2.0.0".parse().unwrap(), 16)],
            remote_ts: vec![TrafficSelector::from_prefix("10.1.0.0".parse().unwrap(), 16), TrafficSelector::from_prefix("fd00::".parse().unwrap(), 48)],
            ike_proposals: vec!["aes128gcm16-prfsha256-curve25519".parse().unwrap(), "aes128-sha256-curve25519".parse().unwrap()].into(),
            esp_proposals: vec!["aes128gcm16".parse().unwrap(), "aes256-sha1".parse().unwrap()].into(),
            ike_lifetime: Duration::from_secs(3600),
            child_lifetime: Duration::from_secs(1800),
            dpd_timeout: Duration::from_secs(30),
            initiate: false,
            recovery: ike::Recovery::default(),
            selector_pairs: false,
        },
        now,
    );
    ep
}

fn drain(ep: &mut Endpoint) -> Vec<ike::Transmit> {
    while ep.poll_event().is_some() {}
    std::iter::from_fn(|| ep.poll_transmit()).collect()
}

struct Session {
    keys: IkeKeys,
    spi_i: u64,
    spi_r: u64,
    init_request: Vec<u8>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    iv: u64,
}

/// Runs an honest IKE_SA_INIT against `ep`; `cbc` picks the AES-CBC proposal.
fn sa_init(ep: &mut Endpoint, now: Instant, cbc: bool) -> Option<Session> {
    let prop: Proposal = if cbc { "aes128-sha256-curve25519" } else { "aes128gcm16-prfsha256-curve25519" }.parse().ok()?;
    let dh = DhPrivate::generate(DhGroup::Curve25519).ok()?;
    let ni = vec![7u8; 32];
    let spi_i = 0x1122_3344_5566_7788;
    let m = Message {
        header: Header { spi_i, spi_r: 0, next_payload: 0, version: 0x20, exchange: exchange::IKE_SA_INIT, flags: flags::INITIATOR, message_id: 0, length: 0 },
        payloads: vec![
            Payload::new(PayloadBody::Sa(ike::proposal::ike_sa_payload(&[prop.clone()]))),
            Payload::new(PayloadBody::Ke(KePayload { group: 31, data: dh.public().to_vec() })),
            Payload::new(PayloadBody::Nonce(ni.clone())),
        ],
    };
    let init_request = m.encode();
    ep.handle_datagram(now, SocketAddr::new(US, 500), SocketAddr::new(PEER, 500), &init_request).ok()?;
    let resp = drain(ep).into_iter().next()?;
    let r = Message::decode(&resp.payload).ok()?;
    let mut ke = None;
    let mut nr = None;
    for p in &r.payloads {
        match &p.body {
            PayloadBody::Ke(k) => ke = Some(k.data.clone()),
            PayloadBody::Nonce(n) => nr = Some(n.clone()),
            _ => {}
        }
    }
    let shared = dh.agree(&ke?).ok()?;
    let nr = nr?;
    let suite = IkeSuite { encryption: prop.encryption[0], integrity: prop.integrity.first().copied(), prf: Prf::HmacSha256, dh: DhGroup::Curve25519 };
    let keys = crypto::derive_ike_keys(suite, &shared, &ni, &nr, spi_i, r.header.spi_r);
    Some(Session { keys, spi_i, spi_r: r.header.spi_r, init_request, ni, nr, iv: 0 })
}

fn seal(s: &mut Session, exch: ExchangeType, msg_id: u32, inner: &[Payload]) -> Option<Vec<u8>> {
    s.iv += 1;
    let iv = if s.keys.suite.encryption == Encryption::AesCbc128 { [s.iv.to_be_bytes(), s.iv.to_be_bytes()].concat() } else { s.iv.to_be_bytes().to_vec() };
    let header = Header { spi_i: s.spi_i, spi_r: s.spi_r, next_payload: 0, version: 0x20, exchange: exch, flags: flags::INITIATOR, message_id: msg_id, length: 0 };
    let mut out = vec![0, 0, 0, 0];
    out.extend(crypto::protect(&s.keys.direction(true), &header, inner, &iv).ok()?);
    Some(out)
}

fn fix_auth(s: &Session, inner: &mut [Payload]) {
    let id = inner.iter().find_map(|p| match &p.body {
        PayloadBody::IdI(i) => Some(i.rest_of_payload()),
        _ => None,
    });
    let Some(id) = id else { return };
    let auth = crypto::psk_auth(Prf::HmacSha256, PSK, &s.init_request, &s.nr, s.keys.sk_pi(), &id);
    for p in inner.iter_mut() {
        if let PayloadBody::Auth(a) = &mut p.body {
            a.method = 2;
            a.data = auth.to_vec();
        }
    }
}

fn deliver4500(ep: &mut Endpoint, now: Instant, bytes: &[u8]) {
    let _ = ep.handle_datagram(now, SocketAddr::new(US, 4500), SocketAddr::new(PEER, 4500), bytes);
    drain(ep);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut now = Instant::now();
    let mut ep = responder(now);
    match mode % 3 {
        0 => {
            let mut r = rest;
            while r.len() >= 2 {
                let len = r[0] as usize;
                let fl = r[1];
                let body = &r[2..(2 + len).min(r.len())];
                r = &r[(2 + len).min(r.len())..];
                let local = SocketAddr::new(US, if fl & 1 == 0 { 500 } else { 4500 });
                let remote = SocketAddr::new(PEER, 500 + u16::from(fl >> 4));
                let _ = ep.handle_datagram(now, local, remote, body);
                drain(&mut ep);
                if fl & 2 != 0 {
                    now += Duration::from_millis(700 * u64::from(fl >> 2 & 3));
                    ep.handle_timeout(now);
                    drain(&mut ep);
                }
            }
        }
        1 => {
            let Some((&fl, chain)) = rest.split_first() else { return };
            let Some(mut s) = sa_init(&mut ep, now, fl & 2 != 0) else { return };
            let Ok(mut inner) = decode_chain(payload_type::IDI, chain) else { return };
            if fl & 1 == 1 {
                fix_auth(&s, &mut inner);
            }
            if let Some(b) = seal(&mut s, exchange::IKE_AUTH, 1, &inner) {
                deliver4500(&mut ep, now, &b);
                now += Duration::from_secs(31);
                ep.handle_timeout(now);
                drain(&mut ep);
            }
        }
        _ => {
            let Some(mut s) = sa_init(&mut ep, now, rest.first().is_some_and(|b| b & 1 == 1)) else { return };
            let id = IdPayload { id_type: 1, data: vec![192, 0, 2, 1] };
            let mut inner = vec![
                Payload::new(PayloadBody::IdI(id)),
                Payload::new(PayloadBody::Auth(AuthPayload { method: 2, data: vec![] })),
                Payload::new(PayloadBody::Sa(ike::proposal::esp_sa_payload(&["aes128gcm16".parse().unwrap()], 0x1234_5678, false))),
                Payload::new(PayloadBody::TsI(TsPayload { selectors: vec![TsEntry { ts_type: 7, protocol: 0, start_port: 0, end_port: 65535, start: vec![10, 1, 0, 0], end: vec![10, 1, 255, 255] }] })),
                Payload::new(PayloadBody::TsR(TsPayload { selectors: vec![TsEntry { ts_type: 7, protocol: 0, start_port: 0, end_port: 65535, start: vec![10, 2, 0, 0], end: vec![10, 2, 255, 255] }] })),
            ];
            fix_auth(&s, &mut inner);
            let Some(b) = seal(&mut s, exchange::IKE_AUTH, 1, &inner) else { return };
            deliver4500(&mut ep, now, &b);
            assert_eq!(ep.status()[0].state, "established", "harness: honest IKE_AUTH must succeed");
            let _ = (&s.ni, &s.nr);
            let mut msg_id: u32 = 2;
            let mut r = rest.get(1..).unwrap_or_default();
            while r.len() >= 3 {
                let exch = ExchangeType::from(33 + r[0] % 6);
                msg_id = msg_id.wrapping_add(u32::from(r[1] % 4)).wrapping_sub(1);
                let len = r[2] as usize;
                let body = &r[3..(3 + len).min(r.len())];
                r = &r[(3 + len).min(r.len())..];
                let first = body.first().copied().unwrap_or(0);
                let inner = decode_chain(first, body.get(1..).unwrap_or_default()).unwrap_or_default();
                if let Some(b) = seal(&mut s, exch, msg_id, &inner) {
                    deliver4500(&mut ep, now, &b);
                }
                msg_id = msg_id.wrapping_add(1);
                now += Duration::from_secs(5);
                ep.handle_timeout(now);
                drain(&mut ep);
            }
        }
    }
    let _ = ep.status();
});
