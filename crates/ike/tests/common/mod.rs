//! The in-memory IKE pair harness shared by the integration tests: two endpoints, a
//! virtual clock, datagrams moved by hand (lost on purpose when asked), and the wire
//! recorded for inspection and for attackers to replay.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ike::{
    ConnectionConfig, DownReason, Endpoint, Event, Identity, Proposal, Psk, TrafficSelector,
};

pub const A: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
pub const B: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2));

pub fn ts(s: &str) -> TrafficSelector {
    let (a, l) = s.split_once('/').unwrap();
    TrafficSelector::from_prefix(a.parse().unwrap(), l.parse().unwrap())
}

#[allow(clippy::too_many_arguments)]
pub fn cfg(
    local: IpAddr,
    remote: IpAddr,
    lts: &[&str],
    rts: &[&str],
    ike: &str,
    esp: &str,
    psk: &str,
    initiate: bool,
) -> ConnectionConfig {
    ConnectionConfig {
        name: format!("c-{local}"),
        local_addr: local,
        remote_addr: remote,
        local_id: Identity::Ipv4(match local {
            IpAddr::V4(a) => a,
            _ => unreachable!(),
        }),
        remote_id: None,
        psk: Psk::new(psk.as_bytes().to_vec()),
        local_ts: lts.iter().map(|s| ts(s)).collect(),
        remote_ts: rts.iter().map(|s| ts(s)).collect(),
        ike_proposals: ike
            .split(',')
            .map(|p| p.parse::<Proposal>().unwrap())
            .collect(),
        esp_proposals: esp
            .split(',')
            .map(|p| p.parse::<Proposal>().unwrap())
            .collect(),
        ike_lifetime: Duration::from_secs(3600),
        child_lifetime: Duration::from_secs(1800),
        dpd_timeout: Duration::from_secs(45),
        initiate,
        recovery: ike::Recovery::default(),
    }
}

/// A (initiator side unless swapped) and B plus a virtual clock and in-flight datagrams.
pub struct Net {
    pub a: Endpoint,
    pub b: Endpoint,
    pub now: Instant,
    pub ev_a: Vec<Event>,
    pub ev_b: Vec<Event>,
    /// Drop the n-th datagram sent (0-based, counted across both directions).
    pub drop: Vec<usize>,
    pub sent: usize,
    /// Bytes on the wire, for inspection.
    pub wire: Vec<(bool, u16, Vec<u8>)>,
    /// When each datagram of `wire` was sent (virtual time).
    pub wire_at: Vec<Instant>,
    /// A sits behind a NAT: B sees NAT_IP and port + 40000.
    pub nat: bool,
}

pub const NAT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

impl Net {
    pub fn new() -> Self {
        Net {
            a: Endpoint::new(),
            b: Endpoint::new(),
            now: Instant::now(),
            ev_a: vec![],
            ev_b: vec![],
            drop: vec![],
            sent: 0,
            wire: vec![],
            wire_at: vec![],
            nat: false,
        }
    }

    /// Moves datagrams until both sides are idle; returns number delivered.
    pub fn pump(&mut self) -> usize {
        let mut delivered = 0;
        loop {
            let mut moved = false;
            for from_a in [true, false] {
                let (src, src_ip, dst_ip) = if from_a {
                    (&mut self.a, A, B)
                } else {
                    (&mut self.b, B, A)
                };
                let mut out = vec![];
                let nat = self.nat;
                while let Some(mut t) = src.poll_transmit() {
                    if nat && !from_a {
                        assert_eq!(
                            t.remote.ip(),
                            NAT_IP,
                            "B answers the NAT public address (datagram #{}, {:02x?})",
                            self.sent,
                            &t.payload[..t.payload.len().min(24)]
                        );
                        t.remote = SocketAddr::new(A, t.remote.port() - 40000);
                    }
                    assert_eq!(t.remote.ip(), dst_ip);
                    out.push(t);
                }
                for t in out {
                    moved = true;
                    let idx = self.sent;
                    self.sent += 1;
                    self.wire.push((from_a, t.local_port, t.payload.clone()));
                    self.wire_at.push(self.now);
                    if self.drop.contains(&idx) {
                        continue;
                    }
                    let dst = if from_a { &mut self.b } else { &mut self.a };
                    let (dst_local, src_seen) = if self.nat && from_a {
                        (
                            SocketAddr::new(B, t.remote.port()),
                            SocketAddr::new(NAT_IP, t.local_port + 40000),
                        )
                    } else {
                        (t.remote, SocketAddr::new(src_ip, t.local_port))
                    };
                    let _ = dst.handle_datagram(self.now, dst_local, src_seen, &t.payload);
                    delivered += 1;
                }
            }
            self.collect();
            if !moved {
                return delivered;
            }
        }
    }

