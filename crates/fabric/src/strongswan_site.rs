//! Sites of kind `strongswan`: an on-premises Linux box running strongSwan with a LAN behind it
//! (the classic Azure tutorial's "on-premises VPN device").
//!
//! The site's template deploys the LAN like a VNet (subnets, NICs, VMs) and one public IP not
//! attached to any NIC: the device's address on the internet. The device is a namespace like a
//! VNet gateway's (`lan` in the LAN's first subnet at its last usable address, `wan` on the
//! public IP), so the fabric lays its wires and the LAN router sends the remote prefixes to it.
//!
//! Its strongSwan configuration comes only from hybridnet's device configuration export
//! (`vpn-connection device-config --vendor strongswan`): for every connection in the other sites
//! whose local network gateway points at the device's public IP, the exported swanctl.conf is
//! written (mode 0600, it holds the shared key) into the lab's state directory, with the
//! strongswan.conf the export documents, and loaded into a charon (kernel-libipsec) running
//! detached in the device namespace. charon gets a private /run (its pid file would clash with
//! another charon's) in a mount namespace of its own; the other namespaces' `/run/netns` mounts
//! are detached there first, so charon never pins a namespace `lab down` deletes. `lab down`
//! stops it with every other process of the lab's namespaces.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devconfig::{CharonRuntime, PeerDevice, StrongSwan, Vendor};
use ipnet::Ipv4Net;
use site::{Resource, Site};

use crate::names::LabId;
use crate::spec::SiteSpec;
use crate::topology::{GatewayNet, Topology};

/// The site kind realized by this module.
pub const KIND: &str = "strongswan";
/// Name of the device within its site (its namespace is `LabId::gateway_netns(site, DEVICE)`).
pub const DEVICE: &str = "strongswan";
/// The charon binary (Debian/Ubuntu's strongswan-charon / charon-systemd packages).
pub const CHARON: &str = "/usr/lib/ipsec/charon";
/// How long a started charon gets to open its vici socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long charon gets to send its DELETEs and exit before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Why a strongSwan device could not be run.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// A file of the device could not be written or read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The device configuration export failed for a connection pointing at the device.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// strongSwan is not installed where the lab expects it.
    #[error("strongSwan's charon is not installed at {CHARON} (install strongswan-charon and strongswan-swanctl, or run scripts/install-deps.sh)")]
    NoCharon,
    /// charon could not be started in the namespace.
    #[error("cannot start charon in {netns}: {source}")]
    Spawn {
        netns: String,
        source: std::io::Error,
    },
    /// charon started but did not come up.
    #[error("charon in {netns} did not come up: {detail}")]
    NotUp { netns: String, detail: String },
    /// swanctl refused the exported configuration.
    #[error("swanctl --load-all of {file} failed: {output}")]
    Load { file: PathBuf, output: String },
}

/// The device configuration export of the connections in one site failed.
#[derive(Debug, thiserror::Error)]
#[error("device configuration export for {site}: {source}")]
pub struct ExportError {
    /// The site holding the connections.
    pub site: String,
    /// What the export refused.
    #[source]
    pub source: devconfig::DevConfigError,
}

