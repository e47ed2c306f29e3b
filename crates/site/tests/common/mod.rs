//! Helpers shared by the site integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use site::{DeploymentRecord, Resource, Site, SiteError};

/// A site in a fresh temporary state directory (removed on drop).
pub struct TestSite {
    pub dir: tempfile::TempDir,
    pub site: Site,
}

pub fn site(kind: &str, prefix: &str) -> TestSite {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::create(dir.path(), "s1", kind, prefix.parse().unwrap()).unwrap();
    TestSite { dir, site }
}

pub fn templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/templates")
}

pub fn read(rel: &str) -> String {
    std::fs::read_to_string(templates().join(rel)).unwrap()
}

/// Parameters from a parameter file with overrides.
pub fn params(file: Option<&str>, overrides: Value) -> Map<String, Value> {
    let mut m = match file {
        Some(f) => arm::parse_parameters(&read(f)).unwrap(),
        None => Map::new(),
    };
    if let Value::Object(o) = overrides {
        for (k, v) in o {
            m.insert(k, v);
        }
    }
    m
}

#[allow(clippy::result_large_err)]
pub fn deploy(
    s: &mut Site,
    template: &str,
    p: Map<String, Value>,
    name: &str,
) -> Result<DeploymentRecord, SiteError> {
    let plan = s.plan(template, p, name)?;
    s.apply(plan)
}

/// A template with the given resources, deployed in the order given (helpers add no dependsOn,
/// so they can refer to resources of earlier deployments).
pub fn tpl(resources: Value) -> String {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": resources
    })
    .to_string()
}

pub fn vnet(name: &str, space: &[&str], subnets: &[(&str, &str)]) -> Value {
    json!({
        "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2018-11-01", "name": name, "location": "here",
        "properties": {
            "addressSpace": { "addressPrefixes": space },
            "subnets": subnets.iter().map(|(n, p)| json!({ "name": n, "properties": { "addressPrefix": p } })).collect::<Vec<_>>()
        }
    })
}

pub fn pip(name: &str) -> Value {
    json!({ "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2018-11-01", "name": name, "location": "here",
            "properties": { "publicIPAllocationMethod": "Dynamic" } })
}

pub fn nic(name: &str, vnet: &str, subnet: &str, static_ip: Option<&str>) -> Value {
    let mut cfg = json!({ "subnet": { "id": format!("[resourceId('Microsoft.Network/virtualNetworks/subnets', '{vnet}', '{subnet}')]") } });
    match static_ip {
        Some(ip) => {
            cfg["privateIPAllocationMethod"] = json!("Static");
            cfg["privateIPAddress"] = json!(ip);
        }
        None => cfg["privateIPAllocationMethod"] = json!("Dynamic"),
    }
    json!({ "type": "Microsoft.Network/networkInterfaces", "apiVersion": "2018-11-01", "name": name, "location": "here",
            "properties": { "ipConfigurations": [ { "name": "ipconfig1", "properties": cfg } ] } })
}

pub fn gateway(name: &str, vnet: &str, pip: &str, sku: &str) -> Value {
    json!({ "type": "Microsoft.Network/virtualNetworkGateways", "apiVersion": "2018-11-01", "name": name, "location": "here",
            "properties": {
                "gatewayType": "Vpn", "vpnType": "RouteBased", "sku": { "name": sku, "tier": sku },
                "ipConfigurations": [ { "name": "cfg", "properties": {
                    "subnet": { "id": format!("[resourceId('Microsoft.Network/virtualNetworks/subnets', '{vnet}', 'GatewaySubnet')]") },
                    "publicIPAddress": { "id": format!("[resourceId('Microsoft.Network/publicIPAddresses', '{pip}')]") } } } ] } })
}

pub fn lng(name: &str, ip: &str, prefixes: &[&str]) -> Value {
    json!({ "type": "Microsoft.Network/localNetworkGateways", "apiVersion": "2018-11-01", "name": name, "location": "here",
            "properties": { "gatewayIpAddress": ip, "localNetworkAddressSpace": { "addressPrefixes": prefixes } } })
}

pub fn connection(name: &str, gw: &str, lng: &str, key: &str) -> Value {
    json!({ "type": "Microsoft.Network/connections", "apiVersion": "2018-11-01", "name": name, "location": "here",
            "properties": {
                "connectionType": "IPsec",
                "virtualNetworkGateway1": { "id": format!("[resourceId('Microsoft.Network/virtualNetworkGateways', '{gw}')]") },
                "localNetworkGateway2": { "id": format!("[resourceId('Microsoft.Network/localNetworkGateways', '{lng}')]") },
                "sharedKey": key } })
}

pub fn find<'a>(rs: &'a [Resource], name: &str) -> &'a Resource {
    rs.iter()
        .find(|r| r.name().eq_ignore_ascii_case(name))
        .unwrap_or_else(|| panic!("no resource {name}"))
}
