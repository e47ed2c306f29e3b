//! Supervision of a lab's long-lived processes: each gateway (`hybridnet gateway supervise
//! CONFIG --control SOCK --state FILE`) and the lab controller (`hybridnet lab controller
//! --lab ID`, which supervises its own `--serve` child).
//!
//! One gateway process serves every tunnel of its VNet gateway, so its death (a panic, a
//! signal) ends all of them. The lab therefore starts a supervisor in the gateway's namespace,
//! which runs the real `hybridnet gateway run CONFIG` as its child and waits. When the child
//! dies abnormally (killed by a signal, or a non-zero exit such as a panic's 101) it is started
//! again after a jittered exponential back-off (0.5 s doubling to 30 s, back to 0.5 s once a
//! child had run for 30 s), and the restart — count, exit status or signal, when — is recorded
//! in a small JSON file ([`SupervisorState`]) that `lab status` shows. A clean exit (status 0:
//! the gateway was told to stop) ends the supervisor too.
//!
//! SIGTERM and SIGINT are forwarded to the child, which sends its DELETEs and exits; the
//! supervisor then exits (SIGKILL to a child that has not exited within
//! [`CHILD_STOP_GRACE`]). SIGHUP is forwarded (the gateway re-reads its configuration). The
//! child is started with `PR_SET_PDEATHSIG` = SIGKILL, so whatever ends the supervisor ends
//! the child too: it is never left as an orphan holding the gateway's ports.

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{getppid, Pid};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Delay before the first restart after a crash.
pub const BACKOFF_START: Duration = Duration::from_millis(500);
/// Longest delay between restarts of a child that keeps dying.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A child that ran this long before dying was healthy: the back-off starts over.
pub const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How long a child told to stop gets to send its DELETEs before SIGKILL.
pub const CHILD_STOP_GRACE: Duration = Duration::from_secs(5);
/// Exit status of a Rust program that panicked.
const PANIC_EXIT: i32 = 101;

/// What the supervisor records about its child, written atomically after every change.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupervisorState {
    /// The supervisor's own pid.
    pub supervisor_pid: i32,
    /// The running child (`gateway run`), if one runs now.
    pub child_pid: Option<i32>,
    /// Unix time the running child was started.
    pub child_started_unix: Option<u64>,
    /// How many times the child died abnormally and was (or is about to be) started again.
    pub restarts: u32,
    /// The last abnormal end of a child: why and when.
    pub last_exit: Option<ChildExit>,
    /// Unix time in milliseconds of the next start, while waiting out the back-off.
    pub next_start_unix_ms: Option<u64>,
}

/// How a child ended.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildExit {
    /// Its pid.
    pub pid: i32,
    /// Exit status, when it exited.
    pub code: Option<i32>,
    /// Signal number, when a signal killed it.
    pub signal: Option<i32>,
    /// In words, e.g. `killed by signal 9 (SIGKILL)` or `exited with status 101 (a panic)`.
    pub reason: String,
    /// Unix time it ended.
    pub at_unix: u64,
    /// How long it had run, in milliseconds.
    pub ran_ms: u64,
}

/// What to supervise.
#[derive(Clone, Debug)]
pub struct SuperviseOptions {
    /// The child's arguments after the executable: `gateway run CONFIG --control SOCK` for a
    /// gateway, `lab controller --lab ID --serve` for a lab controller.
    pub child_args: Vec<std::ffi::OsString>,
    /// Where the supervisor keeps its [`SupervisorState`].
    pub state: PathBuf,
    /// What the child is, in log lines (`gateway process`, `lab controller`).
    pub name: String,
    /// A gateway's VNet router, whose routes through the gateway are taken back when the
    /// gateway dies (so the VNet sends to the other instance of an active-active gateway
    /// while this one restarts).
    pub vnet_router: Option<gateway::config::VnetRouter>,
}

impl SuperviseOptions {
    /// The supervision of `hybridnet gateway run CONFIG --control SOCK`.
    pub fn gateway(config: &Path, control: &Path, state: &Path) -> SuperviseOptions {
        SuperviseOptions {
            child_args: vec![
                "gateway".into(),
                "run".into(),
                config.into(),
                "--control".into(),
                control.into(),
            ],
            state: state.to_path_buf(),
            name: "gateway process".into(),
            vnet_router: gateway::GatewayConfig::load(config)
                .ok()
                .and_then(|c| c.vnet_router),
        }
    }
}

