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

use crate::gateway_config::GatewayRun;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a started gateway gets to open its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopped gateway gets to send its DELETEs and exit before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// File name suffix of a supervisor's state file, `<site>--<gateway>.supervisor.json`.
const SUPERVISOR_SUFFIX: &str = ".supervisor.json";

/// The record of a running gateway process, `<lab>/gateways/<site>--<gateway>.json`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRecord {
    /// Site name.
    pub site: String,
    /// Gateway resource name.
    pub gateway: String,
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

/// What happened to one gateway process during a realization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewayAction {
    /// Started (it was not running).
    Started,
    /// Restarted with a changed configuration.
    Restarted,
    /// Told to reload its changed connections; its process and other tunnels kept running.
    Reloaded,
    /// Left running (configuration unchanged).
    Unchanged,
    /// Stopped (gateway deleted or no connection left).
    Stopped,
}

/// Why a gateway process could not be run.
#[derive(Debug, thiserror::Error)]
pub enum GatewayRunError {
    /// The state directory could not be written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The `hybridnet` binary could not be started in the namespace.
    #[error("cannot start `{program} gateway run` in {netns}: {source}")]
    Spawn {
        program: String,
        netns: String,
        #[source]
        source: std::io::Error,
    },
    /// The process exited or never answered on its control socket.
    #[error("gateway process in {netns} did not come up: {detail}")]
    NotUp { netns: String, detail: String },
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

/// The program started as `PROGRAM gateway run`: `$HYBRIDNET_BIN`, else the running
/// executable (the `hybridnet` CLI itself).
pub fn gateway_program() -> PathBuf {
    std::env::var_os("HYBRIDNET_BIN")
        .map(PathBuf::from)
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_else(|| PathBuf::from("hybridnet"))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GatewayRunError + '_ {
    move |source| GatewayRunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `data` with mode 0600 (it holds shared keys), atomically and durably.
fn write_private(path: &Path, data: &[u8]) -> Result<(), GatewayRunError> {
    crate::state::write_durable(path, data, 0o600).map_err(io_err(path))
}

fn fingerprint(text: &str) -> String {
    format!("{:016x}", crate::names::fnv1a(text))
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
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // state is the field after the parenthesized command name
    if stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        .unwrap_or(true)
    {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let want = config.as_os_str().as_encoded_bytes();
    args.windows(3).find_map(|w| match (w[0], w[1]) {
        (b"gateway", b"supervise") if w[2] == want => Some(Role::Supervisor),
        (b"gateway", b"run") if w[2] == want => Some(Role::Gateway),
        _ => None,
    })
}

/// Sends `sig` to `pid` if it is still `role` for `config`, waits up to `grace` for it to go,
/// and SIGKILLs it if it did not.
fn end_process(pid: i32, config: &Path, role: Role, sig: libc::c_int, grace: Duration) {
    if role_of(pid, config) != Some(role) {
        return;
    }
    // SAFETY: kill(2) on a process of this lab's gateway (checked above by its command line,
    // which names this lab's configuration file).
    unsafe { libc::kill(pid, sig) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && role_of(pid, config) == Some(role) {
        std::thread::sleep(Duration::from_millis(10));
    }
    if role_of(pid, config) == Some(role) {
        // SAFETY: as above; it ignored the signal.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline && role_of(pid, config) == Some(role) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
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
    out.sort_by(|a, b| (&a.site, &a.gateway).cmp(&(&b.site, &b.gateway)));
    out
}

/// The record of one gateway's process, if it ran.
pub fn record(lab_dir: &Path, site: &str, gateway: &str) -> Option<GatewayRecord> {
    let p = gateways_dir(lab_dir).join(format!("{}.json", file_stem(site, gateway)));
    std::fs::read_to_string(p)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
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
    if rec.supervised {
        end_process(
            rec.pid,
            &rec.config,
            Role::Supervisor,
            libc::SIGTERM,
            STOP_GRACE,
        );
    } else {
        end_process(
            rec.pid,
            &rec.config,
            Role::Gateway,
            libc::SIGTERM,
            STOP_GRACE,
        );
    }
    // The child dies with its supervisor (PR_SET_PDEATHSIG); make sure of it.
    if let Some(pid) = child {
        end_process(pid, &rec.config, Role::Gateway, libc::SIGKILL, STOP_GRACE);
    }
    let stem = file_stem(&rec.site, &rec.gateway);
    let _ = std::fs::remove_file(gateways_dir(lab_dir).join(format!("{stem}.json")));
    let _ = std::fs::remove_file(&rec.control);
    if let Some(p) = &rec.supervisor_state {
        let _ = std::fs::remove_file(p);
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Starts the supervisor of `gateway run` detached in `run.netns` and waits until the gateway
/// answers on its control socket.
fn start(
    lab_dir: &Path,
    run: &GatewayRun,
    config_text: &str,
) -> Result<GatewayRecord, GatewayRunError> {
    let dir = gateways_dir(lab_dir);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let stem = file_stem(&run.site, &run.gateway);
    let config = dir.join(format!("{stem}.toml"));
    let control = dir.join(format!("{stem}.sock"));
    let log = dir.join(format!("{stem}.log"));
    let state = dir.join(format!("{stem}{SUPERVISOR_SUFFIX}"));
    // Processes of this configuration without a record (the CLI died between starting them
    // and writing the record) would hold the ports: supervisors first, so that none restarts
    // a gateway stopped here, then any gateway left.
    let pids = crate::netns::pids_in_netns(&run.netns);
    for role in [Role::Supervisor, Role::Gateway] {
        for &pid in &pids {
            end_process(pid, &config, role, libc::SIGTERM, STOP_GRACE);
        }
    }
    let _ = std::fs::remove_file(&state);
    write_private(&config, config_text.as_bytes())?;
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log)
        .map_err(io_err(&log))?;
    let logf2 = logf.try_clone().map_err(io_err(&log))?;
    let ns_path = Path::new(crate::netns::NETNS_RUN_DIR).join(&run.netns);
    let ns = std::fs::File::open(&ns_path).map_err(io_err(&ns_path))?;
    let program = gateway_program();
    let mut cmd = std::process::Command::new(&program);
    cmd.arg("gateway")
        .arg("supervise")
        .arg(&config)
        .arg("--control")
        .arg(&control)
        .arg("--state")
        .arg(&state)
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(logf)
        .stderr(logf2);
    crate::netns::enter_detached(&mut cmd, &ns);
    let child = cmd.spawn().map_err(|source| GatewayRunError::Spawn {
        program: program.display().to_string(),
        netns: run.netns.clone(),
        source,
    })?;
    let pid = child.id() as i32;
    drop(child);
    let rec = GatewayRecord {
        site: run.site.clone(),
        gateway: run.gateway.clone(),
        netns: run.netns.clone(),
        pid,
        supervised: true,
        supervisor_state: Some(state),
        control,
        config,
        log,
        config_fingerprint: fingerprint(config_text),
        connections: run
            .connections
            .iter()
            .map(|c| c.rsplit('/').next().unwrap_or(c).to_string())
            .collect(),
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if gateway::status::query(&rec.control).is_ok() {
            break;
        }
        // The gateway died before it answered (its supervisor would retry it forever): a
        // configuration that cannot run is an error now, with the reason from the log.
        let exited = supervision(&rec).and_then(|st| st.last_exit);
        if !alive(&rec) || exited.is_some() {
            stop(lab_dir, &rec);
            // SAFETY: waitpid(2) on our own child's pid, non-blocking, to reap it.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
            let how = exited
                .map(|e| format!("it {}", e.reason))
                .unwrap_or_else(|| "it exited".to_string());
            return Err(GatewayRunError::NotUp {
                netns: run.netns.clone(),
                detail: format!(
                    "{how}; its log ({}) ends with:\n{}",
                    rec.log.display(),
                    tail(&rec.log, 8)
                ),
            });
        }
        if Instant::now() > deadline {
            stop(lab_dir, &rec);
            // SAFETY: waitpid(2) on our own child's pid, non-blocking, to reap it.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
            return Err(GatewayRunError::NotUp {
                netns: run.netns.clone(),
                detail: format!(
                    "no answer on {} within {START_TIMEOUT:?}",
                    rec.control.display()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let data = serde_json::to_vec_pretty(&rec).expect("record serializes");
    write_private(&dir.join(format!("{stem}.json")), &data)?;
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
    if !same_process || write_private(&rec.config, text.as_bytes()).is_err() {
        return false;
    }
    // a refused or failed reload falls back to a restart, which the caller reports
    if gateway::status::reload(&rec.control).is_err() {
        return false;
    }
    let updated = GatewayRecord {
        config_fingerprint: fingerprint(text),
        connections: run
            .connections
            .iter()
            .map(|c| c.rsplit('/').next().unwrap_or(c).to_string())
            .collect(),
        ..rec.clone()
    };
    let stem = file_stem(&rec.site, &rec.gateway);
    let data = serde_json::to_vec_pretty(&updated).expect("record serializes");
    write_private(&gateways_dir(lab_dir).join(format!("{stem}.json")), &data).is_ok()
}

/// Makes the running gateway processes match `runs`: starts what is missing, restarts what
/// changed, stops what is no longer wanted. Returns per gateway (site, name) what it did, or
/// the error for gateways that could not be run.
pub fn converge(
    lab_dir: &Path,
    runs: &[GatewayRun],
) -> Vec<(GatewayRun, Result<GatewayAction, GatewayRunError>)> {
    let mut out = Vec::new();
    let existing = records(lab_dir);
    for rec in &existing {
        let wanted = runs
            .iter()
            .any(|r| r.site == rec.site && r.gateway == rec.gateway && r.config.is_some());
        if !wanted {
            stop(lab_dir, rec);
            if let Some(r) = runs
                .iter()
                .find(|r| r.site == rec.site && r.gateway == rec.gateway)
            {
                out.push((r.clone(), Ok(GatewayAction::Stopped)));
            }
        }
    }
    for run in runs {
        let Some(text) = &run.config else { continue };
        let prev = existing
            .iter()
            .find(|r| r.site == run.site && r.gateway == run.gateway);
        let answers = prev.is_some_and(healthy);
        let result = match prev {
            Some(rec) if answers && rec.config_fingerprint == fingerprint(text) => {
                Ok(GatewayAction::Unchanged)
            }
            Some(rec) if answers && reload(lab_dir, rec, run, text) => Ok(GatewayAction::Reloaded),
            Some(rec) => {
                let was_alive = alive(rec);
                stop(lab_dir, rec);
                start(lab_dir, run, text).map(|_| {
                    if was_alive {
                        GatewayAction::Restarted
                    } else {
                        GatewayAction::Started
                    }
                })
            }
            None => start(lab_dir, run, text).map(|_| GatewayAction::Started),
        };
        out.push((run.clone(), result));
    }
    out
}
