//! A [`Topology`] wired as namespaces, bridges, veths, addresses, routes and NAT rules
//! ([`DesiredState`]).
//!
//! Layout: one router namespace per VNet holds a bridge per subnet (answering `.1`) and
//! forwards between them; each VM is a namespace whose `eth<N>` is a veth into its subnet's
//! bridge, with a default route via `.1`; each gateway is a namespace with `lan` in its
//! GatewaySubnet and `wan` on the internet (or behind its site's NAT device); the internet
//! namespace holds one bridge per site public prefix (answering the prefix's last usable
//! address). A VNet whose VMs have public IPs gets an uplink to the internet, where its router
//! translates them 1:1.

use crate::desired::{DesiredState, LinkKind, LinkSpec, NetnsSpec, RouteSpec};
use crate::names::LabId;
use crate::topology::{first_host, SiteNet, Topology, TopologyError, VmNet, GATEWAY_WAN_IF};
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

mod gateway;
mod nsg;

impl Topology {
    /// Translates the lab into namespaces, links, addresses and routes.
    pub fn desired_state(&self) -> Result<DesiredState, TopologyError> {
        let mut internet = self.internet()?;
        let mut out = DesiredState::default();
        let mut internet_ports = Vec::new();
        for site in &self.sites {
            let mut w = SiteWiring::routers(self, site)?;
            for vm in &site.vms {
                w.vm(vm)?;
            }
            for (index, gw) in site.gateways.iter().enumerate() {
                w.gateway(index, gw)?;
            }
            w.vnet_uplinks();
            w.finish(&mut out, &mut internet_ports);
        }
        internet.links.extend(internet_ports);
        out.netns.insert(0, internet);
        out.validate()?;
        Ok(out)
    }

    /// The internet namespace with one bridge per site's public prefix.
    fn internet(&self) -> Result<NetnsSpec, TopologyError> {
        let mut internet = NetnsSpec {
            name: self.lab_id.internet_netns(),
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
        Ok(internet)
    }
}

/// One site's namespaces while they are being wired, and its ports on the internet.
struct SiteWiring<'a> {
    topo: &'a Topology,
    site: &'a SiteNet,
    /// One per VNet, in the site's order.
    routers: Vec<NetnsSpec>,
    vms: Vec<NetnsSpec>,
    gateways: Vec<NetnsSpec>,
    /// Per VNet: (public IP, private address) of NICs with a public IP.
    public_nat: Vec<Vec<(Ipv4Addr, Ipv4Addr)>>,
    /// The site's NAT device, once a gateway sits behind it.
    nat_device: Option<NetnsSpec>,
    internet_ports: Vec<LinkSpec>,
}

