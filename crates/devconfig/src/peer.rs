//! The on-premises peer of a connection, resolved from the site's resources: what every vendor
//! renderer needs, in the device's point of view (its "local" is the local network gateway).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use site::{
    same_id, Connection, ConnectionProtocol, ConnectionType, EffectivePolicy, KindProfile,
    Resource, SharedKey, Site,
};

use crate::error::DevConfigError;

/// IKE version the device must speak (`connectionProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeVersion {
    /// IKEv1.
    V1,
    /// IKEv2 (Azure's default).
    V2,
}

impl IkeVersion {
    /// The number vendors write (`version = 2`).
    pub fn number(self) -> u8 {
        match self {
            IkeVersion::V1 => 1,
            IkeVersion::V2 => 2,
        }
    }
}

/// One tunnel to one Azure gateway instance (two for an active-active gateway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTunnel {
    /// The instance's public IP: the device's remote address and remote IKE identity.
    pub remote_address: Ipv4Addr,
    /// Name of the PublicIpAddress resource it comes from.
    pub public_ip_name: String,
}

/// Everything a device configuration says, vendor-neutral. Debug never shows the key.
#[derive(Debug, Clone)]
pub struct PeerDevice {
    /// Site the connection lives in (the cloud side).
    pub site: String,
    /// That site's kind (`azure`, `azure-stack-hub`).
    pub site_kind: String,
    /// The connection's resource id.
    pub connection_id: String,
    /// The connection's name.
    pub connection_name: String,
    /// The VNet gateway's name.
    pub gateway_name: String,
    /// The VNet gateway's provisioning state (a device can be configured before it is up).
    pub gateway_state: String,
    /// The local network gateway's name (it describes this device).
    pub local_network_gateway_name: String,
    /// The VNet's name.
    pub vnet_name: String,
    /// The device's own outer address: the local network gateway's `gatewayIpAddress`, unless
    /// the device sits behind NAT and was given its inside address.
    pub local_address: Ipv4Addr,
    /// The device's IKE identity: always `gatewayIpAddress`, which is what Azure expects.
    pub local_id: Ipv4Addr,
    /// One tunnel per Azure gateway instance.
    pub tunnels: Vec<PeerTunnel>,
    /// Prefixes behind the device (`localNetworkAddressSpace`).
    pub local_prefixes: Vec<Ipv4Net>,
    /// Prefixes behind the Azure gateway (the VNet's address space).
    pub remote_prefixes: Vec<Ipv4Net>,
    /// IKE version.
    pub ike_version: IkeVersion,
    /// Proposals and lifetimes: the connection's custom policy or the kind's default.
    pub policy: EffectivePolicy,
    /// `dpdTimeoutSeconds`.
    pub dpd_timeout_secs: u32,
    /// `usePolicyBasedTrafficSelectors`: one Child SA per prefix pair instead of one for all.
    pub policy_based_traffic_selectors: bool,
    /// The connection's `sharedKey`.
    pub shared_key: SharedKey,
    /// BGP over the tunnel, when the connection has `enableBgp`.
    pub bgp: Option<PeerBgp>,
}

/// The BGP session a device runs with the Azure gateway through the tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerBgp {
    /// The device's AS (the local network gateway's `bgpSettings.asn`).
    pub local_asn: u32,
    /// The device's BGP address (`bgpSettings.bgpPeeringAddress`): the device must hold it.
    pub local_address: Ipv4Addr,
    /// The gateway's AS.
    pub remote_asn: u32,
    /// The gateway's BGP address, reached through the tunnel.
    pub remote_address: Ipv4Addr,
    /// What the device announces: its networks (default: the local network gateway's
    /// prefixes other than its own BGP address).
    pub announce: Vec<Ipv4Net>,
}

impl PeerDevice {
    /// Resolves connection `name` of an opened site.
    pub fn from_site(site: &Site, name: &str) -> Result<PeerDevice, DevConfigError> {
        let site_name = site.info().name.clone();
        let resources = site.resources().map_err(|e| DevConfigError::Site {
            site: site_name.clone(),
            source: Box::new(e),
        })?;
        PeerDevice::from_resources(&site_name, site.kind(), &resources, name)
    }

