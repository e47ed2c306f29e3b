//! `hybridnet lab capture …`: packet capture on a VPN gateway or one connection, as Azure's
//! `az network vnet-gateway packet-capture` / `vpn-connection packet-capture` do it, writing
//! pcapng; and the ESP SA export (Wireshark's `esp_sa`) that decrypts an outer capture.

use crate::vpn_cmd::LabArgs;
use clap::{Args, Subcommand};
use fabric::capture::Scope;
use gateway::capture::FilterData;
use std::path::PathBuf;
use std::process::ExitCode;

/// `hybridnet lab capture …`
#[derive(Subcommand)]
pub enum CaptureCommand {
    /// Start capturing on a gateway (--gateway) or one connection (--connection).
    Start(StartArgs),
    /// Stop the capture; prints what was written.
    Stop(ScopeArgs),
    /// Write the gateway's ESP SAs with their keys in Wireshark's esp_sa format (decrypts an
    /// outer capture; the file holds keys: mode 0600).
    EspSa(EspSaArgs),
}

/// Where to capture.
#[derive(Args)]
pub struct ScopeArgs {
    /// Site holding the gateway or connection.
    #[arg(long)]
    pub site: String,
    /// The VNet gateway (the whole gateway).
    #[arg(
        long,
        conflicts_with = "connection",
        required_unless_present = "connection"
    )]
    pub gateway: Option<String>,
    /// One connection of the site.
    #[arg(long)]
    pub connection: Option<String>,
    #[command(flatten)]
    pub lab: LabArgs,
}

impl ScopeArgs {
    fn scope(&self) -> Scope {
        match (&self.gateway, &self.connection) {
            (Some(g), _) => Scope::Gateway(g.clone()),
            (None, Some(c)) => Scope::Connection(c.clone()),
            (None, None) => unreachable!("clap requires one"),
        }
    }
}

/// `lab capture start`
#[derive(Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Azure's filter document (`filterData`: TracingFlags, MaxPacketBufferSize,
    /// MaxFileSize, Filters), inline JSON or @FILE; Azure's defaults when absent.
    #[arg(long)]
    pub filter: Option<String>,
    /// Stop by itself after this many seconds.
    #[arg(long)]
    pub duration: Option<u64>,
    /// The pcapng file to write.
    #[arg(long, short)]
    pub output: PathBuf,
}

/// `lab capture esp-sa`
#[derive(Args)]
pub struct EspSaArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Where to write the esp_sa lines (mode 0600).
    #[arg(long, short)]
    pub output: PathBuf,
}

/// Runs a `lab capture` subcommand.
pub fn run(cmd: CaptureCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CaptureCommand::Start(a) => {
            let filter = match &a.filter {
                None => FilterData::default(),
                Some(f) => {
                    let text = match f.strip_prefix('@') {
                        Some(path) => std::fs::read_to_string(path)?,
                        None => f.clone(),
                    };
                    serde_json::from_str(&text)
                        .map_err(|e| anyhow::anyhow!("--filter: {e} (Azure's filterData shape)"))?
                }
            };
            let lab = a.scope.lab.open()?;
            let out = std::path::absolute(&a.output)?;
            let files = lab
                .capture_start(&a.scope.site, &a.scope.scope(), filter, a.duration, &out)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for f in files {
                println!("capturing to {}", f.display());
            }
        }
        CaptureCommand::Stop(a) => {
            let lab = a.lab.open()?;
            let reports = lab
                .capture_stop(&a.site, &a.scope())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if reports.is_empty() {
                anyhow::bail!("no packet capture was running");
            }
            for r in reports {
                println!(
                    "{}: {} packets, {} bytes{}",
                    r.path.display(),
                    r.packets,
                    r.bytes,
                    r.limit_reached
                        .map(|l| format!(" (stopped writing at {l})"))
                        .unwrap_or_default()
                );
            }
        }
        CaptureCommand::EspSa(a) => {
            let lab = a.scope.lab.open()?;
            let lines = lab
                .esp_sa(&a.scope.site, &a.scope.scope())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut text = lines.join("\n");
            text.push('\n');
            devconfig::write_private(&a.output, &text).map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!(
                "WARNING: {} holds the encryption and integrity keys of {} ESP SA(s): anyone with it reads the tunnel's traffic. Delete it when done.",
                a.output.display(),
                lines.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
