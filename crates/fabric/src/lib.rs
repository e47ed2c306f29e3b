//! The lab fabric: realizes sites' virtual networks, VMs and gateways as Linux network
//! namespaces.
//!
//! Layers, bottom up: [`netns`] (fast access to namespaces: `ip -batch` per namespace, sysctls
//! and nftables through `setns` on a scratch thread), [`desired`] + [`reconcile`](mod@reconcile) (a generic
//! desired kernel state and the diff-and-apply that makes it so, idempotently), [`topology`]
//! (VNets, subnets, VMs, gateways in plain terms; the `wiring` module turns them into desired
//! state), the `site_topology` module (the sites' resources laid out as a topology), [`spec`]
//! (lab.yaml), [`state`] (the lab registry on disk) and [`lab`] (up/down: deployments through
//! the `site` crate in [`deploy`], realization in the `realize` module, and what a running lab
//! looks like in [`status`] and [`connections`], with [`progress`] lines along the way).
//!
//! Every namespace is named `hn-<lab id>-…` ([`names`]); teardown finds everything by that
//! prefix. The fabric owns only bridges and veths, routes tagged with [`FABRIC_ROUTE_PROTO`]
//! and the nftables table `hybridnet`: a gateway process may add its TUN device and routes in
//! its namespace without reconciliation touching them.
//!
//! The processes a lab runs are [`daemon`]s, brought in line with their configuration the same
//! way: [`gateways`] runs one detached `hybridnet gateway run` per VNet gateway under a
//! [`supervisor`] (restarted with back-off when it dies), configured by [`gateway_config`]
//! from the site's connections; [`strongswan_device`] runs a charon per strongSwan site
//! ([`strongswan_site`] places the device, [`strongswan_status`] shows it). [`verify`] reads
//! connection status from the gateway processes and checks VM-to-VM traffic across the
//! tunnels. `lab down` stops every process living in a lab namespace, gateway processes
//! included.
//!
//! The lab [`controller`] also serves the lab's [`view`]: a web view (topology, connections,
//! deployments, live over server-sent events) and Prometheus metrics built from the gateways'
//! status; `lab up --metrics` runs a real [`prometheus`] scraping them.

pub mod bgp_view;
pub mod capture;
pub mod connection_view;
pub mod connections;
pub mod controller;
pub mod daemon;
pub mod deploy;
pub mod desired;
pub mod gateway_config;
pub mod gateways;
pub mod lab;
pub mod lab_dns;
pub mod local_api;
pub mod names;
pub mod netns;
pub mod onprem_router;
pub mod progress;
pub mod prometheus;
mod realize;
pub mod reconcile;
mod site_topology;
pub mod spec;
pub mod state;
pub mod status;
pub mod strongswan_device;
pub mod strongswan_site;
pub mod strongswan_status;
pub mod supervisor;
pub mod topology;
pub mod verify;
pub mod view;
mod wiring;

pub use desired::{DesiredState, LinkKind, LinkSpec, NetnsSpec, RouteSpec, FABRIC_ROUTE_PROTO};
pub use names::LabId;
pub use reconcile::{reconcile, teardown, ReconcileError, ReconcileReport};
pub use topology::{
    GatewayNet, NicNet, SiteNet, SubnetNet, Topology, VmNet, VnetNet, GATEWAY_LAN_IF,
    GATEWAY_WAN_IF,
};
