//! Connections (IPsec, Vnet2Vnet): the gateways they join and whose networks must not overlap,
//! key, protocol, DPD and custom IPsec/IKE policy against the kind, and the gateway SKU's tunnel
//! limit.

use ipnet::Ipv4Net;
use serde_json::Value;

use super::vnet::overlaps;
use super::{invalid, split_subnet_id, unsupported, Planner};
use crate::error::{Location, SiteError};
use crate::kind::Feature;
use crate::model::{
    same_id, Connection, ConnectionProtocol, ConnectionType, DhGroup, IkeEncryption, IkeIntegrity,
    IpsecEncryption, IpsecIntegrity, IpsecPolicy, Resource, ResourceMeta, VirtualNetworkGateway,
    VpnType,
};
use crate::props::connection::{self as connection_props, ConnectionResource};
use crate::props::{self};

/// The remote end of a connection: its id and the prefixes behind it.
struct Remote {
    local_network_gateway2: Option<String>,
    virtual_network_gateway2: Option<String>,
    prefixes: Vec<Ipv4Net>,
    at: Location,
}

impl Planner<'_> {
    /// A connection resource.
    pub(super) fn connection(
        &mut self,
        meta: ResourceMeta,
        loc: &Location,
        body: &Value,
    ) -> Result<Resource, SiteError> {
        let kind = self.kind;
        let p = props::parse::<ConnectionResource>(body, loc)?.properties;
        let ct_at = loc.at("properties.connectionType");
        let connection_type = p.connection_type;
        if connection_type == ConnectionType::Vnet2Vnet {
            self.require_feature(Feature::Vnet2Vnet, None, ct_at.clone())?;
        }
        let gw1_at = loc.at("properties.virtualNetworkGateway1.id");
        let gw1 = p.virtual_network_gateway1.id.clone();
        let g1 = self.require_gateway(&gw1, gw1_at.clone())?.clone();
        let remote = self.remote_end(&p, loc, ct_at)?;
        let local = self.gateway_address_space(&g1);
        for r in &remote.prefixes {
            if let Some(l) = local.iter().find(|l| overlaps(**l, *r)) {
                return Err(SiteError::AddressConflict {
                    at: remote.at,
                    problem: format!(
                        "the remote address space {r} overlaps the local virtual network's {l}; connected networks must not overlap"
                    ),
                });
            }
        }
        let tunnel = matches!(
            connection_type,
            ConnectionType::IPsec | ConnectionType::Vnet2Vnet
        );
        if p.shared_key.is_none() && tunnel {
            return Err(invalid(
                loc.at("properties.sharedKey"),
                "is required: hybridnet does not generate keys",
            ));
        }
        let cp_at = loc.at("properties.connectionProtocol");
        let policy_based = g1.vpn_type == VpnType::PolicyBased;
        let connection_protocol = match p.connection_protocol {
            None if policy_based => ConnectionProtocol::IKEv1,
            None => ConnectionProtocol::IKEv2,
            Some(ConnectionProtocol::IKEv2) if policy_based => {
                return Err(unsupported(
                    cp_at,
                    format!(
                        "gateway '{}' is policy-based, which speaks IKEv1 only",
                        g1.meta.name
                    ),
                ))
            }
            Some(cp) => cp,
        };
        kind.check_connection_protocol(&format!("{connection_protocol:?}"))
            .map_err(|problem| unsupported(cp_at.clone(), problem))?;
        if !self.gateway_protocols.contains(&connection_protocol) {
            return Err(unsupported(
                cp_at,
                format!(
                    "{connection_protocol:?} is accepted on {} site, but the lab's VPN gateway speaks {} only",
                    kind.a_kind(),
                    self.gateway_protocols
                        .iter()
                        .map(|p| format!("{p:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let dpd_at = loc.at("properties.dpdTimeoutSeconds");
        let dpd_timeout_seconds = kind
            .dpd_timeout(p.dpd_timeout_seconds)
            .map_err(|problem| invalid(dpd_at, problem))?;
        let ipsec_policies = self.ipsec_policies(&p.ipsec_policies, &g1, loc)?;
        let use_policy_based_traffic_selectors =
            p.use_policy_based_traffic_selectors.unwrap_or(false);
        if use_policy_based_traffic_selectors {
            let at = loc.at("properties.usePolicyBasedTrafficSelectors");
            self.require_feature(Feature::PolicyBasedTrafficSelectors, None, at.clone())?;
            if ipsec_policies.is_empty() {
                return Err(invalid(
                    at,
                    "true needs a custom IPsec/IKE policy (ipsecPolicies), as on Azure",
                ));
            }
        }
        let enable_bgp = p.enable_bgp.unwrap_or(false);
        if enable_bgp && !g1.enable_bgp {
            return Err(invalid(
                loc.at("properties.enableBgp"),
                format!("gateway '{}' does not have BGP enabled", g1.meta.name),
            ));
        }
        if let (true, Some(l)) = (enable_bgp, &remote.local_network_gateway2) {
            self.check_bgp_peer(&g1, l, loc)?;
        }
        if tunnel {
            self.check_tunnel_limit(&g1, &meta.id, gw1_at)?;
        }
        Ok(Resource::Connection(Connection {
            meta,
            connection_type,
            virtual_network_gateway1: gw1,
            virtual_network_gateway2: remote.virtual_network_gateway2,
            local_network_gateway2: remote.local_network_gateway2,
            shared_key: p.shared_key,
            routing_weight: p.routing_weight.unwrap_or(0),
            connection_protocol,
            dpd_timeout_seconds,
            ipsec_policies,
            use_policy_based_traffic_selectors,
            enable_bgp,
        }))
    }

    /// The address space of the VNet a gateway sits in (empty when unknown).
    fn gateway_address_space(&self, g: &VirtualNetworkGateway) -> Vec<Ipv4Net> {
        g.ip_configurations
            .first()
            .and_then(|c| split_subnet_id(&c.subnet))
            .and_then(|(v, _)| self.vnet(v))
            .map(|v| v.address_space.clone())
            .unwrap_or_default()
    }

    /// The remote end: a local network gateway (IPsec) or another VNet gateway (Vnet2Vnet).
    /// One the template leaves to another site has no prefixes to check here.
    /// A BGP connection to a local network gateway: the gateway must give the device's BGP
    /// address and AS, in another AS than ours (Azure's gateways peer over eBGP).
    fn check_bgp_peer(
        &self,
        g1: &crate::model::VirtualNetworkGateway,
        lng_id: &str,
        loc: &Location,
    ) -> Result<(), SiteError> {
        let at = loc.at("properties.enableBgp");
        let lng_type = "Microsoft.Network/localNetworkGateways";
        let Resource::LocalNetworkGateway(lng) = self.require(lng_id, lng_type, at.clone())? else {
            return Err(invalid(at, format!("{lng_id} is not a {lng_type}")));
        };
        let Some((_, asn)) = lng.bgp_peer() else {
            return Err(invalid(
                at,
                format!(
                    "local network gateway '{}' has no bgpSettings (asn and bgpPeeringAddress) to peer with",
                    lng.meta.name
                ),
            ));
        };
        if g1.bgp_settings.as_ref().is_some_and(|b| b.asn == asn) {
            return Err(invalid(
                at,
                format!(
                    "gateway '{}' and local network gateway '{}' both use AS {asn}; Azure's gateways peer over eBGP, so the ASNs must differ",
                    g1.meta.name, lng.meta.name
                ),
            ));
        }
        Ok(())
    }

    fn remote_end(
        &self,
        p: &connection_props::ConnectionProperties,
        loc: &Location,
        ct_at: Location,
    ) -> Result<Remote, SiteError> {
        let none = |at| Remote {
            local_network_gateway2: None,
            virtual_network_gateway2: None,
            prefixes: Vec::new(),
            at,
        };
        match p.connection_type {
            ConnectionType::IPsec => {
                let at = loc.at("properties.localNetworkGateway2.id");
                let l = &p
                    .local_network_gateway2
                    .as_ref()
                    .ok_or_else(|| {
                        invalid(
                            loc.at("properties.localNetworkGateway2"),
                            "is required for an IPsec connection",
                        )
                    })?
                    .id;
                let prefixes = if self.find(l).is_none() && self.is_elsewhere(l) {
                    Vec::new()
                } else {
                    let lng_type = "Microsoft.Network/localNetworkGateways";
                    match self.require(l, lng_type, at.clone())? {
                        Resource::LocalNetworkGateway(lng) => lng.address_prefixes.clone(),
                        _ => return Err(invalid(at, format!("{l} is not a {lng_type}"))),
                    }
                };
                Ok(Remote {
                    local_network_gateway2: Some(l.clone()),
                    prefixes,
                    ..none(at)
                })
            }
            ConnectionType::Vnet2Vnet => {
                let at = loc.at("properties.virtualNetworkGateway2.id");
                let g = &p
                    .virtual_network_gateway2
                    .as_ref()
                    .ok_or_else(|| {
                        invalid(
                            loc.at("properties.virtualNetworkGateway2"),
                            "is required for a Vnet2Vnet connection",
                        )
                    })?
                    .id;
                if same_id(g, &p.virtual_network_gateway1.id) {
                    return Err(invalid(
                        at,
                        "a connection cannot connect a gateway to itself",
                    ));
                }
                let prefixes = if self.find(g).is_none() && self.is_elsewhere(g) {
                    Vec::new()
                } else {
                    let g2 = self.require_gateway(g, at.clone())?;
                    self.gateway_address_space(g2)
                };
                Ok(Remote {
                    virtual_network_gateway2: Some(g.clone()),
                    prefixes,
                    ..none(at)
                })
            }
            ConnectionType::ExpressRoute | ConnectionType::VPNClient => Ok(none(ct_at)),
        }
    }

    /// The custom policies: as many as the kind allows, on a SKU that takes them, each valid.
    fn ipsec_policies(
        &self,
        policies: &[connection_props::IpsecPolicy],
        g1: &VirtualNetworkGateway,
        loc: &Location,
    ) -> Result<Vec<IpsecPolicy>, SiteError> {
        let at = loc.at("properties.ipsecPolicies");
        self.kind
            .check_ipsec_policy_count(policies.len())
            .map_err(|problem| unsupported(at.clone(), problem))?;
        if !policies.is_empty() {
            self.kind
                .check_custom_policy_sku(&g1.sku)
                .map_err(|problem| {
                    let gw = &g1.meta.name;
                    unsupported(at, format!("{problem}; gateway '{gw}' is {}", g1.sku))
                })?;
        }
        policies
            .iter()
            .enumerate()
            .map(|(i, p)| ipsec_policy(p, &loc.at(format!("properties.ipsecPolicies[{i}]"))))
            .collect()
    }

    /// One more tunnel on the local gateway: one for a policy-based gateway, the SKU's limit
    /// otherwise (a gateway whose SKU this kind does not know is not limited here).
    fn check_tunnel_limit(
        &self,
        g1: &VirtualNetworkGateway,
        connection_id: &str,
        at: Location,
    ) -> Result<(), SiteError> {
        let Some(sku) = self.kind.gateway_sku(&g1.sku) else {
            return Ok(());
        };
        let n = self.tunnels_of(&g1.meta.id, connection_id) + 1;
        let problem = if g1.vpn_type == VpnType::PolicyBased && n > 1 {
            format!(
                "gateway '{}' is policy-based, which allows one tunnel; this would be connection {n}",
                g1.meta.name
            )
        } else if n > sku.s2s_tunnels as usize {
            format!(
                "gateway '{}' ({} SKU) allows {} site-to-site tunnels on {} site; this would be connection {n}",
                g1.meta.name, sku.name, sku.s2s_tunnels, self.kind.a_kind()
            )
        } else {
            return Ok(());
        };
        Err(SiteError::TunnelLimit { at, problem })
    }
}

/// A custom policy's ranges and consistency: lifetimes, GCM paired with GCM, a DH group.
fn ipsec_policy(
    p: &connection_props::IpsecPolicy,
    loc: &Location,
) -> Result<IpsecPolicy, SiteError> {
    let at = |field: &str| loc.at(format!("{}.{field}", loc.property));
    let life = p.sa_life_time_seconds;
    if !(300..=i64::from(u32::MAX)).contains(&life) {
        return Err(invalid(
            at("saLifeTimeSeconds"),
            format!("{life} is out of range: at least 300 seconds"),
        ));
    }
    let size = p.sa_data_size_kilobytes;
    if size < 1024 {
        return Err(invalid(
            at("saDataSizeKilobytes"),
            format!("{size} is out of range: at least 1024 kilobytes"),
        ));
    }
    let policy = IpsecPolicy {
        sa_life_time_seconds: life as u32,
        sa_data_size_kilobytes: size as u64,
        ike_encryption: p.ike_encryption,
        ike_integrity: p.ike_integrity,
        dh_group: p.dh_group,
        ipsec_encryption: p.ipsec_encryption,
        ipsec_integrity: p.ipsec_integrity,
        pfs_group: p.pfs_group,
    };
    let ike_gcm = matches!(
        policy.ike_encryption,
        IkeEncryption::GcmAes128 | IkeEncryption::GcmAes256
    ) || matches!(
        policy.ike_integrity,
        IkeIntegrity::GcmAes128 | IkeIntegrity::GcmAes256
    );
    if ike_gcm && policy.ike_encryption.as_str() != policy.ike_integrity.as_str() {
        return Err(invalid(
            at("ikeIntegrity"),
            format!(
                "{} with ikeEncryption {}: GCMAES encryption requires the same GCMAES integrity value",
                policy.ike_integrity.as_str(),
                policy.ike_encryption.as_str()
            ),
        ));
    }
    let esp_gcm = matches!(
        policy.ipsec_encryption,
        IpsecEncryption::GcmAes128 | IpsecEncryption::GcmAes192 | IpsecEncryption::GcmAes256
    ) || matches!(
        policy.ipsec_integrity,
        IpsecIntegrity::GcmAes128 | IpsecIntegrity::GcmAes192 | IpsecIntegrity::GcmAes256
    );
    if esp_gcm && policy.ipsec_encryption.as_str() != policy.ipsec_integrity.as_str() {
        return Err(invalid(
            at("ipsecIntegrity"),
            format!(
                "{} with ipsecEncryption {}: GCMAES encryption requires the same GCMAES integrity value",
                policy.ipsec_integrity.as_str(),
                policy.ipsec_encryption.as_str()
            ),
        ));
    }
    if policy.dh_group == DhGroup::None {
        return Err(invalid(
            at("dhGroup"),
            "None: an IKEv2 SA needs a Diffie-Hellman group",
        ));
    }
    Ok(policy)
}
