//! `hybridnet gateway …`: run a VPN gateway from a TOML config, or ask a running one for its
//! status over its control socket.
use clap::{Args, Subcommand};
use gateway::{default_control_path, Gateway, GatewayConfig, RunOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum GatewayCommand {
    /// Run the gateway in the foreground until SIGTERM/SIGINT (then DELETEs are sent and routes removed).
    Run(RunArgs),
    /// Run `gateway run CONFIG` as a supervised child: restarted with back-off when it dies
    /// abnormally, restarts recorded in the state file; SIGTERM/SIGINT/SIGHUP are forwarded.
    /// This is how the lab runs its gateways.
    Supervise(SuperviseArgs),
    /// Show each connection's state, algorithms, SPIs, traffic and drop counters.
    Status(StatusArgs),
    /// Parse and validate a config file without starting anything.
    Check(CheckArgs),
    /// Make a running gateway re-read its config file (like SIGHUP): connections are added,
    /// removed or replaced by name; unchanged ones keep their SAs.
    Reload(StatusArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// The gateway's TOML config file.
    pub config: PathBuf,
    /// Control socket path (default: derived from the config path under /run/hybridnet/).
    #[arg(long)]
    pub control: Option<PathBuf>,
}

#[derive(Args)]
pub struct SuperviseArgs {
    /// The gateway's TOML config file.
    pub config: PathBuf,
    /// The gateway's control socket.
    #[arg(long)]
    pub control: PathBuf,
    /// Where the supervisor records its child and the restarts (JSON, replaced atomically).
    #[arg(long)]
    pub state: PathBuf,
}

#[derive(Args)]
pub struct StatusArgs {
    /// Print the raw JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Control socket of the gateway to ask.
    #[arg(long, conflicts_with = "config")]
    pub control: Option<PathBuf>,
    /// Config file of the gateway to ask (its control socket is derived from the path).
    pub config: Option<PathBuf>,
}

#[derive(Args)]
pub struct CheckArgs {
    /// The gateway's TOML config file.
    pub config: PathBuf,
}

pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HYBRIDNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // colour codes only on a terminal, not in the lab's log files
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

pub fn run(cmd: GatewayCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        GatewayCommand::Run(a) => {
            init_logging();
            let cfg = GatewayConfig::load(&a.config)?;
            let control_path = a
                .control
                .or_else(|| cfg.control_socket.clone())
                .unwrap_or_else(|| default_control_path(&a.config));
            let gw = Gateway::start(
                cfg,
                RunOptions {
                    control_path,
                    config_path: Some(a.config.clone()),
                },
            )?;
            gw.run()?;
            Ok(ExitCode::SUCCESS)
        }
        GatewayCommand::Supervise(a) => {
            fabric::supervisor::run(&fabric::supervisor::SuperviseOptions::gateway(
                &a.config, &a.control, &a.state,
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        GatewayCommand::Status(a) => {
            let path = match (a.control, a.config) {
                (Some(p), _) => p,
                (None, Some(cfg)) => GatewayConfig::load(&cfg)?
                    .control_socket
                    .unwrap_or_else(|| default_control_path(&cfg)),
                (None, None) => anyhow::bail!(
                    "name the gateway: `hybridnet gateway status CONFIG` or `--control PATH`"
                ),
            };
            if a.json {
                print!("{}", gateway::status::query_raw(&path)?);
            } else {
                print!(
                    "{}",
                    gateway::status::render(&gateway::status::query(&path)?)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        GatewayCommand::Reload(a) => {
            let path = match (a.control, a.config) {
                (Some(p), _) => p,
                (None, Some(cfg)) => GatewayConfig::load(&cfg)?
                    .control_socket
                    .unwrap_or_else(|| default_control_path(&cfg)),
                (None, None) => anyhow::bail!(
                    "name the gateway: `hybridnet gateway reload CONFIG` or `--control PATH`"
                ),
            };
            let r = gateway::status::reload(&path)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for (what, names) in [
                    ("added", &r.added),
                    ("removed", &r.removed),
                    ("replaced", &r.replaced),
                    ("unchanged", &r.unchanged),
                ] {
                    println!(
                        "{what}: {}",
                        if names.is_empty() {
                            "-".to_string()
                        } else {
                            names.join(", ")
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        GatewayCommand::Check(a) => {
            let cfg = GatewayConfig::load(&a.config)?;
            println!(
                "{}: {} connection(s), local address {}",
                a.config.display(),
                cfg.connections.len(),
                cfg.local_address
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
