//! Virtual network gateways as `hybridnet gateway run` processes.
//!
//! Each route-based VPN gateway of a site becomes one gateway process in its namespace
//! (`LabId::gateway_netns`), serving every connection whose `virtualNetworkGateway1` is that
//! gateway. Its TOML configuration is generated from the site's resources — the local network
//! gateway (IPsec) or the peer VNet gateway, possibly in another site (Vnet2Vnet), the shared
//! key, the effective IPsec/IKE policy and the DPD timeout — and written with mode 0600 to the
//! lab's state directory, since it holds the shared keys.
//!
//! The process runs under a supervisor (`hybridnet gateway supervise`, [`crate::supervisor`])
//! that restarts it with back-off when it dies and records the restarts; the supervisor is
//! detached (its own session, output to a log file) so it outlives the CLI. Its pid, the
//! control socket, the supervisor's state file and a fingerprint of the configuration are
//! recorded next to the configuration. When only connections changed, the running gateway
//! re-reads its file (`gateway reload` over its control socket): changed or deleted
//! connections are re-keyed or torn down, the others keep their SAs. Any other change
//! (address, TUN, MTU), or a gateway that does not answer, restarts that gateway (and only
//! it); the peers' gateways are left alone.

use crate::topology::{behind_nat_addresses, Topology};
use site::{ConnectionType, Resource, Site, VirtualNetworkGateway};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Interface name of the gateway's TUN device (inside its own namespace, so no collisions).
pub const TUN_NAME: &str = "vpn0";
/// How long a started gateway gets to open its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopped gateway gets to send its DELETEs and exit before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// File name suffix of a supervisor's state file, `<site>--<gateway>.supervisor.json`.
const SUPERVISOR_SUFFIX: &str = ".supervisor.json";

/// What the lab runs for one virtual network gateway.
#[derive(Clone, Debug)]
pub struct GatewayRun {
    /// Site name.
    pub site: String,
    /// Gateway resource name.
    pub gateway: String,
    /// Gateway resource id.
    pub gateway_id: String,
    /// Its namespace.
    pub netns: String,
    /// The generated configuration; `None` when no connection can run (no process then).
    pub config: Option<String>,
    /// Ids of the connections served (in the configuration).
    pub connections: Vec<String>,
}

/// The record of a running gateway process, `<lab>/gateways/<site>--<gateway>.json`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRecord {
    /// Site name.
    pub site: String,
    /// Gateway resource name.
    pub gateway: String,
    /// Its namespace.
    pub netns: String,
    /// Process id of the supervisor (of the gateway process itself when not `supervised`).
    pub pid: i32,
    /// Whether `pid` is a supervisor (`gateway supervise`); false in records written before
    /// gateways were supervised, whose bare `gateway run` the next `lab up` replaces.
    #[serde(default)]
    pub supervised: bool,
    /// The supervisor's state file: the running child, restarts, last exit.
    #[serde(default)]
    pub supervisor_state: Option<PathBuf>,
    /// Control (status) socket.
    pub control: PathBuf,
    /// Configuration file.
    pub config: PathBuf,
    /// Log file (stderr of the process).
    pub log: PathBuf,
    /// Fingerprint of the configuration the process was started with.
    pub config_fingerprint: String,
    /// Connection names it serves.
    pub connections: Vec<String>,
}

/// What happened to one gateway process during a realization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewayAction {
    /// Started (it was not running).
    Started,
    /// Restarted with a changed configuration.
    Restarted,
    /// Told to reload its changed connections; its process and other tunnels kept running.
    Reloaded,
    /// Left running (configuration unchanged).
    Unchanged,
    /// Stopped (gateway deleted or no connection left).
    Stopped,
}

