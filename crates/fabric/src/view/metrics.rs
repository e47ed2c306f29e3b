//! `/metrics`: the lab's gateways and connections in the OpenMetrics text format
//! (prometheus-client), built on each scrape from the latest snapshot of the gateways'
//! status. Names follow Prometheus' conventions; where Azure has a metric for the same thing
//! (TunnelIngressBytes, TunnelEgressPacketDropCount, …) its help text names it, so a
//! dashboard built for Azure Monitor maps one to one. Labels: `site`, `gateway`,
//! `connection`; never a key.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::live::Snapshot;

/// Label pairs of one series.
type Labels = Vec<(String, String)>;

/// A family of counters whose values the gateways count (set by `inc_by` on a fresh registry).
type Counters = Family<Labels, Counter>;
/// A family of gauges.
type Gauges = Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>;
/// Setup times, observed by the controller as each new setup is reported.
type Setups = Family<Labels, Histogram, fn() -> Histogram>;

/// Drop reasons of packets that came in from the peer (Azure: TunnelIngressPacketDropCount).
const INGRESS_DROPS: [&str; 5] = [
    "unknown_spi",
    "replayed",
    "auth_failed",
    "malformed",
    "ts_mismatch",
];

/// Whether a drop reason concerns packets from the peer (else: packets into the tunnel).
pub(crate) fn is_ingress_drop(reason: &str) -> bool {
    INGRESS_DROPS.contains(&reason)
}

/// What the controller saw of one connection at the previous refresh.
#[derive(Default)]
struct Seen {
    pid: u32,
    setup_us: Option<u64>,
    ike_spis: (String, String),
    child_spis: std::collections::BTreeSet<String>,
    status: String,
    last_error: Option<String>,
}

/// What persists between scrapes: what the controller observes by comparing one refresh of a
/// gateway's status with the next (every 250 ms): setup times, rekeys (a new Child SA SPI
/// beside the ones in use; new IKE SPIs on an established connection), dead-peer-detection
/// timeouts, ups and downs by cause. A gateway process that restarted starts over.
pub(crate) struct Metrics {
    setups: Setups,
    rekeys: Counters,
    dpd: Counters,
    ups: Counters,
    downs: Counters,
    seen: Mutex<std::collections::HashMap<String, Seen>>,
    /// Server-sent-event clients of the web view now.
    pub(crate) sse_clients: Arc<std::sync::atomic::AtomicI64>,
    /// Pages served by the web view.
    pub(crate) pages: Arc<std::sync::atomic::AtomicU64>,
}

