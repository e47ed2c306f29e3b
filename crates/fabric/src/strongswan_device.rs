//! A strongSwan site's device as a [`Daemon`]: a charon (kernel-libipsec) running detached in
//! the device namespace, configured only from hybridnet's device configuration exports.
//!
//! For every connection in the other sites whose local network gateway points at the device's
//! public IP, the exported swanctl.conf is written (mode 0600, it holds the shared key) into
//! the lab's state directory, with the strongswan.conf the export documents, and loaded with
//! `swanctl --load-all`. A changed export is loaded into the running charon; a changed
//! strongswan.conf restarts it. charon gets a private /run (its pid file would clash with
//! another charon's) in a mount namespace of its own; the other namespaces' `/run/netns` mounts
//! are detached there first, so charon never pins a namespace `lab down` deletes. `lab down`
//! stops it with every other process of the lab's namespaces.

use crate::daemon::{self, Daemon, DaemonAction, DaemonError};
use crate::names::LabId;
use crate::onprem_router::{Router, RouterConfig, RouterKind};
use crate::spec::SiteSpec;
use crate::strongswan_site::{device_public_ip, is_strongswan, peers_of, ExportError, DEVICE};
use crate::topology::Topology;
use devconfig::{CharonRuntime, PeerDevice, StrongSwan, Vendor};
use nix::sys::signal::Signal;
use site::{Resource, Site};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The charon binary (Debian/Ubuntu's strongswan-charon / charon-systemd packages).
pub const CHARON: &str = "/usr/lib/ipsec/charon";
/// How long a started charon gets to open its vici socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long charon gets to send its DELETEs and exit before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// The record of what the running charon was started with and loaded: `pid conf swanctl`.
const LOADED: &str = "loaded";

/// Why a strongSwan device could not be run.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// A file of the device could not be written, or charon could not be started.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The device configuration export failed for a connection pointing at the device.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The BGP router beside charon could not run.
    #[error("BGP router: {0}")]
    Router(#[from] crate::onprem_router::RouterError),
    /// A connection with enableBgp points at a device that runs no BGP router.
    #[error("connection {connection} has enableBgp, but the strongSwan site runs no BGP router: add `router: bird` or `router: frr` to the site in lab.yaml")]
    BgpWithoutRouter {
        /// The connection.
        connection: String,
    },
    /// strongSwan is not installed where the lab expects it.
    #[error("strongSwan's charon is not installed at {CHARON} (install strongswan-charon and strongswan-swanctl, or run scripts/install-deps.sh)")]
    NoCharon,
    /// swanctl refused the exported configuration.
    #[error("swanctl --load-all of {file} failed: {output}")]
    Load {
        /// The file concerned.
        file: PathBuf,
        /// The output concerned.
        output: String,
    },
}

/// The outcome for one strongSwan site.
#[derive(Debug)]
pub struct DeviceOutcome {
    /// Site name.
    pub site: String,
    /// Id of the device's public IP (what a failure is recorded on).
    pub public_ip_id: String,
    /// What was done, or why it failed.
    pub result: Result<DaemonAction, DeviceError>,
}

/// The lab's strongSwan files for one site: `<lab>/strongswan/<site>/`.
pub fn device_dir(lab_dir: &Path, site: &str) -> PathBuf {
    lab_dir.join("strongswan").join(site)
}

/// The vici socket of a site's charon.
pub(crate) fn vici_socket(dir: &Path) -> PathBuf {
    dir.join("charon.vici")
}

/// PIDs of charon processes in `netns`.
pub fn charon_pids(netns: &str) -> Vec<i32> {
    crate::netns::pids_in_netns(netns)
        .into_iter()
        .filter(|&pid| {
            procfs::process::Process::new(pid)
                .and_then(|p| p.stat())
                .is_ok_and(|stat| stat.comm == "charon" && stat.state != 'Z')
        })
        .collect()
}

/// Stops the charon processes of a device namespace (SIGTERM, SIGKILL after a grace period).
fn stop(netns: &str) {
    daemon::terminate(|| charon_pids(netns), Signal::SIGTERM, STOP_GRACE);
}

/// Stops the charon of every strongSwan site of the lab (`lab up --no-gateways`: the lab runs
/// no VPN device).
pub fn stop_all(id: &LabId, specs: &[SiteSpec]) {
    for spec in specs.iter().filter(|s| is_strongswan(s)) {
        stop(&id.gateway_netns(&spec.name, DEVICE));
    }
}

/// `swanctl ARGS --uri <vici>` for the device in `dir`; output text and success.
pub fn swanctl(dir: &Path, args: &[&str]) -> std::io::Result<(bool, String)> {
    let out = std::process::Command::new("swanctl")
        .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
        .args(args)
        .arg("--uri")
        .arg(format!("unix://{}", vici_socket(dir).display()))
        .stdin(std::process::Stdio::null())
        .output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// Starts charon detached in `netns` with the strongswan.conf in `dir`; waits for vici.
fn start(netns: &str, dir: &Path) -> Result<(), DeviceError> {
    if !Path::new(CHARON).exists() {
        return Err(DeviceError::NoCharon);
    }
    // charon appends to its log; created here first so it is private too.
    daemon::open_log(&dir.join("charon.log"))?;
    let stdout = dir.join("charon.stdout");
    let mut cmd = std::process::Command::new("unshare");
    // exec chain keeps the pid: unshare (no fork) → sh → exec charon. In its own mount
    // namespace the copies of /run/netns' mounts are detached (so charon pins no namespace)
    // and /run becomes a private tmpfs for its pid file.
    cmd.args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        "umount -R -l /run/netns 2>/dev/null; mount -t tmpfs -o mode=0755 hn-strongswan-run /run && exec \"$0\"",
        CHARON,
    ])
    .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
    .current_dir(dir);
    let pid = daemon::spawn_detached(cmd, netns, &stdout, "charon")?;
    daemon::wait_until_up(
        "charon",
        netns,
        &vici_socket(dir),
        START_TIMEOUT,
        || vici::list_conns(&vici_socket(dir)).is_ok(),
        || {
            if daemon::is_live(pid) {
                return None;
            }
            // Reap it if it was our child's zombie.
            daemon::reap(pid);
            Some(format!(
                "it exited; {} ends with:\n{}",
                stdout.display(),
                daemon::tail(&stdout, 8)
            ))
        },
    )?;
    Ok(())
}

