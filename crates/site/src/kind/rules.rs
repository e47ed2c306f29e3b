//! What each site kind supports, as one table: [`Feature::rule`] says, per feature, whether the
//! kind (and, for gateway features, the gateway SKU) offers it and how a refusal reads. Numeric
//! limits of the kind's data (API versions, ASNs, DPD timeouts, policies per connection, the
//! GatewaySubnet size) are checked by the methods after it. Every check returns the refusal as
//! plain words; the planner adds the template path.

use ipnet::Ipv4Net;

use super::{parse_api_date, GatewaySku, KindProfile};

/// A capability a site kind, or a VPN gateway SKU of it, may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Standard-SKU public IP addresses.
    StandardPublicIp,
    /// IPv6 public IP addresses.
    Ipv6,
    /// Virtual network gateways at all (a kind without SKUs has none).
    VnetGateways,
    /// Policy-based VPN gateways.
    PolicyBasedGateway,
    /// Active-active VPN gateways.
    ActiveActive,
    /// BGP on a VPN gateway.
    Bgp,
    /// A gateway's `bgpSettings.bgpPeeringAddress` / `peerWeight`.
    ConfigurableBgpPeering,
    /// Vnet2Vnet connections.
    Vnet2Vnet,
    /// `usePolicyBasedTrafficSelectors` on connections.
    PolicyBasedTrafficSelectors,
}

/// Why a resource type is refused: Resource Manager's two cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeRefusal {
    /// The namespace has no provider on the site (Azure: NoRegisteredProviderFound).
    NoProvider(String),
    /// The namespace exists but not the type (Azure: InvalidResourceType).
    UnknownType(String),
}

impl std::fmt::Display for TypeRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TypeRefusal::NoProvider(m) | TypeRefusal::UnknownType(m) => f.write_str(m),
        }
    }
}

/// One row of the feature table. Refusals may name `{kind}`, `{description}`, `{sku}` (the SKU
/// asked for) and `{skus_with}` (the kind's SKUs that offer the feature).
struct Rule {
    /// Whether the kind offers the feature.
    kind: fn(&KindProfile) -> bool,
    /// Whether a gateway SKU offers it; `None` when the SKU does not matter.
    sku: Option<fn(&GatewaySku) -> bool>,
    /// The refusal when the kind lacks the feature.
    kind_refusal: &'static str,
    /// The refusal when the SKU lacks it.
    sku_refusal: &'static str,
}

impl Feature {
    /// The feature table (a `match`, so every feature has exactly one row).
    fn rule(self) -> Rule {
        match self {
            Feature::StandardPublicIp => Rule {
                kind: |k| k.features.standard_public_ip,
                sku: None,
                kind_refusal: "Standard public IP addresses are not supported on {a_kind} site; use Basic",
                sku_refusal: "",
            },
            Feature::Ipv6 => Rule {
                kind: |k| k.features.ipv6,
                sku: None,
                kind_refusal: "IPv6 is not supported on {a_kind} site",
                sku_refusal: "",
            },
            Feature::VnetGateways => Rule {
                kind: |k| !k.gateway_skus.is_empty(),
                sku: None,
                kind_refusal: "{a_kind} site ({description}) has no virtual network gateways",
                sku_refusal: "",
            },
            Feature::PolicyBasedGateway => Rule {
                kind: |k| k.features.policy_based,
                sku: Some(|s| s.policy_based),
                kind_refusal: "policy-based VPN gateways are not supported on {a_kind} site; use RouteBased",
                sku_refusal: "policy-based VPN gateways need the {skus_with} SKU, not {sku}",
            },
            Feature::ActiveActive => Rule {
                kind: |k| k.features.active_active,
                sku: Some(|s| s.active_active),
                kind_refusal: "active-active gateways are not supported on {a_kind} site",
                sku_refusal: "the {sku} SKU does not support active-active",
            },
            Feature::Bgp => Rule {
                kind: |k| k.features.bgp,
                sku: Some(|s| s.bgp),
                kind_refusal: "BGP is not available with the {sku} SKU on {a_kind} site",
                sku_refusal: "BGP is not available with the {sku} SKU on {a_kind} site",
            },
            Feature::ConfigurableBgpPeering => Rule {
                kind: |k| k.features.configurable_bgp_peering,
                sku: None,
                kind_refusal: "a configurable BGP peering address or weight is not supported on {a_kind} site",
                sku_refusal: "",
            },
            Feature::Vnet2Vnet => Rule {
                kind: |k| k.features.vnet2vnet,
                sku: None,
                kind_refusal: "VNet-to-VNet connections are not supported on {a_kind} site; use IPsec with a local network gateway",
                sku_refusal: "",
            },
            Feature::PolicyBasedTrafficSelectors => Rule {
                kind: |k| k.features.policy_based_traffic_selectors,
                sku: None,
                kind_refusal: "usePolicyBasedTrafficSelectors is not supported on {a_kind} site",
                sku_refusal: "",
            },
        }
    }
}

