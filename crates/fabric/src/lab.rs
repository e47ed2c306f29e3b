//! A lab: `lab.yaml` + the registry + the sites' control planes + the realized namespaces.
//!
//! `up` creates (or reuses) the lab of a directory, applies its deployments in order
//! ([`crate::deploy`]), then realizes every site's resources and records each resource's
//! provisioning state (the `realize` module). `down` removes every namespace with the lab's
//! prefix (and the processes in them) and the state. What a running lab looks like is in
//! [`crate::status`] and [`crate::connections`].

use crate::deploy::DeployRequest;
use crate::names::LabId;
use crate::progress::Progress;
use crate::reconcile::teardown;
use crate::spec::{LabSpec, SiteSpec, SpecError, SubstError};
use crate::state::{self, LabDir, LabRecord, LabSelector, StateError};
use crate::topology::Topology;
use site::{Resource, Site, SiteError};
use std::path::{Path, PathBuf};

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
    "Microsoft.Network/networkSecurityGroups",
];

/// Why a lab operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The lab controller (the Resource Manager endpoints) did not start, or failed a request
    /// the CLI passed to it.
    #[error("{0}")]
    Controller(String),
    /// `lab up --metrics` could not start the lab's Prometheus.
    #[error(transparent)]
    Prometheus(#[from] crate::prometheus::PrometheusError),
    /// A connection's live status could not be read from its gateway.
    #[error("{0}")]
    LiveStatus(String),
    /// A connection or its peer device cannot be shown or configured.
    #[error(transparent)]
    DevConfig(#[from] devconfig::DevConfigError),
    /// A gateway's BGP lists cannot be given.
    #[error(transparent)]
    Bgp(#[from] crate::bgp_view::BgpViewError),
    /// A packet capture cannot be started or stopped.
    #[error(transparent)]
    Capture(#[from] crate::capture::CaptureError),
    /// lab.yaml is unreadable or inconsistent.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The registry on disk.
    #[error(transparent)]
    State(#[from] StateError),
    /// A site's control plane refused or failed (template errors name the template path).
    #[error("site {site}: {source}")]
    Site {
        /// The site concerned.
        site: String,
        #[source]
        /// The underlying error.
        source: Box<SiteError>,
    },
    /// A deployment was rejected; nothing of it was applied.
    #[error("deployment {deployment:?} to site {site} ({template}): {source}")]
    Deployment {
        /// The deployment concerned.
        deployment: String,
        /// The site concerned.
        site: String,
        /// The template concerned.
        template: String,
        #[source]
        /// The underlying error.
        source: Box<SiteError>,
    },
    /// A template or parameter file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// Where it is.
        path: PathBuf,
        #[source]
        /// The underlying error.
        source: std::io::Error,
    },
    /// A parameter file is not valid.
    #[error("{path}: {source}")]
    ParameterFile {
        /// Where it is.
        path: PathBuf,
        #[source]
        /// The underlying error.
        source: arm::ArmError,
    },
    /// A `${…}` substitution or `--set` value failed.
    #[error("deployment {deployment:?}, parameter {parameter}: {source}")]
    Substitution {
        /// The deployment concerned.
        deployment: String,
        /// The parameter.
        parameter: String,
        #[source]
        /// The underlying error.
        source: SubstError,
    },
    /// `--set` without `=`.
    #[error("--set {0:?}: expected NAME=VALUE")]
    BadSet(String),
    /// The lab has no such site.
    #[error("lab {lab} has no site {site:?} (sites: {known})")]
    NoSuchSite {
        /// The lab.
        lab: String,
        /// The site concerned.
        site: String,
        /// What is known (for the message).
        known: String,
    },
    /// The lab has no such VM.
    #[error("site {site} has no VM {vm:?} (VMs: {known})")]
    NoSuchVm {
        /// The site concerned.
        site: String,
        /// The virtual machine concerned.
        vm: String,
        /// What is known (for the message).
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
        /// The identifier concerned.
        id: String,
        #[source]
        /// The underlying error.
        source: crate::netns::NetnsError,
    },
}

pub(crate) fn site_err(site: &str) -> impl FnOnce(SiteError) -> LabError + '_ {
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
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
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
    /// The lab controller and its endpoints, when `up` started or found one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<crate::controller::ControllerRecord>,
    /// The lab's Prometheus, when `up --metrics` started or found one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<crate::prometheus::PrometheusRecord>,
}

impl ApplyReport {
    /// An empty report for lab `id`, to which each step adds its changes.
    pub fn new(id: &LabId) -> ApplyReport {
        ApplyReport {
            lab_id: id.to_string(),
            ..Default::default()
        }
    }

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
        // hybridnet's gateway speaks IKEv2: IKEv1 connections and policy-based gateways are
        // refused up front instead of being stored and left unrun.
        site.set_gateway_protocols(&[site::ConnectionProtocol::IKEv2]);
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

    /// Every site of the lab with its resources.
    pub(crate) fn load_sites(&self) -> Result<Vec<(Site, Vec<Resource>)>, LabError> {
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
    /// Start no lab controller (no Resource Manager endpoints).
    pub no_controller: bool,
    /// Start a Prometheus scraping the controller's metrics (`lab up --metrics`).
    pub metrics: bool,
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
        lab.create_site(s, progress)?;
    }
    let mut report = ApplyReport::new(lab.id());
    for d in &spec.deployments {
        let req = DeployRequest::from_spec(&canon, d);
        report.resource_changes += lab.apply_deployment(&req, progress)?;
    }
    lab.realize(&mut report, progress)?;
    if !opts.no_controller {
        progress.step("lab controller", || {
            let rec =
                crate::controller::ensure(&lab).map_err(|e| LabError::Controller(e.to_string()))?;
            let detail = match &rec {
                Some(r) => r
                    .endpoints
                    .iter()
                    .map(|e| format!("{} {}", e.site, e.url))
                    .collect::<Vec<_>>()
                    .join(", "),
                None => "no Azure-kind site: no Resource Manager endpoint".to_string(),
            };
            report.controller = rec;
            Ok::<_, LabError>(((), detail))
        })?;
    }
    if opts.metrics {
        progress.step("prometheus", || {
            let target = report
                .controller
                .as_ref()
                .and_then(|c| c.metrics_url.clone())
                .ok_or(crate::prometheus::PrometheusError::NoController)?;
            let rec = crate::prometheus::ensure(&lab.dir, &target)?;
            let detail = format!("{} scraping {}", rec.url, rec.target);
            report.prometheus = Some(rec);
            Ok::<_, LabError>(((), detail))
        })?;
    }
    Ok(report)
}

impl Lab {
    /// Creates a lab.yaml site's control plane, or opens the one a previous `up` created.
    fn create_site(&self, s: &SiteSpec, progress: &mut Progress) -> Result<(), LabError> {
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
                &self.dir.sites_path(),
                &s.name,
                &s.kind,
                s.public_prefix,
                &options,
            )
            .map_err(site_err(&s.name))?;
            let nat = if s.nat { ", behind NAT" } else { "" };
            let detail = format!("kind {}, public prefix {}{nat}", s.kind, s.public_prefix);
            Ok::<_, LabError>(((), detail))
        })
    }
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
    crate::controller::stop(&dir);
    crate::prometheus::stop(&dir);
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
