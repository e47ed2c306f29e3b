//! The gateway's rules in virtual time, without sockets or a TUN device: two gateway cores
//! exchange IKE in memory and carry ESP through their data paths, while the clock jumps.

use gateway::core::{GatewayCore, ReloadError, MAX_STARTING_PER_PEER, START_SLOT};
use gateway::GatewayConfig;
use ike::endpoint::Endpoint;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

const A: &str = "198.51.100.1";
const B: &str = "198.51.100.2";
/// Where A's datagrams appear to come from when A is behind NAT.
const A_NAT: &str = "203.0.113.9";

fn config(local: &str, conns: &[(&str, &str, &str, &str, bool)], extra: &str) -> GatewayConfig {
    let mut t = format!("local_address = \"{local}\"\n");
    for (name, remote, lp, rp, initiate) in conns {
        // the responder tells same-peer connections apart by the initiator's identity
        let ids = if *initiate {
            format!("local_id = \"{name}.a.example\"\nremote_id = \"%any\"")
        } else {
            format!("remote_id = \"{name}.a.example\"")
        };
        t += &format!(
            "[[connection]]\nname = \"{name}\"\nremote_address = \"{remote}\"\n{ids}\npsk = \"secret-{name}\"\nlocal_prefixes = [\"{lp}\"]\nremote_prefixes = [\"{rp}\"]\ninitiate = {initiate}\n{extra}\n"
        );
    }
    GatewayConfig::parse(&t, Path::new("/")).unwrap()
}

/// Two gateway cores joined by an in-memory network and a virtual clock.
struct Pair {
    a: GatewayCore,
    b: GatewayCore,
    now: Instant,
    /// A sits behind a NAT that maps its port 500/4500 to 40500/44500 on A_NAT.
    nat: bool,
    /// IKE datagrams delivered so far (a→b, b→a).
    delivered: (usize, usize),
}

impl Pair {
    fn new(a: GatewayConfig, b: GatewayConfig) -> Pair {
        let now = Instant::now();
        Pair {
            b: GatewayCore::new(b, Endpoint::new(), now),
            a: GatewayCore::new(a, Endpoint::new(), now),
            now,
            nat: false,
            delivered: (0, 0),
        }
    }

    /// Moves IKE datagrams until both sides are quiet.
    fn pump(&mut self) {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        loop {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                moved = true;
                self.delivered.0 += 1;
                let from = if self.nat {
                    SocketAddr::new(ip(A_NAT), t.local_port + 40000)
                } else {
                    SocketAddr::new(ip(A), t.local_port)
                };
                self.b.handle_datagram(
                    self.now,
                    SocketAddr::new(ip(B), t.remote.port()),
                    from,
                    &t.payload,
                );
            }
            while let Some(t) = self.b.poll_transmit() {
                moved = true;
                self.delivered.1 += 1;
                let port = if self.nat {
                    t.remote.port() - 40000
                } else {
                    t.remote.port()
                };
                self.a.handle_datagram(
                    self.now,
                    SocketAddr::new(ip(A), port),
                    SocketAddr::new(ip(B), t.local_port),
                    &t.payload,
                );
            }
            if !moved {
                return;
            }
        }
    }

    /// Lets `d` pass in steps of the cores' own deadlines, moving datagrams in between.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.pump();
            let next = self
                .a
                .poll_timeout()
                .min(self.b.poll_timeout())
                .max(self.now);
            if next > end {
                self.now = end;
                self.a.handle_timeout(end);
                self.b.handle_timeout(end);
                self.pump();
                return;
            }
            self.now = next.max(self.now + Duration::from_millis(1));
            self.a.handle_timeout(self.now);
            self.b.handle_timeout(self.now);
        }
    }

    fn facts() -> gateway::core::ProcessFacts {
        gateway::core::ProcessFacts {
            tun: "test0".into(),
            tun_mtu: 1400,
            datapath_threads: 1,
            inbox_dropped: 0,
            control: (0, 0),
        }
    }

    fn states(core: &GatewayCore, now: Instant) -> Vec<String> {
        core.status(now, &Pair::facts())
            .connections
            .into_iter()
            .map(|c| c.state)
            .collect()
    }
}

