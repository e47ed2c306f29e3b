//! The lab controller: one process per lab that serves each Azure-kind site's Resource
//! Manager endpoint (the `armapi` crate) and realizes the lab after every change accepted
//! through it. `lab up` starts it (detached, in the host's namespaces: its endpoints listen on
//! the host's loopback), `lab status` shows its endpoints, `lab down` ends it.
//!
//! What it writes beside the lab's state, in `api/`: the lab CA (`ca.pem`, for clients'
//! trust), each site's service principal secret (`<site>.secret`, mode 0600, never printed),
//! the token key, resource groups made through the API, and `controller.json` (pid and
//! endpoints) once every endpoint listens. It also serves the lab's web view and metrics
//! ([`crate::view`]) on a loopback port of its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use armapi::{ApiError, Backend, DeployInput, EndpointConfig, LabTls, Principal, TokenKey};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::lab::{ApplyReport, Lab, LabError};
use crate::progress::Progress;
use crate::state::{LabDir, LabSelector};
use crate::LabId;

/// The capture scope a resource id names: a VNet gateway, or a connection; and its name.
fn capture_scope(id: &str) -> (crate::capture::Scope, String) {
    let name = id.rsplit('/').next().unwrap_or(id).to_string();
    if id.to_ascii_lowercase().contains("/connections/") {
        (crate::capture::Scope::Connection(name.clone()), name)
    } else {
        (crate::capture::Scope::Gateway(name.clone()), name)
    }
}

/// One site's endpoint as `lab up` and `lab status` show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SiteEndpoint {
    /// Site name.
    pub site: String,
    /// Resource Manager URL (`https://127.0.0.1:PORT/`).
    pub url: String,
    /// Tenant (directory) id.
    pub tenant_id: String,
    /// The service principal's application id.
    pub client_id: String,
    /// File holding its secret (0600).
    pub secret_file: PathBuf,
    /// Subscription id.
    pub subscription_id: String,
    /// The site's location (resource groups are created there).
    pub location: String,
}

