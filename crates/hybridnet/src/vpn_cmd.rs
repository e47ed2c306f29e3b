//! `hybridnet vpn-connection …`: the connection as `az network vpn-connection show` prints it,
//! and "Download VPN device configuration" for the on-premises peer of a connection.

use clap::{Args, Subcommand};
use devconfig::{
    connection_view, find_connection, vendor, vendors, write_private, LiveConnection, PeerDevice,
};
use fabric::lab::Lab;
use fabric::state::{self, LabSelector};
use fabric::LabId;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

/// `hybridnet vpn-connection …`
#[derive(Subcommand)]
pub enum VpnConnectionCommand {
    /// Print a connection resource as JSON, as Azure shows it, with its live status.
    Show(ShowArgs),
    /// List the connections of a site with their status.
    List(ListArgs),
    /// Write the configuration of the on-premises VPN device that is the peer of a connection.
    DeviceConfig(DeviceConfigArgs),
}

/// Which lab: `--lab DIR`, `--id ID`, or neither (the lab of the current directory or the only
/// running lab), as `hybridnet lab` and `hybridnet deploy` choose it.
#[derive(Args, Clone, Debug)]
pub struct LabArgs {
    /// Lab directory (holding lab.yaml).
    #[arg(long)]
    pub lab: Option<PathBuf>,
    /// Lab id (as shown by `lab up` and `lab status`).
    #[arg(long, conflicts_with = "lab")]
    pub id: Option<String>,
}

impl LabArgs {
    fn open(&self) -> anyhow::Result<Lab> {
        let sel = match (&self.id, &self.lab) {
            (Some(id), _) => LabSelector::Id(LabId::parse(id)?),
            (None, Some(dir)) => LabSelector::Dir(dir.clone()),
            (None, None) => LabSelector::Implicit,
        };
        Lab::open(&state::state_root(), &sel).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// `vpn-connection show`
#[derive(Args)]
pub struct ShowArgs {
    /// Site holding the connection.
    #[arg(long)]
    pub site: String,
    /// Connection name.
    #[arg(long)]
    pub name: String,
    /// Control socket of the gateway running this connection, for live status (`hybridnet
    /// gateway status --control`); without it, the `hybridnet gateway run` process in the lab's
    /// namespace for the connection's VNet gateway is asked, and the status is `Unknown` when
    /// there is none.
    #[arg(long)]
    pub control: Option<PathBuf>,
    #[command(flatten)]
    pub lab: LabArgs,
}

/// `vpn-connection list`
#[derive(Args)]
pub struct ListArgs {
    /// Site whose connections to list.
    #[arg(long)]
    pub site: String,
    #[command(flatten)]
    pub lab: LabArgs,
}

/// `vpn-connection device-config`
#[derive(Args)]
pub struct DeviceConfigArgs {
    /// List the vendors a configuration can be written for, and exit.
    #[arg(long)]
    pub list_vendors: bool,
    /// Site holding the connection.
    #[arg(long, required_unless_present = "list_vendors")]
    pub site: Option<String>,
    /// Connection name.
    #[arg(long, required_unless_present = "list_vendors")]
    pub name: Option<String>,
    /// Device vendor (see --list-vendors).
    #[arg(long, required_unless_present = "list_vendors")]
    pub vendor: Option<String>,
    /// Write to this file (mode 0600: it holds the shared key) instead of standard output
    /// (`-` is standard output).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// The device's own address when it sits behind NAT (its IKE identity stays the local
    /// network gateway's gatewayIpAddress).
    #[arg(long)]
    pub device_address: Option<Ipv4Addr>,
    #[command(flatten)]
    pub lab: LabArgs,
}

/// Runs a `vpn-connection` subcommand.
pub fn run(cmd: VpnConnectionCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        VpnConnectionCommand::Show(a) => show(a),
        VpnConnectionCommand::List(a) => list(a),
        VpnConnectionCommand::DeviceConfig(a) => device_config(a),
    }
}

fn flat<T, E: std::fmt::Display>(r: Result<T, E>) -> anyhow::Result<T> {
    r.map_err(|e| anyhow::anyhow!("{e}"))
}

/// The gateway's report for connection `name`, read from its control socket.
fn live_status(control: &std::path::Path, name: &str) -> anyhow::Result<LiveConnection> {
    let status = flat(gateway::status::query(control))?;
    let known: Vec<String> = status.connections.iter().map(|c| c.name.clone()).collect();
    let report = status
        .connections
        .into_iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the gateway at {} runs no connection {name:?} (it runs: {})",
                control.display(),
                known.join(", ")
            )
        })?;
    Ok(LiveConnection {
        source: format!(
            "gateway control socket {} (pid {})",
            control.display(),
            status.pid
        ),
        report,
    })
}

