//! A gateway's TOML configuration: the top table (addresses, control socket, TUN) and one
//! `[[connection]]` table per connection, from the connection, its far end and its policy.

use super::{find_gateway, gateway_endpoints, GatewayConfigError, TUN_NAME};
use site::{ConnectionType, Resource, Site};
use std::path::Path;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `[[connection]]` tables for connection `c` of gateway `gw`, or why it cannot run: one
/// per instance of the far end (a peer VNet gateway that is active-active has two: the
/// second table is named `<connection>#2`).
pub(super) fn connection_tables(
    site: &Site,
    resources: &[Resource],
    sites: &[(Site, Vec<Resource>)],
    c: &site::Connection,
    local_prefixes: &[ipnet::Ipv4Net],
    local_asn: Option<u32>,
) -> Result<Vec<toml::Table>, GatewayConfigError> {
    let (remotes, remote_prefixes) = remote_end(resources, sites, c)?;
    check_supported(c)?;
    let mut out = Vec::new();
    for (i, remote) in remotes.iter().enumerate() {
        let bgp_peer = if c.enable_bgp {
            let asn = local_asn.ok_or(GatewayConfigError::BgpOffOnGateway)?;
            let (address, peer_asn) = bgp_peer(resources, sites, c, i)?;
            if peer_asn == asn {
                return Err(GatewayConfigError::SameAsn(asn));
            }
            Some((address, peer_asn))
        } else {
            None
        };
        let mut t = connection_table(site, c, *remote, &remote_prefixes, local_prefixes, bgp_peer)?;
        if i > 0 {
            t.insert(
                "name".into(),
                toml::Value::String(crate::topology::instance_name(&c.meta.name, i as u8)),
            );
        }
        out.push(t);
    }
    Ok(out)
}

/// One `[[connection]]` table: connection `c` to the far end at `remote`.
fn connection_table(
    site: &Site,
    c: &site::Connection,
    remote: std::net::Ipv4Addr,
    remote_prefixes: &[ipnet::Ipv4Net],
    local_prefixes: &[ipnet::Ipv4Net],
    bgp_peer: Option<(std::net::Ipv4Addr, u32)>,
) -> Result<toml::Table, GatewayConfigError> {
    if remote_prefixes.is_empty() && bgp_peer.is_none() {
        return Err(GatewayConfigError::NoAddressPrefixes(
            c.local_network_gateway2.clone().unwrap_or_default(),
        ));
    }
    let key = c
        .shared_key
        .as_ref()
        .ok_or(GatewayConfigError::NoSharedKey)?;
    let policy = c.effective_policy(site.kind());
    let mut esp = policy.esp_initiator_proposals.clone();
    for p in &policy.esp_responder_proposals {
        if !esp.contains(p) {
            esp.push(p.clone());
        }
    }
    let strings = |v: &[String]| {
        toml::Value::Array(v.iter().map(|s| toml::Value::String(s.clone())).collect())
    };
    let prefixes = |v: &[ipnet::Ipv4Net]| {
        toml::Value::Array(
            v.iter()
                .map(|p| toml::Value::String(p.to_string()))
                .collect(),
        )
    };
    let mut t = toml::Table::new();
    t.insert("name".into(), toml::Value::String(c.meta.name.clone()));
    t.insert(
        "remote_address".into(),
        toml::Value::String(remote.to_string()),
    );
    // Azure's sharedKey is literal text; hex keeps it literal even when it starts with "0x".
    t.insert(
        "psk".into(),
        toml::Value::String(format!("0x{}", hex(key.expose().as_bytes()))),
    );
    t.insert("local_prefixes".into(), prefixes(local_prefixes));
    t.insert("remote_prefixes".into(), prefixes(remote_prefixes));
    t.insert("ike_proposals".into(), strings(&policy.ike_proposals));
    t.insert("esp_proposals".into(), strings(&esp));
    t.insert(
        "ike_lifetime".into(),
        toml::Value::Integer(policy.ike_lifetime_secs.into()),
    );
    t.insert(
        "child_lifetime".into(),
        toml::Value::Integer(policy.child_lifetime_secs.into()),
    );
    // saDataSizeKilobytes: the byte half of the Child SA lifetime.
    t.insert(
        "child_lifetime_bytes".into(),
        toml::Value::Integer(
            i64::try_from(policy.child_lifetime_kilobytes.saturating_mul(1024)).unwrap_or(i64::MAX),
        ),
    );
    t.insert(
        "dpd_timeout".into(),
        toml::Value::Integer(c.dpd_timeout_seconds.max(1).into()),
    );
    // Azure gateways initiate and respond on every connection.
    t.insert("initiate".into(), toml::Value::Boolean(true));
    // usePolicyBasedTrafficSelectors: one Child SA per (VNet prefix, remote prefix) pair,
    // as Azure negotiates for on-premises policy-based devices.
    if c.use_policy_based_traffic_selectors {
        t.insert("selector_pairs".into(), toml::Value::Boolean(true));
    }
    if let Some((address, asn)) = bgp_peer {
        t.insert(
            "bgp_peer_address".into(),
            toml::Value::String(address.to_string()),
        );
        t.insert("bgp_peer_asn".into(), toml::Value::Integer(asn.into()));
    }
    Ok(t)
}

