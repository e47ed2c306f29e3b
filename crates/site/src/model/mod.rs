//! The typed resource model: what a site holds after a deployment, with allocated addresses.
//! Prefixes are `Ipv4Net`, addresses `Ipv4Addr`, references are resource ids (compare them with
//! [`same_id`]). `arm_json()` renders a resource the way ARM's GET would.

mod arm_json;
mod network;
pub mod nsg;
mod policy;
mod vpn;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub(crate) use arm_json::subnet_properties;
pub use network::{
    NetworkInterface, NicIpConfiguration, PublicIpAddress, PublicIpSku, Subnet, VirtualMachine,
    VirtualNetwork, VmNic,
};
pub use nsg::{AddressMatch, NetworkSecurityGroup, NsgProtocol, PortRange, SecurityRule};
pub use policy::{
    DhGroup, IkeEncryption, IkeIntegrity, IpsecEncryption, IpsecIntegrity, IpsecPolicy, PfsGroup,
};
pub use vpn::{
    BgpSettings, Connection, ConnectionProtocol, ConnectionType, EffectivePolicy,
    GatewayIpConfiguration, LocalNetworkGateway, SharedKey, VirtualNetworkGateway, VpnType,
    APIPA_BGP_RANGE,
};

/// Resource ids compare case-insensitively, as in ARM.
pub fn same_id(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Whether a resource is realized, being realized, failed, or waiting for a capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum ProvisioningState {
    /// Realized (or, for pure configuration such as a local network gateway, recorded).
    Succeeded,
    /// Recorded by a deployment; realization has not finished yet.
    Updating,
    /// Realization failed; `error` says why in plain words.
    Failed {
        /// Why, in plain words.
        error: String,
    },
    /// Accepted and recorded, but nothing realizes this resource (yet); `reason` says what is missing.
    Pending {
        /// What is missing.
        reason: String,
    },
}

impl ProvisioningState {
    /// The `provisioningState` string shown in `arm_json()`.
    pub fn arm_name(&self) -> &'static str {
        match self {
            ProvisioningState::Succeeded => "Succeeded",
            ProvisioningState::Updating => "Updating",
            ProvisioningState::Failed { .. } => "Failed",
            ProvisioningState::Pending { .. } => "Pending",
        }
    }
}

impl fmt::Display for ProvisioningState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProvisioningState::Failed { error } => write!(f, "Failed: {error}"),
            ProvisioningState::Pending { reason } => write!(f, "Pending: {reason}"),
            other => f.write_str(other.arm_name()),
        }
    }
}

/// What every resource carries besides its typed properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceMeta {
    /// Full ARM resource id.
    pub id: String,
    /// Resource name (`vnet1/sub1` for child resources).
    pub name: String,
    /// Full resource type.
    pub resource_type: String,
    /// `location` as given by the template.
    pub location: Option<String>,
    /// API version the resource was deployed with (after apiProfile mapping).
    pub api_version: String,
    /// `tags`, as given.
    pub tags: Map<String, Value>,
    /// Name of the deployment that last changed this resource.
    pub deployment: String,
    /// Realization state.
    pub provisioning_state: ProvisioningState,
    /// Things worth knowing that are not errors (e.g. "GatewaySubnet smaller than recommended").
    pub notes: Vec<String>,
}

/// How an address was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AllocationMethod {
    /// The site picks the address (first free).
    Dynamic,
    /// The template names the address.
    Static,
}

impl AllocationMethod {
    fn as_str(self) -> &'static str {
        match self {
            AllocationMethod::Dynamic => "Dynamic",
            AllocationMethod::Static => "Static",
        }
    }
}

/// A resource type hybridnet does not model: recorded as given so other templates still deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtherResource {
    /// Common resource data.
    pub meta: ResourceMeta,
    /// The evaluated resource object as the template gave it (secure values redacted).
    pub body: Value,
}

/// Every resource a site can hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Resource {
    /// `Microsoft.Network/virtualNetworks` (child subnets merged in).
    VirtualNetwork(VirtualNetwork),
    /// `Microsoft.Network/publicIPAddresses`.
    PublicIpAddress(PublicIpAddress),
    /// `Microsoft.Network/networkInterfaces`.
    NetworkInterface(NetworkInterface),
    /// `Microsoft.Compute/virtualMachines`.
    VirtualMachine(VirtualMachine),
    /// `Microsoft.Network/virtualNetworkGateways`.
    VirtualNetworkGateway(VirtualNetworkGateway),
    /// `Microsoft.Network/localNetworkGateways`.
    LocalNetworkGateway(LocalNetworkGateway),
    /// `Microsoft.Network/connections`.
    Connection(Connection),
    /// `Microsoft.Network/networkSecurityGroups` (child `securityRules` merged in).
    NetworkSecurityGroup(NetworkSecurityGroup),
    /// Any other type, recorded as-is.
    Other(OtherResource),
}

