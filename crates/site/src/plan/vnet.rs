//! Virtual networks and subnets (inline and child resources): the address space, each subnet
//! against it and the others, GatewaySubnet rules, and subnets in use.

use std::collections::BTreeSet;

use ipnet::Ipv4Net;
use serde_json::Value;

use super::{invalid, ipv4, unsupported, Planner};
use crate::error::{Location, SiteError};
use crate::ipam;
use crate::model::{same_id, Resource, ResourceMeta, Subnet, VirtualNetwork};
use crate::props::vnet::{SubnetProperties, SubnetResource, VirtualNetworkResource};
use crate::props::{self, IdRef};

/// Smallest subnet Azure accepts anywhere.
const MIN_SUBNET_PREFIX_LEN: u8 = 29;

/// `[a, b]`, as address spaces are shown in messages.
pub(super) fn show_prefixes(p: &[Ipv4Net]) -> String {
    format!(
        "[{}]",
        p.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Whether two prefixes share an address.
pub(super) fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Where a subnet of the planned VNet was declared: an entry of the VNet's `subnets`, or a child
/// subnet resource. Subnets kept from the store unchanged have none.
struct SubnetOrigin {
    loc: Location,
    /// Path of the subnet object inside the resource (`properties.subnets[1].`, or empty).
    prefix: String,
}

impl SubnetOrigin {
    fn inline(loc: &Location, index: usize) -> SubnetOrigin {
        SubnetOrigin {
            loc: loc.clone(),
            prefix: format!("properties.subnets[{index}]."),
        }
    }

    fn child(loc: &Location) -> SubnetOrigin {
        SubnetOrigin {
            loc: loc.clone(),
            prefix: String::new(),
        }
    }

    /// The location of one of the subnet's properties (`name`, `properties.addressPrefix`, …).
    fn at(&self, property: &str) -> Location {
        self.loc.at(format!("{}{property}", self.prefix))
    }
}

/// A subnet from its properties: one IPv4 prefix, and the NSG and route table it names.
fn subnet(
    vnet_id: &str,
    name: &str,
    p: &SubnetProperties,
    origin: &SubnetOrigin,
) -> Result<Subnet, SiteError> {
    let address_prefix = match (&p.address_prefix, p.address_prefixes.as_slice()) {
        (Some(prefix), _) => ipv4(prefix, origin.at("properties.addressPrefix"))?,
        (None, []) => {
            return Err(invalid(
                origin.at("properties.addressPrefix"),
                "is required",
            ))
        }
        (None, [first, rest @ ..]) => {
            let net = ipv4(first, origin.at("properties.addressPrefixes[0]"))?;
            if !rest.is_empty() {
                return Err(unsupported(
                    origin.at("properties.addressPrefixes"),
                    "hybridnet subnets have one prefix; give addressPrefix",
                ));
            }
            net
        }
    };
    let id = |r: &Option<IdRef>| r.as_ref().map(|r| r.id.clone());
    Ok(Subnet {
        id: format!("{vnet_id}/subnets/{name}"),
        name: name.to_string(),
        address_prefix,
        network_security_group: id(&p.network_security_group),
        route_table: id(&p.route_table),
    })
}

impl Planner<'_> {
    /// A virtual network resource: its address space, inline subnets, and the stored subnets
    /// it keeps (declared as child resources) or may drop (unused).
    pub(super) fn virtual_network(
        &mut self,
        meta: ResourceMeta,
        loc: &Location,
        body: &Value,
    ) -> Result<Resource, SiteError> {
        let p = props::parse::<VirtualNetworkResource>(body, loc)?.properties;
        let space_path = "properties.addressSpace.addressPrefixes";
        if p.address_space.address_prefixes.is_empty() {
            return Err(invalid(
                loc.at(space_path),
                "a virtual network needs at least one address prefix",
            ));
        }
        let mut space: Vec<Ipv4Net> = Vec::new();
        for (i, prefix) in p.address_space.address_prefixes.iter().enumerate() {
            let at = loc.at(format!("{space_path}[{i}]"));
            let net = ipv4(prefix, at.clone())?;
            if let Some((j, other)) = space.iter().enumerate().find(|(_, o)| overlaps(**o, net)) {
                return Err(SiteError::AddressConflict {
                    at,
                    problem: format!(
                        "{net} overlaps {other} (addressPrefixes[{j}]) in the same address space"
                    ),
                });
            }
            space.push(net);
        }
        let mut subnets = Vec::new();
        let mut origins = Vec::new();
        for (i, s) in p.subnets.iter().enumerate() {
            let origin = SubnetOrigin::inline(loc, i);
            subnets.push(subnet(&meta.id, &s.name, &s.properties, &origin)?);
            origins.push(Some(origin));
        }
        let dns_servers = p
            .dhcp_options
            .dns_servers
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect();
        for kept in self.stored_subnets_kept(&meta.id, &subnets, &loc.at("properties.subnets"))? {
            subnets.push(kept);
            origins.push(None);
        }
        let mut vnet = VirtualNetwork {
            meta,
            address_space: space,
            subnets,
            dns_servers,
        };
        for (s, origin) in vnet.subnets.iter().zip(&origins) {
            if origin.is_none()
                && !vnet
                    .address_space
                    .iter()
                    .any(|a| a.contains(&s.address_prefix))
            {
                return Err(SiteError::AddressConflict {
                    at: loc.at(space_path),
                    problem: format!(
                        "subnet '{}' ({}) would be outside the address space {}",
                        s.name,
                        s.address_prefix,
                        show_prefixes(&vnet.address_space)
                    ),
                });
            }
        }
        self.validate_subnets(&mut vnet, &origins)?;
        Ok(Resource::VirtualNetwork(vnet))
    }

    /// The stored subnets of a re-deployed VNet that its template leaves out: kept when a child
    /// subnet resource of this deployment declares them, refused when something uses them.
    fn stored_subnets_kept(
        &self,
        vnet_id: &str,
        declared: &[Subnet],
        at: &Location,
    ) -> Result<Vec<Subnet>, SiteError> {
        let Some(Resource::VirtualNetwork(old)) = self.find(vnet_id) else {
            return Ok(Vec::new());
        };
        let mut kept = Vec::new();
        for s in &old.subnets {
            if declared
                .iter()
                .any(|n| n.name.eq_ignore_ascii_case(&s.name))
            {
                continue;
            }
            if self.child_subnets.iter().any(|c| same_id(c, &s.id)) {
                kept.push(s.clone());
                continue;
            }
            let users = self.subnet_users(&s.id);
            if !users.is_empty() {
                return Err(invalid(
                    at.clone(),
                    format!(
                        "subnet '{}' is missing from the template but in use by {}; it cannot be removed (InUseSubnetCannotBeDeleted)",
                        s.name,
                        users.join(", ")
                    ),
                ));
            }
        }
        Ok(kept)
    }

    /// A child subnet resource: merged into its (planned or stored) VNet, which is re-validated.
    pub(super) fn child_subnet(
        &mut self,
        id: &str,
        loc: &Location,
        body: &Value,
    ) -> Result<Resource, SiteError> {
        let p = props::parse::<SubnetResource>(body, loc)?.properties;
        let (vnet_id, name) = super::split_subnet_id(id)
            .ok_or_else(|| invalid(loc.at("name"), format!("{id} is not a subnet id")))?;
        let Some(mut vnet) = self.vnet(vnet_id).cloned() else {
            return Err(SiteError::MissingReference {
                at: loc.at("name"),
                target: vnet_id.to_string(),
            });
        };
        let origin = SubnetOrigin::child(loc);
        let subnet = subnet(vnet_id, name, &p, &origin)?;
        vnet.meta.deployment = self.deployment_name.clone();
        let mut origins: Vec<Option<SubnetOrigin>> = vnet.subnets.iter().map(|_| None).collect();
        match vnet
            .subnets
            .iter()
            .position(|s| s.name.eq_ignore_ascii_case(name))
        {
            Some(i) => {
                let users = self.subnet_users(&subnet.id);
                if vnet.subnets[i].address_prefix != subnet.address_prefix && !users.is_empty() {
                    return Err(invalid(
                        loc.at("properties.addressPrefix"),
                        format!(
                            "subnet '{name}' is in use by {} and its prefix cannot change",
                            users.join(", ")
                        ),
                    ));
                }
                vnet.subnets[i] = subnet;
                origins[i] = Some(origin);
            }
            None => {
                vnet.subnets.push(subnet);
                origins.push(Some(origin));
            }
        }
        self.validate_subnets(&mut vnet, &origins)?;
        Ok(Resource::VirtualNetwork(vnet))
    }

    /// Checks each subnet declared in this resource (`origins[i]` is `Some`) against the address
    /// space, the other subnets, size limits, GatewaySubnet rules and the addresses in use.
    fn validate_subnets(
        &mut self,
        vnet: &mut VirtualNetwork,
        origins: &[Option<SubnetOrigin>],
    ) -> Result<(), SiteError> {
        for (i, s) in vnet.subnets.iter().enumerate() {
            let Some(origin) = &origins[i] else { continue };
            let prefix_at = origin.at("properties.addressPrefix");
            if let Some(other) = vnet.subnets[..i]
                .iter()
                .find(|o| o.name.eq_ignore_ascii_case(&s.name))
            {
                return Err(invalid(
                    origin.at("name"),
                    format!(
                        "subnet name '{}' is used twice in virtual network '{}'",
                        other.name, vnet.meta.name
                    ),
                ));
            }
            if !vnet
                .address_space
                .iter()
                .any(|a| a.contains(&s.address_prefix))
            {
                return Err(SiteError::AddressConflict {
                    at: prefix_at,
                    problem: format!(
                        "{} is outside the address space {}",
                        s.address_prefix,
                        show_prefixes(&vnet.address_space)
                    ),
                });
            }
            if s.is_gateway_subnet() {
                for note in self.gateway_subnet_rules(s, origin)? {
                    let note = format!("{}: {note}", vnet.meta.name);
                    vnet.meta.notes.push(note.clone());
                    self.notes.push(note);
                }
            } else if s.address_prefix.prefix_len() > MIN_SUBNET_PREFIX_LEN {
                return Err(invalid(
                    prefix_at,
                    format!(
                        "subnet {} is too small: the smallest subnet is /{MIN_SUBNET_PREFIX_LEN}",
                        s.address_prefix
                    ),
                ));
            }
            if let Some(other) = vnet
                .subnets
                .iter()
                .enumerate()
                .find(|(j, o)| *j != i && overlaps(o.address_prefix, s.address_prefix))
                .map(|(_, o)| o)
            {
                return Err(SiteError::AddressConflict {
                    at: prefix_at,
                    problem: format!(
                        "{} overlaps subnet '{}' ({})",
                        s.address_prefix, other.name, other.address_prefix
                    ),
                });
            }
            let used = self.used_in_subnet(&s.id, "");
            if let Some(a) = used
                .iter()
                .find(|a| ipam::check_static(s.address_prefix, **a, &BTreeSet::new()).is_err())
            {
                return Err(SiteError::AddressConflict {
                    at: prefix_at,
                    problem: format!(
                        "{} no longer contains {a}, used by {}",
                        s.address_prefix,
                        self.subnet_users(&s.id).join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    /// GatewaySubnet rules: the kind's size limits, no route table, an NSG only if it denies
    /// nothing. Returns notes (an accepted NSG, a size below the recommendation).
    fn gateway_subnet_rules(
        &self,
        s: &Subnet,
        origin: &SubnetOrigin,
    ) -> Result<Vec<String>, SiteError> {
        let size_note = self
            .kind
            .check_gateway_subnet(s.address_prefix)
            .map_err(|problem| invalid(origin.at("properties.addressPrefix"), problem))?;
        if let Some(rt) = &s.route_table {
            return Err(invalid(
                origin.at("properties.routeTable.id"),
                format!(
                    "GatewaySubnet must not have a route table ({rt}); user-defined routes on the gateway subnet are not supported"
                ),
            ));
        }
        let mut notes = Vec::new();
        if let Some(nsg) = &s.network_security_group {
            self.check_gateway_subnet_nsg(nsg, origin.at("properties.networkSecurityGroup.id"))?;
            notes.push("a network security group on GatewaySubnet is unsupported by Azure; accepted because it denies nothing".to_string());
        }
        notes.extend(size_note);
        Ok(notes)
    }

    /// An NSG on GatewaySubnet is tolerated only when it denies nothing (what Microsoft's own
    /// Azure Stack Hub templates attach); anything else would break the gateway.
    pub(super) fn check_gateway_subnet_nsg(
        &self,
        nsg_id: &str,
        at: Location,
    ) -> Result<(), SiteError> {
        let Some(nsg) = self.find(nsg_id) else {
            return Err(SiteError::MissingReference {
                at,
                target: nsg_id.to_string(),
            });
        };
        let Resource::NetworkSecurityGroup(nsg) = nsg else {
            return Err(invalid(
                at,
                format!("{nsg_id} is not a network security group"),
            ));
        };
        if let Some(r) = nsg
            .security_rules
            .iter()
            .find(|r| r.access == crate::model::nsg::Access::Deny)
        {
            return Err(invalid(
                at,
                format!("GatewaySubnet must not have a network security group that denies traffic (rule '{}' of {nsg_id}); NSGs on the gateway subnet are not supported", r.name),
            ));
        }
        Ok(())
    }
}
