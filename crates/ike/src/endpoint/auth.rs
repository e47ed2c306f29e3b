//! IKE_AUTH, both roles: PSK authentication, identities, and the first Child SA with its proposals and traffic selectors.

use super::*;

impl Endpoint {
    pub(super) fn responder_auth(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        msg_id: u32,
        inner: &[Payload],
    ) -> Result<(), IkeError> {
        let view = MessageView::of(inner);
        let (esp, tsi, tsr) = (view.sa, view.tsi, view.tsr);
        let idi = view.idi.ok_or(IkeError::MissingPayload("IDi"))?;
        let auth = view.auth.ok_or(IkeError::MissingPayload("AUTH"))?;
        let peer_id = Identity::from_payload(idi.id_type, &idi.data);
        let local_ip = self
            .cfg(sa.conn)
            .map(|c| c.local_addr)
            .unwrap_or(IpAddr::from([0u8; 4]));
        // Prefer the connection chosen at IKE_SA_INIT if it accepts this identity.
        let chosen = match &peer_id {
            Some(id) => {
                let keep = self
                    .cfg(sa.conn)
                    .is_some_and(|c| c.remote_id.as_ref().is_none_or(|w| w == id));
                if keep {
                    Some(sa.conn)
                } else {
                    self.match_responder(local_ip, sa.remote.ip(), id)
                        .or_else(|| {
                            self.match_responder(IpAddr::from([0u8; 4]), sa.remote.ip(), id)
                        })
                }
            }
            None => None,
        };
        let keys = sa.phase.keys().expect("a responder SA is keyed");
        let prf = keys.suite.prf;
        let verified = chosen.and_then(|c| self.cfg(c)).is_some_and(|cfg| {
            let expect = crypto::psk_auth(
                prf,
                cfg.psk.bytes(),
                &sa.init_request,
                &sa.nr,
                keys.sk_pi(),
                &idi.rest_of_payload(),
            );
            auth.method == AUTH_PSK
                && constant_time::verify_slices_are_equal(&expect, &auth.data).is_ok()
        });
        if !verified {
            self.respond(
                sa,
                exchange::IKE_AUTH,
                msg_id,
                &[notify_payload(notify::AUTHENTICATION_FAILED, vec![])],
            )?;
            let why = match chosen {
                Some(c) => {
                    sa.conn = c;
                    AuthFailure::PeerAuthInvalid
                }
                None => AuthFailure::WrongIdentity,
            };
            self.fail(sa, DownReason::AuthenticationFailed(why), now);
            return Ok(());
        }
        let conn = chosen.expect("verified implies chosen");
        sa.conn = conn;
        let cfg = self.cfg(conn).cloned().expect("exists");
        let keys = sa.phase.keys().expect("keyed");
        let suite = keys.suite;
        let idr = id_payload(&cfg.local_id);
        let our_auth = crypto::psk_auth(
            prf,
            cfg.psk.bytes(),
            &sa.init_response,
            &sa.ni,
            keys.sk_pr(),
            &idr.rest_of_payload(),
        );
        let mut reply = vec![
            Payload::new(PayloadBody::IdR(idr)),
            Payload::new(PayloadBody::Auth(AuthPayload {
                method: AUTH_PSK,
                data: our_auth.to_vec(),
            })),
        ];
        let mut child: Option<NegotiatedChild> = None;
        let mut child_fail = None;
        if let (Some(esp), Some(tsi), Some(tsr)) = (esp, tsi, tsr) {
            let peer_tsi = ts_list(tsi);
            let peer_tsr = ts_list(tsr);
            let (n_tsi, n_tsr) =
                Self::narrow_proposal(&cfg, &sa.children, None, &peer_tsi, &peer_tsr);
            match proposal::select_esp(&cfg.esp_proposals, esp) {
                None => {
                    reply.push(notify_payload(notify::NO_PROPOSAL_CHOSEN, vec![]));
                    let ours = cfg
                        .esp_proposals
                        .iter()
                        .map(|p| format!("ESP:{p}"))
                        .collect();
                    child_fail = Some(DownReason::NoProposalChosen {
                        ours,
                        theirs: proposal::describe(esp),
                    });
                }
                Some(_) if n_tsi.is_empty() || n_tsr.is_empty() => {
                    reply.push(notify_payload(notify::TS_UNACCEPTABLE, vec![]));
                    child_fail = Some(DownReason::TsUnacceptable {
                        ours: format!(
                            "local {} remote {}",
                            ts_text(&cfg.local_ts),
                            ts_text(&cfg.remote_ts)
                        ),
                        theirs: format!("TSi {} TSr {}", ts_text(&peer_tsi), ts_text(&peer_tsr)),
                    });
                }
                Some((number, csuite, spi_out)) => {
                    let spi_in = self.rng.spi32()?;
                    reply.push(Payload::new(PayloadBody::Sa(proposal::esp_reply(
                        number, &csuite, spi_in,
                    ))));
                    reply.push(Payload::new(PayloadBody::TsI(ts_payload(&n_tsi))));
                    reply.push(Payload::new(PayloadBody::TsR(ts_payload(&n_tsr))));
                    child = Some((csuite, spi_in, spi_out, n_tsr, n_tsi));
                }
            }
        }
        let initial_contact = view.notify(notify::INITIAL_CONTACT).is_some();
        self.respond(sa, exchange::IKE_AUTH, msg_id, &reply)?;
        sa.establish();
        let spi_r = sa.spi_r;
        self.half_open.remove_spi(spi_r);
        if initial_contact {
            self.drop_stale_sas(conn, sa.remote.ip(), sa.our_spi(), sa.created);
        }
        self.ike_established(sa, now, suite.name());
        self.abandon_own_attempts(conn);
        if cfg.selector_pairs {
            sa.extras_not_before = Some(now + PEER_PAIRS_GRACE);
        }
        if let Some((csuite, spi_in, spi_out, local_ts, remote_ts)) = child {
            let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
            self.install_child(
                sa, now, csuite, spi_in, spi_out, local_ts, remote_ts, None, &ni, &nr, false, true,
            );
            self.check_coverage(sa);
        } else if let Some(r) = child_fail {
            sa.quiet = true;
            self.conn_down(conn, r, Some(now));
        }
        Ok(())
    }