/// Why a gateway process could not be run.
#[derive(Debug, thiserror::Error)]
pub enum GatewayRunError {
    /// The state directory could not be written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The `hybridnet` binary could not be started in the namespace.
    #[error("cannot start `{program} gateway run` in {netns}: {source}")]
    Spawn {
        program: String,
        netns: String,
        #[source]
        source: std::io::Error,
    },
    /// The process exited or never answered on its control socket.
    #[error("gateway process in {netns} did not come up: {detail}")]
    NotUp { netns: String, detail: String },
}

/// Where a lab keeps its gateways' configurations, logs, sockets and records.
pub fn gateways_dir(lab_dir: &Path) -> PathBuf {
    lab_dir.join("gateways")
}

fn file_stem(site: &str, gateway: &str) -> String {
    format!("{site}--{gateway}")
}

/// The program started as `PROGRAM gateway run`: `$HYBRIDNET_BIN`, else the running
/// executable (the `hybridnet` CLI itself).
pub fn gateway_program() -> PathBuf {
    std::env::var_os("HYBRIDNET_BIN")
        .map(PathBuf::from)
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_else(|| PathBuf::from("hybridnet"))
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

/// A gateway's VNet address space and public IP, from its site's resources.
fn gateway_endpoints(
    resources: &[Resource],
    gw: &VirtualNetworkGateway,
) -> Result<(Vec<ipnet::Ipv4Net>, std::net::Ipv4Addr), String> {
    let ipc = gw
        .ip_configurations
        .first()
        .ok_or_else(|| format!("gateway {} has no ipConfigurations", gw.meta.name))?;
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
        .ok_or_else(|| {
            format!(
                "the GatewaySubnet of gateway {} does not exist",
                gw.meta.name
            )
        })?;
    let public = resources
        .iter()
        .find_map(|r| match r {
            Resource::PublicIpAddress(p) if site::same_id(&p.meta.id, &ipc.public_ip_address) => {
                Some(p.ip_address)
            }
            _ => None,
        })
        .ok_or_else(|| {
            format!(
                "public IP {} of gateway {} does not exist",
                ipc.public_ip_address, gw.meta.name
            )
        })?;
    Ok((space, public))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One `[[connection]]` table for connection `c` of gateway `gw`, or why it cannot run.
fn connection_table(
    site: &Site,
    resources: &[Resource],
    sites: &[(Site, Vec<Resource>)],
    c: &site::Connection,
    local_prefixes: &[ipnet::Ipv4Net],
) -> Result<toml::Table, String> {
    let (remote, remote_prefixes) = match c.connection_type {
        ConnectionType::IPsec => {
            let lng_id = c
                .local_network_gateway2
                .as_ref()
                .ok_or("an IPsec connection needs localNetworkGateway2")?;
            let lng = resources
                .iter()
                .find_map(|r| match r {
                    Resource::LocalNetworkGateway(l) if site::same_id(&l.meta.id, lng_id) => {
                        Some(l)
                    }
                    _ => None,
                })
                .ok_or_else(|| format!("local network gateway {lng_id} does not exist"))?;
            let ip = lng.gateway_ip_address.ok_or_else(|| {
                format!(
                    "local network gateway {} has no gatewayIpAddress (an fqdn is not resolved in the lab)",
                    lng.meta.name
                )
            })?;
            if lng.address_prefixes.is_empty() {
                return Err(format!(
                    "local network gateway {} has no address prefixes",
                    lng.meta.name
                ));
            }
            (ip, lng.address_prefixes.clone())
        }
        ConnectionType::Vnet2Vnet => {
            let peer_id = c
                .virtual_network_gateway2
                .as_ref()
                .ok_or("a Vnet2Vnet connection needs virtualNetworkGateway2")?;
            let (_, peer_resources, peer) = find_gateway(sites, peer_id).ok_or_else(|| {
                format!("virtual network gateway {peer_id} exists in no site of the lab")
            })?;
            let (space, public) = gateway_endpoints(peer_resources, peer)?;
            (public, space)
        }
        other => {
            return Err(format!(
                "connectionType {other:?} is not realized in the lab"
            ))
        }
    };
    if c.connection_protocol == site::ConnectionProtocol::IKEv1 {
        return Err("connectionProtocol IKEv1: the lab's gateway speaks IKEv2 only".into());
    }
    if c.use_policy_based_traffic_selectors {
        return Err("usePolicyBasedTrafficSelectors: the lab's gateway negotiates one selector pair per connection (route-based), not one per prefix pair".into());
    }
    let key = c
        .shared_key
        .as_ref()
        .ok_or("the connection has no sharedKey")?;
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
    t.insert("remote_prefixes".into(), prefixes(&remote_prefixes));
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
    Ok(t)
}

fn top_table(local_address: std::net::Ipv4Addr, control: &Path) -> toml::Table {
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

fn render(mut top: toml::Table, local_id: std::net::Ipv4Addr, conns: Vec<toml::Table>) -> String {
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

/// Plans every gateway process of the lab: the configuration of each VNet gateway (from the
/// topology, which placed it) and the connections that cannot run, with why (to be Failed).
pub fn plan(
    lab_dir: &Path,
    topology: &Topology,
    sites: &[(Site, Vec<Resource>)],
) -> (Vec<GatewayRun>, Vec<(String, String)>) {
    let id = &topology.lab_id;
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
            if gw.vpn_type != site::VpnType::RouteBased
                || !gw.gateway_type.eq_ignore_ascii_case("Vpn")
            {
                failures.push((
                    gw.meta.id.to_lowercase(),
                    format!(
                        "gatewayType {} / vpnType {:?}: the lab runs route-based VPN gateways only",
                        gw.gateway_type, gw.vpn_type
                    ),
                ));
                continue;
            }
            let local_prefixes = match gateway_endpoints(resources, gw) {
                Ok((space, _)) => space,
                Err(e) => {
                    failures.push((gw.meta.id.to_lowercase(), e));
                    continue;
                }
            };
            let control =
                gateways_dir(lab_dir).join(format!("{}.sock", file_stem(&net.name, &g.name)));
            let local_address = if net.nat {
                behind_nat_addresses(index).1
            } else {
                g.public_address
            };
            let top = top_table(local_address, &control);
            let mut tables = Vec::new();
            let mut served = Vec::new();
            for r in resources {
                let Resource::Connection(c) = r else { continue };
                if !site::same_id(&c.virtual_network_gateway1, &gw.meta.id) {
                    continue;
                }
                let checked = connection_table(site, resources, sites, c, &local_prefixes)
                    .and_then(|t| {
                        // The gateway's own parser is the judge of what it can run (algorithms,
                        // lifetimes); its error names the key.
                        let alone = render(top.clone(), g.public_address, vec![t.clone()]);
                        gateway::GatewayConfig::parse(&alone, lab_dir)
                            .map(|_| t)
                            .map_err(|e| {
                                format!("the lab's gateway cannot run this connection: {e}")
                            })
                    });
                match checked {
                    Ok(t) => {
                        tables.push(t);
                        served.push(c.meta.id.clone());
                    }
                    Err(e) => failures.push((c.meta.id.to_lowercase(), e)),
                }
            }
            runs.push(GatewayRun {
                site: net.name.clone(),
                gateway: g.name.clone(),
                gateway_id: gw.meta.id.clone(),
                netns: id.gateway_netns(&net.name, &g.name),
                config: (!tables.is_empty()).then(|| render(top, g.public_address, tables)),
                connections: served,
            });
        }
    }
    (runs, failures)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GatewayRunError + '_ {
    move |source| GatewayRunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `data` with mode 0600 (it holds shared keys), atomically and durably.
fn write_private(path: &Path, data: &[u8]) -> Result<(), GatewayRunError> {
    crate::state::write_durable(path, data, 0o600).map_err(io_err(path))
}

fn fingerprint(text: &str) -> String {
    format!("{:016x}", crate::names::fnv1a(text))
}

/// What a lab process serving a gateway configuration is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// `hybridnet gateway supervise CONFIG …`
    Supervisor,
    /// `hybridnet gateway run CONFIG …`
    Gateway,
}

/// Whether `pid` is a live (not zombie) supervisor or gateway process of config `config`,
/// and which (known by its command line, which names this lab's configuration file).
fn role_of(pid: i32, config: &Path) -> Option<Role> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // state is the field after the parenthesized command name
    if stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        .unwrap_or(true)
    {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let want = config.as_os_str().as_encoded_bytes();
    args.windows(3).find_map(|w| match (w[0], w[1]) {
        (b"gateway", b"supervise") if w[2] == want => Some(Role::Supervisor),
        (b"gateway", b"run") if w[2] == want => Some(Role::Gateway),
        _ => None,
    })
}

/// Sends `sig` to `pid` if it is still `role` for `config`, waits up to `grace` for it to go,
/// and SIGKILLs it if it did not.
fn end_process(pid: i32, config: &Path, role: Role, sig: libc::c_int, grace: Duration) {
    if role_of(pid, config) != Some(role) {
        return;
    }
    // SAFETY: kill(2) on a process of this lab's gateway (checked above by its command line,
    // which names this lab's configuration file).
    unsafe { libc::kill(pid, sig) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && role_of(pid, config) == Some(role) {
        std::thread::sleep(Duration::from_millis(10));
    }
    if role_of(pid, config) == Some(role) {
        // SAFETY: as above; it ignored the signal.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline && role_of(pid, config) == Some(role) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Reads the records of the lab's gateway processes.
pub fn records(lab_dir: &Path) -> Vec<GatewayRecord> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(gateways_dir(lab_dir)) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|x| x.to_str()).unwrap_or_default();
        if !name.ends_with(".json") || name.ends_with(SUPERVISOR_SUFFIX) || name.starts_with('.') {
            continue;
        }
        if let Some(r) = std::fs::read_to_string(&p)
            .ok()
            .and_then(|t| serde_json::from_str::<GatewayRecord>(&t).ok())
        {
            out.push(r);
        }
    }
    out.sort_by(|a, b| (&a.site, &a.gateway).cmp(&(&b.site, &b.gateway)));
    out
}

/// The record of one gateway's process, if it ran.
pub fn record(lab_dir: &Path, site: &str, gateway: &str) -> Option<GatewayRecord> {
    let p = gateways_dir(lab_dir).join(format!("{}.json", file_stem(site, gateway)));
    std::fs::read_to_string(p)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// Whether the recorded process (the supervisor, for a supervised gateway) still runs.
pub fn alive(rec: &GatewayRecord) -> bool {
    let want = if rec.supervised {
        Role::Supervisor
    } else {
        Role::Gateway
    };
    role_of(rec.pid, &rec.config) == Some(want)
}

/// Whether the gateway runs supervised and answers on its control socket: what `lab up`
/// leaves alone. A gateway between two restarts, or one that keeps dying, is started afresh.
fn healthy(rec: &GatewayRecord) -> bool {
    rec.supervised && alive(rec) && gateway::status::query(&rec.control).is_ok()
}

/// What the supervisor of a recorded gateway says: its child, restarts and last exit.
pub fn supervision(rec: &GatewayRecord) -> Option<crate::supervisor::SupervisorState> {
    rec.supervisor_state
        .as_deref()
        .and_then(crate::supervisor::read_state)
}

/// Stops a recorded gateway (SIGTERM to the supervisor, which forwards it, so the gateway
/// sends DELETE to its peers; SIGKILL after a grace period) and removes its record, socket
/// and supervisor state.
pub fn stop(lab_dir: &Path, rec: &GatewayRecord) {
    let child = supervision(rec).and_then(|st| st.child_pid);
    if rec.supervised {
        end_process(
            rec.pid,
            &rec.config,
            Role::Supervisor,
            libc::SIGTERM,
            STOP_GRACE,
        );
    } else {
        end_process(
            rec.pid,
            &rec.config,
            Role::Gateway,
            libc::SIGTERM,
            STOP_GRACE,
        );
    }
    // The child dies with its supervisor (PR_SET_PDEATHSIG); make sure of it.
    if let Some(pid) = child {
        end_process(pid, &rec.config, Role::Gateway, libc::SIGKILL, STOP_GRACE);
    }
    let stem = file_stem(&rec.site, &rec.gateway);
    let _ = std::fs::remove_file(gateways_dir(lab_dir).join(format!("{stem}.json")));
    let _ = std::fs::remove_file(&rec.control);
    if let Some(p) = &rec.supervisor_state {
        let _ = std::fs::remove_file(p);
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Starts the supervisor of `gateway run` detached in `run.netns` and waits until the gateway
/// answers on its control socket.
fn start(
    lab_dir: &Path,
    run: &GatewayRun,
    config_text: &str,
) -> Result<GatewayRecord, GatewayRunError> {
    let dir = gateways_dir(lab_dir);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let stem = file_stem(&run.site, &run.gateway);
    let config = dir.join(format!("{stem}.toml"));
    let control = dir.join(format!("{stem}.sock"));
    let log = dir.join(format!("{stem}.log"));
    let state = dir.join(format!("{stem}{SUPERVISOR_SUFFIX}"));
    // Processes of this configuration without a record (the CLI died between starting them
    // and writing the record) would hold the ports: supervisors first, so that none restarts
    // a gateway stopped here, then any gateway left.
    let pids = crate::netns::pids_in_netns(&run.netns);
    for role in [Role::Supervisor, Role::Gateway] {
        for &pid in &pids {
            end_process(pid, &config, role, libc::SIGTERM, STOP_GRACE);
        }
    }
    let _ = std::fs::remove_file(&state);
    write_private(&config, config_text.as_bytes())?;
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log)
        .map_err(io_err(&log))?;
    let logf2 = logf.try_clone().map_err(io_err(&log))?;
    let ns_path = Path::new(crate::netns::NETNS_RUN_DIR).join(&run.netns);
    let ns = std::fs::File::open(&ns_path).map_err(io_err(&ns_path))?;
    let program = gateway_program();
    let mut cmd = std::process::Command::new(&program);
    cmd.arg("gateway")
        .arg("supervise")
        .arg(&config)
        .arg("--control")
        .arg(&control)
        .arg("--state")
        .arg(&state)
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(logf)
        .stderr(logf2);
    crate::netns::enter_detached(&mut cmd, &ns);
    let child = cmd.spawn().map_err(|source| GatewayRunError::Spawn {
        program: program.display().to_string(),
        netns: run.netns.clone(),
        source,
    })?;
    let pid = child.id() as i32;
    drop(child);
    let rec = GatewayRecord {
        site: run.site.clone(),
        gateway: run.gateway.clone(),
        netns: run.netns.clone(),
        pid,
        supervised: true,
        supervisor_state: Some(state),
        control,
        config,
        log,
        config_fingerprint: fingerprint(config_text),
        connections: run
            .connections
            .iter()
            .map(|c| c.rsplit('/').next().unwrap_or(c).to_string())
            .collect(),
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if gateway::status::query(&rec.control).is_ok() {
            break;
        }
        // The gateway died before it answered (its supervisor would retry it forever): a
        // configuration that cannot run is an error now, with the reason from the log.
        let exited = supervision(&rec).and_then(|st| st.last_exit);
        if !alive(&rec) || exited.is_some() {
            stop(lab_dir, &rec);
            // SAFETY: waitpid(2) on our own child's pid, non-blocking, to reap it.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
            let how = exited
                .map(|e| format!("it {}", e.reason))
                .unwrap_or_else(|| "it exited".to_string());
            return Err(GatewayRunError::NotUp {
                netns: run.netns.clone(),
                detail: format!(
                    "{how}; its log ({}) ends with:\n{}",
                    rec.log.display(),
                    tail(&rec.log, 8)
                ),
            });
        }
        if Instant::now() > deadline {
            stop(lab_dir, &rec);
            // SAFETY: waitpid(2) on our own child's pid, non-blocking, to reap it.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
            return Err(GatewayRunError::NotUp {
                netns: run.netns.clone(),
                detail: format!(
                    "no answer on {} within {START_TIMEOUT:?}",
                    rec.control.display()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let data = serde_json::to_vec_pretty(&rec).expect("record serializes");
    write_private(&dir.join(format!("{stem}.json")), &data)?;
    Ok(rec)
}

/// Applies a new configuration to a running gateway in place when only its connections
/// changed: writes the file, asks the process to reload, updates the record. Returns false
/// (nothing done, the caller restarts) for any other change or if the reload failed.
fn reload(lab_dir: &Path, rec: &GatewayRecord, run: &GatewayRun, text: &str) -> bool {
    let base = rec.config.parent().unwrap_or(Path::new("/"));
    let Ok(old) = std::fs::read_to_string(&rec.config) else {
        return false;
    };
    let (Ok(old), Ok(new)) = (
        gateway::GatewayConfig::parse(&old, base),
        gateway::GatewayConfig::parse(text, base),
    ) else {
        return false;
    };
    let same_process = old.local_address == new.local_address
        && old.control_socket == new.control_socket
        && old.path_mtu == new.path_mtu
        && old.tun == new.tun;
    if !same_process || write_private(&rec.config, text.as_bytes()).is_err() {
        return false;
    }
    // a refused or failed reload falls back to a restart, which the caller reports
    if gateway::status::reload(&rec.control).is_err() {
        return false;
    }
    let updated = GatewayRecord {
        config_fingerprint: fingerprint(text),
        connections: run
            .connections
            .iter()
            .map(|c| c.rsplit('/').next().unwrap_or(c).to_string())
            .collect(),
        ..rec.clone()
    };
    let stem = file_stem(&rec.site, &rec.gateway);
    let data = serde_json::to_vec_pretty(&updated).expect("record serializes");
    write_private(&gateways_dir(lab_dir).join(format!("{stem}.json")), &data).is_ok()
}

/// Makes the running gateway processes match `runs`: starts what is missing, restarts what
/// changed, stops what is no longer wanted. Returns per gateway (site, name) what it did, or
/// the error for gateways that could not be run.
pub fn converge(
    lab_dir: &Path,
    runs: &[GatewayRun],
) -> Vec<(GatewayRun, Result<GatewayAction, GatewayRunError>)> {
    let mut out = Vec::new();
    let existing = records(lab_dir);
    for rec in &existing {
        let wanted = runs
            .iter()
            .any(|r| r.site == rec.site && r.gateway == rec.gateway && r.config.is_some());
        if !wanted {
            stop(lab_dir, rec);
            if let Some(r) = runs
                .iter()
                .find(|r| r.site == rec.site && r.gateway == rec.gateway)
            {
                out.push((r.clone(), Ok(GatewayAction::Stopped)));
            }
        }
    }
    for run in runs {
        let Some(text) = &run.config else { continue };
        let prev = existing
            .iter()
            .find(|r| r.site == run.site && r.gateway == run.gateway);
        let answers = prev.is_some_and(healthy);
        let result = match prev {
            Some(rec) if answers && rec.config_fingerprint == fingerprint(text) => {
                Ok(GatewayAction::Unchanged)
            }
            Some(rec) if answers && reload(lab_dir, rec, run, text) => Ok(GatewayAction::Reloaded),
            Some(rec) => {
                let was_alive = alive(rec);
                stop(lab_dir, rec);
                start(lab_dir, run, text).map(|_| {
                    if was_alive {
                        GatewayAction::Restarted
                    } else {
                        GatewayAction::Started
                    }
                })
            }
            None => start(lab_dir, run, text).map(|_| GatewayAction::Started),
        };
        out.push((run.clone(), result));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::LabId;
    use crate::topology::{GatewayNet, SiteNet};
    use serde_json::{json, Map, Value};

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
}
