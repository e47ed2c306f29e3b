//! In-memory network of BGP speakers for the scenario tests: each node has a [`Rib`] and one
//! [`Session`] per link; TCP is simulated (a connection request succeeds when the other end is
//! listening), octets move between sessions in virtual time, optionally split into single
//! octets or merged into one write, and a link can be cut in one direction.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgp::{DownReason, Event, PeerInfo, Rib, Session, SessionConfig, State, Update};
use ipnet::Ipv4Net;

/// How octets written by one session reach the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// One `handle_bytes` per message.
    Whole,
    /// One `handle_bytes` per octet.
    Bytewise,
    /// Everything pending in one `handle_bytes`.
    Merged,
}

/// One end of a link.
pub struct Link {
    /// The node at the other end.
    pub remote_node: usize,
    /// Index of the other end in that node's links.
    pub remote_link: usize,
    /// The other end's address.
    pub peer_addr: Ipv4Addr,
    /// The session with that peer.
    pub session: Session,
    /// Every event the session reported.
    pub events: Vec<Event>,
}

/// A speaker.
pub struct Node {
    /// Its address (also its BGP identifier).
    pub addr: Ipv4Addr,
    /// Its AS.
    pub asn: u32,
    /// Its RIBs.
    pub rib: Rib,
    /// Its sessions.
    pub links: Vec<Link>,
}

/// The network.
pub struct Net {
    /// Virtual time.
    pub now: Instant,
    /// The speakers.
    pub nodes: Vec<Node>,
    /// (from node, to node) pairs whose octets are dropped.
    pub cut: BTreeSet<(usize, usize)>,
    /// How octets are delivered.
    pub delivery: Delivery,
}

/// Address of node `i`.
pub fn addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, i as u8 + 1)
}

/// A prefix from a string.
pub fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

impl Net {
    /// Speakers in the given ASes, not yet linked.
    pub fn new(asns: &[u32]) -> Net {
        let nodes = asns
            .iter()
            .enumerate()
            .map(|(i, &asn)| Node {
                addr: addr(i),
                asn,
                rib: Rib::new(asn),
                links: vec![],
            })
            .collect();
        Net {
            now: Instant::now(),
            nodes,
            cut: BTreeSet::new(),
            delivery: Delivery::Whole,
        }
    }

    /// Links `a` (which connects) and `b` (which listens) with hold time 9 s and connect
    /// retry 5 s; `tune` may change either configuration. Returns nothing: links are found by
    /// node pair with [`Net::link`].
    pub fn connect(
        &mut self,
        a: usize,
        b: usize,
        tune: impl Fn(&mut SessionConfig, &mut SessionConfig),
    ) {
        let mut ca = SessionConfig::new(self.nodes[a].asn, self.nodes[b].asn, addr(a));
        let mut cb = SessionConfig::new(self.nodes[b].asn, self.nodes[a].asn, addr(b));
        for c in [&mut ca, &mut cb] {
            c.hold_time = 9;
            c.connect_retry = Duration::from_secs(5);
        }
        cb.passive = true;
        tune(&mut ca, &mut cb);
        let (la, lb) = (self.nodes[a].links.len(), self.nodes[b].links.len());
        self.nodes[a].links.push(Link {
            remote_node: b,
            remote_link: lb,
            peer_addr: addr(b),
            session: Session::new(ca),
            events: vec![],
        });
        self.nodes[b].links.push(Link {
            remote_node: a,
            remote_link: la,
            peer_addr: addr(a),
            session: Session::new(cb),
            events: vec![],
        });
    }

    /// Starts every session and runs until quiet.
    pub fn start_all(&mut self) {
        let now = self.now;
        for node in &mut self.nodes {
            for link in &mut node.links {
                link.session.start(now);
            }
        }
        self.drive();
    }

    /// `node`'s end of its link to `peer`.
    pub fn link(&self, node: usize, peer: usize) -> &Link {
        self.nodes[node]
            .links
            .iter()
            .find(|l| l.remote_node == peer)
            .expect("linked")
    }

    /// Mutable [`Net::link`].
    pub fn link_mut(&mut self, node: usize, peer: usize) -> &mut Link {
        self.nodes[node]
            .links
            .iter_mut()
            .find(|l| l.remote_node == peer)
            .expect("linked")
    }

    /// State of `node`'s session with `peer`.
    pub fn state(&self, node: usize, peer: usize) -> State {
        self.link(node, peer).session.state()
    }