/// What a device is wanted to run: one export per connection pointing at it, the
/// swanctl.conf including them, and the strongswan.conf charon starts with.
struct DeviceConfig {
    /// Each export's file and text.
    exports: Vec<(PathBuf, String)>,
    /// The swanctl.conf that includes the exports (what `swanctl --load-all` loads).
    swanctl_conf: String,
    /// The strongswan.conf charon and swanctl read.
    strongswan_conf: String,
}

/// Renders the device's configuration for `peers` (at least one) into files of `dir`.
fn render(peers: &[PeerDevice], dir: &Path) -> Result<DeviceConfig, ExportError> {
    let mut main = String::from(
        "# The device configuration exports (hybridnet vpn-connection device-config --vendor strongswan)\n# of every connection whose local network gateway points at this device.\n",
    );
    let mut exports = Vec::new();
    for p in peers {
        let text = StrongSwan.render(p).map_err(|source| ExportError {
            site: p.site.clone(),
            source,
        })?;
        let file = dir.join(format!(
            "{}--{}.swanctl.conf",
            p.site,
            p.connection_name.replace(['/', ' '], "_")
        ));
        main.push_str(&format!("# {}\n", daemon::fingerprint(&text)));
        main.push_str(&format!("include {}\n", file.display()));
        exports.push((file, text));
    }
    // The strongswan.conf the export documents, for the tightest DPD timeout among them.
    let tightest = peers
        .iter()
        .min_by_key(|p| p.dpd_timeout_secs)
        .expect("peers is not empty");
    let runtime = CharonRuntime {
        vici_socket: vici_socket(dir),
        log_file: Some(dir.join("charon.log")),
    };
    Ok(DeviceConfig {
        exports,
        swanctl_conf: main,
        strongswan_conf: StrongSwan::strongswan_conf(tightest, &runtime),
    })
}

/// Removes exported configurations (they hold shared keys) of connections no longer served.
fn remove_exports(dir: &Path, keep: &[PathBuf]) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let export = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".swanctl.conf"));
        if export && !keep.contains(&p) {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// One strongSwan site's charon: its namespace, its files, and the charon running now.
struct Charon<'a> {
    netns: &'a str,
    dir: &'a Path,
    pid: Option<i32>,
}