    pub(super) fn initiator_auth_response(
        &mut self,
        sa: &mut IkeSa,
        now: Instant,
        inner: &[Payload],
    ) {
        let view = MessageView::of(inner);
        let Some(cfg) = self.cfg(sa.conn).cloned() else {
            // The connection was removed while our IKE_AUTH was out. Unless the peer refused
            // us, it now holds the IKE SA as established: close it there too.
            if view.notify(notify::AUTHENTICATION_FAILED).is_some() {
                sa.dead = true;
            } else {
                sa.phase.establish();
                let (exch, body) = Self::request_body(&RequestKind::DeleteIke);
                self.send_request(sa, now, RequestKind::DeleteIke, exch, &body);
            }
            return;
        };
        if view.notify(notify::AUTHENTICATION_FAILED).is_some() {
            self.fail(
                sa,
                DownReason::AuthenticationFailed(AuthFailure::RejectedByPeer),
                now,
            );
            return;
        }
        let (esp, tsi, tsr) = (view.sa, view.tsi, view.tsr);
        let (Some(idr), Some(auth)) = (view.idr, view.auth) else {
            let why = view
                .error()
                .map_or("IKE_AUTH response without IDr/AUTH".to_string(), |k| {
                    format!("peer answered IKE_AUTH with {k}")
                });
            self.fail(sa, DownReason::Other(why), now);
            return;
        };
        let keys = sa.phase.keys().expect("keyed");
        let suite = keys.suite;
        let expect = crypto::psk_auth(
            suite.prf,
            cfg.psk.bytes(),
            &sa.init_response,
            &sa.ni,
            keys.sk_pr(),
            &idr.rest_of_payload(),
        );
        let id_ok = cfg.remote_id.as_ref().is_none_or(|want| {
            Identity::from_payload(idr.id_type, &idr.data).as_ref() == Some(want)
        });
        let auth_ok = auth.method == AUTH_PSK
            && constant_time::verify_slices_are_equal(&expect, &auth.data).is_ok();
        if !(id_ok && auth_ok) {
            // Tell the peer (RFC 7296 §2.21.2), then forget the SA.
            let id_out = sa.next_out_id;
            sa.next_out_id = sa.next_out_id.wrapping_add(1);
            if let Ok(b) = self.encrypt(
                sa,
                exchange::INFORMATIONAL,
                false,
                id_out,
                &[notify_payload(notify::AUTHENTICATION_FAILED, vec![])],
            ) {
                self.transmits.push_back(wrap(sa.local_port, sa.remote, b));
            }
            let why = if id_ok {
                AuthFailure::PeerAuthInvalid
            } else {
                AuthFailure::WrongIdentity
            };
            self.fail(sa, DownReason::AuthenticationFailed(why), now);
            return;
        }
        let Some(Step::InitiatorAuth { child_spi_in }) = sa.phase.step() else {
            return;
        };
        let spi_in = child_spi_in;
        sa.establish();
        self.ike_established(sa, now, suite.name());
        let ours_ts = format!(
            "local {} remote {}",
            ts_text(&cfg.local_ts),
            ts_text(&cfg.remote_ts)
        );
        let failure = if view.notify(notify::NO_PROPOSAL_CHOSEN).is_some() {
            Some(DownReason::NoProposalChosen {
                ours: cfg
                    .esp_proposals
                    .iter()
                    .map(|p| format!("ESP:{p}"))
                    .collect(),
                theirs: vec![],
            })
        } else if view.notify(notify::TS_UNACCEPTABLE).is_some() {
            Some(DownReason::TsUnacceptable {
                ours: ours_ts.clone(),
                theirs: "not disclosed (the responder only answers TS_UNACCEPTABLE)".into(),
            })
        } else if let Some(k) = view.error() {
            Some(DownReason::Other(format!("peer refused the Child SA: {k}")))
        } else {
            match (esp, tsi, tsr) {
                (Some(esp), Some(tsi), Some(tsr)) => {
                    match proposal::accept_esp(&cfg.esp_proposals, esp) {
                        None => Some(DownReason::Other(
                            "responder selected an ESP proposal we did not offer".into(),
                        )),
                        Some((csuite, spi_out)) => {
                            let l = ts_list(tsi);
                            let r = ts_list(tsr);
                            let inside = |got: &[TrafficSelector], ours: &[TrafficSelector]| {
                                !got.is_empty()
                                    && got.iter().all(|g| ours.iter().any(|o| o.covers(g)))
                            };
                            if inside(&l, &cfg.local_ts) && inside(&r, &cfg.remote_ts) {
                                let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
                                self.install_child(
                                    sa, now, csuite, spi_in, spi_out, l, r, None, &ni, &nr, true,
                                    true,
                                );
                                self.check_coverage(sa);
                                None
                            } else {
                                Some(DownReason::TsUnacceptable {
                                    ours: ours_ts,
                                    theirs: format!(
                                        "TSi {} TSr {} (wider than proposed)",
                                        ts_text(&l),
                                        ts_text(&r)
                                    ),
                                })
                            }
                        }
                    }
                }
                _ => Some(DownReason::Other(
                    "IKE_AUTH response lacks the Child SA payloads".into(),
                )),
            }
        };
        if let Some(reason) = failure {
            // No usable Child SA: report and close the IKE SA.
            self.conn_down(sa.conn, reason, Some(now));
            sa.quiet = true;
            self.send_request(
                sa,
                now,
                RequestKind::DeleteIke,
                exchange::INFORMATIONAL,
                &Self::request_body(&RequestKind::DeleteIke).1,
            );
        }
    }
}
