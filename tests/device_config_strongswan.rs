//! "Download VPN device configuration" for strongSwan, end to end:
//!
//! * `hybridnet vpn-connection device-config --vendor strongswan` writes a swanctl.conf (0600)
//!   that a real charon accepts (`swanctl --load-all`), with the connection's addresses, IDs,
//!   traffic selectors and lifetimes as charon lists them (VICI `list-conns`), and whose proposals
//!   charon validates (a corrupted proposal in the same file is refused);
//! * a strongSwan peer configured ONLY from that file (swanctl.conf, plus the strongswan.conf
//!   lines printed in its comments) in a namespace of its own on the lab's internet, with its
//!   own LAN, brings the tunnel up with the cloud site's gateway — the lab's own gateway
//!   process when the lab runs one, else `hybridnet gateway run` configured from the site's
//!   resources as the lab would (responder only, so the device must initiate) — for Azure with
//!   the custom policy and with its default, for Azure Stack Hub's default, and behind NAT;
//!   VM-to-VM ping works both ways and `vpn-connection show` reports Connected with byte
//!   counters that match the traffic;
//! * an unresponsive gateway is declared dead by the device within dpdTimeoutSeconds, and the
//!   tunnel comes back by itself when the gateway answers again.

use anyhow::{bail, Context, Result};
use fabric::state::LabDir;
use fabric::LabId;
use serde_json::Value;
use site::{same_id, Resource};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use testkit::lab;
use testkit::lab::{hybridnet_bin, show, Lab};
use testkit::netns::Netns;
use testkit::process::{tail, wait_for, Daemon, Scratch};
use testkit::swan::{Charon, IkeSa};

const SEED: &str = "examples/hybrid-connection";
/// The seed's shared key (examples/hybrid-connection/lab.yaml).
const SEED_KEY: &str = "hybridnet-lab-shared-key";

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

/// Waits until a CHILD_SA of `conn` is INSTALLED in the device's charon; returns its IKE SA.
fn wait_installed(swan: &Charon, conn: &str, timeout: Duration) -> Result<IkeSa> {
    wait_for(timeout, "the device's CHILD_SA INSTALLED", || {
        swan.sas()
            .ok()?
            .into_iter()
            .find(|s| s.name == conn && s.children.iter().any(|c| c.state == "INSTALLED"))
    })
    .with_context(|| format!("charon log:\n{}", tail(&swan.log(), 40)))
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
    assert_eq!(
        names,
        vec!["strongswan", "bird", "frr", "generic"],
        "{text}"
    );
    assert!(text.contains("swanctl.conf"), "{text}");
}

#[test]
fn exported_swanctl_conf_is_accepted_by_charon() -> Result<()> {
    let lab = Lab::up(SEED);
    let scratch = Scratch::new("devcfg-load", &testkit::netns::unique_id())?;
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
        "-o",
        "-",
    ]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), conf);

    let ns = Netns::new(&format!("hn{}-dcfg", testkit::netns::unique_id()))?;
    let swan = Charon::start_with_conf(
        &ns,
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
    let conns = swan.conns()?;
    let c = conns
        .iter()
        .find(|c| c.name == "azure-to-stackhub")
        .with_context(|| format!("not loaded: {conns:#?}"))?;
    // IKEv2, no reauthentication, rekeying every 25920s, dpd delay 11s
    assert_eq!(
        (c.version.as_str(), c.reauth_time, c.rekey_time, c.dpd_delay),
        ("IKEv2", 0, 25920, Some(11)),
        "{c:#?}"
    );
    assert_eq!(c.local_addrs, ["198.51.100.1"], "{c:#?}");
    assert_eq!(c.remote_addrs, ["203.0.113.1"], "{c:#?}");
    let id = |a: &Option<testkit::swan::Auth>| a.as_ref().and_then(|a| a.id.clone());
    assert_eq!(id(&c.local).as_deref(), Some("198.51.100.1"), "{c:#?}");
    assert_eq!(id(&c.remote).as_deref(), Some("203.0.113.1"), "{c:#?}");
    assert_eq!(c.children.len(), 1, "{c:#?}");
    let ch = &c.children[0];
    // TUNNEL, rekeying every 24300s or 94371840000 bytes
    assert_eq!(
        (
            ch.name.as_str(),
            ch.mode.as_str(),
            ch.rekey_time,
            ch.rekey_bytes
        ),
        ("azure-to-stackhub", "TUNNEL", 24300, 94371840000),
        "{c:#?}"
    );
    assert_eq!(ch.local_ts, ["10.2.0.0/16"], "{c:#?}");
    assert_eq!(ch.remote_ts, ["10.1.0.0/16"], "{c:#?}");
    // list-conns does not report proposals; charon parses them at load time: the same file
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
    let conns = swan.conns()?;
    let c = conns
        .iter()
        .find(|c| c.name == "stackhub-to-azure")
        .with_context(|| format!("not loaded: {conns:#?}"))?;
    assert_eq!(c.version, "IKEv2", "{c:#?}");
    assert_eq!(c.local_addrs, ["203.0.113.1"], "{c:#?}");
    assert_eq!(
        c.children
            .iter()
            .map(|ch| ch.remote_ts.clone())
            .collect::<Vec<_>>(),
        [["10.2.0.0/16"]],
        "{c:#?}"
    );
    Ok(())
}

