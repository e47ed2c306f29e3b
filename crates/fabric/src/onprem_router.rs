//! The BGP router beside a strongSwan site's charon (`router: bird` or `router: frr` in
//! lab.yaml), as a [`Daemon`] in the device's namespace, configured only from hybridnet's
//! device configuration export (`--vendor bird` / `--vendor frr`) of the connections pointing
//! at the device, with the site's LAN announced.
//!
//! BIRD reloads a changed configuration in place (`birdc configure`); FRR's daemons (zebra,
//! staticd, bgpd, each reading the one frr.conf for its own part) are restarted. The device
//! gets its BGP address on `lo` first. `lab down` ends the daemons with every other process
//! of the lab's namespaces.

use crate::daemon::{self, Daemon, DaemonError};
use devconfig::{Bird, DevConfigError, Frr, PeerDevice};
use nix::sys::signal::Signal;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long a started router gets to answer on its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the router's processes get to exit before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// The record of the running router: `pid fingerprint`.
const LOADED: &str = "router.loaded";
/// FRR's daemons, started in this order.
const FRR_DAEMONS: &[&str] = &["zebra", "staticd", "bgpd"];
/// Where Debian installs them.
const FRR_DIR: &str = "/usr/lib/frr";

/// Which routing daemon runs beside strongSwan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RouterKind {
    /// BIRD 2.
    Bird,
    /// FRRouting.
    Frr,
}

impl RouterKind {
    /// The configuration file's name.
    pub fn file_name(self) -> &'static str {
        match self {
            RouterKind::Bird => "bird.conf",
            RouterKind::Frr => "frr.conf",
        }
    }

    /// Process names of the daemon(s).
    fn processes(self) -> &'static [&'static str] {
        match self {
            RouterKind::Bird => &["bird"],
            RouterKind::Frr => FRR_DAEMONS,
        }
    }
}

/// Why the router could not run.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The export refused (a connection without BGP, devices disagreeing on the AS, …).
    #[error("{kind:?} configuration export: {source}")]
    Export {
        /// The router kind.
        kind: RouterKind,
        /// Why.
        #[source]
        source: DevConfigError,
    },
    /// A file could not be written or the daemon not started.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The device's BGP address could not be added.
    #[error("cannot give the device its BGP address {address}: {detail}")]
    Address {
        /// The address.
        address: Ipv4Addr,
        /// What `ip` said.
        detail: String,
    },
    /// The routing daemon is not installed.
    #[error("{0} is not installed (run scripts/install-deps.sh: packages bird2, frr)")]
    NotInstalled(String),
}

/// What the router runs: its configuration and the address the device must hold.
pub struct RouterConfig {
    kind: RouterKind,
    text: String,
    bgp_address: Ipv4Addr,
}

impl RouterConfig {
    /// The configuration for `peers` (every connection pointing at the device), from the
    /// export; `lan` is what the device announces.
    pub fn render(
        kind: RouterKind,
        peers: &[PeerDevice],
        lan: &[ipnet::Ipv4Net],
    ) -> Result<RouterConfig, RouterError> {
        let peers: Vec<PeerDevice> = peers.iter().map(|p| p.clone().with_announce(lan)).collect();
        let refs: Vec<&PeerDevice> = peers.iter().collect();
        let text = match kind {
            RouterKind::Bird => Bird::render_device(&refs),
            RouterKind::Frr => Frr::render_device(&refs),
        }
        .map_err(|source| RouterError::Export { kind, source })?;
        let bgp_address = peers
            .iter()
            .find_map(|p| p.bgp.as_ref().map(|b| b.local_address))
            .expect("the export succeeded, so every peer has BGP");
        Ok(RouterConfig {
            kind,
            text,
            bgp_address,
        })
    }
}

/// The router of one device namespace.
pub struct Router<'a> {
    /// The device's namespace.
    pub netns: &'a str,
    /// The device's files.
    pub dir: &'a Path,
    /// Which daemon.
    pub kind: RouterKind,
}

