//! `hybridnet lab …` and `hybridnet deploy` (owned by the lab work): thin CLI over
//! [`fabric::lab`].

use clap::{Args, Subcommand};
use fabric::deploy::DeployRequest;
use fabric::lab::{self, Lab};
use fabric::local_api::{LocalClient, LocalRequest};
use fabric::progress::Progress;
use fabric::state::{self, LabSelector};
use fabric::status::LabStatus;
use fabric::LabId;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

/// Which lab a command acts on: `--id ID`, a lab directory, or (neither) the lab of the
/// current directory or the only running lab; with several labs and none named, the command
/// is refused with the list of labs.
#[derive(Args, Clone, Debug)]
pub struct LabChoice {
    /// Lab directory (holding lab.yaml).
    pub dir: Option<PathBuf>,
    /// Lab id (as shown by `lab up` and `lab status`).
    #[arg(long)]
    pub id: Option<String>,
}

impl LabChoice {
    fn selector(&self) -> anyhow::Result<LabSelector> {
        Ok(match (&self.id, &self.dir) {
            (Some(id), _) => LabSelector::Id(LabId::parse(id)?),
            (None, Some(dir)) => LabSelector::Dir(dir.clone()),
            (None, None) => LabSelector::Implicit,
        })
    }
}

/// `hybridnet lab …`
#[derive(Subcommand)]
pub enum LabCommand {
    /// Create or update the lab described by DIR/lab.yaml: sites, deployments, namespaces.
    Up {
        /// Lab directory (holding lab.yaml).
        dir: PathBuf,
        /// Lay the gateways' namespaces and wires but run no gateway process (bring your own
        /// VPN device); remembered for later deployments to this lab.
        #[arg(long)]
        no_gateways: bool,
        /// Skip the end-to-end check (waiting for connections, ping and TCP across tunnels).
        #[arg(long)]
        no_verify: bool,
        /// How long to wait for the connections to come up, in seconds.
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// Start no lab controller: the sites get no Resource Manager endpoint (and the lab
        /// no web view or metrics).
        #[arg(long)]
        no_api: bool,
        /// Also run a Prometheus (Debian's `prometheus`) scraping the lab's metrics, as the
        /// lab's own process on a loopback port; `lab down` ends it.
        #[arg(long)]
        metrics: bool,
    },
    /// The lab controller process `lab up` starts: serves each Azure-kind site's Resource
    /// Manager endpoint until SIGTERM (`lab down` ends it).
    Controller {
        /// Lab id.
        #[arg(long)]
        lab: String,
        /// Serve the endpoints in this process (what the supervising `lab controller` runs as
        /// its child, restarted when it dies).
        #[arg(long)]
        serve: bool,
    },
    /// Remove every namespace, link and process of a lab, and its state.
    Down(LabChoice),
    /// Show sites, VNets, subnets, VMs with addresses and provisioning states.
    Status {
        #[command(flatten)]
        choice: LabChoice,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Packet capture on a VPN gateway or connection (pcapng), and the ESP SA export.
    #[command(subcommand)]
    Capture(crate::capture_cmd::CaptureCommand),
    /// Run a command inside a VM's (or a gateway's) namespace; its exit code is passed through.
    Exec {
        /// SITE/VM or SITE/GATEWAY, e.g. azure/vm1.
        target: String,
        /// Lab id (default: the lab of the current directory or the only running lab; with
        /// several labs one must be named).
        #[arg(long)]
        id: Option<String>,
        /// Lab directory.
        #[arg(long)]
        lab: Option<PathBuf>,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// `hybridnet deploy --site SITE TEMPLATE …`
#[derive(Args)]
pub struct DeployArgs {
    /// Site to deploy to.
    #[arg(long)]
    pub site: String,
    /// ARM template file.
    pub template: PathBuf,
    /// Parameter file (azuredeploy.parameters.json shape or a plain object).
    #[arg(long)]
    pub parameters: Option<PathBuf>,
    /// Inline parameter NAME=VALUE (repeatable; JSON values allowed; `${…}` references allowed).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Deployment name (default: the template file's stem).
    #[arg(long)]
    pub name: Option<String>,
    /// Lab directory.
    #[arg(long)]
    pub lab: Option<PathBuf>,
    /// Lab id.
    #[arg(long)]
    pub id: Option<String>,
}

fn selector(id: &Option<String>, dir: &Option<PathBuf>) -> anyhow::Result<LabSelector> {
    LabChoice {
        dir: dir.clone(),
        id: id.clone(),
    }
    .selector()
}

fn eprint_line(line: &str) {
    eprintln!("{line}");
}

/// Our errors already say everything in their message (the template path, the cause);
/// flatten them so `main` does not print each cause again.
fn flat<T, E: std::fmt::Display>(r: Result<T, E>) -> anyhow::Result<T> {
    r.map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs a `lab` subcommand.
pub fn run(cmd: LabCommand) -> anyhow::Result<ExitCode> {
    let root = state::state_root();
    match cmd {
        LabCommand::Up {
            dir,
            no_gateways,
            no_verify,
            wait,
            no_api,
            metrics,
        } => {
            let steps = std::cell::RefCell::new(Vec::<String>::new());
            let mut sink = |line: &str| {
                eprintln!("{line}");
                steps.borrow_mut().push(line.to_string());
            };
            let mut progress = Progress::new(&mut sink);
            let opts = lab::UpOptions {
                no_gateways,
                no_controller: no_api,
                metrics,
            };
            let report = flat(lab::up_with(&root, &dir, &opts, &mut progress))?;
            if !report.failed.is_empty() {
                return Ok(report_failures(&report));
            }
            let mut verified = true;
            if !no_gateways && !no_verify {
                let lab = flat(Lab::open(
                    &root,
                    &LabSelector::Id(LabId::parse(&report.lab_id)?),
                ))?;
                verified = verify_lab(&lab, std::time::Duration::from_secs(wait), &mut progress)?;
            }
            let total = progress.elapsed().as_secs_f64();
            println!("summary (time of each step):");
            for line in steps.borrow().iter() {
                println!("  {line}");
            }
            if !verified {
                // where to look at what went wrong
                if let Some(url) = report.controller.as_ref().and_then(|c| c.view_url.as_ref()) {
                    println!("Web view: {url}");
                }
                println!(
                    "lab {} is up, but its tunnels do not work yet (see above and `hybridnet lab status`) ({total:.3}s)",
                    report.lab_id
                );
                return Ok(ExitCode::FAILURE);
            }
            if let Some(c) = &report.controller {
                print_endpoints(c);
            }
            if let Some(p) = &report.prometheus {
                print_prometheus(p);
            }
            if report.unchanged() {
                println!("lab {} is up: no changes ({total:.3}s)", report.lab_id);
            } else {
                println!(
                    "lab {} is up: {} resource change(s), {} kernel change(s) ({total:.3}s)",
                    report.lab_id, report.resource_changes, report.kernel_changes
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Controller { lab, serve } => {
            let id = LabId::parse(&lab)?;
            if serve {
                // one line per API request (method, path, status, time) in the controller's log
                crate::gateway_cmd::init_logging();
                flat(fabric::controller::run(&root, &id))?;
            } else {
                flat(fabric::controller::supervise(&root, &id))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Down(choice) => {
            let report = flat(lab::down(&root, &choice.selector()?))?;
            println!(
                "lab {} is down: {} namespace(s) removed{}",
                report.lab_id,
                report.namespaces.len(),
                if report.state_removed {
                    ", state removed"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Status { choice, json } => {
            let lab = match Lab::open(&root, &choice.selector()?) {
                Ok(lab) => lab,
                // Nothing to show is an answer, not a failure.
                Err(lab::LabError::State(state::StateError::NoLab(_))) => {
                    if json {
                        println!("[]");
                    } else {
                        println!("no lab is running (state in {})", root.display());
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                Err(e) => return flat(Err(e)),
            };
            // The controller's view when one runs (it owns the lab), else read here.
            let status: LabStatus = match LocalClient::ask(&lab.dir, &LocalRequest::Status) {
                Some(answer) => serde_json::from_value(flat(answer)?)?,
                None => flat(lab.status())?,
            };
            let api = fabric::controller::running(&lab.dir);
            let prometheus = fabric::prometheus::running(&lab.dir);
            if json {
                let mut v = serde_json::to_value(&status)?;
                if let (Some(c), serde_json::Value::Object(m)) = (&api, &mut v) {
                    m.insert("api".into(), serde_json::to_value(c)?);
                }
                if let (Some(p), serde_json::Value::Object(m)) = (&prometheus, &mut v) {
                    m.insert("prometheus".into(), serde_json::to_value(p)?);
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_status(&status);
                if let Some(c) = &api {
                    print_endpoints(c);
                }
                if let Some(p) = &prometheus {
                    print_prometheus(p);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Capture(cmd) => crate::capture_cmd::run(cmd),
        LabCommand::Exec {
            target,
            id,
            lab,
            command,
        } => {
            let lab = flat(Lab::open(&root, &selector(&id, &lab)?))?;
            let ns = flat(lab.vm_netns(&target))?;
            // Replaces this process: the command's exit code is ours.
            let err = std::process::Command::new("ip")
                .args(["netns", "exec", &ns])
                .args(&command)
                .exec();
            Err(anyhow::anyhow!("cannot run `ip netns exec {ns} …`: {err}"))
        }
    }
}

/// Waits for the lab's connections, then pings and runs a verified TCP transfer between VMs
/// across each tunnel, both ways; every step is reported with its time. False when a
/// connection did not come up or traffic failed (with the reason printed).
fn verify_lab(
    lab: &Lab,
    wait: std::time::Duration,
    progress: &mut Progress,
) -> anyhow::Result<bool> {
    let t = std::time::Instant::now();
    let (up, conns) = flat(lab.wait_connected(wait))?;
    if conns.is_empty() {
        return Ok(true);
    }
    let line = conns
        .iter()
        .map(|c| format!("{}/{} {}", c.site, c.name, c.connection_status))
        .collect::<Vec<_>>()
        .join(", ");
    progress.finish("connections", t, &line);
    if !up {
        for c in conns.iter().filter(|c| c.connection_status != "Connected") {
            progress.note(&format!(
                "  {}/{}: {}",
                c.site,
                c.name,
                c.reason.as_deref().unwrap_or("not connected")
            ));
        }
        return Ok(false);
    }
    let pairs = flat(lab.tunnel_vm_pairs(&conns))?;
    let mut ok = true;
    for (i, p) in pairs.iter().enumerate() {
        for (from, to) in [(&p.a, &p.b), (&p.b, &p.a)] {
            let t = std::time::Instant::now();
            // A tunnel that has just come up may still be settling (both sides initiated and
            // the duplicate IKE SA is being deleted): one more round, and the report says so.
            let mut retried = None;
            let result = fabric::verify::ping(&from.1, to.2, 3).or_else(|e| {
                retried = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(500));
                fabric::verify::ping(&from.1, to.2, 3)
            });
            match result {
                Ok(_) => progress.finish(
                    &format!("ping {} -> {} ({})", from.0, to.0, to.2),
                    t,
                    &match retried {
                        None => "3/3 replies".to_string(),
                        Some(e) => format!("3/3 replies on the second round (first: {e})"),
                    },
                ),
                Err(e) => {
                    progress.finish(
                        &format!("ping {} -> {}", from.0, to.0),
                        t,
                        &format!("FAILED: {e}"),
                    );
                    ok = false;
                }
            }
        }
        for (k, (from, to)) in [(&p.a, &p.b), (&p.b, &p.a)].into_iter().enumerate() {
            let t = std::time::Instant::now();
            let port = 5201 + (2 * i + k) as u16;
            let len = 4 << 20;
            match fabric::verify::tcp_transfer(&to.1, to.2, port, &from.1, len) {
                Ok(x) => progress.finish(
                    &format!("TCP {} -> {}:{port}", from.0, to.0),
                    t,
                    &format!(
                        "{} MiB verified, {:.0} Mbit/s",
                        len >> 20,
                        (x.bytes * 8) as f64 / (x.millis.max(1) as f64 * 1000.0)
                    ),
                ),
                Err(e) => {
                    progress.finish(
                        &format!("TCP {} -> {}", from.0, to.0),
                        t,
                        &format!("FAILED: {e}"),
                    );
                    ok = false;
                }
            }
        }
    }
    let after = flat(lab.connections())?;
    for c in &after {
        progress.note(&format!(
            "{}/{}: {} in {} B, out {} B{}",
            c.site,
            c.name,
            c.connection_status,
            c.ingress_bytes_transferred.unwrap_or(0),
            c.egress_bytes_transferred.unwrap_or(0),
            c.resource["hybridnet"]["espAlgorithms"]
                .as_str()
                .map(|a| format!(", ESP {a}"))
                .unwrap_or_default()
        ));
    }
    Ok(ok)
}

/// Resources that could not be realized: one line each (they are Failed in the site store,
/// with the same error, for `lab status`), and a failing exit code.
fn report_failures(report: &lab::ApplyReport) -> ExitCode {
    for (id, why) in &report.failed {
        eprintln!("error: {id}: {why}");
    }
    eprintln!(
        "lab {}: {} resource(s) failed to realize; the rest is up (see `hybridnet lab status`)",
        report.lab_id,
        report.failed.len()
    );
    ExitCode::FAILURE
}

fn print_status(s: &LabStatus) {
    let mark = |exists: bool| if exists { "" } else { " (missing)" };
    println!("lab {}  from {}", s.id, s.source_dir.display());
    println!(
        "  internet: {}{}",
        s.internet.netns,
        mark(s.internet.exists)
    );
    for site in &s.sites {
        println!(
            "  site {} (kind {}, public {}{}, internet router {})",
            site.name,
            site.kind,
            site.public_prefix,
            if site.nat { ", behind NAT" } else { "" },
            site.internet_address.as_deref().unwrap_or("-")
        );
        for v in &site.virtual_networks {
            println!(
                "    vnet {} {} [{}]{}  router {}{}",
                v.name,
                v.address_space.join(","),
                v.provisioning_state,
                v.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default(),
                v.router.netns,
                mark(v.router.exists)
            );
            for sn in &v.subnets {
                println!(
                    "      subnet {} {}  bridge {}",
                    sn["name"].as_str().unwrap_or(""),
                    sn["addressPrefix"].as_str().unwrap_or(""),
                    sn["bridge"].as_str().unwrap_or("")
                );
            }
        }
        for vm in &site.virtual_machines {
            let addrs: Vec<String> = vm
                .nics
                .iter()
                .map(|n| {
                    let mut a = format!(
                        "{} {}/{}",
                        n["interface"].as_str().unwrap_or("-"),
                        n["privateIpAddress"].as_str().unwrap_or("?"),
                        n["subnet"].as_str().unwrap_or("?")
                    );
                    if let Some(p) = n["publicIpAddress"].as_str() {
                        a.push_str(&format!(" public {p}"));
                    }
                    let nsgs: Vec<&str> = n["networkSecurityGroups"]
                        .as_array()
                        .map(|v| v.iter().filter_map(|x| x.as_str()).collect())
                        .unwrap_or_default();
                    if !nsgs.is_empty() {
                        a.push_str(&format!(" nsg {}", nsgs.join(",")));
                    }
                    a
                })
                .collect();
            println!(
                "    vm {} [{}]{}  {}  netns {}{}",
                vm.name,
                vm.provisioning_state,
                vm.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default(),
                addrs.join(", "),
                vm.netns.netns,
                mark(vm.netns.exists)
            );
        }
        for p in &site.public_ip_addresses {
            println!(
                "    public ip {} {} [{}]",
                p["name"].as_str().unwrap_or(""),
                p["ipAddress"].as_str().unwrap_or(""),
                p["provisioningState"].as_str().unwrap_or("")
            );
        }
        if let Some(err) = &site.error {
            println!("    error: {err}");
        }
        if let Some(nat) = &site.nat_device {
            println!("    NAT device {}{}", nat.netns, mark(nat.exists));
        }
        for d in s.strongswan_devices.iter().filter(|d| d.site == site.name) {
            for line in d.lines() {
                println!("    {line}");
            }
        }
        for o in &site.other_resources {
            let netns = match o["netns"]["netns"].as_str() {
                Some(ns) => format!("  netns {ns}{}", mark(o["netns"]["exists"] == true)),
                None => String::new(),
            };
            println!(
                "    {} {} [{}]{}{netns}",
                o["type"].as_str().unwrap_or(""),
                o["name"].as_str().unwrap_or(""),
                o["provisioningState"].as_str().unwrap_or(""),
                o["reason"]
                    .as_str()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            match o["instances"].as_array() {
                Some(instances) => {
                    for i in instances {
                        println!(
                            "      instance {} ({}, {}): {}",
                            i["instance"],
                            i["ipConfiguration"].as_str().unwrap_or("-"),
                            i["privateIpAddress"].as_str().unwrap_or("-"),
                            gateway_process_line(&i["gatewayProcess"])
                                .unwrap_or_else(|| "no process".into())
                        );
                    }
                }
                None => {
                    if let Some(line) = gateway_process_line(&o["gatewayProcess"]) {
                        println!("      {line}");
                    }
                }
            }
            for line in bgp_lines(&o["bgp"]) {
                println!("      {line}");
            }
        }
        for c in &site.connections {
            println!(
                "    connection {} [{}] {}{}",
                c.name,
                c.provisioning_state,
                c.connection_status,
                c.reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            let h = &c.resource["hybridnet"];
            if c.connection_status == "Connected" {
                println!(
                    "      IKE {}  ESP {}  up {}s",
                    h["ikeAlgorithms"].as_str().unwrap_or("-"),
                    h["espAlgorithms"].as_str().unwrap_or("-"),
                    h["establishedSecondsAgo"].as_u64().unwrap_or(0)
                );
            }
            if let (Some(i), Some(e)) = (c.ingress_bytes_transferred, c.egress_bytes_transferred) {
                println!("      ingressBytesTransferred {i}  egressBytesTransferred {e}");
            }
        }
        for d in &site.deployments {
            println!(
                "    deployment {} [{}]{}",
                d["name"].as_str().unwrap_or(""),
                d["state"].as_str().unwrap_or(""),
                d["error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
    }
}

/// One line for a gateway's process: its pid and supervisor, and the restarts with the last
/// reason, e.g. `process 4242 (supervisor 4240), 1 restart, last: killed by signal 9 (SIGKILL)
/// 12 s ago`.
/// A VNet gateway's BGP in a few lines: its AS and address, each peer's state (with why
/// when not Connected), and the learned routes with their AS paths.
fn bgp_lines(b: &serde_json::Value) -> Vec<String> {
    if !b.is_object() {
        return vec![];
    }
    if let Some(e) = b["error"].as_str() {
        return vec![format!("BGP: {e}")];
    }
    let mut out = vec![format!(
        "BGP AS {} at {}",
        b["asn"],
        b["localAddress"].as_str().unwrap_or("-")
    )];
    for p in b["peers"].as_array().into_iter().flatten() {
        let why = match p["lastError"].as_str() {
            Some(e) if p["state"] != "Connected" => format!(": {e}"),
            _ => String::new(),
        };
        // an active-active gateway's instances each peer from their own address
        let from = match p["localAddress"].as_str() {
            Some(a) if Some(a) != b["localAddress"].as_str() => format!(" (from {a})"),
            _ => String::new(),
        };
        out.push(format!(
            "  peer {} AS {} {} {}{from}{why}",
            p["neighbor"].as_str().unwrap_or("-"),
            p["asn"],
            p["state"].as_str().unwrap_or("-"),
            p["connectedDuration"].as_str().unwrap_or(""),
        ));
    }
    for r in b["learnedRoutes"].as_array().into_iter().flatten() {
        if r["origin"] == "Network" {
            continue;
        }
        out.push(format!(
            "  learned {} via {} AS path {}{}",
            r["network"].as_str().unwrap_or("-"),
            r["nextHop"].as_str().unwrap_or("-"),
            r["asPath"].as_str().unwrap_or("-"),
            if r["best"] == true { "" } else { " (not best)" }
        ));
    }
    for r in b["refusedRoutes"].as_array().into_iter().flatten() {
        out.push(format!(
            "  refused {}: {}",
            r["network"].as_str().unwrap_or("-"),
            r["reason"].as_str().unwrap_or("-")
        ));
    }
    if let Some(r) = b["lastRefusal"].as_str() {
        out.push(format!("  {r}"));
    }
    out
}

fn gateway_process_line(p: &serde_json::Value) -> Option<String> {
    if !p.is_object() {
        return None;
    }
    let who = match (p["pid"].as_i64(), p["supervisorPid"].as_i64()) {
        (Some(pid), Some(sup)) if p["running"] == true => {
            format!("process {pid} (supervisor {sup})")
        }
        (Some(pid), None) if p["running"] == true => format!("process {pid} (unsupervised)"),
        (_, Some(sup)) if p["nextRestartInMs"].is_u64() => format!(
            "process not running, supervisor {sup} restarts it in {:.1} s",
            p["nextRestartInMs"].as_u64().unwrap_or(0) as f64 / 1000.0
        ),
        _ => format!(
            "process not running (`hybridnet lab up` restarts it; log {})",
            p["log"].as_str().unwrap_or("-")
        ),
    };
    let restarts = p["restarts"].as_u64().unwrap_or(0);
    let last = &p["lastExit"];
    let why = match last["reason"].as_str() {
        Some(reason) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let ago = now.saturating_sub(last["atUnix"].as_u64().unwrap_or(now));
            format!(", last: {reason} {ago} s ago")
        }
        None => String::new(),
    };
    Some(format!(
        "{who}, {restarts} restart{}{why}",
        if restarts == 1 { "" } else { "s" }
    ))
}

/// Runs `hybridnet deploy`.
pub fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let root = state::state_root();
    let lab = flat(Lab::open(&root, &selector(&args.id, &args.lab)?))?;
    let mut set = serde_json::Map::new();
    for s in &args.set {
        let (k, v) = flat(DeployRequest::parse_set(s))?;
        set.insert(k, v);
    }
    let name = match &args.name {
        Some(n) => n.clone(),
        None => args
            .template
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: cannot derive a deployment name; use --name",
                    args.template.display()
                )
            })?,
    };
    let req = DeployRequest {
        name,
        site: args.site.clone(),
        template: args.template.clone(),
        parameters_file: args.parameters.clone(),
        set,
    };
    let mut sink = eprint_line;
    // Carried out by the lab's controller when one runs, so the deployment takes its place
    // in the one queue the Resource Manager endpoints use too.
    let (report, by) = match LocalClient::connect(&lab.dir) {
        Some(c) => {
            let by = format!(" by the lab controller (pid {})", c.pid());
            let v = flat(c.call(&LocalRequest::deploy(&req), &mut sink))?;
            (serde_json::from_value::<lab::ApplyReport>(v)?, by)
        }
        None => {
            let mut progress = Progress::new(&mut sink);
            (flat(lab.deploy(&req, &mut progress))?, String::new())
        }
    };
    if !report.failed.is_empty() {
        return Ok(report_failures(&report));
    }
    println!(
        "deployed {} to {}{by}: {} resource change(s), {} kernel change(s)",
        req.name, req.site, report.resource_changes, report.kernel_changes
    );
    Ok(ExitCode::SUCCESS)
}

/// The lab's Prometheus: where to query it.
fn print_prometheus(p: &fabric::prometheus::PrometheusRecord) {
    println!(
        "Prometheus: {} (pid {}, scraping {} every second; data in {})",
        p.url,
        p.pid,
        p.target,
        p.data_dir.display()
    );
}

/// The sites' Resource Manager endpoints and how to point az at them (the secret stays in its
/// file: it is read by the shell, never printed).
fn print_endpoints(c: &fabric::controller::ControllerRecord) {
    if let Some(url) = &c.view_url {
        println!("Web view: {url}");
    }
    if let Some(url) = &c.metrics_url {
        println!("Metrics:  {url}");
    }
    println!(
        "Resource Manager endpoints (lab controller pid {}; CA {}):",
        c.pid,
        c.ca_file.display()
    );
    for e in &c.endpoints {
        println!(
            "  {:<16} {}  tenant {}  service principal {}  secret in {}",
            e.site,
            e.url,
            e.tenant_id,
            e.client_id,
            e.secret_file.display()
        );
    }
    if let Some(e) = c.endpoints.first() {
        println!(
            "  use with az:  export REQUESTS_CA_BUNDLE={}",
            c.ca_file.display()
        );
        println!(
            "                az cloud register -n hn-{0} --endpoint-resource-manager {1} && az cloud set -n hn-{0}",
            e.site, e.url
        );
        println!(
            "                az login --service-principal -u {} -p \"$(cat {})\" --tenant {}",
            e.client_id,
            e.secret_file.display(),
            e.tenant_id
        );
    }
}