/// What the cloud side's gateway runs, derived from the site store the way Azure would:
/// its public IP, the VNet behind it, the local network gateway's address and prefixes, the
/// connection's key and effective policy.
struct CloudSide {
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
    Ok(CloudSide { toml, key })
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

/// The cloud site, its connection and the device's place: a lab with one site (`kind`) whose
/// VNet 10.1.0.0/16 holds vm1 (10.1.1.4) and a VPN gateway with an IPsec connection
/// `to-onprem` to a local network gateway at 192.0.2.1 with 10.2.0.0/16 behind it; the
/// on-premises device is charon in a namespace this test creates and wires to the lab's
/// internet (directly, or behind a NAT namespace of its own), with its own LAN and VM 10.2.1.4.
#[derive(Clone, Copy)]
struct Scenario {
    /// Site kind of the cloud side.
    kind: &'static str,
    /// The connection's `ipsecPolicies` as YAML flow text (`[]`: the kind's default policy).
    ipsec_policies: &'static str,
    /// The connection's `dpdTimeoutSeconds`.
    dpd_timeout_secs: u32,
    /// The connection's shared key (must never show up in logs or output).
    key: &'static str,
    /// The device sits behind NAT: exported with `--device-address` = its inside address.
    behind_nat: bool,
    /// IKE algorithms charon's IKE SA must show (as `swanctl --list-sas` prints them).
    algorithms: &'static str,
    /// strongswan.conf from `devconfig::StrongSwan::strongswan_conf` (what a lab would use)
    /// instead of the export's comments.
    strongswan_conf_from_api: bool,
    /// `lab up --no-gateways`: the test runs the cloud gateway itself, from the site store.
    no_lab_gateways: bool,
}

const CLOUD: &str = "cloud";
const CONN: &str = "to-onprem";
const CLOUD_VM: &str = "cloud/vm1";
const CLOUD_VM_IP: &str = "10.1.1.4";
const DEVICE_PUBLIC: &str = "192.0.2.1";
const DEVICE_VM_IP: &str = "10.2.1.4";
/// The ASH-compatible custom policy Azure needs (AZURE-FACTS).
const ASH_POLICY: &str = "[{saLifeTimeSeconds: 27000, saDataSizeKilobytes: 102400000, ipsecEncryption: GCMAES256, ipsecIntegrity: GCMAES256, ikeEncryption: AES256, ikeIntegrity: SHA384, dhGroup: ECP384, pfsGroup: ECP384}]";

/// The scenario's lab directory (lab.yaml + the seed's templates) inside `scratch`.
fn lab_dir(sc: &Scenario, scratch: &Scratch) -> Result<PathBuf> {
    let dir = scratch.join("lab");
    lab::copy_tree(
        &lab::repo_root().join(SEED).join("templates"),
        &dir.join("templates"),
    );
    let site_template = if sc.kind == "azure" {
        "azure-site.json"
    } else {
        "stackhub-site.json"
    };
    let yaml = format!(
        r#"sites:
  - name: {CLOUD}
    kind: {kind}
    publicPrefix: 203.0.113.0/24
deployments:
  - name: site
    site: {CLOUD}
    template: templates/{site_template}
    set:
      gatewayName: cloud-gw
      vnetAddressPrefix: 10.1.0.0/16
      subnetPrefix: 10.1.1.0/24
      gatewaySubnetPrefix: 10.1.255.0/27
  - name: connection
    site: {CLOUD}
    template: templates/connection.json
    set:
      gatewayName: cloud-gw
      localGatewayName: onprem
      localGatewayIpAddress: {DEVICE_PUBLIC}
      localAddressPrefixes: ["10.2.0.0/16"]
      connectionName: {CONN}
      sharedKey: '{key}'
      dpdTimeoutSeconds: {dpd}
      ipsecPolicies: {policies}
"#,
        kind = sc.kind,
        key = sc.key.replace('\'', "''"),
        dpd = sc.dpd_timeout_secs,
        policies = sc.ipsec_policies,
    );
    std::fs::write(dir.join("lab.yaml"), yaml)?;
    Ok(dir)
}

/// The on-premises side: the device namespace (charon), its LAN's VM, and maybe a NAT device.
/// Dropping it kills what runs inside and removes the namespaces (and with them the link into
/// the lab's internet).
struct DeviceNet {
    dev: Netns,
    vm: Netns,
    _nat: Option<Netns>,
    /// The device's own address on its outside link.
    outside: String,
}

fn device_net(lab: &Lab, scratch: &Scratch, behind_nat: bool) -> Result<DeviceNet> {
    let id = testkit::netns::unique_id();
    let internet = LabId::parse(&lab.id)?.internet_netns();
    let dev = Netns::new(&format!("hn{id}-dev"))?;
    let vm = Netns::new(&format!("hn{id}-dvm"))?;
    testkit::netns::veth(&vm, "eth0", &dev, "lan")?;
    vm.addr("eth0", &format!("{DEVICE_VM_IP}/24"))?;
    dev.addr("lan", "10.2.1.1/24")?;
    vm.exec("ip", &["route", "add", "default", "via", "10.2.1.1"])?;
    dev.make_router()?;
    let nat = if behind_nat {
        let nat = Netns::new(&format!("hn{id}-nat"))?;
        testkit::netns::veth(&nat, "lan", &dev, "wan")?;
        nat.addr("lan", "100.64.0.1/24")?;
        dev.addr("wan", "100.64.0.2/24")?;
        dev.exec("ip", &["route", "add", "default", "via", "100.64.0.1"])?;
        nat.make_router()?;
        let rules = scratch.join("nat.nft");
        std::fs::write(
            &rules,
            "table ip nat {\n  chain prerouting {\n    type nat hook prerouting priority -100;\n    iifname \"wan\" udp dport { 500, 4500 } dnat to 100.64.0.2\n  }\n  chain postrouting {\n    type nat hook postrouting priority 100;\n    oifname \"wan\" masquerade\n  }\n}\n",
        )?;
        nat.exec("nft", &["-f", rules.to_str().unwrap()])?;
        Some(nat)
    } else {
        None
    };
    let outer = nat.as_ref().unwrap_or(&dev);
    let iname = format!("hnx{id}");
    testkit::netns::sh(
        "ip",
        &[
            "link",
            "add",
            "wan",
            "netns",
            outer.name(),
            "type",
            "veth",
            "peer",
            "name",
            &iname,
            "netns",
            &internet,
        ],
    )?;
    outer.addr("wan", &format!("{DEVICE_PUBLIC}/24"))?;
    testkit::netns::sh(
        "ip",
        &[
            "netns",
            "exec",
            &internet,
            "ip",
            "addr",
            "add",
            "192.0.2.254/24",
            "dev",
            &iname,
        ],
    )?;
    testkit::netns::sh(
        "ip",
        &[
            "netns", "exec", &internet, "ip", "link", "set", &iname, "up",
        ],
    )?;
    if nat.is_none() {
        dev.exec("ip", &["route", "add", "default", "via", "192.0.2.254"])?;
    } else {
        outer.exec("ip", &["route", "add", "default", "via", "192.0.2.254"])?;
    }
    let outside = if behind_nat {
        "100.64.0.2"
    } else {
        DEVICE_PUBLIC
    }
    .to_string();
    Ok(DeviceNet {
        dev,
        vm,
        _nat: nat,
        outside,
    })
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

/// A `lab up` running in the background; killed (by PID) if the test ends before it does.
struct UpProcess {
    child: Option<std::process::Child>,
    output: Option<std::process::Output>,
}

impl UpProcess {
    /// Whether it has exited (its output is then kept).
    fn finished(&mut self) -> bool {
        if self.output.is_some() {
            return true;
        }
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(_))) => {
                let child = self.child.take().expect("child");
                self.output = child.wait_with_output().ok();
                true
            }
            _ => false,
        }
    }

    /// Waits for it to exit and returns its output.
    fn output(&mut self) -> std::process::Output {
        if let Some(child) = self.child.take() {
            self.output = Some(child.wait_with_output().expect("wait for lab up"));
        }
        self.output.clone().expect("lab up output")
    }
}

