//! Property tests of the anti-replay window against a simple reference model, and through
//! whole SAs with reordered, duplicated and stale packets.

mod common;

use std::collections::HashSet;

use esp::{EspError, ReplayCheck, ReplayWindow, REPLAY_WINDOW};
use proptest::prelude::*;

/// Reference: a set of every accepted sequence number, plus the window rule.
#[derive(Default)]
struct Model {
    seen: HashSet<u32>,
    highest: u32,
}

impl Model {
    fn accept(&mut self, seq: u32) -> ReplayCheck {
        if seq == 0 {
            return ReplayCheck::Zero;
        }
        if u64::from(seq) + u64::from(REPLAY_WINDOW) <= u64::from(self.highest) {
            return ReplayCheck::TooOld;
        }
        if !self.seen.insert(seq) {
            return ReplayCheck::Duplicate;
        }
        self.highest = self.highest.max(seq);
        ReplayCheck::Fresh
    }
}

/// Sequence numbers that mostly move forward with jitter, duplicates, stale ones and jumps.
fn seq_stream() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(
        prop_oneof![
            6 => -600i64..600,          // local reordering around the front
            2 => -5000i64..-3900,       // near the back edge of the window
            1 => 0i64..1,               // exact duplicate of the current front
            1 => 3000i64..9000,         // a jump ahead (loss burst)
            1 => -20000i64..-4500,      // far behind: stale
        ],
        1..600,
    )
    .prop_map(|deltas| {
        let mut front: i64 = 5000;
        deltas
            .into_iter()
            .map(|d| {
                let s = (front + d).clamp(0, i64::from(u32::MAX));
                if d > 0 {
                    front = front.max(s);
                }
                front += 1;
                s as u32
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn window_matches_reference_model(seqs in seq_stream()) {
        let mut w = ReplayWindow::new();
        let mut m = Model::default();
        for s in seqs {
            let check = w.check(s);
            let verdict = w.accept(s);
            prop_assert_eq!(check, verdict, "check and accept disagree for {}", s);
            prop_assert_eq!(verdict, m.accept(s), "seq {}", s);
            prop_assert_eq!(w.highest(), m.highest);
        }
    }

    #[test]
    fn any_permutation_within_the_window_is_accepted_exactly_once(
        start in 1u32..1_000_000,
        perm in Just((0..REPLAY_WINDOW).collect::<Vec<u32>>()).prop_shuffle(),
        dups in prop::collection::vec(0usize..REPLAY_WINDOW as usize, 0..200),
    ) {
        let mut w = ReplayWindow::new();
        for &off in &perm {
            prop_assert_eq!(w.accept(start + off), ReplayCheck::Fresh);
        }
        for &d in &dups {
            prop_assert_eq!(w.accept(start + perm[d]), ReplayCheck::Duplicate);
        }
        prop_assert_eq!(w.highest(), start + REPLAY_WINDOW - 1);
    }

    #[test]
    fn check_never_changes_state(seqs in prop::collection::vec(any::<u32>(), 1..200)) {
        let mut w = ReplayWindow::new();
        for s in seqs {
            let before = w.check(s);
            prop_assert_eq!(w.check(s), before);
            w.accept(s);
            prop_assert_ne!(w.check(s), ReplayCheck::Fresh);
        }
    }

    /// End to end: sealed packets delivered in bursts shuffled within 1024, with some packets
    /// duplicated; every original is accepted once and every duplicate counted as replayed.
    #[test]
    fn sa_accepts_batched_reordering_and_counts_duplicates(
        shuffled in Just((0..1024usize).collect::<Vec<_>>()).prop_shuffle(),
        dup_every in 3usize..50,
        cipher in prop::sample::select(common::all_ciphers()),
    ) {
        let (mut out_sa, mut in_sa) = common::sa_pair(cipher, 0x7777);
        let inner = common::ipv4_packet(60, 1);
        let packets: Vec<Vec<u8>> = (0..2048).map(|_| {
            let mut b = vec![0u8; 128];
            let n = out_sa.seal(&inner, &mut b).unwrap();
            b.truncate(n);
            b
        }).collect();
        let mut dups = 0u64;
        for burst in 0..2 {
            for (k, &i) in shuffled.iter().enumerate() {
                let idx = burst * 1024 + i;
                let mut p = packets[idx].clone();
                prop_assert!(in_sa.open(&mut p).is_ok(), "packet {} rejected", idx);
                if k % dup_every == 0 {
                    let mut p = packets[idx].clone();
                    let e = in_sa.open(&mut p).unwrap_err();
                    prop_assert!(matches!(e, EspError::Replayed { .. }), "{:?}", e);
                    dups += 1;
                }
            }
        }
        let c = in_sa.counters();
        prop_assert_eq!(c.packets, 2048);
        prop_assert_eq!(c.replayed, dups);
    }
}

#[test]
fn window_is_at_least_1024_packets() {
    const { assert!(REPLAY_WINDOW >= 1024) };
    let mut w = ReplayWindow::new();
    assert_eq!(w.accept(REPLAY_WINDOW + 1), ReplayCheck::Fresh);
    assert_eq!(
        w.accept(2),
        ReplayCheck::Fresh,
        "oldest in-window sequence number"
    );
    assert_eq!(w.accept(1), ReplayCheck::TooOld);
    assert_eq!(w.accept(0), ReplayCheck::Zero);
    // A jump far ahead clears the whole ring: old bits must not resurface as duplicates.
    assert_eq!(w.accept(REPLAY_WINDOW * 10), ReplayCheck::Fresh);
    assert_eq!(w.accept(REPLAY_WINDOW * 10 - 64 * 62), ReplayCheck::Fresh);
    assert_eq!(w.accept(u32::MAX), ReplayCheck::Fresh);
    assert_eq!(w.accept(u32::MAX), ReplayCheck::Duplicate);
    assert_eq!(w.accept(u32::MAX - 1), ReplayCheck::Fresh);
}
