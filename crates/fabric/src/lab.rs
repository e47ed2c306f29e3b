//! A lab: `lab.yaml` + the registry + the sites' control planes + the realized namespaces.
//!
//! `up` creates (or reuses) the lab of a directory, applies its deployments in order through
//! each site's plan/apply, then realizes every site's resources and records each resource's
//! provisioning state. `deploy` does the same for one template against a running lab. `down`
//! removes every namespace with the lab's prefix (and the processes in them) and the state.

use crate::desired::DesiredState;
use crate::gateways;
use crate::names::LabId;
use crate::progress::Progress;
use crate::reconcile::{reconcile, teardown};
use crate::spec::{substitute, DeploymentSpec, LabSpec, Reference, SpecError, SubstError};
use crate::state::{self, LabDir, LabRecord, LabSelector, StateError};
use crate::topology::{SiteNet, Topology};
use serde_json::{Map, Value};
use site::{ChangeAction, ProvisioningState, Resource, Site, SiteError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Resource types the lab realizes (the site reports the others as Pending): networks, VMs,
/// and VPN gateways with their connections (gateway processes, see [`crate::gateways`]).
pub const REALIZED_TYPES: &[&str] = &[
    "Microsoft.Network/virtualNetworks",
    "Microsoft.Network/virtualNetworks/subnets",
    "Microsoft.Network/publicIPAddresses",
    "Microsoft.Network/networkInterfaces",
    "Microsoft.Compute/virtualMachines",
    "Microsoft.Network/virtualNetworkGateways",
    "Microsoft.Network/connections",
];

/// Why a lab operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// lab.yaml is unreadable or inconsistent.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The registry on disk.
    #[error(transparent)]
    State(#[from] StateError),
    /// A site's control plane refused or failed (template errors name the template path).
    #[error("site {site}: {source}")]
    Site {
        site: String,
        #[source]
        source: Box<SiteError>,
    },
    /// A deployment was rejected; nothing of it was applied.
    #[error("deployment {deployment:?} to site {site} ({template}): {source}")]
    Deployment {
        deployment: String,
        site: String,
        template: String,
        #[source]
        source: Box<SiteError>,
    },
    /// A template or parameter file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A parameter file is not valid.
    #[error("{path}: {source}")]
    ParameterFile {
        path: PathBuf,
        #[source]
        source: arm::ArmError,
    },
    /// A `${…}` substitution or `--set` value failed.
    #[error("deployment {deployment:?}, parameter {parameter}: {source}")]
    Substitution {
        deployment: String,
        parameter: String,
        #[source]
        source: SubstError,
    },
    /// `--set` without `=`.
    #[error("--set {0:?}: expected NAME=VALUE")]
    BadSet(String),
    /// The lab has no such site.
    #[error("lab {lab} has no site {site:?} (sites: {known})")]
    NoSuchSite {
        lab: String,
        site: String,
        known: String,
    },
    /// The lab has no such VM.
    #[error("site {site} has no VM {vm:?} (VMs: {known})")]
    NoSuchVm {
        site: String,
        vm: String,
        known: String,
    },
    /// `SITE/VM` was malformed.
    #[error("{0:?}: expected SITE/VM, e.g. azure/vm1")]
    BadTarget(String),
    /// The VM exists in the site but its namespace is not there (failed or torn down).
    #[error(
        "VM {0} is not running (its namespace {1} does not exist; see `hybridnet lab status`)"
    )]
    VmNotRunning(String, String),
    /// The sites' resources cannot be laid out as namespaces (e.g. colliding names).
    #[error("cannot lay out the lab: {0}")]
    Topology(#[from] crate::topology::TopologyError),
    /// Realizing resources in namespaces failed; the failed resources are marked Failed.
    #[error("realizing the lab failed: {0}")]
    Realize(#[from] crate::reconcile::ReconcileError),
    /// Tearing down failed; what is left is listed.
    #[error("tearing down lab {id}: {source}")]
    Teardown {
        id: String,
        #[source]
        source: crate::netns::NetnsError,
    },
}

fn site_err(site: &str) -> impl FnOnce(SiteError) -> LabError + '_ {
    move |source| LabError::Site {
        site: site.to_string(),
        source: Box::new(source),
    }
}

/// A running lab, opened from the registry.
pub struct Lab {
    /// Where its state lives.
    pub dir: LabDir,
    /// lab.json.
    pub record: LabRecord,
}

/// What `up` or `deploy` did.
#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    /// The lab id.
    pub lab_id: String,
    /// Resources created or updated by deployments.
    pub resource_changes: usize,
    /// Kernel changes made by realization (0 = nothing had to change).
    pub kernel_changes: usize,
    /// Resources whose realization failed, with the error.
    pub failed: Vec<(String, String)>,
}

impl ApplyReport {
    /// True when re-applying changed nothing at all.
    pub fn unchanged(&self) -> bool {
        self.resource_changes == 0 && self.kernel_changes == 0
    }
}

impl Lab {
    /// Opens the lab a selector names.
    pub fn open(root: &Path, sel: &LabSelector) -> Result<Lab, LabError> {
        let dir = state::select(root, sel)?;
        let record = dir.record()?;
        Ok(Lab { dir, record })
    }

    /// The lab's id.
    pub fn id(&self) -> &LabId {
        &self.record.id
    }

