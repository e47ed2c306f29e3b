//! Public IP addresses: SKU and IP version against the kind, an address from the site's
//! public prefix.

use serde_json::Value;

use super::{unsupported, Planner};
use crate::error::{Location, SiteError};
use crate::kind::Feature;
use crate::model::{AllocationMethod, PublicIpAddress, PublicIpSku, Resource, ResourceMeta};
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
        let ip_address =
            self.public_address(&meta.id, loc.at("properties.publicIPAllocationMethod"))?;
        Ok(Resource::PublicIpAddress(PublicIpAddress {
            meta,
            sku,
            allocation_method: p.allocation_method.unwrap_or(AllocationMethod::Dynamic),
            ip_address,
            domain_name_label: p.dns_settings.domain_name_label.filter(|s| !s.is_empty()),
        }))
    }
}