impl Charon<'_> {
    /// What [`LOADED`] records: the pid of the charon that loaded, and the fingerprints of
    /// the strongswan.conf it started with and the swanctl.conf it loaded (written after a
    /// load succeeded, so a CLI that died half-way loads again next time).
    fn loaded(&self) -> (Option<String>, Option<String>, Option<String>) {
        let text = std::fs::read_to_string(self.dir.join(LOADED)).unwrap_or_default();
        let mut words = text.split_whitespace().map(str::to_string);
        (words.next(), words.next(), words.next())
    }

    /// Writes the exports and both configuration files, and removes exports of connections
    /// no longer served.
    fn write(&self, config: &DeviceConfig) -> Result<(), DaemonError> {
        std::fs::create_dir_all(self.dir).map_err(daemon::io_err(self.dir))?;
        for (file, text) in &config.exports {
            daemon::write_private(file, text.as_bytes())?;
        }
        let keep: Vec<PathBuf> = config.exports.iter().map(|(f, _)| f.clone()).collect();
        remove_exports(self.dir, &keep);
        daemon::write_private(
            &self.dir.join("swanctl.conf"),
            config.swanctl_conf.as_bytes(),
        )?;
        daemon::write_private(
            &self.dir.join("strongswan.conf"),
            config.strongswan_conf.as_bytes(),
        )?;
        Ok(())
    }

    /// Loads swanctl.conf into the running charon and records what it runs.
    fn load(&self, config: &DeviceConfig) -> Result<(), DeviceError> {
        let swanctl_conf = self.dir.join("swanctl.conf");
        let file = swanctl_conf.display().to_string();
        let (ok, output) = swanctl(self.dir, &["--load-all", "--noprompt", "--file", &file])
            .map_err(daemon::io_err(Path::new("swanctl")))?;
        if !ok {
            return Err(DeviceError::Load {
                file: swanctl_conf,
                output: output.trim().to_string(),
            });
        }
        let pid = charon_pids(self.netns).first().copied().unwrap_or_default();
        let record = format!("{pid} {}\n", Self::fingerprint(config));
        daemon::write_private(&self.dir.join(LOADED), record.as_bytes())?;
        Ok(())
    }
}

impl Daemon for Charon<'_> {
    type Config = DeviceConfig;
    type Error = DeviceError;

    fn fingerprint(config: &DeviceConfig) -> String {
        format!(
            "{} {}",
            daemon::fingerprint(&config.strongswan_conf),
            daemon::fingerprint(&config.swanctl_conf)
        )
    }

    fn running(&self) -> Option<String> {
        let (pid, conf, swanctl) = self.loaded();
        let same_charon = self.pid.is_some_and(|p| pid == Some(p.to_string()));
        same_charon.then(|| {
            format!(
                "{} {}",
                conf.unwrap_or_default(),
                swanctl.unwrap_or_default()
            )
        })
    }

    fn alive(&self) -> bool {
        self.pid.is_some()
    }

    fn present(&self) -> bool {
        self.pid.is_some()
    }

    fn reload(&mut self, config: &DeviceConfig) -> Result<bool, DeviceError> {
        let (_, conf, _) = self.loaded();
        if conf != Some(daemon::fingerprint(&config.strongswan_conf)) {
            return Ok(false);
        }
        self.write(config)?;
        self.load(config)?;
        Ok(true)
    }

    fn start(&mut self, config: &DeviceConfig) -> Result<(), DeviceError> {
        self.write(config)?;
        let _ = std::fs::remove_file(vici_socket(self.dir));
        start(self.netns, self.dir)?;
        self.pid = charon_pids(self.netns).first().copied();
        self.load(config)
    }

    fn stop(&mut self) {
        stop(self.netns);
        self.pid = None;
    }

    fn forget(&mut self) {
        remove_exports(self.dir, &[]);
        let _ = std::fs::remove_file(self.dir.join(LOADED));
    }
}

