//! "Download VPN device configuration" for strongSwan, end to end:
//!
//! * `hybridnet vpn-connection device-config --vendor strongswan` writes a swanctl.conf (0600)
//!   that a real charon accepts (`swanctl --load-all`), with the connection's addresses, IDs,
//!   traffic selectors and lifetimes as `swanctl --list-conns` shows them, and whose proposals
//!   charon validates (a corrupted proposal in the same file is refused);
//! * a strongSwan peer configured ONLY from that file (swanctl.conf, plus the strongswan.conf
//!   lines printed in its comments) brings the tunnel up with the cloud side's gateway —
//!   `hybridnet gateway run` in the lab's gateway namespace, configured from the site's
//!   resources as Azure would (responder only, so the device must initiate) — for the seed's
//!   Azure connection (custom policy) and its Azure Stack Hub connection (the kind's default);
//!   VM-to-VM ping works both ways and `vpn-connection show --control` reports Connected with
//!   byte counters that match the traffic.

#[allow(dead_code)]
#[path = "support/lab.rs"]
mod lab;

use anyhow::{bail, Context, Result};
use fabric::state::LabDir;
use fabric::LabId;
use hybridnet_tests::netns::Netns;
use hybridnet_tests::process::{wait_for, Daemon, Scratch};
use lab::{hybridnet_bin, show, Lab};
use serde_json::Value;
use site::{same_id, Resource};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SEED: &str = "examples/hybrid-connection";
/// The seed's shared key (examples/hybrid-connection/lab.yaml).
const SEED_KEY: &str = "hybridnet-lab-shared-key";

/// A charon with kernel-libipsec in a namespace, with a private /run, driven by swanctl.
struct SwanBox {
    dir: PathBuf,
    daemon: Daemon,
}

/// The `charon { … }` block printed as comments at the top of an exported swanctl.conf, as
/// strongswan.conf text, with this box's vici socket and log file added.
fn strongswan_conf_from_export(export: &str, dir: &Path) -> Result<String> {
    let lines: Vec<&str> = export.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end() == "#   charon {")
        .context("no commented charon { block in the export")?;
    let end = start
        + lines[start..]
            .iter()
            .position(|l| l.trim_end() == "#   }")
            .context("charon block not closed")?;
    let mut out = String::new();
    for l in &lines[start..end] {
        out.push_str(
            l.strip_prefix("#   ")
                .context("commented block line without '#   '")?,
        );
        out.push('\n');
    }
    out.push_str(&format!(
        "    filelog {{\n        box {{\n            path = {d}/charon.log\n            time_format = %H:%M:%S\n            flush_line = yes\n            default = 1\n        }}\n    }}\n    syslog {{\n        daemon {{\n            default = -1\n        }}\n    }}\n    plugins {{\n        vici {{\n            socket = unix://{d}/charon.vici\n        }}\n    }}\n}}\nswanctl {{\n    load = random openssl pem pkcs1 pkcs8 x509\n}}\n",
        d = dir.display()
    ));
    Ok(out)
}

