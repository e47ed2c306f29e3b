//! `reference()` of a BGP-enabled VNet gateway shows its BGP peering addresses as Azure does
//! (`bgpSettings.bgpPeeringAddress`, `bgpSettings.bgpPeeringAddresses[]`), so templates that
//! wire a peer's local network gateway from them deploy.

mod common;

use common::*;
use serde_json::json;

fn setup() -> serde_json::Value {
    json!([
        vnet(
            "vnet1",
            &["10.1.0.0/16"],
            &[
                ("default", "10.1.1.0/24"),
                ("GatewaySubnet", "10.1.255.0/27")
            ]
        ),
        pip("pip1"),
        pip("pip2"),
    ])
}

fn with_outputs(gw: serde_json::Value) -> String {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [gw],
        "outputs": {
            "address": { "type": "string", "value": "[reference('gw').bgpSettings.bgpPeeringAddress]" },
            "asn": { "type": "int", "value": "[reference('gw').bgpSettings.asn]" },
            "addresses": { "type": "array", "value": "[reference('gw').bgpSettings.bgpPeeringAddresses]" }
        }
    })
    .to_string()
}

#[test]
fn bgp_gateway_reference_shows_its_peering_addresses() {
    let mut t = site("azure", "203.0.113.0/24");
    deploy(&mut t.site, &tpl(setup()), Default::default(), "setup").unwrap();
    let mut gw = gateway("gw", "vnet1", "pip1", "VpnGw1");
    gw["properties"]["enableBgp"] = json!(true);
    let rec = deploy(&mut t.site, &with_outputs(gw), Default::default(), "gw").unwrap();
    let o = &rec.outputs;
    assert_eq!(o["asn"], json!(65515), "{o:#?}");
    let address = o["address"].as_str().unwrap().to_string();
    assert!(
        address.starts_with("10.1.255.") && address.parse::<std::net::Ipv4Addr>().is_ok(),
        "{o:#?}"
    );
    assert_eq!(o["addresses"][0]["defaultBgpIpAddresses"], json!([address]));
    assert!(o["addresses"][0]["ipconfigurationId"]
        .as_str()
        .unwrap()
        .ends_with("/virtualNetworkGateways/gw/ipConfigurations/cfg"));

    // active-active: one address per instance, both in bgpPeeringAddress
    let mut aa = gateway("gw", "vnet1", "pip1", "VpnGw1");
    aa["properties"]["enableBgp"] = json!(true);
    aa["properties"]["activeActive"] = json!(true);
    aa["properties"]["bgpSettings"] = json!({"asn": 65010, "bgpPeeringAddress": "169.254.21.1"});
    let second = json!({ "name": "cfg2", "properties": {
        "subnet": { "id": "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'vnet1', 'GatewaySubnet')]" },
        "publicIPAddress": { "id": "[resourceId('Microsoft.Network/publicIPAddresses', 'pip2')]" } } });
    aa["properties"]["ipConfigurations"]
        .as_array_mut()
        .unwrap()
        .push(second);
    let mut t = site("azure", "203.0.113.0/24");
    deploy(&mut t.site, &tpl(setup()), Default::default(), "setup").unwrap();
    let rec = deploy(&mut t.site, &with_outputs(aa), Default::default(), "aa").unwrap();
    let o = &rec.outputs;
    assert_eq!(o["asn"], json!(65010));
    assert_eq!(o["address"], json!("169.254.21.1"), "configured, kept");
    let list = o["addresses"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{o:#?}");
    assert_ne!(
        list[0]["defaultBgpIpAddresses"],
        list[1]["defaultBgpIpAddresses"]
    );
    assert_eq!(list[0]["customBgpIpAddresses"], json!(["169.254.21.1"]));
}

/// Custom APIPA addresses (`bgpPeeringAddresses[].customBgpIpAddresses`) are kept per
/// instance and shown back; one outside 169.254.21.0 - 169.254.22.255, or for an
/// ipConfiguration the gateway does not have, is refused with its path.
#[test]
fn custom_apipa_addresses_are_kept_or_refused_with_the_path() {
    let mut t = site("azure", "203.0.113.0/24");
    deploy(&mut t.site, &tpl(setup()), Default::default(), "setup").unwrap();
    let custom = |id: &str, addr: &str| {
        let mut gw = gateway("gw", "vnet1", "pip1", "VpnGw1");
        gw["properties"]["enableBgp"] = json!(true);
        gw["properties"]["bgpSettings"] = json!({
            "asn": 65010,
            "bgpPeeringAddresses": [{ "ipconfigurationId": id, "customBgpIpAddresses": [addr] }]
        });
        with_outputs(gw)
    };
    let rec = deploy(
        &mut t.site,
        &custom("gw/ipConfigurations/cfg", "169.254.21.1"),
        Default::default(),
        "gw",
    )
    .unwrap();
    assert_eq!(
        rec.outputs["addresses"][0]["customBgpIpAddresses"],
        json!(["169.254.21.1"]),
        "{:#?}",
        rec.outputs
    );
    let e = deploy(
        &mut t.site,
        &custom("gw/ipConfigurations/cfg", "169.254.30.1"),
        Default::default(),
        "bad",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("bgpPeeringAddresses[0].customBgpIpAddresses[0]")
            && e.contains("169.254.21.0 - 169.254.22.255"),
        "{e}"
    );
    let e = deploy(
        &mut t.site,
        &custom("gw/ipConfigurations/other", "169.254.21.2"),
        Default::default(),
        "bad2",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("ipconfigurationId") && e.contains("cfg"), "{e}");
}
