//! Device configuration export, like Azure's "Download VPN device configuration": the
//! on-premises peer of a site-to-site connection, described once ([`PeerDevice`], built from a
//! site's resources) and rendered per vendor ([`Vendor`]; `strongswan` writes a swanctl.conf,
//! `generic` a plain-text summary, `bird` and `frr` the BGP router beside strongSwan). Adding a vendor is adding a module with one `Vendor` impl
//! and listing it in [`vendors`].
//!
//! Also the connection as `az network vpn-connection show` prints it ([`connection_view`]),
//! with the live status a running gateway reports, because the same resolution of a
//! connection's resources serves both.

#![forbid(unsafe_code)]

mod bird;
mod error;
mod frr;
mod generic;
mod output;
mod peer;
mod routing;
mod strongswan;
mod vendor;
mod view;

pub use bird::Bird;
pub use error::DevConfigError;
pub use frr::Frr;
pub use generic::Generic;
pub use output::write_private;
pub use peer::{IkeVersion, PeerBgp, PeerDevice, PeerTunnel};
pub use routing::LIBIPSEC_TUN;
pub use strongswan::{CharonRuntime, StrongSwan, CHARON_LOAD};
pub use vendor::{vendor, vendors, Vendor};
pub use view::{
    connection_status, connection_view, connection_view_tunnels, find_connection, LiveConnection,
};
