//! The lab controller's local channel. While a controller runs, `hybridnet deploy`,
//! `lab status` and `vpn-connection …` are carried out by it, not by the CLI process: the CLI
//! and the Resource Manager endpoints then act through one process and one realization queue,
//! so they can neither disagree nor race. A Unix socket in the lab's `api/` directory (mode
//! 0600, root's CLI only) takes one JSON request line and answers with progress lines and one
//! result line.

use crate::deploy::DeployRequest;
use crate::lab::{Lab, LabError};
use crate::progress::Progress;
use crate::state::{LabDir, LabSelector};
use crate::LabId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Requests held open at once; more are refused (a stuck client cannot exhaust threads).
const MAX_CLIENTS: usize = 16;
/// Longest request line.
const MAX_REQUEST: u64 = 1 << 20;
/// How long a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the CLI asks of the controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum LocalRequest {
    /// `hybridnet deploy` (paths absolute: the controller's working directory is not the
    /// CLI's).
    #[serde(rename_all = "camelCase")]
    Deploy {
        /// Deployment name.
        name: String,
        /// Target site.
        site: String,
        /// Template file.
        template: PathBuf,
        /// Parameter file.
        parameters_file: Option<PathBuf>,
        /// Inline parameters.
        set: Map<String, Value>,
    },
    /// `lab status`.
    Status,
    /// `vpn-connection show` (without an explicit control socket).
    Connection {
        /// Site holding it.
        site: String,
        /// Connection name.
        name: String,
    },
    /// `vpn-connection list`.
    Connections {
        /// Site whose connections to list.
        site: String,
    },
    /// `vpn-connection device-config`: the rendered text (it may hold the shared key; only
    /// root's CLI can ask).
    #[serde(rename_all = "camelCase")]
    DeviceConfig {
        /// Site holding the connection.
        site: String,
        /// Connection name.
        name: String,
        /// Device vendor.
        vendor: String,
        /// The device's own address behind NAT.
        device_address: Option<Ipv4Addr>,
        /// With BGP: the networks the device announces (empty: the default).
        #[serde(default)]
        announce: Vec<ipnet::Ipv4Net>,
    },
    /// `vnet-gateway list-bgp-peer-status|list-learned-routes|list-advertised-routes`.
    GatewayBgp {
        /// Site holding the gateway.
        site: String,
        /// Gateway name.
        name: String,
        /// Which list.
        list: crate::bgp_view::BgpList,
        /// The peer (advertised routes, one peer's status).
        peer: Option<String>,
    },
}

impl LocalRequest {
    /// The request for a deployment, its paths made absolute against this process's working
    /// directory.
    pub fn deploy(req: &DeployRequest) -> LocalRequest {
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        LocalRequest::Deploy {
            name: req.name.clone(),
            site: req.site.clone(),
            template: abs(&req.template),
            parameters_file: req.parameters_file.as_deref().map(abs),
            set: req.set.clone(),
        }
    }
}

impl LocalRequest {
    /// The request in a few words for the controller's log (never a parameter value: those
    /// may be secrets).
    fn describe(&self) -> String {
        match self {
            LocalRequest::Deploy { name, site, .. } => format!("deploy {name} -> {site}"),
            LocalRequest::Status => "status".into(),
            LocalRequest::Connection { site, name } => format!("vpn-connection show {site}/{name}"),
            LocalRequest::Connections { site } => format!("vpn-connection list {site}"),
            LocalRequest::GatewayBgp {
                site, name, list, ..
            } => format!("vnet-gateway {list:?} {site}/{name}"),
            LocalRequest::DeviceConfig {
                site, name, vendor, ..
            } => {
                format!("vpn-connection device-config {site}/{name} ({vendor})")
            }
        }
    }
}

/// One line of an answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Reply {
    /// A progress line of a long operation.
    Progress(String),
    /// The result.
    Done(Value),
    /// Why the request failed (the error's message).
    Failed(String),
}

/// The channel's socket.
pub fn socket_path(dir: &LabDir) -> PathBuf {
    crate::controller::api_dir(dir).join("cli.sock")
}

