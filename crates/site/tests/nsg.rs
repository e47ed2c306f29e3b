//! Network security groups: rules parsed and checked as Azure checks them (each refusal names
//! the property), child `securityRules` resources merged into their NSG, and the rules in
//! effect on a NIC (subnet NSG, then NIC NSG, defaults included, tags expanded).

mod common;

use common::*;
use serde_json::{json, Value};
use site::nsg::{effective_nsgs, Association};
use site::Resource;

fn nsg(rules: Value) -> Value {
    json!({ "type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2023-09-01", "name": "nsg1",
            "location": "here", "properties": { "securityRules": rules } })
}

fn rule(name: &str, priority: i64, over: Value) -> Value {
    let mut p = json!({ "priority": priority, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
        "sourcePortRange": "*", "destinationPortRange": "22", "sourceAddressPrefix": "*", "destinationAddressPrefix": "*" });
    for (k, v) in over.as_object().unwrap() {
        p[k] = v.clone();
    }
    json!({ "name": name, "properties": p })
}

fn refused(resources: Value) -> String {
    let t = site("azure", "203.0.113.0/24");
    t.site
        .plan(&tpl(resources), Default::default(), "bad")
        .unwrap_err()
        .to_string()
}

#[test]
fn rules_are_checked_as_azure_checks_them() {
    let cases = [
        (json!([rule("r", 99, json!({}))]), "properties.securityRules[0].properties.priority: 99 is out of range: a rule's priority is 100 … 4096"),
        (json!([rule("a", 100, json!({})), rule("b", 100, json!({}))]), "properties.securityRules[1]: rules 'a' and 'b' have the same priority 100 and direction Inbound"),
        (json!([rule("a", 100, json!({})), rule("A", 200, json!({}))]), "properties.securityRules[1]: a rule named 'A' is already in this network security group"),
        (json!([rule("r", 100, json!({"sourceAddressPrefix": "Storage"}))]), "properties.securityRules[0].properties.sourceAddressPrefix: \"Storage\" is neither an IPv4 address or prefix nor a service tag the lab can expand"),
        (json!([rule("r", 100, json!({"destinationPortRange": "90-80"}))]), "properties.securityRules[0].properties.destinationPortRange: \"90-80\": the range starts after it ends"),
        (json!([rule("r", 100, json!({"protocol": "Gre"}))]), "properties.securityRules[0].properties.protocol: \"Gre\" is not one of Tcp, Udp, Icmp, Esp, Ah, *"),
        (json!([rule("r", 100, json!({"destinationPortRanges": ["80"]}))]), "properties.securityRules[0].properties.destinationPortRanges: give either destinationPortRange or destinationPortRanges, not both"),
        (json!([rule("r", 100, json!({"sourceApplicationSecurityGroups": [{"id": "x"}]}))]), "properties.securityRules[0].properties.sourceApplicationSecurityGroups: application security groups are not realized by the lab"),
    ];
    for (rules, want) in cases {
        let e = refused(json!([nsg(rules.clone())]));
        assert!(e.contains(want), "{rules}:\n{e}\nwanted {want}");
        assert!(
            e.starts_with("resources[0] (Microsoft.Network/networkSecurityGroups 'nsg1')"),
            "{e}"
        );
    }
}

