//! Network namespaces with Drop cleanup, veth pairs, addresses and routes, and the standard
//! two-site topology the gateway tests use.

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
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = File::open(&path).with_context(|| format!("open {path}"))?;
            // SAFETY: setns on a valid namespace fd; affects only this (fresh) thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!("setns {path}: {}", std::io::Error::last_os_error());
            }
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

/// The two-site topology:
///
/// ```text
///  vm-a 10.1.1.4 ── 10.1.1.1 gw-a 198.51.100.1 ── "internet" ── 198.51.100.2 gw-b 10.2.1.1 ── 10.2.1.4 vm-b
/// ```
/// Site A owns 10.1.0.0/16, site B 10.2.0.0/16. Dropping it removes all four namespaces
/// (vm namespaces first, so processes in gateways are killed last by their own guards).
pub struct TwoSites {
    /// Unique id of this topology (part of every namespace name).
    pub id: String,
    /// Host behind gateway A.
    pub vm_a: Netns,
    /// Host behind gateway B.
    pub vm_b: Netns,
    /// Gateway A.
    pub gw_a: Netns,
    /// Gateway B.
    pub gw_b: Netns,
}

/// Addresses of [`TwoSites`].
pub mod addrs {
    /// vm-a.
    pub const VM_A: &str = "10.1.1.4";
    /// vm-b.
    pub const VM_B: &str = "10.2.1.4";
    /// gw-a's inside address.
    pub const GW_A_IN: &str = "10.1.1.1";
    /// gw-b's inside address.
    pub const GW_B_IN: &str = "10.2.1.1";
    /// gw-a's public address.
    pub const GW_A_WAN: &str = "198.51.100.1";
    /// gw-b's public address.
    pub const GW_B_WAN: &str = "198.51.100.2";
    /// Site A's prefix.
    pub const NET_A: &str = "10.1.0.0/16";
    /// Site B's prefix.
    pub const NET_B: &str = "10.2.0.0/16";
    /// gw-a's IKE identity in tests that use FQDNs.
    pub const ID_A: &str = "gw-a.lab.example";
    /// gw-b's IKE identity.
    pub const ID_B: &str = "gw-b.lab.example";
}

impl TwoSites {
    /// Builds the topology with fresh, unique namespace names.
    pub fn new() -> Result<TwoSites> {
        let id = unique_id();
        let gw_a = Netns::new(&format!("hn{id}-gwa"))?;
        let gw_b = Netns::new(&format!("hn{id}-gwb"))?;
        let vm_a = Netns::new(&format!("hn{id}-vma"))?;
        let vm_b = Netns::new(&format!("hn{id}-vmb"))?;
        veth(&vm_a, "vm0", &gw_a, "in0")?;
        veth(&vm_b, "vm0", &gw_b, "in0")?;
        veth(&gw_a, "wan0", &gw_b, "wan0")?;
        vm_a.addr("vm0", &format!("{}/24", addrs::VM_A))?;
        gw_a.addr("in0", &format!("{}/24", addrs::GW_A_IN))?;
        gw_a.addr("wan0", &format!("{}/24", addrs::GW_A_WAN))?;
        gw_b.addr("wan0", &format!("{}/24", addrs::GW_B_WAN))?;
        gw_b.addr("in0", &format!("{}/24", addrs::GW_B_IN))?;
        vm_b.addr("vm0", &format!("{}/24", addrs::VM_B))?;
        vm_a.exec("ip", &["route", "add", "default", "via", addrs::GW_A_IN])?;
        vm_b.exec("ip", &["route", "add", "default", "via", addrs::GW_B_IN])?;
        gw_a.make_router()?;
        gw_b.make_router()?;
        gw_a.exec("ping", &["-c1", "-W2", "-q", addrs::GW_B_WAN])
            .context("the internet link does not work")?;
        Ok(TwoSites {
            id,
            vm_a,
            vm_b,
            gw_a,
            gw_b,
        })
    }
}
