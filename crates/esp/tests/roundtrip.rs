//! Seal/open round trips for every transform, IPv4 and IPv6, many sizes; tampered, truncated,
//! replayed and misdirected packets rejected and counted.

mod common;

use common::{all_ciphers, ipv4_packet, ipv6_packet, keys, sa_pair};
use esp::{Cipher, Counters, EspError, InboundSa, OutboundSa};
use proptest::prelude::*;

fn sizes(min: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (min..min + 70).collect();
    v.extend((min + 70..1600).step_by(37));
    v.extend([1400, 1500, 9000, 65535]);
    v
}

#[test]
fn round_trip_every_cipher_ipv4_and_ipv6_many_sizes() {
    for cipher in all_ciphers() {
        let (mut out_sa, mut in_sa) = sa_pair(cipher, 0x0101_0101);
        let mut buf = vec![0u8; 65535 + 40 + cipher.overhead()];
        let mut sent = 0u64;
        let mut bytes = 0u64;
        for (v6, len) in sizes(28)
            .into_iter()
            .map(|l| (false, l))
            .chain(sizes(48).into_iter().map(|l| (true, l)))
        {
            let inner = if v6 {
                ipv6_packet(len, len as u8)
            } else {
                ipv4_packet(len, len as u8)
            };
            let n = out_sa.seal(&inner, &mut buf).unwrap();
            sent += 1;
            bytes += len as u64;
            assert_eq!(n, out_sa.sealed_len(len), "{cipher} len {len}");
            assert!(n - len <= cipher.overhead(), "{cipher}: overhead bound");
            assert_eq!(
                (n - cipher.header_len() - cipher.icv_len()) % cipher.block_len(),
                0
            );
            assert_eq!(esp::spi_of(&buf[..n]), Some(0x0101_0101));
            assert_eq!(
                u32::from_be_bytes(buf[4..8].try_into().unwrap()) as u64,
                sent
            );
            let h = cipher.header_len();
            if let Cipher::Null(_) = cipher {
                // RFC 2410: NULL carries the inner packet as is, right after the sequence number.
                assert_eq!(h, 8);
                assert_eq!(&buf[h..h + len], &inner[..], "{cipher}: payload in clear");
            } else {
                // The inner packet does not appear in clear.
                assert_ne!(&buf[h..h + 28], &inner[..28], "{cipher}: payload encrypted");
            }
            let opened = in_sa.open(&mut buf[..n]).unwrap();
            assert_eq!(opened, &inner[..], "{cipher} v6={v6} len {len}");
        }
        let c = in_sa.counters();
        assert_eq!(
            (c.packets, c.bytes, c.dropped()),
            (sent, bytes, 0),
            "{cipher}"
        );
        assert_eq!(out_sa.counters().packets, sent);
        assert_eq!(out_sa.counters().bytes, bytes);
        assert_eq!(out_sa.last_seq() as u64, sent);
    }
}

#[test]
fn seal_in_place_produces_the_same_packet_format() {
    for cipher in all_ciphers() {
        let (mut out_sa, mut in_sa) = sa_pair(cipher, 77);
        let inner = ipv4_packet(1400, 1);
        let h = out_sa.header_len();
        let mut buf = vec![0u8; out_sa.sealed_len(1400)];
        buf[h..h + 1400].copy_from_slice(&inner);
        let n = out_sa.seal_in_place(&mut buf, 1400).unwrap();
        assert_eq!(n, buf.len());
        let range = in_sa.open_in_place(&mut buf).unwrap();
        // NULL's 8-byte header is short of the guaranteed headroom: its inner packet moves.
        let start = h.max(esp::OPEN_HEADROOM);
        assert_eq!(range, start..start + 1400, "{cipher}");
        assert_eq!(&buf[range], &inner[..]);
    }
}

#[test]
fn opened_inner_packet_always_leaves_headroom_for_a_tun_header() {
    for cipher in all_ciphers() {
        let (mut out_sa, mut in_sa) = sa_pair(cipher, 0x1616_1616);
        let ctx = in_sa.context();
        for len in [28, 29, 31, 40, 1400] {
            let inner = ipv4_packet(len, 7);
            let mut buf = vec![0u8; out_sa.sealed_len(len)];
            let n = out_sa.seal(&inner, &mut buf).unwrap();
            let mut copy = buf[..n].to_vec();
            let range = in_sa.open_in_place(&mut buf[..n]).unwrap();
            assert!(range.start >= esp::OPEN_HEADROOM, "{cipher} len {len}");
            assert_eq!(&buf[range], &inner[..], "{cipher} len {len}");
            let opened = ctx.open(&mut copy).unwrap();
            assert!(opened.inner().start >= esp::OPEN_HEADROOM, "{cipher}");
            assert_eq!(&copy[opened.inner()], &inner[..], "{cipher} len {len}");
        }
    }
}

