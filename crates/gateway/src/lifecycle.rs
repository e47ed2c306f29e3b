//! Control-plane upkeep of long-lived tunnels, kept out of the data path: NAT keepalives
//! (RFC 3948 §2.3), the ESP destination following a peer whose NAT mapping or address changed,
//! and per-connection config reload (what changed, by name).

use crate::config::ConnectionSpec;
use crate::status::ReloadReport;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often a NAT keepalive goes out while we are behind NAT. RFC 3948 suggests 20 s;
/// NAT bindings for UDP commonly expire after 30 s or more.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// How often the loop looks at the IKE state for keepalives and peer moves.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The one-byte NAT keepalive payload (RFC 3948 §2.3).
pub const KEEPALIVE: [u8; 1] = [0xff];

/// Per-connection NAT keepalive schedule: sans-IO, time passed in.
#[derive(Debug, Default)]
pub struct Keepalives {
    /// Connection index → (peer the last keepalive went to, when the next is due).
    next: HashMap<usize, (SocketAddr, Instant)>,
    /// Connection index → keepalives sent.
    sent: HashMap<usize, u64>,
}

impl Keepalives {
    /// Whether connection `conn` must send a keepalive to `peer` now. Only when we are
    /// behind NAT (`nat_local`); the first one goes out at once, then every
    /// [`KEEPALIVE_INTERVAL`]; a new peer address restarts the schedule.
    pub fn due(&mut self, conn: usize, nat_local: bool, peer: SocketAddr, now: Instant) -> bool {
        if !nat_local {
            self.next.remove(&conn);
            return false;
        }
        match self.next.get(&conn) {
            Some((p, t)) if *p == peer && *t > now => false,
            _ => {
                self.next.insert(conn, (peer, now + KEEPALIVE_INTERVAL));
                true
            }
        }
    }

    /// Books one keepalive that left the socket.
    pub fn record_sent(&mut self, conn: usize) {
        *self.sent.entry(conn).or_default() += 1;
    }

    /// Keepalives sent by a connection so far.
    pub fn sent(&self, conn: usize) -> u64 {
        self.sent.get(&conn).copied().unwrap_or(0)
    }

    /// Forgets a removed or replaced connection.
    pub fn forget(&mut self, conn: usize) {
        self.next.remove(&conn);
        self.sent.remove(&conn);
    }
}

/// Whether two connection specs are the same tunnel with the same settings (PSK included,
/// compared as bytes, never printed).
pub fn same_connection(a: &ConnectionSpec, b: &ConnectionSpec) -> bool {
    // Debug covers every field; the PSK's Debug is redacted, so compare its bytes apart
    format!("{a:?}") == format!("{b:?}") && a.psk.expose() == b.psk.expose()
}

/// What a reload does, by position in the old and new connection lists.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Old index of connections left alone.
    pub unchanged: Vec<usize>,
    /// (old index, new index) of connections whose settings changed.
    pub replaced: Vec<(usize, usize)>,
    /// Old index of connections no longer in the config.
    pub removed: Vec<usize>,
    /// New index of connections not in the old config.
    pub added: Vec<usize>,
}

impl ReloadPlan {
    /// Matches connections by name: `old` yields (index, spec) of the live connections.
    pub fn new<'a>(
        old: impl IntoIterator<Item = (usize, &'a ConnectionSpec)>,
        new: &[ConnectionSpec],
    ) -> ReloadPlan {
        let mut plan = ReloadPlan::default();
        let old: Vec<(usize, &ConnectionSpec)> = old.into_iter().collect();
        for (i, o) in &old {
            match new.iter().position(|n| n.name == o.name) {
                Some(j) if same_connection(o, &new[j]) => plan.unchanged.push(*i),
                Some(j) => plan.replaced.push((*i, j)),
                None => plan.removed.push(*i),
            }
        }
        for (j, n) in new.iter().enumerate() {
            if !old.iter().any(|(_, o)| o.name == n.name) {
                plan.added.push(j);
            }
        }
        plan
    }

