//! `Microsoft.Network/networkInterfaces`.

use serde::Deserialize;

use super::{spelled, IdRef};
use crate::model::AllocationMethod;

/// A network interface resource.
#[derive(Debug, Deserialize)]
pub(crate) struct NetworkInterfaceResource {
    /// `properties`.
    pub properties: NetworkInterfaceProperties,
}

/// `properties` of a network interface.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NetworkInterfaceProperties {
    /// `ipConfigurations`.
    #[serde(default)]
    pub ip_configurations: Vec<NicIpConfiguration>,
    /// `networkSecurityGroup`.
    pub network_security_group: Option<IdRef>,
    /// `enableIPForwarding`.
    #[serde(rename = "enableIPForwarding")]
    pub enable_ip_forwarding: Option<bool>,
}

/// One entry of `ipConfigurations`.
#[derive(Debug, Deserialize)]
pub(crate) struct NicIpConfiguration {
    /// `name`.
    pub name: String,
    /// `properties`.
    pub properties: NicIpConfigurationProperties,
}

/// `properties` of a NIC's ipConfiguration.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NicIpConfigurationProperties {
    /// `subnet`.
    pub subnet: IdRef,
    /// `privateIPAllocationMethod` (Dynamic when absent).
    #[serde(
        rename = "privateIPAllocationMethod",
        default,
        deserialize_with = "spelled"
    )]
    pub allocation_method: Option<AllocationMethod>,
    /// `privateIPAddress`, read when the method is Static.
    #[serde(rename = "privateIPAddress")]
    pub private_ip_address: Option<String>,
    /// `publicIPAddress`.
    #[serde(rename = "publicIPAddress")]
    pub public_ip_address: Option<IdRef>,
    /// `primary`.
    pub primary: Option<bool>,
}
