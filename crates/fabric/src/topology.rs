//! A lab's network in plain terms — sites, VNets, subnets, VMs with their NIC addresses — and
//! its translation into namespaces, bridges and veths ([`DesiredState`]).
//!
//! Layout: one router namespace per VNet holds a bridge per subnet (answering `.1`) and
//! forwards between them; each VM is a namespace whose `eth<N>` is a veth into its subnet's
//! bridge, with a default route via `.1`; the internet namespace holds one bridge per site
//! public prefix (answering the prefix's last usable address), where gateways will attach.

use crate::desired::{DesiredState, LinkKind, LinkSpec, NetnsSpec, RouteSpec};
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
}

/// The topology cannot be realized as described.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A NIC names a VNet or subnet the site does not have.
    #[error("site {site}: NIC {nic} of VM {vm} is in {vnet}/{subnet}, which does not exist")]
    UnknownSubnet {
        site: String,
        vm: String,
        nic: String,
        vnet: String,
        subnet: String,
    },
    /// A NIC's address lies outside its subnet.
    #[error(
        "site {site}: NIC {nic} address {address} is outside subnet {vnet}/{subnet} ({prefix})"
    )]
    AddressOutsideSubnet {
        site: String,
        nic: String,
        address: Ipv4Addr,
        vnet: String,
        subnet: String,
        prefix: Ipv4Net,
    },
    /// A gateway is not in a subnet of its VNet, or its public IP is outside the site's prefix.
    #[error("site {site}: gateway {gateway}: {problem}")]
    Gateway {
        site: String,
        gateway: String,
        problem: String,
    },
    /// A NIC's public IP is not in the site's public prefix.
    #[error(
        "site {site}: NIC {nic}: public IP {address} is outside the site's public prefix {prefix}"
    )]
    PublicIpOutside {
        site: String,
        nic: String,
        address: Ipv4Addr,
        prefix: Ipv4Net,
    },
    /// A prefix too small to hold a router address.
    #[error("site {site}: prefix {prefix} has no room for a router address")]
    PrefixTooSmall { site: String, prefix: Ipv4Net },
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

