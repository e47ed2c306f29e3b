//! The four public templates deploy their network resources to an `azure` site (gateways and
//! connections recorded as pending realization); the two azs-* ones deploy in sequence on an
//! `azure-stack-hub` site; a 2020 API version is rejected on azure-stack-hub.

mod common;

use common::*;
use serde_json::json;
use site::{ChangeAction, ProvisioningState, Resource, SiteError};

fn pending(r: &Resource) -> bool {
    matches!(r.provisioning_state(), ProvisioningState::Pending { .. })
}

#[test]
fn site_to_site_vpn_create_on_azure() {
    let mut t = site("azure", "203.0.113.0/24");
    let rec = deploy(
        &mut t.site,
        &read("site-to-site-vpn-create/azuredeploy.json"),
        params(
            Some("site-to-site-vpn-create/azuredeploy.parameters.json"),
            json!({}),
        ),
        "s2s",
    )
    .unwrap();
    assert_eq!(
        rec.parameters["sharedKey"],
        json!("***"),
        "securestring parameter masked in the record"
    );
    let rs = t.site.resources().unwrap();
    assert_eq!(rs.len(), 5);
    let Resource::VirtualNetwork(v) = find(&rs, "azureVnet") else {
        panic!()
    };
    assert_eq!(v.address_space, vec!["10.3.0.0/16".parse().unwrap()]);
    assert_eq!(v.subnets.len(), 2);
    assert_eq!(
        v.gateway_subnet().unwrap().address_prefix.to_string(),
        "10.3.200.0/29"
    );
    assert_eq!(v.meta.provisioning_state, ProvisioningState::Updating);
    let Resource::PublicIpAddress(p) = find(&rs, "azureGatewayIP") else {
        panic!()
    };
    assert_eq!(p.ip_address.to_string(), "203.0.113.1");
    let Resource::VirtualNetworkGateway(g) = find(&rs, "azureGateway") else {
        panic!()
    };
    assert!(pending(find(&rs, "azureGateway")));
    assert_eq!(
        g.ip_configurations[0].private_ip_address.to_string(),
        "10.3.200.4"
    );
    assert_eq!(g.sku, "Basic");
    let Resource::LocalNetworkGateway(l) = find(&rs, "localGateway") else {
        panic!()
    };
    assert_eq!(l.address_prefixes.len(), 2);
    assert_eq!(
        *find(&rs, "localGateway").provisioning_state(),
        ProvisioningState::Succeeded
    );
    let c = find(&rs, "Azure2Other");
    assert!(pending(c));
    let Resource::Connection(conn) = c else {
        panic!()
    };
    assert_eq!(conn.shared_key.as_ref().unwrap().expose(), "GEN-UNIQUE");
    assert_eq!(conn.dpd_timeout_seconds, 45);
    let policy = conn.effective_policy(t.site.kind());
    assert!(!policy.custom);
    assert_eq!(policy.ike_proposals[0], "aes256-sha1-modp1024");
    let shown = c.arm_json().to_string();
    assert!(
        !shown.contains("GEN-UNIQUE"),
        "sharedKey must not be in arm_json: {shown}"
    );
    assert!(!format!("{c:?}").contains("GEN-UNIQUE"));
    assert_eq!(
        c.arm_json()["properties"]["provisioningState"],
        json!("Pending")
    );
}

