//! Virtual network gateways.

use super::*;

impl Planner<'_> {
    pub(super) fn bgp_settings(
        &self,
        b: &Body,
        path: &str,
    ) -> Result<Option<BgpSettings>, SiteError> {
        if b.value(path).is_none() {
            return Ok(None);
        }
        let asn_path = format!("{path}.asn");
        let asn = match b.integer(&asn_path)? {
            Some(a) => {
                let checked = u64::try_from(a)
                    .map_err(|_| format!("ASN {a} is out of range: ASNs are positive"))
                    .and_then(|u| self.kind.check_bgp_asn(u).map(|()| u));
                let u = checked.map_err(|p| unsupported(b.at(&asn_path), p))?;
                u as u32
            }
            None => self.kind.features.default_bgp_asn,
        };
        Ok(Some(BgpSettings {
            asn,
            bgp_peering_address: b
                .string(&format!("{path}.bgpPeeringAddress"))?
                .map(str::to_string),
            peer_weight: b.integer(&format!("{path}.peerWeight"))?,
        }))
    }

    pub(super) fn vnet_gateway(
        &mut self,
        meta: ResourceMeta,
        b: &Body,
    ) -> Result<Resource, SiteError> {
        let kind = self.kind;
        let gateway_type = b
            .string("properties.gatewayType")?
            .unwrap_or("Vpn")
            .to_string();
        if !["Vpn", "ExpressRoute", "LocalGateway"]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&gateway_type))
        {
            return Err(invalid(
                b.at("properties.gatewayType"),
                format!("{gateway_type:?} is not a gateway type (Vpn, ExpressRoute)"),
            ));
        }
        let vpn_type = match b.string("properties.vpnType")? {
            None => VpnType::RouteBased,
            Some(s) if s.eq_ignore_ascii_case("RouteBased") => VpnType::RouteBased,
            Some(s) if s.eq_ignore_ascii_case("PolicyBased") => VpnType::PolicyBased,
            Some(s) => {
                return Err(invalid(
                    b.at("properties.vpnType"),
                    format!("{s:?} is not RouteBased or PolicyBased"),
                ))
            }
        };
        self.require_feature(Feature::VnetGateways, None, b.at("type"))?;
        let mut meta = meta;
        let sku_name = match b.string("properties.sku.name")? {
            Some(s) => s.to_string(),
            None => {
                let note = format!("{}: no sku given; Basic assumed, as Azure does", meta.name);
                meta.notes.push(note.clone());
                self.notes.push(note);
                "Basic".to_string()
            }
        };
        let sku = kind
            .require_gateway_sku(&sku_name)
            .map_err(|problem| unsupported(b.at("properties.sku.name"), problem))?;
        if vpn_type == VpnType::PolicyBased {
            let at = b.at("properties.vpnType");
            self.require_feature(Feature::PolicyBasedGateway, Some(sku), at)?;
        }
        let active_active = b.boolean("properties.activeActive")?.unwrap_or(false);
        if active_active {
            let at = b.at("properties.activeActive");
            self.require_feature(Feature::ActiveActive, Some(sku), at)?;
        }
        let enable_bgp = b.boolean("properties.enableBgp")?.unwrap_or(false);
        let mut bgp_settings = self.bgp_settings(b, "properties.bgpSettings")?;
        for field in ["bgpPeeringAddress", "peerWeight"] {
            let path = format!("properties.bgpSettings.{field}");
            if b.value(&path).is_some() {
                self.require_feature(Feature::ConfigurableBgpPeering, None, b.at(&path))?;
            }
        }
        if enable_bgp {
            let at = b.at("properties.enableBgp");
            self.require_feature(Feature::Bgp, Some(sku), at)?;
            if vpn_type == VpnType::PolicyBased {
                return Err(unsupported(
                    b.at("properties.enableBgp"),
                    "policy-based gateways do not support BGP",
                ));
            }
            bgp_settings.get_or_insert(BgpSettings {
                asn: kind.features.default_bgp_asn,
                bgp_peering_address: None,
                peer_weight: None,
            });
        }
        let cfgs = b.array("properties.ipConfigurations")?;
        let want = if active_active { 2 } else { 1 };
        if cfgs.len() != want {
            return Err(invalid(
                b.at("properties.ipConfigurations"),
                format!(
                    "{} gateway needs exactly {want} ipConfiguration{}, got {}",
                    if active_active {
                        "an active-active"
                    } else {
                        "a"
                    },
                    if want == 1 { "" } else { "s" },
                    cfgs.len()
                ),
            ));
        }
        let old: Option<VirtualNetworkGateway> = match self.find(&meta.id) {
            Some(Resource::VirtualNetworkGateway(g)) => Some(g.clone()),
            _ => None,
        };
        let mut out: Vec<GatewayIpConfiguration> = Vec::new();
        for (i, v) in cfgs.iter().enumerate() {
            let cb = b.sub(v, &format!("properties.ipConfigurations[{i}]"));
            let name = cb.string("name")?.unwrap_or("default").to_string();
            let at_subnet = cb.at("properties.subnet.id");
            let subnet_id = cb
                .id_ref("properties.subnet")?
                .ok_or_else(|| invalid(cb.at("properties.subnet"), "is required"))?
                .to_string();
            let Some((vnet, subnet)) = self.subnet(&subnet_id) else {
                return Err(SiteError::MissingReference {
                    at: at_subnet,
                    target: subnet_id,
                });
            };
            if !subnet.is_gateway_subnet() {
                return Err(invalid(
                    at_subnet,
                    format!(
                        "a VPN gateway must be placed in the subnet named GatewaySubnet, not '{}'",
                        subnet.name
                    ),
                ));
            }
            if let Some(first) = out.first() {
                if !same_id(&first.subnet, &subnet_id) {
                    return Err(invalid(
                        at_subnet,
                        "all ipConfigurations of a gateway must use the same GatewaySubnet",
                    ));
                }
            }
            let vnet_id = vnet.meta.id.clone();
            let prefix = subnet.address_prefix;
            let other_gw = self.view().into_iter().find_map(|r| match r {
                Resource::VirtualNetworkGateway(g)
                    if !same_id(&g.meta.id, &meta.id)
                        && g.gateway_type.eq_ignore_ascii_case(&gateway_type)
                        && g.ip_configurations.iter().any(|c| {
                            split_subnet_id(&c.subnet).is_some_and(|(v, _)| same_id(v, &vnet_id))
                        }) =>
                {
                    Some(g.meta.name.clone())
                }
                _ => None,
            });
            if let Some(other) = other_gw {
                return Err(invalid(
                    at_subnet,
                    format!("virtual network already has a {gateway_type} gateway ('{other}'); a VNet holds one"),
                ));
            }
            let pip_at = cb.at("properties.publicIPAddress.id");
            let pip = cb.id_ref("properties.publicIPAddress")?.ok_or_else(|| {
                invalid(
                    cb.at("properties.publicIPAddress"),
                    "is required: a VPN gateway needs a public IP",
                )
            })?;
            match self.require(pip, "Microsoft.Network/publicIPAddresses", pip_at.clone())? {
                Resource::PublicIpAddress(p)
                    if p.sku == PublicIpSku::Standard && sku.name.eq_ignore_ascii_case("Basic") =>
                {
                    return Err(unsupported(
                        pip_at,
                        "the Basic gateway SKU needs a Basic public IP address",
                    ));
                }
                _ => {}
            }
            if let Some(holder) = self.public_ip_holder(pip, &meta.id) {
                return Err(invalid(
                    pip_at,
                    format!("public IP {pip} is already attached to {holder}"),
                ));
            }
            if out.iter().any(|c| same_id(&c.public_ip_address, pip)) {
                return Err(invalid(
                    pip_at,
                    "each gateway instance needs its own public IP",
                ));
            }
            let mut used = self.used_in_subnet(&subnet_id, &meta.id);
            used.extend(out.iter().map(|c| c.private_ip_address));
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
            let private_ip_address = previous
                .or_else(|| ipam::first_free_in_subnet(prefix, &used))
                .ok_or_else(|| SiteError::PoolExhausted {
                    at: at_subnet.clone(),
                    problem: format!(
                        "GatewaySubnet {prefix} has no free address left for the gateway instance"
                    ),
                })?;
            out.push(GatewayIpConfiguration {
                name,
                subnet: subnet_id,
                public_ip_address: pip.to_string(),
                private_ip_address,
            });
        }
        let tunnels = self.tunnels_of(&meta.id, "");
        if tunnels > sku.s2s_tunnels as usize {
            return Err(SiteError::TunnelLimit {
                at: b.at("properties.sku.name"),
                problem: format!(
                    "the {} SKU allows {} site-to-site tunnels on a {} site, but {tunnels} connections use this gateway",
                    sku.name, sku.s2s_tunnels, kind.name
                ),
            });
        }
        let vpn_gateway_generation = b
            .string("properties.vpnGatewayGeneration")?
            .map(str::to_string);
        if !gateway_type.eq_ignore_ascii_case("Vpn") {
            let note = format!(
                "{}: {gateway_type} gateways are recorded, not realized",
                meta.name
            );
            meta.notes.push(note.clone());
            self.notes.push(note);
        }
        Ok(Resource::VirtualNetworkGateway(VirtualNetworkGateway {
            meta,
            gateway_type,
            vpn_type,
            sku: sku.name.clone(),
            active_active,
            enable_bgp,
            bgp_settings,
            ip_configurations: out,
            vpn_gateway_generation,
        }))
    }
}
