//! The connection table: which configured connection an IKE SA belongs to, how a connection goes down and comes back (back-off), and the bookkeeping when IKE SAs come and go.

use super::*;

impl Endpoint {
    pub(super) fn cfg(&self, id: ConnectionId) -> Option<&ConnectionConfig> {
        self.conns.get(id.index())?.as_ref().map(|c| &c.cfg)
    }

    pub(super) fn dpd_delay(&self, sa: &IkeSa) -> Option<Duration> {
        let t = self.cfg(sa.conn)?.dpd_timeout;
        if t.is_zero() {
            None
        } else {
            Some((t / 3).max(Duration::from_secs(1)))
        }
    }

    pub(super) fn put_back(&mut self, sa: IkeSa) {
        if sa.dead {
            self.forget(&sa);
        } else {
            self.sas.insert(sa.our_spi(), sa);
        }
    }

    pub(super) fn forget(&mut self, sa: &IkeSa) {
        if !sa.initiator {
            self.half_open.remove_spi(sa.spi_r);
        }
        if let Some(Some(c)) = self.conns.get_mut(sa.conn.index()) {
            if c.ike_sa == Some(sa.our_spi()) {
                c.ike_sa = None;
            }
        }
    }

    pub(super) fn drop_children(&mut self, sa: &mut IkeSa) {
        for c in sa.children.drain(..) {
            self.events.push_back(Event::ChildSaDeleted {
                conn: sa.conn,
                spi_in: c.spi_in,
                spi_out: c.spi_out,
            });
        }
    }

    pub(super) fn conn_down(
        &mut self,
        id: ConnectionId,
        mut reason: DownReason,
        now: Option<Instant>,
    ) {
        let jitter = self.rng.below(41);
        if let Some(Some(c)) = self.conns.get_mut(id.index()) {
            // The peer deleted the SA right after one of its attempts failed: it was
            // reconfigured, and the failure says why better than the DELETE does.
            if let (DownReason::DeletedByPeer, Some(n), Some((t, why))) =
                (&reason, now, &c.last_attempt)
            {
                if n.saturating_duration_since(*t) <= ATTEMPT_EXPLAINS_DELETE {
                    reason = why.clone();
                }
            }
            c.state = ConnState::Down;
            c.last_error = Some(reason.to_string());
            c.established_at = None;
            c.failures = c.failures.saturating_add(1);
            let rec = c.cfg.recovery;
            let action = match reason {
                DownReason::DeletedByPeer => rec.close_action,
                DownReason::DpdTimeout => rec.dpd_action,
                _ => DownAction::Restart,
            };
            let tries_left = rec.keyingtries == 0 || c.failures < rec.keyingtries;
            if let (true, DownAction::Restart, true, Some(n)) =
                (c.cfg.initiate, action, tries_left, now)
            {
                let at = n + retry_delay(c.failures, rec.retry_max, jitter);
                c.retry_at = Some(at);
                c.state = ConnState::Connecting;
                self.retry_due.push(std::cmp::Reverse((at, id.index())));
            } else {
                c.retry_at = None;
            }
        }
        self.events
            .push_back(Event::ConnectionDown { conn: id, reason });
    }

    /// Ends an SA with a reported reason.
    pub(super) fn fail(&mut self, sa: &mut IkeSa, reason: DownReason, now: Instant) {
        sa.dead = true;
        self.drop_children(sa);
        let conn = self.conns.get(sa.conn.index()).and_then(|c| c.as_ref());
        let current = conn.is_some_and(|c| c.ike_sa.is_none() || c.ike_sa == Some(sa.our_spi()));
        if !sa.quiet && sa.rekeyed_at.is_none() && current {
            self.conn_down(sa.conn, reason, Some(now));
        }
    }

    /// A negotiation failed before anything was authenticated. Anyone who can send from the
    /// peer's address can cause this, so an established connection keeps its state, SAs,
    /// NAT flags, peer and last error: the failure is only counted and remembered (and
    /// becomes the diagnosis of a connection that is not up anyway).
    pub(super) fn attempt_failed(&mut self, id: ConnectionId, reason: DownReason, now: Instant) {
        if let Some(Some(c)) = self.conns.get_mut(id.index()) {
            c.failed_attempts += 1;
            if c.state != ConnState::Established {
                c.last_error = Some(reason.to_string());
            }
            c.last_attempt = Some((now, reason.clone()));
        }
        self.events
            .push_back(Event::AttemptFailed { conn: id, reason });
    }

    pub(super) fn count_drop(&mut self, conn: ConnectionId) {
        if let Some(Some(c)) = self.conns.get_mut(conn.index()) {
            c.dropped += 1;
        }
    }