/// Why the supervisor could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    /// Blocking the signals it handles or opening its signalfd failed.
    #[error("signal handling: {0}")]
    Signals(#[source] io::Error),
    /// Waiting for signals failed.
    #[error("waiting for signals: {0}")]
    Poll(#[source] io::Error),
    /// The child's state could not be read.
    #[error("waiting for the gateway process: {0}")]
    Wait(#[source] io::Error),
    /// The state file could not be written.
    #[error("{path}: {source}")]
    State {
        /// Where it is.
        path: PathBuf,
        #[source]
        /// The underlying error.
        source: io::Error,
    },
}

/// Reads a supervisor's state file.
pub fn read_state(path: &Path) -> Option<SupervisorState> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Describes how a child ended, e.g. `killed by signal 6 (SIGABRT)`.
pub fn describe(status: &ExitStatus) -> String {
    if let Some(sig) = status.signal() {
        let core = if status.core_dumped() {
            ", core dumped"
        } else {
            ""
        };
        return format!("killed by signal {sig} ({}{core})", signal_name(sig));
    }
    match status.code() {
        Some(PANIC_EXIT) => format!("exited with status {PANIC_EXIT} (a panic)"),
        Some(c) => format!("exited with status {c}"),
        None => "ended".to_string(),
    }
}

fn signal_name(sig: i32) -> &'static str {
    Signal::try_from(sig).map_or("signal", Signal::as_str)
}

/// A child's pid, for kill(2).
fn child_pid(c: &Child) -> Pid {
    Pid::from_raw(c.id() as i32)
}

/// The delay before restart number `failures` (1-based) of a child that keeps dying:
/// [`BACKOFF_START`] doubling up to [`BACKOFF_CAP`], times a jitter factor in [0.8, 1.2) so
/// that gateways that died together do not restart in lockstep.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let base = BACKOFF_START
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_CAP);
    base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
}

fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// A small random source for the jitter (xorshift64*, seeded from the kernel).
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let mut seed = [0u8; 8];
        let got = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| io::Read::read_exact(&mut f, &mut seed));
        let seed = match got {
            Ok(()) => u64::from_le_bytes(seed),
            Err(_) => unix_now().as_nanos() as u64 ^ u64::from(std::process::id()),
        };
        Jitter(seed | 1)
    }

    /// A number in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Blocks the signals the supervisor handles and returns a signalfd reporting them.
fn signal_fd() -> io::Result<SignalFd> {
    let set = SigSet::from_iter([
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ]);
    set.thread_block()?;
    Ok(SignalFd::with_flags(
        &set,
        SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
    )?)
}

/// The next pending signal, if any.
fn read_signal(fd: &SignalFd) -> Option<i32> {
    match fd.read_signal() {
        Ok(Some(info)) => Some(info.ssi_signo as i32),
        _ => None,
    }
}

/// Starts `hybridnet gateway run CONFIG --control SOCK`: this very executable (through
/// /proc/self/exe, so a rebuilt binary on disk does not change what is restarted), with our
/// stdout and stderr (the gateway's log), dying with us.
fn spawn_child(opts: &SuperviseOptions) -> io::Result<Child> {
    let supervisor = Pid::this();
    let argv0 = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "hybridnet".into());
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0(argv0).args(&opts.child_args).stdin(Stdio::null());
    let chld = SigSet::from_iter([Signal::SIGCHLD]);
    // SAFETY: between fork and exec only async-signal-safe calls: prctl(2), getppid(2),
    // sigprocmask on a local set (nix's wrappers of them allocate nothing).
    // Kept: `pre_exec` itself is unsafe in std; no crate makes a fork-time hook safe.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The supervisor died before the death signal was armed: do not run orphaned.
            if getppid() != supervisor {
                return Err(io::Error::other("the supervisor is gone"));
            }
            // TERM, INT and HUP stay blocked: the gateway takes them from its signalfd, so one
            // that arrives while it starts is handled, not fatal.
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&chld), None);
            Ok(())
        });
    }
    cmd.spawn()
}

fn log(line: &str) {
    eprintln!("hybridnet supervisor[{}]: {line}", std::process::id());
}

