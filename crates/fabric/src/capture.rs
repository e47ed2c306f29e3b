//! Packet capture on a lab's VPN gateway or one connection (`hybridnet lab capture`, and the
//! sites' `startPacketCapture`/`stopPacketCapture`): the gateway process writes pcapng (see
//! `gateway::capture`); an active-active gateway's instances each write their own file.

use crate::gateways::{self, GatewayRecord};
use crate::lab::{site_err, Lab, LabError};
use gateway::capture::{CaptureReport, CaptureRequest, FilterData};
use site::Resource;
use std::path::{Path, PathBuf};

/// Why a capture could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// No gateway process runs for the gateway (or the connection's gateway).
    #[error("virtual network gateway {site}/{gateway} has no running gateway process")]
    NotRunning {
        /// Site.
        site: String,
        /// Gateway.
        gateway: String,
    },
    /// The connection does not exist in the site.
    #[error("site {site} has no connection {name:?}")]
    NoConnection {
        /// Site.
        site: String,
        /// Connection.
        name: String,
    },
    /// The gateway refused or did not answer.
    #[error("{0}")]
    Gateway(#[from] gateway::status::StatusError),
}

/// What to capture on.
#[derive(Debug, Clone)]
pub enum Scope {
    /// The whole VNet gateway.
    Gateway(String),
    /// One connection (on every instance of its gateway).
    Connection(String),
}

/// The file instance `instance` of a gateway writes when the capture asks for `path`.
fn instance_path(path: &Path, instance: u8) -> PathBuf {
    if instance == 0 {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("capture");
    let ext = path
        .extension()
        .and_then(|s| s.to_str())
        .unwrap_or("pcapng");
    path.with_file_name(format!("{stem}-instance{}.{ext}", instance + 1))
}

impl Lab {
    /// The gateway processes (every instance) a capture scope runs on, with the connection
    /// name when it is one connection's.
    fn capture_targets(
        &self,
        site: &str,
        scope: &Scope,
    ) -> Result<(Vec<GatewayRecord>, Option<String>), LabError> {
        let (gateway, connection) = match scope {
            Scope::Gateway(g) => (g.clone(), None),
            Scope::Connection(name) => {
                let resources = self.site(site)?.resources().map_err(site_err(site))?;
                let c = resources
                    .iter()
                    .find_map(|r| match r {
                        Resource::Connection(c) if c.meta.name.eq_ignore_ascii_case(name) => {
                            Some(c)
                        }
                        _ => None,
                    })
                    .ok_or_else(|| CaptureError::NoConnection {
                        site: site.into(),
                        name: name.clone(),
                    })?;
                let gw = c
                    .virtual_network_gateway1
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                (gw, Some(c.meta.name.clone()))
            }
        };
        let recs: Vec<GatewayRecord> = gateways::records(&self.dir.path)
            .into_iter()
            .filter(|r| r.site == site && r.gateway.eq_ignore_ascii_case(&gateway))
            .collect();
        if recs.is_empty() {
            return Err(CaptureError::NotRunning {
                site: site.into(),
                gateway,
            }
            .into());
        }
        Ok((recs, connection))
    }

    /// Starts a capture writing `path` (an active-active gateway's second instance writes
    /// `<stem>-instance2.<ext>` beside it); returns the files.
    pub fn capture_start(
        &self,
        site: &str,
        scope: &Scope,
        filter: FilterData,
        duration_secs: Option<u64>,
        path: &Path,
    ) -> Result<Vec<PathBuf>, LabError> {
        let (recs, connection) = self.capture_targets(site, scope)?;
        let mut files = Vec::new();
        for rec in &recs {
            let file = instance_path(path, rec.instance);
            let req = CaptureRequest {
                path: file.clone(),
                connection: connection.clone(),
                filter: filter.clone(),
                duration_secs,
            };
            gateway::status::capture_start(&rec.control, &req).map_err(CaptureError::from)?;
            files.push(file);
        }
        Ok(files)
    }

    /// Stops the capture on a scope; what each instance wrote.
    pub fn capture_stop(&self, site: &str, scope: &Scope) -> Result<Vec<CaptureReport>, LabError> {
        let (recs, _) = self.capture_targets(site, scope)?;
        let mut out = Vec::new();
        for rec in &recs {
            if let Some(r) =
                gateway::status::capture_stop(&rec.control).map_err(CaptureError::from)?
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The Child SAs of a scope's gateway processes as Wireshark `esp_sa` lines, keys
    /// included: decrypts an outer capture. Only on explicit request.
    pub fn esp_sa(&self, site: &str, scope: &Scope) -> Result<Vec<String>, LabError> {
        let (recs, _) = self.capture_targets(site, scope)?;
        let mut out = Vec::new();
        for rec in &recs {
            out.extend(gateway::status::esp_sa(&rec.control).map_err(CaptureError::from)?);
        }
        Ok(out)
    }
}
