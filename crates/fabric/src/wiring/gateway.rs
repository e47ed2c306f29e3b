//! A gateway's namespace in the wiring: `lan` in its VNet's GatewaySubnet, `wan` on the
//! internet, or behind its site's NAT device, which holds the public IP and forwards IKE and
//! NAT-T to it.

use super::SiteWiring;
use crate::desired::{LinkKind, LinkSpec, NetnsSpec, RouteSpec};
use crate::topology::{
    behind_nat_addresses, first_host, GatewayNet, TopologyError, GATEWAY_LAN_IF, GATEWAY_WAN_IF,
};
use ipnet::Ipv4Net;

impl SiteWiring<'_> {
    /// Gateway number `index` of the site: `lan` in its GatewaySubnet (with routes to the
    /// VNet's other subnets, and the VNet router sending the remote prefixes to it), `wan` on
    /// the internet or behind the site's NAT device.
    pub(super) fn gateway(&mut self, index: usize, gw: &GatewayNet) -> Result<(), TopologyError> {
        let (topo, site) = (self.topo, self.site);
        let vnet_idx = site
            .vnets
            .iter()
            .position(|v| v.name == gw.vnet)
            .ok_or_else(|| TopologyError::GatewayVnet {
                site: site.name.clone(),
                gateway: gw.name.clone(),
                vnet: gw.vnet.clone(),
            })?;
        let vnet = &site.vnets[vnet_idx];
        let subnet = vnet
            .subnets
            .iter()
            .find(|s| s.prefix.contains(&gw.private_address))
            .ok_or_else(|| TopologyError::GatewayOutsideVnet {
                site: site.name.clone(),
                gateway: gw.name.clone(),
                address: gw.private_address,
                vnet: vnet.name.clone(),
            })?;
        if !site.public_prefix.contains(&gw.public_address) {
            return Err(TopologyError::GatewayPublicIpOutside {
                site: site.name.clone(),
                gateway: gw.name.clone(),
                address: gw.public_address,
                prefix: site.public_prefix,
            });
        }
        let gw_ns = gw.netns(self.id(), &site.name);
        let key = format!("{}/gateway/{}", site.name, gw.instance_name());
        let subnet_router = first_host(&subnet.prefix).expect("checked by the router");
        let mut spec = NetnsSpec {
            name: gw_ns.clone(),
            role: format!("gateway {}/{}", site.name, gw.name),
            forwarding: true,
            links: vec![LinkSpec {
                name: GATEWAY_LAN_IF.into(),
                kind: LinkKind::VethPeer,
                master: None,
                addrs: vec![
                    Ipv4Net::new(gw.private_address, subnet.prefix.prefix_len()).expect("valid")
                ],
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
        let bridge = topo.subnet_bridge(&site.name, &vnet.name, &subnet.name);
        let router = &mut self.routers[vnet_idx];
        router.links.push(LinkSpec {
            name: topo.lab_id.ifname('g', &key),
            kind: LinkKind::Veth {
                peer_netns: gw_ns.clone(),
                peer_name: GATEWAY_LAN_IF.into(),
            },
            master: Some(bridge.clone()),
            addrs: Vec::new(),
            role: format!("port of gateway {}/{}", site.name, gw.instance_name()),
        });
        // an active-active gateway's instances tell the router themselves, so that it follows
        // the instance whose tunnels are up
        if gw.instances <= 1 {
            for p in &gw.remote_prefixes {
                router.routes.push(RouteSpec {
                    dst: p.trunc(),
                    via: Some(gw.private_address),
                    dev: bridge.clone(),
                });
            }
        }
        if site.nat {
            self.wan_behind_nat(index, gw, &mut spec);
        } else {
            self.wan_on_internet(gw, &mut spec);
        }
        self.gateways.push(spec);
        Ok(())
    }

    /// A gateway's `wan` holding its public IP, a port on the site's internet bridge.
    fn wan_on_internet(&mut self, gw: &GatewayNet, spec: &mut NetnsSpec) {
        let site = self.site;
        let edge = site.internet_address().expect("checked by the internet");
        spec.links.push(LinkSpec {
            name: GATEWAY_WAN_IF.into(),
            kind: LinkKind::VethPeer,
            master: None,
            addrs: vec![
                Ipv4Net::new(gw.public_address, site.public_prefix.prefix_len()).expect("valid"),
            ],
            role: format!("public IP {}", gw.public_address),
        });
        spec.routes.push(RouteSpec {
            dst: Ipv4Net::default(),
            via: Some(edge),
            dev: GATEWAY_WAN_IF.into(),
        });
        self.internet_ports.push(LinkSpec {
            name: self.id().ifname(
                'g',
                &format!("{}/gateway/{}", site.name, gw.instance_name()),
            ),
            kind: LinkKind::Veth {
                peer_netns: spec.name.clone(),
                peer_name: GATEWAY_WAN_IF.into(),
            },
            master: Some(self.topo.internet_bridge(&site.name)),
            addrs: Vec::new(),
            role: format!("internet port of gateway {}/{}", site.name, gw.name),
        });
    }

    /// Gateway number `index` behind the site's NAT device: `wan` on a private /24 to the NAT
    /// device, which holds the public IP and forwards IKE and NAT-T to the gateway.
    fn wan_behind_nat(&mut self, index: usize, gw: &GatewayNet, spec: &mut NetnsSpec) {
        let site = self.site;
        let edge = site.internet_address().expect("checked by the internet");
        let (nat_inside, gw_inside) = behind_nat_addresses(index);
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
        let inside_if = self.id().ifname(
            'g',
            &format!("{}/gateway/{}", site.name, gw.instance_name()),
        );
        let nat = self.nat_device.get_or_insert_with(|| NetnsSpec {
            name: self.topo.lab_id.nat_netns(&site.name),
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
        nat.links[0]
            .addrs
            .push(Ipv4Net::new(gw.public_address, site.public_prefix.prefix_len()).expect("valid"));
        nat.links.push(LinkSpec {
            name: inside_if,
            kind: LinkKind::Veth {
                peer_netns: spec.name.clone(),
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
    }
}
