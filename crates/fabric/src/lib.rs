//! The lab fabric: realizes sites' virtual networks and VMs as Linux network namespaces.
//!
//! Layers, bottom up: [`netns`] (fast access to namespaces), [`desired`] + [`reconcile`]
//! (a generic desired kernel state and the diff-and-apply that makes it so, idempotently),
//! [`topology`] (VNets, subnets, VMs → desired state), and the lab itself ([`lab`]: lab.yaml,
//! the state directory, deployments through the `site` crate, up/down/status).

pub mod desired;
pub mod lab;
pub mod names;
pub mod netns;
pub mod reconcile;
pub mod spec;
pub mod state;
pub mod topology;

pub use desired::{DesiredState, LinkKind, LinkSpec, NetnsSpec, RouteSpec, FABRIC_ROUTE_PROTO};
pub use names::LabId;
pub use reconcile::{reconcile, teardown, ReconcileError, ReconcileReport};
pub use topology::{
    GatewayNet, NicNet, SiteNet, SubnetNet, Topology, VmNet, VnetNet, GATEWAY_LAN_IF,
    GATEWAY_WAN_IF,
};
