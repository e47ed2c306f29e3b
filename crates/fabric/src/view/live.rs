//! What the web view and `/metrics` show, refreshed in the background so that no request
//! waits on a gateway or a site store: every [`FAST`] the gateways' control sockets (a tunnel
//! that goes down shows within a second), every [`SLOW`] the lab's resources, deployments and
//! `lab status` (the site stores are opened exclusively, so they are read sparingly).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::status::{ConnectionReport, GatewayStatus};
use site::Resource;

use crate::gateways::{self, GatewayRecord};
use crate::lab::Lab;
use crate::state::LabSelector;
use crate::status::{state_parts, LabStatus};
use crate::LabId;

/// How often the gateways are asked for their status while someone looks (a page open,
/// Prometheus scraping).
pub(crate) const FAST: Duration = Duration::from_millis(250);
/// How often while nobody looks: an idle lab costs its gateways and the controller nothing
/// to speak of.
pub(crate) const IDLE: Duration = Duration::from_secs(2);
/// How often the lab's resources, deployments and status are read again (10 times as
/// seldom while nobody looks).
pub(crate) const SLOW: Duration = Duration::from_secs(2);

/// One VNet gateway of the lab: where it sits and its addresses.
#[derive(Debug, Clone, Hash, PartialEq)]
pub(crate) struct GatewayInfo {
    pub(crate) site: String,
    pub(crate) name: String,
    pub(crate) vnet: String,
    pub(crate) public_ip: Option<Ipv4Addr>,
    pub(crate) private_ip: Option<Ipv4Addr>,
}

/// One connection resource and the peer it points at.
#[derive(Debug, Clone, Hash, PartialEq)]
pub(crate) struct ConnInfo {
    pub(crate) site: String,
    pub(crate) name: String,
    pub(crate) gateway: String,
    pub(crate) local_network_gateway: Option<String>,
    pub(crate) peer: Option<Ipv4Addr>,
    pub(crate) peer_prefixes: Vec<String>,
    pub(crate) provisioning_state: String,
}

impl ConnInfo {
    /// `site/name`, the key pages and events use.
    pub(crate) fn key(&self) -> String {
        format!("{}/{}", self.site, self.name)
    }
}

/// Where one end of a tunnel is.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum End {
    /// A VNet gateway of the lab.
    Gateway { site: String, gateway: String },
    /// A site without a VNet gateway of ours (a strongSwan device, a gateway behind NAT
    /// the lab could not tell apart).
    Site(String),
    /// An address outside every site of the lab.
    External(Ipv4Addr),
}

/// A tunnel between two ends, carried by the connections of both sides.
#[derive(Debug, Clone, Hash, PartialEq)]
pub(crate) struct Tunnel {
    pub(crate) id: String,
    pub(crate) a: End,
    pub(crate) b: End,
    pub(crate) connections: Vec<String>,
}

/// One operation of a deployment (one resource it declared), as Azure lists them.
#[derive(Debug, Clone, Hash, PartialEq)]
pub(crate) struct Operation {
    pub(crate) resource_type: String,
    pub(crate) name: String,
    pub(crate) state: String,
    pub(crate) detail: Option<String>,
}

/// A deployment with its operations.
#[derive(Debug, Clone, Hash, PartialEq)]
pub(crate) struct DeploymentView {
    pub(crate) site: String,
    pub(crate) name: String,
    pub(crate) state: String,
    pub(crate) error: Option<String>,
    pub(crate) timestamp: u64,
    pub(crate) operations: Vec<Operation>,
}

/// The slowly changing part: resources, deployments, `lab status`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Model {
    pub(crate) status: Option<LabStatus>,
    pub(crate) error: Option<String>,
    pub(crate) gateways: Vec<GatewayInfo>,
    pub(crate) connections: Vec<ConnInfo>,
    pub(crate) tunnels: Vec<Tunnel>,
    pub(crate) deployments: Vec<DeploymentView>,
    /// Changes whenever the topology picture's structure does (pages re-fetch it then).
    pub(crate) fingerprint: String,
}

/// One gateway process as last seen.
#[derive(Debug, Clone)]
pub(crate) struct GatewayLive {
    pub(crate) site: String,
    pub(crate) gateway: String,
    pub(crate) running: bool,
    pub(crate) pid: Option<i32>,
    pub(crate) restarts: u32,
    pub(crate) last_exit: Option<String>,
    pub(crate) status: Result<GatewayStatus, String>,
}

