//! The request/response transport of an IKE SA (RFC 7296 §2.1-2.3): protection of outgoing messages, the window of one outstanding request, retransmission with back-off, and the SA timers (DPD, expiry) that run on it.

use super::*;

impl Endpoint {
    pub(super) fn next_iv(&mut self, sa: &mut IkeSa) -> Result<Vec<u8>, CryptoError> {
        let keys = sa.phase.keys().ok_or(CryptoError::NotKeyed)?;
        if keys.suite.encryption.is_aead() {
            sa.gcm_iv += 1;
            Ok(sa.gcm_iv.to_be_bytes().to_vec())
        } else {
            self.rng.bytes(keys.suite.encryption.iv_len())
        }
    }

    pub(super) fn encrypt(
        &mut self,
        sa: &mut IkeSa,
        exch: ExchangeType,
        response: bool,
        msg_id: u32,
        inner: &[Payload],
    ) -> Result<Vec<u8>, CryptoError> {
        let iv = self.next_iv(sa)?;
        let mut fl = if sa.initiator { flags::INITIATOR } else { 0 };
        if response {
            fl |= flags::RESPONSE;
        }
        let header = Header {
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            next_payload: 0,
            version: 0x20,
            exchange: exch,
            flags: fl,
            message_id: msg_id,
            length: 0,
        };
        let keys = sa.phase.keys().ok_or(CryptoError::NotKeyed)?;
        crypto::protect(&keys.direction(sa.initiator), &header, inner, &iv)
    }

    pub(super) fn respond(
        &mut self,
        sa: &mut IkeSa,
        exch: ExchangeType,
        msg_id: u32,
        inner: &[Payload],
    ) -> Result<(), IkeError> {
        let bytes = self.encrypt(sa, exch, true, msg_id, inner)?;
        sa.peer_next_id = msg_id.wrapping_add(1);
        sa.cached_response = Some(bytes.clone());
        self.transmits
            .push_back(wrap(sa.local_port, sa.remote, bytes));
        Ok(())
    }

    pub(super) fn request_body(kind: &RequestKind) -> (ExchangeType, Vec<Payload>) {
        match kind {
            RequestKind::DeleteIke => (
                exchange::INFORMATIONAL,
                vec![Payload::new(PayloadBody::Delete(DeletePayload {
                    protocol: protocol::IKE,
                    spi_size: 0,
                    spis: vec![],
                }))],
            ),
            RequestKind::DeleteChild(spi) => (
                exchange::INFORMATIONAL,
                vec![Payload::new(PayloadBody::Delete(DeletePayload {
                    protocol: protocol::ESP,
                    spi_size: 4,
                    spis: vec![spi.to_be_bytes().to_vec()],
                }))],
            ),
            _ => (exchange::INFORMATIONAL, vec![]),
        }
    }

    /// Sends an encrypted request, or queues it when one is outstanding (window size 1).
    pub(super) fn send_request(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        kind: RequestKind,
        exch: ExchangeType,
        inner: &[Payload],
    ) {
        if sa.outstanding.is_some() {
            if !sa.queued.contains(&kind) {
                sa.queued.push_back(kind);
            }
            return;
        }
        let msg_id = sa.next_out_id;
        match self.encrypt(sa, exch, false, msg_id, inner) {
            Ok(bytes) => {
                sa.next_out_id = sa.next_out_id.wrapping_add(1);
                self.transmits
                    .push_back(wrap(sa.local_port, sa.remote, bytes.clone()));
                sa.outstanding = Some(Outstanding {
                    msg_id,
                    bytes,
                    tries: 1,
                    next_at: now + RETRANSMIT_BASE,
                    kind,
                });
            }
            Err(e) => self.fail(
                sa,
                DownReason::Other(format!("cannot build request: {e}")),
                now,
            ),
        }
    }

    pub(super) fn send_queued(&mut self, sa: &mut IkeSa, now: Instant) {
        if sa.outstanding.is_none() {
            if let Some(k) = sa.queued.pop_front() {
                let (exch, inner) = Self::request_body(&k);
                self.send_request(sa, now, k, exch, &inner);
            } else if Self::extra_child_due(sa).is_some_and(|t| t <= now) {
                self.start_extra_child(sa, now);
            }
        }
    }

    /// When an additional Child SA can be asked for: nothing else in flight, and not before
    /// [`IkeSa::extras_not_before`]; `None` while there is nothing to ask for or something
    /// else is in flight.
    pub(super) fn extra_child_due(sa: &IkeSa) -> Option<Instant> {
        let ready = sa.wanted_extra.is_some()
            && sa.outstanding.is_none()
            && sa.queued.is_empty()
            && sa.pending_rekey.is_none()
            && sa.rekeyed_at.is_none()
            && sa.phase.is_established();
        ready.then(|| {
            let now_ish = sa.last_recv.min(sa.created);
            sa.extras_not_before.map_or(now_ish, |t| t.max(now_ish))
        })
    }