/// Control sockets of the `hybridnet gateway run` processes living in network namespace `ns`,
/// read from their command lines (`--control PATH`, else the config's `control_socket`, else
/// the default derived from the config path), whoever started them.
fn gateway_controls_in_netns(ns: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for pid in fabric::netns::pids_in_netns(ns) {
        let Ok(p) = procfs::process::Process::new(pid) else {
            continue;
        };
        let Ok(args) = p.cmdline() else {
            continue;
        };
        let Some(run) = args
            .windows(2)
            .position(|w| w[0] == "gateway" && w[1] == "run")
        else {
            continue;
        };
        let cwd = p.cwd().unwrap_or_default();
        let mut control = None;
        let mut config = None;
        let mut rest = args[run + 2..].iter();
        while let Some(a) = rest.next() {
            if a == "--control" {
                control = rest.next().map(PathBuf::from);
            } else if let Some(v) = a.strip_prefix("--control=") {
                control = Some(PathBuf::from(v));
            } else if !a.starts_with('-') && config.is_none() {
                config = Some(PathBuf::from(a));
            }
        }
        let control = control.or_else(|| {
            let config = cwd.join(config?);
            let from_file = gateway::GatewayConfig::load(&config)
                .ok()
                .and_then(|c| c.control_socket);
            Some(from_file.unwrap_or_else(|| gateway::default_control_path(&config)))
        });
        if let Some(c) = control {
            out.push(cwd.join(c));
        }
    }
    out
}

/// The live status of connection `conn` from whichever gateway process in the lab's namespace
/// for its VNet gateway runs it; `Err` says in words why there is none.
fn discover_live(lab: &Lab, site: &str, conn: &site::Connection) -> Result<LiveConnection, String> {
    let gw_name = conn
        .virtual_network_gateway1
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let ns = lab.id().gateway_netns(site, gw_name);
    let controls = gateway_controls_in_netns(&ns);
    if controls.is_empty() {
        return Err(format!(
            "no hybridnet gateway process runs in namespace {ns} (gateway {gw_name})"
        ));
    }
    for c in &controls {
        if let Ok(live) = live_status(c, &conn.meta.name) {
            return Ok(live);
        }
    }
    Err(format!(
        "no gateway in namespace {ns} reports connection {} (asked {})",
        conn.meta.name,
        controls
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The view of `conn`: with live status from `control` if given; else the lab's own view
/// (`Lab::connections`, the same `lab status` shows); if the lab knows no live status, a
/// `hybridnet gateway run` process found in the gateway's namespace (e.g. one started by
/// hand in a lab without gateway processes). `hybridnet.statusNote` says why a status is
/// Unknown.
fn view(
    lab: &Lab,
    site: &str,
    conn: &site::Connection,
    control: Option<&std::path::Path>,
) -> anyhow::Result<serde_json::Value> {
    let note = |mut v: serde_json::Value, why: &str| {
        if let Some(extra) = v.get_mut("hybridnet").and_then(|x| x.as_object_mut()) {
            extra.insert("statusNote".into(), serde_json::json!(why));
        }
        v
    };
    if let Some(p) = control {
        let live = live_status(p, &conn.meta.name)?;
        return Ok(connection_view(conn, Some(&live)));
    }
    let from_lab = flat(lab.connections())?
        .into_iter()
        .find(|c| c.site == site && c.name == conn.meta.name);
    match from_lab {
        Some(c) if c.connection_status != "Unknown" => Ok(c.resource),
        other => Ok(match discover_live(lab, site, conn) {
            Ok(live) => connection_view(conn, Some(&live)),
            Err(why) => note(
                other
                    .map(|c| c.resource)
                    .unwrap_or_else(|| connection_view(conn, None)),
                &why,
            ),
        }),
    }
}

fn show(a: ShowArgs) -> anyhow::Result<ExitCode> {
    let lab = a.lab.open()?;
    let site = flat(lab.site(&a.site))?;
    let resources = flat(site.resources())?;
    let conn = flat(find_connection(&a.site, &resources, &a.name))?;
    let v = view(&lab, &a.site, conn, a.control.as_deref())?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(ExitCode::SUCCESS)
}

fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let lab = a.lab.open()?;
    let site = flat(lab.site(&a.site))?;
    let resources = flat(site.resources())?;
    let mut views = Vec::new();
    for r in &resources {
        if let site::Resource::Connection(c) = r {
            views.push(view(&lab, &a.site, c, None)?);
        }
    }
    println!("{}", serde_json::to_string_pretty(&views)?);
    Ok(ExitCode::SUCCESS)
}

fn device_config(a: DeviceConfigArgs) -> anyhow::Result<ExitCode> {
    if a.list_vendors {
        for v in vendors() {
            println!("{:<12} {:<16} {}", v.name(), v.file_name(), v.description());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(site_name), Some(name), Some(vendor_name)) = (&a.site, &a.name, &a.vendor) else {
        anyhow::bail!("--site, --name and --vendor are required (or --list-vendors)");
    };
    let vendor = flat(vendor(vendor_name))?;
    let lab = a.lab.open()?;
    let site = flat(lab.site(site_name))?;
    let mut peer = flat(PeerDevice::from_site(&site, name))?;
    if let Some(inside) = a.device_address {
        peer = peer.with_local_address(inside);
    }
    let text = flat(vendor.render(&peer))?;
    match a.output.as_ref().filter(|p| p.as_os_str() != "-") {
        Some(path) => {
            flat(write_private(path, &text))?;
            eprintln!(
                "wrote the {} configuration ({}) for the peer of connection {} (site {}) to {}{}",
                vendor.name(),
                vendor.file_name(),
                peer.connection_name,
                peer.site,
                path.display(),
                if vendor.contains_secret() {
                    " (mode 0600: it holds the shared key)"
                } else {
                    ""
                }
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
