//! A site: its identity, kind and store, and the operations ARM offers on it (plan and apply a
//! deployment, delete a resource, read resources and deployments).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::Ipv4Net;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::deployment::{
    ChangeAction, DeploymentMode, DeploymentRecord, DeploymentState, Plan, PlanOptions,
};
use crate::error::SiteError;
use crate::kind::{self, KindProfile};
use crate::model::{same_id, ConnectionProtocol, ProvisioningState, Resource};
use crate::secrets::{mask_secrets, mask_text, string_leaves};
use crate::store::{self, SiteInfo};
use crate::{plan, DEFAULT_REALIZED_TYPES};

/// Identity given to a site's resources. Sites of one lab may share a subscription and
/// resource group so that one template can span them (as regions of one resource group).
#[derive(Debug, Clone, Default)]
pub struct SiteOptions {
    /// Subscription id in resource ids (default: derived from the site name).
    pub subscription_id: Option<String>,
    /// Resource group in resource ids (default: the site name).
    pub resource_group: Option<String>,
    /// `resourceGroup().location` (default: the site name).
    pub location: Option<String>,
}

/// One site: its identity, kind and store. Cheap to hold; the database is opened per operation
/// so other processes (`lab status`) can read while this one lives.
#[derive(Debug)]
pub struct Site {
    db_path: PathBuf,
    info: SiteInfo,
    kind: &'static KindProfile,
    realized_types: Vec<String>,
    gateway_protocols: Vec<ConnectionProtocol>,
}

fn valid_site_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn db_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(format!("{name}.redb"))
}

