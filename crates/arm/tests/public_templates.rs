//! The four public VPN templates from shared/arm-templates: each parses, binds to its parameter
//! file (or parameters supplied here), orders its resources by dependsOn, evaluates every resource
//! against a fake resolver that "deploys" them in order, and evaluates its outputs.

use arm::{
    parse_parameters, parse_template, ArmError, Deployment, DeploymentContext, EvaluatedResource,
    Map, ReferenceResolver, Value,
};
use serde_json::json;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

fn templates_dir() -> PathBuf {
    if let Ok(d) = std::env::var("HYBRIDNET_ARM_TEMPLATES") {
        return PathBuf::from(d);
    }
    // The steering repo's shared/ beside the checkout, else the byte-identical copies the
    // site crate's tests keep in the repository (a clone alone must pass).
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = here.join("../../../shared/arm-templates");
    let d = if shared.is_dir() {
        shared
    } else {
        here.join("../site/tests/templates")
    };
    assert!(
        d.is_dir(),
        "public templates not found at {} (set HYBRIDNET_ARM_TEMPLATES)",
        d.display()
    );
    d
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(templates_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn ctx() -> DeploymentContext {
    DeploymentContext {
        subscription_id: "00000000-0000-0000-0000-000000000001".into(),
        resource_group: "lab-rg".into(),
        location: "westeurope".into(),
        deployment_name: "test-deployment".into(),
    }
}

const RG: &str =
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/lab-rg/providers";

/// Records each deployed resource's properties, as a resource provider would, for reference().
#[derive(Default)]
struct Deployed(RefCell<HashMap<String, Value>>);

impl ReferenceResolver for Deployed {
    fn reference(&self, id: &str) -> Option<Value> {
        self.0.borrow().get(&id.to_ascii_lowercase()).cloned()
    }
}

/// Deploys every resource in order, checking each one's dependencies were deployed before it.
fn deploy_all(d: &Deployment, resolver: &Deployed) -> Vec<EvaluatedResource> {
    let mut out = Vec::new();
    for r in d.resources_in_order() {
        for dep in &r.depends_on {
            assert!(
                resolver.0.borrow().contains_key(&dep.to_ascii_lowercase()),
                "{} deployed before its dependency {dep}",
                r.id
            );
        }
        let e = d
            .evaluate_resource(r, resolver)
            .unwrap_or_else(|e| panic!("{}: {e}", r.path));
        let props = e.body.get("properties").cloned().unwrap_or(json!({}));
        resolver
            .0
            .borrow_mut()
            .insert(e.id.to_ascii_lowercase(), props);
        out.push(e);
    }
    out
}

fn names(rs: &[EvaluatedResource]) -> Vec<String> {
    rs.iter()
        .map(|r| {
            format!(
                "{}/{}",
                r.resource_type.rsplit('/').next().unwrap_or(""),
                r.name
            )
        })
        .collect()
}

#[test]
fn site_to_site_vpn_create() {
    let t = parse_template(&read("site-to-site-vpn-create/azuredeploy.json")).unwrap();
    let p = parse_parameters(&read("site-to-site-vpn-create/azuredeploy.parameters.json")).unwrap();
    let d = Deployment::new(&t, &p, &ctx()).unwrap();
    assert_eq!(d.api_profile(), None);
    let resolver = Deployed::default();
    let rs = deploy_all(&d, &resolver);
    assert_eq!(
        names(&rs),
        vec![
            "localNetworkGateways/localGateway",
            "virtualNetworks/azureVnet",
            "publicIPAddresses/azureGatewayIP",
            "virtualNetworkGateways/azureGateway",
            "connections/Azure2Other",
        ]
    );
    let lgw = &rs[0];
    assert_eq!(
        lgw.id,
        format!("{RG}/Microsoft.Network/localNetworkGateways/localGateway")
    );
    assert_eq!(
        lgw.location.as_deref(),
        Some("westeurope"),
        "location defaults to resourceGroup().location"
    );
    assert_eq!(lgw.api_version.as_deref(), Some("2020-08-01"));
    assert_eq!(
        lgw.body["properties"]["localNetworkAddressSpace"]["addressPrefixes"],
        json!(["192.168.0.0/16", "172.16.0.0/12"])
    );
    assert_eq!(lgw.body["properties"]["gatewayIpAddress"], "1.1.1.1");
    let vnet = &rs[1];
    assert_eq!(
        vnet.body["properties"]["subnets"][1]["properties"]["addressPrefix"],
        "10.3.200.0/29"
    );
    assert_eq!(
        vnet.body["properties"]["subnets"][1]["name"],
        "GatewaySubnet"
    );
    let gw = &rs[3];
    assert_eq!(
        gw.body["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"],
        json!(format!(
            "{RG}/Microsoft.Network/virtualNetworks/azureVnet/subnets/GatewaySubnet"
        ))
    );
    assert_eq!(
        gw.body["properties"]["sku"]["name"], "Basic",
        "gatewaySku default applies"
    );
    let conn = &rs[4];
    assert_eq!(conn.body["properties"]["sharedKey"], "GEN-UNIQUE");
    assert_eq!(
        conn.body["properties"]["virtualNetworkGateway1"]["id"],
        json!(format!(
            "{RG}/Microsoft.Network/virtualNetworkGateways/azureGateway"
        ))
    );
    assert_eq!(
        d.resources_in_order()[4].depends_on,
        vec![
            format!("{RG}/Microsoft.Network/localNetworkGateways/localGateway"),
            format!("{RG}/Microsoft.Network/virtualNetworkGateways/azureGateway"),
        ]
    );
    // sharedKey is a securestring here: never in Debug output
    assert!(!format!("{conn:?}").contains("GEN-UNIQUE"));
    assert!(!format!("{d:?}").contains("GEN-UNIQUE"));
    assert_eq!(conn.redacted_body()["properties"]["sharedKey"], "***");
    assert_eq!(d.outputs(&resolver).unwrap(), Map::new());
}

#[test]
fn vnet_to_vnet_parameter_file_as_published_defines_a_public_ip_twice() {
    let t = parse_template(&read("vnet-to-vnet/azuredeploy.json")).unwrap();
    let p = parse_parameters(&read("vnet-to-vnet/azuredeploy.parameters.json")).unwrap();
    let e = Deployment::new(&t, &p, &ctx()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "resources[3]: resource 'Microsoft.Network/publicIPAddresses/GEN-UNIQUE' is defined multiple times in the template (also at resources[2])"
    );
}

#[test]
fn vnet_to_vnet() {
    let t = parse_template(&read("vnet-to-vnet/azuredeploy.json")).unwrap();
    let mut p = parse_parameters(&read("vnet-to-vnet/azuredeploy.parameters.json")).unwrap();
    p.insert("gatewayPublicIPName1".into(), json!("Vnet1GwIp"));
    p.insert("gatewayPublicIPName2".into(), json!("Vnet2GwIp"));
    let d = Deployment::new(&t, &p, &ctx()).unwrap();
    let resolver = Deployed::default();
    let rs = deploy_all(&d, &resolver);
    assert_eq!(
        names(&rs),
        vec![
            "virtualNetworks/Vnet1",
            "virtualNetworks/Vnet2",
            "publicIPAddresses/Vnet1GwIp",
            "publicIPAddresses/Vnet2GwIp",
            "virtualNetworkGateways/Vnet1Gw",
            "virtualNetworkGateways/Vnet2Gw",
            "connections/Vnet1Connection",
            "connections/Vnet2Connection",
        ]
    );
    let pending = d.resources_in_order();
    assert_eq!(
        pending[6].depends_on,
        vec![
            format!("{RG}/Microsoft.Network/virtualNetworkGateways/Vnet1Gw"),
            format!("{RG}/Microsoft.Network/virtualNetworkGateways/Vnet2Gw"),
        ]
    );
    assert_eq!(rs[0].location.as_deref(), Some("North Europe"));
    assert_eq!(rs[1].location.as_deref(), Some("East US"));
    assert_eq!(rs[0].body["properties"]["subnets"][0]["name"], "WebTier1");
    assert_eq!(
        rs[1].body["properties"]["subnets"][1]["properties"]["addressPrefix"],
        "192.168.101.16/28"
    );
    assert_eq!(rs[4].body["properties"]["enableBgp"], json!(false));
    assert_eq!(rs[6].body["properties"]["connectionType"], "Vnet2Vnet");
    assert_eq!(rs[7].body["properties"]["sharedKey"], "secretKey");
    assert_eq!(
        rs[7].body["properties"]["virtualNetworkGateway2"]["id"],
        json!(format!(
            "{RG}/Microsoft.Network/virtualNetworkGateways/Vnet1Gw"
        ))
    );
    assert!(rs
        .iter()
        .all(|r| r.api_version.as_deref() == Some("2020-05-01")));
    assert_eq!(d.outputs(&resolver).unwrap(), Map::new());
}

#[test]
fn azs_dr_gateway_parameter_file_as_published_gives_a_string_for_an_array() {
    let t = parse_template(&read("azs-sqlhadr-dr-gateway/azuredeploy.json")).unwrap();
    let p = parse_parameters(&read("azs-sqlhadr-dr-gateway/azuredeploy.parameters.json")).unwrap();
    let e = Deployment::new(&t, &p, &ctx()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameters.DNSServerAddress: expected a value of type array, got string '10.0.0.11'"
    );
}

#[test]
fn azs_dr_gateway() {
    let t = parse_template(&read("azs-sqlhadr-dr-gateway/azuredeploy.json")).unwrap();
    let mut p =
        parse_parameters(&read("azs-sqlhadr-dr-gateway/azuredeploy.parameters.json")).unwrap();
    p.insert("DNSServerAddress".into(), json!(["10.0.0.11"]));
    let d = Deployment::new(&t, &p, &ctx()).unwrap();
    assert_eq!(d.api_profile(), Some("2018-03-01-hybrid"));
    let resolver = Deployed::default();
    let rs = deploy_all(&d, &resolver);
    assert_eq!(
        names(&rs),
        vec![
            "networkSecurityGroups/Nsglab-rg",
            "virtualNetworks/AzureVirtualNetwork",
            "publicIPAddresses/azureGatewayIP",
            "virtualNetworkGateways/azureGateway",
        ]
    );
    // no apiVersion in the template: the 2018-03-01-hybrid profile supplies Microsoft.Network's
    assert!(
        rs.iter()
            .all(|r| r.api_version.as_deref() == Some("2017-10-01")),
        "{:?}",
        rs
    );
    assert!(
        rs.iter().all(|r| r.body["apiVersion"] == "2017-10-01"),
        "the body carries the profile's version"
    );
    let vnet = &rs[1];
    assert_eq!(
        vnet.body["properties"]["dhcpOptions"]["dnsServers"],
        json!(["10.0.0.11"])
    );
    assert_eq!(
        vnet.body["properties"]["subnets"][0]["properties"]["networkSecurityGroup"]["id"],
        json!(format!(
            "{RG}/Microsoft.Network/networkSecurityGroups/Nsglab-rg"
        ))
    );
    assert_eq!(
        d.resources_in_order()[1].depends_on,
        vec![format!(
            "{RG}/Microsoft.Network/networkSecurityGroups/Nsglab-rg"
        )]
    );
    assert_eq!(rs[3].body["properties"]["enableBgp"], "false");
    assert_eq!(rs[3].body["properties"]["vpnType"], "RouteBased");
    let outputs = d.outputs(&resolver).unwrap();
    assert_eq!(
        outputs["VnetAddressSpace"], "10.3.0.0/16",
        "reference() of the deployed VNet"
    );
    assert_eq!(outputs["vmname"], "sqldrvm0");
    assert_eq!(outputs["VnetGateway"], "azureGateway");
    assert_eq!(outputs["sharedKey"], "abc123");
    assert_eq!(outputs["vmDiskSize"], "128");
    assert_eq!(outputs.len(), 11);
    // adminPassword is a securestring: masked in the deployment's record and Debug output
    assert_eq!(d.parameters_redacted()["adminPassword"], "***");
    assert_eq!(d.parameters_redacted()["vmName"], "sqldrvm0");
    assert!(!format!("{d:?}").contains("Password#1234"));
}

#[test]
fn azs_dr_gateway_outputs_need_the_deployed_vnet() {
    let t = parse_template(&read("azs-sqlhadr-dr-gateway/azuredeploy.json")).unwrap();
    let mut p =
        parse_parameters(&read("azs-sqlhadr-dr-gateway/azuredeploy.parameters.json")).unwrap();
    p.insert("DNSServerAddress".into(), json!(["10.0.0.11"]));
    let d = Deployment::new(&t, &p, &ctx()).unwrap();
    let e = d.outputs(&Deployed::default()).unwrap_err();
    assert!(matches!(e, ArmError::ReferenceUnavailable { .. }));
    assert_eq!(
        e.to_string(),
        format!("outputs.VnetAddressSpace.value: reference(): resource '{RG}/Microsoft.Network/virtualNetworks/AzureVirtualNetwork' is not available (not deployed yet?)")
    );
}

#[test]
fn azs_s2s_nested_with_supplied_parameters() {
    let t = parse_template(&read("azs-sqlhadr-s2s-nested/Site2SiteVpnHa.json")).unwrap();
    let p: Map<String, Value> = serde_json::from_value(json!({
        "location": "local",
        "vpnType": "RouteBased",
        "localGatewayName": "ToAzureGateway",
        "localGatewayIpAddress": "203.0.113.10",
        "localAddressPrefix": "10.3.0.0/16",
        "virtualNetworkName": "HAVnet",
        "gatewaySku": "Standard",
        "connectionName": "HAtoDR",
        "sharedKey": "s3cr3t-psk",
        "gatewaySubnetRef": format!("{RG}/Microsoft.Network/virtualNetworks/HAVnet/subnets/GatewaySubnet"),
    }))
    .unwrap();
    let d = Deployment::new(&t, &p, &ctx()).unwrap();
    let resolver = Deployed::default();
    let rs = deploy_all(&d, &resolver);
    assert_eq!(
        names(&rs),
        vec![
            "localNetworkGateways/ToAzureGateway",
            "publicIPAddresses/azureGatewayIP",
            "virtualNetworkGateways/azureGateway",
            "connections/HAtoDR",
        ]
    );
    assert_eq!(rs[0].body["properties"]["gatewayIpAddress"], "203.0.113.10");
    assert_eq!(rs[0].location.as_deref(), Some("westeurope"));
    assert_eq!(
        rs[2].body["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"],
        json!(format!(
            "{RG}/Microsoft.Network/virtualNetworks/HAVnet/subnets/GatewaySubnet"
        ))
    );
    assert_eq!(rs[2].body["properties"]["sku"]["tier"], "Standard");
    assert_eq!(rs[3].body["properties"]["sharedKey"], "s3cr3t-psk");
    assert_eq!(rs[3].body["properties"]["routingWeight"], 10);
    assert!(rs
        .iter()
        .all(|r| r.api_version.as_deref() == Some("2015-06-15")));
    assert_eq!(d.outputs(&resolver).unwrap(), Map::new());
}

#[test]
fn azs_s2s_nested_requires_its_parameters() {
    let t = parse_template(&read("azs-sqlhadr-s2s-nested/Site2SiteVpnHa.json")).unwrap();
    let e = Deployment::new(&t, &Map::new(), &ctx()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameters.location: required parameter has no value"
    );
}