/// Forty initiating connections to one peer: its share (our responder's per-source
/// half-open limit) starts at once, the rest wait for a slot (a start slot frees when a
/// connection settles, or after START_SLOT), and all come up.
#[test]
fn initiators_start_a_peers_share_at_a_time() {
    const N: usize = 40;
    let conns: Vec<(String, String, String)> = (0..N)
        .map(|k| {
            (
                format!("c{k}"),
                format!("10.1.{k}.0/24"),
                format!("10.2.{k}.0/24"),
            )
        })
        .collect();
    let a_conns: Vec<(&str, &str, &str, &str, bool)> = conns
        .iter()
        .map(|(n, l, r)| (n.as_str(), B, l.as_str(), r.as_str(), true))
        .collect();
    let b_conns: Vec<(&str, &str, &str, &str, bool)> = conns
        .iter()
        .map(|(n, l, r)| (n.as_str(), A, r.as_str(), l.as_str(), false))
        .collect();
    let mut p = Pair::new(config(A, &a_conns, ""), config(B, &b_conns, ""));
    // nothing answered: only MAX_STARTING_PER_PEER initiators have sent IKE_SA_INIT (their
    // retransmissions included, by initiator SPI)
    let mut spis = std::collections::HashSet::new();
    let mut collect = |p: &mut Pair| {
        while let Some(t) = p.a.poll_transmit() {
            assert_eq!(t.local_port, 500);
            spis.insert(t.payload[..8].to_vec());
        }
        spis.len()
    };
    assert_eq!(collect(&mut p), MAX_STARTING_PER_PEER);
    let queued = |p: &Pair| {
        Pair::states(&p.a, p.now)
            .iter()
            .filter(|s| *s == "queued")
            .count()
    };
    assert_eq!(queued(&p), N - MAX_STARTING_PER_PEER);
    let t0 = p.now;
    while p.now < t0 + START_SLOT - Duration::from_millis(10) {
        p.now += Duration::from_millis(10);
        p.a.handle_timeout(p.now);
    }
    assert_eq!(
        collect(&mut p),
        MAX_STARTING_PER_PEER,
        "the slots are held until START_SLOT"
    );
    assert_eq!(queued(&p), N - MAX_STARTING_PER_PEER);
    // a silent peer must not stall the queue: the slots free after START_SLOT
    p.now = t0 + START_SLOT;
    p.a.handle_timeout(p.now);
    assert_eq!(collect(&mut p), 2 * MAX_STARTING_PER_PEER);
    assert_eq!(queued(&p), N - 2 * MAX_STARTING_PER_PEER);
    // once answered, everybody comes up
    p.run_for(Duration::from_secs(30));
    let states = Pair::states(&p.a, p.now);
    assert!(states.iter().all(|s| s == "established"), "{states:?}");
}

