//! `Microsoft.Network/connections` and their `ipsecPolicies`.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{spelled, spelled_required, type_name, IdRef, Spelling};
use crate::model::{
    ConnectionProtocol, ConnectionType, DhGroup, IkeEncryption, IkeIntegrity, IpsecEncryption,
    IpsecIntegrity, PfsGroup, SharedKey,
};

/// A connection resource.
#[derive(Debug, Deserialize)]
pub(crate) struct ConnectionResource {
    /// `properties`.
    pub properties: ConnectionProperties,
}

/// `properties` of a connection.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectionProperties {
    /// `connectionType`.
    #[serde(deserialize_with = "spelled_required")]
    pub connection_type: ConnectionType,
    /// `virtualNetworkGateway1`: the local gateway.
    pub virtual_network_gateway1: IdRef,
    /// `localNetworkGateway2` (IPsec).
    pub local_network_gateway2: Option<IdRef>,
    /// `virtualNetworkGateway2` (Vnet2Vnet).
    pub virtual_network_gateway2: Option<IdRef>,
    /// `sharedKey`.
    #[serde(default, deserialize_with = "shared_key")]
    pub shared_key: Option<SharedKey>,
    /// `routingWeight`.
    pub routing_weight: Option<i64>,
    /// `connectionProtocol` (IKEv2, or IKEv1 for policy-based gateways, when absent).
    #[serde(default, deserialize_with = "spelled")]
    pub connection_protocol: Option<ConnectionProtocol>,
    /// `dpdTimeoutSeconds`.
    pub dpd_timeout_seconds: Option<i64>,
    /// `ipsecPolicies`.
    #[serde(default)]
    pub ipsec_policies: Vec<IpsecPolicy>,
    /// `usePolicyBasedTrafficSelectors`.
    pub use_policy_based_traffic_selectors: Option<bool>,
    /// `enableBgp`.
    pub enable_bgp: Option<bool>,
}

/// One custom policy of `ipsecPolicies`: all eight fields are required.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IpsecPolicy {
    /// `saLifeTimeSeconds`.
    pub sa_life_time_seconds: i64,
    /// `saDataSizeKilobytes`.
    pub sa_data_size_kilobytes: i64,
    /// `ikeEncryption`.
    #[serde(deserialize_with = "spelled_required")]
    pub ike_encryption: IkeEncryption,
    /// `ikeIntegrity`.
    #[serde(deserialize_with = "spelled_required")]
    pub ike_integrity: IkeIntegrity,
    /// `dhGroup`.
    #[serde(deserialize_with = "spelled_required")]
    pub dh_group: DhGroup,
    /// `ipsecEncryption`.
    #[serde(deserialize_with = "spelled_required")]
    pub ipsec_encryption: IpsecEncryption,
    /// `ipsecIntegrity`.
    #[serde(deserialize_with = "spelled_required")]
    pub ipsec_integrity: IpsecIntegrity,
    /// `pfsGroup`.
    #[serde(deserialize_with = "spelled_required")]
    pub pfs_group: PfsGroup,
}

/// A pre-shared key: 1–128 printable ASCII characters. Refusals never show the value.
fn shared_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SharedKey>, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s)
            if !s.is_empty()
                && s.len() <= 128
                && s.chars().all(|c| c.is_ascii_graphic() || c == ' ') =>
        {
            Ok(Some(SharedKey::new(s)))
        }
        Value::String(_) => Err(D::Error::custom(
            "must be 1–128 printable ASCII characters (value not shown)",
        )),
        other => Err(D::Error::custom(format!(
            "expected a string, got {} (value not shown)",
            type_name(&other)
        ))),
    }
}

impl Spelling for ConnectionType {
    fn from_arm(s: &str) -> Option<Self> {
        [
            ConnectionType::IPsec,
            ConnectionType::Vnet2Vnet,
            ConnectionType::ExpressRoute,
            ConnectionType::VPNClient,
        ]
        .into_iter()
        .find(|v| s.eq_ignore_ascii_case(&format!("{v:?}")))
    }

    fn unknown(s: &str) -> String {
        format!("{s:?} is not a connection type (IPsec, Vnet2Vnet, ExpressRoute, VPNClient)")
    }
}

impl Spelling for ConnectionProtocol {
    fn from_arm(s: &str) -> Option<Self> {
        [ConnectionProtocol::IKEv2, ConnectionProtocol::IKEv1]
            .into_iter()
            .find(|v| s.eq_ignore_ascii_case(&format!("{v:?}")))
    }

    fn unknown(s: &str) -> String {
        format!("{s:?} is not IKEv2 or IKEv1")
    }
}

/// The policy enumerations spell themselves (`ALL`, `parse`); a refusal lists every spelling.
macro_rules! policy_spelling {
    ($($t:ty),+) => {$(
        impl Spelling for $t {
            fn from_arm(s: &str) -> Option<Self> {
                <$t>::parse(s)
            }

            fn unknown(s: &str) -> String {
                format!("{s:?} is not one of {}", <$t>::ALL.join(", "))
            }
        }
    )+};
}

policy_spelling!(
    IkeEncryption,
    IkeIntegrity,
    DhGroup,
    IpsecEncryption,
    IpsecIntegrity,
    PfsGroup
);
