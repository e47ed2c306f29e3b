//! A connection's configuration for the pair harness, built from sensible defaults:
//! `Conn::new(A, B).initiate(true)` is A's side of the usual tunnel, `Conn::new(B, A)` B's.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ike::{ConnectionConfig, Identity, Proposal, Psk, Recovery, TrafficSelector};

/// The initiator's address in the pair (site 1, 10.1.0.0/16 behind it).
pub const A: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
/// The responder's address in the pair (site 2, 10.2.0.0/16 behind it).
pub const B: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2));

/// The IKE proposal of [`Conn::new`].
pub const IKE: &str = "aes256gcm16-prfsha384-ecp384";
/// The ESP proposal of [`Conn::new`].
pub const ESP: &str = "aes256gcm16";

/// A selector from `a.b.c.d/len`.
pub fn ts(s: &str) -> TrafficSelector {
    let (a, l) = s.split_once('/').unwrap();
    TrafficSelector::from_prefix(a.parse().unwrap(), l.parse().unwrap())
}

/// A [`ConnectionConfig`] under construction. Defaults: named `c-LOCAL`, identity the local
/// IPv4 address, any remote identity, PSK `secret`, [`IKE`] and [`ESP`], B protecting
/// 10.2.0.0/16 toward 10.1.0.0/16 (anyone else the reverse), lifetimes 1 h (IKE) and 30 min
/// (Child), dead-peer detection after 45 s, default recovery, responder only.
#[derive(Clone)]
pub struct Conn(ConnectionConfig);

impl Conn {
    /// A connection from `local` to `remote` (unspecified: a responder accepting any peer).
    pub fn new(local: IpAddr, remote: IpAddr) -> Conn {
        let IpAddr::V4(v4) = local else {
            panic!("the pair harness speaks IPv4: {local}")
        };
        let (ours, theirs) = if local == B {
            ("10.2.0.0/16", "10.1.0.0/16")
        } else {
            ("10.1.0.0/16", "10.2.0.0/16")
        };
        Conn(ConnectionConfig {
            name: format!("c-{local}"),
            local_addr: local,
            remote_addr: remote,
            local_id: Identity::Ipv4(v4),
            remote_id: None,
            psk: Psk::new(b"secret".to_vec()),
            local_ts: vec![ts(ours)],
            remote_ts: vec![ts(theirs)],
            ike_proposals: proposals(IKE),
            esp_proposals: proposals(ESP),
            ike_lifetime: Duration::from_secs(3600),
            child_lifetime: Duration::from_secs(1800),
            dpd_timeout: Duration::from_secs(45),
            initiate: false,
            recovery: Recovery::default(),
            selector_pairs: false,
        })
    }

    /// The name in status output.
    pub fn name(mut self, name: &str) -> Conn {
        self.0.name = name.into();
        self
    }

    /// Our identity.
    pub fn local_id(mut self, id: Identity) -> Conn {
        self.0.local_id = id;
        self
    }

    /// The identity the peer must prove.
    pub fn remote_id(mut self, id: Identity) -> Conn {
        self.0.remote_id = Some(id);
        self
    }

    /// Our protected prefixes (`a.b.c.d/len`).
    pub fn local_ts(mut self, prefixes: &[&str]) -> Conn {
        self.0.local_ts = prefixes.iter().map(|s| ts(s)).collect();
        self
    }

    /// The peer's protected prefixes.
    pub fn remote_ts(mut self, prefixes: &[&str]) -> Conn {
        self.0.remote_ts = prefixes.iter().map(|s| ts(s)).collect();
        self
    }

    /// IKE proposals, comma-separated, in preference order.
    pub fn ike(mut self, list: &str) -> Conn {
        self.0.ike_proposals = proposals(list);
        self
    }

    /// ESP proposals, comma-separated, in preference order.
    pub fn esp(mut self, list: &str) -> Conn {
        self.0.esp_proposals = proposals(list);
        self
    }

    /// The pre-shared key.
    pub fn psk(mut self, psk: &str) -> Conn {
        self.0.psk = Psk::new(psk.as_bytes().to_vec());
        self
    }

    /// Whether this side starts the connection.
    pub fn initiate(mut self, yes: bool) -> Conn {
        self.0.initiate = yes;
        self
    }

    /// IKE SA and Child SA lifetimes.
    pub fn lifetimes(mut self, ike: Duration, child: Duration) -> Conn {
        self.0.ike_lifetime = ike;
        self.0.child_lifetime = child;
        self
    }

    /// Idle time before a liveness check (zero: no dead-peer detection).
    pub fn dpd(mut self, timeout: Duration) -> Conn {
        self.0.dpd_timeout = timeout;
        self
    }

    /// One Child SA per (local, remote) selector pair.
    pub fn selector_pairs(mut self, yes: bool) -> Conn {
        self.0.selector_pairs = yes;
        self
    }

    /// How the connection comes back after it went down.
    pub fn recovery(mut self, recovery: Recovery) -> Conn {
        self.0.recovery = recovery;
        self
    }

    /// The configuration.
    pub fn build(self) -> ConnectionConfig {
        self.0
    }
}

impl From<Conn> for ConnectionConfig {
    fn from(c: Conn) -> ConnectionConfig {
        c.build()
    }
}

/// Comma-separated proposals.
fn proposals(list: &str) -> std::sync::Arc<[Proposal]> {
    list.split(',')
        .map(|p| {
            p.parse::<Proposal>()
                .unwrap_or_else(|e| panic!("proposal {p}: {e}"))
        })
        .collect()
}
