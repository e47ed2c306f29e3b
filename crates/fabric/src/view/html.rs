//! The pages: server-rendered HTML (semantic, labelled, no external assets) and the live
//! document the pages' script applies. Every value a page shows that changes at run time
//! has a `data-live` key; [`live_json`] carries the same key with the text to show, formatted
//! here, so the script only copies text and never formats anything itself.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::live::{ConnInfo, ConnLive, GatewayLive, Snapshot};
use super::metrics::drop_reasons;

/// HTML-escapes text for element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Percent-encodes a path segment (site and connection names are plain, but not trusted).
fn seg(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

/// The URL of a connection's page.
pub(crate) fn conn_href(c: &ConnInfo) -> String {
    format!("/connections/{}/{}", seg(&c.site), seg(&c.name))
}

/// `1,234,567`.
fn num(n: u64) -> String {
    let s = n.to_string();
    let mut o = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            o.push(',');
        }
        o.push(ch);
    }
    o
}

/// A gateway process in words.
pub(crate) fn process_text(g: Option<&GatewayLive>) -> String {
    match g {
        None => "no gateway process".into(),
        Some(g) if g.running => {
            let restarts = match g.restarts {
                0 => String::new(),
                1 => ", 1 restart".into(),
                n => format!(", {n} restarts"),
            };
            format!(
                "process {} running{restarts}",
                g.pid.map(|p| p.to_string()).unwrap_or("-".into())
            )
        }
        Some(g) => format!(
            "process not running{}",
            g.last_exit
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    }
}

/// The page around `body`.
fn page(title: &str, lab: &str, fingerprint: &str, body: &str) -> String {
    format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · hybridnet lab {lab}</title>
<link rel="stylesheet" href="/static/view.css">
<script src="/static/view.js" defer></script>
</head>
<body data-fingerprint="{fp}">
<a class="skip" href="#main">Skip to content</a>
<header>
<p class="brand"><a href="/">hybridnet</a> · lab <strong>{lab}</strong></p>
<nav aria-label="Sections"><ul><li><a href="/#topology-h">Topology</a></li><li><a href="/#connections-h">Connections</a></li><li><a href="/#gateways-h">Gateways</a></li><li><a href="/#deployments-h">Deployments</a></li><li><a href="/metrics">Metrics</a></li></ul></nav>
<p class="live-status"><span role="status" data-live="meta:connection">connecting to live updates…</span> · <span data-live="meta:updated"></span></p>
</header>
<main id="main">
{body}
</main>
</body>
</html>
"##,
        title = esc(title),
        lab = esc(lab),
        fp = esc(fingerprint),
    )
}

/// A status badge: the word, and a shape the CSS gives it per state.
fn badge(key: &str, status: &str) -> String {
    format!(
        r#"<span class="badge" data-state-of="{k}" data-state="{s}" data-live="{k}">{t}</span>"#,
        k = esc(key),
        s = state_class(status),
        t = esc(status),
    )
}

/// `connected`, `connecting` or `down` for an Azure `connectionStatus`.
fn state_class(status: &str) -> &'static str {
    match status {
        "Connected" => "connected",
        "Connecting" => "connecting",
        _ => "down",
    }
}

