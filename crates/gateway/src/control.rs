//! The control socket's server side, kept off the data path: a thread of its own accepts
//! clients, checks who they are, reads their one-line command with a timeout and hands the
//! command to the event loop through a queue and an eventfd. The loop only answers (a status
//! snapshot, a reload) and never waits on a client, so idle or slow clients cannot add
//! latency to tunnels. The socket is created with mode 0600 (0660 with a control group)
//! whatever the umask, and a client must be root, the gateway's own user or in that group.

use crate::core::ReloadError;
use crate::receiver::EventFd;
use crate::status::CaptureAnswer;
use crate::status::{GatewayStatus, ReloadAnswer, ReloadReport};
use crate::wait::ready;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials, UnixCredentials};
use nix::unistd::{geteuid, Group};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

/// Clients served at the same time; more are answered "busy" and closed at once.
pub const MAX_CLIENTS: usize = 64;
/// How long a client may take to send its command.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client may take to read the answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client waits for the event loop to answer a status request.
const STATUS_WAIT: Duration = Duration::from_secs(5);
/// How long a client waits for a reload (connections are torn down and set up).
const RELOAD_WAIT: Duration = Duration::from_secs(20);
/// Commands queued for the event loop at most (each client has one at a time).
const QUEUE: usize = MAX_CLIENTS * 2;

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another gateway answers on the path.
    #[error("another gateway is serving the control socket {0}")]
    InUse(PathBuf),
    /// Creating, binding or moving the socket failed.
    #[error("control socket {path}: {cause}")]
    Io {
        /// Where it is.
        path: PathBuf,
        /// The underlying error.
        cause: io::Error,
    },
    /// The configured control group does not exist.
    #[error("control group {0:?} does not exist")]
    NoSuchGroup(String),
    /// The accepting thread could not be started.
    #[error("control thread: {0}")]
    Thread(io::Error),
}

/// A command that only the event loop can answer; the reply goes back on the channel.
pub enum ControlRequest {
    /// `status`: a snapshot of the gateway.
    Status(SyncSender<GatewayStatus>),
    /// `reload`: re-read the config file and apply it.
    Reload(SyncSender<Result<ReloadReport, ReloadError>>),
    /// `capture-start {json}`: start a packet capture.
    CaptureStart(
        Box<crate::capture::CaptureRequest>,
        SyncSender<Result<(), String>>,
    ),
    /// `capture-stop`: stop it; what it wrote.
    CaptureStop(SyncSender<Option<crate::capture::CaptureReport>>),
    /// `esp-sa`: the Child SAs with their keys, as Wireshark's `esp_sa` lines.
    EspSa(SyncSender<Vec<String>>),
}

/// Who may use the socket besides root and the gateway's own user.
#[derive(Debug, Clone, Copy, Default)]
pub struct Access {
    /// A group whose members may connect (the socket is then 0660 and owned by it).
    pub group: Option<libc::gid_t>,
}

impl Access {
    /// Looks up a group name (the `control_group` key).
    pub fn with_group(name: Option<&str>) -> Result<Access, ControlError> {
        let Some(name) = name else {
            return Ok(Access::default());
        };
        // getgrnam_r; a name with a NUL byte is no group either
        match Group::from_name(name) {
            Ok(Some(g)) => Ok(Access {
                group: Some(g.gid.as_raw()),
            }),
            _ => Err(ControlError::NoSuchGroup(name.into())),
        }
    }

    /// Whether the process at the other end of `stream` may use the socket.
    fn allows(&self, stream: &UnixStream) -> bool {
        let Some(cred) = peer_credentials(stream.as_fd()) else {
            return false;
        };
        let me = geteuid().as_raw();
        if cred.uid() == 0 || cred.uid() == me {
            return true;
        }
        match self.group {
            Some(g) => cred.gid() == g || supplementary_groups(cred.pid()).contains(&g),
            None => false,
        }
    }
}

/// The peer's pid, uid and gid (SO_PEERCRED: what it was when it connected, not what it says).
fn peer_credentials(fd: BorrowedFd<'_>) -> Option<UnixCredentials> {
    getsockopt(&fd, PeerCredentials).ok()
}

/// The supplementary groups of a process, from /proc.
fn supplementary_groups(pid: libc::pid_t) -> Vec<libc::gid_t> {
    procfs::process::Process::new(pid)
        .and_then(|p| p.status())
        .map(|status| status.groups)
        .unwrap_or_default()
}

