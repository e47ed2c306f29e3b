//! Network security groups: their rules as Azure evaluates them, and the rules in effect on a
//! NIC (its subnet's NSG, then its own, each with Azure's default rules and service tags
//! expanded to prefixes), which the lab enforces and `list-effective-nsg` shows.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::{same_id, NetworkInterface, Resource, ResourceMeta, VirtualNetwork};

/// `Microsoft.Network/networkSecurityGroups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkSecurityGroup {
    /// Common resource data.
    pub meta: ResourceMeta,
    /// `securityRules` (child `securityRules` resources merged in), as given.
    pub security_rules: Vec<SecurityRule>,
}

/// Traffic direction a rule applies to, seen from the NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Towards the NIC.
    Inbound,
    /// From the NIC.
    Outbound,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    /// Let the packet through (to the next NSG, if any).
    Allow,
    /// Drop it.
    Deny,
}

/// A rule's `protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NsgProtocol {
    /// `*` (`Any`).
    Any,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP.
    Icmp,
    /// ESP.
    Esp,
    /// AH.
    Ah,
}

/// The service tags the lab can expand (Azure has many more; others are refused up front).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceTag {
    /// The VNet's address space and the address spaces connected to it (local network
    /// gateways of its gateway's connections, VNet-to-VNet peers).
    VirtualNetwork,
    /// Everything outside `VirtualNetwork`.
    Internet,
    /// Azure's health-probe source, 168.63.129.16.
    AzureLoadBalancer,
}

/// One address entry of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AddressMatch {
    /// `*`.
    Any,
    /// A prefix or single address.
    Prefix(Ipv4Net),
    /// A service tag.
    Tag(ServiceTag),
}

/// An inclusive port range (`22`, `1000-2000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port.
    pub last: u16,
}

/// One rule of an NSG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityRule {
    /// Rule name.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// `protocol`.
    pub protocol: NsgProtocol,
    /// Source ports (empty = any).
    pub source_ports: Vec<PortRange>,
    /// Destination ports (empty = any).
    pub destination_ports: Vec<PortRange>,
    /// Source addresses (any entry matches).
    pub source: Vec<AddressMatch>,
    /// Destination addresses (any entry matches).
    pub destination: Vec<AddressMatch>,
    /// `access`.
    pub access: Access,
    /// `priority` (100 … 4096; lower first).
    pub priority: u16,
    /// `direction`.
    pub direction: Direction,
}

impl fmt::Display for NsgProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NsgProtocol::Any => "All",
            NsgProtocol::Tcp => "Tcp",
            NsgProtocol::Udp => "Udp",
            NsgProtocol::Icmp => "Icmp",
            NsgProtocol::Esp => "Esp",
            NsgProtocol::Ah => "Ah",
        })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl fmt::Display for AddressMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressMatch::Any => f.write_str("*"),
            AddressMatch::Prefix(p) if p.prefix_len() == 32 => write!(f, "{}", p.addr()),
            AddressMatch::Prefix(p) => write!(f, "{p}"),
            AddressMatch::Tag(t) => write!(f, "{t:?}"),
        }
    }
}

/// Azure's health-probe address (the `AzureLoadBalancer` tag).
pub const AZURE_LOAD_BALANCER: Ipv4Addr = Ipv4Addr::new(168, 63, 129, 16);

/// Azure's default rules, which every NSG has below its own (priorities 65000 … 65500).
pub fn default_rules() -> Vec<SecurityRule> {
    let rule = |name: &str, priority, direction, access, source, destination| SecurityRule {
        name: name.to_string(),
        description: None,
        protocol: NsgProtocol::Any,
        source_ports: Vec::new(),
        destination_ports: Vec::new(),
        source: vec![source],
        destination: vec![destination],
        access,
        priority,
        direction,
    };
    let vnet = AddressMatch::Tag(ServiceTag::VirtualNetwork);
    let lb = AddressMatch::Tag(ServiceTag::AzureLoadBalancer);
    let internet = AddressMatch::Tag(ServiceTag::Internet);
    use Access::*;
    use AddressMatch::Any;
    use Direction::*;
    vec![
        rule("AllowVnetInBound", 65000, Inbound, Allow, vnet, vnet),
        rule(
            "AllowAzureLoadBalancerInBound",
            65001,
            Inbound,
            Allow,
            lb,
            Any,
        ),
        rule("DenyAllInBound", 65500, Inbound, Deny, Any, Any),
        rule("AllowVnetOutBound", 65000, Outbound, Allow, vnet, vnet),
        rule(
            "AllowInternetOutBound",
            65001,
            Outbound,
            Allow,
            Any,
            internet,
        ),
        rule("DenyAllOutBound", 65500, Outbound, Deny, Any, Any),
    ]
}

