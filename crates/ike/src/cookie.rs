//! Stateless COOKIE challenges (RFC 7296 §2.6): under load a responder answers IKE_SA_INIT
//! with a cookie computed from the request and a secret instead of keeping state, so only an
//! initiator that receives at its claimed address gets a half-open IKE SA. A spoofer who
//! floods from a peer's address therefore cannot lock that peer out: the peer always gets
//! a cookie back and, echoing it, a half-open slot.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use aws_lc_rs::{constant_time, hmac};

use crate::rng::Rng;

/// How long a cookie secret is used before the next one takes over; cookies made with the
/// previous secret stay valid for one more period, so an initiator that is mid-retry is not
/// refused (RFC 7296 §2.6 asks for periodic regeneration with a version in the cookie).
pub const SECRET_LIFETIME: Duration = Duration::from_secs(120);

/// Octets of the MAC kept in a cookie (plus one version octet in front).
const MAC_LEN: usize = 20;

struct Secret {
    version: u8,
    key: hmac::Key,
}

impl Secret {
    fn generate(version: u8, rng: &mut Rng) -> Option<Secret> {
        let mut k = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill(&mut k[..]).ok()?;
        Some(Secret {
            version,
            key: hmac::Key::new(hmac::HMAC_SHA256, &k[..]),
        })
    }

    fn cookie(&self, ni: &[u8], ip: IpAddr, spi_i: u64) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&(ni.len() as u16).to_be_bytes());
        ctx.update(ni);
        match ip {
            IpAddr::V4(a) => ctx.update(&a.octets()),
            IpAddr::V6(a) => ctx.update(&a.octets()),
        }
        ctx.update(&spi_i.to_be_bytes());
        let tag = ctx.sign();
        let mut out = Vec::with_capacity(1 + MAC_LEN);
        out.push(self.version);
        out.extend_from_slice(&tag.as_ref()[..MAC_LEN]);
        out
    }
}

/// The responder's cookie secrets: the current one and the one before it.
pub(crate) struct CookieJar {
    current: Option<Secret>,
    previous: Option<Secret>,
    rotate_at: Option<Instant>,
}

impl CookieJar {
    /// A jar with a fresh secret from `rng`.
    pub(crate) fn new(rng: &mut Rng) -> Self {
        CookieJar {
            current: Secret::generate(0, rng),
            previous: None,
            rotate_at: None,
        }
    }

    /// Rotates the secret once its lifetime has passed (the first call only starts the clock).
    pub(crate) fn tick(&mut self, now: Instant, rng: &mut Rng) {
        match self.rotate_at {
            None => self.rotate_at = Some(now + SECRET_LIFETIME),
            Some(t) if now >= t => {
                let version = self
                    .current
                    .as_ref()
                    .map_or(0, |s| s.version.wrapping_add(1));
                if let Some(next) = Secret::generate(version, rng) {
                    self.previous = self.current.replace(next);
                }
                self.rotate_at = Some(now + SECRET_LIFETIME);
            }
            Some(_) => {}
        }
    }

    /// The cookie for this request, or `None` when no secret could be made (no randomness):
    /// then the responder cannot challenge and must refuse instead.
    pub(crate) fn make(&self, ni: &[u8], ip: IpAddr, spi_i: u64) -> Option<Vec<u8>> {
        self.current.as_ref().map(|s| s.cookie(ni, ip, spi_i))
    }

    /// Whether `cookie` was made by the current or the previous secret for this request.
    pub(crate) fn verify(&self, cookie: &[u8], ni: &[u8], ip: IpAddr, spi_i: u64) -> bool {
        let Some(&version) = cookie.first() else {
            return false;
        };
        [&self.current, &self.previous]
            .into_iter()
            .flatten()
            .filter(|s| s.version == version)
            .any(|s| {
                constant_time::verify_slices_are_equal(&s.cookie(ni, ip, spi_i), cookie).is_ok()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn cookies_bind_nonce_address_and_spi_and_survive_one_rotation() {
        let mut rng = Rng::new(Box::new(crate::rng::SystemRandom));
        let mut jar = CookieJar::new(&mut rng);
        let t0 = Instant::now();
        jar.tick(t0, &mut rng);
        let c = jar.make(b"nonce-0123456789", IP, 7).unwrap();
        assert!(jar.verify(&c, b"nonce-0123456789", IP, 7));
        assert!(!jar.verify(&c, b"nonce-0123456780", IP, 7));
        assert!(!jar.verify(&c, b"nonce-0123456789", IP, 8));
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(!jar.verify(&c, b"nonce-0123456789", other, 7));
        let mut forged = c.clone();
        forged[5] ^= 1;
        assert!(!jar.verify(&forged, b"nonce-0123456789", IP, 7));
        assert!(!jar.verify(&[], b"nonce-0123456789", IP, 7));
        jar.tick(t0 + SECRET_LIFETIME, &mut rng);
        assert!(
            jar.verify(&c, b"nonce-0123456789", IP, 7),
            "previous secret still accepted"
        );
        assert_ne!(
            jar.make(b"nonce-0123456789", IP, 7).unwrap(),
            c,
            "a new secret"
        );
        jar.tick(t0 + SECRET_LIFETIME * 2, &mut rng);
        assert!(
            !jar.verify(&c, b"nonce-0123456789", IP, 7),
            "two rotations later it is refused"
        );
    }
}
