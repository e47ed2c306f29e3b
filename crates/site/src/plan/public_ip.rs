//! Public IP addresses.

use super::*;

impl Planner<'_> {
    pub(super) fn public_ip(
        &mut self,
        meta: ResourceMeta,
        b: &Body,
    ) -> Result<Resource, SiteError> {
        let sku = match b.string("sku.name")? {
            None => PublicIpSku::Basic,
            Some(s) if s.eq_ignore_ascii_case("Basic") => PublicIpSku::Basic,
            Some(s) if s.eq_ignore_ascii_case("Standard") => PublicIpSku::Standard,
            Some(s) => {
                return Err(invalid(
                    b.at("sku.name"),
                    format!("{s:?} is not a public IP SKU (Basic, Standard)"),
                ))
            }
        };
        if sku == PublicIpSku::Standard {
            self.require_feature(Feature::StandardPublicIp, None, b.at("sku.name"))?;
        }
        let allocation_method = match b.string("properties.publicIPAllocationMethod")? {
            None => AllocationMethod::Dynamic,
            Some(s) if s.eq_ignore_ascii_case("Dynamic") => AllocationMethod::Dynamic,
            Some(s) if s.eq_ignore_ascii_case("Static") => AllocationMethod::Static,
            Some(s) => {
                return Err(invalid(
                    b.at("properties.publicIPAllocationMethod"),
                    format!("{s:?} is not Dynamic or Static"),
                ))
            }
        };
        if let Some(v) = b.string("properties.publicIPAddressVersion")? {
            if v.eq_ignore_ascii_case("IPv6") {
                let at = b.at("properties.publicIPAddressVersion");
                self.require_feature(Feature::Ipv6, None, at.clone())?;
                return Err(unsupported(
                    at,
                    "IPv6 public addresses are not implemented by hybridnet",
                ));
            }
        }
        let used: BTreeSet<Ipv4Addr> = self
            .view()
            .into_iter()
            .filter(|r| !same_id(r.id(), &meta.id))
            .filter_map(|r| match r {
                Resource::PublicIpAddress(p) => Some(p.ip_address),
                _ => None,
            })
            .collect();
        let prefix = self.info.public_prefix;
        let kept = match self.find(&meta.id) {
            Some(Resource::PublicIpAddress(old))
                if ipam::public_usable(prefix, old.ip_address)
                    && !used.contains(&old.ip_address) =>
            {
                Some(old.ip_address)
            }
            _ => None,
        };
        let ip_address = match kept {
            Some(a) => a,
            None => {
                ipam::first_free_public(prefix, &used).ok_or_else(|| SiteError::PoolExhausted {
                    at: b.at("properties.publicIPAllocationMethod"),
                    problem: format!(
                        "no free address left in the site's public prefix {prefix} ({} in use)",
                        used.len()
                    ),
                })?
            }
        };
        let domain_name_label = b
            .string("properties.dnsSettings.domainNameLabel")?
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(Resource::PublicIpAddress(PublicIpAddress {
            meta,
            sku,
            allocation_method,
            ip_address,
            domain_name_label,
        }))
    }
}