impl SwanBox {
    /// Starts charon in namespace `ns` with `strongswan_conf`; waits for its vici socket.
    fn start(ns: &str, dir: &Path, strongswan_conf: &str) -> Result<SwanBox> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("strongswan.conf"), strongswan_conf)?;
        let mut cmd = Command::new("ip");
        // exec chain keeps the PID: ip netns exec → env → unshare (no fork) → sh → exec charon
        cmd.args(["netns", "exec", ns, "env"])
            .arg(format!("STRONGSWAN_CONF={}/strongswan.conf", dir.display()))
            .args([
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                "mount -t tmpfs -o mode=0755 hn-devcfg-run /run && exec \"$0\"",
                "/usr/lib/ipsec/charon",
            ]);
        let daemon = Daemon::spawn("charon", cmd, &dir.join("charon.stdout"))?;
        let mut b = SwanBox {
            dir: dir.to_path_buf(),
            daemon,
        };
        let up = wait_for(Duration::from_secs(15), "charon's vici socket", || {
            if !b.daemon.alive() {
                return Some(false);
            }
            b.swanctl(&["--stats"]).ok().map(|_| true)
        })?;
        if !up {
            bail!(
                "charon exited at start:\n{}\n{}",
                b.daemon.log_text(),
                b.log()
            );
        }
        Ok(b)
    }

    /// `swanctl ARGS --uri …`; fails with its output on a non-zero exit.
    fn swanctl(&self, args: &[&str]) -> Result<String> {
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

    fn load_file(&self, file: &Path) -> Result<String> {
        self.swanctl(&[
            "--load-all",
            "--noprompt",
            "--file",
            &file.display().to_string(),
        ])
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("charon.log")).unwrap_or_default()
    }

    /// Waits until `conn`'s CHILD_SA is INSTALLED; returns `--list-sas`.
    fn wait_installed(&self, conn: &str, timeout: Duration) -> Result<String> {
        wait_for(timeout, "the device's CHILD_SA INSTALLED", || {
            let s = self.swanctl(&["--list-sas"]).unwrap_or_default();
            (s.contains(&format!("{conn}: #")) && s.contains("INSTALLED")).then_some(s)
        })
        .with_context(|| format!("charon log:\n{}", tail(&self.log(), 40)))
    }
}

fn tail(s: &str, n: usize) -> String {
    let l: Vec<&str> = s.lines().collect();
    l[l.len().saturating_sub(n)..].join("\n")
}

/// `vpn-connection device-config --vendor strongswan` for `site`/`conn` of the lab, to a file.
fn export(lab: &Lab, site: &str, conn: &str, out: &Path) -> String {
    export_with(lab, site, conn, out, &[])
}

