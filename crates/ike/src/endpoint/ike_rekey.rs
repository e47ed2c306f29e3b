//! IKE SA rekeying as responder and the resolution of simultaneous IKE SA rekeys (RFC 7296 §2.8.2).

use super::*;

impl Endpoint {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rekey_ike_responder(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        msg_id: u32,
        cfg: &ConnectionConfig,
        sa_p: &crate::codec::SaPayload,
        ni: &[u8],
        ke: Option<&KePayload>,
    ) -> Result<(), IkeError> {
        if Self::closing(sa) {
            // RFC 7296 §2.25.2: a rekey of an IKE SA being deleted is refused; the peer's own
            // rekey has already replaced it (or the connection is going away).
            return self.respond(
                sa,
                exchange::CREATE_CHILD_SA,
                msg_id,
                &[notify_payload(notify::TEMPORARY_FAILURE, vec![])],
            );
        }
        let Some((number, suite)) = proposal::select_ike(&cfg.ike_proposals, sa_p) else {
            return self.respond(
                sa,
                exchange::CREATE_CHILD_SA,
                msg_id,
                &[notify_payload(notify::NO_PROPOSAL_CHOSEN, vec![])],
            );
        };
        let chosen = sa_p
            .proposals
            .iter()
            .find(|p| p.number == number)
            .expect("selected from these");
        let Ok(peer_spi) = <[u8; 8]>::try_from(chosen.spi.as_slice()).map(u64::from_be_bytes)
        else {
            return self.respond(
                sa,
                exchange::CREATE_CHILD_SA,
                msg_id,
                &[notify_payload(notify::INVALID_SYNTAX, vec![])],
            );
        };
        let ke = match ke {
            Some(k) if k.group == suite.dh.iana_id() => k,
            _ => {
                return self.respond(
                    sa,
                    exchange::CREATE_CHILD_SA,
                    msg_id,
                    &[notify_payload(
                        notify::INVALID_KE_PAYLOAD,
                        suite.dh.iana_id().to_be_bytes().to_vec(),
                    )],
                );
            }
        };
        let dh = self.rng.dh(suite.dh)?;
        let shared = dh.agree(&ke.data)?;
        let nr = self.rng.bytes(NONCE_LEN)?;
        let mut our_spi = self.rng.spi64()?;
        while self.sas.contains_key(&our_spi) || our_spi == sa.our_spi() {
            our_spi = self.rng.spi64()?;
        }
        let reply = vec![
            Payload::new(PayloadBody::Sa(proposal::ike_rekey_reply(
                number, &suite, our_spi,
            ))),
            Payload::new(PayloadBody::Nonce(nr.clone())),
            Payload::new(PayloadBody::Ke(KePayload {
                group: suite.dh.iana_id(),
                data: dh.public().to_vec(),
            })),
        ];
        self.respond(sa, exchange::CREATE_CHILD_SA, msg_id, &reply)?;
        let old = sa.phase.keys().expect("an established SA is keyed");
        let keys = crypto::derive_rekeyed_ike_keys(
            old.suite.prf,
            old.sk_d(),
            suite,
            &shared,
            ni,
            &nr,
            peer_spi,
            our_spi,
        );
        // The requester is the original initiator of the new IKE SA; Child SAs move over.
        let new = IkeSa::successor(
            sa,
            false,
            (peer_spi, our_spi),
            (ni.to_vec(), nr),
            keys,
            now,
            None,
        );
        let collided = sa.rekeyed_at.is_some();
        sa.rekeyed_at = Some(now);
        if collided {
            self.resolve_ike_rekey_collision(new, now);
        } else {
            sa.queued.clear();
            if let Some(Some(c)) = self.conns.get_mut(sa.conn.index()) {
                c.ike_sa = Some(our_spi);
                c.ike_algorithms = Some(suite.name());
            }
            self.sas.insert(our_spi, new);
        }
        Ok(())
    }

    /// Whether a DELETE of this IKE SA is in flight or queued.
    fn closing(sa: &IkeSa) -> bool {
        sa.outstanding
            .as_ref()
            .is_some_and(|o| o.kind == RequestKind::DeleteIke)
            || sa.queued.contains(&RequestKind::DeleteIke)
    }

    /// Both sides rekeyed the same IKE SA: of the two new SAs, the one created by the exchange
    /// holding the lowest of the four nonces is deleted by whoever initiated that exchange
    /// (RFC 7296 §2.8.2). `late` is the new SA finished second; its sibling is the connection's
    /// current IKE SA. Child SAs end up on the survivor.
    pub(super) fn resolve_ike_rekey_collision(&mut self, late: IkeSa, now: Instant) {
        let early = self
            .conns
            .get(late.conn.index())
            .and_then(|c| c.as_ref())
            .and_then(|c| c.ike_sa)
            .and_then(|spi| self.sas.remove(&spi));
        let Some(early) = early else {
            // the peer already deleted the sibling (it lost): this one is the connection's
            self.make_current(&late);
            self.sas.insert(late.our_spi(), late);
            return;
        };
        let lowest = [&late.ni, &late.nr, &early.ni, &early.nr]
            .into_iter()
            .min()
            .expect("four nonces")
            .clone();
        let late_loses = lowest == late.ni || lowest == late.nr;
        let (mut loser, mut winner) = if late_loses {
            (late, early)
        } else {
            (early, late)
        };
        winner.children.append(&mut loser.children);
        self.make_current(&winner);
        // Only the initiator of the losing exchange deletes it; otherwise the peer will.
        loser.quiet = true;
        if loser.initiator {
            let (exch, body) = Self::request_body(&RequestKind::DeleteIke);
            self.send_request(&mut loser, now, RequestKind::DeleteIke, exch, &body);
        }
        self.sas.insert(winner.our_spi(), winner);
        self.sas.insert(loser.our_spi(), loser);
    }

    /// Makes `sa` the IKE SA its connection runs on.
    fn make_current(&mut self, sa: &IkeSa) {
        if let Some(Some(c)) = self.conns.get_mut(sa.conn.index()) {
            c.ike_sa = Some(sa.our_spi());
            c.ike_algorithms = sa.phase.keys().map(|k| k.suite.name());
        }
    }
}