/// Makes each strongSwan site's charon run the exported configuration of the connections that
/// point at its device: starts it, reloads a changed swanctl.conf, or stops it when nothing
/// points at the device any more. With `running_only`, only devices whose charon already runs
/// are touched (the pass before the cloud gateways restart).
pub fn converge(
    lab_dir: &Path,
    id: &LabId,
    specs: &[SiteSpec],
    topology: &Topology,
    sites: &[(Site, Vec<Resource>)],
    running_only: bool,
) -> Vec<DeviceOutcome> {
    let mut out = Vec::new();
    for spec in specs.iter().filter(|s| is_strongswan(s)) {
        let Some(net) = topology.sites.iter().find(|n| n.name == spec.name) else {
            continue;
        };
        let Some(index) = net.gateways.iter().position(|g| g.name == DEVICE) else {
            continue;
        };
        let dev = &net.gateways[index];
        // Behind the site's NAT device the device owns an inside address; its IKE identity
        // stays the public IP (the export's `--device-address`).
        let inside = net
            .nat
            .then(|| crate::topology::behind_nat_addresses(index).1);
        let Some((_, resources)) = sites.iter().find(|(s, _)| s.info().name == spec.name) else {
            continue;
        };
        let public_ip_id = device_public_ip(resources)
            .map(|p| p.meta.id.clone())
            .unwrap_or_default();
        let netns = id.gateway_netns(&spec.name, DEVICE);
        if running_only && charon_pids(&netns).is_empty() {
            continue;
        }
        let dir = device_dir(lab_dir, &spec.name);
        let lan: Vec<ipnet::Ipv4Net> = resources
            .iter()
            .filter_map(|r| match r {
                Resource::VirtualNetwork(v) => Some(v.address_space.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let device = Device {
            site: &spec.name,
            address: dev.public_address,
            inside,
            netns: &netns,
            dir: &dir,
            router: spec.router,
            lan: &lan,
        };
        let result = device.converge(sites);
        out.push(DeviceOutcome {
            site: spec.name.clone(),
            public_ip_id,
            result,
        });
    }
    out
}

/// One strongSwan site's device, as the topology placed it.
struct Device<'a> {
    site: &'a str,
    /// Its public IP, where the connections' local network gateways point.
    address: Ipv4Addr,
    /// Its own address behind the site's NAT device.
    inside: Option<Ipv4Addr>,
    netns: &'a str,
    dir: &'a Path,
    /// The BGP router beside charon.
    router: Option<RouterKind>,
    /// The site's LAN (what the router announces).
    lan: &'a [ipnet::Ipv4Net],
}

impl Device<'_> {
    /// The exports of the connections pointing at the device, run by charon, and by the BGP
    /// router when the site has one.
    fn converge(&self, sites: &[(Site, Vec<Resource>)]) -> Result<DaemonAction, DeviceError> {
        let peers: Vec<PeerDevice> = peers_of(self.site, self.address, sites)?
            .into_iter()
            .map(|p| match self.inside {
                Some(a) => p.with_local_address(a),
                None => p,
            })
            .collect();
        if self.router.is_none() {
            if let Some(p) = peers.iter().find(|p| p.bgp.is_some()) {
                return Err(DeviceError::BgpWithoutRouter {
                    connection: p.connection_name.clone(),
                });
            }
        }
        let routing = match (self.router, peers.is_empty()) {
            (Some(kind), false) => Some(RouterConfig::render(kind, &peers, self.lan)?),
            _ => None,
        };
        let wanted = match peers.is_empty() {
            true => None,
            false => Some(render(&peers, self.dir)?),
        };
        let mut charon = Charon {
            netns: self.netns,
            dir: self.dir,
            pid: charon_pids(self.netns).first().copied(),
        };
        let charon_action = daemon::converge(&mut charon, wanted.as_ref())?;
        let Some(kind) = self.router else {
            return Ok(charon_action);
        };
        let mut router = Router {
            netns: self.netns,
            dir: self.dir,
            kind,
        };
        // the router routes into charon's TUN device: a restarted charon made a new one
        if matches!(
            charon_action,
            DaemonAction::Started | DaemonAction::Restarted
        ) {
            router.stop();
        }
        let router_action = daemon::converge(&mut router, routing.as_ref())?;
        Ok(if charon_action == DaemonAction::Unchanged {
            router_action
        } else {
            charon_action
        })
    }
}

/// One line for `lab up`'s progress: how many devices were started, reloaded, ….
pub fn summary(outcomes: &[DeviceOutcome]) -> String {
    daemon::summary(outcomes.iter().map(|o| &o.result))
}

/// Combines the pass before the gateways with the one after, per site: the later result,
/// unless the earlier pass did something and the later one found nothing more to do.
pub fn merge(before: Vec<DeviceOutcome>, after: Vec<DeviceOutcome>) -> Vec<DeviceOutcome> {
    let mut out = before;
    for a in after {
        match out.iter_mut().find(|o| o.site == a.site) {
            Some(o) => {
                let did_something = matches!(o.result, Ok(x) if x != DaemonAction::Unchanged);
                if !(did_something && a.result.is_ok()) {
                    *o = a;
                }
            }
            None => out.push(a),
        }
    }
    out
}

/// Index of failures to record: public IP id (lowercase) → message.
pub fn failures(outcomes: &[DeviceOutcome]) -> BTreeMap<String, String> {
    outcomes
        .iter()
        .filter_map(|o| match &o.result {
            Err(e) if !o.public_ip_id.is_empty() => Some((
                o.public_ip_id.to_lowercase(),
                format!("strongSwan device: {e}"),
            )),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_outcomes_keep_what_was_done_and_the_last_failure() {
        let o = |site: &str, r: Result<DaemonAction, DeviceError>| DeviceOutcome {
            site: site.into(),
            public_ip_id: String::new(),
            result: r,
        };
        let err = || Err(DeviceError::NoCharon);
        let merged = merge(
            vec![
                o("a", Ok(DaemonAction::Reloaded)),
                o("b", err()),
                o("c", Ok(DaemonAction::Reloaded)),
            ],
            vec![
                o("a", Ok(DaemonAction::Unchanged)),
                o("b", Ok(DaemonAction::Started)),
                o("c", err()),
                o("d", Ok(DaemonAction::Started)),
            ],
        );
        let got: Vec<String> = merged
            .iter()
            .map(|m| format!("{} {:?}", m.site, m.result.as_ref().ok()))
            .collect();
        assert_eq!(
            got,
            [
                "a Some(Reloaded)",
                "b Some(Started)",
                "c None",
                "d Some(Started)"
            ]
        );
    }
}
