//! Connections (IPsec, Vnet2Vnet) and their custom IPsec/IKE policies.

use super::*;

impl Planner<'_> {
    pub(super) fn connection(
        &mut self,
        meta: ResourceMeta,
        b: &Body,
    ) -> Result<Resource, SiteError> {
        let kind = self.kind;
        let ct_path = "properties.connectionType";
        let ct = b.required_string(ct_path)?;
        let connection_type = match ct.to_ascii_lowercase().as_str() {
            "ipsec" => ConnectionType::IPsec,
            "vnet2vnet" => ConnectionType::Vnet2Vnet,
            "expressroute" => ConnectionType::ExpressRoute,
            "vpnclient" => ConnectionType::VPNClient,
            _ => {
                return Err(invalid(
                    b.at(ct_path),
                    format!(
                    "{ct:?} is not a connection type (IPsec, Vnet2Vnet, ExpressRoute, VPNClient)"
                ),
                ))
            }
        };
        if connection_type == ConnectionType::Vnet2Vnet {
            self.require_feature(Feature::Vnet2Vnet, None, b.at(ct_path))?;
        }
        let gw1_at = b.at("properties.virtualNetworkGateway1.id");
        let gw1 = b
            .id_ref("properties.virtualNetworkGateway1")?
            .ok_or_else(|| invalid(b.at("properties.virtualNetworkGateway1"), "is required"))?
            .to_string();
        let g1 = self.require_gateway(&gw1, gw1_at.clone())?.clone();
        let sku = kind.gateway_sku(&g1.sku);
        let gw1_vnet: Vec<Ipv4Net> = g1
            .ip_configurations
            .first()
            .and_then(|c| split_subnet_id(&c.subnet))
            .and_then(|(v, _)| self.vnet(v))
            .map(|v| v.address_space.clone())
            .unwrap_or_default();
        let mut virtual_network_gateway2 = None;
        let mut local_network_gateway2 = None;
        let remote_prefixes: Vec<Ipv4Net>;
        let remote_at;
        match connection_type {
            ConnectionType::IPsec => {
                remote_at = b.at("properties.localNetworkGateway2.id");
                let l = b
                    .id_ref("properties.localNetworkGateway2")?
                    .ok_or_else(|| {
                        invalid(
                            b.at("properties.localNetworkGateway2"),
                            "is required for an IPsec connection",
                        )
                    })?;
                remote_prefixes = if self.find(l).is_none() && self.is_elsewhere(l) {
                    Vec::new()
                } else {
                    let lng_type = "Microsoft.Network/localNetworkGateways";
                    match self.require(l, lng_type, remote_at.clone())? {
                        Resource::LocalNetworkGateway(lng) => lng.address_prefixes.clone(),
                        _ => return Err(invalid(remote_at, format!("{l} is not a {lng_type}"))),
                    }
                };
                local_network_gateway2 = Some(l.to_string());
            }
            ConnectionType::Vnet2Vnet => {
                remote_at = b.at("properties.virtualNetworkGateway2.id");
                let g = b
                    .id_ref("properties.virtualNetworkGateway2")?
                    .ok_or_else(|| {
                        invalid(
                            b.at("properties.virtualNetworkGateway2"),
                            "is required for a Vnet2Vnet connection",
                        )
                    })?;
                if same_id(g, &gw1) {
                    return Err(invalid(
                        remote_at,
                        "a connection cannot connect a gateway to itself",
                    ));
                }
                remote_prefixes = if self.find(g).is_none() && self.is_elsewhere(g) {
                    Vec::new()
                } else {
                    let g2 = self.require_gateway(g, remote_at.clone())?;
                    g2.ip_configurations
                        .first()
                        .and_then(|c| split_subnet_id(&c.subnet))
                        .and_then(|(v, _)| self.vnet(v))
                        .map(|v| v.address_space.clone())
                        .unwrap_or_default()
                };
                virtual_network_gateway2 = Some(g.to_string());
            }
            ConnectionType::ExpressRoute | ConnectionType::VPNClient => {
                remote_at = b.at(ct_path);
                remote_prefixes = Vec::new();
            }
        }
        for r in &remote_prefixes {
            if let Some(l) = gw1_vnet.iter().find(|l| overlaps(**l, *r)) {
                return Err(SiteError::AddressConflict {
                    at: remote_at,
                    problem: format!(
                        "the remote address space {r} overlaps the local virtual network's {l}; connected networks must not overlap"
                    ),
                });
            }
        }
        let shared_key = match b.value("properties.sharedKey") {
            None => None,
            Some(Value::String(s)) => {
                if s.is_empty()
                    || s.len() > 128
                    || !s.chars().all(|c| c.is_ascii_graphic() || c == ' ')
                {
                    return Err(invalid(
                        b.at("properties.sharedKey"),
                        "must be 1–128 printable ASCII characters (value not shown)",
                    ));
                }
                Some(SharedKey::new(s.clone()))
            }
            Some(other) => {
                return Err(invalid(
                    b.at("properties.sharedKey"),
                    format!(
                        "expected a string, got {} (value not shown)",
                        type_name(other)
                    ),
                ))
            }
        };
        if shared_key.is_none()
            && matches!(
                connection_type,
                ConnectionType::IPsec | ConnectionType::Vnet2Vnet
            )
        {
            return Err(invalid(
                b.at("properties.sharedKey"),
                "is required: hybridnet does not generate keys",
            ));
        }
        let routing_weight = b.integer("properties.routingWeight")?.unwrap_or(0);
        let cp_path = "properties.connectionProtocol";
        let policy_based = g1.vpn_type == VpnType::PolicyBased;
        let connection_protocol = match b.string(cp_path)? {
            None if policy_based => ConnectionProtocol::IKEv1,
            None => ConnectionProtocol::IKEv2,
            Some(s) if policy_based && s.eq_ignore_ascii_case("IKEv2") => {
                return Err(unsupported(
                    b.at(cp_path),
                    format!(
                        "gateway '{}' is policy-based, which speaks IKEv1 only",
                        g1.meta.name
                    ),
                ))
            }
            Some(s) if s.eq_ignore_ascii_case("IKEv2") => ConnectionProtocol::IKEv2,
            Some(s) if s.eq_ignore_ascii_case("IKEv1") => ConnectionProtocol::IKEv1,
            Some(s) => {
                return Err(invalid(
                    b.at(cp_path),
                    format!("{s:?} is not IKEv2 or IKEv1"),
                ))
            }
        };
        let cp_name = format!("{connection_protocol:?}");
        kind.check_connection_protocol(&cp_name)
            .map_err(|problem| unsupported(b.at(cp_path), problem))?;
        let dpd_path = "properties.dpdTimeoutSeconds";
        let dpd_timeout_seconds = kind
            .dpd_timeout(b.integer(dpd_path)?)
            .map_err(|problem| invalid(b.at(dpd_path), problem))?;
        let mut ipsec_policies = Vec::new();
        let policies = b.array("properties.ipsecPolicies")?;
        let policies_at = b.at("properties.ipsecPolicies");
        kind.check_ipsec_policy_count(policies.len())
            .map_err(|problem| unsupported(policies_at.clone(), problem))?;
        if !policies.is_empty() {
            kind.check_custom_policy_sku(&g1.sku).map_err(|problem| {
                let gw = &g1.meta.name;
                unsupported(
                    policies_at,
                    format!("{problem}; gateway '{gw}' is {}", g1.sku),
                )
            })?;
        }
        for (i, v) in policies.iter().enumerate() {
            ipsec_policies.push(parse_ipsec_policy(
                &b.sub(v, &format!("properties.ipsecPolicies[{i}]")),
            )?);
        }
        let pbts_path = "properties.usePolicyBasedTrafficSelectors";
        let use_policy_based_traffic_selectors = b.boolean(pbts_path)?.unwrap_or(false);
        if use_policy_based_traffic_selectors {
            self.require_feature(Feature::PolicyBasedTrafficSelectors, None, b.at(pbts_path))?;
        }
        let enable_bgp = b.boolean("properties.enableBgp")?.unwrap_or(false);
        if enable_bgp && !g1.enable_bgp {
            return Err(invalid(
                b.at("properties.enableBgp"),
                format!("gateway '{}' does not have BGP enabled", g1.meta.name),
            ));
        }
        if matches!(
            connection_type,
            ConnectionType::IPsec | ConnectionType::Vnet2Vnet
        ) {
            if let Some(sku) = sku {
                let n = self.tunnels_of(&gw1, &meta.id) + 1;
                if policy_based && n > 1 {
                    return Err(SiteError::TunnelLimit {
                        at: gw1_at,
                        problem: format!(
                            "gateway '{}' is policy-based, which allows one tunnel; this would be connection {n}",
                            g1.meta.name
                        ),
                    });
                }
                if n > sku.s2s_tunnels as usize {
                    return Err(SiteError::TunnelLimit {
                        at: gw1_at,
                        problem: format!(
                            "gateway '{}' ({} SKU) allows {} site-to-site tunnels on a {} site; this would be connection {n}",
                            g1.meta.name, sku.name, sku.s2s_tunnels, kind.name
                        ),
                    });
                }
            }
        }
        Ok(Resource::Connection(Connection {
            meta,
            connection_type,
            virtual_network_gateway1: gw1,
            virtual_network_gateway2,
            local_network_gateway2,
            shared_key,
            routing_weight,
            connection_protocol,
            dpd_timeout_seconds,
            ipsec_policies,
            use_policy_based_traffic_selectors,
            enable_bgp,
        }))
    }
}

