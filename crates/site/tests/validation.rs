//! Every validation error: one precise message naming the resource and property, and the site
//! left untouched.

mod common;

use common::*;
use serde_json::{json, Value};
use site::SiteError;

/// Plans `resources` on a fresh site of `kind` (after `setup`, if any) and returns the error.
fn reject_on(kind: &str, prefix: &str, setup: Option<Value>, resources: Value) -> SiteError {
    let mut t = site(kind, prefix);
    if let Some(s) = setup {
        deploy(&mut t.site, &tpl(s), Default::default(), "setup").unwrap();
    }
    let before = t.site.resources().unwrap();
    let e = t
        .site
        .plan(&tpl(resources), Default::default(), "bad")
        .unwrap_err();
    assert_eq!(
        t.site.resources().unwrap(),
        before,
        "a rejected plan changes nothing"
    );
    e
}

fn reject(resources: Value) -> String {
    reject_on("azure", "203.0.113.0/24", None, resources).to_string()
}

#[test]
fn subnet_outside_address_space() {
    let e = reject(json!([vnet(
        "vnet1",
        &["10.1.0.0/16"],
        &[("a", "10.1.1.0/24"), ("b", "10.9.0.0/24")]
    )]));
    assert_eq!(e, "resources[0] (Microsoft.Network/virtualNetworks 'vnet1').properties.subnets[1].properties.addressPrefix: 10.9.0.0/24 is outside the address space [10.1.0.0/16]");
}

#[test]
fn overlapping_address_spaces() {
    let e = reject(json!([vnet(
        "vnet1",
        &["10.1.0.0/16", "10.1.128.0/24"],
        &[]
    )]));
    assert_eq!(e, "resources[0] (Microsoft.Network/virtualNetworks 'vnet1').properties.addressSpace.addressPrefixes[1]: 10.1.128.0/24 overlaps 10.1.0.0/16 (addressPrefixes[0]) in the same address space");
}

#[test]
fn overlapping_subnets() {
    let e = reject(json!([vnet(
        "vnet1",
        &["10.1.0.0/16"],
        &[("a", "10.1.0.0/23"), ("b", "10.1.1.0/24")]
    )]));
    assert_eq!(e, "resources[0] (Microsoft.Network/virtualNetworks 'vnet1').properties.subnets[0].properties.addressPrefix: 10.1.0.0/23 overlaps subnet 'b' (10.1.1.0/24)");
}

#[test]
fn host_bits_and_garbage_prefixes() {
    let e = reject(json!([vnet(
        "vnet1",
        &["10.1.0.0/16"],
        &[("a", "10.1.1.5/24")]
    )]));
    assert!(
        e.ends_with("properties.subnets[0].properties.addressPrefix: 10.1.1.5/24 has host bits set; did you mean 10.1.1.0/24?"),
        "{e}"
    );
    let e = reject(json!([vnet("vnet1", &["ten.one/16"], &[])]));
    assert!(
        e.ends_with("properties.addressSpace.addressPrefixes[0]: \"ten.one/16\" is not an IPv4 prefix (a.b.c.d/n)"),
        "{e}"
    );
}

#[test]
fn gateway_subnet_slash30() {
    let e = reject(json!([vnet(
        "vnet1",
        &["10.1.0.0/16"],
        &[("GatewaySubnet", "10.1.255.0/30")]
    )]));
    assert_eq!(e, "resources[0] (Microsoft.Network/virtualNetworks 'vnet1').properties.subnets[0].properties.addressPrefix: GatewaySubnet 10.1.255.0/30 is too small: the minimum on an azure site is /29 (/27 recommended)");
    let e = reject_on(
        "azure-stack-hub",
        "192.0.2.0/24",
        None,
        json!([vnet(
            "vnet1",
            &["10.1.0.0/16"],
            &[("GatewaySubnet", "10.1.255.0/30")]
        )]),
    )
    .to_string();
    assert!(
        e.ends_with("GatewaySubnet 10.1.255.0/30 is too small: the minimum on an azure-stack-hub site is /29 (/28 recommended)"),
        "{e}"
    );
}

#[test]
fn ordinary_subnet_too_small() {
    let e = reject(json!([vnet(
        "vnet1",
        &["10.1.0.0/16"],
        &[("a", "10.1.1.0/30")]
    )]));
    assert!(
        e.ends_with("properties.subnets[0].properties.addressPrefix: subnet 10.1.1.0/30 is too small: the smallest subnet is /29"),
        "{e}"
    );
}

