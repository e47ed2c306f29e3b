//! The local status interface: a unix stream socket; a client writes `status\n` and reads one
//! JSON document. The same types render the human table of `hybridnet gateway status`.

use crate::datapath::{ChildSaReport, DropCounters, Traffic};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything `hybridnet gateway status --json` prints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GatewayStatus {
    /// Process id of the gateway.
    pub pid: u32,
    /// The address IKE and ESP use.
    pub local_address: String,
    /// TUN interface name.
    pub tun: String,
    /// TUN MTU in use.
    pub tun_mtu: u16,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// One entry per configured connection, in config order.
    pub connections: Vec<ConnectionReport>,
    /// Drops that belong to no connection (unknown SPI, no route, malformed).
    pub drops: DropCounters,
    /// IKE datagrams the IKE layer dropped (malformed, unknown SPI, over the half-open
    /// limit, …), including those that matched no connection.
    pub ike_dropped: u64,
    /// COOKIE challenges sent (RFC 7296 §2.6): non-zero means someone flooded IKE_SA_INIT.
    #[serde(default)]
    pub cookies_sent: u64,
    /// Half-open IKE SAs (IKE_SA_INIT answered, IKE_AUTH not yet seen) right now.
    #[serde(default)]
    pub half_open: u64,
    /// Times the configuration was reloaded since start.
    #[serde(default)]
    pub reloads: u64,
    /// Data-path threads: 1 (both directions in the main loop) or 2 (a receive thread).
    #[serde(default)]
    pub datapath_threads: u8,
    /// Busy poll after work, in microseconds (0 = off).
    #[serde(default)]
    pub busy_poll_us: u64,
}

/// One connection's state and counters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectionReport {
    /// Name from the config.
    pub name: String,
    /// Configured peer (`%any` for responder-only).
    pub remote_address: String,
    /// "connecting", "established" or "down".
    pub state: String,
    /// Negotiated IKE algorithms, e.g. `AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384`.
    pub ike_algorithms: Option<String>,
    /// Algorithms of the active Child SA.
    pub esp_algorithms: Option<String>,
    /// IKE SA SPIs (16 hex digits each; zero when none).
    pub ike_spi_i: String,
    /// Responder's IKE SPI.
    pub ike_spi_r: String,
    /// Seconds since the IKE SA was established.
    pub established_secs: Option<u64>,
    /// The installed Child SAs, newest first.
    pub child_sas: Vec<ChildSaReport>,
    /// Decrypted traffic over the connection's lifetime.
    pub inbound: Traffic,
    /// Encrypted traffic over the connection's lifetime.
    pub outbound: Traffic,
    /// Dropped packets by reason.
    pub drops: DropCounters,
    /// The last failure (e.g. `AUTHENTICATION_FAILED: …`, `NO_PROPOSAL_CHOSEN: …`).
    pub last_error: Option<String>,
    /// NAT detected in front of us (RFC 7296 §2.23): we send NAT keepalives.
    #[serde(default)]
    pub nat_local: bool,
    /// NAT detected in front of the peer (or a peer that fakes it to force UDP encapsulation).
    #[serde(default)]
    pub nat_remote: bool,
    /// Where IKE and ESP currently go (`address:port`; follows a peer whose NAT mapping or
    /// address changed); `None` without an IKE SA.
    #[serde(default)]
    pub peer: Option<String>,
    /// NAT keepalives (RFC 3948 §2.3) sent to the peer.
    #[serde(default)]
    pub keepalives_sent: u64,
    /// IKE_SA_INIT sent -> first Child SA installed (ms), for an initiating connection since it
    /// was started or reloaded; what the benchmark compares with strongSwan's setup time.
    #[serde(default)]
    pub setup_ms: Option<u64>,
    /// The same in microseconds: a release build on one host sets up in well under 1 ms.
    #[serde(default)]
    pub setup_us: Option<u64>,
}

/// Why the status could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Nothing listens on the socket (gateway not running, or another path).
    #[error("cannot connect to the gateway's control socket {path}: {cause} (is `hybridnet gateway run` running?)")]
    Connect { path: PathBuf, cause: io::Error },
    /// The exchange failed midway.
    #[error("control socket {path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
    /// The gateway answered something that is not a status document.
    #[error("control socket {path} answered with invalid JSON: {cause}")]
    Json {
        path: PathBuf,
        cause: serde_json::Error,
    },
    /// The gateway refused the reload (its new config is invalid; nothing was changed).
    #[error("gateway at {path} did not reload: {reason}")]
    Refused { path: PathBuf, reason: String },
}

