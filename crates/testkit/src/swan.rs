//! A strongSwan peer as the reference lab runs it: charon with kernel-libipsec (userspace ESP
//! over its own TUN device, always UDP-encapsulated), one private /run per daemon (via
//! `unshare -m` + tmpfs, so two charons' pid files cannot clash), driven through its vici
//! socket with `swanctl`.
//!
//! The one charon launcher of the tests: the gateway suites, the IKE crate's interop tests and
//! the device-configuration tests (with a strongswan.conf of their own) all start charon here.

use crate::netns::Netns;
use crate::process::{tail, wait_for, Daemon};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where Debian's strongswan-charon installs the daemon.
pub const CHARON: &str = "/usr/lib/ipsec/charon";

/// charon's plugins. ORDER MATTERS: kernel-libipsec must precede kernel-netlink.
pub const CHARON_LOAD: &str =
    "random nonce openssl sha1 sha2 hmac kdf gcm aes curve25519 kernel-libipsec kernel-netlink socket-default vici";

/// One strongSwan connection named `site` with one child `net` (and optionally more).
#[derive(Debug, Clone, Default)]
pub struct SwanConn {
    /// charon's own public address.
    pub local_addr: String,
    /// The peer's address (or `%any`).
    pub remote_addr: String,
    /// Our IKE identity.
    pub local_id: String,
    /// The peer's IKE identity.
    pub remote_id: String,
    /// Prefix behind us.
    pub local_ts: String,
    /// Prefix behind the peer.
    pub remote_ts: String,
    /// IKE proposals, strongSwan syntax (comma-separated).
    pub ike_proposals: String,
    /// ESP proposals, strongSwan syntax.
    pub esp_proposals: String,
    /// PSK as strongSwan writes it (`0x…` hex recommended).
    pub psk: String,
    /// `none`, `start` or `trap`.
    pub start_action: String,
    /// Timing overrides (strongSwan defaults of the lab when `None`).
    pub timers: SwanTimers,
    /// More children `(name, local_ts)` besides `net`, same remote selectors: a peer with one
    /// child per subnet (what narrowing looks like from the other side).
    pub more_children: Vec<(String, String)>,
}

/// strongSwan timers of [`SwanConn`], in its syntax (`"10s"`).
#[derive(Debug, Clone, Default)]
pub struct SwanTimers {
    /// IKE SA `rekey_time` (default 4h).
    pub ike_rekey: Option<String>,
    /// Child SA `rekey_time` (default 1h).
    pub child_rekey: Option<String>,
    /// Child SA hard `life_time` (strongSwan: rekey_time + 10 % by default); setting it also
    /// sets `rand_time = 0s`, so the rekey happens exactly at `child_rekey`.
    pub child_life: Option<String>,
    /// IKE SA hard lifetime after its rekey time, `over_time`; setting it also sets the IKE
    /// SA's `rand_time = 0s`.
    pub ike_over: Option<String>,
    /// `dpd_delay` (default 30s).
    pub dpd_delay: Option<String>,
    /// Child `close_action` (strongSwan's default when `None`).
    pub close_action: Option<String>,
}

