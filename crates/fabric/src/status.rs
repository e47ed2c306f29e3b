//! `lab status`: every site's VNets, VMs, public IPs, gateways with their processes,
//! connections and deployments, read from the site stores and the kernel.

use crate::connections::ConnectionStatus;
use crate::desired::{DesiredState, NetnsSpec};
use crate::gateways;
use crate::lab::{site_err, Lab, LabError};
use crate::spec::SiteSpec;
use crate::topology::{SiteNet, Topology};
use serde_json::Value;
use site::{ProvisioningState, Resource};
use std::path::PathBuf;

/// Realized view of a lab for `lab status`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabStatus {
    /// Lab id.
    pub id: String,
    /// Directory the lab was built from.
    pub source_dir: PathBuf,
    /// State directory.
    pub state_dir: PathBuf,
    /// The internet namespace and whether it exists.
    pub internet: NetnsStatus,
    /// Per-site status.
    pub sites: Vec<SiteStatus>,
    /// Every namespace last realized, with what it and each of its interfaces stand for
    /// (interface names are compact, so this is the map from kernel objects to resources).
    pub namespaces: Vec<Value>,
    /// On-premises strongSwan devices (sites of kind `strongswan`) with their SAs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strongswan_devices: Vec<crate::strongswan_status::DeviceStatus>,
}

/// A namespace and whether it exists now.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetnsStatus {
    /// Namespace name.
    pub netns: String,
    /// Whether it exists in the kernel.
    pub exists: bool,
}

/// One site in `lab status`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteStatus {
    /// Site name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Public prefix.
    pub public_prefix: String,
    /// Behind NAT.
    pub nat: bool,
    /// The internet router's address on the site's public prefix.
    pub internet_address: Option<String>,
    /// The NAT device's namespace, for a site behind NAT with gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_device: Option<NetnsStatus>,
    /// VNets.
    pub virtual_networks: Vec<VnetStatus>,
    /// VMs.
    pub virtual_machines: Vec<VmStatus>,
    /// Public IPs.
    pub public_ip_addresses: Vec<Value>,
    /// Everything else (gateways, local network gateways, …) with its provisioning state.
    pub other_resources: Vec<Value>,
    /// Connections with their live status (`connectionStatus`, byte counters, why not up).
    pub connections: Vec<ConnectionStatus>,
    /// Deployments, oldest first.
    pub deployments: Vec<Value>,
    /// Why the site's store could not be read (e.g. a `lab up` crashed before creating it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One VNet in `lab status`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VnetStatus {
    /// Name.
    pub name: String,
    /// Address space.
    pub address_space: Vec<String>,
    /// provisioningState (`Succeeded`, `Failed`, …).
    pub provisioning_state: String,
    /// The error when Failed, the reason when Pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Router namespace.
    pub router: NetnsStatus,
    /// Subnets with their bridge interface.
    pub subnets: Vec<Value>,
}

/// One VM in `lab status`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmStatus {
    /// Name.
    pub name: String,
    /// provisioningState.
    pub provisioning_state: String,
    /// The error when Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The VM's namespace.
    pub netns: NetnsStatus,
    /// NICs: name, subnet, private IP, interface inside the VM.
    pub nics: Vec<Value>,
}

/// provisioningState as Azure names it, and the error (Failed) or reason (Pending).
pub(crate) fn state_parts(s: &ProvisioningState) -> (String, Option<String>) {
    match s {
        ProvisioningState::Failed { error } => ("Failed".into(), Some(error.clone())),
        ProvisioningState::Pending { reason } => ("Pending".into(), Some(reason.clone())),
        other => (other.arm_name().into(), None),
    }
}

/// A namespace with whether it exists now.
fn ns_status(name: String) -> NetnsStatus {
    let exists = crate::netns::netns_exists(&name);
    NetnsStatus {
        netns: name,
        exists,
    }
}