/// The overview: topology, connections, gateways, deployments.
pub(crate) fn overview(snap: &Snapshot) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        r#"<section aria-labelledby="topology-h"><h1 id="topology-h">Topology</h1>
<figure><div id="topology">{svg}</div>
<figcaption><ul class="legend" aria-label="Tunnel states"><li><svg width="40" height="10" aria-hidden="true"><line class="legend-line" data-state="connected" x1="0" y1="5" x2="40" y2="5"/></svg> Connected</li><li><svg width="40" height="10" aria-hidden="true"><line class="legend-line" data-state="connecting" x1="0" y1="5" x2="40" y2="5"/></svg> Connecting</li><li><svg width="40" height="10" aria-hidden="true"><line class="legend-line" data-state="down" x1="0" y1="5" x2="40" y2="5"/></svg> Down</li></ul></figcaption></figure>
</section>
"#,
        svg = super::topology::svg(snap)
    );
    if let Some(e) = &snap.model.error {
        let _ = write!(b, r#"<p class="error" role="alert">{}</p>"#, esc(e));
    }
    b.push_str(
        r#"<section aria-labelledby="connections-h"><h2 id="connections-h">Connections</h2>
<table><thead><tr><th scope="col">Connection</th><th scope="col">Site</th><th scope="col">Gateway</th><th scope="col">Peer</th><th scope="col">Status</th><th scope="col">Ingress bytes</th><th scope="col">Egress bytes</th><th scope="col">Why not connected</th></tr></thead><tbody>
"#,
    );
    for c in &snap.model.connections {
        let live = snap.conn_live(c);
        let k = format!("conn:{}", c.key());
        let (i, o) = live
            .report
            .map(|r| (num(r.inbound.bytes), num(r.outbound.bytes)))
            .unwrap_or_default();
        let _ = writeln!(
            b,
            r#"<tr data-conn="{key}"><th scope="row"><a href="{href}">{name}</a></th><td>{site}</td><td>{gw}</td><td>{peer}</td><td>{badge}</td><td class="n" data-live="{k}:inBytes">{i}</td><td class="n" data-live="{k}:outBytes">{o}</td><td data-live="{k}:reason">{why}</td></tr>"#,
            key = esc(&c.key()),
            href = conn_href(c),
            name = esc(&c.name),
            site = esc(&c.site),
            gw = esc(&c.gateway),
            peer = c.peer.map(|p| p.to_string()).unwrap_or("-".into()),
            badge = badge(&format!("{k}:status"), &live.status),
            k = esc(&k),
            why = esc(live.reason.as_deref().unwrap_or("-")),
        );
    }
    b.push_str("</tbody></table></section>\n");
    b.push_str(
        r#"<section aria-labelledby="gateways-h"><h2 id="gateways-h">VPN gateways</h2>
<table><thead><tr><th scope="col">Gateway</th><th scope="col">Site</th><th scope="col">VNet</th><th scope="col">Public IP</th><th scope="col">Private IP</th><th scope="col">Process</th></tr></thead><tbody>
"#,
    );
    for g in &snap.model.gateways {
        let key = format!("{}/{}", g.site, g.name);
        let live = snap
            .gateways
            .iter()
            .find(|l| l.site == g.site && l.gateway == g.name);
        let _ = writeln!(
            b,
            r#"<tr><th scope="row">{name}</th><td>{site}</td><td>{vnet}</td><td>{pub_}</td><td>{priv_}</td><td data-live="gw:{key}:process">{proc_}</td></tr>"#,
            name = esc(&g.name),
            site = esc(&g.site),
            vnet = esc(&g.vnet),
            pub_ = g.public_ip.map(|a| a.to_string()).unwrap_or("-".into()),
            priv_ = g.private_ip.map(|a| a.to_string()).unwrap_or("-".into()),
            key = esc(&key),
            proc_ = esc(&process_text(live)),
        );
    }
    b.push_str("</tbody></table></section>\n");
    let (peers, routes) = bgp_rows(snap);
    if peers.as_array().is_some_and(|p| !p.is_empty()) {
        let _ = write!(
            b,
            r#"<section aria-labelledby="bgp-h"><h2 id="bgp-h">BGP</h2>
<table><caption>Peers</caption><thead><tr><th scope="col">Gateway</th><th scope="col">From</th><th scope="col">Neighbor</th><th scope="col">AS</th><th scope="col">State</th><th scope="col">Up for</th><th scope="col">Routes received</th><th scope="col">Why not connected</th></tr></thead>
<tbody data-live-rows="bgp:peers">{}</tbody></table>
<table><caption>Learned routes</caption><thead><tr><th scope="col">Gateway</th><th scope="col">Network</th><th scope="col">Next hop</th><th scope="col">AS path</th><th scope="col">Origin</th><th scope="col">In use</th></tr></thead>
<tbody data-live-rows="bgp:routes">{}</tbody></table></section>
"#,
            rows(&peers),
            rows(&routes)
        );
    }
    b.push_str(
        r#"<section aria-labelledby="deployments-h"><h2 id="deployments-h">Deployments</h2>
"#,
    );
    for d in &snap.model.deployments {
        let _ = write!(
            b,
            r#"<details><summary><span class="dep-name">{site} / {name}</span> <span class="badge" data-state="{cls}">{state}</span> <span class="muted">{when}</span></summary>
{err}<table><caption>Operations of deployment {name}</caption><thead><tr><th scope="col">Resource type</th><th scope="col">Name</th><th scope="col">Provisioning state</th><th scope="col">Detail</th></tr></thead><tbody>
"#,
            site = esc(&d.site),
            name = esc(&d.name),
            cls = if d.state == "Succeeded" {
                "connected"
            } else {
                "down"
            },
            state = esc(&d.state),
            when = esc(&unix_time(d.timestamp)),
            err = d
                .error
                .as_ref()
                .map(|e| format!(r#"<p class="error">{}</p>"#, esc(e)))
                .unwrap_or_default(),
        );
        for o in &d.operations {
            let _ = writeln!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&o.resource_type),
                esc(&o.name),
                esc(&o.state),
                esc(o.detail.as_deref().unwrap_or(""))
            );
        }
        b.push_str("</tbody></table></details>\n");
    }
    if snap.model.deployments.is_empty() {
        b.push_str("<p>No deployments.</p>\n");
    }
    b.push_str("</section>\n");
    page("Overview", &snap.lab_id, &snap.model.fingerprint, &b)
}

