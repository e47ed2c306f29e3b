//! `Microsoft.Network/localNetworkGateways`.

use serde::Deserialize;

use super::gateway::BgpSettings;
use super::vnet::AddressSpace;

/// A local network gateway resource.
#[derive(Debug, Deserialize)]
pub(crate) struct LocalNetworkGatewayResource {
    /// `properties`.
    pub properties: LocalNetworkGatewayProperties,
}

/// `properties` of a local network gateway.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LocalNetworkGatewayProperties {
    /// `gatewayIpAddress`.
    pub gateway_ip_address: Option<String>,
    /// `fqdn`.
    pub fqdn: Option<String>,
    /// `localNetworkAddressSpace`.
    #[serde(default)]
    pub local_network_address_space: AddressSpace,
    /// `bgpSettings`.
    pub bgp_settings: Option<BgpSettings>,
}
