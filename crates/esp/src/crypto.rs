//! Per-SA keyed primitives: aws-lc-rs for AES and SHA HMACs, RustCrypto for the legacy DES,
//! 3DES and HMAC-MD5 that aws-lc-rs lacks. Everything here is keyed once when the SA is built;
//! the per-packet calls only reuse the expanded keys and allocate nothing.

use ::hmac::Mac as _;
use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128,
    AES_192, AES_256,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::{constant_time, hmac, rand};
use cbc::cipher::inout::InOutBuf;
use cbc::cipher::{
    BlockCipher, BlockDecrypt, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, InnerIvInit, KeyInit,
};
use des::{Des, TdesEde3};
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
            Cipher::AesGcm192 => &aead::AES_192_GCM,
            Cipher::AesGcm256 => &aead::AES_256_GCM,
            _ => unreachable!("Gcm::new called for {cipher}"),
        };
        let (key, salt) = keymat.split_at(cipher.key_len());
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

/// HMAC-MD5 from RustCrypto: aws-lc-rs has no MD5 HMAC.
type HmacMd5 = ::hmac::Hmac<md5::Md5>;

/// Longest truncated ICV of any [`Auth`] (HMAC-SHA2-384-192).
const MAX_ICV_LEN: usize = 24;

/// The keyed HMAC of one SA, from whichever library has the hash.
// Inline like the SA's other keys: built once, and boxing would cost a pointer chase per packet.
#[allow(clippy::large_enum_variant)]
enum Mac {
    /// SHA-1 and SHA-2 from aws-lc-rs, which wipes the key schedule when dropped.
    AwsLc(hmac::Key),
    /// MD5 from RustCrypto, keyed once; each packet hashes on a copy of the keyed state.
    Md5(HmacMd5),
}

/// HMAC keyed once; produces and checks truncated ICVs.
pub(crate) struct Integrity {
    mac: Mac,
    auth: Auth,
}

impl Integrity {
    pub(crate) fn new(auth: Auth, key: &[u8]) -> Self {
        let mac = match auth.algorithm() {
            Some(alg) => Mac::AwsLc(hmac::Key::new(alg, key)),
            None => Mac::Md5(
                <HmacMd5 as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length"),
            ),
        };
        Self { mac, auth }
    }

    /// The ICV of `data`, truncated to `auth.icv_len()` bytes at the start of the array.
    #[inline]
    fn truncated(&self, data: &[u8]) -> [u8; MAX_ICV_LEN] {
        let n = self.auth.icv_len();
        let mut icv = [0u8; MAX_ICV_LEN];
        match &self.mac {
            Mac::AwsLc(key) => icv[..n].copy_from_slice(&hmac::sign(key, data).as_ref()[..n]),
            Mac::Md5(keyed) => {
                let mut mac = keyed.clone();
                mac.update(data);
                icv[..n].copy_from_slice(&mac.finalize().into_bytes()[..n]);
            }
        }
        icv
    }

    /// Writes the truncated ICV of `data` into `icv` (exactly `auth.icv_len()` bytes).
    #[inline]
    pub(crate) fn compute(&self, data: &[u8], icv: &mut [u8]) {
        icv.copy_from_slice(&self.truncated(data)[..self.auth.icv_len()]);
    }

    /// Constant-time check of a received truncated ICV.
    #[inline]
    pub(crate) fn verify(&self, data: &[u8], icv: &[u8]) -> bool {
        let expected = self.truncated(data);
        constant_time::verify_slices_are_equal(&expected[..self.auth.icv_len()], icv).is_ok()
    }
}

impl Drop for Integrity {
    /// RustCrypto's HMAC state has no zeroize support and `unsafe` is forbidden here, so the
    /// keyed MD5 state is overwritten in place with one keyed by zeros; `black_box` keeps the
    /// compiler from dropping the overwrite as a dead store.
    fn drop(&mut self) {
        if let Mac::Md5(keyed) = &mut self.mac {
            *keyed = <HmacMd5 as ::hmac::Mac>::new(&Default::default());
            std::hint::black_box(keyed);
        }
    }
}

