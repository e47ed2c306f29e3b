//! The sites' resources as a [`Topology`]: which VNets, VMs and gateways the lab lays out as
//! namespaces, which resource owns each namespace (so a failed namespace fails its owners),
//! and which resources cannot be laid out, with why.

use crate::names::LabId;
use crate::spec::SiteSpec;
use crate::topology::{GatewayNet, NicNet, SiteNet, SubnetNet, Topology, VmNet, VnetNet};
use site::{Resource, Site};
use std::collections::BTreeMap;

/// The topology of a lab's sites, plus which resources own which namespace and which
/// resources could not be mapped (with why).
pub(crate) struct SiteTopology {
    /// What can be laid out.
    pub topology: Topology,
    /// Namespace → ids of the resources it stands for.
    pub owners: BTreeMap<String, Vec<String>>,
    /// Resource id (lowercase) → why it cannot be laid out.
    pub failures: Vec<(String, String)>,
}

/// Subnet id (lowercase) → (VNet name, subnet name), for resolving NIC and gateway subnets.
type SubnetIndex = Vec<(String, String, String)>;

/// Lays out every site's VNets, VMs and gateways (and a strongSwan site's device).
pub(crate) fn build(
    id: &LabId,
    specs: &[SiteSpec],
    sites: &[(Site, Vec<Resource>)],
) -> SiteTopology {
    let mut topology = Topology {
        lab_id: id.clone(),
        sites: Vec::new(),
    };
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut failures = Vec::new();
    // VNet routers first, in every site, so that a VM or gateway whose namespace name would
    // collide with a router's is the one refused.
    let mut nets: Vec<(SiteNet, SubnetIndex)> = Vec::new();
    for (spec, (_, resources)) in specs.iter().zip(sites) {
        let mut net = SiteNet {
            name: spec.name.clone(),
            public_prefix: spec.public_prefix,
            vnets: Vec::new(),
            vms: Vec::new(),
            nat: spec.nat,
            gateways: Vec::new(),
        };
        // (subnet id, vnet, subnet)
        let mut subnet_index: SubnetIndex = Vec::new();
        for r in resources {
            if let Resource::VirtualNetwork(v) = r {
                net.vnets.push(VnetNet {
                    name: v.meta.name.clone(),
                    subnets: v
                        .subnets
                        .iter()
                        .map(|s| SubnetNet {
                            name: s.name.clone(),
                            prefix: s.address_prefix,
                        })
                        .collect(),
                });
                for s in &v.subnets {
                    subnet_index.push((s.id.to_lowercase(), v.meta.name.clone(), s.name.clone()));
                }
                owners
                    .entry(id.router_netns(&spec.name, &v.meta.name))
                    .or_default()
                    .push(v.meta.id.clone());
            }
        }
        nets.push((net, subnet_index));
    }
    for ((spec, (_, resources)), (mut net, subnet_index)) in specs.iter().zip(sites).zip(nets) {
        let edge = net.internet_address();
        for r in resources {
            match r {
                Resource::PublicIpAddress(p) if Some(p.ip_address) == edge => failures.push((
                    p.meta.id.to_lowercase(),
                    format!(
                        "{} is the internet router's address on {}; choose another address",
                        p.ip_address, spec.public_prefix
                    ),
                )),
                Resource::VirtualMachine(vm) => {
                    let mut nics_sorted = vm.network_interfaces.clone();
                    nics_sorted.sort_by_key(|n| !n.primary);
                    let mut nics = Vec::new();
                    let mut owned = vec![vm.meta.id.clone()];
                    let mut problem = None;
                    for vn in &nics_sorted {
                        let nic = resources.iter().find_map(|r| match r {
                            Resource::NetworkInterface(n) if site::same_id(&n.meta.id, &vn.id) => {
                                Some(n)
                            }
                            _ => None,
                        });
                        let Some(nic) = nic else {
                            problem = Some(format!("network interface {} does not exist", vn.id));
                            break;
                        };
                        owned.push(nic.meta.id.clone());
                        let Some(ipc) = nic.primary().or(nic.ip_configurations.first()) else {
                            problem = Some(format!(
                                "network interface {} has no IP configuration",
                                nic.meta.name
                            ));
                            break;
                        };
                        let Some((_, vnet, subnet)) = subnet_index
                            .iter()
                            .find(|(sid, _, _)| site::same_id(sid, &ipc.subnet))
                        else {
                            problem = Some(format!(
                                "subnet {} of NIC {} does not exist",
                                ipc.subnet, nic.meta.name
                            ));
                            break;
                        };
                        let public_address = ipc.public_ip_address.as_ref().and_then(|pid| {
                            resources.iter().find_map(|r| match r {
                                Resource::PublicIpAddress(p) if site::same_id(&p.meta.id, pid) => {
                                    Some(p.ip_address)
                                }
                                _ => None,
                            })
                        });
                        nics.push(NicNet {
                            name: nic.meta.name.clone(),
                            vnet: vnet.clone(),
                            subnet: subnet.clone(),
                            address: ipc.private_ip_address,
                            public_address,
                        });
                    }
                    let ns = id.vm_netns(&spec.name, &vm.meta.name);
                    if problem.is_none() {
                        problem = name_taken(&ns, &owners, spec, id);
                    }
                    match problem {
                        Some(p) => failures.push((vm.meta.id.to_lowercase(), p)),
                        None => {
                            owners.insert(ns, owned);
                            net.vms.push(VmNet {
                                name: vm.meta.name.clone(),
                                nics,
                            });
                        }
                    }
                }
                Resource::VirtualNetworkGateway(gw) => {
                    match gateway_net(gw, resources, &subnet_index, sites).and_then(|g| {
                        match name_taken(
                            &id.gateway_netns(&spec.name, &gw.meta.name),
                            &owners,
                            spec,
                            id,
                        ) {
                            Some(p) => Err(p),
                            None => Ok(g),
                        }
                    }) {
                        Ok(g) => {
                            owners.insert(
                                id.gateway_netns(&spec.name, &gw.meta.name),
                                vec![gw.meta.id.clone()],
                            );
                            net.gateways.push(g);
                        }
                        Err(problem) => failures.push((gw.meta.id.to_lowercase(), problem)),
                    }
                }
                _ => {}
            }
        }
        if crate::strongswan_site::is_strongswan(spec) {
            crate::strongswan_site::place_device(
                id,
                spec,
                resources,
                sites,
                &mut net,
                &mut owners,
                &mut failures,
            );
        }
        topology.sites.push(net);
    }
    SiteTopology {
        topology,
        owners,
        failures,
    }
}

