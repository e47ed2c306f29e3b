//! The typed resource model: what a site holds after a deployment, with allocated addresses.
//! Prefixes are `Ipv4Net`, addresses `Ipv4Addr`, references are resource ids (compare them with
//! [`same_id`]). `arm_json()` renders a resource the way ARM's GET would.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::kind::KindProfile;

/// Resource ids compare case-insensitively, as in ARM.
pub fn same_id(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Whether a resource is realized, being realized, failed, or waiting for a capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum ProvisioningState {
    /// Realized (or, for pure configuration such as a local network gateway, recorded).
    Succeeded,
    /// Recorded by a deployment; realization has not finished yet.
    Updating,
    /// Realization failed; `error` says why in plain words.
    Failed { error: String },
    /// Accepted and recorded, but nothing realizes this resource (yet); `reason` says what is missing.
    Pending { reason: String },
}

impl ProvisioningState {
    /// The `provisioningState` string shown in `arm_json()`.
    pub fn arm_name(&self) -> &'static str {
        match self {
            ProvisioningState::Succeeded => "Succeeded",
            ProvisioningState::Updating => "Updating",
            ProvisioningState::Failed { .. } => "Failed",
            ProvisioningState::Pending { .. } => "Pending",
        }
    }
}

impl fmt::Display for ProvisioningState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProvisioningState::Failed { error } => write!(f, "Failed: {error}"),
            ProvisioningState::Pending { reason } => write!(f, "Pending: {reason}"),
            other => f.write_str(other.arm_name()),
        }
    }
}

/// What every resource carries besides its typed properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceMeta {
    /// Full ARM resource id.
    pub id: String,
    /// Resource name (`vnet1/sub1` for child resources).
    pub name: String,
    /// Full resource type.
    pub resource_type: String,
    /// `location` as given by the template.
    pub location: Option<String>,
    /// API version the resource was deployed with (after apiProfile mapping).
    pub api_version: String,
    /// `tags`, as given.
    pub tags: Map<String, Value>,
    /// Name of the deployment that last changed this resource.
    pub deployment: String,
    /// Realization state.
    pub provisioning_state: ProvisioningState,
    /// Things worth knowing that are not errors (e.g. "GatewaySubnet smaller than recommended").
    pub notes: Vec<String>,
}

/// How an address was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AllocationMethod {
    /// The site picks the address (first free).
    Dynamic,
    /// The template names the address.
    Static,
}

impl AllocationMethod {
    fn as_str(self) -> &'static str {
        match self {
            AllocationMethod::Dynamic => "Dynamic",
            AllocationMethod::Static => "Static",
        }
    }
}

/// A subnet of a virtual network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    /// Full id (`…/virtualNetworks/vnet1/subnets/sub1`).
    pub id: String,
    /// Subnet name; `GatewaySubnet` is special.
    pub name: String,
    /// The subnet's prefix.
    pub address_prefix: Ipv4Net,
    /// Attached network security group id.
    pub network_security_group: Option<String>,
    /// Attached route table id.
    pub route_table: Option<String>,
}

impl Subnet {
    /// Whether this is the subnet VPN gateways live in.
    pub fn is_gateway_subnet(&self) -> bool {
        self.name.eq_ignore_ascii_case(crate::GATEWAY_SUBNET)
    }

    /// The address of the VNet's implicit router in this subnet (`.1`).
    pub fn router_address(&self) -> Ipv4Addr {
        crate::ipam::nth(self.address_prefix, 1)
    }
}

/// `Microsoft.Network/virtualNetworks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualNetwork {
    /// Common resource data.
    pub meta: ResourceMeta,
    /// `addressSpace.addressPrefixes`.
    pub address_space: Vec<Ipv4Net>,
    /// Inline subnets and child `subnets` resources, merged.
    pub subnets: Vec<Subnet>,
    /// `dhcpOptions.dnsServers`, recorded.
    pub dns_servers: Vec<String>,
}