#[test]
fn child_rules_merge_and_the_effective_rules_of_a_nic_follow_azure() {
    let mut t = site("azure", "203.0.113.0/24");
    let mut setup = json!([
        nsg(json!([rule("AllowSSH", 1000, json!({}))])),
        { "type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2023-09-01", "name": "subnet-nsg",
          "location": "here", "properties": {} },
        vnet("vnet1", &["10.1.0.0/16"], &[("default", "10.1.1.0/24"), ("GatewaySubnet", "10.1.255.0/27")]),
        pip("pip1"),
        gateway("gw", "vnet1", "pip1", "VpnGw1"),
        lng("peer", "198.51.100.1", &["10.2.0.0/16", "10.3.0.0/16"]),
        connection("c1", "gw", "peer", "k"),
    ]);
    setup[2]["properties"]["subnets"][0]["properties"]["networkSecurityGroup"] =
        json!({ "id": "[resourceId('Microsoft.Network/networkSecurityGroups', 'subnet-nsg')]" });
    deploy(&mut t.site, &tpl(setup), Default::default(), "setup").unwrap();
    let mut n = nic("nic1", "vnet1", "default", None);
    n["properties"]["networkSecurityGroup"] =
        json!({ "id": "[resourceId('Microsoft.Network/networkSecurityGroups', 'nsg1')]" });
    let child = json!({ "type": "Microsoft.Network/networkSecurityGroups/securityRules", "apiVersion": "2023-09-01",
        "name": "nsg1/DenyIcmp", "properties": { "priority": 900, "direction": "Inbound", "access": "Deny",
        "protocol": "Icmp", "sourcePortRange": "*", "destinationPortRange": "*", "sourceAddressPrefix": "Internet",
        "destinationAddressPrefix": "*" } });
    deploy(
        &mut t.site,
        &tpl(json!([n, child])),
        Default::default(),
        "nic",
    )
    .unwrap();
    let rs = t.site.resources().unwrap();
    let Resource::NetworkSecurityGroup(g) = find(&rs, "nsg1") else {
        panic!()
    };
    let names: Vec<&str> = g.security_rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["AllowSSH", "DenyIcmp"], "the child rule is merged");
    let Resource::NetworkInterface(nic1) = find(&rs, "nic1") else {
        panic!()
    };
    let layers = effective_nsgs(&rs, nic1);
    assert_eq!(layers.len(), 2, "subnet NSG and NIC NSG");
    assert!(matches!(layers[0].association, Association::Subnet(_)));
    assert!(matches!(
        layers[1].association,
        Association::NetworkInterface(_)
    ));
    let nic_rules: Vec<&str> = layers[1].rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        nic_rules,
        [
            "securityRules/DenyIcmp",
            "securityRules/AllowSSH",
            "defaultSecurityRules/AllowVnetInBound",
            "defaultSecurityRules/AllowAzureLoadBalancerInBound",
            "defaultSecurityRules/DenyAllInBound",
            "defaultSecurityRules/AllowVnetOutBound",
            "defaultSecurityRules/AllowInternetOutBound",
            "defaultSecurityRules/DenyAllOutBound",
        ],
        "priority order per direction"
    );
    let vnet_in = &layers[1].rules[2];
    let got: Vec<String> = vnet_in.source.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        got,
        ["10.1.0.0/16", "10.2.0.0/15"],
        "the VNet and what its gateway connects to"
    );
    // Internet is everything else
    let deny_icmp = &layers[1].rules[0];
    let internet_has = |a: &str| {
        let ip: std::net::Ipv4Addr = a.parse().unwrap();
        deny_icmp.source.iter().any(|p| p.contains(&ip))
    };
    assert!(internet_has("203.0.113.7") && internet_has("8.8.8.8"));
    assert!(!internet_has("10.1.1.4") && !internet_has("10.3.9.9"));
}

#[test]
fn virtual_network_covers_only_what_the_nics_own_vnet_connects_to() {
    let mut t = site("azure", "203.0.113.0/24");
    let setup = json!([
        nsg(json!([])),
        vnet("vnet1", &["10.1.0.0/16"], &[("default", "10.1.1.0/24")]),
        vnet(
            "vnet10",
            &["10.10.0.0/16"],
            &[
                ("default", "10.10.1.0/24"),
                ("GatewaySubnet", "10.10.255.0/27")
            ]
        ),
        pip("pip1"),
        gateway("gw", "vnet10", "pip1", "VpnGw1"),
        lng("peer", "198.51.100.1", &["10.2.0.0/16"]),
        connection("c1", "gw", "peer", "k"),
    ]);
    deploy(&mut t.site, &tpl(setup), Default::default(), "setup").unwrap();
    let mut n = nic("nic1", "vnet1", "default", None);
    n["properties"]["networkSecurityGroup"] =
        json!({ "id": "[resourceId('Microsoft.Network/networkSecurityGroups', 'nsg1')]" });
    deploy(&mut t.site, &tpl(json!([n])), Default::default(), "nic").unwrap();
    let rs = t.site.resources().unwrap();
    let Resource::NetworkInterface(nic1) = find(&rs, "nic1") else {
        panic!()
    };
    let layers = effective_nsgs(&rs, nic1);
    let vnet_in = layers[0]
        .rules
        .iter()
        .find(|r| r.name == "defaultSecurityRules/AllowVnetInBound")
        .unwrap();
    let got: Vec<String> = vnet_in.source.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        got,
        ["10.1.0.0/16"],
        "vnet10's gateway does not connect vnet1"
    );
}
