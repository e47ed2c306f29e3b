//! The classic Azure tutorial in the lab: `hybridnet lab up examples/azure-to-strongswan` runs
//! an Azure VPN gateway and, on site `onprem` (kind strongswan), a charon configured only from
//! the Azure connection's device configuration export. Then, from outside: ping and verified
//! TCP both ways, the device's SA with the Azure default policy's algorithms (in `swanctl
//! --list-sas` inside its namespace and in `lab status`), the Azure connection Connected with
//! byte counters that grow by what was sent, and `lab down` leaving no namespace or charon.

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::lab;
use testkit::lab::{show, Lab};
use testkit::process::{wait_for, wait_for_every};

const KEY: &str = "hybridnet-lab-shared-key";

fn azure_conn(status: &Value) -> Value {
    status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "azure")
        .and_then(|s| {
            s["connections"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "azure-to-onprem")
        })
        .cloned()
        .unwrap_or_else(|| panic!("no connection azure/azure-to-onprem in {status:#}"))
}

fn counters(status: &Value) -> (u64, u64) {
    let c = azure_conn(status);
    (
        c["ingressBytesTransferred"]
            .as_u64()
            .unwrap_or_else(|| panic!("no ingress counter: {c:#}")),
        c["egressBytesTransferred"]
            .as_u64()
            .unwrap_or_else(|| panic!("no egress counter: {c:#}")),
    )
}

fn device(status: &Value) -> Value {
    status["strongswanDevices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["site"] == "onprem"))
        .cloned()
        .unwrap_or_else(|| panic!("no strongSwan device in {status:#}"))
}

/// Datagrams the kernel dropped in `netns` because a UDP socket's receive buffer was full
/// (`Udp: RcvbufErrors` in /proc/net/snmp).
fn udp_rcvbuf_errors(netns: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "cat", "/proc/net/snmp"])
        .output()
        .expect("read /proc/net/snmp");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut udp = text.lines().filter(|l| l.starts_with("Udp: "));
    let (names, values) = (udp.next().unwrap_or(""), udp.next().unwrap_or(""));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no Udp RcvbufErrors in {netns}: {text}"))
}

/// Live (not zombie) processes named charon whose network namespace is `netns`.
fn charons_in(netns: &str) -> Vec<i32> {
    let out = Command::new("ip")
        .args(["netns", "pids", netns])
        .output()
        .expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|pid| live_charon(*pid))
        .collect()
}

fn live_charon(pid: i32) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit_once(')')
        .map(|(_, r)| r.trim_start().starts_with('Z'))
        .unwrap_or(true);
    comm.trim() == "charon" && !zombie
}

/// Whether charon `pid` is gone (or a zombie) within 3 s.
fn ends_within_3s(pid: i32) -> bool {
    wait_for(Duration::from_secs(3), "charon to end", || {
        (!live_charon(pid)).then_some(())
    })
    .is_ok()
}

fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn azure_gateway_and_onprem_strongswan_from_the_export_carry_traffic_both_ways() {
    let started = Instant::now();
    let lab = Lab::up("examples/azure-to-strongswan");
    let up_time = started.elapsed();
    let out = String::from_utf8_lossy(&lab.up_output.stdout).into_owned();
    for step in [
        "gateway processes: 1 started",
        "strongSwan devices: 1 started",
        "connections: azure/azure-to-onprem Connected",
        "ping azure/vm1 -> onprem/vm1 (10.2.1.4): 3/3 replies",
        "ping onprem/vm1 -> azure/vm1 (10.1.1.4): 3/3 replies",
        "TCP azure/vm1 -> onprem/vm1",
        "TCP onprem/vm1 -> azure/vm1",
    ] {
        assert!(
            out.contains(step),
            "summary lacks {step:?}:\n{}",
            show(&lab.up_output)
        );
    }
    eprintln!("lab up of azure-to-strongswan took {up_time:?}");

    // The device: its configuration is the export, private; charon runs in its namespace.
    let dev_ns = format!("hn-{}-onprem-gw-strongswan", lab.id);
    let charon = charons_in(&dev_ns);
    assert_eq!(charon.len(), 1, "one charon in {dev_ns}: {charon:?}");
    let dir = lab
        .state
        .join("labs")
        .join(&lab.id)
        .join("strongswan")
        .join("onprem");
    let export = std::fs::read_to_string(dir.join("azure--azure-to-onprem.swanctl.conf"))
        .expect("the exported swanctl.conf");
    assert!(
        export
            .contains("Generated by `hybridnet vpn-connection device-config --vendor strongswan`"),
        "{export}"
    );
    // The same text the CLI exports for that connection (modulo nothing).
    let cli_out = lab.state.join("cli-export.conf");
    let cli = lab.run(&[
        "vpn-connection",
        "device-config",
        "--id",
        &lab.id,
        "--site",
        "azure",
        "--name",
        "azure-to-onprem",
        "--vendor",
        "strongswan",
        "--output",
        cli_out.to_str().unwrap(),
    ]);
    assert!(cli.status.success(), "{}", show(&cli));
    assert_eq!(
        std::fs::read_to_string(&cli_out).unwrap(),
        export,
        "the lab loads exactly the CLI's export"
    );
    for f in [
        "azure--azure-to-onprem.swanctl.conf",
        "swanctl.conf",
        "strongswan.conf",
        "charon.log",
    ] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let log = std::fs::read_to_string(dir.join("charon.log")).unwrap();
    assert!(!log.contains(KEY), "charon logged the key");

    // swanctl --list-sas inside the device namespace: the Azure default policy's algorithms.
    // Text on purpose: this is the command the example's README gives a person (lab status,
    // checked below, reads the same SAs over VICI).
    let sas = Command::new("ip")
        .args(["netns", "exec", &dev_ns, "swanctl", "--list-sas", "--uri"])
        .arg(format!("unix://{}", dir.join("charon.vici").display()))
        .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
        .output()
        .expect("swanctl");
    let sas_text = String::from_utf8_lossy(&sas.stdout).into_owned();
    assert!(sas.status.success(), "{}", show(&sas));
    for want in [
        "azure-to-onprem: #",
        "ESTABLISHED, IKEv2",
        "192.0.2.1[4500]",
        "203.0.113.1[4500]",
        "AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        "INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256",
        "10.2.0.0/16",
        "10.1.0.0/16",
    ] {
        assert!(
            sas_text.contains(want),
            "--list-sas lacks {want:?}:\n{sas_text}"
        );
    }

    // lab status: the device with its parsed SA, and the Azure connection Connected.
    let status = lab.status();
    let d = device(&status);
    assert_eq!(d["publicAddress"], "192.0.2.1", "{d:#}");
    assert_eq!(d["charonPid"], charon[0], "{d:#}");
    assert_eq!(
        d["configured"],
        serde_json::json!(["azure-to-onprem"]),
        "{d:#}"
    );
    let ike = &d["sas"][0];
    assert_eq!(ike["state"], "ESTABLISHED", "{d:#}");
    assert_eq!(
        ike["algorithms"],
        "AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024"
    );
    let child = &ike["children"][0];
    assert_eq!(child["state"], "INSTALLED", "{d:#}");
    assert_eq!(child["algorithms"], "AES_GCM_16-256");
    assert_eq!(child["localTs"], serde_json::json!(["10.2.0.0/16"]));
    assert_eq!(child["remoteTs"], serde_json::json!(["10.1.0.0/16"]));
    let c = azure_conn(&status);
    assert_eq!(c["connectionStatus"], "Connected", "{c:#}");
    assert_eq!(
        c["resource"]["hybridnet"]["espAlgorithms"], "AES_GCM_16-256",
        "{c:#}"
    );
    let text = lab.run(&["lab", "status", "--id", &lab.id]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains("strongSwan device 192.0.2.1 (LAN 10.2.1.254)"),
        "{text}"
    );
    assert!(
        text.contains("CHILD_SA azure-to-onprem INSTALLED TUNNEL-in-UDP ESP AES_GCM_16-256"),
        "{text}"
    );
    assert!(
        text.contains("connection azure-to-onprem [Succeeded] Connected"),
        "{text}"
    );
    assert!(!text.contains(KEY));

    // From outside, as a user would.
    assert!(lab.ping("azure/vm1", "10.2.1.4"));
    assert!(lab.ping("onprem/vm1", "10.1.1.4"));

    // Verified TCP both ways; Azure's counters and the device's agree with what was sent.
    let ns = |site: &str| format!("hn-{}-{site}-vm1", lab.id);
    let len: u64 = 3 << 20;
    let (in0, out0) = counters(&lab.status());
    let rcvbuf0 = udp_rcvbuf_errors(&dev_ns);
    let dev0 = device(&lab.status())["sas"][0]["children"][0].clone();
    fabric::verify::tcp_transfer(
        &ns("onprem"),
        "10.2.1.4".parse().unwrap(),
        7101,
        &ns("azure"),
        len,
    )
    .expect("TCP azure -> onprem");
    settle();
    let mid = lab.status();
    let (in1, out1) = counters(&mid);
    let sent = out1 - out0;
    // strongSwan's userspace ESP drops datagrams when its UDP receive buffer overflows (the
    // kernel counts them); TCP sends those again, and every other byte Azure sent must show
    // up on the device.
    let overflowed = udp_rcvbuf_errors(&dev_ns) - rcvbuf0;
    assert!(
        sent >= len && sent < len + len / 10 + overflowed * 1500,
        "azure egress grew by {sent} for {len} B ({overflowed} datagrams overflowed the \
         device's receive buffer)"
    );
    let dev1 = device(&mid)["sas"][0]["children"][0].clone();
    let dev_in = dev1["bytesIn"].as_u64().unwrap() - dev0["bytesIn"].as_u64().unwrap();
    assert!(
        dev_in <= sent && sent - dev_in <= overflowed * 1500,
        "the device received what Azure sent ({dev_in} of {sent} B; {overflowed} datagrams \
         overflowed its receive buffer)\n{dev0:#}\n{dev1:#}"
    );
    assert!(
        in1 - in0 < len / 10,
        "the return direction carried only ACKs"
    );
    fabric::verify::tcp_transfer(
        &ns("azure"),
        "10.1.1.4".parse().unwrap(),
        7102,
        &ns("onprem"),
        len,
    )
    .expect("TCP onprem -> azure");
    settle();
    let after = lab.status();
    let (in2, _) = counters(&after);
    let back = in2 - in1;
    assert!(
        back >= len && back < len + len / 10,
        "azure ingress grew by {back} for {len} B"
    );
    let dev2 = device(&after)["sas"][0]["children"][0].clone();
    let dev_out = dev2["bytesOut"].as_u64().unwrap() - dev1["bytesOut"].as_u64().unwrap();
    assert_eq!(dev_out, back, "Azure received what the device sent");

    // A changed connection (new shared key) is exported and loaded again into the running
    // charon; the tunnel comes back with the new key on both ends.
    let tpl = lab.dir.join("templates/connection.json");
    let redeploy = lab.run(&[
        "deploy",
        "--id",
        &lab.id,
        "--site",
        "azure",
        tpl.to_str().unwrap(),
        "--name",
        "azure-connection",
        "--set",
        "gatewayName=azure-gw",
        "--set",
        "localGatewayName=onprem-lgw",
        "--set",
        "localGatewayIpAddress=${deployments.onprem-site.outputs.devicePublicIp}",
        "--set",
        "localAddressPrefixes=[\"10.2.0.0/16\"]",
        "--set",
        "connectionName=azure-to-onprem",
        "--set",
        "sharedKey=a-rotated-shared-key",
    ]);
    // Progress goes to stderr for `deploy`.
    let redeploy_text = show(&redeploy);
    assert!(redeploy.status.success(), "{}", show(&redeploy));
    assert!(
        redeploy_text.contains("strongSwan devices: 1 reloaded"),
        "{}",
        show(&redeploy)
    );
    let export = std::fs::read_to_string(dir.join("azure--azure-to-onprem.swanctl.conf")).unwrap();
    let rotated: String = b"a-rotated-shared-key"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        export.contains(&format!("secret = 0x{rotated}")),
        "the export carries the new key"
    );
    assert_eq!(
        charons_in(&dev_ns),
        charon,
        "a new key needs no charon restart"
    );
    // no pause between tries: each ping waits up to a second for its reply
    wait_for_every(
        Duration::ZERO,
        Duration::from_secs(15),
        "a tunnel with the rotated key",
        || lab.ping("onprem/vm1", "10.1.1.4").then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}:\n{:#}", lab.status()));
    assert_eq!(azure_conn(&lab.status())["connectionStatus"], "Connected");

    // lab up again: charon keeps running (the export's header may name the gateway's new
    // provisioningState once, which is loaded again); a third changes nothing at all.
    for _ in 0..2 {
        let again = lab.up_again();
        assert!(again.status.success(), "{}", show(&again));
    }
    let again = lab.up_again();
    let again_text = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(
        again_text.contains("strongSwan devices: 1 unchanged"),
        "{again_text}"
    );
    assert_eq!(charons_in(&dev_ns), charon, "charon kept running");

    // lab down: no namespace, no charon.
    let down = lab.down();
    assert!(down.status.success(), "{}", show(&down));
    assert!(lab.namespaces().is_empty(), "{:?}", lab.namespaces());
    assert!(
        ends_within_3s(charon[0]),
        "charon {} survived lab down",
        charon[0]
    );
}

