//! The topology picture: one SVG of the lab, drawn on the server from a snapshot. Sites are
//! columns under the internet, named at their bottom; each holds its VPN gateways (public and private address, the
//! NAT device in front when there is one) and its VNets with their subnets and VMs. Tunnels
//! arc from gateway to gateway across the internet, colored *and* dashed by state (so the
//! state does not depend on seeing colors), and carry `data-tunnel`/`data-state` for the
//! page's script to update them live.

use std::fmt::Write as _;

use super::html::esc;
use super::live::{End, Snapshot};
use crate::status::SiteStatus;

const MARGIN: f64 = 20.0;
const COL_W: f64 = 430.0;
const GAP: f64 = 70.0;
const INTERNET_Y: f64 = 100.0;
const INTERNET_H: f64 = 36.0;
const NAT_Y: f64 = 152.0;
const SITE_Y: f64 = 192.0;
const GW_H: f64 = 58.0;
const LINE: f64 = 20.0;

/// Where a gateway was drawn: the tunnels start at its top.
struct Anchor {
    site: String,
    gateway: Option<String>,
    x: f64,
    y: f64,
}

/// The SVG of the lab in `snap`.
pub(crate) fn svg(snap: &Snapshot) -> String {
    let sites: &[SiteStatus] = snap
        .model
        .status
        .as_ref()
        .map(|s| s.sites.as_slice())
        .unwrap_or(&[]);
    let n = sites.len().max(1) as f64;
    let width = MARGIN * 2.0 + n * COL_W + (n - 1.0) * GAP;
    let mut body = String::new();
    let mut anchors = Vec::new();
    let mut bottom: f64 = SITE_Y + 80.0;
    for (i, site) in sites.iter().enumerate() {
        let x = MARGIN + i as f64 * (COL_W + GAP);
        bottom = bottom.max(site_column(&mut body, &mut anchors, snap, site, x));
    }
    let height = bottom + MARGIN;
    let mut out = String::new();
    let summary = summary(snap);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-labelledby="topo-title topo-desc" class="topology" data-fingerprint="{fp}">
<title id="topo-title">Topology of lab {id}</title>
<desc id="topo-desc" data-live="topology:desc">{desc}</desc>
<rect class="internet" x="{MARGIN}" y="{INTERNET_Y}" width="{iw}" height="{INTERNET_H}" rx="18"/>
<text class="internet-label" x="{cx}" y="{ty}" text-anchor="middle">Internet</text>
"#,
        fp = esc(&snap.model.fingerprint),
        id = esc(&snap.lab_id),
        desc = esc(&summary),
        iw = width - 2.0 * MARGIN,
        cx = width / 2.0,
        ty = INTERNET_Y + INTERNET_H / 2.0 + 5.0,
    );
    out.push_str(&body);
    tunnels(&mut out, snap, &anchors, width);
    out.push_str("</svg>\n");
    out
}

