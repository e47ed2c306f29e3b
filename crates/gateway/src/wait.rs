//! Waiting for file descriptors, with a short busy poll after work.
//!
//! Every packet through a userspace gateway costs a thread wake-up unless the thread is
//! already awake. On virtual machines that wake-up (an inter-processor interrupt to a halted
//! vCPU, then the scheduler) takes tens of microseconds, several times the work done for the
//! packet: measured on the 2-core test VM with `perf sched latency`, 74 µs on average. A
//! request/response crosses each gateway twice within about 100 µs, so a thread that keeps
//! polling (without blocking) for a little while after it handled something catches the
//! answer without being woken. The spin yields the CPU on every turn, so any runnable task
//! (the VMs, the peer gateway, the kernel's softirq threads) goes first; it costs CPU only
//! while nothing else wants it, and at most `busy_poll` per burst of work — the same trade
//! as Linux's `SO_BUSY_POLL`. Off unless `busy_poll_us` is set (see `DEFAULT_BUSY_POLL`).

use nix::poll::{PollFd, PollTimeout};
use std::io;
use std::time::{Duration, Instant};

/// A `poll(2)` caller that spins briefly (yielding) after each wake-up that found work.
#[derive(Debug, Clone)]
pub struct Waiter {
    busy_poll: Duration,
    /// Whether the last wait returned ready descriptors (work was just done).
    warm: bool,
}

impl Waiter {
    /// `busy_poll` zero never spins.
    pub fn new(busy_poll: Duration) -> Waiter {
        Waiter {
            busy_poll,
            warm: false,
        }
    }

    /// Waits until a descriptor in `fds` is ready or `timeout` passes; returns how many are
    /// ready (0 on timeout). `EINTR` is returned as an error for the caller to retry; the
    /// `revents` of `fds` are then stale, so callers build their `PollFd`s afresh each turn.
    pub fn wait(&mut self, fds: &mut [PollFd<'_>], timeout: PollTimeout) -> io::Result<usize> {
        if self.warm && !self.busy_poll.is_zero() {
            let start = Instant::now();
            loop {
                let n = poll(fds, PollTimeout::ZERO)?;
                if n > 0 {
                    return Ok(n);
                }
                if start.elapsed() >= self.busy_poll {
                    break;
                }
                std::thread::yield_now(); // sched_yield(2)
            }
        }
        let n = poll(fds, timeout)?;
        self.warm = n > 0;
        Ok(n)
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
        let mut w = Waiter::new(Duration::from_millis(200));
        // cold: a plain blocking poll that times out
        let t = Instant::now();
        assert_eq!(w.wait(&mut fds, PollTimeout::from(5u16)).unwrap(), 0);
        assert!(!w.warm);
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
        // warm with nothing to do: spins for the budget, then the blocking poll times out
        let t = Instant::now();
        assert_eq!(w.wait(&mut fds, PollTimeout::from(5u16)).unwrap(), 0);
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        assert!(!w.warm);
        // zero budget never spins
        let mut z = Waiter::new(Duration::ZERO);
        z.warm = true;
        let t = Instant::now();
        assert_eq!(z.wait(&mut fds, PollTimeout::from(1u16)).unwrap(), 0);
        assert!(
            t.elapsed() < Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
    }
}
