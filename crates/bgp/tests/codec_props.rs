//! Properties of the codec: every message it can build encodes and decodes back to itself,
//! arbitrary octets never make decoding or framing panic, and a decoded message re-encodes to
//! something that decodes to the same message.

use std::net::Ipv4Addr;

use bgp::codec::frame;
use bgp::{
    AsPath, AsSegment, Capability, ErrorCode, Message, Notification, Open, Origin, PathAttributes,
    RawAttribute, RouteRefresh, Update,
};
use ipnet::Ipv4Net;
use proptest::prelude::*;

fn unicast() -> impl Strategy<Value = Ipv4Addr> {
    (1u8..224, any::<[u8; 3]>()).prop_map(|(a, [b, c, d])| Ipv4Addr::new(a, b, c, d))
}

fn prefix() -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), 0u8..=32)
        .prop_map(|(a, len)| Ipv4Net::new(Ipv4Addr::from(a), len).unwrap().trunc())
}

fn capability() -> impl Strategy<Value = Capability> {
    prop_oneof![
        (any::<u16>(), any::<u8>()).prop_map(|(afi, safi)| Capability::Multiprotocol { afi, safi }),
        Just(Capability::RouteRefresh),
        any::<u32>().prop_map(Capability::FourOctetAs),
        ((3u8..64), proptest::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        any::<u16>(),
        prop_oneof![Just(0u16), 3u16..],
        unicast(),
        proptest::collection::vec(capability(), 0..8),
    )
        .prop_map(|(my_as, hold_time, bgp_id, capabilities)| Open {
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
}

fn segment() -> impl Strategy<Value = AsSegment> {
    let asns = proptest::collection::vec(any::<u32>(), 1..12);
    prop_oneof![
        asns.clone().prop_map(AsSegment::Sequence),
        asns.prop_map(AsSegment::Set)
    ]
}

fn raw_attribute() -> impl Strategy<Value = RawAttribute> {
    (
        prop_oneof![Just(0x80u8), Just(0xc0), Just(0xe0), Just(0x90), Just(0xd0)],
        7u8..=255,
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(flags, type_code, value)| RawAttribute {
            flags: if value.len() > 255 {
                flags | 0x10
            } else {
                flags
            },
            type_code,
            value,
        })
}

fn attributes() -> impl Strategy<Value = PathAttributes> {
    (
        proptest::option::of(prop_oneof![
            Just(Origin::Igp),
            Just(Origin::Egp),
            Just(Origin::Incomplete)
        ]),
        proptest::option::of(proptest::collection::vec(segment(), 0..4)),
        proptest::option::of(unicast()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        any::<bool>(),
        proptest::collection::vec(raw_attribute(), 0..3),
    )
        .prop_map(
            |(origin, segments, next_hop, med, local_pref, atomic_aggregate, mut other)| {
                other.sort_by_key(|a| a.type_code);
                other.dedup_by_key(|a| a.type_code);
                PathAttributes {
                    origin,
                    as_path: segments.map(|segments| AsPath { segments }),
                    next_hop,
                    med,
                    local_pref,
                    atomic_aggregate,
                    other,
                }
            },
        )
}

fn update() -> impl Strategy<Value = Update> {
    (
        proptest::collection::vec(prefix(), 0..20),
        attributes(),
        proptest::collection::vec(prefix(), 0..20),
    )
        .prop_map(|(withdrawn, attributes, nlri)| {
            let complete = attributes.origin.is_some()
                && attributes.as_path.is_some()
                && attributes.next_hop.is_some();
            Update {
                withdrawn,
                nlri: if complete { nlri } else { vec![] },
                attributes,
            }
        })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update().prop_map(Message::Update),
        (
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(
                |(code, subcode, data)| Message::Notification(Notification::new(
                    ErrorCode::from(code),
                    subcode,
                    data
                ))
            ),
        Just(Message::Keepalive),
        (any::<u16>(), any::<u8>())
            .prop_map(|(afi, safi)| Message::RouteRefresh(RouteRefresh { afi, safi })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn messages_round_trip(m in message()) {
        let bytes = m.encode().unwrap();
        prop_assert_eq!(frame(&bytes), Ok(Some(bytes.len())));
        prop_assert_eq!(Message::decode(&bytes), Ok(m));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = frame(&bytes);
        if let Err(e) = Message::decode(&bytes) {
            let _ = (e.to_string(), e.notification().to_string());
        }
    }

    #[test]
    fn arbitrary_bodies_never_panic(
        kind in 1u8..=6,
        body in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = vec![0xff; 16];
        bytes.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        bytes.push(kind);
        bytes.extend_from_slice(&body);
        match Message::decode(&bytes) {
            Ok(m) => {
                let again = m.encode().unwrap();
                prop_assert_eq!(Message::decode(&again), Ok(m));
            }
            Err(e) => prop_assert!(e.notification().encode_len() <= 4096),
        }
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        m in message(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = m.encode().unwrap();
        for (i, v) in flips {
            let i = i.index(bytes.len());
            bytes[i] = v;
        }
        if let Ok(m) = Message::decode(&bytes) {
            let again = m.encode().unwrap();
            prop_assert_eq!(Message::decode(&again), Ok(m));
        }
    }
}

/// Length of the NOTIFICATION on the wire.
trait EncodeLen {
    fn encode_len(&self) -> usize;
}

impl EncodeLen for Notification {
    fn encode_len(&self) -> usize {
        Message::Notification(self.clone())
            .encode()
            .map_or(usize::MAX, |b| b.len())
    }
}