/// Everything one refresh saw.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) lab_id: String,
    pub(crate) model: Arc<Model>,
    pub(crate) gateways: Vec<GatewayLive>,
    /// Unix time in milliseconds of the gateways' answers.
    pub(crate) at_ms: u64,
    /// How long asking every gateway (and re-reading the lab, when due) took.
    pub(crate) took: Duration,
}

/// A connection's state as the view shows it.
pub(crate) struct ConnLive<'a> {
    /// `connectionStatus`: Connected, Connecting, NotConnected or Unknown.
    pub(crate) status: String,
    /// Why it is not connected, in plain words.
    pub(crate) reason: Option<String>,
    /// The gateway's own report, when its process answered.
    pub(crate) report: Option<&'a ConnectionReport>,
}

impl Snapshot {
    /// The live state of connection `c`.
    pub(crate) fn conn_live(&self, c: &ConnInfo) -> ConnLive<'_> {
        let unknown = |reason: String| ConnLive {
            status: "Unknown".into(),
            reason: Some(reason),
            report: None,
        };
        let Some(gw) = self
            .gateways
            .iter()
            .find(|g| g.site == c.site && g.gateway == c.gateway)
        else {
            // No gateway process of ours (--no-gateways, a strongSwan device): what
            // `lab status` found.
            let from_status = self.model.status.as_ref().and_then(|s| {
                s.sites
                    .iter()
                    .flat_map(|s| &s.connections)
                    .find(|x| x.site == c.site && x.name == c.name)
            });
            return match from_status {
                Some(x) => ConnLive {
                    status: x.connection_status.clone(),
                    reason: x.reason.clone(),
                    report: None,
                },
                None => unknown(format!("no gateway process runs for gateway {}", c.gateway)),
            };
        };
        if !gw.running {
            let last = gw
                .last_exit
                .as_ref()
                .map(|r| format!(" (last exit: {r})"))
                .unwrap_or_default();
            return unknown(format!(
                "the gateway process of {} is not running{last}",
                c.gateway
            ));
        }
        match &gw.status {
            Err(e) => unknown(format!("gateway {}: {e}", c.gateway)),
            Ok(st) => match st.connections.iter().find(|r| r.name == c.name) {
                Some(r) => ConnLive {
                    status: crate::verify::connection_status(r).to_string(),
                    reason: crate::verify::explain(r),
                    report: Some(r),
                },
                None => unknown(format!(
                    "gateway {} does not run this connection (yet)",
                    c.gateway
                )),
            },
        }
    }

    /// A tunnel's state from its connections: `connected` when all are Connected,
    /// `connecting` while none is worse than Connecting, else `down`.
    pub(crate) fn tunnel_state(&self, t: &Tunnel) -> &'static str {
        let mut state = "connected";
        for key in &t.connections {
            let Some(c) = self.model.connections.iter().find(|c| &c.key() == key) else {
                continue;
            };
            match self.conn_live(c).status.as_str() {
                "Connected" => {}
                "Connecting" => state = "connecting",
                _ => return "down",
            }
        }
        state
    }
}

/// Unix time now in milliseconds.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The lab's gateways, connections, tunnels and deployments; what cannot be read is said in
/// `error`.
pub(crate) fn read_model(root: &Path, id: &LabId) -> Model {
    let lab = match Lab::open(root, &LabSelector::Id(id.clone())) {
        Ok(l) => l,
        Err(e) => {
            return Model {
                error: Some(e.to_string()),
                ..Model::default()
            }
        }
    };
    let mut m = Model::default();
    let mut prefixes = Vec::new();
    for spec in &lab.record.sites {
        prefixes.push((spec.name.clone(), spec.public_prefix));
        let read = lab.site(&spec.name).and_then(|site| {
            let resources = site.resources().map_err(crate::lab::site_err(&spec.name))?;
            let deployments = site
                .deployments()
                .map_err(crate::lab::site_err(&spec.name))?;
            Ok((resources, deployments))
        });
        let (resources, deployments) = match read {
            Ok(x) => x,
            Err(e) => {
                m.error = Some(e.to_string());
                continue;
            }
        };
        add_site(&mut m, &spec.name, &resources, &deployments);
    }
    m.tunnels = tunnels(&m.gateways, &m.connections, &prefixes);
    match lab.status() {
        Ok(s) => m.status = Some(s),
        Err(e) => m.error = Some(e.to_string()),
    }
    m.fingerprint = fingerprint(&m);
    m
}

