//! Network namespaces deleted on drop (with every process still in them), commands run inside
//! them, veth pairs between them, and names unique across concurrent test runs.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};

/// A short random id for names (namespaces are global; runs must not collide).
pub fn unique_id() -> String {
    let mut b = [0u8; 4];
    if let Ok(mut f) = File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    format!(
        "{:04x}{:08x}",
        std::process::id() & 0xffff,
        u32::from_ne_bytes(b)
    )
}

/// Runs a command, failing with its stderr when it exits non-zero.
pub fn sh(prog: &str, args: &[&str]) -> Result<Output> {
    let out = Command::new(prog)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {prog}"))?;
    if !out.status.success() {
        bail!(
            "`{prog} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// A network namespace that is deleted (with every process still in it) on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` with `lo` up and IPv6 off (it would only add noise).
    pub fn new(name: &str) -> Result<Netns> {
        assert!(name.len() <= 32, "netns name too long: {name}");
        sh("ip", &["netns", "add", name]).context(
            "cannot create a network namespace: these tests need root (CAP_SYS_ADMIN/CAP_NET_ADMIN) and iproute2",
        )?;
        let ns = Netns {
            name: name.to_string(),
        };
        ns.exec("ip", &["link", "set", "lo", "up"])?;
        ns.exec(
            "sysctl",
            &[
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )?;
        Ok(ns)
    }

    /// The namespace's name (as in `ip netns`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs a command inside the namespace and fails on a non-zero exit.
    pub fn exec(&self, prog: &str, args: &[&str]) -> Result<Output> {
        let mut a = vec!["netns", "exec", &self.name, prog];
        a.extend_from_slice(args);
        sh("ip", &a)
    }

    /// Runs a command inside the namespace and returns its output whatever the exit status.
    pub fn exec_unchecked(&self, prog: &str, args: &[&str]) -> Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", &self.name, prog])
            .args(args)
            .output()
            .context("cannot run ip netns exec")
    }

    /// A `Command` that runs `prog` inside the namespace.
    pub fn command(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]);
        c
    }

    /// Adds an address to a device and brings it up.
    pub fn addr(&self, dev: &str, cidr: &str) -> Result<()> {
        self.exec("ip", &["addr", "add", cidr, "dev", dev])?;
        self.exec("ip", &["link", "set", dev, "up"])?;
        Ok(())
    }

    /// Writes a sysctl.
    pub fn sysctl(&self, kv: &str) -> Result<()> {
        self.exec("sysctl", &["-qw", kv]).map(|_| ())
    }

    /// Makes the namespace a router that accepts packets re-injected from a TUN device.
    pub fn make_router(&self) -> Result<()> {
        self.sysctl("net.ipv4.ip_forward=1")?;
        self.exec(
            "sh",
            &[
                "-c",
                "for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 >\"$f\"; done",
            ],
        )?;
        Ok(())
    }

    /// Runs `f` on a fresh thread that has entered this namespace: sockets it opens live here.
    pub fn run_in<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<Result<T>> {
        let name = self.name.clone();
        std::thread::spawn(move || {
            enter(&name)?;
            Ok(f())
        })
    }

    /// PIDs of processes living in the namespace.
    pub fn pids(&self) -> Vec<i32> {
        Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Anything still living here was started by this test (transitively): end it by PID.
        for pid in self.pids() {
            // SAFETY: kill(2) on a PID from our own namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for _ in 0..50 {
            if self.pids().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if let Err(e) = sh("ip", &["netns", "del", &self.name]) {
            eprintln!("warning: could not delete netns {}: {e:#}", self.name);
        }
    }
}

/// Moves the calling thread (only it) into namespace `name`: sockets it opens afterwards live
/// there. Meant for a thread of its own, as [`Netns::run_in`] makes.
pub fn enter(name: &str) -> Result<()> {
    let path = format!("/run/netns/{name}");
    let file = File::open(&path).with_context(|| format!("open {path}"))?;
    // SAFETY: setns on a valid namespace fd; affects only the calling thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns {path}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// A veth pair whose ends are created directly inside two namespaces.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    sh(
        "ip",
        &[
            "link",
            "add",
            a_if,
            "netns",
            a.name(),
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            b.name(),
        ],
    )
    .map(|_| ())
}
