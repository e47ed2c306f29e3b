//! The BGP part of the gateway's status, in the shapes Azure answers
//! `list-bgp-peer-status`, `list-learned-routes` and `list-advertised-routes` with (camelCase
//! field names, Azure's state words), so the lab's API passes them through as they are.

use bgp::{KnownRoute, Origin, PeerStatus, State};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Azure's weight of every route a gateway holds.
pub const AZURE_ROUTE_WEIGHT: i64 = 32768;

/// The gateway's BGP speaker.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BgpReport {
    /// Our AS.
    pub asn: u32,
    /// Our BGP address.
    pub local_address: String,
    /// One entry per configured peer (`list-bgp-peer-status`).
    pub peers: Vec<BgpPeerReport>,
    /// Our own and every learned route (`list-learned-routes`).
    pub learned_routes: Vec<BgpRouteReport>,
    /// Per peer, what it is sent (`list-advertised-routes --peer`).
    pub advertised_routes: Vec<BgpAdvertised>,
    /// Learned routes the gateway does not forward, and why.
    #[serde(default)]
    pub refused_routes: Vec<BgpRefused>,
    /// The last inbound BGP connection refused, and why (a peer configured with another
    /// address than it uses shows up here).
    #[serde(default)]
    pub last_refusal: Option<String>,
    /// Why the speaker cannot run at all (its address could not be bound).
    #[serde(default)]
    pub error: Option<String>,
}

/// One peer, as `list-bgp-peer-status` shows it, with the reason when it is not up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeerReport {
    /// Our BGP address.
    pub local_address: String,
    /// The peer's address.
    pub neighbor: String,
    /// Its AS.
    pub asn: u32,
    /// Azure's word: Unknown, Stopped, Idle, Connecting or Connected.
    pub state: String,
    /// The RFC 4271 state (Idle, Connect, Active, OpenSent, OpenConfirm, Established).
    pub fsm_state: String,
    /// The connection whose tunnel reaches it.
    pub connection: String,
    /// How long the session has been up, `hh:mm:ss` as Azure writes it.
    pub connected_duration: Option<String>,
    /// Prefixes received from it.
    pub routes_received: usize,
    /// Prefixes sent to it.
    pub routes_advertised: usize,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Established sessions with it that ended.
    pub flaps: u32,
    /// Why its last session ended or could not start.
    pub last_error: Option<String>,
}

/// One route, as `list-learned-routes` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BgpRouteReport {
    /// Our BGP address.
    pub local_address: String,
    /// The prefix.
    pub network: String,
    /// Its next hop (none for our own).
    pub next_hop: Option<String>,
    /// Who announced it (our own address for our own).
    pub source_peer: String,
    /// `Network` for our own prefixes, `EBgp` for learned ones.
    pub origin: String,
    /// AS numbers joined by `-`, nearest first, as Azure writes them.
    pub as_path: String,
    /// Azure's weight.
    pub weight: i64,
    /// Whether it is the route in use for its prefix.
    #[serde(default)]
    pub best: bool,
}

/// What one peer is sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BgpAdvertised {
    /// The peer.
    pub peer: String,
    /// The routes.
    pub routes: Vec<BgpRouteReport>,
}

/// A learned route not forwarded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BgpRefused {
    /// The prefix.
    pub network: String,
    /// Why.
    pub reason: String,
}

/// Azure's peer state word for a session.
pub fn azure_state(p: &PeerStatus) -> &'static str {
    match p.state {
        State::Established => "Connected",
        State::Connect | State::Active | State::OpenSent | State::OpenConfirm => "Connecting",
        State::Idle if p.reachable => "Idle",
        State::Idle => "Stopped",
    }
}

/// `hh:mm:ss` (hours may exceed 24).
pub fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A peer's report; `connection` names the tunnel that reaches it.
pub fn peer_report(local: Ipv4Addr, p: &PeerStatus, connection: &str) -> BgpPeerReport {
    BgpPeerReport {
        local_address: local.to_string(),
        neighbor: p.address.to_string(),
        asn: p.asn,
        state: azure_state(p).into(),
        fsm_state: format!("{:?}", p.state),
        connection: connection.into(),
        connected_duration: p.connected_for.map(duration_text),
        routes_received: p.routes_received,
        routes_advertised: p.routes_advertised,
        messages_sent: p.messages_sent,
        messages_received: p.messages_received,
        flaps: p.flaps,
        last_error: p.last_error.clone(),
    }
}

/// A route's report.
pub fn route_report(local: Ipv4Addr, r: &KnownRoute) -> BgpRouteReport {
    BgpRouteReport {
        local_address: local.to_string(),
        network: r.prefix.to_string(),
        next_hop: r.next_hop.map(|a| a.to_string()),
        source_peer: r.peer.unwrap_or(local).to_string(),
        origin: match (r.peer, r.origin) {
            (None, _) => "Network".into(),
            (Some(_), Some(Origin::Incomplete)) => "EBgp (incomplete)".into(),
            (Some(_), _) => "EBgp".into(),
        },
        as_path: r
            .as_path
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join("-"),
        weight: AZURE_ROUTE_WEIGHT,
        best: r.best,
    }
}