/// Why a strongSwan site's device cannot be placed in its LAN.
#[derive(Debug, thiserror::Error)]
pub enum DevicePlacementError {
    /// The LAN has no subnet to put the device in.
    #[error("the LAN {0} has no subnet for the strongSwan device")]
    NoSubnet(String),
    /// The LAN's first subnet has no room for the device's address.
    #[error(
        "subnet {vnet}/{subnet} ({prefix}) is too small for the strongSwan device's LAN address"
    )]
    SubnetTooSmall {
        vnet: String,
        subnet: String,
        prefix: Ipv4Net,
    },
    /// A NIC already holds the device's LAN address.
    #[error("{address} (the strongSwan device's LAN address in {vnet}/{subnet}) is used by a NIC")]
    AddressTaken {
        address: Ipv4Addr,
        vnet: String,
        subnet: String,
    },
    /// The connections pointing at the device could not be exported.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// Another resource already maps to the device's namespace name.
    #[error("the strongSwan device's namespace name {0} is already used; rename the resource that takes it")]
    NameTaken(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DeviceError + '_ {
    move |source| DeviceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether a lab.yaml site is a strongSwan site.
pub fn is_strongswan(spec: &SiteSpec) -> bool {
    spec.kind.eq_ignore_ascii_case(KIND)
}

/// The device's public IP: the first public IP of the site no NIC uses. `None` for a site that
/// deploys only its LAN (no device yet).
pub fn device_public_ip(resources: &[Resource]) -> Option<&site::PublicIpAddress> {
    resources.iter().find_map(|r| match r {
        Resource::PublicIpAddress(p) => {
            let used = resources.iter().any(|n| match n {
                Resource::NetworkInterface(nic) => nic.ip_configurations.iter().any(|c| {
                    c.public_ip_address
                        .as_deref()
                        .is_some_and(|id| site::same_id(id, &p.meta.id))
                }),
                _ => false,
            });
            (!used).then_some(p)
        }
        _ => None,
    })
}

/// Every exported device configuration for `address` in the lab's other sites.
fn peers_of(
    own_site: &str,
    address: Ipv4Addr,
    sites: &[(Site, Vec<Resource>)],
) -> Result<Vec<PeerDevice>, ExportError> {
    let mut out = Vec::new();
    for (s, _) in sites {
        let name = s.info().name.clone();
        if name == own_site {
            continue;
        }
        out.extend(
            PeerDevice::for_device_address(s, address)
                .map_err(|source| ExportError { site: name, source })?,
        );
    }
    Ok(out)
}

/// Where the device of a strongSwan site sits, or `Ok(None)` when the site has no LAN or no
/// public IP for it yet. The remote prefixes are those of the connections pointing at it.
pub fn device_net(
    site_name: &str,
    resources: &[Resource],
    sites: &[(Site, Vec<Resource>)],
) -> Result<Option<GatewayNet>, DevicePlacementError> {
    let Some(pip) = device_public_ip(resources) else {
        return Ok(None);
    };
    let Some(vnet) = resources.iter().find_map(|r| match r {
        Resource::VirtualNetwork(v) => Some(v),
        _ => None,
    }) else {
        return Ok(None);
    };
    let subnet = vnet
        .subnets
        .first()
        .ok_or_else(|| DevicePlacementError::NoSubnet(vnet.meta.name.clone()))?;
    let prefix = subnet.address_prefix;
    if prefix.prefix_len() > 29 {
        return Err(DevicePlacementError::SubnetTooSmall {
            vnet: vnet.meta.name.clone(),
            subnet: subnet.name.clone(),
            prefix,
        });
    }
    // The last usable address: IPAM hands out NIC addresses from .4 up.
    let private_address = Ipv4Addr::from(u32::from(prefix.broadcast()) - 1);
    let taken = resources.iter().any(|r| match r {
        Resource::NetworkInterface(n) => n
            .ip_configurations
            .iter()
            .any(|c| c.private_ip_address == private_address),
        _ => false,
    });
    if taken {
        return Err(DevicePlacementError::AddressTaken {
            address: private_address,
            vnet: vnet.meta.name.clone(),
            subnet: subnet.name.clone(),
        });
    }
    let mut remote_prefixes: Vec<Ipv4Net> = peers_of(site_name, pip.ip_address, sites)?
        .into_iter()
        .flat_map(|p| p.remote_prefixes)
        .map(|p| p.trunc())
        .collect();
    remote_prefixes.sort();
    remote_prefixes.dedup();
    Ok(Some(GatewayNet {
        name: DEVICE.to_string(),
        vnet: vnet.meta.name.clone(),
        private_address,
        public_address: pip.ip_address,
        remote_prefixes,
    }))
}

/// One line for `lab up`'s progress: how many devices were started, reloaded, ….
pub fn summary(outcomes: &[DeviceOutcome]) -> String {
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for o in outcomes {
        *counts
            .entry(match &o.result {
                Ok(DeviceAction::Started) => "started",
                Ok(DeviceAction::Reloaded) => "reloaded",
                Ok(DeviceAction::Unchanged) => "unchanged",
                Ok(DeviceAction::Stopped) => "stopped",
                Err(_) => "FAILED",
            })
            .or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The lab's strongSwan files for one site: `<lab>/strongswan/<site>/`.
pub fn device_dir(lab_dir: &Path, site: &str) -> PathBuf {
    lab_dir.join("strongswan").join(site)
}

/// The vici socket of a site's charon.
fn vici_socket(dir: &Path) -> PathBuf {
    dir.join("charon.vici")
}

/// What happened to one site's charon during a realization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceAction {
    /// Started and loaded.
    Started,
    /// Running; its changed swanctl.conf was loaded again.
    Reloaded,
    /// Running with the same configuration.
    Unchanged,
    /// Stopped: no connection points at the device any more.
    Stopped,
}

/// The outcome for one strongSwan site.
#[derive(Debug)]
pub struct DeviceOutcome {
    /// Site name.
    pub site: String,
    /// Id of the device's public IP (what a failure is recorded on).
    pub public_ip_id: String,
    /// What was done, or why it failed.
    pub result: Result<DeviceAction, DeviceError>,
}

/// Writes `data` with mode 0600, atomically and durably; returns whether the content changed.
fn write_private(path: &Path, data: &str) -> Result<bool, DeviceError> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(data) {
        return Ok(false);
    }
    crate::state::write_durable(path, data.as_bytes(), 0o600).map_err(io_err(path))?;
    Ok(true)
}

/// PIDs of charon processes in `netns`.
pub fn charon_pids(netns: &str) -> Vec<i32> {
    crate::netns::pids_in_netns(netns)
        .into_iter()
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                .unwrap_or(true);
            comm.trim() == "charon" && !zombie
        })
        .collect()
}