impl Resource {
    /// Common resource data.
    pub fn meta(&self) -> &ResourceMeta {
        match self {
            Resource::VirtualNetwork(r) => &r.meta,
            Resource::PublicIpAddress(r) => &r.meta,
            Resource::NetworkInterface(r) => &r.meta,
            Resource::VirtualMachine(r) => &r.meta,
            Resource::VirtualNetworkGateway(r) => &r.meta,
            Resource::LocalNetworkGateway(r) => &r.meta,
            Resource::Connection(r) => &r.meta,
            Resource::NetworkSecurityGroup(r) => &r.meta,
            Resource::Other(r) => &r.meta,
        }
    }

    /// Common resource data, mutable.
    pub fn meta_mut(&mut self) -> &mut ResourceMeta {
        match self {
            Resource::VirtualNetwork(r) => &mut r.meta,
            Resource::PublicIpAddress(r) => &mut r.meta,
            Resource::NetworkInterface(r) => &mut r.meta,
            Resource::VirtualMachine(r) => &mut r.meta,
            Resource::VirtualNetworkGateway(r) => &mut r.meta,
            Resource::LocalNetworkGateway(r) => &mut r.meta,
            Resource::Connection(r) => &mut r.meta,
            Resource::NetworkSecurityGroup(r) => &mut r.meta,
            Resource::Other(r) => &mut r.meta,
        }
    }

    /// Full resource id.
    pub fn id(&self) -> &str {
        &self.meta().id
    }

    /// Resource name.
    pub fn name(&self) -> &str {
        &self.meta().name
    }

    /// Full resource type.
    pub fn resource_type(&self) -> &str {
        &self.meta().resource_type
    }

    /// Realization state.
    pub fn provisioning_state(&self) -> &ProvisioningState {
        &self.meta().provisioning_state
    }

    /// Ids this resource points at (subnets as `…/subnets/x`), for reference checks.
    pub fn references(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match self {
            Resource::VirtualNetwork(v) => {
                for (i, s) in v.subnets.iter().enumerate() {
                    if let Some(n) = &s.network_security_group {
                        out.push((
                            format!("properties.subnets[{i}].properties.networkSecurityGroup.id"),
                            n.clone(),
                        ));
                    }
                    if let Some(n) = &s.route_table {
                        out.push((
                            format!("properties.subnets[{i}].properties.routeTable.id"),
                            n.clone(),
                        ));
                    }
                }
            }
            Resource::NetworkInterface(n) => {
                for (i, c) in n.ip_configurations.iter().enumerate() {
                    out.push((
                        format!("properties.ipConfigurations[{i}].properties.subnet.id"),
                        c.subnet.clone(),
                    ));
                    if let Some(p) = &c.public_ip_address {
                        out.push((
                            format!(
                                "properties.ipConfigurations[{i}].properties.publicIPAddress.id"
                            ),
                            p.clone(),
                        ));
                    }
                }
                if let Some(n) = &n.network_security_group {
                    out.push(("properties.networkSecurityGroup.id".into(), n.clone()));
                }
            }
            Resource::VirtualMachine(v) => {
                for (i, n) in v.network_interfaces.iter().enumerate() {
                    out.push((
                        format!("properties.networkProfile.networkInterfaces[{i}].id"),
                        n.id.clone(),
                    ));
                }
            }
            Resource::VirtualNetworkGateway(g) => {
                for (i, c) in g.ip_configurations.iter().enumerate() {
                    out.push((
                        format!("properties.ipConfigurations[{i}].properties.subnet.id"),
                        c.subnet.clone(),
                    ));
                    out.push((
                        format!("properties.ipConfigurations[{i}].properties.publicIPAddress.id"),
                        c.public_ip_address.clone(),
                    ));
                }
            }
            Resource::Connection(c) => {
                out.push((
                    "properties.virtualNetworkGateway1.id".into(),
                    c.virtual_network_gateway1.clone(),
                ));
                if let Some(g) = &c.virtual_network_gateway2 {
                    out.push(("properties.virtualNetworkGateway2.id".into(), g.clone()));
                }
                if let Some(l) = &c.local_network_gateway2 {
                    out.push(("properties.localNetworkGateway2.id".into(), l.clone()));
                }
            }
            Resource::PublicIpAddress(_)
            | Resource::LocalNetworkGateway(_)
            | Resource::NetworkSecurityGroup(_)
            | Resource::Other(_) => {}
        }
        out
    }
}
