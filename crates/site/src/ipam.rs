//! Address management: which addresses of a subnet or a public prefix are usable and free.
//! Azure reserves five addresses per subnet (network, .1 router, .2/.3 DNS, broadcast), so the
//! first NIC gets .4; public addresses start at the first usable address of the site's prefix.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Addresses Azure reserves at the start of every subnet (network, router, two DNS).
pub const RESERVED_AT_START: u32 = 4;

/// The n-th address of a prefix (0 = network address).
pub fn nth(net: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).wrapping_add(n))
}

/// Why an address cannot be used in a subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressProblem {
    /// Not inside the subnet's prefix.
    OutsideSubnet,
    /// One of the five reserved addresses.
    Reserved,
    /// Already used by another NIC or gateway.
    Taken,
}

/// Checks a static address against a subnet's reserved and used addresses.
pub fn check_static(
    subnet: Ipv4Net,
    addr: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
) -> Result<(), AddressProblem> {
    if !subnet.contains(&addr) {
        return Err(AddressProblem::OutsideSubnet);
    }
    let offset = u32::from(addr) - u32::from(subnet.network());
    if offset < RESERVED_AT_START || addr == subnet.broadcast() {
        return Err(AddressProblem::Reserved);
    }
    if used.contains(&addr) {
        return Err(AddressProblem::Taken);
    }
    Ok(())
}

/// The first free address of a subnet from .4 on, or `None` when the subnet is full.
pub fn first_free_in_subnet(subnet: Ipv4Net, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let first = u32::from(subnet.network()).checked_add(RESERVED_AT_START)?;
    let last = u32::from(subnet.broadcast()).checked_sub(1)?;
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|a| !used.contains(a))
}

/// Number of addresses a subnet offers to NICs and gateways (size minus the five reserved).
pub fn usable_in_subnet(subnet: Ipv4Net) -> u64 {
    (1u64 << (32 - u32::from(subnet.prefix_len()))).saturating_sub(5)
}

/// The first free address of a public prefix, from the first usable address on.
pub fn first_free_public(prefix: Ipv4Net, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let (first, last) = if prefix.prefix_len() >= 31 {
        (u32::from(prefix.network()), u32::from(prefix.broadcast()))
    } else {
        (
            u32::from(prefix.network()) + 1,
            u32::from(prefix.broadcast()) - 1,
        )
    };
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|a| !used.contains(a))
}

/// Whether an address is usable in a public prefix (not its network or broadcast address).
pub fn public_usable(prefix: Ipv4Net, addr: Ipv4Addr) -> bool {
    prefix.contains(&addr)
        && (prefix.prefix_len() >= 31 || (addr != prefix.network() && addr != prefix.broadcast()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn dynamic_starts_at_dot_four() {
        assert_eq!(
            first_free_in_subnet(net("10.1.1.0/24"), &BTreeSet::new()),
            Some(ip("10.1.1.4"))
        );
        let used = [ip("10.1.1.4"), ip("10.1.1.6")].into_iter().collect();
        assert_eq!(
            first_free_in_subnet(net("10.1.1.0/24"), &used),
            Some(ip("10.1.1.5"))
        );
    }

    #[test]
    fn reserved_addresses_rejected() {
        let s = net("10.1.1.0/24");
        for a in ["10.1.1.0", "10.1.1.1", "10.1.1.2", "10.1.1.3", "10.1.1.255"] {
            assert_eq!(
                check_static(s, ip(a), &BTreeSet::new()),
                Err(AddressProblem::Reserved),
                "{a}"
            );
        }
        assert_eq!(check_static(s, ip("10.1.1.4"), &BTreeSet::new()), Ok(()));
        assert_eq!(
            check_static(s, ip("10.1.2.4"), &BTreeSet::new()),
            Err(AddressProblem::OutsideSubnet)
        );
        let used = [ip("10.1.1.10")].into_iter().collect();
        assert_eq!(
            check_static(s, ip("10.1.1.10"), &used),
            Err(AddressProblem::Taken)
        );
    }

    #[test]
    fn slash29_has_three_addresses_then_exhausts() {
        let s = net("10.3.200.0/29");
        assert_eq!(usable_in_subnet(s), 3);
        let mut used = BTreeSet::new();
        for want in ["10.3.200.4", "10.3.200.5", "10.3.200.6"] {
            let a = first_free_in_subnet(s, &used).unwrap();
            assert_eq!(a, ip(want));
            used.insert(a);
        }
        assert_eq!(first_free_in_subnet(s, &used), None);
    }

    #[test]
    fn public_prefix_allocation() {
        let p = net("203.0.113.0/29");
        let mut used = BTreeSet::new();
        assert_eq!(first_free_public(p, &used), Some(ip("203.0.113.1")));
        used.insert(ip("203.0.113.1"));
        used.insert(ip("203.0.113.3"));
        assert_eq!(first_free_public(p, &used), Some(ip("203.0.113.2")));
        for a in 2..=6 {
            used.insert(ip(&format!("203.0.113.{a}")));
        }
        assert_eq!(
            first_free_public(p, &used),
            None,
            "broadcast .7 is never handed out"
        );
        assert!(!public_usable(p, ip("203.0.113.0")));
        assert!(public_usable(net("198.51.100.7/32"), ip("198.51.100.7")));
        assert_eq!(
            first_free_public(net("198.51.100.7/32"), &BTreeSet::new()),
            Some(ip("198.51.100.7"))
        );
    }
}