    /// Reasons of every Down `node`'s session with `peer` reported.
    pub fn downs(&self, node: usize, peer: usize) -> Vec<DownReason> {
        self.link(node, peer)
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Down { reason } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    /// `node` originates `prefix`, and the network runs until quiet.
    pub fn originate(&mut self, node: usize, prefix: &str) {
        let updates = self.nodes[node].rib.originate(net(prefix));
        self.dispatch(node, updates);
        self.drive();
    }

    /// AS path of `node`'s best route to `prefix`, if any.
    pub fn path(&self, node: usize, prefix: &str) -> Option<Vec<u32>> {
        let route = self.nodes[node].rib.best(&net(prefix))?;
        let path = route.attributes.as_path.clone().unwrap_or_default();
        Some(
            path.segments
                .iter()
                .flat_map(|s| match s {
                    bgp::AsSegment::Sequence(a) | bgp::AsSegment::Set(a) => a.clone(),
                })
                .collect(),
        )
    }

    /// Moves octets and handles events until nothing changes.
    pub fn drive(&mut self) {
        for _ in 0..10_000 {
            if !self.step() {
                return;
            }
        }
        panic!("network does not settle");
    }

    /// Advances virtual time by `d`, running every timer on the way.
    pub fn advance(&mut self, d: Duration) {
        // Events pending now are handled now, as a runtime does.
        self.drive();
        let end = self.now + d;
        loop {
            let next = self
                .nodes
                .iter()
                .flat_map(|n| n.links.iter().filter_map(|l| l.session.poll_timeout()))
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for node in &mut self.nodes {
                        for link in &mut node.links {
                            if link.session.poll_timeout().is_some_and(|t| t <= now) {
                                link.session.handle_timeout(now);
                            }
                        }
                    }
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = end;
        self.drive();
    }

    /// One round: deliver every pending transmit, then handle every pending event.
    fn step(&mut self) -> bool {
        let mut busy = false;
        for n in 0..self.nodes.len() {
            for l in 0..self.nodes[n].links.len() {
                busy |= self.flush(n, l);
            }
        }
        for n in 0..self.nodes.len() {
            for l in 0..self.nodes[n].links.len() {
                while let Some(event) = self.nodes[n].links[l].session.poll_event() {
                    busy = true;
                    self.nodes[n].links[l].events.push(event.clone());
                    self.handle_event(n, l, event);
                }
            }
        }
        busy
    }

    /// Delivers what link `l` of node `n` has written; whether there was anything.
    fn flush(&mut self, n: usize, l: usize) -> bool {
        let mut out = vec![];
        while let Some(bytes) = self.nodes[n].links[l].session.poll_transmit() {
            out.push(bytes);
        }
        if out.is_empty() {
            return false;
        }
        let (rn, rl) = {
            let link = &self.nodes[n].links[l];
            (link.remote_node, link.remote_link)
        };
        if self.cut.contains(&(n, rn)) {
            return true;
        }
        let now = self.now;
        let remote = &mut self.nodes[rn].links[rl].session;
        match self.delivery {
            Delivery::Whole => out.iter().for_each(|b| remote.handle_bytes(b, now)),
            Delivery::Bytewise => out
                .concat()
                .iter()
                .for_each(|b| remote.handle_bytes(std::slice::from_ref(b), now)),
            Delivery::Merged => remote.handle_bytes(&out.concat(), now),
        }
        true
    }

    /// What a gateway runtime does with one event.
    fn handle_event(&mut self, n: usize, l: usize, event: Event) {
        let now = self.now;
        let (rn, rl, peer) = {
            let link = &self.nodes[n].links[l];
            (link.remote_node, link.remote_link, link.peer_addr)
        };
        let updates = match event {
            Event::Connect => {
                let listening = matches!(
                    self.nodes[rn].links[rl].session.state(),
                    State::Active | State::Connect
                );
                if listening && !self.cut.contains(&(n, rn)) && !self.cut.contains(&(rn, n)) {
                    self.nodes[n].links[l].session.tcp_connected(now);
                    self.nodes[rn].links[rl].session.tcp_connected(now);
                } else {
                    self.nodes[n].links[l].session.tcp_failed(now);
                }
                vec![]
            }
            Event::Disconnect => {
                // The connection closes after what was written (a NOTIFICATION) is read.
                self.flush(n, l);
                self.nodes[rn].links[rl].session.tcp_failed(now);
                vec![]
            }
            Event::Established {
                peer_as, peer_id, ..
            } => {
                let info = PeerInfo {
                    address: peer,
                    asn: peer_as,
                    bgp_id: peer_id,
                    local_address: self.nodes[n].addr,
                };
                self.nodes[n].rib.peer_up(info)
            }
            Event::RoutesReceived {
                prefixes,
                attributes,
            } => self.nodes[n].rib.receive(peer, &prefixes, &attributes),
            Event::RoutesWithdrawn { prefixes } => self.nodes[n].rib.withdraw(peer, &prefixes),
            Event::RouteRefreshRequested => self.nodes[n].rib.refresh(peer),
            Event::Down { .. } => self.nodes[n].rib.peer_down(peer),
        };
        self.dispatch(n, updates);
    }

    /// Hands UPDATEs from `n`'s RIB to its sessions.
    pub fn dispatch(&mut self, n: usize, updates: Vec<(Ipv4Addr, Update)>) {
        let now = self.now;
        for (peer, update) in updates {
            let link = self.nodes[n]
                .links
                .iter_mut()
                .find(|l| l.peer_addr == peer)
                .expect("UPDATE for a linked peer");
            link.session.send_update(&update, now).unwrap();
        }
    }
}