/// Turns the per-gateway rule lines (`@post` marks postrouting rules) into the chains of the
/// NAT device's table.
fn nat_ruleset(lines: &str) -> String {
    let (post, pre): (Vec<&str>, Vec<&str>) = lines
        .lines()
        .filter(|l| !l.is_empty())
        .partition(|l| l.starts_with("@post "));
    let mut out = String::from(
        "chain prerouting {\n  type nat hook prerouting priority dstnat; policy accept;\n",
    );
    for l in pre {
        out.push_str(&format!("  {l}\n"));
    }
    out.push_str(
        "}\nchain postrouting {\n  type nat hook postrouting priority srcnat; policy accept;\n",
    );
    for l in post {
        out.push_str(&format!("  {}\n", l.trim_start_matches("@post ")));
    }
    out.push_str("}\n");
    out
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

    /// Translates the lab into namespaces, links, addresses and routes.
    pub fn desired_state(&self) -> Result<DesiredState, TopologyError> {
        let id = &self.lab_id;
        let mut out = DesiredState::default();

        let mut internet = NetnsSpec {
            name: id.internet_netns(),
            role: "internet".into(),
            forwarding: true,
            links: Vec::new(),
            routes: Vec::new(),
            nft: None,
        };
        for site in &self.sites {
            let edge = site
                .internet_address()
                .ok_or_else(|| TopologyError::PrefixTooSmall {
                    site: site.name.clone(),
                    prefix: site.public_prefix,
                })?;
            internet.links.push(LinkSpec {
                name: self.internet_bridge(&site.name),
                kind: LinkKind::Bridge,
                master: None,
                addrs: vec![
                    Ipv4Net::new(edge, site.public_prefix.prefix_len()).expect("valid length")
                ],
                role: format!(
                    "public prefix of site {} ({})",
                    site.name, site.public_prefix
                ),
            });
        }
        let mut internet_ports: Vec<LinkSpec> = Vec::new();
        for site in &self.sites {
            let mut routers: Vec<NetnsSpec> = Vec::new();
            for vnet in &site.vnets {
                let mut router = NetnsSpec {
                    name: id.router_netns(&site.name, &vnet.name),
                    role: format!("router of VNet {}/{}", site.name, vnet.name),
                    forwarding: true,
                    links: Vec::new(),
                    routes: Vec::new(),
                    nft: None,
                };
                for subnet in &vnet.subnets {
                    let gw = first_host(&subnet.prefix).ok_or_else(|| {
                        TopologyError::PrefixTooSmall {
                            site: site.name.clone(),
                            prefix: subnet.prefix,
                        }
                    })?;
                    router.links.push(LinkSpec {
                        name: self.subnet_bridge(&site.name, &vnet.name, &subnet.name),
                        kind: LinkKind::Bridge,
                        master: None,
                        addrs: vec![
                            Ipv4Net::new(gw, subnet.prefix.prefix_len()).expect("valid length")
                        ],
                        role: format!(
                            "subnet {}/{}/{} ({})",
                            site.name, vnet.name, subnet.name, subnet.prefix
                        ),
                    });
                }
                routers.push(router);
            }
            let mut vms: Vec<NetnsSpec> = Vec::new();
            let mut gateways: Vec<NetnsSpec> = Vec::new();
            // Per VNet: (public IP, private address) of NICs with a public IP.
            let mut public_nat: Vec<Vec<(Ipv4Addr, Ipv4Addr)>> = vec![Vec::new(); site.vnets.len()];
            for vm in &site.vms {
                let vm_ns = id.vm_netns(&site.name, &vm.name);
                let mut spec = NetnsSpec {
                    name: vm_ns.clone(),
                    role: format!("VM {}/{}", site.name, vm.name),
                    forwarding: false,
                    links: Vec::new(),
                    routes: Vec::new(),
                    nft: None,
                };
                for (i, nic) in vm.nics.iter().enumerate() {
                    let unknown = || TopologyError::UnknownSubnet {
                        site: site.name.clone(),
                        vm: vm.name.clone(),
                        nic: nic.name.clone(),
                        vnet: nic.vnet.clone(),
                        subnet: nic.subnet.clone(),
                    };
                    let vnet_idx = site
                        .vnets
                        .iter()
                        .position(|v| v.name == nic.vnet)
                        .ok_or_else(unknown)?;
                    let subnet = site.vnets[vnet_idx]
                        .subnets
                        .iter()
                        .find(|s| s.name == nic.subnet)
                        .ok_or_else(unknown)?;
                    if !subnet.prefix.contains(&nic.address) {
                        return Err(TopologyError::AddressOutsideSubnet {
                            site: site.name.clone(),
                            nic: nic.name.clone(),
                            address: nic.address,
                            vnet: nic.vnet.clone(),
                            subnet: nic.subnet.clone(),
                            prefix: subnet.prefix,
                        });
                    }
                    let ifname = format!("eth{i}");
                    if let Some(public) = nic.public_address {
                        if !site.public_prefix.contains(&public) {
                            return Err(TopologyError::PublicIpOutside {
                                site: site.name.clone(),
                                nic: nic.name.clone(),
                                address: public,
                                prefix: site.public_prefix,
                            });
                        }
                        public_nat[vnet_idx].push((public, nic.address));
                    }
                    spec.links.push(LinkSpec {
                        name: ifname.clone(),
                        kind: LinkKind::VethPeer,
                        master: None,
                        addrs: vec![Ipv4Net::new(nic.address, subnet.prefix.prefix_len())
                            .expect("valid length")],
                        role: format!("NIC {} ({}/{})", nic.name, nic.vnet, nic.subnet),
                    });
                    if i == 0 {
                        spec.routes.push(RouteSpec {
                            dst: Ipv4Net::default(),
                            via: first_host(&subnet.prefix),
                            dev: ifname.clone(),
                        });
                    }
                    routers[vnet_idx].links.push(LinkSpec {
                        name: id.ifname(
                            'v',
                            &format!("{}/{}/{}/{ifname}", site.name, vm.name, nic.name),
                        ),
                        kind: LinkKind::Veth {
                            peer_netns: vm_ns.clone(),
                            peer_name: ifname,
                        },
                        master: Some(self.subnet_bridge(&site.name, &nic.vnet, &nic.subnet)),
                        addrs: Vec::new(),
                        role: format!("port of VM {}/{} NIC {}", site.name, vm.name, nic.name),
                    });
                }
                vms.push(spec);
            }
            let mut nat_box: Option<NetnsSpec> = None;
            for (gw_index, gw) in site.gateways.iter().enumerate() {
                let bad = |problem: String| TopologyError::Gateway {
                    site: site.name.clone(),
                    gateway: gw.name.clone(),
                    problem,
                };
                let vnet_idx = site
                    .vnets
                    .iter()
                    .position(|v| v.name == gw.vnet)
                    .ok_or_else(|| bad(format!("VNet {} does not exist", gw.vnet)))?;
                let vnet = &site.vnets[vnet_idx];
                let subnet = vnet
                    .subnets
                    .iter()
                    .find(|s| s.prefix.contains(&gw.private_address))
                    .ok_or_else(|| {
                        bad(format!(
                            "{} is in no subnet of VNet {}",
                            gw.private_address, vnet.name
                        ))
                    })?;
                if !site.public_prefix.contains(&gw.public_address) {
                    return Err(bad(format!(
                        "public IP {} is outside {}",
                        gw.public_address, site.public_prefix
                    )));
                }
                let edge = site.internet_address().expect("checked above");
                let gw_ns = id.gateway_netns(&site.name, &gw.name);
                let key = format!("{}/gateway/{}", site.name, gw.name);
                let subnet_router = first_host(&subnet.prefix).expect("checked above");
                let mut spec = NetnsSpec {
                    name: gw_ns.clone(),
                    role: format!("gateway {}/{}", site.name, gw.name),
                    forwarding: true,
                    links: vec![LinkSpec {
                        name: GATEWAY_LAN_IF.into(),
                        kind: LinkKind::VethPeer,
                        master: None,
                        addrs: vec![Ipv4Net::new(gw.private_address, subnet.prefix.prefix_len())
                            .expect("valid")],
                        role: format!("GatewaySubnet side ({}/{})", vnet.name, subnet.name),
                    }],
                    routes: Vec::new(),
                    nft: None,
                };
                // The gateway reaches the whole VNet through the router.
                for s in &vnet.subnets {
                    if s.prefix != subnet.prefix {
                        spec.routes.push(RouteSpec {
                            dst: s.prefix,
                            via: Some(subnet_router),
                            dev: GATEWAY_LAN_IF.into(),
                        });
                    }
                }
                routers[vnet_idx].links.push(LinkSpec {
                    name: id.ifname('g', &key),
                    kind: LinkKind::Veth {
                        peer_netns: gw_ns.clone(),
                        peer_name: GATEWAY_LAN_IF.into(),
                    },
                    master: Some(self.subnet_bridge(&site.name, &vnet.name, &subnet.name)),
                    addrs: Vec::new(),
                    role: format!("port of gateway {}/{}", site.name, gw.name),
                });
                let bridge = self.subnet_bridge(&site.name, &vnet.name, &subnet.name);
                for p in &gw.remote_prefixes {
                    routers[vnet_idx].routes.push(RouteSpec {
                        dst: p.trunc(),
                        via: Some(gw.private_address),
                        dev: bridge.clone(),
                    });
                }
                if site.nat {
                    let (nat_inside, gw_inside) = behind_nat_addresses(gw_index);
                    spec.links.push(LinkSpec {
                        name: GATEWAY_WAN_IF.into(),
                        kind: LinkKind::VethPeer,
                        master: None,
                        addrs: vec![Ipv4Net::new(gw_inside, 24).expect("valid")],
                        role: format!(
                            "behind NAT; public IP {} on the NAT device",
                            gw.public_address
                        ),
                    });
                    spec.routes.push(RouteSpec {
                        dst: Ipv4Net::default(),
                        via: Some(nat_inside),
                        dev: GATEWAY_WAN_IF.into(),
                    });
                    let nat = nat_box.get_or_insert_with(|| NetnsSpec {
                        name: id.nat_netns(&site.name),
                        role: format!("NAT device of site {}", site.name),
                        forwarding: true,
                        links: vec![LinkSpec {
                            name: GATEWAY_WAN_IF.into(),
                            kind: LinkKind::VethPeer,
                            master: None,
                            addrs: Vec::new(),
                            role: format!("public side ({})", site.public_prefix),
                        }],
                        routes: vec![RouteSpec {
                            dst: Ipv4Net::default(),
                            via: Some(edge),
                            dev: GATEWAY_WAN_IF.into(),
                        }],
                        nft: Some(String::new()),
                    });
                    nat.links[0].addrs.push(
                        Ipv4Net::new(gw.public_address, site.public_prefix.prefix_len())
                            .expect("valid"),
                    );
                    let inside_if = id.ifname('g', &key);
                    nat.links.push(LinkSpec {
                        name: inside_if.clone(),
                        kind: LinkKind::Veth {
                            peer_netns: gw_ns.clone(),
                            peer_name: GATEWAY_WAN_IF.into(),
                        },
                        master: None,
                        addrs: vec![Ipv4Net::new(nat_inside, 24).expect("valid")],
                        role: format!("inside port to gateway {}/{}", site.name, gw.name),
                    });
                    // Inbound IKE and NAT-T go to the gateway; its outbound leaves as its public IP.
                    let rules = nat.nft.get_or_insert_with(String::new);
                    rules.push_str(&format!(
                        "ip daddr {pub_ip} udp dport {{ 500, 4500 }} dnat to {gw_inside}\n@post ip saddr {gw_inside} oifname \"{wan}\" snat to {pub_ip}\n",
                        pub_ip = gw.public_address,
                        wan = GATEWAY_WAN_IF,
                    ));
                } else {
                    spec.links.push(LinkSpec {
                        name: GATEWAY_WAN_IF.into(),
                        kind: LinkKind::VethPeer,
                        master: None,
                        addrs: vec![Ipv4Net::new(
                            gw.public_address,
                            site.public_prefix.prefix_len(),
                        )
                        .expect("valid")],
                        role: format!("public IP {}", gw.public_address),
                    });
                    spec.routes.push(RouteSpec {
                        dst: Ipv4Net::default(),
                        via: Some(edge),
                        dev: GATEWAY_WAN_IF.into(),
                    });
                    internet_ports.push(LinkSpec {
                        name: id.ifname('g', &key),
                        kind: LinkKind::Veth {
                            peer_netns: gw_ns.clone(),
                            peer_name: GATEWAY_WAN_IF.into(),
                        },
                        master: Some(self.internet_bridge(&site.name)),
                        addrs: Vec::new(),
                        role: format!("internet port of gateway {}/{}", site.name, gw.name),
                    });
                }
                gateways.push(spec);
            }
            for (vnet_idx, pairs) in public_nat.iter().enumerate() {
                if pairs.is_empty() {
                    continue;
                }
                let vnet = &site.vnets[vnet_idx];
                let edge = site.internet_address().expect("checked above");
                let router = &mut routers[vnet_idx];
                router.links.push(LinkSpec {
                    name: GATEWAY_WAN_IF.into(),
                    kind: LinkKind::VethPeer,
                    master: None,
                    addrs: pairs
                        .iter()
                        .map(|(p, _)| {
                            Ipv4Net::new(*p, site.public_prefix.prefix_len()).expect("valid")
                        })
                        .collect(),
                    role: format!("public IPs of VNet {}/{}", site.name, vnet.name),
                });
                router.routes.push(RouteSpec {
                    dst: Ipv4Net::default(),
                    via: Some(edge),
                    dev: GATEWAY_WAN_IF.into(),
                });
                let mut pre = String::new();
                let mut post = String::new();
                for (public, private) in pairs {
                    pre.push_str(&format!("ip daddr {public} dnat to {private}\n"));
                    post.push_str(&format!(
                        "@post ip saddr {private} oifname \"{GATEWAY_WAN_IF}\" snat to {public}\n"
                    ));
                }
                router.nft = Some(nat_ruleset(&(pre + &post)));
                internet_ports.push(LinkSpec {
                    name: id.ifname('u', &format!("{}/{}", site.name, vnet.name)),
                    kind: LinkKind::Veth {
                        peer_netns: router.name.clone(),
                        peer_name: GATEWAY_WAN_IF.into(),
                    },
                    master: Some(self.internet_bridge(&site.name)),
                    addrs: Vec::new(),
                    role: format!(
                        "uplink of VNet {}/{} (public IPs of its VMs)",
                        site.name, vnet.name
                    ),
                });
            }
            out.netns.extend(routers);
            out.netns.extend(vms);
            out.netns.extend(gateways);
            if let Some(mut nat) = nat_box {
                internet_ports.push(LinkSpec {
                    name: id.ifname('n', &format!("{}/nat", site.name)),
                    kind: LinkKind::Veth {
                        peer_netns: nat.name.clone(),
                        peer_name: GATEWAY_WAN_IF.into(),
                    },
                    master: Some(self.internet_bridge(&site.name)),
                    addrs: Vec::new(),
                    role: format!("internet port of site {}'s NAT device", site.name),
                });
                nat.nft = nat.nft.map(|r| nat_ruleset(&r));
                out.netns.push(nat);
            }
        }
        internet.links.extend(internet_ports);
        out.netns.insert(0, internet);
        out.validate()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(nat: bool) -> Topology {
        Topology {
            lab_id: LabId::parse("t0001").unwrap(),
            sites: vec![SiteNet {
                name: "azure".into(),
                public_prefix: "203.0.113.0/24".parse().unwrap(),
                vnets: vec![VnetNet {
                    name: "vnet1".into(),
                    subnets: vec![
                        SubnetNet {
                            name: "default".into(),
                            prefix: "10.1.1.0/24".parse().unwrap(),
                        },
                        SubnetNet {
                            name: "GatewaySubnet".into(),
                            prefix: "10.1.255.0/27".parse().unwrap(),
                        },
                    ],
                }],
                vms: vec![VmNet {
                    name: "vm1".into(),
                    nics: vec![NicNet {
                        name: "vm1-nic".into(),
                        vnet: "vnet1".into(),
                        subnet: "default".into(),
                        address: "10.1.1.4".parse().unwrap(),
                        public_address: Some("203.0.113.2".parse().unwrap()),
                    }],
                }],
                nat,
                gateways: vec![GatewayNet {
                    name: "gw".into(),
                    vnet: "vnet1".into(),
                    private_address: "10.1.255.4".parse().unwrap(),
                    public_address: "203.0.113.1".parse().unwrap(),
                    remote_prefixes: vec!["10.2.0.0/16".parse().unwrap()],
                }],
            }],
        }
    }

    #[test]
    fn layout_of_a_site() {
        let d = topo(false).desired_state().unwrap();
        let names: Vec<&str> = d.netns.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names[0], "hn-t0001-internet", "creators first");
        assert!(names.contains(&"hn-t0001-azure-vnet-vnet1"));
        assert!(names.contains(&"hn-t0001-azure-vm1"));
        assert!(names.contains(&"hn-t0001-azure-gw-gw"));
        let router = d.get("hn-t0001-azure-vnet-vnet1").unwrap();
        assert!(router.forwarding);
        let addrs: Vec<String> = router
            .links
            .iter()
            .flat_map(|l| l.addrs.iter().map(|a| a.to_string()))
            .collect();
        assert!(
            addrs.contains(&"10.1.1.1/24".to_string())
                && addrs.contains(&"10.1.255.1/27".to_string())
        );
        assert!(
            addrs.contains(&"203.0.113.2/24".to_string()),
            "VM public IP on the router's wan"
        );
        assert!(router
            .nft
            .as_deref()
            .unwrap()
            .contains("ip daddr 203.0.113.2 dnat to 10.1.1.4"));
        assert!(router
            .routes
            .iter()
            .any(|r| r.dst.to_string() == "10.2.0.0/16"
                && r.via == Some("10.1.255.4".parse().unwrap())));
        let vm = d.get("hn-t0001-azure-vm1").unwrap();
        assert_eq!(vm.routes[0].via, Some("10.1.1.1".parse().unwrap()));
        let internet = d.get("hn-t0001-internet").unwrap();
        assert!(internet.links[0].addrs[0].to_string() == "203.0.113.254/24");
        assert!(d
            .netns
            .iter()
            .all(|n| n.links.iter().all(|l| l.name.len() <= 15)));
    }

    #[test]
    fn behind_nat_the_public_ip_moves_to_the_nat_device() {
        let d = topo(true).desired_state().unwrap();
        let nat = d.get("hn-t0001-azure-nat").unwrap();
        assert!(nat.links[0]
            .addrs
            .iter()
            .any(|a| a.to_string() == "203.0.113.1/24"));
        let rules = nat.nft.as_deref().unwrap();
        assert!(
            rules.contains("dnat to 100.64.0.2") && rules.contains("snat to 203.0.113.1"),
            "{rules}"
        );
        let gw = d.get("hn-t0001-azure-gw-gw").unwrap();
        let wan = gw.links.iter().find(|l| l.name == GATEWAY_WAN_IF).unwrap();
        assert_eq!(wan.addrs[0].to_string(), "100.64.0.2/24");
        // The NAT device comes before the gateway it creates a veth into.
        let pos = |n: &str| d.netns.iter().position(|x| x.name == n).unwrap();
        assert!(pos("hn-t0001-azure-nat") < pos("hn-t0001-azure-gw-gw"));
    }

    #[test]
    fn inconsistent_input_is_named() {
        let mut t = topo(false);
        t.sites[0].vms[0].nics[0].subnet = "nope".into();
        let e = t.desired_state().unwrap_err().to_string();
        assert!(e.contains("vm1-nic") && e.contains("vnet1/nope"), "{e}");
        let mut t = topo(false);
        t.sites[0].vms[0].nics[0].address = "10.1.9.4".parse().unwrap();
        let e = t.desired_state().unwrap_err().to_string();
        assert!(e.contains("outside subnet vnet1/default"), "{e}");
        let mut t = topo(false);
        t.sites[0].gateways[0].public_address = "198.51.100.1".parse().unwrap();
        let e = t.desired_state().unwrap_err().to_string();
        assert!(
            e.contains("gateway gw") && e.contains("outside 203.0.113.0/24"),
            "{e}"
        );
    }
}
