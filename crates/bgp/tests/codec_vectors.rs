//! Messages written by hand from RFC 4271 §4, RFC 5492, RFC 6793 and RFC 2918: each decodes
//! to the expected structure and encodes back to the same octets; malformed ones map to the
//! NOTIFICATION RFC 4271 §6 prescribes.

use std::net::Ipv4Addr;

use bgp::codec::{frame, subcode, AS_TRANS};
use bgp::{
    AsPath, AsSegment, Capability, DecodeError, ErrorCode, Message, Notification, Open, Origin,
    PathAttributes, RawAttribute, RouteRefresh, Update,
};

/// Parses whitespace-separated hex, with `#` comments to the end of a line.
fn hex(s: &str) -> Vec<u8> {
    let digits: String = s
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.chars().filter(|c| c.is_ascii_hexdigit()))
        .collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

const MARKER: &str = "ffffffff ffffffff ffffffff ffffffff";

fn with_header(len: u16, kind: u8, body: &str) -> Vec<u8> {
    let mut v = hex(MARKER);
    v.extend_from_slice(&len.to_be_bytes());
    v.push(kind);
    v.extend(hex(body));
    assert_eq!(v.len(), len as usize, "vector length");
    v
}

fn round_trip(bytes: &[u8], expected: Message) {
    let decoded = Message::decode(bytes).expect("decodes");
    assert_eq!(decoded, expected);
    assert_eq!(expected.encode().unwrap(), bytes);
    assert_eq!(frame(bytes), Ok(Some(bytes.len())));
}

fn notification_of(bytes: &[u8]) -> Notification {
    Message::decode(bytes)
        .expect_err("malformed")
        .notification()
}

#[test]
fn keepalive() {
    round_trip(&with_header(19, 4, ""), Message::Keepalive);
}

#[test]
fn open_with_two_octet_as_and_capabilities() {
    let bytes = with_header(
        49,
        1,
        "04 fde9 005a c0000201 14
         02 06 01 04 0001 00 01   # multiprotocol IPv4 unicast
         02 02 02 00              # route refresh
         02 06 41 04 0000fde9     # 4-octet AS 65001",
    );
    let open = Open::new(65001, 90, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(open.my_as, 65001);
    round_trip(&bytes, Message::Open(open.clone()));
    assert_eq!(open.asn(), 65001);
    assert!(open.has(&Capability::RouteRefresh));
}

#[test]
fn open_with_four_octet_as_uses_as_trans() {
    let bytes = with_header(
        49,
        1,
        "04 5ba0 00b4 0a000001 14
         02 06 01 04 0001 00 01
         02 02 02 00
         02 06 41 04 fa56ea01     # AS 4200000001",
    );
    let open = Open::new(4_200_000_001, 180, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.asn(), 4_200_000_001);
    round_trip(&bytes, Message::Open(open));
}

#[test]
fn open_with_several_capabilities_in_one_parameter() {
    let bytes = with_header(
        43,
        1,
        "04 fde9 005a c0000201 0e
         02 0c 01 04 0001 00 01  02 00  40 02 0078   # MP, route refresh, graceful restart",
    );
    let Message::Open(open) = Message::decode(&bytes).unwrap() else {
        panic!("not an OPEN")
    };
    assert_eq!(
        open.capabilities,
        vec![
            Capability::Multiprotocol { afi: 1, safi: 1 },
            Capability::RouteRefresh,
            Capability::Unknown {
                code: 64,
                value: vec![0x00, 0x78]
            },
        ]
    );
    assert_eq!(open.asn(), 65001, "no 4-octet AS capability: My AS");
}

#[test]
fn update_announcing_two_prefixes() {
    let bytes = with_header(
        61,
        2,
        "0000                                  # no withdrawn routes
         001f                                  # 31 octets of attributes
         40 01 01 00                           # ORIGIN IGP
         40 02 0a 02 02 0000fde9 0000fdea      # AS_PATH AS_SEQUENCE 65001 65002
         40 03 04 c0000201                     # NEXT_HOP 192.0.2.1
         80 04 04 00000064                     # MULTI_EXIT_DISC 100
         10 0a01                               # 10.1.0.0/16
         18 c0a801                             # 192.168.1.0/24",
    );
    let update = Update {
        withdrawn: vec![],
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![65001, 65002])),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            med: Some(100),
            ..PathAttributes::default()
        },
        nlri: vec![
            "10.1.0.0/16".parse().unwrap(),
            "192.168.1.0/24".parse().unwrap(),
        ],
    };
    round_trip(&bytes, Message::Update(update));
}

