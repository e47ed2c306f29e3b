//! Network interfaces: each ipConfiguration in an ordinary subnet of one VNet, with a static
//! or allocated private address and at most one holder per public IP.

use serde_json::Value;

use super::addresses::dynamic_address;
use super::{invalid, Planner};
use crate::error::{Location, SiteError};
use crate::ipam;
use crate::model::{
    same_id, AllocationMethod, NetworkInterface, NicIpConfiguration, Resource, ResourceMeta,
};
use crate::props::nic::{self as nic_props, NetworkInterfaceResource};
use crate::props::{self};

impl Planner<'_> {
    /// A network interface resource.
    pub(super) fn nic(
        &mut self,
        meta: ResourceMeta,
        loc: &Location,
        body: &Value,
    ) -> Result<Resource, SiteError> {
        let p = props::parse::<NetworkInterfaceResource>(body, loc)?.properties;
        if p.ip_configurations.is_empty() {
            return Err(invalid(
                loc.at("properties.ipConfigurations"),
                "a network interface needs at least one ipConfiguration",
            ));
        }
        let mut out: Vec<NicIpConfiguration> = Vec::new();
        let mut vnet_of_nic: Option<String> = None;
        for (i, c) in p.ip_configurations.iter().enumerate() {
            let at =
                |property: &str| loc.at(format!("properties.ipConfigurations[{i}].{property}"));
            let cfg = self.nic_ip_configuration(&meta.id, c, i, &out, &mut vnet_of_nic, &at)?;
            out.push(cfg);
        }
        if out.iter().filter(|c| c.primary).count() > 1 {
            return Err(invalid(
                loc.at("properties.ipConfigurations"),
                "only one ipConfiguration can be primary",
            ));
        }
        Ok(Resource::NetworkInterface(NetworkInterface {
            meta,
            ip_configurations: out,
            network_security_group: p.network_security_group.map(|r| r.id),
            enable_ip_forwarding: p.enable_ip_forwarding.unwrap_or(false),
        }))
    }

    /// One ipConfiguration: its subnet (not GatewaySubnet, the same VNet as the others), its
    /// private address, its public IP. `earlier` are the configurations before it.
    fn nic_ip_configuration(
        &self,
        nic_id: &str,
        c: &nic_props::NicIpConfiguration,
        index: usize,
        earlier: &[NicIpConfiguration],
        vnet_of_nic: &mut Option<String>,
        at: &dyn Fn(&str) -> Location,
    ) -> Result<NicIpConfiguration, SiteError> {
        let p = &c.properties;
        let subnet_id = p.subnet.id.clone();
        let at_subnet = at("properties.subnet.id");
        let Some((vnet, subnet)) = self.subnet(&subnet_id) else {
            return Err(SiteError::MissingReference {
                at: at_subnet,
                target: subnet_id,
            });
        };
        if subnet.is_gateway_subnet() {
            return Err(invalid(
                at_subnet,
                "network interfaces cannot be placed in GatewaySubnet; it is reserved for VPN gateways",
            ));
        }
        match vnet_of_nic {
            Some(v) if !same_id(v, &vnet.meta.id) => return Err(invalid(
                at_subnet,
                "all ipConfigurations of a network interface must be in the same virtual network",
            )),
            _ => *vnet_of_nic = Some(vnet.meta.id.clone()),
        }
        let prefix = subnet.address_prefix;
        let subnet_name = subnet.name.clone();
        let mut used = self.used_in_subnet(&subnet_id, nic_id);
        used.extend(
            earlier
                .iter()
                .filter(|e| same_id(&e.subnet, &subnet_id))
                .map(|e| e.private_ip_address),
        );
        let method = p.allocation_method.unwrap_or(AllocationMethod::Dynamic);
        let private_ip_address = match method {
            AllocationMethod::Static => {
                let addr_at = at("properties.privateIPAddress");
                let s = p.private_ip_address.as_deref().ok_or_else(|| {
                    invalid(
                        addr_at.clone(),
                        "is required when privateIPAllocationMethod is Static",
                    )
                })?;
                let a = s.parse().map_err(|_| {
                    invalid(addr_at.clone(), format!("{s:?} is not an IPv4 address"))
                })?;
                let subnet = (subnet_id.as_str(), subnet_name.as_str(), prefix);
                self.static_address(a, subnet, nic_id, &used, addr_at)?
            }
            AllocationMethod::Dynamic => {
                used.extend(self.requested_by_others(&subnet_id, nic_id));
                let previous = match self.find(nic_id) {
                    Some(Resource::NetworkInterface(old)) => old
                        .ip_configurations
                        .iter()
                        .find(|o| {
                            o.name.eq_ignore_ascii_case(&c.name) && same_id(&o.subnet, &subnet_id)
                        })
                        .map(|o| o.private_ip_address),
                    _ => None,
                };
                dynamic_address(prefix, previous, &used).ok_or_else(|| SiteError::PoolExhausted {
                    at: at("properties.privateIPAllocationMethod"),
                    problem: format!(
                        "subnet '{subnet_name}' ({prefix}) has no free address left: {} usable, all in use",
                        ipam::usable_in_subnet(prefix)
                    ),
                })?
            }
        };
        let public_ip_address = match &p.public_ip_address {
            Some(pip) => {
                let pip_at = at("properties.publicIPAddress.id");
                self.require(
                    &pip.id,
                    "Microsoft.Network/publicIPAddresses",
                    pip_at.clone(),
                )?;
                if let Some(holder) = self.public_ip_holder(&pip.id, nic_id) {
                    return Err(invalid(
                        pip_at,
                        format!("public IP {} is already attached to {holder}", pip.id),
                    ));
                }
                Some(pip.id.clone())
            }
            None => None,
        };
        Ok(NicIpConfiguration {
            name: c.name.clone(),
            subnet: subnet_id,
            private_ip_address,
            allocation_method: method,
            public_ip_address,
            primary: p.primary.unwrap_or(index == 0),
        })
    }
}
