//! The public template example `examples/vnet-to-vnet` (templates copied unchanged from
//! ../shared/arm-templates) comes up on two `azure` sites: both connections Connected, and
//! the VMs of the two VNets reach each other across the tunnel (ping and verified TCP).

use testkit::lab::{assert_tunnel_example, Lab};

#[test]
fn public_template_brings_both_connections_up_with_traffic() {
    let lab = Lab::up("examples/vnet-to-vnet");
    assert_tunnel_example(
        &lab,
        "one/Vnet1Connection Connected, two/Vnet2Connection Connected",
        ("one/vm1", "192.168.100.4"),
        ("two/vm1", "192.168.101.4"),
    );
}
