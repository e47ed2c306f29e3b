//! Names of every kernel object a lab creates.
//!
//! Every namespace carries the lab id (`hn-<id>-…`) so that labs never collide and `lab down`
//! finds everything by prefix even when the state directory is gone. Interface names are limited
//! to 15 bytes by the kernel, so they are compact and generated (`b-<id>-<hash>`), and the
//! realization records what each one stands for.

use std::fmt;

/// Every namespace name a lab creates starts with this, then the lab id and a dash.
pub const NETNS_PREFIX: &str = "hn-";

/// Length of a lab id: short enough to fit in a 15-byte interface name with room to spare.
pub const LAB_ID_LEN: usize = 5;

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// A lab's short unique id (5 chars of `[a-z0-9]`), the prefix of every object of the lab.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct LabId(String);

/// A string that is not a valid lab id.
#[derive(Debug, thiserror::Error)]
#[error("invalid lab id {0:?}: expected {LAB_ID_LEN} characters of a-z and 0-9")]
pub struct InvalidLabId(pub String);

impl LabId {
    /// Checks the shape so that an id can never break the prefix scheme.
    pub fn parse(s: &str) -> Result<LabId, InvalidLabId> {
        if s.len() == LAB_ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            Ok(LabId(s.to_string()))
        } else {
            Err(InvalidLabId(s.to_string()))
        }
    }

    /// A fresh random id (from the kernel's random source), for a new lab.
    pub fn random() -> LabId {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut bytes = [0u8; LAB_ID_LEN];
        let got = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
        if got.is_err() {
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
                ^ u128::from(std::process::id()) << 64;
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = (seed >> (i * 8)) as u8;
            }
        }
        // The first character is a letter so that ids never look like numbers.
        let s: String = bytes
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let n = if i == 0 { 26 } else { ALPHABET.len() };
                ALPHABET[*b as usize % n] as char
            })
            .collect();
        LabId(s)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefix shared by all of this lab's namespaces: `hn-<id>-`.
    pub fn netns_prefix(&self) -> String {
        format!("{NETNS_PREFIX}{}-", self.0)
    }

    /// Namespace of a VM: `hn-<id>-<site>-<vm>`.
    pub fn vm_netns(&self, site: &str, vm: &str) -> String {
        format!("{}{}-{}", self.netns_prefix(), site, vm)
    }

    /// Namespace of a VNet's router: `hn-<id>-<site>-vnet-<vnet>`.
    pub fn router_netns(&self, site: &str, vnet: &str) -> String {
        format!("{}{}-vnet-{}", self.netns_prefix(), site, vnet)
    }

    /// Namespace of the simulated internet: `hn-<id>-internet`.
    pub fn internet_netns(&self) -> String {
        format!("{}internet", self.netns_prefix())
    }

    /// Namespace of the NAT device in front of a site: `hn-<id>-<site>-nat`.
    pub fn nat_netns(&self, site: &str) -> String {
        format!("{}{}-nat", self.netns_prefix(), site)
    }

    /// Namespace of a virtual network gateway: `hn-<id>-<site>-gw-<gateway>`.
    pub fn gateway_netns(&self, site: &str, gateway: &str) -> String {
        format!("{}{}-gw-{}", self.netns_prefix(), site, gateway)
    }

    /// Namespace of instance `instance` of a virtual network gateway: the gateway's for the
    /// first, `hn-<id>-<site>-gw<n>-<gateway>` for the n-th (active-active).
    pub fn gateway_instance_netns(&self, site: &str, gateway: &str, instance: u8) -> String {
        if instance == 0 {
            self.gateway_netns(site, gateway)
        } else {
            format!(
                "{}{}-gw{}-{}",
                self.netns_prefix(),
                site,
                instance + 1,
                gateway
            )
        }
    }

    /// A compact interface name `<role>-<id>-<hash6>` (14 bytes) for the object named by `key`.
    ///
    /// `role` is one letter (`b` bridge, `v` VM port, `u` uplink, `g` gateway port); `key` is
    /// the object's full logical name, so the same object always gets the same interface name.
    pub fn ifname(&self, role: char, key: &str) -> String {
        let name = format!("{role}-{}-{:06x}", self.0, fnv1a(key) & 0xff_ffff);
        debug_assert!(name.len() <= IFNAME_MAX);
        name
    }
}

impl fmt::Display for LabId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for LabId {
    type Error = InvalidLabId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        LabId::parse(&s)
    }
}

impl From<LabId> for String {
    fn from(id: LabId) -> String {
        id.0
    }
}

/// FNV-1a: a stable hash (unlike std's) so interface names survive rebuilds of the binary.
pub(crate) fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(LabId::parse("ab12c").is_ok());
        assert!(LabId::parse("AB12C").is_err());
        assert!(LabId::parse("ab12").is_err());
        assert!(LabId::parse("ab-2c").is_err());
        let r = LabId::random();
        assert!(LabId::parse(r.as_str()).is_ok());
    }

    #[test]
    fn names_carry_the_id_and_fit() {
        let id = LabId::parse("q7x2m").unwrap();
        assert_eq!(id.vm_netns("azure", "vm1"), "hn-q7x2m-azure-vm1");
        assert_eq!(id.router_netns("azure", "v"), "hn-q7x2m-azure-vnet-v");
        let n = id.ifname('b', "azure/vnet1/default");
        assert!(n.len() <= IFNAME_MAX && n.starts_with("b-q7x2m-"));
        assert_eq!(n, id.ifname('b', "azure/vnet1/default"));
        assert_ne!(n, id.ifname('b', "azure/vnet1/other"));
    }
}
