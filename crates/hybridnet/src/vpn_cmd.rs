//! `hybridnet vpn-connection …`: the connection as `az network vpn-connection show` prints it,
//! and "Download VPN device configuration" for the on-premises peer of a connection.

use clap::{Args, Subcommand};
use devconfig::{vendor, vendors, write_private};
use fabric::lab::Lab;
use fabric::local_api::{LocalClient, LocalRequest};
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
    pub(crate) fn open(&self) -> anyhow::Result<Lab> {
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
    /// With BGP: a network the device announces (repeatable); default: the local network
    /// gateway's prefixes other than the device's BGP address.
    #[arg(long = "announce", value_name = "PREFIX")]
    pub announce: Vec<ipnet::Ipv4Net>,
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

/// Asks the lab's controller when one runs (it owns the lab), else reads the lab here.
pub(crate) fn ask(
    lab: &Lab,
    req: LocalRequest,
    here: impl FnOnce() -> Result<serde_json::Value, fabric::lab::LabError>,
) -> anyhow::Result<serde_json::Value> {
    match LocalClient::ask(&lab.dir, &req) {
        Some(answer) => flat(answer),
        None => flat(here()),
    }
}

fn show(a: ShowArgs) -> anyhow::Result<ExitCode> {
    let lab = a.lab.open()?;
    let v = match &a.control {
        // An explicit gateway socket is read here: it may be a gateway outside the lab.
        Some(control) => flat(lab.connection_view(&a.site, &a.name, Some(control)))?,
        None => ask(
            &lab,
            LocalRequest::Connection {
                site: a.site.clone(),
                name: a.name.clone(),
            },
            || lab.connection_view(&a.site, &a.name, None),
        )?,
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(ExitCode::SUCCESS)
}

fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let lab = a.lab.open()?;
    let views = ask(
        &lab,
        LocalRequest::Connections {
            site: a.site.clone(),
        },
        || Ok(serde_json::to_value(lab.connection_views(&a.site)?).unwrap_or_default()),
    )?;
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
    let text = ask(
        &lab,
        LocalRequest::DeviceConfig {
            site: site_name.clone(),
            name: name.clone(),
            vendor: vendor_name.clone(),
            device_address: a.device_address,
            announce: a.announce.clone(),
        },
        || {
            lab.device_config(site_name, name, vendor_name, a.device_address, &a.announce)
                .map(serde_json::Value::String)
        },
    )?;
    let text = text.as_str().unwrap_or_default();
    match a.output.as_ref().filter(|p| p.as_os_str() != "-") {
        Some(path) => {
            flat(write_private(path, text))?;
            eprintln!(
                "wrote the {} configuration ({}) for the peer of connection {} (site {}) to {}{}",
                vendor.name(),
                vendor.file_name(),
                name,
                site_name,
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