impl Drop for UpProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `lab up DIR` started in the background; returns the lab (torn down on drop) as soon as it
/// is registered, with the still running `lab up`.
fn lab_up_background(dir: PathBuf, no_gateways: bool) -> Result<(Lab, UpProcess)> {
    use std::os::unix::process::ExitStatusExt;
    let state = lab::scratch_dir("state");
    let mut args = vec!["lab", "up", dir.to_str().unwrap()];
    if no_gateways {
        args.push("--no-gateways");
    }
    let child = lab::hybridnet_cmd(&state, &args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut up = UpProcess {
        child: Some(child),
        output: None,
    };
    let id = wait_for(Duration::from_secs(20), "the lab to be registered", || {
        lab::registered_id(&state).or_else(|| up.finished().then(String::new))
    })?;
    if id.is_empty() {
        bail!(
            "lab up ended before registering a lab:\n{}",
            show(&up.output())
        );
    }
    let placeholder = std::process::Output {
        status: std::process::ExitStatus::from_raw(0),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    Ok((
        Lab {
            dir,
            state,
            id,
            up_output: placeholder,
        },
        up,
    ))
}

/// PIDs of `hybridnet gateway run` processes in namespace `ns` (the lab's own gateways).
fn lab_gateway_pids(ns: &str) -> Vec<i32> {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| c.windows(12).any(|w| w == b"gateway\0run\0"))
                .unwrap_or(false)
        })
        .collect()
}

