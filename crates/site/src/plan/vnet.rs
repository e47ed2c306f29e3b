//! Virtual networks and subnets (inline and child resources).

use super::*;

pub(super) fn show_prefixes(p: &[Ipv4Net]) -> String {
    format!(
        "[{}]",
        p.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub(super) fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

impl Planner<'_> {
    pub(super) fn parse_subnet(
        &self,
        vnet_id: &str,
        name: &str,
        b: &Body,
    ) -> Result<Subnet, SiteError> {
        let prefix_path = "properties.addressPrefix";
        let prefix = match b.string(prefix_path)? {
            Some(p) => parse_prefix(p, b.at(prefix_path))?,
            None => {
                let list = b.array("properties.addressPrefixes")?;
                let first = list
                    .first()
                    .ok_or_else(|| invalid(b.at(prefix_path), "is required"))?;
                let s = first.as_str().ok_or_else(|| {
                    invalid(b.at("properties.addressPrefixes[0]"), "expected a string")
                })?;
                if list.len() > 1 {
                    return Err(unsupported(
                        b.at("properties.addressPrefixes"),
                        "hybridnet subnets have one prefix; give addressPrefix",
                    ));
                }
                parse_prefix(s, b.at("properties.addressPrefixes[0]"))?
            }
        };
        Ok(Subnet {
            id: format!("{vnet_id}/subnets/{name}"),
            name: name.to_string(),
            address_prefix: prefix,
            network_security_group: b
                .id_ref("properties.networkSecurityGroup")?
                .map(str::to_string),
            route_table: b.id_ref("properties.routeTable")?.map(str::to_string),
        })
    }

    pub(super) fn virtual_network(
        &mut self,
        meta: ResourceMeta,
        b: &Body,
    ) -> Result<Resource, SiteError> {
        let mut space = Vec::new();
        let list = b.array("properties.addressSpace.addressPrefixes")?;
        if list.is_empty() {
            return Err(invalid(
                b.at("properties.addressSpace.addressPrefixes"),
                "a virtual network needs at least one address prefix",
            ));
        }
        for (i, v) in list.iter().enumerate() {
            let path = format!("properties.addressSpace.addressPrefixes[{i}]");
            let s = v.as_str().ok_or_else(|| {
                invalid(
                    b.at(&path),
                    format!("expected a string, got {}", type_name(v)),
                )
            })?;
            let net = parse_prefix(s, b.at(&path))?;
            if let Some((j, other)) = space
                .iter()
                .enumerate()
                .find(|(_, o): &(usize, &Ipv4Net)| overlaps(**o, net))
            {
                return Err(SiteError::AddressConflict {
                    at: b.at(&path),
                    problem: format!(
                        "{net} overlaps {other} (addressPrefixes[{j}]) in the same address space"
                    ),
                });
            }
            space.push(net);
        }
        let mut subnets = Vec::new();
        let mut locs = Vec::new();
        for (i, v) in b.array("properties.subnets")?.iter().enumerate() {
            let sb = b.sub(v, &format!("properties.subnets[{i}]"));
            let name = sb.required_string("name")?;
            subnets.push(self.parse_subnet(&meta.id, name, &sb)?);
            locs.push(Some(sb.loc.clone()));
        }
        let dns = b
            .array("properties.dhcpOptions.dnsServers")?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect();
        if let Some(Resource::VirtualNetwork(old)) = self.find(&meta.id) {
            for s in &old.subnets {
                if subnets
                    .iter()
                    .any(|n: &Subnet| n.name.eq_ignore_ascii_case(&s.name))
                {
                    continue;
                }
                if self.child_subnets.iter().any(|c| same_id(c, &s.id)) {
                    subnets.push(s.clone());
                    locs.push(None);
                    continue;
                }
                let users = self.subnet_users(&s.id);
                if !users.is_empty() {
                    return Err(invalid(
                        b.at("properties.subnets"),
                        format!(
                            "subnet '{}' is missing from the template but in use by {}; it cannot be removed (InUseSubnetCannotBeDeleted)",
                            s.name,
                            users.join(", ")
                        ),
                    ));
                }
            }
        }
        let mut vnet = VirtualNetwork {
            meta,
            address_space: space,
            subnets,
            dns_servers: dns,
        };
        for (s, l) in vnet.subnets.iter().zip(&locs) {
            if l.is_none()
                && !vnet
                    .address_space
                    .iter()
                    .any(|a| a.contains(&s.address_prefix))
            {
                return Err(SiteError::AddressConflict {
                    at: b.at("properties.addressSpace.addressPrefixes"),
                    problem: format!(
                        "subnet '{}' ({}) would be outside the address space {}",
                        s.name,
                        s.address_prefix,
                        show_prefixes(&vnet.address_space)
                    ),
                });
            }
        }
        self.validate_vnet(&mut vnet, &locs)?;
        Ok(Resource::VirtualNetwork(vnet))
    }

    pub(super) fn child_subnet(
        &mut self,
        ev: &EvaluatedResource,
        b: &Body,
    ) -> Result<Resource, SiteError> {
        let (vnet_id, name) = split_subnet_id(&ev.id)
            .ok_or_else(|| invalid(b.at("name"), format!("{} is not a subnet id", ev.id)))?;
        let Some(vnet) = self.vnet(vnet_id).cloned() else {
            return Err(SiteError::MissingReference {
                at: b.at("name"),
                target: vnet_id.to_string(),
            });
        };
        let subnet = self.parse_subnet(vnet_id, name, b)?;
        let mut vnet = vnet;
        vnet.meta.deployment = self.deployment_name.clone();
        let mut locs: Vec<Option<Location>> = vec![None; vnet.subnets.len()];
        match vnet
            .subnets
            .iter()
            .position(|s| s.name.eq_ignore_ascii_case(name))
        {
            Some(i) => {
                let users = self.subnet_users(&subnet.id);
                if vnet.subnets[i].address_prefix != subnet.address_prefix && !users.is_empty() {
                    return Err(invalid(
                        b.at("properties.addressPrefix"),
                        format!(
                            "subnet '{name}' is in use by {} and its prefix cannot change",
                            users.join(", ")
                        ),
                    ));
                }
                vnet.subnets[i] = subnet;
                locs[i] = Some(Location {
                    property: "properties".into(),
                    ..b.loc.clone()
                });
            }
            None => {
                vnet.subnets.push(subnet);
                locs.push(Some(Location {
                    property: "properties".into(),
                    ..b.loc.clone()
                }));
            }
        }
        self.validate_vnet(&mut vnet, &locs)?;
        Ok(Resource::VirtualNetwork(vnet))
    }

    /// Checks subnets against the address space, each other, size limits and GatewaySubnet rules.
    /// `locs[i]` is where subnet i came from in this resource (None: stored, unchanged).
    pub(super) fn validate_vnet(
        &mut self,
        vnet: &mut VirtualNetwork,
        locs: &[Option<Location>],
    ) -> Result<(), SiteError> {
        for (i, s) in vnet.subnets.iter().enumerate() {
            let Some(loc) = &locs[i] else { continue };
            let sub_at = |p: &str| {
                let property = if loc.property.is_empty() {
                    p.to_string()
                } else {
                    format!("{}.{p}", loc.property)
                };
                loc.at(property)
            };
            let prefix_at = if loc.resource_type.eq_ignore_ascii_case(T_SUBNET) {
                loc.at("properties.addressPrefix")
            } else {
                sub_at("properties.addressPrefix")
            };
            let nsg_at = if loc.resource_type.eq_ignore_ascii_case(T_SUBNET) {
                loc.at("properties.networkSecurityGroup.id")
            } else {
                sub_at("properties.networkSecurityGroup.id")
            };
            let rt_at = if loc.resource_type.eq_ignore_ascii_case(T_SUBNET) {
                loc.at("properties.routeTable.id")
            } else {
                sub_at("properties.routeTable.id")
            };
            let name_at = if loc.resource_type.eq_ignore_ascii_case(T_SUBNET) {
                loc.at("name")
            } else {
                sub_at("name")
            };
            if let Some(other) = vnet.subnets[..i]
                .iter()
                .find(|o| o.name.eq_ignore_ascii_case(&s.name))
            {
                return Err(invalid(
                    name_at,
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
                let size_note = self
                    .kind
                    .check_gateway_subnet(s.address_prefix)
                    .map_err(|problem| invalid(prefix_at.clone(), problem))?;
                if let Some(rt) = &s.route_table {
                    return Err(invalid(
                        rt_at,
                        format!(
                            "GatewaySubnet must not have a route table ({rt}); user-defined routes on the gateway subnet are not supported"
                        ),
                    ));
                }
                if let Some(nsg) = &s.network_security_group {
                    self.check_gateway_subnet_nsg(nsg, nsg_at)?;
                    let note = format!(
                        "{}: a network security group on GatewaySubnet is unsupported by Azure; accepted because it denies nothing",
                        vnet.meta.name
                    );
                    vnet.meta.notes.push(note.clone());
                    self.notes.push(note);
                }
                if let Some(size_note) = size_note {
                    let note = format!("{}: {size_note}", vnet.meta.name);
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
        let body = match nsg {
            Resource::Other(o) => &o.body,
            _ => {
                return Err(invalid(
                    at,
                    format!("{nsg_id} is not a network security group"),
                ))
            }
        };
        let rules = get_path(body, &["properties", "securityRules"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for r in &rules {
            let access = get_path(r, &["properties", "access"])
                .and_then(Value::as_str)
                .unwrap_or("");
            if access.eq_ignore_ascii_case("Deny") {
                let name = get_ci(r, "name").and_then(Value::as_str).unwrap_or("?");
                return Err(invalid(
                    at,
                    format!("GatewaySubnet must not have a network security group that denies traffic (rule '{name}' of {nsg_id}); NSGs on the gateway subnet are not supported"),
                ));
            }
        }
        Ok(())
    }
}
