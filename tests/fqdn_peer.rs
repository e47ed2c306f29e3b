//! A local network gateway that names its peer by FQDN: the Azure Stack Hub gateway's public
//! IP gets a DNS label (`dnsSettings.fqdn`, `<label>.<location>.cloudapp.azure.com`, returned
//! by `reference()`), Azure's local network gateway is re-deployed with that `fqdn` and no
//! address, and the tunnel stays up; when the name moves to another public IP of the peer
//! gateway, the Azure gateway follows it by itself and traffic flows again. The lab's internet
//! serves the zone over DNS (dig from the internet namespace), following the move too.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::lab::{show, Lab};
use testkit::process::wait_for_every;

const FQDN: &str = "hub-gw.stackhub.cloudapp.azure.com";

fn template(resources: Value, outputs: Value) -> String {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": resources,
        "outputs": outputs,
    })
    .to_string()
}

fn pip(name: &str, label: Option<&str>) -> Value {
    let mut p = json!({ "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2018-11-01", "name": name,
        "location": "[resourceGroup().location]", "properties": { "publicIPAllocationMethod": "Dynamic" } });
    if let Some(l) = label {
        p["properties"]["dnsSettings"] = json!({ "domainNameLabel": l });
    }
    p
}

/// The seed's Azure Stack Hub gateway, on public IP `pip`.
fn hub_gateway(pip: &str) -> Value {
    json!({ "type": "Microsoft.Network/virtualNetworkGateways", "apiVersion": "2018-11-01", "name": "stackhub-gw",
        "location": "[resourceGroup().location]",
        "dependsOn": [ format!("[resourceId('Microsoft.Network/publicIPAddresses', '{pip}')]") ],
        "properties": { "ipConfigurations": [ { "name": "vnetGatewayConfig", "properties": {
            "privateIPAllocationMethod": "Dynamic",
            "subnet": { "id": "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'stackhub-vnet', 'GatewaySubnet')]" },
            "publicIPAddress": { "id": format!("[resourceId('Microsoft.Network/publicIPAddresses', '{pip}')]") } } } ],
          "gatewayType": "Vpn", "vpnType": "RouteBased", "enableBgp": false, "activeActive": false,
          "sku": { "name": "VpnGw1", "tier": "VpnGw1" } } })
}

fn deploy(lab: &Lab, site: &str, name: &str, text: &str) -> Value {
    let out = lab.deploy_text(site, name, text, &[]);
    assert!(out.status.success(), "{}", show(&out));
    lab.outputs(site, name)
}

/// The remote address in the Azure gateway's configuration for its connection.
fn azure_remote(lab: &Lab) -> String {
    let dir = lab.state.join("labs").join(&lab.id).join("gateways");
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        if e.path().extension().is_some_and(|x| x == "toml") && text.contains("azure-to-stackhub") {
            let t: toml::Table = text.parse().unwrap();
            let conns = t["connection"].as_array().unwrap();
            return conns[0]["remote_address"].as_str().unwrap().to_string();
        }
    }
    panic!("no configuration of the Azure gateway in {}", dir.display());
}