/// A scenario with its tunnel up. Fields drop in order: the device, our cloud gateway (if the
/// lab does not run one), the device's namespaces, the scratch directory, then the lab.
struct Running {
    swan: Charon,
    /// Our own cloud gateway, when the lab does not run gateways itself.
    gw: Option<Daemon>,
    control: PathBuf,
    gateway_ns: String,
    net: DeviceNet,
    scratch: Scratch,
    _up: UpProcess,
    lab: Lab,
    sc: Scenario,
}

impl Running {
    /// `vpn-connection show` for the connection: through our gateway's control socket, or
    /// the lab's gateway found by `show` itself.
    fn status(&self) -> Value {
        if self.gw.is_some() {
            show_live(&self.lab, CLOUD, CONN, &self.control, self.sc.key)
        } else {
            show_discovered(&self.lab, CLOUD, CONN, self.sc.key)
        }
    }

    fn wait_connected(&self) -> Result<Value> {
        wait_for(
            Duration::from_secs(15),
            "Connected in vpn-connection show",
            || {
                let v = self.status();
                (v["properties"]["connectionStatus"] == "Connected").then_some(v)
            },
        )
    }

    /// Ten 1028-byte pings from the cloud VM to the device's VM and back, all answered.
    fn ping_both_ways(&self) {
        let o = self.lab.exec(
            CLOUD_VM,
            &[
                "ping",
                "-c",
                "10",
                "-i",
                "0.1",
                "-W",
                "2",
                "-s",
                "1000",
                "-q",
                DEVICE_VM_IP,
            ],
        );
        assert!(
            o.status.success(),
            "ping cloud -> device LAN:\n{}\ncharon:\n{}",
            show(&o),
            tail(&self.swan.log(), 20)
        );
        let o = self
            .net
            .vm
            .exec_unchecked(
                "ping",
                &[
                    "-c",
                    "10",
                    "-i",
                    "0.1",
                    "-W",
                    "2",
                    "-s",
                    "1000",
                    "-q",
                    CLOUD_VM_IP,
                ],
            )
            .unwrap();
        assert!(
            o.status.success(),
            "ping device LAN -> cloud:\n{}\ncharon:\n{}",
            show(&o),
            tail(&self.swan.log(), 20)
        );
    }
}