/// A realized namespace with what it and each of its interfaces stand for.
fn namespace_view(n: &NetnsSpec) -> Value {
    serde_json::json!({
        "netns": n.name,
        "role": n.role,
        "exists": crate::netns::netns_exists(&n.name),
        "interfaces": n.links.iter().map(|l| serde_json::json!({
            "name": l.name,
            "role": l.role,
            "addresses": l.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

impl Lab {
    /// Everything `lab status` shows, read from the site stores and the kernel.
    pub fn status(&self) -> Result<LabStatus, LabError> {
        let id = self.id();
        let realized = self.dir.realized().unwrap_or_default();
        let mut sites = Vec::new();
        for spec in &self.record.sites {
            sites.push(self.site_status(spec, &realized)?);
        }
        Ok(LabStatus {
            id: id.to_string(),
            source_dir: self.record.source_dir.clone(),
            state_dir: self.dir.path.clone(),
            internet: ns_status(id.internet_netns()),
            sites,
            namespaces: realized.netns.iter().map(namespace_view).collect(),
            strongswan_devices: self
                .topology()
                .map(|t| crate::strongswan_status::status(&self.dir.path, &t, &self.record.sites))
                .unwrap_or_default(),
        })
    }

    /// One site: its resources by kind, with their namespaces and live state, and its
    /// deployments; a site whose store cannot be read shows why.
    fn site_status(
        &self,
        spec: &SiteSpec,
        realized: &DesiredState,
    ) -> Result<SiteStatus, LabError> {
        let id = self.id();
        let net = SiteNet {
            name: spec.name.clone(),
            public_prefix: spec.public_prefix,
            vnets: vec![],
            vms: vec![],
            nat: spec.nat,
            gateways: vec![],
        };
        let mut st = SiteStatus {
            name: spec.name.clone(),
            kind: spec.kind.clone(),
            public_prefix: spec.public_prefix.to_string(),
            nat: spec.nat,
            internet_address: net.internet_address().map(|a| a.to_string()),
            nat_device: spec.nat.then(|| ns_status(id.nat_netns(&spec.name))),
            virtual_networks: vec![],
            virtual_machines: vec![],
            public_ip_addresses: vec![],
            other_resources: vec![],
            connections: vec![],
            deployments: vec![],
            error: None,
        };
        let opened = self.site(&spec.name).and_then(|site| {
            site.resources()
                .map(|r| (site, r))
                .map_err(site_err(&spec.name))
        });
        let (site, resources) = match opened {
            Ok(x) => x,
            Err(e) => {
                st.error = Some(e.to_string());
                return Ok(st);
            }
        };
        for r in &resources {
            let (ps, err) = state_parts(r.provisioning_state());
            match r {
                Resource::VirtualNetwork(v) => {
                    st.virtual_networks.push(self.vnet_status(&spec.name, v, ps, err))
                }
                Resource::VirtualMachine(vm) => st.virtual_machines.push(self.vm_status(
                    &spec.name, vm, &resources, realized, ps, err,
                )),
                Resource::PublicIpAddress(p) => st.public_ip_addresses.push(serde_json::json!({
                    "name": p.meta.name,
                    "ipAddress": p.ip_address.to_string(),
                    "provisioningState": ps,
                    "error": err,
                })),
                Resource::NetworkInterface(_) => {}
                Resource::Connection(c) => {
                    st.connections.push(self.connection_status(&spec.name, c))
                }
                Resource::VirtualNetworkGateway(gw) => st.other_resources.push(serde_json::json!({
                    "type": r.resource_type(),
                    "name": gw.meta.name,
                    "provisioningState": ps,
                    "reason": err,
                    "privateIpAddress": gw.ip_configurations.first().map(|c| c.private_ip_address.to_string()),
                    "netns": ns_status(id.gateway_netns(&spec.name, &gw.meta.name)),
                    "gatewayProcess": self.gateway_process(&spec.name, &gw.meta.name),
                    "instances": (gw.instance_count() > 1).then(|| {
                        gw.ip_configurations
                            .iter()
                            .enumerate()
                            .map(|(i, c)| serde_json::json!({
                                "instance": i + 1,
                                "ipConfiguration": c.name,
                                "privateIpAddress": c.private_ip_address.to_string(),
                                "netns": ns_status(id.gateway_instance_netns(&spec.name, &gw.meta.name, i as u8)),
                                "gatewayProcess": self.instance_process(&spec.name, &gw.meta.name, i as u8),
                            }))
                            .collect::<Vec<_>>()
                    }),
                    "bgp": gw.enable_bgp.then(|| {
                        crate::bgp_view::gateway_bgp(&self.dir.path, &spec.name, &gw.meta.name)
                            .map_or_else(
                                |e| serde_json::json!({ "error": e.to_string() }),
                                |r| serde_json::to_value(r).expect("reports serialize"),
                            )
                    }),
                })),
                other => st.other_resources.push(serde_json::json!({
                    "type": other.resource_type(),
                    "name": other.name(),
                    "provisioningState": ps,
                    "reason": err,
                })),
            }
        }
        for d in site.deployments().map_err(site_err(&spec.name))? {
            let (state, error) = match &d.outcome(&resources) {
                site::DeploymentState::Succeeded => ("Succeeded", None),
                site::DeploymentState::Failed { error } => ("Failed", Some(error.clone())),
            };
            st.deployments.push(serde_json::json!({
                "name": d.name, "state": state, "error": error, "outputs": d.outputs,
            }));
        }
        Ok(st)
    }

    /// A VNet with its router namespace and, per subnet, the router's address and bridge.
    fn vnet_status(
        &self,
        site: &str,
        v: &site::VirtualNetwork,
        provisioning_state: String,
        error: Option<String>,
    ) -> VnetStatus {
        let id = self.id();
        let topo = Topology {
            lab_id: id.clone(),
            sites: vec![],
        };
        VnetStatus {
            name: v.meta.name.clone(),
            address_space: v.address_space.iter().map(|p| p.to_string()).collect(),
            provisioning_state,
            error,
            router: ns_status(id.router_netns(site, &v.meta.name)),
            subnets: v
                .subnets
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "name": s.name,
                        "addressPrefix": s.address_prefix.to_string(),
                        "routerAddress": crate::topology::first_host(&s.address_prefix).map(|a| a.to_string()),
                        "bridge": topo.subnet_bridge(site, &v.meta.name, &s.name),
                    })
                })
                .collect(),
        }
    }

    /// A VM with its namespace and NICs (primary first): subnet, addresses, and the
    /// interface inside the VM when it was realized.
    fn vm_status(
        &self,
        site: &str,
        vm: &site::VirtualMachine,
        resources: &[Resource],
        realized: &DesiredState,
        provisioning_state: String,
        error: Option<String>,
    ) -> VmStatus {
        let vm_ns = self.id().vm_netns(site, &vm.meta.name);
        let realized_links = realized
            .get(&vm_ns)
            .map(|n| n.links.clone())
            .unwrap_or_default();
        let mut nics = Vec::new();
        let mut sorted = vm.network_interfaces.clone();
        sorted.sort_by_key(|n| !n.primary);
        for (i, vn) in sorted.iter().enumerate() {
            let Some(n) = resources.iter().find_map(|r| match r {
                Resource::NetworkInterface(n) if site::same_id(&n.meta.id, &vn.id) => Some(n),
                _ => None,
            }) else {
                continue;
            };
            let ipc = n.primary().or(n.ip_configurations.first());
            let public = ipc
                .and_then(|c| c.public_ip_address.as_ref())
                .and_then(|pid| {
                    resources.iter().find_map(|r| match r {
                        Resource::PublicIpAddress(p) if site::same_id(&p.meta.id, pid) => {
                            Some(p.ip_address.to_string())
                        }
                        _ => None,
                    })
                });
            let ifname = format!("eth{i}");
            let nsgs: Vec<String> = site::nsg::effective_nsgs(resources, n)
                .iter()
                .map(|l| l.nsg_id.rsplit('/').next().unwrap_or("").to_string())
                .collect();
            nics.push(serde_json::json!({
                "name": n.meta.name,
                "networkSecurityGroups": nsgs,
                "subnet": ipc.map(|c| c.subnet.rsplit('/').next().unwrap_or("").to_string()),
                "privateIpAddress": ipc.map(|c| c.private_ip_address.to_string()),
                "publicIpAddress": public,
                "interface": realized_links.iter().any(|l| l.name == ifname).then_some(ifname),
            }));
        }
        VmStatus {
            name: vm.meta.name.clone(),
            provisioning_state,
            error,
            netns: ns_status(vm_ns),
            nics,
        }
    }

    /// The process the lab runs for gateway `gateway` of `site`, as `lab status` shows it
    /// (`None` when the lab runs none for it).
    pub fn gateway_process(&self, site: &str, gateway: &str) -> Option<GatewayProcessStatus> {
        self.instance_process(site, gateway, 0)
    }

    /// The process of instance `instance` of gateway `gateway` (1: an active-active
    /// gateway's second).
    pub fn instance_process(
        &self,
        site: &str,
        gateway: &str,
        instance: u8,
    ) -> Option<GatewayProcessStatus> {
        let name = crate::topology::instance_name(gateway, instance);
        let rec = gateways::record(&self.dir.path, site, &name)?;
        let alive = gateways::alive(&rec);
        let sup = gateways::supervision(&rec).filter(|_| alive);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Some(GatewayProcessStatus {
            running: alive
                && (!rec.supervised || sup.as_ref().is_some_and(|s| s.child_pid.is_some())),
            supervisor_pid: rec.supervised.then_some(rec.pid),
            pid: if rec.supervised {
                sup.as_ref().and_then(|s| s.child_pid)
            } else {
                alive.then_some(rec.pid)
            },
            restarts: sup.as_ref().map(|s| s.restarts).unwrap_or(0),
            last_exit: sup.as_ref().and_then(|s| s.last_exit.clone()),
            next_restart_in_ms: sup
                .as_ref()
                .and_then(|s| s.next_start_unix_ms)
                .map(|t| t.saturating_sub(now_ms)),
            log: rec.log,
        })
    }

    /// What was realized last (namespaces, interfaces and what each stands for).
    pub fn realized(&self) -> DesiredState {
        self.dir.realized().unwrap_or_default()
    }
}

/// A VNet gateway's process in `lab status`: the supervisor, the gateway process it runs,
/// and how often (and why) it had to be restarted.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayProcessStatus {
    /// Whether the gateway process runs now.
    pub running: bool,
    /// The supervisor's pid.
    pub supervisor_pid: Option<i32>,
    /// The gateway process's pid, while it runs.
    pub pid: Option<i32>,
    /// How many times it died and was started again by its supervisor.
    pub restarts: u32,
    /// Why and when it last died.
    pub last_exit: Option<crate::supervisor::ChildExit>,
    /// When it dies, how long until the supervisor starts it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_restart_in_ms: Option<u64>,
    /// Its log (supervisor and gateway).
    pub log: PathBuf,
}
