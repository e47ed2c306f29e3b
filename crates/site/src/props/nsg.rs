//! `Microsoft.Network/networkSecurityGroups` and `…/networkSecurityGroups/securityRules`.

use ipnet::Ipv4Net;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{spelled_required, Spelling};
use crate::model::nsg::{Access, AddressMatch, Direction, NsgProtocol, PortRange, ServiceTag};

/// A network security group resource.
#[derive(Debug, Deserialize)]
pub(crate) struct NsgResource {
    /// `properties` (optional: an NSG without rules has only the defaults).
    #[serde(default)]
    pub properties: NsgProperties,
}

/// `properties` of a network security group.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NsgProperties {
    /// `securityRules`.
    #[serde(default)]
    pub security_rules: Vec<InlineRule>,
}

/// One entry of `securityRules`.
#[derive(Debug, Deserialize)]
pub(crate) struct InlineRule {
    /// `name`.
    pub name: String,
    /// `properties`.
    pub properties: RuleProperties,
}

/// A child `securityRules` resource.
#[derive(Debug, Deserialize)]
pub(crate) struct RuleResource {
    /// `properties`.
    pub properties: RuleProperties,
}

/// `properties` of a security rule.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RuleProperties {
    /// `description`.
    pub description: Option<String>,
    /// `protocol`.
    #[serde(deserialize_with = "spelled_required")]
    pub protocol: NsgProtocol,
    /// `sourcePortRange`.
    pub source_port_range: Option<Ports>,
    /// `sourcePortRanges`.
    pub source_port_ranges: Option<Vec<Ports>>,
    /// `destinationPortRange`.
    pub destination_port_range: Option<Ports>,
    /// `destinationPortRanges`.
    pub destination_port_ranges: Option<Vec<Ports>>,
    /// `sourceAddressPrefix`.
    pub source_address_prefix: Option<Address>,
    /// `sourceAddressPrefixes`.
    pub source_address_prefixes: Option<Vec<Address>>,
    /// `destinationAddressPrefix`.
    pub destination_address_prefix: Option<Address>,
    /// `destinationAddressPrefixes`.
    pub destination_address_prefixes: Option<Vec<Address>>,
    /// `sourceApplicationSecurityGroups` (refused: the lab has no application security groups).
    pub source_application_security_groups: Option<Vec<Value>>,
    /// `destinationApplicationSecurityGroups` (refused likewise).
    pub destination_application_security_groups: Option<Vec<Value>>,
    /// `access`.
    #[serde(deserialize_with = "spelled_required")]
    pub access: Access,
    /// `priority`.
    pub priority: i64,
    /// `direction`.
    #[serde(deserialize_with = "spelled_required")]
    pub direction: Direction,
}

/// A port or port range as written: `*`, `22`, `1000-2000`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports(pub Option<PortRange>);

impl<'de> Deserialize<'de> for Ports {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let s = s.trim();
        if s == "*" {
            return Ok(Ports(None));
        }
        let port = |t: &str| {
            t.trim().parse::<u16>().map_err(|_| {
                D::Error::custom(format!(
                    "{s:?} is not a port or port range (0 … 65535, e.g. 22 or 1000-2000, or *)"
                ))
            })
        };
        let (first, last) = match s.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(s)?, port(s)?),
        };
        if first > last {
            return Err(D::Error::custom(format!(
                "{s:?}: the range starts after it ends"
            )));
        }
        Ok(Ports(Some(PortRange { first, last })))
    }
}

/// An address entry as written: `*`, a prefix or address, or a service tag.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Address(pub AddressMatch);

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = s.trim();
        if t == "*" || t.eq_ignore_ascii_case("Any") {
            return Ok(Address(AddressMatch::Any));
        }
        for (name, tag) in [
            ("VirtualNetwork", ServiceTag::VirtualNetwork),
            ("Internet", ServiceTag::Internet),
            ("AzureLoadBalancer", ServiceTag::AzureLoadBalancer),
        ] {
            if t.eq_ignore_ascii_case(name) {
                return Ok(Address(AddressMatch::Tag(tag)));
            }
        }
        if let Ok(a) = t.parse::<std::net::Ipv4Addr>() {
            return Ok(Address(AddressMatch::Prefix(
                Ipv4Net::new(a, 32).expect("/32"),
            )));
        }
        if let Ok(net) = t.parse::<Ipv4Net>() {
            if net.trunc() != net {
                return Err(D::Error::custom(format!(
                    "{t} has host bits set; did you mean {}?",
                    net.trunc()
                )));
            }
            return Ok(Address(AddressMatch::Prefix(net)));
        }
        if t.contains(':') {
            return Err(D::Error::custom(format!(
                "{t}: IPv6 is not carried by the lab's sites"
            )));
        }
        Err(D::Error::custom(format!(
            "{t:?} is neither an IPv4 address or prefix nor a service tag the lab can expand (VirtualNetwork, Internet, AzureLoadBalancer, *)"
        )))
    }
}

impl Spelling for NsgProtocol {
    fn from_arm(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "*" | "any" => NsgProtocol::Any,
            "tcp" => NsgProtocol::Tcp,
            "udp" => NsgProtocol::Udp,
            "icmp" => NsgProtocol::Icmp,
            "esp" => NsgProtocol::Esp,
            "ah" => NsgProtocol::Ah,
            _ => return None,
        })
    }
    fn unknown(s: &str) -> String {
        format!("{s:?} is not one of Tcp, Udp, Icmp, Esp, Ah, *")
    }
}

impl Spelling for Access {
    fn from_arm(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "allow" => Some(Access::Allow),
            "deny" => Some(Access::Deny),
            _ => None,
        }
    }
    fn unknown(s: &str) -> String {
        format!("{s:?} is not one of Allow, Deny")
    }
}

impl Spelling for Direction {
    fn from_arm(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "inbound" => Some(Direction::Inbound),
            "outbound" => Some(Direction::Outbound),
            _ => None,
        }
    }
    fn unknown(s: &str) -> String {
        format!("{s:?} is not one of Inbound, Outbound")
    }
}