/// The BGP neighbour of a connection with `enableBgp`: the local network gateway's
/// `bgpSettings` (IPsec) or the peer VNet gateway's (Vnet2Vnet).
fn bgp_peer(
    resources: &[Resource],
    sites: &[(Site, Vec<Resource>)],
    c: &site::Connection,
    peer_instance: usize,
) -> Result<(std::net::Ipv4Addr, u32), GatewayConfigError> {
    match c.connection_type {
        ConnectionType::IPsec => {
            let lng = local_network_gateway(resources, c)?;
            lng.bgp_peer()
                .ok_or_else(|| GatewayConfigError::NoPeerBgpSettings(lng.meta.name.clone()))
        }
        _ => {
            let peer_id = c.virtual_network_gateway2.as_deref().unwrap_or_default();
            let (_, _, peer) = find_gateway(sites, peer_id)
                .ok_or_else(|| GatewayConfigError::NoSuchPeerGateway(peer_id.into()))?;
            match (
                &peer.bgp_settings,
                peer.bgp_peering_address_of(peer_instance),
            ) {
                (Some(b), Some(address)) if peer.enable_bgp => Ok((address, b.asn)),
                _ => Err(GatewayConfigError::NoPeerBgpSettings(
                    peer.meta.name.clone(),
                )),
            }
        }
    }
}

/// The `[bgp]` table of instance `instance` of a gateway with `enableBgp`: its ASN and that
/// instance's BGP address, and its VNet's address space to announce.
pub(super) fn bgp_table(
    gw: &site::VirtualNetworkGateway,
    instance: usize,
    originate: &[ipnet::Ipv4Net],
) -> Option<toml::Table> {
    let b = gw.bgp_settings.as_ref().filter(|_| gw.enable_bgp)?;
    let address = gw.bgp_peering_address_of(instance)?;
    let mut t = toml::Table::new();
    t.insert("asn".into(), toml::Value::Integer(b.asn.into()));
    t.insert("address".into(), toml::Value::String(address.to_string()));
    t.insert(
        "originate".into(),
        toml::Value::Array(
            originate
                .iter()
                .map(|p| toml::Value::String(p.trunc().to_string()))
                .collect(),
        ),
    );
    Some(t)
}

/// The `[vnet_router]` table: the gateway instance tells its VNet's router what to send it
/// (learned routes; for an active-active instance also the static prefixes of its tunnels
/// that are up, preferred by `metric`).
pub(super) fn vnet_router_table(
    router_netns: &str,
    next_hop: std::net::Ipv4Addr,
    metric: u32,
    static_routes: bool,
) -> toml::Table {
    let mut r = toml::Table::new();
    r.insert("netns".into(), toml::Value::String(router_netns.into()));
    r.insert("next_hop".into(), toml::Value::String(next_hop.to_string()));
    r.insert("metric".into(), toml::Value::Integer(metric.into()));
    r.insert("static_routes".into(), toml::Value::Boolean(static_routes));
    r
}

/// The address `fqdn` has in the lab's zone (names compare case-insensitively, a trailing dot
/// is ignored). Resolved at every realization, so a peer whose public IP changes is followed.
fn resolve(sites: &[(Site, Vec<Resource>)], fqdn: &str) -> Option<std::net::Ipv4Addr> {
    let want = fqdn.trim_end_matches('.');
    crate::lab_dns::zone(sites)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(want))
        .map(|(_, a)| a)
}

