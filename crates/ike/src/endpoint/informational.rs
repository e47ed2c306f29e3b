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
        self.respond(sa, exchange::INFORMATIONAL, msg_id, &reply)?;
        if auth_failed {
            self.fail(
                sa,
                DownReason::AuthenticationFailed(AuthFailure::RejectedByPeer),
                now,
            );
        } else if delete_ike {
            self.fail(sa, DownReason::DeletedByPeer, now);
        }
        Ok(())
    }
}
