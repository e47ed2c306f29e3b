//! examples/vnet-chain-bgp: three VNets chained by BGP-enabled VNet-to-VNet connections
//! (VNet1 – VNet2 – VNet3, no connection between 1 and 3). VNet1's VM reaches VNet3's through
//! VNet2's gateway; VNet1's gateway learned 10.13.0.0/16 with the AS path 65012-65013 (CLI,
//! az and lab status agree); VNet1's router sends it to its gateway. When VNet2's tunnel to
//! VNet3 goes away (the connection deleted with az) the route is withdrawn end to end and the
//! VM's packets stop; when it is created again the route and the traffic come back.

use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::az::{Api, Az};
use testkit::lab::Lab;

const VNET3_VM: &str = "10.13.1.4";
const VNET3: &str = "10.13.0.0/16";

fn learned(v: &Value) -> Option<Value> {
    v["value"]
        .as_array()?
        .iter()
        .find(|r| r["network"] == VNET3)
        .cloned()
}

fn az_learned(az: &Az, group: &str) -> Value {
    az.ok(&[
        "network",
        "vnet-gateway",
        "list-learned-routes",
        "-g",
        group,
        "-n",
        "Vnet1Gw",
    ])
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn vnet1_reaches_vnet3_through_vnet2_and_follows_the_tunnels() {
    let lab = Lab::up("examples/vnet-chain-bgp");
    wait_for(
        "vm1 -> vm3 across two tunnels",
        Duration::from_secs(20),
        || lab.ping("azure/vm1", VNET3_VM),
    );

    // our CLI: the route, its AS path and next hop (VNet2's gateway)
    let out = lab.run(&[
        "vnet-gateway",
        "list-learned-routes",
        "--id",
        &lab.id,
        "--site",
        "azure",
        "--name",
        "Vnet1Gw",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = learned(&cli).unwrap_or_else(|| panic!("no {VNET3} in {cli:#}"));
    assert_eq!(r["asPath"], "65012-65013", "{r:#}");
    assert_eq!(r["nextHop"], "10.12.255.4", "{r:#}");
    assert_eq!(r["origin"], "EBgp");

    // az, through the site's Resource Manager endpoint
    let api = Api::of(&lab);
    let az = api.login("azure");
    let groups = az.ok(&["group", "list"]);
    let group = groups[0]["name"].as_str().unwrap().to_string();
    let from_az = az_learned(&az, &group);
    let a = learned(&from_az).unwrap_or_else(|| panic!("az: no {VNET3} in {from_az:#}"));
    for field in [
        "asPath",
        "nextHop",
        "sourcePeer",
        "origin",
        "localAddress",
        "weight",
    ] {
        assert_eq!(
            a[field], r[field],
            "az and the CLI agree on {field}: {a:#} {r:#}"
        );
    }
    let peers = az.ok(&[
        "network",
        "vnet-gateway",
        "list-bgp-peer-status",
        "-g",
        &group,
        "-n",
        "Vnet2Gw",
    ]);
    let peers = peers["value"].as_array().unwrap();
    assert_eq!(peers.len(), 2, "{peers:#?}");
    assert!(
        peers.iter().all(|p| p["state"] == "Connected"),
        "{peers:#?}"
    );
    let adv = az.ok(&[
        "network",
        "vnet-gateway",
        "list-advertised-routes",
        "-g",
        &group,
        "-n",
        "Vnet2Gw",
        "--peer",
        "10.11.255.4",
    ]);
    let to_vnet1: Vec<(&str, &str)> = adv["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["network"].as_str().unwrap(),
                r["asPath"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        to_vnet1.contains(&(VNET3, "65012-65013")) && to_vnet1.contains(&("10.12.0.0/16", "65012")),
        "VNet2 re-advertises VNet3 to VNet1 with its AS prepended: {to_vnet1:?}"
    );
    assert!(
        !to_vnet1.iter().any(|(n, _)| *n == "10.11.0.0/16"),
        "VNet1's own prefix is not sent back to it: {to_vnet1:?}"
    );

    // lab status shows it too
    let st = lab.site_status("azure");
    let gw = st["otherResources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "Vnet1Gw")
        .unwrap()
        .clone();
    assert!(
        gw["bgp"]["learnedRoutes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["network"] == VNET3 && r["asPath"] == "65012-65013"),
        "{gw:#}"
    );

    // VNet1's router sends VNet3's prefix to VNet1's gateway
    let router = lab
        .namespaces()
        .into_iter()
        .find(|n| n.ends_with("-vnet-Vnet1"))
        .unwrap();
    let routes = std::process::Command::new("ip")
        .args(["-n", &router, "route", "show", VNET3])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout).to_string();
    assert!(
        routes.contains("via 10.11.255.4") && routes.contains("proto bgp"),
        "{routes}"
    );

    // the tunnel VNet2 - VNet3 goes away: withdrawn end to end
    az.ok(&[
        "network",
        "vpn-connection",
        "delete",
        "-g",
        &group,
        "-n",
        "Vnet2-to-Vnet3",
    ]);
    wait_for(
        "VNet1's gateway forgets VNet3",
        Duration::from_secs(15),
        || learned(&az_learned(&az, &group)).is_none(),
    );
    assert!(!lab.ping("azure/vm1", VNET3_VM), "no route, no traffic");

    // and back
    az.ok(&[
        "network",
        "vpn-connection",
        "create",
        "-g",
        &group,
        "-n",
        "Vnet2-to-Vnet3",
        "--vnet-gateway1",
        "Vnet2Gw",
        "--vnet-gateway2",
        "Vnet3Gw",
        "--shared-key",
        "hybridnet-lab-bgp-chain",
        "--enable-bgp",
    ]);
    wait_for(
        "VNet1's gateway learns VNet3 again",
        Duration::from_secs(30),
        || learned(&az_learned(&az, &group)).is_some_and(|r| r["asPath"] == "65012-65013"),
    );
    wait_for("vm1 -> vm3 again", Duration::from_secs(10), || {
        lab.ping("azure/vm1", VNET3_VM)
    });
}