/// Builds the scenario's lab and device, starts charon from the export, and checks the
/// tunnel: Connected, VM-to-VM ping both ways, byte counters that match the pings, no key in
/// any log or output.
fn run_scenario(sc: Scenario) -> Result<Running> {
    let scratch = Scratch::new("devcfg-tunnel", &testkit::netns::unique_id())?;
    let (lab, mut up) = lab_up_background(lab_dir(&sc, &scratch)?, sc.no_lab_gateways)?;
    let id = LabId::parse(&lab.id)?;
    let gateway_ns = id.gateway_netns(CLOUD, "cloud-gw");
    let control = scratch.join("cloud-gw.sock");
    // `lab up` waits for its tunnels; go on once it runs the cloud gateway, or has finished
    // without one (a lab that does not run gateways yet).
    wait_for(
        Duration::from_secs(30),
        "lab up to start the cloud gateway or finish",
        || (up.finished() || !lab_gateway_pids(&gateway_ns).is_empty()).then_some(()),
    )?;
    if up.finished() {
        let o = up.output();
        assert!(o.status.success(), "lab up failed:\n{}", show(&o));
    }
    // The lab may run the cloud gateway itself; otherwise run it as the lab would, responder
    // only, so the tunnel coming up proves the device initiates from its exported config.
    let gw = if lab_gateway_pids(&gateway_ns).is_empty() {
        let cloud = cloud_side(&lab, CLOUD, CONN)?;
        assert_eq!(cloud.key, sc.key);
        std::fs::write(scratch.join("psk"), &cloud.key)?;
        std::fs::set_permissions(scratch.join("psk"), std::fs::Permissions::from_mode(0o600))?;
        std::fs::write(scratch.join("cloud-gw.toml"), &cloud.toml)?;
        Some(start_cloud_gateway(&gateway_ns, &scratch, &control)?)
    } else {
        eprintln!("the lab runs the cloud gateway itself");
        None
    };
    assert_eq!(
        gw.is_some(),
        sc.no_lab_gateways,
        "the lab runs gateway processes unless told --no-gateways"
    );
    let net = device_net(&lab, &scratch, sc.behind_nat)?;
    assert!(
        !lab.ping(CLOUD_VM, DEVICE_VM_IP),
        "{DEVICE_VM_IP} answers without a tunnel: the test would prove nothing"
    );

    // The device: strongswan.conf and swanctl.conf from the export, nothing else.
    let file = scratch.join("swanctl.conf");
    let conf = if sc.behind_nat {
        let conf = export_with(
            &lab,
            CLOUD,
            CONN,
            &file,
            &["--device-address", &net.outside],
        );
        assert!(
            conf.contains(&format!("local_addrs = {}\n", net.outside)),
            "{conf}"
        );
        conf
    } else {
        export(&lab, CLOUD, CONN, &file)
    };
    assert!(
        conf.contains(&format!("            id = {DEVICE_PUBLIC}\n")),
        "{conf}"
    );
    let swan_dir = scratch.join("device");
    let strongswan_conf = if sc.strongswan_conf_from_api {
        let peer = devconfig::PeerDevice::from_site(&open_site(&lab, CLOUD)?, CONN)?;
        let runtime = devconfig::CharonRuntime {
            vici_socket: swan_dir.join("charon.vici"),
            log_file: Some(swan_dir.join("charon.log")),
        };
        devconfig::StrongSwan::strongswan_conf(&peer, &runtime)
    } else {
        strongswan_conf_from_export(&conf, &swan_dir)?
    };
    let swan = Charon::start_with_conf(&net.dev, &swan_dir, &strongswan_conf)?;
    let loaded_at = std::time::Instant::now();
    swan.load_file(&file)?;
    let gw_log = |gw: &Option<Daemon>| {
        gw.as_ref()
            .map(|g| tail(&g.log_text(), 40))
            .unwrap_or_default()
    };
    let ike = wait_installed(&swan, CONN, Duration::from_secs(20))
        .with_context(|| format!("gateway log:\n{}", gw_log(&gw)))?;
    let setup = loaded_at.elapsed();
    assert_eq!(
        ike.algorithms(),
        sc.algorithms,
        "negotiated algorithms:\n{ike:#?}"
    );
    if !up.finished() {
        // The lab's own `lab up` must now see its connection come up, and say so.
        let o = up.output();
        assert!(
            o.status.success(),
            "lab up did not see the tunnel to the exported device come up:\n{}",
            show(&o)
        );
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("Connected"), "{text}");
    }
    let r = Running {
        swan,
        gw,
        control,
        gateway_ns,
        net,
        scratch,
        _up: up,
        lab,
        sc,
    };
    let up = r.wait_connected()?;
    assert_eq!(
        up["properties"]["tunnelConnectionStatus"][0]["connectionStatus"], "Connected",
        "{up:#}"
    );
    let found = show_discovered(&r.lab, CLOUD, CONN, sc.key);
    assert_eq!(
        found["properties"]["connectionStatus"], "Connected",
        "show finds the gateway by itself\n{found:#}"
    );

    // Traffic both ways; the cloud gateway counts exactly the inner bytes (1028-byte packets).
    let (in0, out0) = counters(&up);
    r.ping_both_ways();
    let after = r.status();
    let (in1, out1) = counters(&after);
    let expect = 2 * 10 * 1028;
    for (what, grew) in [("ingress", in1 - in0), ("egress", out1 - out0)] {
        assert!(
            (expect..expect + 3 * 1028).contains(&grew),
            "{what} grew by {grew}, expected {expect} (+ at most a few packets)\n{after:#}"
        );
    }
    eprintln!(
        "{} ({}): swanctl --load-all to CHILD_SA INSTALLED in {setup:?}; cloud gateway counted +{} B in, +{} B out for {expect} B of pings each way",
        sc.kind,
        if sc.behind_nat { "device behind NAT" } else { "device on a public address" },
        in1 - in0,
        out1 - out0
    );
    if let Some(g) = &r.gw {
        assert!(!g.log_text().contains(sc.key), "the gateway logged the key");
    }
    assert!(!r.swan.log().contains(sc.key), "charon logged the key");
    Ok(r)
}

