//! Anti-replay window (RFC 4303 §3.4.3) as a ring of 64-bit blocks (RFC 6479).
//!
//! The window is wide because the gateway batches packets (recvmmsg, GRO, several workers): a
//! burst can arrive out of order by far more than the 32 or 64 packets classic windows allow.
//! Advancing the window clears whole blocks instead of shifting a bitmap, so the cost per packet
//! stays constant however far the sequence number jumps.

/// Number of 64-bit blocks in the ring; a power of two so the index is a mask.
const BLOCKS: usize = 64;
const BLOCK_MASK: u64 = BLOCKS as u64 - 1;

/// Sequence numbers the window is guaranteed to track behind the highest one received
/// (one block is kept free as the one being filled, RFC 6479 §2).
pub const REPLAY_WINDOW: u32 = ((BLOCKS - 1) * 64) as u32;

/// Why the window refuses a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayCheck {
    /// Never seen and inside (or ahead of) the window.
    Fresh,
    /// Sequence number 0, which no sender uses.
    Zero,
    /// Already received.
    Duplicate,
    /// Behind the window: it can no longer be told apart from a replay.
    TooOld,
}

/// Tracks which sequence numbers an inbound SA has accepted.
///
/// Use [`check`](Self::check) before spending time on decryption and
/// [`accept`](Self::accept) only once the ICV has verified, so that forged packets can never move
/// the window.
#[derive(Clone)]
pub struct ReplayWindow {
    highest: u32,
    bitmap: [u64; BLOCKS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("highest", &self.highest)
            .field("window", &REPLAY_WINDOW)
            .finish_non_exhaustive()
    }
}

impl ReplayWindow {
    /// An empty window: nothing received yet.
    pub fn new() -> Self {
        Self {
            highest: 0,
            bitmap: [0; BLOCKS],
        }
    }

    /// Highest sequence number accepted so far (0 before the first packet).
    pub fn highest(&self) -> u32 {
        self.highest
    }

    #[inline]
    fn slot(seq: u32) -> (usize, u64) {
        let block = ((u64::from(seq) >> 6) & BLOCK_MASK) as usize;
        (block, 1u64 << (seq & 63))
    }

    /// Whether `seq` would be accepted, without changing anything.
    #[inline]
    pub fn check(&self, seq: u32) -> ReplayCheck {
        if seq == 0 {
            return ReplayCheck::Zero;
        }
        if seq > self.highest {
            return ReplayCheck::Fresh;
        }
        if u64::from(seq) + u64::from(REPLAY_WINDOW) <= u64::from(self.highest) {
            return ReplayCheck::TooOld;
        }
        let (block, bit) = Self::slot(seq);
        if self.bitmap[block] & bit != 0 {
            ReplayCheck::Duplicate
        } else {
            ReplayCheck::Fresh
        }
    }

    /// Records `seq` as received, advancing the window if it is the new highest. Returns the
    /// same verdict as [`check`](Self::check) and records nothing unless it is `Fresh`.
    #[inline]
    pub fn accept(&mut self, seq: u32) -> ReplayCheck {
        let verdict = self.check(seq);
        if verdict != ReplayCheck::Fresh {
            return verdict;
        }
        if seq > self.highest {
            let cur = u64::from(self.highest) >> 6;
            let new = u64::from(seq) >> 6;
            let advance = (new - cur).min(BLOCKS as u64);
            for i in 1..=advance {
                self.bitmap[((cur + i) & BLOCK_MASK) as usize] = 0;
            }
            self.highest = seq;
        }
        let (block, bit) = Self::slot(seq);
        self.bitmap[block] |= bit;
        ReplayCheck::Fresh
    }
}
