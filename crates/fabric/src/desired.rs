//! The desired kernel state of a lab, independent of where it came from (VNets, VMs, later
//! gateways): namespaces, links, addresses, routes. `reconcile` makes the kernel match it.

use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// Routes the fabric installs carry this protocol number, so that reconciliation removes only
/// its own stale routes and never a route a gateway process added (`ip route … proto 72`).
pub const FABRIC_ROUTE_PROTO: u8 = 72;

/// One namespace and everything the fabric manages inside it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NetnsSpec {
    /// Full namespace name (`hn-<id>-…`).
    pub name: String,
    /// What this namespace stands for, e.g. "VM azure/vm1" (shown by status, recorded in state).
    pub role: String,
    /// Whether the namespace forwards IPv4 (routers, the internet).
    pub forwarding: bool,
    /// Links the fabric owns here (bridges and veths; other kinds, e.g. a gateway's TUN, are left alone).
    pub links: Vec<LinkSpec>,
    /// Routes the fabric owns here (tagged with [`FABRIC_ROUTE_PROTO`]).
    pub routes: Vec<RouteSpec>,
    /// Body (chains) of the nftables table `ip hybridnet` in this namespace, e.g. a site's
    /// NAT; `None` = the fabric keeps no table here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nft: Option<String>,
}

/// Name of the nftables table the fabric owns in a namespace.
pub const NFT_TABLE: &str = "hybridnet";

/// One link inside a namespace.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinkSpec {
    /// Interface name (≤ 15 bytes).
    pub name: String,
    /// What it is and who creates it.
    pub kind: LinkKind,
    /// Bridge this link is a port of, in the same namespace.
    pub master: Option<String>,
    /// IPv4 addresses with prefix length.
    pub addrs: Vec<Ipv4Net>,
    /// What the interface stands for, e.g. "subnet azure/vnet1/default".
    pub role: String,
}

/// How a link comes to exist.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LinkKind {
    /// A bridge created in this namespace.
    Bridge,
    /// A veth created from this namespace; its peer is placed into `peer_netns` as `peer_name`.
    Veth {
        /// The namespace at the other end.
        peer_netns: String,
        /// The name at the other end.
        peer_name: String,
    },
    /// The far end of a veth that another namespace's [`LinkKind::Veth`] creates.
    VethPeer,
}

impl LinkKind {
    /// The kernel's `info_kind` for this link.
    pub fn kernel_kind(&self) -> &'static str {
        match self {
            LinkKind::Bridge => "bridge",
            LinkKind::Veth { .. } | LinkKind::VethPeer => "veth",
        }
    }
}

/// One IPv4 route.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouteSpec {
    /// Destination; 0.0.0.0/0 is the default route.
    pub dst: Ipv4Net,
    /// Next hop, if not directly connected.
    pub via: Option<Ipv4Addr>,
    /// Outgoing interface.
    pub dev: String,
}

impl RouteSpec {
    /// `ip route` destination word: `default` or the prefix.
    pub fn dst_word(&self) -> String {
        if self.dst.prefix_len() == 0 {
            "default".to_string()
        } else {
            self.dst.to_string()
        }
    }
}

/// The desired state of a whole lab: every namespace it owns.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DesiredState {
    /// All namespaces, in creation order (creators of veths before their peers).
    pub netns: Vec<NetnsSpec>,
}

/// The desired state is inconsistent (a bug in whoever built it, or colliding names).
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    /// Two objects map to the same namespace name.
    #[error("two lab objects map to the same namespace {0}; rename one of them")]
    DuplicateNetns(String),
    /// Two links in one namespace have the same name.
    #[error("two links named {link} in namespace {netns}")]
    DuplicateLink {
        /// The network namespace concerned.
        netns: String,
        /// The link concerned.
        link: String,
    },
    /// A name is too long for the kernel.
    #[error("interface name {0:?} is longer than 15 bytes")]
    IfnameTooLong(String),
    /// A veth's peer namespace or peer link is not described.
    #[error(
        "veth {link} in {netns} points at {peer_netns}/{peer_name}, which is not a VethPeer there"
    )]
    DanglingVeth {
        /// The network namespace concerned.
        netns: String,
        /// The link concerned.
        link: String,
        /// The namespace at the other end.
        peer_netns: String,
        /// The name at the other end.
        peer_name: String,
    },
}

impl DesiredState {
    /// Checks names and veth pairs, and orders namespaces so veth creators come first.
    pub fn validate(&mut self) -> Result<(), DesiredError> {
        let mut seen = std::collections::HashSet::new();
        for ns in &self.netns {
            if !seen.insert(ns.name.clone()) {
                return Err(DesiredError::DuplicateNetns(ns.name.clone()));
            }
            let mut links = std::collections::HashSet::new();
            for l in &ns.links {
                if l.name.len() > crate::names::IFNAME_MAX {
                    return Err(DesiredError::IfnameTooLong(l.name.clone()));
                }
                if !links.insert(l.name.clone()) {
                    return Err(DesiredError::DuplicateLink {
                        netns: ns.name.clone(),
                        link: l.name.clone(),
                    });
                }
            }
        }
        for ns in &self.netns {
            for l in &ns.links {
                if let LinkKind::Veth {
                    peer_netns,
                    peer_name,
                } = &l.kind
                {
                    let ok = self.netns.iter().any(|p| {
                        &p.name == peer_netns
                            && p.links
                                .iter()
                                .any(|pl| &pl.name == peer_name && pl.kind == LinkKind::VethPeer)
                    });
                    if !ok {
                        return Err(DesiredError::DanglingVeth {
                            netns: ns.name.clone(),
                            link: l.name.clone(),
                            peer_netns: peer_netns.clone(),
                            peer_name: peer_name.clone(),
                        });
                    }
                }
            }
        }
        // Creators first: a namespace receiving a veth peer comes after the one creating it
        // (stable topological order; veth edges never form a cycle in a valid lab).
        let mut remaining: Vec<NetnsSpec> = std::mem::take(&mut self.netns);
        while !remaining.is_empty() {
            let ready = remaining
                .iter()
                .position(|ns| {
                    !remaining.iter().any(|other| {
                        other.name != ns.name
                            && other.links.iter().any(|l| {
                                matches!(&l.kind, LinkKind::Veth { peer_netns, .. } if *peer_netns == ns.name)
                            })
                    })
                })
                .unwrap_or(0);
            self.netns.push(remaining.remove(ready));
        }
        Ok(())
    }

    /// The namespace named `name`.
    pub fn get(&self, name: &str) -> Option<&NetnsSpec> {
        self.netns.iter().find(|n| n.name == name)
    }
}