/// `api/controller.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerRecord {
    /// The pid of the process serving the endpoints.
    pub pid: i32,
    /// The pid of its supervisor, which restarts it when it dies.
    #[serde(default)]
    pub supervisor_pid: Option<i32>,
    /// The lab CA clients trust.
    pub ca_file: PathBuf,
    /// One endpoint per Azure-kind site.
    pub endpoints: Vec<SiteEndpoint>,
    /// The lab's web view (`http://127.0.0.1:PORT/`): topology, connections, deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_url: Option<String>,
    /// Its Prometheus metrics (`http://127.0.0.1:PORT/metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_url: Option<String>,
}

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// Starting the process failed.
    #[error("starting the lab controller: {0}")]
    Spawn(std::io::Error),
    /// It did not report its endpoints in time; its log says why.
    #[error("the lab controller did not come up within {0:?}: {1}")]
    NotUp(Duration, String),
    /// Its state could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// TLS material.
    #[error(transparent)]
    Tls(#[from] armapi::TlsError),
    /// The lab itself.
    #[error(transparent)]
    Lab(#[from] Box<LabError>),
    /// Supervising the serving process failed.
    #[error("supervising the lab controller: {0}")]
    Supervise(#[from] crate::supervisor::SuperviseError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ControllerError + '_ {
    move |source| ControllerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The controller's directory in a lab's state.
pub fn api_dir(dir: &LabDir) -> PathBuf {
    dir.path.join("api")
}

fn record_path(dir: &LabDir) -> PathBuf {
    api_dir(dir).join("controller.json")
}

/// The running controller of a lab, if any (its pid alive and running `lab controller`).
pub fn running(dir: &LabDir) -> Option<ControllerRecord> {
    let rec: ControllerRecord =
        serde_json::from_slice(&std::fs::read(record_path(dir)).ok()?).ok()?;
    is_controller(rec.pid, &dir.id).then_some(rec)
}

fn is_controller(pid: i32, id: &LabId) -> bool {
    crate::daemon::is_live(pid)
        && procfs::process::Process::new(pid)
            .and_then(|p| p.cmdline())
            .is_ok_and(|args| {
                args.windows(3)
                    .any(|w| w[0] == "controller" && w[1] == "--lab" && w[2] == id.to_string())
            })
}

/// Whether a site of this kind serves Resource Manager (strongSwan devices do not).
fn serves_arm(kind: &str) -> bool {
    kind == "azure" || kind == "azure-stack-hub"
}

/// Starts the lab's controller unless it runs already; waits until its endpoints listen.
pub fn ensure(lab: &Lab) -> Result<Option<ControllerRecord>, ControllerError> {
    if !lab.record.sites.iter().any(|s| serves_arm(&s.kind)) {
        return Ok(None);
    }
    if let Some(rec) = running(&lab.dir) {
        // A controller of another build (hybridnet was upgraded or rebuilt) is replaced, so
        // the API always speaks for the binary that runs `lab up`.
        let theirs = std::fs::read_link(format!("/proc/{}/exe", rec.pid)).ok();
        let ours = std::fs::read_link("/proc/self/exe").ok();
        if theirs.is_some() && theirs == ours {
            return Ok(Some(rec));
        }
        stop(&lab.dir);
    }
    let dir = api_dir(&lab.dir);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    // A record left by a controller that died keeps its ports: the new one takes them again,
    // so clients' cloud registrations stay valid.
    let log = dir.join("controller.log");
    let out = crate::daemon::open_log(&log)
        .map_err(|e| ControllerError::NotUp(Duration::ZERO, e.to_string()))?;
    let err = out.try_clone().map_err(io(&log))?;
    let mut cmd = std::process::Command::new(crate::gateways::gateway_program());
    cmd.arg("lab")
        .arg("controller")
        .arg("--lab")
        .arg(lab.id().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(ControllerError::Spawn)?;
    let patience = Duration::from_secs(20);
    let deadline = std::time::Instant::now() + patience;
    loop {
        if let Some(rec) = running(&lab.dir) {
            // Detached: it is not ours to wait for; a thread reaps it if it ever exits while
            // we live.
            std::thread::spawn(move || child.wait());
            return Ok(Some(rec));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ControllerError::NotUp(
                patience,
                format!("it exited ({status}): {}", crate::daemon::tail(&log, 5)),
            ));
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ControllerError::NotUp(
                patience,
                crate::daemon::tail(&log, 5),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ends the lab's controller (SIGTERM, then SIGKILL), if one runs; its record stays, so a
/// controller started later listens on the same ports.
pub fn stop(dir: &LabDir) {
    let id = dir.id.clone();
    // Found by command line, not only through the record, so a controller whose record was
    // lost (a crash while starting) is ended too; supervisors first, so none restarts its
    // child while it is being stopped.
    let find = || {
        let mut pids: Vec<(bool, i32)> = procfs::process::all_processes()
            .map(|all| {
                all.filter_map(Result::ok)
                    .filter(|p| is_controller(p.pid(), &id))
                    .map(|p| {
                        let serving = p.cmdline().is_ok_and(|a| a.iter().any(|x| x == "--serve"));
                        (serving, p.pid())
                    })
                    .collect()
            })
            .unwrap_or_default();
        pids.sort();
        pids.into_iter().map(|(_, p)| p).collect::<Vec<i32>>()
    };
    crate::daemon::terminate(find, Signal::SIGTERM, Duration::from_secs(6));
}

/// Reads a secret file, or makes one of `len` random bytes (hex) with mode 0600.
fn secret(path: &Path, len: usize) -> Result<String, ControllerError> {
    if let Ok(s) = std::fs::read_to_string(path) {
        if !s.trim().is_empty() {
            return Ok(s.trim().to_string());
        }
    }
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(io(Path::new("/dev/urandom")))?;
    let s = hex::encode(bytes);
    crate::state::write_durable(path, s.as_bytes(), 0o600).map_err(io(path))?;
    Ok(s)
}

/// A stable UUID-shaped id from a seed (tenant and client ids that survive restarts).
fn stable_id(seed: &str) -> String {
    let h = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(seed.as_bytes()));
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// The lab side of one site's endpoint.
struct LabBackend {
    root: PathBuf,
    id: LabId,
    site: String,
    log: Arc<std::sync::Mutex<()>>,
}

impl LabBackend {
    fn lab(&self) -> Result<Lab, ApiError> {
        Lab::open(&self.root, &LabSelector::Id(self.id.clone()))
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    fn options(&self, lab: &Lab, input: &DeployInput) -> Result<site::PlanOptions, ApiError> {
        let mut o = lab
            .plan_options(&self.site)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        o.mode = input.mode;
        o.resource_group = Some(input.resource_group.clone());
        Ok(o)
    }
}

fn lab_err(e: LabError) -> ApiError {
    match e {
        LabError::Site { source, .. } => armapi::error::from_site(&source, false),
        other => ApiError::internal(other.to_string()),
    }
}

impl Backend for LabBackend {
    fn site(&self) -> Result<site::Site, ApiError> {
        self.lab()?.site(&self.site).map_err(lab_err)
    }

    fn plan(&self, input: &DeployInput) -> Result<site::Plan, ApiError> {
        let lab = self.lab()?;
        let site = lab.site(&self.site).map_err(lab_err)?;
        let options = self.options(&lab, input)?;
        site.plan_with(
            &input.template,
            input.parameters.clone(),
            &input.name,
            &options,
        )
        .map_err(|e| armapi::error::from_site(&e, !armapi::backend::is_api_deployment(&input.name)))
    }

    fn apply(&self, input: &DeployInput) -> Result<site::DeploymentRecord, ApiError> {
        let lab = self.lab()?;
        let _lock = lab
            .dir
            .lock()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut site = lab.site(&self.site).map_err(lab_err)?;
        let options = self.options(&lab, input)?;
        let deployment = !armapi::backend::is_api_deployment(&input.name);
        let plan = match site.plan_with(
            &input.template,
            input.parameters.clone(),
            &input.name,
            &options,
        ) {
            Ok(p) => p,
            Err(e) => {
                if deployment {
                    let params = input.parameters.clone();
                    let _ =
                        site.record_failed_deployment(&input.template, &params, &input.name, &e);
                }
                return Err(armapi::error::from_site(&e, deployment));
            }
        };
        site.apply(plan)
            .map_err(|e| armapi::error::from_site(&e, deployment))
    }

    fn delete(&self, ids: &[String]) -> Result<(), ApiError> {
        let lab = self.lab()?;
        let _lock = lab
            .dir
            .lock()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut site = lab.site(&self.site).map_err(lab_err)?;
        for id in ids {
            site.delete_resource(id)
                .map_err(|e| armapi::error::from_site(&e, false))?;
        }
        Ok(())
    }

    fn live_view(&self, id: &str) -> Option<serde_json::Value> {
        let lab = self.lab().ok()?;
        lab.connections()
            .ok()?
            .into_iter()
            .map(|c| c.resource)
            .find(|v| {
                v.get("id")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|i| site::same_id(i, id))
            })
    }

    fn delete_deployment(&self, name: &str) -> Result<bool, ApiError> {
        let lab = self.lab()?;
        let _lock = lab
            .dir
            .lock()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut site = lab.site(&self.site).map_err(lab_err)?;
        site.delete_deployment(name)
            .map_err(|e| armapi::error::from_site(&e, true))
    }

    fn reset_gateway(&self, id: &str) -> Result<(), ApiError> {
        let lab = self.lab()?;
        let name = id.rsplit('/').next().unwrap_or(id);
        let recs: Vec<_> = crate::gateways::records(&lab.dir.path)
            .into_iter()
            .filter(|g| g.site == self.site && g.gateway.eq_ignore_ascii_case(name))
            .collect();
        if recs.is_empty() {
            return Err(ApiError::new(
                armapi::error::StatusCode::CONFLICT,
                "GatewayNotRunning",
                format!("The virtual network gateway '{name}' has no running gateway to reset."),
            ));
        }
        // every instance of an active-active gateway
        for rec in &recs {
            crate::gateways::restart(rec).map_err(|e| ApiError::internal(e.to_string()))?;
        }
        Ok(())
    }

    fn gateway_bgp(
        &self,
        id: &str,
        list: &str,
        peer: Option<&str>,
    ) -> Result<serde_json::Value, ApiError> {
        use crate::bgp_view::{bgp_list, gateway_bgp, BgpList, BgpViewError};
        let lab = self.lab()?;
        let name = id.rsplit('/').next().unwrap_or(id);
        let list = match list {
            "getbgppeerstatus" => BgpList::PeerStatus,
            "getlearnedroutes" => BgpList::LearnedRoutes,
            _ => BgpList::AdvertisedRoutes,
        };
        let conflict = |code: &str, e: BgpViewError| {
            ApiError::new(armapi::error::StatusCode::CONFLICT, code, e.to_string())
        };
        let report = gateway_bgp(&lab.dir.path, &self.site, name).map_err(|e| match e {
            BgpViewError::NoBgp { .. } => conflict("BgpNotEnabled", e),
            e => conflict("GatewayNotRunning", e),
        })?;
        bgp_list(&report, list, peer).map_err(|e| {
            ApiError::bad_request(
                match e {
                    BgpViewError::PeerRequired => "MissingRequiredParameter",
                    _ => "InvalidBgpPeer",
                },
                e.to_string(),
            )
        })
    }

    fn start_packet_capture(&self, id: &str, filter: Option<&str>) -> Result<String, ApiError> {
        let lab = self.lab()?;
        let filter = match filter.filter(|f| !f.trim().is_empty()) {
            None => gateway::capture::FilterData::default(),
            // Azure's own examples quote with ' : JSON5 reads both
            Some(text) => json5::from_str(text).map_err(|e| {
                ApiError::bad_request(
                    "InvalidPacketCaptureFilter",
                    format!("filterData is not Azure's packet capture filter: {e}"),
                )
            })?,
        };
        let (scope, name) = capture_scope(id);
        let dir = lab.dir.path.join("captures");
        std::fs::create_dir_all(&dir).map_err(|e| ApiError::internal(e.to_string()))?;
        let path = dir.join(format!("{}-{name}.pcapng", self.site));
        let files = lab
            .capture_start(&self.site, &scope, filter, None, &path)
            .map_err(|e| {
                ApiError::new(
                    armapi::error::StatusCode::CONFLICT,
                    "PacketCaptureFailed",
                    e.to_string(),
                )
            })?;
        Ok(files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(","))
    }

    fn stop_packet_capture(&self, id: &str, sas_url: &str) -> Result<String, ApiError> {
        let target = sas_url
            .strip_prefix("file://")
            .unwrap_or(sas_url)
            .to_string();
        if !target.starts_with('/') {
            return Err(ApiError::bad_request(
                "InvalidSasUrl",
                format!("{sas_url:?}: the lab has no storage account; give a file:///absolute/path to write the capture to"),
            ));
        }
        let lab = self.lab()?;
        let (scope, _) = capture_scope(id);
        let reports = lab.capture_stop(&self.site, &scope).map_err(|e| {
            ApiError::new(
                armapi::error::StatusCode::CONFLICT,
                "PacketCaptureFailed",
                e.to_string(),
            )
        })?;
        if reports.is_empty() {
            return Err(ApiError::new(
                armapi::error::StatusCode::CONFLICT,
                "PacketCaptureNotRunning",
                "No packet capture is running here.",
            ));
        }
        let mut written = Vec::new();
        for (i, r) in reports.iter().enumerate() {
            let to = if i == 0 {
                std::path::PathBuf::from(&target)
            } else {
                std::path::PathBuf::from(format!("{target}.instance{}", i + 1))
            };
            std::fs::copy(&r.path, &to).map_err(|e| {
                ApiError::bad_request(
                    "InvalidSasUrl",
                    format!("cannot write {}: {e}", to.display()),
                )
            })?;
            let _ = std::fs::remove_file(&r.path);
            written.push(to.display().to_string());
        }
        Ok(written.join(","))
    }

    fn realize(&self) -> Result<(), String> {
        let _one = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let lab = self.lab().map_err(|e| e.message)?;
        let _lock = lab.dir.lock().map_err(|e| e.to_string())?;
        let lab = Lab {
            record: lab.dir.record().map_err(|e| e.to_string())?,
            dir: lab.dir,
        };
        let mut report = ApplyReport::new(lab.id());
        let mut sink = |line: &str| eprintln!("{line}");
        let mut progress = Progress::new(&mut sink);
        lab.realize(&mut report, &mut progress)
            .map_err(|e| e.to_string())?;
        match report.failed.first() {
            Some((what, why)) => Err(format!("{what}: {why}")),
            None => Ok(()),
        }
    }
}

/// `hybridnet lab controller --lab ID`: runs `lab controller --lab ID --serve` under the
/// supervisor gateways have (restarted with back-off when it dies; SIGTERM stops both).
pub fn supervise(root: &Path, id: &LabId) -> Result<(), ControllerError> {
    let lab = Lab::open(root, &LabSelector::Id(id.clone())).map_err(Box::new)?;
    let dir = api_dir(&lab.dir);
    crate::supervisor::run(&crate::supervisor::SuperviseOptions {
        child_args: vec![
            "lab".into(),
            "controller".into(),
            "--lab".into(),
            id.to_string().into(),
            "--serve".into(),
        ],
        state: dir.join("controller.supervisor.json"),
        name: "lab controller".into(),
        vnet_router: None,
    })?;
    Ok(())
}

/// `hybridnet lab controller --lab ID --serve`: serves the lab's endpoints until SIGTERM.
pub fn run(root: &Path, id: &LabId) -> Result<(), ControllerError> {
    // The supervisor starts its child with TERM, INT and HUP blocked (a gateway reads them from
    // a signalfd); this process takes them through tokio's handlers instead.
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
        Some(&nix::sys::signal::SigSet::from_iter([
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
        ])),
        None,
    );
    let lab = Lab::open(root, &LabSelector::Id(id.clone())).map_err(Box::new)?;
    let dir = api_dir(&lab.dir);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let tls = LabTls::load_or_create(&dir, &id.to_string())?;
    let key = TokenKey::new(secret(&dir.join("token.key"), 32)?.as_bytes());
    let previous: Option<ControllerRecord> = std::fs::read(record_path(&lab.dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ControllerError::Spawn)?;
    let realizing = Arc::new(std::sync::Mutex::new(()));
    let mut endpoints = Vec::new();
    for s in lab.record.sites.iter().filter(|s| serves_arm(&s.kind)) {
        let site = lab.site(&s.name).map_err(Box::new)?;
        let info = site.info().clone();
        let secret_file = dir.join(format!("{}.secret", s.name));
        let principal = Principal::new(
            &stable_id(&format!("{id}/{}/client", s.name)),
            &stable_id(&format!("{id}/{}/tenant", s.name)),
            &secret(&secret_file, 24)?,
        );
        let port = previous
            .as_ref()
            .and_then(|p| p.endpoints.iter().find(|e| e.site == s.name))
            .and_then(|e| e.url.rsplit(':').next()?.trim_end_matches('/').parse().ok())
            .unwrap_or(0);
        let make = |port: u16| EndpointConfig {
            site: s.name.clone(),
            kind: site.kind(),
            subscription_id: info.subscription_id.clone(),
            default_group: info.resource_group.clone(),
            location: info.location.clone(),
            principal: principal.clone(),
            key: key.clone(),
            groups_file: dir.join(format!("{}.groups.json", s.name)),
            port,
        };
        let backend = Arc::new(LabBackend {
            root: root.to_path_buf(),
            id: id.clone(),
            site: s.name.clone(),
            log: realizing.clone(),
        });
        // The port of the previous run keeps clients' cloud registrations valid; any free
        // one if it is taken now.
        let bound = rt.block_on(async {
            match armapi::serve(make(port), &tls, backend.clone()).await {
                Err(_) if port != 0 => armapi::serve(make(0), &tls, backend).await,
                other => other,
            }
        });
        let bound = bound.map_err(io(&dir))?;
        endpoints.push(SiteEndpoint {
            site: s.name.clone(),
            url: format!("{}/", bound.url),
            tenant_id: principal.tenant_id.clone(),
            client_id: principal.client_id.clone(),
            secret_file,
            subscription_id: info.subscription_id.clone(),
            location: info.location.clone(),
        });
    }
    // The web view keeps its port across restarts too, so an open browser reconnects.
    let view_port = previous
        .as_ref()
        .and_then(|p| p.view_url.as_deref())
        .and_then(|u| u.rsplit(':').next()?.trim_end_matches('/').parse().ok())
        .unwrap_or(0);
    let view = rt.block_on(async {
        match crate::view::serve(root.to_path_buf(), id.clone(), view_port).await {
            Err(_) if view_port != 0 => crate::view::serve(root.to_path_buf(), id.clone(), 0).await,
            other => other,
        }
    });
    let view = view.map_err(io(&dir))?;
    // The CLI's channel listens before the record says this controller is up.
    crate::local_api::serve(root, id, realizing.clone()).map_err(Box::new)?;
    let parent = nix::unistd::getppid().as_raw();
    let rec = ControllerRecord {
        pid: std::process::id() as i32,
        supervisor_pid: is_controller(parent, id).then_some(parent),
        ca_file: tls.ca_pem_path.clone(),
        endpoints,
        view_url: Some(view.url),
        metrics_url: Some(view.metrics_url),
    };
    let path = record_path(&lab.dir);
    let text = serde_json::to_vec_pretty(&rec).expect("record serializes");
    crate::state::write_durable(&path, &text, 0o644).map_err(io(&path))?;
    eprintln!(
        "lab controller {} serving {} endpoint(s)",
        id,
        rec.endpoints.len()
    );
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(ControllerError::Spawn)?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(ControllerError::Spawn)?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok::<_, ControllerError>(())
    })?;
    // The record stays: a controller started later takes the same ports again.
    Ok(())
}