/// One site's gateways, connections and deployments into the model.
fn add_site(
    m: &mut Model,
    site: &str,
    resources: &[Resource],
    deployments: &[site::DeploymentRecord],
) {
    let last = |id: &str| id.rsplit('/').next().unwrap_or(id).to_string();
    for r in resources {
        match r {
            Resource::VirtualNetworkGateway(gw) => {
                let ipc = gw.ip_configurations.first();
                let public_ip = ipc.and_then(|c| {
                    resources.iter().find_map(|r| match r {
                        Resource::PublicIpAddress(p)
                            if site::same_id(&p.meta.id, &c.public_ip_address) =>
                        {
                            Some(p.ip_address)
                        }
                        _ => None,
                    })
                });
                // …/virtualNetworks/VNET/subnets/GatewaySubnet
                let vnet = ipc
                    .map(|c| {
                        let parts: Vec<&str> = c.subnet.split('/').collect();
                        parts
                            .iter()
                            .position(|p| p.eq_ignore_ascii_case("virtualNetworks"))
                            .and_then(|i| parts.get(i + 1))
                            .map(|s| s.to_string())
                            .unwrap_or_default()
                    })
                    .unwrap_or_default();
                m.gateways.push(GatewayInfo {
                    site: site.to_string(),
                    name: gw.meta.name.clone(),
                    vnet,
                    public_ip,
                    private_ip: ipc.map(|c| c.private_ip_address),
                });
            }
            Resource::Connection(c) => {
                let lng = c.local_network_gateway2.as_ref().and_then(|id| {
                    resources.iter().find_map(|r| match r {
                        Resource::LocalNetworkGateway(l) if site::same_id(&l.meta.id, id) => {
                            Some(l)
                        }
                        _ => None,
                    })
                });
                m.connections.push(ConnInfo {
                    site: site.to_string(),
                    name: c.meta.name.clone(),
                    gateway: last(&c.virtual_network_gateway1),
                    local_network_gateway: lng.map(|l| l.meta.name.clone()),
                    peer: lng.and_then(|l| l.gateway_ip_address),
                    peer_prefixes: lng
                        .map(|l| l.address_prefixes.iter().map(|p| p.to_string()).collect())
                        .unwrap_or_default(),
                    provisioning_state: state_parts(&c.meta.provisioning_state).0,
                });
            }
            _ => {}
        }
    }
    for d in deployments {
        let (state, error) = match d.outcome(resources) {
            site::DeploymentState::Succeeded => ("Succeeded".to_string(), None),
            site::DeploymentState::Failed { error } => ("Failed".to_string(), Some(error)),
        };
        let operations = d
            .resources
            .iter()
            .map(
                |id| match resources.iter().find(|r| site::same_id(r.id(), id)) {
                    Some(r) => {
                        let (state, detail) = state_parts(r.provisioning_state());
                        Operation {
                            resource_type: r.resource_type().to_string(),
                            name: r.name().to_string(),
                            state,
                            detail,
                        }
                    }
                    None => Operation {
                        resource_type: resource_type_of(id),
                        name: last(id),
                        state: "Deleted".into(),
                        detail: Some("the resource no longer exists".into()),
                    },
                },
            )
            .collect();
        m.deployments.push(DeploymentView {
            site: site.to_string(),
            name: d.name.clone(),
            state,
            error,
            timestamp: d.timestamp,
            operations,
        });
    }
}

/// `Microsoft.Network/virtualNetworks` from a resource id.
fn resource_type_of(id: &str) -> String {
    let parts: Vec<&str> = id.split('/').collect();
    match parts
        .iter()
        .position(|p| p.eq_ignore_ascii_case("providers"))
    {
        Some(i) if parts.len() > i + 2 => format!("{}/{}", parts[i + 1], parts[i + 2]),
        _ => String::new(),
    }
}