/// What a reload changed, by connection name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReloadReport {
    /// New connections, now being set up.
    pub added: Vec<String>,
    /// Connections gone from the config: their SAs were deleted.
    pub removed: Vec<String>,
    /// Changed connections: old SAs deleted, set up anew with the new settings.
    pub replaced: Vec<String>,
    /// Connections left alone, SAs included.
    pub unchanged: Vec<String>,
}

/// The control socket's answer to `reload`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReloadAnswer {
    Reloaded(ReloadReport),
    Error(String),
}

/// Asks a running gateway to re-read its config file and apply the per-connection changes.
pub fn reload(path: &Path) -> Result<ReloadReport, StatusError> {
    let raw = request(path, "reload", Duration::from_secs(20))?;
    let answer: ReloadAnswer = serde_json::from_str(&raw).map_err(|cause| StatusError::Json {
        path: path.into(),
        cause,
    })?;
    match answer {
        ReloadAnswer::Reloaded(r) => Ok(r),
        ReloadAnswer::Error(reason) => Err(StatusError::Refused {
            path: path.into(),
            reason,
        }),
    }
}

/// Asks a running gateway for its status.
pub fn query(path: &Path) -> Result<GatewayStatus, StatusError> {
    let raw = query_raw(path)?;
    serde_json::from_str(&raw).map_err(|cause| StatusError::Json {
        path: path.into(),
        cause,
    })
}

/// Asks a running gateway for its status and returns the JSON text unparsed.
pub fn query_raw(path: &Path) -> Result<String, StatusError> {
    request(path, "status", Duration::from_secs(5))
}

fn request(path: &Path, command: &str, timeout: Duration) -> Result<String, StatusError> {
    let io_err = |cause| StatusError::Io {
        path: path.into(),
        cause,
    };
    let mut s = UnixStream::connect(path).map_err(|cause| StatusError::Connect {
        path: path.into(),
        cause,
    })?;
    s.set_read_timeout(Some(timeout)).map_err(io_err)?;
    s.write_all(format!("{command}\n").as_bytes())
        .map_err(io_err)?;
    s.shutdown(std::net::Shutdown::Write).map_err(io_err)?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(io_err)?;
    Ok(out)
}

/// The listening side, owned by the gateway's event loop.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Binds the socket (replacing a stale one; refusing if a live gateway answers there).
    pub fn bind(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "another gateway is serving the control socket {}",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("bind control socket {}: {e}", path.display()),
            )
        })?;
        listener.set_nonblocking(true)?;
        Ok(ControlServer {
            listener,
            path: path.into(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The listening descriptor, for poll.
    pub fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.listener.as_raw_fd()
    }

    /// Serves every pending client with `status` (short timeouts, so a stuck client cannot
    /// stall the data path for long); `reload` requests are handed back for the event loop
    /// to carry out and answer.
    pub fn serve_pending(&self, status: impl Fn() -> GatewayStatus) -> Vec<PendingReload> {
        let mut reloads = Vec::new();
        loop {
            let (stream, _) = match self.listener.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return reloads,
                Err(e) => {
                    tracing::warn!("control socket accept failed: {e}");
                    return reloads;
                }
            };
            match serve_one(stream, &status) {
                Ok(Some(r)) => reloads.push(r),
                Ok(None) => {}
                Err(e) => tracing::debug!("control client: {e}"),
            }
        }
    }
}

/// A `reload` request waiting for the event loop's answer.
pub struct PendingReload {
    stream: UnixStream,
}

impl PendingReload {
    /// Sends the outcome to the client that asked.
    pub fn answer(self, outcome: Result<ReloadReport, String>) {
        let answer = match outcome {
            Ok(r) => ReloadAnswer::Reloaded(r),
            Err(e) => ReloadAnswer::Error(e),
        };
        let mut w = &self.stream;
        if let Ok(mut doc) = serde_json::to_vec(&answer) {
            doc.push(b'\n');
            if let Err(e) = w.write_all(&doc) {
                tracing::debug!("control client (reload): {e}");
            }
        }
    }
}

