//! examples/azure-to-strongswan-bgp with `router: frr`: the strongSwan box runs FRR (zebra,
//! staticd, bgpd) from hybridnet's `--vendor frr` export instead of BIRD. The gateway learns the
//! on-premises LAN (listed in no local network gateway), FRR learns the VNet and installs it
//! into ipsec0, VMs talk both ways; when bgpd dies the gateway withdraws the LAN.

use std::process::Command;
use std::time::Duration;

use testkit::bgp::{pids_named, routes, wait_until};
use testkit::lab::Lab;

const LAN: &str = "10.2.0.0/16";

#[test]
fn frr_and_the_gateway_exchange_routes() {
    let lab = Lab::up_copy_edited("examples/azure-to-strongswan-bgp", "lab.yaml", |t| {
        t.replace("router: bird", "router: frr")
    });
    let device = lab.netns_ending("-onprem-gw-strongswan");
    wait_until(
        "the gateway learns the LAN from FRR",
        Duration::from_secs(20),
        || lab.learned_path("azure", "azure-gw", LAN).as_deref() == Some("65050"),
    );
    let vty = lab.device_dir("onprem").join("frr");
    let o = Command::new("vtysh")
        .arg("--vty_socket")
        .arg(&vty)
        .args(["-c", "show ip bgp 10.1.0.0/16"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(
        shown.contains("65515") && shown.contains("10.1.255.4"),
        "FRR learned the VNet from the gateway:\n{shown}"
    );
    let kernel = routes(&device, "10.1.0.0/16");
    assert!(
        kernel
            .iter()
            .any(|l| l.contains("dev ipsec0") && l.contains("proto bgp")),
        "zebra installed it into strongSwan's TUN device: {kernel:?}"
    );
    wait_until("azure/vm1 -> onprem/vm1", Duration::from_secs(10), || {
        lab.ping("azure/vm1", "10.2.1.4")
    });
    assert!(lab.ping("onprem/vm1", "10.1.1.4"));

    let bgpd = pids_named(&device, "bgpd");
    assert_eq!(bgpd.len(), 1, "{bgpd:?}");
    assert!(Command::new("kill")
        .args(["-9", &bgpd[0].to_string()])
        .status()
        .unwrap()
        .success());
    wait_until(
        "the gateway withdraws the LAN",
        Duration::from_secs(10),
        || lab.learned_path("azure", "azure-gw", LAN).is_none(),
    );
    assert!(!lab.ping("azure/vm1", "10.2.1.4"));
}
