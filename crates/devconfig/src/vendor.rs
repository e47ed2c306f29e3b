//! The vendor registry: each renderer is one type implementing [`Vendor`].

use crate::error::DevConfigError;
use crate::peer::PeerDevice;

/// A device family hybridnet can write a configuration for (Azure's vendor/deviceFamily).
pub trait Vendor: Sync {
    /// Name used on the command line (`--vendor strongswan`).
    fn name(&self) -> &'static str;
    /// One line for `--list-vendors`.
    fn description(&self) -> &'static str;
    /// The file name the configuration is usually stored as (e.g. `swanctl.conf`).
    fn file_name(&self) -> &'static str;
    /// Whether the output contains the shared key (then it is written with mode 0600).
    fn contains_secret(&self) -> bool;
    /// The configuration text for the device.
    fn render(&self, peer: &PeerDevice) -> Result<String, DevConfigError>;
}

static VENDORS: &[&dyn Vendor] = &[
    &crate::strongswan::StrongSwan,
    &crate::bird::Bird,
    &crate::frr::Frr,
    &crate::generic::Generic,
];

/// Every vendor, in the order `--list-vendors` prints them.
pub fn vendors() -> &'static [&'static dyn Vendor] {
    VENDORS
}

/// The vendor of that name (case-insensitive).
pub fn vendor(name: &str) -> Result<&'static dyn Vendor, DevConfigError> {
    VENDORS
        .iter()
        .copied()
        .find(|v| v.name().eq_ignore_ascii_case(name))
        .ok_or_else(|| DevConfigError::UnknownVendor {
            name: name.to_string(),
            known: VENDORS
                .iter()
                .map(|v| v.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl std::fmt::Debug for dyn Vendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vendor({})", self.name())
    }
}
