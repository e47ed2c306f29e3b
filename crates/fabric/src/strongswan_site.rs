//! Sites of kind `strongswan`: an on-premises Linux box running strongSwan with a LAN behind it
//! (the classic Azure tutorial's "on-premises VPN device"), and where its device sits.
//!
//! The site's template deploys the LAN like a VNet (subnets, NICs, VMs) and one public IP not
//! attached to any NIC: the device's address on the internet. The device is a namespace like a
//! VNet gateway's (`lan` in the LAN's first subnet at its last usable address, `wan` on the
//! public IP), so the fabric lays its wires and the LAN router sends the remote prefixes to it:
//! those of every connection in the other sites whose local network gateway points at the
//! device's public IP. [`crate::strongswan_device`] runs its charon from those connections'
//! device configuration exports; [`crate::strongswan_status`] shows it.

use std::net::Ipv4Addr;

use devconfig::PeerDevice;
use ipnet::Ipv4Net;
use site::{Resource, Site};

use crate::spec::SiteSpec;
use crate::topology::GatewayNet;

/// The site kind realized by this module.
pub const KIND: &str = "strongswan";
/// Name of the device within its site (its namespace is `LabId::gateway_netns(site, DEVICE)`).
pub const DEVICE: &str = "strongswan";

/// The device configuration export of the connections in one site failed.
#[derive(Debug, thiserror::Error)]
#[error("device configuration export for {site}: {source}")]
pub struct ExportError {
    /// The site holding the connections.
    pub site: String,
    /// What the export refused.
    #[source]
    pub source: devconfig::DevConfigError,
}

/// Why a strongSwan site's device cannot be placed in its LAN.
#[derive(Debug, thiserror::Error)]
pub enum DevicePlacementError {
    /// The LAN has no subnet to put the device in.
    #[error("the LAN {0} has no subnet for the strongSwan device")]
    NoSubnet(String),
    /// The LAN's first subnet has no room for the device's address.
    #[error(
        "subnet {vnet}/{subnet} ({prefix}) is too small for the strongSwan device's LAN address"
    )]
    SubnetTooSmall {
        /// The virtual network concerned.
        vnet: String,
        /// The subnet concerned.
        subnet: String,
        /// The prefix concerned.
        prefix: Ipv4Net,
    },
    /// A NIC already holds the device's LAN address.
    #[error("{address} (the strongSwan device's LAN address in {vnet}/{subnet}) is used by a NIC")]
    AddressTaken {
        /// The address concerned.
        address: Ipv4Addr,
        /// The virtual network concerned.
        vnet: String,
        /// The subnet concerned.
        subnet: String,
    },
    /// The connections pointing at the device could not be exported.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// Another resource already maps to the device's namespace name.
    #[error("the strongSwan device's namespace name {0} is already used; rename the resource that takes it")]
    NameTaken(String),
}

/// Whether a lab.yaml site is a strongSwan site.
pub fn is_strongswan(spec: &SiteSpec) -> bool {
    spec.kind.eq_ignore_ascii_case(KIND)
}

/// The device's public IP: the first public IP of the site no NIC uses. `None` for a site that
/// deploys only its LAN (no device yet).
pub fn device_public_ip(resources: &[Resource]) -> Option<&site::PublicIpAddress> {
    resources.iter().find_map(|r| match r {
        Resource::PublicIpAddress(p) => {
            let used = resources.iter().any(|n| match n {
                Resource::NetworkInterface(nic) => nic.ip_configurations.iter().any(|c| {
                    c.public_ip_address
                        .as_deref()
                        .is_some_and(|id| site::same_id(id, &p.meta.id))
                }),
                _ => false,
            });
            (!used).then_some(p)
        }
        _ => None,
    })
}

/// Every exported device configuration for `address` in the lab's other sites.
pub(crate) fn peers_of(
    own_site: &str,
    address: Ipv4Addr,
    sites: &[(Site, Vec<Resource>)],
) -> Result<Vec<PeerDevice>, ExportError> {
    let mut out = Vec::new();
    for (s, _) in sites {
        let name = s.info().name.clone();
        if name == own_site {
            continue;
        }
        out.extend(
            PeerDevice::for_device_address(s, address)
                .map_err(|source| ExportError { site: name, source })?,
        );
    }
    Ok(out)
}

