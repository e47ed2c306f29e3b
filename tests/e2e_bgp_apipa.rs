//! A VNet gateway peering from a custom APIPA address (Azure's
//! `bgpSettings.bgpPeeringAddresses[].customBgpIpAddresses`, 169.254.21.x): the seed with BGP,
//! Azure's gateway at 169.254.21.1 and the hub's local network gateway pointing there. The
//! session comes up between 169.254.21.1 and the hub's GatewaySubnet address, routes are
//! exchanged and VMs talk; `reference()` shows the custom address per instance.

use std::time::Duration;

use testkit::bgp::wait_until;
use testkit::lab::Lab;

#[test]
fn a_gateway_peers_from_its_custom_apipa_address() {
    let lab = Lab::up_copy_edited(
        "examples/hybrid-connection-bgp",
        "templates/azure-site.json",
        |t| {
            t.replace(
                r#""bgpSettings": { "asn": "[parameters('gatewayAsn')]" },"#,
                r#""bgpSettings": {
          "asn": "[parameters('gatewayAsn')]",
          "bgpPeeringAddresses": [
            {
              "ipconfigurationId": "[concat(resourceId('Microsoft.Network/virtualNetworkGateways', parameters('gatewayName')), '/ipConfigurations/vnetGatewayConfig')]",
              "customBgpIpAddresses": [ "169.254.21.1" ]
            }
          ]
        },"#,
            )
        },
    );
    // the hub's local network gateway takes Azure's address from Azure's outputs, which name
    // the default address; Azure's documentation has the on-premises side use the custom one
    let out = lab.run(&[
        "deploy",
        "--site",
        "stackhub",
        lab.dir
            .join("templates/connection-bgp.json")
            .to_str()
            .unwrap(),
        "--set",
        "gatewayName=stackhub-gw",
        "--set",
        "localGatewayName=azure-lgw",
        "--set",
        "localGatewayIpAddress=203.0.113.1",
        "--set",
        "bgpPeeringAddress=169.254.21.1",
        "--set",
        "asn=65001",
        "--set",
        "connectionName=stackhub-to-azure",
        "--set",
        "sharedKey=hybridnet-lab-shared-key",
    ]);
    assert!(out.status.success(), "{}", testkit::lab::show(&out));
    wait_until("the session over APIPA", Duration::from_secs(30), || {
        let p = lab.gateway_list("list-bgp-peer-status", "azure", "azure-gw");
        p.len() == 1 && p[0]["state"] == "Connected" && p[0]["localAddress"] == "169.254.21.1"
    });
    assert_eq!(
        lab.learned_path("stackhub", "stackhub-gw", "10.1.0.0/16")
            .as_deref(),
        Some("65001")
    );
    let hub_peer = lab.gateway_list("list-bgp-peer-status", "stackhub", "stackhub-gw");
    assert_eq!(hub_peer[0]["neighbor"], "169.254.21.1", "{hub_peer:?}");
    wait_until("traffic", Duration::from_secs(10), || {
        lab.ping("stackhub/vm1", "10.1.1.4")
    });
    let st = lab.site_status("azure");
    let text = st.to_string();
    assert!(text.contains("169.254.21.1"), "status shows the address");
}
