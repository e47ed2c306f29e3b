//! What a strongSwan site's device shows in `lab status`: its charon, the connections loaded
//! from the exports, and its IKE and CHILD SAs, queried over charon's VICI socket
//! (`list-conns`, `list-sas`; see the [`vici`] crate for why not `swanctl` text).

use crate::spec::SiteSpec;
use crate::strongswan_device::{charon_pids, device_dir, vici_socket};
use crate::strongswan_site::{is_strongswan, DEVICE};
use crate::topology::Topology;
use std::net::Ipv4Addr;
use std::path::Path;

/// One CHILD_SA, with its fields as `swanctl --list-sas` shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwanChildSa {
    /// Child name (the connection's name in the export).
    pub name: String,
    /// State (`INSTALLED`, `REKEYING`, …).
    pub state: String,
    /// Mode and encapsulation (`TUNNEL-in-UDP`).
    pub mode: String,
    /// Negotiated ESP algorithms, e.g. `AES_GCM_16-256/ECP_384`.
    pub algorithms: String,
    /// Bytes received on it.
    pub bytes_in: u64,
    /// Bytes sent on it.
    pub bytes_out: u64,
    /// Packets received.
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Local traffic selectors.
    pub local_ts: Vec<String>,
    /// Remote traffic selectors.
    pub remote_ts: Vec<String>,
}

/// One IKE SA, with its fields as `swanctl --list-sas` shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwanIkeSa {
    /// Connection name.
    pub name: String,
    /// State (`ESTABLISHED`, `CONNECTING`, …).
    pub state: String,
    /// IKE version (`IKEv2`).
    pub version: String,
    /// Local endpoint (`192.0.2.1[4500]`).
    pub local: String,
    /// Remote endpoint.
    pub remote: String,
    /// Negotiated IKE algorithms, e.g. `AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384`.
    pub algorithms: String,
    /// Its CHILD_SAs.
    pub children: Vec<SwanChildSa>,
}

impl From<&vici::ChildSa> for SwanChildSa {
    fn from(c: &vici::ChildSa) -> Self {
        SwanChildSa {
            name: c.name.clone(),
            state: c.state.clone(),
            mode: c.mode_text(),
            algorithms: c.algorithms(),
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
            packets_in: c.packets_in,
            packets_out: c.packets_out,
            local_ts: c.local_ts.clone(),
            remote_ts: c.remote_ts.clone(),
        }
    }
}

impl From<&vici::IkeSa> for SwanIkeSa {
    fn from(ike: &vici::IkeSa) -> Self {
        SwanIkeSa {
            name: ike.name.clone(),
            state: ike.state.clone(),
            version: format!("IKEv{}", ike.version),
            local: format!("{}[{}]", ike.local_host, ike.local_port),
            remote: format!("{}[{}]", ike.remote_host, ike.remote_port),
            algorithms: ike.algorithms(),
            children: ike.children.iter().map(SwanChildSa::from).collect(),
        }
    }
}

/// A strongSwan site's device in `lab status`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceStatus {
    /// Site name.
    pub site: String,
    /// The device namespace.
    pub netns: String,
    /// Its public IP on the internet.
    pub public_address: Ipv4Addr,
    /// Its address in the LAN.
    pub lan_address: Ipv4Addr,
    /// charon's pid, if it runs.
    pub charon_pid: Option<i32>,
    /// Connections loaded from the exports (their names, VICI `list-conns`).
    pub configured: Vec<String>,
    /// IKE SAs (VICI `list-sas`).
    pub sas: Vec<SwanIkeSa>,
    /// Why the SAs could not be read, if charon runs but did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DeviceStatus {
    /// The device as `lab status` prints it, one line per device, IKE SA and CHILD_SA.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "strongSwan device {} (LAN {})  netns {}  charon {}{}",
            self.public_address,
            self.lan_address,
            self.netns,
            self.charon_pid
                .map(|p| format!("pid {p}"))
                .unwrap_or_else(|| "not running".into()),
            if self.configured.is_empty() {
                String::new()
            } else {
                format!("  connections {}", self.configured.join(","))
            }
        )];
        if let Some(e) = &self.error {
            out.push(format!("  error: {e}"));
        }
        if self.charon_pid.is_some() && self.sas.is_empty() && self.error.is_none() {
            out.push("  no IKE SA".into());
        }
        for ike in &self.sas {
            out.push(format!(
                "  IKE SA {} {} {} {} <-> {}  {}",
                ike.name,
                ike.state,
                ike.version,
                ike.local,
                ike.remote,
                if ike.algorithms.is_empty() {
                    "-"
                } else {
                    &ike.algorithms
                }
            ));
            for c in &ike.children {
                out.push(format!(
                    "    CHILD_SA {} {} {} ESP {}  {} <-> {}  in {} B / {} pkts, out {} B / {} pkts",
                    c.name,
                    c.state,
                    c.mode,
                    c.algorithms,
                    c.local_ts.join(","),
                    c.remote_ts.join(","),
                    c.bytes_in,
                    c.packets_in,
                    c.bytes_out,
                    c.packets_out
                ));
            }
        }
        out
    }
}