/// Namespace names are `hn-<id>-<site>-<name>`, so two objects can map to one name (a VM
/// called `vnet-x` and VNet `x`): the later one is refused with a plain reason instead of
/// being merged into the other's namespace.
fn name_taken(
    ns: &str,
    owners: &BTreeMap<String, Vec<String>>,
    spec: &SiteSpec,
    id: &LabId,
) -> Option<String> {
    if let Some(owner) = owners.get(ns) {
        let what = owner
            .first()
            .map(|o| {
                let mut parts: Vec<&str> = o.rsplit('/').take(2).collect();
                parts.reverse();
                parts.join("/")
            })
            .unwrap_or_default();
        return Some(format!(
            "its namespace name {ns} is already used by {what}; choose another name"
        ));
    }
    if spec.nat && ns == id.nat_netns(&spec.name) {
        return Some(format!(
            "its namespace name {ns} is the NAT device's; choose another name"
        ));
    }
    None
}

/// Where a virtual network gateway sits: its GatewaySubnet address, public IP, and the remote
/// prefixes its connections reach (local network gateways' prefixes, or the peer VNet's
/// address space for Vnet2Vnet, looked up in every site).
fn gateway_net(
    gw: &site::VirtualNetworkGateway,
    resources: &[Resource],
    subnet_index: &[(String, String, String)],
    sites: &[(Site, Vec<Resource>)],
) -> Result<GatewayNet, String> {
    let ipc = gw
        .ip_configurations
        .first()
        .ok_or("it has no ipConfigurations")?;
    let (_, vnet, _) = subnet_index
        .iter()
        .find(|(sid, _, _)| site::same_id(sid, &ipc.subnet))
        .ok_or_else(|| format!("subnet {} does not exist", ipc.subnet))?;
    let public_address = resources
        .iter()
        .find_map(|r| match r {
            Resource::PublicIpAddress(p) if site::same_id(&p.meta.id, &ipc.public_ip_address) => {
                Some(p.ip_address)
            }
            _ => None,
        })
        .ok_or_else(|| format!("public IP {} does not exist", ipc.public_ip_address))?;
    let mut remote_prefixes = Vec::new();
    for r in resources {
        let Resource::Connection(c) = r else { continue };
        if !site::same_id(&c.virtual_network_gateway1, &gw.meta.id) {
            continue;
        }
        if let Some(lng_id) = &c.local_network_gateway2 {
            for r2 in resources {
                if let Resource::LocalNetworkGateway(l) = r2 {
                    if site::same_id(&l.meta.id, lng_id) {
                        remote_prefixes.extend(l.address_prefixes.iter().copied());
                    }
                }
            }
        }
        if let Some(peer_id) = &c.virtual_network_gateway2 {
            for (_, other) in sites {
                let Some(peer) = other.iter().find_map(|r| match r {
                    Resource::VirtualNetworkGateway(p) if site::same_id(&p.meta.id, peer_id) => {
                        Some(p)
                    }
                    _ => None,
                }) else {
                    continue;
                };
                let Some(peer_subnet) = peer
                    .ip_configurations
                    .first()
                    .map(|c| c.subnet.to_lowercase())
                else {
                    continue;
                };
                for r in other {
                    if let Resource::VirtualNetwork(v) = r {
                        if v.subnets.iter().any(|s| s.id.to_lowercase() == peer_subnet) {
                            remote_prefixes.extend(v.address_space.iter().copied());
                        }
                    }
                }
            }
        }
    }
    remote_prefixes.sort();
    remote_prefixes.dedup();
    Ok(GatewayNet {
        name: gw.meta.name.clone(),
        vnet: vnet.clone(),
        private_address: ipc.private_ip_address,
        public_address,
        remote_prefixes,
    })
}
