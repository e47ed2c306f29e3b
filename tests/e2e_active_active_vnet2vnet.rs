//! examples/vnet-to-vnet-active-active: both VNet gateways active-active, BGP on: each
//! connection is four tunnels (every instance to every instance of the other side), each
//! gateway has four BGP sessions (two per instance, each from its own address), the VMs talk;
//! when one instance of Vnet1's gateway stops, traffic goes on over the other instances and
//! the connection stays Connected on the two tunnels left.

use std::process::Command;
use std::time::Duration;

use testkit::bgp::wait_until;
use testkit::lab::Lab;

/// The Connected tunnels of Vnet1's connection.
fn tunnels(lab: &Lab) -> Vec<String> {
    lab.tunnels("azure", "Vnet1-to-Vnet2")
        .into_iter()
        .filter(|(_, s)| s == "Connected")
        .map(|(t, _)| t)
        .collect()
}

#[test]
fn four_tunnels_four_sessions_and_one_instance_may_go() {
    let lab = Lab::up("examples/vnet-to-vnet-active-active");
    wait_until("four tunnels", Duration::from_secs(20), || {
        tunnels(&lab).len() == 4
    });
    wait_until("four BGP sessions up", Duration::from_secs(20), || {
        let p = lab.gateway_list("list-bgp-peer-status", "azure", "Vnet1Gw");
        p.len() == 4 && p.iter().all(|x| x["state"] == "Connected")
    });
    let peers = lab.gateway_list("list-bgp-peer-status", "azure", "Vnet1Gw");
    let mut locals: Vec<&str> = peers
        .iter()
        .map(|p| p["localAddress"].as_str().unwrap())
        .collect();
    locals.sort();
    locals.dedup();
    assert_eq!(locals, ["10.11.255.4", "10.11.255.5"], "{peers:?}");
    assert!(lab.ping("azure/vm1", "10.12.1.4"));

    let sup = lab
        .state
        .join("labs")
        .join(&lab.id)
        .join("gateways/azure--Vnet1Gw.supervisor.json");
    let st: serde_json::Value = serde_json::from_slice(&std::fs::read(sup).unwrap()).unwrap();
    let ping = Command::new(testkit::lab::hybridnet_bin())
        .env("HYBRIDNET_STATE_DIR", &lab.state)
        .args(["lab", "exec", "--id", &lab.id, "azure/vm1", "--"])
        .args(["ping", "-i", "0.1", "-W", "1", "-c", "30", "10.12.1.4"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let pid = st["supervisorPid"].as_i64().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = ping.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" 30 received") || text.contains(" 29 received"),
        "at most one echo lost while an instance stops:\n{text}"
    );
    let left = tunnels(&lab);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left.iter().all(|t| t.contains("_203.0.113.2_")),
        "the tunnels of the instance left: {left:?}"
    );
}