/// `dig +short NAME` against the lab internet's DNS server (the internet router's address on
/// the azure site), from the internet namespace.
fn dig(lab: &Lab, name: &str) -> String {
    let status = lab.status();
    let ns = status["internet"]["netns"].as_str().unwrap();
    let server = lab.site_status("azure")["internetAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "dig", "+short", "+time=2", "+tries=1"])
        .arg(format!("@{server}"))
        .arg(name)
        .output()
        .expect("dig (bind9-dnsutils, scripts/install-deps.sh)");
    assert!(out.status.success(), "{}", show(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_connected_and_pinging(lab: &Lab) {
    wait_for_every(
        Duration::from_millis(300),
        Duration::from_secs(40),
        "the tunnel up and carrying a ping",
        || lab.ping("azure/vm1", "10.2.1.4").then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}: {:#}", lab.status()["sites"][0]["connections"]));
}

#[test]
fn a_peer_named_by_fqdn_is_followed_when_its_address_changes() {
    let lab = Lab::up("examples/hybrid-connection");

    // A name the zone does not hold yet: the deployment goes through and the connection
    // waits (Pending, with the reason), as on Azure a connection to an unresolved name does.
    let early = json!({ "type": "Microsoft.Network/localNetworkGateways", "apiVersion": "2023-09-01",
        "name": "stackhub-lgw", "location": "[resourceGroup().location]",
        "properties": { "fqdn": FQDN, "localNetworkAddressSpace": { "addressPrefixes": ["10.2.0.0/16"] } } });
    deploy(
        &lab,
        "azure",
        "lng-early",
        &template(json!([early]), json!({})),
    );
    let conn = lab.site_status("azure")["connections"][0].clone();
    assert_eq!(conn["provisioningState"], "Pending", "{conn:#}");
    assert!(
        conn["reason"].as_str().is_some_and(|r| r.contains(&format!(
            "fqdn {FQDN} is not a name in the lab's DNS zone (it holds no name yet)"
        ))),
        "{conn:#}"
    );

    // the hub gateway's public IP gets a DNS label; reference() returns the FQDN
    let out = deploy(
        &lab,
        "stackhub",
        "hub-dns",
        &template(
            json!([pip("stackhub-gw-pip", Some("hub-gw"))]),
            json!({
                "fqdn": { "type": "string", "value": "[reference('stackhub-gw-pip').dnsSettings.fqdn]" },
                "ip": { "type": "string", "value": "[reference('stackhub-gw-pip').ipAddress]" }
            }),
        ),
    );
    assert_eq!(out["fqdn"], FQDN);
    let first_ip = out["ip"].as_str().unwrap().to_string();
    assert_eq!(dig(&lab, FQDN), first_ip, "the lab's DNS serves the name");
    assert_eq!(
        dig(&lab, "nobody.stackhub.cloudapp.azure.com"),
        "",
        "and no other"
    );

    // Azure's local network gateway names the peer by FQDN only
    let lng = json!({ "type": "Microsoft.Network/localNetworkGateways", "apiVersion": "2023-09-01",
        "name": "stackhub-lgw", "location": "[resourceGroup().location]",
        "properties": { "fqdn": FQDN, "localNetworkAddressSpace": { "addressPrefixes": ["10.2.0.0/16"] } } });
    deploy(
        &lab,
        "azure",
        "lng-fqdn",
        &template(json!([lng]), json!({})),
    );
    assert_eq!(
        azure_remote(&lab),
        first_ip,
        "the name resolves to the peer"
    );
    wait_connected_and_pinging(&lab);

    // the name moves to a new public IP of the peer gateway: Azure follows it
    let mut pip2 = pip("stackhub-gw-pip2", Some("hub-gw"));
    pip2["dependsOn"] =
        json!(["[resourceId('Microsoft.Network/publicIPAddresses', 'stackhub-gw-pip')]"]);
    let out = deploy(
        &lab,
        "stackhub",
        "hub-move",
        &template(
            json!([
                pip("stackhub-gw-pip", None),
                pip2,
                hub_gateway("stackhub-gw-pip2"),
            ]),
            json!({ "ip": { "type": "string", "value": "[reference('stackhub-gw-pip2').ipAddress]" } }),
        ),
    );
    let second_ip = out["ip"].as_str().unwrap().to_string();
    assert_ne!(second_ip, first_ip);
    assert_eq!(
        azure_remote(&lab),
        second_ip,
        "re-resolved when the zone changed"
    );
    assert_eq!(dig(&lab, FQDN), second_ip, "the DNS zone was reloaded");
    wait_connected_and_pinging(&lab);

    // `lab down` ends the DNS server with the rest
    let zone = lab
        .state
        .join("labs")
        .join(&lab.id)
        .join("dns")
        .join("zone.hosts");
    let serving = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .any(|c| String::from_utf8_lossy(&c).contains(&*zone.to_string_lossy()))
    };
    assert!(serving(), "dnsmasq serves the zone while the lab runs");
    let out = lab.down();
    assert!(out.status.success(), "{}", show(&out));
    assert!(!serving(), "no dnsmasq left after lab down");
}
