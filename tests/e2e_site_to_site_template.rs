//! The public template example `examples/site-to-site-vpn` (templates copied unchanged from
//! ../shared/arm-templates) comes up on two `azure` sites: both connections Connected, and
//! the VMs of the two VNets reach each other across the tunnel (ping and verified TCP).

use testkit::lab::{assert_tunnel_example, Lab};

#[test]
fn public_template_brings_both_connections_up_with_traffic() {
    let lab = Lab::up("examples/site-to-site-vpn");
    assert_tunnel_example(
        &lab,
        "west/west-to-east Connected, east/east-to-west Connected",
        ("west/vm1", "10.3.1.4"),
        ("east/vm1", "10.4.1.4"),
    );
}
