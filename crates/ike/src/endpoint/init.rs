//! IKE_SA_INIT, both roles: proposals, key exchange, nonces, NAT detection, COOKIE and INVALID_KE_PAYLOAD retries; unauthenticated errors never end more than an attempt.

use super::*;

impl Endpoint {
    pub(super) fn start_initiator(&mut self, id: ConnectionId, now: Instant) {
        let Some(cfg) = self.cfg(id).cloned() else {
            return;
        };
        let group = cfg.ike_proposals[0].dh[0];
        let setup = (|| -> Result<(u64, Vec<u8>, DhPrivate), CryptoError> {
            let mut spi = self.rng.spi64()?;
            while self.sas.contains_key(&spi) {
                spi = self.rng.spi64()?;
            }
            Ok((spi, self.rng.bytes(NONCE_LEN)?, self.rng.dh(group)?))
        })();
        let (spi_i, ni, dh) = match setup {
            Ok(v) => v,
            Err(e) => {
                self.conn_down(
                    id,
                    DownReason::Other(format!("cannot start IKE_SA_INIT: {e}")),
                    Some(now),
                );
                return;
            }
        };
        let mut sa = IkeSa {
            conn: id,
            initiator: true,
            spi_i,
            spi_r: 0,
            local_port: 500,
            remote: SocketAddr::new(cfg.remote_addr, 500),
            ni,
            nr: vec![],
            init_request: vec![],
            init_response: vec![],
            gcm_iv: 0,
            next_out_id: 0,
            outstanding: None,
            queued: VecDeque::new(),
            peer_next_id: 0,
            cached_response: None,
            last_request: vec![],
            children: vec![],
            phase: Phase::InitiatorInit(Box::new(InitiatorInit {
                dh,
                cookie: None,
                restarts: 0,
                refused: None,
            })),
            created: now,
            established_at: None,
            last_recv: now,
            nat: (false, false),
            dead: false,
            quiet: false,
            rekeyed_at: None,
            peer_deleted: false,
            pending_rekey: None,
            ike_rekey_at: None,
            wanted_extra: None,
            extra_asked: 0,
            extras_not_before: None,
            refused_extra: vec![],
            extra_refusal: None,
        };
        self.send_init_request(&mut sa, now, &cfg);
        if let Some(Some(c)) = self.conns.get_mut(id.index()) {
            c.state = ConnState::Connecting;
            c.ike_sa = Some(spi_i);
            c.ike_algorithms = None;
            c.esp_algorithms = None;
        }
        self.put_back(sa);
    }

    pub(super) fn send_init_request(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        cfg: &ConnectionConfig,
    ) {
        let Phase::InitiatorInit(st) = &sa.phase else {
            return;
        };
        let mut payloads = vec![];
        if let Some(c) = &st.cookie {
            payloads.push(notify_payload(notify::COOKIE, c.clone()));
        }
        payloads.push(Payload::new(PayloadBody::Sa(proposal::ike_sa_payload(
            &cfg.ike_proposals,
        ))));
        payloads.push(Payload::new(PayloadBody::Ke(KePayload {
            group: st.dh.group().iana_id(),
            data: st.dh.public().to_vec(),
        })));
        payloads.push(Payload::new(PayloadBody::Nonce(sa.ni.clone())));
        // Deliberately wrong source hash: claims we are behind NAT, so the peer uses UDP
        // encapsulation for ESP (the gateway has no plain-ESP path), as kernel-libipsec does.
        let fake_src = self.rng.bytes(20).unwrap_or_else(|_| vec![0xff; 20]);
        payloads.push(notify_payload(notify::NAT_DETECTION_SOURCE_IP, fake_src));
        payloads.push(notify_payload(
            notify::NAT_DETECTION_DESTINATION_IP,
            crypto::nat_hash(sa.spi_i, 0, sa.remote),
        ));
        let msg = Message {
            header: Header {
                spi_i: sa.spi_i,
                spi_r: 0,
                next_payload: 0,
                version: 0x20,
                exchange: exchange::IKE_SA_INIT,
                flags: flags::INITIATOR,
                message_id: 0,
                length: 0,
            },
            payloads,
        };
        let bytes = msg.encode();
        sa.init_request = bytes.clone();
        sa.next_out_id = 1;
        self.transmits
            .push_back(wrap(sa.local_port, sa.remote, bytes.clone()));
        sa.outstanding = Some(Outstanding {
            msg_id: 0,
            bytes,
            tries: 1,
            next_at: now + RETRANSMIT_BASE,
            kind: RequestKind::IkeSaInit,
        });
    }

