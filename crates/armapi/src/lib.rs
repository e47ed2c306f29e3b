//! A site's Azure Resource Manager endpoint over HTTPS, so the tools people already use (az,
//! the Azure SDKs) drive the lab's sites as they drive Azure and Azure Stack Hub.
//!
//! One endpoint per site, on loopback, TLS from the lab's own CA ([`tls`]). Clients read the
//! cloud's metadata and an AD FS-style authority ([`auth`]: client credentials for the site's
//! service principal, bearer tokens on every call), then use subscriptions, resource groups,
//! deployments and the resource types the lab realizes. Changes go through the site's planner
//! exactly as templates do ([`backend`]: a resource PUT is a one-resource deployment), and a
//! long-running operation ends when the lab has realized it ([`ops`]).

mod actions;
pub mod auth;
pub mod backend;
mod deployments;
pub mod error;
pub mod groups;
mod meta;
pub mod ops;
pub mod paths;
mod resources;
mod server;
mod subs;
pub mod tls;

pub use auth::{Principal, TokenKey};
pub use backend::{Backend, DeployInput};
pub use error::ApiError;
pub use server::{serve, Endpoint, EndpointConfig};
pub use tls::{LabTls, TlsError};