/// A reload changes what changed: the unchanged connection keeps its SAs, the changed one
/// is replaced (DELETE, new SAs), a new one comes up, and a change to the process itself is
/// refused without touching anything.
#[test]
fn reload_applies_per_connection_changes() {
    let a = config(
        A,
        &[
            ("keep", B, "10.1.0.0/24", "10.2.0.0/24", true),
            ("change", B, "10.1.1.0/24", "10.2.1.0/24", true),
        ],
        "",
    );
    let b = config(
        B,
        &[
            ("keep", A, "10.2.0.0/24", "10.1.0.0/24", false),
            ("change", A, "10.2.1.0/24", "10.1.1.0/24", false),
            ("new", A, "10.2.2.0/24", "10.1.2.0/24", false),
        ],
        "",
    );
    let mut p = Pair::new(a, b);
    p.run_for(Duration::from_secs(3));
    let before = p.a.status(p.now, &Pair::facts());
    assert!(before.connections.iter().all(|c| c.state == "established"));
    let keep_spi = before.connections[0].ike_spi_i.clone();
    let change_spi = before.connections[1].ike_spi_i.clone();
    // the file changes: "change" gets other proposals, "new" is added
    let new = config(
        A,
        &[
            ("keep", B, "10.1.0.0/24", "10.2.0.0/24", true),
            ("change", B, "10.1.1.0/24", "10.2.1.0/24", true),
            ("new", B, "10.1.2.0/24", "10.2.2.0/24", true),
        ],
        "",
    );
    let mut new = new;
    new.connections[1].dpd_timeout = Duration::from_secs(30);
    let report = p.a.reload(new, "test.toml", p.now).unwrap();
    assert_eq!(report.unchanged, vec!["keep"]);
    assert_eq!(report.replaced, vec!["change"]);
    assert_eq!(report.added, vec!["new"]);
    p.run_for(Duration::from_secs(5));
    let after = p.a.status(p.now, &Pair::facts());
    assert_eq!(after.reloads, 1);
    let by = |n: &str| {
        after
            .connections
            .iter()
            .find(|c| c.name == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by("keep").ike_spi_i, keep_spi, "untouched");
    assert_ne!(by("change").ike_spi_i, change_spi, "set up anew");
    for n in ["keep", "change", "new"] {
        assert_eq!(by(n).state, "established", "{n}");
    }
    // a process setting cannot change by reload
    let moved = config(
        "198.51.100.9",
        &[("keep", B, "10.1.0.0/24", "10.2.0.0/24", true)],
        "",
    );
    let e = p.a.reload(moved, "test.toml", p.now).unwrap_err();
    assert!(
        matches!(&e, ReloadError::NeedsRestart { what, .. } if what == "local_address"),
        "{e}"
    );
    assert_eq!(
        p.a.status(p.now, &Pair::facts()).connections.len(),
        3,
        "nothing changed"
    );
}

/// Behind NAT a keepalive goes out at once and then every 20 s, to where IKE talks; without
/// NAT none does.
#[test]
fn nat_keepalives_every_twenty_seconds_only_behind_nat() {
    for nat in [true, false] {
        let a = config(A, &[("to-b", B, "10.1.0.0/16", "10.2.0.0/16", true)], "");
        let b = config(
            B,
            &[("to-b", "%any", "10.2.0.0/16", "10.1.0.0/16", false)],
            "",
        );
        let mut p = Pair::new(a, b);
        p.nat = nat;
        let mut sent = vec![];
        let t0 = p.now;
        for _ in 0..650 {
            p.run_for(Duration::from_millis(100));
            while let Some((conn, peer)) = p.a.poll_keepalive() {
                assert_eq!((conn, peer), (0, SocketAddr::new(B.parse().unwrap(), 4500)));
                p.a.keepalive_sent(conn);
                sent.push(p.now - t0);
            }
        }
        if nat {
            assert_eq!(sent.len(), 4, "{sent:?}");
            // the upkeep looks once a second, so each lands within a second of its due time
            assert!(
                sent.windows(2)
                    .all(|w| (w[1] - w[0]).abs_diff(Duration::from_secs(20))
                        <= Duration::from_millis(1100)),
                "{sent:?}"
            );
            assert_eq!(
                p.a.status(p.now, &Pair::facts()).connections[0].keepalives_sent,
                4
            );
        } else {
            assert!(sent.is_empty(), "{sent:?}");
        }
    }
}

/// A 1,400-byte IPv4/UDP packet 10.1.1.4 → 10.2.1.4 (IP id `k`).
fn packet(k: u16) -> Vec<u8> {
    let mut pkt = vec![0u8; 1400];
    pkt[0] = 0x45;
    pkt[2..4].copy_from_slice(&1400u16.to_be_bytes());
    pkt[4..6].copy_from_slice(&k.to_be_bytes());
    pkt[8] = 64;
    pkt[9] = 17;
    pkt[12..16].copy_from_slice(&[10, 1, 1, 4]);
    pkt[16..20].copy_from_slice(&[10, 2, 1, 4]);
    pkt
}

/// A Child SA that carried its share of `child_lifetime_bytes` is rekeyed by the initiating
/// side: a new Child SA on both sides, the old one gone, traffic on the new one.
#[test]
fn byte_lifetime_rekeys_the_child_sa() {
    let a = config(
        A,
        &[("to-b", B, "10.1.0.0/16", "10.2.0.0/16", true)],
        "child_lifetime_bytes = 100000",
    );
    let b = config(B, &[("to-b", A, "10.2.0.0/16", "10.1.0.0/16", false)], "");
    let mut p = Pair::new(a, b);
    p.run_for(Duration::from_secs(2));
    let spi = |c: &GatewayCore, now| {
        c.status(now, &Pair::facts()).connections[0]
            .child_sas
            .iter()
            .find(|s| s.active)
            .map(|s| s.spi_in.clone())
    };
    let first = spi(&p.a, p.now).expect("a Child SA");
    // 60 packets of 1,400 bytes through A's data path into B's
    let mut wire = vec![0u8; 2048];
    for k in 0..60u16 {
        let (n, _) = p.a.datapath().seal(&packet(k), &mut wire).unwrap();
        p.b.datapath().open(&mut wire[..n]).unwrap();
    }
    assert_eq!(
        spi(&p.a, p.now).unwrap(),
        first,
        "84 kB of 100 kB: not yet (85-95 %)"
    );
    for k in 60..80u16 {
        let (n, _) = p.a.datapath().seal(&packet(k), &mut wire).unwrap();
        p.b.datapath().open(&mut wire[..n]).unwrap();
    }
    p.run_for(Duration::from_secs(3));
    let second = spi(&p.a, p.now).expect("a Child SA");
    assert_ne!(second, first, "rekeyed once the byte lifetime was reached");
    let a_st = p.a.status(p.now, &Pair::facts());
    assert_eq!(
        a_st.connections[0].child_sas.len(),
        1,
        "the old one is gone: {:?}",
        a_st.connections[0].child_sas
    );
    let b_st = p.b.status(p.now, &Pair::facts());
    assert_eq!(b_st.connections[0].child_sas.len(), 1);
    assert_eq!(
        b_st.connections[0].child_sas[0].spi_out, second,
        "both sides agree"
    );
}

/// A 100-byte IPv4/UDP packet `src` → `dst`.
fn packet_between(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut pkt = vec![0u8; 100];
    pkt[0] = 0x45;
    pkt[2..4].copy_from_slice(&100u16.to_be_bytes());
    pkt[8] = 64;
    pkt[9] = 17;
    pkt[12..16].copy_from_slice(&src);
    pkt[16..20].copy_from_slice(&dst);
    pkt
}

/// One connection from `local` to `remote` between A and B with several prefixes a side,
/// one Child SA per prefix pair when `pairs`.
fn pairs_config(
    local: &str,
    remote: &str,
    lp: &[&str],
    rp: &[&str],
    initiate: bool,
    pairs: bool,
) -> GatewayConfig {
    let list = |v: &[&str]| {
        v.iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let t = format!(
        "local_address = \"{local}\"\n[[connection]]\nname = \"pairs\"\nremote_address = \"{remote}\"\npsk = \"secret-pairs\"\nlocal_prefixes = [{}]\nremote_prefixes = [{}]\ninitiate = {initiate}\nselector_pairs = {pairs}\n",
        list(lp),
        list(rp)
    );
    GatewayConfig::parse(&t, Path::new("/")).unwrap()
}

/// `selector_pairs`: 2 x 2 prefixes make four Child SAs of one pair each on both gateways,
/// and each pair's traffic, both ways, travels in its own Child SA (the data path picks the
/// SA by source and destination; the receiving side checks the pair); every remote prefix
/// is routed into the tunnel and nothing is warned about.
#[test]
fn each_prefix_pair_carries_its_traffic_in_its_own_child_sa() {
    let a_nets = ["10.1.0.0/16", "10.11.0.0/16"];
    let b_nets = ["10.2.0.0/16", "10.12.0.0/16"];
    let mut p = Pair::new(
        pairs_config(A, B, &a_nets, &b_nets, true, true),
        pairs_config(B, A, &b_nets, &a_nets, false, true),
    );
    p.run_for(Duration::from_secs(3));
    let (sa, sb) = (
        p.a.status(p.now, &Pair::facts()),
        p.b.status(p.now, &Pair::facts()),
    );
    for st in [&sa, &sb] {
        let c = &st.connections[0];
        assert_eq!(c.state, "established");
        assert_eq!(c.selector_warning, None);
        assert_eq!(c.child_sas.len(), 4, "{:?}", c.child_sas);
        assert!(c
            .child_sas
            .iter()
            .all(|s| s.local_ts.len() == 1 && s.remote_ts.len() == 1 && s.active));
    }
    let routes = p.a.wanted_routes();
    assert_eq!(
        routes,
        b_nets
            .iter()
            .map(|n| gateway::tun::GwRoute::Tun(n.parse().unwrap()))
            .collect::<Vec<_>>()
    );
    // A's outbound SPI for each pair
    let spi_out = |st: &gateway::GatewayStatus, l: &str, r: &str| -> u32 {
        let s = st.connections[0]
            .child_sas
            .iter()
            .find(|s| s.local_ts == [l] && s.remote_ts == [r])
            .unwrap_or_else(|| panic!("no Child SA for {l} -> {r}"));
        u32::from_str_radix(&s.spi_out, 16).unwrap()
    };
    let hosts = |n: &str| -> [u8; 4] {
        let net: ipnet::Ipv4Net = n.parse().unwrap();
        let mut o = net.network().octets();
        o[2] = 1;
        o[3] = 4;
        o
    };
    let mut wire = vec![0u8; 2048];
    let mut used = std::collections::HashSet::new();
    for l in a_nets {
        for r in b_nets {
            // A -> B on the pair's SA, opened by B
            let (n, _) =
                p.a.datapath()
                    .seal(&packet_between(hosts(l), hosts(r)), &mut wire)
                    .unwrap();
            let spi = u32::from_be_bytes(wire[..4].try_into().unwrap());
            assert_eq!(spi, spi_out(&sa, l, r), "{l} -> {r}");
            assert!(used.insert(spi), "a Child SA of its own");
            let opened = p.b.datapath().open(&mut wire[..n]).unwrap();
            assert_eq!(&opened.inner[12..20], &[hosts(l), hosts(r)].concat()[..]);
            // and back, B -> A on the mirror SA
            let (n, _) =
                p.b.datapath()
                    .seal(&packet_between(hosts(r), hosts(l)), &mut wire)
                    .unwrap();
            let spi = u32::from_be_bytes(wire[..4].try_into().unwrap());
            assert_eq!(spi, spi_out(&sb, r, l), "{r} -> {l}");
            p.a.datapath().open(&mut wire[..n]).unwrap();
        }
    }
    let sb = p.b.status(p.now, &Pair::facts());
    let c = &sb.connections[0];
    assert_eq!(c.drops.total(), 0, "{:?}", c.drops);
    for s in &c.child_sas {
        assert!(
            s.inbound.packets >= 1,
            "every pair's SA carried traffic: {s:?}"
        );
        assert!(s.outbound.packets >= 1, "{s:?}");
    }
}

/// A pair the peer refuses leaves the others up; a remote prefix another pair's Child SA
/// covers whole stays in the tunnel, one no Child SA covers is refused with ICMP.
#[test]
fn a_refused_pair_keeps_the_routes_of_what_is_covered() {
    // B has 10.2.0.0/16 toward 10.1.0.0/16 only: (10.11, 10.2) and (*, 10.3) are refused
    let a = pairs_config(
        A,
        B,
        &["10.1.0.0/16", "10.11.0.0/16"],
        &["10.2.0.0/16", "10.3.0.0/16"],
        true,
        true,
    );
    let b = pairs_config(B, A, &["10.2.0.0/16"], &["10.1.0.0/16"], false, false);
    let mut p = Pair::new(a, b);
    p.run_for(Duration::from_secs(5));
    let st = p.a.status(p.now, &Pair::facts());
    let c = &st.connections[0];
    assert_eq!(c.state, "established");
    assert_eq!(c.child_sas.len(), 1, "{:?}", c.child_sas);
    let w = c.selector_warning.clone().expect("a warning");
    assert!(w.contains("local 10.11.0.0/16 remote 10.2.0.0/16"), "{w}");
    assert!(w.contains("local 10.1.0.0/16 remote 10.3.0.0/16"), "{w}");
    assert_eq!(
        p.a.wanted_routes(),
        vec![
            gateway::tun::GwRoute::Tun("10.2.0.0/16".parse().unwrap()),
            gateway::tun::GwRoute::Prohibit("10.3.0.0/16".parse().unwrap()),
        ]
    );
}