#[test]
fn vnet_to_vnet_on_azure() {
    let mut t = site("azure", "198.51.100.0/28");
    let tpl = read("vnet-to-vnet/azuredeploy.json");
    // The published parameter file names both public IPs GEN-UNIQUE: one resource declared twice.
    let e = t
        .site
        .plan(
            &tpl,
            params(Some("vnet-to-vnet/azuredeploy.parameters.json"), json!({})),
            "v2v",
        )
        .unwrap_err();
    assert!(matches!(e, SiteError::Template(_)), "{e}");
    assert!(e.to_string().contains("defined multiple times"), "{e}");
    let p = params(
        Some("vnet-to-vnet/azuredeploy.parameters.json"),
        json!({"gatewayPublicIPName1": "gw1-pip", "gatewayPublicIPName2": "gw2-pip"}),
    );
    let rec = deploy(&mut t.site, &tpl, p, "v2v").unwrap();
    assert_eq!(rec.resources.len(), 8);
    let rs = t.site.resources().unwrap();
    let Resource::PublicIpAddress(p1) = find(&rs, "gw1-pip") else {
        panic!()
    };
    let Resource::PublicIpAddress(p2) = find(&rs, "gw2-pip") else {
        panic!()
    };
    assert_eq!(
        (p1.ip_address.to_string(), p2.ip_address.to_string()),
        ("198.51.100.1".into(), "198.51.100.2".into())
    );
    let Resource::VirtualNetworkGateway(g1) = find(&rs, "Vnet1Gw") else {
        panic!()
    };
    assert_eq!(
        g1.ip_configurations[0].private_ip_address.to_string(),
        "192.168.100.20"
    );
    assert!(
        g1.meta.notes.iter().any(|n| n.contains("Basic assumed")),
        "{:?}",
        g1.meta.notes
    );
    for c in ["Vnet1Connection", "Vnet2Connection"] {
        assert!(pending(find(&rs, c)), "{c}");
        let Resource::Connection(conn) = find(&rs, c) else {
            panic!()
        };
        assert_eq!(conn.connection_type, site::ConnectionType::Vnet2Vnet);
        assert_eq!(conn.routing_weight, 3);
    }
}

#[test]
fn azs_templates_on_azure() {
    let mut t = site("azure", "203.0.113.0/24");
    let first = deploy(
        &mut t.site,
        &read("azs-sqlhadr-dr-gateway/azuredeploy.json"),
        params(
            Some("azs-sqlhadr-dr-gateway/azuredeploy.parameters.json"),
            json!({"DNSServerAddress": ["10.0.0.11"]}),
        ),
        "dr",
    )
    .unwrap();
    assert_eq!(first.parameters["adminPassword"], json!("***"));
    let rs = t.site.resources().unwrap();
    let nsg = rs
        .iter()
        .find(|r| r.resource_type() == "Microsoft.Network/networkSecurityGroups")
        .unwrap();
    let Resource::NetworkSecurityGroup(g) = nsg else {
        panic!("typed: {nsg:?}")
    };
    assert_eq!(g.security_rules.len(), 1);
    assert_eq!(g.security_rules[0].priority, 101);
    assert!(pending(nsg), "the site alone realizes nothing");
    assert!(
        !first.notes.iter().any(|n| n.contains("not modelled")),
        "every type of the template is modelled: {:?}",
        first.notes
    );
    let gw_subnet = t.site.resource_id(
        "Microsoft.Network/virtualNetworks/subnets",
        "AzureVirtualNetwork/GatewaySubnet",
    );
    let second = deploy(
        &mut t.site,
        &read("azs-sqlhadr-s2s-nested/Site2SiteVpnHa.json"),
        params(
            None,
            json!({"location": "s1", "vpnType": "RouteBased", "localGatewayName": "toHA", "localGatewayIpAddress": "192.0.2.10",
                   "localAddressPrefix": "10.4.0.0/16", "virtualNetworkName": "AzureVirtualNetwork", "gatewaySku": "Basic",
                   "connectionName": "DR-to-HA", "sharedKey": "abc123", "gatewaySubnetRef": gw_subnet}),
        ),
        "s2s",
    )
    .unwrap();
    assert_eq!(second.resources.len(), 4);
    let rs = t.site.resources().unwrap();
    assert!(pending(find(&rs, "DR-to-HA")));
}

