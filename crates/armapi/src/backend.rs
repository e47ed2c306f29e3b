//! What an endpoint needs from the lab that owns its site: read the site's store, plan and
//! apply deployments under the lab's lock, delete resources, and realize the lab. The lab
//! controller implements it; the endpoint stays free of namespaces and processes.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// One deployment, from `PUT …/deployments/{name}` or from a single resource's PUT (a template
/// of that one resource), so both paths go through the same planner and converge.
#[derive(Debug, Clone)]
pub struct DeployInput {
    /// Resource group the deployment targets.
    pub resource_group: String,
    /// Deployment name (a resource PUT uses a name ARM cannot list, see [`is_api_deployment`]).
    pub name: String,
    /// Template text (JSON).
    pub template: String,
    /// Parameter values by name.
    pub parameters: Map<String, Value>,
    /// Incremental or complete.
    pub mode: site::DeploymentMode,
}

/// Marks the deployments that single-resource PUTs record, which ARM does not list.
pub const API_DEPLOYMENT_PREFIX: &str = "api:";

/// Whether a recorded deployment stands for a single-resource PUT.
pub fn is_api_deployment(name: &str) -> bool {
    name.starts_with(API_DEPLOYMENT_PREFIX)
}

/// The lab side of a site's endpoint.
pub trait Backend: Send + Sync + 'static {
    /// The site's store, opened for reading.
    fn site(&self) -> Result<site::Site, ApiError>;
    /// Plans a deployment against the current state; changes nothing.
    fn plan(&self, input: &DeployInput) -> Result<site::Plan, ApiError>;
    /// Plans and records a deployment (resources become Updating); realization follows
    /// separately through [`Backend::realize`].
    fn apply(&self, input: &DeployInput) -> Result<site::DeploymentRecord, ApiError>;
    /// Deletes resources by id, in the order given; refused (nothing deleted) when another
    /// resource still uses one of them.
    fn delete(&self, ids: &[String]) -> Result<(), ApiError>;
    /// The resource as GET shows it with its runtime state (a connection's `connectionStatus`
    /// and byte counters from its gateway), when the lab has one for it.
    fn live_view(&self, id: &str) -> Option<serde_json::Value>;
    /// Forgets a deployment's record (its resources stay); `false` if there was none.
    fn delete_deployment(&self, name: &str) -> Result<bool, ApiError>;
    /// Restarts the gateway process of a virtual network gateway (`az network vnet-gateway
    /// reset`): its tunnels go down and come back.
    fn reset_gateway(&self, id: &str) -> Result<(), ApiError>;
    /// A VNet gateway's BGP list (`getBgpPeerStatus`, `getLearnedRoutes`,
    /// `getAdvertisedRoutes`) as `{"value": [...]}`: `list` is the action's name in lower
    /// case, `peer` its query parameter.
    fn gateway_bgp(
        &self,
        id: &str,
        list: &str,
        peer: Option<&str>,
    ) -> Result<serde_json::Value, ApiError>;
    /// Starts (`filter`: Azure's filterData text, or `None` for the defaults) a packet
    /// capture on the VNet gateway or connection `id`.
    fn start_packet_capture(&self, id: &str, filter: Option<&str>) -> Result<String, ApiError>;
    /// Stops the packet capture on `id` and writes it where `sas_url` says (a `file:` URL
    /// or an absolute path: the lab has no storage account); returns where it went.
    fn stop_packet_capture(&self, id: &str, sas_url: &str) -> Result<String, ApiError>;
    /// Makes the lab's namespaces and processes match the stores (idempotent).
    fn realize(&self) -> Result<(), String>;
}