/// Pairs the connections into tunnels: a connection runs from its gateway to the gateway
/// whose public IP its local network gateway names (or, behind NAT, to the site whose public
/// prefix holds that address); the two connections of one pair of gateways are one tunnel.
fn tunnels(
    gateways: &[GatewayInfo],
    connections: &[ConnInfo],
    prefixes: &[(String, ipnet::Ipv4Net)],
) -> Vec<Tunnel> {
    let mut out: Vec<Tunnel> = Vec::new();
    for c in connections {
        let local = End::Gateway {
            site: c.site.clone(),
            gateway: c.gateway.clone(),
        };
        let Some(peer) = c.peer else { continue };
        let remote = gateways
            .iter()
            .find(|g| g.public_ip == Some(peer))
            .map(|g| End::Gateway {
                site: g.site.clone(),
                gateway: g.name.clone(),
            })
            .or_else(|| {
                let (site, _) = prefixes.iter().find(|(_, p)| p.contains(&peer))?;
                Some(
                    gateways
                        .iter()
                        .find(|g| &g.site == site)
                        .map(|g| End::Gateway {
                            site: g.site.clone(),
                            gateway: g.name.clone(),
                        })
                        .unwrap_or_else(|| End::Site(site.clone())),
                )
            })
            .unwrap_or(End::External(peer));
        let (a, b) = if local <= remote {
            (local, remote)
        } else {
            (remote, local)
        };
        match out.iter_mut().find(|t| t.a == a && t.b == b) {
            Some(t) => t.connections.push(c.key()),
            None => out.push(Tunnel {
                id: format!("t{}", out.len()),
                a,
                b,
                connections: vec![c.key()],
            }),
        }
    }
    out
}

/// A hash of what the topology picture is drawn from (not of live states).
fn fingerprint(m: &Model) -> String {
    let mut h = DefaultHasher::new();
    m.gateways.hash(&mut h);
    m.connections.hash(&mut h);
    m.tunnels.hash(&mut h);
    if let Some(s) = &m.status {
        for site in &s.sites {
            site.name.hash(&mut h);
            site.nat.hash(&mut h);
            for v in &site.virtual_networks {
                v.name.hash(&mut h);
                v.address_space.hash(&mut h);
                v.subnets.len().hash(&mut h);
                for sub in &v.subnets {
                    sub.to_string().hash(&mut h);
                }
            }
            for vm in &site.virtual_machines {
                vm.name.hash(&mut h);
                for n in &vm.nics {
                    n.to_string().hash(&mut h);
                }
            }
        }
    }
    format!("{:016x}", h.finish())
}

/// Reads one gateway process: alive, supervised child, its status over the control socket.
fn read_gateway(rec: &GatewayRecord) -> GatewayLive {
    let alive = gateways::alive(rec);
    let sup = gateways::supervision(rec).filter(|_| alive);
    let running = alive && (!rec.supervised || sup.as_ref().is_some_and(|s| s.child_pid.is_some()));
    let status = if running {
        gateway::status::query(&rec.control).map_err(|e| e.to_string())
    } else {
        Err("not running".to_string())
    };
    GatewayLive {
        site: rec.site.clone(),
        gateway: rec.gateway.clone(),
        running,
        pid: if rec.supervised {
            sup.as_ref().and_then(|s| s.child_pid)
        } else {
            alive.then_some(rec.pid)
        },
        restarts: sup.as_ref().map(|s| s.restarts).unwrap_or(0),
        last_exit: sup
            .as_ref()
            .and_then(|s| s.last_exit.as_ref())
            .map(|e| e.reason.clone()),
        status,
    }
}

