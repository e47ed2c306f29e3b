//! BGP in a lab, as the tests look at it: a gateway's learned routes and peers through the
//! CLI (the `az` shapes), routes in a namespace, and the processes of an on-premises router.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::lab::{show, Lab};

impl Lab {
    /// `vnet-gateway LIST --site SITE --name GATEWAY` (`list-learned-routes`,
    /// `list-bgp-peer-status`, …): its `value` array.
    pub fn gateway_list(&self, list: &str, site: &str, gateway: &str) -> Vec<Value> {
        let out = self.run(&[
            "vnet-gateway",
            list,
            "--id",
            &self.id,
            "--site",
            site,
            "--name",
            gateway,
        ]);
        assert!(out.status.success(), "vnet-gateway {list}:\n{}", show(&out));
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        v["value"].as_array().cloned().unwrap_or_default()
    }

    /// The AS path of the route a gateway learned for `network` (`None`: not learned).
    pub fn learned_path(&self, site: &str, gateway: &str, network: &str) -> Option<String> {
        self.gateway_list("list-learned-routes", site, gateway)
            .into_iter()
            .find(|r| r["network"] == network && r["origin"] != "Network")
            .map(|r| r["asPath"].as_str().unwrap_or_default().to_string())
    }

    /// `vpn-connection show --site SITE --name NAME`: the connection as Azure shows it.
    pub fn connection(&self, site: &str, name: &str) -> Value {
        let out = self.run(&[
            "vpn-connection",
            "show",
            "--id",
            &self.id,
            "--site",
            site,
            "--name",
            name,
        ]);
        assert!(out.status.success(), "vpn-connection show:\n{}", show(&out));
        serde_json::from_slice(&out.stdout).expect("JSON")
    }

    /// A connection's tunnels (`tunnelConnectionStatus`): name and state of each.
    pub fn tunnels(&self, site: &str, name: &str) -> Vec<(String, String)> {
        self.connection(site, name)["properties"]["tunnelConnectionStatus"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|t| {
                (
                    t["tunnel"].as_str().unwrap_or_default().to_string(),
                    t["connectionStatus"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    }

    /// The namespace whose name ends with `suffix` (e.g. `-onprem-gw-strongswan`).
    pub fn netns_ending(&self, suffix: &str) -> String {
        let all = self.namespaces();
        all.iter()
            .find(|n| n.ends_with(suffix))
            .cloned()
            .unwrap_or_else(|| panic!("no namespace ending in {suffix} among {all:?}"))
    }

    /// The lab's files for the strongSwan device of `site`.
    pub fn device_dir(&self, site: &str) -> PathBuf {
        self.state
            .join("labs")
            .join(&self.id)
            .join("strongswan")
            .join(site)
    }
}

/// `ip -n NETNS route show PREFIX` lines.
pub fn routes(netns: &str, prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", netns, "-4", "route", "show", prefix])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// PIDs of the live (not zombie) processes named `comm` in namespace `netns`.
pub fn pids_named(netns: &str, comm: &str) -> Vec<i32> {
    let out = Command::new("ip")
        .args(["netns", "pids", netns])
        .output()
        .expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .filter(|p| {
            let named =
                std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm);
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_none_or(|(_, r)| r.trim_start().starts_with('Z'));
            named && !zombie
        })
        .collect()
}

/// Polls `f` every 200 ms until true; panics with `what` after `within`. Returns how long
/// it took.
pub fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    t.elapsed()
}
