//! Per-SA keyed primitives from aws-lc-rs. Everything here is keyed once when the SA is built;
//! the per-packet calls only reuse the expanded keys and allocate nothing.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128,
    AES_256,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::{constant_time, hmac, rand};
use zeroize::Zeroizing;

use crate::cipher::{Auth, Cipher, AES_BLOCK, GCM_IV_LEN, GCM_SALT_LEN};
use crate::error::EspError;

/// AES-GCM keyed for one SA plus its RFC 4106 salt.
pub(crate) struct Gcm {
    key: LessSafeKey,
    salt: Zeroizing<[u8; GCM_SALT_LEN]>,
}

impl Gcm {
    /// `keymat` is the AES key followed by the 4-byte salt (RFC 4106 §8.1).
    pub(crate) fn new(cipher: Cipher, keymat: &[u8]) -> Result<Self, EspError> {
        let alg = match cipher {
            Cipher::AesGcm128 => &aead::AES_128_GCM,
            Cipher::AesGcm256 => &aead::AES_256_GCM,
            _ => unreachable!("Gcm::new called for {cipher}"),
        };
        let (key, salt) = keymat.split_at(cipher.aes_key_len());
        let key = UnboundKey::new(alg, key).map_err(|_| EspError::KeyRejected {
            which: "encryption",
            cipher,
        })?;
        let mut s = Zeroizing::new([0u8; GCM_SALT_LEN]);
        s.copy_from_slice(salt);
        Ok(Self {
            key: LessSafeKey::new(key),
            salt: s,
        })
    }

    #[inline]
    fn nonce(&self, iv: &[u8; GCM_IV_LEN]) -> Nonce {
        let mut n = [0u8; 12];
        n[..GCM_SALT_LEN].copy_from_slice(&*self.salt);
        n[GCM_SALT_LEN..].copy_from_slice(iv);
        Nonce::assume_unique_for_key(n)
    }

    /// Encrypts `in_out` in place and returns the 16-byte ICV.
    #[inline]
    pub(crate) fn seal(
        &self,
        iv: &[u8; GCM_IV_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<aead::Tag, EspError> {
        self.key
            .seal_in_place_separate_tag(self.nonce(iv), Aad::from(aad), in_out)
            .map_err(|_| EspError::SealFailed)
    }

    /// Verifies and decrypts `ciphertext || icv` in place; returns the plaintext part.
    #[inline]
    pub(crate) fn open<'a>(
        &self,
        iv: &[u8; GCM_IV_LEN],
        aad: &[u8],
        in_out: &'a mut [u8],
    ) -> Option<&'a mut [u8]> {
        self.key
            .open_in_place(self.nonce(iv), Aad::from(aad), in_out)
            .ok()
    }
}

/// HMAC keyed once; produces and checks truncated ICVs.
pub(crate) struct Integrity {
    key: hmac::Key,
    auth: Auth,
}

impl Integrity {
    pub(crate) fn new(auth: Auth, key: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(auth.algorithm(), key),
            auth,
        }
    }

    /// Writes the truncated ICV of `data` into `icv` (exactly `auth.icv_len()` bytes).
    #[inline]
    pub(crate) fn compute(&self, data: &[u8], icv: &mut [u8]) {
        let tag = hmac::sign(&self.key, data);
        icv.copy_from_slice(&tag.as_ref()[..self.auth.icv_len()]);
    }

    /// Constant-time check of a received truncated ICV.
    #[inline]
    pub(crate) fn verify(&self, data: &[u8], icv: &[u8]) -> bool {
        let tag = hmac::sign(&self.key, data);
        constant_time::verify_slices_are_equal(&tag.as_ref()[..self.auth.icv_len()], icv).is_ok()
    }
}

fn aes_alg(cipher: Cipher) -> &'static aws_lc_rs::cipher::Algorithm {
    if cipher.aes_key_len() == 16 {
        &AES_128
    } else {
        &AES_256
    }
}

/// Outbound AES-CBC: the CBC key, the integrity key and the IV generator.
///
/// IVs must be unpredictable (RFC 3602 §2.4, NIST SP 800-38A appendix C). Each IV is a block
/// cipher encryption, under a random per-SA key, of a random per-SA prefix and the packet's
/// sequence number: unique per packet, unpredictable without the secret key, and far cheaper
/// than drawing from the system RNG per packet.
pub(crate) struct CbcSeal {
    enc: EncryptingKey,
    iv_key: EncryptingKey,
    iv_prefix: Zeroizing<[u8; 8]>,
    pub(crate) integ: Integrity,
}