/// `2026-12-07 04:46:38 UTC` from Unix seconds.
fn unix_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A connection's page, like Azure's connection blade.
pub(crate) fn connection(snap: &Snapshot, c: &ConnInfo) -> String {
    let live = snap.conn_live(c);
    let k = format!("conn:{}", c.key());
    let v = conn_values(&live);
    let field = |name: &str| -> String {
        format!(
            r#"<dd data-live="{k}:{name}">{}</dd>"#,
            esc(v.get(name).and_then(Value::as_str).unwrap_or("")),
            k = esc(&k)
        )
    };
    let mut b = String::new();
    let _ = write!(
        b,
        r#"<nav aria-label="Breadcrumb"><a href="/">Overview</a> › {site} › connections</nav>
<h1>Connection {name}</h1>
<section aria-labelledby="essentials-h" class="essentials"><h2 id="essentials-h">Essentials</h2>
<dl>
<dt>Status</dt><dd>{badge}</dd>
<dt>Why not connected</dt>{reason}
<dt>Site</dt><dd>{site}</dd>
<dt>Virtual network gateway</dt><dd>{gw}</dd>
<dt>Local network gateway</dt><dd>{lng}</dd>
<dt>Peer address</dt><dd>{peer}</dd>
<dt>Peer address space</dt><dd>{prefixes}</dd>
<dt>Provisioning state</dt><dd>{ps}</dd>
<dt>Current peer endpoint</dt>{endpoint}
<dt>IKE algorithms</dt>{ike}
<dt>ESP algorithms</dt>{esp}
<dt>IKE SA SPIs (initiator / responder)</dt>{spis}
<dt>IKE SA established</dt>{established}
<dt>Last setup time</dt>{setup}
<dt>NAT</dt>{nat}
<dt>Data in</dt>{data_in}
<dt>Data out</dt>{data_out}
<dt>Failures in a row</dt>{retry}
<dt>Unauthenticated attempts that failed</dt>{attempts}
<dt>Traffic selectors</dt>{selectors}
</dl></section>
<section aria-labelledby="error-h"><h2 id="error-h">Last error</h2>
<p data-live="{k}:lastError">{last_error}</p>
<p data-live="{k}:explanation" class="explanation">{explanation}</p>
</section>
<section aria-labelledby="graph-h"><h2 id="graph-h">Throughput</h2>
<figure class="graph" data-graph="{key}">
<svg viewBox="0 0 600 180" role="img" aria-labelledby="graph-title graph-desc" preserveAspectRatio="none"><title id="graph-title">Throughput of {name} over the last minute</title><desc id="graph-desc" data-live="{k}:rateText">no samples yet</desc>
<line class="axis" x1="0" y1="179" x2="600" y2="179"/><polyline class="rate-in" points="" data-series="in"/><polyline class="rate-out" points="" data-series="out"/></svg>
<figcaption><span class="key-in">ingress</span> <span data-live="{k}:rateIn">–</span> · <span class="key-out">egress</span> <span data-live="{k}:rateOut">–</span> · scale <span data-graph-scale>–</span> (last 60 s)</figcaption>
</figure></section>
<section aria-labelledby="sas-h"><h2 id="sas-h">Child SAs</h2>
<table><thead><tr><th scope="col">SPI in</th><th scope="col">SPI out</th><th scope="col">Algorithms</th><th scope="col">Traffic selectors</th><th scope="col">In bytes</th><th scope="col">Out bytes</th><th scope="col">Age</th><th scope="col">In use</th></tr></thead>
<tbody data-live-rows="{k}:childSas">{sa_rows}</tbody></table></section>
<section aria-labelledby="drops-h"><h2 id="drops-h">Dropped packets by reason</h2>
<table><thead><tr><th scope="col">Reason</th><th scope="col">Direction</th><th scope="col">Packets</th></tr></thead>
<tbody data-live-rows="{k}:drops">{drop_rows}</tbody></table></section>
"#,
        site = esc(&c.site),
        name = esc(&c.name),
        key = esc(&c.key()),
        k = esc(&k),
        badge = badge(&format!("{k}:status"), &live.status),
        reason = field("reason"),
        gw = esc(&c.gateway),
        lng = esc(c.local_network_gateway.as_deref().unwrap_or("-")),
        peer = c.peer.map(|p| p.to_string()).unwrap_or("-".into()),
        prefixes = esc(&c.peer_prefixes.join(", ")),
        ps = esc(&c.provisioning_state),
        endpoint = field("peer"),
        ike = field("ike"),
        esp = field("esp"),
        spis = field("ikeSpis"),
        established = field("established"),
        setup = field("setup"),
        nat = field("nat"),
        data_in = field("dataIn"),
        data_out = field("dataOut"),
        retry = field("retry"),
        attempts = field("attempts"),
        selectors = field("selectors"),
        last_error = esc(v["lastError"].as_str().unwrap_or("")),
        explanation = esc(v["explanation"].as_str().unwrap_or("")),
        sa_rows = rows(&v["childSas"]),
        drop_rows = rows(&v["drops"]),
    );
    let counters = live
        .report
        .map(|r| format!("{} {}", r.inbound.bytes, r.outbound.bytes))
        .unwrap_or_default();
    let _ = write!(
        b,
        r#"<p hidden data-counters="{}" data-live="{k}:counters">{counters}</p>"#,
        esc(&c.key()),
        k = esc(&k),
    );
    page(
        &format!("Connection {}", c.name),
        &snap.lab_id,
        &snap.model.fingerprint,
        &b,
    )
}