impl Router<'_> {
    fn conf(&self) -> PathBuf {
        match self.kind {
            RouterKind::Bird => self.dir.join("bird.conf"),
            RouterKind::Frr => self.frr_dir().join("frr.conf"),
        }
    }

    /// FRR's own directory: its daemons drop root for the `frr` user (the one in the vty
    /// group), so their config, pid files and sockets live where that user may write.
    fn frr_dir(&self) -> PathBuf {
        self.dir.join("frr")
    }

    /// BIRD's control socket, or FRR's vty directory.
    pub fn control(&self) -> PathBuf {
        match self.kind {
            RouterKind::Bird => self.dir.join("bird.ctl"),
            RouterKind::Frr => self.frr_dir(),
        }
    }

    /// Writes the configuration (for FRR: into its directory, owned by the `frr` user).
    fn write_conf(&self, text: &str) -> Result<(), RouterError> {
        if self.kind == RouterKind::Frr {
            let dir = self.frr_dir();
            std::fs::create_dir_all(&dir).map_err(daemon::io_err(&dir))?;
            daemon::write_private(&self.conf(), text.as_bytes())?;
            let frr = nix::unistd::User::from_name("frr")
                .ok()
                .flatten()
                .ok_or_else(|| RouterError::NotInstalled("the frr user (package frr)".into()))?;
            for p in [dir.as_path(), self.conf().as_path()] {
                nix::unistd::chown(p, Some(frr.uid), Some(frr.gid))
                    .map_err(|e| daemon::io_err(p)(std::io::Error::from(e)))?;
            }
            return Ok(());
        }
        daemon::write_private(&self.conf(), text.as_bytes())?;
        Ok(())
    }

    /// PIDs of the router's processes in the namespace.
    pub fn pids(&self) -> Vec<i32> {
        let names = self.kind.processes();
        crate::netns::pids_in_netns(self.netns)
            .into_iter()
            .filter(|&pid| {
                procfs::process::Process::new(pid)
                    .and_then(|p| p.stat())
                    .is_ok_and(|s| names.contains(&s.comm.as_str()) && s.state != 'Z')
            })
            .collect()
    }

    /// Runs the daemon's own CLI (`birdc` / `vtysh`) with `args`; its output when it succeeds.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let mut cmd = match self.kind {
            RouterKind::Bird => {
                let mut c = Command::new("birdc");
                c.arg("-s").arg(self.control());
                c
            }
            RouterKind::Frr => {
                let mut c = Command::new("vtysh");
                c.arg("--vty_socket").arg(self.control());
                c
            }
        };
        let out = cmd
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn answers(&self) -> bool {
        match self.kind {
            RouterKind::Bird => self.cli(&["show", "status"]).is_some(),
            RouterKind::Frr => self
                .cli(&["-c", "show bgp summary"])
                .is_some_and(|o| !o.contains("not running")),
        }
    }

    /// The device holds its BGP address (on `lo`, unless an interface has it already).
    fn hold_address(&self, address: Ipv4Addr) -> Result<(), RouterError> {
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(["-n", self.netns])
                .args(args)
                .output()
                .map_err(|e| RouterError::Address {
                    address,
                    detail: e.to_string(),
                })
        };
        let shown = ip(&["-4", "-o", "addr", "show"])?;
        if String::from_utf8_lossy(&shown.stdout).contains(&format!(" {address}/")) {
            return Ok(());
        }
        ip(&["link", "set", "lo", "up"])?;
        let out = ip(&["addr", "add", &format!("{address}/32"), "dev", "lo"])?;
        if !out.status.success() {
            return Err(RouterError::Address {
                address,
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    fn spawn(&self) -> Result<(), RouterError> {
        let log = self.dir.join("router.log");
        match self.kind {
            RouterKind::Bird => {
                if which("bird").is_none() {
                    return Err(RouterError::NotInstalled("bird".into()));
                }
                let mut cmd = Command::new("bird");
                cmd.arg("-f")
                    .arg("-c")
                    .arg(self.conf())
                    .arg("-s")
                    .arg(self.control())
                    .arg("-P")
                    .arg(self.dir.join("bird.pid"))
                    .current_dir(self.dir);
                daemon::spawn_detached(cmd, self.netns, &log, "bird")?;
            }
            RouterKind::Frr => {
                let zserv = self.frr_dir().join("zserv.api");
                let _ = std::fs::remove_file(&zserv);
                for d in FRR_DAEMONS {
                    let bin = Path::new(FRR_DIR).join(d);
                    if !bin.exists() {
                        return Err(RouterError::NotInstalled(bin.display().to_string()));
                    }
                    let mut cmd = Command::new(bin);
                    cmd.arg("-f")
                        .arg(self.conf())
                        .arg("-i")
                        .arg(self.frr_dir().join(format!("{d}.pid")))
                        .arg("-z")
                        .arg(&zserv)
                        .arg("--vty_socket")
                        .arg(self.control())
                        .args(["-A", "127.0.0.1"])
                        .current_dir(self.frr_dir());
                    if *d == "bgpd" {
                        // listen on every address of the namespace (the BGP address on lo)
                        cmd.args(["-p", "179"]);
                    }
                    daemon::spawn_detached(cmd, self.netns, &log, d)?;
                    if *d == "zebra" {
                        // the others connect to zebra's socket
                        let deadline = std::time::Instant::now() + START_TIMEOUT;
                        while !zserv.exists() && std::time::Instant::now() < deadline {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn record(&self, config: &RouterConfig) -> Result<(), RouterError> {
        let pid = self.pids().first().copied().unwrap_or_default();
        let line = format!("{pid} {}\n", Self::fingerprint(config));
        daemon::write_private(&self.dir.join(LOADED), line.as_bytes())?;
        Ok(())
    }
}

/// The path of `program` on `$PATH` (or /usr/sbin, where Debian puts bird).
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists());
    found
}

impl Daemon for Router<'_> {
    type Config = RouterConfig;
    type Error = RouterError;

    fn fingerprint(config: &RouterConfig) -> String {
        daemon::fingerprint(&format!("{:?}\n{}", config.kind, config.text))
    }

    fn running(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.join(LOADED)).unwrap_or_default();
        let mut words = text.split_whitespace();
        let (pid, fp) = (words.next()?, words.next()?);
        let live = self.pids();
        (live.iter().any(|p| p.to_string() == pid) && live.len() == self.kind.processes().len())
            .then(|| fp.to_string())
    }

    fn alive(&self) -> bool {
        !self.pids().is_empty()
    }

    fn present(&self) -> bool {
        self.alive() || self.dir.join(LOADED).exists()
    }

    fn reload(&mut self, config: &RouterConfig) -> Result<bool, RouterError> {
        if config.kind != RouterKind::Bird {
            return Ok(false);
        }
        self.hold_address(config.bgp_address)?;
        self.write_conf(&config.text)?;
        if self.cli(&["configure"]).is_none() {
            return Ok(false);
        }
        self.record(config)?;
        Ok(true)
    }

    fn start(&mut self, config: &RouterConfig) -> Result<(), RouterError> {
        self.stop();
        std::fs::create_dir_all(self.dir).map_err(daemon::io_err(self.dir))?;
        self.hold_address(config.bgp_address)?;
        self.write_conf(&config.text)?;
        if self.kind == RouterKind::Bird {
            let _ = std::fs::remove_file(self.control());
        }
        self.spawn()?;
        let name = match self.kind {
            RouterKind::Bird => "bird",
            RouterKind::Frr => "frr",
        };
        let log = self.dir.join("router.log");
        daemon::wait_until_up(
            name,
            self.netns,
            &self.control(),
            START_TIMEOUT,
            || self.answers(),
            || {
                (self.pids().len() < self.kind.processes().len()).then(|| {
                    format!(
                        "a daemon is not running; {} ends with:\n{}",
                        log.display(),
                        daemon::tail(&log, 8)
                    )
                })
            },
        )?;
        self.record(config)
    }

    fn stop(&mut self) {
        daemon::terminate(|| self.pids(), Signal::SIGTERM, STOP_GRACE);
    }

    fn forget(&mut self) {
        let _ = std::fs::remove_file(self.dir.join(LOADED));
        let _ = std::fs::remove_file(self.conf());
    }
}