/// The aws-lc-rs AES algorithm for a CBC cipher's key length.
fn aes_alg(cipher: Cipher) -> &'static aws_lc_rs::cipher::Algorithm {
    match cipher.key_len() {
        16 => &AES_128,
        24 => &AES_192,
        _ => &AES_256,
    }
}

/// A RustCrypto DES or 3DES key schedule for `cipher`'s encryption KEYMAT.
fn des_key<C: KeyInit>(cipher: Cipher, key: &[u8]) -> Result<C, EspError> {
    C::new_from_slice(key).map_err(|_| EspError::KeyRejected {
        which: "encryption",
        cipher,
    })
}

/// CBC-encrypts `data` (whole blocks) in place with a RustCrypto block cipher; `false` when the
/// IV or the data do not fit its block size.
#[inline]
fn rc_cbc_encrypt<C: BlockEncrypt + BlockCipher>(key: &C, iv: &[u8], data: &mut [u8]) -> bool {
    let Ok(mut cbc) = cbc::Encryptor::<&C>::inner_iv_slice_init(key, iv) else {
        return false;
    };
    let (blocks, tail) = InOutBuf::from(data).into_chunks();
    if !tail.is_empty() {
        return false;
    }
    cbc.encrypt_blocks_inout_mut(blocks);
    true
}

/// CBC-decrypts `data` (whole blocks) in place with a RustCrypto block cipher; `false` when the
/// IV or the data do not fit its block size.
#[inline]
fn rc_cbc_decrypt<C: BlockDecrypt + BlockCipher>(key: &C, iv: &[u8], data: &mut [u8]) -> bool {
    let Ok(mut cbc) = cbc::Decryptor::<&C>::inner_iv_slice_init(key, iv) else {
        return false;
    };
    let (blocks, tail) = InOutBuf::from(data).into_chunks();
    if !tail.is_empty() {
        return false;
    }
    cbc.decrypt_blocks_inout_mut(blocks);
    true
}

/// The block cipher of an outbound CBC SA.
enum CbcEncrypt {
    Aes(EncryptingKey),
    Des(Des),
    TripleDes(TdesEde3),
}

impl CbcEncrypt {
    fn new(cipher: Cipher, key: &[u8]) -> Result<Self, EspError> {
        Ok(match cipher {
            Cipher::DesCbc(_) => CbcEncrypt::Des(des_key(cipher, key)?),
            Cipher::TripleDesCbc(_) => CbcEncrypt::TripleDes(des_key(cipher, key)?),
            _ => CbcEncrypt::Aes(
                UnboundCipherKey::new(aes_alg(cipher), key)
                    .and_then(EncryptingKey::cbc)
                    .map_err(|_| EspError::KeyRejected {
                        which: "encryption",
                        cipher,
                    })?,
            ),
        })
    }

    #[inline]
    fn encrypt(&self, iv: &[u8], data: &mut [u8]) -> bool {
        match self {
            CbcEncrypt::Aes(key) => {
                let Ok(iv) = FixedLength::<AES_BLOCK>::try_from(iv) else {
                    return false;
                };
                key.less_safe_encrypt(data, EncryptionContext::Iv128(iv))
                    .is_ok()
            }
            CbcEncrypt::Des(key) => rc_cbc_encrypt(key, iv, data),
            CbcEncrypt::TripleDes(key) => rc_cbc_encrypt(key, iv, data),
        }
    }
}

/// The block cipher of an inbound CBC SA.
enum CbcDecrypt {
    Aes(DecryptingKey),
    Des(Des),
    TripleDes(TdesEde3),
}