impl VirtualNetwork {
    /// The subnet with that name (case-insensitive).
    pub fn subnet(&self, name: &str) -> Option<&Subnet> {
        self.subnets
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// The GatewaySubnet, if the VNet has one.
    pub fn gateway_subnet(&self) -> Option<&Subnet> {
        self.subnet(crate::GATEWAY_SUBNET)
    }
}

/// Public IP SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PublicIpSku {
    /// Basic (the default).
    Basic,
    /// Standard (not on Azure Stack Hub).
    Standard,
}

/// `Microsoft.Network/publicIPAddresses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicIpAddress {
    /// Common resource data.
    pub meta: ResourceMeta,
    /// `sku.name`.
    pub sku: PublicIpSku,
    /// `publicIPAllocationMethod`; hybridnet allocates at deployment either way.
    pub allocation_method: AllocationMethod,
    /// The address allocated from the site's public prefix.
    pub ip_address: Ipv4Addr,
    /// `dnsSettings.domainNameLabel`, recorded.
    pub domain_name_label: Option<String>,
}

/// One IP configuration of a NIC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NicIpConfiguration {
    /// ipConfiguration name.
    pub name: String,
    /// Subnet id.
    pub subnet: String,
    /// Private address (allocated or checked).
    pub private_ip_address: Ipv4Addr,
    /// How the address was chosen.
    pub allocation_method: AllocationMethod,
    /// Attached public IP id.
    pub public_ip_address: Option<String>,
    /// Whether this is the NIC's primary configuration.
    pub primary: bool,
}

/// `Microsoft.Network/networkInterfaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// Common resource data.
    pub meta: ResourceMeta,
    /// IP configurations, first is primary unless one says otherwise.
    pub ip_configurations: Vec<NicIpConfiguration>,
    /// Attached network security group id, recorded.
    pub network_security_group: Option<String>,
    /// `enableIPForwarding`.
    pub enable_ip_forwarding: bool,
}

impl NetworkInterface {
    /// The primary IP configuration.
    pub fn primary(&self) -> Option<&NicIpConfiguration> {
        self.ip_configurations
            .iter()
            .find(|c| c.primary)
            .or(self.ip_configurations.first())
    }
}

/// A VM's reference to a NIC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmNic {
    /// NIC id.
    pub id: String,
    /// `properties.primary`.
    pub primary: bool,
}

/// `Microsoft.Compute/virtualMachines`: only networking is realized; the rest is recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualMachine {
    /// Common resource data.
    pub meta: ResourceMeta,
    /// `networkProfile.networkInterfaces`.
    pub network_interfaces: Vec<VmNic>,
    /// `hardwareProfile`, recorded.
    pub hardware_profile: Value,
    /// `osProfile`, recorded with secrets (adminPassword, customData, …) redacted.
    pub os_profile: Value,
    /// `storageProfile`, recorded.
    pub storage_profile: Value,
}

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
}

impl BgpSettings {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("asn".into(), json!(self.asn));
        if let Some(a) = &self.bgp_peering_address {
            m.insert("bgpPeeringAddress".into(), json!(a));
        }
        if let Some(w) = self.peer_weight {
            m.insert("peerWeight".into(), json!(w));
        }
        Value::Object(m)
    }
}

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

macro_rules! arm_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }
        impl $name {
            /// Every value ARM accepts, spelled as in the REST API.
            pub const ALL: &'static [&'static str] = &[$($text),+];
            /// Parses the ARM spelling (case-insensitive).
            pub fn parse(s: &str) -> Option<Self> {
                $(if s.eq_ignore_ascii_case($text) { return Some($name::$variant); })+
                None
            }
            /// The ARM spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
    };
}

