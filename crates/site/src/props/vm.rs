//! `Microsoft.Compute/virtualMachines`: the networking hybridnet realizes (the other profiles
//! are recorded from the body as given).

use serde::Deserialize;

/// A virtual machine resource.
#[derive(Debug, Deserialize)]
pub(crate) struct VirtualMachineResource {
    /// `properties`.
    pub properties: VirtualMachineProperties,
}

/// `properties` of a virtual machine.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VirtualMachineProperties {
    /// `networkProfile`.
    #[serde(default)]
    pub network_profile: NetworkProfile,
}

/// `networkProfile`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NetworkProfile {
    /// `networkInterfaces`.
    #[serde(default)]
    pub network_interfaces: Vec<VmNicRef>,
}

/// One entry of `networkInterfaces`.
#[derive(Debug, Deserialize)]
pub(crate) struct VmNicRef {
    /// The NIC's id.
    pub id: String,
    /// `properties`.
    pub properties: VmNicProperties,
}

/// `properties` of a VM's NIC reference.
#[derive(Debug, Deserialize)]
pub(crate) struct VmNicProperties {
    /// `primary`.
    pub primary: Option<bool>,
}
