//! The main loop's side of BGP: starts the speaker thread ([`crate::bgp_io`]) for a gateway
//! with `[bgp]`, tells it which tunnels are up, takes its forwarding table into the core (and
//! so into the data path, the gateway's routes and the VNet router's), and builds the status
//! report.

use crate::bgp_io::BgpThread;
use crate::bgp_report::{peer_report, route_report, BgpAdvertised, BgpRefused, BgpReport};
use crate::core::GatewayCore;
use bgp::SpeakerConfig;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::BorrowedFd;
use tracing::info;

/// The speaker of a gateway and what the main loop keeps about it.
pub struct BgpSide {
    thread: BgpThread,
    /// Reachability last told to the thread.
    reach: Vec<(Ipv4Addr, bool)>,
}

impl BgpSide {
    /// The speaker for `core`'s `[bgp]`, or `None` without one.
    pub fn start(core: &GatewayCore) -> io::Result<Option<BgpSide>> {
        let Some(cfg) = &core.config().bgp else {
            return Ok(None);
        };
        let thread = BgpThread::start(
            SpeakerConfig {
                local_as: cfg.asn,
                bgp_id: cfg.address,
                hold_time: cfg.hold_time,
                connect_retry: bgp::speaker::GATEWAY_CONNECT_RETRY,
                originate: cfg.originate.clone(),
            },
            core.bgp_peers(),
        )?;
        info!(asn = cfg.asn, address = %cfg.address, peers = core.bgp_peers().len(), "BGP on");
        Ok(Some(BgpSide {
            thread,
            reach: Vec::new(),
        }))
    }

    /// Readable when the forwarding table changed.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.thread.notify_fd()
    }

    /// Tells the speaker about tunnels that went up or down since the last call.
    pub fn tick(&mut self, core: &GatewayCore) {
        let now = core.bgp_reachability();
        if now != self.reach {
            let changed: Vec<(Ipv4Addr, bool)> = now
                .iter()
                .filter(|r| !self.reach.contains(r))
                .copied()
                .collect();
            self.thread.set_reachable(&changed);
            self.reach = now;
        }
    }

    /// After a reload: the peers may have changed.
    pub fn reconfigured(&mut self, core: &GatewayCore) {
        self.thread.set_peers(core.bgp_peers());
        // re-tell every peer's state: new peers start unreachable in the speaker
        self.reach.clear();
        self.tick(core);
    }

    /// Takes the speaker's forwarding table into the core; returns whether the gateway's
    /// routes must be brought in line.
    pub fn take_routes(&mut self, core: &mut GatewayCore) -> bool {
        let view = self.thread.view();
        core.set_bgp_routes(&view.forwarding)
    }

    /// The status report; connection names from the core.
    pub fn report(&self, core: &GatewayCore) -> BgpReport {
        let view = self.thread.view_snapshot();
        let cfg = core
            .config()
            .bgp
            .as_ref()
            .expect("BGP runs only with [bgp]");
        let local = cfg.address;
        let conn_of = |peer: Ipv4Addr| {
            core.config()
                .connections
                .iter()
                .find(|c| c.bgp_peer.is_some_and(|p| p.address == peer))
                .map_or(String::new(), |c| c.name.clone())
        };
        let error = view.error.clone();
        BgpReport {
            asn: cfg.asn,
            local_address: local.to_string(),
            peers: view
                .peers
                .iter()
                .map(|p| peer_report(local, p, &conn_of(p.address)))
                .collect(),
            learned_routes: view.known.iter().map(|r| route_report(local, r)).collect(),
            advertised_routes: view
                .advertised
                .iter()
                .map(|(peer, routes)| BgpAdvertised {
                    peer: peer.to_string(),
                    routes: routes.iter().map(|r| route_report(local, r)).collect(),
                })
                .collect(),
            refused_routes: core
                .bgp_refused()
                .iter()
                .map(|(p, why)| BgpRefused {
                    network: p.to_string(),
                    reason: why.clone(),
                })
                .collect(),
            last_refusal: view.last_refusal.clone(),
            error,
        }
    }

    /// Stops the speaker (Cease to the peers).
    pub fn stop(&mut self) {
        self.thread.stop();
    }
}