/// Counters of the control socket, for status.
#[derive(Debug, Default)]
pub struct ControlCounters {
    /// Clients refused by their credentials.
    pub refused: AtomicU64,
    /// Clients turned away because [`MAX_CLIENTS`] were being served.
    pub busy: AtomicU64,
}

/// The listening side: the accepting thread and the queue the event loop drains.
pub struct ControlServer {
    path: PathBuf,
    requests: Receiver<ControlRequest>,
    wake: Arc<EventFd>,
    stop: Arc<EventFd>,
    counters: Arc<ControlCounters>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ControlServer {
    /// Binds the socket (replacing a stale one; refusing if a live gateway answers there)
    /// and starts the thread that serves it.
    pub fn bind(path: &Path, access: Access) -> Result<Self, ControlError> {
        let listener = bind_private(path, access)?;
        let io = |cause| ControlError::Io {
            path: path.into(),
            cause,
        };
        listener.set_nonblocking(true).map_err(io)?;
        let wake = Arc::new(EventFd::new().map_err(io)?);
        let stop = Arc::new(EventFd::new().map_err(io)?);
        let counters = Arc::new(ControlCounters::default());
        let (tx, requests) = mpsc::sync_channel(QUEUE);
        let accept = Acceptor {
            listener,
            access,
            queue: tx,
            wake: Arc::clone(&wake),
            stop: Arc::clone(&stop),
            counters: Arc::clone(&counters),
            active: Arc::new(AtomicUsize::new(0)),
        };
        let thread = std::thread::Builder::new()
            .name("hn-control".into())
            .spawn(move || accept.run())
            .map_err(ControlError::Thread)?;
        Ok(ControlServer {
            path: path.into(),
            requests,
            wake,
            stop,
            counters,
            thread: Some(thread),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Readable when commands wait for the event loop.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// Commands waiting for the event loop (the eventfd is reset first, so none is missed).
    pub fn pending(&self) -> Vec<ControlRequest> {
        self.wake.clear();
        self.requests.try_iter().collect()
    }

    /// Clients refused by credentials, and turned away as busy.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.counters.refused.load(Ordering::Relaxed),
            self.counters.busy.load(Ordering::Relaxed),
        )
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.signal();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Creates the socket inside a fresh directory only we can enter, sets its mode, then moves
/// it into place: nobody can connect in between, whatever the umask.
fn bind_private(path: &Path, access: Access) -> Result<UnixListener, ControlError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |cause| ControlError::Io { path: p, cause }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(ControlError::InUse(path.into()));
        }
        std::fs::remove_file(path).map_err(io(path))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "control".into());
    let private = dir.join(format!(".{name}.{}.new", std::process::id()));
    let _ = std::fs::remove_file(private.join("s"));
    let _ = std::fs::remove_dir(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io(&private))?;
    let staged = private.join("s");
    let result = (|| {
        let listener = UnixListener::bind(&staged).map_err(io(&staged))?;
        let mode = if access.group.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
            .map_err(io(&staged))?;
        if let Some(g) = access.group {
            std::os::unix::fs::chown(&staged, None, Some(g)).map_err(io(&staged))?;
        }
        std::fs::rename(&staged, path).map_err(io(path))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    result
}

/// The accepting thread's state.
struct Acceptor {
    listener: UnixListener,
    access: Access,
    queue: SyncSender<ControlRequest>,
    wake: Arc<EventFd>,
    stop: Arc<EventFd>,
    counters: Arc<ControlCounters>,
    active: Arc<AtomicUsize>,
}

impl Acceptor {
    fn run(self) {
        loop {
            let mut fds = [
                PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.stop.as_fd(), PollFlags::POLLIN),
            ];
            if let Err(e) = nix::poll::poll(&mut fds, PollTimeout::NONE) {
                if e == nix::errno::Errno::EINTR {
                    continue;
                }
                tracing::error!("control socket poll: {}", io::Error::from(e));
                return;
            }
            if ready(&fds[1]) {
                return;
            }
            loop {
                let stream = match self.listener.accept() {
                    Ok((s, _)) => s,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::debug!("control socket accept: {e}");
                        break;
                    }
                };
                self.admit(stream);
            }
        }
    }

    fn admit(&self, stream: UnixStream) {
        if !self.access.allows(&stream) {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            let _ = (&stream).write_all(b"{\"error\":\"permission denied\"}\n");
            return;
        }
        if self.active.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
            self.active.fetch_sub(1, Ordering::AcqRel);
            self.counters.busy.fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_nonblocking(true);
            let _ = (&stream).write_all(b"{\"error\":\"busy: too many control clients\"}\n");
            return;
        }
        let client = Client {
            queue: self.queue.clone(),
            wake: Arc::clone(&self.wake),
            active: Arc::clone(&self.active),
        };
        let spawned = std::thread::Builder::new()
            .name("hn-control-client".into())
            .spawn(move || client.serve(stream));
        if spawned.is_err() {
            self.active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// One client's thread: reads the command, asks the event loop, writes the answer.
struct Client {
    queue: SyncSender<ControlRequest>,
    wake: Arc<EventFd>,
    active: Arc<AtomicUsize>,
}

impl Client {
    fn serve(self, stream: UnixStream) {
        if let Err(e) = self.exchange(&stream) {
            tracing::debug!("control client: {e}");
        }
        self.active.fetch_sub(1, Ordering::AcqRel);
    }

    fn exchange(&self, stream: &UnixStream) -> io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let mut line = String::new();
        BufReader::new(stream)
            .take(16 * 1024)
            .read_line(&mut line)?;
        let mut w = stream;
        let doc = match line.trim() {
            "status" | "" => {
                let (tx, rx) = mpsc::sync_channel(1);
                self.ask(ControlRequest::Status(tx))?;
                let st = rx
                    .recv_timeout(STATUS_WAIT)
                    .map_err(|_| io::Error::other("the event loop did not answer"))?;
                serde_json::to_vec_pretty(&st).map_err(io::Error::other)?
            }
            "reload" => {
                let (tx, rx) = mpsc::sync_channel(1);
                self.ask(ControlRequest::Reload(tx))?;
                let outcome = rx
                    .recv_timeout(RELOAD_WAIT)
                    .map_err(|_| io::Error::other("the event loop did not answer"))?;
                let answer = match outcome {
                    Ok(r) => ReloadAnswer::Reloaded(r),
                    Err(e) => ReloadAnswer::Error(e.to_string()),
                };
                serde_json::to_vec(&answer).map_err(io::Error::other)?
            }
            "capture-stop" => {
                let (tx, rx) = mpsc::sync_channel(1);
                self.ask(ControlRequest::CaptureStop(tx))?;
                let r = rx
                    .recv_timeout(STATUS_WAIT)
                    .map_err(|_| io::Error::other("the event loop did not answer"))?;
                serde_json::to_vec(&CaptureAnswer::Report(r)).map_err(io::Error::other)?
            }
            "esp-sa" => {
                let (tx, rx) = mpsc::sync_channel(1);
                self.ask(ControlRequest::EspSa(tx))?;
                let lines = rx
                    .recv_timeout(STATUS_WAIT)
                    .map_err(|_| io::Error::other("the event loop did not answer"))?;
                serde_json::to_vec(&lines).map_err(io::Error::other)?
            }
            cmd if cmd.starts_with("capture-start ") => {
                let answer = match serde_json::from_str::<crate::capture::CaptureRequest>(
                    &cmd["capture-start ".len()..],
                ) {
                    Err(e) => CaptureAnswer::Error(format!("capture request: {e}")),
                    Ok(req) => {
                        let (tx, rx) = mpsc::sync_channel(1);
                        self.ask(ControlRequest::CaptureStart(Box::new(req), tx))?;
                        match rx
                            .recv_timeout(STATUS_WAIT)
                            .map_err(|_| io::Error::other("the event loop did not answer"))?
                        {
                            Ok(()) => CaptureAnswer::Report(None),
                            Err(e) => CaptureAnswer::Error(e),
                        }
                    }
                };
                serde_json::to_vec(&answer).map_err(io::Error::other)?
            }
            other => format!(
                "{{\"error\":\"unknown command {:?}\"}}",
                other.chars().take(32).collect::<String>()
            )
            .into_bytes(),
        };
        w.write_all(&doc)?;
        w.write_all(b"\n")
    }

    fn ask(&self, req: ControlRequest) -> io::Result<()> {
        self.queue
            .try_send(req)
            .map_err(|_| io::Error::other("control queue full"))?;
        self.wake.signal();
        Ok(())
    }
}
