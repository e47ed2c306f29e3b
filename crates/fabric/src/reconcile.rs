//! Makes the kernel match a [`DesiredState`]: reads what exists, computes the difference and
//! applies only that, one `ip -batch` per namespace that needs a change. Running it twice
//! changes nothing the second time.

use crate::desired::{DesiredState, LinkKind, NetnsSpec, RouteSpec, FABRIC_ROUTE_PROTO};
use crate::netns::{self, NetnsError};
use ipnet::Ipv4Net;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;

/// A reconciliation step failed; names the namespace it was working on.
#[derive(Debug, thiserror::Error)]
#[error("namespace {netns}: {source}")]
pub struct ReconcileError {
    /// The namespace being changed.
    pub netns: String,
    /// What went wrong there.
    #[source]
    pub source: NetnsError,
}

/// What reconciliation did, one line per change (empty when nothing had to change), and the
/// namespaces it could not bring to the desired state.
#[derive(Debug, Default)]
pub struct ReconcileReport {
    /// Human-readable changes, e.g. `hn-ab12c-azure-vm1: addr add 10.1.1.4/24 dev eth0`.
    pub changes: Vec<String>,
    /// Namespaces that failed (the others were reconciled).
    pub failed: Vec<ReconcileError>,
}

/// One link as the kernel has it.
#[derive(Clone, Debug, Default)]
struct ActualLink {
    kind: Option<String>,
    master: Option<String>,
    up: bool,
    addrs: BTreeSet<Ipv4Net>,
}

/// One namespace as the kernel has it.
#[derive(Clone, Debug, Default)]
struct ActualNetns {
    links: BTreeMap<String, ActualLink>,
    routes: BTreeSet<(Ipv4Net, Option<Ipv4Addr>, String)>,
}

fn read_actual(ns: &str) -> Result<ActualNetns, NetnsError> {
    let proto = format!("route show proto {FABRIC_ROUTE_PROTO}");
    let docs = netns::ip_json(ns, &["addr show", &proto])?;
    let parse_err = |d: &str| NetnsError::Parse {
        netns: ns.to_string(),
        detail: d.to_string(),
    };
    let mut actual = ActualNetns::default();
    for link in docs[0]
        .as_array()
        .ok_or_else(|| parse_err("addr show is not an array"))?
    {
        let name = link["ifname"]
            .as_str()
            .ok_or_else(|| parse_err("link without ifname"))?
            .to_string();
        let flags: Vec<&str> = link["flags"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f.as_str()).collect())
            .unwrap_or_default();
        let mut addrs = BTreeSet::new();
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if a["family"] == "inet" {
                if let (Some(local), Some(len)) = (a["local"].as_str(), a["prefixlen"].as_u64()) {
                    let ip: Ipv4Addr = local.parse().map_err(|_| parse_err("bad inet address"))?;
                    let net =
                        Ipv4Net::new(ip, len as u8).map_err(|_| parse_err("bad prefix length"))?;
                    addrs.insert(net);
                }
            }
        }
        actual.links.insert(
            name,
            ActualLink {
                kind: link["linkinfo"]["info_kind"].as_str().map(str::to_string),
                master: link["master"].as_str().map(str::to_string),
                up: flags.contains(&"UP"),
                addrs,
            },
        );
    }
    for r in docs[1]
        .as_array()
        .ok_or_else(|| parse_err("route show is not an array"))?
    {
        let dst = match r["dst"].as_str() {
            Some("default") => Ipv4Net::default(),
            Some(d) if d.contains('/') => d.parse().map_err(|_| parse_err("bad route dst"))?,
            Some(d) => {
                Ipv4Net::new(d.parse().map_err(|_| parse_err("bad route dst"))?, 32).expect("/32")
            }
            None => continue,
        };
        let via = r["gateway"].as_str().and_then(|g| g.parse().ok());
        let dev = r["dev"].as_str().unwrap_or_default().to_string();
        actual.routes.insert((dst, via, dev));
    }
    Ok(actual)
}

