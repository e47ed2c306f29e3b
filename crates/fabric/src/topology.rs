//! A lab's network in plain terms — sites, VNets, subnets, VMs with their NIC addresses,
//! gateways with their addresses and remote prefixes — from which the fabric builds
//! namespaces, bridges and veths ([`Topology::desired_state`]).

use crate::names::LabId;
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// Everything a lab realizes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Topology {
    /// The lab id prefixing every object.
    pub lab_id: LabId,
    /// The sites, in lab.yaml order.
    pub sites: Vec<SiteNet>,
}

/// One site's networks and machines.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SiteNet {
    /// Site name (`azure`, `stackhub`).
    pub name: String,
    /// The site's public prefix on the simulated internet.
    pub public_prefix: Ipv4Net,
    /// Virtual networks.
    pub vnets: Vec<VnetNet>,
    /// Virtual machines (only their NICs matter here).
    pub vms: Vec<VmNet>,
    /// Whether the site's gateways sit behind a NAT device (a namespace holding their public
    /// IPs and translating to private addresses behind it).
    #[serde(default)]
    pub nat: bool,
    /// VPN gateways: namespaces between the GatewaySubnet and the internet.
    #[serde(default)]
    pub gateways: Vec<GatewayNet>,
}

/// One virtual network gateway's place in the lab: a namespace with `lan` in the VNet's
/// GatewaySubnet and `wan` on the site's public prefix in the internet namespace. The gateway
/// process (IKE/ESP, its TUN device and the routes into it) runs inside that namespace and is
/// not managed here; the fabric only lays the wires and the static routes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GatewayNet {
    /// Gateway resource name.
    pub name: String,
    /// VNet whose GatewaySubnet the gateway sits in.
    pub vnet: String,
    /// Its address in the GatewaySubnet (from .4).
    pub private_address: Ipv4Addr,
    /// Its public IP (on `wan`).
    pub public_address: Ipv4Addr,
    /// Remote prefixes (local network gateways / the peer VNet) the VNet router sends to it.
    pub remote_prefixes: Vec<Ipv4Net>,
    /// Which instance of the gateway this is (0: the first, or the only one).
    #[serde(default)]
    pub instance: u8,
    /// How many instances the gateway has (2: active-active, whose instances tell the VNet
    /// router themselves what to send them, so that it follows the tunnels that are up).
    #[serde(default = "one_instance")]
    pub instances: u8,
}

fn one_instance() -> u8 {
    1
}

impl GatewayNet {
    /// The instance's namespace.
    pub fn netns(&self, id: &crate::LabId, site: &str) -> String {
        id.gateway_instance_netns(site, &self.name, self.instance)
    }

    /// The instance's name for files and interface names: the gateway's, with `#2` for a
    /// second instance.
    pub fn instance_name(&self) -> String {
        instance_name(&self.name, self.instance)
    }
}

/// A gateway instance's name: the gateway's for the first, `<gateway>#<n>` for the n-th.
pub fn instance_name(gateway: &str, instance: u8) -> String {
    if instance == 0 {
        gateway.to_string()
    } else {
        format!("{gateway}#{}", instance + 1)
    }
}

/// Interface name of a gateway's GatewaySubnet side inside its namespace.
pub const GATEWAY_LAN_IF: &str = "lan";
/// Interface name of a gateway's internet side inside its namespace (and of a NAT device's).
pub const GATEWAY_WAN_IF: &str = "wan";

/// Behind a NAT device, gateway number `i` of the site gets `100.64.<i>.2/24` and the NAT
/// device `100.64.<i>.1` (shared address space, RFC 6598, as carrier NATs use).
pub fn behind_nat_addresses(i: usize) -> (Ipv4Addr, Ipv4Addr) {
    let i = (i % 256) as u8;
    (Ipv4Addr::new(100, 64, i, 1), Ipv4Addr::new(100, 64, i, 2))
}

/// One virtual network.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VnetNet {
    /// VNet name.
    pub name: String,
    /// Its subnets.
    pub subnets: Vec<SubnetNet>,
}

/// One subnet of a VNet.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubnetNet {
    /// Subnet name (`default`, `GatewaySubnet`).
    pub name: String,
    /// Its prefix; the router answers on its first host address (`.1`).
    pub prefix: Ipv4Net,
}

/// One VM.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VmNet {
    /// VM name.
    pub name: String,
    /// NICs in the VM's order; the first one is primary and carries the default route.
    pub nics: Vec<NicNet>,
}