/// A stable subscription id derived from the site name, so resource ids are reproducible.
fn subscription_for(name: &str) -> String {
    let h = hex::encode(Sha256::digest(format!("hybridnet-site:{name}").as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Site {
    /// Creates the site's database in `state_dir` (`<name>.redb`); calling it again with the
    /// same kind and prefix just opens the site.
    pub fn create(
        state_dir: &Path,
        name: &str,
        kind: &str,
        public_prefix: Ipv4Net,
    ) -> Result<Site, SiteError> {
        Site::create_with(
            state_dir,
            name,
            kind,
            public_prefix,
            &SiteOptions::default(),
        )
    }

    /// Like [`Site::create`], choosing the subscription, resource group and location.
    pub fn create_with(
        state_dir: &Path,
        name: &str,
        kind: &str,
        public_prefix: Ipv4Net,
        options: &SiteOptions,
    ) -> Result<Site, SiteError> {
        if !valid_site_name(name) {
            return Err(SiteError::InvalidSiteName(name.to_string()));
        }
        let profile = kind::kind(kind)?;
        std::fs::create_dir_all(state_dir).map_err(|e| SiteError::Io {
            path: state_dir.display().to_string(),
            source: e,
        })?;
        let path = db_path(state_dir, name);
        let store = store::Store::open(&path, true)?;
        let wanted = SiteInfo {
            name: name.to_string(),
            kind: profile.name.clone(),
            public_prefix: public_prefix.trunc(),
            subscription_id: options
                .subscription_id
                .clone()
                .unwrap_or_else(|| subscription_for(name)),
            resource_group: options
                .resource_group
                .clone()
                .unwrap_or_else(|| name.to_string()),
            location: options.location.clone().unwrap_or_else(|| name.to_string()),
        };
        match store.info()? {
            Some(existing) if existing == wanted => {}
            Some(existing) => {
                return Err(SiteError::SiteMismatch {
                    name: name.to_string(),
                    existing: format!(
                        "kind {} with public prefix {} in {}/{} at {}",
                        existing.kind,
                        existing.public_prefix,
                        existing.subscription_id,
                        existing.resource_group,
                        existing.location
                    ),
                    requested: format!(
                        "kind {} with public prefix {} in {}/{} at {}",
                        wanted.kind,
                        wanted.public_prefix,
                        wanted.subscription_id,
                        wanted.resource_group,
                        wanted.location
                    ),
                })
            }
            None => store.write_info(&wanted)?,
        }
        Ok(Site {
            db_path: path,
            info: wanted,
            kind: profile,
            realized_types: DEFAULT_REALIZED_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            gateway_protocols: vec![ConnectionProtocol::IKEv2, ConnectionProtocol::IKEv1],
        })
    }

    /// Opens an existing site (e.g. from `lab status` in a new process).
    pub fn open(state_dir: &Path, name: &str) -> Result<Site, SiteError> {
        if !valid_site_name(name) {
            return Err(SiteError::InvalidSiteName(name.to_string()));
        }
        let path = db_path(state_dir, name);
        let store = store::Store::open(&path, false)?;
        let info = store.info()?.ok_or_else(|| SiteError::NoSuchSite {
            name: name.to_string(),
            dir: state_dir.display().to_string(),
        })?;
        let profile = kind::kind(&info.kind)?;
        Ok(Site {
            db_path: path,
            info,
            kind: profile,
            realized_types: DEFAULT_REALIZED_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            gateway_protocols: vec![ConnectionProtocol::IKEv2, ConnectionProtocol::IKEv1],
        })
    }

    /// The site's identity (name, kind, public prefix, ids used in resource ids).
    pub fn info(&self) -> &SiteInfo {
        &self.info
    }

    /// The site's kind profile.
    pub fn kind(&self) -> &'static KindProfile {
        self.kind
    }

    /// Path of the site's database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Declares which resource types the lab realizes (see [`DEFAULT_REALIZED_TYPES`]).
    pub fn set_realized_types<S: AsRef<str>>(&mut self, types: &[S]) {
        self.realized_types = types.iter().map(|s| s.as_ref().to_string()).collect();
    }

    /// Declares which IKE versions the VPN gateways realizing this site speak (default: both,
    /// as Azure's do); connections and gateways needing another are refused before anything
    /// changes, rather than stored and left unrun.
    pub fn set_gateway_protocols(&mut self, protocols: &[ConnectionProtocol]) {
        self.gateway_protocols = protocols.to_vec();
    }

    /// The context templates are evaluated in for this site (subscription, resource group,
    /// location = site name).
    pub fn deployment_context(&self, deployment_name: &str) -> arm::DeploymentContext {
        arm::DeploymentContext {
            subscription_id: self.info.subscription_id.clone(),
            resource_group: self.info.resource_group.clone(),
            location: self.info.location.clone(),
            deployment_name: deployment_name.to_string(),
        }
    }

    fn store(&self) -> Result<store::Store, SiteError> {
        store::Store::open(&self.db_path, false)
    }

    /// Evaluates and validates a deployment (incremental mode) against the current state;
    /// changes nothing.
    pub fn plan(
        &self,
        template_json: &str,
        parameters: Map<String, Value>,
        deployment_name: &str,
    ) -> Result<Plan, SiteError> {
        self.plan_with_mode(
            template_json,
            parameters,
            deployment_name,
            DeploymentMode::Incremental,
        )
    }

    /// Like [`Site::plan`] with an explicit mode; complete mode also plans deleting every
    /// resource the template does not declare (refused if something kept still uses it).
    pub fn plan_with_mode(
        &self,
        template_json: &str,
        parameters: Map<String, Value>,
        deployment_name: &str,
        mode: DeploymentMode,
    ) -> Result<Plan, SiteError> {
        self.plan_with(
            template_json,
            parameters,
            deployment_name,
            &PlanOptions {
                mode,
                ..PlanOptions::default()
            },
        )
    }

    /// The general form of [`Site::plan`]: mode, location filter and other sites' resources.
    pub fn plan_with(
        &self,
        template_json: &str,
        parameters: Map<String, Value>,
        deployment_name: &str,
        options: &PlanOptions,
    ) -> Result<Plan, SiteError> {
        let mode = options.mode;
        let template = arm::parse_template(template_json)?;
        let mut ctx = self.deployment_context(deployment_name);
        if let Some(rg) = &options.resource_group {
            ctx.resource_group.clone_from(rg);
        }
        let deployment = arm::Deployment::new(&template, &parameters, &ctx)?;
        let store = self.store()?;
        let (base_generation, existing) = store.snapshot()?;
        drop(store);
        let secrets: Vec<String> = template
            .parameters
            .iter()
            .filter(|p| p.kind.is_secure())
            .filter_map(|p| deployment.parameter(&p.name))
            .flat_map(|v| string_leaves(&v))
            .filter(|s| !s.is_empty())
            .collect();
        let mask = |text: &str| mask_text(text, &secrets);
        let mut plan = plan::Planner::new(
            self.kind,
            &self.info,
            existing,
            options.foreign.clone(),
            deployment_name,
            &self.realized_types,
            &self.gateway_protocols,
        )
        .run(&deployment, mode, options.locations.as_deref())
        .map_err(|e| e.redact(&mask))?;
        plan.template_hash = hex::encode(Sha256::digest(template_json.as_bytes()));
        plan.parameters = deployment.parameters_redacted();
        for v in plan.outputs.values_mut() {
            mask_secrets(v, &secrets);
        }
        plan.base_generation = base_generation;
        Ok(plan)
    }

    /// Records a plan atomically (one write transaction). Fails with [`SiteError::StalePlan`]
    /// if another deployment was applied since the plan was made.
    pub fn apply(&mut self, plan: Plan) -> Result<DeploymentRecord, SiteError> {
        let store = self.store()?;
        let sequence = store
            .deployments()?
            .iter()
            .map(|d| d.sequence)
            .max()
            .map_or(1, |s| s + 1);
        let writes: Vec<Resource> = plan
            .resources
            .iter()
            .zip(&plan.changes)
            .filter(|(_, c)| c.action != ChangeAction::NoChange)
            .map(|(r, _)| r.clone())
            .collect();
        let record = DeploymentRecord {
            name: plan.deployment_name.clone(),
            sequence,
            timestamp: now_unix(),
            template_hash: plan.template_hash.clone(),
            parameters: plan.parameters.clone(),
            outputs: plan.outputs.clone(),
            mode: plan.mode,
            state: DeploymentState::Succeeded,
            resources: plan.resources.iter().map(|r| r.id().to_string()).collect(),
            notes: plan.notes.clone(),
        };
        store.commit(store::Commit {
            base_generation: plan.base_generation,
            writes: &writes,
            deletes: &plan.deletes,
            deployment: &record,
            deployment_name: &plan.deployment_name,
        })?;
        Ok(record)
    }

    /// Records a deployment that was rejected, so status shows it failed and why; resources are
    /// untouched. Parameters are masked per the template's secure types when it parses, and
    /// omitted otherwise.
    pub fn record_failed_deployment(
        &mut self,
        template_json: &str,
        parameters: &Map<String, Value>,
        deployment_name: &str,
        error: &SiteError,
    ) -> Result<DeploymentRecord, SiteError> {
        let store = self.store()?;
        let sequence = store
            .deployments()?
            .iter()
            .map(|d| d.sequence)
            .max()
            .map_or(1, |s| s + 1);
        let recorded_params = arm::parse_template(template_json)
            .ok()
            .and_then(|t| {
                arm::Deployment::new(&t, parameters, &self.deployment_context(deployment_name)).ok()
            })
            .map(|d| d.parameters_redacted())
            .unwrap_or_default();
        let record = DeploymentRecord {
            name: deployment_name.to_string(),
            sequence,
            timestamp: now_unix(),
            template_hash: hex::encode(Sha256::digest(template_json.as_bytes())),
            parameters: recorded_params,
            outputs: Map::new(),
            mode: DeploymentMode::Incremental,
            state: DeploymentState::Failed {
                error: error.to_string(),
            },
            resources: Vec::new(),
            notes: Vec::new(),
        };
        store.put_deployment(&record)?;
        Ok(record)
    }

    /// Deletes one resource (like ARM's DELETE), refusing while another resource refers to it
    /// or to one of its subnets. Returns what was deleted, so the lab can tear it down.
    pub fn delete_resource(&mut self, resource_id: &str) -> Result<Resource, SiteError> {
        let store = self.store()?;
        let (generation, resources) = store.snapshot()?;
        let target = resources
            .iter()
            .find(|r| same_id(r.id(), resource_id))
            .cloned()
            .ok_or_else(|| SiteError::NoSuchResource(resource_id.to_string()))?;
        let prefix = format!("{}/", target.id().to_ascii_lowercase());
        let users: Vec<String> = resources
            .iter()
            .filter(|r| !same_id(r.id(), target.id()))
            .filter(|r| {
                r.references().iter().any(|(_, t)| {
                    same_id(t, target.id()) || t.to_ascii_lowercase().starts_with(&prefix)
                })
            })
            .map(|r| format!("{} '{}'", r.resource_type(), r.name()))
            .collect();
        if !users.is_empty() {
            return Err(SiteError::InUse {
                id: target.id().to_string(),
                users: users.join(", "),
            });
        }
        store.delete(generation, target.id())?;
        Ok(target)
    }

    /// Sets a resource's realization state (the lab calls this as it realizes or fails).
    pub fn set_provisioning_state(
        &mut self,
        resource_id: &str,
        state: ProvisioningState,
    ) -> Result<(), SiteError> {
        self.store()?.set_state(resource_id, state)
    }

    /// Every resource of the site, typed (shared keys attached; never print them).
    pub fn resources(&self) -> Result<Vec<Resource>, SiteError> {
        self.store()?.resources()
    }

    /// One resource by id (case-insensitive).
    pub fn resource(&self, resource_id: &str) -> Result<Option<Resource>, SiteError> {
        Ok(self
            .resources()?
            .into_iter()
            .find(|r| same_id(r.id(), resource_id)))
    }

    /// Forgets a deployment's record, keeping its resources (ARM's deployment delete);
    /// `false` if there was none.
    pub fn delete_deployment(&mut self, name: &str) -> Result<bool, SiteError> {
        self.store()?.delete_deployment(name)
    }

    /// Every deployment recorded, oldest first.
    pub fn deployments(&self) -> Result<Vec<DeploymentRecord>, SiteError> {
        self.store()?.deployments()
    }

    /// The id a resource of this type and name has in this site (e.g. for `lab exec SITE/VM`).
    pub fn resource_id(&self, resource_type: &str, name: &str) -> String {
        let (ns, types) = resource_type.split_once('/').unwrap_or((resource_type, ""));
        let mut id = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{ns}",
            self.info.subscription_id, self.info.resource_group
        );
        for (t, n) in types.split('/').zip(name.split('/')) {
            id.push_str(&format!("/{t}/{n}"));
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_follow_arm_layout() {
        let dir = tempfile::tempdir().unwrap();
        let s = Site::create(dir.path(), "a", "azure", "203.0.113.0/24".parse().unwrap()).unwrap();
        let id = s.resource_id(
            "Microsoft.Network/virtualNetworks/subnets",
            "v/GatewaySubnet",
        );
        assert!(id.starts_with("/subscriptions/"), "{id}");
        assert!(
            id.ends_with("/resourceGroups/a/providers/Microsoft.Network/virtualNetworks/v/subnets/GatewaySubnet"),
            "{id}"
        );
    }
}