#[test]
fn inner_packet_with_trailing_bytes_is_cut_to_its_ip_length() {
    let (mut out_sa, mut in_sa) = sa_pair(Cipher::AesGcm256, 5);
    let mut inner = ipv4_packet(60, 2);
    inner.extend_from_slice(&[0xAA; 6]); // e.g. Ethernet minimum-frame padding
    let mut buf = vec![0u8; 200];
    let n = out_sa.seal(&inner, &mut buf).unwrap();
    assert_eq!(in_sa.open(&mut buf[..n]).unwrap(), &inner[..60]);
}

#[test]
fn seal_rejects_non_ip_and_small_buffers() {
    for cipher in all_ciphers() {
        let (mut out_sa, _) = sa_pair(cipher, 6);
        let mut buf = vec![0u8; 2000];
        assert_eq!(out_sa.seal(&[], &mut buf), Err(EspError::NotIpPacket));
        assert_eq!(
            out_sa.seal(&[0x45; 10], &mut buf),
            Err(EspError::NotIpPacket)
        );
        let mut lying = ipv4_packet(100, 0);
        lying[2..4].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(out_sa.seal(&lying, &mut buf), Err(EspError::NotIpPacket));
        let mut v5 = ipv4_packet(100, 0);
        v5[0] = 0x55;
        assert_eq!(out_sa.seal(&v5, &mut buf), Err(EspError::NotIpPacket));
        let inner = ipv4_packet(1000, 0);
        let need = out_sa.sealed_len(1000);
        assert_eq!(
            out_sa.seal(&inner, &mut buf[..need - 1]),
            Err(EspError::BufferTooSmall {
                needed: need,
                available: need - 1
            })
        );
        assert_eq!(
            out_sa.last_seq(),
            0,
            "failed seals consume no sequence number"
        );
    }
}

#[test]
fn every_single_bit_flip_is_rejected_and_counted_and_the_original_still_opens() {
    for cipher in all_ciphers() {
        let (mut out_sa, mut in_sa) = sa_pair(cipher, 0x4242_4242);
        let inner = ipv4_packet(64, 9);
        let mut buf = vec![0u8; 256];
        let n = out_sa.seal(&inner, &mut buf).unwrap();
        let original = buf[..n].to_vec();
        let mut expected = Counters::default();
        for byte in 0..n {
            for bit in [0u8, 3, 7] {
                let mut p = original.clone();
                p[byte] ^= 1 << bit;
                let err = in_sa.open(&mut p).unwrap_err();
                match err {
                    EspError::SpiMismatch { .. } => {
                        assert!(byte < 4);
                        expected.malformed += 1;
                    }
                    EspError::AuthenticationFailed { .. } => expected.auth_failed += 1,
                    EspError::ZeroSequence => expected.malformed += 1,
                    other => panic!("{cipher}: byte {byte} bit {bit}: unexpected {other:?}"),
                }
            }
        }
        assert_eq!(in_sa.counters(), expected, "{cipher}");
        assert!(expected.auth_failed > 0);
        let mut p = original.clone();
        assert_eq!(
            in_sa.open(&mut p).unwrap(),
            &inner[..],
            "{cipher}: forgeries moved nothing"
        );
    }
}

#[test]
fn truncated_and_extended_packets_are_dropped_never_panic() {
    for cipher in all_ciphers() {
        let (mut out_sa, mut in_sa) = sa_pair(cipher, 0x0a0a_0a0a);
        let inner = ipv6_packet(120, 4);
        let mut buf = vec![0u8; 512];
        let n = out_sa.seal(&inner, &mut buf).unwrap();
        let original = buf[..n].to_vec();
        for len in 0..n {
            let mut p = original[..len].to_vec();
            let err = in_sa.open(&mut p).unwrap_err();
            assert!(
                matches!(
                    err,
                    EspError::Truncated { .. }
                        | EspError::Misaligned { .. }
                        | EspError::AuthenticationFailed { .. }
                ),
                "{cipher} len {len}: {err:?}"
            );
        }
        let mut longer = original.clone();
        longer.extend_from_slice(&[0; 4]);
        assert!(in_sa.open(&mut longer).is_err());
        let c = in_sa.counters();
        assert_eq!(c.malformed + c.auth_failed, n as u64 + 1, "{cipher}");
        assert_eq!(c.packets, 0);
        let mut p = original;
        assert!(in_sa.open(&mut p).is_ok());
    }
}