/// Table rows from an array of arrays of cell texts.
fn rows(v: &Value) -> String {
    let mut o = String::new();
    for r in v.as_array().into_iter().flatten() {
        o.push_str("<tr>");
        for cell in r.as_array().into_iter().flatten() {
            let _ = write!(o, "<td>{}</td>", esc(cell.as_str().unwrap_or("")));
        }
        o.push_str("</tr>");
    }
    o
}

/// The BGP peers and learned routes of every gateway that runs BGP, as table rows.
fn bgp_rows(snap: &Snapshot) -> (Value, Value) {
    let mut peers = Vec::new();
    let mut routes = Vec::new();
    for g in &snap.gateways {
        let Some(b) = g.status.as_ref().ok().and_then(|st| st.bgp.as_ref()) else {
            continue;
        };
        let name = format!("{}/{}", g.site, g.gateway);
        for p in &b.peers {
            peers.push(json!([
                name,
                p.local_address,
                p.neighbor,
                p.asn.to_string(),
                p.state,
                p.connected_duration.clone().unwrap_or_default(),
                p.routes_received.to_string(),
                if p.state == "Connected" {
                    String::new()
                } else {
                    p.last_error.clone().unwrap_or_default()
                },
            ]));
        }
        for r in b.learned_routes.iter().filter(|r| r.origin != "Network") {
            routes.push(json!([
                name,
                r.network,
                r.next_hop.clone().unwrap_or_default(),
                r.as_path,
                r.origin,
                if r.best { "yes" } else { "no" },
            ]));
        }
    }
    (Value::Array(peers), Value::Array(routes))
}

