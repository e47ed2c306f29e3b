//! Two endpoints on an in-memory network with a virtual clock: datagrams are moved by hand,
//! lost on purpose (by index), delayed (a fixed latency per direction) and reordered (held back
//! by index, or at random), and the wire is recorded for inspection and for attackers to
//! replay. Every random choice — the endpoints' SPIs, nonces, keys and timer jitter, and the
//! network's reordering — comes from one seed, so a failing scenario replays the same way.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ike::rng::SeededRandom;
use ike::ConnectionId;
use ike::{ConnectionConfig, Endpoint, Event};

use super::conn::{A, B};

/// The public address A's NAT gives it when [`Net::nat`] is set (ports + 40000).
pub const NAT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

/// The seed of [`Net::new`] unless `IKE_PAIR_SEED` names another.
pub const DEFAULT_SEED: u64 = 7296;

/// A (initiator side unless swapped) and B plus a virtual clock and in-flight datagrams.
pub struct Net {
    pub a: Endpoint,
    pub b: Endpoint,
    pub now: Instant,
    pub ev_a: Vec<Event>,
    pub ev_b: Vec<Event>,
    /// Handles of the connections added to A, in the order they were added.
    pub conns_a: Vec<ConnectionId>,
    /// Handles of the connections added to B, in the order they were added.
    pub conns_b: Vec<ConnectionId>,
    /// Drop the n-th datagram sent (0-based, counted across both directions).
    pub drop: Vec<usize>,
    /// Hold the n-th datagram sent back by this much on top of the latency (so datagrams sent
    /// after it may arrive first).
    pub hold: Vec<(usize, Duration)>,
    /// Datagrams sent so far (both directions, dropped ones included).
    pub sent: usize,
    /// Bytes on the wire, for inspection: (sent by A, source port, payload).
    pub wire: Vec<(bool, u16, Vec<u8>)>,
    /// When each datagram of `wire` was sent (virtual time).
    pub wire_at: Vec<Instant>,
    /// A sits behind a NAT: B sees NAT_IP and port + 40000.
    pub nat: bool,
    /// When each datagram of `wire` arrived, in order of arrival: (index in `wire`, time).
    pub arrived: Vec<(usize, Instant)>,
    /// Where every random choice comes from.
    pub seed: u64,
    /// One-way delay (A to B, B to A).
    latency: (Duration, Duration),
    /// Each datagram is held back, with this probability, by up to this much more.
    reorder: Option<(f64, Duration)>,
    in_flight: Vec<InFlight>,
    /// Datagrams that arrived after one sent later in the same direction.
    reordered: usize,
    /// The `wire` index of the last datagram delivered in each direction (to B, to A).
    last_delivered: (Option<usize>, Option<usize>),
    dice: Dice,
    endpoints: u64,
}

/// A datagram on its way.
struct InFlight {
    at: Instant,
    /// Its index in `wire` (ties in `at` go in sending order).
    idx: usize,
    to_b: bool,
    /// The receiver's own address and port.
    local: SocketAddr,
    /// The sender as the receiver sees it.
    from: SocketAddr,
    payload: Vec<u8>,
}

impl Default for Net {
    fn default() -> Self {
        Net::new()
    }
}

impl Net {
    /// A pair with no latency, no loss and no reordering, seeded with `IKE_PAIR_SEED` (to
    /// explore) or [`DEFAULT_SEED`].
    pub fn new() -> Self {
        let seed = std::env::var("IKE_PAIR_SEED")
            .ok()
            .map(|s| s.parse().expect("IKE_PAIR_SEED is a number"))
            .unwrap_or(DEFAULT_SEED);
        Net::seeded(seed)
    }

    /// A pair whose every random choice comes from `seed`.
    pub fn seeded(seed: u64) -> Self {
        Net {
            a: Endpoint::with_random(random(seed, "A")),
            b: Endpoint::with_random(random(seed, "B")),
            now: Instant::now(),
            ev_a: vec![],
            ev_b: vec![],
            conns_a: vec![],
            conns_b: vec![],
            drop: vec![],
            hold: vec![],
            sent: 0,
            wire: vec![],
            wire_at: vec![],
            nat: false,
            arrived: vec![],
            seed,
            latency: (Duration::ZERO, Duration::ZERO),
            reorder: None,
            in_flight: vec![],
            reordered: 0,
            last_delivered: (None, None),
            dice: Dice(seed),
            endpoints: 0,
        }
    }