/// Serves the channel of lab `id` on a thread of its own; `realizing` is held while a
/// deployment applies and realizes, as the Resource Manager endpoints hold it.
pub fn serve(root: &Path, id: &LabId, realizing: Arc<Mutex<()>>) -> Result<PathBuf, LabError> {
    let lab = Lab::open(root, &LabSelector::Id(id.clone()))?;
    let path = socket_path(&lab.dir);
    let io = |e: std::io::Error| {
        LabError::Controller(format!(
            "cannot serve the CLI's channel on {}: {e}",
            path.display()
        ))
    };
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(io)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    let root = root.to_path_buf();
    let id = id.clone();
    let clients = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("cli-channel".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                    clients.fetch_sub(1, Ordering::SeqCst);
                    let mut s = stream;
                    let _ = send(&mut s, &Reply::Failed("the lab controller is busy".into()));
                    continue;
                }
                let (root, id, realizing, done) =
                    (root.clone(), id.clone(), realizing.clone(), clients.clone());
                let spawned = std::thread::Builder::new()
                    .name("cli-request".into())
                    .spawn(move || {
                        handle(&root, &id, &realizing, stream);
                        done.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    clients.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })
        .map_err(io)?;
    Ok(path)
}

fn send(stream: &mut UnixStream, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).expect("reply serializes");
    line.push(b'\n');
    stream.write_all(&line)
}

fn handle(root: &Path, id: &LabId, realizing: &Mutex<()>, mut stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(REQUEST_TIMEOUT));
    let mut line = String::new();
    let read = match stream.try_clone() {
        Ok(s) => BufReader::new(s.take(MAX_REQUEST)).read_line(&mut line),
        Err(e) => Err(e),
    };
    let req = match read {
        Ok(_) => serde_json::from_str::<LocalRequest>(&line)
            .map_err(|e| format!("bad request to the lab controller: {e}")),
        Err(e) => Err(format!("reading the request: {e}")),
    };
    let mut out = stream.try_clone().ok();
    let mut progress_line = |l: &str| {
        // A client that went away does not stop the operation (as with the API).
        if let Some(s) = out.as_mut() {
            if send(s, &Reply::Progress(l.to_string())).is_err() {
                out = None;
            }
        }
    };
    let started = std::time::Instant::now();
    let (what, result) = match req {
        Ok(req) => (
            req.describe(),
            execute(root, id, realizing, req, &mut progress_line).map_err(|e| e.to_string()),
        ),
        Err(e) => ("unreadable request".to_string(), Err(e)),
    };
    // One line per CLI request in the controller's log, beside the API's request lines.
    eprintln!(
        "cli {what}: {} ({} ms)",
        match &result {
            Ok(_) => "done".to_string(),
            Err(e) => format!("failed: {e}"),
        },
        started.elapsed().as_millis()
    );
    let reply = match result {
        Ok(v) => Reply::Done(v),
        Err(e) => Reply::Failed(e),
    };
    let _ = send(&mut stream, &reply);
}

fn execute(
    root: &Path,
    id: &LabId,
    realizing: &Mutex<()>,
    req: LocalRequest,
    progress_line: &mut dyn FnMut(&str),
) -> Result<Value, LabError> {
    let lab = Lab::open(root, &LabSelector::Id(id.clone()))?;
    let json = |v: Result<Value, serde_json::Error>| {
        v.map_err(|e| LabError::Controller(format!("cannot encode the answer: {e}")))
    };
    match req {
        LocalRequest::Deploy {
            name,
            site,
            template,
            parameters_file,
            set,
        } => {
            let _one = realizing.lock().unwrap_or_else(|e| e.into_inner());
            let mut progress = Progress::new(progress_line);
            let report = lab.deploy(
                &DeployRequest {
                    name,
                    site,
                    template,
                    parameters_file,
                    set,
                },
                &mut progress,
            )?;
            json(serde_json::to_value(report))
        }
        LocalRequest::Status => json(serde_json::to_value(lab.status()?)),
        LocalRequest::Connection { site, name } => lab.connection_view(&site, &name, None),
        LocalRequest::Connections { site } => {
            json(serde_json::to_value(lab.connection_views(&site)?))
        }
        LocalRequest::GatewayBgp {
            site,
            name,
            list,
            peer,
        } => lab.gateway_bgp_list(&site, &name, list, peer.as_deref()),
        LocalRequest::DeviceConfig {
            site,
            name,
            vendor,
            device_address,
            announce,
        } => Ok(Value::String(lab.device_config(
            &site,
            &name,
            &vendor,
            device_address,
            &announce,
        )?)),
    }
}