/// Which resource an NSG is associated through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Association {
    /// The NIC's subnet (its id).
    Subnet(String),
    /// The NIC itself (its id).
    NetworkInterface(String),
}

/// A rule as it is in effect on one NIC: addresses expanded to prefixes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectiveRule {
    /// `securityRules/<name>` or `defaultSecurityRules/<name>`, as Azure names them.
    pub name: String,
    /// The rule.
    pub rule: SecurityRule,
    /// Source prefixes the rule matches.
    pub source: Vec<Ipv4Net>,
    /// Destination prefixes the rule matches.
    pub destination: Vec<Ipv4Net>,
}

/// One NSG in effect on a NIC, with its rules in evaluation order (per direction by priority).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectiveNsg {
    /// The NSG's id.
    pub nsg_id: String,
    /// How it applies to the NIC.
    pub association: Association,
    /// Its rules and the defaults, lowest priority number first.
    pub rules: Vec<EffectiveRule>,
}

/// The NSGs in effect on `nic`, in the order Azure evaluates them inbound (the subnet's, then
/// the NIC's; outbound is the reverse); empty when neither has one (all traffic passes).
/// `resources` are the site's; `VirtualNetwork` covers the NIC's VNet and what is connected
/// to it through its VPN gateway.
pub fn effective_nsgs(resources: &[Resource], nic: &NetworkInterface) -> Vec<EffectiveNsg> {
    let Some(subnet_id) = nic
        .primary()
        .or(nic.ip_configurations.first())
        .map(|c| c.subnet.clone())
    else {
        return Vec::new();
    };
    let vnet = resources.iter().find_map(|r| match r {
        Resource::VirtualNetwork(v) if v.subnets.iter().any(|s| same_id(&s.id, &subnet_id)) => {
            Some(v)
        }
        _ => None,
    });
    let virtual_network = vnet.map(|v| vnet_space(resources, v)).unwrap_or_default();
    let mut layers = Vec::new();
    let subnet_nsg = vnet
        .and_then(|v| v.subnets.iter().find(|s| same_id(&s.id, &subnet_id)))
        .and_then(|s| s.network_security_group.clone());
    let associations = [
        subnet_nsg.map(|n| (n, Association::Subnet(subnet_id.clone()))),
        nic.network_security_group
            .clone()
            .map(|n| (n, Association::NetworkInterface(nic.meta.id.clone()))),
    ];
    for (nsg_id, association) in associations.into_iter().flatten() {
        let Some(nsg) = resources.iter().find_map(|r| match r {
            Resource::NetworkSecurityGroup(g) if same_id(&g.meta.id, &nsg_id) => Some(g),
            _ => None,
        }) else {
            continue;
        };
        let mut rules: Vec<EffectiveRule> = nsg
            .security_rules
            .iter()
            .map(|r| (format!("securityRules/{}", r.name), r.clone()))
            .chain(
                default_rules()
                    .into_iter()
                    .map(|r| (format!("defaultSecurityRules/{}", r.name), r)),
            )
            .map(|(name, rule)| EffectiveRule {
                name,
                source: expand(&rule.source, &virtual_network),
                destination: expand(&rule.destination, &virtual_network),
                rule,
            })
            .collect();
        rules.sort_by_key(|r| (r.rule.direction == Direction::Outbound, r.rule.priority));
        layers.push(EffectiveNsg {
            nsg_id: nsg.meta.id.clone(),
            association,
            rules,
        });
    }
    layers
}

