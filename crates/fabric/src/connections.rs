//! Connections as Azure reports them (`connectionStatus`, byte counters) and better (why one
//! is not connected), read live from the gateway processes; waiting for them, and the VM
//! pairs their tunnels should carry traffic between.

use crate::gateways;
use crate::lab::{site_err, Lab, LabError};
use crate::status::state_parts;
use serde_json::Value;
use site::Resource;
use std::path::PathBuf;
use std::time::Instant;

/// Why a connection's live state cannot be read from its gateway process; `lab status`
/// shows it as the reason, with `connectionStatus` Unknown.
#[derive(Debug, thiserror::Error)]
pub enum NotLive {
    /// `lab up --no-gateways`: the VPN device is the user's to run.
    #[error("the lab runs no gateway processes (lab up --no-gateways)")]
    NoGatewayProcesses,
    /// The connection is not provisioned: the error (Failed) or reason (Pending) its site
    /// recorded.
    #[error("{0}")]
    NotProvisioned(String),
    /// No process was started for its gateway.
    #[error("no gateway process runs for gateway {0}")]
    NoProcess(String),
    /// The recorded process of its gateway is gone.
    #[error("the gateway process of {gateway} (pid {pid}) is not running; `hybridnet lab up` restarts it (log: {})", .log.display())]
    NotRunning {
        /// The VPN gateway concerned.
        gateway: String,
        /// The process id.
        pid: i32,
        /// Its log file.
        log: PathBuf,
    },
    /// Its gateway's process died and waits out the supervisor's back-off.
    #[error("the gateway process of {gateway} is being restarted by its supervisor (restart {restarts}{}; log: {})", last_reason(.last_exit), .log.display())]
    Restarting {
        /// The VPN gateway concerned.
        gateway: String,
        /// How many restarts.
        restarts: u32,
        /// The last exit.
        last_exit: Option<String>,
        /// Its log file.
        log: PathBuf,
    },
    /// Its gateway's control socket did not answer.
    #[error("gateway {gateway}: {source}")]
    Query {
        /// The VPN gateway concerned.
        gateway: String,
        #[source]
        /// The underlying error.
        source: gateway::status::StatusError,
    },
    /// Its gateway runs without it (e.g. the deployment that added it is not applied yet).
    #[error("gateway {0} does not run this connection (yet); redeploy to apply")]
    NotServed(String),
}

/// `, last: REASON` when a previous run's end is known.
fn last_reason(last_exit: &Option<String>) -> String {
    last_exit
        .as_ref()
        .map(|r| format!(", last: {r}"))
        .unwrap_or_default()
}

/// One connection's status as Azure reports it, and better (`lab status`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    /// Site holding the connection.
    pub site: String,
    /// Connection name.
    pub name: String,
    /// Its VNet gateway's name.
    pub gateway: String,
    /// provisioningState.
    pub provisioning_state: String,
    /// `connectionStatus`: Unknown, Connecting, Connected or NotConnected.
    pub connection_status: String,
    /// `ingressBytesTransferred` (decrypted bytes received), when a gateway reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_bytes_transferred: Option<u64>,
    /// `egressBytesTransferred` (bytes sent into the tunnel), when a gateway reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_bytes_transferred: Option<u64>,
    /// Why it is not connected, in plain words (`None` when connected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The connection as `az network vpn-connection show` prints it (properties with
    /// `connectionStatus`, byte counters, `tunnelConnectionStatus`; extras under `hybridnet`:
    /// negotiated algorithms, last connected time, last error).
    pub resource: Value,
}

impl Lab {
    /// Every connection of every site with its live status from its gateway process.
    pub fn connections(&self) -> Result<Vec<ConnectionStatus>, LabError> {
        let mut out = Vec::new();
        for spec in &self.record.sites {
            let site = self.site(&spec.name)?;
            let resources = site.resources().map_err(site_err(&spec.name))?;
            for r in &resources {
                let Resource::Connection(c) = r else { continue };
                out.push(self.connection_status(&spec.name, c));
            }
        }
        Ok(out)
    }

