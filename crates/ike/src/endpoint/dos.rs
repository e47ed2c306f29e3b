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
        let per_source = self.half_open.count_from(remote.ip());
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
        let Some(spi) = self.half_open.oldest(source) else {
            return false;
        };
        if let Some(sa) = self.sas.remove(&spi) {
            self.forget(&sa);
        }
        self.half_open.remove_spi(spi);
        true
    }
}

/// The half-open (responder, not yet authenticated) IKE SAs, indexed so that everything a
/// new IKE_SA_INIT asks of them costs the same with 4,096 of them as with 4: the SA a
/// retransmitted request belongs to, how many a source address holds, which is the oldest
/// (overall or of one source), and the removal of one by our SPI.
#[derive(Default)]
pub(super) struct HalfOpen {
    /// (peer, initiator's SPI) -> (our SPI, created).
    by_peer: HashMap<(SocketAddr, u64), (u64, Instant)>,
    /// Our SPI -> (peer, initiator's SPI).
    by_spi: HashMap<u64, (SocketAddr, u64)>,
    /// Half-open SAs per source address.
    per_ip: HashMap<IpAddr, usize>,
    /// (created, our SPI), oldest first.
    by_age: std::collections::BTreeSet<(Instant, u64)>,
}

impl HalfOpen {
    /// Our SPI of the half-open SA that `peer`'s request with initiator SPI `spi_i` made.
    pub(super) fn get(&self, peer: SocketAddr, spi_i: u64) -> Option<u64> {
        self.by_peer.get(&(peer, spi_i)).map(|(spi, _)| *spi)
    }

    pub(super) fn insert(&mut self, peer: SocketAddr, spi_i: u64, spi_r: u64, created: Instant) {
        if let Some((old, _)) = self.by_peer.get(&(peer, spi_i)).copied() {
            self.remove_spi(old);
        }
        self.by_peer.insert((peer, spi_i), (spi_r, created));
        self.by_spi.insert(spi_r, (peer, spi_i));
        *self.per_ip.entry(peer.ip()).or_default() += 1;
        self.by_age.insert((created, spi_r));
    }

    /// Forgets the half-open SA with our SPI `spi_r` (authenticated, expired or dropped).
    pub(super) fn remove_spi(&mut self, spi_r: u64) {
        let Some(key) = self.by_spi.remove(&spi_r) else {
            return;
        };
        if let Some((_, created)) = self.by_peer.remove(&key) {
            self.by_age.remove(&(created, spi_r));
        }
        if let Some(n) = self.per_ip.get_mut(&key.0.ip()) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&key.0.ip());
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.by_spi.len()
    }

    /// Half-open SAs whose IKE_SA_INIT came from `ip`.
    pub(super) fn count_from(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Our SPI of the oldest half-open SA (of `source`, if given).
    pub(super) fn oldest(&self, source: Option<IpAddr>) -> Option<u64> {
        self.by_age.iter().map(|(_, spi)| *spi).find(|spi| {
            source.is_none_or(|s| self.by_spi.get(spi).is_some_and(|(p, _)| p.ip() == s))
        })
    }
}
