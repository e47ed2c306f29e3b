//! `hybridnet gateway …` (owned by the gateway runtime work).
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum GatewayCommand {}

pub fn run(cmd: GatewayCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