#[test]
fn replayed_packet_is_dropped_and_counted() {
    for cipher in all_ciphers() {
        let (mut out_sa, mut in_sa) = sa_pair(cipher, 0x0b0b_0b0b);
        let mut buf = vec![0u8; 256];
        let n = out_sa.seal(&ipv4_packet(40, 0), &mut buf).unwrap();
        let copy = buf[..n].to_vec();
        assert!(in_sa.open(&mut buf[..n]).is_ok());
        let mut again = copy.clone();
        assert_eq!(in_sa.open(&mut again), Err(EspError::Replayed { seq: 1 }));
        let mut again = copy;
        assert!(in_sa.open(&mut again).is_err());
        assert_eq!(in_sa.counters().replayed, 2);
        assert_eq!(in_sa.counters().packets, 1);
    }
}

#[test]
fn packets_reordered_within_the_window_are_all_accepted_once() {
    // Batching (recvmmsg, GRO, parallel workers) delivers bursts out of order.
    let (mut out_sa, mut in_sa) = sa_pair(Cipher::AesGcm128, 0x0c0c_0c0c);
    let inner = ipv4_packet(100, 0);
    let packets: Vec<Vec<u8>> = (0..3000)
        .map(|_| {
            let mut b = vec![0u8; 200];
            let n = out_sa.seal(&inner, &mut b).unwrap();
            b.truncate(n);
            b
        })
        .collect();
    // Deterministic shuffle inside bursts of 1024: reversed, then interleaved odd/even.
    let mut order = Vec::new();
    for chunk in (0..packets.len()).collect::<Vec<_>>().chunks(1024) {
        let mut c: Vec<usize> = chunk.iter().rev().copied().collect();
        c.sort_by_key(|i| i % 2);
        order.extend(c);
    }
    for &i in &order {
        let mut p = packets[i].clone();
        assert!(in_sa.open(&mut p).is_ok(), "packet {i} rejected");
    }
    for (i, p) in packets.iter().enumerate() {
        let mut p = p.clone();
        assert!(in_sa.open(&mut p).is_err(), "packet {i} accepted twice");
    }
    let c = in_sa.counters();
    assert_eq!((c.packets, c.replayed), (3000, 3000));
}

#[test]
fn packet_behind_the_window_is_too_old() {
    let (mut out_sa, mut in_sa) = sa_pair(Cipher::AesGcm256, 0x0d0d_0d0d);
    let inner = ipv4_packet(40, 0);
    let mut first = vec![0u8; 100];
    let n = out_sa.seal(&inner, &mut first).unwrap();
    first.truncate(n);
    let mut last = Vec::new();
    for _ in 0..esp::REPLAY_WINDOW + 1 {
        last = vec![0u8; 100];
        let n = out_sa.seal(&inner, &mut last).unwrap();
        last.truncate(n);
    }
    assert!(in_sa.open(&mut last).is_ok());
    let highest = esp::REPLAY_WINDOW + 2;
    assert_eq!(in_sa.highest_seq(), highest);
    assert_eq!(
        in_sa.open(&mut first),
        Err(EspError::TooOld { seq: 1, highest })
    );
    assert_eq!(in_sa.counters().replayed, 1);
}

#[test]
fn wrong_keys_or_spi_are_rejected() {
    for cipher in all_ciphers() {
        let (mut out_sa, _) = sa_pair(cipher, 0x0e0e_0e0e);
        let (e, i) = keys(cipher, 99);
        let mut other = InboundSa::new(0x0e0e_0e0e, cipher, &e, &i).unwrap();
        let mut buf = vec![0u8; 200];
        let n = out_sa.seal(&ipv4_packet(50, 0), &mut buf).unwrap();
        assert_eq!(
            other.open(&mut buf[..n]),
            Err(EspError::AuthenticationFailed { seq: 1 })
        );
        let (e, i) = keys(cipher, 0x0e);
        let mut wrong_spi = InboundSa::new(7, cipher, &e, &i).unwrap();
        let n = out_sa.seal(&ipv4_packet(50, 0), &mut buf).unwrap();
        assert_eq!(
            wrong_spi.open(&mut buf[..n]),
            Err(EspError::SpiMismatch {
                expected: 7,
                got: 0x0e0e_0e0e
            })
        );
        assert_eq!(wrong_spi.counters().malformed, 1);
    }
}