#[test]
fn azs_templates_in_sequence_on_azure_stack_hub() {
    let mut t = site("azure-stack-hub", "192.0.2.0/24");
    let first = deploy(
        &mut t.site,
        &read("azs-sqlhadr-dr-gateway/azuredeploy.json"),
        params(
            Some("azs-sqlhadr-dr-gateway/azuredeploy.parameters.json"),
            json!({"DNSServerAddress": ["10.0.0.11"]}),
        ),
        "dr",
    )
    .unwrap();
    assert_eq!(
        first.outputs["VnetAddressSpace"],
        json!("10.3.0.0/16"),
        "output evaluated through reference() of the site's VNet"
    );
    assert_eq!(
        first.outputs["vmpassword"],
        json!("***"),
        "an output echoing a securestring parameter is masked"
    );
    let rs = t.site.resources().unwrap();
    let Resource::VirtualNetwork(v) = find(&rs, "AzureVirtualNetwork") else {
        panic!()
    };
    assert_eq!(
        v.meta.api_version, "2017-10-01",
        "apiProfile 2018-03-01-hybrid maps Microsoft.Network to 2017-10-01"
    );
    assert!(
        v.meta.notes.iter().any(|n| n.contains("recommended /28")),
        "{:?}",
        v.meta.notes
    );

    // The second template uses the first's outputs and its existing VNet.
    let o = &first.outputs;
    let vnet = o["virtualnetworkname"].as_str().unwrap();
    let gw_subnet = t.site.resource_id(
        "Microsoft.Network/virtualNetworks/subnets",
        &format!("{vnet}/GatewaySubnet"),
    );
    let second = deploy(
        &mut t.site,
        &read("azs-sqlhadr-s2s-nested/Site2SiteVpnHa.json"),
        params(
            None,
            json!({"location": "s1", "vpnType": "RouteBased", "localGatewayName": "toHA", "localGatewayIpAddress": "203.0.113.7",
                   "localAddressPrefix": "10.4.0.0/16", "virtualNetworkName": vnet, "gatewayPublicIPName": o["gatewayPublicIPName"],
                   "gatewayName": o["VnetGateway"], "gatewaySku": "Standard", "connectionName": "DR-to-HA",
                   "sharedKey": o["sharedKey"], "gatewaySubnetRef": gw_subnet}),
        ),
        "s2s",
    )
    .unwrap();
    let plan_actions = second.resources.len();
    assert_eq!(plan_actions, 4);
    let rs = t.site.resources().unwrap();
    let Resource::VirtualNetworkGateway(g) = find(&rs, "azureGateway") else {
        panic!()
    };
    assert_eq!(
        g.sku, "Standard",
        "the second deployment updated the gateway"
    );
    assert_eq!(g.meta.api_version, "2015-06-15");
    assert_eq!(
        g.ip_configurations[0].private_ip_address.to_string(),
        "10.3.200.4",
        "gateway address kept"
    );
    let Resource::PublicIpAddress(p) = find(&rs, "azureGatewayIP") else {
        panic!()
    };
    assert_eq!(p.ip_address.to_string(), "192.0.2.1");
    let Resource::Connection(c) = find(&rs, "DR-to-HA") else {
        panic!()
    };
    let policy = c.effective_policy(t.site.kind());
    assert_eq!(policy.ike_proposals, vec!["aes256-sha384-ecp384"]);
    assert_eq!(policy.esp_initiator_proposals, vec!["aes256gcm16-ecp384"]);
    assert_eq!(t.site.deployments().unwrap().len(), 2);

    // Re-applying the second deployment changes nothing.
    let again = t
        .site
        .plan(
            &read("azs-sqlhadr-s2s-nested/Site2SiteVpnHa.json"),
            params(
                None,
                json!({"location": "s1", "vpnType": "RouteBased", "localGatewayName": "toHA", "localGatewayIpAddress": "203.0.113.7",
                   "localAddressPrefix": "10.4.0.0/16", "virtualNetworkName": vnet, "gatewayPublicIPName": o["gatewayPublicIPName"],
                   "gatewayName": o["VnetGateway"], "gatewaySku": "Standard", "connectionName": "DR-to-HA",
                   "sharedKey": o["sharedKey"], "gatewaySubnetRef": gw_subnet}),
            ),
            "s2s",
        )
        .unwrap();
    assert!(
        again
            .changes
            .iter()
            .all(|c| c.action == ChangeAction::NoChange),
        "{:?}",
        again.changes
    );
}