impl CbcSeal {
    pub(crate) fn new(
        cipher: Cipher,
        auth: Auth,
        enc_key: &[u8],
        integ_key: &[u8],
    ) -> Result<Self, EspError> {
        let rejected = |which| EspError::KeyRejected { which, cipher };
        let enc = UnboundCipherKey::new(aes_alg(cipher), enc_key)
            .and_then(EncryptingKey::cbc)
            .map_err(|_| rejected("encryption"))?;
        let mut iv_secret = Zeroizing::new([0u8; 16]);
        let mut iv_prefix = Zeroizing::new([0u8; 8]);
        rand::fill(&mut *iv_secret).map_err(|_| rejected("IV generator"))?;
        rand::fill(&mut *iv_prefix).map_err(|_| rejected("IV generator"))?;
        let iv_key = UnboundCipherKey::new(&AES_128, &*iv_secret)
            .and_then(EncryptingKey::ecb)
            .map_err(|_| rejected("IV generator"))?;
        Ok(Self {
            enc,
            iv_key,
            iv_prefix,
            integ: Integrity::new(auth, integ_key),
        })
    }

    /// The IV for the packet with sequence number `seq`.
    #[inline]
    pub(crate) fn iv(&self, seq: u32) -> Result<[u8; AES_BLOCK], EspError> {
        let mut block = [0u8; AES_BLOCK];
        block[..8].copy_from_slice(&*self.iv_prefix);
        block[12..].copy_from_slice(&seq.to_be_bytes());
        self.iv_key
            .less_safe_encrypt(&mut block, EncryptionContext::None)
            .map_err(|_| EspError::SealFailed)?;
        Ok(block)
    }

    /// CBC-encrypts `in_out` (a whole number of blocks) in place with `iv`.
    #[inline]
    pub(crate) fn encrypt(&self, iv: [u8; AES_BLOCK], in_out: &mut [u8]) -> Result<(), EspError> {
        self.enc
            .less_safe_encrypt(in_out, EncryptionContext::Iv128(FixedLength::from(iv)))
            .map(|_| ())
            .map_err(|_| EspError::SealFailed)
    }
}

/// Inbound AES-CBC: the CBC decryption key and the integrity key.
pub(crate) struct CbcOpen {
    dec: DecryptingKey,
    pub(crate) integ: Integrity,
}

impl CbcOpen {
    pub(crate) fn new(
        cipher: Cipher,
        auth: Auth,
        enc_key: &[u8],
        integ_key: &[u8],
    ) -> Result<Self, EspError> {
        let dec = UnboundCipherKey::new(aes_alg(cipher), enc_key)
            .and_then(DecryptingKey::cbc)
            .map_err(|_| EspError::KeyRejected {
                which: "encryption",
                cipher,
            })?;
        Ok(Self {
            dec,
            integ: Integrity::new(auth, integ_key),
        })
    }

