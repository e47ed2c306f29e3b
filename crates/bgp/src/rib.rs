//! Routing information bases (RFC 4271 §3.2, §9): per-peer Adj-RIB-In, the Loc-RIB with
//! best-path selection (§9.1.2), per-peer Adj-RIB-Out. Every change returns the UPDATEs each
//! peer must be sent, computed against what that peer was already sent, so a caller only
//! carries them to the peers' sessions.
//!
//! Policy is the one a VPN gateway needs: no filters, no route reflection; routes learned from
//! an internal peer go to external peers only; to an external peer our AS is prepended, NEXT_HOP
//! is our address on that session, LOCAL_PREF and a neighbouring AS's MED are dropped; a route
//! is not sent to a peer whose AS it already crossed; a route whose AS_PATH holds our own AS is
//! not accepted (§9.1.2 loop detection).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::codec::update::{FLAG_OPTIONAL, FLAG_PARTIAL, FLAG_TRANSITIVE};
use crate::codec::{AsPath, Origin, PathAttributes, Update, MAX_MESSAGE_LEN};

/// LOCAL_PREF of routes that carry none (external and local routes; RFC 4271 leaves the
/// value to policy, 100 is what every implementation uses).
pub const DEFAULT_LOCAL_PREF: u32 = 100;
/// Most prefixes per UPDATE: 5 octets each at most, within 4096 octets with the attributes.
const MAX_WITHDRAWN_PER_UPDATE: usize = (MAX_MESSAGE_LEN - 23) / 5;

/// A peer whose session is Established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's address: identifies it here and breaks the last best-path tie.
    pub address: Ipv4Addr,
    /// The peer's AS.
    pub asn: u32,
    /// The peer's BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Our address on the session: NEXT_HOP of the routes we send it.
    pub local_address: Ipv4Addr,
}

/// Where a route in the Loc-RIB came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteSource {
    /// Originated here with [`Rib::originate`].
    Local,
    /// Learned from a peer.
    Peer(PeerInfo),
}

/// A route: its attributes and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Who announced it.
    pub source: RouteSource,
    /// Its path attributes as accepted.
    pub attributes: PathAttributes,
}

/// The RIBs of one speaker; see the module documentation.
pub struct Rib {
    local_as: u32,
    local: BTreeMap<Ipv4Net, PathAttributes>,
    peers: BTreeMap<Ipv4Addr, Peer>,
    loc: BTreeMap<Ipv4Net, Route>,
}

/// An Established peer's RIBs.
struct Peer {
    info: PeerInfo,
    adj_in: BTreeMap<Ipv4Net, PathAttributes>,
    adj_out: BTreeMap<Ipv4Net, PathAttributes>,
}

impl Rib {
    /// Empty RIBs of a speaker in `local_as`.
    pub fn new(local_as: u32) -> Self {
        Rib {
            local_as,
            local: BTreeMap::new(),
            peers: BTreeMap::new(),
            loc: BTreeMap::new(),
        }
    }

    /// The best route to `prefix`.
    pub fn best(&self, prefix: &Ipv4Net) -> Option<&Route> {
        self.loc.get(prefix)
    }

    /// The Loc-RIB: every prefix with its best route.
    pub fn loc_rib(&self) -> impl Iterator<Item = (&Ipv4Net, &Route)> {
        self.loc.iter()
    }

    /// What `peer` announced and we accepted.
    pub fn adj_rib_in(&self, peer: Ipv4Addr) -> impl Iterator<Item = (&Ipv4Net, &PathAttributes)> {
        self.peers
            .get(&peer)
            .into_iter()
            .flat_map(|p| p.adj_in.iter())
    }

    /// What `peer` was sent and not withdrawn.
    pub fn adj_rib_out(&self, peer: Ipv4Addr) -> impl Iterator<Item = (&Ipv4Net, &PathAttributes)> {
        self.peers
            .get(&peer)
            .into_iter()
            .flat_map(|p| p.adj_out.iter())
    }

    /// A session came up: the UPDATEs that give the peer our whole table.
    pub fn peer_up(&mut self, info: PeerInfo) -> Vec<(Ipv4Addr, Update)> {
        let address = info.address;
        let stale: BTreeSet<Ipv4Net> = self
            .peers
            .remove(&address)
            .map(|p| p.adj_in.into_keys().collect())
            .unwrap_or_default();
        let mut out = self.recompute(&stale);
        self.peers.insert(
            address,
            Peer {
                info,
                adj_in: BTreeMap::new(),
                adj_out: BTreeMap::new(),
            },
        );
        let all: BTreeSet<Ipv4Net> = self.loc.keys().copied().collect();
        out.extend(self.sync_peer(address, &all));
        out
    }

