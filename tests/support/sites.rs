//! The standard two-site topology the gateway tests use: four namespaces (two VMs, two
//! gateways) and the addresses of each.

use anyhow::{Context, Result};
use testkit::netns::{unique_id, veth, Netns};

/// The two-site topology:
///
/// ```text
///  vm-a 10.1.1.4 ── 10.1.1.1 gw-a 198.51.100.1 ── "internet" ── 198.51.100.2 gw-b 10.2.1.1 ── 10.2.1.4 vm-b
/// ```
/// Site A owns 10.1.0.0/16, site B 10.2.0.0/16. Dropping it removes all four namespaces
/// (vm namespaces first, so processes in gateways are killed last by their own guards).
pub struct TwoSites {
    /// Unique id of this topology (part of every namespace name).
    pub id: String,
    /// Host behind gateway A.
    pub vm_a: Netns,
    /// Host behind gateway B.
    pub vm_b: Netns,
    /// Gateway A.
    pub gw_a: Netns,
    /// Gateway B.
    pub gw_b: Netns,
}

/// Addresses of [`TwoSites`].
pub mod addrs {
    /// vm-a.
    pub const VM_A: &str = "10.1.1.4";
    /// vm-b.
    pub const VM_B: &str = "10.2.1.4";
    /// gw-a's inside address.
    pub const GW_A_IN: &str = "10.1.1.1";
    /// gw-b's inside address.
    pub const GW_B_IN: &str = "10.2.1.1";
    /// gw-a's public address.
    pub const GW_A_WAN: &str = "198.51.100.1";
    /// gw-b's public address.
    pub const GW_B_WAN: &str = "198.51.100.2";
    /// Site A's prefix.
    pub const NET_A: &str = "10.1.0.0/16";
    /// Site B's prefix.
    pub const NET_B: &str = "10.2.0.0/16";
    /// gw-a's IKE identity in tests that use FQDNs.
    pub const ID_A: &str = "gw-a.lab.example";
    /// gw-b's IKE identity.
    pub const ID_B: &str = "gw-b.lab.example";
}

impl TwoSites {
    /// Builds the topology with fresh, unique namespace names.
    pub fn new() -> Result<TwoSites> {
        let id = unique_id();
        let gw_a = Netns::new(&format!("hn{id}-gwa"))?;
        let gw_b = Netns::new(&format!("hn{id}-gwb"))?;
        let vm_a = Netns::new(&format!("hn{id}-vma"))?;
        let vm_b = Netns::new(&format!("hn{id}-vmb"))?;
        veth(&vm_a, "vm0", &gw_a, "in0")?;
        veth(&vm_b, "vm0", &gw_b, "in0")?;
        veth(&gw_a, "wan0", &gw_b, "wan0")?;
        vm_a.addr("vm0", &format!("{}/24", addrs::VM_A))?;
        gw_a.addr("in0", &format!("{}/24", addrs::GW_A_IN))?;
        gw_a.addr("wan0", &format!("{}/24", addrs::GW_A_WAN))?;
        gw_b.addr("wan0", &format!("{}/24", addrs::GW_B_WAN))?;
        gw_b.addr("in0", &format!("{}/24", addrs::GW_B_IN))?;
        vm_b.addr("vm0", &format!("{}/24", addrs::VM_B))?;
        vm_a.exec("ip", &["route", "add", "default", "via", addrs::GW_A_IN])?;
        vm_b.exec("ip", &["route", "add", "default", "via", addrs::GW_B_IN])?;
        gw_a.make_router()?;
        gw_b.make_router()?;
        gw_a.exec("ping", &["-c1", "-W2", "-q", addrs::GW_B_WAN])
            .context("the internet link does not work")?;
        Ok(TwoSites {
            id,
            vm_a,
            vm_b,
            gw_a,
            gw_b,
        })
    }
}