fn serve_one(
    stream: UnixStream,
    status: &impl Fn() -> GatewayStatus,
) -> io::Result<Option<PendingReload>> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    stream.set_write_timeout(Some(Duration::from_millis(500)))?;
    let mut line = String::new();
    BufReader::new(&stream).take(256).read_line(&mut line)?;
    let mut w = &stream;
    match line.trim() {
        "status" | "" => {
            let mut doc = serde_json::to_vec_pretty(&status()).map_err(io::Error::other)?;
            doc.push(b'\n');
            w.write_all(&doc).map(|_| None)
        }
        "reload" => Ok(Some(PendingReload { stream })),
        other => w
            .write_all(
                format!(
                    "{{\"error\":\"unknown command {:?}\"}}\n",
                    other.chars().take(32).collect::<String>()
                )
                .as_bytes(),
            )
            .map(|_| None),
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The default control socket for a config file: `/run/hybridnet/<stem>-<hash>.sock`
/// (`$XDG_RUNTIME_DIR/hybridnet/…` when not root), the hash taken over the absolute path so
/// two configs with the same file name do not collide.
pub fn default_control_path(config: &Path) -> PathBuf {
    let abs = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in abs.as_os_str().as_encoded_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    let stem = abs
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "gateway".into());
    // SAFETY: geteuid never fails.
    let root = unsafe { libc::geteuid() } == 0;
    let base = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !root => PathBuf::from(d),
        _ => PathBuf::from("/run"),
    };
    base.join("hybridnet")
        .join(format!("{stem}-{:08x}.sock", h as u32))
}

/// The human-readable table.
pub fn render(s: &GatewayStatus) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "gateway pid {} on {} (tun {} mtu {}), up {}s",
        s.pid, s.local_address, s.tun, s.tun_mtu, s.uptime_secs
    );
    for c in &s.connections {
        let _ = writeln!(o, "\n{}: {} peer {}", c.name, c.state, c.remote_address);
        if c.peer.is_some() || c.nat_local || c.nat_remote {
            let _ = writeln!(
                o,
                "  NAT  local {} remote {}{}{}",
                if c.nat_local { "yes" } else { "no" },
                if c.nat_remote { "yes" } else { "no" },
                c.peer
                    .as_ref()
                    .map(|p| format!("  peer at {p}"))
                    .unwrap_or_default(),
                if c.keepalives_sent > 0 {
                    format!("  keepalives sent {}", c.keepalives_sent)
                } else {
                    String::new()
                }
            );
        }
        if let Some(a) = &c.ike_algorithms {
            let _ = writeln!(
                o,
                "  IKE  {a}  SPIs {}_i {}_r{}",
                c.ike_spi_i,
                c.ike_spi_r,
                c.established_secs
                    .map(|e| format!("  established {e}s ago"))
                    .unwrap_or_default()
            );
        }
        for ch in &c.child_sas {
            let _ = writeln!(
                o,
                "  ESP  {}  SPIs {}_i {}_o{}  {} === {}",
                ch.algorithms,
                ch.spi_in,
                ch.spi_out,
                if ch.active { "" } else { " (rekeyed)" },
                ch.local_ts.join(","),
                ch.remote_ts.join(",")
            );
            let _ = writeln!(
                o,
                "       in {} bytes / {} packets, out {} bytes / {} packets, {}s old",
                ch.inbound.bytes,
                ch.inbound.packets,
                ch.outbound.bytes,
                ch.outbound.packets,
                ch.age_secs
            );
        }
        let _ = writeln!(
            o,
            "  total in {} bytes / {} packets, out {} bytes / {} packets",
            c.inbound.bytes, c.inbound.packets, c.outbound.bytes, c.outbound.packets
        );
        if c.drops.total() > 0 {
            let _ = writeln!(o, "  drops {}", drops_line(&c.drops));
        }
        if let Some(e) = &c.last_error {
            let _ = writeln!(o, "  last error: {e}");
        }
    }
    if s.drops.total() > 0 || s.ike_dropped > 0 {
        let _ = writeln!(
            o,
            "\nunattributed drops: {} ike_dropped={}",
            drops_line(&s.drops),
            s.ike_dropped
        );
    }
    let _ = writeln!(
        o,
        "\nIKE: half-open {} cookies sent {} datagrams dropped {}{}",
        s.half_open,
        s.cookies_sent,
        s.ike_dropped,
        if s.reloads > 0 {
            format!("  config reloaded {} time(s)", s.reloads)
        } else {
            String::new()
        }
    );
    o
}