    /// The peer asked for our routes again (ROUTE-REFRESH): its whole Adj-RIB-Out, resent.
    pub fn refresh(&self, peer: Ipv4Addr) -> Vec<(Ipv4Addr, Update)> {
        let Some(p) = self.peers.get(&peer) else {
            return vec![];
        };
        let mut announce: Vec<(PathAttributes, Vec<Ipv4Net>)> = Vec::new();
        for (prefix, attrs) in &p.adj_out {
            match announce.iter_mut().find(|(a, _)| a == attrs) {
                Some((_, list)) => list.push(*prefix),
                None => announce.push((attrs.clone(), vec![*prefix])),
            }
        }
        build_updates(vec![], announce)
            .into_iter()
            .map(|u| (peer, u))
            .collect()
    }

    /// A session went down: its routes are withdrawn, other peers are told what changed.
    pub fn peer_down(&mut self, address: Ipv4Addr) -> Vec<(Ipv4Addr, Update)> {
        let Some(peer) = self.peers.remove(&address) else {
            return vec![];
        };
        let changed: BTreeSet<Ipv4Net> = peer.adj_in.into_keys().collect();
        self.recompute(&changed)
    }

    /// `peer` announced `prefixes` with `attributes`. A path through our own AS is treated as
    /// a withdrawal of the prefixes (RFC 4271 §9.1.2); LOCAL_PREF from an external peer is
    /// ignored (§5.1.5).
    pub fn receive(
        &mut self,
        peer: Ipv4Addr,
        prefixes: &[Ipv4Net],
        attributes: &PathAttributes,
    ) -> Vec<(Ipv4Addr, Update)> {
        let local_as = self.local_as;
        let Some(p) = self.peers.get_mut(&peer) else {
            return vec![];
        };
        let looped = attributes
            .as_path
            .as_ref()
            .is_some_and(|path| path.contains(local_as));
        let mut accepted = attributes.clone();
        if p.info.asn != local_as {
            accepted.local_pref = None;
        }
        for prefix in prefixes {
            if looped {
                p.adj_in.remove(prefix);
            } else {
                p.adj_in.insert(*prefix, accepted.clone());
            }
        }
        self.recompute(&prefixes.iter().copied().collect())
    }

    /// `peer` withdrew `prefixes`.
    pub fn withdraw(&mut self, peer: Ipv4Addr, prefixes: &[Ipv4Net]) -> Vec<(Ipv4Addr, Update)> {
        let Some(p) = self.peers.get_mut(&peer) else {
            return vec![];
        };
        for prefix in prefixes {
            p.adj_in.remove(prefix);
        }
        self.recompute(&prefixes.iter().copied().collect())
    }

    /// Announces `prefix` from this speaker (ORIGIN IGP, empty AS_PATH).
    pub fn originate(&mut self, prefix: Ipv4Net) -> Vec<(Ipv4Addr, Update)> {
        let attributes = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            ..PathAttributes::default()
        };
        self.local.insert(prefix.trunc(), attributes);
        self.recompute(&BTreeSet::from([prefix.trunc()]))
    }

    /// Stops announcing a prefix [`Rib::originate`] announced.
    pub fn stop_originating(&mut self, prefix: Ipv4Net) -> Vec<(Ipv4Addr, Update)> {
        self.local.remove(&prefix.trunc());
        self.recompute(&BTreeSet::from([prefix.trunc()]))
    }

    /// Runs best-path selection for `prefixes` and brings every peer's Adj-RIB-Out in line.
    fn recompute(&mut self, prefixes: &BTreeSet<Ipv4Net>) -> Vec<(Ipv4Addr, Update)> {
        for prefix in prefixes {
            match self.select(prefix) {
                Some(route) => self.loc.insert(*prefix, route),
                None => self.loc.remove(prefix),
            };
        }
        let addresses: Vec<Ipv4Addr> = self.peers.keys().copied().collect();
        addresses
            .into_iter()
            .flat_map(|a| self.sync_peer(a, prefixes))
            .collect()
    }

    /// The best of the candidate routes to `prefix` (RFC 4271 §9.1.2).
    fn select(&self, prefix: &Ipv4Net) -> Option<Route> {
        if let Some(attributes) = self.local.get(prefix) {
            return Some(Route {
                source: RouteSource::Local,
                attributes: attributes.clone(),
            });
        }
        let candidates: Vec<Route> = self
            .peers
            .values()
            .filter_map(|p| {
                p.adj_in.get(prefix).map(|a| Route {
                    source: RouteSource::Peer(p.info.clone()),
                    attributes: a.clone(),
                })
            })
            .collect();
        best_path(candidates, self.local_as)
    }

    /// Compares what `address` should have for `prefixes` with what it was sent; records and
    /// returns the difference as UPDATEs.
    fn sync_peer(
        &mut self,
        address: Ipv4Addr,
        prefixes: &BTreeSet<Ipv4Net>,
    ) -> Vec<(Ipv4Addr, Update)> {
        let local_as = self.local_as;
        let Some(peer) = self.peers.get(&address) else {
            return vec![];
        };
        let mut withdrawn = Vec::new();
        let mut announce: Vec<(PathAttributes, Vec<Ipv4Net>)> = Vec::new();
        let mut changes = Vec::new();
        for prefix in prefixes {
            let desired = self
                .loc
                .get(prefix)
                .and_then(|route| export(route, &peer.info, local_as));
            if desired.as_ref() == peer.adj_out.get(prefix) {
                continue;
            }
            match &desired {
                Some(attrs) => match announce.iter_mut().find(|(a, _)| a == attrs) {
                    Some((_, list)) => list.push(*prefix),
                    None => announce.push((attrs.clone(), vec![*prefix])),
                },
                None => withdrawn.push(*prefix),
            }
            changes.push((*prefix, desired));
        }
        let peer = self.peers.get_mut(&address).expect("looked up above");
        for (prefix, desired) in changes {
            match desired {
                Some(attrs) => peer.adj_out.insert(prefix, attrs),
                None => peer.adj_out.remove(&prefix),
            };
        }
        build_updates(withdrawn, announce)
            .into_iter()
            .map(|u| (address, u))
            .collect()
    }
}

