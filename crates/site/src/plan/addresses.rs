//! Address management while planning: addresses in use and requested in this deployment, and
//! the allocation of public and private addresses (the pure rules are in `crate::ipam`).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Planner, T_NIC};
use crate::error::{Location, SiteError};
use crate::ipam::{self, AddressProblem};
use crate::model::{same_id, AllocationMethod, Resource};
use crate::props::{self, nic::NetworkInterfaceResource};

impl Planner<'_> {
    /// Collects the static NIC addresses of the deployment before anything is allocated. A NIC
    /// whose body cannot be evaluated or read yet (it uses reference()) is skipped here; its
    /// error, if any, surfaces when it is planned.
    pub(super) fn collect_static_requests(&mut self, d: &arm::Deployment) {
        for pending in d
            .resources_in_order()
            .iter()
            .filter(|r| r.resource_type.eq_ignore_ascii_case(T_NIC))
        {
            let Ok(ev) = d.evaluate_resource(pending, &*self) else {
                continue;
            };
            let unplaced = Location {
                resource_path: ev.path.clone(),
                resource_type: ev.resource_type.clone(),
                name: ev.name.clone(),
                property: String::new(),
            };
            let Ok(nic) = props::parse::<NetworkInterfaceResource>(&ev.body, &unplaced) else {
                continue;
            };
            for c in &nic.properties.ip_configurations {
                let p = &c.properties;
                let address = p.private_ip_address.as_deref().map(str::parse::<Ipv4Addr>);
                if let (Some(AllocationMethod::Static), Some(Ok(address))) =
                    (p.allocation_method, address)
                {
                    self.static_requests
                        .push((ev.id.clone(), p.subnet.id.clone(), address));
                }
            }
        }
    }

    /// Static addresses other NICs of this deployment asked for in a subnet.
    pub(super) fn requested_by_others(
        &self,
        subnet_id: &str,
        me: &str,
    ) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let (subnet_id, me) = (subnet_id.to_string(), me.to_string());
        self.static_requests
            .iter()
            .filter(move |(nic, s, _)| !same_id(nic, &me) && same_id(s, &subnet_id))
            .map(|(_, _, a)| *a)
    }

    /// Addresses in use in a subnet by NICs and gateways other than `exclude`.
    pub(super) fn used_in_subnet(&self, subnet_id: &str, exclude: &str) -> BTreeSet<Ipv4Addr> {
        let mut used = BTreeSet::new();
        for r in self.view() {
            if same_id(r.id(), exclude) {
                continue;
            }
            match r {
                Resource::NetworkInterface(n) => used.extend(
                    n.ip_configurations
                        .iter()
                        .filter(|c| same_id(&c.subnet, subnet_id))
                        .map(|c| c.private_ip_address),
                ),
                Resource::VirtualNetworkGateway(g) => used.extend(
                    g.ip_configurations
                        .iter()
                        .filter(|c| same_id(&c.subnet, subnet_id))
                        .map(|c| c.private_ip_address),
                ),
                _ => {}
            }
        }
        used
    }

    /// The public address of a public IP resource: the one it has while still usable and free,
    /// else the first free one of the site's public prefix.
    pub(super) fn public_address(&self, pip_id: &str, at: Location) -> Result<Ipv4Addr, SiteError> {
        let used: BTreeSet<Ipv4Addr> = self
            .view()
            .into_iter()
            .filter(|r| !same_id(r.id(), pip_id))
            .filter_map(|r| match r {
                Resource::PublicIpAddress(p) => Some(p.ip_address),
                _ => None,
            })
            .collect();
        let prefix = self.info.public_prefix;
        let kept = match self.find(pip_id) {
            Some(Resource::PublicIpAddress(old))
                if ipam::public_usable(prefix, old.ip_address)
                    && !used.contains(&old.ip_address) =>
            {
                Some(old.ip_address)
            }
            _ => None,
        };
        kept.or_else(|| ipam::first_free_public(prefix, &used))
            .ok_or_else(|| SiteError::PoolExhausted {
                at,
                problem: format!(
                    "no free address left in the site's public prefix {prefix} ({} in use)",
                    used.len()
                ),
            })
    }

    /// A static private address, checked against the subnet's reserved and used addresses.
    pub(super) fn static_address(
        &self,
        address: Ipv4Addr,
        subnet: (&str, &str, Ipv4Net),
        owner: &str,
        used: &BTreeSet<Ipv4Addr>,
        at: Location,
    ) -> Result<Ipv4Addr, SiteError> {
        let (subnet_id, subnet_name, prefix) = subnet;
        let problem = match ipam::check_static(prefix, address, used) {
            Ok(()) => return Ok(address),
            Err(AddressProblem::OutsideSubnet) => {
                format!("{address} is outside subnet '{subnet_name}' ({prefix})")
            }
            Err(AddressProblem::Reserved) => format!(
                "{address} is reserved in subnet {prefix}: the network address, .1 (router), .2, .3 (DNS) and the broadcast address are not assignable; the first usable address is {}",
                ipam::nth(prefix, 4)
            ),
            Err(AddressProblem::Taken) => {
                let holder = self
                    .address_holder(subnet_id, address, owner)
                    .unwrap_or_else(|| "another ipConfiguration of this interface".into());
                format!("{address} is already in use by {holder}")
            }
        };
        Err(SiteError::AddressConflict { at, problem })
    }
}

/// A dynamic private address: the one the ipConfiguration had while still free, else the first
/// free one of the subnet.
pub(super) fn dynamic_address(
    prefix: Ipv4Net,
    previous: Option<Ipv4Addr>,
    used: &BTreeSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    previous
        .filter(|a| ipam::check_static(prefix, *a, used).is_ok())
        .or_else(|| ipam::first_free_in_subnet(prefix, used))
}
