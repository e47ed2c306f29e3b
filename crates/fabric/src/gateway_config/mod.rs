//! The configuration of each VNet gateway's process, from the sites' resources.
//!
//! Each route-based VPN gateway of a site becomes one gateway process serving every
//! connection whose `virtualNetworkGateway1` is that gateway. Its TOML configuration is
//! generated from the local network gateway (IPsec) or the peer VNet gateway, possibly in
//! another site (Vnet2Vnet), the shared key, the effective IPsec/IKE policy and the DPD
//! timeout; the gateway's own parser judges each connection, so one it cannot run fails
//! alone, with the gateway's reason.

use crate::gateways::control_socket;
use crate::topology::{behind_nat_addresses, Topology};
use site::{ConnectionType, Resource, Site, VirtualNetworkGateway};
use std::path::Path;

mod toml_config;
use toml_config::{bgp_table, connection_tables, render, top_table, vnet_router_table};

/// Interface name of the gateway's TUN device (inside its own namespace, so no collisions).
pub const TUN_NAME: &str = "vpn0";
/// Metric of the routes a gateway's first instance installs in its VNet router (the second
/// instance's are one higher, so the router prefers the first while its tunnels are up).
pub const VNET_ROUTE_METRIC: u32 = 20;

/// Why a VNet gateway, or one of its connections, cannot be configured; the resource's
/// provisioning state becomes Failed with this text.
#[derive(Debug, thiserror::Error)]
pub enum GatewayConfigError {
    /// The lab runs route-based VPN gateways only.
    #[error("gatewayType {gateway_type} / vpnType {vpn_type:?}: the lab runs route-based VPN gateways only")]
    UnsupportedGateway {
        /// The gateway type.
        gateway_type: String,
        /// The VPN type.
        vpn_type: site::VpnType,
    },
    /// A gateway without an IP configuration has no addresses to run on.
    #[error("gateway {0} has no ipConfigurations")]
    NoIpConfiguration(String),
    /// The VNet holding a gateway's GatewaySubnet does not exist.
    #[error("the GatewaySubnet of gateway {0} does not exist")]
    NoGatewaySubnet(String),
    /// A gateway's public IP does not exist.
    #[error("public IP {public_ip} of gateway {gateway} does not exist")]
    NoPublicIp {
        /// The public IP address resource.
        public_ip: String,
        /// The VPN gateway concerned.
        gateway: String,
    },
    /// An IPsec connection names no local network gateway.
    #[error("an IPsec connection needs localNetworkGateway2")]
    NoLocalNetworkGateway,
    /// An IPsec connection names a local network gateway that does not exist.
    #[error("local network gateway {0} does not exist")]
    NoSuchLocalNetworkGateway(String),
    /// A local network gateway's fqdn names no public IP of the lab (yet).
    #[error(
        "local network gateway {lng}: fqdn {fqdn} is not a name in the lab's DNS zone ({zone})"
    )]
    UnresolvedFqdn {
        /// The local network gateway.
        lng: String,
        /// Its fqdn.
        fqdn: String,
        /// The names the zone holds, for the message.
        zone: String,
    },
    /// A local network gateway has neither gatewayIpAddress nor fqdn.
    #[error("local network gateway {0} has neither gatewayIpAddress nor fqdn")]
    NoPeerAddress(String),
    /// A local network gateway has no prefixes to route into the tunnel.
    #[error("local network gateway {0} has no address prefixes")]
    NoAddressPrefixes(String),
    /// A Vnet2Vnet connection names no peer gateway.
    #[error("a Vnet2Vnet connection needs virtualNetworkGateway2")]
    NoPeerGateway,
    /// A Vnet2Vnet connection names a peer gateway in no site of the lab.
    #[error("virtual network gateway {0} exists in no site of the lab")]
    NoSuchPeerGateway(String),
    /// The connection type is not IPsec or Vnet2Vnet.
    #[error("connectionType {0:?} is not realized in the lab")]
    UnsupportedConnectionType(ConnectionType),
    /// The lab's gateway speaks IKEv2 only.
    #[error("connectionProtocol IKEv1: the lab's gateway speaks IKEv2 only")]
    Ikev1,
    /// The connection has no shared key to authenticate with.
    #[error("the connection has no sharedKey")]
    NoSharedKey,
    /// A connection with enableBgp on a gateway without it.
    #[error("enableBgp is set on the connection but not on its virtual network gateway")]
    BgpOffOnGateway,
    /// The far end of a BGP connection has no BGP settings.
    #[error(
        "enableBgp is set but {0} has no bgpSettings (asn and bgpPeeringAddress) to peer with"
    )]
    NoPeerBgpSettings(String),
    /// Both ends of a BGP connection use the same AS (Azure peers over eBGP only).
    #[error("both ends of the BGP connection use AS {0}; Azure's gateways peer over eBGP, so the ASNs must differ")]
    SameAsn(u32),
    /// The gateway's own configuration parser refused the connection (e.g. an algorithm).
    #[error("the lab's gateway cannot run this connection: {0}")]
    Refused(#[source] gateway::ConfigError),
}