impl CbcDecrypt {
    fn new(cipher: Cipher, key: &[u8]) -> Result<Self, EspError> {
        Ok(match cipher {
            Cipher::DesCbc(_) => CbcDecrypt::Des(des_key(cipher, key)?),
            Cipher::TripleDesCbc(_) => CbcDecrypt::TripleDes(des_key(cipher, key)?),
            _ => CbcDecrypt::Aes(
                UnboundCipherKey::new(aes_alg(cipher), key)
                    .and_then(DecryptingKey::cbc)
                    .map_err(|_| EspError::KeyRejected {
                        which: "encryption",
                        cipher,
                    })?,
            ),
        })
    }

    #[inline]
    fn decrypt(&self, iv: &[u8], data: &mut [u8]) -> bool {
        match self {
            CbcDecrypt::Aes(key) => {
                let Ok(iv) = FixedLength::<AES_BLOCK>::try_from(iv) else {
                    return false;
                };
                key.decrypt(data, DecryptionContext::Iv128(iv)).is_ok()
            }
            CbcDecrypt::Des(key) => rc_cbc_decrypt(key, iv, data),
            CbcDecrypt::TripleDes(key) => rc_cbc_decrypt(key, iv, data),
        }
    }
}

/// Source of unpredictable CBC IVs (RFC 3602 §2.4, NIST SP 800-38A appendix C).
///
/// Each IV is an AES encryption, under a random per-SA key, of a random per-SA prefix and the
/// packet's sequence number: unique per packet, unpredictable without the secret key, and far
/// cheaper than drawing from the system RNG per packet. The 8-byte IVs of DES and 3DES are the
/// first half of that block, which is as unpredictable as the whole.
struct IvGenerator {
    key: EncryptingKey,
    prefix: Zeroizing<[u8; 8]>,
}

impl IvGenerator {
    fn new(cipher: Cipher) -> Result<Self, EspError> {
        let rejected = || EspError::KeyRejected {
            which: "IV generator",
            cipher,
        };
        let mut secret = Zeroizing::new([0u8; 16]);
        let mut prefix = Zeroizing::new([0u8; 8]);
        rand::fill(&mut *secret).map_err(|_| rejected())?;
        rand::fill(&mut *prefix).map_err(|_| rejected())?;
        let key = UnboundCipherKey::new(&AES_128, &*secret)
            .and_then(EncryptingKey::ecb)
            .map_err(|_| rejected())?;
        Ok(Self { key, prefix })
    }

    /// Fills `iv` (at most one AES block) with the IV for sequence number `seq`.
    #[inline]
    fn fill(&self, seq: u32, iv: &mut [u8]) -> Result<(), EspError> {
        let mut block = [0u8; AES_BLOCK];
        block[..8].copy_from_slice(&*self.prefix);
        block[12..].copy_from_slice(&seq.to_be_bytes());
        self.key
            .less_safe_encrypt(&mut block, EncryptionContext::None)
            .map_err(|_| EspError::SealFailed)?;
        iv.copy_from_slice(&block[..iv.len()]);
        Ok(())
    }
}

/// Outbound half of a transform with a separate HMAC: a CBC cipher with its IV generator, or
/// ENCR_NULL, plus the integrity key.
pub(crate) struct HmacSeal {
    /// `None` for ENCR_NULL, which neither encrypts nor carries an IV (RFC 2410 §2).
    cbc: Option<(CbcEncrypt, IvGenerator)>,
    pub(crate) integ: Integrity,
}

impl HmacSeal {
    pub(crate) fn new(
        cipher: Cipher,
        auth: Auth,
        enc_key: &[u8],
        integ_key: &[u8],
    ) -> Result<Self, EspError> {
        let cbc = match cipher {
            Cipher::Null(_) => None,
            _ => Some((CbcEncrypt::new(cipher, enc_key)?, IvGenerator::new(cipher)?)),
        };
        Ok(Self {
            cbc,
            integ: Integrity::new(auth, integ_key),
        })
    }

    /// Writes the IV for the packet with sequence number `seq` into `iv` (`iv_len()` bytes of
    /// the transform; empty for NULL).
    #[inline]
    pub(crate) fn iv(&self, seq: u32, iv: &mut [u8]) -> Result<(), EspError> {
        match &self.cbc {
            Some((_, ivs)) => ivs.fill(seq, iv),
            None => Ok(()),
        }
    }

