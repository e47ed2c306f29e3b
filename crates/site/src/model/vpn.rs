//! VPN resources: virtual network gateways, local network gateways and connections, with the
//! policy a connection negotiates.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::{IpsecPolicy, ResourceMeta};
use crate::kind::KindProfile;

/// Route-based or policy-based VPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VpnType {
    /// Any-to-any selectors, routing into the tunnel.
    RouteBased,
    /// One selector per prefix pair, IKEv1 only.
    PolicyBased,
}

/// `bgpSettings` of a gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgpSettings {
    /// Autonomous system number.
    pub asn: u32,
    /// `bgpPeeringAddress`, recorded.
    pub bgp_peering_address: Option<String>,
    /// `peerWeight`, recorded.
    pub peer_weight: Option<i64>,
    /// `bgpPeeringAddresses[].customBgpIpAddresses`: per ipConfiguration (by name), the
    /// custom APIPA addresses the instance peers from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_bgp_addresses: Vec<(String, Vec<Ipv4Addr>)>,
}

/// Azure's APIPA range for a VPN gateway's custom BGP addresses.
pub const APIPA_BGP_RANGE: (Ipv4Addr, Ipv4Addr) = (
    Ipv4Addr::new(169, 254, 21, 0),
    Ipv4Addr::new(169, 254, 22, 255),
);

/// One IP configuration of a VPN gateway (two for active-active).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayIpConfiguration {
    /// ipConfiguration name.
    pub name: String,
    /// The GatewaySubnet's id.
    pub subnet: String,
    /// Public IP id.
    pub public_ip_address: String,
    /// The gateway instance's address in the GatewaySubnet (from .4).
    pub private_ip_address: Ipv4Addr,
}

/// `Microsoft.Network/virtualNetworkGateways`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualNetworkGateway {
    /// Common resource data.
    pub meta: ResourceMeta,
    /// `gatewayType` (Vpn, ExpressRoute).
    pub gateway_type: String,
    /// `vpnType`.
    pub vpn_type: VpnType,
    /// SKU name, spelled as in the kind's data.
    pub sku: String,
    /// `activeActive`.
    pub active_active: bool,
    /// `enableBgp`.
    pub enable_bgp: bool,
    /// `bgpSettings` (with the kind's default ASN when BGP is on and none is given).
    pub bgp_settings: Option<BgpSettings>,
    /// `ipConfigurations`.
    pub ip_configurations: Vec<GatewayIpConfiguration>,
    /// `vpnGatewayGeneration`, recorded.
    pub vpn_gateway_generation: Option<String>,
}

impl VirtualNetworkGateway {
    /// Where the gateway speaks BGP from: its first instance's custom APIPA address when one
    /// is configured, else that instance's address in the GatewaySubnet, as Azure peers from.
    pub fn bgp_peering_address(&self) -> Option<Ipv4Addr> {
        self.bgp_peering_address_of(0)
    }

    /// Where instance `instance` (0-based; two for active-active) speaks BGP from.
    pub fn bgp_peering_address_of(&self, instance: usize) -> Option<Ipv4Addr> {
        let cfg = self.ip_configurations.get(instance)?;
        let custom = self.bgp_settings.as_ref().and_then(|b| {
            b.custom_bgp_addresses
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&cfg.name))
                .and_then(|(_, a)| a.first().copied())
        });
        Some(custom.unwrap_or(cfg.private_ip_address))
    }

    /// How many instances carry tunnels: two for an active-active gateway, else one.
    pub fn instance_count(&self) -> usize {
        if self.active_active {
            self.ip_configurations.len().max(1)
        } else {
            1
        }
    }
}

impl LocalNetworkGateway {
    /// The on-premises device's BGP address and AS, when `bgpSettings` gives both.
    pub fn bgp_peer(&self) -> Option<(Ipv4Addr, u32)> {
        let b = self.bgp_settings.as_ref()?;
        let a = b.bgp_peering_address.as_deref()?.trim().parse().ok()?;
        Some((a, b.asn))
    }
}

/// `Microsoft.Network/localNetworkGateways`: the peer's address and prefixes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalNetworkGateway {
    /// Common resource data.
    pub meta: ResourceMeta,
    /// `gatewayIpAddress`.
    pub gateway_ip_address: Option<Ipv4Addr>,
    /// `fqdn`, recorded (hybridnet does not resolve names).
    pub fqdn: Option<String>,
    /// `localNetworkAddressSpace.addressPrefixes`.
    pub address_prefixes: Vec<Ipv4Net>,
    /// `bgpSettings`.
    pub bgp_settings: Option<BgpSettings>,
}

/// `connectionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionType {
    /// Site-to-site to a local network gateway.
    IPsec,
    /// Between two VNet gateways.
    Vnet2Vnet,
    /// ExpressRoute circuit (recorded only).
    ExpressRoute,
    /// Point-to-site (recorded only).
    VPNClient,
}

/// `connectionProtocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionProtocol {
    /// IKE version 2 (the default).
    IKEv2,
    /// IKE version 1.
    IKEv1,
}

