//! The public template example `examples/vnet-to-vnet` (templates copied unchanged from
//! ../shared/arm-templates) comes up on two `azure` sites: both connections Connected, and
//! the VMs of the two VNets reach each other across the tunnel (ping and verified TCP).

#[path = "support/lab.rs"]
#[allow(dead_code)]
mod lab;

use lab::{show, Lab};

#[test]
fn public_template_brings_both_connections_up_with_traffic() {
    let lab = Lab::up("examples/vnet-to-vnet");
    let out = String::from_utf8_lossy(&lab.up_output.stdout).into_owned();
    for step in [
        "one/Vnet1Connection Connected, two/Vnet2Connection Connected",
        "ping one/vm1 -> two/vm1 (192.168.101.4): 3/3 replies",
        "ping two/vm1 -> one/vm1 (192.168.100.4): 3/3 replies",
        "TCP one/vm1 -> two/vm1",
        "TCP two/vm1 -> one/vm1",
    ] {
        assert!(
            out.contains(step),
            "summary lacks {step:?}:\n{}",
            show(&lab.up_output)
        );
    }
    assert!(lab.ping("one/vm1", "192.168.101.4"));
    assert!(lab.ping("two/vm1", "192.168.100.4"));
    let status = lab.status();
    let mut seen = 0;
    for s in status["sites"].as_array().unwrap() {
        for c in s["connections"].as_array().unwrap() {
            assert_eq!(c["connectionStatus"], "Connected", "{c:#}");
            assert_eq!(c["provisioningState"], "Succeeded", "{c:#}");
            assert!(
                c["ingressBytesTransferred"].as_u64().unwrap() > 4 << 20,
                "{c:#}"
            );
            assert!(
                c["egressBytesTransferred"].as_u64().unwrap() > 4 << 20,
                "{c:#}"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 2, "{status:#}");
}