arm_enum!(
    /// `ikeEncryption`.
    IkeEncryption { /** DES */ Des = "DES", /** 3DES */ Des3 = "DES3", /** AES-128-CBC */ Aes128 = "AES128", /** AES-192-CBC */ Aes192 = "AES192", /** AES-256-CBC */ Aes256 = "AES256", /** AES-128-GCM */ GcmAes128 = "GCMAES128", /** AES-256-GCM */ GcmAes256 = "GCMAES256" }
);
arm_enum!(
    /// `ikeIntegrity`.
    IkeIntegrity { /** HMAC-MD5 */ Md5 = "MD5", /** HMAC-SHA1 */ Sha1 = "SHA1", /** HMAC-SHA256 */ Sha256 = "SHA256", /** HMAC-SHA384 */ Sha384 = "SHA384", /** GCM (AEAD) */ GcmAes128 = "GCMAES128", /** GCM (AEAD) */ GcmAes256 = "GCMAES256" }
);
arm_enum!(
    /// `dhGroup` of the IKE SA.
    DhGroup { /** no DH */ None = "None", /** MODP 768 */ DhGroup1 = "DHGroup1", /** MODP 1024 */ DhGroup2 = "DHGroup2", /** MODP 2048 */ DhGroup14 = "DHGroup14", /** MODP 2048 (= 14) */ DhGroup2048 = "DHGroup2048", /** NIST P-256 */ Ecp256 = "ECP256", /** NIST P-384 */ Ecp384 = "ECP384", /** MODP 2048 with 256-bit subgroup */ DhGroup24 = "DHGroup24" }
);
arm_enum!(
    /// `ipsecEncryption`.
    IpsecEncryption { /** NULL cipher */ None = "None", /** DES */ Des = "DES", /** 3DES */ Des3 = "DES3", /** AES-128-CBC */ Aes128 = "AES128", /** AES-192-CBC */ Aes192 = "AES192", /** AES-256-CBC */ Aes256 = "AES256", /** AES-128-GCM */ GcmAes128 = "GCMAES128", /** AES-192-GCM */ GcmAes192 = "GCMAES192", /** AES-256-GCM */ GcmAes256 = "GCMAES256" }
);
arm_enum!(
    /// `ipsecIntegrity`.
    IpsecIntegrity { /** HMAC-MD5 */ Md5 = "MD5", /** HMAC-SHA1 */ Sha1 = "SHA1", /** HMAC-SHA256 */ Sha256 = "SHA256", /** GCM (AEAD) */ GcmAes128 = "GCMAES128", /** GCM (AEAD) */ GcmAes192 = "GCMAES192", /** GCM (AEAD) */ GcmAes256 = "GCMAES256" }
);
arm_enum!(
    /// `pfsGroup` of Child SAs.
    PfsGroup { /** no PFS */ None = "None", /** MODP 768 */ Pfs1 = "PFS1", /** MODP 1024 */ Pfs2 = "PFS2", /** MODP 2048 */ Pfs2048 = "PFS2048", /** NIST P-256 */ Ecp256 = "ECP256", /** NIST P-384 */ Ecp384 = "ECP384", /** MODP 2048 with 256-bit subgroup */ Pfs24 = "PFS24", /** MODP 2048 */ Pfs14 = "PFS14", /** same group as the IKE SA */ PfsMm = "PFSMM" }
);

/// One custom IPsec/IKE policy (`ipsecPolicies[]`), all eight fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpsecPolicy {
    /// Child SA lifetime in seconds (≥ 300).
    pub sa_life_time_seconds: u32,
    /// Child SA lifetime in kilobytes (≥ 1024).
    pub sa_data_size_kilobytes: u64,
    /// IKE encryption.
    pub ike_encryption: IkeEncryption,
    /// IKE integrity.
    pub ike_integrity: IkeIntegrity,
    /// IKE DH group.
    pub dh_group: DhGroup,
    /// ESP encryption.
    pub ipsec_encryption: IpsecEncryption,
    /// ESP integrity.
    pub ipsec_integrity: IpsecIntegrity,
    /// Child SA PFS group.
    pub pfs_group: PfsGroup,
}

