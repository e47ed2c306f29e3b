//! The seed end to end: `hybridnet lab up examples/hybrid-connection` deploys both sites, runs
//! both VNet gateways, waits for both connections and checks traffic itself (its summary
//! says so); then, from outside: ping and verified TCP both ways between the VMs, statuses
//! Connected, and byte counters that grow by what was sent and agree between the two sides.

use serde_json::Value;
use testkit::lab::{show, Lab};

fn conn<'a>(status: &'a Value, site: &str, name: &str) -> &'a Value {
    status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == site)
        .and_then(|s| {
            s["connections"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
        })
        .unwrap_or_else(|| panic!("no connection {site}/{name} in {status:#}"))
}

fn counters(status: &Value, site: &str, name: &str) -> (u64, u64) {
    let c = conn(status, site, name);
    (
        c["ingressBytesTransferred"]
            .as_u64()
            .unwrap_or_else(|| panic!("no ingress counter: {c:#}")),
        c["egressBytesTransferred"]
            .as_u64()
            .unwrap_or_else(|| panic!("no egress counter: {c:#}")),
    )
}

/// Lets the last segments of a closed TCP connection (FIN/ACK) cross before counters are read.
fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(300));
}

const AZ: (&str, &str) = ("azure", "azure-to-stackhub");
const SH: (&str, &str) = ("stackhub", "stackhub-to-azure");

#[test]
fn the_seed_comes_up_and_carries_traffic_both_ways() {
    let started = std::time::Instant::now();
    let lab = Lab::up("examples/hybrid-connection");
    let up_time = started.elapsed();
    let out = String::from_utf8_lossy(&lab.up_output.stdout).into_owned();
    assert!(out.contains("summary"), "{}", show(&lab.up_output));
    for step in [
        "gateway processes: 2 started",
        "azure/azure-to-stackhub Connected, stackhub/stackhub-to-azure Connected",
        "ping azure/vm1 -> stackhub/vm1 (10.2.1.4): 3/3 replies",
        "ping stackhub/vm1 -> azure/vm1 (10.1.1.4): 3/3 replies",
        "TCP azure/vm1 -> stackhub/vm1",
        "TCP stackhub/vm1 -> azure/vm1",
    ] {
        assert!(
            out.contains(step),
            "summary lacks {step:?}:\n{}",
            show(&lab.up_output)
        );
    }
    eprintln!("lab up of the seed took {up_time:?}");

    let status = lab.status();
    for (site, name) in [AZ, SH] {
        let c = conn(&status, site, name);
        assert_eq!(c["connectionStatus"], "Connected", "{c:#}");
        assert_eq!(c["provisioningState"], "Succeeded", "{c:#}");
        let props = &c["resource"]["properties"];
        assert_eq!(props["connectionStatus"], "Connected");
        assert_eq!(
            props["tunnelConnectionStatus"][0]["connectionStatus"],
            "Connected"
        );
        let extra = &c["resource"]["hybridnet"];
        assert_eq!(
            extra["espAlgorithms"], "AES_GCM_16-256",
            "the custom policy's ESP: {extra:#}"
        );
        assert!(
            extra["ikeAlgorithms"].as_str().unwrap().contains("ECP_384"),
            "{extra:#}"
        );
        assert!(props["tunnelConnectionStatus"][0]["lastConnectionEstablishedUtcTime"].is_string());
        assert!(
            props.get("sharedKey").is_none(),
            "the shared key is never shown"
        );
    }
    // The gateways' configurations hold the key: private to root.
    let gw_dir = lab.state.join("labs").join(&lab.id).join("gateways");
    for f in std::fs::read_dir(&gw_dir).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        if p.extension().is_some_and(|e| e == "log") {
            let log = std::fs::read_to_string(&p).unwrap();
            assert!(
                !log.contains("hybridnet-lab-shared-key"),
                "the key is in {}",
                p.display()
            );
        }
    }
    let text = lab.run(&["lab", "status", "--id", &lab.id]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("connection azure-to-stackhub [Succeeded] Connected"),
        "{text}"
    );
    assert!(!text.contains("hybridnet-lab-shared-key"));

    // From outside, as a user would: lab exec.
    assert!(lab.ping("azure/vm1", "10.2.1.4"));
    assert!(lab.ping("stackhub/vm1", "10.1.1.4"));

    // Verified TCP both ways; the counters grow by what was sent, and both ends agree.
    let ns = |site: &str| format!("hn-{}-{site}-vm1", lab.id);
    let len: u64 = 3 << 20;
    let before = lab.status();
    let (az_in0, az_out0) = counters(&before, AZ.0, AZ.1);
    let (sh_in0, sh_out0) = counters(&before, SH.0, SH.1);
    assert!(
        az_in0 > 0 && az_out0 > 0,
        "lab up's own traffic was counted"
    );
    let t = fabric::verify::tcp_transfer(
        &ns("stackhub"),
        "10.2.1.4".parse().unwrap(),
        7001,
        &ns("azure"),
        len,
    )
    .expect("TCP azure -> stackhub");
    eprintln!("TCP azure -> stackhub: {len} bytes in {} ms", t.millis);
    settle();
    let mid = lab.status();
    let (az_in1, az_out1) = counters(&mid, AZ.0, AZ.1);
    let (sh_in1, sh_out1) = counters(&mid, SH.0, SH.1);
    let sent = az_out1 - az_out0;
    assert!(
        sent >= len && sent < len + len / 10,
        "azure egress grew by {sent} for {len} bytes of TCP payload"
    );
    assert_eq!(
        sh_in1 - sh_in0,
        sent,
        "stackhub's ingress matches azure's egress"
    );
    assert_eq!(
        az_in1 - az_in0,
        sh_out1 - sh_out0,
        "the ACKs back agree too"
    );
    assert!(
        az_in1 - az_in0 < len / 10,
        "the return direction carried only ACKs"
    );
    fabric::verify::tcp_transfer(
        &ns("azure"),
        "10.1.1.4".parse().unwrap(),
        7002,
        &ns("stackhub"),
        len,
    )
    .expect("TCP stackhub -> azure");
    settle();
    let after = lab.status();
    let (az_in2, _) = counters(&after, AZ.0, AZ.1);
    let (_, sh_out2) = counters(&after, SH.0, SH.1);
    let back = sh_out2 - sh_out1;
    assert!(
        back >= len && back < len + len / 10,
        "stackhub egress grew by {back}"
    );
    assert_eq!(
        az_in2 - az_in1,
        back,
        "azure's ingress matches stackhub's egress"
    );
}