fn tunnel_from_export(sc: Scenario) -> Result<()> {
    let mut r = run_scenario(sc)?;
    if let Some(g) = r.gw.as_mut() {
        g.stop(Duration::from_secs(5));
    }
    Ok(())
}

#[test]
fn strongswan_peer_from_export_connects_to_azure_gateway_with_custom_policy() -> Result<()> {
    tunnel_from_export(Scenario {
        kind: "azure",
        ipsec_policies: ASH_POLICY,
        dpd_timeout_secs: 45,
        key: SEED_KEY,
        behind_nat: false,
        algorithms: "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384",
        strongswan_conf_from_api: false,
        no_lab_gateways: false,
    })
}

#[test]
fn strongswan_peer_from_export_connects_to_azure_gateway_with_default_policy() -> Result<()> {
    // Azure's default: DH group 2 (modp1024), AES256/SHA1 first.
    tunnel_from_export(Scenario {
        kind: "azure",
        ipsec_policies: "[]",
        dpd_timeout_secs: 45,
        key: SEED_KEY,
        behind_nat: false,
        algorithms: "AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        strongswan_conf_from_api: false,
        no_lab_gateways: true,
    })
}

#[test]
fn strongswan_peer_from_export_connects_to_azure_stack_hub_gateway_with_default_policy(
) -> Result<()> {
    tunnel_from_export(Scenario {
        kind: "azure-stack-hub",
        ipsec_policies: "[]",
        dpd_timeout_secs: 45,
        key: SEED_KEY,
        behind_nat: false,
        algorithms: "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384",
        strongswan_conf_from_api: true,
        no_lab_gateways: false,
    })
}

