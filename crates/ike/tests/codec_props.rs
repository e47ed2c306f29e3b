//! Property tests: every message the codec can express encodes and decodes back to itself,
//! decoding then re-encoding reproduces the octets, arbitrary input never panics, SK payload
//! protection round-trips and detects tampering, and proposal strings print back as parsed.

use proptest::prelude::*;

use ike::codec::*;
use ike::config::{DhGroup, Encryption, Integrity, Prf, Proposal};
use ike::crypto::{self, IkeSuite};

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        (0u16..0x8000, any::<u16>()).prop_map(|(kind, value)| Attribute::Tv { kind, value }),
        (0u16..0x8000, bytes(8)).prop_map(|(kind, value)| Attribute::Tlv { kind, value }),
    ]
}

fn transform() -> impl Strategy<Value = Transform> {
    (
        1u8..6,
        any::<u16>(),
        proptest::collection::vec(attribute(), 0..3),
    )
        .prop_map(|(kind, id, attributes)| Transform {
            kind: kind.into(),
            id,
            attributes,
        })
}

fn proposal_sub() -> impl Strategy<Value = ProposalSub> {
    (
        any::<u8>(),
        1u8..4,
        prop_oneof![Just(0usize), Just(4), Just(8)],
        proptest::collection::vec(transform(), 0..6),
        any::<[u8; 8]>(),
    )
        .prop_map(|(number, protocol, spi_len, transforms, spi)| ProposalSub {
            number,
            protocol: protocol.into(),
            spi: spi[..spi_len].to_vec(),
            transforms,
        })
}

fn ts_entry() -> impl Strategy<Value = TsEntry> {
    (
        any::<bool>(),
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
    )
        .prop_map(|(v6, protocol, start_port, end_port, s, e)| {
            let n = if v6 { 16 } else { 4 };
            TsEntry {
                ts_type: if v6 { 8 } else { 7 },
                protocol,
                start_port,
                end_port,
                start: s[..n].to_vec(),
                end: e[..n].to_vec(),
            }
        })
}

fn body() -> impl Strategy<Value = PayloadBody> {
    prop_oneof![
        proptest::collection::vec(proposal_sub(), 1..4)
            .prop_map(|proposals| PayloadBody::Sa(SaPayload { proposals })),
        (any::<u16>(), bytes(100))
            .prop_map(|(group, data)| PayloadBody::Ke(KePayload { group, data })),
        (any::<u8>(), bytes(40))
            .prop_map(|(id_type, data)| PayloadBody::IdI(IdPayload { id_type, data })),
        (any::<u8>(), bytes(40))
            .prop_map(|(id_type, data)| PayloadBody::IdR(IdPayload { id_type, data })),
        (any::<u8>(), bytes(64))
            .prop_map(|(method, data)| PayloadBody::Auth(AuthPayload { method, data })),
        bytes(64).prop_map(PayloadBody::Nonce),
        (any::<u8>(), bytes(8), any::<u16>(), bytes(40)).prop_map(|(protocol, spi, kind, data)| {
            PayloadBody::Notify(NotifyPayload {
                protocol: protocol.into(),
                spi,
                kind: kind.into(),
                data,
            })
        }),
        (any::<u8>(), 0u8..9, 0usize..4, any::<[u8; 32]>()).prop_map(
            |(protocol, spi_size, n, raw)| {
                let spis = (0..n)
                    .map(|i| raw[i * spi_size as usize % 24..][..spi_size as usize].to_vec())
                    .collect();
                PayloadBody::Delete(DeletePayload {
                    protocol: protocol.into(),
                    spi_size,
                    spis,
                })
            }
        ),
        bytes(40).prop_map(PayloadBody::VendorId),
        proptest::collection::vec(ts_entry(), 0..4)
            .prop_map(|selectors| PayloadBody::TsI(TsPayload { selectors })),
        proptest::collection::vec(ts_entry(), 0..4)
            .prop_map(|selectors| PayloadBody::TsR(TsPayload { selectors })),
        (prop_oneof![1u8..33, 49u8..53, 54u8..=255], bytes(40))
            .prop_map(|(kind, data)| PayloadBody::Other { kind, data }),
    ]
}

fn payload() -> impl Strategy<Value = Payload> {
    (any::<bool>(), body()).prop_map(|(critical, body)| {
        let critical = critical && !matches!(body, PayloadBody::Other { .. });
        Payload { critical, body }
    })
}