fn setup_histogram() -> Histogram {
    // 100 µs … ~52 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

impl Metrics {
    /// Empty: nothing observed yet.
    pub(crate) fn new() -> Metrics {
        Metrics {
            setups: Family::new_with_constructor(setup_histogram as fn() -> Histogram),
            rekeys: Counters::default(),
            dpd: Counters::default(),
            ups: Counters::default(),
            downs: Counters::default(),
            seen: Mutex::new(Default::default()),
            sse_clients: Arc::default(),
            pages: Arc::default(),
        }
    }

    /// Books what changed since the previous refresh of each gateway's status.
    pub(crate) fn observe(&self, snap: &Snapshot) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for g in &snap.gateways {
            let Ok(st) = &g.status else { continue };
            for c in &st.connections {
                let key = format!("{}/{}/{}", g.site, g.gateway, c.name);
                let l = labels(&g.site, &g.gateway, Some(&c.name));
                let now = Seen {
                    pid: st.pid,
                    setup_us: c.setup_us.or(c.setup_ms.map(|ms| ms * 1000)),
                    ike_spis: (c.ike_spi_i.clone(), c.ike_spi_r.clone()),
                    child_spis: c.child_sas.iter().map(|s| s.spi_in.clone()).collect(),
                    status: crate::verify::connection_status(c).to_string(),
                    last_error: c.last_error.clone(),
                };
                match seen.get(&key).filter(|before| before.pid == now.pid) {
                    Some(before) => self.changes(&l, before, &now),
                    // first sight (or a new process): only its setup counts
                    None => {
                        if let Some(us) = now.setup_us {
                            self.setups.get_or_create(&l).observe(us as f64 / 1e6);
                        }
                    }
                }
                seen.insert(key, now);
            }
        }
    }

    /// Counts the events between two refreshes of one connection.
    fn changes(&self, l: &Labels, before: &Seen, now: &Seen) {
        if let Some(us) = now.setup_us.filter(|_| now.setup_us != before.setup_us) {
            self.setups.get_or_create(l).observe(us as f64 / 1e6);
        }
        let connected = |s: &Seen| s.status == "Connected";
        if connected(before) && connected(now) {
            let new_children = now.child_spis.difference(&before.child_spis).count() as u64;
            if new_children > 0 {
                self.rekeys
                    .get_or_create(&with(l.clone(), "sa", "child"))
                    .inc_by(new_children);
            }
            if now.ike_spis != before.ike_spis {
                self.rekeys
                    .get_or_create(&with(l.clone(), "sa", "ike"))
                    .inc();
            }
        }
        if !connected(before) && connected(now) {
            self.ups.get_or_create(l).inc();
        }
        if connected(before) && !connected(now) {
            let why = now.last_error.as_deref().map(cause);
            self.downs
                .get_or_create(&with(
                    l.clone(),
                    "cause",
                    why.as_deref().unwrap_or("unknown"),
                ))
                .inc();
        }
        let dpd = |s: &Seen| {
            s.last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("dead peer detection"))
        };
        if dpd(now) && now.last_error != before.last_error {
            self.dpd.get_or_create(l).inc();
        }
    }

    /// The OpenMetrics text of a snapshot.
    pub(crate) fn render(&self, snap: &Snapshot) -> String {
        let mut reg = Registry::default();
        let f = Families::register(&mut reg, self);
        f.fill(snap);
        let mut out = String::new();
        encode(&mut out, &reg).expect("writing to a String cannot fail");
        out
    }
}

fn labels(site: &str, gateway: &str, connection: Option<&str>) -> Labels {
    let mut l = vec![
        ("site".to_string(), site.to_string()),
        ("gateway".to_string(), gateway.to_string()),
    ];
    if let Some(c) = connection {
        l.push(("connection".to_string(), c.to_string()));
    }
    l
}

fn with(mut l: Labels, k: &str, v: &str) -> Labels {
    l.push((k.to_string(), v.to_string()));
    l
}

/// The families of one scrape.
struct Families {
    up: Gauges,
    state: Gauges,
    in_bytes: Counters,
    out_bytes: Counters,
    in_packets: Counters,
    out_packets: Counters,
    drops: Counters,
    failed_attempts: Counters,
    failures: Gauges,
    last_error: Gauges,
    child_sas: Gauges,
    ike_age: Gauges,
    setup_last: Gauges,
    keepalives: Counters,
    gw_up: Gauges,
    gw_restarts: Counters,
    gw_uptime: Gauges,
    gw_ike_drops: Counters,
    gw_drops: Counters,
    gw_cookies: Counters,
    gw_half_open: Gauges,
    gw_reloads: Counters,
    gw_mtu: Gauges,
    bgp_up: Gauges,
    bgp_learned: Gauges,
    bgp_advertised: Gauges,
    bgp_sent: Counters,
    bgp_received: Counters,
    ike_outcomes: Counters,
    batches: Counters,
    sse: Gauges,
    pages: Counters,
    refreshed: Gauges,
    refresh_took: Gauges,
    view_metrics: (
        Arc<std::sync::atomic::AtomicI64>,
        Arc<std::sync::atomic::AtomicU64>,
    ),
}

