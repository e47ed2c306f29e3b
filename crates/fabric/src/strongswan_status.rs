//! What a strongSwan site's device shows in `lab status`: its charon, the connections loaded
//! from the exports, and its IKE and CHILD SAs as `swanctl --list-sas` reports them.

use crate::spec::SiteSpec;
use crate::strongswan_device::{charon_pids, device_dir, swanctl};
use crate::strongswan_site::{is_strongswan, DEVICE};
use crate::topology::Topology;
use std::net::Ipv4Addr;
use std::path::Path;

/// One CHILD_SA as `swanctl --list-sas` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
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

/// One IKE SA as `swanctl --list-sas` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
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

/// Parses `swanctl --list-sas`. Lines it does not know are skipped, so a strongSwan version
/// that prints more still parses.
///
/// ```text
/// azure-to-onprem: #1, ESTABLISHED, IKEv2, 1b2c…_i* 9f8e…_r
///   local  '192.0.2.1' @ 192.0.2.1[4500]
///   remote '203.0.113.1' @ 203.0.113.1[4500]
///   AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_1024
///   established 3s ago, rekeying in 12960s
///   azure-to-onprem: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256
///     installed 3s ago, rekeying in 2940s, expires in 3600s
///     in  c1a2b3c4 (-|0x…),    840 bytes,    10 packets,     0s ago
///     out c5d6e7f8 (-|0x…),    840 bytes,    10 packets,     0s ago
///     local  10.2.0.0/16
///     remote 10.1.0.0/16
/// ```
pub fn parse_list_sas(text: &str) -> Vec<SwanIkeSa> {
    let mut out: Vec<SwanIkeSa> = Vec::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let header = t.split_once(": #").map(|(name, rest)| {
            (
                name.to_string(),
                rest.split(',')
                    .map(|f| f.trim().to_string())
                    .collect::<Vec<_>>(),
            )
        });
        match (indent, header) {
            (0, Some((name, fields))) => out.push(SwanIkeSa {
                name,
                state: fields.get(1).cloned().unwrap_or_default(),
                version: fields.get(2).cloned().unwrap_or_default(),
                ..Default::default()
            }),
            (_, Some((name, fields))) if indent > 0 => {
                let Some(ike) = out.last_mut() else { continue };
                let esp = fields
                    .iter()
                    .find_map(|f| f.strip_prefix("ESP:").or_else(|| f.strip_prefix("AH:")))
                    .unwrap_or_default()
                    .to_string();
                ike.children.push(SwanChildSa {
                    name,
                    state: fields.get(2).cloned().unwrap_or_default(),
                    mode: fields.get(3).cloned().unwrap_or_default(),
                    algorithms: esp,
                    ..Default::default()
                });
            }
            _ => {
                let Some(ike) = out.last_mut() else { continue };
                let words: Vec<&str> = t.split_whitespace().collect();
                let number_before = |unit: &str| -> u64 {
                    words
                        .iter()
                        .position(|w| w.trim_end_matches(',') == unit)
                        .and_then(|i| i.checked_sub(1))
                        .and_then(|i| words[i].trim_end_matches(',').parse().ok())
                        .unwrap_or(0)
                };
                if let Some(child) = ike.children.last_mut() {
                    match words.first().copied() {
                        Some("in") => {
                            child.bytes_in = number_before("bytes");
                            child.packets_in = number_before("packets");
                        }
                        Some("out") => {
                            child.bytes_out = number_before("bytes");
                            child.packets_out = number_before("packets");
                        }
                        Some("local") => child
                            .local_ts
                            .extend(words[1..].iter().map(|s| s.to_string())),
                        Some("remote") => child
                            .remote_ts
                            .extend(words[1..].iter().map(|s| s.to_string())),
                        _ => {}
                    }
                    continue;
                }
                match words.first().copied() {
                    Some("local") | Some("remote") => {
                        let endpoint = t
                            .rsplit_once(" @ ")
                            .map(|(_, e)| e.trim().to_string())
                            .unwrap_or_default();
                        if words[0] == "local" {
                            ike.local = endpoint;
                        } else {
                            ike.remote = endpoint;
                        }
                    }
                    Some(w) if words.len() == 1 && w.contains('/') && ike.algorithms.is_empty() => {
                        ike.algorithms = w.to_string();
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// A strongSwan site's device in `lab status`.
#[derive(Clone, Debug, serde::Serialize)]
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
    /// Connections loaded from the exports (`swanctl --list-conns` names).
    pub configured: Vec<String>,
    /// IKE SAs (`swanctl --list-sas`, parsed).
    pub sas: Vec<SwanIkeSa>,
    /// Why the SAs could not be read, if charon runs but did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
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
            match swanctl(&dir, &["--list-sas"]) {
                Ok((true, text)) => st.sas = parse_list_sas(&text),
                Ok((false, text)) => st.error = Some(text.trim().to_string()),
                Err(e) => st.error = Some(format!("cannot run swanctl: {e}")),
            }
            if let Ok((true, text)) = swanctl(&dir, &["--list-conns"]) {
                st.configured = text
                    .lines()
                    .filter(|l| !l.starts_with(' ') && l.contains(": IKEv"))
                    .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_string()))
                    .collect();
            }
        }
        out.push(st);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAS: &str =
        "azure-to-onprem: #1, ESTABLISHED, IKEv2, 1b2c3d4e5f60718a_i* 9f8e7d6c5b4a3928_r
  local  '192.0.2.1' @ 192.0.2.1[4500]
  remote '203.0.113.1' @ 203.0.113.1[4500]
  AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_1024
  established 3s ago, rekeying in 12960s
  azure-to-onprem: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256
    installed 3s ago, rekeying in 2940s, expires in 3600s
    in  c1a2b3c4 (-|0x00000001),  10280 bytes,    10 packets,     0s ago
    out c5d6e7f8 (-|0x00000001),   8400 bytes,     9 packets,     0s ago
    local  10.2.0.0/16
    remote 10.1.0.0/16
other: #2, CONNECTING, IKEv2, 0011223344556677_i* 0000000000000000_r
  local  '192.0.2.1' @ 192.0.2.1[500]
  remote '198.51.100.1' @ 198.51.100.1[500]
";

    #[test]
    fn list_sas_is_parsed() {
        let sas = parse_list_sas(SAS);
        assert_eq!(sas.len(), 2);
        let a = &sas[0];
        assert_eq!(
            (a.name.as_str(), a.state.as_str(), a.version.as_str()),
            ("azure-to-onprem", "ESTABLISHED", "IKEv2")
        );
        assert_eq!(a.local, "192.0.2.1[4500]");
        assert_eq!(a.remote, "203.0.113.1[4500]");
        assert_eq!(
            a.algorithms,
            "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_1024"
        );
        assert_eq!(a.children.len(), 1);
        let c = &a.children[0];
        assert_eq!(c.state, "INSTALLED");
        assert_eq!(c.mode, "TUNNEL-in-UDP");
        assert_eq!(c.algorithms, "AES_GCM_16-256");
        assert_eq!((c.bytes_in, c.packets_in), (10280, 10));
        assert_eq!((c.bytes_out, c.packets_out), (8400, 9));
        assert_eq!(c.local_ts, vec!["10.2.0.0/16"]);
        assert_eq!(c.remote_ts, vec!["10.1.0.0/16"]);
        assert_eq!(sas[1].state, "CONNECTING");
        assert!(sas[1].children.is_empty());
        assert!(sas[1].algorithms.is_empty());
    }

    #[test]
    fn lines_before_any_ike_sa_are_ignored() {
        assert!(parse_list_sas("").is_empty());
        assert!(parse_list_sas("no IKE_SAs\n   in  c1 (-|0x1), 5 bytes, 1 packets\n").is_empty());
        // A child line without its IKE SA is dropped, not attached somewhere.
        assert!(
            parse_list_sas("  net: #1, reqid 1, INSTALLED, TUNNEL, ESP:AES_GCM_16-256\n")
                .is_empty()
        );
    }
}
