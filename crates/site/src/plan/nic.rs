//! Network interfaces.

use super::*;

impl Planner<'_> {
    pub(super) fn nic(&mut self, meta: ResourceMeta, b: &Body) -> Result<Resource, SiteError> {
        let cfgs = b.array("properties.ipConfigurations")?;
        if cfgs.is_empty() {
            return Err(invalid(
                b.at("properties.ipConfigurations"),
                "a network interface needs at least one ipConfiguration",
            ));
        }
        let old: Option<NetworkInterface> = match self.find(&meta.id) {
            Some(Resource::NetworkInterface(n)) => Some(n.clone()),
            _ => None,
        };
        let mut out: Vec<NicIpConfiguration> = Vec::new();
        let mut vnet_of_nic: Option<String> = None;
        for (i, v) in cfgs.iter().enumerate() {
            let cb = b.sub(v, &format!("properties.ipConfigurations[{i}]"));
            let name = cb.required_string("name")?.to_string();
            let subnet_path = "properties.subnet";
            let subnet_id = cb
                .id_ref(subnet_path)?
                .ok_or_else(|| invalid(cb.at(subnet_path), "is required"))?
                .to_string();
            let at_subnet = cb.at("properties.subnet.id");
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
            match &vnet_of_nic {
                Some(v) if !same_id(v, &vnet.meta.id) => {
                    return Err(invalid(
                        at_subnet,
                        "all ipConfigurations of a network interface must be in the same virtual network",
                    ))
                }
                _ => vnet_of_nic = Some(vnet.meta.id.clone()),
            }
            let prefix = subnet.address_prefix;
            let subnet_name = subnet.name.clone();
            let mut used = self.used_in_subnet(&subnet_id, &meta.id);
            used.extend(
                out.iter()
                    .filter(|c| same_id(&c.subnet, &subnet_id))
                    .map(|c| c.private_ip_address),
            );
            let method = match cb.string("properties.privateIPAllocationMethod")? {
                None => AllocationMethod::Dynamic,
                Some(s) if s.eq_ignore_ascii_case("Dynamic") => AllocationMethod::Dynamic,
                Some(s) if s.eq_ignore_ascii_case("Static") => AllocationMethod::Static,
                Some(s) => {
                    return Err(invalid(
                        cb.at("properties.privateIPAllocationMethod"),
                        format!("{s:?} is not Dynamic or Static"),
                    ))
                }
            };
            let addr_path = "properties.privateIPAddress";
            let address = match method {
                AllocationMethod::Static => {
                    let s = cb.string(addr_path)?.ok_or_else(|| {
                        invalid(
                            cb.at(addr_path),
                            "is required when privateIPAllocationMethod is Static",
                        )
                    })?;
                    let a = parse_addr(s, cb.at(addr_path))?;
                    match ipam::check_static(prefix, a, &used) {
                        Ok(()) => a,
                        Err(AddressProblem::OutsideSubnet) => {
                            return Err(SiteError::AddressConflict { at: cb.at(addr_path), problem: format!("{a} is outside subnet '{subnet_name}' ({prefix})") })
                        }
                        Err(AddressProblem::Reserved) => {
                            return Err(SiteError::AddressConflict {
                                at: cb.at(addr_path),
                                problem: format!("{a} is reserved in subnet {prefix}: the network address, .1 (router), .2, .3 (DNS) and the broadcast address are not assignable; the first usable address is {}", ipam::nth(prefix, 4)),
                            })
                        }
                        Err(AddressProblem::Taken) => {
                            let holder = self.address_holder(&subnet_id, a, &meta.id).unwrap_or_else(|| "another ipConfiguration of this interface".into());
                            return Err(SiteError::AddressConflict { at: cb.at(addr_path), problem: format!("{a} is already in use by {holder}") });
                        }
                    }
                }
                AllocationMethod::Dynamic => {
                    used.extend(self.requested_by_others(&subnet_id, &meta.id));
                    let previous = old
                        .as_ref()
                        .and_then(|o| {
                            o.ip_configurations.iter().find(|c| {
                                c.name.eq_ignore_ascii_case(&name) && same_id(&c.subnet, &subnet_id)
                            })
                        })
                        .map(|c| c.private_ip_address)
                        .filter(|a| ipam::check_static(prefix, *a, &used).is_ok());
                    match previous.or_else(|| ipam::first_free_in_subnet(prefix, &used)) {
                        Some(a) => a,
                        None => {
                            return Err(SiteError::PoolExhausted {
                                at: cb.at("properties.privateIPAllocationMethod"),
                                problem: format!(
                                    "subnet '{subnet_name}' ({prefix}) has no free address left: {} usable, all in use",
                                    ipam::usable_in_subnet(prefix)
                                ),
                            })
                        }
                    }
                }
            };
            let public_ip_address = match cb.id_ref("properties.publicIPAddress")? {
                Some(pip) => {
                    let at = cb.at("properties.publicIPAddress.id");
                    self.require(pip, "Microsoft.Network/publicIPAddresses", at.clone())?;
                    if let Some(holder) = self.public_ip_holder(pip, &meta.id) {
                        return Err(invalid(
                            at,
                            format!("public IP {pip} is already attached to {holder}"),
                        ));
                    }
                    Some(pip.to_string())
                }
                None => None,
            };
            let primary = cb.boolean("properties.primary")?.unwrap_or(i == 0);
            out.push(NicIpConfiguration {
                name,
                subnet: subnet_id,
                private_ip_address: address,
                allocation_method: method,
                public_ip_address,
                primary,
            });
        }
        if out.iter().filter(|c| c.primary).count() > 1 {
            return Err(invalid(
                b.at("properties.ipConfigurations"),
                "only one ipConfiguration can be primary",
            ));
        }
        let network_security_group = b
            .id_ref("properties.networkSecurityGroup")?
            .map(str::to_string);
        let enable_ip_forwarding = b.boolean("properties.enableIPForwarding")?.unwrap_or(false);
        Ok(Resource::NetworkInterface(NetworkInterface {
            meta,
            ip_configurations: out,
            network_security_group,
            enable_ip_forwarding,
        }))
    }
}