impl Families {
    fn register(reg: &mut Registry, m: &Metrics) -> Families {
        let mut counter = |name: &str, help: &str| {
            let f = Counters::default();
            reg.register(name, help, f.clone());
            f
        };
        let in_bytes = counter(
            "hybridnet_tunnel_ingress_bytes",
            "Inner (decrypted) bytes received over the tunnel (Azure: TunnelIngressBytes)",
        );
        let out_bytes = counter(
            "hybridnet_tunnel_egress_bytes",
            "Inner bytes sent into the tunnel, before encryption (Azure: TunnelEgressBytes)",
        );
        let in_packets = counter(
            "hybridnet_tunnel_ingress_packets",
            "Packets received over the tunnel (Azure: TunnelIngressPackets)",
        );
        let out_packets = counter(
            "hybridnet_tunnel_egress_packets",
            "Packets sent into the tunnel (Azure: TunnelEgressPackets)",
        );
        let drops = counter(
            "hybridnet_tunnel_packet_drops",
            "Packets dropped, by direction and reason (Azure: TunnelIngressPacketDropCount for direction=ingress, TunnelEgressPacketDropCount for direction=egress)",
        );
        let failed_attempts = counter(
            "hybridnet_ike_failed_attempts",
            "IKE negotiations that failed before authentication (refused IKE_SA_INIT, error answers)",
        );
        let keepalives = counter(
            "hybridnet_nat_keepalives_sent",
            "NAT keepalives (RFC 3948) sent to the peer",
        );
        let gw_restarts = counter(
            "hybridnet_gateway_restarts",
            "Times the gateway process died and its supervisor started it again",
        );
        let gw_ike_drops = counter(
            "hybridnet_gateway_ike_drops",
            "IKE datagrams the gateway dropped, by cause",
        );
        let gw_drops = counter(
            "hybridnet_gateway_packet_drops",
            "Packets dropped that belong to no connection, by reason",
        );
        let gw_cookies = counter(
            "hybridnet_gateway_cookies_sent",
            "COOKIE challenges sent (RFC 7296 2.6): someone flooded IKE_SA_INIT",
        );
        let gw_reloads = counter(
            "hybridnet_gateway_reloads",
            "Configuration reloads since the gateway process started",
        );
        let pages = counter(
            "hybridnet_view_pages",
            "Pages the lab controller's web view served",
        );
        let bgp_sent = counter(
            "hybridnet_bgp_messages_sent",
            "BGP messages sent to the peer (Azure: BgpMessagesSent)",
        );
        let bgp_received = counter(
            "hybridnet_bgp_messages_received",
            "BGP messages received from the peer (Azure: BgpMessagesReceived)",
        );
        let ike_outcomes = counter(
            "hybridnet_ike_outcomes",
            "IKE work on a connection by outcome: ike_sa_established, child_sa_installed, child_sa_deleted, and failures as 'down: CAUSE' or 'failed attempt: CAUSE'",
        );
        let batches = counter(
            "hybridnet_datapath_batches",
            "Data-path system calls by how many packets each took (path tun_read: the send direction's TUN reads; udp_recv: port 4500 receives; tun_write: the receive direction's TUN writes)",
        );
        let mut gauge = |name: &str, help: &str| {
            let f = Gauges::default();
            reg.register(name, help, f.clone());
            f
        };
        let up = gauge(
            "hybridnet_connection_up",
            "1 when the connection is Connected (an active Child SA), else 0 (Azure: the tunnel's connectionStatus)",
        );
        let state = gauge(
            "hybridnet_connection_status",
            "1 for the connection's current connectionStatus (Connected, Connecting, NotConnected, Unknown)",
        );
        let failures = gauge(
            "hybridnet_connection_consecutive_failures",
            "Times the connection went down in a row since it was last up",
        );
        let last_error = gauge(
            "hybridnet_connection_last_error",
            "1 for the cause of the connection's last failure (AUTHENTICATION_FAILED, NO_PROPOSAL_CHOSEN, TS_UNACCEPTABLE, peer unreachable, dead peer detection, …)",
        );
        let child_sas = gauge(
            "hybridnet_connection_child_sas",
            "Child SAs installed for the connection",
        );
        let ike_age = gauge(
            "hybridnet_connection_ike_sa_age_seconds",
            "Seconds since the connection's IKE SA was established",
        );
        let setup_last = gauge(
            "hybridnet_connection_last_setup_seconds",
            "The last setup time: IKE_SA_INIT sent to first Child SA installed",
        );
        let gw_up = gauge(
            "hybridnet_gateway_up",
            "1 when the gateway process runs and answers on its control socket",
        );
        let gw_uptime = gauge(
            "hybridnet_gateway_uptime_seconds",
            "Seconds since the gateway process started",
        );
        let gw_half_open = gauge(
            "hybridnet_gateway_half_open_ike_sas",
            "Half-open IKE SAs (IKE_SA_INIT answered, IKE_AUTH not yet seen)",
        );
        let gw_mtu = gauge(
            "hybridnet_gateway_tun_mtu_bytes",
            "MTU of the gateway's TUN device (path MTU minus ESP overhead)",
        );
        let bgp_up = gauge(
            "hybridnet_bgp_peer_up",
            "1 while the BGP session with the peer is Established (Azure: BgpPeerStatus)",
        );
        let bgp_learned = gauge(
            "hybridnet_bgp_routes_learned",
            "Prefixes the peer announced that the gateway holds (Azure: BgpRoutesLearned)",
        );
        let bgp_advertised = gauge(
            "hybridnet_bgp_routes_advertised",
            "Prefixes the gateway announces to the peer (Azure: BgpRoutesAdvertised)",
        );
        let sse = gauge(
            "hybridnet_view_live_clients",
            "Browsers following the web view's live updates now",
        );
        let refreshed = gauge(
            "hybridnet_controller_snapshot_timestamp_seconds",
            "Unix time of the gateway status these metrics were built from",
        );
        let refresh_took = Gauges::default();
        reg.register(
            "hybridnet_controller_refresh_seconds",
            "How long the controller's last refresh took: every gateway's status over its control socket, and the lab's resources when due",
            refresh_took.clone(),
        );
        reg.register(
            "hybridnet_connection_rekeys",
            "Rekeys the lab controller saw (sa=child: a new Child SA beside the one in use; sa=ike: new IKE SA SPIs without going down)",
            m.rekeys.clone(),
        );
        reg.register(
            "hybridnet_connection_dpd_timeouts",
            "Dead peer detection timeouts the lab controller saw (the peer stopped answering)",
            m.dpd.clone(),
        );
        reg.register(
            "hybridnet_connection_ups",
            "Times the lab controller saw the connection become Connected",
            m.ups.clone(),
        );
        reg.register(
            "hybridnet_connection_downs",
            "Times the lab controller saw the connection leave Connected, by the cause of its last error",
            m.downs.clone(),
        );
        reg.register(
            "hybridnet_connection_setup_seconds",
            "Setup times seen: IKE_SA_INIT sent to first Child SA installed, per connection",
            m.setups.clone(),
        );
        Families {
            up,
            state,
            in_bytes,
            out_bytes,
            in_packets,
            out_packets,
            drops,
            failed_attempts,
            failures,
            last_error,
            child_sas,
            ike_age,
            setup_last,
            keepalives,
            gw_up,
            gw_restarts,
            gw_uptime,
            gw_ike_drops,
            gw_drops,
            gw_cookies,
            gw_half_open,
            gw_reloads,
            gw_mtu,
            bgp_up,
            bgp_learned,
            bgp_advertised,
            bgp_sent,
            bgp_received,
            ike_outcomes,
            batches,
            sse,
            pages,
            refreshed,
            refresh_took,
            view_metrics: (m.sse_clients.clone(), m.pages.clone()),
        }
    }

