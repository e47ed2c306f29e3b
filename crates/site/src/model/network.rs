//! Networking resources: virtual networks and subnets, public IPs, network interfaces and the
//! virtual machines that hold them.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AllocationMethod, ResourceMeta};

/// A subnet of a virtual network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    /// Full id (`…/virtualNetworks/vnet1/subnets/sub1`).
    pub id: String,
    /// Subnet name; `GatewaySubnet` is special.
    pub name: String,
    /// The subnet's prefix.
    pub address_prefix: Ipv4Net,
    /// Attached network security group id.
    pub network_security_group: Option<String>,
    /// Attached route table id.
    pub route_table: Option<String>,
}

impl Subnet {
    /// Whether this is the subnet VPN gateways live in.
    pub fn is_gateway_subnet(&self) -> bool {
        self.name.eq_ignore_ascii_case(crate::GATEWAY_SUBNET)
    }

    /// The address of the VNet's implicit router in this subnet (`.1`).
    pub fn router_address(&self) -> Ipv4Addr {
        crate::ipam::nth(self.address_prefix, 1)
    }
}

/// `Microsoft.Network/virtualNetworks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualNetwork {
    /// Common resource data.
    pub meta: ResourceMeta,
    /// `addressSpace.addressPrefixes`.
    pub address_space: Vec<Ipv4Net>,
    /// Inline subnets and child `subnets` resources, merged.
    pub subnets: Vec<Subnet>,
    /// `dhcpOptions.dnsServers`, recorded.
    pub dns_servers: Vec<String>,
}

impl VirtualNetwork {
    /// The subnet with that name (case-insensitive).
    pub fn subnet(&self, name: &str) -> Option<&Subnet> {
        self.subnets
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// The GatewaySubnet, if the VNet has one.
    pub fn gateway_subnet(&self) -> Option<&Subnet> {
        self.subnet(crate::GATEWAY_SUBNET)
    }
}

/// Public IP SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PublicIpSku {
    /// Basic (the default).
    Basic,
    /// Standard (not on Azure Stack Hub).
    Standard,
}

/// `Microsoft.Network/publicIPAddresses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicIpAddress {
    /// Common resource data.
    pub meta: ResourceMeta,
    /// `sku.name`.
    pub sku: PublicIpSku,
    /// `publicIPAllocationMethod`; hybridnet allocates at deployment either way.
    pub allocation_method: AllocationMethod,
    /// The address allocated from the site's public prefix.
    pub ip_address: Ipv4Addr,
    /// `dnsSettings.domainNameLabel`.
    pub domain_name_label: Option<String>,
    /// `dnsSettings.fqdn`: `<label>.<location>.cloudapp.azure.com`, the name the lab's DNS
    /// zone holds for this address (local network gateways may name a peer by it).
    #[serde(default)]
    pub fqdn: Option<String>,
}

/// One IP configuration of a NIC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NicIpConfiguration {
    /// ipConfiguration name.
    pub name: String,
    /// Subnet id.
    pub subnet: String,
    /// Private address (allocated or checked).
    pub private_ip_address: Ipv4Addr,
    /// How the address was chosen.
    pub allocation_method: AllocationMethod,
    /// Attached public IP id.
    pub public_ip_address: Option<String>,
    /// Whether this is the NIC's primary configuration.
    pub primary: bool,
}

/// `Microsoft.Network/networkInterfaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// Common resource data.
    pub meta: ResourceMeta,
    /// IP configurations, first is primary unless one says otherwise.
    pub ip_configurations: Vec<NicIpConfiguration>,
    /// Attached network security group id, recorded.
    pub network_security_group: Option<String>,
    /// `enableIPForwarding`.
    pub enable_ip_forwarding: bool,
}

impl NetworkInterface {
    /// The primary IP configuration.
    pub fn primary(&self) -> Option<&NicIpConfiguration> {
        self.ip_configurations
            .iter()
            .find(|c| c.primary)
            .or(self.ip_configurations.first())
    }
}

/// A VM's reference to a NIC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmNic {
    /// NIC id.
    pub id: String,
    /// `properties.primary`.
    pub primary: bool,
}

/// `Microsoft.Compute/virtualMachines`: only networking is realized; the rest is recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualMachine {
    /// Common resource data.
    pub meta: ResourceMeta,
    /// `networkProfile.networkInterfaces`.
    pub network_interfaces: Vec<VmNic>,
    /// `hardwareProfile`, recorded.
    pub hardware_profile: Value,
    /// `osProfile`, recorded with secrets (adminPassword, customData, …) redacted.
    pub os_profile: Value,
    /// `storageProfile`, recorded.
    pub storage_profile: Value,
}
