//! Local network gateways: the peer's address (or FQDN) and its prefixes or BGP settings.

use ipnet::Ipv4Net;
use serde_json::Value;

use super::vnet::overlaps;
use super::{invalid, ipv4, unsupported, Planner};
use crate::error::{Location, SiteError};
use crate::model::{LocalNetworkGateway, Resource, ResourceMeta};
use crate::props::{self, local_gateway::LocalNetworkGatewayResource};

impl Planner<'_> {
    /// A local network gateway resource.
    pub(super) fn local_gateway(
        &mut self,
        meta: ResourceMeta,
        loc: &Location,
        body: &Value,
    ) -> Result<Resource, SiteError> {
        let p = props::parse::<LocalNetworkGatewayResource>(body, loc)?.properties;
        let ip_at = loc.at("properties.gatewayIpAddress");
        let gateway_ip_address = match &p.gateway_ip_address {
            Some(s) if s.contains(':') => {
                return Err(unsupported(
                    ip_at,
                    format!("{s} is IPv6; hybridnet gateways use IPv4"),
                ));
            }
            Some(s) => Some(
                s.parse()
                    .map_err(|_| invalid(ip_at.clone(), format!("{s:?} is not an IPv4 address")))?,
            ),
            None => None,
        };
        let fqdn = p.fqdn.filter(|s| !s.is_empty());
        if gateway_ip_address.is_none() && fqdn.is_none() {
            return Err(invalid(ip_at, "is required (or fqdn)"));
        }
        let space_path = "properties.localNetworkAddressSpace.addressPrefixes";
        let mut prefixes: Vec<Ipv4Net> = Vec::new();
        for (i, prefix) in p
            .local_network_address_space
            .address_prefixes
            .iter()
            .enumerate()
        {
            let at = loc.at(format!("{space_path}[{i}]"));
            let net = ipv4(prefix, at.clone())?;
            if let Some(o) = prefixes.iter().find(|o| overlaps(**o, net)) {
                return Err(SiteError::AddressConflict {
                    at,
                    problem: format!("{net} overlaps {o} in the same address space"),
                });
            }
            prefixes.push(net);
        }
        let bgp_settings = self.bgp_settings(
            p.bgp_settings.as_ref(),
            loc,
            "properties.bgpSettings",
            false,
        )?;
        super::gateway::check_peer_weight(p.bgp_settings.as_ref(), loc)?;
        if prefixes.is_empty() && bgp_settings.is_none() {
            return Err(invalid(
                loc.at(space_path),
                "needs at least one prefix (or bgpSettings)",
            ));
        }
        Ok(Resource::LocalNetworkGateway(LocalNetworkGateway {
            meta,
            gateway_ip_address,
            fqdn,
            address_prefixes: prefixes,
            bgp_settings,
        }))
    }
}
