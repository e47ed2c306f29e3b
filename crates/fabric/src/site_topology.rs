//! The sites' resources as a [`Topology`]: which VNets, VMs and gateways the lab lays out as
//! namespaces, which resource owns each namespace (so a failed namespace fails its owners),
//! and which resources cannot be laid out, with why.

use crate::names::LabId;
use crate::spec::SiteSpec;
use crate::strongswan_site::{self, DevicePlacementError};
use crate::topology::{GatewayNet, NicNet, SiteNet, SubnetNet, Topology, VmNet, VnetNet};
use ipnet::Ipv4Net;
use site::{Resource, Site, VirtualMachine, VirtualNetworkGateway};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Why a resource cannot be laid out; its provisioning state becomes Failed with this text.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// A public IP took the address the internet router answers on.
    #[error("{address} is the internet router's address on {prefix}; choose another address")]
    InternetRouterAddress { address: Ipv4Addr, prefix: Ipv4Net },
    /// A VM names a network interface the site does not have.
    #[error("network interface {0} does not exist")]
    NoSuchNic(String),
    /// A network interface has no IP configuration to take an address from.
    #[error("network interface {0} has no IP configuration")]
    NicWithoutIpConfiguration(String),
    /// A network interface names a subnet the site does not have.
    #[error("subnet {subnet} of NIC {nic} does not exist")]
    NoSuchNicSubnet { subnet: String, nic: String },
    /// A gateway has no IP configuration to place it with.
    #[error("it has no ipConfigurations")]
    GatewayWithoutIpConfiguration,
    /// A gateway names a subnet the site does not have.
    #[error("subnet {0} does not exist")]
    NoSuchGatewaySubnet(String),
    /// A gateway names a public IP the site does not have.
    #[error("public IP {0} does not exist")]
    NoSuchPublicIp(String),
    /// Another resource already owns the namespace name this one maps to.
    #[error("its namespace name {netns} is already used by {owner}; choose another name")]
    NameTaken { netns: String, owner: String },
    /// The resource maps to the name of its site's NAT device namespace.
    #[error("its namespace name {0} is the NAT device's; choose another name")]
    NameOfNatDevice(String),
    /// A strongSwan site's device cannot be placed.
    #[error(transparent)]
    Device(#[from] DevicePlacementError),
}

/// The topology of a lab's sites, plus which resources own which namespace and which
/// resources could not be mapped (with why).
pub(crate) struct SiteTopology {
    /// What can be laid out.
    pub topology: Topology,
    /// Namespace → ids of the resources it stands for.
    pub owners: BTreeMap<String, Vec<String>>,
    /// Resource id (lowercase) → why it cannot be laid out.
    pub failures: Vec<(String, PlacementError)>,
}

/// Subnet id (lowercase) → (VNet name, subnet name), for resolving NIC and gateway subnets.
type SubnetIndex = Vec<(String, String, String)>;

/// One site being laid out: the resources its VMs and gateways are resolved against.
struct SiteScope<'a> {
    id: &'a LabId,
    spec: &'a SiteSpec,
    resources: &'a [Resource],
    sites: &'a [(Site, Vec<Resource>)],
    subnets: SubnetIndex,
}

/// Lays out every site's VNets, VMs and gateways (and a strongSwan site's device).
pub(crate) fn build(
    id: &LabId,
    specs: &[SiteSpec],
    sites: &[(Site, Vec<Resource>)],
) -> SiteTopology {
    let mut out = SiteTopology {
        topology: Topology {
            lab_id: id.clone(),
            sites: Vec::new(),
        },
        owners: BTreeMap::new(),
        failures: Vec::new(),
    };
    // VNet routers first, in every site, so that a VM or gateway whose namespace name would
    // collide with a router's is the one refused.
    let nets: Vec<(SiteNet, SiteScope)> = specs
        .iter()
        .zip(sites)
        .map(|(spec, (_, resources))| out.place_vnets(id, spec, resources, sites))
        .collect();
    for (mut net, scope) in nets {
        out.place_machines(&scope, &mut net);
        if strongswan_site::is_strongswan(scope.spec) {
            out.place_device(&scope, &mut net);
        }
        out.topology.sites.push(net);
    }
    out
}