/// Runs the refresher on its own thread until the process ends: every [`FAST`] while
/// `watched` says someone looks, else every [`IDLE`], a new snapshot goes to `publish` (also
/// handed to `observe`, which keeps what must be counted across snapshots, e.g. setup times
/// for a histogram).
pub(crate) fn spawn(
    root: PathBuf,
    id: LabId,
    publish: tokio::sync::watch::Sender<Arc<Snapshot>>,
    mut observe: impl FnMut(&Snapshot) + Send + 'static,
    watched: impl Fn() -> bool + Send + 'static,
) -> std::io::Result<()> {
    // The first snapshot before anyone can ask: a page loaded right after `lab up` is whole.
    // Taken on a thread of its own: this runs on the controller's async runtime, and reading
    // a strongSwan device's status starts a runtime of its own, which may not nest.
    let started = Instant::now();
    let lab_dir = crate::state::LabDir::new(&root, &id).path;
    let (first_model, records) = std::thread::scope(|s| {
        s.spawn(|| (read_model(&root, &id), gateways::records(&lab_dir)))
            .join()
    })
    .map_err(|_| std::io::Error::other("reading the lab for the web view panicked"))?;
    let mut model = Arc::new(first_model);
    let mut model_at = Instant::now();
    let mut known: Vec<PathBuf> = records.iter().map(|r| r.control.clone()).collect();
    let first = Snapshot {
        lab_id: id.to_string(),
        model: model.clone(),
        gateways: records.iter().map(read_gateway).collect(),
        at_ms: now_ms(),
        took: started.elapsed(),
    };
    observe(&first);
    publish.send_replace(Arc::new(first));
    std::thread::Builder::new()
        .name("view-refresh".into())
        .spawn(move || {
            loop {
                let started = Instant::now();
                let records = gateways::records(&lab_dir);
                let paths: Vec<PathBuf> = records.iter().map(|r| r.control.clone()).collect();
                let due = if watched() { SLOW } else { SLOW * 10 };
                if model_at.elapsed() >= due || paths != known {
                    model = Arc::new(read_model(&root, &id));
                    model_at = Instant::now();
                    known = paths;
                }
                let gateways = records.iter().map(read_gateway).collect();
                let snap = Snapshot {
                    lab_id: id.to_string(),
                    model: model.clone(),
                    gateways,
                    at_ms: now_ms(),
                    took: started.elapsed(),
                };
                observe(&snap);
                publish.send_replace(Arc::new(snap));
                let period = if watched() { FAST } else { IDLE };
                // woken early when someone starts looking, so a page's first update is quick
                let until = started + period;
                while Instant::now() < until {
                    std::thread::sleep(FAST.min(until.saturating_duration_since(Instant::now())));
                    if period == IDLE && watched() {
                        break;
                    }
                }
            }
        })?;
    Ok(())
}

/// An empty snapshot for the time before the first refresh.
pub(crate) fn empty(id: &LabId) -> Snapshot {
    Snapshot {
        lab_id: id.to_string(),
        model: Arc::new(Model::default()),
        gateways: Vec::new(),
        at_ms: now_ms(),
        took: Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(site: &str, name: &str, public: &str) -> GatewayInfo {
        GatewayInfo {
            site: site.into(),
            name: name.into(),
            vnet: "v".into(),
            public_ip: Some(public.parse().unwrap()),
            private_ip: None,
        }
    }

    fn conn(site: &str, name: &str, gateway: &str, peer: &str) -> ConnInfo {
        ConnInfo {
            site: site.into(),
            name: name.into(),
            gateway: gateway.into(),
            local_network_gateway: None,
            peer: Some(peer.parse().unwrap()),
            peer_prefixes: vec![],
            provisioning_state: "Succeeded".into(),
        }
    }

    #[test]
    fn both_sides_of_a_pair_of_gateways_are_one_tunnel_also_behind_nat() {
        let gateways = [
            gw("a", "a-gw", "203.0.113.1"),
            gw("b", "b-gw", "198.51.100.1"),
        ];
        let prefixes = [
            ("a".to_string(), "203.0.113.0/24".parse().unwrap()),
            ("b".to_string(), "198.51.100.0/24".parse().unwrap()),
            ("dev".to_string(), "192.0.2.0/24".parse().unwrap()),
        ];
        let t = tunnels(
            &gateways,
            &[
                conn("a", "a-to-b", "a-gw", "198.51.100.1"),
                // b sits behind NAT: a knows it by the NAT device's address in b's prefix
                conn("b", "b-to-a", "b-gw", "203.0.113.1"),
                conn("a", "a-to-nat", "a-gw", "198.51.100.77"),
                // a strongSwan device: a site without a gateway of ours
                conn("a", "a-to-dev", "a-gw", "192.0.2.9"),
                conn("a", "a-to-far", "a-gw", "100.64.0.1"),
            ],
            &prefixes,
        );
        assert_eq!(t.len(), 3, "{t:#?}");
        assert_eq!(t[0].connections, ["a/a-to-b", "b/b-to-a", "a/a-to-nat"]);
        assert_eq!(
            t[1].b,
            End::Site("dev".into()),
            "a device site is an end: {t:#?}"
        );
        assert_eq!(t[2].b, End::External("100.64.0.1".parse().unwrap()));
    }
}
