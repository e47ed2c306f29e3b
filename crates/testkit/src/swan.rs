//! A strongSwan peer as the reference lab runs it: charon with kernel-libipsec (userspace ESP
//! over its own TUN device, always UDP-encapsulated), one private /run per daemon (via
//! `unshare -m` + tmpfs, so two charons' pid files cannot clash), driven through its vici
//! socket: `swanctl --load-all` and `--initiate` (what a person types), and VICI queries
//! ([`Charon::sas`], [`Charon::conns`]) for what the tests check.
//!
//! The one charon launcher of the tests: the gateway suites, the IKE crate's interop tests and
//! the device-configuration tests (with a strongswan.conf of their own) all start charon here.

use crate::netns::Netns;
use crate::process::{tail, wait_for, Daemon};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
pub use vici::{Auth, ChildSa, Conn, ConnChild, IkeSa};

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
            c.conns().ok().map(|_| true)
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

    /// charon's VICI socket, `DIR/charon.vici`.
    pub fn vici_socket(&self) -> PathBuf {
        self.dir.join("charon.vici")
    }

    /// Its IKE SAs and their Child SAs, queried over VICI (`list-sas`): ~10x faster than
    /// `swanctl --list-sas` and structured (measured in the vici crate's docs).
    pub fn sas(&self) -> Result<Vec<IkeSa>> {
        Ok(vici::list_sas(&self.vici_socket())?)
    }

    /// The connections loaded into it, queried over VICI (`list-conns`).
    pub fn conns(&self) -> Result<Vec<Conn>> {
        Ok(vici::list_conns(&self.vici_socket())?)
    }

    /// `swanctl --list-sas` text, for failure messages only (people read it; nothing parses
    /// it): assert on [`Charon::sas`].
    pub fn sas_text(&self) -> String {
        self.swanctl(&["--list-sas"])
            .unwrap_or_else(|e| format!("{e:#}"))
    }

    /// The Child SA `net` once it is INSTALLED (waits up to `timeout`).
    pub fn wait_child_installed(&self, timeout: Duration) -> Result<SwanChildSa> {
        wait_for(timeout, "strongSwan CHILD_SA net INSTALLED", || {
            SwanChildSa::find(&self.sas().ok()?)
        })
        .with_context(|| {
            format!(
                "strongSwan SAs:\n{}\ncharon log tail:\n{}",
                self.sas_text(),
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

/// The Child SA `net` as charon lists it over VICI, with the facts the tests compare.
#[derive(Debug, Clone)]
pub struct SwanChildSa {
    /// The IKE SA it belongs to, with all its Child SAs (for messages and further checks).
    pub ike: IkeSa,
    /// The IKE SA's algorithms as swanctl prints them, e.g.
    /// `AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384`.
    pub ike_algorithms: String,
    /// The child's algorithms as swanctl prints them after `ESP:`, e.g. `AES_GCM_16-256` or
    /// `AES_CBC-128/HMAC_SHA1_96/MODP_2048`.
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
    /// The first INSTALLED Child SA `net` of `sas` (charon's order); `None` until there is one.
    pub fn find(sas: &[IkeSa]) -> Option<SwanChildSa> {
        sas.iter().find_map(|ike| {
            let c = ike.installed_child("net")?;
            Some(SwanChildSa {
                ike: ike.clone(),
                ike_algorithms: ike.algorithms(),
                esp_algorithms: c.algorithms(),
                spi_in: c.spi_in.clone(),
                spi_out: c.spi_out.clone(),
                bytes_in: c.bytes_in,
                bytes_out: c.bytes_out,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