/// Our lab speaks IPv4; IPv6 link-local chatter would only add noise to captures.
const IPV6_OFF: &[(&str, &str)] = &[
    ("net/ipv6/conf/all/disable_ipv6", "1"),
    ("net/ipv6/conf/default/disable_ipv6", "1"),
];

fn route_key(r: &RouteSpec) -> (Ipv4Net, Option<Ipv4Addr>, String) {
    (r.dst.trunc(), r.via, r.dev.clone())
}

fn route_words(dst: &Ipv4Net, via: &Option<Ipv4Addr>, dev: &str) -> String {
    let dst = if dst.prefix_len() == 0 {
        "default".to_string()
    } else {
        dst.to_string()
    };
    match via {
        Some(v) => format!("{dst} via {v} dev {dev} proto {FABRIC_ROUTE_PROTO}"),
        None => format!("{dst} dev {dev} proto {FABRIC_ROUTE_PROTO}"),
    }
}

/// Deletions for one namespace: links the fabric manages (bridges, veths) that are not wanted
/// or have the wrong kind. Other kinds (a gateway's TUN, `lo`) are never touched.
fn deletions(spec: &NetnsSpec, actual: &ActualNetns) -> Vec<String> {
    let mut cmds = Vec::new();
    for (name, link) in &actual.links {
        let managed = matches!(link.kind.as_deref(), Some("bridge") | Some("veth"));
        if !managed {
            continue;
        }
        let wanted = spec.links.iter().find(|l| &l.name == name);
        let keep = match wanted {
            Some(l) => link.kind.as_deref() == Some(l.kind.kernel_kind()),
            None => false,
        };
        if !keep {
            cmds.push(format!("link del {name}"));
        }
    }
    cmds
}

/// Creations and configuration for one namespace, against its actual state.
fn configure(spec: &NetnsSpec, actual: &mut ActualNetns) -> Vec<String> {
    let mut cmds = Vec::new();
    // Stale routes go first: removing an address would take its routes with it.
    let want: BTreeSet<_> = spec.routes.iter().map(route_key).collect();
    for stale in actual.routes.difference(&want) {
        cmds.push(format!(
            "route del {}",
            route_words(&stale.0, &stale.1, &stale.2)
        ));
    }
    if !actual.links.get("lo").map(|l| l.up).unwrap_or(false) {
        cmds.push("link set lo up".to_string());
    }
    for l in &spec.links {
        if !actual.links.contains_key(&l.name) {
            match &l.kind {
                LinkKind::Bridge => cmds.push(format!("link add {} type bridge", l.name)),
                LinkKind::Veth {
                    peer_netns,
                    peer_name,
                } => cmds.push(format!(
                    "link add {} type veth peer name {peer_name} netns {peer_netns}",
                    l.name
                )),
                // Created by its creator's batch, which ran before this one.
                LinkKind::VethPeer => continue,
            }
            actual.links.insert(
                l.name.clone(),
                ActualLink {
                    kind: Some(l.kind.kernel_kind().into()),
                    ..Default::default()
                },
            );
        }
    }
    for l in &spec.links {
        let Some(a) = actual.links.get(&l.name).cloned() else {
            continue;
        };
        if a.master != l.master {
            match &l.master {
                Some(m) => cmds.push(format!("link set {} master {m}", l.name)),
                None => cmds.push(format!("link set {} nomaster", l.name)),
            }
        }
        let want: BTreeSet<Ipv4Net> = l.addrs.iter().copied().collect();
        for stale in a.addrs.difference(&want) {
            cmds.push(format!("addr del {stale} dev {}", l.name));
            // The kernel drops routes through a deleted address; they are added back below.
            actual.routes.retain(|r| r.2 != l.name);
        }
        for missing in want.difference(&a.addrs) {
            cmds.push(format!("addr add {missing} dev {}", l.name));
        }
        if !a.up {
            cmds.push(format!("link set {} up", l.name));
        }
    }
    for missing in want.difference(&actual.routes) {
        cmds.push(format!(
            "route replace {}",
            route_words(&missing.0, &missing.1, &missing.2)
        ));
    }
    cmds
}

