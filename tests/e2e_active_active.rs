//! examples/hybrid-connection-active-active: Azure's gateway runs active-active (two instances,
//! two public IPs, a gateway process each) and the hub reaches both. Both tunnels of the Azure
//! connection are up and listed; the VNet router prefers the first instance and has the second
//! as its fallback. An instance that crashes takes its routes with it at once, so traffic goes
//! on over the other instance while its supervisor restarts it; an instance that is stopped
//! hands over without a packet lost, and the connection stays Connected on the other tunnel.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::bgp::{routes, wait_until};
use testkit::lab::{show, Lab};

const HUB_VM: &str = "10.2.1.4";
const HUB: &str = "10.2.0.0/16";

fn azure_connection(lab: &Lab) -> Value {
    lab.connection("azure", "azure-to-stackhub")
}

fn tunnels(lab: &Lab) -> Vec<(String, String)> {
    lab.tunnels("azure", "azure-to-stackhub")
}

/// The first instance's supervisor state (its pid and its child's).
fn first_instance(lab: &Lab) -> Value {
    let p = lab
        .state
        .join("labs")
        .join(&lab.id)
        .join("gateways/azure--azure-gw.supervisor.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// `count` pings 100 ms apart from Azure's VM to the hub's, started in the background.
fn pings(lab: &Lab, count: u32) -> std::process::Child {
    let state = lab.state.to_str().unwrap().to_string();
    Command::new(testkit::lab::hybridnet_bin())
        .env("HYBRIDNET_STATE_DIR", state)
        .args(["lab", "exec", "--id", &lab.id, "azure/vm1", "--"])
        .args([
            "ping",
            "-i",
            "0.1",
            "-W",
            "1",
            "-c",
            &count.to_string(),
            HUB_VM,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn received(child: std::process::Child) -> u32 {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("{text}"));
    line.split(", ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn kill(pid: i64, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

#[test]
fn traffic_survives_the_loss_of_one_instance() {
    let lab = Lab::up("examples/hybrid-connection-active-active");
    let router = lab.netns_ending("-azure-vnet-azure-vnet");
    wait_until("both tunnels Connected", Duration::from_secs(15), || {
        let t = tunnels(&lab);
        t.len() == 2 && t.iter().all(|(_, s)| s == "Connected")
    });
    let t = tunnels(&lab);
    assert!(
        t[0].0.contains("203.0.113.1") && t[1].0.contains("203.0.113.2"),
        "one tunnel per instance public IP: {t:?}"
    );
    let r = routes(&router, HUB);
    assert!(
        r.iter()
            .any(|l| l.contains("via 10.1.255.4") && l.contains("metric 20"))
            && r.iter()
                .any(|l| l.contains("via 10.1.255.5") && l.contains("metric 21")),
        "the router prefers instance 1 and falls back to instance 2: {r:?}"
    );
    let st = lab.site_status("azure");
    let gw = st["otherResources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "azure-gw")
        .unwrap()
        .clone();
    let instances = gw["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2, "{gw:#}");
    assert!(
        instances
            .iter()
            .all(|i| i["gatewayProcess"]["running"] == true),
        "{gw:#}"
    );

    // a crash: the router forgets instance 1 at once, traffic goes on over instance 2 while
    // the supervisor restarts it
    let ping = pings(&lab, 40);
    std::thread::sleep(Duration::from_millis(800));
    let child = first_instance(&lab)["childPid"].as_i64().unwrap();
    kill(child, "-9");
    let t0 = Instant::now();
    let mut moved = false;
    while t0.elapsed() < Duration::from_millis(400) {
        let r = routes(&router, HUB);
        if !r.is_empty() && r.iter().all(|l| l.contains("via 10.1.255.5")) {
            moved = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        moved,
        "the router sent to instance 2 while instance 1 was down"
    );
    let got = received(ping);
    assert!(got >= 28, "{got}/40 echo replies across an instance crash");
    wait_until(
        "instance 1 restarted and back",
        Duration::from_secs(10),
        || {
            routes(&router, HUB)
                .iter()
                .any(|l| l.contains("via 10.1.255.4"))
        },
    );

    // a stop: instance 1 deletes its SAs and hands over; nothing is lost
    let ping = pings(&lab, 30);
    std::thread::sleep(Duration::from_millis(800));
    kill(
        first_instance(&lab)["supervisorPid"].as_i64().unwrap(),
        "-TERM",
    );
    let got = received(ping);
    assert!(got >= 29, "{got}/30 echo replies across an instance stop");
    let r = routes(&router, HUB);
    assert!(
        r.len() == 1 && r[0].contains("via 10.1.255.5"),
        "only instance 2 is left: {r:?}"
    );
    let c = azure_connection(&lab);
    assert_eq!(c["properties"]["connectionStatus"], "Connected", "{c:#}");
    let t = tunnels(&lab);
    assert_eq!(t.len(), 1, "{t:?}");
    assert!(t[0].0.contains("203.0.113.2"), "{t:?}");
    let egress = c["properties"]["egressBytesTransferred"].as_u64().unwrap();
    assert!(egress > 0, "instance 2 carried the traffic: {c:#}");

    // lab up starts it again: two tunnels
    let out = lab.up_again();
    assert!(out.status.success(), "{}", show(&out));
    wait_until("both tunnels again", Duration::from_secs(15), || {
        let t = tunnels(&lab);
        t.len() == 2 && t.iter().all(|(_, s)| s == "Connected")
    });
}