#[test]
fn update_withdrawing_and_carrying_an_unknown_transitive_attribute() {
    let bytes = with_header(
        74,
        2,
        "0007 08 0a 20 0a000001                # withdraw 10.0.0.0/8, 10.0.0.1/32
         002b
         40 01 01 02                           # ORIGIN INCOMPLETE
         40 02 0c 01 01 0000fde9 02 01 fa56ea01 # AS_SET {65001}, AS_SEQUENCE 4200000001
         40 03 04 c6336401                     # NEXT_HOP 198.51.100.1
         40 05 04 000000c8                     # LOCAL_PREF 200
         40 06 00                              # ATOMIC_AGGREGATE
         c0 08 04 fde90064                     # COMMUNITIES 65001:100 (optional transitive)
         00                                    # 0.0.0.0/0",
    );
    let update = Update {
        withdrawn: vec![
            "10.0.0.0/8".parse().unwrap(),
            "10.0.0.1/32".parse().unwrap(),
        ],
        attributes: PathAttributes {
            origin: Some(Origin::Incomplete),
            as_path: Some(AsPath {
                segments: vec![
                    AsSegment::Set(vec![65001]),
                    AsSegment::Sequence(vec![4_200_000_001]),
                ],
            }),
            next_hop: Some(Ipv4Addr::new(198, 51, 100, 1)),
            local_pref: Some(200),
            atomic_aggregate: true,
            other: vec![RawAttribute {
                flags: 0xc0,
                type_code: 8,
                value: vec![0xfd, 0xe9, 0x00, 0x64],
            }],
            ..PathAttributes::default()
        },
        nlri: vec!["0.0.0.0/0".parse().unwrap()],
    };
    round_trip(&bytes, Message::Update(update));
}

#[test]
fn end_of_rib_marker_is_an_empty_update() {
    round_trip(
        &with_header(23, 2, "0000 0000"),
        Message::Update(Update::default()),
    );
}

#[test]
fn notification_and_its_name() {
    let n = Notification::new(ErrorCode::Cease, subcode::ADMINISTRATIVE_SHUTDOWN, vec![]);
    round_trip(
        &with_header(21, 3, "06 02"),
        Message::Notification(n.clone()),
    );
    assert_eq!(n.to_string(), "Cease / Administrative Shutdown");
    let odd = Notification::new(ErrorCode::Unknown(9), 4, vec![]);
    assert_eq!(odd.to_string(), "ErrorCode 9 / subcode 4");
}

#[test]
fn route_refresh() {
    round_trip(
        &with_header(23, 5, "0001 00 01"),
        Message::RouteRefresh(RouteRefresh { afi: 1, safi: 1 }),
    );
}

#[test]
fn framing_waits_for_the_whole_message() {
    let bytes = with_header(21, 3, "06 02");
    assert_eq!(frame(&bytes[..10]), Ok(None));
    assert_eq!(frame(&bytes[..20]), Ok(None));
    let mut two = bytes.clone();
    two.extend_from_slice(&bytes);
    assert_eq!(frame(&two), Ok(Some(21)));
}

/// Code, subcode and data of the NOTIFICATION answering `bytes`.
fn answer(bytes: &[u8]) -> (ErrorCode, u8, Vec<u8>) {
    let n = notification_of(bytes);
    (n.code, n.subcode, n.data)
}

#[test]
fn header_errors() {
    let mut bad_marker = with_header(19, 4, "");
    bad_marker[3] = 0;
    assert_eq!(
        answer(&bad_marker),
        (
            ErrorCode::MessageHeaderError,
            subcode::CONNECTION_NOT_SYNCHRONIZED,
            vec![]
        )
    );
    let mut short = hex(MARKER);
    short.extend(hex("0012 04"));
    assert_eq!(
        answer(&short),
        (
            ErrorCode::MessageHeaderError,
            subcode::BAD_MESSAGE_LENGTH,
            vec![0, 18]
        )
    );
    let mut long = hex(MARKER);
    long.extend(hex("1001 02"));
    assert_eq!(frame(&long), Err(DecodeError::BadMessageLength(4097)));
    assert_eq!(
        answer(&with_header(20, 4, "00")),
        (
            ErrorCode::MessageHeaderError,
            subcode::BAD_MESSAGE_LENGTH,
            vec![0, 20]
        )
    );
    assert_eq!(
        answer(&with_header(19, 7, "")),
        (
            ErrorCode::MessageHeaderError,
            subcode::BAD_MESSAGE_TYPE,
            vec![7]
        )
    );
    assert_eq!(
        answer(&with_header(22, 1, "04 0001")),
        (
            ErrorCode::MessageHeaderError,
            subcode::BAD_MESSAGE_LENGTH,
            vec![0, 22]
        )
    );
}

