//! Resources rendered the way ARM's GET shows them.

use serde_json::{json, Map, Value};

use super::*;

impl BgpSettings {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("asn".into(), json!(self.asn));
        if let Some(a) = &self.bgp_peering_address {
            m.insert("bgpPeeringAddress".into(), json!(a));
        }
        if let Some(w) = self.peer_weight {
            m.insert("peerWeight".into(), json!(w));
        }
        Value::Object(m)
    }
}

impl IpsecPolicy {
    fn to_json(&self) -> Value {
        json!({
            "saLifeTimeSeconds": self.sa_life_time_seconds,
            "saDataSizeKilobytes": self.sa_data_size_kilobytes,
            "ipsecEncryption": self.ipsec_encryption.as_str(),
            "ipsecIntegrity": self.ipsec_integrity.as_str(),
            "ikeEncryption": self.ike_encryption.as_str(),
            "ikeIntegrity": self.ike_integrity.as_str(),
            "dhGroup": self.dh_group.as_str(),
            "pfsGroup": self.pfs_group.as_str(),
        })
    }
}

fn id_obj(id: &str) -> Value {
    json!({ "id": id })
}

impl Resource {
    /// The resource as ARM's GET shows it: id, name, type, location, tags, sku, properties with
    /// runtime values (allocated addresses, provisioningState). `sharedKey` is never included.
    pub fn arm_json(&self) -> Value {
        let meta = self.meta();
        let mut props = state_properties(&meta.provisioning_state);
        let mut sku = None;
        match self {
            Resource::VirtualNetwork(v) => vnet_properties(v, &mut props),
            Resource::PublicIpAddress(p) => sku = Some(public_ip_properties(p, &mut props)),
            Resource::NetworkInterface(n) => nic_properties(n, &mut props),
            Resource::VirtualMachine(v) => vm_properties(v, &mut props),
            Resource::VirtualNetworkGateway(g) => gateway_properties(g, &mut props),
            Resource::LocalNetworkGateway(l) => local_gateway_properties(l, &mut props),
            Resource::Connection(c) => connection_properties(c, &mut props),
            Resource::NetworkSecurityGroup(n) => nsg_properties(n, &mut props),
            Resource::Other(o) => {
                if let Some(Value::Object(p)) = crate::json::get_ci(&o.body, "properties") {
                    for (k, v) in p {
                        props.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                sku = crate::json::get_ci(&o.body, "sku").cloned();
            }
        }
        let mut out = Map::new();
        out.insert("id".into(), json!(meta.id));
        out.insert("name".into(), json!(meta.name));
        out.insert("type".into(), json!(meta.resource_type));
        if let Some(l) = &meta.location {
            out.insert("location".into(), json!(l));
        }
        if !meta.tags.is_empty() {
            out.insert("tags".into(), Value::Object(meta.tags.clone()));
        }
        if let Some(s) = sku {
            out.insert("sku".into(), s);
        }
        out.insert("properties".into(), Value::Object(props));
        Value::Object(out)
    }
}

/// `provisioningState`, with the error or the pending reason when there is one.
fn state_properties(state: &ProvisioningState) -> Map<String, Value> {
    let mut props = Map::new();
    props.insert("provisioningState".into(), json!(state.arm_name()));
    match state {
        ProvisioningState::Failed { error } => {
            props.insert("provisioningError".into(), json!(error));
        }
        ProvisioningState::Pending { reason } => {
            props.insert("pendingReason".into(), json!(reason));
        }
        _ => {}
    }
    props
}

fn prefixes_json(prefixes: &[ipnet::Ipv4Net]) -> Value {
    json!({ "addressPrefixes": prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>() })
}

fn vnet_properties(v: &VirtualNetwork, props: &mut Map<String, Value>) {
    props.insert("addressSpace".into(), prefixes_json(&v.address_space));
    if !v.dns_servers.is_empty() {
        props.insert("dhcpOptions".into(), json!({ "dnsServers": v.dns_servers }));
    }
    let state = &v.meta.provisioning_state;
    let subnets: Vec<Value> = v
        .subnets
        .iter()
        .map(|s| json!({ "id": s.id, "name": s.name, "properties": subnet_properties(s, state) }))
        .collect();
    props.insert("subnets".into(), Value::Array(subnets));
}

/// Fills the properties and returns the `sku` object.
fn public_ip_properties(p: &PublicIpAddress, props: &mut Map<String, Value>) -> Value {
    props.insert(
        "publicIPAllocationMethod".into(),
        json!(p.allocation_method.as_str()),
    );
    props.insert("publicIPAddressVersion".into(), json!("IPv4"));
    props.insert("ipAddress".into(), json!(p.ip_address.to_string()));
    if let Some(l) = &p.domain_name_label {
        let mut dns = json!({ "domainNameLabel": l });
        if let Some(f) = &p.fqdn {
            dns["fqdn"] = json!(f);
        }
        props.insert("dnsSettings".into(), dns);
    }
    let sku = match p.sku {
        PublicIpSku::Basic => "Basic",
        PublicIpSku::Standard => "Standard",
    };
    json!({ "name": sku })
}

fn nic_properties(n: &NetworkInterface, props: &mut Map<String, Value>) {
    let cfgs: Vec<Value> = n
        .ip_configurations
        .iter()
        .map(|c| {
            let mut p = Map::new();
            p.insert("privateIPAddress".into(), json!(c.private_ip_address.to_string()));
            p.insert("privateIPAllocationMethod".into(), json!(c.allocation_method.as_str()));
            p.insert("privateIPAddressVersion".into(), json!("IPv4"));
            p.insert("subnet".into(), id_obj(&c.subnet));
            if let Some(pip) = &c.public_ip_address {
                p.insert("publicIPAddress".into(), id_obj(pip));
            }
            p.insert("primary".into(), json!(c.primary));
            json!({ "id": format!("{}/ipConfigurations/{}", n.meta.id, c.name), "name": c.name, "properties": p })
        })
        .collect();
    props.insert("ipConfigurations".into(), Value::Array(cfgs));
    props.insert("enableIPForwarding".into(), json!(n.enable_ip_forwarding));
    if let Some(nsg) = &n.network_security_group {
        props.insert("networkSecurityGroup".into(), id_obj(nsg));
    }
}

fn vm_properties(v: &VirtualMachine, props: &mut Map<String, Value>) {
    props.insert("hardwareProfile".into(), v.hardware_profile.clone());
    props.insert("osProfile".into(), v.os_profile.clone());
    props.insert("storageProfile".into(), v.storage_profile.clone());
    let nics: Vec<Value> = v
        .network_interfaces
        .iter()
        .map(|n| json!({ "id": n.id, "properties": { "primary": n.primary } }))
        .collect();
    props.insert(
        "networkProfile".into(),
        json!({ "networkInterfaces": nics }),
    );
}

fn gateway_properties(g: &VirtualNetworkGateway, props: &mut Map<String, Value>) {
    props.insert("gatewayType".into(), json!(g.gateway_type));
    let vpn_type = match g.vpn_type {
        VpnType::RouteBased => "RouteBased",
        VpnType::PolicyBased => "PolicyBased",
    };
    props.insert("vpnType".into(), json!(vpn_type));
    props.insert("sku".into(), json!({ "name": g.sku, "tier": g.sku }));
    props.insert("activeActive".into(), json!(g.active_active));
    props.insert("enableBgp".into(), json!(g.enable_bgp));
    if let Some(b) = &g.bgp_settings {
        props.insert("bgpSettings".into(), gateway_bgp_json(g, b));
    }
    if let Some(gen) = &g.vpn_gateway_generation {
        props.insert("vpnGatewayGeneration".into(), json!(gen));
    }
    let cfgs: Vec<Value> = g
        .ip_configurations
        .iter()
        .map(|c| {
            json!({
                "id": format!("{}/ipConfigurations/{}", g.meta.id, c.name),
                "name": c.name,
                "properties": {
                    "privateIPAllocationMethod": "Dynamic",
                    "privateIPAddress": c.private_ip_address.to_string(),
                    "subnet": id_obj(&c.subnet),
                    "publicIPAddress": id_obj(&c.public_ip_address),
                }
            })
        })
        .collect();
    props.insert("ipConfigurations".into(), Value::Array(cfgs));
}

/// A VNet gateway's `bgpSettings` as Azure shows it: besides what was configured, each
/// instance's BGP address (its address in the GatewaySubnet, where the gateway peers from),
/// in `bgpPeeringAddress` (comma-separated for active-active) and per IP configuration in
/// `bgpPeeringAddresses`, so templates can `reference()` them.
fn gateway_bgp_json(g: &VirtualNetworkGateway, b: &BgpSettings) -> Value {
    let mut v = b.to_json();
    let defaults: Vec<String> = g
        .ip_configurations
        .iter()
        .map(|c| c.private_ip_address.to_string())
        .collect();

    if let Value::Object(m) = &mut v {
        if b.bgp_peering_address.is_none() {
            m.insert("bgpPeeringAddress".into(), json!(defaults.join(",")));
        }
        m.entry("peerWeight").or_insert(json!(0));
        let per_instance: Vec<Value> = g
            .ip_configurations
            .iter()
            .map(|c| {
                json!({
                    "ipconfigurationId": format!("{}/ipConfigurations/{}", g.meta.id, c.name),
                    "defaultBgpIpAddresses": [c.private_ip_address.to_string()],
                    "customBgpIpAddresses": b
                        .custom_bgp_addresses
                        .iter()
                        .filter(|(cfg, _)| cfg.eq_ignore_ascii_case(&c.name))
                        .flat_map(|(_, a)| a.iter().map(|x| x.to_string()))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        m.insert("bgpPeeringAddresses".into(), Value::Array(per_instance));
    }
    v
}

fn local_gateway_properties(l: &LocalNetworkGateway, props: &mut Map<String, Value>) {
    if let Some(a) = l.gateway_ip_address {
        props.insert("gatewayIpAddress".into(), json!(a.to_string()));
    }
    if let Some(f) = &l.fqdn {
        props.insert("fqdn".into(), json!(f));
    }
    props.insert(
        "localNetworkAddressSpace".into(),
        prefixes_json(&l.address_prefixes),
    );
    if let Some(b) = &l.bgp_settings {
        props.insert("bgpSettings".into(), b.to_json());
    }
}

fn connection_properties(c: &Connection, props: &mut Map<String, Value>) {
    props.insert(
        "connectionType".into(),
        json!(format!("{:?}", c.connection_type)),
    );
    props.insert(
        "virtualNetworkGateway1".into(),
        id_obj(&c.virtual_network_gateway1),
    );
    if let Some(g) = &c.virtual_network_gateway2 {
        props.insert("virtualNetworkGateway2".into(), id_obj(g));
    }
    if let Some(l) = &c.local_network_gateway2 {
        props.insert("localNetworkGateway2".into(), id_obj(l));
    }
    props.insert("routingWeight".into(), json!(c.routing_weight));
    props.insert(
        "connectionProtocol".into(),
        json!(format!("{:?}", c.connection_protocol)),
    );
    props.insert("dpdTimeoutSeconds".into(), json!(c.dpd_timeout_seconds));
    props.insert(
        "ipsecPolicies".into(),
        Value::Array(c.ipsec_policies.iter().map(IpsecPolicy::to_json).collect()),
    );
    props.insert(
        "usePolicyBasedTrafficSelectors".into(),
        json!(c.use_policy_based_traffic_selectors),
    );
    props.insert("enableBgp".into(), json!(c.enable_bgp));
}

/// One security rule as ARM shows it (`securityRules[]`, `defaultSecurityRules[]`).
pub(crate) fn security_rule_json(parent_id: &str, kind: &str, r: &SecurityRule) -> Value {
    let ports = |v: &[PortRange]| -> (Value, Value) {
        match v {
            [] => (json!("*"), json!([])),
            [one] => (json!(one.to_string()), json!([])),
            many => (
                json!(""),
                json!(many.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
            ),
        }
    };
    let addrs = |v: &[AddressMatch]| -> (Value, Value) {
        match v {
            [one] => (json!(one.to_string()), json!([])),
            many => (
                json!(""),
                json!(many.iter().map(|a| a.to_string()).collect::<Vec<_>>()),
            ),
        }
    };
    let (sp, sps) = ports(&r.source_ports);
    let (dp, dps) = ports(&r.destination_ports);
    let (sa, sas) = addrs(&r.source);
    let (da, das) = addrs(&r.destination);
    let mut props = json!({
        "protocol": match r.protocol { NsgProtocol::Any => "*".to_string(), p => p.to_string() },
        "sourcePortRange": sp, "sourcePortRanges": sps,
        "destinationPortRange": dp, "destinationPortRanges": dps,
        "sourceAddressPrefix": sa, "sourceAddressPrefixes": sas,
        "destinationAddressPrefix": da, "destinationAddressPrefixes": das,
        "access": format!("{:?}", r.access),
        "priority": r.priority,
        "direction": format!("{:?}", r.direction),
        "provisioningState": "Succeeded",
    });
    for (k, v) in [
        ("sourcePortRange", &sp),
        ("destinationPortRange", &dp),
        ("sourceAddressPrefix", &sa),
        ("destinationAddressPrefix", &da),
    ] {
        if v == "" {
            props.as_object_mut().expect("object").remove(k);
        }
    }
    if let Some(d) = &r.description {
        props["description"] = json!(d);
    }
    json!({
        "id": format!("{parent_id}/{kind}/{}", r.name),
        "name": r.name,
        "type": format!("Microsoft.Network/networkSecurityGroups/{kind}"),
        "properties": props,
    })
}

fn nsg_properties(n: &NetworkSecurityGroup, props: &mut Map<String, Value>) {
    let id = &n.meta.id;
    props.insert(
        "securityRules".into(),
        Value::Array(
            n.security_rules
                .iter()
                .map(|r| security_rule_json(id, "securityRules", r))
                .collect(),
        ),
    );
    props.insert(
        "defaultSecurityRules".into(),
        Value::Array(
            super::nsg::default_rules()
                .iter()
                .map(|r| security_rule_json(id, "defaultSecurityRules", r))
                .collect(),
        ),
    );
}

/// A subnet's `properties` object as ARM shows it.
pub(crate) fn subnet_properties(s: &Subnet, state: &ProvisioningState) -> Value {
    let mut p = Map::new();
    p.insert("addressPrefix".into(), json!(s.address_prefix.to_string()));
    if let Some(n) = &s.network_security_group {
        p.insert("networkSecurityGroup".into(), id_obj(n));
    }
    if let Some(r) = &s.route_table {
        p.insert("routeTable".into(), id_obj(r));
    }
    p.insert("provisioningState".into(), json!(state.arm_name()));
    Value::Object(p)
}