    fn fill(&self, snap: &Snapshot) {
        let set = |f: &Gauges, l: &Labels, v: f64| {
            f.get_or_create(l).set(v);
        };
        let add = |f: &Counters, l: &Labels, v: u64| {
            f.get_or_create(l).inc_by(v);
        };
        for c in &snap.model.connections {
            let l = labels(&c.site, &c.gateway, Some(&c.name));
            let live = snap.conn_live(c);
            set(
                &self.up,
                &l,
                f64::from(u8::from(live.status == "Connected")),
            );
            set(&self.state, &with(l.clone(), "status", &live.status), 1.0);
            let Some(r) = live.report else { continue };
            add(&self.in_bytes, &l, r.inbound.bytes);
            add(&self.out_bytes, &l, r.outbound.bytes);
            add(&self.in_packets, &l, r.inbound.packets);
            add(&self.out_packets, &l, r.outbound.packets);
            for (reason, n) in drop_reasons(&r.drops) {
                let dir = if is_ingress_drop(&reason) {
                    "ingress"
                } else {
                    "egress"
                };
                let dl = with(with(l.clone(), "direction", dir), "reason", &reason);
                add(&self.drops, &dl, n);
            }
            add(&self.failed_attempts, &l, r.failed_attempts);
            set(&self.failures, &l, f64::from(r.consecutive_failures));
            if let Some(e) = &r.last_error {
                set(&self.last_error, &with(l.clone(), "cause", &cause(e)), 1.0);
            }
            set(&self.child_sas, &l, r.child_sas.len() as f64);
            if let Some(s) = r.established_secs {
                set(&self.ike_age, &l, s as f64);
            }
            if let Some(us) = r.setup_us.or(r.setup_ms.map(|ms| ms * 1000)) {
                set(&self.setup_last, &l, us as f64 / 1e6);
            }
            add(&self.keepalives, &l, r.keepalives_sent);
            for (outcome, n) in &r.outcomes {
                add(&self.ike_outcomes, &with(l.clone(), "outcome", outcome), *n);
            }
        }
        for g in &snap.gateways {
            let l = labels(&g.site, &g.gateway, None);
            set(&self.gw_up, &l, f64::from(u8::from(g.status.is_ok())));
            add(&self.gw_restarts, &l, u64::from(g.restarts));
            let Ok(st) = &g.status else { continue };
            set(&self.gw_uptime, &l, st.uptime_secs as f64);
            for (cause, n) in &st.ike_drops {
                add(&self.gw_ike_drops, &with(l.clone(), "cause", cause), *n);
            }
            for (reason, n) in drop_reasons(&st.drops) {
                add(&self.gw_drops, &with(l.clone(), "reason", &reason), n);
            }
            add(&self.gw_cookies, &l, st.cookies_sent);
            set(&self.gw_half_open, &l, st.half_open as f64);
            add(&self.gw_reloads, &l, st.reloads);
            set(&self.gw_mtu, &l, f64::from(st.tun_mtu));
            for (path, buckets) in [
                ("tun_read", &st.batches.tun_read),
                ("udp_recv", &st.batches.udp_recv),
                ("tun_write", &st.batches.tun_write),
            ] {
                for (size, n) in buckets {
                    let bl = with(with(l.clone(), "path", path), "size", size);
                    add(&self.batches, &bl, *n);
                }
            }
            for p in st.bgp.iter().flat_map(|b| &b.peers) {
                let pl = with(
                    with(l.clone(), "peer", &p.neighbor),
                    "local",
                    &p.local_address,
                );
                set(
                    &self.bgp_up,
                    &pl,
                    f64::from(u8::from(p.state == "Connected")),
                );
                set(&self.bgp_learned, &pl, p.routes_received as f64);
                set(&self.bgp_advertised, &pl, p.routes_advertised as f64);
                add(&self.bgp_sent, &pl, p.messages_sent);
                add(&self.bgp_received, &pl, p.messages_received);
            }
        }
        let lab = vec![("lab".to_string(), snap.lab_id.clone())];
        let (sse, pages) = &self.view_metrics;
        set(
            &self.sse,
            &lab,
            sse.load(std::sync::atomic::Ordering::Relaxed) as f64,
        );
        add(
            &self.pages,
            &lab,
            pages.load(std::sync::atomic::Ordering::Relaxed),
        );
        set(&self.refreshed, &lab, snap.at_ms as f64 / 1000.0);
        set(&self.refresh_took, &lab, snap.took.as_secs_f64());
    }
}