    /// Every datagram takes `one_way` to arrive, in both directions.
    pub fn latency(self, one_way: Duration) -> Self {
        self.latency_each(one_way, one_way)
    }

    /// Datagrams from A take `a_to_b` to arrive, those from B `b_to_a`.
    pub fn latency_each(mut self, a_to_b: Duration, b_to_a: Duration) -> Self {
        self.latency = (a_to_b, b_to_a);
        self
    }

    /// Each datagram is held back, with `probability`, by a random extra delay below `up_to`:
    /// it may arrive after datagrams sent after it.
    pub fn reorder(mut self, probability: f64, up_to: Duration) -> Self {
        self.reorder = Some((probability, up_to));
        self
    }

    /// Adds a connection to A (at the current time).
    pub fn add_a(&mut self, c: impl Into<ConnectionConfig>) {
        let now = self.now;
        let id = self.a.add_connection(c.into(), now);
        self.conns_a.push(id);
    }

    /// Adds a connection to B (at the current time).
    pub fn add_b(&mut self, c: impl Into<ConnectionConfig>) {
        let now = self.now;
        let id = self.b.add_connection(c.into(), now);
        self.conns_b.push(id);
    }

    /// Another endpoint (a spoofer, an attacker) with randomness of its own from the seed.
    pub fn endpoint(&mut self) -> Endpoint {
        self.endpoints += 1;
        Endpoint::with_random(random(self.seed, &format!("extra {}", self.endpoints)))
    }

    /// Datagrams sent and not yet delivered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Datagrams that arrived after one sent later in the same direction.
    pub fn reordered(&self) -> usize {
        self.reordered
    }

    /// Sends what both sides have to send and delivers whatever is due now, until both sides
    /// are idle; returns the number delivered. With latency, datagrams stay in flight until
    /// the clock reaches them ([`Net::run_for`]).
    pub fn pump(&mut self) -> usize {
        let mut delivered = 0;
        loop {
            let mut moved = false;
            for from_a in [true, false] {
                for d in self.transmit(from_a) {
                    moved = true;
                    if d.at <= self.now {
                        self.deliver(d);
                        delivered += 1;
                    } else {
                        self.in_flight.push(d);
                    }
                }
            }
            while let Some(d) = self.take_due() {
                moved = true;
                self.deliver(d);
                delivered += 1;
            }
            self.collect();
            if !moved {
                return delivered;
            }
        }
    }