#[test]
fn strongswan_peer_behind_nat_from_export_with_device_address() -> Result<()> {
    tunnel_from_export(Scenario {
        kind: "azure",
        ipsec_policies: ASH_POLICY,
        dpd_timeout_secs: 45,
        key: SEED_KEY,
        behind_nat: true,
        algorithms: "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384",
        strongswan_conf_from_api: false,
        no_lab_gateways: false,
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
        e.contains("unknown vendor \"cisco\" (vendors: strongswan, bird, frr, generic)"),
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
    // Without a gateway to ask, the status is Unknown, as on Azure before a gateway reports;
    // once the lab runs gateways, it is whatever the lab's gateway says.
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
    assert_eq!(v["type"], "Microsoft.Network/connections");
    assert!(v["properties"].get("sharedKey").is_none());
    if v["hybridnet"]["statusSource"].is_null() {
        assert_eq!(v["properties"]["connectionStatus"], "Unknown");
        assert!(
            v["properties"].get("ingressBytesTransferred").is_none(),
            "no counters without a gateway"
        );
        let note = v["hybridnet"]["statusNote"].as_str().unwrap_or("");
        assert!(
            note.contains("no hybridnet gateway process runs in namespace")
                && note.contains("stackhub-gw"),
            "{v:#}"
        );
    } else {
        let st = v["properties"]["connectionStatus"].as_str().unwrap_or("");
        assert!(
            ["Connecting", "Connected", "NotConnected"].contains(&st),
            "{v:#}"
        );
    }
}

/// A key with quotes, `#`, a backslash and spaces: strongSwan gets it hex-encoded, the gateway
/// byte for byte; they must agree. dpdTimeoutSeconds 9: when the cloud gateway stops
/// answering (frozen with SIGSTOP: nothing is sent, as after a crash, and the lab's own
/// reconciliation is not involved), the device declares it dead within 9 s of its last packet
/// by DPD alone, keeps retrying, and the tunnel is back by itself soon after the gateway is.
#[test]
fn device_detects_an_unresponsive_gateway_within_the_dpd_timeout_and_reconnects() -> Result<()> {
    const KEY: &str = "p@ss \"w0rd\" #1 \\ ;";
    let r = run_scenario(Scenario {
        kind: "azure",
        ipsec_policies: ASH_POLICY,
        dpd_timeout_secs: 9,
        key: KEY,
        behind_nat: false,
        algorithms: "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384",
        strongswan_conf_from_api: false,
        no_lab_gateways: false,
    })?;
    let conf = std::fs::read_to_string(r.scratch.join("swanctl.conf"))?;
    assert!(
        conf.contains("dpd_delay = 2s\n") && conf.contains("#       retransmit_timeout = 0.4\n"),
        "{conf}"
    );
    let pids: Vec<i32> = match &r.gw {
        Some(g) => vec![g.pid() as i32],
        None => lab_gateway_pids(&r.gateway_ns),
    };
    assert!(!pids.is_empty(), "no cloud gateway process");
    /// Resumes the frozen gateway even if the test fails midway.
    struct Thaw(Vec<i32>);
    impl Drop for Thaw {
        fn drop(&mut self) {
            for p in &self.0 {
                // SAFETY: kill(2) on a gateway process of this test's own lab.
                unsafe { libc::kill(*p, libc::SIGCONT) };
            }
        }
    }
    let frozen = std::time::Instant::now();
    for p in &pids {
        // SAFETY: kill(2) on a gateway process of this test's own lab.
        unsafe { libc::kill(*p, libc::SIGSTOP) };
    }
    let thaw = Thaw(pids);
    wait_for(
        Duration::from_secs(20),
        "the device to declare the gateway dead",
        || {
            let sas = r.swan.sas().ok()?;
            sas.iter().all(|s| s.state != "ESTABLISHED").then_some(())
        },
    )
    .with_context(|| format!("charon log:\n{}", tail(&r.swan.log(), 30)))?;
    let detected = frozen.elapsed();
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
    let resumed = std::time::Instant::now();
    drop(thaw);
    wait_installed(&r.swan, CONN, Duration::from_secs(30))?;
    let back = resumed.elapsed();
    r.wait_connected()?;
    r.ping_both_ways();
    eprintln!("unresponsive gateway detected by the device after {detected:?}; tunnel back {back:?} after the gateway resumed");
    if let Some(g) = &r.gw {
        assert!(!g.log_text().contains(KEY), "the gateway logged the key");
    }
    Ok(())
}
