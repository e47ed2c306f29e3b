//! Virtual network gateways as `hybridnet gateway run` processes, one per VNet gateway in its
//! namespace (`LabId::gateway_netns`), configured by [`crate::gateway_config`]. The
//! configuration is written with mode 0600 to the lab's state directory, since it holds the
//! shared keys.
//!
//! The process runs under a supervisor (`hybridnet gateway supervise`, [`crate::supervisor`])
//! that restarts it with back-off when it dies and records the restarts; the supervisor is
//! detached (its own session, output to a log file) so it outlives the CLI. Its pid, the
//! control socket, the supervisor's state file and a fingerprint of the configuration are
//! recorded next to the configuration. When only connections changed, the running gateway
//! re-reads its file (`gateway reload` over its control socket): changed or deleted
//! connections are re-keyed or torn down, the others keep their SAs. Any other change
//! (address, TUN, MTU), or a gateway that does not answer, restarts that gateway (and only
//! it); the peers' gateways are left alone.

use crate::daemon::{self, Daemon, DaemonAction, DaemonError};
use crate::gateway_config::GatewayRun;
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a started gateway gets to open its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopped gateway gets to send its DELETEs and exit before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// File name suffix of a supervisor's state file, `<site>--<gateway>.supervisor.json`
/// (`<site>--<gateway>#2…` for an active-active gateway's second instance).
const SUPERVISOR_SUFFIX: &str = ".supervisor.json";

/// The record of a running gateway process, `<lab>/gateways/<site>--<gateway>.json`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRecord {
    /// Site name.
    pub site: String,
    /// Gateway resource name.
    pub gateway: String,
    /// Which instance of the gateway (1: an active-active gateway's second).
    #[serde(default)]
    pub instance: u8,
    /// Its namespace.
    pub netns: String,
    /// Process id of the supervisor (of the gateway process itself when not `supervised`).
    pub pid: i32,
    /// Whether `pid` is a supervisor (`gateway supervise`); false in records written before
    /// gateways were supervised, whose bare `gateway run` the next `lab up` replaces.
    #[serde(default)]
    pub supervised: bool,
    /// The supervisor's state file: the running child, restarts, last exit.
    #[serde(default)]
    pub supervisor_state: Option<PathBuf>,
    /// Control (status) socket.
    pub control: PathBuf,
    /// Configuration file.
    pub config: PathBuf,
    /// Log file (stderr of the process).
    pub log: PathBuf,
    /// Fingerprint of the configuration the process was started with.
    pub config_fingerprint: String,
    /// Connection names it serves.
    pub connections: Vec<String>,
}

impl GatewayRecord {
    /// The instance's name in file names and messages (`<gateway>#2` for a second instance).
    pub fn instance_name(&self) -> String {
        crate::topology::instance_name(&self.gateway, self.instance)
    }
}

/// Where a lab keeps its gateways' configurations, logs, sockets and records.
pub fn gateways_dir(lab_dir: &Path) -> PathBuf {
    lab_dir.join("gateways")
}

fn file_stem(site: &str, gateway: &str) -> String {
    format!("{site}--{gateway}")
}

/// The control socket of a gateway's process: where the lab asks it for status and reloads.
pub fn control_socket(lab_dir: &Path, site: &str, gateway: &str) -> PathBuf {
    gateways_dir(lab_dir).join(format!("{}.sock", file_stem(site, gateway)))
}

fn record_path(lab_dir: &Path, site: &str, gateway: &str) -> PathBuf {
    gateways_dir(lab_dir).join(format!("{}.json", file_stem(site, gateway)))
}

/// The program started as `PROGRAM gateway run`: `$HYBRIDNET_BIN`, else the running
/// executable (the `hybridnet` CLI itself).
pub fn gateway_program() -> PathBuf {
    std::env::var_os("HYBRIDNET_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            // A long-lived process (the lab controller) whose file was replaced by a rebuild
            // still has its own image: run that, not a path that no longer exists.
            std::env::current_exe().ok().map(|p| {
                if p.to_string_lossy().ends_with(" (deleted)") {
                    PathBuf::from("/proc/self/exe")
                } else {
                    p
                }
            })
        })
        .unwrap_or_else(|| PathBuf::from("hybridnet"))
}

