//! Waiting for file descriptors, with a short, adaptive busy poll after work.
//!
//! Every packet through a userspace gateway costs a thread wake-up unless the thread is
//! already awake. On virtual machines that wake-up (an inter-processor interrupt to a halted
//! vCPU, then the scheduler) takes tens of microseconds, several times the work done for the
//! packet: measured on the 2-core test VM with `perf sched latency`, 74 µs on average. A
//! request/response crosses each gateway twice within about 100 µs, so a thread that keeps
//! polling (without blocking) for a little while after it handled something catches the
//! answer without being woken — the same trade as Linux's `SO_BUSY_POLL`.
//!
//! A spin only pays while the CPU would otherwise be idle. When other tasks want the CPU, a
//! spinning thread is runnable but not running when its packet arrives, and waits for the
//! scheduler's next turn (milliseconds under load) instead of being woken at once, which is
//! worse than not spinning at all. So the spin is adaptive:
//! - it yields the CPU on every turn (`sched_yield`), so any runnable task goes first;
//! - a yield that came back late means another task ran: the spin stops at once and the thread
//!   blocks, and spinning stays off for [`CONTENDED_BACKOFF`];
//! - spinning takes at most [`SPIN_SHARE`] of any [`SPIN_WINDOW`], so a trickle of packets
//!   spaced just beyond the budget cannot keep a core busy.

use crate::placement::{CpuPlacement, Placement};
use nix::poll::{PollFd, PollTimeout};
use std::io;
use std::time::{Duration, Instant};

/// A yield that took longer than this handed the CPU to another task: the machine is busy.
pub const CONTENDED_YIELD: Duration = Duration::from_micros(30);
/// After contention, no spinning for this long (blocking waits are woken with priority).
pub const CONTENDED_BACKOFF: Duration = Duration::from_millis(20);
/// The accounting window of the spin budget.
pub const SPIN_WINDOW: Duration = Duration::from_millis(100);
/// The share of a window a thread may spend spinning (in percent).
pub const SPIN_SHARE: u32 = 10;

/// How a data-path thread waits: the configuration's `busy_poll_us` and `cpu_placement`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPolicy {
    /// The spin after work (zero: none).
    pub busy_poll: Duration,
    /// Who places the thread on CPUs.
    pub placement: CpuPlacement,
}

impl WaitPolicy {
    /// The waiter of the calling thread (placement applies to the thread that calls this).
    pub fn waiter(self) -> Waiter {
        Waiter::new(self.busy_poll).placed(self.placement)
    }
}

/// A `poll(2)` caller that spins briefly (yielding) after each wake-up that found work.
#[derive(Debug)]
pub struct Waiter {
    busy_poll: Duration,
    /// Whether the last wait returned ready descriptors (work was just done).
    warm: bool,
    /// No spinning before this instant (the CPU was contended).
    quiet_until: Option<Instant>,
    /// Start of the current budget window and the spin time spent in it.
    window: (Instant, Duration),
    /// Spins that caught work, spins that ran out, spins cut short by contention.
    pub stats: SpinStats,
    /// The thread's CPU placement, when it is managed ([`Waiter::placed`]).
    placement: Option<Placement>,
}

/// What the spins did: whether a spin pays on a host is read from these (the unit tests
/// check the adaptive rules with them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpinStats {
    /// Spins that found a ready descriptor (a wake-up saved).
    pub caught: u64,
    /// Spins that ran out of budget and blocked.
    pub expired: u64,
    /// Spins stopped because another task wanted the CPU.
    pub contended: u64,
}

impl Waiter {
    /// `busy_poll` zero never spins.
    pub fn new(busy_poll: Duration) -> Waiter {
        Waiter {
            busy_poll,
            warm: false,
            quiet_until: None,
            window: (Instant::now(), Duration::ZERO),
            stats: SpinStats::default(),
            placement: None,
        }
    }

    /// Manages the calling thread's CPUs ([`crate::placement`]) unless the kernel is left to
    /// do it; call on the thread that waits.
    pub fn placed(mut self, placement: CpuPlacement) -> Waiter {
        self.placement = match placement {
            CpuPlacement::Adaptive => Placement::for_current_thread(),
            CpuPlacement::Kernel => None,
        };
        self
    }

