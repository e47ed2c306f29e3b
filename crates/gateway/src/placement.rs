//! Which CPUs a data-path thread may run on: one while it is quiet, all while it is busy.
//!
//! A packet that wakes a sleeping gateway thread costs a wake-up; on a virtual machine a wake-up
//! on another CPU is an inter-processor interrupt to a halted vCPU, tens of microseconds before
//! the thread runs, several times the work done for the packet. The kernel places a woken thread
//! on an idle CPU when it finds one, so a request/response through two gateways on one host (the
//! lab) hops between CPUs at almost every step: measured on the 2-core test VM with `perf sched
//! timehist`, 46–81 µs of scheduling delay per cross-CPU wake-up against 6–10 µs when the wakee
//! waits for its waker's CPU. A quiet thread gains nothing from a second CPU, so while it is
//! quiet it is kept on one (the lowest CPU it may use, the same for every gateway on the host):
//! its wake-ups then queue behind the waker instead of interrupting another CPU.
//!
//! A busy thread needs a CPU of its own, and a pinned thread behind a CPU hog waits for it. So
//! the rules ([`PlacementRules`], no I/O) watch two figures of the thread's scheduler statistics
//! (`/proc/thread-self/schedstat`) over windows of [`WINDOW`]:
//! - the share of the window it ran: at [`BUSY_SHARE`] or more it is spread over all its CPUs
//!   at once, and pinned again only after [`QUIET_HOLD`] below [`QUIET_SHARE`];
//! - how long it waited for a CPU each time it was scheduled: [`CONTENDED_WAIT`] or more on
//!   average, [`CONTENDED_WINDOWS`] windows in a row while pinned, means another task holds that
//!   CPU (one slow window is a process starting or a kernel worker), so it is spread and not
//!   pinned again for [`CONTENDED_BACKOFF`].
//!
//! A thread inherits the CPUs of the thread that starts it: the gateway starts its lasting
//! threads (receive, control, BGP) before the first pin, and after it only the reload's
//! short-lived parsing thread, which runs and ends on the main thread's CPU.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// The span over which the thread's share of the CPU is judged.
pub const WINDOW: Duration = Duration::from_millis(100);
/// Running this share of a window (percent) or more: the thread gets all its CPUs.
pub const BUSY_SHARE: u64 = 25;
/// Below this share (percent) for [`QUIET_HOLD`], a spread thread is pinned again.
pub const QUIET_SHARE: u64 = 10;
/// How long a thread must stay quiet before it is pinned again.
pub const QUIET_HOLD: Duration = Duration::from_secs(1);
/// A pinned thread waiting this long on average for its CPU shares it with a busy task.
pub const CONTENDED_WAIT: Duration = Duration::from_micros(250);
/// Windows in a row that must look contended before a pinned thread is spread.
pub const CONTENDED_WINDOWS: u32 = 3;
/// After contention, the thread stays spread this long.
pub const CONTENDED_BACKOFF: Duration = Duration::from_secs(5);

/// Who decides where data-path threads run (the configuration's `cpu_placement`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CpuPlacement {
    /// One CPU while quiet, all while busy (this module's rules).
    #[default]
    Adaptive,
    /// The kernel's scheduler alone: all the CPUs the process may use, always.
    Kernel,
}

impl CpuPlacement {
    /// The configuration's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CpuPlacement::Adaptive => "adaptive",
            CpuPlacement::Kernel => "kernel",
        }
    }
}

/// The scheduler's cumulative figures for one thread (nanoseconds, counts), as
/// `/proc/<pid>/task/<tid>/schedstat` gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedStat {
    /// Time spent running.
    pub run_ns: u64,
    /// Time spent runnable, waiting for a CPU.
    pub wait_ns: u64,
    /// Times the thread was put on a CPU.
    pub slices: u64,
}

impl SchedStat {
    /// Parses the three numbers of a `schedstat` file.
    pub fn parse(text: &str) -> Option<SchedStat> {
        let mut it = text.split_ascii_whitespace().map(|s| s.parse::<u64>().ok());
        Some(SchedStat {
            run_ns: it.next()??,
            wait_ns: it.next()??,
            slices: it.next()??,
        })
    }
}

/// Where the rules want the thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// On the one CPU chosen for quiet threads.
    Pin,
    /// On every CPU it may use.
    Spread,
}

/// Why a thread is spread (it starts spread: nothing is known about it yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spread {
    /// Busy, or not yet known to be quiet: quiet since the instant given (if it is).
    Load { quiet_since: Option<Instant> },
    /// Its pinned CPU was contended: not pinned again before the instant given.
    Contended { until: Instant },
}

