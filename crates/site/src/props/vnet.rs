//! `Microsoft.Network/virtualNetworks` and `…/virtualNetworks/subnets`.

use serde::Deserialize;
use serde_json::Value;

use super::{IdRef, Prefix};

/// A virtual network resource.
#[derive(Debug, Deserialize)]
pub(crate) struct VirtualNetworkResource {
    /// `properties`.
    pub properties: VirtualNetworkProperties,
}

/// `properties` of a virtual network.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VirtualNetworkProperties {
    /// `addressSpace`.
    #[serde(default)]
    pub address_space: AddressSpace,
    /// Inline `subnets`.
    #[serde(default)]
    pub subnets: Vec<InlineSubnet>,
    /// `dhcpOptions`.
    #[serde(default)]
    pub dhcp_options: DhcpOptions,
}

/// `addressSpace` (also a local network gateway's `localNetworkAddressSpace`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AddressSpace {
    /// `addressPrefixes`.
    #[serde(default)]
    pub address_prefixes: Vec<Prefix>,
}

/// `dhcpOptions`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DhcpOptions {
    /// `dnsServers`, recorded as given.
    #[serde(default)]
    pub dns_servers: Vec<Value>,
}

/// One entry of a virtual network's `subnets`.
#[derive(Debug, Deserialize)]
pub(crate) struct InlineSubnet {
    /// `name`.
    pub name: String,
    /// `properties`.
    pub properties: SubnetProperties,
}

/// A child `subnets` resource.
#[derive(Debug, Deserialize)]
pub(crate) struct SubnetResource {
    /// `properties`.
    pub properties: SubnetProperties,
}

/// `properties` of a subnet, inline or child.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubnetProperties {
    /// `addressPrefix`.
    pub address_prefix: Option<Prefix>,
    /// `addressPrefixes`, read when `addressPrefix` is absent.
    #[serde(default)]
    pub address_prefixes: Vec<Prefix>,
    /// `networkSecurityGroup`.
    pub network_security_group: Option<IdRef>,
    /// `routeTable`.
    pub route_table: Option<IdRef>,
}