/// Runs the supervisor until it is told to stop (SIGTERM/SIGINT) or its child stops cleanly.
pub fn run(opts: &SuperviseOptions) -> Result<(), SuperviseError> {
    let name = &opts.name;
    let signals = signal_fd().map_err(SuperviseError::Signals)?;
    let save = |st: &SupervisorState| {
        let data = serde_json::to_vec_pretty(st).expect("state serializes");
        crate::state::write_durable(&opts.state, &data, 0o644).map_err(|source| {
            SuperviseError::State {
                path: opts.state.clone(),
                source,
            }
        })
    };
    let mut st = SupervisorState {
        supervisor_pid: std::process::id() as i32,
        ..Default::default()
    };
    let mut jitter = Jitter::new();
    let mut child: Option<(Child, Instant)> = None;
    let mut failures: u32 = 0;
    let mut next_start = Some(Instant::now());
    let mut stop_deadline: Option<Instant> = None;
    loop {
        if stop_deadline.is_none()
            && child.is_none()
            && next_start.is_some_and(|t| t <= Instant::now())
        {
            next_start = None;
            st.next_start_unix_ms = None;
            match spawn_child(opts) {
                Ok(c) => {
                    log(&format!("started {name} {}", c.id()));
                    st.child_pid = Some(c.id() as i32);
                    st.child_started_unix = Some(unix_now().as_secs());
                    child = Some((c, Instant::now()));
                }
                Err(e) => {
                    failures += 1;
                    let delay = backoff(failures, jitter.next());
                    st.restarts += 1;
                    st.last_exit = Some(ChildExit {
                        pid: 0,
                        code: None,
                        signal: None,
                        reason: format!("could not be started: {e}"),
                        at_unix: unix_now().as_secs(),
                        ran_ms: 0,
                    });
                    st.next_start_unix_ms = Some((unix_now() + delay).as_millis() as u64);
                    log(&format!(
                        "cannot start the {name}: {e}; again in {delay:.1?}"
                    ));
                    next_start = Some(Instant::now() + delay);
                }
            }
            save(&st)?;
        }
        if stop_deadline.is_some() && child.is_none() {
            return Ok(());
        }
        let now = Instant::now();
        let wake = [next_start, stop_deadline].into_iter().flatten().min();
        let timeout = match wake {
            None => PollTimeout::NONE,
            Some(t) => PollTimeout::from(
                t.saturating_duration_since(now).as_millis().min(60_000) as u16 + 1,
            ),
        };
        let mut pfd = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let Err(e) = nix::poll::poll(&mut pfd, timeout) {
            if e != nix::errno::Errno::EINTR {
                return Err(SuperviseError::Poll(e.into()));
            }
        }
        while let Some(sig) = read_signal(&signals) {
            match Signal::try_from(sig) {
                Ok(stop @ (Signal::SIGTERM | Signal::SIGINT)) if stop_deadline.is_none() => {
                    stop_deadline = Some(Instant::now() + CHILD_STOP_GRACE);
                    next_start = None;
                    if let Some((c, _)) = &child {
                        log(&format!("signal {sig}: stopping {name} {}", c.id()));
                        // our own child, not yet reaped
                        let _ = kill(child_pid(c), stop);
                    }
                }
                Ok(Signal::SIGHUP) => {
                    if let Some((c, _)) = &child {
                        // our own child, not yet reaped
                        let _ = kill(child_pid(c), Signal::SIGHUP);
                    }
                }
                _ => {}
            }
        }
        if let (Some(deadline), Some((c, _))) = (stop_deadline, &mut child) {
            if Instant::now() >= deadline {
                log(&format!(
                    "{name} {} did not stop within {CHILD_STOP_GRACE:?}; killing it",
                    c.id()
                ));
                let _ = c.kill();
            }
        }
        let Some((c, started)) = &mut child else {
            continue;
        };
        let Some(status) = c.try_wait().map_err(SuperviseError::Wait)? else {
            continue;
        };
        let (pid, ran) = (c.id() as i32, started.elapsed());
        child = None;
        st.child_pid = None;
        st.child_started_unix = None;
        let reason = describe(&status);
        if stop_deadline.is_some() || status.success() {
            log(&format!("{name} {pid} {reason}; stopping"));
            save(&st)?;
            return Ok(());
        }
        if let Some(r) = &opts.vnet_router {
            match gateway::vnet_routes::flush(r) {
                Ok(()) => log(&format!(
                    "{name} {pid} died: its routes in {} removed",
                    r.netns
                )),
                Err(e) => log(&format!(
                    "{name} {pid} died: removing its routes in {}: {e}",
                    r.netns
                )),
            }
        }
        if ran >= STABLE_AFTER {
            failures = 0;
        }
        failures += 1;
        let delay = backoff(failures, jitter.next());
        st.restarts += 1;
        st.last_exit = Some(ChildExit {
            pid,
            code: status.code(),
            signal: status.signal(),
            reason: reason.clone(),
            at_unix: unix_now().as_secs(),
            ran_ms: ran.as_millis() as u64,
        });
        st.next_start_unix_ms = Some((unix_now() + delay).as_millis() as u64);
        log(&format!(
            "{name} {pid} {reason} after {ran:.1?}; restart {} in {delay:.1?}",
            st.restarts
        ));
        next_start = Some(Instant::now() + delay);
        save(&st)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_half_a_second_to_the_cap_with_bounded_jitter() {
        assert_eq!(backoff(1, 0.5), Duration::from_millis(500));
        assert_eq!(backoff(2, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(3, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(7, 0.5), BACKOFF_CAP);
        assert_eq!(backoff(1000, 0.5), BACKOFF_CAP);
        assert_eq!(backoff(1, 0.0), Duration::from_millis(400));
        assert!(backoff(1, 0.999) < Duration::from_millis(600));
        let mut j = Jitter::new();
        for _ in 0..1000 {
            let x = j.next();
            assert!((0.0..1.0).contains(&x), "{x}");
        }
    }

    #[test]
    fn exits_are_described_by_signal_or_status() {
        assert_eq!(
            describe(&ExitStatus::from_raw(libc::SIGKILL)),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            describe(&ExitStatus::from_raw(libc::SIGABRT | 0x80)),
            "killed by signal 6 (SIGABRT, core dumped)"
        );
        assert_eq!(
            describe(&ExitStatus::from_raw(101 << 8)),
            "exited with status 101 (a panic)"
        );
        assert_eq!(
            describe(&ExitStatus::from_raw(2 << 8)),
            "exited with status 2"
        );
    }
}