pub(super) fn parse_ipsec_policy(b: &Body) -> Result<IpsecPolicy, SiteError> {
    fn field<T>(
        b: &Body,
        name: &str,
        parse: fn(&str) -> Option<T>,
        all: &[&str],
    ) -> Result<T, SiteError> {
        let s = b.required_string(name)?;
        parse(s).ok_or_else(|| {
            invalid(
                b.at(name),
                format!("{s:?} is not one of {}", all.join(", ")),
            )
        })
    }
    let life = b
        .integer("saLifeTimeSeconds")?
        .ok_or_else(|| invalid(b.at("saLifeTimeSeconds"), "is required"))?;
    if !(300..=i64::from(u32::MAX)).contains(&life) {
        return Err(invalid(
            b.at("saLifeTimeSeconds"),
            format!("{life} is out of range: at least 300 seconds"),
        ));
    }
    let size = b
        .integer("saDataSizeKilobytes")?
        .ok_or_else(|| invalid(b.at("saDataSizeKilobytes"), "is required"))?;
    if size < 1024 {
        return Err(invalid(
            b.at("saDataSizeKilobytes"),
            format!("{size} is out of range: at least 1024 kilobytes"),
        ));
    }
    let p = IpsecPolicy {
        sa_life_time_seconds: life as u32,
        sa_data_size_kilobytes: size as u64,
        ike_encryption: field(b, "ikeEncryption", IkeEncryption::parse, IkeEncryption::ALL)?,
        ike_integrity: field(b, "ikeIntegrity", IkeIntegrity::parse, IkeIntegrity::ALL)?,
        dh_group: field(b, "dhGroup", DhGroup::parse, DhGroup::ALL)?,
        ipsec_encryption: field(
            b,
            "ipsecEncryption",
            IpsecEncryption::parse,
            IpsecEncryption::ALL,
        )?,
        ipsec_integrity: field(
            b,
            "ipsecIntegrity",
            IpsecIntegrity::parse,
            IpsecIntegrity::ALL,
        )?,
        pfs_group: field(b, "pfsGroup", PfsGroup::parse, PfsGroup::ALL)?,
    };
    let ike_gcm = matches!(
        p.ike_encryption,
        IkeEncryption::GcmAes128 | IkeEncryption::GcmAes256
    );
    let ike_integ_gcm = matches!(
        p.ike_integrity,
        IkeIntegrity::GcmAes128 | IkeIntegrity::GcmAes256
    );
    if (ike_gcm || ike_integ_gcm) && p.ike_encryption.as_str() != p.ike_integrity.as_str() {
        return Err(invalid(
            b.at("ikeIntegrity"),
            format!(
                "{} with ikeEncryption {}: GCMAES encryption requires the same GCMAES integrity value",
                p.ike_integrity.as_str(),
                p.ike_encryption.as_str()
            ),
        ));
    }
    let esp_gcm = matches!(
        p.ipsec_encryption,
        IpsecEncryption::GcmAes128 | IpsecEncryption::GcmAes192 | IpsecEncryption::GcmAes256
    );
    let esp_integ_gcm = matches!(
        p.ipsec_integrity,
        IpsecIntegrity::GcmAes128 | IpsecIntegrity::GcmAes192 | IpsecIntegrity::GcmAes256
    );
    if (esp_gcm || esp_integ_gcm) && p.ipsec_encryption.as_str() != p.ipsec_integrity.as_str() {
        return Err(invalid(
            b.at("ipsecIntegrity"),
            format!(
                "{} with ipsecEncryption {}: GCMAES encryption requires the same GCMAES integrity value",
                p.ipsec_integrity.as_str(),
                p.ipsec_encryption.as_str()
            ),
        ));
    }
    if p.dh_group == DhGroup::None {
        return Err(invalid(
            b.at("dhGroup"),
            "None: an IKEv2 SA needs a Diffie-Hellman group",
        ));
    }
    Ok(p)
}
