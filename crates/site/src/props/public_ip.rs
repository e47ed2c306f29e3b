//! `Microsoft.Network/publicIPAddresses`.

use serde::Deserialize;

use super::{spelled, Spelling};
use crate::model::{AllocationMethod, PublicIpSku};

/// A public IP address resource.
#[derive(Debug, Deserialize)]
pub(crate) struct PublicIpResource {
    /// `sku`.
    #[serde(default)]
    pub sku: PublicIpSkuName,
    /// `properties`.
    pub properties: PublicIpProperties,
}

/// `sku` of a public IP.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PublicIpSkuName {
    /// `name` (Basic when absent).
    #[serde(default, deserialize_with = "spelled")]
    pub name: Option<PublicIpSku>,
}

/// `properties` of a public IP.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PublicIpProperties {
    /// `publicIPAllocationMethod`.
    #[serde(
        rename = "publicIPAllocationMethod",
        default,
        deserialize_with = "spelled"
    )]
    pub allocation_method: Option<AllocationMethod>,
    /// `publicIPAddressVersion`.
    #[serde(rename = "publicIPAddressVersion")]
    pub address_version: Option<String>,
    /// `dnsSettings`.
    #[serde(default)]
    pub dns_settings: DnsSettings,
}

/// `dnsSettings` of a public IP.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DnsSettings {
    /// `domainNameLabel`.
    pub domain_name_label: Option<String>,
}

impl Spelling for PublicIpSku {
    fn from_arm(s: &str) -> Option<Self> {
        [PublicIpSku::Basic, PublicIpSku::Standard]
            .into_iter()
            .find(|v| s.eq_ignore_ascii_case(&format!("{v:?}")))
    }

    fn unknown(s: &str) -> String {
        format!("{s:?} is not a public IP SKU (Basic, Standard)")
    }
}

impl Spelling for AllocationMethod {
    fn from_arm(s: &str) -> Option<Self> {
        [AllocationMethod::Dynamic, AllocationMethod::Static]
            .into_iter()
            .find(|v| s.eq_ignore_ascii_case(&format!("{v:?}")))
    }

    fn unknown(s: &str) -> String {
        format!("{s:?} is not Dynamic or Static")
    }
}
