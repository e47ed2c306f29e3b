//! Site kinds (azure, azure-stack-hub, …) as data: each is a TOML file under `kinds/`, embedded
//! at build time and parsed once. Nothing in the code branches on a kind's name.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::SiteError;

mod rules;

pub use rules::{Feature, TypeRefusal};

include!(concat!(env!("OUT_DIR"), "/kind_files.rs"));

/// Everything a site kind allows, limits and defaults to; loaded from `kinds/<name>.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindProfile {
    /// Kind name used in lab.yaml and `Site::create` (e.g. `azure-stack-hub`).
    pub name: String,
    /// Human description for status output.
    pub description: String,
    /// `apiProfile` values templates may use on this kind (the arm engine maps them to versions).
    #[serde(default)]
    pub api_profiles: Vec<String>,
    /// `connectionProtocol` values this kind accepts (IKEv2, IKEv1).
    pub connection_protocols: Vec<String>,
    /// Allowed API versions per resource provider namespace; a namespace not listed is unrestricted.
    #[serde(default)]
    pub api_versions: BTreeMap<String, ApiVersionRange>,
    /// Feature switches and BGP limits.
    pub features: Features,
    /// GatewaySubnet size rules.
    pub gateway_subnet: GatewaySubnetRules,
    /// Dead peer detection timeout default and allowed range.
    pub dpd: DpdRules,
    /// VPN gateway SKUs this kind offers.
    #[serde(default)]
    pub gateway_skus: Vec<GatewaySku>,
    /// The IPsec/IKE policy a connection without `ipsecPolicies` uses.
    pub default_policy: DefaultPolicy,
    /// Resource types per provider namespace that the kind's Resource Manager serves; other
    /// types are refused as Azure refuses them.
    #[serde(default)]
    pub providers: BTreeMap<String, Vec<String>>,
}

/// Inclusive range of API versions (`YYYY-MM-DD`, compared as dates) a namespace accepts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiVersionRange {
    /// Oldest accepted version.
    pub min: String,
    /// Newest accepted version.
    pub max: String,
}

/// What a kind supports; unsupported features are rejected at plan time with a clear error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    /// Standard-SKU public IP addresses.
    pub standard_public_ip: bool,
    /// Active-active VPN gateways.
    pub active_active: bool,
    /// Vnet2Vnet connections.
    pub vnet2vnet: bool,
    /// Policy-based VPN gateways.
    pub policy_based: bool,
    /// `usePolicyBasedTrafficSelectors` on connections.
    pub policy_based_traffic_selectors: bool,
    /// IPv6 addresses.
    pub ipv6: bool,
    /// BGP on gateways and connections.
    pub bgp: bool,
    /// Largest BGP ASN accepted.
    pub max_bgp_asn: u32,
    /// ASNs that may not be used.
    pub reserved_bgp_asns: Vec<u32>,
    /// Inclusive ASN ranges that may not be used.
    pub reserved_bgp_asn_ranges: Vec<[u32; 2]>,
    /// ASN a gateway gets when BGP is on and none is given.
    pub default_bgp_asn: u32,
    /// Whether a gateway's `bgpSettings.bgpPeeringAddress` / `peerWeight` may be set.
    #[serde(default = "yes")]
    pub configurable_bgp_peering: bool,
    /// Gateway SKUs that accept a custom `ipsecPolicies` entry; empty means all.
    pub custom_ipsec_policy_skus: Vec<String>,
    /// Maximum number of `ipsecPolicies` entries per connection.
    pub max_ipsec_policies: usize,
}

/// GatewaySubnet sizing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySubnetRules {
    /// Longest prefix length accepted (29 = /29 is the smallest GatewaySubnet).
    pub min_prefix_len: u8,
    /// Prefix length recommended; a smaller subnet is accepted with a note.
    pub recommended_prefix_len: u8,
}

/// Dead peer detection timeout rules for connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpdRules {
    /// Timeout when `dpdTimeoutSeconds` is absent.
    pub default_timeout_secs: u32,
    /// Smallest accepted `dpdTimeoutSeconds`.
    pub min_timeout_secs: u32,
    /// Largest accepted `dpdTimeoutSeconds`.
    pub max_timeout_secs: u32,
}

/// One VPN gateway SKU and its limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySku {
    /// SKU name as in `sku.name` (case-insensitive match).
    pub name: String,
    /// Site-to-site tunnels (connections) per gateway.
    pub s2s_tunnels: u32,
    /// Aggregate throughput in Mbit/s (Generation1).
    pub throughput_mbps: u32,
    /// Aggregate throughput in Mbit/s for Generation2, where it differs.
    #[serde(default)]
    pub throughput_mbps_gen2: Option<u32>,
    /// Whether BGP may be enabled.
    pub bgp: bool,
    /// Whether active-active is allowed.
    pub active_active: bool,
    /// Whether a policy-based gateway may use this SKU.
    #[serde(default)]
    pub policy_based: bool,
}

/// A kind's default IPsec/IKE policy as strongSwan-style proposal strings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultPolicy {
    /// IKE SA proposals, in preference order (e.g. `aes256-sha384-ecp384`).
    pub ike_proposals: Vec<String>,
    /// IKE SA lifetime.
    pub ike_lifetime_secs: u32,
    /// ESP proposals offered when initiating.
    pub esp_initiator_proposals: Vec<String>,
    /// ESP proposals accepted when responding.
    pub esp_responder_proposals: Vec<String>,
    /// Child SA lifetime in seconds.
    pub child_lifetime_secs: u32,
    /// Child SA lifetime in kilobytes.
    pub child_lifetime_kilobytes: u64,
}

fn yes() -> bool {
    true
}