    /// One connection with its live status from its gateway process.
    pub(crate) fn connection_status(&self, site: &str, c: &site::Connection) -> ConnectionStatus {
        let gw = c
            .virtual_network_gateway1
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let (ps, ps_err) = state_parts(&c.meta.provisioning_state);
        let tunnels = self.live_tunnels(site, c, &gw, ps_err.as_deref());
        let live = tunnels.as_ref().map(|ts| {
            ts.iter()
                .find(|t| crate::verify::connection_status(&t.report) == "Connected")
                .unwrap_or(&ts[0])
        });
        let mut view = match &tunnels {
            Ok(ts) => devconfig::connection_view_tunnels(c, ts),
            Err(_) => devconfig::connection_view(c, None),
        };
        let (status, reason, ingress, egress) = match &live {
            Ok(l) => {
                let st = crate::verify::connection_status(&l.report);
                if let Some(props) = view.get_mut("properties").and_then(|p| p.as_object_mut()) {
                    props.insert("connectionStatus".into(), serde_json::json!(st));
                    if let (Some(Value::Array(each)), Ok(ts)) =
                        (props.get_mut("tunnelConnectionStatus"), &tunnels)
                    {
                        for (t, live) in each.iter_mut().zip(ts.iter()) {
                            t["connectionStatus"] =
                                serde_json::json!(crate::verify::connection_status(&live.report));
                        }
                    }
                }
                let mut why = crate::verify::explain(&l.report);
                // The initiator only hears NO_PROPOSAL_CHOSEN; the lab knows the peer's list.
                if let Some(w) = why
                    .as_mut()
                    .filter(|w| w.contains("peer's proposals not known"))
                {
                    if let Some(peer) = self.peer_policy(&l.report.remote_address) {
                        w.push_str(&format!("; the peer ({peer}) per its configuration"));
                    }
                }
                let ts = tunnels.as_ref().expect("live came from them");
                (
                    st.to_string(),
                    why,
                    Some(ts.iter().map(|t| t.report.inbound.bytes).sum()),
                    Some(ts.iter().map(|t| t.report.outbound.bytes).sum()),
                )
            }
            Err(why) => ("Unknown".to_string(), Some(why.to_string()), None, None),
        };
        if let (Some(r), Some(extra)) = (
            &reason,
            view.get_mut("hybridnet").and_then(|x| x.as_object_mut()),
        ) {
            extra.insert("reason".into(), serde_json::json!(r));
        }
        ConnectionStatus {
            site: site.to_string(),
            name: c.meta.name.clone(),
            gateway: gw,
            provisioning_state: ps,
            connection_status: status,
            ingress_bytes_transferred: ingress,
            egress_bytes_transferred: egress,
            reason,
            resource: view,
        }
    }