    pub(super) fn sa_timers(&mut self, sa: &mut IkeSa, now: Instant) {
        if sa.phase.step() == Some(Step::ResponderAuth) && now >= sa.created + HALF_OPEN_TIMEOUT {
            sa.dead = true;
            return;
        }
        if let Some(t) = sa.rekeyed_at {
            if now >= t + HALF_OPEN_TIMEOUT {
                sa.dead = true;
                return;
            }
        }
        let dpd_timeout = self.cfg(sa.conn).map(|c| c.dpd_timeout).unwrap_or_default();
        if sa.outstanding.as_ref().is_some_and(|o| o.next_at <= now) {
            let refused = match &mut sa.phase {
                Phase::InitiatorInit(st) => st.refused.take(),
                Phase::Keyed { .. } => None,
            };
            if let Some(reason) = refused {
                sa.outstanding = None;
                if let Some(Some(c)) = self.conns.get_mut(sa.conn.index()) {
                    c.failed_attempts += 1;
                    c.last_attempt = Some((now, reason.clone()));
                }
                self.fail(sa, reason, now);
                return;
            }
        }
        if let Some(out) = sa.outstanding.as_mut() {
            if out.next_at <= now {
                let give_up = match out.kind {
                    RequestKind::Dpd => now >= sa.last_recv + dpd_timeout,
                    _ => out.tries >= MAX_TRANSMISSIONS,
                };
                if give_up {
                    let kind = out.kind.clone();
                    sa.outstanding = None;
                    match kind {
                        RequestKind::Dpd => self.fail(sa, DownReason::DpdTimeout, now),
                        RequestKind::DeleteIke if sa.rekeyed_at.is_some() || sa.quiet => {
                            sa.dead = true
                        }
                        _ => self.fail(sa, DownReason::PeerUnreachable, now),
                    }
                    return;
                }
                let wait = RETRANSMIT_BASE * (1u32 << out.tries.min(6));
                out.tries += 1;
                out.next_at = now + wait;
                if out.kind == RequestKind::Dpd {
                    out.next_at = out.next_at.min(sa.last_recv + dpd_timeout);
                }
                let t = wrap(sa.local_port, sa.remote, out.bytes.clone());
                self.transmits.push_back(t);
            }
            return;
        }
        if sa.rekeyed_at.is_some() {
            return;
        }
        if Self::extra_child_due(sa).is_some_and(|t| t <= now) {
            self.start_extra_child(sa, now);
            return;
        }
        if sa.phase.is_established() && sa.queued.is_empty() {
            if let Some(t) = self.next_rekey(sa) {
                if t <= now {
                    self.start_rekey(sa, now);
                    return;
                }
            }
        }
        if sa.phase.is_established() {
            if let Some(d) = self.dpd_delay(sa) {
                if now >= sa.last_recv + d && sa.queued.is_empty() {
                    self.send_request(sa, now, RequestKind::Dpd, exchange::INFORMATIONAL, &[]);
                }
            }
        }
    }

    /// Closes an IKE SA whose connection was removed; whether it stays (detached, quiet)
    /// until the peer answered. An established SA sends its DELETE now or, with a request
    /// still out, right after that request's answer: the request keeps its message ID and is
    /// sent again, since a peer with a window of one ignores the next ID while it waits for
    /// this one (were the request lost, the DELETE would never count). One whose IKE_AUTH is
    /// out sends it when the answer comes ([`Self::initiator_auth_response`]).
    pub(super) fn close_detached(&mut self, sa: &mut IkeSa, now: Instant) -> bool {
        sa.quiet = true;
        sa.queued.clear();
        sa.wanted_extra = None;
        // An IKE SA rekey in flight completes on the peer when it answers: what it takes to
        // read that answer stays, so the new IKE SA is deleted too ([`Self::rekey_response`]).
        let ike_rekey_out = sa
            .outstanding
            .as_ref()
            .is_some_and(|o| o.kind == RequestKind::Rekey)
            && matches!(sa.pending_rekey.as_deref(), Some(PendingRekey::Ike { .. }));
        if !ike_rekey_out {
            sa.pending_rekey = None;
        }
        match sa.phase.step() {
            Some(Step::Established) => {
                let (exch, body) = Self::request_body(&RequestKind::DeleteIke);
                self.send_request(sa, now, RequestKind::DeleteIke, exch, &body);
                !sa.dead
            }
            Some(Step::InitiatorAuth { .. }) => true,
            _ => false,
        }
    }
}
