//! A connection as `az network vpn-connection show` prints it, with its live status taken
//! from whichever gateway process runs it: the lab's own gateway, a `hybridnet gateway run`
//! started by hand in the gateway's namespace, or an explicit control socket.

use crate::lab::{site_err, Lab, LabError};
use devconfig::{connection_view, find_connection, LiveConnection};
use serde_json::Value;
use site::Resource;
use std::path::{Path, PathBuf};

/// The gateway's report for connection `name`, read from its control socket.
pub fn live_status(control: &Path, name: &str) -> Result<LiveConnection, LabError> {
    let status =
        gateway::status::query(control).map_err(|e| LabError::LiveStatus(e.to_string()))?;
    let known: Vec<String> = status.connections.iter().map(|c| c.name.clone()).collect();
    let report = status
        .connections
        .into_iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            LabError::LiveStatus(format!(
                "the gateway at {} runs no connection {name:?} (it runs: {})",
                control.display(),
                known.join(", ")
            ))
        })?;
    Ok(LiveConnection {
        source: format!(
            "gateway control socket {} (pid {})",
            control.display(),
            status.pid
        ),
        local_address: status.local_address.clone(),
        report,
    })
}

/// Control sockets of the `hybridnet gateway run` processes living in network namespace `ns`,
/// read from their command lines (`--control PATH`, else the config's `control_socket`, else
/// the default derived from the config path), whoever started them.
fn gateway_controls_in_netns(ns: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for pid in crate::netns::pids_in_netns(ns) {
        let Ok(p) = procfs::process::Process::new(pid) else {
            continue;
        };
        let Ok(args) = p.cmdline() else {
            continue;
        };
        let Some(run) = args
            .windows(2)
            .position(|w| w[0] == "gateway" && w[1] == "run")
        else {
            continue;
        };
        let cwd = p.cwd().unwrap_or_default();
        let mut control = None;
        let mut config = None;
        let mut rest = args[run + 2..].iter();
        while let Some(a) = rest.next() {
            if a == "--control" {
                control = rest.next().map(PathBuf::from);
            } else if let Some(v) = a.strip_prefix("--control=") {
                control = Some(PathBuf::from(v));
            } else if !a.starts_with('-') && config.is_none() {
                config = Some(PathBuf::from(a));
            }
        }
        let control = control.or_else(|| {
            let config = cwd.join(config?);
            let from_file = gateway::GatewayConfig::load(&config)
                .ok()
                .and_then(|c| c.control_socket);
            Some(from_file.unwrap_or_else(|| gateway::default_control_path(&config)))
        });
        if let Some(c) = control {
            out.push(cwd.join(c));
        }
    }
    out
}

impl Lab {
    /// The live status of connection `conn` from whichever gateway process in the lab's
    /// namespace for its VNet gateway runs it; `Err` says in words why there is none.
    fn discover_live(&self, site: &str, conn: &site::Connection) -> Result<LiveConnection, String> {
        let gw_name = conn
            .virtual_network_gateway1
            .rsplit('/')
            .next()
            .unwrap_or_default();
        let ns = self.id().gateway_netns(site, gw_name);
        let controls = gateway_controls_in_netns(&ns);
        if controls.is_empty() {
            return Err(format!(
                "no hybridnet gateway process runs in namespace {ns} (gateway {gw_name})"
            ));
        }
        for c in &controls {
            if let Ok(live) = live_status(c, &conn.meta.name) {
                return Ok(live);
            }
        }
        Err(format!(
            "no gateway in namespace {ns} reports connection {} (asked {})",
            conn.meta.name,
            controls
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    /// The view of `conn`: with live status from `control` if given; else the lab's own view
    /// (`Lab::connections`, the same `lab status` shows); if the lab knows no live status, a
    /// `hybridnet gateway run` process found in the gateway's namespace (e.g. one started by
    /// hand in a lab without gateway processes). `hybridnet.statusNote` says why a status is
    /// Unknown.
    fn view(
        &self,
        site: &str,
        conn: &site::Connection,
        control: Option<&Path>,
    ) -> Result<Value, LabError> {
        let note = |mut v: Value, why: &str| {
            if let Some(extra) = v.get_mut("hybridnet").and_then(|x| x.as_object_mut()) {
                extra.insert("statusNote".into(), serde_json::json!(why));
            }
            v
        };
        if let Some(p) = control {
            let live = live_status(p, &conn.meta.name)?;
            return Ok(connection_view(conn, Some(&live)));
        }
        let from_lab = self
            .connections()?
            .into_iter()
            .find(|c| c.site == site && c.name == conn.meta.name);
        Ok(match from_lab {
            Some(c) if c.connection_status != "Unknown" => c.resource,
            other => match self.discover_live(site, conn) {
                Ok(live) => connection_view(conn, Some(&live)),
                Err(why) => note(
                    other
                        .map(|c| c.resource)
                        .unwrap_or_else(|| connection_view(conn, None)),
                    &why,
                ),
            },
        })
    }

    /// `vpn-connection show`: connection `name` of `site` as Azure shows it, with its live
    /// status (from `control` when given).
    pub fn connection_view(
        &self,
        site: &str,
        name: &str,
        control: Option<&Path>,
    ) -> Result<Value, LabError> {
        let resources = self.site(site)?.resources().map_err(site_err(site))?;
        let conn = find_connection(site, &resources, name)?;
        self.view(site, conn, control)
    }

    /// `vpn-connection list`: every connection of `site` as Azure shows it.
    pub fn connection_views(&self, site: &str) -> Result<Vec<Value>, LabError> {
        let resources = self.site(site)?.resources().map_err(site_err(site))?;
        let mut views = Vec::new();
        for r in &resources {
            if let Resource::Connection(c) = r {
                views.push(self.view(site, c, None)?);
            }
        }
        Ok(views)
    }
}

impl Lab {
    /// `vpn-connection device-config`: the configuration of the on-premises device that is
    /// the peer of connection `name`, for `vendor` (announcing `announce` over BGP, when
    /// given).
    pub fn device_config(
        &self,
        site: &str,
        name: &str,
        vendor: &str,
        device_address: Option<std::net::Ipv4Addr>,
        announce: &[ipnet::Ipv4Net],
    ) -> Result<String, LabError> {
        let vendor = devconfig::vendor(vendor)?;
        let mut peer = devconfig::PeerDevice::from_site(&self.site(site)?, name)?;
        if let Some(inside) = device_address {
            peer = peer.with_local_address(inside);
        }
        if !announce.is_empty() {
            peer = peer.with_announce(announce);
        }
        Ok(vendor.render(&peer)?)
    }
}