/// A connection's pre-shared key. Never shown: Debug and Display print `***`, serde skips it,
/// and `arm_json()` omits it as Azure does.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedKey(String);

impl SharedKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> SharedKey {
        SharedKey(key.into())
    }

    /// The key itself, for the gateway that authenticates with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedKey(***)")
    }
}

/// `Microsoft.Network/connections`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// Common resource data.
    pub meta: ResourceMeta,
    /// `connectionType`.
    pub connection_type: ConnectionType,
    /// `virtualNetworkGateway1.id`: the local gateway.
    pub virtual_network_gateway1: String,
    /// `virtualNetworkGateway2.id` (Vnet2Vnet).
    pub virtual_network_gateway2: Option<String>,
    /// `localNetworkGateway2.id` (IPsec).
    pub local_network_gateway2: Option<String>,
    /// `sharedKey`; kept in the store's secrets table, never serialized with the resource.
    #[serde(skip)]
    pub shared_key: Option<SharedKey>,
    /// `routingWeight`.
    pub routing_weight: i64,
    /// `connectionProtocol`.
    pub connection_protocol: ConnectionProtocol,
    /// `dpdTimeoutSeconds` (the kind's default when absent).
    pub dpd_timeout_seconds: u32,
    /// `ipsecPolicies` (custom policy; at most one).
    pub ipsec_policies: Vec<IpsecPolicy>,
    /// `usePolicyBasedTrafficSelectors`.
    pub use_policy_based_traffic_selectors: bool,
    /// `enableBgp`.
    pub enable_bgp: bool,
}

/// The IKE/ESP proposals and lifetimes a connection actually uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectivePolicy {
    /// True when it comes from the connection's `ipsecPolicies`, false for the kind's default.
    pub custom: bool,
    /// IKE SA proposals (strongSwan style).
    pub ike_proposals: Vec<String>,
    /// IKE SA lifetime.
    pub ike_lifetime_secs: u32,
    /// ESP proposals offered as initiator.
    pub esp_initiator_proposals: Vec<String>,
    /// ESP proposals accepted as responder.
    pub esp_responder_proposals: Vec<String>,
    /// Child SA lifetime in seconds.
    pub child_lifetime_secs: u32,
    /// Child SA lifetime in kilobytes.
    pub child_lifetime_kilobytes: u64,
}

/// Proposal keywords of algorithms that are broken or weak, with what they are: Azure still
/// offers them in `ipsecPolicies` (old devices need them), and exports warn about them.
/// (DH group 2 is in Azure's own default IKE offer and so is not flagged.)
const WEAK_KEYWORDS: &[(&str, &str)] = &[
    ("des", "DES (56-bit key, broken)"),
    ("3des", "3DES (64-bit blocks, weak)"),
    ("null", "no ESP encryption (NULL)"),
    ("md5", "HMAC-MD5"),
    ("prfmd5", "PRF HMAC-MD5"),
    ("modp768", "DH group 1 (768-bit MODP, broken)"),
];

impl EffectivePolicy {
    /// The weak algorithms the policy offers, in words, each once (empty for a sound policy).
    pub fn weak_algorithms(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let proposals = self
            .ike_proposals
            .iter()
            .chain(&self.esp_initiator_proposals)
            .chain(&self.esp_responder_proposals);
        for token in proposals.flat_map(|p| p.split('-')) {
            if let Some((_, what)) = WEAK_KEYWORDS
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(token))
            {
                if !out.contains(what) {
                    out.push(*what);
                }
            }
        }
        out
    }
}

impl Connection {
    /// The policy this connection negotiates with: its custom policy, or the site kind's default.
    /// A custom policy is offered and accepted alone, as on Azure.
    pub fn effective_policy(&self, kind: &KindProfile) -> EffectivePolicy {
        match self.ipsec_policies.first() {
            Some(p) => {
                let esp = p.esp_proposal();
                EffectivePolicy {
                    custom: true,
                    ike_proposals: vec![p.ike_proposal()],
                    ike_lifetime_secs: kind.default_policy.ike_lifetime_secs,
                    esp_initiator_proposals: vec![esp.clone()],
                    esp_responder_proposals: vec![esp],
                    child_lifetime_secs: p.sa_life_time_seconds,
                    child_lifetime_kilobytes: p.sa_data_size_kilobytes,
                }
            }
            None => {
                let d = &kind.default_policy;
                EffectivePolicy {
                    custom: false,
                    ike_proposals: d.ike_proposals.clone(),
                    ike_lifetime_secs: d.ike_lifetime_secs,
                    esp_initiator_proposals: d.esp_initiator_proposals.clone(),
                    esp_responder_proposals: d.esp_responder_proposals.clone(),
                    child_lifetime_secs: d.child_lifetime_secs,
                    child_lifetime_kilobytes: d.child_lifetime_kilobytes,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_key_never_debug_printed() {
        let k = SharedKey::new("hunter2-secret");
        assert_eq!(format!("{k:?}"), "SharedKey(***)");
        assert_eq!(k.expose(), "hunter2-secret");
    }
}
