//! The gateway's BGP rules (the speaker itself is the `bgp` crate's, run by `bgp_io`): which
//! peers there are and whether their tunnels are up, which learned routes the gateway takes
//! and into which tunnel, and which it refuses.
//!
//! A learned prefix is refused when it overlaps the VNet's own address space (the VNet's
//! routes always win, as in Azure) or covers an address the tunnels themselves use (an IKE
//! peer, our public address or our BGP address): routing it into a tunnel would carry that
//! tunnel's own packets.

use super::GatewayCore;
use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr};

/// A learned route the gateway forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The prefix.
    pub prefix: Ipv4Net,
    /// The connection (index) whose peer announced the best route.
    pub conn: usize,
}

impl GatewayCore {
    /// Every connection's BGP peer, for the speaker.
    pub fn bgp_peers(&self) -> Vec<bgp::PeerConfig> {
        let mut peers: Vec<bgp::PeerConfig> = self
            .live_connections()
            .filter_map(|(_, c)| c.bgp_peer)
            .map(|p| bgp::PeerConfig {
                address: p.address,
                asn: p.asn,
            })
            .collect();
        peers.dedup();
        peers
    }

    /// Per BGP peer: whether a Child SA of its connection carries traffic (only then can its
    /// session run).
    pub fn bgp_reachability(&self) -> Vec<(Ipv4Addr, bool)> {
        self.live_connections()
            .filter_map(|(i, c)| c.bgp_peer.map(|p| (p.address, self.dp.is_up(i))))
            .collect()
    }

    /// Takes the speaker's forwarding table (prefix → peer): routes of known peers that
    /// pass the checks go into their connection; returns whether anything changed.
    pub fn set_bgp_routes(&mut self, forwarding: &[(Ipv4Net, Ipv4Addr)]) -> bool {
        let mut installed = Vec::new();
        let mut refused = Vec::new();
        for (prefix, peer) in forwarding {
            let Some((conn, _)) = self
                .live_connections()
                .find(|(_, c)| c.bgp_peer.is_some_and(|p| p.address == *peer))
            else {
                continue;
            };
            match self.refusal(prefix) {
                Some(why) => refused.push((*prefix, why)),
                None => installed.push(Installed {
                    prefix: *prefix,
                    conn,
                }),
            }
        }
        if installed == self.bgp_installed && refused == self.bgp_refused {
            return false;
        }
        let touched: Vec<usize> = self
            .bgp_installed
            .iter()
            .chain(installed.iter())
            .map(|r| r.conn)
            .collect();
        self.bgp_installed = installed;
        self.bgp_refused = refused;
        for i in touched {
            self.apply_routed(i);
        }
        true
    }

    /// What the VNet router should send to this gateway (with `[vnet_router]`): every learned
    /// route it forwards, and with `static_routes` the static prefixes of each connection
    /// whose Child SAs carry traffic; `true` marks a learned route.
    pub fn vnet_routes(&self) -> std::collections::BTreeMap<Ipv4Net, bool> {
        let mut out = std::collections::BTreeMap::new();
        let Some(r) = &self.cfg.vnet_router else {
            return out;
        };
        if r.static_routes {
            for (i, c) in self.live_connections() {
                if !self.dp.is_up(i) {
                    continue;
                }
                for p in &c.remote_prefixes {
                    if let IpNet::V4(v) = p {
                        out.insert(v.trunc(), false);
                    }
                }
            }
        }
        for r in &self.bgp_installed {
            out.entry(r.prefix).or_insert(true);
        }
        out
    }

    /// Learned routes the gateway forwards.
    pub fn bgp_installed(&self) -> &[Installed] {
        &self.bgp_installed
    }

    /// Learned routes refused, and why.
    pub fn bgp_refused(&self) -> &[(Ipv4Net, String)] {
        &self.bgp_refused
    }

    /// Why a learned prefix must not be forwarded, if it must not.
    fn refusal(&self, prefix: &Ipv4Net) -> Option<String> {
        let bgp = self.cfg.bgp.as_ref()?;
        if let Some(own) = bgp
            .originate
            .iter()
            .find(|o| o.contains(prefix) || prefix.contains(*o))
        {
            return Some(format!("overlaps the VNet's address space {own}"));
        }
        let mut used: Vec<(Ipv4Addr, &str)> = vec![(bgp.address, "our BGP address")];
        if let IpAddr::V4(a) = self.cfg.local_address {
            used.push((a, "our public address"));
        }
        for (_, c) in self.live_connections() {
            if let Some(IpAddr::V4(a)) = c.remote_address {
                used.push((a, "an IKE peer's address"));
            }
        }
        used.iter()
            .find(|(a, _)| prefix.contains(a))
            .map(|(a, what)| format!("covers {a}, {what}: the tunnels' own packets would enter it"))
    }

    /// What connection `i` carries: its static remote prefixes, plus for a BGP connection
    /// its peer's address and the learned routes it won.
    pub(crate) fn routed_prefixes(&self, i: usize) -> Vec<IpNet> {
        let c = &self.cfg.connections[i];
        let mut out = c.remote_prefixes.clone();
        if let Some(p) = c.bgp_peer {
            out.push(IpNet::V4(
                Ipv4Net::new(p.address, 32).expect("/32 is valid"),
            ));
            out.extend(
                self.bgp_installed
                    .iter()
                    .filter(|r| r.conn == i)
                    .map(|r| IpNet::V4(r.prefix)),
            );
        }
        out.sort();
        out.dedup();
        out
    }

    /// Hands connection `i`'s routed prefixes to the data path (BGP connections only; the
    /// others route by their selectors).
    pub(super) fn apply_routed(&mut self, i: usize) {
        if self.cfg.connections[i].bgp_peer.is_some() && !self.retired.contains(&i) {
            let routed = self.routed_prefixes(i);
            self.dp.set_routed_prefixes(i, Some(&routed));
        } else {
            self.dp.set_routed_prefixes(i, None);
        }
    }

    /// Connections not removed by a reload, with their index.
    fn live_connections(&self) -> impl Iterator<Item = (usize, &crate::config::ConnectionSpec)> {
        self.cfg
            .connections
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.retired.contains(i))
    }
}
