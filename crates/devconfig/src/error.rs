//! Why a device configuration could not be produced or written.

use std::path::PathBuf;

/// Errors of the device configuration export; none of them carries a shared key.
#[derive(Debug, thiserror::Error)]
pub enum DevConfigError {
    /// A BGP connection's local network gateway has no usable bgpSettings.
    #[error("local network gateway {name} has no bgpSettings with asn and bgpPeeringAddress: the device cannot peer over BGP")]
    NoDeviceBgpSettings {
        /// The local network gateway.
        name: String,
    },
    /// A BGP connection's VNet gateway does not run BGP.
    #[error("virtual network gateway {name} does not have enableBgp and bgpSettings")]
    NoGatewayBgp {
        /// The gateway.
        name: String,
    },
    /// Connections to one device disagree on the device's AS or BGP address.
    #[error("one device has one AS and one BGP address, but its local network gateways say {first} and {other}")]
    DeviceBgpMismatch {
        /// What the first connection says.
        first: String,
        /// What another says.
        other: String,
    },
    /// A routing-daemon configuration was asked for a connection without BGP.
    #[error("connection {name} does not have enableBgp: there is no BGP session to configure ({vendor} configures only that)")]
    NoBgp {
        /// The connection.
        name: String,
        /// The vendor asked for.
        vendor: &'static str,
    },
    /// The site's store could not be read.
    #[error("site {site}: {source}")]
    Site {
        /// The site concerned.
        site: String,
        #[source]
        /// The underlying error.
        source: Box<site::SiteError>,
    },
    /// The site has no connection of that name.
    #[error("site {site} has no connection {name:?} (connections: {known})")]
    NoSuchConnection {
        /// The site concerned.
        site: String,
        /// The name concerned.
        name: String,
        /// What is known.
        known: String,
    },
    /// The connection has no on-premises device as its peer (Vnet2Vnet, ExpressRoute, …).
    #[error("connection {name:?} is of type {connection_type}: only IPsec (site-to-site) connections have an on-premises VPN device to configure")]
    NotSiteToSite {
        /// The name concerned.
        name: String,
        /// The connection type.
        connection_type: String,
    },
    /// A resource the connection refers to is not in the site.
    #[error("connection {connection:?}: {what} {id} does not exist in site {site}")]
    MissingResource {
        /// The site concerned.
        site: String,
        /// The connection.
        connection: String,
        /// What was being handled.
        what: &'static str,
        /// The identifier concerned.
        id: String,
    },
    /// The local network gateway gives only an FQDN; hybridnet does not resolve names.
    #[error("local network gateway {name:?} has no gatewayIpAddress (hybridnet does not resolve fqdn {fqdn:?}); the device's address is needed for its configuration")]
    NoDeviceAddress {
        /// The name concerned.
        name: String,
        /// The FQDN.
        fqdn: String,
    },
    /// The local network gateway lists no prefixes, so the device has nothing to protect.
    #[error("local network gateway {name:?} has no localNetworkAddressSpace.addressPrefixes: the device's traffic selectors would be empty")]
    NoDevicePrefixes {
        /// The name concerned.
        name: String,
    },
    /// The VNet has no address space, so the device would have no remote traffic selector.
    #[error("virtual network {name:?} has no address space")]
    NoVnetPrefixes {
        /// The name concerned.
        name: String,
    },
    /// The VNet gateway has no public IP configuration.
    #[error("virtual network gateway {name:?} has no IP configuration with a public IP address")]
    NoGatewayAddress {
        /// The name concerned.
        name: String,
    },
    /// The connection has no shared key, so a PSK device cannot authenticate.
    #[error(
        "connection {name:?} has no sharedKey: a pre-shared-key device configuration needs one"
    )]
    NoSharedKey {
        /// The name concerned.
        name: String,
    },
    /// No renderer of that name.
    #[error("unknown vendor {name:?} (vendors: {known})")]
    UnknownVendor {
        /// The name concerned.
        name: String,
        /// What is known.
        known: String,
    },
    /// The vendor cannot express something this connection needs.
    #[error("vendor {vendor}: {reason}")]
    Unsupported {
        /// The vendor.
        vendor: &'static str,
        /// Why.
        reason: String,
    },
    /// Writing the output file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// Where it is.
        path: PathBuf,
        #[source]
        /// The underlying error.
        source: std::io::Error,
    },
}