/// The CLI's end of the channel: a running controller of the lab that answers on it.
pub struct LocalClient {
    stream: UnixStream,
    pid: i32,
    log: PathBuf,
}

impl LocalClient {
    /// The lab's controller, when one runs and its channel answers (a controller of an older
    /// build has none: the CLI then acts itself, under the lab lock).
    pub fn connect(dir: &LabDir) -> Option<LocalClient> {
        let rec = crate::controller::running(dir)?;
        let stream = UnixStream::connect(socket_path(dir)).ok()?;
        Some(LocalClient {
            stream,
            pid: rec.pid,
            log: crate::controller::api_dir(dir).join("controller.log"),
        })
    }

    /// The controller's pid (for "done by the lab controller (pid N)").
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `req` and waits for its result; progress lines go to `on_progress`.
    pub fn call(
        self,
        req: &LocalRequest,
        on_progress: &mut dyn FnMut(&str),
    ) -> Result<Value, LabError> {
        self.exchange(req, on_progress).map_err(|f| match f {
            CallFailure::Ended => self.ended(),
            CallFailure::Error(e) => e,
        })
    }

    /// A request that only reads, asked of the lab's controller: when the controller ends
    /// before answering (killed, and being restarted by its supervisor), it is asked again of
    /// the next one. `None` when no controller runs (any more): the caller reads the lab
    /// itself. Only reads are repeated: a change may have been made before the end.
    pub fn ask(dir: &LabDir, req: &LocalRequest) -> Option<Result<Value, LabError>> {
        const ATTEMPTS: usize = 5;
        for attempt in 1.. {
            let client = LocalClient::connect(dir)?;
            match client.exchange(req, &mut |_| {}) {
                Ok(v) => return Some(Ok(v)),
                Err(CallFailure::Ended) if attempt < ATTEMPTS => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(CallFailure::Ended) => return Some(Err(client.ended())),
                Err(CallFailure::Error(e)) => return Some(Err(e)),
            }
        }
        None
    }

    fn ended(&self) -> LabError {
        LabError::Controller(format!(
            "the lab controller (pid {}) ended before answering (its log: {})",
            self.pid,
            self.log.display()
        ))
    }

    fn exchange(
        &self,
        req: &LocalRequest,
        on_progress: &mut dyn FnMut(&str),
    ) -> Result<Value, CallFailure> {
        let mut stream = &self.stream;
        let mut line = serde_json::to_vec(req).expect("request serializes");
        line.push(b'\n');
        stream.write_all(&line).map_err(|_| CallFailure::Ended)?;
        for line in BufReader::new(stream).lines() {
            let line = line.map_err(|_| CallFailure::Ended)?;
            match serde_json::from_str::<Reply>(&line) {
                Ok(Reply::Progress(p)) => on_progress(&p),
                Ok(Reply::Done(v)) => return Ok(v),
                Ok(Reply::Failed(e)) => return Err(CallFailure::Error(LabError::Controller(e))),
                Err(e) => {
                    return Err(CallFailure::Error(LabError::Controller(format!(
                        "the lab controller (pid {}) answered something unreadable: {e}",
                        self.pid
                    ))))
                }
            }
        }
        Err(CallFailure::Ended)
    }
}

/// How a call to the controller failed: the controller went away mid-call, or it answered
/// with an error.
enum CallFailure {
    Ended,
    Error(LabError),
}