impl SiteTopology {
    /// A site with its VNets (each a router namespace), and the scope its other resources are
    /// placed in.
    fn place_vnets<'a>(
        &mut self,
        id: &'a LabId,
        spec: &'a SiteSpec,
        resources: &'a [Resource],
        sites: &'a [(Site, Vec<Resource>)],
    ) -> (SiteNet, SiteScope<'a>) {
        let mut net = SiteNet {
            name: spec.name.clone(),
            public_prefix: spec.public_prefix,
            vnets: Vec::new(),
            vms: Vec::new(),
            nat: spec.nat,
            gateways: Vec::new(),
        };
        let mut subnets: SubnetIndex = Vec::new();
        for r in resources {
            let Resource::VirtualNetwork(v) = r else {
                continue;
            };
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
                subnets.push((s.id.to_lowercase(), v.meta.name.clone(), s.name.clone()));
            }
            self.owners
                .entry(id.router_netns(&spec.name, &v.meta.name))
                .or_default()
                .push(v.meta.id.clone());
        }
        let scope = SiteScope {
            id,
            spec,
            resources,
            sites,
            subnets,
        };
        (net, scope)
    }

    /// The site's VMs and VNet gateways, each in a namespace of its own; a public IP on the
    /// internet router's address is refused.
    fn place_machines(&mut self, scope: &SiteScope, net: &mut SiteNet) {
        let (id, spec) = (scope.id, scope.spec);
        let edge = net.internet_address();
        for r in scope.resources {
            match r {
                Resource::PublicIpAddress(p) if Some(p.ip_address) == edge => self.fail(
                    &p.meta.id,
                    PlacementError::InternetRouterAddress {
                        address: p.ip_address,
                        prefix: spec.public_prefix,
                    },
                ),
                Resource::VirtualMachine(vm) => {
                    let ns = id.vm_netns(&spec.name, &vm.meta.name);
                    let placed = vm_net(scope, vm)
                        .and_then(|placed| self.name_free(&ns, scope).map(|()| placed));
                    match placed {
                        Ok((v, owned)) => {
                            self.owners.insert(ns, owned);
                            net.vms.push(v);
                        }
                        Err(e) => self.fail(&vm.meta.id, e),
                    }
                }
                Resource::VirtualNetworkGateway(gw) => {
                    let placed = gateway_nets(scope, gw).and_then(|gs| {
                        for g in &gs {
                            self.name_free(&g.netns(id, &spec.name), scope)?;
                        }
                        Ok(gs)
                    });
                    match placed {
                        Ok(gs) => {
                            for g in gs {
                                self.owners
                                    .insert(g.netns(id, &spec.name), vec![gw.meta.id.clone()]);
                                net.gateways.push(g);
                            }
                        }
                        Err(e) => self.fail(&gw.meta.id, e),
                    }
                }
                _ => {}
            }
        }
    }

    /// A strongSwan site's device, as a gateway-like namespace owned by the device's public
    /// IP (a site that deploys only its LAN has none yet).
    fn place_device(&mut self, scope: &SiteScope, net: &mut SiteNet) {
        let Some(pip) = strongswan_site::device_public_ip(scope.resources) else {
            return;
        };
        let ns = scope
            .id
            .gateway_netns(&scope.spec.name, strongswan_site::DEVICE);
        let placed = strongswan_site::device_net(&scope.spec.name, scope.resources, scope.sites)
            .and_then(|d| match self.owners.get(&ns) {
                Some(_) => Err(DevicePlacementError::NameTaken(ns.clone())),
                None => Ok(d),
            });
        match placed {
            Ok(Some(dev)) => {
                self.owners.insert(ns, vec![pip.meta.id.clone()]);
                net.gateways.push(dev);
            }
            Ok(None) => {}
            Err(e) => self.fail(&pip.meta.id, e.into()),
        }
    }

    fn fail(&mut self, resource_id: &str, e: PlacementError) {
        self.failures.push((resource_id.to_lowercase(), e));
    }

    /// Namespace names are `hn-<id>-<site>-<name>`, so two objects can map to one name (a VM
    /// called `vnet-x` and VNet `x`): the later one is refused with a plain reason instead of
    /// being merged into the other's namespace.
    fn name_free(&self, ns: &str, scope: &SiteScope) -> Result<(), PlacementError> {
        if let Some(owner) = self.owners.get(ns) {
            let owner = owner
                .first()
                .map(|o| {
                    let mut parts: Vec<&str> = o.rsplit('/').take(2).collect();
                    parts.reverse();
                    parts.join("/")
                })
                .unwrap_or_default();
            return Err(PlacementError::NameTaken {
                netns: ns.to_string(),
                owner,
            });
        }
        if scope.spec.nat && ns == scope.id.nat_netns(&scope.spec.name) {
            return Err(PlacementError::NameOfNatDevice(ns.to_string()));
        }
        Ok(())
    }
}

