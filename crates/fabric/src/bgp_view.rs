//! A VNet gateway's BGP as Azure shows it: `list-bgp-peer-status`, `list-learned-routes` and
//! `list-advertised-routes`, read from the gateway process's status for the CLI, the lab's
//! Resource Manager endpoint and `lab status` alike.

use crate::lab::{Lab, LabError};
use serde_json::{json, Value};

/// Which of Azure's three BGP lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BgpList {
    /// `getBgpPeerStatus` (optionally one peer).
    PeerStatus,
    /// `getLearnedRoutes`.
    LearnedRoutes,
    /// `getAdvertisedRoutes` (one peer, required).
    AdvertisedRoutes,
}

/// Why a gateway's BGP lists cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum BgpViewError {
    /// No running gateway process for the name.
    #[error("virtual network gateway {site}/{gateway} has no running gateway process")]
    NotRunning {
        /// Site.
        site: String,
        /// Gateway.
        gateway: String,
    },
    /// The gateway runs without BGP.
    #[error("virtual network gateway {site}/{gateway} does not run BGP (enableBgp is false)")]
    NoBgp {
        /// Site.
        site: String,
        /// Gateway.
        gateway: String,
    },
    /// The gateway did not answer.
    #[error("virtual network gateway {site}/{gateway}: {cause}")]
    Status {
        /// Site.
        site: String,
        /// Gateway.
        gateway: String,
        /// What the status query said.
        cause: String,
    },
    /// `list-advertised-routes` needs a peer.
    #[error("list-advertised-routes needs the peer's address (--peer)")]
    PeerRequired,
    /// The peer named is not one of the gateway's.
    #[error("{peer} is not a BGP peer of the gateway (peers: {known})")]
    UnknownPeer {
        /// The address asked for.
        peer: String,
        /// The gateway's peers.
        known: String,
    },
}

/// The BGP report of the gateway processes of `gateway` in `site` in the lab at `lab_dir`:
/// an active-active gateway's instances each run a speaker, and Azure lists them together
/// (each peer and route with its instance's `localAddress`).
pub fn gateway_bgp(
    lab_dir: &std::path::Path,
    site: &str,
    gateway: &str,
) -> Result<gateway::bgp_report::BgpReport, BgpViewError> {
    let recs: Vec<_> = crate::gateways::records(lab_dir)
        .into_iter()
        .filter(|g| g.site == site && g.gateway.eq_ignore_ascii_case(gateway))
        .collect();
    if recs.is_empty() {
        return Err(BgpViewError::NotRunning {
            site: site.into(),
            gateway: gateway.into(),
        });
    }
    let mut merged: Option<gateway::bgp_report::BgpReport> = None;
    for rec in recs {
        let status = gateway::status::query(&rec.control).map_err(|e| BgpViewError::Status {
            site: site.into(),
            gateway: rec.instance_name(),
            cause: e.to_string(),
        })?;
        let report = status.bgp.ok_or_else(|| BgpViewError::NoBgp {
            site: site.into(),
            gateway: gateway.into(),
        })?;
        match &mut merged {
            None => merged = Some(report),
            Some(m) => {
                m.peers.extend(report.peers);
                m.learned_routes.extend(report.learned_routes);
                m.advertised_routes.extend(report.advertised_routes);
                m.refused_routes.extend(report.refused_routes);
                m.last_refusal = m.last_refusal.take().or(report.last_refusal);
                m.error = m.error.take().or(report.error);
            }
        }
    }
    Ok(merged.expect("at least one record"))
}

/// One of Azure's lists from a report, as `{"value": [...]}`.
pub fn bgp_list(
    report: &gateway::bgp_report::BgpReport,
    list: BgpList,
    peer: Option<&str>,
) -> Result<Value, BgpViewError> {
    let known = || {
        report
            .peers
            .iter()
            .map(|p| p.neighbor.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let check_peer = |p: &str| {
        if report.peers.iter().any(|x| x.neighbor == p) {
            Ok(())
        } else {
            Err(BgpViewError::UnknownPeer {
                peer: p.into(),
                known: known(),
            })
        }
    };
    let value = match list {
        BgpList::PeerStatus => {
            if let Some(p) = peer {
                check_peer(p)?;
            }
            serde_json::to_value(
                report
                    .peers
                    .iter()
                    .filter(|x| peer.is_none_or(|p| x.neighbor == p))
                    .collect::<Vec<_>>(),
            )
        }
        BgpList::LearnedRoutes => serde_json::to_value(&report.learned_routes),
        BgpList::AdvertisedRoutes => {
            let p = peer.ok_or(BgpViewError::PeerRequired)?;
            check_peer(p)?;
            serde_json::to_value(
                report
                    .advertised_routes
                    .iter()
                    .find(|a| a.peer == p)
                    .map(|a| a.routes.clone())
                    .unwrap_or_default(),
            )
        }
    }
    .expect("reports serialize");
    Ok(json!({ "value": value }))
}

impl Lab {
    /// One of Azure's BGP lists of VNet gateway `gateway` in `site`.
    pub fn gateway_bgp_list(
        &self,
        site: &str,
        gateway: &str,
        list: BgpList,
        peer: Option<&str>,
    ) -> Result<Value, LabError> {
        let report = gateway_bgp(&self.dir.path, site, gateway)?;
        Ok(bgp_list(&report, list, peer)?)
    }
}
