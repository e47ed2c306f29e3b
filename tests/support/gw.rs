//! Running `hybridnet gateway run` inside a namespace and reading its status through
//! `hybridnet gateway status --json`, exactly as a user would.

use anyhow::{bail, Context, Result};
use gateway::status::{ConnectionReport, GatewayStatus};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use testkit::netns::Netns;
use testkit::process::{tail, wait_for, Daemon};

/// The `hybridnet` binary: `$HYBRIDNET_BIN`, else `target/<profile>/hybridnet` next to this
/// test executable's `deps/` directory, (re)built once per test process with the same
/// profile so a test never runs a stale gateway.
pub fn hybridnet_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("HYBRIDNET_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("current_exe");
        let mut dir = exe
            .parent()
            .expect("test exe has a directory")
            .to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let profile = dir
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("debug")
            .to_string();
        let target = dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.clone());
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "hybridnet",
            "--bin",
            "hybridnet",
            "--target-dir",
        ])
        .arg(&target);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            p => {
                cmd.args(["--profile", p]);
            }
        }
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
        let built = cmd.status().map(|s| s.success()).unwrap_or(false);
        let bin = dir.join("hybridnet");
        if !built {
            // e.g. a half-edited crate of a colleague: use the last good binary, loudly
            eprintln!(
                "warning: `cargo build -p hybridnet` failed; testing the existing {}",
                bin.display()
            );
        }
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}

/// Runs `hybridnet` with `args` (outside any namespace) and returns (success, stdout+stderr).
pub fn hybridnet(args: &[&str]) -> Result<(bool, String)> {
    let out = Command::new(hybridnet_bin())
        .args(args)
        .output()
        .context("run hybridnet")?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// A `hybridnet gateway run` process in a namespace; SIGTERM on drop.
pub struct GatewayProc {
    /// Its config file.
    pub config: PathBuf,
    /// Its control socket.
    pub control: PathBuf,
    daemon: Daemon,
}

impl GatewayProc {
    /// Writes `config_toml` to `dir/<name>.toml` and starts the gateway in `ns`; waits until
    /// its control socket answers.
    pub fn start(ns: &Netns, dir: &Path, name: &str, config_toml: &str) -> Result<GatewayProc> {
        let config = dir.join(format!("{name}.toml"));
        let control = dir.join(format!("{name}.sock"));
        std::fs::write(&config, config_toml)?;
        let mut cmd = ns.command(&hybridnet_bin().display().to_string());
        cmd.args(["gateway", "run"])
            .arg(&config)
            .arg("--control")
            .arg(&control)
            .env("HYBRIDNET_LOG", "debug");
        let daemon = Daemon::spawn(
            &format!("gateway {name}"),
            cmd,
            &dir.join(format!("{name}.log")),
        )?;
        let mut g = GatewayProc {
            config,
            control,
            daemon,
        };
        let up = wait_for(
            Duration::from_secs(10),
            "the gateway's control socket",
            || {
                if !g.daemon.alive() {
                    return Some(false);
                }
                g.status().ok().map(|_| true)
            },
        )?;
        if !up {
            bail!("gateway {name} exited at start:\n{}", g.log());
        }
        Ok(g)
    }

    /// `hybridnet gateway status --json --control …`, parsed.
    pub fn status(&self) -> Result<GatewayStatus> {
        let (ok, out) = hybridnet(&[
            "gateway",
            "status",
            "--json",
            "--control",
            &self.control.display().to_string(),
        ])?;
        if !ok {
            bail!("gateway status failed: {out}");
        }
        serde_json::from_str(&out).with_context(|| format!("status is not JSON: {out}"))
    }

    /// The human status table.
    pub fn status_text(&self) -> String {
        hybridnet(&[
            "gateway",
            "status",
            "--control",
            &self.control.display().to_string(),
        ])
        .map(|(_, o)| o)
        .unwrap_or_default()
    }

    /// The connection `name` in the current status.
    pub fn connection(&self, name: &str) -> Result<ConnectionReport> {
        let st = self.status()?;
        st.connections
            .into_iter()
            .find(|c| c.name == name)
            .with_context(|| format!("no connection {name} in status"))
    }

    /// Waits until connection `name` has an active Child SA.
    pub fn wait_established(&self, name: &str, timeout: Duration) -> Result<ConnectionReport> {
        wait_for(
            timeout,
            &format!("connection {name} established with a CHILD_SA"),
            || {
                self.connection(name)
                    .ok()
                    .filter(|c| c.state == "established" && c.child_sas.iter().any(|s| s.active))
            },
        )
        .with_context(|| {
            format!(
                "gateway status:\n{}\ngateway log tail:\n{}",
                self.status_text(),
                tail(&self.log(), 40)
            )
        })
    }

    /// Waits until connection `name` reports a last error.
    pub fn wait_error(&self, name: &str, timeout: Duration) -> Result<String> {
        wait_for(timeout, &format!("an error on connection {name}"), || {
            self.connection(name).ok().and_then(|c| c.last_error)
        })
        .with_context(|| format!("gateway log tail:\n{}", tail(&self.log(), 40)))
    }

    /// Everything the gateway wrote to stderr so far.
    pub fn log(&self) -> String {
        self.daemon.log_text()
    }

    /// Stops the gateway with SIGTERM; returns its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        self.daemon.stop(Duration::from_secs(5))
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }
}

/// A gateway config with one connection, in the format the README documents.
#[derive(Debug, Clone)]
pub struct GwConfig {
    /// Public address.
    pub local_address: String,
    /// Connection name.
    pub name: String,
    /// Peer address or `%any`.
    pub remote_address: String,
    /// Our identity.
    pub local_id: String,
    /// The peer's identity.
    pub remote_id: String,
    /// The PSK (same syntax as strongSwan's `secret`).
    pub psk: String,
    /// Our prefix.
    pub local_prefix: String,
    /// The peer's prefix.
    pub remote_prefix: String,
    /// IKE proposals.
    pub ike_proposals: Vec<String>,
    /// ESP proposals.
    pub esp_proposals: Vec<String>,
    /// Whether we initiate.
    pub initiate: bool,
}

impl GwConfig {
    /// The TOML text.
    pub fn to_toml(&self) -> String {
        let list = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            r#"local_address = "{}"

[[connection]]
name = "{}"
remote_address = "{}"
local_id = "{}"
remote_id = "{}"
psk = "{}"
local_prefixes = ["{}"]
remote_prefixes = ["{}"]
ike_proposals = [{}]
esp_proposals = [{}]
dpd_timeout = "45s"
initiate = {}
"#,
            self.local_address,
            self.name,
            self.remote_address,
            self.local_id,
            self.remote_id,
            self.psk,
            self.local_prefix,
            self.remote_prefix,
            list(&self.ike_proposals),
            list(&self.esp_proposals),
            self.initiate
        )
    }
}
