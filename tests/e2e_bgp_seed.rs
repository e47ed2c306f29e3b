//! examples/hybrid-connection-bgp: the seed with BGP on both sides (Azure AS 65001, Azure Stack
//! Hub AS 65010). Each local network gateway lists only the other gateway's BGP address, so the
//! VNets reach each other by BGP alone: both learn the other's address space with the other's
//! AS as the path, and the VMs talk both ways; the metrics have the peer up and its route, the
//! IKE SAs set up and the data path's batches.

use std::time::Duration;

use testkit::bgp::wait_until;
use testkit::lab::Lab;

#[test]
fn both_sides_learn_the_other_vnet_and_traffic_follows() {
    let lab = Lab::up("examples/hybrid-connection-bgp");
    wait_until("both sessions Connected", Duration::from_secs(20), || {
        [("azure", "azure-gw"), ("stackhub", "stackhub-gw")]
            .iter()
            .all(|(s, g)| {
                let p = lab.gateway_list("list-bgp-peer-status", s, g);
                p.len() == 1 && p[0]["state"] == "Connected"
            })
    });
    assert_eq!(
        lab.learned_path("azure", "azure-gw", "10.2.0.0/16")
            .as_deref(),
        Some("65010")
    );
    assert_eq!(
        lab.learned_path("stackhub", "stackhub-gw", "10.1.0.0/16")
            .as_deref(),
        Some("65001")
    );
    let adv = lab
        .run(&[
            "vnet-gateway",
            "list-advertised-routes",
            "--id",
            &lab.id,
            "--site",
            "azure",
            "--name",
            "azure-gw",
            "--peer",
            "10.2.255.4",
        ])
        .stdout;
    let adv: serde_json::Value = serde_json::from_slice(&adv).unwrap();
    assert_eq!(
        adv["value"][0]["network"], "10.1.0.0/16",
        "Azure announces its VNet to the hub: {adv:#}"
    );
    assert!(lab.ping("azure/vm1", "10.2.1.4"));
    assert!(lab.ping("stackhub/vm1", "10.1.1.4"));

    // the controller's metrics carry Azure's BGP metrics
    let url = lab.status()["api"]["metricsUrl"]
        .as_str()
        .expect("a metrics URL")
        .to_string();
    let one = |l: &str| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) == Some(1.0);
    wait_until("BGP in the metrics", Duration::from_secs(10), || {
        let out = std::process::Command::new("curl")
            .args(["-s", &url])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.contains("Azure: BgpPeerStatus")
            && text.lines().any(|l| {
                l.starts_with("hybridnet_bgp_peer_up{")
                    && l.contains("gateway=\"azure-gw\"")
                    && l.contains("peer=\"10.2.255.4\"")
                    && one(l)
            })
            && text.lines().any(|l| {
                l.starts_with("hybridnet_ike_outcomes_total{")
                    && l.contains("outcome=\"ike_sa_established\"")
                    && !l.ends_with(" 0")
            })
            && text.lines().any(|l| {
                l.starts_with("hybridnet_datapath_batches_total{")
                    && l.contains("path=\"tun_read\"")
                    && !l.ends_with(" 0")
            })
            && text.lines().any(|l| {
                l.starts_with("hybridnet_bgp_routes_learned{")
                    && l.contains("gateway=\"azure-gw\"")
                    && one(l)
            })
    });
}