fn drops_line(d: &DropCounters) -> String {
    let v = serde_json::to_value(d).unwrap_or_default();
    let mut parts = vec![];
    if let serde_json::Value::Object(m) = v {
        for (k, n) in m {
            if n.as_u64().unwrap_or(0) > 0 {
                parts.push(format!("{k}={n}"));
            }
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GatewayStatus {
        GatewayStatus {
            pid: 42,
            local_address: "198.51.100.1".into(),
            tun: "hn-gw0".into(),
            tun_mtu: 1438,
            uptime_secs: 3,
            connections: vec![ConnectionReport {
                name: "site-b".into(),
                remote_address: "198.51.100.2".into(),
                state: "established".into(),
                ike_algorithms: Some("AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384".into()),
                esp_algorithms: Some("AES_GCM_16-256".into()),
                ike_spi_i: "0123456789abcdef".into(),
                ike_spi_r: "fedcba9876543210".into(),
                established_secs: Some(2),
                child_sas: vec![ChildSaReport {
                    spi_in: "c1a2b3c4".into(),
                    spi_out: "c5d6e7f8".into(),
                    algorithms: "AES_GCM_16-256".into(),
                    peer: "198.51.100.2:4500".into(),
                    local_ts: vec!["10.1.0.0/16".into()],
                    remote_ts: vec!["10.2.0.0/16".into()],
                    inbound: Traffic {
                        bytes: 840,
                        packets: 10,
                    },
                    outbound: Traffic {
                        bytes: 420,
                        packets: 5,
                    },
                    age_secs: 2,
                    active: true,
                }],
                inbound: Traffic {
                    bytes: 840,
                    packets: 10,
                },
                outbound: Traffic {
                    bytes: 420,
                    packets: 5,
                },
                drops: DropCounters {
                    replayed: 3,
                    ..Default::default()
                },
                last_error: Some("AUTHENTICATION_FAILED: test".into()),
                nat_local: true,
                nat_remote: false,
                peer: Some("198.51.100.2:4500".into()),
                keepalives_sent: 7,
                setup_ms: Some(3),
                setup_us: Some(3_250),
            }],
            drops: DropCounters::default(),
            ike_dropped: 0,
            cookies_sent: 5,
            half_open: 2,
            reloads: 1,
            datapath_threads: 2,
            busy_poll_us: 100,
        }
    }

    #[test]
    fn control_socket_serves_json_and_table() {
        let dir = std::env::temp_dir().join(format!("hn-gw-status-{}", std::process::id()));
        let path = dir.join("gw.sock");
        let server = ControlServer::bind(&path).unwrap();
        assert!(
            ControlServer::bind(&path).is_err(),
            "a second gateway must not steal a live socket"
        );
        let want = sample();
        let w2 = want.clone();
        let t = std::thread::spawn(move || {
            for _ in 0..200 {
                server.serve_pending(|| w2.clone());
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let got = query(&path).unwrap();
        assert_eq!(got, want);
        let table = render(&got);
        assert!(
            table.contains("site-b: established")
                && table.contains("c1a2b3c4_i c5d6e7f8_o")
                && table.contains("replayed=3"),
            "{table}"
        );
        assert!(table.contains("AUTHENTICATION_FAILED"));
        assert!(
            table
                .contains("NAT  local yes remote no  peer at 198.51.100.2:4500  keepalives sent 7")
                && table.contains("half-open 2 cookies sent 5"),
            "{table}"
        );
        t.join().unwrap();
        assert!(!path.exists(), "socket removed when the server drops");
        assert!(matches!(query(&path), Err(StatusError::Connect { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reload_requests_go_to_the_loop_and_refusals_come_back_as_errors() {
        let dir = std::env::temp_dir().join(format!("hn-gw-reload-{}", std::process::id()));
        let path = dir.join("gw.sock");
        let server = ControlServer::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let mut answered = 0;
            for _ in 0..400 {
                for r in server.serve_pending(sample) {
                    answered += 1;
                    r.answer(if answered == 1 {
                        Ok(ReloadReport {
                            replaced: vec!["site-b".into()],
                            ..Default::default()
                        })
                    } else {
                        Err("config line 3: bad address".into())
                    });
                }
                if answered == 2 {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let r = reload(&path).unwrap();
        assert_eq!(r.replaced, vec!["site-b".to_string()]);
        let e = reload(&path).unwrap_err();
        assert!(
            matches!(&e, StatusError::Refused { reason, .. } if reason.contains("bad address")),
            "{e}"
        );
        t.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn default_path_depends_on_the_config_path() {
        let a = default_control_path(Path::new("/etc/hybridnet/a/gw.toml"));
        let b = default_control_path(Path::new("/etc/hybridnet/b/gw.toml"));
        assert_ne!(a, b);
        assert!(a.file_name().unwrap().to_string_lossy().starts_with("gw-"));
    }
}