/// Every drop counter by its reason name (as `gateway status --json` names them).
pub(crate) fn drop_reasons(d: &gateway::datapath::DropCounters) -> Vec<(String, u64)> {
    match serde_json::to_value(d) {
        Ok(serde_json::Value::Object(m)) => m
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_u64()?)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The cause of a gateway's last error: its notify name (`AUTHENTICATION_FAILED: …`) or the
/// words before the first colon (`peer unreachable: …`).
pub(crate) fn cause(e: &str) -> String {
    e.split(':').next().unwrap_or(e).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::live::{ConnInfo, GatewayLive, Model};

    fn report(name: &str) -> gateway::status::ConnectionReport {
        serde_json::from_value(serde_json::json!({
            "name": name, "remote_address": "198.51.100.4", "state": "down",
            "ike_algorithms": null, "esp_algorithms": null,
            "ike_spi_i": "0", "ike_spi_r": "0", "established_secs": null, "child_sas": [],
            "inbound": {"bytes": 1234, "packets": 5}, "outbound": {"bytes": 99, "packets": 2},
            "drops": {"unknown_spi": 0, "replayed": 3, "auth_failed": 0, "malformed": 0,
                      "ts_mismatch": 0, "no_child_sa": 4, "no_route": 0, "invalid_inner": 0,
                      "seal_failed": 0, "io_error": 0},
            "last_error": "AUTHENTICATION_FAILED: the peer refused our key",
            "setup_us": 1500
        }))
        .unwrap()
    }

    fn snapshot() -> Snapshot {
        snapshot_of(report("a-to-b"))
    }

    /// The report of an established connection with IKE SPIs `ike` and Child SAs `children`
    /// (inbound SPIs), or of one that went down with `error`.
    fn phase(ike: &str, children: &[&str], error: Option<&str>) -> Snapshot {
        let mut r = report("a-to-b");
        r.state = if error.is_some() {
            "connecting"
        } else {
            "established"
        }
        .into();
        r.last_error = error.map(str::to_string);
        r.ike_spi_i = ike.into();
        r.ike_spi_r = ike.into();
        r.child_sas = children
            .iter()
            .map(|spi| {
                serde_json::from_value(serde_json::json!({
                    "spi_in": spi, "spi_out": spi, "algorithms": "AES_GCM_16-256",
                    "peer": "198.51.100.4:4500", "local_ts": [], "remote_ts": [],
                    "inbound": {"bytes": 0, "packets": 0}, "outbound": {"bytes": 0, "packets": 0},
                    "age_secs": 0, "active": true
                }))
                .unwrap()
            })
            .collect();
        snapshot_of(r)
    }

    fn snapshot_of(report: gateway::status::ConnectionReport) -> Snapshot {
        let status: gateway::status::GatewayStatus = serde_json::from_value(serde_json::json!({
            "pid": 7, "local_address": "203.0.113.4", "tun": "t", "tun_mtu": 1400,
            "uptime_secs": 10, "connections": [report],
            "drops": {"unknown_spi": 1, "replayed": 0, "auth_failed": 0, "malformed": 0,
                      "ts_mismatch": 0, "no_child_sa": 0, "no_route": 0, "invalid_inner": 0,
                      "seal_failed": 0, "io_error": 0},
            "ike_dropped": 0
        }))
        .unwrap();
        Snapshot {
            lab_id: "abcde".into(),
            model: Arc::new(Model {
                connections: vec![ConnInfo {
                    site: "azure".into(),
                    name: "a-to-b".into(),
                    gateway: "gw".into(),
                    local_network_gateway: None,
                    peer: None,
                    peer_prefixes: vec![],
                    provisioning_state: "Succeeded".into(),
                }],
                ..Model::default()
            }),
            gateways: vec![GatewayLive {
                site: "azure".into(),
                gateway: "gw".into(),
                running: true,
                pid: Some(7),
                restarts: 2,
                last_exit: None,
                status: Ok(status),
            }],
            at_ms: 1,
            took: std::time::Duration::from_millis(3),
        }
    }

    #[test]
    fn counters_carry_the_gateways_values_and_azures_names() {
        let m = Metrics::new();
        let snap = snapshot();
        m.observe(&snap);
        m.observe(&snap);
        let text = m.render(&snap);
        let l = r#"site="azure",gateway="gw",connection="a-to-b""#;
        for line in [
            format!("hybridnet_tunnel_ingress_bytes_total{{{l}}} 1234"),
            format!("hybridnet_tunnel_egress_packets_total{{{l}}} 2"),
            format!(
                "hybridnet_tunnel_packet_drops_total{{{l},direction=\"ingress\",reason=\"replayed\"}} 3"
            ),
            format!(
                "hybridnet_tunnel_packet_drops_total{{{l},direction=\"egress\",reason=\"no_child_sa\"}} 4"
            ),
            format!("hybridnet_connection_up{{{l}}} 0.0"),
            format!("hybridnet_connection_status{{{l},status=\"NotConnected\"}} 1.0"),
            format!("hybridnet_connection_last_error{{{l},cause=\"AUTHENTICATION_FAILED\"}} 1.0"),
            format!("hybridnet_connection_setup_seconds_count{{{l}}} 1"),
            r#"hybridnet_gateway_restarts_total{site="azure",gateway="gw"} 2"#.to_string(),
            r#"hybridnet_controller_refresh_seconds{lab="abcde"} 0.003"#.to_string(),
            r#"hybridnet_gateway_packet_drops_total{site="azure",gateway="gw",reason="unknown_spi"} 1"#.to_string(),
        ] {
            assert!(text.contains(&line), "no {line:?} in\n{text}");
        }
        assert!(text.contains("Azure: TunnelIngressBytes"));
        assert!(text.contains("TunnelEgressPacketDropCount"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn rekeys_dead_peers_ups_and_downs_are_seen_between_refreshes() {
        let m = Metrics::new();
        for snap in [
            phase("aa", &["01"], None),
            phase("aa", &["01"], None),
            // make-before-break: the new Child SA beside the old one, then alone
            phase("aa", &["01", "02"], None),
            phase("aa", &["02"], None),
            // the IKE SA rekeyed: new SPIs, still connected
            phase("bb", &["02"], None),
            phase(
                "bb",
                &[],
                Some("dead peer detection: no answer to 3 DPD requests"),
            ),
            phase(
                "bb",
                &[],
                Some("dead peer detection: no answer to 3 DPD requests"),
            ),
            phase("cc", &["03"], None),
        ] {
            m.observe(&snap);
        }
        let text = m.render(&phase("cc", &["03"], None));
        let l = r#"site="azure",gateway="gw",connection="a-to-b""#;
        for line in [
            format!("hybridnet_connection_rekeys_total{{{l},sa=\"child\"}} 1"),
            format!("hybridnet_connection_rekeys_total{{{l},sa=\"ike\"}} 1"),
            format!("hybridnet_connection_dpd_timeouts_total{{{l}}} 1"),
            format!("hybridnet_connection_downs_total{{{l},cause=\"dead peer detection\"}} 1"),
            format!("hybridnet_connection_ups_total{{{l}}} 1"),
            format!("hybridnet_connection_up{{{l}}} 1.0"),
        ] {
            assert!(text.contains(&line), "no {line:?} in\n{text}");
        }
    }
}