/// What the page shows of one connection, by field, as text (tables as rows of cells).
fn conn_values(live: &ConnLive<'_>) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("status", json!(live.status));
    put(
        "reason",
        json!(live.reason.clone().unwrap_or_else(|| "-".into())),
    );
    let Some(r) = live.report else {
        put("inBytes", json!(""));
        put("outBytes", json!(""));
        put(
            "lastError",
            json!("none reported (no gateway process answers for this connection)"),
        );
        put(
            "explanation",
            json!(live.reason.clone().unwrap_or_default()),
        );
        put("childSas", json!([]));
        put("drops", json!([]));
        put("counters", json!(""));
        for f in [
            "peer",
            "ike",
            "esp",
            "ikeSpis",
            "established",
            "setup",
            "nat",
            "dataIn",
            "dataOut",
            "retry",
            "attempts",
            "selectors",
        ] {
            put(f, json!("-"));
        }
        return m;
    };
    put("inBytes", json!(num(r.inbound.bytes)));
    put("outBytes", json!(num(r.outbound.bytes)));
    put(
        "retry",
        json!(match r.retry_in_ms {
            Some(ms) => format!(
                "{}; next attempt in {:.1} s",
                r.consecutive_failures,
                ms as f64 / 1000.0
            ),
            None => r.consecutive_failures.to_string(),
        }),
    );
    put(
        "attempts",
        json!(match &r.last_failed_attempt {
            Some(last) => format!("{}; last: {last}", r.failed_attempts),
            None => r.failed_attempts.to_string(),
        }),
    );
    put(
        "selectors",
        json!(r
            .selector_warning
            .clone()
            .unwrap_or_else(|| "as configured".into())),
    );
    put("peer", json!(r.peer.clone().unwrap_or("-".into())));
    put("ike", json!(r.ike_algorithms.clone().unwrap_or("-".into())));
    put("esp", json!(r.esp_algorithms.clone().unwrap_or("-".into())));
    put(
        "ikeSpis",
        json!(format!("{} / {}", r.ike_spi_i, r.ike_spi_r)),
    );
    put(
        "established",
        json!(r
            .established_secs
            .map(|s| format!("{s} s ago"))
            .unwrap_or("-".into())),
    );
    put(
        "setup",
        json!(r
            .setup_us
            .map(|us| format!("{:.3} ms", us as f64 / 1000.0))
            .or(r.setup_ms.map(|ms| format!("{ms} ms")))
            .unwrap_or("-".into())),
    );
    put(
        "nat",
        json!(format!(
            "in front of us: {}; in front of the peer: {}; keepalives sent: {}",
            if r.nat_local { "yes" } else { "no" },
            if r.nat_remote { "yes" } else { "no" },
            r.keepalives_sent
        )),
    );
    put(
        "dataIn",
        json!(format!(
            "{} bytes, {} packets",
            num(r.inbound.bytes),
            num(r.inbound.packets)
        )),
    );
    put(
        "dataOut",
        json!(format!(
            "{} bytes, {} packets",
            num(r.outbound.bytes),
            num(r.outbound.packets)
        )),
    );
    put(
        "lastError",
        json!(r.last_error.clone().unwrap_or("none".into())),
    );
    put(
        "explanation",
        json!(r
            .last_error
            .as_ref()
            .and(live.reason.clone())
            .unwrap_or_default()),
    );
    put(
        "counters",
        json!(format!("{} {}", r.inbound.bytes, r.outbound.bytes)),
    );
    put(
        "childSas",
        Value::Array(
            r.child_sas
                .iter()
                .map(|s| {
                    json!([
                        s.spi_in,
                        s.spi_out,
                        s.algorithms,
                        format!("{} === {}", s.local_ts.join(","), s.remote_ts.join(",")),
                        num(s.inbound.bytes),
                        num(s.outbound.bytes),
                        format!("{} s", s.age_secs),
                        if s.active {
                            "yes"
                        } else if s.pending {
                            "pending"
                        } else {
                            "no (rekeyed)"
                        },
                    ])
                })
                .collect(),
        ),
    );
    put(
        "drops",
        Value::Array(
            drop_reasons(&r.drops)
                .into_iter()
                .map(|(reason, n)| {
                    let dir = if super::metrics::is_ingress_drop(&reason) {
                        "ingress"
                    } else {
                        "egress"
                    };
                    json!([reason, dir, num(n)])
                })
                .collect(),
        ),
    );
    m
}

