//! `hybridnet`: one binary for the lab, deployments and the VPN gateway.

mod capture_cmd;
mod gateway_cmd;
mod lab_cmd;
mod vnet_gateway_cmd;
mod vpn_cmd;

use clap::{Parser, Subcommand};

/// Azure's Hybrid Connection, built for real on one Linux host.
#[derive(Parser)]
#[command(name = "hybridnet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run or inspect a site-to-site VPN gateway (IKEv2 + ESP over a TUN device).
    #[command(subcommand)]
    Gateway(gateway_cmd::GatewayCommand),
    /// Build, inspect, enter and tear down a lab of sites in network namespaces.
    #[command(subcommand)]
    Lab(lab_cmd::LabCommand),
    /// Deploy an ARM template to a site of a running lab.
    Deploy(lab_cmd::DeployArgs),
    /// Show a VPN connection as Azure does, or export its on-premises device configuration.
    #[command(subcommand)]
    VpnConnection(vpn_cmd::VpnConnectionCommand),
    /// A VNet gateway's BGP peers and routes, as Azure lists them.
    #[command(subcommand)]
    VnetGateway(vnet_gateway_cmd::VnetGatewayCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Gateway(cmd) => gateway_cmd::run(cmd),
        Command::Lab(cmd) => lab_cmd::run(cmd),
        Command::Deploy(args) => lab_cmd::deploy(args),
        Command::VpnConnection(cmd) => vpn_cmd::run(cmd),
        Command::VnetGateway(cmd) => vnet_gateway_cmd::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
