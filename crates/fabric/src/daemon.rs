//! The daemons a lab runs in its namespaces — each VNet gateway's supervised `hybridnet
//! gateway run` ([`crate::gateways`]), each strongSwan site's charon
//! ([`crate::strongswan_device`]) — and the one way every one of them is brought in line with
//! what the sites' resources call for ([`converge`]): its configuration is rendered and
//! compared, by fingerprint, with what the running instance took; then the daemon is left
//! alone, reloaded in place, restarted, started or stopped.
//!
//! The pieces both kinds are made of live here too: files written with mode 0600 (they hold
//! shared keys), a private log, a process started detached in a namespace and waited for until
//! it answers, and a stop that is a SIGTERM first (so the daemon sends its DELETEs) and a
//! SIGKILL after a grace period.

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What happened to one daemon during a realization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DaemonAction {
    /// Started (it was not running).
    Started,
    /// Stopped and started again with a changed configuration (or because it did not answer).
    Restarted,
    /// Given its changed configuration in place; its process and unchanged tunnels kept running.
    Reloaded,
    /// Left running (configuration unchanged).
    Unchanged,
    /// Stopped: nothing is left for it to serve.
    Stopped,
}

impl DaemonAction {
    /// The word `lab up` reports it with.
    pub fn label(self) -> &'static str {
        match self {
            DaemonAction::Started => "started",
            DaemonAction::Restarted => "restarted",
            DaemonAction::Reloaded => "reloaded",
            DaemonAction::Unchanged => "unchanged",
            DaemonAction::Stopped => "stopped",
        }
    }
}

/// One line for `lab up`'s progress: how many daemons were started, reloaded, …, failed
/// (empty when there were none).
pub fn summary<'a, E: 'a>(
    results: impl IntoIterator<Item = &'a Result<DaemonAction, E>>,
) -> String {
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for r in results {
        let label = match r {
            Ok(a) => a.label(),
            Err(_) => "FAILED",
        };
        *counts.entry(label).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A daemon of the lab as [`converge`] drives it: one instance, in one namespace.
pub trait Daemon {
    /// Its configuration, rendered from the sites' resources.
    type Config;
    /// Why it could not be started or reloaded.
    type Error;

    /// Fingerprint of a configuration, as recorded when an instance takes it.
    fn fingerprint(config: &Self::Config) -> String;

    /// The fingerprint of the configuration the running instance took, when it is healthy; a
    /// daemon that does not answer, or is not the recorded instance, is started afresh.
    fn running(&self) -> Option<String>;

    /// Whether a process of it is alive (replacing it is then a restart).
    fn alive(&self) -> bool;

    /// Whether anything of it is there to stop: a live process or its record.
    fn present(&self) -> bool;

    /// Gives the running instance `config` without restarting it; `Ok(false)` when the change
    /// needs a restart (or the instance would not take it).
    fn reload(&mut self, config: &Self::Config) -> Result<bool, Self::Error>;

    /// Starts an instance with `config` and waits until it answers.
    fn start(&mut self, config: &Self::Config) -> Result<(), Self::Error>;

    /// Stops the instance (SIGTERM, then SIGKILL) and removes its record.
    fn stop(&mut self);

    /// Removes what is left of a daemon no longer wanted, after [`Daemon::stop`].
    fn forget(&mut self) {}
}

/// Makes a daemon run `wanted`: left alone when it already runs it, reloaded in place when
/// it can take the change, else (re)started; stopped and forgotten when nothing is wanted.
pub fn converge<D: Daemon>(
    daemon: &mut D,
    wanted: Option<&D::Config>,
) -> Result<DaemonAction, D::Error> {
    let Some(config) = wanted else {
        let present = daemon.present();
        daemon.stop();
        daemon.forget();
        return Ok(if present {
            DaemonAction::Stopped
        } else {
            DaemonAction::Unchanged
        });
    };
    if let Some(running) = daemon.running() {
        if running == D::fingerprint(config) {
            return Ok(DaemonAction::Unchanged);
        }
        if daemon.reload(config)? {
            return Ok(DaemonAction::Reloaded);
        }
    }
    let was_alive = daemon.alive();
    daemon.stop();
    daemon.start(config)?;
    Ok(if was_alive {
        DaemonAction::Restarted
    } else {
        DaemonAction::Started
    })
}

/// Why a daemon's process could not be run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// One of its files could not be written or opened.
    #[error("{path}: {source}")]
    Io {
        /// Where it is.
        path: PathBuf,
        #[source]
        /// The underlying error.
        source: std::io::Error,
    },
    /// Its program could not be started in the namespace.
    #[error("cannot start {program} in {netns}: {source}")]
    Spawn {
        /// The program concerned.
        program: String,
        /// The network namespace concerned.
        netns: String,
        #[source]
        /// The underlying error.
        source: std::io::Error,
    },
    /// It exited, or did not answer in time.
    #[error("{daemon} in {netns} did not come up: {detail}")]
    NotUp {
        /// The daemon.
        daemon: &'static str,
        /// The network namespace concerned.
        netns: String,
        /// What happened, in words.
        detail: String,
    },
}

/// Maps an I/O error on `path` to [`DaemonError::Io`].
pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Fingerprint of a rendered configuration: what a record keeps to tell a change.
pub fn fingerprint(text: &str) -> String {
    format!("{:016x}", crate::names::fnv1a(text))
}

/// Writes `data` with mode 0600 (it may hold shared keys), atomically and durably, unless the
/// file already holds it; returns whether it wrote.
pub fn write_private(path: &Path, data: &[u8]) -> Result<bool, DaemonError> {
    if std::fs::read(path).ok().as_deref() == Some(data) {
        return Ok(false);
    }
    crate::state::write_durable(path, data, 0o600).map_err(io_err(path))?;
    Ok(true)
}

/// Opens (creating it private) a log file for appending.
pub fn open_log(path: &Path) -> Result<std::fs::File, DaemonError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))
}