    /// What `from_a`'s side sends now, recorded on the wire, with the datagrams to drop
    /// left out and each one's arrival time set.
    fn transmit(&mut self, from_a: bool) -> Vec<InFlight> {
        let (src_ip, dst_ip) = if from_a { (A, B) } else { (B, A) };
        let mut out = vec![];
        loop {
            let src = if from_a { &mut self.a } else { &mut self.b };
            let Some(mut t) = src.poll_transmit() else {
                break;
            };
            if self.nat && !from_a {
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
            let idx = self.sent;
            self.sent += 1;
            self.wire.push((from_a, t.local_port, t.payload.clone()));
            self.wire_at.push(self.now);
            if self.drop.contains(&idx) {
                continue;
            }
            let (local, from) = if self.nat && from_a {
                (
                    SocketAddr::new(B, t.remote.port()),
                    SocketAddr::new(NAT_IP, t.local_port + 40000),
                )
            } else {
                (t.remote, SocketAddr::new(src_ip, t.local_port))
            };
            let held = self.hold.iter().find(|(i, _)| *i == idx).map(|(_, d)| *d);
            let at = self.now + self.delay(from_a) + held.unwrap_or_default();
            out.push(InFlight {
                at,
                idx,
                to_b: from_a,
                local,
                from,
                payload: t.payload,
            });
        }
        out
    }

    /// This datagram's way: the direction's latency, plus a hold-back when it is reordered.
    fn delay(&mut self, from_a: bool) -> Duration {
        let base = if from_a {
            self.latency.0
        } else {
            self.latency.1
        };
        match self.reorder {
            Some((p, up_to)) if self.dice.chance(p) => base + self.dice.below(up_to),
            _ => base,
        }
    }

    /// The earliest datagram due by now (first sent first among equals).
    fn take_due(&mut self) -> Option<InFlight> {
        let now = self.now;
        let i = (0..self.in_flight.len())
            .filter(|&i| self.in_flight[i].at <= now)
            .min_by_key(|&i| (self.in_flight[i].at, self.in_flight[i].idx))?;
        Some(self.in_flight.swap_remove(i))
    }

    fn deliver(&mut self, d: InFlight) {
        let last = if d.to_b {
            &mut self.last_delivered.0
        } else {
            &mut self.last_delivered.1
        };
        if last.is_some_and(|l| l > d.idx) {
            self.reordered += 1;
        }
        *last = Some(last.map_or(d.idx, |l| l.max(d.idx)));
        self.arrived.push((d.idx, self.now));
        let dst = if d.to_b { &mut self.b } else { &mut self.a };
        let _ = dst.handle_datagram(self.now, d.local, d.from, &d.payload);
    }

    pub fn collect(&mut self) {
        while let Some(e) = self.a.poll_event() {
            self.ev_a.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.ev_b.push(e);
        }
    }

    /// When something happens next: a timer of either side or a datagram arriving.
    fn next_event(&self) -> Option<Instant> {
        [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .chain(self.in_flight.iter().map(|d| d.at))
            .min()
    }

    /// Advances the clock to the next timer of either side or datagram arrival, fires the
    /// timers and delivers what arrives.
    pub fn tick(&mut self) -> bool {
        let Some(t) = self.next_event() else {
            return false;
        };
        if t > self.now {
            self.now = t;
        }
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        while let Some(d) = self.take_due() {
            self.deliver(d);
        }
        self.collect();
        true
    }

    /// Lets `d` of virtual time pass: timers fire and datagrams arrive in order of time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.pump();
        while let Some(t) = self.next_event() {
            if t > end {
                break;
            }
            self.tick();
            self.pump();
        }
        self.now = end;
    }
}

impl Net {
    /// The wire as a table: when each datagram was sent, which way, what it is (exchange,
    /// request or response, message ID, initiator SPI) and when it arrived (or that it was
    /// dropped or is still in flight). Printed when a test fails and `IKE_PAIR_TRACE` is set.
    pub fn trace(&self) -> String {
        let t0 = self.wire_at.first().copied().unwrap_or(self.now);
        let ms = |t: Instant| t.saturating_duration_since(t0).as_secs_f64() * 1000.0;
        let mut out = String::new();
        for (i, ((from_a, port, bytes), at)) in self.wire.iter().zip(&self.wire_at).enumerate() {
            let ike = if *port == 4500 && bytes.starts_with(&[0, 0, 0, 0]) {
                &bytes[4..]
            } else {
                &bytes[..]
            };
            let what = match ike::codec::Header::decode(ike) {
                Ok(h) => format!(
                    "{:?} {} #{} spi_i {:016x}",
                    h.exchange,
                    if h.flags & ike::codec::flags::RESPONSE != 0 {
                        "response"
                    } else {
                        "request"
                    },
                    h.message_id,
                    h.spi_i
                ),
                Err(_) => format!("{} octets, not IKE", bytes.len()),
            };
            let fate = match self.arrived.iter().find(|(idx, _)| *idx == i) {
                Some((_, t)) => format!("arrived {:9.3} ms", ms(*t)),
                None if self.drop.contains(&i) => "dropped".into(),
                None => "in flight".into(),
            };
            out.push_str(&format!(
                "{i:4} {:9.3} ms {} {what}: {fate}\n",
                ms(*at),
                if *from_a { "A->B" } else { "B->A" },
            ));
        }
        out
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "pair harness seed {} (Net::seeded({0}), or IKE_PAIR_SEED={0} for Net::new)",
                self.seed
            );
            if std::env::var_os("IKE_PAIR_TRACE").is_some() {
                eprintln!("{}", self.trace());
            }
        }
    }
}

/// The randomness of endpoint `who` of a pair seeded with `seed`.
fn random(seed: u64, who: &str) -> Box<SeededRandom> {
    Box::new(SeededRandom::new(
        format!("ike pair {seed} {who}").as_bytes(),
    ))
}

/// The network's own dice (SplitMix64): cheap and fixed by the seed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A duration in `[0, up_to)`.
    fn below(&mut self, up_to: Duration) -> Duration {
        let n = u64::try_from(up_to.as_nanos()).unwrap_or(u64::MAX).max(1);
        Duration::from_nanos(self.next() % n)
    }
}
