//! Where the endpoint's randomness comes from: SPIs, nonces, key-exchange secrets, CBC IVs,
//! cookie secrets and timer jitter all draw from one [`Random`] the caller may choose. A real
//! gateway uses the system's generator; a test passes a seeded one, so that an exchange
//! recorded against a real peer can be replayed byte for byte.

use aws_lc_rs::{hmac, rand};

use crate::config::DhGroup;
use crate::crypto::DhPrivate;
use crate::error::CryptoError;

/// A source of random octets.
pub trait Random: Send {
    /// Fills `out` with random octets.
    fn fill(&mut self, out: &mut [u8]) -> Result<(), CryptoError>;
}

/// The system's cryptographically secure generator (aws-lc); what a gateway uses.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRandom;

impl Random for SystemRandom {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), CryptoError> {
        rand::fill(out).map_err(|_| CryptoError::KeyGeneration)
    }
}

/// A deterministic generator (HMAC-SHA256 of a counter under the seed) for replaying
/// recorded exchanges in tests. Never for a gateway: whoever knows the seed knows every key.
pub struct SeededRandom {
    key: hmac::Key,
    counter: u64,
    pending: Vec<u8>,
}

impl SeededRandom {
    /// A generator whose output is fixed by `seed`.
    pub fn new(seed: &[u8]) -> Self {
        SeededRandom {
            key: hmac::Key::new(hmac::HMAC_SHA256, seed),
            counter: 0,
            pending: Vec::new(),
        }
    }
}

impl Random for SeededRandom {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), CryptoError> {
        for b in out.iter_mut() {
            if self.pending.is_empty() {
                let tag = hmac::sign(&self.key, &self.counter.to_be_bytes());
                self.counter += 1;
                self.pending = tag.as_ref().iter().rev().copied().collect();
            }
            *b = self.pending.pop().expect("refilled above");
        }
        Ok(())
    }
}

/// The endpoint's generator with the shapes it needs.
pub(crate) struct Rng(Box<dyn Random>);

impl Rng {
    /// Wraps a source.
    pub(crate) fn new(source: Box<dyn Random>) -> Self {
        Rng(source)
    }

    /// `n` random octets.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Vec<u8>, CryptoError> {
        let mut v = vec![0u8; n];
        self.0.fill(&mut v)?;
        Ok(v)
    }

    /// Fills a caller's buffer.
    pub(crate) fn fill(&mut self, out: &mut [u8]) -> Result<(), CryptoError> {
        self.0.fill(out)
    }

    /// A non-zero 64-bit IKE SPI.
    pub(crate) fn spi64(&mut self) -> Result<u64, CryptoError> {
        loop {
            let mut b = [0u8; 8];
            self.0.fill(&mut b)?;
            let v = u64::from_be_bytes(b);
            if v != 0 {
                return Ok(v);
            }
        }
    }

    /// A 32-bit ESP SPI outside the reserved range 0..=255.
    pub(crate) fn spi32(&mut self) -> Result<u32, CryptoError> {
        loop {
            let mut b = [0u8; 4];
            self.0.fill(&mut b)?;
            let v = u32::from_be_bytes(b);
            if v > 255 {
                return Ok(v);
            }
        }
    }

    /// A fresh key-exchange secret for `group` (a private value within the group's range,
    /// drawn by rejection).
    pub(crate) fn dh(&mut self, group: DhGroup) -> Result<DhPrivate, CryptoError> {
        for _ in 0..64 {
            let mut secret = zeroize::Zeroizing::new(vec![0u8; DhPrivate::private_len(group)]);
            self.0.fill(&mut secret)?;
            match DhPrivate::from_private(group, &secret) {
                Ok(k) => return Ok(k),
                Err(CryptoError::BadKeyLength) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(CryptoError::KeyGeneration)
    }

    /// A number in `0..n` for timer jitter (`n / 2` when the source fails).
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        let mut b = [0u8; 4];
        match self.0.fill(&mut b) {
            Ok(()) if n > 0 => u32::from_be_bytes(b) % n,
            _ => n / 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_output_is_fixed_by_the_seed_and_differs_between_seeds() {
        let (mut a, mut b, mut c) = (
            Rng::new(Box::new(SeededRandom::new(b"one"))),
            Rng::new(Box::new(SeededRandom::new(b"one"))),
            Rng::new(Box::new(SeededRandom::new(b"two"))),
        );
        let (x, y, z) = (
            a.bytes(100).unwrap(),
            b.bytes(100).unwrap(),
            c.bytes(100).unwrap(),
        );
        assert_eq!(x, y);
        assert_ne!(x, z);
        for g in [
            DhGroup::Ecp256,
            DhGroup::Ecp384,
            DhGroup::Curve25519,
            DhGroup::Modp2048,
        ] {
            assert_eq!(
                a.dh(g).unwrap().public(),
                b.dh(g).unwrap().public(),
                "{g:?}"
            );
        }
        let mut s = Rng::new(Box::new(SystemRandom));
        assert_ne!(s.bytes(32).unwrap(), s.bytes(32).unwrap());
        assert!(s.spi32().unwrap() > 255 && s.spi64().unwrap() != 0);
        assert!((0..1000).all(|_| s.below(41) < 41));
    }
}
