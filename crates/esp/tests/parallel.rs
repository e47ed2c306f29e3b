//! One SA's packets spread over worker threads: sealing with reserved sequence blocks,
//! decrypting with shared contexts, the replay window owned by one thread.

mod common;

use std::sync::mpsc;
use std::thread;

use common::{all_ciphers, ipv4_packet, ipv6_packet, sa_pair};
use esp::{Cipher, EspError, OpenContext, SealContext};

#[test]
fn contexts_are_send_and_sync() {
    fn both<T: Send + Sync>() {}
    both::<SealContext>();
    both::<OpenContext>();
}

#[test]
fn workers_seal_and_open_one_sa_in_parallel() {
    for cipher in all_ciphers() {
        let (mut out_sa, mut in_sa) = sa_pair(cipher, 0x5151_0000);
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let mut workers = Vec::new();
        let mut inner_bytes = 0u64;
        for w in 0..2u8 {
            let ctx = out_sa.context();
            let tx = tx.clone();
            let blocks: Vec<_> = (0..4).map(|_| out_sa.reserve(64).unwrap()).collect();
            for b in 0..4 {
                for i in 0..64 {
                    inner_bytes += (100 + usize::from(w) * 300 + b * 64 + i) as u64;
                }
            }
            workers.push(thread::spawn(move || {
                for (b, mut block) in blocks.into_iter().enumerate() {
                    let mut i = 0;
                    while !block.is_empty() {
                        let len = 100 + usize::from(w) * 300 + b * 64 + i;
                        let inner = if w == 0 {
                            ipv4_packet(len, w)
                        } else {
                            ipv6_packet(len, w)
                        };
                        let mut buf = vec![0u8; ctx.sealed_len(len)];
                        let n = ctx.seal(&mut block, &inner, &mut buf).unwrap();
                        buf.truncate(n);
                        tx.send(buf).unwrap();
                        i += 1;
                    }
                    assert_eq!(
                        ctx.seal(&mut block, &ipv4_packet(40, 0), &mut [0u8; 200]),
                        Err(EspError::SeqBlockEmpty)
                    );
                }
            }));
        }
        drop(tx);
        for w in workers {
            w.join().unwrap();
        }
        out_sa.record_sealed(512, inner_bytes);
        let packets: Vec<Vec<u8>> = rx.into_iter().collect();
        assert_eq!(packets.len(), 512);
        assert_eq!(out_sa.last_seq(), 512);
        assert_eq!(out_sa.counters().packets, 512);

        // Receive side: two decrypting workers, commits on this thread.
        let (otx, orx) = mpsc::channel();
        let halves: Vec<Vec<Vec<u8>>> = vec![
            packets.iter().step_by(2).cloned().collect(),
            packets.iter().skip(1).step_by(2).cloned().collect(),
        ];
        let mut workers = Vec::new();
        for half in halves {
            let ctx = in_sa.context();
            let otx = otx.clone();
            workers.push(thread::spawn(move || {
                for mut p in half {
                    let opened = ctx.open(&mut p).unwrap();
                    otx.send((opened, p)).unwrap();
                }
            }));
        }
        drop(otx);
        let mut seqs = std::collections::HashSet::new();
        let mut bytes = 0u64;
        for (opened, p) in orx {
            assert!(
                seqs.insert(opened.seq()),
                "{cipher}: sequence number used twice"
            );
            let range = in_sa.commit(opened).unwrap();
            let inner = &p[range];
            assert!(inner[0] >> 4 == 4 || inner[0] >> 4 == 6);
            bytes += inner.len() as u64;
        }
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(seqs.len(), 512);
        assert_eq!(in_sa.counters().packets, 512);
        assert_eq!(in_sa.counters().bytes, bytes);
        assert_eq!(bytes, inner_bytes);
    }
}

#[test]
fn sequence_blocks_cannot_be_spent_twice_or_on_another_sa() {
    let (mut a, _) = sa_pair(Cipher::AesGcm256, 1);
    let (mut b, _) = sa_pair(Cipher::AesGcm256, 1);
    let mut block_a = a.reserve(2).unwrap();
    assert_eq!(block_a.remaining(), 2);
    let inner = ipv4_packet(60, 0);
    let mut buf = [0u8; 200];
    assert_eq!(
        b.context().seal(&mut block_a, &inner, &mut buf),
        Err(EspError::ForeignSeqBlock)
    );
    assert_eq!(block_a.remaining(), 2, "a refused seal spends nothing");
    // The SA's own seal continues after the reserved block.
    let n = a.seal(&inner, &mut buf).unwrap();
    assert_eq!(&buf[4..8], &3u32.to_be_bytes());
    assert!(n > 0);
    a.context().seal(&mut block_a, &inner, &mut buf).unwrap();
    assert_eq!(&buf[4..8], &1u32.to_be_bytes());
    let _ = b.reserve(1).unwrap();
}

#[test]
fn reservation_stops_at_the_end_of_the_sequence_space() {
    let (mut a, _) = sa_pair(Cipher::AesGcm128, 1);
    assert!(a.reserve(0).unwrap().is_empty());
    assert_eq!(a.last_seq(), 0);
    let mut big = a.reserve(u32::MAX - 10).unwrap();
    assert_eq!(big.remaining(), u32::MAX - 10);
    let tail = a.reserve(100).unwrap();
    assert_eq!(tail.remaining(), 10, "short block near the end");
    assert_eq!(a.reserve(1).unwrap_err(), EspError::SequenceExhausted);
    assert!(
        a.reserve(0).unwrap().is_empty(),
        "asking for nothing never fails"
    );
    let mut buf = [0u8; 200];
    assert_eq!(
        a.seal(&ipv4_packet(40, 0), &mut buf),
        Err(EspError::SequenceExhausted)
    );
    let n = a
        .context()
        .seal(&mut big, &ipv4_packet(40, 0), &mut buf)
        .unwrap();
    assert!(n > 0);
}

#[test]
fn duplicate_decrypted_twice_is_committed_once() {
    let (mut out_sa, mut in_sa) = sa_pair(Cipher::AesCbc256(esp::Auth::HmacSha256_128), 9);
    let mut p = vec![0u8; 300];
    let n = out_sa.seal(&ipv4_packet(100, 1), &mut p).unwrap();
    p.truncate(n);
    let ctx = in_sa.context();
    let mut c1 = p.clone();
    let mut c2 = p.clone();
    assert_eq!(in_sa.precheck(&c1), Ok(1));
    let o1 = ctx.open(&mut c1).unwrap();
    let o2 = ctx.open(&mut c2).unwrap();
    assert!(in_sa.commit(o1).is_ok());
    assert_eq!(in_sa.commit(o2), Err(EspError::Replayed { seq: 1 }));
    assert_eq!(in_sa.precheck(&p), Err(EspError::Replayed { seq: 1 }));
    let mut bad = p.clone();
    bad[40] ^= 4;
    let e = ctx.open(&mut bad).unwrap_err();
    assert_eq!(e, EspError::AuthenticationFailed { seq: 1 });
    in_sa.record_drop(&e);
    let c = in_sa.counters();
    assert_eq!((c.packets, c.replayed, c.auth_failed), (1, 1, 1));
    // An opened packet cannot be committed to a different SA's window.
    let (_, other) = sa_pair(Cipher::AesCbc256(esp::Auth::HmacSha256_128), 9);
    let mut c3 = p.clone();
    let o3 = other.context().open(&mut c3).unwrap();
    assert_eq!(in_sa.commit(o3), Err(EspError::ForeignOpened));
    assert_eq!(in_sa.counters(), c);
}
