//! Realizing a lab: the sites' resources laid out as namespaces and reconciled with the
//! kernel, one gateway process per VNet gateway, a charon per strongSwan site, and each
//! realized resource's provisioning state recorded.

use crate::daemon::{self, DaemonAction};
use crate::desired::DesiredState;
use crate::gateways;
use crate::lab::{site_err, ApplyReport, Lab, LabError, REALIZED_TYPES};
use crate::progress::Progress;
use crate::reconcile::{reconcile, ReconcileError, ReconcileReport};
use crate::site_topology::SiteTopology;
use crate::strongswan_device::{self, DeviceOutcome};
use site::{ProvisioningState, Resource, Site};
use std::collections::BTreeMap;
use std::time::Instant;

impl Lab {
    /// Builds the topology from every site's resources, reconciles the kernel with it, runs
    /// the gateway processes and strongSwan devices, and records each realized resource's
    /// provisioning state.
    pub(crate) fn realize(
        &self,
        report: &mut ApplyReport,
        progress: &mut Progress,
    ) -> Result<(), LabError> {
        let mut r = Realization::load(self)?;
        let desired = r.desired_state()?;
        let namespaces = r.reconcile(&desired, progress);
        let devices_before = if self.record.external_gateways {
            r.leave_gateways_to_the_user();
            Vec::new()
        } else {
            r.run_gateways(report, progress)
        };
        r.record_states(progress)?;
        r.serve_dns(progress);
        report.failed = r.failures.clone().into_iter().collect();
        if self.record.external_gateways {
            // `--no-gateways`: the lab runs no VPN device either; one it started earlier stops.
            strongswan_device::stop_all(&self.record.id, &self.record.sites);
        } else {
            r.run_devices(devices_before, report, progress)?;
        }
        report.kernel_changes += namespaces.map_err(LabError::Realize)?.changes.len();
        Ok(())
    }
}

/// One realization under way: the sites with their resources, how they are laid out, and
/// why resources failed or wait (resource id, lowercase → reason).
struct Realization<'a> {
    lab: &'a Lab,
    sites: Vec<(Site, Vec<Resource>)>,
    layout: SiteTopology,
    failures: BTreeMap<String, String>,
    pending: BTreeMap<String, String>,
}

