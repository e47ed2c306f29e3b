//! Learned routes handed on to the VNet's router, pointing at the gateway: how a prefix a
//! BGP peer announces reaches the VMs' routing (Azure propagates gateway routes into the
//! VNet's effective routes).
//!
//! The routes carry protocol `bgp` and metric [`METRIC`], so they never replace a static
//! route the lab keeps for the same prefix (a local network gateway's address space) and a
//! restarted gateway finds and removes what its predecessor left.

use crate::tun::run_ip;
use ipnet::Ipv4Net;
use std::collections::BTreeSet;
use std::io;
use std::net::Ipv4Addr;

/// Metric of the routes: static routes (metric 0) for the same prefix win.
pub const METRIC: &str = "20";

/// The routes this gateway keeps in its VNet router's namespace.
#[derive(Debug)]
pub struct VnetRoutes {
    netns: String,
    next_hop: Ipv4Addr,
    installed: BTreeSet<Ipv4Net>,
}

impl VnetRoutes {
    /// Takes over the router's routes through `next_hop`: what an earlier run of the
    /// gateway left there is removed.
    pub fn new(netns: &str, next_hop: Ipv4Addr) -> io::Result<VnetRoutes> {
        let hop = next_hop.to_string();
        run_ip(&[
            "-n", netns, "-4", "route", "flush", "proto", "bgp", "via", &hop,
        ])?;
        Ok(VnetRoutes {
            netns: netns.to_string(),
            next_hop,
            installed: BTreeSet::new(),
        })
    }

    /// Makes the router's routes through us exactly `want`; returns the first error (the
    /// rest is still attempted).
    pub fn sync(&mut self, want: &BTreeSet<Ipv4Net>) -> io::Result<()> {
        let hop = self.next_hop.to_string();
        let mut first_err = None;
        let stale: Vec<Ipv4Net> = self.installed.difference(want).copied().collect();
        for p in stale {
            let dst = p.to_string();
            match run_ip(&[
                "-n",
                &self.netns,
                "-4",
                "route",
                "del",
                &dst,
                "via",
                &hop,
                "proto",
                "bgp",
                "metric",
                METRIC,
            ]) {
                Err(e) if !e.to_string().contains("No such process") => {
                    first_err.get_or_insert(e);
                }
                _ => {
                    self.installed.remove(&p);
                }
            }
        }
        let missing: Vec<Ipv4Net> = want.difference(&self.installed).copied().collect();
        for p in missing {
            let dst = p.to_string();
            match run_ip(&[
                "-n",
                &self.netns,
                "-4",
                "route",
                "replace",
                &dst,
                "via",
                &hop,
                "proto",
                "bgp",
                "metric",
                METRIC,
            ]) {
                Ok(()) => {
                    self.installed.insert(p);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// What is installed now.
    pub fn installed(&self) -> &BTreeSet<Ipv4Net> {
        &self.installed
    }
}
