//! The gateway's routes in its VNet's router, pointing at the gateway: how a prefix a BGP peer
//! announces reaches the VMs (Azure propagates gateway routes into the VNet's effective
//! routes), and for an active-active instance the static prefixes of its tunnels that are up,
//! so the VNet sends to the instance whose tunnels carry traffic.
//!
//! Learned routes carry protocol `bgp`, static ones `static`, with the configured metric, so
//! they never replace a route the lab keeps for the same prefix (metric 0) nor another
//! instance's (its own metric); [`flush`] removes what a gateway left (its supervisor calls
//! it when the gateway dies, a restarted gateway first thing).

use crate::config::VnetRouter;
use crate::tun::run_ip;
use ipnet::Ipv4Net;
use std::collections::BTreeMap;
use std::io;

/// The protocol word of a route: `bgp` for a learned one, else `static`.
fn proto(learned: bool) -> &'static str {
    if learned {
        "bgp"
    } else {
        "static"
    }
}

/// Removes every route through `r.next_hop` the gateway installed in the router.
pub fn flush(r: &VnetRouter) -> io::Result<()> {
    let hop = r.next_hop.to_string();
    for p in ["bgp", "static"] {
        run_ip(&[
            "-n", &r.netns, "-4", "route", "flush", "proto", p, "via", &hop,
        ])?;
    }
    Ok(())
}

/// The routes this gateway keeps in its VNet router's namespace.
#[derive(Debug)]
pub struct VnetRoutes {
    router: VnetRouter,
    installed: BTreeMap<Ipv4Net, bool>,
}

impl VnetRoutes {
    /// Takes over the router's routes through our next hop: what an earlier run of the
    /// gateway left there is removed.
    pub fn new(router: &VnetRouter) -> io::Result<VnetRoutes> {
        flush(router)?;
        Ok(VnetRoutes {
            router: router.clone(),
            installed: BTreeMap::new(),
        })
    }

    /// Makes the router's routes through us exactly `want` (prefix → learned); returns the
    /// first error (the rest is still attempted).
    pub fn sync(&mut self, want: &BTreeMap<Ipv4Net, bool>) -> io::Result<()> {
        let mut first_err = None;
        let stale: Vec<(Ipv4Net, bool)> = self
            .installed
            .iter()
            .filter(|(p, l)| want.get(p) != Some(l))
            .map(|(p, l)| (*p, *l))
            .collect();
        for (p, learned) in stale {
            match self.route("del", p, learned) {
                Err(e) if !e.to_string().contains("No such process") => {
                    first_err.get_or_insert(e);
                }
                _ => {
                    self.installed.remove(&p);
                }
            }
        }
        for (p, learned) in want {
            if self.installed.get(p) == Some(learned) {
                continue;
            }
            match self.route("replace", *p, *learned) {
                Ok(()) => {
                    self.installed.insert(*p, *learned);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// `ip route ACTION` of our route to `prefix` in the router.
    fn route(&self, action: &str, prefix: Ipv4Net, learned: bool) -> io::Result<()> {
        let r = &self.router;
        run_ip(&[
            "-n",
            &r.netns,
            "-4",
            "route",
            action,
            &prefix.to_string(),
            "via",
            &r.next_hop.to_string(),
            "proto",
            proto(learned),
            "metric",
            &r.metric.to_string(),
        ])
    }

    /// What is installed now.
    pub fn installed(&self) -> &BTreeMap<Ipv4Net, bool> {
        &self.installed
    }
}