/// The status of each strongSwan site's device of a lab.
pub fn status(lab_dir: &Path, topology: &Topology, specs: &[SiteSpec]) -> Vec<DeviceStatus> {
    let mut out = Vec::new();
    for spec in specs.iter().filter(|s| is_strongswan(s)) {
        let Some(dev) = topology
            .sites
            .iter()
            .find(|n| n.name == spec.name)
            .and_then(|n| n.gateways.iter().find(|g| g.name == DEVICE))
        else {
            continue;
        };
        let netns = topology.lab_id.gateway_netns(&spec.name, DEVICE);
        let dir = device_dir(lab_dir, &spec.name);
        let charon_pid = charon_pids(&netns).first().copied();
        let mut st = DeviceStatus {
            site: spec.name.clone(),
            netns,
            public_address: dev.public_address,
            lan_address: dev.private_address,
            charon_pid,
            configured: Vec::new(),
            sas: Vec::new(),
            error: None,
        };
        if charon_pid.is_some() {
            // VICI, not `swanctl --list-sas` text: ~10x faster (1.3 ms vs 13.5 ms for both
            // queries, no process) and structured; measurement in the vici crate's docs.
            let socket = vici_socket(&dir);
            match vici::list_sas(&socket) {
                Ok(sas) => st.sas = sas.iter().map(SwanIkeSa::from).collect(),
                Err(e) => st.error = Some(e.to_string()),
            }
            if let Ok(conns) = vici::list_conns(&socket) {
                st.configured = conns.into_iter().map(|c| c.name).collect();
            }
        }
        out.push(st);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vici_sas_map_to_what_status_shows() {
        let ike = vici::IkeSa {
            name: "azure-to-onprem".into(),
            state: "ESTABLISHED".into(),
            version: 2,
            local_host: "192.0.2.1".into(),
            local_port: 4500,
            remote_host: "203.0.113.1".into(),
            remote_port: 4500,
            encr_alg: Some("AES_CBC".into()),
            encr_keysize: Some(256),
            integ_alg: Some("HMAC_SHA1_96".into()),
            prf_alg: Some("PRF_HMAC_SHA1".into()),
            dh_group: Some("MODP_1024".into()),
            children: vec![vici::ChildSa {
                name: "azure-to-onprem".into(),
                state: "INSTALLED".into(),
                mode: "TUNNEL".into(),
                encap: true,
                encr_alg: Some("AES_GCM_16".into()),
                encr_keysize: Some(256),
                bytes_in: 10280,
                packets_in: 10,
                bytes_out: 8400,
                packets_out: 9,
                local_ts: vec!["10.2.0.0/16".into()],
                remote_ts: vec!["10.1.0.0/16".into()],
                ..vici::ChildSa::default()
            }],
            ..vici::IkeSa::default()
        };
        let a = SwanIkeSa::from(&ike);
        assert_eq!(
            (a.name.as_str(), a.state.as_str(), a.version.as_str()),
            ("azure-to-onprem", "ESTABLISHED", "IKEv2")
        );
        assert_eq!(
            (a.local.as_str(), a.remote.as_str()),
            ("192.0.2.1[4500]", "203.0.113.1[4500]")
        );
        assert_eq!(
            a.algorithms,
            "AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024"
        );
        let c = &a.children[0];
        assert_eq!(
            (c.state.as_str(), c.mode.as_str(), c.algorithms.as_str()),
            ("INSTALLED", "TUNNEL-in-UDP", "AES_GCM_16-256")
        );
        assert_eq!(
            (c.bytes_in, c.packets_in, c.bytes_out, c.packets_out),
            (10280, 10, 8400, 9)
        );
        assert_eq!(
            (c.local_ts.clone(), c.remote_ts.clone()),
            (
                vec!["10.2.0.0/16".to_string()],
                vec!["10.1.0.0/16".to_string()]
            )
        );
        // Before negotiation: no algorithms yet, shown as "-" by `lab status`.
        let connecting = SwanIkeSa::from(&vici::IkeSa {
            state: "CONNECTING".into(),
            version: 2,
            ..vici::IkeSa::default()
        });
        assert!(connecting.algorithms.is_empty() && connecting.children.is_empty());
    }
}