    /// Writes the IV for `seq` into `iv` and CBC-encrypts `body` (a whole number of blocks) in
    /// place with it; NULL leaves both untouched.
    #[inline]
    pub(crate) fn encrypt(&self, seq: u32, iv: &mut [u8], body: &mut [u8]) -> Result<(), EspError> {
        let Some((enc, _)) = &self.cbc else {
            return Ok(());
        };
        self.iv(seq, iv)?;
        if enc.encrypt(iv, body) {
            Ok(())
        } else {
            Err(EspError::SealFailed)
        }
    }
}

/// Inbound half of a transform with a separate HMAC: the CBC decryption key (none for
/// ENCR_NULL) and the integrity key.
pub(crate) struct HmacOpen {
    dec: Option<CbcDecrypt>,
    pub(crate) integ: Integrity,
}

impl HmacOpen {
    pub(crate) fn new(
        cipher: Cipher,
        auth: Auth,
        enc_key: &[u8],
        integ_key: &[u8],
    ) -> Result<Self, EspError> {
        let dec = match cipher {
            Cipher::Null(_) => None,
            _ => Some(CbcDecrypt::new(cipher, enc_key)?),
        };
        Ok(Self {
            dec,
            integ: Integrity::new(auth, integ_key),
        })
    }

    /// CBC-decrypts `body` (a whole number of blocks, checked by the caller) in place with `iv`;
    /// NULL has nothing to decrypt.
    #[inline]
    pub(crate) fn decrypt(&self, iv: &[u8], body: &mut [u8]) -> bool {
        match &self.dec {
            Some(dec) => dec.decrypt(iv, body),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    const GCM_KEY: &str = "feffe9928665731c6d6a8f9467308308";
    /// GCM spec (McGrew & Viega) test cases 3/4/9/10/15/16 use IV cafebabe facedbaddecaf888, which
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
    fn gcm_spec_test_case_9_aes192() {
        check_gcm(
            Cipher::AesGcm192,
            &format!("{GCM_KEY}{}", &GCM_KEY[..16]),
            64,
            "",
            "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710acade256",
            "9924a7c8587336bfb118024db8674a14",
        );
    }

    #[test]
    fn gcm_spec_test_case_10_aes192_with_aad() {
        check_gcm(
            Cipher::AesGcm192,
            &format!("{GCM_KEY}{}", &GCM_KEY[..16]),
            60,
            AAD,
            "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710",
            "2519498e80f1478f37ba55bd6d27618c",
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

    fn seal_keys(cipher: Cipher) -> HmacSeal {
        let auth = cipher.auth().unwrap();
        HmacSeal::new(
            cipher,
            auth,
            &vec![1; cipher.enc_key_len()],
            &vec![2; auth.key_len()],
        )
        .unwrap()
    }

    fn iv<const N: usize>(keys: &HmacSeal, seq: u32) -> [u8; N] {
        let mut iv = [0u8; N];
        keys.iv(seq, &mut iv).unwrap();
        iv
    }

    #[test]
    fn cbc_ivs_are_distinct_per_sequence_number_and_per_sa() {
        let a = seal_keys(Cipher::AesCbc128(Auth::HmacSha1_96));
        let b = seal_keys(Cipher::AesCbc128(Auth::HmacSha1_96));
        let ivs: std::collections::HashSet<[u8; 16]> =
            (1..=1000).map(|s| iv::<16>(&a, s)).collect();
        assert_eq!(ivs.len(), 1000);
        assert_ne!(
            iv::<16>(&a, 1),
            iv::<16>(&b, 1),
            "IV keys are random per SA"
        );
        // Not a visible counter: consecutive IVs differ in many bits.
        let (x, y) = (iv::<16>(&a, 1), iv::<16>(&a, 2));
        let differing: u32 = x.iter().zip(y).map(|(p, q)| (p ^ q).count_ones()).sum();
        assert!(differing > 20, "only {differing} bits differ");
    }

    /// DES and 3DES take the first 8 bytes of the generator's block: still distinct per packet
    /// and per SA, and not a counter.
    #[test]
    fn eight_byte_ivs_are_the_truncated_unpredictable_block() {
        for cipher in [
            Cipher::TripleDesCbc(Auth::HmacMd5_96),
            Cipher::DesCbc(Auth::HmacSha1_96),
        ] {
            let a = seal_keys(cipher);
            let b = seal_keys(cipher);
            for seq in [1, 2, 1000] {
                assert_eq!(iv::<8>(&a, seq), iv::<16>(&a, seq)[..8], "{cipher}");
            }
            let ivs: std::collections::HashSet<[u8; 8]> =
                (1..=1000).map(|s| iv::<8>(&a, s)).collect();
            assert_eq!(ivs.len(), 1000, "{cipher}");
            assert_ne!(iv::<8>(&a, 1), iv::<8>(&b, 1), "{cipher}");
            let (x, y) = (iv::<8>(&a, 1), iv::<8>(&a, 2));
            let differing: u32 = x.iter().zip(y).map(|(p, q)| (p ^ q).count_ones()).sum();
            assert!(differing > 8, "{cipher}: only {differing} bits differ");
        }
    }

    #[test]
    fn null_has_no_iv_and_leaves_the_payload_in_clear() {
        let keys = seal_keys(Cipher::Null(Auth::HmacSha256_128));
        let mut body = *b"inner packet";
        keys.encrypt(7, &mut [], &mut body).unwrap();
        assert_eq!(&body, b"inner packet");
        let open = HmacOpen::new(
            Cipher::Null(Auth::HmacSha256_128),
            Auth::HmacSha256_128,
            &[],
            &[2; 32],
        )
        .unwrap();
        assert!(open.decrypt(&[], &mut body));
        assert_eq!(&body, b"inner packet");
    }

    /// RFC 2202 §2 HMAC-MD5 test cases 1, 2, 5 and 6, truncated to the 96-bit ESP ICV as
    /// RFC 2403 §3 prescribes (test case 5 lists that truncation itself).
    #[test]
    fn rfc2202_hmac_md5_and_rfc2403_truncation() {
        let cases: [(Vec<u8>, &[u8], &str); 4] = [
            (
                vec![0x0b; 16],
                b"Hi There",
                "9294727a3638bb1c13f48ef8158bfc9d",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?",
                "750c783e6ab0b503eaa86e310a5db738",
            ),
            (
                vec![0x0c; 16],
                b"Test With Truncation",
                "56461ef2342edc00f9bab995690efd4c",
            ),
            (
                vec![0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd",
            ),
        ];
        let auth = Auth::HmacMd5_96;
        for (key, data, full) in cases {
            let integ = Integrity::new(auth, &key);
            let mut icv = [0u8; 12];
            integ.compute(data, &mut icv);
            assert_eq!(hex::encode(icv), full[..24], "{full}");
            assert!(integ.verify(data, &icv));
            for i in [0, 5, 11] {
                let mut wrong = icv;
                wrong[i] ^= 0x01;
                assert!(!integ.verify(data, &wrong), "{full}: byte {i}");
            }
            assert!(
                !integ.verify(data, &h(full)),
                "the untruncated MAC is not the ICV"
            );
            assert!(
                !integ.verify(data, &icv[..11]),
                "a shorter ICV never verifies"
            );
            assert!(!integ.verify(b"Hi there", &icv));
        }
        // RFC 2202 test case 5 spells out HMAC-MD5-96.
        let integ = Integrity::new(auth, &[0x0c; 16]);
        let mut icv = [0u8; 12];
        integ.compute(b"Test With Truncation", &mut icv);
        assert_eq!(icv.to_vec(), h("56461ef2342edc00f9bab995"));
    }

    /// Runs `pt` through the CBC path of `cipher` with `iv` and back.
    fn check_cbc(cipher: Cipher, key: &str, iv: &str, pt: &str, ct: &str) {
        let enc = CbcEncrypt::new(cipher, &h(key)).unwrap();
        let dec = CbcDecrypt::new(cipher, &h(key)).unwrap();
        let mut buf = h(pt);
        assert!(enc.encrypt(&h(iv), &mut buf), "{cipher}");
        assert_eq!(hex::encode(&buf), ct.replace(' ', ""), "{cipher}");
        assert!(dec.decrypt(&h(iv), &mut buf), "{cipher}");
        assert_eq!(buf, h(pt), "{cipher}");
        // Partial blocks and IVs of the wrong size are refused, not padded.
        let mut short = h(pt);
        short.pop();
        assert!(!enc.encrypt(&h(iv), &mut short), "{cipher}");
        assert!(!dec.decrypt(&h(iv), &mut short), "{cipher}");
        assert!(!enc.encrypt(&h(iv)[1..], &mut buf), "{cipher}");
    }

    /// NIST SP 800-38A F.2.3 (CBC-AES192.Encrypt).
    #[test]
    fn sp800_38a_f_2_3_aes192_cbc() {
        check_cbc(
            Cipher::AesCbc192(Auth::HmacSha1_96),
            "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
            "000102030405060708090a0b0c0d0e0f",
            "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51 30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710",
            "4f021db243bc633d7178183a9fa071e8 b4d9ada9ad7dedf4e5e738763f69145a 571b242012fb7ae07fa9baac3df102e0 08b0e27988598881d920a9e64f5615cd",
        );
    }

    /// The textbook DES example (key 133457799BBCDFF1, one block, ECB = CBC with a zero IV),
    /// and a three-block CBC chain checked against OpenSSL's `des-cbc`.
    #[test]
    fn des_cbc_known_answers() {
        let des = Cipher::DesCbc(Auth::HmacSha1_96);
        check_cbc(
            des,
            "133457799bbcdff1",
            "0000000000000000",
            "0123456789abcdef",
            "85e813540f0ab405",
        );
        check_cbc(
            des,
            "133457799bbcdff1",
            "f0e1d2c3b4a59687",
            &hex::encode(b"The qufck brown fox jump"),
            "1f04e9be200146d9 626c3c2bcc4b6a16 8f4286d8a8a1882b",
        );
    }

    /// NIST SP 800-67 rev. 1 appendix B example (keys 0123…, 2345…, 4567…; "The qufck brown fox
    /// jump"), one ECB block at a time through CBC with a zero IV, and the CBC chain of the same
    /// text checked against OpenSSL's `des-ede3-cbc`.
    #[test]
    fn sp800_67_triple_des_known_answers() {
        let tdes = Cipher::TripleDesCbc(Auth::HmacMd5_96);
        let key = "0123456789abcdef 23456789abcdef01 456789abcdef0123".replace(' ', "");
        let pt = b"The qufck brown fox jump";
        let ecb = ["a826fd8ce53b855f", "cce21c8112256fe6", "68d5c05dd9b6b900"];
        for (block, ct) in pt.chunks(8).zip(ecb) {
            check_cbc(tdes, &key, "0000000000000000", &hex::encode(block), ct);
        }
        check_cbc(
            tdes,
            &key,
            "f0e1d2c3b4a59687",
            &hex::encode(pt),
            "ad7ff467a5ff0161 ac76c53ab6e7df51 6eb0807b06690f67",
        );
    }

    #[test]
    fn des_keys_of_the_wrong_length_are_rejected() {
        for (cipher, len) in [
            (Cipher::DesCbc(Auth::HmacSha1_96), 16),
            (Cipher::TripleDesCbc(Auth::HmacSha1_96), 16),
        ] {
            assert_eq!(
                CbcEncrypt::new(cipher, &vec![1; len]).err(),
                Some(EspError::KeyRejected {
                    which: "encryption",
                    cipher
                })
            );
        }
    }
}