/// The same with the strongSwan box behind its site's NAT device: it owns an inside address,
/// and the export (`--device-address`) keeps the public IP as its IKE identity.
#[test]
fn strongswan_site_behind_nat_comes_up_from_the_export() {
    let src = lab::scratch_dir("sw-nat-src");
    lab::copy_tree(&lab::repo_root().join("examples/azure-to-strongswan"), &src);
    let yaml = std::fs::read_to_string(src.join("lab.yaml")).unwrap();
    let natted = yaml.replace(
        "    kind: strongswan\n    publicPrefix: 192.0.2.0/24\n",
        "    kind: strongswan\n    publicPrefix: 192.0.2.0/24\n    nat: true\n",
    );
    assert_ne!(
        natted, yaml,
        "the example's onprem site is where the test expects it"
    );
    std::fs::write(src.join("lab.yaml"), natted).unwrap();
    let lab = Lab::up(&src);
    let out = String::from_utf8_lossy(&lab.up_output.stdout).into_owned();
    for step in [
        "strongSwan devices: 1 started",
        "connections: azure/azure-to-onprem Connected",
        "ping azure/vm1 -> onprem/vm1 (10.2.1.4): 3/3 replies",
        "ping onprem/vm1 -> azure/vm1 (10.1.1.4): 3/3 replies",
    ] {
        assert!(
            out.contains(step),
            "summary lacks {step:?}:\n{}",
            show(&lab.up_output)
        );
    }
    let d = device(&lab.status());
    let ike = &d["sas"][0];
    assert_eq!(ike["state"], "ESTABLISHED", "{d:#}");
    assert!(
        ike["local"].as_str().unwrap().starts_with("100.64.0.2["),
        "the device speaks from its inside address: {d:#}"
    );
    assert_eq!(ike["remote"], "203.0.113.1[4500]", "{d:#}");
    assert!(lab.ping("onprem/vm1", "10.1.1.4"));
    let charon = d["charonPid"].as_i64().unwrap() as i32;
    let down = lab.down();
    assert!(down.status.success(), "{}", show(&down));
    assert!(ends_within_3s(charon), "charon {charon} survived lab down");
    drop(lab);
    let _ = std::fs::remove_dir_all(&src);
}