/// One site's column; returns its bottom.
fn site_column(
    out: &mut String,
    anchors: &mut Vec<Anchor>,
    snap: &Snapshot,
    site: &SiteStatus,
    x: f64,
) -> f64 {
    let gws: Vec<_> = snap
        .model
        .gateways
        .iter()
        .filter(|g| g.site == site.name)
        .collect();
    let mut y = SITE_Y + 12.0;
    let mut inner = String::new();
    let x_box = x + 20.0;
    for g in &gws {
        let key = format!("{}/{}", g.site, g.name);
        let live = snap
            .gateways
            .iter()
            .find(|l| l.site == g.site && l.gateway == g.name);
        let attrs = format!(
            r#"data-gateway="{}" data-running="{}""#,
            esc(&key),
            live.is_some_and(|l| l.running)
        );
        let addresses = format!(
            "public {} · private {}",
            g.public_ip.map(|a| a.to_string()).unwrap_or("-".into()),
            g.private_ip.map(|a| a.to_string()).unwrap_or("-".into()),
        );
        let process = super::html::process_text(live);
        let live_key = format!("gw:{key}:process");
        let title = format!("VPN gateway {}", g.name);
        let lines = [title.as_str(), addresses.as_str(), process.as_str()];
        let (ax, ay) = vpn_box(&mut inner, x_box, y, &attrs, lines, Some(&live_key));
        anchors.push(Anchor {
            site: site.name.clone(),
            gateway: Some(g.name.clone()),
            x: ax,
            y: ay,
        });
        y += GW_H + 14.0;
    }
    // an on-premises strongSwan device stands where a VNet gateway would
    let device = snap
        .model
        .status
        .as_ref()
        .and_then(|s| s.strongswan_devices.iter().find(|d| d.site == site.name));
    if let (true, Some(d)) = (gws.is_empty(), device) {
        let attrs = format!(
            r#"data-device="{}" data-running="{}""#,
            esc(&site.name),
            d.charon_pid.is_some()
        );
        let addresses = format!("public {} · LAN {}", d.public_address, d.lan_address);
        let process = match (d.charon_pid, &d.error) {
            (Some(pid), _) => format!("charon {pid} running"),
            (None, Some(e)) => format!("charon not running: {e}"),
            (None, None) => "charon not running".to_string(),
        };
        let lines = [
            "strongSwan VPN device",
            addresses.as_str(),
            process.as_str(),
        ];
        let (ax, ay) = vpn_box(&mut inner, x_box, y, &attrs, lines, None);
        anchors.push(Anchor {
            site: site.name.clone(),
            gateway: None,
            x: ax,
            y: ay,
        });
        y += GW_H + 14.0;
    } else if gws.is_empty() {
        anchors.push(Anchor {
            site: site.name.clone(),
            gateway: None,
            x: x + COL_W / 2.0,
            y: SITE_Y,
        });
    }
    for v in &site.virtual_networks {
        y = vnet_box(&mut inner, site, v, x + 12.0, y);
    }
    if site.virtual_networks.is_empty() && gws.is_empty() && device.is_none() {
        let _ = write!(
            inner,
            r#"<text x="{tx}" y="{ty}">{what}</text>"#,
            tx = x + 20.0,
            ty = y + 16.0,
            what = esc(&format!("{} device", site.kind)),
        );
        y += 26.0;
    }
    // the site's name at the bottom, where no link or tunnel crosses it
    let title_y = y + 14.0;
    let bottom = title_y + 12.0;
    let _ = write!(
        out,
        r#"<g class="site" data-site="{name}"><rect class="site-box" x="{x}" y="{SITE_Y}" width="{COL_W}" height="{h}" rx="10"/><text class="site-title" x="{tx}" y="{ty}">Site {name} ({kind}) · {prefix}</text>"#,
        name = esc(&site.name),
        kind = esc(&site.kind),
        prefix = esc(&site.public_prefix),
        h = bottom - SITE_Y,
        tx = x + 14.0,
        ty = title_y,
    );
    if site.nat {
        let _ = write!(
            out,
            r#"<g class="nat"><rect x="{nx}" y="{NAT_Y}" width="120" height="26" rx="4"/><text x="{tx}" y="{ty}" text-anchor="middle">NAT (masquerade)</text></g>"#,
            nx = x + COL_W / 2.0 - 60.0,
            tx = x + COL_W / 2.0,
            ty = NAT_Y + 17.0,
        );
    }
    out.push_str(&inner);
    out.push_str("</g>\n");
    bottom
}