fn dh_name(g: DhGroup) -> Option<&'static str> {
    Some(match g {
        DhGroup::None => return None,
        DhGroup::DhGroup1 => "modp768",
        DhGroup::DhGroup2 => "modp1024",
        DhGroup::DhGroup14 | DhGroup::DhGroup2048 => "modp2048",
        DhGroup::Ecp256 => "ecp256",
        DhGroup::Ecp384 => "ecp384",
        DhGroup::DhGroup24 => "modp2048s256",
    })
}

impl IpsecPolicy {
    /// The IKE proposal in strongSwan syntax, e.g. `aes256-sha384-ecp384`.
    /// For GCM the PRF is HMAC-SHA256 (Azure does not say which it uses).
    pub fn ike_proposal(&self) -> String {
        let enc = match self.ike_encryption {
            IkeEncryption::Des => "des",
            IkeEncryption::Des3 => "3des",
            IkeEncryption::Aes128 => "aes128",
            IkeEncryption::Aes192 => "aes192",
            IkeEncryption::Aes256 => "aes256",
            IkeEncryption::GcmAes128 => "aes128gcm16",
            IkeEncryption::GcmAes256 => "aes256gcm16",
        };
        let integ = match self.ike_integrity {
            IkeIntegrity::Md5 => "md5",
            IkeIntegrity::Sha1 => "sha1",
            IkeIntegrity::Sha256 => "sha256",
            IkeIntegrity::Sha384 => "sha384",
            IkeIntegrity::GcmAes128 | IkeIntegrity::GcmAes256 => "prfsha256",
        };
        let mut parts = vec![enc, integ];
        parts.extend(dh_name(self.dh_group));
        parts.join("-")
    }

    /// The ESP proposal in strongSwan syntax, e.g. `aes256gcm16-ecp384`.
    pub fn esp_proposal(&self) -> String {
        let enc = match self.ipsec_encryption {
            IpsecEncryption::None => "null",
            IpsecEncryption::Des => "des",
            IpsecEncryption::Des3 => "3des",
            IpsecEncryption::Aes128 => "aes128",
            IpsecEncryption::Aes192 => "aes192",
            IpsecEncryption::Aes256 => "aes256",
            IpsecEncryption::GcmAes128 => "aes128gcm16",
            IpsecEncryption::GcmAes192 => "aes192gcm16",
            IpsecEncryption::GcmAes256 => "aes256gcm16",
        };
        let integ = match self.ipsec_integrity {
            IpsecIntegrity::Md5 => Some("md5"),
            IpsecIntegrity::Sha1 => Some("sha1"),
            IpsecIntegrity::Sha256 => Some("sha256"),
            IpsecIntegrity::GcmAes128 | IpsecIntegrity::GcmAes192 | IpsecIntegrity::GcmAes256 => {
                None
            }
        };
        let pfs = match self.pfs_group {
            PfsGroup::None => None,
            PfsGroup::Pfs1 => Some("modp768"),
            PfsGroup::Pfs2 => Some("modp1024"),
            PfsGroup::Pfs2048 | PfsGroup::Pfs14 => Some("modp2048"),
            PfsGroup::Ecp256 => Some("ecp256"),
            PfsGroup::Ecp384 => Some("ecp384"),
            PfsGroup::Pfs24 => Some("modp2048s256"),
            PfsGroup::PfsMm => dh_name(self.dh_group),
        };
        let mut parts = vec![enc];
        parts.extend(integ);
        parts.extend(pfs);
        parts.join("-")
    }

    fn to_json(&self) -> Value {
        json!({
            "saLifeTimeSeconds": self.sa_life_time_seconds,
            "saDataSizeKilobytes": self.sa_data_size_kilobytes,
            "ipsecEncryption": self.ipsec_encryption.as_str(),
            "ipsecIntegrity": self.ipsec_integrity.as_str(),
            "ikeEncryption": self.ike_encryption.as_str(),
            "ikeIntegrity": self.ike_integrity.as_str(),
            "dhGroup": self.dh_group.as_str(),
            "pfsGroup": self.pfs_group.as_str(),
        })
    }
}