impl SwanConn {
    /// The swanctl.conf text: connection `site` with child `net` (and [`more_children`]), and
    /// the PSK for the two identities.
    ///
    /// [`more_children`]: SwanConn::more_children
    pub fn swanctl_conf(&self) -> String {
        let conn = self;
        let t = &conn.timers;
        format!(
            r#"connections {{
    site {{
        version = 2
        local_addrs = {la}
        remote_addrs = {ra}
        proposals = {ike}
        dpd_delay = {dpd}
        rekey_time = {ike_rekey}{ike_over}
        local {{
            auth = psk
            id = {lid}
        }}
        remote {{
            auth = psk
            id = {rid}
        }}
        children {{
            net {{
                local_ts = {lts}
                remote_ts = {rts}
                mode = tunnel
                esp_proposals = {esp}
                start_action = {sa}
                dpd_action = clear
                rekey_time = {child_rekey}{child_life}{close}
            }}{more}
        }}
    }}
}}
secrets {{
    ike-site {{
        id-a = {lid}
        id-b = {rid}
        secret = {psk}
    }}
}}
"#,
            la = conn.local_addr,
            ra = conn.remote_addr,
            ike = conn.ike_proposals,
            lid = conn.local_id,
            rid = conn.remote_id,
            lts = conn.local_ts,
            rts = conn.remote_ts,
            esp = conn.esp_proposals,
            sa = conn.start_action,
            psk = conn.psk,
            dpd = t.dpd_delay.as_deref().unwrap_or("30s"),
            ike_rekey = t.ike_rekey.as_deref().unwrap_or("4h"),
            ike_over = t
                .ike_over
                .as_ref()
                .map(|v| format!("\n        over_time = {v}\n        rand_time = 0s"))
                .unwrap_or_default(),
            child_rekey = t.child_rekey.as_deref().unwrap_or("1h"),
            child_life = t
                .child_life
                .as_ref()
                .map(|v| format!("\n                life_time = {v}\n                rand_time = 0s"))
                .unwrap_or_default(),
            close = t
                .close_action
                .as_ref()
                .map(|v| format!("\n                close_action = {v}"))
                .unwrap_or_default(),
            more = conn
                .more_children
                .iter()
                .map(|(name, lts)| format!(
                    "\n            {name} {{\n                local_ts = {lts}\n                remote_ts = {rts}\n                mode = tunnel\n                esp_proposals = {esp}\n                start_action = none\n            }}",
                    rts = conn.remote_ts,
                    esp = conn.esp_proposals
                ))
                .collect::<String>(),
        )
    }
}

/// A running charon in a namespace; stopped on drop.
pub struct Charon {
    dir: PathBuf,
    daemon: Daemon,
}

impl Charon {
    /// Writes the lab's strongswan.conf ([`strongswan_conf`]) into `dir`, starts charon in `ns`
    /// and waits for its vici socket.
    pub fn start(ns: &Netns, dir: &Path) -> Result<Charon> {
        Charon::start_with_conf(ns, dir, &strongswan_conf(dir))
    }

    /// Starts charon in `ns` with `strongswan_conf` (written to `dir/strongswan.conf`; its vici
    /// socket must be `unix://DIR/charon.vici`) and waits for the socket. The exec chain (`ip
    /// netns exec` → env → unshare → sh → exec charon) keeps charon at the spawned PID; its
    /// private /run keeps two charons' pid files apart.
    pub fn start_with_conf(ns: &Netns, dir: &Path, strongswan_conf: &str) -> Result<Charon> {
        std::fs::create_dir_all(dir)?;
        if !Path::new(CHARON).exists() {
            bail!("{CHARON} missing: run scripts/install-deps.sh (strongswan-charon, libcharon-extra-plugins)");
        }
        std::fs::write(dir.join("strongswan.conf"), strongswan_conf)?;
        let mut cmd = ns.command("env");
        cmd.arg(format!("STRONGSWAN_CONF={}/strongswan.conf", dir.display()))
            .args([
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                "mount -t tmpfs -o mode=0755 hn-swan-run /run && exec \"$0\"",
                CHARON,
            ]);
        let daemon = Daemon::spawn("charon", cmd, &dir.join("charon.stdout"))?;
        let mut c = Charon {
            dir: dir.to_path_buf(),
            daemon,
        };
        let ok = wait_for(Duration::from_secs(15), "charon's vici socket", || {
            if !c.daemon.alive() {
                return Some(false);
            }
            c.swanctl(&["--stats"]).ok().map(|_| true)
        })?;
        if !ok {
            bail!(
                "charon exited at start: {}\n{}",
                c.daemon.log_text(),
                c.log()
            );
        }
        Ok(c)
    }

