//! What the routing-daemon vendors (BIRD, FRR) share: the device's BGP facts gathered from one
//! or more connections pointing at it, checked for the one AS and one address a device has.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::DevConfigError;
use crate::peer::PeerDevice;

/// The TUN device strongSwan's kernel-libipsec sends the tunnel's traffic through.
pub const LIBIPSEC_TUN: &str = "ipsec0";
/// Azure's BGP hold time (keepalives every 60 s).
pub const AZURE_HOLD_TIME: u16 = 180;

/// One Azure gateway the device peers with.
pub(crate) struct Neighbor {
    /// Connection name (for names and descriptions).
    pub connection: String,
    /// VNet gateway name.
    pub gateway: String,
    /// Its BGP address.
    pub address: Ipv4Addr,
    /// Its AS.
    pub asn: u32,
}

/// The device's side of every BGP session.
pub(crate) struct DeviceBgp {
    /// The device's AS.
    pub asn: u32,
    /// The device's BGP address (and router id).
    pub address: Ipv4Addr,
    /// Networks it announces.
    pub announce: Vec<Ipv4Net>,
    /// The gateways it peers with.
    pub neighbors: Vec<Neighbor>,
}

/// Gathers the BGP part of `peers` (every one must have BGP, with the same device AS and
/// address); `vendor` names the refusal.
pub(crate) fn device_bgp(
    peers: &[&PeerDevice],
    vendor: &'static str,
) -> Result<DeviceBgp, DevConfigError> {
    let mut out: Option<DeviceBgp> = None;
    for p in peers {
        let b = p.bgp.as_ref().ok_or_else(|| DevConfigError::NoBgp {
            name: p.connection_name.clone(),
            vendor,
        })?;
        let d = out.get_or_insert_with(|| DeviceBgp {
            asn: b.local_asn,
            address: b.local_address,
            announce: Vec::new(),
            neighbors: Vec::new(),
        });
        if d.asn != b.local_asn || d.address != b.local_address {
            return Err(DevConfigError::DeviceBgpMismatch {
                first: format!("AS {} at {}", d.asn, d.address),
                other: format!(
                    "AS {} at {} (connection {})",
                    b.local_asn, b.local_address, p.connection_name
                ),
            });
        }
        for a in &b.announce {
            if !d.announce.contains(a) {
                d.announce.push(*a);
            }
        }
        if !d.neighbors.iter().any(|n| n.address == b.remote_address) {
            d.neighbors.push(Neighbor {
                connection: p.connection_name.clone(),
                gateway: p.gateway_name.clone(),
                address: b.remote_address,
                asn: b.remote_asn,
            });
        }
    }
    out.ok_or(DevConfigError::NoBgp {
        name: String::new(),
        vendor,
    })
}

/// A name made of letters, digits and `_` (BIRD protocol names, comments).
pub(crate) fn ident(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if v.is_empty() {
        "azure".into()
    } else {
        v
    }
}