    /// The plan as names, for the reload answer and the log.
    pub fn report(&self, old: &[ConnectionSpec], new: &[ConnectionSpec]) -> ReloadReport {
        ReloadReport {
            added: self.added.iter().map(|&j| new[j].name.clone()).collect(),
            removed: self.removed.iter().map(|&i| old[i].name.clone()).collect(),
            replaced: self
                .replaced
                .iter()
                .map(|&(i, _)| old[i].name.clone())
                .collect(),
            unchanged: self
                .unchanged
                .iter()
                .map(|&i| old[i].name.clone())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GatewayConfig;
    use std::path::Path;

    fn parse(conns: &str) -> Vec<ConnectionSpec> {
        let text = format!("local_address = \"198.51.100.1\"\n[tun]\nname = \"hn-t\"\n{conns}");
        GatewayConfig::parse(&text, Path::new("/"))
            .unwrap()
            .connections
    }

    fn conn(name: &str, psk: &str, remote: &str) -> String {
        format!(
            "[[connection]]\nname = \"{name}\"\nremote_address = \"198.51.100.2\"\npsk = \"{psk}\"\nlocal_prefixes = [\"10.1.0.0/16\"]\nremote_prefixes = [\"{remote}\"]\n"
        )
    }

    #[test]
    fn reload_plan_matches_by_name_and_compares_every_setting() {
        let old = parse(
            &(conn("a", "secret-one-long", "10.2.0.0/16")
                + &conn("b", "secret-two-long", "10.3.0.0/16")
                + &conn("c", "secret-three-long", "10.4.0.0/16")),
        );
        let new = parse(
            &(conn("d", "secret-four-long", "10.5.0.0/16")
                + &conn("b", "secret-two-changed", "10.3.0.0/16")
                + &conn("a", "secret-one-long", "10.2.0.0/16")),
        );
        let plan = ReloadPlan::new(old.iter().enumerate(), &new);
        assert_eq!(plan.unchanged, vec![0]);
        assert_eq!(plan.replaced, vec![(1, 1)], "a PSK change is a change");
        assert_eq!(plan.removed, vec![2]);
        assert_eq!(plan.added, vec![0]);
        let r = plan.report(&old, &new);
        assert_eq!(
            (r.unchanged, r.replaced, r.removed, r.added),
            (
                vec!["a".to_string()],
                vec!["b".to_string()],
                vec!["c".to_string()],
                vec!["d".to_string()]
            )
        );
        let moved = parse(&conn("a", "secret-one-long", "10.9.0.0/16"));
        let plan = ReloadPlan::new(old.iter().enumerate().take(1), &moved);
        assert_eq!(plan.replaced, vec![(0, 0)], "a prefix change is a change");
    }

    #[test]
    fn keepalives_only_behind_nat_every_interval_and_on_peer_change() {
        let mut k = Keepalives::default();
        let t0 = Instant::now();
        let p1: SocketAddr = "198.51.100.2:4500".parse().unwrap();
        let p2: SocketAddr = "198.51.100.2:61000".parse().unwrap();
        assert!(
            !k.due(0, false, p1, t0),
            "no NAT in front of us: no keepalives"
        );
        assert!(k.due(0, true, p1, t0));
        assert!(!k.due(0, true, p1, t0 + Duration::from_secs(19)));
        assert!(k.due(0, true, p1, t0 + KEEPALIVE_INTERVAL));
        assert!(
            k.due(0, true, p2, t0 + Duration::from_secs(21)),
            "peer moved"
        );
        assert_eq!(k.sent(0), 0, "only sends that succeeded count");
        for _ in 0..3 {
            k.record_sent(0);
        }
        assert_eq!(k.sent(0), 3);
        assert_eq!(k.sent(1), 0);
        k.forget(0);
        assert_eq!(k.sent(0), 0);
    }
}
