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

    /// Waits until a descriptor in `fds` is ready or `timeout_ms` passes (−1: no limit); returns
    /// how many are ready (0 on timeout). `EINTR` is returned as an error for the caller to retry.
    pub fn wait(&mut self, fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
        for f in fds.iter_mut() {
            f.revents = 0;
        }
        if self.warm && !self.busy_poll.is_zero() {
            let start = Instant::now();
            loop {
                let n = poll(fds, 0)?;
                if n > 0 {
                    return Ok(n);
                }
                if start.elapsed() >= self.busy_poll {
                    break;
                }
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
        }
        let n = poll(fds, timeout_ms)?;
        self.warm = n > 0;
        Ok(n)
    }
}

fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: fds is a valid, exclusively borrowed array of pollfd for its length.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn pollfd(fd: i32) -> libc::pollfd {
        libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }
    }

    #[test]
    fn spins_only_after_work_and_only_for_its_budget() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let mut fds = [pollfd(sock.as_raw_fd())];
        let mut w = Waiter::new(Duration::from_millis(200));
        // cold: a plain blocking poll that times out
        let t = Instant::now();
        assert_eq!(w.wait(&mut fds, 5).unwrap(), 0);
        assert!(!w.warm);
        assert!(
            t.elapsed() < Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
        // work arrives: ready at once, and the waiter is warm
        sock.send_to(b"x", addr).unwrap();
        assert_eq!(w.wait(&mut fds, 1000).unwrap(), 1);
        assert!(fds[0].revents & libc::POLLIN != 0);
        assert!(w.warm);
        let mut buf = [0u8; 4];
        sock.recv_from(&mut buf).unwrap();
        // warm with nothing to do: spins for the budget, then the blocking poll times out
        let t = Instant::now();
        assert_eq!(w.wait(&mut fds, 5).unwrap(), 0);
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
        assert_eq!(z.wait(&mut fds, 1).unwrap(), 0);
        assert!(
            t.elapsed() < Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
    }
}