    /// CBC-decrypts `in_out` (a whole number of blocks, checked by the caller) in place.
    #[inline]
    pub(crate) fn decrypt(&self, iv: [u8; AES_BLOCK], in_out: &mut [u8]) -> bool {
        self.dec
            .decrypt(in_out, DecryptionContext::Iv128(FixedLength::from(iv)))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    const GCM_KEY: &str = "feffe9928665731c6d6a8f9467308308";
    /// GCM spec (McGrew & Viega) test cases 3/4/15/16 use IV cafebabe facedbaddecaf888, which
    /// in RFC 4106 terms is salt `cafebabe` (KEYMAT tail) and explicit IV `facedbaddecaf888`.
    const SALT: &str = "cafebabe";
    const IV: [u8; 8] = [0xfa, 0xce, 0xdb, 0xad, 0xde, 0xca, 0xf8, 0x88];
    const PT: &str = "d9313225f88406e5a55909c5aff5269a86a7a953153 4f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
    const AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";

    fn check_gcm(cipher: Cipher, key: &str, pt_len: usize, aad: &str, ct: &str, tag: &str) {
        let keymat = h(&format!("{key}{SALT}"));
        let gcm = Gcm::new(cipher, &keymat).unwrap();
        let mut buf = h(PT)[..pt_len].to_vec();
        let t = gcm.seal(&IV, &h(aad), &mut buf).unwrap();
        assert_eq!(hex::encode(&buf), ct.replace(' ', ""));
        assert_eq!(hex::encode(t.as_ref()), tag);
        buf.extend_from_slice(t.as_ref());
        let opened = gcm.open(&IV, &h(aad), &mut buf).unwrap();
        assert_eq!(opened, &h(PT)[..pt_len]);
        // One flipped ICV bit must fail.
        let mut bad = h(ct);
        let mut bad_tag = h(tag);
        bad_tag[15] ^= 1;
        bad.extend_from_slice(&bad_tag);
        assert!(gcm.open(&IV, &h(aad), &mut bad).is_none());
    }

    #[test]
    fn gcm_spec_test_case_3_aes128_through_salt_and_iv() {
        check_gcm(
            Cipher::AesGcm128,
            GCM_KEY,
            64,
            "",
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
            "4d5c2af327cd64a62cf35abd2ba6fab4",
        );
    }

    #[test]
    fn gcm_spec_test_case_4_aes128_with_aad() {
        check_gcm(
            Cipher::AesGcm128,
            GCM_KEY,
            60,
            AAD,
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
            "5bc94fbc3221a5db94fae95ae7121a47",
        );
    }

    #[test]
    fn gcm_spec_test_case_15_aes256() {
        check_gcm(
            Cipher::AesGcm256,
            &GCM_KEY.repeat(2),
            64,
            "",
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
            "b094dac5d93471bdec1a502270e3cc6c",
        );
    }

    #[test]
    fn gcm_spec_test_case_16_aes256_with_aad() {
        check_gcm(
            Cipher::AesGcm256,
            &GCM_KEY.repeat(2),
            60,
            AAD,
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            "76fc6ece0f4e1768cddf8853bb2d551b",
        );
    }

    /// RFC 4868 §2.7.2 test vectors, truncated as the ESP ICV is (RFC 4868 §2.3), and RFC 2202
    /// for HMAC-SHA1-96 (RFC 2404).
    #[test]
    fn rfc4868_hmac_truncation() {
        let cases: [(Auth, Vec<u8>, &[u8], &str); 5] = [
            (
                Auth::HmacSha256_128,
                vec![0x0b; 32],
                b"Hi There",
                "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7",
            ),
            (
                Auth::HmacSha256_128,
                b"JefeJefeJefeJefeJefeJefeJefeJefe".to_vec(),
                b"what do ya want for nothing?",
                "167f928588c5cc2eef8e3093caa0e87c9ff566a14794aa61648d81621a2a40c6",
            ),
            (
                Auth::HmacSha384_192,
                vec![0x0b; 48],
                b"Hi There",
                "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee9737a959796489bddbc4c5df61d5b3297b4fb68dab9f1b582c2",
            ),
            (
                Auth::HmacSha384_192,
                b"JefeJefeJefeJefeJefeJefeJefeJefeJefeJefeJefeJefe".to_vec(),
                b"what do ya want for nothing?",
                "2c7353974f1842fd66d53c452ca42122b28c0b594cfb184da86a368e9b8e16f5349524ca4e82400cbde0686d403371c9",
            ),
            (
                Auth::HmacSha1_96,
                vec![0x0b; 20],
                b"Hi There",
                "b617318655057264e28bc0b6fb378c8ef146be00",
            ),
        ];
        for (auth, key, data, full) in cases {
            let integ = Integrity::new(auth, &key);
            let mut icv = vec![0u8; auth.icv_len()];
            integ.compute(data, &mut icv);
            let full = h(full);
            assert_eq!(icv, full[..auth.icv_len()], "{auth}");
            if auth != Auth::HmacSha1_96 {
                assert_eq!(
                    icv.len() * 2,
                    full.len(),
                    "{auth}: RFC 4868 ICV is half the output"
                );
            }
            assert!(integ.verify(data, &icv));
            let mut wrong = icv.clone();
            *wrong.last_mut().unwrap() ^= 0x80;
            assert!(!integ.verify(data, &wrong));
            assert!(!integ.verify(b"Hi there", &icv));
        }
    }

    #[test]
    fn cbc_ivs_are_distinct_per_sequence_number_and_per_sa() {
        let a = CbcSeal::new(
            Cipher::AesCbc128(Auth::HmacSha1_96),
            Auth::HmacSha1_96,
            &[1; 16],
            &[2; 20],
        )
        .unwrap();
        let b = CbcSeal::new(
            Cipher::AesCbc128(Auth::HmacSha1_96),
            Auth::HmacSha1_96,
            &[1; 16],
            &[2; 20],
        )
        .unwrap();
        let ivs: std::collections::HashSet<[u8; 16]> =
            (1..=1000).map(|s| a.iv(s).unwrap()).collect();
        assert_eq!(ivs.len(), 1000);
        assert_ne!(
            a.iv(1).unwrap(),
            b.iv(1).unwrap(),
            "IV keys are random per SA"
        );
        // Not a visible counter: consecutive IVs differ in many bits.
        let (x, y) = (a.iv(1).unwrap(), a.iv(2).unwrap());
        let differing: u32 = x.iter().zip(y).map(|(p, q)| (p ^ q).count_ones()).sum();
        assert!(differing > 20, "only {differing} bits differ");
    }
}
