//! The control plane of one site: its kind (a data profile), the typed resources ARM templates
//! deploy to it, validation against the kind and the site's current state, address management,
//! and a store that survives restarts.
//!
//! Flow: [`Site::plan`] evaluates a template with the `arm` engine, types and validates every
//! resource against the current state and allocates addresses — changing nothing; [`Site::apply`]
//! records the plan in one database transaction. The lab (`fabric`) realizes resources and
//! reports back with [`Site::set_provisioning_state`].
//!
//! Inside a plan, `props` reads each resource's ARM properties into typed structs (errors name
//! the property path), `plan` validates them per resource type against the references and
//! addresses of the site (`plan::refs`, `plan::addresses`, `ipam`) and the kind's rules
//! (`kind::rules`, one feature table), and `model` is what the site keeps.

// Errors carry the full location (resource path, type, name, property) by value so callers can
// match on them; they are built once per failed plan, so their size does not matter.
#![allow(clippy::result_large_err)]
#![forbid(unsafe_code)]

mod deployment;
mod error;
pub mod ipam;
mod json;
mod kind;
mod model;
mod plan;
mod props;
mod secrets;
mod site;
mod store;

pub use ipnet::Ipv4Net;

pub use deployment::{
    ChangeAction, DeploymentMode, DeploymentRecord, DeploymentState, Plan, PlanOptions,
    PlannedChange,
};
pub use error::{Location, SiteError};
pub use kind::{
    kind, kinds, parse_api_date, ApiVersionRange, DefaultPolicy, DpdRules, Feature, Features,
    GatewaySku, GatewaySubnetRules, KindProfile, TypeRefusal,
};
pub use model::nsg::{
    self, Access, AddressMatch, Direction, NetworkSecurityGroup, NsgProtocol, PortRange,
    SecurityRule, ServiceTag,
};
pub use model::{
    same_id, AllocationMethod, BgpSettings, Connection, ConnectionProtocol, ConnectionType,
    DhGroup, EffectivePolicy, GatewayIpConfiguration, IkeEncryption, IkeIntegrity, IpsecEncryption,
    IpsecIntegrity, IpsecPolicy, LocalNetworkGateway, NetworkInterface, NicIpConfiguration,
    OtherResource, PfsGroup, ProvisioningState, PublicIpAddress, PublicIpSku, Resource,
    ResourceMeta, SharedKey, Subnet, VirtualMachine, VirtualNetwork, VirtualNetworkGateway, VmNic,
    VpnType,
};
pub use site::{Site, SiteOptions};
pub use store::SiteInfo;

/// The subnet name VPN gateways must live in.
pub const GATEWAY_SUBNET: &str = "GatewaySubnet";

/// Resource types the lab realizes today; resources of these types start as `Updating` after
/// apply (until the lab reports), local network gateways as `Succeeded` (pure configuration),
/// everything else as `Pending`. [`Site::set_realized_types`] changes the set as the lab grows.
pub const DEFAULT_REALIZED_TYPES: &[&str] = &[
    "Microsoft.Network/virtualNetworks",
    "Microsoft.Network/virtualNetworks/subnets",
    "Microsoft.Network/publicIPAddresses",
    "Microsoft.Network/networkInterfaces",
    "Microsoft.Compute/virtualMachines",
];