/// A resource type hybridnet does not model: recorded as given so other templates still deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtherResource {
    /// Common resource data.
    pub meta: ResourceMeta,
    /// The evaluated resource object as the template gave it (secure values redacted).
    pub body: Value,
}

/// Every resource a site can hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Resource {
    /// `Microsoft.Network/virtualNetworks` (child subnets merged in).
    VirtualNetwork(VirtualNetwork),
    /// `Microsoft.Network/publicIPAddresses`.
    PublicIpAddress(PublicIpAddress),
    /// `Microsoft.Network/networkInterfaces`.
    NetworkInterface(NetworkInterface),
    /// `Microsoft.Compute/virtualMachines`.
    VirtualMachine(VirtualMachine),
    /// `Microsoft.Network/virtualNetworkGateways`.
    VirtualNetworkGateway(VirtualNetworkGateway),
    /// `Microsoft.Network/localNetworkGateways`.
    LocalNetworkGateway(LocalNetworkGateway),
    /// `Microsoft.Network/connections`.
    Connection(Connection),
    /// Any other type, recorded as-is.
    Other(OtherResource),
}

fn id_obj(id: &str) -> Value {
    json!({ "id": id })
}

impl Resource {
    /// Common resource data.
    pub fn meta(&self) -> &ResourceMeta {
        match self {
            Resource::VirtualNetwork(r) => &r.meta,
            Resource::PublicIpAddress(r) => &r.meta,
            Resource::NetworkInterface(r) => &r.meta,
            Resource::VirtualMachine(r) => &r.meta,
            Resource::VirtualNetworkGateway(r) => &r.meta,
            Resource::LocalNetworkGateway(r) => &r.meta,
            Resource::Connection(r) => &r.meta,
            Resource::Other(r) => &r.meta,
        }
    }

    /// Common resource data, mutable.
    pub fn meta_mut(&mut self) -> &mut ResourceMeta {
        match self {
            Resource::VirtualNetwork(r) => &mut r.meta,
            Resource::PublicIpAddress(r) => &mut r.meta,
            Resource::NetworkInterface(r) => &mut r.meta,
            Resource::VirtualMachine(r) => &mut r.meta,
            Resource::VirtualNetworkGateway(r) => &mut r.meta,
            Resource::LocalNetworkGateway(r) => &mut r.meta,
            Resource::Connection(r) => &mut r.meta,
            Resource::Other(r) => &mut r.meta,
        }
    }

    /// Full resource id.
    pub fn id(&self) -> &str {
        &self.meta().id
    }

    /// Resource name.
    pub fn name(&self) -> &str {
        &self.meta().name
    }

    /// Full resource type.
    pub fn resource_type(&self) -> &str {
        &self.meta().resource_type
    }

    /// Realization state.
    pub fn provisioning_state(&self) -> &ProvisioningState {
        &self.meta().provisioning_state
    }

