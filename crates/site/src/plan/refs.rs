//! The view a plan validates against: this deployment's planned resources over the stored ones
//! (and other sites'), and the references between them.

use super::{invalid, Planner};
use crate::error::{Location, SiteError};
use crate::model::{
    same_id, ConnectionType, Resource, Subnet, VirtualNetwork, VirtualNetworkGateway,
};
use std::net::Ipv4Addr;

pub(super) fn short_type(t: &str) -> &str {
    t.rsplit('/').next().unwrap_or(t)
}

/// Parent VNet id and subnet name of a subnet id.
pub(super) fn split_subnet_id(id: &str) -> Option<(&str, &str)> {
    let lower = id.to_ascii_lowercase();
    let at = lower.rfind("/subnets/")?;
    let name = &id[at + "/subnets/".len()..];
    if name.is_empty() || name.contains('/') {
        return None;
    }
    Some((&id[..at], name))
}

impl Planner<'_> {
    pub(super) fn find(&self, id: &str) -> Option<&Resource> {
        let k = id.to_ascii_lowercase();
        self.planned_index
            .get(&k)
            .map(|&i| &self.planned[i])
            .or_else(|| self.existing_index.get(&k).map(|&i| &self.existing[i]))
            .or_else(|| self.foreign_index.get(&k).map(|&i| &self.foreign[i]))
    }

    /// The stored resource of that id, as it was before this deployment.
    pub(super) fn existing(&self, id: &str) -> Option<&Resource> {
        self.existing_index
            .get(&id.to_ascii_lowercase())
            .map(|&i| &self.existing[i])
    }

    /// Whether the template declares this resource for another site (location filter).
    pub(super) fn is_elsewhere(&self, id: &str) -> bool {
        self.elsewhere.iter().any(|e| same_id(e, id))
    }

    pub(super) fn view(&self) -> Vec<&Resource> {
        let mut out: Vec<&Resource> = self.planned.iter().collect();
        out.extend(self.existing.iter().filter(|e| {
            !self
                .planned_index
                .contains_key(&e.id().to_ascii_lowercase())
        }));
        out
    }

    pub(super) fn upsert(&mut self, r: Resource) {
        let k = r.id().to_ascii_lowercase();
        match self.planned_index.get(&k) {
            Some(&i) => self.planned[i] = r,
            None => {
                self.planned_index.insert(k, self.planned.len());
                self.planned.push(r);
            }
        }
    }

    pub(super) fn vnet(&self, id: &str) -> Option<&VirtualNetwork> {
        match self.find(id) {
            Some(Resource::VirtualNetwork(v)) => Some(v),
            _ => None,
        }
    }

    pub(super) fn subnet(&self, id: &str) -> Option<(&VirtualNetwork, &Subnet)> {
        let (vnet_id, name) = split_subnet_id(id)?;
        let v = self.vnet(vnet_id)?;
        Some((v, v.subnet(name)?))
    }

    /// Who uses a subnet (for "in use" errors).
    pub(super) fn subnet_users(&self, subnet_id: &str) -> Vec<String> {
        self.view()
            .into_iter()
            .filter(|r| match r {
                Resource::NetworkInterface(n) => n
                    .ip_configurations
                    .iter()
                    .any(|c| same_id(&c.subnet, subnet_id)),
                Resource::VirtualNetworkGateway(g) => g
                    .ip_configurations
                    .iter()
                    .any(|c| same_id(&c.subnet, subnet_id)),
                _ => false,
            })
            .map(|r| format!("{} '{}'", short_type(r.resource_type()), r.name()))
            .collect()
    }

    /// Who holds a public IP other than `exclude`.
    pub(super) fn public_ip_holder(&self, pip_id: &str, exclude: &str) -> Option<String> {
        self.view()
            .into_iter()
            .filter(|r| !same_id(r.id(), exclude))
            .find_map(|r| {
                let holds = match r {
                    Resource::NetworkInterface(n) => n.ip_configurations.iter().any(|c| {
                        c.public_ip_address
                            .as_deref()
                            .is_some_and(|p| same_id(p, pip_id))
                    }),
                    Resource::VirtualNetworkGateway(g) => g
                        .ip_configurations
                        .iter()
                        .any(|c| same_id(&c.public_ip_address, pip_id)),
                    _ => false,
                };
                holds.then(|| format!("{} '{}'", short_type(r.resource_type()), r.name()))
            })
    }

    pub(super) fn require(
        &self,
        id: &str,
        expected_type: &str,
        at: Location,
    ) -> Result<&Resource, SiteError> {
        match self.find(id) {
            Some(r) if r.resource_type().eq_ignore_ascii_case(expected_type) => Ok(r),
            Some(r) => Err(invalid(
                at,
                format!(
                    "{id} is a {}, expected a {expected_type}",
                    r.resource_type()
                ),
            )),
            None => Err(SiteError::MissingReference {
                at,
                target: id.to_string(),
            }),
        }
    }

    /// A virtual network gateway by id, or the error naming the referring property.
    pub(super) fn require_gateway(
        &self,
        id: &str,
        at: Location,
    ) -> Result<&VirtualNetworkGateway, SiteError> {
        let vng_type = "Microsoft.Network/virtualNetworkGateways";
        match self.require(id, vng_type, at.clone())? {
            Resource::VirtualNetworkGateway(g) => Ok(g),
            _ => Err(invalid(at, format!("{id} is not a {vng_type}"))),
        }
    }

    pub(super) fn address_holder(
        &self,
        subnet_id: &str,
        a: Ipv4Addr,
        exclude: &str,
    ) -> Option<String> {
        self.view()
            .into_iter()
            .filter(|r| !same_id(r.id(), exclude))
            .find_map(|r| {
                let hit = match r {
                    Resource::NetworkInterface(n) => n
                        .ip_configurations
                        .iter()
                        .any(|c| same_id(&c.subnet, subnet_id) && c.private_ip_address == a),
                    Resource::VirtualNetworkGateway(g) => g
                        .ip_configurations
                        .iter()
                        .any(|c| same_id(&c.subnet, subnet_id) && c.private_ip_address == a),
                    _ => false,
                };
                hit.then(|| format!("{} '{}'", short_type(r.resource_type()), r.name()))
            })
    }

    /// Connections (IPsec, Vnet2Vnet) whose local end is this gateway, other than `exclude`.
    pub(super) fn tunnels_of(&self, gateway_id: &str, exclude: &str) -> usize {
        self.view()
            .into_iter()
            .filter(|r| !same_id(r.id(), exclude))
            .filter(|r| match r {
                Resource::Connection(c) => {
                    matches!(
                        c.connection_type,
                        ConnectionType::IPsec | ConnectionType::Vnet2Vnet
                    ) && same_id(&c.virtual_network_gateway1, gateway_id)
                }
                _ => false,
            })
            .count()
    }
}
