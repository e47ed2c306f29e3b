//! The seed with the Azure Stack Hub site behind NAT (`examples/hybrid-connection-nat`): the
//! stackhub gateway runs on a private address behind the NAT device, is known to Azure by its
//! public IP (its IKE identity), and both connections come up with traffic both ways.

use testkit::lab::{show, Lab};

#[test]
fn the_seed_behind_nat_comes_up_and_carries_traffic() {
    let lab = Lab::up("examples/hybrid-connection-nat");
    let out = String::from_utf8_lossy(&lab.up_output.stdout).into_owned();
    for step in [
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
    assert!(lab.ping("azure/vm1", "10.2.1.4"));
    assert!(lab.ping("stackhub/vm1", "10.1.1.4"));

    let gw_dir = lab.state.join("labs").join(&lab.id).join("gateways");
    let behind = gateway::status::query(&gw_dir.join("stackhub--stackhub-gw.sock"))
        .expect("stackhub gateway status");
    assert_eq!(
        behind.local_address, "100.64.0.2",
        "the stackhub gateway sits behind the NAT device"
    );
    let cloud =
        gateway::status::query(&gw_dir.join("azure--azure-gw.sock")).expect("azure gateway status");
    let c = &cloud.connections[0];
    assert_eq!(c.state, "established");
    let child = c
        .child_sas
        .iter()
        .find(|x| x.active)
        .expect("an active CHILD_SA");
    assert_eq!(
        child.peer, "198.51.100.1:4500",
        "Azure reaches the peer at its public IP, NAT-T port"
    );
    let status = lab.status();
    for s in status["sites"].as_array().unwrap() {
        for c in s["connections"].as_array().unwrap() {
            assert_eq!(c["connectionStatus"], "Connected", "{c:#}");
            assert!(
                c["ingressBytesTransferred"].as_u64().unwrap() > 4 << 20,
                "{c:#}"
            );
        }
    }
}