    pub fn collect(&mut self) {
        while let Some(e) = self.a.poll_event() {
            self.ev_a.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.ev_b.push(e);
        }
    }

    /// Advances the clock to the next timer of either side and fires it.
    pub fn tick(&mut self) -> bool {
        let next = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(t) = next else { return false };
        if t > self.now {
            self.now = t;
        }
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        self.collect();
        true
    }

    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.pump();
        while let Some(t) = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
        {
            if t > end {
                break;
            }
            self.tick();
            self.pump();
        }
        self.now = end;
    }
}

pub fn children(ev: &[Event]) -> Vec<ike::ChildSaKeys> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildSaInstalled { child, .. } => Some(child.clone()),
            _ => None,
        })
        .collect()
}

pub fn attempts(ev: &[Event]) -> Vec<DownReason> {
    ev.iter()
        .filter_map(|e| match e {
            Event::AttemptFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

pub fn downs(ev: &[Event]) -> Vec<DownReason> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ConnectionDown { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

pub fn establish(ike: &str, esp: &str) -> Net {
    connect(ike, esp, false)
}

/// A initiates; B too when `b_initiates` (both at the same moment).
pub fn connect(ike: &str, esp: &str, b_initiates: bool) -> Net {
    let mut n = Net::new();
    n.b.add_connection(
        cfg(
            B,
            A,
            &["10.2.0.0/16"],
            &["10.1.0.0/16"],
            ike,
            esp,
            "secret",
            b_initiates,
        ),
        n.now,
    );
    n.a.add_connection(
        cfg(
            A,
            B,
            &["10.1.0.0/16"],
            &["10.2.0.0/16"],
            ike,
            esp,
            "secret",
            true,
        ),
        n.now,
    );
    n.pump();
    n
}

pub fn establish_with_lifetimes(ike: &str, esp: &str, ike_life: u64, child_life: u64) -> Net {
    let mut n = Net::new();
    let mut cb = cfg(
        B,
        A,
        &["10.2.0.0/16"],
        &["10.1.0.0/16"],
        ike,
        esp,
        "secret",
        false,
    );
    let mut ca = cfg(
        A,
        B,
        &["10.1.0.0/16"],
        &["10.2.0.0/16"],
        ike,
        esp,
        "secret",
        true,
    );
    for c in [&mut ca, &mut cb] {
        c.ike_lifetime = Duration::from_secs(ike_life);
        c.child_lifetime = Duration::from_secs(child_life);
    }
    n.b.add_connection(cb, n.now);
    n.a.add_connection(ca, n.now);
    n.pump();
    n
}

/// The Child SAs currently installed (installed and not yet deleted), by inbound SPI.
pub fn live(ev: &[Event]) -> Vec<ike::ChildSaKeys> {
    let mut v: Vec<ike::ChildSaKeys> = vec![];
    for e in ev {
        match e {
            Event::ChildSaInstalled { child, .. } => v.push(child.clone()),
            Event::ChildSaDeleted { spi_in, .. } => v.retain(|c| c.spi_in != *spi_in),
            _ => {}
        }
    }
    v
}

pub mod attack;
pub mod capture;