    /// Runs `swanctl` against this charon; fails with its output on a non-zero exit.
    pub fn swanctl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("swanctl")
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .args(args)
            .arg("--uri")
            .arg(format!("unix://{}/charon.vici", self.dir.display()))
            .output()
            .context("cannot run swanctl")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            bail!("swanctl {} failed: {text}", args.join(" "));
        }
        Ok(text)
    }

    /// Writes swanctl.conf for `conn` ([`SwanConn::swanctl_conf`]) and loads it.
    pub fn load(&self, conn: &SwanConn) -> Result<()> {
        let path = self.dir.join("swanctl.conf");
        std::fs::write(&path, conn.swanctl_conf())?;
        self.load_file(&path)?;
        Ok(())
    }

    /// `swanctl --load-all` of a swanctl.conf; returns what swanctl said.
    pub fn load_file(&self, file: &Path) -> Result<String> {
        self.swanctl(&[
            "--load-all",
            "--noprompt",
            "--file",
            &file.display().to_string(),
        ])
    }

    /// Initiates `site`/`net` and waits up to `timeout_s` for the result.
    pub fn initiate(&self, timeout_s: u32) -> Result<String> {
        self.swanctl(&[
            "--initiate",
            "--ike",
            "site",
            "--child",
            "net",
            "--timeout",
            &timeout_s.to_string(),
        ])
    }

    /// `swanctl --list-sas` output.
    pub fn list_sas(&self) -> String {
        self.swanctl(&["--list-sas"])
            .unwrap_or_else(|e| format!("{e:#}"))
    }

    /// Parsed Child SA of `--list-sas` once it is INSTALLED (waits up to `timeout`).
    pub fn wait_child_installed(&self, timeout: Duration) -> Result<SwanChildSa> {
        wait_for(timeout, "strongSwan CHILD_SA net INSTALLED", || {
            SwanChildSa::parse(&self.list_sas())
        })
        .with_context(|| {
            format!(
                "strongSwan SAs:\n{}\ncharon log tail:\n{}",
                self.list_sas(),
                tail(&self.log(), 40)
            )
        })
    }

    /// charon's log file.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("charon.log")).unwrap_or_default()
    }

    /// The charon process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// The directory holding its strongswan.conf, vici socket and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops charon with `signal` (SIGTERM: it deletes its SAs on the way out; SIGKILL: it
    /// says nothing), SIGKILL after 5 s. Dropping it later does nothing more.
    pub fn stop(&mut self, signal: i32) {
        self.daemon.stop_with(signal, Duration::from_secs(5));
    }
}

/// The lab's strongswan.conf for a charon whose files live in `dir`: [`CHARON_LOAD`], routes
/// in table 220, a log at `dir/charon.log`, the vici socket at `dir/charon.vici`.
pub fn strongswan_conf(dir: &Path) -> String {
    format!(
        r#"charon {{
    load = {CHARON_LOAD}
    install_routes = yes
    routing_table = 220
    routing_table_prio = 220
    filelog {{
        lab {{
            path = {dir}/charon.log
            time_format = %H:%M:%S
            time_add_ms = yes
            ike_name = yes
            append = no
            flush_line = yes
            default = 1
        }}
    }}
    syslog {{
        daemon {{
            default = -1
        }}
    }}
    plugins {{
        vici {{
            socket = unix://{dir}/charon.vici
        }}
        kernel-libipsec {{
            allow_peer_ts = no
        }}
    }}
}}
swanctl {{
    load = random openssl pem pkcs1 pkcs8 x509
}}
"#,
        dir = dir.display()
    )
}

/// The facts `swanctl --list-sas` shows about the child `net`.
#[derive(Debug, Clone)]
pub struct SwanChildSa {
    /// The whole `--list-sas` text it came from.
    pub text: String,
    /// The IKE SA line with algorithms, e.g. `AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384`.
    pub ike_algorithms: String,
    /// The child's algorithm text, e.g. `AES_GCM_16-256` or `AES_CBC-128/HMAC_SHA1_96/MODP_2048`.
    pub esp_algorithms: String,
    /// strongSwan's inbound SPI (ours outbound), 8 hex digits.
    pub spi_in: String,
    /// strongSwan's outbound SPI (ours inbound).
    pub spi_out: String,
    /// Bytes strongSwan received on the child.
    pub bytes_in: u64,
    /// Bytes strongSwan sent on the child.
    pub bytes_out: u64,
}