    /// Connection `c`'s tunnels as the processes of its gateway `gw` report them (one per
    /// instance of an active-active gateway, and per instance of an active-active peer), or
    /// why there is none (`not_provisioned`: the connection's provisioning error or pending
    /// reason, if any). A gateway instance that cannot answer fails the whole only when no
    /// other instance reports a tunnel.
    fn live_tunnels(
        &self,
        site: &str,
        c: &site::Connection,
        gw: &str,
        not_provisioned: Option<&str>,
    ) -> Result<Vec<devconfig::LiveConnection>, NotLive> {
        let provisioned_or = |otherwise: NotLive| match not_provisioned {
            Some(e) => NotLive::NotProvisioned(e.to_string()),
            None => otherwise,
        };
        let recs: Vec<gateways::GatewayRecord> = gateways::records(&self.dir.path)
            .into_iter()
            .filter(|r| r.site == site && r.gateway == gw)
            .collect();
        if recs.is_empty() {
            if self.record.external_gateways {
                return Err(NotLive::NoGatewayProcesses);
            }
            return Err(provisioned_or(NotLive::NoProcess(gw.to_string())));
        }
        let mut tunnels = Vec::new();
        let mut first_err = None;
        for rec in recs {
            match self.instance_tunnels(&rec, c, &provisioned_or) {
                Ok(ts) => tunnels.extend(ts),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if tunnels.is_empty() {
            return Err(first_err.unwrap_or_else(|| NotLive::NotServed(gw.to_string())));
        }
        Ok(tunnels)
    }

    /// The tunnels of connection `c` one gateway instance reports: the connection itself
    /// and, toward an active-active peer, `<connection>#2`.
    fn instance_tunnels(
        &self,
        rec: &gateways::GatewayRecord,
        c: &site::Connection,
        provisioned_or: &dyn Fn(NotLive) -> NotLive,
    ) -> Result<Vec<devconfig::LiveConnection>, NotLive> {
        let gw = rec.instance_name();
        if !gateways::alive(rec) {
            return Err(NotLive::NotRunning {
                gateway: gw,
                pid: rec.pid,
                log: rec.log.clone(),
            });
        }
        let st =
            gateway::status::query(&rec.control).map_err(|source| {
                match gateways::supervision(rec) {
                    Some(st) if st.child_pid.is_none() => NotLive::Restarting {
                        gateway: gw.clone(),
                        restarts: st.restarts,
                        last_exit: st.last_exit.map(|x| x.reason),
                        log: rec.log.clone(),
                    },
                    _ => NotLive::Query {
                        gateway: gw.clone(),
                        source,
                    },
                }
            })?;
        let (pid, local) = (st.pid, st.local_address.clone());
        let second = format!("{}#", c.meta.name);
        let tunnels: Vec<devconfig::LiveConnection> = st
            .connections
            .into_iter()
            .filter(|x| x.name == c.meta.name || x.name.starts_with(&second))
            .map(|report| devconfig::LiveConnection {
                source: format!(
                    "gateway control socket {} (pid {pid})",
                    rec.control.display()
                ),
                local_address: local.clone(),
                report,
            })
            .collect();
        if tunnels.is_empty() {
            return Err(provisioned_or(NotLive::NotServed(gw)));
        }
        Ok(tunnels)
    }

    /// The proposals of the lab's connection(s) on the gateway holding public IP `address`,
    /// as text for a mismatch report: `site/connection: IKE [..], ESP [..]`.
    fn peer_policy(&self, address: &str) -> Option<String> {
        let address: std::net::Ipv4Addr = address.parse().ok()?;
        let mut found = Vec::new();
        for spec in &self.record.sites {
            let Ok(site) = self.site(&spec.name) else {
                continue;
            };
            let Ok(resources) = site.resources() else {
                continue;
            };
            let gateway_ids: Vec<&str> = resources
                .iter()
                .filter_map(|r| match r {
                    Resource::VirtualNetworkGateway(g) => {
                        let pip = &g.ip_configurations.first()?.public_ip_address;
                        resources
                            .iter()
                            .any(|p| matches!(p, Resource::PublicIpAddress(p) if site::same_id(&p.meta.id, pip) && p.ip_address == address))
                            .then_some(g.meta.id.as_str())
                    }
                    _ => None,
                })
                .collect();
            for r in &resources {
                let Resource::Connection(c) = r else { continue };
                if gateway_ids
                    .iter()
                    .any(|g| site::same_id(g, &c.virtual_network_gateway1))
                {
                    let p = c.effective_policy(site.kind());
                    found.push(format!(
                        "{}/{}: IKE [{}], ESP [{}]",
                        spec.name,
                        c.meta.name,
                        p.ike_proposals.join(", "),
                        p.esp_responder_proposals.join(", ")
                    ));
                }
            }
        }
        (!found.is_empty()).then(|| found.join("; "))
    }

    /// Waits until every connection served by a gateway process is Connected. Returns early
    /// (with the statuses) once the ones that are not have failed for a reason waiting will
    /// not fix (PSK or policy or selector mismatch), or at `timeout`.
    pub fn wait_connected(
        &self,
        timeout: std::time::Duration,
    ) -> Result<(bool, Vec<ConnectionStatus>), LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.connections()?;
            let served: Vec<&ConnectionStatus> = all
                .iter()
                .filter(|c| c.provisioning_state == "Succeeded")
                .collect();
            let up = served.iter().all(|c| c.connection_status == "Connected");
            let hopeless = served
                .iter()
                .filter(|c| c.connection_status != "Connected")
                .all(|c| {
                    c.resource["hybridnet"]["lastError"]
                        .as_str()
                        .is_some_and(|e| {
                            [
                                "AUTHENTICATION_FAILED",
                                "NO_PROPOSAL_CHOSEN",
                                "TS_UNACCEPTABLE",
                            ]
                            .iter()
                            .any(|k| e.starts_with(k))
                        })
                });
            if up || (hopeless && !served.is_empty()) || Instant::now() >= deadline {
                return Ok((up, all));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// VM pairs the lab's connected tunnels should carry traffic between: for each Connected
    /// connection, the first VM of its gateway's VNet and the first VM (of any other site)
    /// whose address lies in the connection's remote prefixes; each pair once.
    pub fn tunnel_vm_pairs(&self, connected: &[ConnectionStatus]) -> Result<Vec<VmPair>, LabError> {
        let topo = self.topology()?;
        let mut pairs: Vec<VmPair> = Vec::new();
        for c in connected
            .iter()
            .filter(|c| c.connection_status == "Connected")
        {
            let Some(net) = topo.sites.iter().find(|s| s.name == c.site) else {
                continue;
            };
            let Some(gw) = net.gateways.iter().find(|g| g.name == c.gateway) else {
                continue;
            };
            let Some((local_vm, local_addr)) = net.vms.iter().find_map(|v| {
                v.nics
                    .iter()
                    .find(|n| n.vnet == gw.vnet)
                    .map(|n| (v.name.clone(), n.address))
            }) else {
                continue;
            };
            let remote = topo
                .sites
                .iter()
                .filter(|s| s.name != c.site)
                .find_map(|s| {
                    s.vms.iter().find_map(|v| {
                        v.nics
                            .iter()
                            .find(|n| gw.remote_prefixes.iter().any(|p| p.contains(&n.address)))
                            .map(|n| (s.name.clone(), v.name.clone(), n.address))
                    })
                });
            let Some((rsite, rvm, raddr)) = remote else {
                continue;
            };
            let pair = VmPair {
                a: (
                    format!("{}/{}", c.site, local_vm),
                    self.record.id.vm_netns(&c.site, &local_vm),
                    local_addr,
                ),
                b: (
                    format!("{rsite}/{rvm}"),
                    self.record.id.vm_netns(&rsite, &rvm),
                    raddr,
                ),
            };
            if !pairs.iter().any(|p| {
                (p.a.0 == pair.a.0 && p.b.0 == pair.b.0) || (p.a.0 == pair.b.0 && p.b.0 == pair.a.0)
            }) {
                pairs.push(pair);
            }
        }
        Ok(pairs)
    }
}

/// Two VMs on either side of a tunnel: (`SITE/VM`, namespace, address) each.
#[derive(Debug, Clone)]
pub struct VmPair {
    /// One side.
    pub a: (String, String, std::net::Ipv4Addr),
    /// The other side.
    pub b: (String, String, std::net::Ipv4Addr),
}
