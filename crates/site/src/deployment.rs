//! What a deployment is and leaves behind: its mode and options, the plan it produces and the
//! record a site keeps of it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{same_id, ProvisioningState, Resource};

/// ARM deployment modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DeploymentMode {
    /// Resources not in the template are left alone (ARM's default).
    #[default]
    Incremental,
    /// Resources not in the template are deleted.
    Complete,
}

/// How a plan is made: mode, which locations this site takes, and other sites' resources.
/// One template can span sites the way an Azure resource group spans regions: deploy it to each
/// site with that site's `locations`, the sites sharing subscription and resource group
/// ([`SiteOptions`]) so resource ids agree.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Incremental (default) or complete.
    pub mode: DeploymentMode,
    /// Deploy only resources whose `location` is one of these (case- and space-insensitive);
    /// the others are left to other sites, and references to them are accepted. Resources
    /// without a location are always deployed. `None`: deploy everything here.
    pub locations: Option<Vec<String>>,
    /// Resources of other sites that references (e.g. a Vnet2Vnet peer gateway) and
    /// `reference()` may resolve to; read only.
    pub foreign: Vec<Resource>,
    /// The resource group the deployment targets (`resourceGroup()`, and the group of the ids
    /// it creates); `None`: the site's own.
    pub resource_group: Option<String>,
}

/// What a plan will do to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeAction {
    /// The resource does not exist yet.
    Create,
    /// The resource exists and changes.
    Update,
    /// The resource exists and is unchanged.
    NoChange,
    /// The resource is removed (complete mode only).
    Delete,
}

/// One line of a plan: a resource and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedChange {
    /// Resource id.
    pub id: String,
    /// Resource type.
    pub resource_type: String,
    /// Resource name.
    pub name: String,
    /// What happens.
    pub action: ChangeAction,
}

/// The result of evaluating and validating a deployment against the site; apply it to record it.
/// Holds the complete new state of every resource the template touches.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Deployment name.
    pub deployment_name: String,
    /// Deployment mode.
    pub mode: DeploymentMode,
    /// SHA-256 of the template text, hex.
    pub template_hash: String,
    /// Parameter values as recorded (securestring / secureObject masked).
    pub parameters: Map<String, Value>,
    /// Per-resource actions, in deployment order (deletions last).
    pub changes: Vec<PlannedChange>,
    /// New state of every resource in the template, in deployment order.
    pub resources: Vec<Resource>,
    /// Evaluated outputs (securestring outputs omitted, as Azure does).
    pub outputs: Map<String, Value>,
    /// Notes for the user (unknown types recorded, sizes below recommendation, …).
    pub notes: Vec<String>,
    pub(crate) deletes: Vec<String>,
    pub(crate) base_generation: u64,
}

/// Outcome of a deployment as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum DeploymentState {
    /// All resources were recorded (their realization is tracked per resource).
    Succeeded,
    /// The deployment was rejected; nothing was changed.
    Failed {
        /// Why, as the error message.
        error: String,
    },
}

impl DeploymentRecord {
    /// The outcome as Azure reports it: a deployment whose resource failed to provision is
    /// Failed too (naming the first such resource), though its record was accepted.
    pub fn outcome(&self, resources: &[Resource]) -> DeploymentState {
        if let DeploymentState::Failed { .. } = self.state {
            return self.state.clone();
        }
        let failed = self.resources.iter().find_map(|id| {
            let r = resources.iter().find(|r| same_id(r.id(), id))?;
            match r.provisioning_state() {
                ProvisioningState::Failed { error } => Some((r, error.clone())),
                _ => None,
            }
        });
        match failed {
            Some((r, error)) => DeploymentState::Failed {
                error: format!(
                    "{} '{}' failed to provision: {error}",
                    r.resource_type(),
                    r.name()
                ),
            },
            None => DeploymentState::Succeeded,
        }
    }
}

/// A deployment as the site remembers it (like `az deployment group show`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// Deployment name (unique per site; re-using a name replaces the record).
    pub name: String,
    /// Order in which deployments were recorded.
    pub sequence: u64,
    /// Unix time (seconds) of the record.
    pub timestamp: u64,
    /// SHA-256 of the template text, hex.
    pub template_hash: String,
    /// Parameters with secure values masked.
    pub parameters: Map<String, Value>,
    /// Outputs.
    pub outputs: Map<String, Value>,
    /// Mode used.
    pub mode: DeploymentMode,
    /// Outcome.
    pub state: DeploymentState,
    /// Ids of the resources the template declared.
    pub resources: Vec<String>,
    /// Notes from planning.
    pub notes: Vec<String>,
}