/// The local network gateway an IPsec connection names.
fn local_network_gateway<'a>(
    resources: &'a [Resource],
    c: &site::Connection,
) -> Result<&'a site::LocalNetworkGateway, GatewayConfigError> {
    let lng_id = c
        .local_network_gateway2
        .as_ref()
        .ok_or(GatewayConfigError::NoLocalNetworkGateway)?;
    resources
        .iter()
        .find_map(|r| match r {
            Resource::LocalNetworkGateway(l) if site::same_id(&l.meta.id, lng_id) => Some(l),
            _ => None,
        })
        .ok_or_else(|| GatewayConfigError::NoSuchLocalNetworkGateway(lng_id.clone()))
}

/// The far end of a connection: its addresses (one per instance of an active-active peer
/// gateway) and the prefixes behind it, from the local network gateway (IPsec) or the peer
/// VNet gateway in any site of the lab (Vnet2Vnet).
fn remote_end(
    resources: &[Resource],
    sites: &[(Site, Vec<Resource>)],
    c: &site::Connection,
) -> Result<(Vec<std::net::Ipv4Addr>, Vec<ipnet::Ipv4Net>), GatewayConfigError> {
    match c.connection_type {
        ConnectionType::IPsec => {
            let lng = local_network_gateway(resources, c)?;
            let ip = match (lng.gateway_ip_address, &lng.fqdn) {
                (Some(ip), _) => ip,
                (None, Some(fqdn)) => {
                    resolve(sites, fqdn).ok_or_else(|| GatewayConfigError::UnresolvedFqdn {
                        lng: lng.meta.name.clone(),
                        fqdn: fqdn.clone(),
                        zone: {
                            let names: Vec<String> = crate::lab_dns::zone(sites)
                                .into_iter()
                                .map(|(n, _)| n)
                                .collect();
                            if names.is_empty() {
                                "it holds no name yet".to_string()
                            } else {
                                format!("it holds {}", names.join(", "))
                            }
                        },
                    })?
                }
                (None, None) => {
                    return Err(GatewayConfigError::NoPeerAddress(lng.meta.name.clone()))
                }
            };
            Ok((vec![ip], lng.address_prefixes.clone()))
        }
        ConnectionType::Vnet2Vnet => {
            let peer_id = c
                .virtual_network_gateway2
                .as_ref()
                .ok_or(GatewayConfigError::NoPeerGateway)?;
            let (_, peer_resources, peer) = find_gateway(sites, peer_id)
                .ok_or_else(|| GatewayConfigError::NoSuchPeerGateway(peer_id.clone()))?;
            let (space, public) = gateway_endpoints(peer_resources, peer)?;
            Ok((public, space))
        }
        other => Err(GatewayConfigError::UnsupportedConnectionType(other)),
    }
}

/// Refuses what the lab's gateway does not speak: IKEv1.
fn check_supported(c: &site::Connection) -> Result<(), GatewayConfigError> {
    if c.connection_protocol == site::ConnectionProtocol::IKEv1 {
        return Err(GatewayConfigError::Ikev1);
    }
    Ok(())
}

pub(super) fn top_table(local_address: std::net::Ipv4Addr, control: &Path) -> toml::Table {
    let mut top = toml::Table::new();
    top.insert(
        "local_address".into(),
        toml::Value::String(local_address.to_string()),
    );
    top.insert(
        "control_socket".into(),
        toml::Value::String(control.display().to_string()),
    );
    let mut tun = toml::Table::new();
    tun.insert("name".into(), toml::Value::String(TUN_NAME.into()));
    top.insert("tun".into(), toml::Value::Table(tun));
    top
}

pub(super) fn render(
    mut top: toml::Table,
    local_id: std::net::Ipv4Addr,
    conns: Vec<toml::Table>,
) -> String {
    let conns = conns
        .into_iter()
        .map(|mut c| {
            c.insert("local_id".into(), toml::Value::String(local_id.to_string()));
            toml::Value::Table(c)
        })
        .collect();
    top.insert("connection".into(), toml::Value::Array(conns));
    toml::to_string(&top).expect("a TOML table serializes")
}