    /// Picks the responder connection for a peer that sent identity `id`: one naming the
    /// peer's address first, then one accepting any peer address, each in configuration order.
    pub(super) fn match_responder(
        &self,
        local: IpAddr,
        remote: IpAddr,
        id: &Identity,
    ) -> Option<ConnectionId> {
        let mut wildcard = None;
        for i in self.peer_index.by_identity(id) {
            let Some(Some(c)) = self.conns.get(i as usize) else {
                continue;
            };
            let cfg = &c.cfg;
            let fits = (cfg.local_addr.is_unspecified() || cfg.local_addr == local)
                && cfg.remote_id.as_ref().is_none_or(|want| want == id);
            if !fits {
                continue;
            }
            if cfg.remote_addr == remote {
                return Some(ConnectionId(i));
            }
            if cfg.remote_addr.is_unspecified() && wildcard.is_none() {
                wildcard = Some(ConnectionId(i));
            }
        }
        wildcard
    }

    /// Every connection that may answer this peer before it said who it is, best first: those
    /// naming its address, in configuration order, then those accepting any peer.
    pub(super) fn responder_candidates(
        &self,
        local: IpAddr,
        remote: IpAddr,
    ) -> impl Iterator<Item = ConnectionId> + '_ {
        self.peer_index.by_address(remote).filter_map(move |i| {
            let c = self.conns.get(i as usize)?.as_ref()?;
            (c.cfg.local_addr.is_unspecified() || c.cfg.local_addr == local)
                .then_some(ConnectionId(i))
        })
    }

    pub(super) fn ike_established(&mut self, sa: &mut IkeSa, now: Instant, algorithms: String) {
        sa.ike_rekey_at = self.rekey_deadline(sa.conn, now, false);
        sa.established_at = Some(now);
        if let Some(Some(c)) = self.conns.get_mut(sa.conn.index()) {
            c.state = ConnState::Established;
            c.ike_sa = Some(sa.our_spi());
            c.nat = sa.nat;
            c.established_at = Some(now);
            c.ike_algorithms = Some(algorithms.clone());
            c.last_error = None;
            c.retry_at = None;
            c.failures = 0;
            c.selector_warning = None;
        }
        self.events.push_back(Event::IkeSaEstablished {
            conn: sa.conn,
            algorithms,
        });
    }

    /// The peer brought connection `conn` up with an IKE SA it started: our own attempt
    /// still in IKE_SA_INIT is abandoned, so that the two gateways do not end up with two IKE
    /// SAs, each with Child SAs of its own, for one connection (both sides initiate, as
    /// Azure's gateways and strongSwan's `start_action = start` do). An attempt already in
    /// IKE_AUTH is kept: the peer may be establishing it at this moment.
    pub(super) fn abandon_own_attempts(&mut self, conn: ConnectionId) {
        let doomed: Vec<u64> = self
            .sas
            .of_conn(conn)
            .filter(|(_, s)| s.initiator && matches!(s.phase, Phase::InitiatorInit(_)))
            .map(|(k, _)| k)
            .collect();
        for k in doomed {
            if let Some(s) = self.sas.remove(&k) {
                self.forget(&s);
            }
        }
    }

    /// Whether the peer already brought connection `conn` up with an IKE SA it started (see
    /// [`Self::abandon_own_attempts`]).
    pub(super) fn peer_brought_up(&self, conn: ConnectionId) -> bool {
        self.sas.of_conn(conn).any(|(_, s)| {
            !s.initiator && s.phase.is_established() && s.rekeyed_at.is_none() && !s.dead
        })
    }

    /// INITIAL_CONTACT: the peer has no other SAs with us, so the ones that were up before
    /// this SA's IKE_SA_INIT arrived (`since`) are stale. SAs that came up while this one was
    /// negotiated are not: they are the peer's own simultaneous attempts (strongSwan restarting
    /// a connection sends INITIAL_CONTACT on each), which it still holds and uses.
    pub(super) fn drop_stale_sas(
        &mut self,
        conn: ConnectionId,
        peer: IpAddr,
        keep: u64,
        since: Instant,
    ) {
        let stale: Vec<u64> = self
            .sas
            .of_conn(conn)
            .filter(|(k, s)| {
                // Only established SAs are stale: half-open ones may belong to other
                // connections to the same peer that are being set up at this moment.
                *k != keep
                    && s.remote.ip() == peer
                    && s.phase.is_established()
                    && s.established_at.unwrap_or(s.created) < since
            })
            .map(|(k, _)| k)
            .collect();
        for k in stale {
            if let Some(mut s) = self.sas.remove(&k) {
                self.drop_children(&mut s);
                self.forget(&s);
            }
        }
    }
}

/// The wait before attempt `failures + 1`: [`RETRY_BASE`] doubled per earlier failure, at
/// most `max`, with `jitter` (0..=40) giving ±20 %.
pub(super) fn retry_delay(failures: u32, max: Duration, jitter: u32) -> Duration {
    let base = RETRY_BASE
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(max.max(RETRY_BASE));
    base * (80 + jitter.min(40)) / 100
}