impl SwanChildSa {
    /// Parses `swanctl --list-sas`; `None` until `net` is INSTALLED.
    ///
    /// ```text
    /// site: #1, ESTABLISHED, IKEv2, 1b2c…_i* 9f8e…_r
    ///   AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384
    ///   net: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256/ECP_384
    ///     in  c1a2b3c4 (-|0x…),    840 bytes,    10 packets,     0s ago
    ///     out c5d6e7f8 (-|0x…),    840 bytes,    10 packets,     0s ago
    /// ```
    pub fn parse(text: &str) -> Option<SwanChildSa> {
        let lines: Vec<&str> = text.lines().collect();
        let ci = lines
            .iter()
            .position(|l| l.trim_start().starts_with("net:") && l.contains("INSTALLED"))?;
        let esp_algorithms = lines[ci].split("ESP:").nth(1)?.trim().to_string();
        let ike_algorithms = lines[..ci]
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| l.contains('/') && !l.contains(' ') && !l.contains(':'))
            .unwrap_or("")
            .to_string();
        let mut spi_in = None;
        let mut spi_out = None;
        let (mut bytes_in, mut bytes_out) = (0, 0);
        for l in &lines[ci + 1..] {
            let t = l.trim();
            let words: Vec<&str> = t.split_whitespace().collect();
            let bytes = words
                .iter()
                .position(|w| w.starts_with("bytes"))
                .and_then(|i| words[i - 1].trim_end_matches(',').parse().ok())
                .unwrap_or(0);
            if t.starts_with("in ") && spi_in.is_none() {
                spi_in = words.get(1).map(|s| s.trim_end_matches(',').to_string());
                bytes_in = bytes;
            } else if t.starts_with("out ") && spi_out.is_none() {
                spi_out = words.get(1).map(|s| s.trim_end_matches(',').to_string());
                bytes_out = bytes;
            } else if !t.starts_with("local")
                && !t.starts_with("remote")
                && !t.starts_with("in")
                && !t.starts_with("out")
                && !t.contains("rekeying")
                && !t.contains("installed")
            {
                break;
            }
        }
        Some(SwanChildSa {
            text: text.into(),
            ike_algorithms,
            esp_algorithms,
            spi_in: spi_in?,
            spi_out: spi_out?,
            bytes_in,
            bytes_out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_sas_is_parsed() {
        let text = "site: #1, ESTABLISHED, IKEv2, 1b2c3d4e5f607182_i* 9f8e7d6c5b4a3928_r\n  AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384\n  net: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256/ECP_384\n    in  c1a2b3c4 (-|0x00000001),    840 bytes,    10 packets,     0s ago\n    out c5d6e7f8 (-|0x00000002),    420 bytes,     5 packets,     0s ago\n    local  10.2.0.0/16\n    remote 10.1.0.0/16\n";
        let c = SwanChildSa::parse(text).expect("INSTALLED");
        assert_eq!(c.ike_algorithms, "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384");
        assert_eq!(c.esp_algorithms, "AES_GCM_16-256/ECP_384");
        assert_eq!(
            (c.spi_in.as_str(), c.spi_out.as_str()),
            ("c1a2b3c4", "c5d6e7f8")
        );
        assert_eq!((c.bytes_in, c.bytes_out), (840, 420));
        assert!(SwanChildSa::parse(&text.replace("INSTALLED", "INSTALLING")).is_none());
    }

    #[test]
    fn timers_render_as_swanctl_options() {
        let conn = SwanConn {
            ike_proposals: "aes256gcm16-prfsha384-ecp384".into(),
            timers: SwanTimers {
                ike_rekey: Some("8s".into()),
                ike_over: Some("60s".into()),
                child_life: Some("60s".into()),
                dpd_delay: Some("0s".into()),
                ..SwanTimers::default()
            },
            more_children: vec![("lan2".into(), "10.2.9.0/24".into())],
            ..SwanConn::default()
        };
        let text = conn.swanctl_conf();
        for want in [
            "proposals = aes256gcm16-prfsha384-ecp384",
            "dpd_delay = 0s",
            "rekey_time = 8s\n        over_time = 60s\n        rand_time = 0s",
            "rekey_time = 1h\n                life_time = 60s\n                rand_time = 0s",
            "lan2 {\n                local_ts = 10.2.9.0/24",
        ] {
            assert!(text.contains(want), "{want:?} missing:\n{text}");
        }
        assert!(!text.contains("close_action"), "{text}");
    }
}