/// What a lab process serving a gateway configuration is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// `hybridnet gateway supervise CONFIG …`
    Supervisor,
    /// `hybridnet gateway run CONFIG …`
    Gateway,
}

/// Whether `pid` is a live (not zombie) supervisor or gateway process of config `config`,
/// and which (known by its command line, which names this lab's configuration file).
fn role_of(pid: i32, config: &Path) -> Option<Role> {
    if !daemon::is_live(pid) {
        return None;
    }
    let args = procfs::process::Process::new(pid).ok()?.cmdline().ok()?;
    let want = config.to_str()?;
    args.windows(3)
        .find_map(|w| match (w[0].as_str(), w[1].as_str()) {
            ("gateway", "supervise") if w[2] == want => Some(Role::Supervisor),
            ("gateway", "run") if w[2] == want => Some(Role::Gateway),
            _ => None,
        })
}

/// Ends those of `pids` that are `role` for `config` (checked by their command line, which
/// names this lab's configuration file): `sig`, then SIGKILL after the grace period.
fn end_processes(pids: &[i32], config: &Path, role: Role, sig: Signal) {
    let still = || {
        pids.iter()
            .copied()
            .filter(|&pid| role_of(pid, config) == Some(role))
            .collect()
    };
    daemon::terminate(still, sig, STOP_GRACE);
}

/// Reads the records of the lab's gateway processes.
pub fn records(lab_dir: &Path) -> Vec<GatewayRecord> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(gateways_dir(lab_dir)) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|x| x.to_str()).unwrap_or_default();
        if !name.ends_with(".json") || name.ends_with(SUPERVISOR_SUFFIX) || name.starts_with('.') {
            continue;
        }
        if let Some(r) = std::fs::read_to_string(&p)
            .ok()
            .and_then(|t| serde_json::from_str::<GatewayRecord>(&t).ok())
        {
            out.push(r);
        }
    }
    out.sort_by(|a, b| (&a.site, &a.gateway, a.instance).cmp(&(&b.site, &b.gateway, b.instance)));
    out
}