/// Where the device of a strongSwan site sits, or `Ok(None)` when the site has no LAN or no
/// public IP for it yet. The remote prefixes are those of the connections pointing at it.
pub fn device_net(
    site_name: &str,
    resources: &[Resource],
    sites: &[(Site, Vec<Resource>)],
) -> Result<Option<GatewayNet>, DevicePlacementError> {
    let Some(pip) = device_public_ip(resources) else {
        return Ok(None);
    };
    let Some(vnet) = resources.iter().find_map(|r| match r {
        Resource::VirtualNetwork(v) => Some(v),
        _ => None,
    }) else {
        return Ok(None);
    };
    let subnet = vnet
        .subnets
        .first()
        .ok_or_else(|| DevicePlacementError::NoSubnet(vnet.meta.name.clone()))?;
    let prefix = subnet.address_prefix;
    if prefix.prefix_len() > 29 {
        return Err(DevicePlacementError::SubnetTooSmall {
            vnet: vnet.meta.name.clone(),
            subnet: subnet.name.clone(),
            prefix,
        });
    }
    // The last usable address: IPAM hands out NIC addresses from .4 up.
    let private_address = Ipv4Addr::from(u32::from(prefix.broadcast()) - 1);
    let taken = resources.iter().any(|r| match r {
        Resource::NetworkInterface(n) => n
            .ip_configurations
            .iter()
            .any(|c| c.private_ip_address == private_address),
        _ => false,
    });
    if taken {
        return Err(DevicePlacementError::AddressTaken {
            address: private_address,
            vnet: vnet.meta.name.clone(),
            subnet: subnet.name.clone(),
        });
    }
    let mut remote_prefixes: Vec<Ipv4Net> = peers_of(site_name, pip.ip_address, sites)?
        .into_iter()
        .flat_map(|p| p.remote_prefixes)
        .map(|p| p.trunc())
        .collect();
    remote_prefixes.sort();
    remote_prefixes.dedup();
    Ok(Some(GatewayNet {
        name: DEVICE.to_string(),
        vnet: vnet.meta.name.clone(),
        private_address,
        public_address: pip.ip_address,
        remote_prefixes,
        instance: 0,
        instances: 1,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const EXAMPLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/azure-to-strongswan/templates"
    );

    fn deploy(site: &mut Site, file: &str, params: serde_json::Value) {
        let text = std::fs::read_to_string(format!("{EXAMPLE}/{file}")).unwrap();
        let params = params.as_object().unwrap().clone();
        let plan = site.plan(&text, params, file).unwrap();
        site.apply(plan).unwrap();
    }

    fn scratch(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("hn-fabric-sw-{tag}-{}", std::process::id()))
    }

    /// The example's two sites in a scratch store; `lgw_ip` is where Azure's local network
    /// gateway points.
    fn example(
        tag: &str,
        lgw_ip: &str,
        onprem_params: serde_json::Value,
    ) -> Vec<(Site, Vec<Resource>)> {
        let dir = scratch(tag);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut az =
            Site::create(&dir, "azure", "azure", "203.0.113.0/24".parse().unwrap()).unwrap();
        let mut on = Site::create(&dir, "onprem", KIND, "192.0.2.0/24".parse().unwrap()).unwrap();
        deploy(&mut az, "azure-site.json", serde_json::json!({}));
        deploy(&mut on, "onprem-site.json", onprem_params);
        deploy(
            &mut az,
            "connection.json",
            serde_json::json!({
                "gatewayName": "azure-gw", "localGatewayName": "onprem-lgw",
                "localGatewayIpAddress": lgw_ip, "localAddressPrefixes": ["10.2.0.0/16"],
                "connectionName": "azure-to-onprem", "sharedKey": "k",
            }),
        );
        vec![az, on]
            .into_iter()
            .map(|s| {
                let r = s.resources().unwrap();
                (s, r)
            })
            .collect()
    }

    #[test]
    fn device_takes_the_unattached_public_ip_and_routes_the_connections_prefixes() {
        let sites = example("place", "192.0.2.1", serde_json::json!({}));
        let dev = device_net("onprem", &sites[1].1, &sites).unwrap().unwrap();
        assert_eq!(dev.name, DEVICE);
        assert_eq!(dev.public_address, "192.0.2.1".parse::<Ipv4Addr>().unwrap());
        assert_eq!(
            dev.private_address,
            "10.2.1.254".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(dev.vnet, "onprem-lan");
        assert_eq!(
            dev.remote_prefixes,
            vec!["10.1.0.0/16".parse::<Ipv4Net>().unwrap()]
        );
        let peers = peers_of("onprem", dev.public_address, &sites).unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].connection_name, "azure-to-onprem");
        let _ = std::fs::remove_dir_all(scratch("place"));
    }

    #[test]
    fn device_nobody_points_at_has_no_remote_prefixes() {
        let sites = example("nobody", "192.0.2.77", serde_json::json!({}));
        let dev = device_net("onprem", &sites[1].1, &sites).unwrap().unwrap();
        assert!(dev.remote_prefixes.is_empty());
        assert!(peers_of("onprem", dev.public_address, &sites)
            .unwrap()
            .is_empty());
        let _ = std::fs::remove_dir_all(scratch("nobody"));
    }
}
