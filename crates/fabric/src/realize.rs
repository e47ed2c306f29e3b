//! Realizing a lab: the sites' resources laid out as namespaces and reconciled with the
//! kernel, one gateway process per VNet gateway, a charon per strongSwan site, and each
//! realized resource's provisioning state recorded.

use crate::daemon::{self, DaemonAction};
use crate::gateways;
use crate::lab::{site_err, ApplyReport, Lab, LabError, REALIZED_TYPES};
use crate::progress::Progress;
use crate::reconcile::reconcile;
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
            let (mut runs, conn_failures) =
                crate::gateway_config::plan(&self.dir.path, &built.topology, &sites);
            for (id, e) in conn_failures {
                failures.entry(id).or_insert(e.to_string());
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
            devices_before = crate::strongswan_device::converge(
                &self.dir.path,
                &self.record.id,
                &self.record.sites,
                &built.topology,
                &sites,
                true,
            );
            let results = gateways::converge(&self.dir.path, &runs);
            for (run, result) in &results {
                match result {
                    Ok(a) => {
                        if *a != DaemonAction::Unchanged {
                            report.kernel_changes += 1;
                        }
                    }
                    Err(e) => {
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
            let detail = match daemon::summary(results.iter().map(|(_, r)| r)) {
                d if d.is_empty() => "none".to_string(),
                d => d,
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
            crate::strongswan_device::stop_all(&self.record.id, &self.record.sites);
        } else {
            // On-premises strongSwan devices, configured from the device config exports, which
            // are made now that the cloud side's provisioning states are recorded.
            let started = Instant::now();
            let outcomes = crate::strongswan_device::merge(
                devices_before,
                crate::strongswan_device::converge(
                    &self.dir.path,
                    &self.record.id,
                    &self.record.sites,
                    &built.topology,
                    &sites,
                    false,
                ),
            );
            if !outcomes.is_empty() {
                let detail = crate::strongswan_device::summary(&outcomes);
                progress.finish("strongSwan devices", started, &detail);
            }
            let failed = crate::strongswan_device::failures(&outcomes);
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