#[test]
fn open_errors() {
    let open = |version: &str, hold: &str, id: &str, params: &str| {
        let body = format!("{version} fde9 {hold} {id} {params}");
        let len = 19 + hex(&body).len() as u16;
        with_header(len, 1, &body)
    };
    assert_eq!(
        answer(&open("03", "005a", "c0000201", "00")),
        (
            ErrorCode::OpenMessageError,
            subcode::UNSUPPORTED_VERSION_NUMBER,
            vec![0, 4]
        )
    );
    assert_eq!(
        answer(&open("04", "0002", "c0000201", "00")).1,
        subcode::UNACCEPTABLE_HOLD_TIME
    );
    assert_eq!(
        answer(&open("04", "005a", "00000000", "00")).1,
        subcode::BAD_BGP_IDENTIFIER
    );
    assert_eq!(
        answer(&open("04", "005a", "c0000201", "04 01 02 0000")).1,
        subcode::UNSUPPORTED_OPTIONAL_PARAMETER
    );
    assert_eq!(
        answer(&open("04", "005a", "c0000201", "04 02 05 0000")),
        (ErrorCode::OpenMessageError, subcode::UNSPECIFIC, vec![])
    );
    assert_eq!(
        answer(&open("04", "005a", "c0000201", "06 02 04 41 02 0000")).1,
        subcode::UNSPECIFIC,
        "4-octet AS capability of length 2"
    );
}

/// An UPDATE with the given attributes and NLRI 10.0.0.0/8.
fn update_with(attrs: &str) -> Vec<u8> {
    let a = hex(attrs);
    let body = format!("0000 {:04x} {attrs} 08 0a", a.len());
    with_header(19 + 4 + a.len() as u16 + 2, 2, &body)
}

const ORIGIN: &str = "40 01 01 00";
const AS_PATH: &str = "40 02 06 02 01 0000fde9";
const NEXT_HOP: &str = "40 03 04 c0000201";

#[test]
fn update_errors() {
    let update_error = |bytes: &[u8]| {
        let (code, sub, data) = answer(bytes);
        assert_eq!(code, ErrorCode::UpdateMessageError);
        (sub, data)
    };
    assert!(Message::decode(&update_with(&format!("{ORIGIN} {AS_PATH} {NEXT_HOP}"))).is_ok());

    let overrun = with_header(25, 2, "0000 0010 4001");
    assert_eq!(update_error(&overrun).0, subcode::MALFORMED_ATTRIBUTE_LIST);
    let twice = update_with(&format!("{ORIGIN} {ORIGIN} {AS_PATH} {NEXT_HOP}"));
    assert_eq!(update_error(&twice).0, subcode::MALFORMED_ATTRIBUTE_LIST);
    assert_eq!(
        update_error(&update_with(&format!("40 01 01 03 {AS_PATH} {NEXT_HOP}"))),
        (subcode::INVALID_ORIGIN_ATTRIBUTE, hex("40 01 01 03"))
    );
    assert_eq!(
        update_error(&update_with(&format!("c0 01 01 00 {AS_PATH} {NEXT_HOP}"))),
        (subcode::ATTRIBUTE_FLAGS_ERROR, hex("c0 01 01 00"))
    );
    assert_eq!(
        update_error(&update_with(&format!(
            "{ORIGIN} {AS_PATH} 40 03 05 c000020100"
        ))),
        (subcode::ATTRIBUTE_LENGTH_ERROR, hex("40 03 05 c000020100"))
    );
    assert_eq!(
        update_error(&update_with(&format!(
            "{ORIGIN} {AS_PATH} 40 03 04 00000000"
        ))),
        (
            subcode::INVALID_NEXT_HOP_ATTRIBUTE,
            hex("40 03 04 00000000")
        )
    );
    assert_eq!(
        update_error(&update_with(&format!(
            "{ORIGIN} {AS_PATH} {NEXT_HOP} 40 63 01 00"
        ))),
        (
            subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
            hex("40 63 01 00")
        )
    );
    assert_eq!(
        update_error(&update_with(&format!("{ORIGIN} {AS_PATH}"))),
        (subcode::MISSING_WELL_KNOWN_ATTRIBUTE, vec![3])
    );
    assert_eq!(
        update_error(&update_with(&format!(
            "{ORIGIN} 40 02 06 03 01 0000fde9 {NEXT_HOP}"
        )))
        .0,
        subcode::MALFORMED_AS_PATH
    );
    assert_eq!(
        update_error(&update_with(&format!(
            "{ORIGIN} 40 02 06 02 02 0000fde9 {NEXT_HOP}"
        )))
        .0,
        subcode::MALFORMED_AS_PATH
    );
    let long_prefix = with_header(25, 2, "0000 0000 21 0a");
    assert_eq!(update_error(&long_prefix).0, subcode::INVALID_NETWORK_FIELD);
    let truncated_prefix = with_header(25, 2, "0000 0000 18 0a");
    assert_eq!(
        update_error(&truncated_prefix).0,
        subcode::INVALID_NETWORK_FIELD
    );
}