/// The record of one gateway's process, if it ran.
pub fn record(lab_dir: &Path, site: &str, gateway: &str) -> Option<GatewayRecord> {
    std::fs::read_to_string(record_path(lab_dir, site, gateway))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

fn write_record(lab_dir: &Path, rec: &GatewayRecord) -> Result<(), DaemonError> {
    let data = serde_json::to_vec_pretty(rec).expect("record serializes");
    daemon::write_private(
        &record_path(lab_dir, &rec.site, &rec.instance_name()),
        &data,
    )?;
    Ok(())
}

/// Whether the recorded process (the supervisor, for a supervised gateway) still runs.
pub fn alive(rec: &GatewayRecord) -> bool {
    let want = if rec.supervised {
        Role::Supervisor
    } else {
        Role::Gateway
    };
    role_of(rec.pid, &rec.config) == Some(want)
}

/// Whether the gateway runs supervised and answers on its control socket: what `lab up`
/// leaves alone. A gateway between two restarts, or one that keeps dying, is started afresh.
fn healthy(rec: &GatewayRecord) -> bool {
    rec.supervised && alive(rec) && gateway::status::query(&rec.control).is_ok()
}

/// What the supervisor of a recorded gateway says: its child, restarts and last exit.
pub fn supervision(rec: &GatewayRecord) -> Option<crate::supervisor::SupervisorState> {
    rec.supervisor_state
        .as_deref()
        .and_then(crate::supervisor::read_state)
}

/// Stops a recorded gateway (SIGTERM to the supervisor, which forwards it, so the gateway
/// sends DELETE to its peers; SIGKILL after a grace period) and removes its record, socket
/// and supervisor state.
pub fn stop(lab_dir: &Path, rec: &GatewayRecord) {
    let child = supervision(rec).and_then(|st| st.child_pid);
    let role = if rec.supervised {
        Role::Supervisor
    } else {
        Role::Gateway
    };
    end_processes(&[rec.pid], &rec.config, role, Signal::SIGTERM);
    // The child dies with its supervisor (PR_SET_PDEATHSIG); make sure of it.
    if let Some(pid) = child {
        end_processes(&[pid], &rec.config, Role::Gateway, Signal::SIGKILL);
    }
    let _ = std::fs::remove_file(record_path(lab_dir, &rec.site, &rec.instance_name()));
    let _ = std::fs::remove_file(&rec.control);
    if let Some(p) = &rec.supervisor_state {
        let _ = std::fs::remove_file(p);
    }
}

/// Connection names (the last segment of each id) a run serves, as its record keeps them.
fn connection_names(run: &GatewayRun) -> Vec<String> {
    run.connections
        .iter()
        .map(|c| c.rsplit('/').next().unwrap_or(c).to_string())
        .collect()
}

/// Starts the supervisor of `gateway run` detached in `run.netns` and waits until the gateway
/// answers on its control socket.
fn start(
    lab_dir: &Path,
    run: &GatewayRun,
    config_text: &str,
) -> Result<GatewayRecord, DaemonError> {
    let dir = gateways_dir(lab_dir);
    std::fs::create_dir_all(&dir).map_err(daemon::io_err(&dir))?;
    let stem = file_stem(
        &run.site,
        &crate::topology::instance_name(&run.gateway, run.instance),
    );
    let config = dir.join(format!("{stem}.toml"));
    let control = dir.join(format!("{stem}.sock"));
    let log = dir.join(format!("{stem}.log"));
    let state = dir.join(format!("{stem}{SUPERVISOR_SUFFIX}"));
    // Processes of this configuration without a record (the CLI died between starting them
    // and writing the record) would hold the ports: supervisors first, so that none restarts
    // a gateway stopped here, then any gateway left.
    let pids = crate::netns::pids_in_netns(&run.netns);
    for role in [Role::Supervisor, Role::Gateway] {
        end_processes(&pids, &config, role, Signal::SIGTERM);
    }
    let _ = std::fs::remove_file(&state);
    daemon::write_private(&config, config_text.as_bytes())?;
    let program = gateway_program();
    let mut cmd = std::process::Command::new(&program);
    cmd.arg("gateway")
        .arg("supervise")
        .arg(&config)
        .arg("--control")
        .arg(&control)
        .arg("--state")
        .arg(&state)
        .current_dir(&dir);
    let what = format!("`{} gateway run`", program.display());
    let pid = daemon::spawn_detached(cmd, &run.netns, &log, &what)?;
    let rec = GatewayRecord {
        site: run.site.clone(),
        gateway: run.gateway.clone(),
        instance: run.instance,
        netns: run.netns.clone(),
        pid,
        supervised: true,
        supervisor_state: Some(state),
        control,
        config,
        log,
        config_fingerprint: daemon::fingerprint(config_text),
        connections: connection_names(run),
    };
    // The gateway dying before it answers (its supervisor would retry it forever) is an
    // error now, with the reason from the log.
    let up = daemon::wait_until_up(
        "gateway process",
        &run.netns,
        &rec.control,
        START_TIMEOUT,
        || gateway::status::query(&rec.control).is_ok(),
        || {
            let exited = supervision(&rec).and_then(|st| st.last_exit);
            (!alive(&rec) || exited.is_some()).then(|| {
                let how = exited
                    .map(|e| format!("it {}", e.reason))
                    .unwrap_or_else(|| "it exited".to_string());
                format!(
                    "{how}; its log ({}) ends with:\n{}",
                    rec.log.display(),
                    daemon::tail(&rec.log, 8)
                )
            })
        },
    );
    if let Err(e) = up {
        stop(lab_dir, &rec);
        daemon::reap(pid);
        return Err(e);
    }
    write_record(lab_dir, &rec)?;
    Ok(rec)
}

/// Applies a new configuration to a running gateway in place when only its connections
/// changed: writes the file, asks the process to reload, updates the record. Returns false
/// (nothing done, the caller restarts) for any other change or if the reload failed.
fn reload(lab_dir: &Path, rec: &GatewayRecord, run: &GatewayRun, text: &str) -> bool {
    let base = rec.config.parent().unwrap_or(Path::new("/"));
    let Ok(old) = std::fs::read_to_string(&rec.config) else {
        return false;
    };
    let (Ok(old), Ok(new)) = (
        gateway::GatewayConfig::parse(&old, base),
        gateway::GatewayConfig::parse(text, base),
    ) else {
        return false;
    };
    let same_process = old.local_address == new.local_address
        && old.control_socket == new.control_socket
        && old.path_mtu == new.path_mtu
        && old.tun == new.tun;
    if !same_process || daemon::write_private(&rec.config, text.as_bytes()).is_err() {
        return false;
    }
    // a refused or failed reload falls back to a restart, which the caller reports
    if gateway::status::reload(&rec.control).is_err() {
        return false;
    }
    let updated = GatewayRecord {
        config_fingerprint: daemon::fingerprint(text),
        connections: connection_names(run),
        ..rec.clone()
    };
    write_record(lab_dir, &updated).is_ok()
}

/// One VNet gateway's process as a [`Daemon`]: its run (the wanted configuration) and its
/// record, if it was started.
struct GatewayProcess<'a> {
    lab_dir: &'a Path,
    run: &'a GatewayRun,
    record: Option<GatewayRecord>,
}