/// RFC 4271 §9.1.2.2 over the routes to one prefix: highest LOCAL_PREF, shortest AS_PATH,
/// lowest ORIGIN, lowest MED among routes from the same neighbouring AS, external over
/// internal, lowest BGP identifier, lowest peer address.
pub fn best_path(mut routes: Vec<Route>, local_as: u32) -> Option<Route> {
    keep_min(&mut routes, |r| {
        Reverse(r.attributes.local_pref.unwrap_or(DEFAULT_LOCAL_PREF))
    });
    keep_min(&mut routes, |r| {
        r.attributes.as_path.as_ref().map_or(0, AsPath::path_len)
    });
    keep_min(&mut routes, |r| {
        r.attributes.origin.unwrap_or(Origin::Incomplete)
    });
    let neighbour = |r: &Route| {
        r.attributes
            .as_path
            .as_ref()
            .and_then(AsPath::first_as)
            .unwrap_or(local_as)
    };
    let med = |r: &Route| r.attributes.med.unwrap_or(0);
    let beaten: Vec<bool> = routes
        .iter()
        .map(|r| {
            routes
                .iter()
                .any(|s| neighbour(s) == neighbour(r) && med(s) < med(r))
        })
        .collect();
    let mut beaten = beaten.into_iter();
    routes.retain(|_| !beaten.next().unwrap_or(false));
    keep_min(&mut routes, |r| match &r.source {
        RouteSource::Peer(p) if p.asn == local_as => 1,
        _ => 0,
    });
    keep_min(&mut routes, |r| match &r.source {
        RouteSource::Local => (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED),
        RouteSource::Peer(p) => (p.bgp_id, p.address),
    });
    routes.into_iter().next()
}

/// Keeps only the routes with the least `key`.
fn keep_min<K: Ord>(routes: &mut Vec<Route>, key: impl Fn(&Route) -> K) {
    if let Some(min) = routes.iter().map(&key).min() {
        routes.retain(|r| key(r) == min);
    }
}

/// The attributes `route` is sent to `peer` with, or `None` when it must not be sent.
fn export(route: &Route, peer: &PeerInfo, local_as: u32) -> Option<PathAttributes> {
    let external = peer.asn != local_as;
    if let RouteSource::Peer(from) = &route.source {
        if from.address == peer.address || (!external && from.asn == local_as) {
            return None;
        }
    }
    let a = &route.attributes;
    let path = a.as_path.clone().unwrap_or_default();
    if external && path.contains(peer.asn) {
        return None;
    }
    let other = a
        .other
        .iter()
        .filter(|raw| {
            raw.flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE) == FLAG_OPTIONAL | FLAG_TRANSITIVE
        })
        .map(|raw| {
            let mut raw = raw.clone();
            raw.flags |= FLAG_PARTIAL;
            raw
        })
        .collect();
    let local = route.source == RouteSource::Local;
    Some(PathAttributes {
        origin: a.origin,
        as_path: Some(if external {
            path.prepended(local_as)
        } else {
            path
        }),
        next_hop: Some(peer.local_address),
        med: if external && !local { None } else { a.med },
        local_pref: (!external).then(|| a.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)),
        atomic_aggregate: a.atomic_aggregate,
        other,
    })
}

/// UPDATEs carrying the withdrawals and the announcements, each within 4096 octets.
fn build_updates(
    withdrawn: Vec<Ipv4Net>,
    announce: Vec<(PathAttributes, Vec<Ipv4Net>)>,
) -> Vec<Update> {
    let mut out: Vec<Update> = withdrawn
        .chunks(MAX_WITHDRAWN_PER_UPDATE)
        .map(|chunk| Update {
            withdrawn: chunk.to_vec(),
            ..Update::default()
        })
        .collect();
    for (attributes, prefixes) in announce {
        let overhead = Update::overhead(&attributes).unwrap_or(MAX_MESSAGE_LEN);
        let per_update = (MAX_MESSAGE_LEN.saturating_sub(overhead) / 5).max(1);
        for chunk in prefixes.chunks(per_update) {
            out.push(Update {
                withdrawn: vec![],
                attributes: attributes.clone(),
                nlri: chunk.to_vec(),
            });
        }
    }
    out
}