/// [`export`] with more `device-config` arguments.
fn export_with(lab: &Lab, site: &str, conn: &str, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "vpn-connection",
        "device-config",
        "--id",
        &lab.id,
        "--site",
        site,
        "--name",
        conn,
        "--vendor",
        "strongswan",
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = lab.run(&args);
    assert!(o.status.success(), "device-config failed:\n{}", show(&o));
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains(SEED_KEY),
        "the key leaked to stderr"
    );
    let mode = std::fs::metadata(out).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "the exported file holds the key: it must be 0600"
    );
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn list_vendors() {
    let o = Command::new(hybridnet_bin())
        .args(["vpn-connection", "device-config", "--list-vendors"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, vec!["strongswan", "generic"], "{text}");
    assert!(text.contains("swanctl.conf"), "{text}");
}

#[test]
fn exported_swanctl_conf_is_accepted_by_charon() -> Result<()> {
    let lab = Lab::up(SEED);
    let scratch = Scratch::new("devcfg-load", &hybridnet_tests::netns::unique_id())?;
    let file = scratch.join("azure-to-stackhub.swanctl.conf");
    let conf = export(&lab, "azure", "azure-to-stackhub", &file);

    // The same text on stdout, and with the lab chosen by its directory instead of its id.
    let o = lab.run(&[
        "vpn-connection",
        "device-config",
        "--lab",
        lab.dir.to_str().unwrap(),
        "--site",
        "azure",
        "--name",
        "azure-to-stackhub",
        "--vendor",
        "strongswan",
    ]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), conf);

    let ns = Netns::new(&format!("hn{}-dcfg", hybridnet_tests::netns::unique_id()))?;
    let swan = SwanBox::start(
        ns.name(),
        &scratch.join("swan"),
        &strongswan_conf_from_export(&conf, &scratch.join("swan"))?,
    )?;
    let loaded = swan.load_file(&file)?;
    assert!(
        loaded.contains("loaded ike secret 'ike-azure-to-stackhub'"),
        "{loaded}"
    );
    assert!(
        loaded.contains("loaded connection 'azure-to-stackhub'"),
        "{loaded}"
    );
    assert!(
        loaded.contains("successfully loaded 1 connections"),
        "{loaded}"
    );
    let conns = swan.swanctl(&["--list-conns"])?;
    for want in [
        "azure-to-stackhub: IKEv2, no reauthentication, rekeying every 25920s, dpd delay 11s",
        "  local:  198.51.100.1",
        "  remote: 203.0.113.1",
        "    id: 198.51.100.1",
        "    id: 203.0.113.1",
        "  azure-to-stackhub: TUNNEL, rekeying every 24300s or 94371840000 bytes",
        "    local:  10.2.0.0/16",
        "    remote: 10.1.0.0/16",
    ] {
        assert!(
            conns.contains(want),
            "--list-conns lacks {want:?}:\n{conns}"
        );
    }
    // --list-conns does not print proposals; charon parses them at load time: the same file
    // with one unknown algorithm is refused, so the exported ones were accepted as proposals.
    assert!(
        conf.contains("proposals = aes256-sha384-ecp384\n")
            && conf.contains("esp_proposals = aes256gcm16-ecp384\n"),
        "{conf}"
    );
    let bad = scratch.join("bad.conf");
    std::fs::write(
        &bad,
        conf.replace(
            "esp_proposals = aes256gcm16-ecp384",
            "esp_proposals = aes256gcm16-ecp999",
        ),
    )?;
    let e = swan
        .load_file(&bad)
        .expect_err("charon must refuse an unknown ESP algorithm");
    assert!(
        format!("{e:#}").contains("esp_proposals") || format!("{e:#}").contains("invalid"),
        "{e:#}"
    );

    // The ASH side's connection (kind default policy) loads too.
    let file2 = scratch.join("stackhub-to-azure.swanctl.conf");
    let conf2 = export(&lab, "stackhub", "stackhub-to-azure", &file2);
    assert!(
        conf2.contains("proposals = aes256-sha384-ecp384\n")
            && conf2.contains("esp_proposals = aes256gcm16-ecp384\n"),
        "{conf2}"
    );
    swan.load_file(&file2)?;
    let conns = swan.swanctl(&["--list-conns"])?;
    assert!(
        conns.contains("stackhub-to-azure: IKEv2")
            && conns.contains("  local:  203.0.113.1")
            && conns.contains("    remote: 10.2.0.0/16"),
        "{conns}"
    );
    Ok(())
}

/// What the cloud side's gateway runs, derived from the site store the way Azure would:
/// its public IP, the VNet behind it, the local network gateway's address and prefixes, the
/// connection's key and effective policy.
struct CloudSide {
    gateway: String,
    toml: String,
    key: String,
}

/// A site's store in a running lab, read only.
fn open_site(lab: &Lab, name: &str) -> Result<site::Site> {
    let dir = LabDir::new(&lab.state, &LabId::parse(&lab.id)?);
    Ok(site::Site::open(&dir.sites_path(), name)?)
}