impl<'a> Realization<'a> {
    /// The lab's sites laid out; what cannot be laid out has failed already.
    fn load(lab: &'a Lab) -> Result<Realization<'a>, LabError> {
        let sites = lab.load_sites()?;
        let layout = crate::site_topology::build(&lab.record.id, &lab.record.sites, &sites);
        let failures = layout
            .failures
            .iter()
            .map(|(id, e)| (id.clone(), e.to_string()))
            .collect();
        Ok(Realization {
            lab,
            sites,
            layout,
            failures,
            pending: BTreeMap::new(),
        })
    }

    /// The kernel state of the layout; when the layout as a whole cannot be realized (e.g.
    /// colliding names), every realized resource is Failed with why.
    fn desired_state(&mut self) -> Result<DesiredState, LabError> {
        match self.layout.topology.desired_state() {
            Ok(d) => Ok(d),
            Err(e) => {
                let msg = e.to_string();
                for (site, resources) in self.sites.iter_mut() {
                    for r in resources
                        .iter()
                        .filter(|r| REALIZED_TYPES.contains(&r.resource_type()))
                    {
                        set_state(site, r, ProvisioningState::Failed { error: msg.clone() })?;
                    }
                }
                Err(LabError::Topology(e))
            }
        }
    }

    /// Reconciles the kernel with `desired`, remembers what was realized, and fails the
    /// resources whose namespaces failed.
    fn reconcile(
        &mut self,
        desired: &DesiredState,
        progress: &mut Progress,
    ) -> Result<ReconcileReport, ReconcileError> {
        let lab = self.lab;
        let started = Instant::now();
        let result = reconcile(&lab.record.id.netns_prefix(), desired, &mut |line| {
            progress.note(&format!("  {line}"))
        });
        let n = desired.netns.len();
        let detail = match &result {
            Ok(rep) if rep.changes.is_empty() => format!("{n} namespaces, no changes"),
            Ok(rep) if rep.failed.is_empty() => {
                format!("{n} namespaces, {} change(s)", rep.changes.len())
            }
            Ok(rep) => format!(
                "{n} namespaces, {} change(s), {} FAILED",
                rep.changes.len(),
                rep.failed.len()
            ),
            Err(_) => "FAILED".to_string(),
        };
        progress.finish("realize namespaces", started, &detail);
        let _ = lab.dir.write_realized(desired);
        self.fail_namespaces(&result);
        result
    }

    /// A failed namespace fails the resources it stands for; one owned by no resource
    /// (internet, NAT device) fails the public IPs; a failure to create or remove namespaces
    /// at all fails everything realized.
    fn fail_namespaces(&mut self, result: &Result<ReconcileReport, ReconcileError>) {
        let failed: Vec<(Option<String>, String)> = match result {
            Ok(rep) => rep
                .failed
                .iter()
                .map(|e| (Some(e.netns.clone()), e.to_string()))
                .collect(),
            Err(e) => vec![(None, e.to_string())],
        };
        for (ns, msg) in &failed {
            if let Some(ids) = ns.as_ref().and_then(|ns| self.layout.owners.get(ns)) {
                for id in ids {
                    self.failures.insert(id.to_lowercase(), msg.clone());
                }
                continue;
            }
            let everything = ns.is_none();
            for (_, resources) in &self.sites {
                for r in resources.iter().filter(|r| {
                    REALIZED_TYPES.contains(&r.resource_type())
                        && (everything || matches!(r, Resource::PublicIpAddress(_)))
                }) {
                    self.failures
                        .entry(r.id().to_lowercase())
                        .or_insert_with(|| msg.clone());
                }
            }
        }
    }

    /// `lab up --no-gateways`: processes the lab started before are stopped, and every
    /// connection waits for a VPN device the user runs.
    fn leave_gateways_to_the_user(&mut self) {
        gateways::converge(&self.lab.dir.path, &[]);
        for (_, resources) in &self.sites {
            for r in resources
                .iter()
                .filter(|r| matches!(r, Resource::Connection(_)))
            {
                self.pending.insert(
                    r.id().to_lowercase(),
                    "the lab runs no gateway processes (lab up --no-gateways); the VPN device is yours to run".into(),
                );
            }
        }
    }

    /// One gateway process per VNet gateway whose namespace is up, serving its connections.
    /// Returns what the pass over running strongSwan devices did first.
    fn run_gateways(
        &mut self,
        report: &mut ApplyReport,
        progress: &mut Progress,
    ) -> Vec<DeviceOutcome> {
        let lab = self.lab;
        let started = Instant::now();
        let (mut runs, conn_failures) =
            crate::gateway_config::plan(&lab.dir.path, &self.layout.topology, &self.sites);
        for (id, e) in conn_failures {
            if e.waits() {
                self.pending.entry(id).or_insert(e.to_string());
            } else {
                self.failures.entry(id).or_insert(e.to_string());
            }
        }
        // A gateway whose namespace failed runs nothing; its connections fail with it.
        for run in runs.iter_mut() {
            if let Some(err) = self.failures.get(&run.gateway_id.to_lowercase()).cloned() {
                run.config = None;
                for c in &run.connections {
                    self.failures
                        .entry(c.to_lowercase())
                        .or_insert_with(|| format!("its gateway failed: {err}"));
                }
            }
        }
        // A running strongSwan device takes its changed export before the gateways restart,
        // so both ends of a tunnel change keys and policies together.
        let devices_before = self.converge_devices(true);
        let results = gateways::converge(&lab.dir.path, &runs);
        for (run, result) in &results {
            match result {
                Ok(a) if *a != DaemonAction::Unchanged => report.kernel_changes += 1,
                Ok(_) => {}
                Err(e) => {
                    let msg = e.to_string();
                    self.failures
                        .insert(run.gateway_id.to_lowercase(), msg.clone());
                    for c in &run.connections {
                        self.failures
                            .entry(c.to_lowercase())
                            .or_insert_with(|| format!("its gateway process failed: {msg}"));
                    }
                }
            }
        }
        let detail = match daemon::summary(results.iter().map(|(_, r)| r)) {
            d if d.is_empty() => "none".to_string(),
            d => d,
        };
        progress.finish("gateway processes", started, &detail);
        devices_before
    }

    /// The strongSwan devices' charons (with `running_only`, only those already running).
    fn converge_devices(&self, running_only: bool) -> Vec<DeviceOutcome> {
        let lab = self.lab;
        strongswan_device::converge(
            &lab.dir.path,
            &lab.record.id,
            &lab.record.sites,
            &self.layout.topology,
            &self.sites,
            running_only,
        )
    }

    /// The lab internet's DNS zone (public IPs' FQDNs), served in the internet namespace. A
    /// server that cannot start is reported on the progress line: names still resolve for the
    /// gateways, which take them from the zone itself.
    fn serve_dns(&self, progress: &mut Progress) {
        let started = Instant::now();
        let zone = crate::lab_dns::zone(&self.sites);
        let outcome =
            crate::lab_dns::converge(&self.lab.dir.path, &self.lab.id().internet_netns(), &zone);
        let detail = match outcome {
            Ok(crate::lab_dns::DnsOutcome::Empty) => return,
            Ok(crate::lab_dns::DnsOutcome::Unchanged(_)) => return,
            Ok(crate::lab_dns::DnsOutcome::Started(n)) => format!("dnsmasq started, {n} name(s)"),
            Ok(crate::lab_dns::DnsOutcome::Reloaded(n)) => format!("zone reloaded, {n} name(s)"),
            Err(e) => format!("FAILED: {e}"),
        };
        progress.finish("DNS zone", started, &detail);
    }

    /// Provisioning states: Failed for what failed, Pending for what waits, else Succeeded.
    fn record_states(&mut self, progress: &mut Progress) -> Result<(), LabError> {
        let (failures, pending) = (&self.failures, &self.pending);
        let sites = &mut self.sites;
        progress.step("record provisioning states", || {
            let mut written = 0;
            for (site, resources) in sites.iter_mut() {
                for r in resources
                    .iter()
                    .filter(|r| REALIZED_TYPES.contains(&r.resource_type()))
                {
                    let id = r.id().to_lowercase();
                    let state = match (failures.get(&id), pending.get(&id)) {
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
        })
    }

    /// On-premises strongSwan devices, configured from the device config exports, which are
    /// made now that the cloud side's provisioning states are recorded; a device that cannot
    /// run fails its public IP.
    fn run_devices(
        &mut self,
        before: Vec<DeviceOutcome>,
        report: &mut ApplyReport,
        progress: &mut Progress,
    ) -> Result<(), LabError> {
        let started = Instant::now();
        let outcomes = strongswan_device::merge(before, self.converge_devices(false));
        if !outcomes.is_empty() {
            let detail = strongswan_device::summary(&outcomes);
            progress.finish("strongSwan devices", started, &detail);
        }
        let failed = strongswan_device::failures(&outcomes);
        for (site, resources) in self.sites.iter_mut() {
            for r in resources.iter() {
                if let Some(msg) = failed.get(&r.id().to_lowercase()) {
                    set_state(site, r, ProvisioningState::Failed { error: msg.clone() })?;
                    report.failed.push((r.id().to_lowercase(), msg.clone()));
                }
            }
        }
        Ok(())
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