/// The `VirtualNetwork` tag of `vnet`: its address space, the address spaces of the local
/// network gateways its gateways connect to, and the VNets of its VNet-to-VNet peers.
fn vnet_space(resources: &[Resource], vnet: &VirtualNetwork) -> Vec<Ipv4Net> {
    let mut out = vnet.address_space.clone();
    // a subnet id of a VNet is the VNet's id and "/subnets/…" (vnet1 is no prefix of vnet10)
    let of_vnet = |subnet: &str, v: &VirtualNetwork| {
        subnet
            .to_ascii_lowercase()
            .starts_with(&format!("{}/", v.meta.id.to_ascii_lowercase()))
    };
    let in_vnet = |gateway_id: &str| {
        resources.iter().any(|r| match r {
            Resource::VirtualNetworkGateway(g) if same_id(&g.meta.id, gateway_id) => {
                g.ip_configurations.iter().any(|c| of_vnet(&c.subnet, vnet))
            }
            _ => false,
        })
    };
    for r in resources {
        let Resource::Connection(c) = r else { continue };
        let peer = if in_vnet(&c.virtual_network_gateway1) {
            c.local_network_gateway2
                .as_deref()
                .or(c.virtual_network_gateway2.as_deref())
        } else if c.virtual_network_gateway2.as_deref().is_some_and(in_vnet) {
            Some(c.virtual_network_gateway1.as_str())
        } else {
            None
        };
        let Some(peer) = peer else { continue };
        for p in resources {
            match p {
                Resource::LocalNetworkGateway(l) if same_id(&l.meta.id, peer) => {
                    out.extend(l.address_prefixes.iter().copied())
                }
                Resource::VirtualNetworkGateway(g) if same_id(&g.meta.id, peer) => {
                    for v in resources {
                        if let Resource::VirtualNetwork(other) = v {
                            let owns = g
                                .ip_configurations
                                .iter()
                                .any(|c| of_vnet(&c.subnet, other));
                            if owns {
                                out.extend(other.address_space.iter().copied());
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The prefixes a rule's address entries match.
fn expand(entries: &[AddressMatch], virtual_network: &[Ipv4Net]) -> Vec<Ipv4Net> {
    let mut out = Vec::new();
    for e in entries {
        match e {
            AddressMatch::Any => return vec![Ipv4Net::default()],
            AddressMatch::Prefix(p) => out.push(*p),
            AddressMatch::Tag(ServiceTag::VirtualNetwork) => out.extend(virtual_network),
            AddressMatch::Tag(ServiceTag::Internet) => out.extend(complement(virtual_network)),
            AddressMatch::Tag(ServiceTag::AzureLoadBalancer) => {
                out.push(Ipv4Net::new(AZURE_LOAD_BALANCER, 32).expect("/32"))
            }
        }
    }
    Ipv4Net::aggregate(&out)
}

/// The IPv4 space outside `prefixes`, as prefixes.
fn complement(prefixes: &[Ipv4Net]) -> Vec<Ipv4Net> {
    let mut out = vec![Ipv4Net::default()];
    for p in Ipv4Net::aggregate(&prefixes.to_vec()) {
        let mut next = Vec::new();
        for q in out {
            if !q.contains(&p) && !p.contains(&q) {
                next.push(q);
            } else if p.contains(&q) {
                // removed entirely
            } else {
                // q strictly contains p: split q until p is cut out
                let mut rest = q;
                while rest != p {
                    let halves: Vec<Ipv4Net> = rest
                        .subnets(rest.prefix_len() + 1)
                        .expect("split")
                        .collect();
                    let (inside, outside) = if halves[0].contains(&p) {
                        (halves[0], halves[1])
                    } else {
                        (halves[1], halves[0])
                    };
                    next.push(outside);
                    rest = inside;
                }
            }
        }
        out = next;
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_complement_of_a_vnet_covers_everything_else_exactly() {
        let vnet: Vec<Ipv4Net> = vec![
            "10.1.0.0/16".parse().unwrap(),
            "10.2.0.0/16".parse().unwrap(),
        ];
        let rest = complement(&vnet);
        let inside = |a: &str| {
            let ip: Ipv4Addr = a.parse().unwrap();
            rest.iter().any(|p| p.contains(&ip))
        };
        for outside in [
            "0.0.0.0",
            "9.255.255.255",
            "10.0.255.255",
            "10.3.0.0",
            "203.0.113.9",
            "255.255.255.255",
        ] {
            assert!(inside(outside), "{outside} is Internet");
        }
        for vnet_addr in ["10.1.0.0", "10.1.2.3", "10.2.255.255"] {
            assert!(!inside(vnet_addr), "{vnet_addr} is VirtualNetwork");
        }
        assert!(rest.len() <= 32 * 2, "{rest:?}");
    }
}