/// A VPN box (a VNet gateway or an on-premises device) with its link up to the internet:
/// three lines of text, the last one live under `live_key`; returns where tunnels attach
/// (the middle of its top).
fn vpn_box(
    out: &mut String,
    x: f64,
    y: f64,
    attrs: &str,
    lines: [&str; 3],
    live_key: Option<&str>,
) -> (f64, f64) {
    let w = COL_W - 40.0;
    let cx = x + w / 2.0;
    // its link up to the internet (through the NAT device when there is one)
    let _ = write!(
        out,
        r#"<line class="uplink" x1="{cx}" y1="{y}" x2="{cx}" y2="{top}"/>"#,
        top = INTERNET_Y + INTERNET_H
    );
    let live = live_key
        .map(|k| format!(r#" data-live="{}""#, esc(k)))
        .unwrap_or_default();
    let _ = write!(
        out,
        r#"<g class="gateway" {attrs}><rect x="{x}" y="{y}" width="{w}" height="{GW_H}" rx="6"/><text x="{tx}" y="{t1}" class="name">{l1}</text><text x="{tx}" y="{t2}">{l2}</text><text x="{tx}" y="{t3}"{live}>{l3}</text></g>"#,
        tx = x + 10.0,
        t1 = y + 18.0,
        t2 = y + 35.0,
        t3 = y + 51.0,
        l1 = esc(lines[0]),
        l2 = esc(lines[1]),
        l3 = esc(lines[2]),
    );
    (cx, y)
}

/// One VNet with its subnets and the VMs in each; returns the y below it.
fn vnet_box(
    out: &mut String,
    site: &SiteStatus,
    v: &crate::status::VnetStatus,
    x: f64,
    y: f64,
) -> f64 {
    let w = COL_W - 24.0;
    let mut rows = String::new();
    let mut ry = y + 22.0;
    for s in &v.subnets {
        let name = s["name"].as_str().unwrap_or_default();
        ry += LINE;
        let _ = write!(
            rows,
            r#"<text x="{tx}" y="{ry}" class="subnet">subnet {n} {p}</text>"#,
            tx = x + 14.0,
            n = esc(name),
            p = esc(s["addressPrefix"].as_str().unwrap_or_default()),
        );
        for vm in &site.virtual_machines {
            for nic in vm
                .nics
                .iter()
                .filter(|n| n["subnet"].as_str() == Some(name))
            {
                ry += LINE;
                let public = nic["publicIpAddress"]
                    .as_str()
                    .map(|p| format!(" · public {p}"))
                    .unwrap_or_default();
                let _ = write!(
                    rows,
                    r#"<g class="vm" data-vm="{site}/{vm}"><rect x="{rx}" y="{top}" width="12" height="12" rx="2"/><text x="{tx}" y="{ry}">VM {vm} {ip}{public}</text></g>"#,
                    site = esc(&site.name),
                    vm = esc(&vm.name),
                    rx = x + 30.0,
                    top = ry - 11.0,
                    tx = x + 48.0,
                    ip = esc(nic["privateIpAddress"].as_str().unwrap_or("-")),
                    public = esc(&public),
                );
            }
        }
    }
    let h = ry - y + 12.0;
    let _ = write!(
        out,
        r#"<g class="vnet" data-vnet="{site}/{name}"><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6"/><text x="{tx}" y="{ty}" class="name">VNet {name} {space}</text>{rows}</g>"#,
        site = esc(&site.name),
        name = esc(&v.name),
        space = esc(&v.address_space.join(", ")),
        tx = x + 10.0,
        ty = y + 18.0,
    );
    y + h + 10.0
}

/// The tunnels, as arcs over the internet between their ends' anchors.
fn tunnels(out: &mut String, snap: &Snapshot, anchors: &[Anchor], width: f64) {
    let find = |e: &End| -> Option<(f64, f64)> {
        match e {
            End::Gateway { site, gateway } => anchors
                .iter()
                .find(|a| &a.site == site && a.gateway.as_deref() == Some(gateway.as_str()))
                .or_else(|| anchors.iter().find(|a| &a.site == site))
                .map(|a| (a.x, a.y)),
            End::Site(site) => anchors.iter().find(|a| &a.site == site).map(|a| (a.x, a.y)),
            End::External(_) => None,
        }
    };
    for (i, t) in snap.model.tunnels.iter().enumerate() {
        let a = find(&t.a);
        let b = find(&t.b);
        let (p, q) = match (a, b, &t.b) {
            (Some(p), Some(q), _) => (p, q),
            // a peer outside the lab: the arc ends on the internet, labelled with its address
            (Some(p), None, _) | (None, Some(p), _) => {
                let x = (p.0 + width / 2.0).min(width - MARGIN - 10.0);
                (p, (x, INTERNET_Y))
            }
            _ => continue,
        };
        let lift = 14.0 + 14.0 * i as f64;
        let state = snap.tunnel_state(t);
        let label = tunnel_label(t, state);
        let _ = writeln!(
            out,
            r#"<g class="tunnel" data-tunnel="{id}" data-state="{state}"><title>{label}</title><path d="M {x1} {y1} C {x1} {c}, {x2} {c}, {x2} {y2}" fill="none"/><text x="{mx}" y="{ty}" text-anchor="middle" class="tunnel-label" data-live="tunnel:{id}:label">{label}</text></g>"#,
            id = esc(&t.id),
            x1 = p.0,
            y1 = p.1,
            x2 = q.0,
            y2 = q.1,
            c = lift - 10.0,
            mx = (p.0 + q.0) / 2.0,
            ty = lift + 6.0,
            label = esc(&label),
        );
    }
}

/// `IPsec tunnel: Connected (a-to-b, b-to-a)`.
pub(crate) fn tunnel_label(t: &super::live::Tunnel, state: &str) -> String {
    let word = match state {
        "connected" => "Connected",
        "connecting" => "Connecting",
        _ => "Down",
    };
    let names: Vec<&str> = t
        .connections
        .iter()
        .map(|k| k.split_once('/').map_or(k.as_str(), |(_, n)| n))
        .collect();
    let peer = match &t.b {
        End::External(a) => format!(" to {a}"),
        _ => String::new(),
    };
    format!("IPsec tunnel{peer}: {word} ({})", names.join(" ⇄ "))
}

/// The picture in words, for screen readers (kept current by the page's script).
pub(crate) fn summary(snap: &Snapshot) -> String {
    let sites: Vec<String> = snap
        .model
        .status
        .as_ref()
        .map(|s| s.sites.iter().map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    let tunnels: Vec<String> = snap
        .model
        .tunnels
        .iter()
        .map(|t| tunnel_label(t, snap.tunnel_state(t)))
        .collect();
    format!(
        "{} site(s): {}. {}",
        sites.len(),
        sites.join(", "),
        tunnels.join(". ")
    )
}
