//! Public IP addresses: SKU and IP version against the kind, an address from the site's
//! public prefix, and its DNS name (`dnsSettings`) in the lab's zone.

use serde_json::Value;

use super::{invalid, unsupported, Planner};
use crate::error::{Location, SiteError};
use crate::kind::Feature;
use crate::model::{
    same_id, AllocationMethod, PublicIpAddress, PublicIpSku, Resource, ResourceMeta,
};
use crate::props::{self, public_ip::PublicIpResource};

impl Planner<'_> {
    /// A public IP resource.
    pub(super) fn public_ip(
        &mut self,
        meta: ResourceMeta,
        loc: &Location,
        body: &Value,
    ) -> Result<Resource, SiteError> {
        let r = props::parse::<PublicIpResource>(body, loc)?;
        let p = r.properties;
        let sku = r.sku.name.unwrap_or(PublicIpSku::Basic);
        if sku == PublicIpSku::Standard {
            self.require_feature(Feature::StandardPublicIp, None, loc.at("sku.name"))?;
        }
        if p.address_version
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("IPv6"))
        {
            let at = loc.at("properties.publicIPAddressVersion");
            self.require_feature(Feature::Ipv6, None, at.clone())?;
            return Err(unsupported(
                at,
                "IPv6 public addresses are not implemented by hybridnet",
            ));
        }
        let label = p.dns_settings.domain_name_label.filter(|s| !s.is_empty());
        let fqdn = match &label {
            Some(l) => Some(self.dns_name(
                &meta.id,
                l,
                &loc.at("properties.dnsSettings.domainNameLabel"),
            )?),
            None => None,
        };
        let ip_address =
            self.public_address(&meta.id, loc.at("properties.publicIPAllocationMethod"))?;
        Ok(Resource::PublicIpAddress(PublicIpAddress {
            meta,
            sku,
            allocation_method: p.allocation_method.unwrap_or(AllocationMethod::Dynamic),
            ip_address,
            domain_name_label: label,
            fqdn,
        }))
    }

    /// The FQDN of a public IP's DNS label, `<label>.<location>.cloudapp.azure.com`, after
    /// Azure's checks: the label's form, and no other public IP of the location using it.
    fn dns_name(&self, id: &str, label: &str, at: &Location) -> Result<String, SiteError> {
        let ok = label.len() >= 3
            && label.len() <= 63
            && label.starts_with(|c: char| c.is_ascii_lowercase())
            && label.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(invalid(
                at.clone(),
                format!("{label:?} is not a valid DNS name label: 3 to 63 lowercase letters, digits and hyphens, starting with a letter and ending with a letter or digit"),
            ));
        }
        let taken = self.view().into_iter().find_map(|r| match r {
            Resource::PublicIpAddress(p)
                if !same_id(&p.meta.id, id)
                    && p.domain_name_label
                        .as_deref()
                        .is_some_and(|l| l.eq_ignore_ascii_case(label)) =>
            {
                Some(p.meta.name.clone())
            }
            _ => None,
        });
        if let Some(other) = taken {
            return Err(invalid(
                at.clone(),
                format!("DNS name label {label:?} is already used by public IP '{other}' in this location"),
            ));
        }
        Ok(format!(
            "{label}.{}.cloudapp.azure.com",
            self.info.location.to_ascii_lowercase()
        ))
    }
}