/// Stops the charon processes of a device namespace (SIGTERM, SIGKILL after a grace period).
fn stop(netns: &str) {
    let pids = charon_pids(netns);
    for pid in &pids {
        // SAFETY: kill(2) on a charon living in a namespace of this lab (which it created).
        unsafe { libc::kill(*pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline && !charon_pids(netns).is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in charon_pids(netns) {
        // SAFETY: as above; it ignored SIGTERM.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
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
    let log = dir.join("charon.log");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log)
        .map_err(io_err(&log))?;
    let stdout = dir.join("charon.stdout");
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&stdout)
        .map_err(io_err(&stdout))?;
    let logf2 = logf.try_clone().map_err(io_err(&stdout))?;
    let ns_path = Path::new(crate::netns::NETNS_RUN_DIR).join(netns);
    let ns = std::fs::File::open(&ns_path).map_err(io_err(&ns_path))?;
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
    .current_dir(dir)
    .stdin(std::process::Stdio::null())
    .stdout(logf)
    .stderr(logf2);
    crate::netns::enter_detached(&mut cmd, &ns);
    let child = cmd.spawn().map_err(|source| DeviceError::Spawn {
        netns: netns.to_string(),
        source,
    })?;
    let pid = child.id() as i32;
    drop(child);
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if matches!(swanctl(dir, &["--stats"]), Ok((true, _))) {
            return Ok(());
        }
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit_once(')')
                    .map(|(_, r)| r.trim_start().starts_with('Z'))
                    .unwrap_or(true)
            })
            .unwrap_or(false);
        if !alive {
            // Reap it if it was our child's zombie.
            // SAFETY: waitpid(2) on our own child's pid, non-blocking.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
            let text = std::fs::read_to_string(&stdout).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            return Err(DeviceError::NotUp {
                netns: netns.to_string(),
                detail: format!(
                    "it exited; {} ends with:\n{}",
                    stdout.display(),
                    lines[lines.len().saturating_sub(8)..].join("\n")
                ),
            });
        }
        if Instant::now() > deadline {
            return Err(DeviceError::NotUp {
                netns: netns.to_string(),
                detail: format!(
                    "no answer on {} within {START_TIMEOUT:?}",
                    vici_socket(dir).display()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
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
        let result = converge_one(&spec.name, dev.public_address, inside, &netns, &dir, sites);
        out.push(DeviceOutcome {
            site: spec.name.clone(),
            public_ip_id,
            result,
        });
    }
    out
}

fn converge_one(
    site: &str,
    address: Ipv4Addr,
    inside: Option<Ipv4Addr>,
    netns: &str,
    dir: &Path,
    sites: &[(Site, Vec<Resource>)],
) -> Result<DeviceAction, DeviceError> {
    let peers: Vec<PeerDevice> = peers_of(site, address, sites)?
        .into_iter()
        .map(|p| match inside {
            Some(a) => p.with_local_address(a),
            None => p,
        })
        .collect();
    let running = charon_pids(netns).first().copied();
    if peers.is_empty() {
        remove_exports(dir, &[]);
        let _ = std::fs::remove_file(dir.join(LOADED));
        if running.is_some() {
            stop(netns);
            return Ok(DeviceAction::Stopped);
        }
        return Ok(DeviceAction::Unchanged);
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    // One exported swanctl.conf per connection, included by the file swanctl loads.
    let mut main = String::from(
        "# The device configuration exports (hybridnet vpn-connection device-config --vendor strongswan)\n# of every connection whose local network gateway points at this device.\n",
    );
    let mut files = Vec::new();
    for p in &peers {
        let text = StrongSwan.render(p).map_err(|source| ExportError {
            site: p.site.clone(),
            source,
        })?;
        let file = dir.join(format!(
            "{}--{}.swanctl.conf",
            p.site,
            p.connection_name.replace(['/', ' '], "_")
        ));
        write_private(&file, &text)?;
        main.push_str(&format!("# {}\n", fingerprint(&text)));
        main.push_str(&format!("include {}\n", file.display()));
        files.push(file);
    }
    remove_exports(dir, &files);
    let swanctl_conf = dir.join("swanctl.conf");
    write_private(&swanctl_conf, &main)?;
    // The strongswan.conf the export documents, for the tightest DPD timeout among them.
    let tightest = peers
        .iter()
        .min_by_key(|p| p.dpd_timeout_secs)
        .expect("peers is not empty");
    let runtime = CharonRuntime {
        vici_socket: vici_socket(dir),
        log_file: Some(dir.join("charon.log")),
    };
    let conf = StrongSwan::strongswan_conf(tightest, &runtime);
    write_private(&dir.join("strongswan.conf"), &conf)?;
    // What the running charon was started with and last loaded (written after a load
    // succeeded, so a CLI that died half-way loads again next time).
    let loaded = std::fs::read_to_string(dir.join(LOADED)).unwrap_or_default();
    let mut loaded = loaded.split_whitespace();
    let (was_pid, was_conf, was_swanctl) = (loaded.next(), loaded.next(), loaded.next());
    let conf_fp = fingerprint(&conf);
    let swanctl_fp = fingerprint(&main);
    let same_charon = running.is_some_and(|pid| was_pid == Some(pid.to_string().as_str()));
    let action = if !same_charon || was_conf != Some(conf_fp.as_str()) {
        if running.is_some() {
            stop(netns);
        }
        let _ = std::fs::remove_file(vici_socket(dir));
        start(netns, dir)?;
        DeviceAction::Started
    } else if was_swanctl != Some(swanctl_fp.as_str()) {
        DeviceAction::Reloaded
    } else {
        DeviceAction::Unchanged
    };
    if action != DeviceAction::Unchanged {
        let file = swanctl_conf.display().to_string();
        let (ok, output) = swanctl(dir, &["--load-all", "--noprompt", "--file", &file])
            .map_err(io_err(Path::new("swanctl")))?;
        if !ok {
            return Err(DeviceError::Load {
                file: swanctl_conf,
                output: output.trim().to_string(),
            });
        }
        let pid = charon_pids(netns).first().copied().unwrap_or_default();
        write_private(
            &dir.join(LOADED),
            &format!("{pid} {conf_fp} {swanctl_fp}\n"),
        )?;
    }
    Ok(action)
}

/// The record of what the running charon was started with and loaded: `pid conf swanctl`.
const LOADED: &str = "loaded";

fn fingerprint(text: &str) -> String {
    format!("{:016x}", crate::names::fnv1a(text))
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

/// One CHILD_SA as `swanctl --list-sas` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SwanChildSa {
    /// Child name (the connection's name in the export).
    pub name: String,
    /// State (`INSTALLED`, `REKEYING`, …).
    pub state: String,
    /// Mode and encapsulation (`TUNNEL-in-UDP`).
    pub mode: String,
    /// Negotiated ESP algorithms, e.g. `AES_GCM_16-256/ECP_384`.
    pub algorithms: String,
    /// Bytes received on it.
    pub bytes_in: u64,
    /// Bytes sent on it.
    pub bytes_out: u64,
    /// Packets received.
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Local traffic selectors.
    pub local_ts: Vec<String>,
    /// Remote traffic selectors.
    pub remote_ts: Vec<String>,
}

/// One IKE SA as `swanctl --list-sas` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SwanIkeSa {
    /// Connection name.
    pub name: String,
    /// State (`ESTABLISHED`, `CONNECTING`, …).
    pub state: String,
    /// IKE version (`IKEv2`).
    pub version: String,
    /// Local endpoint (`192.0.2.1[4500]`).
    pub local: String,
    /// Remote endpoint.
    pub remote: String,
    /// Negotiated IKE algorithms, e.g. `AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384`.
    pub algorithms: String,
    /// Its CHILD_SAs.
    pub children: Vec<SwanChildSa>,
}

/// Parses `swanctl --list-sas`. Lines it does not know are skipped, so a strongSwan version
/// that prints more still parses.
///
/// ```text
/// azure-to-onprem: #1, ESTABLISHED, IKEv2, 1b2c…_i* 9f8e…_r
///   local  '192.0.2.1' @ 192.0.2.1[4500]
///   remote '203.0.113.1' @ 203.0.113.1[4500]
///   AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_1024
///   established 3s ago, rekeying in 12960s
///   azure-to-onprem: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256
///     installed 3s ago, rekeying in 2940s, expires in 3600s
///     in  c1a2b3c4 (-|0x…),    840 bytes,    10 packets,     0s ago
///     out c5d6e7f8 (-|0x…),    840 bytes,    10 packets,     0s ago
///     local  10.2.0.0/16
///     remote 10.1.0.0/16
/// ```
pub fn parse_list_sas(text: &str) -> Vec<SwanIkeSa> {
    let mut out: Vec<SwanIkeSa> = Vec::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let header = t.split_once(": #").map(|(name, rest)| {
            (
                name.to_string(),
                rest.split(',')
                    .map(|f| f.trim().to_string())
                    .collect::<Vec<_>>(),
            )
        });
        match (indent, header) {
            (0, Some((name, fields))) => out.push(SwanIkeSa {
                name,
                state: fields.get(1).cloned().unwrap_or_default(),
                version: fields.get(2).cloned().unwrap_or_default(),
                ..Default::default()
            }),
            (_, Some((name, fields))) if indent > 0 => {
                let Some(ike) = out.last_mut() else { continue };
                let esp = fields
                    .iter()
                    .find_map(|f| f.strip_prefix("ESP:").or_else(|| f.strip_prefix("AH:")))
                    .unwrap_or_default()
                    .to_string();
                ike.children.push(SwanChildSa {
                    name,
                    state: fields.get(2).cloned().unwrap_or_default(),
                    mode: fields.get(3).cloned().unwrap_or_default(),
                    algorithms: esp,
                    ..Default::default()
                });
            }
            _ => {
                let Some(ike) = out.last_mut() else { continue };
                let words: Vec<&str> = t.split_whitespace().collect();
                let number_before = |unit: &str| -> u64 {
                    words
                        .iter()
                        .position(|w| w.trim_end_matches(',') == unit)
                        .and_then(|i| i.checked_sub(1))
                        .and_then(|i| words[i].trim_end_matches(',').parse().ok())
                        .unwrap_or(0)
                };
                if let Some(child) = ike.children.last_mut() {
                    match words.first().copied() {
                        Some("in") => {
                            child.bytes_in = number_before("bytes");
                            child.packets_in = number_before("packets");
                        }
                        Some("out") => {
                            child.bytes_out = number_before("bytes");
                            child.packets_out = number_before("packets");
                        }
                        Some("local") => child
                            .local_ts
                            .extend(words[1..].iter().map(|s| s.to_string())),
                        Some("remote") => child
                            .remote_ts
                            .extend(words[1..].iter().map(|s| s.to_string())),
                        _ => {}
                    }
                    continue;
                }
                match words.first().copied() {
                    Some("local") | Some("remote") => {
                        let endpoint = t
                            .rsplit_once(" @ ")
                            .map(|(_, e)| e.trim().to_string())
                            .unwrap_or_default();
                        if words[0] == "local" {
                            ike.local = endpoint;
                        } else {
                            ike.remote = endpoint;
                        }
                    }
                    Some(w) if words.len() == 1 && w.contains('/') && ike.algorithms.is_empty() => {
                        ike.algorithms = w.to_string();
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// A strongSwan site's device in `lab status`.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceStatus {
    /// Site name.
    pub site: String,
    /// The device namespace.
    pub netns: String,
    /// Its public IP on the internet.
    pub public_address: Ipv4Addr,
    /// Its address in the LAN.
    pub lan_address: Ipv4Addr,
    /// charon's pid, if it runs.
    pub charon_pid: Option<i32>,
    /// Connections loaded from the exports (`swanctl --list-conns` names).
    pub configured: Vec<String>,
    /// IKE SAs (`swanctl --list-sas`, parsed).
    pub sas: Vec<SwanIkeSa>,
    /// Why the SAs could not be read, if charon runs but did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DeviceStatus {
    /// The device as `lab status` prints it, one line per device, IKE SA and CHILD_SA.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "strongSwan device {} (LAN {})  netns {}  charon {}{}",
            self.public_address,
            self.lan_address,
            self.netns,
            self.charon_pid
                .map(|p| format!("pid {p}"))
                .unwrap_or_else(|| "not running".into()),
            if self.configured.is_empty() {
                String::new()
            } else {
                format!("  connections {}", self.configured.join(","))
            }
        )];
        if let Some(e) = &self.error {
            out.push(format!("  error: {e}"));
        }
        if self.charon_pid.is_some() && self.sas.is_empty() && self.error.is_none() {
            out.push("  no IKE SA".into());
        }
        for ike in &self.sas {
            out.push(format!(
                "  IKE SA {} {} {} {} <-> {}  {}",
                ike.name,
                ike.state,
                ike.version,
                ike.local,
                ike.remote,
                if ike.algorithms.is_empty() {
                    "-"
                } else {
                    &ike.algorithms
                }
            ));
            for c in &ike.children {
                out.push(format!(
                    "    CHILD_SA {} {} {} ESP {}  {} <-> {}  in {} B / {} pkts, out {} B / {} pkts",
                    c.name,
                    c.state,
                    c.mode,
                    c.algorithms,
                    c.local_ts.join(","),
                    c.remote_ts.join(","),
                    c.bytes_in,
                    c.packets_in,
                    c.bytes_out,
                    c.packets_out
                ));
            }
        }
        out
    }
}

/// The status of each strongSwan site's device of a lab.
pub fn status(lab_dir: &Path, topology: &Topology, specs: &[SiteSpec]) -> Vec<DeviceStatus> {
    let mut out = Vec::new();
    for spec in specs.iter().filter(|s| is_strongswan(s)) {
        let Some(dev) = topology
            .sites
            .iter()
            .find(|n| n.name == spec.name)
            .and_then(|n| n.gateways.iter().find(|g| g.name == DEVICE))
        else {
            continue;
        };
        let netns = topology.lab_id.gateway_netns(&spec.name, DEVICE);
        let dir = device_dir(lab_dir, &spec.name);
        let charon_pid = charon_pids(&netns).first().copied();
        let mut st = DeviceStatus {
            site: spec.name.clone(),
            netns,
            public_address: dev.public_address,
            lan_address: dev.private_address,
            charon_pid,
            configured: Vec::new(),
            sas: Vec::new(),
            error: None,
        };
        if charon_pid.is_some() {
            match swanctl(&dir, &["--list-sas"]) {
                Ok((true, text)) => st.sas = parse_list_sas(&text),
                Ok((false, text)) => st.error = Some(text.trim().to_string()),
                Err(e) => st.error = Some(format!("cannot run swanctl: {e}")),
            }
            if let Ok((true, text)) = swanctl(&dir, &["--list-conns"]) {
                st.configured = text
                    .lines()
                    .filter(|l| !l.starts_with(' ') && l.contains(": IKEv"))
                    .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_string()))
                    .collect();
            }
        }
        out.push(st);
    }
    out
}

/// Combines the pass before the gateways with the one after, per site: the later result,
/// unless the earlier pass did something and the later one found nothing more to do.
pub fn merge(before: Vec<DeviceOutcome>, after: Vec<DeviceOutcome>) -> Vec<DeviceOutcome> {
    let mut out = before;
    for a in after {
        match out.iter_mut().find(|o| o.site == a.site) {
            Some(o) => {
                let did_something = matches!(o.result, Ok(ref x) if *x != DeviceAction::Unchanged);
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

    const SAS: &str =
        "azure-to-onprem: #1, ESTABLISHED, IKEv2, 1b2c3d4e5f60718a_i* 9f8e7d6c5b4a3928_r
  local  '192.0.2.1' @ 192.0.2.1[4500]
  remote '203.0.113.1' @ 203.0.113.1[4500]
  AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_1024
  established 3s ago, rekeying in 12960s
  azure-to-onprem: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256
    installed 3s ago, rekeying in 2940s, expires in 3600s
    in  c1a2b3c4 (-|0x00000001),  10280 bytes,    10 packets,     0s ago
    out c5d6e7f8 (-|0x00000001),   8400 bytes,     9 packets,     0s ago
    local  10.2.0.0/16
    remote 10.1.0.0/16
other: #2, CONNECTING, IKEv2, 0011223344556677_i* 0000000000000000_r
  local  '192.0.2.1' @ 192.0.2.1[500]
  remote '198.51.100.1' @ 198.51.100.1[500]
";

    #[test]
    fn list_sas_is_parsed() {
        let sas = parse_list_sas(SAS);
        assert_eq!(sas.len(), 2);
        let a = &sas[0];
        assert_eq!(
            (a.name.as_str(), a.state.as_str(), a.version.as_str()),
            ("azure-to-onprem", "ESTABLISHED", "IKEv2")
        );
        assert_eq!(a.local, "192.0.2.1[4500]");
        assert_eq!(a.remote, "203.0.113.1[4500]");
        assert_eq!(
            a.algorithms,
            "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_1024"
        );
        assert_eq!(a.children.len(), 1);
        let c = &a.children[0];
        assert_eq!(c.state, "INSTALLED");
        assert_eq!(c.mode, "TUNNEL-in-UDP");
        assert_eq!(c.algorithms, "AES_GCM_16-256");
        assert_eq!((c.bytes_in, c.packets_in), (10280, 10));
        assert_eq!((c.bytes_out, c.packets_out), (8400, 9));
        assert_eq!(c.local_ts, vec!["10.2.0.0/16"]);
        assert_eq!(c.remote_ts, vec!["10.1.0.0/16"]);
        assert_eq!(sas[1].state, "CONNECTING");
        assert!(sas[1].children.is_empty());
        assert!(sas[1].algorithms.is_empty());
    }

    #[test]
    fn merged_outcomes_keep_what_was_done_and_the_last_failure() {
        let o = |site: &str, r: Result<DeviceAction, DeviceError>| DeviceOutcome {
            site: site.into(),
            public_ip_id: String::new(),
            result: r,
        };
        let err = || Err(DeviceError::NoCharon);
        let merged = merge(
            vec![
                o("a", Ok(DeviceAction::Reloaded)),
                o("b", err()),
                o("c", Ok(DeviceAction::Reloaded)),
            ],
            vec![
                o("a", Ok(DeviceAction::Unchanged)),
                o("b", Ok(DeviceAction::Started)),
                o("c", err()),
                o("d", Ok(DeviceAction::Started)),
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

    #[test]
    fn lines_before_any_ike_sa_are_ignored() {
        assert!(parse_list_sas("").is_empty());
        assert!(parse_list_sas("no IKE_SAs\n   in  c1 (-|0x1), 5 bytes, 1 packets\n").is_empty());
        // A child line without its IKE SA is dropped, not attached somewhere.
        assert!(
            parse_list_sas("  net: #1, reqid 1, INSTALLED, TUNNEL, ESP:AES_GCM_16-256\n")
                .is_empty()
        );
    }

    const EXAMPLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/azure-to-strongswan/templates"
    );

    fn deploy(site: &mut Site, file: &str, params: serde_json::Value) {
        let text = std::fs::read_to_string(format!("{EXAMPLE}/{file}")).unwrap();
        let params = params.as_object().unwrap().clone();
        let plan = site.plan(&text, params, file).unwrap();
        site.apply(plan).unwrap();
    }

    /// The example's two sites in a scratch store; `lgw_ip` is where Azure's local network
    /// gateway points.
    fn scratch(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("hn-fabric-sw-{tag}-{}", std::process::id()))
    }

    fn example(
        tag: &str,
        lgw_ip: &str,
        onprem_params: serde_json::Value,
    ) -> Vec<(Site, Vec<Resource>)> {
        let dir = scratch(tag);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut az =
            Site::create(&dir, "azure", "azure", "203.0.113.0/24".parse().unwrap()).unwrap();
        let mut on = Site::create(&dir, "onprem", KIND, "192.0.2.0/24".parse().unwrap()).unwrap();
        deploy(&mut az, "azure-site.json", serde_json::json!({}));
        deploy(&mut on, "onprem-site.json", onprem_params);
        deploy(
            &mut az,
            "connection.json",
            serde_json::json!({
                "gatewayName": "azure-gw", "localGatewayName": "onprem-lgw",
                "localGatewayIpAddress": lgw_ip, "localAddressPrefixes": ["10.2.0.0/16"],
                "connectionName": "azure-to-onprem", "sharedKey": "k",
            }),
        );
        vec![az, on]
            .into_iter()
            .map(|s| {
                let r = s.resources().unwrap();
                (s, r)
            })
            .collect()
    }

    #[test]
    fn device_takes_the_unattached_public_ip_and_routes_the_connections_prefixes() {
        let sites = example("place", "192.0.2.1", serde_json::json!({}));
        let dev = device_net("onprem", &sites[1].1, &sites).unwrap().unwrap();
        assert_eq!(dev.name, DEVICE);
        assert_eq!(dev.public_address, "192.0.2.1".parse::<Ipv4Addr>().unwrap());
        assert_eq!(
            dev.private_address,
            "10.2.1.254".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(dev.vnet, "onprem-lan");
        assert_eq!(
            dev.remote_prefixes,
            vec!["10.1.0.0/16".parse::<Ipv4Net>().unwrap()]
        );
        let peers = peers_of("onprem", dev.public_address, &sites).unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].connection_name, "azure-to-onprem");
        let _ = std::fs::remove_dir_all(scratch("place"));
    }

    #[test]
    fn device_nobody_points_at_has_no_remote_prefixes() {
        let sites = example("nobody", "192.0.2.77", serde_json::json!({}));
        let dev = device_net("onprem", &sites[1].1, &sites).unwrap().unwrap();
        assert!(dev.remote_prefixes.is_empty());
        assert!(peers_of("onprem", dev.public_address, &sites)
            .unwrap()
            .is_empty());
        let _ = std::fs::remove_dir_all(scratch("nobody"));
    }
}