/// Phase B for one namespace: create its links, configure addresses, routes, nftables and
/// forwarding. Peers it creates are remembered in `fresh_peers` once they exist.
#[allow(clippy::too_many_arguments)]
fn configure_one(
    spec: &NetnsSpec,
    desired: &DesiredState,
    fresh_empty: bool,
    reread: bool,
    actuals: &mut BTreeMap<String, ActualNetns>,
    fresh_peers: &mut HashSet<(String, String)>,
    report: &mut ReconcileReport,
    progress: &mut dyn FnMut(&str),
) -> Result<(), NetnsError> {
    let mut actual = if fresh_empty {
        let mut a = ActualNetns::default();
        a.links.insert("lo".into(), ActualLink::default());
        a
    } else if reread {
        read_actual(&spec.name)?
    } else {
        actuals.remove(&spec.name).unwrap_or_default()
    };
    for l in spec.links.iter().filter(|l| l.kind == LinkKind::VethPeer) {
        if actual.links.contains_key(&l.name) {
            continue;
        }
        if fresh_peers.contains(&(spec.name.clone(), l.name.clone())) {
            actual.links.insert(
                l.name.clone(),
                ActualLink {
                    kind: Some("veth".into()),
                    ..Default::default()
                },
            );
        } else {
            let creator = desired
                .netns
                .iter()
                .find(|c| {
                    c.links.iter().any(|cl| {
                        matches!(&cl.kind, LinkKind::Veth { peer_netns, peer_name }
                            if *peer_netns == spec.name && *peer_name == l.name)
                    })
                })
                .map(|c| c.name.clone())
                .unwrap_or_default();
            return Err(NetnsError::MissingPeer {
                link: l.name.clone(),
                creator,
            });
        }
    }
    let cmds = configure(spec, &mut actual);
    if !cmds.is_empty() {
        progress(&format!(
            "{} ({}): {} change(s)",
            spec.name,
            spec.role,
            cmds.len()
        ));
        netns::ip_batch(Some(&spec.name), false, &cmds)?;
        for c in &cmds {
            report.changes.push(format!("{}: {c}", spec.name));
        }
    }
    for l in &spec.links {
        if let LinkKind::Veth {
            peer_netns,
            peer_name,
        } = &l.kind
        {
            fresh_peers.insert((peer_netns.clone(), peer_name.clone()));
        }
    }
    if let Some(body) = &spec.nft {
        if netns::nft_ensure(&spec.name, crate::desired::NFT_TABLE, body)? {
            report.changes.push(format!(
                "{}: nftables table {} loaded",
                spec.name,
                crate::desired::NFT_TABLE
            ));
        }
    }
    let want_fwd = if spec.forwarding { "1" } else { "0" };
    // IPv6 is switched off when a namespace is created; checked again on every run, because
    // a `lab up` killed right after `ip netns add` left a namespace with it still on.
    let wanted = [("net/ipv4/ip_forward", want_fwd)]
        .into_iter()
        .chain(IPV6_OFF.iter().copied())
        .collect::<Vec<_>>();
    for key in netns::sysctl_ensure(&spec.name, &wanted)? {
        let value = wanted
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or_default();
        report
            .changes
            .push(format!("{}: {}={value}", spec.name, key.replace('/', ".")));
    }
    Ok(())
}