impl<'a> SiteWiring<'a> {
    fn id(&self) -> &'a LabId {
        &self.topo.lab_id
    }

    /// The site's VNet routers, each with a bridge per subnet answering on its first host.
    fn routers(topo: &'a Topology, site: &'a SiteNet) -> Result<SiteWiring<'a>, TopologyError> {
        let mut routers = Vec::new();
        for vnet in &site.vnets {
            let mut router = NetnsSpec {
                name: topo.lab_id.router_netns(&site.name, &vnet.name),
                role: format!("router of VNet {}/{}", site.name, vnet.name),
                forwarding: true,
                links: Vec::new(),
                routes: Vec::new(),
                nft: None,
            };
            for subnet in &vnet.subnets {
                let gw =
                    first_host(&subnet.prefix).ok_or_else(|| TopologyError::PrefixTooSmall {
                        site: site.name.clone(),
                        prefix: subnet.prefix,
                    })?;
                router.links.push(LinkSpec {
                    name: topo.subnet_bridge(&site.name, &vnet.name, &subnet.name),
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
        Ok(SiteWiring {
            topo,
            site,
            routers,
            vms: Vec::new(),
            gateways: Vec::new(),
            public_nat: vec![Vec::new(); site.vnets.len()],
            nat_device: None,
            internet_ports: Vec::new(),
        })
    }

    /// A VM's namespace: `eth<N>` per NIC, a veth into its subnet's bridge, the default route
    /// via the primary NIC's router; its public IPs are noted for the VNet's uplink.
    fn vm(&mut self, vm: &VmNet) -> Result<(), TopologyError> {
        let (topo, site) = (self.topo, self.site);
        let vm_ns = self.id().vm_netns(&site.name, &vm.name);
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
                self.public_nat[vnet_idx].push((public, nic.address));
            }
            spec.links.push(LinkSpec {
                name: ifname.clone(),
                kind: LinkKind::VethPeer,
                master: None,
                addrs: vec![
                    Ipv4Net::new(nic.address, subnet.prefix.prefix_len()).expect("valid length")
                ],
                role: format!("NIC {} ({}/{})", nic.name, nic.vnet, nic.subnet),
            });
            if i == 0 {
                spec.routes.push(RouteSpec {
                    dst: Ipv4Net::default(),
                    via: first_host(&subnet.prefix),
                    dev: ifname.clone(),
                });
            }
            let port = topo.lab_id.ifname(
                'v',
                &format!("{}/{}/{}/{ifname}", site.name, vm.name, nic.name),
            );
            self.routers[vnet_idx].links.push(LinkSpec {
                name: port,
                kind: LinkKind::Veth {
                    peer_netns: vm_ns.clone(),
                    peer_name: ifname,
                },
                master: Some(topo.subnet_bridge(&site.name, &nic.vnet, &nic.subnet)),
                addrs: Vec::new(),
                role: format!("port of VM {}/{} NIC {}", site.name, vm.name, nic.name),
            });
        }
        let security: Vec<(String, &[site::nsg::EffectiveNsg])> = vm
            .nics
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("eth{i}"), n.security.as_slice()))
            .collect();
        spec.nft = nsg::vm_ruleset(&security);
        self.vms.push(spec);
        Ok(())
    }

    /// Per VNet whose VMs have public IPs: a `wan` on the router holding them, translated 1:1
    /// to the VMs' private addresses, and its port on the site's internet bridge.
    fn vnet_uplinks(&mut self) {
        let site = self.site;
        for (vnet_idx, pairs) in self.public_nat.iter().enumerate() {
            if pairs.is_empty() {
                continue;
            }
            let vnet = &site.vnets[vnet_idx];
            let edge = site.internet_address().expect("checked by the internet");
            let router = &mut self.routers[vnet_idx];
            router.links.push(LinkSpec {
                name: GATEWAY_WAN_IF.into(),
                kind: LinkKind::VethPeer,
                master: None,
                addrs: pairs
                    .iter()
                    .map(|(p, _)| Ipv4Net::new(*p, site.public_prefix.prefix_len()).expect("valid"))
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
            self.internet_ports.push(LinkSpec {
                name: self
                    .topo
                    .lab_id
                    .ifname('u', &format!("{}/{}", site.name, vnet.name)),
                kind: LinkKind::Veth {
                    peer_netns: router.name.clone(),
                    peer_name: GATEWAY_WAN_IF.into(),
                },
                master: Some(self.topo.internet_bridge(&site.name)),
                addrs: Vec::new(),
                role: format!(
                    "uplink of VNet {}/{} (public IPs of its VMs)",
                    site.name, vnet.name
                ),
            });
        }
    }

    /// Adds the site's namespaces to `out` (routers, VMs, gateways, then the NAT device, so
    /// that each comes after the namespaces its veths start in) and its internet ports.
    fn finish(self, out: &mut DesiredState, internet_ports: &mut Vec<LinkSpec>) {
        out.netns.extend(self.routers);
        out.netns.extend(self.vms);
        out.netns.extend(self.gateways);
        internet_ports.extend(self.internet_ports);
        if let Some(mut nat) = self.nat_device {
            let site = self.site;
            internet_ports.push(LinkSpec {
                name: self.topo.lab_id.ifname('n', &format!("{}/nat", site.name)),
                kind: LinkKind::Veth {
                    peer_netns: nat.name.clone(),
                    peer_name: GATEWAY_WAN_IF.into(),
                },
                master: Some(self.topo.internet_bridge(&site.name)),
                addrs: Vec::new(),
                role: format!("internet port of site {}'s NAT device", site.name),
            });
            nat.nft = nat.nft.map(|r| nat_ruleset(&r));
            out.netns.push(nat);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{GatewayNet, NicNet, SubnetNet, VnetNet, GATEWAY_WAN_IF};

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
                        security: Vec::new(),
                    }],
                }],
                nat,
                gateways: vec![GatewayNet {
                    name: "gw".into(),
                    vnet: "vnet1".into(),
                    private_address: "10.1.255.4".parse().unwrap(),
                    public_address: "203.0.113.1".parse().unwrap(),
                    instance: 0,
                    instances: 1,
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
