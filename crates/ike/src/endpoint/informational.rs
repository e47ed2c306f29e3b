//! INFORMATIONAL requests from the peer: DELETE of IKE and Child SAs, liveness checks, notifications.

use super::*;

impl Endpoint {
    pub(super) fn informational(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        msg_id: u32,
        inner: &[Payload],
    ) -> Result<(), IkeError> {
        let mut reply = vec![];
        let mut delete_ike = false;
        let mut auth_failed = false;
        // a Child SA deleted without a replacement: its selectors may be left without one
        let mut lost_child = false;
        for p in inner {
            match &p.body {
                PayloadBody::Delete(d) if d.protocol == protocol::IKE => delete_ike = true,
                PayloadBody::Delete(d) if d.protocol == protocol::ESP => {
                    let mut ours = vec![];
                    for s in &d.spis {
                        let Ok(b) = <[u8; 4]>::try_from(s.as_slice()) else {
                            continue;
                        };
                        let spi = u32::from_be_bytes(b);
                        if let Some(pos) = sa.children.iter().position(|c| c.spi_out == spi) {
                            let c = sa.children.remove(pos);
                            lost_child |= !c.replaced;
                            ours.push(c.spi_in.to_be_bytes().to_vec());
                            self.events.push_back(Event::ChildSaDeleted {
                                conn: sa.conn,
                                spi_in: c.spi_in,
                                spi_out: c.spi_out,
                            });
                        }
                    }
                    if !ours.is_empty() {
                        reply.push(Payload::new(PayloadBody::Delete(DeletePayload {
                            protocol: protocol::ESP,
                            spi_size: 4,
                            spis: ours,
                        })));
                    }
                }
                PayloadBody::Notify(n) if n.kind == notify::AUTHENTICATION_FAILED => {
                    auth_failed = true
                }
                _ => {}
            }
        }
        if delete_ike {
            reply.clear();
        }
        let rekey_in_flight = matches!(sa.pending_rekey.as_deref(), Some(PendingRekey::Ike { .. }));
        if delete_ike && sa.rekeyed_at.is_some() && rekey_in_flight {
            // RFC 7296 §2.8.2: the peer resolved a rekey collision before our answer arrived;
            // that answer decides which new IKE SA survives, so wait for it.
            self.respond(sa, exchange::INFORMATIONAL, msg_id, &reply)?;
            sa.peer_deleted = true;
            sa.queued.clear();
            return Ok(());
        }
        if delete_ike && self.hand_back_collision_loser(sa) {
            self.respond(sa, exchange::INFORMATIONAL, msg_id, &reply)?;
            return Ok(());
        }
        self.respond(sa, exchange::INFORMATIONAL, msg_id, &reply)?;
        if auth_failed {
            self.fail(
                sa,
                DownReason::AuthenticationFailed(AuthFailure::RejectedByPeer),
                now,
            );
        } else if delete_ike {
            self.fail(sa, DownReason::DeletedByPeer, now);
        } else if lost_child && sa.phase.is_established() {
            self.check_coverage(sa);
        }
        Ok(())
    }

    /// The peer deleted `sa`, the IKE SA its rekey made, as the loser of a collision it
    /// resolved before our own rekey's answer reached us (RFC 7296 §2.8.2). The Child SAs go
    /// back to the old IKE SA, which is still waiting for that answer and hands them to the
    /// surviving SA it makes; the connection stays up. False when this is not that case.
    fn hand_back_collision_loser(&mut self, sa: &mut IkeSa) -> bool {
        let current = self
            .conns
            .get(sa.conn.index())
            .and_then(|c| c.as_ref())
            .is_some_and(|c| c.ike_sa == Some(sa.our_spi()));
        if !current || sa.initiator || sa.rekeyed_at.is_some() {
            return false;
        }
        let Some(old_spi) = self.sas.of_conn(sa.conn).find_map(|(k, o)| {
            (o.rekeyed_at.is_some()
                && !o.dead
                && matches!(o.pending_rekey.as_deref(), Some(PendingRekey::Ike { .. })))
            .then_some(k)
        }) else {
            return false;
        };
        let Some(old) = self.sas.get_mut(&old_spi) else {
            return false;
        };
        old.children.append(&mut sa.children);
        sa.quiet = true;
        sa.dead = true;
        true
    }
}
