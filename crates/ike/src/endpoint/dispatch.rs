//! Incoming datagrams to the IKE SA they belong to (by SPI), replayed requests answered from the cache, and the exchange handler for what arrived; a panic while handling one SA stays with that SA.

use super::*;

impl Endpoint {
    pub(super) fn dispatch(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), IkeError> {
        let data = if local.port() == 500 {
            bytes
        } else {
            if bytes.len() < 4 || bytes[..4] != [0, 0, 0, 0] {
                return Err(IkeError::MissingNonEspMarker);
            }
            &bytes[4..]
        };
        let header = Header::decode(data)?;
        if header.length as usize != data.len() {
            return Err(DecodeError::BadLength("IKE header length").into());
        }
        if header.from_initiator() && header.spi_r == 0 {
            if header.exchange == exchange::IKE_SA_INIT
                && !header.is_response()
                && header.message_id == 0
            {
                return std::panic::catch_unwind(AssertUnwindSafe(|| {
                    self.responder_init(now, local, remote, data)
                }))
                .unwrap_or(Err(IkeError::Internal));
            }
            return Err(IkeError::UnknownSpi(header.spi_i, header.spi_r));
        }
        let our = if header.from_initiator() {
            header.spi_r
        } else {
            header.spi_i
        };
        let Some(mut sa) = self.sas.remove(&our) else {
            return Err(IkeError::UnknownSpi(header.spi_i, header.spi_r));
        };
        if sa.initiator == header.from_initiator() || (!sa.initiator && sa.spi_i != header.spi_i) {
            self.sas.insert(our, sa);
            return Err(IkeError::UnknownSpi(header.spi_i, header.spi_r));
        }
        let res = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.process(&mut sa, now, local, remote, data, &header)
        }));
        let res = match res {
            Ok(r) => r,
            Err(_) => {
                self.internal_fault(&mut sa, now);
                Err(IkeError::Internal)
            }
        };
        if res.is_err() {
            self.count_drop(sa.conn);
        }
        self.put_back(sa);
        res
    }

    /// A bug surfaced (a panic) while one IKE SA was being handled: that SA alone is lost —
    /// its Child SAs are reported deleted and its connection goes down and re-initiates —
    /// while every other connection of the endpoint carries on.
    pub(super) fn internal_fault(&mut self, sa: &mut IkeSa, now: Instant) {
        self.fail(
            sa,
            DownReason::Other("internal error while handling the IKE SA; it was dropped".into()),
            now,
        );
        sa.dead = true;
        self.drop_children(sa);
    }

    pub(super) fn process(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        header: &Header,
    ) -> Result<(), IkeError> {
        #[cfg(feature = "fault-injection")]
        if self.fault == Some(sa.conn) {
            self.fault = None;
            panic!("fault injected while handling connection {}", sa.conn);
        }
        if header.is_response() {
            let Some(out) = sa.outstanding.as_ref() else {
                return Err(IkeError::UnexpectedMessageId(header.message_id));
            };
            if out.msg_id != header.message_id {
                return Err(IkeError::UnexpectedMessageId(header.message_id));
            }
            if out.kind == RequestKind::IkeSaInit {
                if header.exchange != exchange::IKE_SA_INIT {
                    return Err(IkeError::UnexpectedExchange(header.exchange));
                }
                return self.initiator_init_response(sa, now, local, remote, data, header);
            }
            let keys = sa
                .phase
                .keys()
                .ok_or(IkeError::UnexpectedExchange(header.exchange))?;
            let (_, inner) = crypto::unprotect(&keys.direction(!sa.initiator), data)?;
            sa.last_recv = now;
            let kind = out.kind.clone();
            sa.outstanding = None;
            match kind {
                RequestKind::IkeAuth => {
                    if header.exchange != exchange::IKE_AUTH {
                        return Err(IkeError::UnexpectedExchange(header.exchange));
                    }
                    self.initiator_auth_response(sa, now, &inner);
                }
                RequestKind::DeleteIke => sa.dead = true,
                RequestKind::DeleteChild(spi_in) => {
                    if let Some(pos) = sa.children.iter().position(|c| c.spi_in == spi_in) {
                        let c = sa.children.remove(pos);
                        self.events.push_back(Event::ChildSaDeleted {
                            conn: sa.conn,
                            spi_in: c.spi_in,
                            spi_out: c.spi_out,
                        });
                    }
                }
                RequestKind::Rekey => {
                    if header.exchange != exchange::CREATE_CHILD_SA {
                        return Err(IkeError::UnexpectedExchange(header.exchange));
                    }
                    self.rekey_response(sa, now, &inner)?;
                }
                RequestKind::Dpd | RequestKind::IkeSaInit => {}
            }
            if !sa.dead {
                self.send_queued(sa, now);
            }
            return Ok(());
        }
        // A request from the peer.
        if header.exchange == exchange::IKE_SA_INIT {
            return Err(IkeError::UnexpectedExchange(header.exchange));
        }
        if header.message_id.wrapping_add(1) == sa.peer_next_id && sa.last_request == data {
            if let Some(c) = &sa.cached_response {
                let t = wrap(sa.local_port, sa.remote, c.clone());
                self.transmits.push_back(t);
                return Ok(());
            }
        }
        if header.message_id != sa.peer_next_id {
            return Err(IkeError::UnexpectedMessageId(header.message_id));
        }
        let keys = sa
            .phase
            .keys()
            .ok_or(IkeError::UnexpectedExchange(header.exchange))?;
        let inner = match crypto::unprotect(&keys.direction(!sa.initiator), data) {
            Ok((_, inner)) => inner,
            Err(IkeError::Decode(DecodeError::UnsupportedCriticalPayload(t))) => {
                // Authentic but unacceptable: reject the whole message (RFC 7296 §2.5).
                sa.last_request = data.to_vec();
                let n = notify_payload(notify::UNSUPPORTED_CRITICAL_PAYLOAD, vec![t]);
                self.respond(sa, header.exchange, header.message_id, &[n])?;
                return Err(DecodeError::UnsupportedCriticalPayload(t).into());
            }
            Err(e) => return Err(e),
        };
        sa.last_recv = now;
        sa.last_request = data.to_vec();
        // Authenticated: follow the peer's address (NAT mapping, float to 4500).
        sa.remote = remote;
        sa.local_port = local.port();
        match (header.exchange, sa.phase.step()) {
            (exchange::IKE_AUTH, Some(Step::ResponderAuth)) => {
                self.responder_auth(sa, now, header.message_id, &inner)
            }
            (exchange::INFORMATIONAL, Some(Step::Established)) => {
                self.informational(sa, now, header.message_id, &inner)
            }
            (exchange::CREATE_CHILD_SA, Some(Step::Established)) => {
                self.create_child_sa(sa, now, header.message_id, &inner)
            }
            _ => Err(IkeError::UnexpectedExchange(header.exchange)),
        }
    }
}