#[test]
fn unknown_optional_attributes_are_kept_with_their_flags() {
    let bytes = update_with(&format!(
        "{ORIGIN} {AS_PATH} {NEXT_HOP} e0 20 04 01020304 80 63 00"
    ));
    let Message::Update(u) = Message::decode(&bytes).unwrap() else {
        panic!("not an UPDATE")
    };
    assert_eq!(
        u.attributes.other,
        vec![
            RawAttribute {
                flags: 0xe0,
                type_code: 32,
                value: vec![1, 2, 3, 4]
            },
            RawAttribute {
                flags: 0x80,
                type_code: 99,
                value: vec![]
            },
        ]
    );
    assert_eq!(Message::Update(u).encode().unwrap(), bytes);
}

#[test]
fn host_bits_of_a_prefix_are_cleared() {
    let bytes = update_with(&format!("{ORIGIN} {AS_PATH} {NEXT_HOP}"));
    let mut odd = bytes[..bytes.len() - 2].to_vec();
    odd.extend(hex("0f 0a ff"));
    let len = odd.len() as u16;
    odd[16..18].copy_from_slice(&len.to_be_bytes());
    let Message::Update(u) = Message::decode(&odd).unwrap() else {
        panic!("not an UPDATE")
    };
    assert_eq!(u.nlri, vec!["10.254.0.0/15".parse().unwrap()]);
}

/// An EVPN withdrawal (MP_UNREACH_NLRI, RFC 4760, with an extended length) from
/// zebra-rs/bgp-packet's tests/parser.rs: this crate does not interpret it, so it is an
/// optional non-transitive attribute kept as received, and the UPDATE re-encodes exactly.
#[test]
fn published_update_with_mp_unreach_nlri() {
    let bytes = hex("ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff
         00 41 02 00 00 00 2a 90 0f 00 26 00 19 46 02 21
         00 01 01 02 03 04 00 02 00 00 00 00 00 00 00 00
         00 00 00 00 00 00 30 5e e9 1e 08 4d 68 00 00 00
         00");
    let Message::Update(u) = Message::decode(&bytes).unwrap() else {
        panic!("not an UPDATE")
    };
    assert!(u.withdrawn.is_empty() && u.nlri.is_empty());
    assert_eq!(u.attributes.other.len(), 1);
    let mp = &u.attributes.other[0];
    assert_eq!((mp.flags, mp.type_code, mp.value.len()), (0x90, 15, 0x26));
    assert_eq!(Message::Update(u).encode().unwrap(), bytes);
}

/// An OPEN body from the unit tests of beka (a Python BGP speaker): AS 65033, hold time 180,
/// identifier 192.168.0.15, multiprotocol IPv4 unicast only.
#[test]
fn published_open_without_four_octet_as() {
    let bytes = with_header(37, 1, "04fe0900b4c0a8000f080206010400010001");
    round_trip(
        &bytes,
        Message::Open(Open {
            my_as: 65033,
            hold_time: 180,
            bgp_id: Ipv4Addr::new(192, 168, 0, 15),
            capabilities: vec![Capability::Multiprotocol { afi: 1, safi: 1 }],
        }),
    );
}