#[test]
fn gateway_subnet_with_route_table() {
    let mut v = vnet(
        "vnet1",
        &["10.1.0.0/16"],
        &[("GatewaySubnet", "10.1.255.0/27")],
    );
    v["properties"]["subnets"][0]["properties"]["routeTable"] = json!({"id": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Network/routeTables/rt"});
    let e = reject(json!([v]));
    assert!(e.starts_with("resources[0] (Microsoft.Network/virtualNetworks 'vnet1').properties.subnets[0].properties.routeTable.id: GatewaySubnet must not have a route table"), "{e}");
}

#[test]
fn gateway_subnet_with_denying_nsg() {
    let nsg = json!({"type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2018-11-01", "name": "nsg", "location": "here",
        "properties": {"securityRules": [{"name": "block-ike", "properties": {"access": "Deny", "direction": "Inbound", "protocol": "Udp",
            "sourcePortRange": "*", "destinationPortRange": "500", "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "priority": 100}}]}});
    let mut v = vnet(
        "vnet1",
        &["10.1.0.0/16"],
        &[("GatewaySubnet", "10.1.255.0/27")],
    );
    v["properties"]["subnets"][0]["properties"]["networkSecurityGroup"] =
        json!({"id": "[resourceId('Microsoft.Network/networkSecurityGroups', 'nsg')]"});
    v["dependsOn"] = json!(["nsg"]);
    let e = reject(json!([nsg, v]));
    assert!(e.starts_with("resources[1] (Microsoft.Network/virtualNetworks 'vnet1').properties.subnets[0].properties.networkSecurityGroup.id: GatewaySubnet must not have a network security group that denies traffic (rule 'block-ike'"), "{e}");
}

#[test]
fn unsupported_api_version() {
    let mut v = vnet("vnet1", &["10.1.0.0/16"], &[]);
    v["apiVersion"] = json!("2020-05-01");
    let e = reject_on("azure-stack-hub", "192.0.2.0/24", None, json!([v])).to_string();
    assert_eq!(e, "resources[0] (Microsoft.Network/virtualNetworks 'vnet1').apiVersion: API version 2020-05-01 is not supported on an azure-stack-hub site: Microsoft.Network accepts 2015-06-15 … 2018-11-01 (use apiProfile 2018-03-01-hybrid / 2019-03-01-hybrid / 2020-09-01-hybrid or an apiVersion in that range)");
}

#[test]
fn standard_public_ip_on_azure_stack_hub() {
    let mut p = pip("pip1");
    p["sku"] = json!({"name": "Standard"});
    let e = reject_on("azure-stack-hub", "192.0.2.0/24", None, json!([p])).to_string();
    assert_eq!(e, "resources[0] (Microsoft.Network/publicIPAddresses 'pip1').sku.name: Standard public IP addresses are not supported on an azure-stack-hub site; use Basic");
}

fn gw_setup() -> Value {
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
        pip("pip2")
    ])
}

#[test]
fn active_active_on_azure_stack_hub() {
    let mut g = gateway("gw", "vnet1", "pip1", "Standard");
    g["properties"]["activeActive"] = json!(true);
    let e = reject_on(
        "azure-stack-hub",
        "192.0.2.0/24",
        Some(gw_setup()),
        json!([g]),
    )
    .to_string();
    assert_eq!(e, "resources[0] (Microsoft.Network/virtualNetworkGateways 'gw').properties.activeActive: active-active gateways are not supported on an azure-stack-hub site");
}

#[test]
fn vnet2vnet_on_azure_stack_hub() {
    let setup = json!([
        vnet(
            "vnet1",
            &["10.1.0.0/16"],
            &[("GatewaySubnet", "10.1.255.0/27")]
        ),
        vnet(
            "vnet2",
            &["10.2.0.0/16"],
            &[("GatewaySubnet", "10.2.255.0/27")]
        ),
        pip("pip1"),
        pip("pip2"),
        gateway("gw1", "vnet1", "pip1", "Standard"),
        gateway("gw2", "vnet2", "pip2", "Standard")
    ]);
    let c = json!({"type": "Microsoft.Network/connections", "apiVersion": "2018-11-01", "name": "c1", "location": "here",
        "properties": {"connectionType": "Vnet2Vnet", "sharedKey": "k",
            "virtualNetworkGateway1": {"id": "[resourceId('Microsoft.Network/virtualNetworkGateways', 'gw1')]"},
            "virtualNetworkGateway2": {"id": "[resourceId('Microsoft.Network/virtualNetworkGateways', 'gw2')]"}}});
    let e = reject_on(
        "azure-stack-hub",
        "192.0.2.0/24",
        Some(setup.clone()),
        json!([c.clone()]),
    )
    .to_string();
    assert_eq!(e, "resources[0] (Microsoft.Network/connections 'c1').properties.connectionType: VNet-to-VNet connections are not supported on an azure-stack-hub site; use IPsec with a local network gateway");
    // The same is fine on azure.
    let mut t = site("azure", "203.0.113.0/24");
    deploy(&mut t.site, &tpl(setup), Default::default(), "setup").unwrap();
    deploy(&mut t.site, &tpl(json!([c])), Default::default(), "c").unwrap();
}

#[test]
fn unknown_sku_for_kind() {
    let e = reject_on(
        "azure-stack-hub",
        "192.0.2.0/24",
        Some(gw_setup()),
        json!([gateway("gw", "vnet1", "pip1", "VpnGw5")]),
    )
    .to_string();
    assert_eq!(e, "resources[0] (Microsoft.Network/virtualNetworkGateways 'gw').properties.sku.name: gateway SKU \"VpnGw5\" does not exist on an azure-stack-hub site (available: Basic, Standard, HighPerformance, VpnGw1, VpnGw2, VpnGw3)");
}

#[test]
fn policy_based_on_azure_stack_hub() {
    let mut g = gateway("gw", "vnet1", "pip1", "Basic");
    g["properties"]["vpnType"] = json!("PolicyBased");
    let e = reject_on(
        "azure-stack-hub",
        "192.0.2.0/24",
        Some(gw_setup()),
        json!([g]),
    )
    .to_string();
    assert!(
        e.ends_with(".properties.vpnType: policy-based VPN gateways are not supported on an azure-stack-hub site; use RouteBased"),
        "{e}"
    );
}

#[test]
fn gateway_outside_gateway_subnet() {
    let mut g = gateway("gw", "vnet1", "pip1", "VpnGw1");
    g["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"] =
        json!("[resourceId('Microsoft.Network/virtualNetworks/subnets', 'vnet1', 'default')]");
    let e = reject_on("azure", "203.0.113.0/24", Some(gw_setup()), json!([g])).to_string();
    assert!(e.ends_with("properties.ipConfigurations[0].properties.subnet.id: a VPN gateway must be placed in the subnet named GatewaySubnet, not 'default'"), "{e}");
}

#[test]
fn tunnel_limit_per_sku() {
    // azure-stack-hub HighPerformance: 5 tunnels per gateway.
    let mut setup = gw_setup();
    setup
        .as_array_mut()
        .unwrap()
        .push(gateway("gw", "vnet1", "pip1", "HighPerformance"));
    let mut t = site("azure-stack-hub", "192.0.2.0/24");
    deploy(&mut t.site, &tpl(setup), Default::default(), "setup").unwrap();
    let mut five = Vec::new();
    for i in 0..5 {
        five.push(lng(
            &format!("l{i}"),
            &format!("198.51.100.{}", i + 1),
            &[&format!("10.{}.0.0/16", 20 + i)],
        ));
        five.push(connection(&format!("c{i}"), "gw", &format!("l{i}"), "key"));
    }
    deploy(
        &mut t.site,
        &tpl(Value::Array(five)),
        Default::default(),
        "five",
    )
    .unwrap();
    let sixth = json!([
        lng("l5", "198.51.100.9", &["10.30.0.0/16"]),
        connection("c5", "gw", "l5", "key")
    ]);
    let e = t
        .site
        .plan(&tpl(sixth), Default::default(), "sixth")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "resources[1] (Microsoft.Network/connections 'c5').properties.virtualNetworkGateway1.id: gateway 'gw' (HighPerformance SKU) allows 5 site-to-site tunnels on an azure-stack-hub site; this would be connection 6");
    // Downgrading the gateway below its connection count is refused too.
    let e = t
        .site
        .plan(
            &tpl(json!([gateway("gw", "vnet1", "pip1", "VpnGw1")])),
            Default::default(),
            "down",
        )
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("properties.sku.name: the VpnGw1 SKU allows 3 site-to-site tunnels on an azure-stack-hub site, but 5 connections use this gateway"), "{e}");
}

#[test]
fn subnet_pool_exhausted() {
    let setup = json!([vnet("vnet1", &["10.1.0.0/16"], &[("tiny", "10.1.1.0/29")])]);
    let mut t = site("azure", "203.0.113.0/24");
    deploy(&mut t.site, &tpl(setup), Default::default(), "setup").unwrap();
    deploy(
        &mut t.site,
        &tpl(json!([
            nic("n1", "vnet1", "tiny", None),
            nic("n2", "vnet1", "tiny", None),
            nic("n3", "vnet1", "tiny", None)
        ])),
        Default::default(),
        "three",
    )
    .unwrap();
    let e = t
        .site
        .plan(
            &tpl(json!([nic("n4", "vnet1", "tiny", None)])),
            Default::default(),
            "fourth",
        )
        .unwrap_err()
        .to_string();
    assert_eq!(e, "resources[0] (Microsoft.Network/networkInterfaces 'n4').properties.ipConfigurations[0].properties.privateIPAllocationMethod: subnet 'tiny' (10.1.1.0/29) has no free address left: 3 usable, all in use");
}

#[test]
fn public_prefix_exhausted() {
    let e = reject_on(
        "azure",
        "203.0.113.8/30",
        None,
        json!([pip("a"), pip("b"), pip("c")]),
    )
    .to_string();
    assert_eq!(e, "resources[2] (Microsoft.Network/publicIPAddresses 'c').properties.publicIPAllocationMethod: no free address left in the site's public prefix 203.0.113.8/30 (2 in use)");
}

#[test]
fn static_address_conflicts() {
    let setup = json!([
        vnet("vnet1", &["10.1.0.0/16"], &[("default", "10.1.1.0/24")]),
        nic("n1", "vnet1", "default", Some("10.1.1.10"))
    ]);
    let e = reject_on(
        "azure",
        "203.0.113.0/24",
        Some(setup.clone()),
        json!([nic("n2", "vnet1", "default", Some("10.1.1.10"))]),
    )
    .to_string();
    assert_eq!(e, "resources[0] (Microsoft.Network/networkInterfaces 'n2').properties.ipConfigurations[0].properties.privateIPAddress: 10.1.1.10 is already in use by networkInterfaces 'n1'");
    let e = reject_on(
        "azure",
        "203.0.113.0/24",
        Some(setup.clone()),
        json!([nic("n2", "vnet1", "default", Some("10.1.1.3"))]),
    )
    .to_string();
    assert!(e.ends_with("privateIPAddress: 10.1.1.3 is reserved in subnet 10.1.1.0/24: the network address, .1 (router), .2, .3 (DNS) and the broadcast address are not assignable; the first usable address is 10.1.1.4"), "{e}");
    let e = reject_on(
        "azure",
        "203.0.113.0/24",
        Some(setup),
        json!([nic("n2", "vnet1", "default", Some("10.1.2.7"))]),
    )
    .to_string();
    assert!(
        e.ends_with("privateIPAddress: 10.1.2.7 is outside subnet 'default' (10.1.1.0/24)"),
        "{e}"
    );
}

#[test]
fn missing_reference_names_resource_and_property() {
    let e = reject(json!([nic("n1", "nope", "default", None)]));
    assert!(
        e.starts_with(
            "resources[0] (Microsoft.Network/networkInterfaces 'n1').properties.ipConfigurations[0].properties.subnet.id: /subscriptions/"
        ),
        "{e}"
    );
    assert!(
        e.ends_with("/providers/Microsoft.Network/virtualNetworks/nope/subnets/default does not exist in this deployment or site"),
        "{e}"
    );
}

#[test]
fn nic_in_gateway_subnet_rejected() {
    let setup = json!([vnet(
        "vnet1",
        &["10.1.0.0/16"],
        &[("GatewaySubnet", "10.1.255.0/27")]
    )]);
    let e = reject_on(
        "azure",
        "203.0.113.0/24",
        Some(setup),
        json!([nic("n1", "vnet1", "GatewaySubnet", None)]),
    )
    .to_string();
    assert!(
        e.ends_with("properties.subnet.id: network interfaces cannot be placed in GatewaySubnet; it is reserved for VPN gateways"),
        "{e}"
    );
}

fn policy(over: Value) -> Value {
    let mut p = json!({"saLifeTimeSeconds": 27000, "saDataSizeKilobytes": 102400000, "ipsecEncryption": "GCMAES256", "ipsecIntegrity": "GCMAES256",
        "ikeEncryption": "AES256", "ikeIntegrity": "SHA384", "dhGroup": "ECP384", "pfsGroup": "ECP384"});
    for (k, v) in over.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

fn conn_setup() -> Value {
    let mut s = gw_setup();
    s.as_array_mut()
        .unwrap()
        .push(gateway("gw", "vnet1", "pip1", "VpnGw1"));
    s.as_array_mut()
        .unwrap()
        .push(lng("peer", "198.51.100.1", &["10.2.0.0/16"]));
    s
}

#[test]
fn ipsec_policy_validation() {
    let with = |p: Value| {
        let mut c = connection("c1", "gw", "peer", "secret-psk-value");
        c["properties"]["ipsecPolicies"] = json!([p]);
        reject_on("azure", "203.0.113.0/24", Some(conn_setup()), json!([c])).to_string()
    };
    let e = with(policy(json!({"ipsecIntegrity": "SHA256"})));
    assert_eq!(e, "resources[0] (Microsoft.Network/connections 'c1').properties.ipsecPolicies[0].ipsecIntegrity: SHA256 with ipsecEncryption GCMAES256: GCMAES encryption requires the same GCMAES integrity value");
    let e = with(policy(
        json!({"ikeEncryption": "GCMAES128", "ikeIntegrity": "GCMAES256"}),
    ));
    assert!(e.ends_with("ipsecPolicies[0].ikeIntegrity: GCMAES256 with ikeEncryption GCMAES128: GCMAES encryption requires the same GCMAES integrity value"), "{e}");
    let e = with(policy(json!({"dhGroup": "DHGroup99"})));
    assert!(e.ends_with("ipsecPolicies[0].dhGroup: \"DHGroup99\" is not one of None, DHGroup1, DHGroup2, DHGroup14, DHGroup2048, ECP256, ECP384, DHGroup24"), "{e}");
    let e = with(policy(json!({"saLifeTimeSeconds": 10})));
    assert!(
        e.ends_with("ipsecPolicies[0].saLifeTimeSeconds: 10 is out of range: at least 300 seconds"),
        "{e}"
    );
    let mut p = policy(json!({}));
    p.as_object_mut().unwrap().remove("pfsGroup");
    let e = with(p);
    assert!(e.ends_with("ipsecPolicies[0].pfsGroup: is required"), "{e}");
    assert!(!e.contains("secret-psk-value"));
}

#[test]
fn custom_policy_needs_standard_or_high_performance_on_ash() {
    let mut setup = gw_setup();
    setup
        .as_array_mut()
        .unwrap()
        .push(gateway("gw", "vnet1", "pip1", "Basic"));
    setup
        .as_array_mut()
        .unwrap()
        .push(lng("peer", "198.51.100.1", &["10.2.0.0/16"]));
    let mut c = connection("c1", "gw", "peer", "k");
    c["properties"]["ipsecPolicies"] = json!([policy(json!({}))]);
    let e = reject_on("azure-stack-hub", "192.0.2.0/24", Some(setup), json!([c])).to_string();
    assert!(e.ends_with("properties.ipsecPolicies: custom IPsec/IKE policies need gateway SKU Standard or HighPerformance on an azure-stack-hub site; gateway 'gw' is Basic"), "{e}");
}

#[test]
fn connection_property_checks() {
    let mut c = connection("c1", "gw", "peer", "k");
    c["properties"]["dpdTimeoutSeconds"] = json!(5);
    let e = reject_on("azure", "203.0.113.0/24", Some(conn_setup()), json!([c])).to_string();
    assert!(
        e.ends_with(
            "properties.dpdTimeoutSeconds: 5 is out of range: dpdTimeoutSeconds must be 9 … 3600"
        ),
        "{e}"
    );

    let mut c = connection("c1", "gw", "peer", "k");
    c["properties"]["connectionProtocol"] = json!("IKEv1");
    let mut setup = gw_setup();
    setup
        .as_array_mut()
        .unwrap()
        .push(gateway("gw", "vnet1", "pip1", "Standard"));
    setup
        .as_array_mut()
        .unwrap()
        .push(lng("peer", "198.51.100.1", &["10.2.0.0/16"]));
    let e = reject_on(
        "azure-stack-hub",
        "192.0.2.0/24",
        Some(setup.clone()),
        json!([c]),
    )
    .to_string();
    assert!(
        e.ends_with("properties.connectionProtocol: IKEv1 is not supported on an azure-stack-hub site (supported: IKEv2)"),
        "{e}"
    );

    let mut c = connection("c1", "gw", "peer", "k");
    c["properties"]["usePolicyBasedTrafficSelectors"] = json!(true);
    let e = reject_on("azure-stack-hub", "192.0.2.0/24", Some(setup), json!([c])).to_string();
    assert!(
        e.ends_with("properties.usePolicyBasedTrafficSelectors: usePolicyBasedTrafficSelectors is not supported on an azure-stack-hub site"),
        "{e}"
    );

    let overlapping = json!([
        lng("peer2", "198.51.100.2", &["10.1.128.0/20"]),
        connection("c2", "gw", "peer2", "k")
    ]);
    let e = reject_on("azure", "203.0.113.0/24", Some(conn_setup()), overlapping).to_string();
    assert!(e.ends_with("properties.localNetworkGateway2.id: the remote address space 10.1.128.0/20 overlaps the local virtual network's 10.1.0.0/16; connected networks must not overlap"), "{e}");

    let mut c = connection("c1", "gw", "peer", "k");
    c["properties"].as_object_mut().unwrap().remove("sharedKey");
    let e = reject_on("azure", "203.0.113.0/24", Some(conn_setup()), json!([c])).to_string();
    assert!(
        e.ends_with("properties.sharedKey: is required: hybridnet does not generate keys"),
        "{e}"
    );
}

#[test]
fn bgp_asn_limits() {
    let mut g = gateway("gw", "vnet1", "pip1", "Standard");
    g["properties"]["enableBgp"] = json!(true);
    g["properties"]["bgpSettings"] = json!({"asn": 4200000000u64});
    let e = reject_on(
        "azure-stack-hub",
        "192.0.2.0/24",
        Some(gw_setup()),
        json!([g.clone()]),
    )
    .to_string();
    assert!(
        e.ends_with("properties.bgpSettings.asn: ASN 4200000000 is out of range: an azure-stack-hub site accepts 1 … 65535"),
        "{e}"
    );
    // Azure's other reserved ASNs are refused for a gateway too
    g["properties"]["bgpSettings"] = json!({"asn": 65517});
    let e = reject_on(
        "azure",
        "203.0.113.0/24",
        Some(gw_setup()),
        json!([g.clone()]),
    )
    .to_string();
    assert!(
        e.ends_with(
            "properties.bgpSettings.asn: ASN 65517 is reserved and cannot be used by a virtual network gateway on an azure site"
        ),
        "{e}"
    );
    // 65515 is Azure's own default: explicit on a gateway, as templates write it, it is fine
    g["properties"]["bgpSettings"] = json!({"asn": 65515});
    let mut t = site("azure", "203.0.113.0/24");
    deploy(&mut t.site, &tpl(gw_setup()), Default::default(), "setup").unwrap();
    deploy(&mut t.site, &tpl(json!([g])), Default::default(), "gw").unwrap();
    // but not for an on-premises peer
    let mut peer = lng("peer", "198.51.100.1", &["10.2.0.0/16"]);
    peer["properties"]["bgpSettings"] = json!({"asn": 65515, "bgpPeeringAddress": "10.2.0.1"});
    let e = reject(json!([peer])).to_string();
    assert!(
        e.ends_with(
            "properties.bgpSettings.asn: ASN 65515 is reserved and cannot be used by an on-premises peer on an azure site"
        ),
        "{e}"
    );
}

#[test]
fn apiprofile_maps_to_allowed_versions() {
    let t = json!({"$schema": "x", "contentVersion": "1.0.0.0", "apiProfile": "2018-03-01-hybrid",
        "resources": [{"type": "Microsoft.Network/publicIPAddresses", "name": "p", "location": "x", "properties": {}}]});
    let s = site("azure-stack-hub", "192.0.2.0/24");
    let p = s
        .site
        .plan(&t.to_string(), Default::default(), "ok")
        .unwrap();
    assert_eq!(p.resources[0].meta().api_version, "2017-10-01");
}

#[test]
fn strongswan_site_takes_a_lan_but_no_gateway() {
    let mut t = site("strongswan", "192.0.2.0/29");
    let lan = json!([
        vnet("lan", &["10.2.0.0/16"], &[("default", "10.2.1.0/24")]),
        nic("vm1-nic", "lan", "default", None)
    ]);
    deploy(&mut t.site, &tpl(lan), Default::default(), "lan").unwrap();
    let rs = t.site.resources().unwrap();
    let site::Resource::NetworkInterface(n) = find(&rs, "vm1-nic") else {
        panic!()
    };
    assert_eq!(
        n.ip_configurations[0].private_ip_address.to_string(),
        "10.2.1.4"
    );
    let e = t
        .site
        .plan(
            &tpl(json!([
                vnet(
                    "lan2",
                    &["10.3.0.0/16"],
                    &[("GatewaySubnet", "10.3.255.0/27")]
                ),
                pip("p"),
                gateway("gw", "lan2", "p", "Basic")
            ])),
            Default::default(),
            "gw",
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "resources[2] (Microsoft.Network/virtualNetworkGateways 'gw').type: a strongswan site (on-premises strongSwan VPN device with a LAN behind it) has no virtual network gateways"
    );
}

#[test]
fn secure_values_never_echoed_in_errors() {
    let t = site("azure", "203.0.113.0/24");
    let template = json!({"$schema": "x", "contentVersion": "1.0.0.0",
        "parameters": {"prefix": {"type": "securestring"}},
        "resources": [{"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2018-11-01", "name": "v", "location": "x",
            "properties": {"addressSpace": {"addressPrefixes": ["[parameters('prefix')]"]}}}]});
    let p = params(None, json!({"prefix": "TopSecretValue"}));
    let e = t
        .site
        .plan(&template.to_string(), p, "d")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "resources[0] (Microsoft.Network/virtualNetworks 'v').properties.addressSpace.addressPrefixes[0]: \"***\" is not an IPv4 prefix (a.b.c.d/n)");
}

/// The engine's bad-input errors reach the caller unchanged and leave the site untouched.
#[test]
fn template_errors_leave_the_site_untouched() {
    let mut t = site("azure", "203.0.113.0/24");
    deploy(
        &mut t.site,
        &tpl(json!([pip("p")])),
        Default::default(),
        "ok",
    )
    .unwrap();
    let before = (t.site.resources().unwrap(), t.site.deployments().unwrap());
    let with_param = |extra: Value| {
        json!({"$schema": "x", "contentVersion": "1.0.0.0",
            "parameters": {"sku": {"type": "string", "allowedValues": ["Basic", "Standard"]}},
            "resources": [extra]})
        .to_string()
    };
    let cases = [
        ("{ \"resources\": [ ".to_string(), Default::default()),
        (
            tpl(
                json!([{"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2018-11-01", "name": "[nosuchfunction()]", "location": "x"}]),
            ),
            Default::default(),
        ),
        (with_param(pip("q")), Default::default()),
        (
            with_param(pip("q")),
            params(None, json!({"sku": "Premium"})),
        ),
    ];
    for (template, p) in cases {
        let e = t.site.plan(&template, p, "bad").unwrap_err();
        assert!(matches!(e, SiteError::Template(_)), "{e}");
    }
    assert_eq!(
        (t.site.resources().unwrap(), t.site.deployments().unwrap()),
        before
    );
}

#[test]
fn bgp_peering_settings_not_configurable_on_ash() {
    let mut g = gateway("gw", "vnet1", "pip1", "Standard");
    g["properties"]["enableBgp"] = json!(true);
    g["properties"]["bgpSettings"] = json!({"asn": 65010, "peerWeight": 5});
    let e = reject_on(
        "azure-stack-hub",
        "192.0.2.0/24",
        Some(gw_setup()),
        json!([g.clone()]),
    )
    .to_string();
    assert!(
        e.ends_with(
            "properties.bgpSettings.peerWeight: a configurable BGP peering address or weight is not supported on an azure-stack-hub site"
        ),
        "{e}"
    );
    g["properties"]["bgpSettings"] = json!({"asn": -3});
    let e = reject_on("azure", "203.0.113.0/24", Some(gw_setup()), json!([g])).to_string();
    assert!(
        e.ends_with("properties.bgpSettings.asn: ASN -3 is out of range: ASNs are positive"),
        "{e}"
    );
}

#[test]
fn policy_based_gateway_rules_on_azure() {
    let mut g = gateway("gw", "vnet1", "pip1", "Basic");
    g["properties"]["vpnType"] = json!("PolicyBased");
    let mut setup = gw_setup();
    setup.as_array_mut().unwrap().push(g);
    setup
        .as_array_mut()
        .unwrap()
        .push(lng("peer", "198.51.100.1", &["10.2.0.0/16"]));
    setup
        .as_array_mut()
        .unwrap()
        .push(lng("peer2", "198.51.100.2", &["10.3.0.0/16"]));
    let mut t = site("azure", "203.0.113.0/24");
    deploy(&mut t.site, &tpl(setup), Default::default(), "setup").unwrap();
    let mut ikev2 = connection("c1", "gw", "peer", "k");
    ikev2["properties"]["connectionProtocol"] = json!("IKEv2");
    let e = t
        .site
        .plan(&tpl(json!([ikev2])), Default::default(), "c")
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(
            "properties.connectionProtocol: gateway 'gw' is policy-based, which speaks IKEv1 only"
        ),
        "{e}"
    );
    deploy(
        &mut t.site,
        &tpl(json!([connection("c1", "gw", "peer", "k")])),
        Default::default(),
        "c",
    )
    .unwrap();
    let Some(site::Resource::Connection(c)) = t
        .site
        .resource(&t.site.resource_id("Microsoft.Network/connections", "c1"))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(c.connection_protocol, site::ConnectionProtocol::IKEv1);
    let e = t
        .site
        .plan(
            &tpl(json!([connection("c2", "gw", "peer2", "k")])),
            Default::default(),
            "c2",
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(
            "properties.virtualNetworkGateway1.id: gateway 'gw' is policy-based, which allows one tunnel; this would be connection 2"
        ),
        "{e}"
    );
}

#[test]
fn resource_types_the_site_does_not_serve() {
    let res = |t: &str| json!([{"type": t, "apiVersion": "2018-11-01", "name": "x", "location": "[resourceGroup().location]", "properties": {}}]);
    let e = reject_on("azure", "203.0.113.0/24", None, res("Microsoft.Foo/bars"));
    assert!(
        matches!(
            &e,
            SiteError::ResourceType {
                refusal: site::TypeRefusal::NoProvider(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with("resources[0] (Microsoft.Foo/bars 'x').type: no resource provider \"Microsoft.Foo\" is registered on an azure site (providers: "),
        "{e}"
    );
    // Azure has NAT gateways, Azure Stack Hub does not
    let e = reject_on(
        "azure-stack-hub",
        "192.0.2.0/24",
        None,
        res("Microsoft.Network/natGateways"),
    );
    assert!(
        matches!(
            &e,
            SiteError::ResourceType {
                refusal: site::TypeRefusal::UnknownType(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("the resource type \"natGateways\" could not be found in the namespace \"Microsoft.Network\" on an azure-stack-hub site (its types: virtualNetworks, "),
        "{e}"
    );
    let mut t = site("azure", "203.0.113.0/24");
    deploy(
        &mut t.site,
        &tpl(res("Microsoft.Network/natGateways")),
        Default::default(),
        "nat",
    )
    .unwrap();
    let rs = t.site.resources().unwrap();
    assert!(
        matches!(find(&rs, "x"), site::Resource::Other(_)),
        "known type, recorded"
    );
}

#[test]
fn ike_versions_the_realizing_gateway_lacks_are_refused_up_front() {
    let mut t = site("azure", "203.0.113.0/24");
    t.site
        .set_gateway_protocols(&[site::ConnectionProtocol::IKEv2]);
    let mut setup = gw_setup();
    setup
        .as_array_mut()
        .unwrap()
        .push(gateway("gw", "vnet1", "pip1", "VpnGw1"));
    setup
        .as_array_mut()
        .unwrap()
        .push(lng("peer", "198.51.100.1", &["10.2.0.0/16"]));
    deploy(&mut t.site, &tpl(setup), Default::default(), "setup").unwrap();
    let before = t.site.resources().unwrap();
    let mut c = connection("c1", "gw", "peer", "k");
    c["properties"]["connectionProtocol"] = json!("IKEv1");
    let e = t
        .site
        .plan(&tpl(json!([c])), Default::default(), "c")
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("properties.connectionProtocol: IKEv1 is accepted on an azure site, but the lab's VPN gateway speaks IKEv2 only"),
        "{e}"
    );
    let mut pb = gateway("gw2", "vnet1", "pip2", "Basic");
    pb["properties"]["vpnType"] = json!("PolicyBased");
    let e = t
        .site
        .plan(&tpl(json!([pb])), Default::default(), "pb")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("properties.vpnType: a PolicyBased gateway speaks IKEv1 only, which the lab's VPN gateway does not: use RouteBased"),
        "{e}"
    );
    // a gateway's VPN type cannot change in place
    let mut flip = gateway("gw", "vnet1", "pip1", "VpnGw1");
    flip["properties"]["vpnType"] = json!("PolicyBased");
    let mut u = site("azure", "203.0.113.0/24");
    deploy(&mut u.site, &tpl(gw_setup()), Default::default(), "setup").unwrap();
    deploy(
        &mut u.site,
        &tpl(json!([gateway("gw", "vnet1", "pip1", "VpnGw1")])),
        Default::default(),
        "gw",
    )
    .unwrap();
    let e = u
        .site
        .plan(&tpl(json!([flip])), Default::default(), "flip")
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("properties.vpnType: the VPN type of gateway 'gw' is RouteBased and cannot be changed to PolicyBased: delete the gateway and create it again, as on Azure"),
        "{e}"
    );
    assert_eq!(
        t.site.resources().unwrap(),
        before,
        "refusals change nothing"
    );
}

#[test]
fn policy_based_traffic_selectors_need_a_custom_policy() {
    let mut c = connection("c1", "gw", "peer", "k");
    c["properties"]["usePolicyBasedTrafficSelectors"] = json!(true);
    let e = reject_on(
        "azure",
        "203.0.113.0/24",
        Some(conn_setup()),
        json!([c.clone()]),
    )
    .to_string();
    assert!(
        e.ends_with("properties.usePolicyBasedTrafficSelectors: true needs a custom IPsec/IKE policy (ipsecPolicies), as on Azure"),
        "{e}"
    );
    c["properties"]["ipsecPolicies"] = json!([policy(json!({}))]);
    let mut t = site("azure", "203.0.113.0/24");
    deploy(&mut t.site, &tpl(conn_setup()), Default::default(), "setup").unwrap();
    deploy(&mut t.site, &tpl(json!([c])), Default::default(), "c").unwrap();
}

#[test]
fn public_ip_dns_labels_follow_azure() {
    let mut p = pip("pip1");
    p["properties"]["dnsSettings"] =
        json!({ "domainNameLabel": "myvm", "fqdn": "myvm.somewhere.cloudapp.azure.com" });
    let mut t = site("azure", "203.0.113.0/24");
    deploy(&mut t.site, &tpl(json!([p])), Default::default(), "p").unwrap();
    let rs = t.site.resources().unwrap();
    let site::Resource::PublicIpAddress(ip) = find(&rs, "pip1") else {
        panic!()
    };
    assert_eq!(
        ip.fqdn.as_deref(),
        Some(format!("myvm.{}.cloudapp.azure.com", t.site.info().location).as_str()),
        "derived from the label and the location, whatever the template wrote"
    );
    let mut bad = pip("pip2");
    bad["properties"]["dnsSettings"] = json!({ "domainNameLabel": "MyVM" });
    let e = reject(json!([bad])).to_string();
    assert!(
        e.contains(
            "properties.dnsSettings.domainNameLabel: \"MyVM\" is not a valid DNS name label"
        ),
        "{e}"
    );
    let mut taken = pip("pip3");
    taken["properties"]["dnsSettings"] = json!({ "domainNameLabel": "myvm" });
    let e = t
        .site
        .plan(&tpl(json!([taken])), Default::default(), "t")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("DNS name label \"myvm\" is already used by public IP 'pip1' in this location"),
        "{e}"
    );
}

/// A BGP connection to a local network gateway is refused up front when the local network
/// gateway gives no BGP peer, or when both ends use the same AS (eBGP only).
#[test]
fn bgp_connection_needs_a_peer_in_another_as() {
    let setup = |lng_bgp: Option<Value>| {
        let mut s = gw_setup();
        let mut g = gateway("gw", "vnet1", "pip1", "VpnGw1");
        g["properties"]["enableBgp"] = json!(true);
        g["properties"]["bgpSettings"] = json!({"asn": 65010});
        s.as_array_mut().unwrap().push(g);
        let mut l = lng("peer", "198.51.100.1", &["10.2.255.254/32"]);
        if let Some(b) = lng_bgp {
            l["properties"]["bgpSettings"] = b;
        }
        s.as_array_mut().unwrap().push(l);
        s
    };
    let mut c = connection("c1", "gw", "peer", "k");
    c["properties"]["enableBgp"] = json!(true);
    let e = reject_on(
        "azure",
        "203.0.113.0/24",
        Some(setup(None)),
        json!([c.clone()]),
    )
    .to_string();
    assert!(
        e.ends_with("properties.enableBgp: local network gateway 'peer' has no bgpSettings (asn and bgpPeeringAddress) to peer with"),
        "{e}"
    );
    let same = json!({"asn": 65010, "bgpPeeringAddress": "10.2.255.254"});
    let e = reject_on(
        "azure",
        "203.0.113.0/24",
        Some(setup(Some(same))),
        json!([c.clone()]),
    )
    .to_string();
    assert!(e.contains("both use AS 65010"), "{e}");
    let other = json!({"asn": 65050, "bgpPeeringAddress": "10.2.255.254"});
    let mut t = site("azure", "203.0.113.0/24");
    deploy(
        &mut t.site,
        &tpl(setup(Some(other))),
        Default::default(),
        "setup",
    )
    .unwrap();
    deploy(&mut t.site, &tpl(json!([c])), Default::default(), "c").unwrap();
}

/// A non-zero `peerWeight` (a gateway's or a local network gateway's) is refused with its
/// path: the lab's BGP speaker does not weigh routes; 0, Azure's default, deploys.
#[test]
fn bgp_peer_weight_other_than_zero_is_refused() {
    let mut g = gateway("gw", "vnet1", "pip1", "VpnGw1");
    g["properties"]["enableBgp"] = json!(true);
    g["properties"]["bgpSettings"] = json!({"asn": 65010, "peerWeight": 5});
    let e = reject_on(
        "azure",
        "203.0.113.0/24",
        Some(gw_setup()),
        json!([g.clone()]),
    )
    .to_string();
    assert!(
        e.contains(
            "properties.bgpSettings.peerWeight: 5: the lab's BGP speaker does not weigh routes"
        ),
        "{e}"
    );
    let mut l = lng("peer", "198.51.100.1", &["10.2.0.0/16"]);
    l["properties"]["bgpSettings"] =
        json!({"asn": 65050, "bgpPeeringAddress": "10.2.255.254", "peerWeight": 7});
    let e = reject_on("azure", "203.0.113.0/24", None, json!([l.clone()])).to_string();
    assert!(e.contains("properties.bgpSettings.peerWeight: 7"), "{e}");
    g["properties"]["bgpSettings"]["peerWeight"] = json!(0);
    l["properties"]["bgpSettings"]["peerWeight"] = json!(0);
    let mut t = site("azure", "203.0.113.0/24");
    deploy(&mut t.site, &tpl(gw_setup()), Default::default(), "setup").unwrap();
    deploy(&mut t.site, &tpl(json!([g, l])), Default::default(), "bgp").unwrap();
}