    /// An unauthenticated error answered our IKE_SA_INIT: remember it and keep waiting a
    /// little for a genuine response (RFC 7296 §2.21.1); the timer ends the attempt.
    pub(super) fn init_refused(sa: &mut IkeSa, reason: DownReason, now: Instant) {
        if let Phase::InitiatorInit(st) = &mut sa.phase {
            st.refused = Some(reason);
        }
        if let Some(out) = sa.outstanding.as_mut() {
            out.next_at = out.next_at.min(now + UNAUTHENTICATED_ERROR_GRACE);
        }
    }

    pub(super) fn initiator_init_response(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        header: &Header,
    ) -> Result<(), IkeError> {
        let msg = Message::decode(data)?;
        let view = MessageView::of(&msg.payloads);
        let nat = nat_detect(&view, header.spi_i, header.spi_r, local, remote);
        let cfg = self
            .cfg(sa.conn)
            .cloned()
            .ok_or(IkeError::UnknownConnection(sa.conn))?;
        let Phase::InitiatorInit(st) = &mut sa.phase else {
            return Err(IkeError::UnexpectedExchange(header.exchange));
        };
        if self.peer_brought_up(sa.conn) {
            // the peer's own IKE SA came up meanwhile: ours would be a second one
            sa.dead = true;
            return Ok(());
        }
        if let Some(n) = view.notify(notify::COOKIE) {
            if st.restarts >= 5 || n.data.is_empty() || n.data.len() > 64 {
                return Err(IkeError::InvalidPayload("COOKIE"));
            }
            st.cookie = Some(n.data.clone());
            st.restarts += 1;
            sa.outstanding = None;
            self.send_init_request(sa, now, &cfg);
            return Ok(());
        }
        if let Some(n) = view.notify(notify::INVALID_KE_PAYLOAD) {
            let want = <[u8; 2]>::try_from(n.data.as_slice())
                .ok()
                .map(u16::from_be_bytes)
                .and_then(DhGroup::from_iana);
            let offered = want.filter(|g| {
                cfg.ike_proposals.iter().any(|p| p.dh.contains(g)) && *g != st.dh.group()
            });
            match offered {
                Some(g) if st.restarts < 5 => match self.rng.dh(g) {
                    Ok(dh) => {
                        st.dh = dh;
                        st.restarts += 1;
                        sa.outstanding = None;
                        self.send_init_request(sa, now, &cfg);
                    }
                    Err(e) => self.fail(
                        sa,
                        DownReason::Other(format!("key generation failed: {e}")),
                        now,
                    ),
                },
                _ => {
                    let g = n.data.clone();
                    Self::init_refused(
                        sa,
                        DownReason::Other(format!(
                            "INVALID_KE_PAYLOAD: peer requests DH group {} which we do not offer",
                            hex::encode(g)
                        )),
                        now,
                    )
                }
            }
            return Ok(());
        }
        if view.notify(notify::NO_PROPOSAL_CHOSEN).is_some() {
            let ours = cfg
                .ike_proposals
                .iter()
                .map(|p| format!("IKE:{p}"))
                .collect();
            Self::init_refused(
                sa,
                DownReason::NoProposalChosen {
                    ours,
                    theirs: vec![],
                },
                now,
            );
            return Ok(());
        }
        if let Some(k) = view.error() {
            Self::init_refused(
                sa,
                DownReason::Other(format!("peer answered IKE_SA_INIT with {k}")),
                now,
            );
            return Ok(());
        }
        let (sa_p, ke, nonce) = view.ike_sa_init()?;
        if header.spi_r == 0 {
            return Err(IkeError::InvalidPayload("responder SPI is zero"));
        }
        let Some(suite) = proposal::accept_ike(&cfg.ike_proposals, sa_p) else {
            Self::init_refused(
                sa,
                DownReason::Other("responder selected an IKE proposal we did not offer".into()),
                now,
            );
            return Ok(());
        };
        if suite.dh != st.dh.group() || ke.group != suite.dh.iana_id() {
            Self::init_refused(
                sa,
                DownReason::Other(
                    "responder's KE group does not match the selected proposal".into(),
                ),
                now,
            );
            return Ok(());
        }
        check_nonce(suite.prf, nonce)?;
        let shared = st.dh.agree(&ke.data)?;
        sa.spi_r = header.spi_r;
        sa.nr = nonce.to_vec();
        sa.init_response = data.to_vec();
        sa.nat = nat;
        let keys = crypto::derive_ike_keys(suite, &shared, &sa.ni, &sa.nr, sa.spi_i, sa.spi_r);
        sa.outstanding = None;
        sa.last_recv = now;
        // Float to 4500 for IKE_AUTH (RFC 7296 §2.23); ESP always goes UDP-encapsulated.
        sa.local_port = 4500;
        sa.remote = if remote.port() == 500 {
            SocketAddr::new(remote.ip(), 4500)
        } else {
            remote
        };
        let child_spi_in = self.rng.spi32()?;
        sa.phase = Phase::Keyed {
            keys,
            step: Step::InitiatorAuth { child_spi_in },
        };
        let keys = sa.phase.keys().expect("just keyed");
        let idi = id_payload(&cfg.local_id);
        let auth = crypto::psk_auth(
            suite.prf,
            cfg.psk.bytes(),
            &sa.init_request,
            &sa.nr,
            keys.sk_pi(),
            &idi.rest_of_payload(),
        );
        let mut inner = vec![Payload::new(PayloadBody::IdI(idi))];
        if let Some(r) = &cfg.remote_id {
            inner.push(Payload::new(PayloadBody::IdR(id_payload(r))));
        }
        inner.push(Payload::new(PayloadBody::Auth(AuthPayload {
            method: AUTH_PSK,
            data: auth.to_vec(),
        })));
        // RFC 7296 §2.4: only when this is our only IKE SA with the peer for this connection
        // (a restart, a first contact); not while another one is up, e.g. the peer's own
        // simultaneous attempt, which the peer would otherwise tear down.
        let our_spi = sa.our_spi();
        let alone = !self.sas.of_conn(sa.conn).any(|(k, o)| {
            k != our_spi && o.remote.ip() == sa.remote.ip() && o.phase.is_established()
        });
        if alone {
            inner.push(notify_payload(notify::INITIAL_CONTACT, vec![]));
        }
        inner.push(Payload::new(PayloadBody::Sa(proposal::esp_sa_payload(
            &cfg.esp_proposals,
            child_spi_in,
            false,
        ))));
        let (tsi, tsr) = cfg.first_child_ts();
        inner.push(Payload::new(PayloadBody::TsI(ts_payload(&tsi))));
        inner.push(Payload::new(PayloadBody::TsR(ts_payload(&tsr))));
        self.send_request(sa, now, RequestKind::IkeAuth, exchange::IKE_AUTH, &inner);
        Ok(())
    }

