//! `Microsoft.Network/virtualNetworkGateways`.

use serde::Deserialize;

use super::{spelled, IdRef, Spelling};
use crate::model::VpnType;

/// A virtual network gateway resource.
#[derive(Debug, Deserialize)]
pub(crate) struct VirtualNetworkGatewayResource {
    /// `properties`.
    pub properties: VirtualNetworkGatewayProperties,
}

/// `properties` of a virtual network gateway.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VirtualNetworkGatewayProperties {
    /// `gatewayType` (Vpn when absent).
    pub gateway_type: Option<String>,
    /// `vpnType` (RouteBased when absent).
    #[serde(default, deserialize_with = "spelled")]
    pub vpn_type: Option<VpnType>,
    /// `sku`.
    #[serde(default)]
    pub sku: GatewaySkuName,
    /// `activeActive`.
    pub active_active: Option<bool>,
    /// `enableBgp`.
    pub enable_bgp: Option<bool>,
    /// `bgpSettings`.
    pub bgp_settings: Option<BgpSettings>,
    /// `ipConfigurations`.
    #[serde(default)]
    pub ip_configurations: Vec<GatewayIpConfiguration>,
    /// `vpnGatewayGeneration`.
    pub vpn_gateway_generation: Option<String>,
}

/// `sku` of a gateway.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct GatewaySkuName {
    /// `name` (Basic when absent).
    pub name: Option<String>,
}

/// `bgpSettings` of a virtual or local network gateway.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BgpSettings {
    /// `asn` (the kind's default when absent).
    pub asn: Option<i64>,
    /// `bgpPeeringAddress`.
    pub bgp_peering_address: Option<String>,
    /// `peerWeight`.
    pub peer_weight: Option<i64>,
    /// `bgpPeeringAddresses`: per instance, custom APIPA addresses.
    pub bgp_peering_addresses: Option<Vec<BgpPeeringAddress>>,
}

/// One entry of a gateway's `bgpSettings.bgpPeeringAddresses`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BgpPeeringAddress {
    /// `ipconfigurationId`: the instance's ipConfiguration.
    pub ipconfiguration_id: Option<String>,
    /// `customBgpIpAddresses`.
    pub custom_bgp_ip_addresses: Option<Vec<String>>,
}

/// One entry of a gateway's `ipConfigurations`.
#[derive(Debug, Deserialize)]
pub(crate) struct GatewayIpConfiguration {
    /// `name` (`default` when absent).
    pub name: Option<String>,
    /// `properties`.
    pub properties: GatewayIpConfigurationProperties,
}

/// `properties` of a gateway's ipConfiguration.
#[derive(Debug, Deserialize)]
pub(crate) struct GatewayIpConfigurationProperties {
    /// `subnet`: the GatewaySubnet.
    pub subnet: IdRef,
    /// `publicIPAddress`.
    #[serde(rename = "publicIPAddress")]
    pub public_ip_address: Option<IdRef>,
}

impl Spelling for VpnType {
    fn from_arm(s: &str) -> Option<Self> {
        [VpnType::RouteBased, VpnType::PolicyBased]
            .into_iter()
            .find(|v| s.eq_ignore_ascii_case(&format!("{v:?}")))
    }

    fn unknown(s: &str) -> String {
        format!("{s:?} is not RouteBased or PolicyBased")
    }
}
