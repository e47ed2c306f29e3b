//! The local status interface: a unix stream socket; a client writes `status\n` and reads one
//! JSON document. The same types render the human table of `hybridnet gateway status`.

use crate::datapath::{ChildSaReport, DropCounters, Traffic};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
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
    /// Who places the data-path threads on CPUs: `adaptive` or `kernel`.
    #[serde(default)]
    pub cpu_placement: String,
    /// IKE datagrams dropped, by cause (`unknown_spi`, `integrity`, `malformed`, …).
    #[serde(default)]
    pub ike_drops: std::collections::BTreeMap<String, u64>,
    /// Log lines left out by the per-cause log budget, by cause.
    #[serde(default)]
    pub log_suppressed: std::collections::BTreeMap<String, u64>,
    /// Control clients refused by their credentials.
    #[serde(default)]
    pub control_refused: u64,
    /// Control clients turned away because too many were being served.
    #[serde(default)]
    pub control_busy: u64,
    /// The BGP speaker, when the gateway runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<crate::bgp_report::BgpReport>,
    /// The routes the gateway keeps in its VNet's router, when it keeps any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnet_routes: Option<VnetRoutesReport>,
    /// The packet capture running now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<crate::capture::CaptureReport>,
    /// Packets per system call on the data path, by bucket.
    #[serde(default)]
    pub batches: BatchReport,
}

/// How many TUN reads and UDP receives took how many packets (`1`, `2-4`, …, `65+`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BatchReport {
    /// Passes over the TUN device (send direction), by packets read.
    pub tun_read: Vec<(String, u64)>,
    /// Receive calls on port 4500, by datagrams returned.
    pub udp_recv: Vec<(String, u64)>,
    /// Writes to the TUN device (receive direction), by packets carried (coalesced TCP
    /// segments or UDP datagrams).
    #[serde(default)]
    pub tun_write: Vec<(String, u64)>,
}

/// The prefixes the VNet router sends to this gateway because the gateway said so.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VnetRoutesReport {
    /// The prefixes.
    pub routes: Vec<String>,
    /// Why the router did not take them, if it did not.
    pub error: Option<String>,
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
    /// Negotiations that failed before anything was authenticated (a refused IKE_SA_INIT,
    /// an error answer to ours): anyone on the path can cause them, so they are only counted.
    #[serde(default)]
    pub failed_attempts: u64,
    /// The last such failure.
    #[serde(default)]
    pub last_failed_attempt: Option<String>,
    /// Milliseconds until a connection that is down tries again.
    #[serde(default)]
    pub retry_in_ms: Option<u64>,
    /// Times it went down in a row since it was last up (the back-off grows with them).
    #[serde(default)]
    pub consecutive_failures: u32,
    /// The peer narrowed the traffic selectors and part of ours is not tunneled: both
    /// selector sets and what is left out (traffic there is dropped as `uncovered`).
    #[serde(default)]
    pub selector_warning: Option<String>,
    /// IKE work done on it by kind (`ike_sa_established`, `child_sa_installed`,
    /// `child_sa_deleted`) and failures by cause (`down: …`, `failed attempt: …`).
    #[serde(default)]
    pub outcomes: std::collections::BTreeMap<String, u64>,
}

/// Why the status could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Nothing listens on the socket (gateway not running, or another path).
    #[error("cannot connect to the gateway's control socket {path}: {cause} (is `hybridnet gateway run` running?)")]
    Connect {
        /// Where it is.
        path: PathBuf,
        /// The underlying error.
        cause: io::Error,
    },
    /// The exchange failed midway.
    #[error("control socket {path}: {cause}")]
    Io {
        /// Where it is.
        path: PathBuf,
        /// The underlying error.
        cause: io::Error,
    },
    /// The gateway answered something that is not a status document.
    #[error("control socket {path} answered with invalid JSON: {cause}")]
    Json {
        /// Where it is.
        path: PathBuf,
        /// The underlying error.
        cause: serde_json::Error,
    },
    /// The gateway refused the reload (its new config is invalid; nothing was changed).
    #[error("gateway at {path} did not reload: {reason}")]
    Refused {
        /// Where it is.
        path: PathBuf,
        /// Why.
        reason: String,
    },
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
pub(crate) enum ReloadAnswer {
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

/// The control socket's answer to a capture command: its report, or why it was refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CaptureAnswer {
    Report(Option<crate::capture::CaptureReport>),
    Error(String),
}

fn capture_answer(
    path: &Path,
    raw: &str,
) -> Result<Option<crate::capture::CaptureReport>, StatusError> {
    match serde_json::from_str(raw).map_err(|cause| StatusError::Json {
        path: path.into(),
        cause,
    })? {
        CaptureAnswer::Report(r) => Ok(r),
        CaptureAnswer::Error(reason) => Err(StatusError::Refused {
            path: path.into(),
            reason,
        }),
    }
}