fn message() -> impl Strategy<Value = Message> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
        proptest::collection::vec(payload(), 0..6),
        proptest::option::of((33u8..46, bytes(64))),
    )
        .prop_map(
            |(spi_i, spi_r, exchange, fl, message_id, mut payloads, sk)| {
                if let Some((first_inner, data)) = sk {
                    payloads.push(Payload::new(PayloadBody::Sk(SkPayload {
                        first_inner,
                        data,
                    })));
                }
                let mut m = Message {
                    header: Header {
                        spi_i,
                        spi_r,
                        next_payload: 0,
                        version: 0x20,
                        exchange: exchange.into(),
                        flags: fl,
                        message_id,
                        length: 0,
                    },
                    payloads,
                };
                let enc = m.encode();
                m.header.next_payload = enc[16];
                m.header.length = enc.len() as u32;
                m
            },
        )
}

fn suite() -> impl Strategy<Value = IkeSuite> {
    // every IKE cipher (NULL is ESP only), integrity and PRF, the legacy ones included
    let ike_ciphers: Vec<Encryption> = Encryption::ALL
        .into_iter()
        .filter(|e| *e != Encryption::Null)
        .collect();
    (
        0..ike_ciphers.len(),
        0..Integrity::ALL.len(),
        0..Prf::ALL.len(),
    )
        .prop_map(move |(e, i, p)| {
            let encryption = ike_ciphers[e];
            IkeSuite {
                encryption,
                integrity: if encryption.is_aead() {
                    None
                } else {
                    Some(Integrity::ALL[i])
                },
                prf: Prf::ALL[p],
                dh: DhGroup::Ecp256,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn message_round_trip(m in message()) {
        let enc = m.encode();
        let dec = Message::decode(&enc).unwrap();
        prop_assert_eq!(&dec, &m);
        prop_assert_eq!(dec.encode(), enc);
    }

    #[test]
    fn arbitrary_input_never_panics(b in bytes(300)) {
        let _ = Message::decode(&b);
        let _ = decode_chain(33, &b);
        let _ = sk_offset(&b);
    }

    #[test]
    fn mutated_messages_never_panic_and_reencode_when_valid(m in message(), pos in any::<usize>(), val in any::<u8>()) {
        let mut enc = m.encode();
        let i = pos % enc.len();
        enc[i] = val;
        if let Ok(d) = Message::decode(&enc) {
            // Whatever parses must encode to a message that parses to the same thing.
            let again = d.encode();
            prop_assert_eq!(Message::decode(&again).unwrap(), d);
        }
    }

    #[test]
    fn sk_protect_round_trip_and_tamper(s in suite(), inner in proptest::collection::vec(payload(), 0..4), flip in any::<usize>(), key_seed in any::<u8>()) {
        let keys = crypto::derive_ike_keys(s, &[key_seed; 32], &[1; 32], &[2; 32], 7, 9);
        let dir = keys.direction(true);
        let iv = vec![4u8; s.encryption.iv_len()];
        let header = Header { spi_i: 7, spi_r: 9, next_payload: 0, version: 0x20, exchange: exchange::INFORMATIONAL, flags: flags::INITIATOR, message_id: 5, length: 0 };
        let msg = crypto::protect(&dir, &header, &inner, &iv).unwrap();
        let (h, got) = crypto::unprotect(&dir, &msg).unwrap();
        prop_assert_eq!(h.message_id, 5);
        prop_assert_eq!(&got, &inner);
        // The other direction's keys cannot open it.
        prop_assert!(crypto::unprotect(&keys.direction(false), &msg).is_err());
        let mut bad = msg.clone();
        let i = flip % bad.len();
        bad[i] ^= 0x40;
        prop_assert!(crypto::unprotect(&dir, &bad).is_err());
    }

    #[test]
    fn proposal_strings_round_trip(e in proptest::collection::btree_set(0usize..6, 1..3), gcm in any::<bool>(), i in proptest::collection::btree_set(0usize..4, 0..3), p in proptest::collection::btree_set(0usize..4, 0..3), d in proptest::collection::btree_set(0usize..7, 0..3), esn in any::<bool>()) {
        let family: Vec<Encryption> = Encryption::ALL.into_iter().filter(|c| c.is_aead() == gcm).collect();
        let mut encs: Vec<Encryption> = Vec::new();
        for c in e.iter().map(|x| family[x % family.len()]) {
            if !encs.contains(&c) {
                encs.push(c);
            }
        }
        let prop = Proposal {
            encryption: encs,
            integrity: if gcm { vec![] } else { i.iter().map(|x| Integrity::ALL[*x]).collect() },
            prf: p.iter().map(|x| Prf::ALL[*x]).collect(),
            dh: d.iter().map(|x| DhGroup::ALL[*x]).collect(),
            esn,
        };
        let text = prop.to_string();
        let back: Proposal = text.parse().unwrap();
        // An empty PRF list parses back as the PRFs implied by the integrity algorithms.
        if prop.prf.is_empty() {
            let implied: Vec<Prf> = prop.integrity.iter().map(|i| i.implied_prf()).collect();
            prop_assert_eq!(&back.prf, &implied);
        } else {
            prop_assert_eq!(&back, &prop);
        }
        prop_assert_eq!(back.to_string(), back.clone().to_string());
        let reparsed: Proposal = back.to_string().parse().unwrap();
        prop_assert_eq!(reparsed, back);
    }
}

#[test]
fn proposal_strings_from_the_brief() {
    for s in [
        "aes256gcm16-prfsha384-ecp384",
        "aes256-sha256-modp2048",
        "aes128-sha1-modp1024",
        "aes256-sha384-ecp384",
        "aes128gcm16-prfsha256-curve25519",
        "aes256-sha256-modp2048s256",
        "aes256gcm16-ecp384",
        "aes256gcm16",
    ] {
        let p: Proposal = s.parse().unwrap();
        assert_eq!(p.to_string(), s);
    }
    let p: Proposal = "aes256-sha256-modp2048".parse().unwrap();
    assert_eq!(p.prf, vec![Prf::HmacSha256]);
    assert_eq!(p.encryption, vec![Encryption::AesCbc256]);
    let esp: Proposal = "aes256gcm16-ecp384".parse().unwrap();
    assert_eq!(esp.dh, vec![DhGroup::Ecp384]);
    assert!(
        "aes256gcm128".parse::<Proposal>().is_err(),
        "gcm128 is not an alias here"
    );
    assert!("aes256gcm16-sha256".parse::<Proposal>().is_err());
    // Azure's legacy policy values parse (and print back) as strongSwan spells them
    for s in [
        "3des-md5-modp768",
        "des-sha1-modp1024",
        "aes192-sha256-modp2048",
        "aes192gcm16",
        "null-md5",
    ] {
        let p: Proposal = s.parse().unwrap();
        assert_eq!(p.to_string(), s);
    }
    assert!("3des-md5-modp768"
        .parse::<Proposal>()
        .unwrap()
        .validate_ike()
        .is_ok());
    let null_ike = "null-sha1-modp2048"
        .parse::<Proposal>()
        .unwrap()
        .validate_ike();
    assert!(
        null_ike
            .unwrap_err()
            .to_string()
            .contains("NULL encryption"),
        "NULL is ESP only"
    );
    assert!("3des-md4".parse::<Proposal>().is_err());
    assert!(
        "aes256gcm16-ecp384"
            .parse::<Proposal>()
            .unwrap()
            .validate_ike()
            .is_err(),
        "IKE GCM needs a PRF"
    );
}

#[test]
fn unknown_critical_payload_is_rejected_and_non_critical_skipped() {
    // Header + one unknown payload type 200 (next 0, flags, length 8, 4 octets body).
    let mut m = Message {
        header: Header {
            spi_i: 1,
            spi_r: 2,
            next_payload: 0,
            version: 0x20,
            exchange: ike::codec::ExchangeType::Informational,
            flags: 8,
            message_id: 1,
            length: 0,
        },
        payloads: vec![
            Payload::new(PayloadBody::Other {
                kind: 200,
                data: vec![1, 2, 3, 4],
            }),
            Payload::new(PayloadBody::Nonce(vec![9; 16])),
        ],
    };
    let enc = m.encode();
    let d = Message::decode(&enc).unwrap();
    assert_eq!(d.payloads.len(), 2);
    let mut crit = enc.clone();
    crit[29] = 0x80;
    assert_eq!(
        Message::decode(&crit).unwrap_err(),
        ike::DecodeError::UnsupportedCriticalPayload(200)
    );
    m.payloads.clear();
    assert_eq!(Message::decode(&m.encode()).unwrap().payloads.len(), 0);
}
