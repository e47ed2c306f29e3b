//! A log budget per cause: whatever arrives from the network, the log grows by a bounded
//! number of lines. A flood of rejected datagrams of one kind writes a few lines, then one
//! summary per window saying how many were left out; the counts themselves are in status.
//! Sans-IO: the caller passes the time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Lines one cause may write per [`WINDOW`].
pub const BURST: u32 = 5;
/// The window the budget refills in.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Whether to write a line now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it; `suppressed` lines of this cause were left out since the last one written.
    Log {
        /// Lines left out before this one.
        suppressed: u64,
    },
    /// Leave it out (counted).
    Suppress,
}

#[derive(Debug, Clone)]
struct Budget {
    window_start: Instant,
    written: u32,
    pending: u64,
    total: u64,
}

/// Per-cause budgets; causes are a fixed set of static names, so the map stays small.
#[derive(Debug, Default)]
pub struct LogLimiter {
    causes: BTreeMap<&'static str, Budget>,
}

impl LogLimiter {
    /// Decides about one line of `cause` at `now`.
    pub fn check(&mut self, cause: &'static str, now: Instant) -> Verdict {
        let b = self.causes.entry(cause).or_insert(Budget {
            window_start: now,
            written: 0,
            pending: 0,
            total: 0,
        });
        if now.saturating_duration_since(b.window_start) >= WINDOW {
            b.window_start = now;
            b.written = 0;
        }
        if b.written < BURST {
            b.written += 1;
            let suppressed = std::mem::take(&mut b.pending);
            Verdict::Log { suppressed }
        } else {
            b.pending += 1;
            b.total += 1;
            Verdict::Suppress
        }
    }

    /// Lines left out so far, by cause (for status).
    pub fn suppressed(&self) -> BTreeMap<String, u64> {
        self.causes
            .iter()
            .filter(|(_, b)| b.total > 0)
            .map(|(k, b)| (k.to_string(), b.total))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_writes_a_burst_per_window_and_counts_the_rest() {
        let mut l = LogLimiter::default();
        let t0 = Instant::now();
        let mut written = 0;
        for i in 0..20_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 100);
            if matches!(l.check("unknown_spi", now), Verdict::Log { .. }) {
                written += 1;
            }
        }
        assert_eq!(written, BURST, "2 s of flood: one window");
        assert_eq!(l.suppressed()["unknown_spi"], 20_000 - u64::from(BURST));
        // another cause has its own budget
        assert_eq!(l.check("malformed", t0), Verdict::Log { suppressed: 0 });
        // the next window writes again and says how many were left out
        let later = t0 + WINDOW + Duration::from_secs(2);
        assert_eq!(
            l.check("unknown_spi", later),
            Verdict::Log {
                suppressed: 20_000 - u64::from(BURST)
            }
        );
    }
}
