//! `hybridnet vnet-gateway …`: a VNet gateway's BGP as `az network vnet-gateway
//! list-bgp-peer-status`, `list-learned-routes` and `list-advertised-routes` print it.

use crate::vpn_cmd::{ask, LabArgs};
use clap::{Args, Subcommand};
use fabric::bgp_view::BgpList;
use fabric::local_api::LocalRequest;
use std::process::ExitCode;

/// `hybridnet vnet-gateway …`
#[derive(Subcommand)]
pub enum VnetGatewayCommand {
    /// The gateway's BGP peers: state, uptime, routes and messages, the reason when down.
    #[command(name = "list-bgp-peer-status")]
    BgpPeerStatus(BgpArgs),
    /// Every route the gateway knows: its VNet's own and what each peer announced, with the AS path.
    #[command(name = "list-learned-routes")]
    LearnedRoutes(BgpArgs),
    /// What the gateway announces to one peer (--peer).
    #[command(name = "list-advertised-routes")]
    AdvertisedRoutes(BgpArgs),
}

/// Which gateway, and for some lists which peer.
#[derive(Args)]
pub struct BgpArgs {
    /// Site holding the gateway.
    #[arg(long)]
    pub site: String,
    /// Virtual network gateway name.
    #[arg(long)]
    pub name: String,
    /// The BGP peer's address.
    #[arg(long)]
    pub peer: Option<String>,
    #[command(flatten)]
    pub lab: LabArgs,
}

/// Runs a `vnet-gateway` subcommand.
pub fn run(cmd: VnetGatewayCommand) -> anyhow::Result<ExitCode> {
    let (list, a) = match cmd {
        VnetGatewayCommand::BgpPeerStatus(a) => (BgpList::PeerStatus, a),
        VnetGatewayCommand::LearnedRoutes(a) => (BgpList::LearnedRoutes, a),
        VnetGatewayCommand::AdvertisedRoutes(a) => (BgpList::AdvertisedRoutes, a),
    };
    let lab = a.lab.open()?;
    let v = ask(
        &lab,
        LocalRequest::GatewayBgp {
            site: a.site.clone(),
            name: a.name.clone(),
            list,
            peer: a.peer.clone(),
        },
        || lab.gateway_bgp_list(&a.site, &a.name, list, a.peer.as_deref()),
    )?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(ExitCode::SUCCESS)
}