    pub(super) fn responder_init(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> Result<(), IkeError> {
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(DecodeError::UnsupportedCriticalPayload(t)) => {
                let h = Header::decode(data)?;
                let reply = Message {
                    header: Header {
                        spi_i: h.spi_i,
                        spi_r: 0,
                        next_payload: 0,
                        version: 0x20,
                        exchange: exchange::IKE_SA_INIT,
                        flags: flags::RESPONSE,
                        message_id: 0,
                        length: 0,
                    },
                    payloads: vec![notify_payload(
                        notify::UNSUPPORTED_CRITICAL_PAYLOAD,
                        vec![t],
                    )],
                };
                self.transmits
                    .push_back(wrap(local.port(), remote, reply.encode()));
                return Err(DecodeError::UnsupportedCriticalPayload(t).into());
            }
            Err(e) => return Err(e.into()),
        };
        let spi_i = msg.header.spi_i;
        if let Some(our) = self.half_open.get(remote, spi_i) {
            if let Some(sa) = self.sas.get(&our) {
                if sa.init_request == data {
                    let t = wrap(local.port(), remote, sa.init_response.clone());
                    self.transmits.push_back(t);
                    return Ok(());
                }
            }
            return Err(IkeError::UnexpectedMessageId(0));
        }
        let first = self
            .responder_candidates(local.ip(), remote.ip())
            .next()
            .ok_or(IkeError::NoMatchingConnection(remote.ip()))?;
        // The identity that picks the final connection only arrives in IKE_AUTH; until then
        // the first connection to this peer whose IKE proposals fit the offer answers.
        let view = MessageView::of(&msg.payloads);
        let offer = view.sa;
        let conn = offer
            .and_then(|offer| {
                // Connections share interned proposal lists: each list is checked once, so an
                // offer that fits none costs one check per list, not one per connection.
                let mut unfit: Vec<&Arc<[crate::config::Proposal]>> = Vec::new();
                self.responder_candidates(local.ip(), remote.ip())
                    .find(|&c| {
                        self.cfg(c).is_some_and(|cfg| {
                            let list = &cfg.ike_proposals;
                            if unfit.iter().any(|u| Arc::ptr_eq(u, list)) {
                                return false;
                            }
                            let fits = proposal::select_ike(list, offer).is_some();
                            if !fits {
                                unfit.push(list);
                            }
                            fits
                        })
                    })
            })
            .unwrap_or(first);
        if !self.admit_half_open(local, remote, spi_i, &msg)? {
            return Ok(());
        }
        let cfg = self.cfg(conn).cloned().expect("matched");
        let (sa_p, ke, nonce) = view.ike_sa_init()?;
        let plain_reply = |payloads: Vec<Payload>, spi_r: u64| {
            Message {
                header: Header {
                    spi_i,
                    spi_r,
                    next_payload: 0,
                    version: 0x20,
                    exchange: exchange::IKE_SA_INIT,
                    flags: flags::RESPONSE,
                    message_id: 0,
                    length: 0,
                },
                payloads,
            }
            .encode()
        };
        let Some((number, suite)) = proposal::select_ike(&cfg.ike_proposals, sa_p) else {
            let bytes = plain_reply(vec![notify_payload(notify::NO_PROPOSAL_CHOSEN, vec![])], 0);
            self.transmits.push_back(wrap(local.port(), remote, bytes));
            // Report it on a connection that is not up if there is one, so that a sibling's
            // failed attempt does not mark a working tunnel down.
            let report = self
                .responder_candidates(local.ip(), remote.ip())
                .find(|&c| {
                    matches!(self.conns.get(c.index()), Some(Some(c)) if c.state != ConnState::Established)
                })
                .or(Some(first));
            if let Some(report) = report {
                let ours = self
                    .cfg(report)
                    .map(|cfg| {
                        cfg.ike_proposals
                            .iter()
                            .map(|p| format!("IKE:{p}"))
                            .collect()
                    })
                    .unwrap_or_default();
                self.attempt_failed(
                    report,
                    DownReason::NoProposalChosen {
                        ours,
                        theirs: proposal::describe(sa_p),
                    },
                    now,
                );
            }
            return Ok(());
        };
        if ke.group != suite.dh.iana_id() {
            let bytes = plain_reply(
                vec![notify_payload(
                    notify::INVALID_KE_PAYLOAD,
                    suite.dh.iana_id().to_be_bytes().to_vec(),
                )],
                0,
            );
            self.transmits.push_back(wrap(local.port(), remote, bytes));
            return Ok(());
        }
        check_nonce(suite.prf, nonce)?;
        let dh = self.rng.dh(suite.dh)?;
        let shared = dh.agree(&ke.data)?;
        let mut spi_r = self.rng.spi64()?;
        while self.sas.contains_key(&spi_r) {
            spi_r = self.rng.spi64()?;
        }
        let nr = self.rng.bytes(NONCE_LEN)?;
        let fake_src = self.rng.bytes(20)?;
        let payloads = vec![
            Payload::new(PayloadBody::Sa(proposal::ike_reply(number, &suite))),
            Payload::new(PayloadBody::Ke(KePayload {
                group: suite.dh.iana_id(),
                data: dh.public().to_vec(),
            })),
            Payload::new(PayloadBody::Nonce(nr.clone())),
            notify_payload(notify::NAT_DETECTION_SOURCE_IP, fake_src),
            notify_payload(
                notify::NAT_DETECTION_DESTINATION_IP,
                crypto::nat_hash(spi_i, spi_r, remote),
            ),
        ];
        let bytes = plain_reply(payloads, spi_r);
        let keys = crypto::derive_ike_keys(suite, &shared, nonce, &nr, spi_i, spi_r);
        let sa = IkeSa {
            conn,
            initiator: false,
            spi_i,
            spi_r,
            local_port: local.port(),
            remote,
            ni: nonce.to_vec(),
            nr,
            init_request: data.to_vec(),
            init_response: bytes.clone(),
            gcm_iv: 0,
            next_out_id: 0,
            outstanding: None,
            queued: VecDeque::new(),
            peer_next_id: 1,
            cached_response: None,
            last_request: vec![],
            children: vec![],
            phase: Phase::Keyed {
                keys,
                step: Step::ResponderAuth,
            },
            created: now,
            established_at: None,
            last_recv: now,
            nat: (false, false),
            dead: false,
            quiet: false,
            rekeyed_at: None,
            peer_deleted: false,
            pending_rekey: None,
            ike_rekey_at: None,
            wanted_extra: None,
            extra_asked: 0,
            extras_not_before: None,
            refused_extra: vec![],
            extra_refusal: None,
        };
        self.transmits.push_back(wrap(local.port(), remote, bytes));
        self.half_open.insert(remote, spi_i, spi_r, now);
        let mut sa = sa;
        sa.nat = nat_detect(&view, spi_i, 0, local, remote);
        if let Some(Some(c)) = self.conns.get_mut(conn.index()) {
            if c.state != ConnState::Established {
                c.state = ConnState::Connecting;
            }
        }
        self.sas.insert(spi_r, sa);
        Ok(())
    }
}