fn cloud_side(lab: &Lab, site_name: &str, conn_name: &str) -> Result<CloudSide> {
    let site = open_site(lab, site_name)?;
    let rs = site.resources()?;
    let conn = rs
        .iter()
        .find_map(|r| match r {
            Resource::Connection(c) if c.meta.name == conn_name => Some(c),
            _ => None,
        })
        .context("connection")?;
    let gw = rs
        .iter()
        .find_map(|r| match r {
            Resource::VirtualNetworkGateway(g)
                if same_id(&g.meta.id, &conn.virtual_network_gateway1) =>
            {
                Some(g)
            }
            _ => None,
        })
        .context("gateway")?;
    let cfg = &gw.ip_configurations[0];
    let public = rs
        .iter()
        .find_map(|r| match r {
            Resource::PublicIpAddress(p) if same_id(&p.meta.id, &cfg.public_ip_address) => {
                Some(p.ip_address)
            }
            _ => None,
        })
        .context("public ip")?;
    let vnet_id = &cfg.subnet[..cfg
        .subnet
        .to_ascii_lowercase()
        .rfind("/subnets/")
        .context("subnet id")?];
    let vnet = rs
        .iter()
        .find_map(|r| match r {
            Resource::VirtualNetwork(v) if same_id(&v.meta.id, vnet_id) => Some(v),
            _ => None,
        })
        .context("vnet")?;
    let lng = rs
        .iter()
        .find_map(|r| match r {
            Resource::LocalNetworkGateway(l)
                if same_id(
                    &l.meta.id,
                    conn.local_network_gateway2.as_deref().unwrap_or(""),
                ) =>
            {
                Some(l)
            }
            _ => None,
        })
        .context("local network gateway")?;
    let peer = lng.gateway_ip_address.context("lng address")?;
    let pol = conn.effective_policy(site.kind());
    let q = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let nets = |v: &[ipnet::Ipv4Net]| {
        v.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let toml = format!(
        "local_address = \"{public}\"\n\n[[connection]]\nname = \"{conn_name}\"\nremote_address = \"{peer}\"\nlocal_id = \"{public}\"\nremote_id = \"{peer}\"\npsk_file = \"psk\"\nlocal_prefixes = [{}]\nremote_prefixes = [{}]\nike_proposals = [{}]\nesp_proposals = [{}]\nike_lifetime = \"{}s\"\nchild_lifetime = \"{}s\"\ndpd_timeout = \"{}s\"\ninitiate = false\n",
        nets(&vnet.address_space),
        nets(&lng.address_prefixes),
        q(&pol.ike_proposals),
        q(&pol.esp_responder_proposals),
        pol.ike_lifetime_secs,
        pol.child_lifetime_secs,
        conn.dpd_timeout_seconds
    );
    let key = conn
        .shared_key
        .as_ref()
        .context("shared key")?
        .expose()
        .to_string();
    Ok(CloudSide {
        gateway: gw.meta.name.clone(),
        toml,
        key,
    })
}

/// `vpn-connection show --control` as JSON.
fn show_live(lab: &Lab, site: &str, conn: &str, control: &Path, key: &str) -> Value {
    let o = lab.run(&[
        "vpn-connection",
        "show",
        "--id",
        &lab.id,
        "--site",
        site,
        "--name",
        conn,
        "--control",
        control.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!text.contains(key), "show printed the shared key");
    serde_json::from_str(&text).expect("show prints JSON")
}

/// `vpn-connection show` without `--control`: the gateway process is found in the lab.
fn show_discovered(lab: &Lab, site: &str, conn: &str, key: &str) -> Value {
    let o = lab.run(&[
        "vpn-connection",
        "show",
        "--id",
        &lab.id,
        "--site",
        site,
        "--name",
        conn,
    ]);
    assert!(o.status.success(), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!text.contains(key), "show printed the shared key");
    serde_json::from_str(&text).expect("show prints JSON")
}

fn counters(v: &Value) -> (u64, u64) {
    (
        v["properties"]["ingressBytesTransferred"].as_u64().unwrap(),
        v["properties"]["egressBytesTransferred"].as_u64().unwrap(),
    )
}

/// One tunnel scenario: the cloud site's connection `conn` is served by `hybridnet gateway
/// run` in its gateway namespace; the on-premises device is charon in `device_site`'s gateway
/// namespace (which holds the local network gateway's address, or sits behind the NAT device
/// that does), configured only from the exported file.
#[derive(Clone, Copy)]
struct Scenario {
    example: &'static str,
    cloud_site: &'static str,
    conn: &'static str,
    cloud_vm_ip: &'static str,
    device_site: &'static str,
    device_gateway: &'static str,
    device_vm_ip: &'static str,
    /// The device is behind NAT: export with `--device-address` = its inside address.
    device_behind_nat: bool,
    /// IKE algorithms `swanctl --list-sas` must show.
    algorithms: &'static str,
    /// The connection's shared key (must never show up in logs or output).
    key: &'static str,
    /// strongswan.conf from `devconfig::StrongSwan::strongswan_conf` (what a lab would use)
    /// instead of the export's comments.
    strongswan_conf_from_api: bool,
}

/// The device namespace's address on `wan`.
fn wan_address(ns: &str) -> Result<String> {
    let o = Command::new("ip")
        .args([
            "netns", "exec", ns, "ip", "-4", "-o", "addr", "show", "dev", "wan",
        ])
        .output()?;
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let cidr = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .with_context(|| format!("no address on wan in {ns}: {text}"))?;
    Ok(cidr.split('/').next().unwrap_or(cidr).to_string())
}

/// `hybridnet gateway run` of the cloud side in namespace `ns` (config and key in `scratch`),
/// once its control socket answers.
fn start_cloud_gateway(ns: &str, scratch: &Scratch, control: &Path) -> Result<Daemon> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(hybridnet_bin())
        .args(["gateway", "run"])
        .arg(scratch.join("cloud-gw.toml"))
        .arg("--control")
        .arg(control)
        .env("HYBRIDNET_LOG", "debug");
    let mut gw = Daemon::spawn("cloud gateway", cmd, &scratch.join("cloud-gw.log"))?;
    wait_for(
        Duration::from_secs(10),
        "the cloud gateway's control socket",
        || {
            if !gw.alive() {
                return Some(Err(anyhow::anyhow!("gateway exited:\n{}", gw.log_text())));
            }
            gateway::status::query(control).ok().map(|_| Ok(()))
        },
    )??;
    Ok(gw)
}

/// A scenario with its tunnel up. Fields drop in order: the device, the gateway, the scratch
/// directory, then the lab (whose `lab down` removes the namespaces).
struct Running {
    swan: SwanBox,
    gw: Daemon,
    control: PathBuf,
    gateway_ns: String,
    scratch: Scratch,
    lab: Lab,
}

/// Starts both ends of `sc` in `lab` and checks the tunnel: Connected, VM-to-VM ping both
/// ways, byte counters that match the pings, no key in any log.
fn run_scenario(sc: &Scenario, lab: Lab) -> Result<Running> {
    let Scenario {
        cloud_site,
        conn,
        cloud_vm_ip,
        device_site,
        device_gateway,
        device_vm_ip,
        device_behind_nat,
        algorithms,
        key,
        ..
    } = *sc;
    let id = LabId::parse(&lab.id)?;
    let scratch = Scratch::new("devcfg-tunnel", &hybridnet_tests::netns::unique_id())?;
    let cloud = cloud_side(&lab, cloud_site, conn)?;
    assert_eq!(cloud.key, key);

    // The cloud gateway, responder only.
    std::fs::write(scratch.join("psk"), &cloud.key)?;
    std::fs::set_permissions(scratch.join("psk"), std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(scratch.join("cloud-gw.toml"), &cloud.toml)?;
    let control = scratch.join("cloud-gw.sock");
    let gateway_ns = id.gateway_netns(cloud_site, &cloud.gateway);
    let gw = start_cloud_gateway(&gateway_ns, &scratch, &control)?;
    let before_device = show_live(&lab, cloud_site, conn, &control, key);
    assert_eq!(
        before_device["properties"]["connectionStatus"], "NotConnected",
        "{before_device:#}"
    );
    let cloud_vm = format!("{cloud_site}/vm1");
    assert!(
        !lab.ping(&cloud_vm, device_vm_ip),
        "{device_vm_ip} answers without a tunnel: the test would prove nothing"
    );

    // The device: strongswan.conf and swanctl.conf from the export, nothing else.
    let file = scratch.join("swanctl.conf");
    let device_ns = id.gateway_netns(device_site, device_gateway);
    let conf = if device_behind_nat {
        let inside = wan_address(&device_ns)?;
        let conf = export_with(
            &lab,
            cloud_site,
            conn,
            &file,
            &["--device-address", &inside],
        );
        assert!(
            conf.contains(&format!("local_addrs = {inside}\n")),
            "{conf}"
        );
        conf
    } else {
        export(&lab, cloud_site, conn, &file)
    };
    let swan_dir = scratch.join("device");
    let strongswan_conf = if sc.strongswan_conf_from_api {
        let peer = devconfig::PeerDevice::from_site(&open_site(&lab, cloud_site)?, conn)?;
        let runtime = devconfig::CharonRuntime {
            vici_socket: swan_dir.join("charon.vici"),
            log_file: Some(swan_dir.join("charon.log")),
        };
        devconfig::StrongSwan::strongswan_conf(&peer, &runtime)
    } else {
        strongswan_conf_from_export(&conf, &swan_dir)?
    };
    let swan = SwanBox::start(&device_ns, &swan_dir, &strongswan_conf)?;
    let loaded_at = std::time::Instant::now();
    swan.load_file(&file)?;
    let sas = swan
        .wait_installed(conn, Duration::from_secs(20))
        .with_context(|| format!("gateway log:\n{}", tail(&gw.log_text(), 40)))?;
    let setup = loaded_at.elapsed();
    assert!(
        sas.contains(algorithms),
        "negotiated algorithms: want {algorithms}\n{sas}"
    );
    let up = wait_connected(&lab, sc, &control)?;
    assert_eq!(
        up["properties"]["tunnelConnectionStatus"][0]["connectionStatus"], "Connected",
        "{up:#}"
    );

    // Traffic both ways; the cloud gateway counts exactly the inner bytes (1028-byte packets).
    let (in0, out0) = counters(&up);
    ping_through(&lab, &cloud_vm, device_vm_ip, &swan);
    ping_through(&lab, &format!("{device_site}/vm1"), cloud_vm_ip, &swan);
    let after = show_live(&lab, cloud_site, conn, &control, key);
    let (in1, out1) = counters(&after);
    let expect = 2 * 10 * 1028;
    for (what, grew) in [("ingress", in1 - in0), ("egress", out1 - out0)] {
        assert!(
            (expect..expect + 3 * 1028).contains(&grew),
            "{what} grew by {grew}, expected {expect} (+ at most a few packets)\n{after:#}"
        );
    }
    eprintln!(
        "{conn}: swanctl --load-all to CHILD_SA INSTALLED in {setup:?}; cloud gateway counted +{} B in, +{} B out for {expect} B of pings each way",
        in1 - in0,
        out1 - out0
    );
    assert!(!gw.log_text().contains(key), "the gateway logged the key");
    assert!(!swan.log().contains(key), "charon logged the key");
    Ok(Running {
        swan,
        gw,
        control,
        gateway_ns,
        scratch,
        lab,
    })
}

/// Waits for `connectionStatus: Connected` in `vpn-connection show --control`.
fn wait_connected(lab: &Lab, sc: &Scenario, control: &Path) -> Result<Value> {
    wait_for(
        Duration::from_secs(10),
        "Connected in vpn-connection show",
        || {
            let v = show_live(lab, sc.cloud_site, sc.conn, control, sc.key);
            (v["properties"]["connectionStatus"] == "Connected").then_some(v)
        },
    )
}

/// Ten 1028-byte pings from VM `from` to `to`, all answered.
fn ping_through(lab: &Lab, from: &str, to: &str, swan: &SwanBox) {
    let o = lab.exec(
        from,
        &[
            "ping", "-c", "10", "-i", "0.1", "-W", "2", "-s", "1000", "-q", to,
        ],
    );
    assert!(
        o.status.success(),
        "ping {from} -> {to} through the tunnel:\n{}\ncharon:\n{}",
        show(&o),
        tail(&swan.log(), 20)
    );
}

fn tunnel_from_export(sc: Scenario) -> Result<()> {
    let lab = Lab::up(sc.example);
    let mut running = run_scenario(&sc, lab)?;
    running.gw.stop(Duration::from_secs(5));
    Ok(())
}

#[test]
fn strongswan_peer_from_export_connects_to_azure_gateway_with_custom_policy() -> Result<()> {
    tunnel_from_export(Scenario {
        example: SEED,
        cloud_site: "azure",
        conn: "azure-to-stackhub",
        cloud_vm_ip: "10.1.1.4",
        device_site: "stackhub",
        device_gateway: "stackhub-gw",
        device_vm_ip: "10.2.1.4",
        device_behind_nat: false,
        algorithms: "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384",
        key: SEED_KEY,
        strongswan_conf_from_api: false,
    })
}

#[test]
fn strongswan_peer_from_export_connects_to_azure_stack_hub_gateway_with_default_policy(
) -> Result<()> {
    tunnel_from_export(Scenario {
        example: SEED,
        cloud_site: "stackhub",
        conn: "stackhub-to-azure",
        cloud_vm_ip: "10.2.1.4",
        device_site: "azure",
        device_gateway: "azure-gw",
        device_vm_ip: "10.1.1.4",
        device_behind_nat: false,
        algorithms: "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384",
        key: SEED_KEY,
        strongswan_conf_from_api: true,
    })
}

#[test]
fn strongswan_peer_behind_nat_from_export_with_device_address() -> Result<()> {
    tunnel_from_export(Scenario {
        example: "examples/hybrid-connection-nat",
        cloud_site: "azure",
        conn: "azure-to-stackhub",
        cloud_vm_ip: "10.1.1.4",
        device_site: "stackhub",
        device_gateway: "stackhub-gw",
        device_vm_ip: "10.2.1.4",
        device_behind_nat: true,
        algorithms: "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384",
        key: SEED_KEY,
        strongswan_conf_from_api: false,
    })
}

#[test]
fn device_config_errors_are_specific() {
    let lab = Lab::up(SEED);
    let run = |args: &[&str]| {
        let mut a = vec!["vpn-connection"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--id", &lab.id]);
        let o = lab.run(&a);
        assert!(!o.status.success(), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!err.contains(SEED_KEY), "{err}");
        err
    };
    let e = run(&[
        "device-config",
        "--site",
        "azure",
        "--name",
        "nope",
        "--vendor",
        "strongswan",
    ]);
    assert!(
        e.contains("site azure has no connection \"nope\" (connections: azure-to-stackhub)"),
        "{e}"
    );
    let e = run(&[
        "device-config",
        "--site",
        "azure",
        "--name",
        "azure-to-stackhub",
        "--vendor",
        "cisco",
    ]);
    assert!(
        e.contains("unknown vendor \"cisco\" (vendors: strongswan, generic)"),
        "{e}"
    );
    let e = run(&[
        "device-config",
        "--site",
        "mars",
        "--name",
        "x",
        "--vendor",
        "strongswan",
    ]);
    assert!(e.contains("no site \"mars\""), "{e}");
    let e = run(&[
        "show",
        "--site",
        "azure",
        "--name",
        "azure-to-stackhub",
        "--control",
        "/nonexistent/hn.sock",
    ]);
    assert!(e.contains("/nonexistent/hn.sock"), "{e}");
    // Without a gateway to ask, the status is Unknown, as on Azure before a gateway reports.
    let o = lab.run(&[
        "vpn-connection",
        "show",
        "--id",
        &lab.id,
        "--site",
        "stackhub",
        "--name",
        "stackhub-to-azure",
    ]);
    assert!(o.status.success(), "{}", show(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["properties"]["connectionStatus"], "Unknown");
    assert_eq!(v["type"], "Microsoft.Network/connections");
    assert!(v["properties"].get("sharedKey").is_none());
    assert!(
        v["properties"].get("ingressBytesTransferred").is_none(),
        "no counters without a gateway"
    );
}

/// A key with quotes, `#`, a backslash and spaces: strongSwan gets it hex-encoded, the gateway
/// byte for byte; they must agree. dpdTimeoutSeconds 9: the device declares the crashed
/// gateway dead within 9 s of its last packet, keeps retrying, and is back up soon after the
/// gateway restarts.
#[test]
fn device_detects_a_crashed_gateway_within_the_dpd_timeout_and_reconnects() -> Result<()> {
    const KEY: &str = "p@ss \"w0rd\" #1 \\ ;";
    let src = Scratch::new("devcfg-src", &hybridnet_tests::netns::unique_id())?;
    lab::copy_tree(&lab::repo_root().join(SEED), &src.path);
    let yaml = std::fs::read_to_string(src.join("lab.yaml"))?;
    let from =
        "      connectionName: azure-to-stackhub\n      sharedKey: hybridnet-lab-shared-key\n";
    assert!(
        yaml.contains(from),
        "the seed's lab.yaml changed shape:\n{yaml}"
    );
    let yaml = yaml.replacen(
        from,
        &format!("      connectionName: azure-to-stackhub\n      sharedKey: '{KEY}'\n      dpdTimeoutSeconds: 9\n"),
        1,
    );
    std::fs::write(src.join("lab.yaml"), yaml)?;
    let sc = Scenario {
        example: SEED,
        cloud_site: "azure",
        conn: "azure-to-stackhub",
        cloud_vm_ip: "10.1.1.4",
        device_site: "stackhub",
        device_gateway: "stackhub-gw",
        device_vm_ip: "10.2.1.4",
        device_behind_nat: false,
        algorithms: "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384",
        key: KEY,
        strongswan_conf_from_api: false,
    };
    let mut r = run_scenario(&sc, Lab::up(&src.path))?;
    let conf = std::fs::read_to_string(r.scratch.join("swanctl.conf"))?;
    assert!(
        conf.contains("dpd_delay = 2s\n") && conf.contains("#       retransmit_timeout = 0.4\n"),
        "{conf}"
    );

    // Crash: SIGKILL, no DELETE is sent. The device must notice by DPD alone.
    // SAFETY: kill(2) on the PID of the gateway this test spawned.
    unsafe { libc::kill(r.gw.pid() as i32, libc::SIGKILL) };
    let crashed = std::time::Instant::now();
    r.gw.stop(Duration::from_secs(5));
    wait_for(
        Duration::from_secs(20),
        "the device to declare the gateway dead",
        || {
            let s = r.swan.swanctl(&["--list-sas"]).unwrap_or_default();
            (!s.contains("ESTABLISHED")).then_some(())
        },
    )
    .with_context(|| format!("charon log:\n{}", tail(&r.swan.log(), 30)))?;
    let detected = crashed.elapsed();
    assert!(
        detected <= Duration::from_millis(9_000 + 1_500),
        "dead peer detected after {detected:?}, dpdTimeoutSeconds is 9\n{}",
        tail(&r.swan.log(), 30)
    );
    assert!(
        r.swan.log().contains("giving up after"),
        "not detected by retransmission timeout:\n{}",
        tail(&r.swan.log(), 30)
    );

    // Back: the device, still retrying, re-establishes without being touched.
    std::thread::sleep(Duration::from_secs(2));
    r.gw = start_cloud_gateway(&r.gateway_ns, &r.scratch, &r.control)?;
    let restarted = std::time::Instant::now();
    r.swan.wait_installed(sc.conn, Duration::from_secs(30))?;
    let back = restarted.elapsed();
    wait_connected(&r.lab, &sc, &r.control)?;
    ping_through(&r.lab, "azure/vm1", "10.2.1.4", &r.swan);
    eprintln!("crashed gateway detected by the device after {detected:?}; tunnel back {back:?} after the gateway restarted");
    assert!(!r.gw.log_text().contains(KEY), "the gateway logged the key");
    r.gw.stop(Duration::from_secs(5));
    Ok(())
}