/// One NIC of a VM.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NicNet {
    /// NIC resource name.
    pub name: String,
    /// VNet the NIC's subnet belongs to.
    pub vnet: String,
    /// Subnet name inside that VNet.
    pub subnet: String,
    /// Private address (from the site's IPAM).
    pub address: Ipv4Addr,
    /// Public IP associated with the NIC: the VNet router holds it on its `wan` port in the
    /// internet namespace and translates 1:1 to the private address (as Azure does).
    #[serde(default)]
    pub public_address: Option<Ipv4Addr>,
    /// The network security groups in effect on the NIC (its subnet's, then its own), which
    /// the VM's namespace enforces; empty = no NSG, all traffic passes (as on Azure).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security: Vec<site::nsg::EffectiveNsg>,
}

/// The topology cannot be realized as described.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A NIC names a VNet or subnet the site does not have.
    #[error("site {site}: NIC {nic} of VM {vm} is in {vnet}/{subnet}, which does not exist")]
    UnknownSubnet {
        /// The site concerned.
        site: String,
        /// The virtual machine concerned.
        vm: String,
        /// The network interface concerned.
        nic: String,
        /// The virtual network concerned.
        vnet: String,
        /// The subnet concerned.
        subnet: String,
    },
    /// A NIC's address lies outside its subnet.
    #[error(
        "site {site}: NIC {nic} address {address} is outside subnet {vnet}/{subnet} ({prefix})"
    )]
    AddressOutsideSubnet {
        /// The site concerned.
        site: String,
        /// The network interface concerned.
        nic: String,
        /// The address concerned.
        address: Ipv4Addr,
        /// The virtual network concerned.
        vnet: String,
        /// The subnet concerned.
        subnet: String,
        /// The prefix concerned.
        prefix: Ipv4Net,
    },
    /// A gateway names a VNet the site does not have.
    #[error("site {site}: gateway {gateway}: VNet {vnet} does not exist")]
    GatewayVnet {
        /// The site concerned.
        site: String,
        /// The VPN gateway concerned.
        gateway: String,
        /// The virtual network concerned.
        vnet: String,
    },
    /// A gateway's private address lies in no subnet of its VNet.
    #[error("site {site}: gateway {gateway}: {address} is in no subnet of VNet {vnet}")]
    GatewayOutsideVnet {
        /// The site concerned.
        site: String,
        /// The VPN gateway concerned.
        gateway: String,
        /// The address concerned.
        address: Ipv4Addr,
        /// The virtual network concerned.
        vnet: String,
    },
    /// A gateway's public IP is not in the site's public prefix.
    #[error("site {site}: gateway {gateway}: public IP {address} is outside {prefix}")]
    GatewayPublicIpOutside {
        /// The site concerned.
        site: String,
        /// The VPN gateway concerned.
        gateway: String,
        /// The address concerned.
        address: Ipv4Addr,
        /// The prefix concerned.
        prefix: Ipv4Net,
    },
    /// A NIC's public IP is not in the site's public prefix.
    #[error(
        "site {site}: NIC {nic}: public IP {address} is outside the site's public prefix {prefix}"
    )]
    PublicIpOutside {
        /// The site concerned.
        site: String,
        /// The network interface concerned.
        nic: String,
        /// The address concerned.
        address: Ipv4Addr,
        /// The prefix concerned.
        prefix: Ipv4Net,
    },
    /// A prefix too small to hold a router address.
    #[error("site {site}: prefix {prefix} has no room for a router address")]
    PrefixTooSmall {
        /// The site concerned.
        site: String,
        /// The prefix concerned.
        prefix: Ipv4Net,
    },
    /// Names collide or the generated state is inconsistent.
    #[error(transparent)]
    Desired(#[from] crate::desired::DesiredError),
}

/// First host address of a prefix (`.1` of a /24): the router's address on a subnet.
pub fn first_host(prefix: &Ipv4Net) -> Option<Ipv4Addr> {
    if prefix.prefix_len() >= 31 {
        return None;
    }
    Some(Ipv4Addr::from(u32::from(prefix.network()) + 1))
}

impl SiteNet {
    /// The internet side's address on this site's public prefix: the next hop for gateways.
    /// It is the prefix's last usable address (`.254` of a /24) because the site allocates
    /// public IPs from the first one up.
    pub fn internet_address(&self) -> Option<Ipv4Addr> {
        if self.public_prefix.prefix_len() >= 31 {
            return None;
        }
        Some(Ipv4Addr::from(
            u32::from(self.public_prefix.broadcast()) - 1,
        ))
    }
}

impl Topology {
    /// Name of the bridge of subnet `vnet/subnet` of `site`, inside the VNet's router namespace.
    pub fn subnet_bridge(&self, site: &str, vnet: &str, subnet: &str) -> String {
        self.lab_id.ifname('b', &format!("{site}/{vnet}/{subnet}"))
    }

    /// Name of the bridge of `site`'s public prefix inside the internet namespace.
    pub fn internet_bridge(&self, site: &str) -> String {
        self.lab_id.ifname('b', &format!("internet/{site}"))
    }
}