    /// Waits until a descriptor in `fds` is ready or `timeout` passes; returns how many are
    /// ready (0 on timeout). `EINTR` is returned as an error for the caller to retry; the
    /// `revents` of `fds` are then stale, so callers build their `PollFd`s afresh each turn.
    pub fn wait(&mut self, fds: &mut [PollFd<'_>], timeout: PollTimeout) -> io::Result<usize> {
        if let Some(p) = &mut self.placement {
            p.tick(Instant::now());
        }
        if self.warm && !self.busy_poll.is_zero() {
            if let Some(n) = self.spin(fds)? {
                return Ok(n);
            }
        }
        let n = poll(fds, timeout)?;
        self.warm = n > 0;
        Ok(n)
    }

    /// The spin: `Some(ready)` when it caught work, `None` when the caller should block.
    fn spin(&mut self, fds: &mut [PollFd<'_>]) -> io::Result<Option<usize>> {
        let start = Instant::now();
        if self.quiet_until.is_some_and(|t| start < t) {
            return Ok(None);
        }
        self.quiet_until = None;
        if start.duration_since(self.window.0) >= SPIN_WINDOW {
            self.window = (start, Duration::ZERO);
        }
        let allowed = (SPIN_WINDOW * SPIN_SHARE / 100).saturating_sub(self.window.1);
        let budget = self.busy_poll.min(allowed);
        if budget.is_zero() {
            return Ok(None);
        }
        let outcome = loop {
            let n = poll(fds, PollTimeout::ZERO)?;
            if n > 0 {
                self.stats.caught += 1;
                break Some(n);
            }
            let before = Instant::now();
            if before.duration_since(start) >= budget {
                self.stats.expired += 1;
                break None;
            }
            std::thread::yield_now(); // sched_yield(2)
            let after = Instant::now();
            if after.duration_since(before) >= CONTENDED_YIELD {
                self.stats.contended += 1;
                self.quiet_until = Some(after + CONTENDED_BACKOFF);
                break None;
            }
        };
        self.window.1 += start.elapsed();
        Ok(outcome)
    }
}

/// Whether `poll(2)` reported anything for `fd` (readable, error, hang-up: any `revents`).
pub fn ready(fd: &PollFd<'_>) -> bool {
    // `None`: bits nix does not name, which are still something to look at
    fd.any().unwrap_or(true)
}

fn poll(fds: &mut [PollFd<'_>], timeout: PollTimeout) -> io::Result<usize> {
    Ok(nix::poll::poll(fds, timeout)? as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::PollFlags;
    use std::os::fd::AsFd;

    #[test]
    fn spins_only_after_work_and_only_for_its_budget() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        let budget = Duration::from_millis(5);
        let mut w = Waiter::new(budget);
        // cold: a plain blocking poll that times out
        let t = Instant::now();
        assert_eq!(w.wait(&mut fds, PollTimeout::from(5u16)).unwrap(), 0);
        assert!(!w.warm);
        assert_eq!(w.stats, SpinStats::default(), "no spin when cold");
        assert!(
            t.elapsed() < Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
        // work arrives: ready at once, and the waiter is warm
        sock.send_to(b"x", addr).unwrap();
        assert_eq!(w.wait(&mut fds, PollTimeout::from(1000u16)).unwrap(), 1);
        assert!(fds[0].revents().unwrap().contains(PollFlags::POLLIN));
        assert!(ready(&fds[0]));
        assert!(w.warm);
        let mut buf = [0u8; 4];
        sock.recv_from(&mut buf).unwrap();
        // warm with nothing to do: spins for the budget (or until another task wanted the
        // CPU), then the blocking poll times out
        let t = Instant::now();
        assert_eq!(w.wait(&mut fds, PollTimeout::from(5u16)).unwrap(), 0);
        let s = w.stats;
        assert_eq!(s.caught, 0);
        assert_eq!(s.expired + s.contended, 1, "{s:?}");
        if s.expired == 1 {
            assert!(t.elapsed() >= budget, "{:?}", t.elapsed());
            assert!(w.window.1 >= budget, "spin time accounted: {:?}", w.window);
        }
        assert!(!w.warm);
        // zero budget never spins
        let mut z = Waiter::new(Duration::ZERO);
        z.warm = true;
        assert_eq!(z.wait(&mut fds, PollTimeout::from(1u16)).unwrap(), 0);
        assert_eq!(z.stats, SpinStats::default());
    }

    #[test]
    fn a_spin_catches_work_that_arrives_while_it_spins() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        let mut w = Waiter::new(Duration::from_millis(10));
        w.warm = true;
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1));
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.send_to(b"x", addr).unwrap();
        });
        // blocking long enough that a missed datagram would still be seen, but by the poll
        let n = w.wait(&mut fds, PollTimeout::from(2000u16)).unwrap();
        sender.join().unwrap();
        assert_eq!(n, 1);
        // on a busy machine the spin may have been cut short; then the blocking poll saw it
        let s = w.stats;
        assert_eq!(s.caught + s.contended + s.expired, 1, "{s:?}");
    }

    #[test]
    fn contention_and_an_exhausted_budget_skip_the_spin() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        let mut w = Waiter::new(Duration::from_millis(5));
        // contended a moment ago: block at once, no spin counted
        w.warm = true;
        w.quiet_until = Some(Instant::now() + Duration::from_secs(60));
        assert_eq!(w.wait(&mut fds, PollTimeout::from(1u16)).unwrap(), 0);
        assert_eq!(w.stats, SpinStats::default());
        // the window's share already spent: no spin either
        w.quiet_until = None;
        w.warm = true;
        w.window = (Instant::now(), SPIN_WINDOW * SPIN_SHARE / 100);
        assert_eq!(w.wait(&mut fds, PollTimeout::from(1u16)).unwrap(), 0);
        assert_eq!(w.stats, SpinStats::default());
        // a new window restores the budget
        w.warm = true;
        w.window.0 = Instant::now() - SPIN_WINDOW;
        assert_eq!(w.wait(&mut fds, PollTimeout::from(1u16)).unwrap(), 0);
        assert_eq!(w.stats.expired + w.stats.contended, 1, "{:?}", w.stats);
    }
}