/// Starts a packet capture in a running gateway.
pub fn capture_start(
    path: &Path,
    request_: &crate::capture::CaptureRequest,
) -> Result<(), StatusError> {
    let json = serde_json::to_string(request_).expect("requests serialize");
    let raw = request(
        path,
        &format!("capture-start {json}"),
        Duration::from_secs(5),
    )?;
    capture_answer(path, &raw).map(|_| ())
}

/// Stops a running gateway's packet capture; what it wrote (`None`: none ran).
pub fn capture_stop(path: &Path) -> Result<Option<crate::capture::CaptureReport>, StatusError> {
    let raw = request(path, "capture-stop", Duration::from_secs(5))?;
    capture_answer(path, &raw)
}

/// The gateway's Child SAs as Wireshark `esp_sa` lines, keys included.
pub fn esp_sa(path: &Path) -> Result<Vec<String>, StatusError> {
    let raw = request(path, "esp-sa", Duration::from_secs(5))?;
    serde_json::from_str(&raw).map_err(|cause| StatusError::Json {
        path: path.into(),
        cause,
    })
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
    let root = nix::unistd::geteuid().is_root();
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
        if let Some(w) = &c.selector_warning {
            let dropped = match c.drops.uncovered {
                0 => String::new(),
                n => format!("; {n} packet(s) for it dropped"),
            };
            let _ = writeln!(
                o,
                "  warning: {w}; traffic for what is not tunneled is refused (ICMP prohibited){dropped}"
            );
        }
        if let Some(ms) = c.retry_in_ms {
            let _ = writeln!(
                o,
                "  next attempt in {:.1}s (failed {} time(s) in a row)",
                ms as f64 / 1000.0,
                c.consecutive_failures
            );
        }
        if c.failed_attempts > 0 {
            let _ = writeln!(
                o,
                "  unauthenticated failed attempts {}{}",
                c.failed_attempts,
                c.last_failed_attempt
                    .as_ref()
                    .map(|e| format!(", last: {e}"))
                    .unwrap_or_default()
            );
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
    if !s.ike_drops.is_empty() {
        let by: Vec<String> = s
            .ike_drops
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(o, "IKE drops by cause: {}", by.join(" "));
    }
    if !s.log_suppressed.is_empty() {
        let by: Vec<String> = s
            .log_suppressed
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(o, "log lines left out (rate limit): {}", by.join(" "));
    }
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
                    pending: false,
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
                failed_attempts: 2,
                last_failed_attempt: Some("NO_PROPOSAL_CHOSEN: test".into()),
                retry_in_ms: None,
                consecutive_failures: 0,
                selector_warning: None,
                outcomes: Default::default(),
            }],
            drops: DropCounters::default(),
            ike_dropped: 0,
            cookies_sent: 5,
            half_open: 2,
            reloads: 1,
            datapath_threads: 2,
            busy_poll_us: 100,
            cpu_placement: "adaptive".into(),
            ike_drops: [("unknown_spi".to_string(), 4)].into_iter().collect(),
            log_suppressed: Default::default(),
            control_refused: 0,
            control_busy: 0,
            bgp: None,
            vnet_routes: None,
            capture: None,
            batches: BatchReport::default(),
        }
    }

    /// A stand-in for the event loop: answers what the control thread queues.
    fn serve(
        server: crate::control::ControlServer,
        rounds: usize,
        reloads: Vec<Result<ReloadReport, crate::core::ReloadError>>,
    ) {
        let mut reloads = reloads.into_iter();
        for _ in 0..rounds {
            for req in server.pending() {
                match req {
                    crate::control::ControlRequest::Status(tx) => {
                        let _ = tx.try_send(sample());
                    }
                    crate::control::ControlRequest::Reload(tx) => {
                        let _ = tx.try_send(
                            reloads
                                .next()
                                .unwrap_or(Err(crate::core::ReloadError::NoConfigPath)),
                        );
                    }
                    crate::control::ControlRequest::CaptureStart(_, tx) => {
                        let _ = tx.try_send(Err("no capture in this stand-in".into()));
                    }
                    crate::control::ControlRequest::CaptureStop(tx) => {
                        let _ = tx.try_send(None);
                    }
                    crate::control::ControlRequest::EspSa(tx) => {
                        let _ = tx.try_send(vec![]);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn control_socket_serves_json_and_table() {
        use crate::control::{Access, ControlServer};
        let dir = std::env::temp_dir().join(format!("hn-gw-status-{}", std::process::id()));
        let path = dir.join("gw.sock");
        let server = ControlServer::bind(&path, Access::default()).unwrap();
        assert!(
            ControlServer::bind(&path, Access::default()).is_err(),
            "a second gateway must not steal a live socket"
        );
        let t = std::thread::spawn(move || serve(server, 200, vec![]));
        let want = sample();
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
        use crate::control::{Access, ControlServer};
        let dir = std::env::temp_dir().join(format!("hn-gw-reload-{}", std::process::id()));
        let path = dir.join("gw.sock");
        let server = ControlServer::bind(&path, Access::default()).unwrap();
        let answers = vec![
            Ok(ReloadReport {
                replaced: vec!["site-b".into()],
                ..Default::default()
            }),
            Err(crate::core::ReloadError::NeedsRestart {
                what: "tun_name".into(),
                path: "gw.toml".into(),
            }),
        ];
        let t = std::thread::spawn(move || serve(server, 200, answers));
        let r = reload(&path).unwrap();
        assert_eq!(r.replaced, vec!["site-b".to_string()]);
        let e = reload(&path).unwrap_err();
        assert!(
            matches!(&e, StatusError::Refused { reason, .. } if reason.contains("tun_name changed in gw.toml")),
            "{e}"
        );
        t.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Sends `status` on a fresh connection and returns what came back (or the error text).
    fn raw_status(path: &Path) -> String {
        let mut s = match UnixStream::connect(path) {
            Ok(s) => s,
            Err(e) => return e.to_string(),
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(b"status\n");
        let mut out = String::new();
        match s.read_to_string(&mut out) {
            Ok(_) => out,
            Err(e) => format!("{out}{e}"),
        }
    }

    /// Idle clients that never send a command do not hold up the others: each is served on a
    /// thread of its own (the event loop never waits on one), and past the limit new clients
    /// are told "busy" at once instead of queueing behind them.
    #[test]
    fn idle_control_clients_do_not_block_status() {
        use crate::control::{Access, ControlServer, MAX_CLIENTS};
        let dir = std::env::temp_dir().join(format!("hn-gw-idle-{}", std::process::id()));
        let path = dir.join("gw.sock");
        let server = ControlServer::bind(&path, Access::default()).unwrap();
        let t = std::thread::spawn(move || serve(server, 200, vec![]));
        let mut idle: Vec<_> = (0..10)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        let t0 = std::time::Instant::now();
        assert_eq!(query(&path).unwrap(), sample());
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );
        idle.extend((0..MAX_CLIENTS).map(|_| UnixStream::connect(&path).unwrap()));
        std::thread::sleep(Duration::from_millis(50));
        let t0 = std::time::Instant::now();
        let answer = raw_status(&path);
        assert!(answer.contains("busy"), "{answer}");
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );
        drop(idle);
        t.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Runs `f` on a thread that has dropped to user and group `nobody` (credentials are
    /// per thread in the kernel; the raw system calls change only this thread's).
    fn as_nobody<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            // SAFETY: raw setgroups/setresgid/setresuid system calls on this thread only.
            // Kept: nix's setresuid/setresgid/setgroups go through libc, which changes every
            // thread of the process (POSIX), and the test harness's other threads must stay root.
            unsafe {
                assert_eq!(
                    libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()),
                    0
                );
                assert_eq!(libc::syscall(libc::SYS_setresgid, 65534, 65534, 65534), 0);
                assert_eq!(libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534), 0);
            }
            f()
        })
        .join()
        .unwrap()
    }

    /// The socket is 0600 whatever the umask, and a client of another user is refused even
    /// if someone opened the socket's mode.
    #[test]
    fn control_socket_is_private_and_checks_the_client() {
        use crate::control::{Access, ControlServer};
        use nix::sys::stat::{umask, Mode};
        use std::os::unix::fs::PermissionsExt;
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test runs as root (as CI does)"
        );
        let dir = std::env::temp_dir().join(format!("hn-gw-perm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("gw.sock");
        let old = umask(Mode::empty());
        let server = ControlServer::bind(&path, Access::default());
        umask(old);
        let server = server.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "socket mode {mode:o} under umask 000");
        let p = path.clone();
        let denied = as_nobody(move || raw_status(&p));
        assert!(
            denied.contains("Permission denied"),
            "the mode keeps others out: {denied}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let t = std::thread::spawn(move || serve(server, 200, vec![]));
        let p = path.clone();
        let refused = as_nobody(move || raw_status(&p));
        assert!(
            refused.contains("permission denied"),
            "credentials checked: {refused}"
        );
        assert!(!refused.contains("site-b"));
        assert_eq!(query(&path).unwrap(), sample(), "root is served");
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