/// The placement rules, fed the thread's scheduler statistics; no I/O.
#[derive(Debug, Clone)]
pub struct PlacementRules {
    pinned: bool,
    /// Contended windows in a row while pinned.
    contended: u32,
    spread: Spread,
    /// Where the current window began, and the figures then.
    window: (Instant, SchedStat),
    /// Pins and spreads so far (by load, by contention), for the log and the tests.
    pub stats: PlacementStats,
}

/// How often the rules moved the thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlacementStats {
    /// Times it was pinned (quiet).
    pub pinned: u64,
    /// Times it was spread because it got busy.
    pub spread_busy: u64,
    /// Times it was spread because its pinned CPU was contended.
    pub spread_contended: u64,
}

impl PlacementRules {
    /// Starts spread, with `now` and the thread's figures as the first window's start.
    pub fn new(now: Instant, stat: SchedStat) -> PlacementRules {
        PlacementRules {
            pinned: false,
            contended: 0,
            spread: Spread::Load { quiet_since: None },
            window: (now, stat),
            stats: PlacementStats::default(),
        }
    }

    /// Whether the thread is on its one CPU.
    pub fn is_pinned(&self) -> bool {
        self.pinned
    }

    /// The thread's figures at `now`: returns a move when one is due (at most one per window).
    pub fn observe(&mut self, now: Instant, stat: SchedStat) -> Option<Decision> {
        let (start, then) = self.window;
        let span = now.saturating_duration_since(start);
        if span < WINDOW {
            return None;
        }
        self.window = (now, stat);
        let ran = stat.run_ns.saturating_sub(then.run_ns);
        let waited = stat.wait_ns.saturating_sub(then.wait_ns);
        let slices = stat.slices.saturating_sub(then.slices);
        let share = ran.saturating_mul(100) / (span.as_nanos() as u64).max(1);
        if self.pinned {
            if share >= BUSY_SHARE {
                self.pinned = false;
                self.spread = Spread::Load { quiet_since: None };
                self.stats.spread_busy += 1;
                return Some(Decision::Spread);
            }
            let slow = slices > 0 && waited / slices >= CONTENDED_WAIT.as_nanos() as u64;
            self.contended = if slow { self.contended + 1 } else { 0 };
            if self.contended >= CONTENDED_WINDOWS {
                self.pinned = false;
                self.contended = 0;
                self.spread = Spread::Contended {
                    until: now + CONTENDED_BACKOFF,
                };
                self.stats.spread_contended += 1;
                return Some(Decision::Spread);
            }
            return None;
        }
        let quiet = share < QUIET_SHARE;
        self.spread = match self.spread {
            Spread::Contended { until } if now < until => return None,
            Spread::Contended { .. } => Spread::Load {
                quiet_since: quiet.then_some(start),
            },
            Spread::Load { .. } if !quiet => Spread::Load { quiet_since: None },
            Spread::Load { quiet_since } => Spread::Load {
                quiet_since: Some(quiet_since.unwrap_or(start)),
            },
        };
        match self.spread {
            Spread::Load {
                quiet_since: Some(t),
            } if now.saturating_duration_since(t) >= QUIET_HOLD => {
                self.pinned = true;
                self.contended = 0;
                self.stats.pinned += 1;
                Some(Decision::Pin)
            }
            _ => None,
        }
    }
}

/// The rules applied to the calling thread: reads its statistics, sets its CPU affinity.
#[derive(Debug)]
pub struct Placement {
    rules: PlacementRules,
    schedstat: File,
    /// The CPUs the thread was allowed when it started (the user's choice: `taskset`, cpusets).
    all: CpuSet,
    /// The lowest of them: where quiet threads go.
    quiet_cpu: CpuSet,
}

impl Placement {
    /// For the calling thread; `None` where the kernel keeps no scheduler statistics or the
    /// thread may use one CPU only (nothing to choose).
    pub fn for_current_thread() -> Option<Placement> {
        let schedstat = File::open("/proc/thread-self/schedstat").ok()?;
        let stat = read_stat(&schedstat).ok()?;
        let all = sched_getaffinity(Pid::from_raw(0)).ok()?;
        let cpus: Vec<usize> = (0..CpuSet::count())
            .filter(|&c| all.is_set(c).unwrap_or(false))
            .collect();
        if cpus.len() < 2 {
            return None;
        }
        let mut quiet_cpu = CpuSet::new();
        quiet_cpu.set(cpus[0]).ok()?;
        Some(Placement {
            rules: PlacementRules::new(Instant::now(), stat),
            schedstat,
            all,
            quiet_cpu,
        })
    }

