//! The lab internet's DNS zone: every public IP with a DNS label, by its FQDN
//! (`<label>.<location>.cloudapp.azure.com`), served by dnsmasq (Debian's dnsmasq-base) in the
//! internet namespace, so whatever sits on the lab's internet (VMs, on-premises devices,
//! `dig @<internet router>`) resolves the names local network gateways may use. The gateways'
//! own peers are resolved from the same zone at every realization, so a peer whose public IP
//! changes is followed. The zone file is rewritten and dnsmasq reloaded (SIGHUP) when it
//! changes; `lab down` ends dnsmasq with every process of the lab's namespaces.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use site::{Resource, Site};

use crate::daemon::{self, DaemonError};

/// The domain public IPs' names live in; names outside it are not answered from upstream.
const DOMAIN: &str = "cloudapp.azure.com";

/// The lab's DNS zone: `(fqdn, address)` for every public IP with a DNS label, in every site.
pub fn zone(sites: &[(Site, Vec<Resource>)]) -> Vec<(String, Ipv4Addr)> {
    let mut out: Vec<(String, Ipv4Addr)> = sites
        .iter()
        .flat_map(|(_, rs)| rs.iter())
        .filter_map(|r| match r {
            Resource::PublicIpAddress(p) => p.fqdn.clone().map(|f| (f, p.ip_address)),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// What [`converge`] did, for the progress line.
#[derive(Debug, PartialEq, Eq)]
pub enum DnsOutcome {
    /// No name to serve; no server runs.
    Empty,
    /// The server was started with this many names.
    Started(usize),
    /// The zone changed and the server re-read it.
    Reloaded(usize),
    /// Nothing changed.
    Unchanged(usize),
}

fn files(lab_dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let dir = lab_dir.join("dns");
    (
        dir.join("zone.hosts"),
        dir.join("dnsmasq.pid"),
        dir.join("dnsmasq.log"),
    )
}

/// The running dnsmasq serving this lab's zone, if any (its pid file, checked against the
/// process's command line so a recycled pid is never signalled).
fn running(lab_dir: &Path) -> Option<i32> {
    let (zone_file, pid_file, _) = files(lab_dir);
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let args = procfs::process::Process::new(pid).ok()?.cmdline().ok()?;
    let ours = args.first().is_some_and(|a| a.ends_with("dnsmasq"))
        && args
            .iter()
            .any(|a| a == &format!("--addn-hosts={}", zone_file.display()));
    (ours && daemon::is_live(pid)).then_some(pid)
}

/// Makes the internet namespace `netns` serve `zone`.
pub fn converge(
    lab_dir: &Path,
    netns: &str,
    zone: &[(String, Ipv4Addr)],
) -> Result<DnsOutcome, DaemonError> {
    let (zone_file, pid_file, log) = files(lab_dir);
    if zone.is_empty() {
        stop(lab_dir);
        return Ok(DnsOutcome::Empty);
    }
    let text: String = zone
        .iter()
        .map(|(name, addr)| format!("{addr} {name}\n"))
        .collect();
    if let Some(dir) = zone_file.parent() {
        std::fs::create_dir_all(dir).map_err(daemon::io_err(dir))?;
    }
    let changed = std::fs::read_to_string(&zone_file).ok().as_deref() != Some(text.as_str());
    if changed {
        daemon::write_private(&zone_file, text.as_bytes())?;
    }
    if let Some(pid) = running(lab_dir) {
        if !changed {
            return Ok(DnsOutcome::Unchanged(zone.len()));
        }
        // dnsmasq re-reads --addn-hosts files on SIGHUP (the pid is its, as `running` checked)
        let _ = kill(Pid::from_raw(pid), Signal::SIGHUP);
        return Ok(DnsOutcome::Reloaded(zone.len()));
    }
    let mut cmd = Command::new("dnsmasq");
    cmd.args([
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--user=root",
        "--group=root",
    ])
    .arg(format!("--addn-hosts={}", zone_file.display()))
    .arg(format!("--pid-file={}", pid_file.display()))
    .arg(format!("--local=/{DOMAIN}/"))
    .arg(format!("--log-facility={}", log.display()));
    let pid = daemon::spawn_detached(cmd, netns, &log, "dnsmasq")?;
    // started when its pid file names it (it writes the file once it listens)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if running(lab_dir).is_some() {
            return Ok(DnsOutcome::Started(zone.len()));
        }
        if !daemon::is_live(pid) {
            daemon::reap(pid);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(DaemonError::NotUp {
        daemon: "dnsmasq",
        netns: netns.to_string(),
        detail: daemon::tail(&log, 5),
    })
}

/// Ends the lab's dnsmasq, if it runs.
pub fn stop(lab_dir: &Path) {
    daemon::terminate(
        || running(lab_dir).into_iter().collect(),
        Signal::SIGTERM,
        std::time::Duration::from_secs(2),
    );
}