impl Daemon for GatewayProcess<'_> {
    type Config = String;
    type Error = DaemonError;

    fn fingerprint(config: &String) -> String {
        daemon::fingerprint(config)
    }

    fn running(&self) -> Option<String> {
        self.record
            .as_ref()
            .filter(|rec| healthy(rec))
            .map(|rec| rec.config_fingerprint.clone())
    }

    fn alive(&self) -> bool {
        self.record.as_ref().is_some_and(alive)
    }

    fn present(&self) -> bool {
        self.record.is_some()
    }

    fn reload(&mut self, config: &String) -> Result<bool, DaemonError> {
        Ok(self
            .record
            .as_ref()
            .is_some_and(|rec| reload(self.lab_dir, rec, self.run, config)))
    }

    fn start(&mut self, config: &String) -> Result<(), DaemonError> {
        self.record = Some(start(self.lab_dir, self.run, config)?);
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(rec) = self.record.take() {
            stop(self.lab_dir, &rec);
        }
    }
}

/// Makes the running gateway processes match `runs`: starts what is missing, reloads or
/// restarts what changed, stops what is no longer wanted. Returns per gateway run what it
/// did, or why its process could not be run.
pub fn converge(
    lab_dir: &Path,
    runs: &[GatewayRun],
) -> Vec<(GatewayRun, Result<DaemonAction, DaemonError>)> {
    let existing = records(lab_dir);
    let run_of = |rec: &GatewayRecord| {
        runs.iter()
            .find(|r| r.site == rec.site && r.gateway == rec.gateway && r.instance == rec.instance)
    };
    // Gateways gone from every site: their processes stop, with nothing to report.
    for rec in existing.iter().filter(|rec| run_of(rec).is_none()) {
        stop(lab_dir, rec);
    }
    // Gateways with nothing left to serve stop before any starts, so that nothing they
    // held is in the way.
    let (idle, serving): (Vec<&GatewayRun>, Vec<&GatewayRun>) =
        runs.iter().partition(|r| r.config.is_none());
    let mut out = Vec::new();
    for run in idle.into_iter().chain(serving) {
        let record = existing
            .iter()
            .find(|rec| {
                rec.site == run.site && rec.gateway == run.gateway && rec.instance == run.instance
            })
            .cloned();
        if run.config.is_none() && record.is_none() {
            continue;
        }
        let mut process = GatewayProcess {
            lab_dir,
            run,
            record,
        };
        let result = daemon::converge(&mut process, run.config.as_ref());
        out.push((run.clone(), result));
    }
    out
}

/// Restarts a supervised gateway (`az network vnet-gateway reset`): its running child is
/// killed and the supervisor starts it again after its back-off, so the tunnels go down and
/// are negotiated anew.
pub fn restart(rec: &GatewayRecord) -> Result<(), DaemonError> {
    let state = rec
        .supervisor_state
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<crate::supervisor::SupervisorState>(&b).ok());
    let Some(child) = state
        .and_then(|s| s.child_pid)
        .filter(|p| daemon::is_live(*p))
    else {
        return Err(DaemonError::NotUp {
            daemon: "gateway",
            netns: rec.netns.clone(),
            detail: "no running gateway process to reset".into(),
        });
    };
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child), Signal::SIGKILL);
    Ok(())
}