    /// Called after each wait: applies a move when the rules want one.
    pub fn tick(&mut self, now: Instant) {
        if now.saturating_duration_since(self.rules.window.0) < WINDOW {
            return;
        }
        let Ok(stat) = read_stat(&self.schedstat) else {
            return;
        };
        let Some(decision) = self.rules.observe(now, stat) else {
            return;
        };
        let set = match decision {
            Decision::Pin => &self.quiet_cpu,
            Decision::Spread => &self.all,
        };
        tracing::debug!(?decision, stats = ?self.rules.stats, "CPU placement");
        if let Err(e) = sched_setaffinity(Pid::from_raw(0), set) {
            // the allowed CPUs changed under us (a cpuset): all of them again, and no new try
            // before the back-off ends
            tracing::debug!("CPU placement: sched_setaffinity: {e}");
            let _ = sched_setaffinity(Pid::from_raw(0), &self.all);
            self.rules.pinned = false;
            self.rules.spread = Spread::Contended {
                until: now + CONTENDED_BACKOFF,
            };
        }
    }
}

fn read_stat(f: &File) -> io::Result<SchedStat> {
    let mut buf = [0u8; 128];
    let n = f.read_at(&mut buf, 0)?;
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(SchedStat::parse)
        .ok_or_else(|| io::Error::other("unreadable schedstat"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Figures after `run_ms` of running and `wait_us` of waiting over `slices` slices.
    fn stat(run_ms: u64, wait_us: u64, slices: u64) -> SchedStat {
        SchedStat {
            run_ns: run_ms * MS,
            wait_ns: wait_us * 1_000,
            slices,
        }
    }

    #[test]
    fn parses_the_schedstat_line() {
        assert_eq!(
            SchedStat::parse("123 456 7\n"),
            Some(SchedStat {
                run_ns: 123,
                wait_ns: 456,
                slices: 7
            })
        );
        assert_eq!(SchedStat::parse("123 456"), None);
        assert_eq!(SchedStat::parse("1 x 3"), None);
    }

    #[test]
    fn a_quiet_thread_is_pinned_after_the_hold_and_a_busy_one_spread_at_once() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut r = PlacementRules::new(t0, stat(0, 0, 0));
        // shorter than a window: nothing judged
        assert_eq!(r.observe(at(50), stat(40, 0, 5)), None);
        // quiet (5 % of each window) for less than the hold: still spread
        let mut run = 0;
        let mut now = 0;
        while now + 100 < QUIET_HOLD.as_millis() as u64 {
            now += 100;
            run += 5;
            assert_eq!(r.observe(at(now), stat(run, 0, now)), None, "{now} ms");
        }
        now += 100;
        run += 5;
        assert_eq!(r.observe(at(now), stat(run, 0, now)), Some(Decision::Pin));
        assert!(r.is_pinned());
        // quiet and pinned: stays
        now += 100;
        run += 5;
        assert_eq!(r.observe(at(now), stat(run, 0, now)), None);
        // a window at 30 %: spread at once
        now += 100;
        run += 30;
        assert_eq!(
            r.observe(at(now), stat(run, 0, now)),
            Some(Decision::Spread)
        );
        assert!(!r.is_pinned());
        // busy then quiet again: the hold starts over from the first quiet window
        now += 100;
        run += 50;
        assert_eq!(r.observe(at(now), stat(run, 0, now)), None);
        let quiet_from = now;
        while now < quiet_from + QUIET_HOLD.as_millis() as u64 - 100 {
            now += 100;
            run += 1;
            assert_eq!(r.observe(at(now), stat(run, 0, now)), None, "{now} ms");
        }
        now += 100;
        run += 1;
        assert_eq!(r.observe(at(now), stat(run, 0, now)), Some(Decision::Pin));
        // between QUIET_SHARE and BUSY_SHARE: a pinned thread stays, a spread one is not pinned
        now += 100;
        run += 15;
        assert_eq!(r.observe(at(now), stat(run, 0, now)), None);
        assert_eq!(
            r.stats,
            PlacementStats {
                pinned: 2,
                spread_busy: 1,
                spread_contended: 0
            }
        );
    }

    #[test]
    fn a_long_sleep_counts_as_quiet() {
        // the receive thread blocks without a timeout: its first look after an idle spell
        // covers the whole spell, which is quiet enough at once
        let t0 = Instant::now();
        let mut r = PlacementRules::new(t0, stat(0, 0, 0));
        assert_eq!(
            r.observe(t0 + Duration::from_secs(30), stat(2, 0, 3)),
            Some(Decision::Pin)
        );
        // and a thread busy between two looks a long time apart is not
        let mut r = PlacementRules::new(t0, stat(0, 0, 0));
        assert_eq!(
            r.observe(t0 + Duration::from_secs(30), stat(20_000, 0, 3)),
            None
        );
    }

    #[test]
    fn a_contended_cpu_spreads_the_thread_for_the_backoff() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut r = PlacementRules::new(t0, stat(0, 0, 0));
        assert_eq!(r.observe(at(2_000), stat(10, 0, 100)), Some(Decision::Pin));
        // waits of 100 µs per slice: not contended
        assert_eq!(
            r.observe(at(1_900), stat(11, 1_000, 110)),
            None,
            "no window yet"
        );
        assert_eq!(r.observe(at(2_100), stat(11, 1_000, 110)), None);
        // one slow window (a process starting), then a normal one: stays pinned
        assert_eq!(r.observe(at(2_200), stat(11, 7_000, 130)), None);
        assert_eq!(r.observe(at(2_300), stat(11, 7_100, 140)), None);
        // slices waiting 300 µs each, window after window: another task holds the CPU
        let mut waited = 7_100;
        let mut slices = 140;
        let mut now = 2_300;
        for _ in 1..CONTENDED_WINDOWS {
            now += 100;
            waited += 6_000;
            slices += 20;
            assert_eq!(r.observe(at(now), stat(12, waited, slices)), None);
        }
        now += 100;
        assert_eq!(
            r.observe(at(now), stat(12, waited + 6_000, slices + 20)),
            Some(Decision::Spread)
        );
        assert_eq!(r.stats.spread_contended, 1);
        let (waited, slices) = (waited + 6_000, slices + 20);
        let q = stat(12, waited, slices);
        let spread_at = now;
        // quiet all along, but not pinned again before the back-off ends
        let until = spread_at + CONTENDED_BACKOFF.as_millis() as u64;
        while now + 100 < until {
            now += 100;
            assert_eq!(r.observe(at(now), q), None, "{now} ms");
        }
        // after it, the quiet hold applies as usual
        now = until;
        assert_eq!(r.observe(at(now), q), None);
        let mut pinned_at = None;
        while pinned_at.is_none() {
            now += 100;
            if r.observe(at(now), q) == Some(Decision::Pin) {
                pinned_at = Some(now);
            }
            assert!(now < until + 2 * QUIET_HOLD.as_millis() as u64);
        }
        assert!(pinned_at.unwrap() >= until + QUIET_HOLD.as_millis() as u64 - 100);
    }

    /// The calling thread's CPUs, as the kernel has them.
    fn cpus_now() -> usize {
        let set = sched_getaffinity(Pid::from_raw(0)).unwrap();
        (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap())
            .count()
    }

    #[test]
    fn a_real_thread_is_pinned_while_quiet_and_spread_while_busy() {
        std::thread::spawn(|| {
            let Some(mut p) = Placement::for_current_thread() else {
                // one CPU (or no scheduler statistics): nothing to place
                let one_cpu = cpus_now() < 2;
                let no_stats = !std::path::Path::new("/proc/thread-self/schedstat").exists();
                assert!(one_cpu || no_stats);
                return;
            };
            let all = cpus_now();
            // quiet: sleeping between looks, as a waiting data-path thread does
            let start = Instant::now();
            while !p.rules.is_pinned() {
                std::thread::sleep(Duration::from_millis(20));
                p.tick(Instant::now());
                assert!(start.elapsed() < QUIET_HOLD * 3, "never pinned");
            }
            assert_eq!(cpus_now(), 1, "pinned to one CPU");
            assert!(p
                .quiet_cpu
                .is_set(nix::sched::sched_getcpu().unwrap())
                .unwrap());
            // busy: running without a pause
            let start = Instant::now();
            while p.rules.is_pinned() {
                let t = Instant::now();
                while t.elapsed() < Duration::from_millis(5) {
                    std::hint::spin_loop();
                }
                p.tick(Instant::now());
                assert!(start.elapsed() < Duration::from_secs(2), "never spread");
            }
            assert_eq!(cpus_now(), all, "back on all its CPUs");
        })
        .join()
        .unwrap();
    }
}