    /// Ids this resource points at (subnets as `…/subnets/x`), for reference checks.
    pub fn references(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match self {
            Resource::VirtualNetwork(v) => {
                for (i, s) in v.subnets.iter().enumerate() {
                    if let Some(n) = &s.network_security_group {
                        out.push((
                            format!("properties.subnets[{i}].properties.networkSecurityGroup.id"),
                            n.clone(),
                        ));
                    }
                    if let Some(n) = &s.route_table {
                        out.push((
                            format!("properties.subnets[{i}].properties.routeTable.id"),
                            n.clone(),
                        ));
                    }
                }
            }
            Resource::NetworkInterface(n) => {
                for (i, c) in n.ip_configurations.iter().enumerate() {
                    out.push((
                        format!("properties.ipConfigurations[{i}].properties.subnet.id"),
                        c.subnet.clone(),
                    ));
                    if let Some(p) = &c.public_ip_address {
                        out.push((
                            format!(
                                "properties.ipConfigurations[{i}].properties.publicIPAddress.id"
                            ),
                            p.clone(),
                        ));
                    }
                }
                if let Some(n) = &n.network_security_group {
                    out.push(("properties.networkSecurityGroup.id".into(), n.clone()));
                }
            }
            Resource::VirtualMachine(v) => {
                for (i, n) in v.network_interfaces.iter().enumerate() {
                    out.push((
                        format!("properties.networkProfile.networkInterfaces[{i}].id"),
                        n.id.clone(),
                    ));
                }
            }
            Resource::VirtualNetworkGateway(g) => {
                for (i, c) in g.ip_configurations.iter().enumerate() {
                    out.push((
                        format!("properties.ipConfigurations[{i}].properties.subnet.id"),
                        c.subnet.clone(),
                    ));
                    out.push((
                        format!("properties.ipConfigurations[{i}].properties.publicIPAddress.id"),
                        c.public_ip_address.clone(),
                    ));
                }
            }
            Resource::Connection(c) => {
                out.push((
                    "properties.virtualNetworkGateway1.id".into(),
                    c.virtual_network_gateway1.clone(),
                ));
                if let Some(g) = &c.virtual_network_gateway2 {
                    out.push(("properties.virtualNetworkGateway2.id".into(), g.clone()));
                }
                if let Some(l) = &c.local_network_gateway2 {
                    out.push(("properties.localNetworkGateway2.id".into(), l.clone()));
                }
            }
            Resource::PublicIpAddress(_)
            | Resource::LocalNetworkGateway(_)
            | Resource::Other(_) => {}
        }
        out
    }