    /// Resolves connection `name` (case-insensitive) among a site's resources.
    pub fn from_resources(
        site: &str,
        kind: &KindProfile,
        resources: &[Resource],
        name: &str,
    ) -> Result<PeerDevice, DevConfigError> {
        let conn = crate::view::find_connection(site, resources, name)?;
        if conn.connection_type != ConnectionType::IPsec {
            return Err(DevConfigError::NotSiteToSite {
                name: conn.meta.name.clone(),
                connection_type: format!("{:?}", conn.connection_type),
            });
        }
        let missing = |what: &'static str, id: &str| DevConfigError::MissingResource {
            site: site.to_string(),
            connection: conn.meta.name.clone(),
            what,
            id: id.to_string(),
        };
        let lng_id = conn
            .local_network_gateway2
            .as_deref()
            .ok_or_else(|| missing("local network gateway", "(localNetworkGateway2 not set)"))?;
        let lng = resources
            .iter()
            .find_map(|r| match r {
                Resource::LocalNetworkGateway(l) if same_id(&l.meta.id, lng_id) => Some(l),
                _ => None,
            })
            .ok_or_else(|| missing("local network gateway", lng_id))?;
        let gw = resources
            .iter()
            .find_map(|r| match r {
                Resource::VirtualNetworkGateway(g)
                    if same_id(&g.meta.id, &conn.virtual_network_gateway1) =>
                {
                    Some(g)
                }
                _ => None,
            })
            .ok_or_else(|| missing("virtual network gateway", &conn.virtual_network_gateway1))?;
        let device_address =
            lng.gateway_ip_address
                .ok_or_else(|| DevConfigError::NoDeviceAddress {
                    name: lng.meta.name.clone(),
                    fqdn: lng.fqdn.clone().unwrap_or_default(),
                })?;
        let bgp = if conn.enable_bgp {
            let (local_address, local_asn) =
                lng.bgp_peer()
                    .ok_or_else(|| DevConfigError::NoDeviceBgpSettings {
                        name: lng.meta.name.clone(),
                    })?;
            let remote_asn = gw
                .bgp_settings
                .as_ref()
                .filter(|_| gw.enable_bgp)
                .map(|b| b.asn)
                .ok_or_else(|| DevConfigError::NoGatewayBgp {
                    name: gw.meta.name.clone(),
                })?;
            let remote_address =
                gw.bgp_peering_address()
                    .ok_or_else(|| DevConfigError::NoGatewayAddress {
                        name: gw.meta.name.clone(),
                    })?;
            Some(PeerBgp {
                local_asn,
                local_address,
                remote_asn,
                remote_address,
                announce: lng
                    .address_prefixes
                    .iter()
                    .filter(|p| !(p.prefix_len() == 32 && p.addr() == local_address))
                    .copied()
                    .collect(),
            })
        } else {
            None
        };
        if lng.address_prefixes.is_empty() && bgp.is_none() {
            return Err(DevConfigError::NoDevicePrefixes {
                name: lng.meta.name.clone(),
            });
        }
        let first_cfg =
            gw.ip_configurations
                .first()
                .ok_or_else(|| DevConfigError::NoGatewayAddress {
                    name: gw.meta.name.clone(),
                })?;
        let vnet_id = vnet_of_subnet(&first_cfg.subnet);
        let vnet = resources
            .iter()
            .find_map(|r| match r {
                Resource::VirtualNetwork(v) if same_id(&v.meta.id, vnet_id) => Some(v),
                _ => None,
            })
            .ok_or_else(|| missing("virtual network", vnet_id))?;
        if vnet.address_space.is_empty() {
            return Err(DevConfigError::NoVnetPrefixes {
                name: vnet.meta.name.clone(),
            });
        }
        let mut tunnels = Vec::new();
        for cfg in &gw.ip_configurations {
            let pip = resources
                .iter()
                .find_map(|r| match r {
                    Resource::PublicIpAddress(p) if same_id(&p.meta.id, &cfg.public_ip_address) => {
                        Some(p)
                    }
                    _ => None,
                })
                .ok_or_else(|| missing("public IP address", &cfg.public_ip_address))?;
            tunnels.push(PeerTunnel {
                remote_address: pip.ip_address,
                public_ip_name: pip.meta.name.clone(),
            });
        }
        let shared_key = conn
            .shared_key
            .clone()
            .ok_or_else(|| DevConfigError::NoSharedKey {
                name: conn.meta.name.clone(),
            })?;
        Ok(PeerDevice {
            site: site.to_string(),
            site_kind: kind.name.clone(),
            connection_id: conn.meta.id.clone(),
            connection_name: conn.meta.name.clone(),
            gateway_name: gw.meta.name.clone(),
            gateway_state: gw.meta.provisioning_state.arm_name().to_string(),
            local_network_gateway_name: lng.meta.name.clone(),
            vnet_name: vnet.meta.name.clone(),
            local_address: device_address,
            local_id: device_address,
            tunnels,
            local_prefixes: lng.address_prefixes.clone(),
            remote_prefixes: vnet.address_space.clone(),
            ike_version: ike_version(conn),
            policy: conn.effective_policy(kind),
            dpd_timeout_secs: conn.dpd_timeout_seconds,
            policy_based_traffic_selectors: conn.use_policy_based_traffic_selectors,
            shared_key,
            bgp,
        })
    }

    /// Every device configuration a site's connections ask of the device at `address` (the
    /// local network gateways whose `gatewayIpAddress` it is), in resource order: what a lab
    /// needs to configure an on-premises device site from the exports alone.
    pub fn for_device_address(
        site: &Site,
        address: Ipv4Addr,
    ) -> Result<Vec<PeerDevice>, DevConfigError> {
        let site_name = site.info().name.clone();
        let resources = site.resources().map_err(|e| DevConfigError::Site {
            site: site_name.clone(),
            source: Box::new(e),
        })?;
        let mut out = Vec::new();
        for r in &resources {
            let Resource::Connection(c) = r else { continue };
            if c.connection_type != ConnectionType::IPsec {
                continue;
            }
            let points_here = resources.iter().any(|l| match l {
                Resource::LocalNetworkGateway(l) => {
                    c.local_network_gateway2
                        .as_deref()
                        .is_some_and(|id| same_id(&l.meta.id, id))
                        && l.gateway_ip_address == Some(address)
                }
                _ => false,
            });
            if points_here {
                out.push(PeerDevice::from_resources(
                    &site_name,
                    site.kind(),
                    &resources,
                    &c.meta.name,
                )?);
            }
        }
        Ok(out)
    }

    /// The device behind NAT: it owns `inside` while its public identity stays
    /// `gatewayIpAddress` (the address Azure sees and expects as IKE identity).
    pub fn with_local_address(mut self, inside: Ipv4Addr) -> PeerDevice {
        self.local_address = inside;
        self
    }

    /// The same device announcing `prefixes` over BGP (its networks, which the local network
    /// gateway need not list); no change for a connection without BGP.
    pub fn with_announce(mut self, prefixes: &[Ipv4Net]) -> PeerDevice {
        if let Some(b) = &mut self.bgp {
            b.announce = prefixes.to_vec();
        }
        self
    }

    /// ESP proposals the device offers and accepts: the cloud gateway's initiator offers
    /// (which its responder side accepts too), so both directions of initiation agree.
    pub fn esp_proposals(&self) -> &[String] {
        &self.policy.esp_initiator_proposals
    }
}