/// Makes the kernel's namespaces with names starting with `prefix` match `desired` exactly:
/// removes namespaces the lab no longer has, creates missing ones, fixes links, addresses,
/// routes and forwarding. `progress` is told about each namespace that changes. A namespace
/// that fails is listed in [`ReconcileReport::failed`] and the others still converge; `Err`
/// means the namespaces themselves could not be created or removed.
pub fn reconcile(
    prefix: &str,
    desired: &DesiredState,
    progress: &mut dyn FnMut(&str),
) -> Result<ReconcileReport, ReconcileError> {
    let mut report = ReconcileReport::default();
    let err = |ns: &str| {
        let ns = ns.to_string();
        move |source| ReconcileError { netns: ns, source }
    };
    // A `lab up` killed inside `ip netns add` leaves a file that is no namespace; it would
    // fail every later run, so it goes and the namespace is created afresh.
    for name in netns::remove_placeholders(prefix).map_err(err(prefix))? {
        let line = format!("{name}: removed the placeholder of an interrupted `ip netns add`");
        progress(&line);
        report.changes.push(line);
    }
    let existing: HashSet<String> = netns::list_netns(prefix).into_iter().collect();
    let wanted: HashSet<&str> = desired.netns.iter().map(|n| n.name.as_str()).collect();

    let stale: Vec<String> = {
        let mut v: Vec<String> = existing
            .iter()
            .filter(|n| !wanted.contains(n.as_str()))
            .cloned()
            .collect();
        v.sort();
        v
    };
    if !stale.is_empty() {
        // A namespace's veths would vanish from the other ends' namespaces only when the
        // kernel gets round to destroying it, after this run read them; deleted first, they
        // go with both ends at once.
        for ns in &stale {
            netns::delete_veths(ns).map_err(err(ns))?;
        }
        netns::delete_netns(&stale).map_err(err(&stale[0]))?;
        for n in &stale {
            report.changes.push(format!("{n}: namespace removed"));
        }
    }

    let created: Vec<&NetnsSpec> = desired
        .netns
        .iter()
        .filter(|n| !existing.contains(&n.name))
        .collect();
    if !created.is_empty() {
        let cmds: Vec<String> = created
            .iter()
            .map(|n| format!("netns add {}", n.name))
            .collect();
        netns::ip_batch(None, false, &cmds).map_err(err(&created[0].name))?;
        for n in &created {
            netns::sysctl_set(&n.name, IPV6_OFF).map_err(err(&n.name))?;
            report
                .changes
                .push(format!("{}: namespace created ({})", n.name, n.role));
        }
    }
    let is_new: HashSet<&str> = created.iter().map(|n| n.name.as_str()).collect();

    // Phase A: remove unwanted links everywhere first, so that a veth moving between
    // namespaces never meets its old self. A namespace that fails is reported and skipped;
    // the others go on.
    let mut actuals: BTreeMap<String, ActualNetns> = BTreeMap::new();
    let mut deleted_any = false;
    let mut broken: HashSet<String> = HashSet::new();
    for spec in &desired.netns {
        if is_new.contains(spec.name.as_str()) {
            continue;
        }
        let result = (|| {
            let actual = read_actual(&spec.name)?;
            let cmds = deletions(spec, &actual);
            if !cmds.is_empty() {
                netns::ip_batch(Some(&spec.name), true, &cmds)?;
            }
            Ok::<_, NetnsError>((actual, cmds))
        })();
        match result {
            Ok((actual, cmds)) => {
                deleted_any |= !cmds.is_empty();
                for c in &cmds {
                    report.changes.push(format!("{}: {c}", spec.name));
                }
                actuals.insert(spec.name.clone(), actual);
            }
            Err(e) => {
                broken.insert(spec.name.clone());
                report.failed.push(err(&spec.name)(e));
            }
        }
    }

    // Phase B: create and configure, creators before the namespaces receiving their peers.
    let mut fresh_peers: HashSet<(String, String)> = HashSet::new();
    for spec in &desired.netns {
        if broken.contains(&spec.name) {
            continue;
        }
        let result = configure_one(
            spec,
            desired,
            is_new.contains(spec.name.as_str()) && !deleted_any,
            deleted_any,
            &mut actuals,
            &mut fresh_peers,
            &mut report,
            progress,
        );
        if let Err(e) = result {
            report.failed.push(err(&spec.name)(e));
        }
    }
    Ok(report)
}

/// Removes every namespace whose name starts with `prefix` (and the processes in them).
/// Returns the namespaces removed.
pub fn teardown(prefix: &str) -> Result<Vec<String>, NetnsError> {
    let mut removed: Vec<String> = Vec::new();
    // A killed `lab up` may have left an `ip` finishing its batch: look again until a pass
    // finds nothing (bounded).
    for _ in 0..5 {
        removed.extend(netns::remove_placeholders(prefix)?);
        let names = netns::list_netns(prefix);
        if names.is_empty() {
            break;
        }
        netns::delete_netns(&names)?;
        removed.extend(names);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    removed.sort();
    removed.dedup();
    Ok(removed)
}
