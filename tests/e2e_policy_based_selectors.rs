//! `usePolicyBasedTrafficSelectors` as Azure realizes it, for an on-premises policy-based
//! device: in the lab of `examples/azure-to-strongswan`, `hybridnet deploy` changes the Azure
//! connection to policy-based traffic selectors (with the custom `ipsecPolicies` Azure
//! requires for them) and gives the local network gateway a second on-premises prefix. The
//! device, configured from the connection's export, then holds one INSTALLED Child SA per
//! (on-premises prefix, VNet prefix) pair, each with exactly that pair as its selectors — no
//! pair twice, none with both prefixes — and so does the Azure gateway, without a selector
//! warning; the Azure connection is Connected, and pings cross from the Azure VM through each
//! pair's Child SA: to the on-premises VM on the LAN, and to the device's own address in the
//! second prefix.
//!
//! The second on-premises network is stood in for by the device's own address 10.20.0.254
//! (on its loopback): charon (kernel-libipsec) routes a Child SA's traffic from an address of
//! its own inside the local selector, so it refuses a Child SA for a prefix it has no address
//! in — as a device with no such network behind it should.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use testkit::lab::{show, Lab};
use testkit::process::wait_for_every;

/// The on-premises prefixes: the LAN and a second one behind the same device.
const ONPREM: [&str; 2] = ["10.2.0.0/16", "10.20.0.0/16"];
/// The Azure VNet.
const VNET: &str = "10.1.0.0/16";
/// The device's address in the second on-premises prefix.
const SECOND: &str = "10.20.0.254";

/// INSTALLED Child SAs of the on-premises device, counted by their (local, remote) selectors.
fn device_children(status: &Value) -> BTreeMap<(Vec<String>, Vec<String>), usize> {
    let mut out = BTreeMap::new();
    let Some(dev) = status["strongswanDevices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["site"] == "onprem"))
    else {
        return out;
    };
    for ike in dev["sas"].as_array().into_iter().flatten() {
        if ike["state"] != "ESTABLISHED" {
            continue;
        }
        for child in ike["children"].as_array().into_iter().flatten() {
            if child["state"] != "INSTALLED" {
                continue;
            }
            let list = |v: &Value| -> Vec<String> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            };
            *out.entry((list(&child["localTs"]), list(&child["remoteTs"])))
                .or_default() += 1;
        }
    }
    out
}

/// One INSTALLED Child SA per on-premises prefix toward the VNet, each with one prefix a side.
fn one_per_pair() -> BTreeMap<(Vec<String>, Vec<String>), usize> {
    ONPREM
        .iter()
        .map(|p| ((vec![p.to_string()], vec![VNET.to_string()]), 1))
        .collect()
}

fn azure_conn(status: &Value) -> Value {
    status["sites"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "azure"))
        .and_then(|s| {
            s["connections"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == "azure-to-onprem")
                .cloned()
        })
        .unwrap_or_else(|| panic!("no connection azure/azure-to-onprem in {status:#}"))
}

