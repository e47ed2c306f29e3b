//! hybridnet's VPN gateway runtime: the I/O around the sans-IO `ike` and `esp` crates.
//!
//! One process serves any number of site-to-site connections: UDP sockets on 500 and 4500 of
//! the local address, a TUN device that the remote prefixes are routed into, the IKE endpoint's
//! timers, and a unix control socket that serves the status as JSON.

pub mod bgp_io;
pub mod bgp_report;
pub mod bgp_side;
pub mod capture;
pub mod config;
pub mod control;
pub mod core;
pub mod datapath;
pub mod lifecycle;
pub mod netlink;
pub mod offload;
pub mod placement;
pub mod ratelimit;
pub mod receiver;
pub mod runtime;
pub mod status;
pub mod tun;
pub mod udp;
pub mod vnet_routes;
pub mod wait;

pub use config::{ConfigError, ConnectionSpec, GatewayConfig};
pub use runtime::{Gateway, GatewayError, RunOptions};
pub use status::{default_control_path, GatewayStatus};