fn ike_version(c: &Connection) -> IkeVersion {
    match c.connection_protocol {
        ConnectionProtocol::IKEv1 => IkeVersion::V1,
        ConnectionProtocol::IKEv2 => IkeVersion::V2,
    }
}

/// `…/virtualNetworks/v/subnets/GatewaySubnet` → `…/virtualNetworks/v`.
fn vnet_of_subnet(subnet_id: &str) -> &str {
    let lower = subnet_id.to_ascii_lowercase();
    match lower.rfind("/subnets/") {
        Some(i) => &subnet_id[..i],
        None => subnet_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnet_id_from_subnet_id() {
        assert_eq!(
            vnet_of_subnet(
                "/s/x/providers/Microsoft.Network/virtualNetworks/v/Subnets/GatewaySubnet"
            ),
            "/s/x/providers/Microsoft.Network/virtualNetworks/v"
        );
    }

    #[test]
    fn every_kind_responder_accepts_its_initiator_offers() {
        // The device offers the initiator list; it must be acceptable to the cloud responder.
        for k in site::kinds().unwrap() {
            for p in &k.default_policy.esp_initiator_proposals {
                assert!(
                    k.default_policy.esp_responder_proposals.contains(p),
                    "kind {}: {p}",
                    k.name
                );
            }
        }
    }
}