/// The live document: every `data-live` key with its text, every badge's and tunnel's state,
/// the rows of live tables, and the topology's fingerprint.
pub(crate) fn live_json(snap: &Snapshot) -> String {
    let mut values = Map::new();
    let mut states = Map::new();
    let mut rows = Map::new();
    let mut gateways = Map::new();
    for c in &snap.model.connections {
        let live = snap.conn_live(c);
        let k = format!("conn:{}", c.key());
        states.insert(format!("{k}:status"), json!(state_class(&live.status)));
        for (f, v) in conn_values(&live) {
            if v.is_array() {
                rows.insert(format!("{k}:{f}"), v);
            } else {
                values.insert(format!("{k}:{f}"), v);
            }
        }
    }
    for g in &snap.model.gateways {
        let live = snap
            .gateways
            .iter()
            .find(|l| l.site == g.site && l.gateway == g.name);
        let k = format!("{}/{}", g.site, g.name);
        values.insert(format!("gw:{k}:process"), json!(process_text(live)));
        gateways.insert(k, json!(live.is_some_and(|l| l.running)));
    }
    let (peers, routes) = bgp_rows(snap);
    rows.insert("bgp:peers".into(), peers);
    rows.insert("bgp:routes".into(), routes);
    let mut tunnels = Map::new();
    for t in &snap.model.tunnels {
        let state = snap.tunnel_state(t);
        tunnels.insert(t.id.clone(), json!(state));
        values.insert(
            format!("tunnel:{}:label", t.id),
            json!(super::topology::tunnel_label(t, state)),
        );
    }
    values.insert(
        "topology:desc".into(),
        json!(super::topology::summary(snap)),
    );
    json!({
        "at": snap.at_ms,
        "fingerprint": snap.model.fingerprint,
        "values": values,
        "states": states,
        "rows": rows,
        "tunnels": tunnels,
        "gateways": gateways,
    })
    .to_string()
}

/// The page for an unknown connection.
pub(crate) fn not_found(snap: &Snapshot, what: &str) -> String {
    page(
        "Not found",
        &snap.lab_id,
        &snap.model.fingerprint,
        &format!(
            r#"<h1>Not found</h1><p>{}</p><p><a href="/">Back to the overview</a></p>"#,
            esc(what)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_numbers_grouped() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(num(0), "0");
        assert_eq!(num(1234), "1,234");
        assert_eq!(num(4356240), "4,356,240");
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(unix_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(unix_time(1_796_618_798), "2026-12-07 04:46:38 UTC");
    }
}
