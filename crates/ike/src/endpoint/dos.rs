//! Denial-of-service defence for new IKE SAs (RFC 7296 §2.6): COOKIE challenges under load and bounded half-open state.

use super::*;

impl Endpoint {
    /// Denial-of-service defence for a new IKE_SA_INIT (RFC 7296 §2.6). Under load — many
    /// half-open SAs overall, or many from this source address — the request must echo a
    /// valid COOKIE; otherwise a COOKIE is sent back (no state kept) and `false` returned.
    /// A sender that echoes a valid cookie receives at its address, so it is admitted even
    /// when spoofers fill that address's share: the oldest half-open SA of the source (or
    /// overall, at [`MAX_HALF_OPEN`]) makes room. A spoofer therefore cannot lock out the
    /// peer whose address it uses, and state stays bounded.
    pub(super) fn admit_half_open(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        spi_i: u64,
        msg: &Message,
    ) -> Result<bool, IkeError> {
        let per_source = self
            .half_open
            .keys()
            .filter(|(a, _)| a.ip() == remote.ip())
            .count();
        let loaded = per_source >= self.half_open_per_source
            || self.half_open.len() >= self.cookie_threshold.min(MAX_HALF_OPEN);
        if !loaded {
            return Ok(true);
        }
        let ni = msg
            .payloads
            .iter()
            .find_map(|p| match &p.body {
                PayloadBody::Nonce(n) => Some(n.as_slice()),
                _ => None,
            })
            .unwrap_or_default();
        let echoed = msg.payloads.first().and_then(|p| match &p.body {
            PayloadBody::Notify(n) if n.kind == notify::COOKIE => Some(n.data.as_slice()),
            _ => None,
        });
        let valid = echoed.is_some_and(|c| self.cookies.verify(c, ni, remote.ip(), spi_i));
        if !valid {
            let Some(cookie) = self.cookies.make(ni, remote.ip(), spi_i) else {
                // no secret (no randomness): refusing is all that is left
                return Err(IkeError::TooManyHalfOpen(remote.ip()));
            };
            let reply = Message {
                header: Header {
                    spi_i,
                    spi_r: 0,
                    next_payload: 0,
                    version: 0x20,
                    exchange: exchange::IKE_SA_INIT,
                    flags: flags::RESPONSE,
                    message_id: 0,
                    length: 0,
                },
                payloads: vec![notify_payload(notify::COOKIE, cookie)],
            }
            .encode();
            self.transmits.push_back(wrap(local.port(), remote, reply));
            self.cookies_sent += 1;
            return Ok(false);
        }
        if per_source >= self.half_open_per_source {
            self.evict_oldest_half_open(Some(remote.ip()));
        }
        while self.half_open.len() >= MAX_HALF_OPEN {
            if !self.evict_oldest_half_open(None) {
                break;
            }
        }
        Ok(true)
    }

    /// Drops the oldest half-open SA (of `source`, if given); whether there was one.
    pub(super) fn evict_oldest_half_open(&mut self, source: Option<IpAddr>) -> bool {
        let oldest = self
            .half_open
            .iter()
            .filter(|((a, _), _)| source.is_none_or(|s| a.ip() == s))
            .filter_map(|(_, spi)| self.sas.get(spi).map(|sa| (sa.created, *spi)))
            .min();
        let Some((_, spi)) = oldest else {
            return false;
        };
        if let Some(sa) = self.sas.remove(&spi) {
            self.forget(&sa);
        }
        self.half_open.retain(|_, v| *v != spi);
        true
    }
}