    /// The resource as ARM's GET shows it: id, name, type, location, tags, sku, properties with
    /// runtime values (allocated addresses, provisioningState). `sharedKey` is never included.
    pub fn arm_json(&self) -> Value {
        let meta = self.meta();
        let mut props = Map::new();
        props.insert(
            "provisioningState".into(),
            json!(meta.provisioning_state.arm_name()),
        );
        match &meta.provisioning_state {
            ProvisioningState::Failed { error } => {
                props.insert("provisioningError".into(), json!(error));
            }
            ProvisioningState::Pending { reason } => {
                props.insert("pendingReason".into(), json!(reason));
            }
            _ => {}
        }
        let mut sku = None;
        match self {
            Resource::VirtualNetwork(v) => {
                props.insert(
                    "addressSpace".into(),
                    json!({ "addressPrefixes": v.address_space.iter().map(|p| p.to_string()).collect::<Vec<_>>() }),
                );
                if !v.dns_servers.is_empty() {
                    props.insert("dhcpOptions".into(), json!({ "dnsServers": v.dns_servers }));
                }
                let subnets: Vec<Value> = v
                    .subnets
                    .iter()
                    .map(|s| json!({ "id": s.id, "name": s.name, "properties": subnet_properties(s, &meta.provisioning_state) }))
                    .collect();
                props.insert("subnets".into(), Value::Array(subnets));
            }
            Resource::PublicIpAddress(p) => {
                sku = Some(
                    json!({ "name": match p.sku { PublicIpSku::Basic => "Basic", PublicIpSku::Standard => "Standard" } }),
                );
                props.insert(
                    "publicIPAllocationMethod".into(),
                    json!(p.allocation_method.as_str()),
                );
                props.insert("publicIPAddressVersion".into(), json!("IPv4"));
                props.insert("ipAddress".into(), json!(p.ip_address.to_string()));
                if let Some(l) = &p.domain_name_label {
                    props.insert("dnsSettings".into(), json!({ "domainNameLabel": l }));
                }
            }
            Resource::NetworkInterface(n) => {
                let cfgs: Vec<Value> = n
                    .ip_configurations
                    .iter()
                    .map(|c| {
                        let mut p = Map::new();
                        p.insert("privateIPAddress".into(), json!(c.private_ip_address.to_string()));
                        p.insert("privateIPAllocationMethod".into(), json!(c.allocation_method.as_str()));
                        p.insert("privateIPAddressVersion".into(), json!("IPv4"));
                        p.insert("subnet".into(), id_obj(&c.subnet));
                        if let Some(pip) = &c.public_ip_address {
                            p.insert("publicIPAddress".into(), id_obj(pip));
                        }
                        p.insert("primary".into(), json!(c.primary));
                        json!({ "id": format!("{}/ipConfigurations/{}", meta.id, c.name), "name": c.name, "properties": p })
                    })
                    .collect();
                props.insert("ipConfigurations".into(), Value::Array(cfgs));
                props.insert("enableIPForwarding".into(), json!(n.enable_ip_forwarding));
                if let Some(nsg) = &n.network_security_group {
                    props.insert("networkSecurityGroup".into(), id_obj(nsg));
                }
            }
            Resource::VirtualMachine(v) => {
                props.insert("hardwareProfile".into(), v.hardware_profile.clone());
                props.insert("osProfile".into(), v.os_profile.clone());
                props.insert("storageProfile".into(), v.storage_profile.clone());
                let nics: Vec<Value> = v
                    .network_interfaces
                    .iter()
                    .map(|n| json!({ "id": n.id, "properties": { "primary": n.primary } }))
                    .collect();
                props.insert(
                    "networkProfile".into(),
                    json!({ "networkInterfaces": nics }),
                );
            }
            Resource::VirtualNetworkGateway(g) => {
                props.insert("gatewayType".into(), json!(g.gateway_type));
                props.insert(
                    "vpnType".into(),
                    json!(match g.vpn_type {
                        VpnType::RouteBased => "RouteBased",
                        VpnType::PolicyBased => "PolicyBased",
                    }),
                );
                props.insert("sku".into(), json!({ "name": g.sku, "tier": g.sku }));
                props.insert("activeActive".into(), json!(g.active_active));
                props.insert("enableBgp".into(), json!(g.enable_bgp));
                if let Some(b) = &g.bgp_settings {
                    props.insert("bgpSettings".into(), b.to_json());
                }
                if let Some(gen) = &g.vpn_gateway_generation {
                    props.insert("vpnGatewayGeneration".into(), json!(gen));
                }
                let cfgs: Vec<Value> = g
                    .ip_configurations
                    .iter()
                    .map(|c| {
                        json!({
                            "id": format!("{}/ipConfigurations/{}", meta.id, c.name),
                            "name": c.name,
                            "properties": {
                                "privateIPAllocationMethod": "Dynamic",
                                "privateIPAddress": c.private_ip_address.to_string(),
                                "subnet": id_obj(&c.subnet),
                                "publicIPAddress": id_obj(&c.public_ip_address),
                            }
                        })
                    })
                    .collect();
                props.insert("ipConfigurations".into(), Value::Array(cfgs));
            }
            Resource::LocalNetworkGateway(l) => {
                if let Some(a) = l.gateway_ip_address {
                    props.insert("gatewayIpAddress".into(), json!(a.to_string()));
                }
                if let Some(f) = &l.fqdn {
                    props.insert("fqdn".into(), json!(f));
                }
                props.insert(
                    "localNetworkAddressSpace".into(),
                    json!({ "addressPrefixes": l.address_prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>() }),
                );
                if let Some(b) = &l.bgp_settings {
                    props.insert("bgpSettings".into(), b.to_json());
                }
            }
            Resource::Connection(c) => {
                props.insert(
                    "connectionType".into(),
                    json!(format!("{:?}", c.connection_type)),
                );
                props.insert(
                    "virtualNetworkGateway1".into(),
                    id_obj(&c.virtual_network_gateway1),
                );
                if let Some(g) = &c.virtual_network_gateway2 {
                    props.insert("virtualNetworkGateway2".into(), id_obj(g));
                }
                if let Some(l) = &c.local_network_gateway2 {
                    props.insert("localNetworkGateway2".into(), id_obj(l));
                }
                props.insert("routingWeight".into(), json!(c.routing_weight));
                props.insert(
                    "connectionProtocol".into(),
                    json!(format!("{:?}", c.connection_protocol)),
                );
                props.insert("dpdTimeoutSeconds".into(), json!(c.dpd_timeout_seconds));
                props.insert(
                    "ipsecPolicies".into(),
                    Value::Array(c.ipsec_policies.iter().map(IpsecPolicy::to_json).collect()),
                );
                props.insert(
                    "usePolicyBasedTrafficSelectors".into(),
                    json!(c.use_policy_based_traffic_selectors),
                );
                props.insert("enableBgp".into(), json!(c.enable_bgp));
            }
            Resource::Other(o) => {
                if let Some(Value::Object(p)) = crate::json::get_ci(&o.body, "properties") {
                    for (k, v) in p {
                        props.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                sku = crate::json::get_ci(&o.body, "sku").cloned();
            }
        }
        let mut out = Map::new();
        out.insert("id".into(), json!(meta.id));
        out.insert("name".into(), json!(meta.name));
        out.insert("type".into(), json!(meta.resource_type));
        if let Some(l) = &meta.location {
            out.insert("location".into(), json!(l));
        }
        if !meta.tags.is_empty() {
            out.insert("tags".into(), Value::Object(meta.tags.clone()));
        }
        if let Some(s) = sku {
            out.insert("sku".into(), s);
        }
        out.insert("properties".into(), Value::Object(props));
        Value::Object(out)
    }
}

/// A subnet's `properties` object as ARM shows it.
pub(crate) fn subnet_properties(s: &Subnet, state: &ProvisioningState) -> Value {
    let mut p = Map::new();
    p.insert("addressPrefix".into(), json!(s.address_prefix.to_string()));
    if let Some(n) = &s.network_security_group {
        p.insert("networkSecurityGroup".into(), id_obj(n));
    }
    if let Some(r) = &s.route_table {
        p.insert("routeTable".into(), id_obj(r));
    }
    p.insert("provisioningState".into(), json!(state.arm_name()));
    Value::Object(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> IpsecPolicy {
        IpsecPolicy {
            sa_life_time_seconds: 27000,
            sa_data_size_kilobytes: 102_400_000,
            ike_encryption: IkeEncryption::Aes256,
            ike_integrity: IkeIntegrity::Sha384,
            dh_group: DhGroup::Ecp384,
            ipsec_encryption: IpsecEncryption::GcmAes256,
            ipsec_integrity: IpsecIntegrity::GcmAes256,
            pfs_group: PfsGroup::Ecp384,
        }
    }

    #[test]
    fn ash_custom_policy_maps_to_ash_default_proposals() {
        let p = policy();
        let ash = crate::kind("azure-stack-hub").unwrap();
        assert_eq!(p.ike_proposal(), ash.default_policy.ike_proposals[0]);
        assert_eq!(
            p.esp_proposal(),
            ash.default_policy.esp_initiator_proposals[0]
        );
    }

    #[test]
    fn pfsmm_uses_ike_group() {
        let p = IpsecPolicy {
            pfs_group: PfsGroup::PfsMm,
            ipsec_encryption: IpsecEncryption::Aes128,
            ipsec_integrity: IpsecIntegrity::Sha256,
            ..policy()
        };
        assert_eq!(p.esp_proposal(), "aes128-sha256-ecp384");
    }

    #[test]
    fn shared_key_never_debug_printed() {
        let k = SharedKey::new("hunter2-secret");
        assert_eq!(format!("{k:?}"), "SharedKey(***)");
        assert_eq!(k.expose(), "hunter2-secret");
    }

    #[test]
    fn enum_parse_case_insensitive() {
        assert_eq!(DhGroup::parse("dhgroup24"), Some(DhGroup::DhGroup24));
        assert_eq!(PfsGroup::parse("PFSMM"), Some(PfsGroup::PfsMm));
        assert_eq!(IkeEncryption::parse("AES512"), None);
    }
}
