//! examples/azure-to-strongswan-bgp: an Azure gateway (AS 65515) and a strongSwan box with BIRD
//! beside it (AS 65050), both configured by hybridnet alone (the box from its device
//! configuration export). The local network gateway lists only the box's BGP address, so:
//! the gateway learns the on-premises LAN 10.2.0.0/16 from BIRD and hands it to its VNet
//! router; BIRD learns the VNet 10.1.0.0/16 and installs it into ipsec0; VMs talk both ways.
//! Then the on-premises peer is killed: the route is withdrawn (well within the hold time) and
//! traffic stops; `lab up` brings BIRD back and the route with it; a peer killed and restarted
//! over and over leaves exactly one route behind, and none once it stays down.

use std::process::Command;
use std::time::Duration;

use testkit::bgp::{pids_named, routes, wait_until};
use testkit::lab::{show, Lab};

const LAN: &str = "10.2.0.0/16";
const VNET: &str = "10.1.0.0/16";

fn kill_bird(lab: &Lab, device: &str) {
    let pids = pids_named(device, "bird");
    assert_eq!(pids.len(), 1, "one BIRD in {device}: {pids:?}");
    let ok = Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    wait_until("BIRD gone", Duration::from_secs(5), || {
        pids_named(device, "bird").is_empty()
    });
    let _ = lab;
}

fn restart(lab: &Lab) {
    let out = lab.up_again();
    assert!(out.status.success(), "lab up again:\n{}", show(&out));
}

#[test]
fn bird_and_the_gateway_exchange_routes_and_follow_the_peer() {
    let lab = Lab::up("examples/azure-to-strongswan-bgp");
    let device = lab.netns_ending("-onprem-gw-strongswan");
    let router = lab.netns_ending("-azure-vnet-azure-vnet");
    let learned = || lab.learned_path("azure", "azure-gw", LAN);

    wait_until(
        "the gateway learns the LAN from BIRD",
        Duration::from_secs(20),
        || learned().as_deref() == Some("65050"),
    );
    let r = routes(&router, LAN);
    assert!(
        r.iter()
            .any(|l| l.contains("via 10.1.255.4") && l.contains("proto bgp")),
        "the VNet router sends the learned LAN to the gateway: {r:?}"
    );
    let ctl = lab.device_dir("onprem").join("bird.ctl");
    let bird_route = || {
        let o = Command::new("birdc")
            .arg("-s")
            .arg(&ctl)
            .args(["show", "route", "for", "10.1.1.4", "all"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let shown = bird_route();
    assert!(
        shown.contains(VNET) && shown.contains("BGP.as_path: 65515"),
        "BIRD learned the VNet from the gateway:\n{shown}"
    );
    let kernel = routes(&device, VNET);
    assert!(
        kernel
            .iter()
            .any(|l| l.contains("dev ipsec0") && l.contains("proto bird")),
        "BIRD installed it into strongSwan's TUN device: {kernel:?}"
    );
    wait_until("azure/vm1 -> onprem/vm1", Duration::from_secs(10), || {
        lab.ping("azure/vm1", "10.2.1.4")
    });
    assert!(lab.ping("onprem/vm1", "10.1.1.4"));

    // the on-premises router dies: its routes go at once (its TCP connection closes), far
    // inside the hold time of 180 s
    kill_bird(&lab, &device);
    let took = wait_until(
        "the gateway withdraws the LAN",
        Duration::from_secs(10),
        || learned().is_none(),
    );
    eprintln!("withdrawn {took:?} after BIRD died");
    assert!(
        routes(&router, LAN).is_empty(),
        "and the VNet router forgets it"
    );
    assert!(!lab.ping("azure/vm1", "10.2.1.4"), "no route, no traffic");
    let peers = lab.gateway_list("list-bgp-peer-status", "azure", "azure-gw");
    assert_ne!(peers[0]["state"], "Connected", "{peers:?}");
    assert!(
        peers[0]["lastError"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "the peer's state says why: {peers:?}"
    );

    // back
    restart(&lab);
    wait_until("the LAN is learned again", Duration::from_secs(30), || {
        learned().as_deref() == Some("65050")
    });
    wait_until("traffic again", Duration::from_secs(10), || {
        lab.ping("azure/vm1", "10.2.1.4")
    });

    // a flapping peer leaves no stale routes
    for _ in 0..3 {
        kill_bird(&lab, &device);
        restart(&lab);
    }
    wait_until("learned after the flaps", Duration::from_secs(30), || {
        learned().as_deref() == Some("65050")
    });
    let all = lab.gateway_list("list-learned-routes", "azure", "azure-gw");
    let lan: Vec<_> = all.iter().filter(|r| r["network"] == LAN).collect();
    assert_eq!(
        lan.len(),
        1,
        "one route for the LAN after the flaps: {all:?}"
    );
    assert_eq!(
        routes(&router, LAN)
            .iter()
            .filter(|l| l.contains("proto bgp"))
            .count(),
        1
    );
    kill_bird(&lab, &device);
    wait_until(
        "withdrawn after the last flap",
        Duration::from_secs(10),
        || learned().is_none() && routes(&router, LAN).is_empty(),
    );
}
