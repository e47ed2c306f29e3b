//! `lab up --metrics`: a real Prometheus (Debian's `prometheus`) scraping the lab
//! controller's `/metrics` every second, run as the lab's own process — its configuration and
//! data under the lab's state (`prometheus/`), listening on a loopback port, ended by
//! `lab down` — and never as the system's service.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::state::LabDir;

/// `prometheus/prometheus.json`: the running Prometheus of a lab.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRecord {
    /// Its pid.
    pub pid: i32,
    /// Its web UI and query API (`http://127.0.0.1:PORT/`).
    pub url: String,
    /// What it scrapes.
    pub target: String,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its data directory (TSDB).
    pub data_dir: PathBuf,
    /// Its log.
    pub log: PathBuf,
}

/// Why Prometheus could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// The `prometheus` program is not installed.
    #[error(
        "`prometheus` is not installed (scripts/install-deps.sh installs Debian's package): {0}"
    )]
    NotInstalled(std::io::Error),
    /// There is nothing to scrape: the lab runs no controller.
    #[error("--metrics needs the lab controller, which serves /metrics (a lab with an Azure-kind site, without --no-api)")]
    NoController,
    /// A file of its state.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// It did not answer ready in time; its log says why.
    #[error("prometheus did not become ready within {0:?}: {1}")]
    NotUp(Duration, String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PrometheusError + '_ {
    move |source| PrometheusError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The lab's Prometheus directory.
fn prom_dir(lab: &LabDir) -> PathBuf {
    lab.path.join("prometheus")
}

fn record_path(lab: &LabDir) -> PathBuf {
    prom_dir(lab).join("prometheus.json")
}

/// Whether `pid` is a live Prometheus running `config`.
fn is_ours(pid: i32, config: &Path) -> bool {
    let flag = format!("--config.file={}", config.display());
    crate::daemon::is_live(pid)
        && procfs::process::Process::new(pid)
            .and_then(|p| p.cmdline())
            .is_ok_and(|args| args.iter().any(|a| a == &flag))
}

/// The lab's running Prometheus, if any.
pub fn running(lab: &LabDir) -> Option<PrometheusRecord> {
    let rec: PrometheusRecord =
        serde_json::from_slice(&std::fs::read(record_path(lab)).ok()?).ok()?;
    is_ours(rec.pid, &rec.config).then_some(rec)
}

/// The configuration: one job scraping `target` (`http://127.0.0.1:PORT/metrics`) every
/// second, each series labelled with the lab's id.
fn config_text(lab: &LabDir, target: &str) -> String {
    let host = target
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    format!(
        "# written by hybridnet lab up --metrics for lab {id}; rewritten at every lab up\n\
         global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 15s\n\
         scrape_configs:\n  - job_name: hybridnet\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{host}']\n        labels:\n          lab: '{id}'\n",
        id = lab.id,
    )
}

/// A free port on 127.0.0.1 (bound and released: Prometheus takes it right after).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// The status code of `GET path` on `addr` (HTTP/1.0), if it answers.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    let sock: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&sock, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Starts the lab's Prometheus scraping `target` unless one runs with that configuration
/// already; waits until it is ready.
pub fn ensure(lab: &LabDir, target: &str) -> Result<PrometheusRecord, PrometheusError> {
    let dir = prom_dir(lab);
    let config = dir.join("prometheus.yml");
    let data_dir = dir.join("data");
    let log = dir.join("prometheus.log");
    let text = config_text(lab, target);
    if let Some(rec) = running(lab) {
        if rec.target == target && std::fs::read_to_string(&rec.config).ok() == Some(text.clone()) {
            return Ok(rec);
        }
        stop(lab);
    }
    std::fs::create_dir_all(&data_dir).map_err(io(&data_dir))?;
    crate::state::write_durable(&config, text.as_bytes(), 0o644).map_err(io(&config))?;
    let port = free_port().map_err(io(&dir))?;
    let listen = format!("127.0.0.1:{port}");
    let out = crate::daemon::open_log(&log)
        .map_err(|e| PrometheusError::NotUp(Duration::ZERO, e.to_string()))?;
    let err = out.try_clone().map_err(io(&log))?;
    let mut cmd = std::process::Command::new("prometheus");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data_dir.display()))
        .arg(format!("--web.listen-address={listen}"))
        .arg("--storage.tsdb.retention.time=2d")
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    // its own process group: a Ctrl-C of `lab up` does not end it; `lab down` does
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(PrometheusError::NotInstalled)?;
    let patience = Duration::from_secs(30);
    let deadline = Instant::now() + patience;
    loop {
        if http_status(&listen, "/-/ready") == Some(200) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(PrometheusError::NotUp(
                patience,
                format!("it exited ({status}): {}", crate::daemon::tail(&log, 5)),
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(PrometheusError::NotUp(
                patience,
                crate::daemon::tail(&log, 5),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let rec = PrometheusRecord {
        pid: child.id() as i32,
        url: format!("http://{listen}/"),
        target: target.to_string(),
        config,
        data_dir,
        log,
    };
    // Detached: it outlives `lab up`; a thread reaps it if it exits while we live.
    std::thread::spawn(move || child.wait());
    let path = record_path(lab);
    let json = serde_json::to_vec_pretty(&rec).expect("record serializes");
    crate::state::write_durable(&path, &json, 0o644).map_err(io(&path))?;
    Ok(rec)
}

/// Ends the lab's Prometheus (SIGTERM, then SIGKILL), found by its configuration file on its
/// command line, so one whose record was lost is ended too.
pub fn stop(lab: &LabDir) {
    let config = prom_dir(lab).join("prometheus.yml");
    let find = || {
        procfs::process::all_processes()
            .map(|all| {
                all.filter_map(Result::ok)
                    .filter(|p| is_ours(p.pid(), &config))
                    .map(|p| p.pid())
                    .collect()
            })
            .unwrap_or_default()
    };
    crate::daemon::terminate(find, Signal::SIGTERM, Duration::from_secs(5));
}
