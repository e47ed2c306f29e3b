//! Child SAs: installing them, rekeying (ours and the peer's, simultaneous ones per RFC 7296 §2.8.1), and additional Child SAs when the peer narrowed the traffic selectors.

use super::*;

impl Endpoint {
    #[allow(clippy::too_many_arguments)]
    /// Derives KEYMAT = prf+(SK_d, [g^ir] | Ni | Nr) and reports the Child SA. `ni`/`nr` and
    /// `we_initiated` refer to the exchange that created it (IKE_AUTH or CREATE_CHILD_SA).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn install_child(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        suite: ChildSuite,
        spi_in: u32,
        spi_out: u32,
        local_ts: Vec<TrafficSelector>,
        remote_ts: Vec<TrafficSelector>,
        shared: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
        we_initiated: bool,
        outbound_now: bool,
    ) {
        let keys = sa
            .phase
            .keys()
            .expect("a Child SA comes from a keyed IKE SA");
        let [ei, ai, er, ar] = crypto::child_keymat(
            keys.suite.prf,
            keys.sk_d(),
            shared,
            ni,
            nr,
            suite.encryption,
            suite.integrity,
        );
        let (enc_out, integ_out, enc_in, integ_in) = if we_initiated {
            (ei, ai, er, ar)
        } else {
            (er, ar, ei, ai)
        };
        let child = ChildSaKeys {
            spi_in,
            spi_out,
            encryption: suite.encryption,
            integrity: suite.integrity,
            enc_key_in: enc_in.to_vec(),
            enc_key_out: enc_out.to_vec(),
            integ_key_in: integ_in.to_vec(),
            integ_key_out: integ_out.to_vec(),
            local_ts,
            remote_ts,
            peer: sa.remote,
            dh_group: suite.dh,
            outbound_now,
        };
        let rekey_at = self.rekey_deadline(sa.conn, now, true);
        // exact: a tunnel holds one Child SA (two while rekeying), and a first push would
        // make room for four (240 bytes a tunnel for nothing)
        sa.children.reserve_exact(1);
        sa.children.push(ChildSa {
            spi_in,
            spi_out,
            local_ts: child.local_ts.clone(),
            remote_ts: child.remote_ts.clone(),
            rekey_at,
            replaced: false,
        });
        if let Some(Some(c)) = self.conns.get_mut(sa.conn.index()) {
            c.esp_algorithms = Some(suite.name());
        }
        self.events.push_back(Event::ChildSaInstalled {
            conn: sa.conn,
            child,
        });
    }

    /// After the Child SAs changed: whether part of the configured selectors has no Child SA
    /// (the peer narrowed them). Sets the connection's warning and, for a connection that
    /// initiates, asks for an additional Child SA for what is left (once per remainder the
    /// peer refused, at most [`MAX_EXTRA_CHILDREN`] per IKE SA). With one Child SA per
    /// selector pair, see [`Self::check_pair_coverage`].
    pub(super) fn check_coverage(&mut self, sa: &mut IkeSa) {
        let Some(cfg) = self.cfg(sa.conn).cloned() else {
            return;
        };
        sa.wanted_extra = None;
        if cfg.selector_pairs {
            self.check_pair_coverage(sa, &cfg);
            return;
        }
        let live = sa.children.iter().filter(|c| !c.replaced);
        let distinct = |v: Vec<TrafficSelector>| -> Vec<TrafficSelector> {
            let mut out: Vec<TrafficSelector> = Vec::with_capacity(v.len());
            for t in v {
                if !out.contains(&t) {
                    out.push(t);
                }
            }
            out
        };
        let cov_l = distinct(live.clone().flat_map(|c| c.local_ts.clone()).collect());
        let cov_r = distinct(live.flat_map(|c| c.remote_ts.clone()).collect());
        let rem_l = TrafficSelector::uncovered(&cfg.local_ts, &cov_l);
        let rem_r = TrafficSelector::uncovered(&cfg.remote_ts, &cov_r);
        let warning = (!rem_l.is_empty() || !rem_r.is_empty()).then(|| {
            let left: Vec<String> = [("local", &rem_l), ("remote", &rem_r)]
                .into_iter()
                .filter(|(_, r)| !r.is_empty())
                .map(|(side, r)| format!("{side} {}", ts_text(r)))
                .collect();
            format!(
                "the peer narrowed the traffic selectors: ours local {} remote {}; its Child SAs cover local {} remote {}; not tunneled: {}{}",
                ts_text(&cfg.local_ts),
                ts_text(&cfg.remote_ts),
                ts_text(&cov_l),
                ts_text(&cov_r),
                left.join(", "),
                sa.extra_refusal
                    .as_ref()
                    .map(|r| format!(" (an additional Child SA for it was refused: {r})"))
                    .unwrap_or_default()
            )
        });
        if let Some(Some(c)) = self.conns.get_mut(sa.conn.index()) {
            c.selector_warning = warning;
        }
        if !cfg.initiate || sa.extra_asked >= MAX_EXTRA_CHILDREN {
            return;
        }
        let want = if !rem_r.is_empty() {
            (cfg.local_ts.clone(), rem_r)
        } else if !rem_l.is_empty() {
            (rem_l, cfg.remote_ts.clone())
        } else {
            return;
        };
        if !sa.refused_extra.contains(&want) {
            sa.wanted_extra = Some(want);
        }
    }

    /// The coverage check of a connection with one Child SA per selector pair: a pair is
    /// covered when one Child SA holds all of it. For a connection that initiates, the next
    /// pair no Child SA touches (the peer neither narrowed nor refused it) is asked for, one
    /// at a time, each at most once per IKE SA unless its Child SA is deleted (at most one
    /// per pair plus [`MAX_EXTRA_CHILDREN`] per IKE SA). The warning names the pairs left
    /// without a Child SA that nobody is going to ask for: refused, narrowed, or — when we do
    /// not initiate — not (yet) set up by the peer.
    fn check_pair_coverage(&mut self, sa: &mut IkeSa, cfg: &ConnectionConfig) {
        let live: Vec<&ChildSa> = sa.children.iter().filter(|c| !c.replaced).collect();
        let pairs = cfg.ts_pairs();
        let missing: Vec<(TrafficSelector, TrafficSelector)> = pairs
            .iter()
            .filter(|(l, r)| !live.iter().any(|c| c.covers_pair(l, r)))
            .copied()
            .collect();
        let cap = u32::try_from(pairs.len())
            .unwrap_or(u32::MAX)
            .saturating_sub(1)
            .saturating_add(MAX_EXTRA_CHILDREN);
        let in_flight = match sa.pending_rekey.as_deref() {
            Some(PendingRekey::Child {
                old_spi_in: None,
                ts,
                ..
            }) => Some(ts.clone()),
            _ => None,
        };
        let askable = |(l, r): &(TrafficSelector, TrafficSelector)| {
            let ts = (vec![*l], vec![*r]);
            !live.iter().any(|c| c.touches_pair(l, r)) && !sa.refused_extra.contains(&ts)
        };
        let may_ask = cfg.initiate && sa.extra_asked < cap;
        let next = missing
            .iter()
            .filter(|p| askable(p))
            .find(|(l, r)| in_flight.as_ref() != Some(&(vec![*l], vec![*r])))
            .copied();
        let left_out: Vec<String> = missing
            .iter()
            .filter(|p| {
                let asking = in_flight.as_ref() == Some(&(vec![p.0], vec![p.1]));
                !(asking || may_ask && askable(p))
            })
            .map(|(l, r)| format!("local {l} remote {r}"))
            .collect();
        let warning = (!left_out.is_empty()).then(|| {
            let have: Vec<String> = live
                .iter()
                .map(|c| {
                    format!(
                        "local {} remote {}",
                        ts_text(&c.local_ts),
                        ts_text(&c.remote_ts)
                    )
                })
                .collect();
            format!(
                "one Child SA per selector pair; not tunneled: {}; the Child SAs cover: {}{}",
                left_out.join(", "),
                if have.is_empty() {
                    "nothing".to_string()
                } else {
                    have.join(", ")
                },
                sa.extra_refusal
                    .as_ref()
                    .map(|r| format!(" (an additional Child SA was refused: {r})"))
                    .unwrap_or_default()
            )
        });
        if let Some(Some(c)) = self.conns.get_mut(sa.conn.index()) {
            c.selector_warning = warning;
        }
        if may_ask {
            sa.wanted_extra = next.map(|(l, r)| (vec![l], vec![r]));
        }
    }

    /// The selectors to answer a peer's Child SA proposal with, (TSi, TSr) as the peer
    /// proposed them: RFC 7296 §2.9 narrowing to ours. With one Child SA per selector pair,
    /// narrowed further to one pair: the first configured pair the proposal overlaps that no
    /// Child SA (besides `rekeyed`, our inbound SPI of the one it replaces) touches yet, else
    /// the first it overlaps. Empty when nothing is acceptable.
    pub(super) fn narrow_proposal(
        cfg: &ConnectionConfig,
        children: &[ChildSa],
        rekeyed: Option<u32>,
        tsi: &[TrafficSelector],
        tsr: &[TrafficSelector],
    ) -> (Vec<TrafficSelector>, Vec<TrafficSelector>) {
        if !cfg.selector_pairs {
            return (narrow(tsi, &cfg.remote_ts), narrow(tsr, &cfg.local_ts));
        }
        let candidates: Vec<(Vec<TrafficSelector>, Vec<TrafficSelector>, bool)> = cfg
            .ts_pairs()
            .into_iter()
            .filter_map(|(l, r)| {
                let (n_tsi, n_tsr) = (narrow(tsi, &[r]), narrow(tsr, &[l]));
                let taken = children
                    .iter()
                    .filter(|c| !c.replaced && Some(c.spi_in) != rekeyed)
                    .any(|c| c.touches_pair(&l, &r));
                (!n_tsi.is_empty() && !n_tsr.is_empty()).then_some((n_tsi, n_tsr, taken))
            })
            .collect();
        let pick = candidates
            .iter()
            .find(|c| !c.2)
            .or(candidates.first())
            .cloned();
        pick.map_or((vec![], vec![]), |(i, r, _)| (i, r))
    }

    /// Asks the peer for the additional Child SA [`Self::check_coverage`] queued, if it is
    /// still wanted (Child SAs may have come or gone since it was queued).
    pub(super) fn start_extra_child(&mut self, sa: &mut IkeSa, now: Instant) {
        self.check_coverage(sa);
        let Some((local, remote)) = sa.wanted_extra.take() else {
            return;
        };
        let Some(cfg) = self.cfg(sa.conn).cloned() else {
            return;
        };
        type Built = (Vec<Payload>, u32, Vec<u8>, Option<DhPrivate>);
        let built = (|| -> Result<Built, CryptoError> {
            let ni = self.rng.bytes(NONCE_LEN)?;
            let new_spi_in = self.rng.spi32()?;
            let dh = match cfg.esp_proposals.iter().find_map(|p| p.dh.first().copied()) {
                Some(g) => Some(self.rng.dh(g)?),
                None => None,
            };
            let mut inner = vec![
                Payload::new(PayloadBody::Sa(proposal::esp_sa_payload(
                    &cfg.esp_proposals,
                    new_spi_in,
                    dh.is_some(),
                ))),
                Payload::new(PayloadBody::Nonce(ni.clone())),
            ];
            if let Some(d) = &dh {
                inner.push(Payload::new(PayloadBody::Ke(KePayload {
                    group: d.group().iana_id(),
                    data: d.public().to_vec(),
                })));
            }
            inner.push(Payload::new(PayloadBody::TsI(ts_payload(&local))));
            inner.push(Payload::new(PayloadBody::TsR(ts_payload(&remote))));
            Ok((inner, new_spi_in, ni, dh))
        })();
        let Ok((inner, new_spi_in, ni, dh)) = built else {
            return;
        };
        sa.extra_asked += 1;
        sa.pending_rekey = Some(Box::new(PendingRekey::Child {
            old_spi_in: None,
            new_spi_in,
            ni,
            dh,
            ts: (local, remote),
            collision: None,
        }));
        self.send_request(
            sa,
            now,
            RequestKind::Rekey,
            exchange::CREATE_CHILD_SA,
            &inner,
        );
    }

    /// Soft-lifetime deadline: 85-95 % of the configured lifetime (jitter avoids both sides of a
    /// many-tunnel gateway rekeying in lock step). Only the initiating side rekeys by time, so two
    /// hybridnet peers never collide (RFC 7296 §2.8.1); a responder answers the peer's rekeys.
    pub(super) fn rekey_deadline(
        &mut self,
        conn: ConnectionId,
        now: Instant,
        child: bool,
    ) -> Option<Instant> {
        let cfg = self.cfg(conn)?;
        if !cfg.initiate {
            return None;
        }
        let life = if child {
            cfg.child_lifetime
        } else {
            cfg.ike_lifetime
        };
        if life.is_zero() {
            return None;
        }
        let jitter = self.rng.below(11);
        Some(now + life * (85 + jitter) / 100)
    }

    pub(super) fn next_rekey(&self, sa: &IkeSa) -> Option<Instant> {
        if sa.pending_rekey.is_some() || sa.rekeyed_at.is_some() {
            return None;
        }
        let ike = sa.ike_rekey_at;
        let child = sa.children.iter().filter_map(|c| c.rekey_at).min();
        match (ike, child) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Starts the earliest due rekey: the IKE SA first, otherwise the oldest Child SA.
    pub(super) fn start_rekey(&mut self, sa: &mut IkeSa, now: Instant) {
        let Some(cfg) = self.cfg(sa.conn).cloned() else {
            return;
        };
        let Some(keys) = sa.phase.keys() else { return };
        let ike_due = sa.ike_rekey_at.is_some_and(|t| t <= now);
        let built = (|| -> Result<(Vec<Payload>, PendingRekey), CryptoError> {
            let ni = self.rng.bytes(NONCE_LEN)?;
            if ike_due {
                let mut new_spi = self.rng.spi64()?;
                while self.sas.contains_key(&new_spi) {
                    new_spi = self.rng.spi64()?;
                }
                let dh = self.rng.dh(keys.suite.dh)?;
                let mut sa_p = proposal::ike_sa_payload(&cfg.ike_proposals);
                for p in &mut sa_p.proposals {
                    p.spi = new_spi.to_be_bytes().to_vec();
                }
                let inner = vec![
                    Payload::new(PayloadBody::Sa(sa_p)),
                    Payload::new(PayloadBody::Nonce(ni.clone())),
                    Payload::new(PayloadBody::Ke(KePayload {
                        group: dh.group().iana_id(),
                        data: dh.public().to_vec(),
                    })),
                ];
                let offered = cfg.ike_proposals.clone();
                return Ok((
                    inner,
                    PendingRekey::Ike {
                        new_spi,
                        ni,
                        dh,
                        offered,
                    },
                ));
            }
            let child = sa
                .children
                .iter()
                .filter(|c| c.rekey_at.is_some() && !c.replaced)
                .min_by_key(|c| c.rekey_at)
                .ok_or(CryptoError::KeyGeneration)?;
            let new_spi_in = self.rng.spi32()?;
            let pfs = cfg.esp_proposals.iter().find_map(|p| p.dh.first().copied());
            let dh = match pfs {
                Some(g) => Some(self.rng.dh(g)?),
                None => None,
            };
            let mut inner = vec![
                Payload::new(PayloadBody::Notify(NotifyPayload {
                    protocol: protocol::ESP,
                    spi: child.spi_in.to_be_bytes().to_vec(),
                    kind: notify::REKEY_SA,
                    data: vec![],
                })),
                Payload::new(PayloadBody::Sa(proposal::esp_sa_payload(
                    &cfg.esp_proposals,
                    new_spi_in,
                    dh.is_some(),
                ))),
                Payload::new(PayloadBody::Nonce(ni.clone())),
            ];
            if let Some(d) = &dh {
                inner.push(Payload::new(PayloadBody::Ke(KePayload {
                    group: d.group().iana_id(),
                    data: d.public().to_vec(),
                })));
            }
            inner.push(Payload::new(PayloadBody::TsI(ts_payload(&child.local_ts))));
            inner.push(Payload::new(PayloadBody::TsR(ts_payload(&child.remote_ts))));
            Ok((
                inner,
                PendingRekey::Child {
                    old_spi_in: Some(child.spi_in),
                    new_spi_in,
                    ni,
                    dh,
                    ts: (child.local_ts.clone(), child.remote_ts.clone()),
                    collision: None,
                },
            ))
        })();
        match built {
            Ok((inner, pending)) => {
                if let PendingRekey::Child { old_spi_in, .. } = &pending {
                    if let Some(c) = sa
                        .children
                        .iter_mut()
                        .find(|c| Some(c.spi_in) == *old_spi_in)
                    {
                        c.rekey_at = None;
                    }
                } else {
                    sa.ike_rekey_at = None;
                }
                sa.pending_rekey = Some(Box::new(pending));
                self.send_request(
                    sa,
                    now,
                    RequestKind::Rekey,
                    exchange::CREATE_CHILD_SA,
                    &inner,
                );
            }
            Err(_) => {
                // Nothing to rekey (or no randomness): try again later.
                sa.ike_rekey_at = sa.ike_rekey_at.map(|_| now + Duration::from_secs(30));
            }
        }
    }

    pub(super) fn rekey_response(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        inner: &[Payload],
    ) -> Result<(), IkeError> {
        let Some(pending) = sa.pending_rekey.take() else {
            return Ok(());
        };
        let view = MessageView::of(inner);
        let (sa_p, nonce, ke, tsi, tsr) = (view.sa, view.nonce, view.ke, view.tsi, view.tsr);
        let retry = now + Duration::from_secs(30);
        let prf = sa.phase.keys().map(|k| k.suite.prf);
        let nonce_fits = |n: &[u8]| -> Option<()> {
            ((16..=256).contains(&n.len()) && prf.is_none_or(|p| check_nonce(p, n).is_ok()))
                .then_some(())
        };
        match *pending {
            PendingRekey::Child {
                old_spi_in,
                new_spi_in,
                ni,
                dh,
                ts,
                collision,
            } => {
                let cfg = self
                    .cfg(sa.conn)
                    .cloned()
                    .ok_or(IkeError::UnknownConnection(sa.conn))?;
                let ok = (|| {
                    let (sa_p, nr, tsi, tsr) = (sa_p?, nonce?, tsi?, tsr?);
                    nonce_fits(nr)?;
                    let (suite, spi_out) = proposal::accept_esp(&cfg.esp_proposals, sa_p)?;
                    let shared = match &dh {
                        Some(d) => {
                            let k = ke?;
                            let chosen = sa_p.proposals[0]
                                .transforms
                                .iter()
                                .find(|t| t.kind == crate::codec::transform_type::DH)
                                .map(|t| t.id);
                            if k.group != d.group().iana_id() || chosen != Some(d.group().iana_id())
                            {
                                return None;
                            }
                            Some(d.agree(&k.data).ok()?)
                        }
                        None => None,
                    };
                    Some((
                        ChildSuite {
                            dh: dh.as_ref().map(|d| d.group()),
                            ..suite
                        },
                        spi_out,
                        nr.to_vec(),
                        shared,
                        ts_list(tsi),
                        ts_list(tsr),
                    ))
                })();
                match (ok, old_spi_in) {
                    (Some((suite, spi_out, nr, shared, l, r)), old) => {
                        self.install_child(
                            sa,
                            now,
                            suite,
                            new_spi_in,
                            spi_out,
                            l,
                            r,
                            shared.as_deref().map(|s| &s[..]),
                            &ni,
                            &nr,
                            true,
                            true,
                        );
                        let Some(old) = old else {
                            self.check_coverage(sa);
                            return Ok(());
                        };
                        if let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == old) {
                            c.replaced = true;
                            c.rekey_at = None;
                        }
                        // RFC 7296 §2.8.1: of two simultaneous rekeys, the exchange holding
                        // the lowest of the four nonces made the redundant SA; whoever
                        // started that exchange deletes what it made, and the other side
                        // deletes the old SA.
                        let doomed = match collision {
                            Some(c) => {
                                let ours = ni.as_slice().min(nr.as_slice());
                                let theirs = c.nonces.0.as_slice().min(c.nonces.1.as_slice());
                                if ours < theirs {
                                    new_spi_in
                                } else {
                                    old
                                }
                            }
                            None => old,
                        };
                        let (exch, body) = Self::request_body(&RequestKind::DeleteChild(doomed));
                        self.send_request(sa, now, RequestKind::DeleteChild(doomed), exch, &body);
                    }
                    (None, Some(old)) => {
                        if let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == old) {
                            if collision.is_some() {
                                // the peer's simultaneous rekey of it went through instead
                                c.replaced = true;
                            } else if !c.replaced {
                                c.rekey_at = Some(retry);
                            }
                        }
                    }
                    (None, None) => {
                        let why = view
                            .error()
                            .map_or("the answer was not acceptable".to_string(), |k| {
                                k.to_string()
                            });
                        sa.refused_extra.push(ts);
                        sa.extra_refusal = Some(why);
                        self.check_coverage(sa);
                    }
                }
            }
            PendingRekey::Ike {
                new_spi,
                ni,
                dh,
                offered,
            } => {
                let ok = (|| {
                    let (sa_p, nr, k) = (sa_p?, nonce?, ke?);
                    nonce_fits(nr)?;
                    let suite = proposal::accept_ike(&offered, sa_p)?;
                    let peer_spi = u64::from_be_bytes(
                        <[u8; 8]>::try_from(sa_p.proposals[0].spi.as_slice()).ok()?,
                    );
                    if suite.dh != dh.group() || k.group != suite.dh.iana_id() {
                        return None;
                    }
                    let shared = dh.agree(&k.data).ok()?;
                    Some((suite, peer_spi, nr.to_vec(), shared))
                })();
                let Some((suite, peer_spi, nr, shared)) = ok else {
                    sa.ike_rekey_at = Some(retry);
                    sa.dead |= sa.peer_deleted;
                    return Ok(());
                };
                let old = sa.phase.keys().expect("an established SA is keyed");
                let keys = crypto::derive_rekeyed_ike_keys(
                    old.suite.prf,
                    old.sk_d(),
                    suite,
                    &shared,
                    &ni,
                    &nr,
                    new_spi,
                    peer_spi,
                );
                let new = IkeSa::successor(
                    sa,
                    true,
                    (new_spi, peer_spi),
                    (ni, nr),
                    keys,
                    now,
                    self.rekey_deadline(sa.conn, now, false),
                );
                let mut new = new;
                let collided = sa.rekeyed_at.is_some();
                sa.rekeyed_at = Some(now);
                sa.queued.clear();
                if sa.quiet {
                    // The connection was removed while the rekey was out: the peer now holds
                    // the new IKE SA as its current one; delete it as well as the old.
                    new.quiet = true;
                    let (exch, body) = Self::request_body(&RequestKind::DeleteIke);
                    self.send_request(&mut new, now, RequestKind::DeleteIke, exch, &body);
                    self.sas.insert(new_spi, new);
                } else if collided {
                    // The peer rekeyed this IKE SA at the same time (RFC 7296 §2.8.2).
                    self.resolve_ike_rekey_collision(new, now);
                } else {
                    if let Some(Some(c)) = self.conns.get_mut(sa.conn.index()) {
                        c.ike_sa = Some(new_spi);
                        c.ike_algorithms = Some(suite.name());
                    }
                    new.quiet = false;
                    self.sas.insert(new_spi, new);
                }
                if sa.peer_deleted {
                    sa.dead = true;
                } else {
                    let (exch, body) = Self::request_body(&RequestKind::DeleteIke);
                    self.send_request(sa, now, RequestKind::DeleteIke, exch, &body);
                }
            }
        }
        Ok(())
    }

    /// Peer-initiated CREATE_CHILD_SA: a new or rekeyed Child SA (with optional PFS), or an
    /// IKE SA rekey (RFC 7296 §1.3, §2.8, §2.17, §2.18).
    pub(super) fn create_child_sa(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        msg_id: u32,
        inner: &[Payload],
    ) -> Result<(), IkeError> {
        let cfg = self
            .cfg(sa.conn)
            .cloned()
            .ok_or(IkeError::UnknownConnection(sa.conn))?;
        let view = MessageView::of(inner);
        let (sa_p, nonce, ke, tsi, tsr) = (view.sa, view.nonce, view.ke, view.tsi, view.tsr);
        let (Some(sa_p), Some(ni)) = (sa_p, nonce) else {
            return self.respond(
                sa,
                exchange::CREATE_CHILD_SA,
                msg_id,
                &[notify_payload(notify::INVALID_SYNTAX, vec![])],
            );
        };
        let prf = sa.phase.keys().map(|k| k.suite.prf);
        if !(16..=256).contains(&ni.len()) || prf.is_some_and(|p| check_nonce(p, ni).is_err()) {
            return self.respond(
                sa,
                exchange::CREATE_CHILD_SA,
                msg_id,
                &[notify_payload(notify::INVALID_SYNTAX, vec![])],
            );
        }
        if sa_p
            .proposals
            .first()
            .is_some_and(|p| p.protocol == protocol::IKE)
        {
            return self.rekey_ike_responder(sa, now, msg_id, &cfg, sa_p, ni, ke);
        }
        let (Some(tsi), Some(tsr)) = (tsi, tsr) else {
            return self.respond(
                sa,
                exchange::CREATE_CHILD_SA,
                msg_id,
                &[notify_payload(notify::INVALID_SYNTAX, vec![])],
            );
        };
        // A rekey names the Child SA by the SPI we send on (RFC 7296 §1.3.3).
        let rekey_of = view.notify(notify::REKEY_SA).map(|n| {
            <[u8; 4]>::try_from(n.spi.as_slice())
                .ok()
                .map(u32::from_be_bytes)
        });
        let old_in = match rekey_of {
            None => None,
            Some(spi) => match sa.children.iter().find(|c| Some(c.spi_out) == spi) {
                // RFC 7296 §2.25: a Child SA we do not have (any more)
                None => {
                    return self.respond(
                        sa,
                        exchange::CREATE_CHILD_SA,
                        msg_id,
                        &[notify_payload(notify::CHILD_SA_NOT_FOUND, vec![])],
                    )
                }
                // already replaced by a rekey (it only waits for its DELETE)
                Some(c) if c.replaced => {
                    return self.respond(
                        sa,
                        exchange::CREATE_CHILD_SA,
                        msg_id,
                        &[notify_payload(notify::TEMPORARY_FAILURE, vec![])],
                    )
                }
                Some(c) => Some(c.spi_in),
            },
        };
        let Some((number, suite, spi_out)) =
            proposal::select_esp_pfs(&cfg.esp_proposals, sa_p, ke.is_some())
        else {
            return self.respond(
                sa,
                exchange::CREATE_CHILD_SA,
                msg_id,
                &[notify_payload(notify::NO_PROPOSAL_CHOSEN, vec![])],
            );
        };
        let dh = match (ke, suite.dh) {
            (Some(k), Some(g)) if k.group == g.iana_id() => Some((self.rng.dh(g)?, k)),
            (Some(_), Some(g)) => {
                return self.respond(
                    sa,
                    exchange::CREATE_CHILD_SA,
                    msg_id,
                    &[notify_payload(
                        notify::INVALID_KE_PAYLOAD,
                        g.iana_id().to_be_bytes().to_vec(),
                    )],
                );
            }
            _ => None,
        };
        let (n_tsi, n_tsr) =
            Self::narrow_proposal(&cfg, &sa.children, old_in, &ts_list(tsi), &ts_list(tsr));
        if n_tsi.is_empty() || n_tsr.is_empty() {
            return self.respond(
                sa,
                exchange::CREATE_CHILD_SA,
                msg_id,
                &[notify_payload(notify::TS_UNACCEPTABLE, vec![])],
            );
        }
        let shared = match &dh {
            Some((d, k)) => Some(d.agree(&k.data)?),
            None => None,
        };
        let nr = self.rng.bytes(NONCE_LEN)?;
        let spi_in = self.rng.spi32()?;
        let mut reply = vec![
            Payload::new(PayloadBody::Sa(proposal::esp_reply(number, &suite, spi_in))),
            Payload::new(PayloadBody::Nonce(nr.clone())),
        ];
        if let Some((d, _)) = &dh {
            reply.push(Payload::new(PayloadBody::Ke(KePayload {
                group: d.group().iana_id(),
                data: d.public().to_vec(),
            })));
        }
        reply.push(Payload::new(PayloadBody::TsI(ts_payload(&n_tsi))));
        reply.push(Payload::new(PayloadBody::TsR(ts_payload(&n_tsr))));
        self.respond(sa, exchange::CREATE_CHILD_SA, msg_id, &reply)?;
        let ni = ni.to_vec();
        // a rekey we answered: the peer may not have the new SA until our answer arrives
        let rekeys_one_of_ours = old_in.is_some();
        if let Some(old) = old_in {
            match sa.pending_rekey.as_deref_mut() {
                // we are rekeying the same Child SA right now (RFC 7296 §2.8.1): both
                // exchanges complete; our answer's arrival settles which SA stays
                Some(PendingRekey::Child {
                    old_spi_in: Some(o),
                    collision,
                    ..
                }) if *o == old => {
                    *collision = Some(Collision {
                        nonces: (ni.to_vec(), nr.clone()),
                    });
                }
                _ => {
                    if let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == old) {
                        c.replaced = true;
                        c.rekey_at = None;
                    }
                }
            }
        }
        self.install_child(
            sa,
            now,
            suite,
            spi_in,
            spi_out,
            n_tsr,
            n_tsi,
            shared.as_deref().map(|s| &s[..]),
            &ni,
            &nr,
            false,
            !rekeys_one_of_ours,
        );
        self.check_coverage(sa);
        Ok(())
    }
}
