//! A connection as `az network vpn-connection show` prints it: the resource (never its
//! sharedKey, as Azure never returns it) plus `connectionStatus`, byte counters and
//! `tunnelConnectionStatus` when a running gateway reports on it, and `Unknown` when none does.

use std::time::{SystemTime, UNIX_EPOCH};

use gateway::status::ConnectionReport;
use serde_json::{json, Map, Value};
use site::{Connection, Resource};

use crate::error::DevConfigError;

/// What a running gateway reported about one connection, and where the report came from.
#[derive(Debug, Clone)]
pub struct LiveConnection {
    /// Where the status was read (e.g. the gateway's control socket), for the reader.
    pub source: String,
    /// The gateway (instance) address the tunnel runs from.
    pub local_address: String,
    /// The gateway's report for this connection.
    pub report: ConnectionReport,
}

/// The connection named `name` (case-insensitive) among a site's resources.
pub fn find_connection<'a>(
    site: &str,
    resources: &'a [Resource],
    name: &str,
) -> Result<&'a Connection, DevConfigError> {
    let conns: Vec<&Connection> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::Connection(c) => Some(c),
            _ => None,
        })
        .collect();
    conns
        .iter()
        .copied()
        .find(|c| c.meta.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| DevConfigError::NoSuchConnection {
            site: site.to_string(),
            name: name.to_string(),
            known: if conns.is_empty() {
                "none".into()
            } else {
                conns
                    .iter()
                    .map(|c| c.meta.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
}

/// Azure's `connectionStatus` for a gateway's report: Connected only with an installed Child SA.
pub fn connection_status(report: Option<&ConnectionReport>) -> &'static str {
    match report {
        None => "Unknown",
        Some(r) if r.state == "established" && r.child_sas.iter().any(|c| c.active) => "Connected",
        Some(r) if r.state == "established" || r.state == "connecting" => "Connecting",
        Some(_) => "NotConnected",
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (UTC, proleptic Gregorian).
fn utc_timestamp(unix: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The view of a connection with several tunnels (an active-active gateway's instances, or
/// an active-active peer's): the first Connected one (else the first) speaks for it, it is
/// Connected when any tunnel is, its byte counters are the tunnels' sums, and
/// `tunnelConnectionStatus` lists every tunnel with its own state.
pub fn connection_view_tunnels(conn: &Connection, tunnels: &[LiveConnection]) -> Value {
    let primary = tunnels
        .iter()
        .find(|t| connection_status(Some(&t.report)) == "Connected")
        .or(tunnels.first());
    let mut v = connection_view(conn, primary);
    if tunnels.len() < 2 {
        return v;
    }
    let each: Vec<Value> = tunnels
        .iter()
        .map(|t| connection_view(conn, Some(t))["properties"]["tunnelConnectionStatus"][0].clone())
        .collect();
    if let Some(Value::Object(props)) = v.get_mut("properties") {
        let sum =
            |f: fn(&ConnectionReport) -> u64| tunnels.iter().map(|t| f(&t.report)).sum::<u64>();
        props.insert(
            "ingressBytesTransferred".into(),
            json!(sum(|r| r.inbound.bytes)),
        );
        props.insert(
            "egressBytesTransferred".into(),
            json!(sum(|r| r.outbound.bytes)),
        );
        props.insert("tunnelConnectionStatus".into(), Value::Array(each));
    }
    v
}

/// The connection resource as Azure's GET shows it, with live status merged into `properties`.
/// Without `live`, `connectionStatus` is `Unknown` and the counters are absent, as on Azure
/// before a gateway reports. Fields Azure does not have go under a top-level `hybridnet` object.
pub fn connection_view(conn: &Connection, live: Option<&LiveConnection>) -> Value {
    let mut v = Resource::Connection(conn.clone()).arm_json();
    let status = connection_status(live.map(|l| &l.report));
    let mut extra = Map::new();
    if let Some(Value::Object(props)) = v.get_mut("properties") {
        props.insert("connectionStatus".into(), json!(status));
        if let Some(l) = live {
            let r = &l.report;
            props.insert("ingressBytesTransferred".into(), json!(r.inbound.bytes));
            props.insert("egressBytesTransferred".into(), json!(r.outbound.bytes));
            let mut tunnel = Map::new();
            tunnel.insert(
                "tunnel".into(),
                json!(format!(
                    "{}_{}_{}",
                    conn.meta.name, l.local_address, r.remote_address
                )),
            );
            tunnel.insert("connectionStatus".into(), json!(status));
            tunnel.insert("ingressBytesTransferred".into(), json!(r.inbound.bytes));
            tunnel.insert("egressBytesTransferred".into(), json!(r.outbound.bytes));
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            if let Some(age) = r.established_secs {
                tunnel.insert(
                    "lastConnectionEstablishedUtcTime".into(),
                    json!(utc_timestamp(now.saturating_sub(age))),
                );
            }
            props.insert(
                "tunnelConnectionStatus".into(),
                Value::Array(vec![Value::Object(tunnel)]),
            );
            extra.insert("statusSource".into(), json!(l.source));
            extra.insert("state".into(), json!(r.state));
            extra.insert("ikeAlgorithms".into(), json!(r.ike_algorithms));
            extra.insert("espAlgorithms".into(), json!(r.esp_algorithms));
            extra.insert("establishedSecondsAgo".into(), json!(r.established_secs));
            extra.insert("lastError".into(), json!(r.last_error));
        } else {
            extra.insert("statusSource".into(), Value::Null);
        }
    }
    if let Value::Object(m) = &mut v {
        m.insert("hybridnet".into(), Value::Object(extra));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