impl KindProfile {
    /// Whether this kind, and `sku` where the feature depends on the SKU, offers `feature`;
    /// `Err` carries the refusal.
    pub fn check_feature(&self, feature: Feature, sku: Option<&GatewaySku>) -> Result<(), String> {
        let rule = feature.rule();
        let refusal = if !(rule.kind)(self) {
            rule.kind_refusal
        } else {
            match (rule.sku, sku) {
                (Some(offers), Some(s)) if !offers(s) => rule.sku_refusal,
                _ => return Ok(()),
            }
        };
        let skus_with: Vec<&str> = match rule.sku {
            Some(offers) => self
                .gateway_skus
                .iter()
                .filter(|s| offers(s))
                .map(|s| s.name.as_str())
                .collect(),
            None => Vec::new(),
        };
        Err(refusal
            .replace("{a_kind}", &self.a_kind())
            .replace("{kind}", &self.name)
            .replace("{description}", &self.description)
            .replace("{sku}", sku.map_or("", |s| s.name.as_str()))
            .replace("{skus_with}", &skus_with.join(" or ")))
    }

    /// The SKU of that name, or why this kind has none of that name.
    pub fn require_gateway_sku(&self, name: &str) -> Result<&GatewaySku, String> {
        self.gateway_sku(name).ok_or_else(|| {
            format!(
                "gateway SKU {name:?} does not exist on {} site (available: {})",
                self.a_kind(),
                self.gateway_skus
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// Checks a `connectionProtocol` (`IKEv2`, `IKEv1`) against this kind.
    pub fn check_connection_protocol(&self, protocol: &str) -> Result<(), String> {
        if self
            .connection_protocols
            .iter()
            .any(|p| p.eq_ignore_ascii_case(protocol))
        {
            return Ok(());
        }
        Err(format!(
            "{protocol} is not supported on {} site (supported: {})",
            self.a_kind(),
            self.connection_protocols.join(", ")
        ))
    }

    /// The DPD timeout a connection gets: the kind's default when absent or 0, else the value
    /// if it is in the kind's range.
    pub fn dpd_timeout(&self, requested: Option<i64>) -> Result<u32, String> {
        let dpd = &self.dpd;
        match requested {
            None | Some(0) => Ok(dpd.default_timeout_secs),
            Some(v)
                if v >= i64::from(dpd.min_timeout_secs) && v <= i64::from(dpd.max_timeout_secs) =>
            {
                Ok(v as u32)
            }
            Some(v) => Err(format!(
                "{v} is out of range: dpdTimeoutSeconds must be {} … {}",
                dpd.min_timeout_secs, dpd.max_timeout_secs
            )),
        }
    }

    /// Checks the number of `ipsecPolicies` of a connection.
    pub fn check_ipsec_policy_count(&self, count: usize) -> Result<(), String> {
        let max = self.features.max_ipsec_policies;
        if count > max {
            return Err(format!("at most {max} policy per connection (got {count})"));
        }
        Ok(())
    }

    /// Whether a gateway of this SKU may carry a custom IPsec/IKE policy.
    pub fn check_custom_policy_sku(&self, sku: &str) -> Result<(), String> {
        let allowed = &self.features.custom_ipsec_policy_skus;
        if allowed.is_empty() || allowed.iter().any(|s| s.eq_ignore_ascii_case(sku)) {
            return Ok(());
        }
        Err(format!(
            "custom IPsec/IKE policies need gateway SKU {} on {} site",
            allowed.join(" or "),
            self.a_kind()
        ))
    }

    /// Checks a GatewaySubnet's size: `Err` below the minimum, `Ok(Some(note))` below the
    /// recommendation, `Ok(None)` otherwise.
    pub fn check_gateway_subnet(&self, prefix: Ipv4Net) -> Result<Option<String>, String> {
        let rules = &self.gateway_subnet;
        if prefix.prefix_len() > rules.min_prefix_len {
            return Err(format!(
                "GatewaySubnet {prefix} is too small: the minimum on {} site is /{} (/{} recommended)",
                self.a_kind(), rules.min_prefix_len, rules.recommended_prefix_len
            ));
        }
        if prefix.prefix_len() > rules.recommended_prefix_len {
            return Ok(Some(format!(
                "GatewaySubnet {prefix} is smaller than the recommended /{} on {} site",
                rules.recommended_prefix_len,
                self.a_kind()
            )));
        }
        Ok(None)
    }

    /// Checks an API version against this kind; `Err` carries the human reason.
    pub fn check_api_version(&self, resource_type: &str, version: &str) -> Result<(), String> {
        let Some(date) = parse_api_date(version) else {
            return Err(format!(
                "{version:?} is not an API version (expected YYYY-MM-DD or YYYY-MM-DD-preview)"
            ));
        };
        if let Some(r) = self.api_version_range(resource_type) {
            let (min, max) = (parse_api_date(&r.min), parse_api_date(&r.max));
            if min.is_some_and(|m| date < m) || max.is_some_and(|m| date > m) {
                let ns = resource_type.split('/').next().unwrap_or(resource_type);
                return Err(format!(
                    "API version {version} is not supported on {} site: {ns} accepts {} … {} (use apiProfile {} or an apiVersion in that range)",
                    self.a_kind(),
                    r.min,
                    r.max,
                    self.api_profiles.join(" / ")
                ));
            }
        }
        Ok(())
    }

    /// Whether the kind's Resource Manager serves `resource_type` (`Namespace/type[/child]`);
    /// the refusal says which of Azure's two errors applies and names what is served.
    pub fn check_resource_type(&self, resource_type: &str) -> Result<(), TypeRefusal> {
        let (ns, ty) = resource_type.split_once('/').unwrap_or((resource_type, ""));
        let Some((ns, types)) = self
            .providers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(ns))
        else {
            return Err(TypeRefusal::NoProvider(format!(
                "no resource provider {ns:?} is registered on {} site (providers: {})",
                self.a_kind(),
                self.providers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if types.iter().any(|t| t.eq_ignore_ascii_case(ty)) {
            return Ok(());
        }
        Err(TypeRefusal::UnknownType(format!(
            "the resource type {ty:?} could not be found in the namespace {ns:?} on {} site (its types: {})",
            self.a_kind(),
            types.join(", ")
        )))
    }

    /// The kind's name with its article, for messages ("an azure-stack-hub site").
    pub fn a_kind(&self) -> String {
        let vowel = self.name.starts_with(|c: char| "aeiouAEIOU".contains(c));
        format!("{} {}", if vowel { "an" } else { "a" }, self.name)
    }

    /// Whether a BGP ASN is usable on this kind; `Err` carries the reason. `own_gateway`: the
    /// ASN of one of the site's own VNet gateways, which may be the kind's default (Azure's
    /// 65515) that is reserved for peers.
    pub fn check_bgp_asn(&self, asn: u64, own_gateway: bool) -> Result<(), String> {
        let f = &self.features;
        if asn == 0 || asn > u64::from(f.max_bgp_asn) {
            return Err(format!(
                "ASN {asn} is out of range: {} site accepts 1 … {}",
                self.a_kind(),
                f.max_bgp_asn
            ));
        }
        let a = asn as u32;
        if own_gateway && a == f.default_bgp_asn {
            return Ok(());
        }
        if f.reserved_bgp_asns.contains(&a)
            || f.reserved_bgp_asn_ranges
                .iter()
                .any(|[lo, hi]| (*lo..=*hi).contains(&a))
        {
            return Err(format!(
                "ASN {asn} is reserved and cannot be used {} on {} site",
                if own_gateway {
                    "by a virtual network gateway"
                } else {
                    "by an on-premises peer"
                },
                self.a_kind()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::kind::kind;

    use super::*;

    #[test]
    fn feature_refusals_name_kind_and_sku() {
        let ash = kind("azure-stack-hub").unwrap();
        let azure = kind("azure").unwrap();
        let strongswan = kind("strongswan").unwrap();
        let basic = azure.gateway_sku("Basic").unwrap();
        let vpngw1 = azure.gateway_sku("VpnGw1").unwrap();
        assert_eq!(
            ash.check_feature(Feature::ActiveActive, None).unwrap_err(),
            "active-active gateways are not supported on an azure-stack-hub site"
        );
        assert_eq!(
            azure
                .check_feature(Feature::ActiveActive, Some(basic))
                .unwrap_err(),
            "the Basic SKU does not support active-active"
        );
        assert!(azure
            .check_feature(Feature::ActiveActive, Some(vpngw1))
            .is_ok());
        assert_eq!(
            azure
                .check_feature(Feature::PolicyBasedGateway, Some(vpngw1))
                .unwrap_err(),
            "policy-based VPN gateways need the Basic SKU, not VpnGw1"
        );
        assert_eq!(
            azure.check_feature(Feature::Bgp, Some(basic)).unwrap_err(),
            "BGP is not available with the Basic SKU on an azure site"
        );
        assert!(strongswan
            .check_feature(Feature::VnetGateways, None)
            .unwrap_err()
            .ends_with("has no virtual network gateways"));
        assert!(azure.check_feature(Feature::Vnet2Vnet, None).is_ok());
    }

    #[test]
    fn limits() {
        let ash = kind("azure-stack-hub").unwrap();
        assert_eq!(ash.dpd_timeout(None), Ok(45));
        assert_eq!(ash.dpd_timeout(Some(0)), Ok(45));
        assert_eq!(ash.dpd_timeout(Some(30)), Ok(30));
        assert!(ash.dpd_timeout(Some(5)).is_err());
        assert!(ash.check_connection_protocol("ikev2").is_ok());
        assert!(ash.check_connection_protocol("IKEv1").is_err());
        assert!(ash.check_custom_policy_sku("standard").is_ok());
        assert!(ash.check_custom_policy_sku("VpnGw1").is_err());
        assert!(ash.check_ipsec_policy_count(2).is_err());
        assert_eq!(
            ash.check_gateway_subnet("10.0.0.0/27".parse().unwrap()),
            Ok(None)
        );
        assert!(ash
            .check_gateway_subnet("10.0.0.0/29".parse().unwrap())
            .unwrap()
            .is_some());
        assert!(ash
            .check_gateway_subnet("10.0.0.0/30".parse().unwrap())
            .is_err());
    }
}