#[test]
fn key_lengths_are_checked_with_specific_errors() {
    assert_eq!(
        OutboundSa::new(1, Cipher::AesGcm256, &[0; 32], &[]).unwrap_err(),
        EspError::KeyLength {
            which: "encryption",
            cipher: Cipher::AesGcm256,
            expected: 36,
            got: 32
        }
    );
    let c = Cipher::AesCbc128(esp::Auth::HmacSha256_128);
    assert_eq!(
        InboundSa::new(1, c, &[0; 16], &[0; 20]).unwrap_err(),
        EspError::KeyLength {
            which: "integrity",
            cipher: c,
            expected: 32,
            got: 20
        }
    );
    assert_eq!(
        InboundSa::new(1, Cipher::AesGcm128, &[0; 20], &[1])
            .unwrap_err()
            .to_string(),
        "integrity key for AES_GCM_16-128 must be 0 bytes, got 1"
    );
}

#[test]
fn debug_output_never_shows_keys() {
    for cipher in all_ciphers() {
        let enc: Vec<u8> = vec![0xA7; cipher.enc_key_len()];
        let integ: Vec<u8> = vec![0xA7; cipher.integ_key_len()];
        let o = OutboundSa::new(0x11, cipher, &enc, &integ).unwrap();
        let i = InboundSa::new(0x11, cipher, &enc, &integ).unwrap();
        for s in [
            format!("{o:?}"),
            format!("{i:?}"),
            format!("{o:#?}"),
            format!("{i:#?}"),
        ] {
            let lower = s.to_lowercase();
            assert!(!lower.contains("a7a7"), "{s}");
            assert!(!lower.contains("167, 167"), "{s}");
            assert!(s.contains("<redacted>"), "{s}");
        }
    }
}

#[test]
fn sa_types_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<OutboundSa>();
    send::<InboundSa>();
}

#[test]
fn nat_keepalive_spi_and_port_4500_classification() {
    use esp::{classify_udp4500, is_nat_keepalive, spi_of, Udp4500};
    assert!(is_nat_keepalive(&[0xFF]));
    assert!(!is_nat_keepalive(&[0xFF, 0xFF]));
    assert!(!is_nat_keepalive(&[0x00]));
    assert!(!is_nat_keepalive(&[]));
    assert_eq!(classify_udp4500(&[0xFF]), Udp4500::Keepalive);
    let ike = [0, 0, 0, 0, 1, 2, 3];
    assert_eq!(classify_udp4500(&ike), Udp4500::Ike(&[1, 2, 3]));
    let esp = [0xc0, 0, 0, 1, 0, 0, 0, 1, 9];
    assert_eq!(
        classify_udp4500(&esp),
        Udp4500::Esp {
            spi: 0xc000_0001,
            packet: &esp
        }
    );
    assert_eq!(classify_udp4500(&[1, 2]), Udp4500::Invalid);
    assert_eq!(spi_of(&esp), Some(0xc000_0001));
    assert_eq!(spi_of(&ike), None);
    assert_eq!(spi_of(&esp[..7]), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any transform, any inner length: the packet is exactly `sealed_len` long, its encrypted
    /// part aligned to the block with minimal padding, it opens to the inner packet, and any
    /// single flipped bit after the SPI and sequence number is an authentication failure,
    /// counted as such, that leaves the SA able to accept the original.
    #[test]
    fn any_transform_round_trips_and_detects_a_flipped_bit(
        cipher in prop::sample::select(all_ciphers()),
        v6 in any::<bool>(),
        len in 48usize..1600,
        seed in any::<u8>(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let (mut out_sa, mut in_sa) = sa_pair(cipher, 0x5eed_0001);
        let inner = if v6 { ipv6_packet(len, seed) } else { ipv4_packet(len, seed) };
        let mut buf = vec![0u8; cipher.sealed_len(len)];
        let n = out_sa.seal(&inner, &mut buf).unwrap();
        prop_assert_eq!(n, cipher.sealed_len(len));
        let body = n - cipher.header_len() - cipher.icv_len();
        prop_assert_eq!(body % cipher.block_len(), 0);
        prop_assert!(body - len - 2 < cipher.block_len(), "minimal padding");
        let mut p = buf.clone();
        p[8 + flip.index(n - 8)] ^= 1 << bit;
        prop_assert_eq!(in_sa.open(&mut p), Err(EspError::AuthenticationFailed { seq: 1 }));
        prop_assert_eq!(in_sa.counters().auth_failed, 1);
        prop_assert_eq!(in_sa.open(&mut buf).unwrap(), &inner[..]);
        prop_assert_eq!(in_sa.counters().packets, 1);
    }
}