fn load_all() -> Result<Vec<KindProfile>, String> {
    let mut kinds = Vec::new();
    for (file, text) in KIND_FILES.iter() {
        let k: KindProfile = toml::from_str(text).map_err(|e| format!("kinds/{file}: {e}"))?;
        for (ns, r) in &k.api_versions {
            for v in [&r.min, &r.max] {
                if parse_api_date(v).is_none() {
                    return Err(format!(
                        "kinds/{file}: api_versions.{ns}: {v:?} is not a YYYY-MM-DD version"
                    ));
                }
            }
        }
        kinds.push(k);
    }
    Ok(kinds)
}

fn all() -> Result<&'static [KindProfile], SiteError> {
    static KINDS: OnceLock<Result<Vec<KindProfile>, String>> = OnceLock::new();
    match KINDS.get_or_init(load_all) {
        Ok(v) => Ok(v),
        Err(e) => Err(SiteError::KindData(e.clone())),
    }
}

/// Looks up a site kind by name (case-insensitive).
pub fn kind(name: &str) -> Result<&'static KindProfile, SiteError> {
    let kinds = all()?;
    kinds
        .iter()
        .find(|k| k.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| SiteError::UnknownKind {
            name: name.to_string(),
            known: kinds.iter().map(|k| k.name.clone()).collect(),
        })
}

/// All site kinds, so the CLI can list them.
pub fn kinds() -> Result<&'static [KindProfile], SiteError> {
    all()
}

/// Parses the date part of an API version (`2018-11-01`, `2017-10-01-preview`) for comparison.
pub fn parse_api_date(v: &str) -> Option<(u16, u8, u8)> {
    let date = v.get(..10)?;
    let rest = &v[10..];
    if !(rest.is_empty() || rest.starts_with('-')) {
        return None;
    }
    let mut it = date.split('-');
    let y = it.next()?.parse().ok()?;
    let m: u8 = it.next()?.parse().ok()?;
    let d: u8 = it.next()?.parse().ok()?;
    if date.as_bytes()[4] != b'-'
        || date.as_bytes()[7] != b'-'
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    Some((y, m, d))
}

impl KindProfile {
    /// The SKU of that name (case-insensitive), if this kind offers it.
    pub fn gateway_sku(&self, name: &str) -> Option<&GatewaySku> {
        self.gateway_skus
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// Whether templates may use this `apiProfile` on this kind.
    pub fn supports_api_profile(&self, profile: &str) -> bool {
        self.api_profiles
            .iter()
            .any(|p| p.eq_ignore_ascii_case(profile))
    }

    /// The allowed version range for a resource type's namespace, if restricted.
    pub fn api_version_range(&self, resource_type: &str) -> Option<&ApiVersionRange> {
        let ns = resource_type.split('/').next()?;
        self.api_versions
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(ns))
            .map(|(_, r)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_kinds_parse() {
        let names: Vec<&str> = kinds().unwrap().iter().map(|k| k.name.as_str()).collect();
        assert!(names.contains(&"azure"), "{names:?}");
        assert!(names.contains(&"azure-stack-hub"), "{names:?}");
        assert!(names.contains(&"strongswan"), "{names:?}");
    }

    #[test]
    fn unknown_kind_lists_known() {
        let e = kind("aws").unwrap_err().to_string();
        assert!(e.contains("aws") && e.contains("azure-stack-hub"), "{e}");
    }

    #[test]
    fn ash_api_versions() {
        let k = kind("azure-stack-hub").unwrap();
        assert!(k
            .check_api_version("Microsoft.Network/virtualNetworks", "2017-10-01")
            .is_ok());
        assert!(k
            .check_api_version("Microsoft.Network/virtualNetworks", "2018-11-01")
            .is_ok());
        let e = k
            .check_api_version("Microsoft.Network/virtualNetworks", "2020-05-01")
            .unwrap_err();
        assert!(e.contains("2018-11-01") && e.contains("2020-05-01"), "{e}");
        assert!(k
            .check_api_version("Microsoft.Storage/storageAccounts", "2023-01-01")
            .is_ok());
        assert!(k
            .check_api_version("Microsoft.Network/virtualNetworks", "yesterday")
            .is_err());
        assert!(k.supports_api_profile("2019-03-01-HYBRID"));
        let azure = kind("azure").unwrap();
        assert!(azure
            .check_api_version("Microsoft.Network/virtualNetworks", "2023-09-01")
            .is_ok());
    }

    #[test]
    fn skus_and_policies() {
        let ash = kind("azure-stack-hub").unwrap();
        assert_eq!(ash.gateway_sku("highperformance").unwrap().s2s_tunnels, 5);
        assert!(ash.gateway_sku("VpnGw4").is_none());
        assert_eq!(
            ash.default_policy.ike_proposals,
            vec!["aes256-sha384-ecp384"]
        );
        assert_eq!(
            ash.default_policy.esp_initiator_proposals,
            vec!["aes256gcm16-ecp384"]
        );
        let azure = kind("azure").unwrap();
        assert_eq!(azure.gateway_sku("VpnGw4").unwrap().s2s_tunnels, 100);
        assert!(azure
            .default_policy
            .ike_proposals
            .iter()
            .all(|p| p.ends_with("modp1024")));
        assert!(!azure
            .default_policy
            .ike_proposals
            .iter()
            .any(|p| p.contains("3des")));
        assert!(azure.check_bgp_asn(65515, false).is_err());
        assert!(
            azure.check_bgp_asn(65515, true).is_ok(),
            "Azure's own default"
        );
        assert!(azure.check_bgp_asn(65517, true).is_err());
        assert!(azure.check_bgp_asn(4_200_000_000, false).is_ok());
        assert!(ash.check_bgp_asn(65_600, false).is_err());
    }
}
