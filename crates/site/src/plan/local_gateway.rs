//! Local network gateways.

use super::*;

impl Planner<'_> {
    pub(super) fn local_gateway(
        &mut self,
        meta: ResourceMeta,
        b: &Body,
    ) -> Result<Resource, SiteError> {
        let gateway_ip_address = match b.string("properties.gatewayIpAddress")? {
            Some(s) if s.contains(':') => {
                return Err(unsupported(
                    b.at("properties.gatewayIpAddress"),
                    format!("{s} is IPv6; hybridnet gateways use IPv4"),
                ));
            }
            Some(s) => Some(parse_addr(s, b.at("properties.gatewayIpAddress"))?),
            None => None,
        };
        let fqdn = b
            .string("properties.fqdn")?
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if gateway_ip_address.is_none() && fqdn.is_none() {
            return Err(invalid(
                b.at("properties.gatewayIpAddress"),
                "is required (or fqdn)",
            ));
        }
        let mut prefixes: Vec<Ipv4Net> = Vec::new();
        for (i, v) in b
            .array("properties.localNetworkAddressSpace.addressPrefixes")?
            .iter()
            .enumerate()
        {
            let path = format!("properties.localNetworkAddressSpace.addressPrefixes[{i}]");
            let s = v.as_str().ok_or_else(|| {
                invalid(
                    b.at(&path),
                    format!("expected a string, got {}", type_name(v)),
                )
            })?;
            let net = parse_prefix(s, b.at(&path))?;
            if let Some(o) = prefixes.iter().find(|o| overlaps(**o, net)) {
                return Err(SiteError::AddressConflict {
                    at: b.at(&path),
                    problem: format!("{net} overlaps {o} in the same address space"),
                });
            }
            prefixes.push(net);
        }
        let bgp_settings = self.bgp_settings(b, "properties.bgpSettings")?;
        if prefixes.is_empty() && bgp_settings.is_none() {
            return Err(invalid(
                b.at("properties.localNetworkAddressSpace.addressPrefixes"),
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