    /// Opens one site's control plane.
    pub fn site(&self, name: &str) -> Result<Site, LabError> {
        if !self.record.sites.iter().any(|s| s.name == name) {
            return Err(LabError::NoSuchSite {
                lab: self.record.id.to_string(),
                site: name.to_string(),
                known: self
                    .record
                    .sites
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let mut site = Site::open(&self.dir.sites_path(), name).map_err(site_err(name))?;
        site.set_realized_types(REALIZED_TYPES);
        Ok(site)
    }

    /// Namespace of `SITE/VM` or `SITE/GATEWAY` (checked against the site's resources and the
    /// kernel), for `lab exec`.
    pub fn vm_netns(&self, target: &str) -> Result<String, LabError> {
        let (site_name, vm) = target
            .split_once('/')
            .ok_or_else(|| LabError::BadTarget(target.to_string()))?;
        if site_name.is_empty() || vm.is_empty() {
            return Err(LabError::BadTarget(target.to_string()));
        }
        let site = self.site(site_name)?;
        let resources = site.resources().map_err(site_err(site_name))?;
        let vms: Vec<&str> = resources
            .iter()
            .filter_map(|r| match r {
                Resource::VirtualMachine(v) => Some(v.meta.name.as_str()),
                _ => None,
            })
            .collect();
        let gateways: Vec<&str> = resources
            .iter()
            .filter_map(|r| match r {
                Resource::VirtualNetworkGateway(g) => Some(g.meta.name.as_str()),
                _ => None,
            })
            .collect();
        let ns = if let Some(name) = vms.iter().find(|n| n.eq_ignore_ascii_case(vm)) {
            self.record.id.vm_netns(site_name, name)
        } else if let Some(name) = gateways.iter().find(|n| n.eq_ignore_ascii_case(vm)) {
            self.record.id.gateway_netns(site_name, name)
        } else {
            let mut known = vms.join(", ");
            if !gateways.is_empty() {
                known.push_str(&format!("; gateways: {}", gateways.join(", ")));
            }
            return Err(LabError::NoSuchVm {
                site: site_name.to_string(),
                vm: vm.to_string(),
                known,
            });
        };
        if !crate::netns::netns_exists(&ns) {
            return Err(LabError::VmNotRunning(target.to_string(), ns));
        }
        Ok(ns)
    }

    /// Applies one deployment (template + parameters) to a site, then realizes the lab.
    /// A rejected deployment changes no resource and no namespace; it is recorded as failed.
    pub fn deploy(
        &self,
        req: &DeployRequest,
        progress: &mut Progress,
    ) -> Result<ApplyReport, LabError> {
        let _lock = self.dir.lock()?;
        // What `lab up` last recorded, read under the lock (it may have changed since open).
        let lab = Lab {
            dir: self.dir.clone(),
            record: self.dir.record()?,
        };
        let mut report = ApplyReport {
            lab_id: lab.record.id.to_string(),
            ..Default::default()
        };
        report.resource_changes += lab.apply_deployment(req, progress)?;
        lab.realize(&mut report, progress)?;
        Ok(report)
    }

    fn apply_deployment(
        &self,
        req: &DeployRequest,
        progress: &mut Progress,
    ) -> Result<usize, LabError> {
        let mut site = self.site(&req.site)?;
        let template_text =
            std::fs::read_to_string(&req.template).map_err(|source| LabError::ReadFile {
                path: req.template.clone(),
                source,
            })?;
        let mut params = Map::new();
        if let Some(pf) = &req.parameters_file {
            let text = std::fs::read_to_string(pf).map_err(|source| LabError::ReadFile {
                path: pf.clone(),
                source,
            })?;
            params = arm::parse_parameters(&text).map_err(|source| LabError::ParameterFile {
                path: pf.clone(),
                source,
            })?;
        }
        for (k, v) in &req.set {
            let resolved = substitute(v, &|r, text| self.resolve(r, text)).map_err(|source| {
                LabError::Substitution {
                    deployment: req.name.clone(),
                    parameter: k.clone(),
                    source,
                }
            })?;
            params.insert(k.clone(), resolved);
        }
        let label = format!("deploy {} -> {}", req.name, req.site);
        progress.step(&label, || {
            let options = self.plan_options(&req.site)?;
            let plan = match site.plan_with(&template_text, params.clone(), &req.name, &options) {
                Ok(p) => p,
                Err(source) => {
                    // Recorded so status shows the failed deployment; resources are untouched.
                    let _ =
                        site.record_failed_deployment(&template_text, &params, &req.name, &source);
                    return Err(LabError::Deployment {
                        deployment: req.name.clone(),
                        site: req.site.clone(),
                        template: req.template.display().to_string(),
                        source: Box::new(source),
                    });
                }
            };
            let count = |a: ChangeAction| plan.changes.iter().filter(|c| c.action == a).count();
            let (created, updated, same, deleted) = (
                count(ChangeAction::Create),
                count(ChangeAction::Update),
                count(ChangeAction::NoChange),
                count(ChangeAction::Delete),
            );
            site.apply(plan).map_err(site_err(&req.site))?;
            Ok((
                created + updated + deleted,
                format!(
                    "{created} created, {updated} updated, {deleted} deleted, {same} unchanged"
                ),
            ))
        })
    }

    /// How deployments to `site` are planned: only its locations (when it declares some),
    /// with the other sites' resources visible to references (e.g. a Vnet2Vnet peer gateway).
    fn plan_options(&self, site: &str) -> Result<site::PlanOptions, LabError> {
        let spec = self.record.sites.iter().find(|s| s.name == site);
        let locations = spec
            .filter(|s| !s.locations.is_empty())
            .map(|s| s.locations.clone());
        let mut foreign = Vec::new();
        if locations.is_some() {
            for other in self.record.sites.iter().filter(|s| s.name != site) {
                if let Ok(o) = Site::open(&self.dir.sites_path(), &other.name) {
                    foreign.extend(o.resources().map_err(site_err(&other.name))?);
                }
            }
        }
        Ok(site::PlanOptions {
            mode: site::DeploymentMode::Incremental,
            locations,
            foreign,
        })
    }

    /// Resolves `${…}` references against the lab's sites.
    fn resolve(&self, r: &Reference, text: &str) -> Result<Value, SubstError> {
        let unresolved = |reason: String| SubstError::Unresolved {
            reference: text.to_string(),
            reason,
        };
        match r {
            Reference::Output { deployment, output } => {
                for s in &self.record.sites {
                    let site = Site::open(&self.dir.sites_path(), &s.name)
                        .map_err(|e| unresolved(e.to_string()))?;
                    let deps = site.deployments().map_err(|e| unresolved(e.to_string()))?;
                    if let Some(d) = deps.iter().find(|d| &d.name == deployment) {
                        return d
                            .outputs
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(output))
                            .map(|(_, v)| v.clone())
                            .ok_or_else(|| {
                                unresolved(format!(
                                    "deployment {deployment:?} has no output {output:?} (outputs: {})",
                                    d.outputs.keys().cloned().collect::<Vec<_>>().join(", ")
                                ))
                            });
                    }
                }
                Err(unresolved(format!(
                    "no deployment named {deployment:?} has been applied (yet)"
                )))
            }
            Reference::PublicIp { site, name } => {
                let s = self.site(site).map_err(|e| unresolved(e.to_string()))?;
                let resources = s.resources().map_err(|e| unresolved(e.to_string()))?;
                resources
                    .iter()
                    .find_map(|r| match r {
                        Resource::PublicIpAddress(p) if p.meta.name.eq_ignore_ascii_case(name) => {
                            Some(Value::String(p.ip_address.to_string()))
                        }
                        _ => None,
                    })
                    .ok_or_else(|| {
                        unresolved(format!("site {site} has no public IP named {name:?}"))
                    })
            }
            Reference::PublicPrefix { site } => self
                .record
                .sites
                .iter()
                .find(|s| &s.name == site)
                .map(|s| Value::String(s.public_prefix.to_string()))
                .ok_or_else(|| unresolved(format!("no site named {site:?}"))),
        }
    }

    /// Builds the topology from every site's resources, reconciles the kernel with it, and
    /// records each realized resource's provisioning state.
    fn load_sites(&self) -> Result<Vec<(Site, Vec<Resource>)>, LabError> {
        let mut sites: Vec<(Site, Vec<Resource>)> = Vec::new();
        for s in &self.record.sites {
            let site = self.site(&s.name)?;
            let resources = site.resources().map_err(site_err(&s.name))?;
            sites.push((site, resources));
        }
        Ok(sites)
    }

    /// The lab's network as realized from the sites' current resources: every VNet, VM and
    /// gateway with its namespace, addresses and public IPs. Gateway runners use it to find
    /// where to start (`LabId::gateway_netns`, interfaces `lan`/`wan`); resources that cannot be
    /// realized are left out (they are Failed in their site).
    pub fn topology(&self) -> Result<Topology, LabError> {
        let sites = self.load_sites()?;
        Ok(crate::site_topology::build(&self.record.id, &self.record.sites, &sites).topology)
    }

    fn realize(&self, report: &mut ApplyReport, progress: &mut Progress) -> Result<(), LabError> {
        let mut sites = self.load_sites()?;
        let built = crate::site_topology::build(&self.record.id, &self.record.sites, &sites);
        let desired = match built.topology.desired_state() {
            Ok(d) => d,
            Err(e) => {
                // The layout as a whole cannot be realized (e.g. colliding names).
                let msg = e.to_string();
                for (site, resources) in sites.iter_mut() {
                    for r in resources
                        .iter()
                        .filter(|r| REALIZED_TYPES.contains(&r.resource_type()))
                    {
                        set_state(site, r, ProvisioningState::Failed { error: msg.clone() })?;
                    }
                }
                return Err(LabError::Topology(e));
            }
        };
        let started = Instant::now();
        let result = reconcile(&self.record.id.netns_prefix(), &desired, &mut |line| {
            progress.note(&format!("  {line}"))
        });
        let detail = match &result {
            Ok(rep) if rep.changes.is_empty() => {
                format!("{} namespaces, no changes", desired.netns.len())
            }
            Ok(rep) if rep.failed.is_empty() => format!(
                "{} namespaces, {} change(s)",
                desired.netns.len(),
                rep.changes.len()
            ),
            Ok(rep) => format!(
                "{} namespaces, {} change(s), {} FAILED",
                desired.netns.len(),
                rep.changes.len(),
                rep.failed.len()
            ),
            Err(_) => "FAILED".to_string(),
        };
        progress.finish("realize namespaces", started, &detail);
        let _ = self.dir.write_realized(&desired);
        let failed_ns: Vec<(Option<String>, String)> = match &result {
            Ok(rep) => rep
                .failed
                .iter()
                .map(|e| (Some(e.netns.clone()), e.to_string()))
                .collect(),
            Err(e) => vec![(None, e.to_string())],
        };
        // Provisioning states: Failed for what failed (and what did not map), else Succeeded.
        // A namespace owned by no resource (internet, NAT device) fails the public IPs; a
        // failure to create or remove namespaces at all fails everything realized.
        let mut failures: BTreeMap<String, String> = built
            .failures
            .iter()
            .map(|(id, e)| (id.clone(), e.to_string()))
            .collect();
        for (ns, msg) in &failed_ns {
            match ns.as_ref().and_then(|ns| built.owners.get(ns)) {
                Some(ids) => {
                    for id in ids {
                        failures.insert(id.to_lowercase(), msg.clone());
                    }
                }
                None => {
                    let everything = ns.is_none();
                    for (_, resources) in &sites {
                        for r in resources.iter().filter(|r| {
                            REALIZED_TYPES.contains(&r.resource_type())
                                && (everything || matches!(r, Resource::PublicIpAddress(_)))
                        }) {
                            failures
                                .entry(r.id().to_lowercase())
                                .or_insert_with(|| msg.clone());
                        }
                    }
                }
            }
        }
        // Gateway processes: one per VNet gateway whose namespace is up, serving its connections.
        let mut pending: BTreeMap<String, String> = BTreeMap::new();
        let mut devices_before = Vec::new();
        if self.record.external_gateways {
            // Processes the lab started before it was told to run none are stopped.
            gateways::converge(&self.dir.path, &[]);
            for (_, resources) in &sites {
                for r in resources
                    .iter()
                    .filter(|r| matches!(r, Resource::Connection(_)))
                {
                    pending.insert(
                        r.id().to_lowercase(),
                        "the lab runs no gateway processes (lab up --no-gateways); the VPN device is yours to run".into(),
                    );
                }
            }
        } else {
            let started = Instant::now();
            let (mut runs, conn_failures) = gateways::plan(&self.dir.path, &built.topology, &sites);
            for (id, msg) in conn_failures {
                failures.entry(id).or_insert(msg);
            }
            // A gateway whose namespace failed runs nothing; its connections fail with it.
            for run in runs.iter_mut() {
                if let Some(err) = failures.get(&run.gateway_id.to_lowercase()).cloned() {
                    run.config = None;
                    for c in &run.connections {
                        failures
                            .entry(c.to_lowercase())
                            .or_insert_with(|| format!("its gateway failed: {err}"));
                    }
                }
            }
            // A running strongSwan device takes its changed export before the gateways restart,
            // so both ends of a tunnel change keys and policies together.
            devices_before = crate::strongswan_site::converge(
                &self.dir.path,
                &self.record.id,
                &self.record.sites,
                &built.topology,
                &sites,
                true,
            );
            let results = gateways::converge(&self.dir.path, &runs);
            let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
            for (run, result) in &results {
                match result {
                    Ok(a) => {
                        *counts
                            .entry(match a {
                                gateways::GatewayAction::Started => "started",
                                gateways::GatewayAction::Restarted => "restarted",
                                gateways::GatewayAction::Reloaded => "reloaded",
                                gateways::GatewayAction::Unchanged => "unchanged",
                                gateways::GatewayAction::Stopped => "stopped",
                            })
                            .or_default() += 1;
                        if *a != gateways::GatewayAction::Unchanged {
                            report.kernel_changes += 1;
                        }
                    }
                    Err(e) => {
                        *counts.entry("FAILED").or_default() += 1;
                        let msg = e.to_string();
                        failures.insert(run.gateway_id.to_lowercase(), msg.clone());
                        for c in &run.connections {
                            failures
                                .entry(c.to_lowercase())
                                .or_insert_with(|| format!("its gateway process failed: {msg}"));
                        }
                    }
                }
            }
            let detail = if counts.is_empty() {
                "none".to_string()
            } else {
                counts
                    .iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            progress.finish("gateway processes", started, &detail);
        }
        progress.step("record provisioning states", || {
            let mut written = 0;
            for (site, resources) in sites.iter_mut() {
                for r in resources
                    .iter()
                    .filter(|r| REALIZED_TYPES.contains(&r.resource_type()))
                {
                    let state = match (
                        failures.get(&r.id().to_lowercase()),
                        pending.get(&r.id().to_lowercase()),
                    ) {
                        (Some(err), _) => ProvisioningState::Failed { error: err.clone() },
                        (None, Some(reason)) => ProvisioningState::Pending {
                            reason: reason.clone(),
                        },
                        (None, None) => ProvisioningState::Succeeded,
                    };
                    if set_state(site, r, state)? {
                        written += 1;
                    }
                }
            }
            Ok::<_, LabError>(((), format!("{written} updated")))
        })?;
        report.failed = failures.into_iter().collect();
        if self.record.external_gateways {
            // `--no-gateways`: the lab runs no VPN device either; one it started earlier stops.
            crate::strongswan_site::stop_all(&self.record.id, &self.record.sites);
        } else {
            // On-premises strongSwan devices, configured from the device config exports, which
            // are made now that the cloud side's provisioning states are recorded.
            let started = Instant::now();
            let outcomes = crate::strongswan_site::merge(
                devices_before,
                crate::strongswan_site::converge(
                    &self.dir.path,
                    &self.record.id,
                    &self.record.sites,
                    &built.topology,
                    &sites,
                    false,
                ),
            );
            if !outcomes.is_empty() {
                let detail = crate::strongswan_site::summary(&outcomes);
                progress.finish("strongSwan devices", started, &detail);
            }
            let failed = crate::strongswan_site::failures(&outcomes);
            for (site, resources) in sites.iter_mut() {
                for r in resources.iter() {
                    if let Some(msg) = failed.get(&r.id().to_lowercase()) {
                        set_state(site, r, ProvisioningState::Failed { error: msg.clone() })?;
                        report.failed.push((r.id().to_lowercase(), msg.clone()));
                    }
                }
            }
        }
        match result {
            Ok(rep) => {
                report.kernel_changes += rep.changes.len();
                Ok(())
            }
            Err(e) => Err(LabError::Realize(e)),
        }
    }
}

/// Records a resource's provisioning state if it differs; returns whether it wrote.
fn set_state(site: &mut Site, r: &Resource, state: ProvisioningState) -> Result<bool, LabError> {
    if r.provisioning_state() == &state {
        return Ok(false);
    }
    let name = site.info().name.clone();
    site.set_provisioning_state(r.id(), state)
        .map_err(site_err(&name))?;
    Ok(true)
}

/// One deployment to apply: what `hybridnet deploy` and each lab.yaml step amount to.
#[derive(Clone, Debug)]
pub struct DeployRequest {
    /// Deployment name.
    pub name: String,
    /// Target site.
    pub site: String,
    /// Template file.
    pub template: PathBuf,
    /// Optional parameter file.
    pub parameters_file: Option<PathBuf>,
    /// Inline parameters (with `${…}` substitution), overriding the file.
    pub set: Map<String, Value>,
}

impl DeployRequest {
    /// The request for a lab.yaml deployment step (paths relative to the lab directory).
    pub fn from_spec(dir: &Path, d: &DeploymentSpec) -> DeployRequest {
        DeployRequest {
            name: d.name.clone(),
            site: d.site.clone(),
            template: dir.join(&d.template),
            parameters_file: d.parameters.as_ref().map(|p| dir.join(p)),
            set: d.set.clone(),
        }
    }

    /// Parses `--set NAME=VALUE`: VALUE is taken as JSON when it is a number, boolean, array,
    /// object or quoted string, and as a plain string otherwise.
    pub fn parse_set(arg: &str) -> Result<(String, Value), LabError> {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| LabError::BadSet(arg.to_string()))?;
        if k.is_empty() {
            return Err(LabError::BadSet(arg.to_string()));
        }
        let value = match serde_json::from_str::<Value>(v) {
            Ok(j) if !j.is_null() => j,
            _ => Value::String(v.to_string()),
        };
        Ok((k.to_string(), value))
    }
}

/// `lab up DIR`: creates or reuses the lab of `dir`, applies its deployments, realizes it.
pub fn up(root: &Path, dir: &Path, progress: &mut Progress) -> Result<ApplyReport, LabError> {
    up_with(root, dir, &UpOptions::default(), progress)
}

/// How `lab up` realizes a lab.
#[derive(Clone, Debug, Default)]
pub struct UpOptions {
    /// Lay the gateways' namespaces and wires but run no gateway process (remembered by the
    /// lab, so later deployments do not start any either).
    pub no_gateways: bool,
}

/// `lab up DIR` with options.
pub fn up_with(
    root: &Path,
    dir: &Path,
    opts: &UpOptions,
    progress: &mut Progress,
) -> Result<ApplyReport, LabError> {
    let spec = LabSpec::load(dir)?;
    let canon = state::canonical_dir(dir)?;
    let (lab, _lock) = open_or_register(root, &canon, &spec, opts)?;
    progress.note(&format!(
        "lab {} from {} (state {})",
        lab.id(),
        canon.display(),
        lab.dir.path.display()
    ));
    for s in &spec.sites {
        progress.step(&format!("site {}", s.name), || {
            let options = site::SiteOptions {
                subscription_id: s
                    .resource_group
                    .as_ref()
                    .map(|rg| format!("hybridnet-{rg}")),
                resource_group: s.resource_group.clone(),
                location: s.locations.first().cloned(),
            };
            Site::create_with(
                &lab.dir.sites_path(),
                &s.name,
                &s.kind,
                s.public_prefix,
                &options,
            )
            .map_err(site_err(&s.name))?;
            Ok::<_, LabError>((
                (),
                format!(
                    "kind {}, public prefix {}{}",
                    s.kind,
                    s.public_prefix,
                    if s.nat { ", behind NAT" } else { "" }
                ),
            ))
        })?;
    }
    let mut report = ApplyReport {
        lab_id: lab.id().to_string(),
        ..Default::default()
    };
    for d in &spec.deployments {
        let req = DeployRequest::from_spec(&canon, d);
        report.resource_changes += lab.apply_deployment(&req, progress)?;
    }
    lab.realize(&mut report, progress)?;
    Ok(report)
}

/// The lab of `canon` with its lock held and lab.json updated from `spec`, or a new lab
/// registered for it. The registry lock makes the lookup and the registration one step, so
/// two `lab up` of one directory build one lab; nothing of a lab is written before its lock
/// is held.
fn open_or_register(
    root: &Path,
    canon: &Path,
    spec: &LabSpec,
    opts: &UpOptions,
) -> Result<(Lab, state::FileLock), LabError> {
    // A `lab down` may remove the lab while we wait for its lock: then look again.
    for _ in 0..5 {
        let registry = state::lock_registry(root)?;
        if let Some((dir, _)) = state::find_by_dir(root, canon)? {
            drop(registry);
            let lock = match dir.lock() {
                Ok(l) => l,
                Err(StateError::NoSuchLab(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut record = dir.record()?;
            if record.source_dir != canon {
                continue;
            }
            record.sites = spec.sites.clone();
            record.external_gateways = opts.no_gateways;
            dir.write_record(&lock, &record)?;
            return Ok((Lab { dir, record }, lock));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let record = LabRecord {
            id: state::fresh_id(root),
            source_dir: canon.to_path_buf(),
            sites: spec.sites.clone(),
            created_unix: now,
            external_gateways: opts.no_gateways,
        };
        // lab.json exists before any namespace does, so a crash can always be cleaned up.
        let (dir, lock) = LabDir::create(root, &registry, &record)?;
        return Ok((Lab { dir, record }, lock));
    }
    Err(StateError::NoLabForDir(canon.to_path_buf()).into())
}

/// What `down` removed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct DownReport {
    /// The lab id.
    pub lab_id: String,
    /// Namespaces removed.
    pub namespaces: Vec<String>,
    /// Whether a state directory was removed.
    pub state_removed: bool,
}

/// `lab down`: removes every namespace with the lab's prefix (killing the processes in them)
/// and the lab's state directory. Works after a crash and without lab.json (by id).
pub fn down(root: &Path, sel: &LabSelector) -> Result<DownReport, LabError> {
    let dir = match sel {
        LabSelector::Id(id) => LabDir::new(root, id),
        other => state::select(root, other)?,
    };
    let id = dir.id.clone();
    let had_state = dir.path.exists();
    // Wait (a little) for a running `lab up` or `deploy` of this lab to finish, so it does not
    // recreate what is being removed; a crashed one holds no lock.
    let _lock = if had_state {
        dir.lock_within(std::time::Duration::from_secs(10))
    } else {
        None
    };
    let namespaces = teardown(&id.netns_prefix()).map_err(|source| LabError::Teardown {
        id: id.to_string(),
        source,
    })?;
    if !had_state && namespaces.is_empty() {
        return Err(StateError::NoSuchLab(id.to_string()).into());
    }
    dir.remove()?;
    Ok(DownReport {
        lab_id: id.to_string(),
        namespaces,
        state_removed: had_state,
    })
}

/// Realized view of a lab for `lab status`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabStatus {
    /// Lab id.
    pub id: String,
    /// Directory the lab was built from.
    pub source_dir: PathBuf,
    /// State directory.
    pub state_dir: PathBuf,
    /// The internet namespace and whether it exists.
    pub internet: NetnsStatus,
    /// Per-site status.
    pub sites: Vec<SiteStatus>,
    /// Every namespace last realized, with what it and each of its interfaces stand for
    /// (interface names are compact, so this is the map from kernel objects to resources).
    pub namespaces: Vec<Value>,
    /// On-premises strongSwan devices (sites of kind `strongswan`) with their SAs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub strongswan_devices: Vec<crate::strongswan_site::DeviceStatus>,
}

/// A namespace and whether it exists now.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetnsStatus {
    /// Namespace name.
    pub netns: String,
    /// Whether it exists in the kernel.
    pub exists: bool,
}

/// One site in `lab status`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteStatus {
    /// Site name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Public prefix.
    pub public_prefix: String,
    /// Behind NAT.
    pub nat: bool,
    /// The internet router's address on the site's public prefix.
    pub internet_address: Option<String>,
    /// The NAT device's namespace, for a site behind NAT with gateways.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat_device: Option<NetnsStatus>,
    /// VNets.
    pub virtual_networks: Vec<VnetStatus>,
    /// VMs.
    pub virtual_machines: Vec<VmStatus>,
    /// Public IPs.
    pub public_ip_addresses: Vec<Value>,
    /// Everything else (gateways, local network gateways, …) with its provisioning state.
    pub other_resources: Vec<Value>,
    /// Connections with their live status (`connectionStatus`, byte counters, why not up).
    pub connections: Vec<ConnectionStatus>,
    /// Deployments, oldest first.
    pub deployments: Vec<Value>,
    /// Why the site's store could not be read (e.g. a `lab up` crashed before creating it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One VNet in `lab status`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VnetStatus {
    /// Name.
    pub name: String,
    /// Address space.
    pub address_space: Vec<String>,
    /// provisioningState (`Succeeded`, `Failed`, …).
    pub provisioning_state: String,
    /// The error when Failed, the reason when Pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Router namespace.
    pub router: NetnsStatus,
    /// Subnets with their bridge interface.
    pub subnets: Vec<Value>,
}

/// One VM in `lab status`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VmStatus {
    /// Name.
    pub name: String,
    /// provisioningState.
    pub provisioning_state: String,
    /// The error when Failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The VM's namespace.
    pub netns: NetnsStatus,
    /// NICs: name, subnet, private IP, interface inside the VM.
    pub nics: Vec<Value>,
}

fn state_parts(s: &ProvisioningState) -> (String, Option<String>) {
    match s {
        ProvisioningState::Failed { error } => ("Failed".into(), Some(error.clone())),
        ProvisioningState::Pending { reason } => ("Pending".into(), Some(reason.clone())),
        other => (other.arm_name().into(), None),
    }
}

fn ns_status(name: String) -> NetnsStatus {
    let exists = crate::netns::netns_exists(&name);
    NetnsStatus {
        netns: name,
        exists,
    }
}

impl Lab {
    /// Everything `lab status` shows, read from the site stores and the kernel.
    pub fn status(&self) -> Result<LabStatus, LabError> {
        let id = self.id();
        let realized = self.dir.realized().unwrap_or_default();
        let mut sites = Vec::new();
        for spec in &self.record.sites {
            let opened = self.site(&spec.name).and_then(|site| {
                site.resources()
                    .map(|r| (site, r))
                    .map_err(site_err(&spec.name))
            });
            let net = SiteNet {
                name: spec.name.clone(),
                public_prefix: spec.public_prefix,
                vnets: vec![],
                vms: vec![],
                nat: spec.nat,
                gateways: vec![],
            };
            let topo = Topology {
                lab_id: id.clone(),
                sites: vec![],
            };
            let mut st = SiteStatus {
                name: spec.name.clone(),
                kind: spec.kind.clone(),
                public_prefix: spec.public_prefix.to_string(),
                nat: spec.nat,
                internet_address: net.internet_address().map(|a| a.to_string()),
                nat_device: spec.nat.then(|| ns_status(id.nat_netns(&spec.name))),
                virtual_networks: vec![],
                virtual_machines: vec![],
                public_ip_addresses: vec![],
                other_resources: vec![],
                connections: vec![],
                deployments: vec![],
                error: None,
            };
            let (site, resources) = match opened {
                Ok(x) => x,
                Err(e) => {
                    st.error = Some(e.to_string());
                    sites.push(st);
                    continue;
                }
            };
            for r in &resources {
                let (ps, err) = state_parts(r.provisioning_state());
                match r {
                    Resource::VirtualNetwork(v) => st.virtual_networks.push(VnetStatus {
                        name: v.meta.name.clone(),
                        address_space: v.address_space.iter().map(|p| p.to_string()).collect(),
                        provisioning_state: ps,
                        error: err,
                        router: ns_status(id.router_netns(&spec.name, &v.meta.name)),
                        subnets: v
                            .subnets
                            .iter()
                            .map(|s| {
                                serde_json::json!({
                                    "name": s.name,
                                    "addressPrefix": s.address_prefix.to_string(),
                                    "routerAddress": crate::topology::first_host(&s.address_prefix).map(|a| a.to_string()),
                                    "bridge": topo.subnet_bridge(&spec.name, &v.meta.name, &s.name),
                                })
                            })
                            .collect(),
                    }),
                    Resource::VirtualMachine(vm) => {
                        let vm_ns = id.vm_netns(&spec.name, &vm.meta.name);
                        let realized_links = realized.get(&vm_ns).map(|n| n.links.clone()).unwrap_or_default();
                        let mut nics = Vec::new();
                        let mut sorted = vm.network_interfaces.clone();
                        sorted.sort_by_key(|n| !n.primary);
                        for (i, vn) in sorted.iter().enumerate() {
                            let nic = resources.iter().find_map(|r| match r {
                                Resource::NetworkInterface(n) if site::same_id(&n.meta.id, &vn.id) => Some(n),
                                _ => None,
                            });
                            if let Some(n) = nic {
                                let ipc = n.primary().or(n.ip_configurations.first());
                                let public = ipc.and_then(|c| c.public_ip_address.as_ref()).and_then(|pid| {
                                    resources.iter().find_map(|r| match r {
                                        Resource::PublicIpAddress(p) if site::same_id(&p.meta.id, pid) => Some(p.ip_address.to_string()),
                                        _ => None,
                                    })
                                });
                                let ifname = format!("eth{i}");
                                nics.push(serde_json::json!({
                                    "name": n.meta.name,
                                    "subnet": ipc.map(|c| c.subnet.rsplit('/').next().unwrap_or("").to_string()),
                                    "privateIpAddress": ipc.map(|c| c.private_ip_address.to_string()),
                                    "publicIpAddress": public,
                                    "interface": realized_links.iter().any(|l| l.name == ifname).then_some(ifname),
                                }));
                            }
                        }
                        st.virtual_machines.push(VmStatus {
                            name: vm.meta.name.clone(),
                            provisioning_state: ps,
                            error: err,
                            netns: ns_status(vm_ns),
                            nics,
                        });
                    }
                    Resource::PublicIpAddress(p) => st.public_ip_addresses.push(serde_json::json!({
                        "name": p.meta.name,
                        "ipAddress": p.ip_address.to_string(),
                        "provisioningState": ps,
                        "error": err,
                    })),
                    Resource::NetworkInterface(_) => {}
                    Resource::Connection(c) => st.connections.push(self.connection_status(&spec.name, c)),
                    Resource::VirtualNetworkGateway(gw) => st.other_resources.push(serde_json::json!({
                        "type": r.resource_type(),
                        "name": gw.meta.name,
                        "provisioningState": ps,
                        "reason": err,
                        "privateIpAddress": gw.ip_configurations.first().map(|c| c.private_ip_address.to_string()),
                        "netns": ns_status(id.gateway_netns(&spec.name, &gw.meta.name)),
                        "gatewayProcess": self.gateway_process(&spec.name, &gw.meta.name),
                    })),
                    other => st.other_resources.push(serde_json::json!({
                        "type": other.resource_type(),
                        "name": other.name(),
                        "provisioningState": ps,
                        "reason": err,
                    })),
                }
            }
            for d in site.deployments().map_err(site_err(&spec.name))? {
                let (state, error) = match &d.state {
                    site::DeploymentState::Succeeded => ("Succeeded", None),
                    site::DeploymentState::Failed { error } => ("Failed", Some(error.clone())),
                };
                st.deployments.push(serde_json::json!({
                    "name": d.name, "state": state, "error": error, "outputs": d.outputs,
                }));
            }
            sites.push(st);
        }
        Ok(LabStatus {
            id: id.to_string(),
            source_dir: self.record.source_dir.clone(),
            state_dir: self.dir.path.clone(),
            internet: ns_status(id.internet_netns()),
            sites,
            namespaces: realized
                .netns
                .iter()
                .map(|n| {
                    serde_json::json!({
                        "netns": n.name,
                        "role": n.role,
                        "exists": crate::netns::netns_exists(&n.name),
                        "interfaces": n.links.iter().map(|l| serde_json::json!({
                            "name": l.name,
                            "role": l.role,
                            "addresses": l.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect(),
            strongswan_devices: self
                .topology()
                .map(|t| crate::strongswan_site::status(&self.dir.path, &t, &self.record.sites))
                .unwrap_or_default(),
        })
    }

    /// The process the lab runs for gateway `gateway` of `site`, as `lab status` shows it
    /// (`None` when the lab runs none for it).
    pub fn gateway_process(&self, site: &str, gateway: &str) -> Option<GatewayProcessStatus> {
        let rec = gateways::record(&self.dir.path, site, gateway)?;
        let alive = gateways::alive(&rec);
        let sup = gateways::supervision(&rec).filter(|_| alive);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Some(GatewayProcessStatus {
            running: alive
                && (!rec.supervised || sup.as_ref().is_some_and(|s| s.child_pid.is_some())),
            supervisor_pid: rec.supervised.then_some(rec.pid),
            pid: if rec.supervised {
                sup.as_ref().and_then(|s| s.child_pid)
            } else {
                alive.then_some(rec.pid)
            },
            restarts: sup.as_ref().map(|s| s.restarts).unwrap_or(0),
            last_exit: sup.as_ref().and_then(|s| s.last_exit.clone()),
            next_restart_in_ms: sup
                .as_ref()
                .and_then(|s| s.next_start_unix_ms)
                .map(|t| t.saturating_sub(now_ms)),
            log: rec.log,
        })
    }

    /// What was realized last (namespaces, interfaces and what each stands for).
    pub fn realized(&self) -> DesiredState {
        self.dir.realized().unwrap_or_default()
    }
}

/// A VNet gateway's process in `lab status`: the supervisor, the gateway process it runs,
/// and how often (and why) it had to be restarted.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayProcessStatus {
    /// Whether the gateway process runs now.
    pub running: bool,
    /// The supervisor's pid.
    pub supervisor_pid: Option<i32>,
    /// The gateway process's pid, while it runs.
    pub pid: Option<i32>,
    /// How many times it died and was started again by its supervisor.
    pub restarts: u32,
    /// Why and when it last died.
    pub last_exit: Option<crate::supervisor::ChildExit>,
    /// When it dies, how long until the supervisor starts it again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_restart_in_ms: Option<u64>,
    /// Its log (supervisor and gateway).
    pub log: PathBuf,
}

/// One connection's status as Azure reports it, and better (`lab status`).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    /// Site holding the connection.
    pub site: String,
    /// Connection name.
    pub name: String,
    /// Its VNet gateway's name.
    pub gateway: String,
    /// provisioningState.
    pub provisioning_state: String,
    /// `connectionStatus`: Unknown, Connecting, Connected or NotConnected.
    pub connection_status: String,
    /// `ingressBytesTransferred` (decrypted bytes received), when a gateway reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_bytes_transferred: Option<u64>,
    /// `egressBytesTransferred` (bytes sent into the tunnel), when a gateway reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_bytes_transferred: Option<u64>,
    /// Why it is not connected, in plain words (`None` when connected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The connection as `az network vpn-connection show` prints it (properties with
    /// `connectionStatus`, byte counters, `tunnelConnectionStatus`; extras under `hybridnet`:
    /// negotiated algorithms, last connected time, last error).
    pub resource: Value,
}

impl Lab {
    /// Every connection of every site with its live status from its gateway process.
    pub fn connections(&self) -> Result<Vec<ConnectionStatus>, LabError> {
        let mut out = Vec::new();
        for spec in &self.record.sites {
            let site = self.site(&spec.name)?;
            let resources = site.resources().map_err(site_err(&spec.name))?;
            for r in &resources {
                let Resource::Connection(c) = r else { continue };
                out.push(self.connection_status(&spec.name, c));
            }
        }
        Ok(out)
    }

    fn connection_status(&self, site: &str, c: &site::Connection) -> ConnectionStatus {
        let gw = c
            .virtual_network_gateway1
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let (ps, ps_err) = state_parts(&c.meta.provisioning_state);
        let live: Result<devconfig::LiveConnection, String> = match gateways::record(&self.dir.path, site, &gw) {
            None if self.record.external_gateways => Err("the lab runs no gateway processes (lab up --no-gateways)".into()),
            None => Err(match &ps_err {
                Some(e) => e.clone(),
                None => format!("no gateway process runs for gateway {gw}"),
            }),
            Some(rec) if !gateways::alive(&rec) => Err(format!(
                "the gateway process of {gw} (pid {}) is not running; `hybridnet lab up` restarts it (log: {})",
                rec.pid,
                rec.log.display()
            )),
            Some(rec) => match gateway::status::query(&rec.control) {
                Err(e) => Err(match gateways::supervision(&rec) {
                    Some(st) if st.child_pid.is_none() => format!(
                        "the gateway process of {gw} is being restarted by its supervisor (restart {}{}; log: {})",
                        st.restarts,
                        st.last_exit.map(|x| format!(", last: {}", x.reason)).unwrap_or_default(),
                        rec.log.display()
                    ),
                    _ => format!("gateway {gw}: {e}"),
                }),
                Ok(st) => {
                    let pid = st.pid;
                    match st.connections.into_iter().find(|x| x.name == c.meta.name) {
                        Some(report) => Ok(devconfig::LiveConnection {
                            source: format!("gateway control socket {} (pid {pid})", rec.control.display()),
                            report,
                        }),
                        None => Err(match &ps_err {
                            Some(e) => e.clone(),
                            None => format!("gateway {gw} does not run this connection (yet); redeploy to apply"),
                        }),
                    }
                }
            },
        };
        let mut view = devconfig::connection_view(c, live.as_ref().ok());
        let (status, reason, ingress, egress) = match &live {
            Ok(l) => {
                let st = crate::verify::connection_status(&l.report);
                if let Some(props) = view.get_mut("properties").and_then(|p| p.as_object_mut()) {
                    props.insert("connectionStatus".into(), serde_json::json!(st));
                    if let Some(Value::Array(tunnels)) = props.get_mut("tunnelConnectionStatus") {
                        for t in tunnels.iter_mut() {
                            t["connectionStatus"] = serde_json::json!(st);
                        }
                    }
                }
                let mut why = crate::verify::explain(&l.report);
                // The initiator only hears NO_PROPOSAL_CHOSEN; the lab knows the peer's list.
                if let Some(w) = why
                    .as_mut()
                    .filter(|w| w.contains("peer's proposals not known"))
                {
                    if let Some(peer) = self.peer_policy(&l.report.remote_address) {
                        w.push_str(&format!("; the peer ({peer}) per its configuration"));
                    }
                }
                (
                    st.to_string(),
                    why,
                    Some(l.report.inbound.bytes),
                    Some(l.report.outbound.bytes),
                )
            }
            Err(why) => ("Unknown".to_string(), Some(why.clone()), None, None),
        };
        if let (Some(r), Some(extra)) = (
            &reason,
            view.get_mut("hybridnet").and_then(|x| x.as_object_mut()),
        ) {
            extra.insert("reason".into(), serde_json::json!(r));
        }
        ConnectionStatus {
            site: site.to_string(),
            name: c.meta.name.clone(),
            gateway: gw,
            provisioning_state: ps,
            connection_status: status,
            ingress_bytes_transferred: ingress,
            egress_bytes_transferred: egress,
            reason,
            resource: view,
        }
    }

    /// The proposals of the lab's connection(s) on the gateway holding public IP `address`,
    /// as text for a mismatch report: `site/connection: IKE [..], ESP [..]`.
    fn peer_policy(&self, address: &str) -> Option<String> {
        let address: std::net::Ipv4Addr = address.parse().ok()?;
        let mut found = Vec::new();
        for spec in &self.record.sites {
            let Ok(site) = self.site(&spec.name) else {
                continue;
            };
            let Ok(resources) = site.resources() else {
                continue;
            };
            let gateway_ids: Vec<&str> = resources
                .iter()
                .filter_map(|r| match r {
                    Resource::VirtualNetworkGateway(g) => {
                        let pip = &g.ip_configurations.first()?.public_ip_address;
                        resources
                            .iter()
                            .any(|p| matches!(p, Resource::PublicIpAddress(p) if site::same_id(&p.meta.id, pip) && p.ip_address == address))
                            .then_some(g.meta.id.as_str())
                    }
                    _ => None,
                })
                .collect();
            for r in &resources {
                let Resource::Connection(c) = r else { continue };
                if gateway_ids
                    .iter()
                    .any(|g| site::same_id(g, &c.virtual_network_gateway1))
                {
                    let p = c.effective_policy(site.kind());
                    found.push(format!(
                        "{}/{}: IKE [{}], ESP [{}]",
                        spec.name,
                        c.meta.name,
                        p.ike_proposals.join(", "),
                        p.esp_responder_proposals.join(", ")
                    ));
                }
            }
        }
        (!found.is_empty()).then(|| found.join("; "))
    }

    /// Waits until every connection served by a gateway process is Connected. Returns early
    /// (with the statuses) once the ones that are not have failed for a reason waiting will
    /// not fix (PSK or policy or selector mismatch), or at `timeout`.
    pub fn wait_connected(
        &self,
        timeout: std::time::Duration,
    ) -> Result<(bool, Vec<ConnectionStatus>), LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.connections()?;
            let served: Vec<&ConnectionStatus> = all
                .iter()
                .filter(|c| c.provisioning_state == "Succeeded")
                .collect();
            let up = served.iter().all(|c| c.connection_status == "Connected");
            let hopeless = served
                .iter()
                .filter(|c| c.connection_status != "Connected")
                .all(|c| {
                    c.resource["hybridnet"]["lastError"]
                        .as_str()
                        .is_some_and(|e| {
                            [
                                "AUTHENTICATION_FAILED",
                                "NO_PROPOSAL_CHOSEN",
                                "TS_UNACCEPTABLE",
                            ]
                            .iter()
                            .any(|k| e.starts_with(k))
                        })
                });
            if up || (hopeless && !served.is_empty()) || Instant::now() >= deadline {
                return Ok((up, all));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// VM pairs the lab's connected tunnels should carry traffic between: for each Connected
    /// connection, the first VM of its gateway's VNet and the first VM (of any other site)
    /// whose address lies in the connection's remote prefixes; each pair once.
    pub fn tunnel_vm_pairs(&self, connected: &[ConnectionStatus]) -> Result<Vec<VmPair>, LabError> {
        let topo = self.topology()?;
        let mut pairs: Vec<VmPair> = Vec::new();
        for c in connected
            .iter()
            .filter(|c| c.connection_status == "Connected")
        {
            let Some(net) = topo.sites.iter().find(|s| s.name == c.site) else {
                continue;
            };
            let Some(gw) = net.gateways.iter().find(|g| g.name == c.gateway) else {
                continue;
            };
            let Some((local_vm, local_addr)) = net.vms.iter().find_map(|v| {
                v.nics
                    .iter()
                    .find(|n| n.vnet == gw.vnet)
                    .map(|n| (v.name.clone(), n.address))
            }) else {
                continue;
            };
            let remote = topo
                .sites
                .iter()
                .filter(|s| s.name != c.site)
                .find_map(|s| {
                    s.vms.iter().find_map(|v| {
                        v.nics
                            .iter()
                            .find(|n| gw.remote_prefixes.iter().any(|p| p.contains(&n.address)))
                            .map(|n| (s.name.clone(), v.name.clone(), n.address))
                    })
                });
            let Some((rsite, rvm, raddr)) = remote else {
                continue;
            };
            let pair = VmPair {
                a: (
                    format!("{}/{}", c.site, local_vm),
                    self.record.id.vm_netns(&c.site, &local_vm),
                    local_addr,
                ),
                b: (
                    format!("{rsite}/{rvm}"),
                    self.record.id.vm_netns(&rsite, &rvm),
                    raddr,
                ),
            };
            if !pairs.iter().any(|p| {
                (p.a.0 == pair.a.0 && p.b.0 == pair.b.0) || (p.a.0 == pair.b.0 && p.b.0 == pair.a.0)
            }) {
                pairs.push(pair);
            }
        }
        Ok(pairs)
    }
}

/// Two VMs on either side of a tunnel: (`SITE/VM`, namespace, address) each.
#[derive(Debug, Clone)]
pub struct VmPair {
    /// One side.
    pub a: (String, String, std::net::Ipv4Addr),
    /// The other side.
    pub b: (String, String, std::net::Ipv4Addr),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_values_are_json_when_they_look_like_json() {
        let p = |s: &str| DeployRequest::parse_set(s).unwrap();
        assert_eq!(p("count=3"), ("count".into(), json!(3)));
        assert_eq!(p("on=true"), ("on".into(), json!(true)));
        assert_eq!(p("list=[\"a\",1]"), ("list".into(), json!(["a", 1])));
        assert_eq!(p("name=vm1"), ("name".into(), json!("vm1")));
        assert_eq!(
            p("prefix=10.1.0.0/16"),
            ("prefix".into(), json!("10.1.0.0/16"))
        );
        assert_eq!(p("quoted=\"42\""), ("quoted".into(), json!("42")));
        assert_eq!(p("empty="), ("empty".into(), json!("")));
        assert_eq!(
            p("ref=${sites.azure.publicPrefix}"),
            ("ref".into(), json!("${sites.azure.publicPrefix}"))
        );
        assert!(matches!(
            DeployRequest::parse_set("novalue"),
            Err(LabError::BadSet(_))
        ));
        assert!(matches!(
            DeployRequest::parse_set("=x"),
            Err(LabError::BadSet(_))
        ));
    }
}