/// A VM's NICs (primary first) with their subnets and public IPs, and the ids of the
/// resources its namespace stands for (the VM and its NICs).
fn vm_net(scope: &SiteScope, vm: &VirtualMachine) -> Result<(VmNet, Vec<String>), PlacementError> {
    let resources = scope.resources;
    let mut sorted = vm.network_interfaces.clone();
    sorted.sort_by_key(|n| !n.primary);
    let mut nics = Vec::new();
    let mut owned = vec![vm.meta.id.clone()];
    for vn in &sorted {
        let nic = resources
            .iter()
            .find_map(|r| match r {
                Resource::NetworkInterface(n) if site::same_id(&n.meta.id, &vn.id) => Some(n),
                _ => None,
            })
            .ok_or_else(|| PlacementError::NoSuchNic(vn.id.clone()))?;
        owned.push(nic.meta.id.clone());
        let ipc = nic
            .primary()
            .or(nic.ip_configurations.first())
            .ok_or_else(|| PlacementError::NicWithoutIpConfiguration(nic.meta.name.clone()))?;
        let (_, vnet, subnet) = scope
            .subnets
            .iter()
            .find(|(sid, _, _)| site::same_id(sid, &ipc.subnet))
            .ok_or_else(|| PlacementError::NoSuchNicSubnet {
                subnet: ipc.subnet.clone(),
                nic: nic.meta.name.clone(),
            })?;
        let public_address = ipc
            .public_ip_address
            .as_ref()
            .and_then(|pid| public_ip(resources, pid));
        nics.push(NicNet {
            name: nic.meta.name.clone(),
            vnet: vnet.clone(),
            subnet: subnet.clone(),
            address: ipc.private_ip_address,
            public_address,
            security: site::nsg::effective_nsgs(resources, nic),
        });
    }
    let v = VmNet {
        name: vm.meta.name.clone(),
        nics,
    };
    Ok((v, owned))
}

/// The address of public IP `id` among `resources`.
fn public_ip(resources: &[Resource], id: &str) -> Option<Ipv4Addr> {
    resources.iter().find_map(|r| match r {
        Resource::PublicIpAddress(p) if site::same_id(&p.meta.id, id) => Some(p.ip_address),
        _ => None,
    })
}

/// Where a virtual network gateway's instances sit (two for an active-active gateway): each
/// its GatewaySubnet address and public IP, with the remote prefixes its connections reach
/// (local network gateways' prefixes, or the peer VNet's address space for Vnet2Vnet, looked
/// up in every site).
fn gateway_nets(
    scope: &SiteScope,
    gw: &VirtualNetworkGateway,
) -> Result<Vec<GatewayNet>, PlacementError> {
    if gw.ip_configurations.is_empty() {
        return Err(PlacementError::GatewayWithoutIpConfiguration);
    }
    let instances = if gw.active_active {
        gw.ip_configurations.len()
    } else {
        1
    };
    let remote = remote_prefixes(scope, gw);
    gw.ip_configurations
        .iter()
        .take(instances)
        .enumerate()
        .map(|(i, ipc)| {
            let (_, vnet, _) = scope
                .subnets
                .iter()
                .find(|(sid, _, _)| site::same_id(sid, &ipc.subnet))
                .ok_or_else(|| PlacementError::NoSuchGatewaySubnet(ipc.subnet.clone()))?;
            let public_address = public_ip(scope.resources, &ipc.public_ip_address)
                .ok_or_else(|| PlacementError::NoSuchPublicIp(ipc.public_ip_address.clone()))?;
            Ok(GatewayNet {
                name: gw.meta.name.clone(),
                vnet: vnet.clone(),
                private_address: ipc.private_ip_address,
                public_address,
                remote_prefixes: remote.clone(),
                instance: i as u8,
                instances: instances as u8,
            })
        })
        .collect()
}

/// The prefixes a gateway's connections reach: each local network gateway's, and for a
/// Vnet2Vnet connection the address space of the VNet holding the peer gateway.
fn remote_prefixes(scope: &SiteScope, gw: &VirtualNetworkGateway) -> Vec<Ipv4Net> {
    let resources = scope.resources;
    let mut out = Vec::new();
    for r in resources {
        let Resource::Connection(c) = r else { continue };
        if !site::same_id(&c.virtual_network_gateway1, &gw.meta.id) {
            continue;
        }
        if let Some(lng_id) = &c.local_network_gateway2 {
            for r2 in resources {
                if let Resource::LocalNetworkGateway(l) = r2 {
                    if site::same_id(&l.meta.id, lng_id) {
                        out.extend(l.address_prefixes.iter().copied());
                    }
                }
            }
        }
        if let Some(peer_id) = &c.virtual_network_gateway2 {
            for (_, other) in scope.sites {
                out.extend(peer_vnet_space(other, peer_id));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The address space of the VNet (among `resources`) whose subnet holds gateway `peer_id`.
fn peer_vnet_space(resources: &[Resource], peer_id: &str) -> Vec<Ipv4Net> {
    let Some(peer) = resources.iter().find_map(|r| match r {
        Resource::VirtualNetworkGateway(p) if site::same_id(&p.meta.id, peer_id) => Some(p),
        _ => None,
    }) else {
        return Vec::new();
    };
    let Some(peer_subnet) = peer
        .ip_configurations
        .first()
        .map(|c| c.subnet.to_lowercase())
    else {
        return Vec::new();
    };
    resources
        .iter()
        .filter_map(|r| match r {
            Resource::VirtualNetwork(v)
                if v.subnets.iter().any(|s| s.id.to_lowercase() == peer_subnet) =>
            {
                Some(v.address_space.iter().copied())
            }
            _ => None,
        })
        .flatten()
        .collect()
}
