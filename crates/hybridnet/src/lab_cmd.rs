//! `hybridnet lab …` and `hybridnet deploy` (owned by the lab work).
use clap::{Args, Subcommand};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum LabCommand {}

#[derive(Args)]
pub struct DeployArgs {}

pub fn run(cmd: LabCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}

pub fn deploy(_args: DeployArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("no lab support yet")
}