#[test]
fn api_version_2020_rejected_on_azure_stack_hub() {
    let mut t = site("azure-stack-hub", "192.0.2.0/24");
    let e = t
        .site
        .plan(
            &read("site-to-site-vpn-create/azuredeploy.json"),
            params(
                Some("site-to-site-vpn-create/azuredeploy.parameters.json"),
                json!({}),
            ),
            "s2s",
        )
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SiteError::ApiVersion { .. }), "{msg}");
    assert_eq!(
        msg,
        "resources[0] (Microsoft.Network/localNetworkGateways 'localGateway').apiVersion: API version 2020-08-01 is not supported on an azure-stack-hub site: Microsoft.Network accepts 2015-06-15 … 2018-11-01 (use apiProfile 2018-03-01-hybrid / 2019-03-01-hybrid / 2020-09-01-hybrid or an apiVersion in that range)"
    );
    assert!(t.site.resources().unwrap().is_empty());
    let _ = &mut t;
}

/// vnet-to-vnet spans two sites the way it spans two regions of one resource group: each site
/// takes the resources of its location; connections may point at the other site's gateway.
#[test]
fn vnet_to_vnet_across_two_sites_by_location() {
    let dir = tempfile::tempdir().unwrap();
    let opts = |loc: &str| site::SiteOptions {
        subscription_id: Some("00000000-0000-0000-0000-000000000001".into()),
        resource_group: Some("lab".into()),
        location: Some(loc.into()),
    };
    let mut a = site::Site::create_with(
        dir.path(),
        "north",
        "azure",
        "203.0.113.0/28".parse().unwrap(),
        &opts("North Europe"),
    )
    .unwrap();
    let mut b = site::Site::create_with(
        dir.path(),
        "east",
        "azure",
        "198.51.100.0/28".parse().unwrap(),
        &opts("East US"),
    )
    .unwrap();
    let tpl = read("vnet-to-vnet/azuredeploy.json");
    let p = params(
        Some("vnet-to-vnet/azuredeploy.parameters.json"),
        json!({"gatewayPublicIPName1": "gw1-pip", "gatewayPublicIPName2": "gw2-pip"}),
    );
    let only = |l: &str| site::PlanOptions {
        locations: Some(vec![l.to_string()]),
        ..Default::default()
    };

    let plan_a = a
        .plan_with(&tpl, p.clone(), "v2v", &only("northeurope"))
        .unwrap();
    assert_eq!(
        plan_a
            .resources
            .iter()
            .map(|r| r.name())
            .collect::<Vec<_>>(),
        ["Vnet1", "gw1-pip", "Vnet1Gw", "Vnet1Connection"]
    );
    assert!(
        plan_a
            .notes
            .iter()
            .any(|n| n.contains("'Vnet2Gw') is in location 'East US': left to another site")),
        "{:?}",
        plan_a.notes
    );
    a.apply(plan_a).unwrap();

    let foreign = a.resources().unwrap();
    let plan_b = b
        .plan_with(
            &tpl,
            p.clone(),
            "v2v",
            &site::PlanOptions {
                foreign,
                ..only("East US")
            },
        )
        .unwrap();
    b.apply(plan_b).unwrap();
    let rs_b = b.resources().unwrap();
    let Resource::Connection(c2) = find(&rs_b, "Vnet2Connection") else {
        panic!()
    };
    assert_eq!(
        c2.virtual_network_gateway2.as_deref(),
        Some(find(&a.resources().unwrap(), "Vnet1Gw").id())
    );
    let Resource::PublicIpAddress(p2) = find(&rs_b, "gw2-pip") else {
        panic!()
    };
    assert_eq!(
        p2.ip_address.to_string(),
        "198.51.100.1",
        "allocated from the east site's prefix"
    );

    // Re-deploying on the first site, now seeing the second, changes nothing.
    let again = a
        .plan_with(
            &tpl,
            p,
            "v2v",
            &site::PlanOptions {
                foreign: b.resources().unwrap(),
                ..only("North Europe")
            },
        )
        .unwrap();
    assert!(
        again
            .changes
            .iter()
            .all(|c| c.action == ChangeAction::NoChange),
        "{:?}",
        again.changes
    );
}
