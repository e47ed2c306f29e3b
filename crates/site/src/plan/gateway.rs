//! Virtual network gateways: type, SKU and features against the kind, BGP settings, one
//! instance per ipConfiguration in the VNet's GatewaySubnet with its own public IP, and the
//! SKU's tunnel limit against the connections already using the gateway.

use serde_json::Value;
use std::net::Ipv4Addr;

use super::addresses::dynamic_address;
use super::{invalid, split_subnet_id, unsupported, Planner};
use crate::error::{Location, SiteError};
use crate::kind::{Feature, GatewaySku};
use crate::model::{
    same_id, BgpSettings, ConnectionProtocol, GatewayIpConfiguration, PublicIpSku, Resource,
    ResourceMeta, VirtualNetworkGateway, VpnType,
};
use crate::props::gateway::{self as gateway_props, VirtualNetworkGatewayResource};
use crate::props::{self};

impl Planner<'_> {
    /// `bgpSettings` of a virtual (`own_gateway`) or local network gateway at `path`: the ASN
    /// checked against the kind (its default when absent).
    pub(super) fn bgp_settings(
        &self,
        settings: Option<&gateway_props::BgpSettings>,
        loc: &Location,
        path: &str,
        own_gateway: bool,
    ) -> Result<Option<BgpSettings>, SiteError> {
        let Some(s) = settings else {
            return Ok(None);
        };
        let asn = match s.asn {
            Some(a) => {
                let checked = u64::try_from(a)
                    .map_err(|_| format!("ASN {a} is out of range: ASNs are positive"))
                    .and_then(|u| self.kind.check_bgp_asn(u, own_gateway).map(|()| u));
                let u = checked.map_err(|p| unsupported(loc.at(format!("{path}.asn")), p))?;
                u as u32
            }
            None => self.kind.features.default_bgp_asn,
        };
        Ok(Some(BgpSettings {
            asn,
            bgp_peering_address: s.bgp_peering_address.clone(),
            peer_weight: s.peer_weight,
            custom_bgp_addresses: Vec::new(),
        }))
    }

    /// A virtual network gateway resource.
    pub(super) fn vnet_gateway(
        &mut self,
        mut meta: ResourceMeta,
        loc: &Location,
        body: &Value,
    ) -> Result<Resource, SiteError> {
        let kind = self.kind;
        let p = props::parse::<VirtualNetworkGatewayResource>(body, loc)?.properties;
        let gateway_type = p.gateway_type.clone().unwrap_or_else(|| "Vpn".into());
        if !["Vpn", "ExpressRoute", "LocalGateway"]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&gateway_type))
        {
            return Err(invalid(
                loc.at("properties.gatewayType"),
                format!("{gateway_type:?} is not a gateway type (Vpn, ExpressRoute)"),
            ));
        }
        let vpn_type = p.vpn_type.unwrap_or(VpnType::RouteBased);
        if let Some(Resource::VirtualNetworkGateway(old)) = self.existing(&meta.id) {
            if old.vpn_type != vpn_type {
                return Err(invalid(
                    loc.at("properties.vpnType"),
                    format!(
                        "the VPN type of gateway '{}' is {:?} and cannot be changed to {vpn_type:?}: delete the gateway and create it again, as on Azure",
                        old.meta.name, old.vpn_type
                    ),
                ));
            }
        }
        self.require_feature(Feature::VnetGateways, None, loc.at("type"))?;
        let sku_name = match &p.sku.name {
            Some(s) => s.clone(),
            None => {
                let note = format!("{}: no sku given; Basic assumed, as Azure does", meta.name);
                meta.notes.push(note.clone());
                self.notes.push(note);
                "Basic".to_string()
            }
        };
        let sku = kind
            .require_gateway_sku(&sku_name)
            .map_err(|problem| unsupported(loc.at("properties.sku.name"), problem))?;
        let active_active = p.active_active.unwrap_or(false);
        let enable_bgp = p.enable_bgp.unwrap_or(false);
        let mut bgp_settings = self.gateway_features(&p, sku, vpn_type, loc)?;
        let want = if active_active { 2 } else { 1 };
        if p.ip_configurations.len() != want {
            return Err(invalid(
                loc.at("properties.ipConfigurations"),
                format!(
                    "{} gateway needs exactly {want} ipConfiguration{}, got {}",
                    if active_active {
                        "an active-active"
                    } else {
                        "a"
                    },
                    if want == 1 { "" } else { "s" },
                    p.ip_configurations.len()
                ),
            ));
        }
        let mut out: Vec<GatewayIpConfiguration> = Vec::new();
        for (i, c) in p.ip_configurations.iter().enumerate() {
            let at =
                |property: &str| loc.at(format!("properties.ipConfigurations[{i}].{property}"));
            let instance = self.gateway_instance(&meta.id, &gateway_type, sku, c, &out, &at)?;
            out.push(instance);
        }
        let tunnels = self.tunnels_of(&meta.id, "");
        if tunnels > sku.s2s_tunnels as usize {
            return Err(SiteError::TunnelLimit {
                at: loc.at("properties.sku.name"),
                problem: format!(
                    "the {} SKU allows {} site-to-site tunnels on {} site, but {tunnels} connections use this gateway",
                    sku.name, sku.s2s_tunnels, kind.a_kind()
                ),
            });
        }
        let custom = p
            .bgp_settings
            .as_ref()
            .and_then(|b| b.bgp_peering_addresses.as_deref());
        if let (Some(b), Some(list)) = (bgp_settings.as_mut(), custom) {
            b.custom_bgp_addresses = self.custom_bgp_addresses(list, &out, loc)?;
        }
        if let Some(b) = bgp_settings.as_mut() {
            if b.custom_bgp_addresses.is_empty() {
                // the older form: APIPA addresses in bgpPeeringAddress, one per instance
                b.custom_bgp_addresses = legacy_apipa(b.bgp_peering_address.as_deref(), &out);
            }
        }
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
            vpn_gateway_generation: p.vpn_gateway_generation,
        }))
    }

    /// `bgpSettings.bgpPeeringAddresses`: per instance (named by its ipConfiguration), the
    /// custom APIPA addresses it peers from, each in Azure's range, on a kind that allows
    /// configurable peering addresses.
    fn custom_bgp_addresses(
        &self,
        list: &[gateway_props::BgpPeeringAddress],
        instances: &[crate::model::GatewayIpConfiguration],
        loc: &Location,
    ) -> Result<Vec<(String, Vec<Ipv4Addr>)>, SiteError> {
        let (low, high) = crate::model::APIPA_BGP_RANGE;
        let mut out = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            let path = format!("properties.bgpSettings.bgpPeeringAddresses[{i}]");
            let addresses = entry.custom_bgp_ip_addresses.as_deref().unwrap_or_default();
            if addresses.is_empty() {
                continue;
            }
            self.require_feature(
                Feature::ConfigurableBgpPeering,
                None,
                loc.at(format!("{path}.customBgpIpAddresses")),
            )?;
            let id = entry.ipconfiguration_id.as_deref().unwrap_or_default();
            let name = id.rsplit('/').next().unwrap_or_default();
            let Some(instance) = instances.iter().find(|c| c.name.eq_ignore_ascii_case(name))
            else {
                return Err(invalid(
                    loc.at(format!("{path}.ipconfigurationId")),
                    format!(
                        "{id:?} names none of the gateway's ipConfigurations ({})",
                        instances
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            };
            let mut parsed = Vec::new();
            for (j, a) in addresses.iter().enumerate() {
                let at = loc.at(format!("{path}.customBgpIpAddresses[{j}]"));
                let ip: Ipv4Addr = a
                    .trim()
                    .parse()
                    .map_err(|_| invalid(at.clone(), format!("{a:?} is not an IPv4 address")))?;
                if ip < low || ip > high {
                    return Err(invalid(
                        at,
                        format!("{ip} is outside the APIPA range Azure allows for VPN gateways ({low} - {high})"),
                    ));
                }
                parsed.push(ip);
            }
            out.push((instance.name.clone(), parsed));
        }
        Ok(out)
    }

    /// What the gateway asks of the kind and SKU (policy-based, active-active, BGP); returns
    /// its BGP settings (the kind's default ASN when BGP is on and none is given).
    fn gateway_features(
        &self,
        p: &gateway_props::VirtualNetworkGatewayProperties,
        sku: &GatewaySku,
        vpn_type: VpnType,
        loc: &Location,
    ) -> Result<Option<BgpSettings>, SiteError> {
        if vpn_type == VpnType::PolicyBased {
            let at = loc.at("properties.vpnType");
            self.require_feature(Feature::PolicyBasedGateway, Some(sku), at.clone())?;
            if !self.gateway_protocols.contains(&ConnectionProtocol::IKEv1) {
                return Err(unsupported(
                    at,
                    "a PolicyBased gateway speaks IKEv1 only, which the lab's VPN gateway does not: use RouteBased (usePolicyBasedTrafficSelectors on a connection serves policy-based peers)",
                ));
            }
        }
        if p.active_active == Some(true) {
            let at = loc.at("properties.activeActive");
            self.require_feature(Feature::ActiveActive, Some(sku), at)?;
        }
        let settings = p.bgp_settings.as_ref();
        let mut bgp_settings = self.bgp_settings(settings, loc, "properties.bgpSettings", true)?;
        if let Some(s) = settings {
            let configured = [
                ("bgpPeeringAddress", s.bgp_peering_address.is_some()),
                ("peerWeight", s.peer_weight.is_some()),
            ];
            for (field, _) in configured.iter().filter(|(_, set)| *set) {
                let at = loc.at(format!("properties.bgpSettings.{field}"));
                self.require_feature(Feature::ConfigurableBgpPeering, None, at)?;
            }
        }
        check_peer_weight(settings, loc)?;
        if p.enable_bgp == Some(true) {
            let at = loc.at("properties.enableBgp");
            self.require_feature(Feature::Bgp, Some(sku), at.clone())?;
            if vpn_type == VpnType::PolicyBased {
                return Err(unsupported(at, "policy-based gateways do not support BGP"));
            }
            bgp_settings.get_or_insert(BgpSettings {
                asn: self.kind.features.default_bgp_asn,
                bgp_peering_address: None,
                peer_weight: None,
                custom_bgp_addresses: Vec::new(),
            });
        }
        Ok(bgp_settings)
    }

    /// One gateway instance: in the GatewaySubnet (the same for all instances, one gateway of a
    /// type per VNet), with its own public IP and a private address from .4 on. `earlier` are
    /// the instances before it.
    fn gateway_instance(
        &self,
        gateway_id: &str,
        gateway_type: &str,
        sku: &GatewaySku,
        c: &gateway_props::GatewayIpConfiguration,
        earlier: &[GatewayIpConfiguration],
        at: &dyn Fn(&str) -> Location,
    ) -> Result<GatewayIpConfiguration, SiteError> {
        let name = c.name.clone().unwrap_or_else(|| "default".into());
        let at_subnet = at("properties.subnet.id");
        let subnet_id = c.properties.subnet.id.clone();
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
        if earlier
            .first()
            .is_some_and(|first| !same_id(&first.subnet, &subnet_id))
        {
            return Err(invalid(
                at_subnet,
                "all ipConfigurations of a gateway must use the same GatewaySubnet",
            ));
        }
        let vnet_id = vnet.meta.id.clone();
        let prefix = subnet.address_prefix;
        let other_gw = self.view().into_iter().find_map(|r| match r {
            Resource::VirtualNetworkGateway(g)
                if !same_id(&g.meta.id, gateway_id)
                    && g.gateway_type.eq_ignore_ascii_case(gateway_type)
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
        let pip_at = at("properties.publicIPAddress.id");
        let pip = c
            .properties
            .public_ip_address
            .as_ref()
            .map(|r| r.id.as_str())
            .ok_or_else(|| {
                invalid(
                    at("properties.publicIPAddress"),
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
        if let Some(holder) = self.public_ip_holder(pip, gateway_id) {
            return Err(invalid(
                pip_at,
                format!("public IP {pip} is already attached to {holder}"),
            ));
        }
        if earlier.iter().any(|e| same_id(&e.public_ip_address, pip)) {
            return Err(invalid(
                pip_at,
                "each gateway instance needs its own public IP",
            ));
        }
        let mut used = self.used_in_subnet(&subnet_id, gateway_id);
        used.extend(earlier.iter().map(|e| e.private_ip_address));
        used.extend(self.requested_by_others(&subnet_id, gateway_id));
        let previous = match self.find(gateway_id) {
            Some(Resource::VirtualNetworkGateway(old)) => old
                .ip_configurations
                .iter()
                .find(|o| o.name.eq_ignore_ascii_case(&name) && same_id(&o.subnet, &subnet_id))
                .map(|o| o.private_ip_address),
            _ => None,
        };
        let private_ip_address =
            dynamic_address(prefix, previous, &used).ok_or_else(|| SiteError::PoolExhausted {
                at: at_subnet.clone(),
                problem: format!(
                    "GatewaySubnet {prefix} has no free address left for the gateway instance"
                ),
            })?;
        Ok(GatewayIpConfiguration {
            name,
            subnet: subnet_id,
            public_ip_address: pip.to_string(),
            private_ip_address,
        })
    }
}

/// `bgpSettings.peerWeight` other than 0 is refused: the lab's BGP speaker gives every route
/// the same weight, so a preference by weight would be stored and not acted on.
pub(super) fn check_peer_weight(
    settings: Option<&gateway_props::BgpSettings>,
    loc: &Location,
) -> Result<(), SiteError> {
    match settings.and_then(|s| s.peer_weight) {
        Some(w) if w != 0 => Err(unsupported(
            loc.at("properties.bgpSettings.peerWeight"),
            format!("{w}: the lab's BGP speaker does not weigh routes; only 0 (Azure's default) is realized"),
        )),
        _ => Ok(()),
    }
}

/// APIPA addresses written in `bgpSettings.bgpPeeringAddress` (comma-separated, one per
/// instance in order), as older templates give them.
fn legacy_apipa(
    text: Option<&str>,
    instances: &[crate::model::GatewayIpConfiguration],
) -> Vec<(String, Vec<Ipv4Addr>)> {
    let (low, high) = crate::model::APIPA_BGP_RANGE;
    text.into_iter()
        .flat_map(|t| t.split(','))
        .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
        .filter(|a| *a >= low && *a <= high)
        .zip(instances)
        .map(|(a, c)| (c.name.clone(), vec![a]))
        .collect()
}