/// What the lab runs for one virtual network gateway.
#[derive(Clone, Debug)]
pub struct GatewayRun {
    /// Site name.
    pub site: String,
    /// Gateway resource name.
    pub gateway: String,
    /// Which instance of the gateway (0: the first or only one; 1: an active-active
    /// gateway's second).
    pub instance: u8,
    /// Gateway resource id.
    pub gateway_id: String,
    /// Its namespace.
    pub netns: String,
    /// The generated configuration; `None` when no connection can run (no process then).
    pub config: Option<String>,
    /// Ids of the connections served (in the configuration).
    pub connections: Vec<String>,
}

/// The gateway `id` names, looked up in every site.
fn find_gateway<'a>(
    sites: &'a [(Site, Vec<Resource>)],
    id: &str,
) -> Option<(&'a Site, &'a Vec<Resource>, &'a VirtualNetworkGateway)> {
    sites.iter().find_map(|(s, rs)| {
        rs.iter().find_map(|r| match r {
            Resource::VirtualNetworkGateway(g) if site::same_id(&g.meta.id, id) => Some((s, rs, g)),
            _ => None,
        })
    })
}

/// A gateway's VNet address space and its instances' public IPs, from its site's resources.
fn gateway_endpoints(
    resources: &[Resource],
    gw: &VirtualNetworkGateway,
) -> Result<(Vec<ipnet::Ipv4Net>, Vec<std::net::Ipv4Addr>), GatewayConfigError> {
    let ipc = gw
        .ip_configurations
        .first()
        .ok_or_else(|| GatewayConfigError::NoIpConfiguration(gw.meta.name.clone()))?;
    let subnet = ipc.subnet.to_lowercase();
    let space = resources
        .iter()
        .find_map(|r| match r {
            Resource::VirtualNetwork(v)
                if v.subnets.iter().any(|s| s.id.to_lowercase() == subnet) =>
            {
                Some(v.address_space.clone())
            }
            _ => None,
        })
        .ok_or_else(|| GatewayConfigError::NoGatewaySubnet(gw.meta.name.clone()))?;
    let public = gw
        .ip_configurations
        .iter()
        .take(gw.instance_count())
        .map(|ipc| {
            resources
                .iter()
                .find_map(|r| match r {
                    Resource::PublicIpAddress(p)
                        if site::same_id(&p.meta.id, &ipc.public_ip_address) =>
                    {
                        Some(p.ip_address)
                    }
                    _ => None,
                })
                .ok_or_else(|| GatewayConfigError::NoPublicIp {
                    public_ip: ipc.public_ip_address.clone(),
                    gateway: gw.meta.name.clone(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((space, public))
}

impl GatewayConfigError {
    /// Whether the connection waits for something that may come (a peer name not yet in the
    /// lab's zone), rather than being unable to run: it is then Pending, not Failed, as an
    /// Azure connection to a name that does not resolve yet deploys and stays unconnected.
    pub fn waits(&self) -> bool {
        matches!(self, GatewayConfigError::UnresolvedFqdn { .. })
    }
}

/// Plans every gateway process of the lab: the configuration of each VNet gateway (from the
/// topology, which placed it) and the connections that cannot run, with why (to be Failed).
pub fn plan(
    lab_dir: &Path,
    topology: &Topology,
    sites: &[(Site, Vec<Resource>)],
) -> (Vec<GatewayRun>, Vec<(String, GatewayConfigError)>) {
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for net in &topology.sites {
        let Some((site, resources)) = sites.iter().find(|(s, _)| s.info().name == net.name) else {
            continue;
        };
        for (index, g) in net.gateways.iter().enumerate() {
            let Some(gw) = resources.iter().find_map(|r| match r {
                Resource::VirtualNetworkGateway(x) if x.meta.name == g.name => Some(x),
                _ => None,
            }) else {
                continue;
            };
            let local_address = if net.nat {
                behind_nat_addresses(index).1
            } else {
                g.public_address
            };
            let placed = Placed {
                lab_dir,
                site,
                resources,
                sites,
                gw,
                local_address,
                public_address: g.public_address,
                netns: g.netns(&topology.lab_id, &net.name),
                router_netns: topology.lab_id.router_netns(&net.name, &g.vnet),
                private_address: g.private_address,
                instance: g.instance,
                instances: g.instances,
            };
            match placed.run(&mut failures) {
                Ok(run) => runs.push(run),
                Err(e) => failures.push((gw.meta.id.to_lowercase(), e)),
            }
        }
    }
    (runs, failures)
}

/// A VNet gateway the topology placed, with what its configuration is made from.
struct Placed<'a> {
    lab_dir: &'a Path,
    site: &'a Site,
    resources: &'a [Resource],
    sites: &'a [(Site, Vec<Resource>)],
    gw: &'a VirtualNetworkGateway,
    /// The address its process binds (inside its NAT device, when the site has one).
    local_address: std::net::Ipv4Addr,
    /// Its public IP, its IKE identity.
    public_address: std::net::Ipv4Addr,
    netns: String,
    /// Its VNet router's namespace, where learned routes go.
    router_netns: String,
    /// Its address in the GatewaySubnet.
    private_address: std::net::Ipv4Addr,
    /// Which instance of the gateway it is.
    instance: u8,
    /// How many the gateway has.
    instances: u8,
}

impl Placed<'_> {
    /// The gateway's run, serving every connection of it that can run; those that cannot
    /// are added to `failures`. Fails for a gateway the lab cannot run at all.
    fn run(
        &self,
        failures: &mut Vec<(String, GatewayConfigError)>,
    ) -> Result<GatewayRun, GatewayConfigError> {
        let (gw, resources) = (self.gw, self.resources);
        if gw.vpn_type != site::VpnType::RouteBased || !gw.gateway_type.eq_ignore_ascii_case("Vpn")
        {
            return Err(GatewayConfigError::UnsupportedGateway {
                gateway_type: gw.gateway_type.clone(),
                vpn_type: gw.vpn_type,
            });
        }
        let (local_prefixes, _) = gateway_endpoints(resources, gw)?;
        let site_name = &self.site.info().name;
        let instance_name = crate::topology::instance_name(&gw.meta.name, self.instance);
        let control = control_socket(self.lab_dir, site_name, &instance_name);
        let mut top = top_table(self.local_address, &control);
        let bgp = bgp_table(gw, usize::from(self.instance), &local_prefixes);
        if bgp.is_some() || self.instances > 1 {
            top.insert(
                "vnet_router".into(),
                toml::Value::Table(vnet_router_table(
                    &self.router_netns,
                    self.private_address,
                    VNET_ROUTE_METRIC + u32::from(self.instance),
                    self.instances > 1,
                )),
            );
        }
        let local_asn = bgp
            .as_ref()
            .and_then(|_| gw.bgp_settings.as_ref().map(|b| b.asn));
        if let Some(b) = bgp {
            top.insert("bgp".into(), toml::Value::Table(b));
        }
        let mut tables = Vec::new();
        let mut served = Vec::new();
        for r in resources {
            let Resource::Connection(c) = r else { continue };
            if !site::same_id(&c.virtual_network_gateway1, &gw.meta.id) {
                continue;
            }
            let checked = connection_tables(
                self.site,
                resources,
                self.sites,
                c,
                &local_prefixes,
                local_asn,
            )
            .and_then(|ts| {
                // The gateway's own parser is the judge of what it can run (algorithms,
                // lifetimes); its error names the key.
                let alone = render(top.clone(), self.public_address, ts.clone());
                gateway::GatewayConfig::parse(&alone, self.lab_dir)
                    .map(|_| ts)
                    .map_err(GatewayConfigError::Refused)
            });
            match checked {
                Ok(ts) => {
                    tables.extend(ts);
                    served.push(c.meta.id.clone());
                }
                Err(e) => failures.push((c.meta.id.to_lowercase(), e)),
            }
        }
        Ok(GatewayRun {
            site: site_name.clone(),
            gateway: gw.meta.name.clone(),
            instance: self.instance,
            gateway_id: gw.meta.id.clone(),
            netns: self.netns.clone(),
            config: (!tables.is_empty()).then(|| render(top, self.public_address, tables)),
            connections: served,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::LabId;
    use crate::topology::{GatewayNet, SiteNet};
    use serde_json::{json, Map, Value};
    use std::path::PathBuf;

    const SEED: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/hybrid-connection/templates"
    );

    fn deploy(site: &mut Site, file: &str, params: Value) {
        let text = std::fs::read_to_string(format!("{SEED}/{file}")).unwrap();
        let params: Map<String, Value> = params.as_object().unwrap().clone();
        let plan = site.plan(&text, params, file).unwrap();
        site.apply(plan).unwrap();
    }

    fn connection(
        gw: &str,
        lgw: &str,
        ip: &str,
        prefix: &str,
        name: &str,
        policies: Value,
    ) -> Value {
        json!({
            "gatewayName": gw, "localGatewayName": lgw, "localGatewayIpAddress": ip,
            "localAddressPrefixes": [prefix], "connectionName": name,
            "sharedKey": "0xnot-hex \"quoted\"", "ipsecPolicies": policies, "dpdTimeoutSeconds": 9,
        })
    }

    /// The seed's two sites in a scratch store; `nat` puts stackhub behind NAT.
    fn seed(
        dir: &Path,
        azure_policies: Value,
        nat: bool,
    ) -> (Topology, Vec<(Site, Vec<Resource>)>) {
        let mut az =
            Site::create(dir, "azure", "azure", "203.0.113.0/24".parse().unwrap()).unwrap();
        let mut sh = Site::create(
            dir,
            "stackhub",
            "azure-stack-hub",
            "198.51.100.0/24".parse().unwrap(),
        )
        .unwrap();
        deploy(&mut az, "azure-site.json", json!({}));
        deploy(&mut sh, "stackhub-site.json", json!({}));
        deploy(
            &mut az,
            "connection.json",
            connection(
                "azure-gw",
                "stackhub-lgw",
                "198.51.100.1",
                "10.2.0.0/16",
                "azure-to-stackhub",
                azure_policies,
            ),
        );
        deploy(
            &mut sh,
            "connection.json",
            connection(
                "stackhub-gw",
                "azure-lgw",
                "203.0.113.1",
                "10.1.0.0/16",
                "stackhub-to-azure",
                json!([]),
            ),
        );
        let net = |name: &str,
                   prefix: &str,
                   gw: &str,
                   vnet: &str,
                   private: &str,
                   public: &str,
                   remote: &str,
                   nat: bool| SiteNet {
            name: name.into(),
            public_prefix: prefix.parse().unwrap(),
            vnets: vec![],
            vms: vec![],
            nat,
            gateways: vec![GatewayNet {
                name: gw.into(),
                vnet: vnet.into(),
                private_address: private.parse().unwrap(),
                public_address: public.parse().unwrap(),
                instance: 0,
                instances: 1,
                remote_prefixes: vec![remote.parse().unwrap()],
            }],
        };
        let topo = Topology {
            lab_id: LabId::parse("unit1").unwrap(),
            sites: vec![
                net(
                    "azure",
                    "203.0.113.0/24",
                    "azure-gw",
                    "azure-vnet",
                    "10.1.255.4",
                    "203.0.113.1",
                    "10.2.0.0/16",
                    false,
                ),
                net(
                    "stackhub",
                    "198.51.100.0/24",
                    "stackhub-gw",
                    "stackhub-vnet",
                    "10.2.255.4",
                    "198.51.100.1",
                    "10.1.0.0/16",
                    nat,
                ),
            ],
        };
        let sites = vec![az, sh]
            .into_iter()
            .map(|s| {
                let r = s.resources().unwrap();
                (s, r)
            })
            .collect();
        (topo, sites)
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hn-fabric-gw-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn parsed(runs: &[GatewayRun], site: &str) -> gateway::GatewayConfig {
        let run = runs.iter().find(|r| r.site == site).unwrap();
        gateway::GatewayConfig::parse(run.config.as_deref().unwrap(), Path::new("/")).unwrap()
    }

    #[test]
    fn configs_follow_the_sites_resources_and_policies() {
        let dir = scratch("seed");
        let policy = json!([{ "saLifeTimeSeconds": 3600, "saDataSizeKilobytes": 102400000, "ipsecEncryption": "GCMAES256",
            "ipsecIntegrity": "GCMAES256", "ikeEncryption": "AES256", "ikeIntegrity": "SHA384", "dhGroup": "ECP384", "pfsGroup": "ECP384" }]);
        let (topo, sites) = seed(&dir, policy, true);
        let (runs, failures) = plan(&dir, &topo, &sites);
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(runs.len(), 2);

        let az = parsed(&runs, "azure");
        assert_eq!(az.local_address.to_string(), "203.0.113.1");
        assert_eq!(az.tun.name, TUN_NAME);
        let c = &az.connections[0];
        assert_eq!(c.name, "azure-to-stackhub");
        assert_eq!(
            c.remote_address.unwrap().to_string(),
            "198.51.100.1",
            "the local network gateway's address"
        );
        assert_eq!(c.remote_prefixes[0].to_string(), "10.2.0.0/16");
        assert_eq!(
            c.local_prefixes[0].to_string(),
            "10.1.0.0/16",
            "this VNet's address space"
        );
        assert_eq!(
            c.psk.expose(),
            b"0xnot-hex \"quoted\"",
            "the shared key is taken literally"
        );
        // The custom policy, exactly and alone.
        let ike: Vec<String> = c.ike_proposals.iter().map(|p| p.to_string()).collect();
        let esp: Vec<String> = c.esp_proposals.iter().map(|p| p.to_string()).collect();
        assert_eq!(ike.len(), 1, "{ike:?}");
        assert_eq!(esp.len(), 1, "{esp:?}");
        assert!(
            ike[0].to_lowercase().contains("ecp") && esp[0].to_lowercase().contains("gcm"),
            "{ike:?} {esp:?}"
        );
        assert_eq!(c.child_lifetime.as_secs(), 3600);
        assert_eq!(c.dpd_timeout.as_secs(), 9);
        assert!(c.initiate, "both sides initiate, as Azure does");

        // Behind NAT: bound to the private side, identified by the public IP.
        let sh = parsed(&runs, "stackhub");
        assert_eq!(sh.local_address.to_string(), "100.64.0.2");
        let c = &sh.connections[0];
        assert!(
            format!("{:?}", c.local_id).contains("198.51.100.1"),
            "{:?}",
            c.local_id
        );
        // Azure Stack Hub's default: one IKE and one ESP offer.
        assert_eq!(c.ike_proposals.len(), 1);
        assert_eq!(c.esp_proposals.len(), 1);
        let text = runs[0].config.as_deref().unwrap();
        assert!(
            !text.contains("not-hex"),
            "the key is hex-encoded in the file:\n{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// usePolicyBasedTrafficSelectors becomes the gateway's `selector_pairs` (one Child SA per
    /// prefix pair) on that connection only; IKEv1 is still refused, alone.
    #[test]
    fn policy_based_traffic_selectors_run_one_child_sa_per_prefix_pair() {
        let dir = scratch("pairs");
        let policy = json!([{ "saLifeTimeSeconds": 3600, "saDataSizeKilobytes": 102400000, "ipsecEncryption": "GCMAES256",
            "ipsecIntegrity": "GCMAES256", "ikeEncryption": "AES256", "ikeIntegrity": "SHA384", "dhGroup": "ECP384", "pfsGroup": "ECP384" }]);
        let (topo, mut sites) = seed(&dir, policy, false);
        fn conn(sites: &mut [(Site, Vec<Resource>)], site: usize) -> &mut site::Connection {
            sites[site]
                .1
                .iter_mut()
                .find_map(|r| match r {
                    Resource::Connection(c) => Some(c),
                    _ => None,
                })
                .unwrap()
        }
        conn(&mut sites, 0).use_policy_based_traffic_selectors = true;
        let (runs, failures) = plan(&dir, &topo, &sites);
        assert!(failures.is_empty(), "{failures:?}");
        let az = parsed(&runs, "azure");
        assert!(az.connections[0].selector_pairs);
        let text = runs[0].config.as_deref().unwrap();
        assert!(text.contains("selector_pairs = true"), "{text}");
        assert!(!parsed(&runs, "stackhub").connections[0].selector_pairs);

        conn(&mut sites, 0).connection_protocol = site::ConnectionProtocol::IKEv1;
        let (runs, failures) = plan(&dir, &topo, &sites);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(matches!(failures[0].1, GatewayConfigError::Ikev1));
        assert!(
            runs.iter()
                .find(|r| r.site == "azure")
                .unwrap()
                .config
                .is_none(),
            "the azure gateway has nothing else to run"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn default_policy_offers_the_initiator_list_first_and_accepts_the_responder_list() {
        let dir = scratch("default");
        let (topo, sites) = seed(&dir, json!([]), false);
        let (runs, _) = plan(&dir, &topo, &sites);
        let az = parsed(&runs, "azure");
        let kind = site::kind("azure").unwrap();
        let esp: Vec<String> = az.connections[0]
            .esp_proposals
            .iter()
            .map(|p| p.to_string())
            .collect();
        let want_first = &kind.default_policy.esp_initiator_proposals;
        assert_eq!(
            esp.len(),
            kind.default_policy.esp_responder_proposals.len(),
            "{esp:?}"
        );
        assert_eq!(
            az.connections[0].ike_proposals.len(),
            kind.default_policy.ike_proposals.len()
        );
        assert!(esp.len() > want_first.len());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An active-active gateway runs one process per instance: each binds its own public IP,
    /// serves every connection, and tells the VNet router its routes with its own metric
    /// (static prefixes included, for the tunnels that are up).
    #[test]
    fn active_active_instances_get_a_configuration_each() {
        let dir = scratch("aa");
        let (mut topo, mut sites) = seed(&dir, json!([]), false);
        for r in sites[0].1.iter_mut() {
            if let Resource::VirtualNetworkGateway(g) = r {
                g.active_active = true;
                let mut second = g.ip_configurations[0].clone();
                second.name = "cfg2".into();
                second.private_ip_address = "10.1.255.5".parse().unwrap();
                g.ip_configurations.push(second);
            }
        }
        let mut instance = topo.sites[0].gateways[0].clone();
        instance.instance = 1;
        instance.instances = 2;
        instance.private_address = "10.1.255.5".parse().unwrap();
        instance.public_address = "203.0.113.2".parse().unwrap();
        topo.sites[0].gateways[0].instances = 2;
        topo.sites[0].gateways.push(instance);
        let (runs, failures) = plan(&dir, &topo, &sites);
        assert!(failures.is_empty(), "{failures:?}");
        let azure: Vec<&GatewayRun> = runs.iter().filter(|r| r.site == "azure").collect();
        assert_eq!(azure.len(), 2);
        for (i, run) in azure.iter().enumerate() {
            assert_eq!(run.instance as usize, i);
            let c = gateway::GatewayConfig::parse(run.config.as_deref().unwrap(), Path::new("/"))
                .unwrap();
            assert_eq!(
                c.local_address.to_string(),
                ["203.0.113.1", "203.0.113.2"][i]
            );
            let r = c.vnet_router.expect("instances tell the router");
            assert_eq!(r.metric, VNET_ROUTE_METRIC + i as u32);
            assert!(r.static_routes);
            assert_eq!(r.next_hop.to_string(), ["10.1.255.4", "10.1.255.5"][i]);
            assert_eq!(c.connections[0].name, "azure-to-stackhub");
            assert!(
                format!("{:?}", c.connections[0].local_id)
                    .contains(["203.0.113.1", "203.0.113.2"][i]),
                "each instance is known by its own public IP"
            );
        }
        assert_ne!(azure[0].netns, azure[1].netns);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