/// Starts `cmd` detached (own session, no controlling terminal) in namespace `netns`, with
/// stdout and stderr to `log`; returns its pid. `program` names it in an error.
pub fn spawn_detached(
    mut cmd: Command,
    netns: &str,
    log: &Path,
    program: &str,
) -> Result<i32, DaemonError> {
    let out = open_log(log)?;
    let err = out.try_clone().map_err(io_err(log))?;
    let ns_path = Path::new(crate::netns::NETNS_RUN_DIR).join(netns);
    let ns = std::fs::File::open(&ns_path).map_err(io_err(&ns_path))?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    crate::netns::enter_detached(&mut cmd, &ns);
    let child = cmd.spawn().map_err(|source| DaemonError::Spawn {
        program: program.to_string(),
        netns: netns.to_string(),
        source,
    })?;
    Ok(child.id() as i32)
}

/// Polls every 20 ms until `answers`; fails with the detail `exited` gives once the process
/// is found dead, or when `timeout` passes without an answer on `socket`.
pub fn wait_until_up(
    daemon: &'static str,
    netns: &str,
    socket: &Path,
    timeout: Duration,
    mut answers: impl FnMut() -> bool,
    mut exited: impl FnMut() -> Option<String>,
) -> Result<(), DaemonError> {
    let not_up = |detail| DaemonError::NotUp {
        daemon,
        netns: netns.to_string(),
        detail,
    };
    let deadline = Instant::now() + timeout;
    loop {
        if answers() {
            return Ok(());
        }
        if let Some(detail) = exited() {
            return Err(not_up(detail));
        }
        if Instant::now() > deadline {
            return Err(not_up(format!(
                "no answer on {} within {timeout:?}",
                socket.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` is a live process (not a zombie).
pub fn is_live(pid: i32) -> bool {
    procfs::process::Process::new(pid)
        .and_then(|p| p.stat())
        .is_ok_and(|stat| stat.state != 'Z')
}

/// Reaps `pid` if it is a child of ours that exited, so it leaves no zombie.
pub fn reap(pid: i32) {
    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
}

/// Sends `sig` to the processes `pids` finds, waits up to `grace` for them to go, then
/// SIGKILLs those left and waits (a second at most) until they are gone. `pids` must only
/// find processes of this lab.
pub fn terminate(mut pids: impl FnMut() -> Vec<i32>, sig: Signal, grace: Duration) {
    let first = pids();
    if first.is_empty() {
        return;
    }
    for pid in first {
        // a process of this lab, as `pids` vouches
        let _ = kill(Pid::from_raw(pid), sig);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !pids().is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = pids();
    if left.is_empty() {
        return;
    }
    for pid in left {
        // as above; it ignored the signal
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline && !pids().is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The last `lines` lines of a log, for an error saying why a daemon did not come up.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon in memory: what runs, and what each call did.
    #[derive(Default)]
    struct Fake {
        running: Option<String>,
        alive: bool,
        reloadable: bool,
        calls: Vec<&'static str>,
    }

    impl Daemon for Fake {
        type Config = String;
        type Error = ();
        fn fingerprint(config: &String) -> String {
            config.clone()
        }
        fn running(&self) -> Option<String> {
            self.running.clone()
        }
        fn alive(&self) -> bool {
            self.alive
        }
        fn present(&self) -> bool {
            self.alive
        }
        fn reload(&mut self, config: &String) -> Result<bool, ()> {
            self.calls.push("reload");
            if self.reloadable {
                self.running = Some(config.clone());
            }
            Ok(self.reloadable)
        }
        fn start(&mut self, config: &String) -> Result<(), ()> {
            self.calls.push("start");
            self.running = Some(config.clone());
            self.alive = true;
            Ok(())
        }
        fn stop(&mut self) {
            self.calls.push("stop");
            self.running = None;
            self.alive = false;
        }
        fn forget(&mut self) {
            self.calls.push("forget");
        }
    }

    fn run(mut d: Fake, wanted: Option<&str>) -> (DaemonAction, Vec<&'static str>) {
        let wanted = wanted.map(str::to_string);
        let a = converge(&mut d, wanted.as_ref()).unwrap();
        (a, d.calls)
    }

    #[test]
    fn a_daemon_is_only_restarted_when_it_cannot_take_the_change_in_place() {
        let up = |fp: &str, reloadable| Fake {
            running: Some(fp.into()),
            alive: true,
            reloadable,
            ..Default::default()
        };
        assert_eq!(
            run(up("a", false), Some("a")),
            (DaemonAction::Unchanged, vec![])
        );
        assert_eq!(
            run(up("a", true), Some("b")),
            (DaemonAction::Reloaded, vec!["reload"])
        );
        assert_eq!(
            run(up("a", false), Some("b")),
            (DaemonAction::Restarted, vec!["reload", "stop", "start"])
        );
        // Alive but not healthy (e.g. not answering): restarted without asking it to reload.
        let sick = Fake {
            alive: true,
            ..Default::default()
        };
        assert_eq!(
            run(sick, Some("a")),
            (DaemonAction::Restarted, vec!["stop", "start"])
        );
        assert_eq!(
            run(Fake::default(), Some("a")),
            (DaemonAction::Started, vec!["stop", "start"])
        );
    }

    #[test]
    fn a_daemon_nothing_wants_is_stopped_and_forgotten() {
        assert_eq!(
            run(Fake::default(), None),
            (DaemonAction::Unchanged, vec!["stop", "forget"])
        );
        let up = Fake {
            running: Some("a".into()),
            alive: true,
            ..Default::default()
        };
        assert_eq!(
            run(up, None),
            (DaemonAction::Stopped, vec!["stop", "forget"])
        );
    }

    #[test]
    fn the_summary_counts_by_outcome() {
        let results: Vec<Result<DaemonAction, ()>> = vec![
            Ok(DaemonAction::Started),
            Err(()),
            Ok(DaemonAction::Started),
            Ok(DaemonAction::Unchanged),
        ];
        assert_eq!(summary(&results), "1 FAILED, 2 started, 1 unchanged");
        assert_eq!(summary(&Vec::<Result<DaemonAction, ()>>::new()), "");
    }
}