#[test]
fn policy_based_traffic_selectors_make_one_child_sa_per_prefix_pair_with_strongswan() {
    let lab = Lab::up("examples/azure-to-strongswan");
    assert_eq!(
        device_children(&lab.status()),
        [((vec![ONPREM[0].to_string()], vec![VNET.to_string()]), 1)].into(),
        "route-based to begin with: one Child SA for the LAN"
    );

    // The second on-premises network: the device's address in it.
    let dev_ns = format!("hn-{}-onprem-gw-strongswan", lab.id);
    let out = std::process::Command::new("ip")
        .args([
            "-n",
            &dev_ns,
            "addr",
            "add",
            &format!("{SECOND}/32"),
            "dev",
            "lo",
        ])
        .output()
        .expect("ip");
    assert!(out.status.success(), "{}", show(&out));

    // Azure requires a custom IPsec/IKE policy with usePolicyBasedTrafficSelectors.
    let policy = json!([{
        "saLifeTimeSeconds": 27000, "saDataSizeKilobytes": 102400000,
        "ikeEncryption": "AES256", "ikeIntegrity": "SHA256", "dhGroup": "DHGroup14",
        "ipsecEncryption": "GCMAES256", "ipsecIntegrity": "GCMAES256", "pfsGroup": "None"
    }]);
    let template = lab.dir.join("templates/connection.json");
    let prefixes = format!(
        r#"localAddressPrefixes=["${{deployments.onprem-site.outputs.lanAddressPrefix}}", "{}"]"#,
        ONPREM[1]
    );
    let policies = format!("ipsecPolicies={policy}");
    let out = lab.run(&[
        "deploy",
        "--id",
        &lab.id,
        "--site",
        "azure",
        "--name",
        "azure-connection",
        template.to_str().unwrap(),
        "--set",
        "gatewayName=azure-gw",
        "--set",
        "localGatewayName=onprem-lgw",
        "--set",
        "localGatewayIpAddress=${deployments.onprem-site.outputs.devicePublicIp}",
        "--set",
        &prefixes,
        "--set",
        "connectionName=azure-to-onprem",
        "--set",
        "sharedKey=hybridnet-lab-shared-key",
        "--set",
        &policies,
        "--set",
        "usePolicyBasedTrafficSelectors=true",
    ]);
    assert!(out.status.success(), "{}", show(&out));

    // The connection is stored as asked, and the device got one child per prefix pair.
    let status = lab.status();
    let conn = azure_conn(&status);
    assert_eq!(
        conn["resource"]["properties"]["usePolicyBasedTrafficSelectors"], true,
        "{conn:#}"
    );
    let export = std::fs::read_to_string(
        lab.state
            .join("labs")
            .join(&lab.id)
            .join("strongswan/onprem/azure--azure-to-onprem.swanctl.conf"),
    )
    .expect("the exported swanctl.conf");
    for (i, p) in ONPREM.iter().enumerate() {
        let child = format!("azure-to-onprem-{} {{", i + 1);
        let at = export
            .find(&child)
            .unwrap_or_else(|| panic!("no child {child} in the export:\n{export}"));
        let body = &export[at..];
        assert!(
            body.contains(&format!("local_ts = {p}\n"))
                && body.contains(&format!("remote_ts = {VNET}\n")),
            "{child}:\n{export}"
        );
    }

    // strongSwan: one INSTALLED Child SA per pair, exactly that pair; Azure: Connected.
    let settled = wait_for_every(
        Duration::from_millis(300),
        Duration::from_secs(45),
        "one Child SA per prefix pair on the device and the connection Connected",
        || {
            let s = lab.status();
            (device_children(&s) == one_per_pair()
                && azure_conn(&s)["connectionStatus"] == "Connected")
                .then_some(s)
        },
    );
    let status =
        settled.unwrap_or_else(|e| panic!("{e}:\n{:#}", lab.status()["strongswanDevices"]));
    // …and it stays so: neither side asks for a pair the other already set up (our gateway
    // gives the device's own requests a grace of 2 s on the device's IKE SA).
    std::thread::sleep(Duration::from_secs(4));
    let later = lab.status();
    assert_eq!(
        device_children(&later),
        one_per_pair(),
        "no pair twice, none missing:\n{:#}",
        later["strongswanDevices"]
    );
    let dev = later["strongswanDevices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["site"] == "onprem"))
        .unwrap();
    let established: Vec<&Value> = dev["sas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "ESTABLISHED")
        .collect();
    assert_eq!(
        established.len(),
        1,
        "one IKE SA carries the pairs: {dev:#}"
    );
    let conn = azure_conn(&status);
    assert_eq!(conn["connectionStatus"], "Connected", "{conn:#}");
    // The Azure gateway holds the mirror image: one Child SA per pair, and no warning.
    let sock = lab
        .state
        .join("labs")
        .join(&lab.id)
        .join("gateways/azure--azure-gw.sock");
    let gw = gateway::status::query(&sock).expect("the Azure gateway's status");
    let c = &gw.connections[0];
    assert_eq!(c.selector_warning, None, "{c:#?}");
    let mut pairs: Vec<(Vec<String>, Vec<String>)> = c
        .child_sas
        .iter()
        .map(|s| (s.local_ts.clone(), s.remote_ts.clone()))
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        ONPREM
            .iter()
            .map(|p| (vec![VNET.to_string()], vec![p.to_string()]))
            .collect::<Vec<_>>(),
        "{c:#?}"
    );

    // Traffic crosses, each pair in its own Child SA: the ping to the LAN's VM counts on the
    // LAN pair's Child SA, the one to the device's address in the second prefix on that pair's.
    let child_bytes = |s: &Value, prefix: &str| -> (u64, u64) {
        let dev = s["strongswanDevices"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["site"] == "onprem"))
            .unwrap();
        dev["sas"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|ike| ike["children"].as_array().unwrap().iter())
            .filter(|c| c["state"] == "INSTALLED" && c["localTs"] == json!([prefix]))
            .map(|c| {
                (
                    c["bytesIn"].as_u64().unwrap_or(0),
                    c["bytesOut"].as_u64().unwrap_or(0),
                )
            })
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    for (target, prefix, other) in [
        ("10.2.1.4", ONPREM[0], ONPREM[1]),
        (SECOND, ONPREM[1], ONPREM[0]),
    ] {
        let before = lab.status();
        let ok = wait_for_every(Duration::ZERO, Duration::from_secs(10), "a ping", || {
            lab.ping("azure/vm1", target).then_some(())
        });
        assert!(
            ok.is_ok(),
            "no ping azure/vm1 -> {target}:\n{:#}",
            lab.status()
        );
        let after = lab.status();
        let (b, a) = (child_bytes(&before, prefix), child_bytes(&after, prefix));
        assert!(
            a.0 > b.0 && a.1 > b.1,
            "the ping to {target} went through the Child SA of {prefix} ({b:?} -> {a:?})"
        );
        assert_eq!(
            child_bytes(&before, other),
            child_bytes(&after, other),
            "and not through the one of {other}"
        );
    }
    assert_eq!(azure_conn(&lab.status())["connectionStatus"], "Connected");
}
