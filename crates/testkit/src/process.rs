//! Background processes that are always ended (by PID) when their guard drops, a scratch
//! directory that is kept, and named on stderr, when the test fails, and the one polling loop
//! every suite waits with ([`wait_for`]).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A started process; SIGTERM then (after a grace period) SIGKILL on drop.
pub struct Daemon {
    label: String,
    child: Option<Child>,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Daemon {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(label: &str, mut cmd: Command, log: &Path) -> Result<Daemon> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("spawn {label}"))?;
        Ok(Daemon {
            label: label.into(),
            child: Some(child),
            log: log.into(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `grace` for exit; SIGKILL after that. Returns the exit code.
    pub fn stop(&mut self, grace: Duration) -> Option<i32> {
        self.stop_with(libc::SIGTERM, grace)
    }

    /// Sends `signal` and waits up to `grace` for exit; SIGKILL after that. Returns the exit
    /// code (`None` when killed by a signal, or already stopped).
    pub fn stop_with(&mut self, signal: i32, grace: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        if let Ok(Some(st)) = child.try_wait() {
            return st.code();
        }
        // SAFETY: kill(2) on the PID of a child we spawned and have not yet reaped.
        unsafe { libc::kill(child.id() as i32, signal) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "{} (pid {}) ignored signal {signal}; killing",
            self.label,
            child.id()
        );
        let _ = child.kill();
        child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// A scratch directory under /tmp, removed on success and kept (and printed) on panic.
pub struct Scratch {
    /// The directory.
    pub path: PathBuf,
}

impl Scratch {
    /// Creates `/tmp/hn-<tag>-<id>`.
    pub fn new(tag: &str, id: &str) -> Result<Scratch> {
        let path = std::env::temp_dir().join(format!("hn-{tag}-{id}"));
        std::fs::create_dir_all(&path)?;
        Ok(Scratch { path })
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "test failed: configs and logs kept in {}",
                self.path.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Polls `f` every 50 ms until it returns `Some`, or fails after `timeout` with `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> Result<T> {
    wait_for_every(Duration::from_millis(50), timeout, what, f)
}

/// [`wait_for`] polling every `interval` (for checks that are costly, e.g. running a command).
pub fn wait_for_every<T>(
    interval: Duration,
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(interval);
    }
}

/// The last `n` lines of `s` (a log tail for an error message).
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_returns_the_first_value() {
        let mut calls = 0;
        let v = wait_for(Duration::from_secs(5), "the third call", || {
            calls += 1;
            (calls == 3).then_some(calls * 10)
        })
        .unwrap();
        assert_eq!(v, 30);
    }

    #[test]
    fn wait_for_times_out_naming_what_it_waited_for() {
        let e = wait_for_every(
            Duration::from_millis(1),
            Duration::from_millis(20),
            "Godot",
            || None::<()>,
        )
        .unwrap_err();
        assert!(e.to_string().contains("waiting for Godot"), "{e}");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }

    #[test]
    fn scratch_is_removed_on_success_and_kept_on_failure() {
        let ok = Scratch::new("testkit-ok", &std::process::id().to_string()).unwrap();
        let ok_path = ok.path.clone();
        drop(ok);
        assert!(!ok_path.exists());
        let kept = std::thread::spawn(|| {
            let s = Scratch::new("testkit-kept", &std::process::id().to_string()).unwrap();
            let p = s.path.clone();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let _s = s;
                panic!("a failing test");
            }));
            assert!(r.is_err());
            p
        })
        .join()
        .unwrap();
        assert!(kept.exists(), "kept for the post-mortem");
        std::fs::remove_dir_all(kept).unwrap();
    }

    #[test]
    fn a_daemon_is_stopped_on_drop() {
        let dir = Scratch::new("testkit-daemon", &std::process::id().to_string()).unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut d = Daemon::spawn("sleep", cmd, &dir.join("log")).unwrap();
        assert!(d.alive());
        let pid = d.pid();
        drop(d);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
}
