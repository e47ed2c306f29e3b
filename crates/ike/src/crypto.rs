//! IKEv2 cryptography on top of aws-lc-rs (HMAC, AES-GCM, ECDH, randomness), RustCrypto
//! (AES-, DES- and 3DES-CBC without padding, HMAC-MD5 for the legacy policies Azure offers)
//! and crypto-bigint (constant-time MODP exponentiation).
//! Implements the IKE constructions only: prf+, SKEYSEED/SK_* derivation, SK payload
//! protection (RFC 7296 §3.14, RFC 5282), PSK AUTH and Child SA KEYMAT.

use aws_lc_rs::{aead, agreement, constant_time, digest, hmac, rand};
use cbc::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use crypto_bigint::modular::{MontyForm, MontyParams};
use crypto_bigint::{Odd, Uint, Word, U1024, U2048, U256, U512, U768};
use zeroize::Zeroizing;

use crate::codec::{self, Header, Payload, HEADER_LEN};
use crate::config::{DhGroup, Encryption, Integrity, Prf};
use crate::error::{CryptoError, DecodeError, IkeError};

/// Secret bytes that are wiped when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

/// Fills a fresh buffer with `n` random octets.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, CryptoError> {
    let mut v = vec![0u8; n];
    rand::fill(&mut v).map_err(|_| CryptoError::KeyGeneration)?;
    Ok(v)
}

/// A random non-zero 64-bit value (IKE SPI).
pub fn random_spi64() -> Result<u64, CryptoError> {
    loop {
        let b = random_bytes(8)?;
        let v = u64::from_be_bytes(b.try_into().expect("8 octets"));
        if v != 0 {
            return Ok(v);
        }
    }
}

/// A random 32-bit ESP SPI outside the reserved range 0..=255.
pub fn random_spi32() -> Result<u32, CryptoError> {
    loop {
        let b = random_bytes(4)?;
        let v = u32::from_be_bytes(b.try_into().expect("4 octets"));
        if v > 255 {
            return Ok(v);
        }
    }
}

/// SHA-1, used for NAT detection hashes (RFC 7296 §2.23).
pub fn sha1(parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    for p in parts {
        ctx.update(p);
    }
    ctx.finish().as_ref().to_vec()
}

/// The hash under an HMAC: aws-lc-rs's, or RustCrypto's MD5 (which aws-lc-rs lacks).
#[derive(Clone, Copy)]
enum HmacHash {
    Md5,
    AwsLc(hmac::Algorithm),
}

fn prf_hash(p: Prf) -> HmacHash {
    match p {
        Prf::HmacMd5 => HmacHash::Md5,
        Prf::HmacSha1 => HmacHash::AwsLc(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
        Prf::HmacSha256 => HmacHash::AwsLc(hmac::HMAC_SHA256),
        Prf::HmacSha384 => HmacHash::AwsLc(hmac::HMAC_SHA384),
    }
}

fn integ_hash(i: Integrity) -> HmacHash {
    match i {
        Integrity::HmacMd5_96 => HmacHash::Md5,
        Integrity::HmacSha1_96 => HmacHash::AwsLc(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
        Integrity::HmacSha256_128 => HmacHash::AwsLc(hmac::HMAC_SHA256),
        Integrity::HmacSha384_192 => HmacHash::AwsLc(hmac::HMAC_SHA384),
    }
}

/// HMAC(key, data parts concatenated), untruncated.
fn hmac_of(hash: HmacHash, key: &[u8], data: &[&[u8]]) -> Secret {
    match hash {
        HmacHash::Md5 => {
            use ::hmac::Mac;
            let mut mac = <::hmac::Hmac<md5::Md5> as Mac>::new_from_slice(key)
                .expect("HMAC takes keys of any length");
            for d in data {
                mac.update(d);
            }
            Zeroizing::new(mac.finalize().into_bytes().to_vec())
        }
        HmacHash::AwsLc(alg) => {
            let k = hmac::Key::new(alg, key);
            let mut ctx = hmac::Context::with_key(&k);
            for d in data {
                ctx.update(d);
            }
            Zeroizing::new(ctx.sign().as_ref().to_vec())
        }
    }
}

/// prf(key, data) over the concatenation of `data` parts.
pub fn prf(alg: Prf, key: &[u8], data: &[&[u8]]) -> Secret {
    hmac_of(prf_hash(alg), key, data)
}

/// prf+ (RFC 7296 §2.13): T1 | T2 | ... truncated to `len` octets.
pub fn prf_plus(alg: Prf, key: &[u8], seed: &[u8], len: usize) -> Secret {
    let mut out = Zeroizing::new(Vec::with_capacity(len + alg.output_len()));
    let mut t: Secret = Zeroizing::new(vec![]);
    let mut counter: u8 = 1;
    while out.len() < len {
        t = prf(alg, key, &[&t, seed, &[counter]]);
        out.extend_from_slice(&t);
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// The truncated HMAC ICV (RFC 2403 / RFC 2404 / RFC 4868) over `data` parts.
pub fn integrity_icv(alg: Integrity, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
    hmac_of(integ_hash(alg), key, data)[..alg.icv_len()].to_vec()
}

// ---------------------------------------------------------------- Diffie-Hellman

const MODP768_P: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A3620FFFFFFFFFFFFFFFF";
const MODP1024_P: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF";
const MODP2048_P: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";
const MODP2048S256_P: &str = "87A8E61DB4B6663CFFBBD19C651959998CEEF608660DD0F25D2CEED4435E3B00E00DF8F1D61957D4FAF7DF4561B2AA3016C3D91134096FAA3BF4296D830E9A7C209E0C6497517ABD5A8A9D306BCF67ED91F9E6725B4758C022E0B1EF4275BF7B6C5BFC11D45F9088B941F54EB1E59BB8BC39A0BF12307F5C4FDB70C581B23F76B63ACAE1CAA6B7902D52526735488A0EF13C6D9A51BFA4AB3AD8347796524D8EF6A167B5A41825D967E144E5140564251CCACB83E6B486F6B3CA3F7971506026C0B857F689962856DED4010ABD0BE621C3A3960A54E710C375F26375D7014103A4B54330C198AF126116D2276E11715F693877FAD7EF09CADB094AE91E1A1597";
const MODP2048S256_G: &str = "3FB32C9B73134D0B2E77506660EDBD484CA7B18F21EF205407F4793A1A0BA12510DBC15077BE463FFF4FED4AAC0BB555BE3A6C1B0C6B47B1BC3773BF7E8C6F62901228F8C28CBB18A55AE31341000A650196F931C77A57F2DDF463E5E9EC144B777DE62AAAB8A8628AC376D282D6ED3864E67982428EBC831D14348F6F2F9193B5045AF2767164E1DFC967C1FB3F2E55A4BD1BFFE83B9C80D052B985D182EA0ADB2A3B7313D3FE14C8484B1E052588B9B7D2BBD2DF016199ECD06E1557CD0915B3353BBB64E0EC377FD028370DF92B52C7891428CDC67EB6184B523D1DB246C32F63078490F00EF8D647D148D47954515E2327CFEF98C582664B4C0F6CC41659";
const MODP2048S256_Q: &str = "8CF83642A709A097B447997640129DA299B1A47D1EB3750BA308B0FE64F5FBD3";

fn uint_to_be<const L: usize>(u: &Uint<L>) -> Vec<u8> {
    let mut out = Vec::with_capacity(L * std::mem::size_of::<Word>());
    for w in u.as_words().iter().rev() {
        out.extend_from_slice(&w.to_be_bytes());
    }
    out
}

/// g^x mod p for one MODP group of L limbs; `base` must be exactly the modulus length.
fn modp_pow<const L: usize>(p_hex: &str, base: &[u8], exp: &U512) -> Vec<u8> {
    let p = Uint::<L>::from_be_hex(p_hex);
    let params = MontyParams::new_vartime(Odd::new(p).expect("MODP primes are odd"));
    let b = Uint::<L>::from_be_slice(base);
    let r = MontyForm::new(&b, params).pow(exp);
    uint_to_be(&r.retrieve())
}

/// Validates a peer MODP value: 1 < y < p-1 (and y^q = 1 for group 24).
fn modp_check<const L: usize>(p_hex: &str, y: &[u8], q_hex: Option<&str>) -> bool {
    let p = Uint::<L>::from_be_hex(p_hex);
    let yv = Uint::<L>::from_be_slice(y);
    if yv <= Uint::<L>::ONE || yv >= p.wrapping_sub(&Uint::<L>::ONE) {
        return false;
    }
    if let Some(q) = q_hex {
        let params = MontyParams::new_vartime(Odd::new(p).expect("odd"));
        let qv = U256::from_be_hex(q);
        let r = MontyForm::new(&yv, params).pow(&qv).retrieve();
        return r == Uint::<L>::ONE;
    }
    true
}

fn modp_params(g: DhGroup) -> Option<(&'static str, Vec<u8>, Option<&'static str>)> {
    let len = g.public_len();
    let two = {
        let mut v = vec![0u8; len];
        v[len - 1] = 2;
        v
    };
    match g {
        DhGroup::Modp768 => Some((MODP768_P, two, None)),
        DhGroup::Modp1024 => Some((MODP1024_P, two, None)),
        DhGroup::Modp2048 => Some((MODP2048_P, two, None)),
        DhGroup::Modp2048s256 => Some((
            MODP2048S256_P,
            hex::decode(MODP2048S256_G).expect("constant"),
            Some(MODP2048S256_Q),
        )),
        _ => None,
    }
}

fn modp_exec(g: DhGroup, base: &[u8], exp: &U512) -> Vec<u8> {
    let (p, _, _) = modp_params(g).expect("MODP group");
    match g {
        DhGroup::Modp768 => modp_pow::<{ U768::LIMBS }>(p, base, exp),
        DhGroup::Modp1024 => modp_pow::<{ U1024::LIMBS }>(p, base, exp),
        _ => modp_pow::<{ U2048::LIMBS }>(p, base, exp),
    }
}

fn ecdh_alg(g: DhGroup) -> Option<&'static agreement::Algorithm> {
    match g {
        DhGroup::Ecp256 => Some(&agreement::ECDH_P256),
        DhGroup::Ecp384 => Some(&agreement::ECDH_P384),
        DhGroup::Curve25519 => Some(&agreement::X25519),
        _ => None,
    }
}

enum DhSecret {
    Ecdh(agreement::PrivateKey),
    Modp(Box<U512>),
}

impl Drop for DhSecret {
    fn drop(&mut self) {
        if let DhSecret::Modp(x) = self {
            **x = U512::ZERO;
        }
    }
}

/// Our ephemeral key-exchange private value plus the public value we send in KE.
pub struct DhPrivate {
    group: DhGroup,
    secret: DhSecret,
    public: Vec<u8>,
}

impl std::fmt::Debug for DhPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhPrivate")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl DhPrivate {
    /// Generates a fresh key pair for `group`.
    pub fn generate(group: DhGroup) -> Result<DhPrivate, CryptoError> {
        if let Some(alg) = ecdh_alg(group) {
            let k = agreement::PrivateKey::generate(alg).map_err(|_| CryptoError::KeyGeneration)?;
            return Self::from_ecdh(group, k);
        }
        let raw = Zeroizing::new(random_bytes(64)?);
        Self::from_modp_exponent(group, &raw)
    }

    /// Octets of the private value [`Self::from_private`] takes for `group`.
    pub fn private_len(group: DhGroup) -> usize {
        match group {
            DhGroup::Ecp256 | DhGroup::Curve25519 => 32,
            DhGroup::Ecp384 => 48,
            DhGroup::Modp768 | DhGroup::Modp1024 | DhGroup::Modp2048 | DhGroup::Modp2048s256 => 64,
        }
    }

    /// Builds a key pair from a fixed private value (test vectors): a big-endian scalar for
    /// ECP, the raw 32 octets for Curve25519, a big-endian exponent of at most 64 octets for MODP.
    pub fn from_private(group: DhGroup, private: &[u8]) -> Result<DhPrivate, CryptoError> {
        if let Some(alg) = ecdh_alg(group) {
            let k = agreement::PrivateKey::from_private_key(alg, private)
                .map_err(|_| CryptoError::BadKeyLength)?;
            return Self::from_ecdh(group, k);
        }
        if private.len() > 64 {
            return Err(CryptoError::BadKeyLength);
        }
        let mut raw = Zeroizing::new(vec![0u8; 64]);
        raw[64 - private.len()..].copy_from_slice(private);
        Self::from_modp_exponent(group, &raw)
    }

    fn from_ecdh(group: DhGroup, k: agreement::PrivateKey) -> Result<DhPrivate, CryptoError> {
        let pubk = k
            .compute_public_key()
            .map_err(|_| CryptoError::KeyGeneration)?;
        let bytes = pubk.as_ref();
        let public = if group == DhGroup::Curve25519 {
            bytes.to_vec()
        } else {
            // Uncompressed SEC1 point 0x04||x||y; IKE carries x||y (RFC 5903 §7).
            if bytes.first() != Some(&4) || bytes.len() != group.public_len() + 1 {
                return Err(CryptoError::KeyGeneration);
            }
            bytes[1..].to_vec()
        };
        Ok(DhPrivate {
            group,
            secret: DhSecret::Ecdh(k),
            public,
        })
    }

    fn from_modp_exponent(group: DhGroup, raw: &[u8]) -> Result<DhPrivate, CryptoError> {
        let x = Box::new(U512::from_be_slice(raw));
        let (_, g, _) = modp_params(group).ok_or(CryptoError::KeyGeneration)?;
        let public = modp_exec(group, &g, &x);
        Ok(DhPrivate {
            group,
            secret: DhSecret::Modp(x),
            public,
        })
    }

    /// The group this key belongs to.
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// Public value as carried in the KE payload.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// Computes the shared secret g^ir from the peer's KE data (ECP: the x coordinate;
    /// MODP: padded to the modulus length). Rejects invalid peer values.
    pub fn agree(&self, peer: &[u8]) -> Result<Secret, CryptoError> {
        if peer.len() != self.group.public_len() {
            return Err(CryptoError::InvalidPeerPublicKey);
        }
        match &self.secret {
            DhSecret::Ecdh(k) => {
                let alg = ecdh_alg(self.group).expect("ECDH group");
                let peer_bytes = if self.group == DhGroup::Curve25519 {
                    peer.to_vec()
                } else {
                    let mut v = Vec::with_capacity(peer.len() + 1);
                    v.push(4);
                    v.extend_from_slice(peer);
                    v
                };
                let upk = agreement::UnparsedPublicKey::new(alg, peer_bytes);
                agreement::agree(k, &upk, CryptoError::InvalidPeerPublicKey, |s| {
                    Ok(Zeroizing::new(s.to_vec()))
                })
            }
            DhSecret::Modp(x) => {
                let (p, _, q) = modp_params(self.group).expect("MODP group");
                let ok = match self.group {
                    DhGroup::Modp768 => modp_check::<{ U768::LIMBS }>(p, peer, q),
                    DhGroup::Modp1024 => modp_check::<{ U1024::LIMBS }>(p, peer, q),
                    _ => modp_check::<{ U2048::LIMBS }>(p, peer, q),
                };
                if !ok {
                    return Err(CryptoError::InvalidPeerPublicKey);
                }
                Ok(Zeroizing::new(modp_exec(self.group, peer, x)))
            }
        }
    }
}

// ---------------------------------------------------------------- key derivation

/// The algorithms negotiated for an IKE SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IkeSuite {
    /// Encryption.
    pub encryption: Encryption,
    /// Integrity (None with AEAD).
    pub integrity: Option<Integrity>,
    /// PRF.
    pub prf: Prf,
    /// DH group.
    pub dh: DhGroup,
}

impl IkeSuite {
    /// strongSwan-like display, e.g. "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384".
    pub fn name(&self) -> String {
        let mut parts = vec![self.encryption.name()];
        if let Some(i) = self.integrity {
            parts.push(i.name());
        }
        parts.push(self.prf.name());
        parts.push(self.dh.name());
        parts.join("/")
    }
}

/// The seven IKE SA keys (RFC 7296 §2.14); never printed. Kept as the one KEYMAT block
/// prf+ produced, in the RFC's order, and sliced by the suite's key lengths: one
/// allocation per IKE SA instead of seven (a gateway holds one per tunnel).
pub struct IkeKeys {
    /// Negotiated algorithms.
    pub suite: IkeSuite,
    /// SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr.
    keymat: Zeroizing<Box<[u8]>>,
}

impl IkeKeys {
    /// Bytes of KEYMAT the suite takes: three PRF keys, two integrity and two cipher keys.
    pub fn keymat_len(suite: IkeSuite) -> usize {
        let (pl, al, el) = Self::lens(suite);
        3 * pl + 2 * al + 2 * el
    }

    fn lens(suite: IkeSuite) -> (usize, usize, usize) {
        (
            suite.prf.output_len(),
            suite.integrity.map_or(0, |i| i.key_len()),
            suite.encryption.keymat_len(),
        )
    }

    /// The `k`th key of the block (0 = SK_d … 6 = SK_pr).
    fn key(&self, k: usize) -> &[u8] {
        let (pl, al, el) = Self::lens(self.suite);
        let lens = [pl, al, al, el, el, pl, pl];
        let start: usize = lens[..k].iter().sum();
        &self.keymat[start..start + lens[k]]
    }

    /// SK_d, for Child SA keys and the next IKE SA's.
    pub fn sk_d(&self) -> &[u8] {
        self.key(0)
    }
    /// SK_ai (empty with AEAD).
    pub fn sk_ai(&self) -> &[u8] {
        self.key(1)
    }
    /// SK_ar (empty with AEAD).
    pub fn sk_ar(&self) -> &[u8] {
        self.key(2)
    }
    /// SK_ei (GCM: key || salt).
    pub fn sk_ei(&self) -> &[u8] {
        self.key(3)
    }
    /// SK_er.
    pub fn sk_er(&self) -> &[u8] {
        self.key(4)
    }
    /// SK_pi, for the initiator's AUTH.
    pub fn sk_pi(&self) -> &[u8] {
        self.key(5)
    }
    /// SK_pr, for the responder's AUTH.
    pub fn sk_pr(&self) -> &[u8] {
        self.key(6)
    }
}

impl std::fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IkeKeys")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// SKEYSEED = prf(Ni | Nr, g^ir).
pub fn skeyseed(prf_alg: Prf, ni: &[u8], nr: &[u8], shared: &[u8]) -> Secret {
    let mut key = Zeroizing::new(Vec::with_capacity(ni.len() + nr.len()));
    key.extend_from_slice(ni);
    key.extend_from_slice(nr);
    prf(prf_alg, &key, &[shared])
}

/// Derives SK_d..SK_pr = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
pub fn derive_ike_keys(
    suite: IkeSuite,
    shared: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> IkeKeys {
    let seed_key = skeyseed(suite.prf, ni, nr, shared);
    keys_from_skeyseed(suite, &seed_key, ni, nr, spi_i, spi_r)
}

/// Keys of an IKE SA created by rekeying (RFC 7296 §2.18):
/// SKEYSEED = prf_old(SK_d_old, g^ir(new) | Ni | Nr), then prf+ with the new SA's PRF.
#[allow(clippy::too_many_arguments)]
pub fn derive_rekeyed_ike_keys(
    old_prf: Prf,
    old_sk_d: &[u8],
    suite: IkeSuite,
    shared: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> IkeKeys {
    let seed_key = prf(old_prf, old_sk_d, &[shared, ni, nr]);
    keys_from_skeyseed(suite, &seed_key, ni, nr, spi_i, spi_r)
}

fn keys_from_skeyseed(
    suite: IkeSuite,
    seed_key: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> IkeKeys {
    let mut seed = Vec::with_capacity(ni.len() + nr.len() + 16);
    seed.extend_from_slice(ni);
    seed.extend_from_slice(nr);
    seed.extend_from_slice(&spi_i.to_be_bytes());
    seed.extend_from_slice(&spi_r.to_be_bytes());
    let km = prf_plus(suite.prf, seed_key, &seed, IkeKeys::keymat_len(suite));
    IkeKeys {
        suite,
        keymat: Zeroizing::new(km.as_slice().into()),
    }
}

/// AUTH for shared-key MIC: prf(prf(PSK, "Key Pad for IKEv2"), RealMessage | Nonce | prf(SK_p, IDpayload)).
pub fn psk_auth(
    prf_alg: Prf,
    psk: &[u8],
    real_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    rest_of_id: &[u8],
) -> Secret {
    let maced_id = prf(prf_alg, sk_p, &[rest_of_id]);
    let key = prf(prf_alg, psk, &[b"Key Pad for IKEv2"]);
    prf(prf_alg, &key, &[real_message, peer_nonce, &maced_id])
}

/// Child SA key material in RFC 7296 §2.17 order: (enc_i, integ_i, enc_r, integ_r) where
/// `_i` protects initiator→responder traffic.
pub fn child_keymat(
    prf_alg: Prf,
    sk_d: &[u8],
    shared: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    enc: Encryption,
    integ: Option<Integrity>,
) -> [Secret; 4] {
    let mut seed = Zeroizing::new(Vec::new());
    if let Some(s) = shared {
        seed.extend_from_slice(s);
    }
    seed.extend_from_slice(ni);
    seed.extend_from_slice(nr);
    let el = enc.keymat_len();
    let al = integ.map_or(0, |i| i.key_len());
    let km = prf_plus(prf_alg, sk_d, &seed, 2 * (el + al));
    let part = |a: usize, n: usize| Zeroizing::new(km[a..a + n].to_vec());
    [
        part(0, el),
        part(el, al),
        part(el + al, el),
        part(2 * el + al, al),
    ]
}

// ---------------------------------------------------------------- SK payload

/// CBC without padding (the SK payload pads itself) with `enc`'s block cipher.
fn cbc_crypt(
    enc: Encryption,
    key: &[u8],
    iv: &[u8],
    buf: &mut [u8],
    encrypt: bool,
) -> Result<(), CryptoError> {
    fn run<C>(key: &[u8], iv: &[u8], buf: &mut [u8], encrypt: bool) -> Result<(), CryptoError>
    where
        C: cbc::cipher::BlockCipher
            + cbc::cipher::BlockEncrypt
            + cbc::cipher::BlockDecrypt
            + cbc::cipher::KeyInit,
    {
        let n = buf.len();
        if encrypt {
            cbc::Encryptor::<C>::new_from_slices(key, iv)
                .map_err(|_| CryptoError::BadKeyLength)?
                .encrypt_padded_mut::<NoPadding>(buf, n)
                .map(|_| ())
                .map_err(|_| CryptoError::BadCiphertextLength)
        } else {
            cbc::Decryptor::<C>::new_from_slices(key, iv)
                .map_err(|_| CryptoError::BadKeyLength)?
                .decrypt_padded_mut::<NoPadding>(buf)
                .map(|_| ())
                .map_err(|_| CryptoError::BadCiphertextLength)
        }
    }
    match enc {
        Encryption::AesCbc128 => run::<aes::Aes128>(key, iv, buf, encrypt),
        Encryption::AesCbc192 => run::<aes::Aes192>(key, iv, buf, encrypt),
        Encryption::AesCbc256 => run::<aes::Aes256>(key, iv, buf, encrypt),
        Encryption::TripleDes => run::<des::TdesEde3>(key, iv, buf, encrypt),
        Encryption::Des => run::<des::Des>(key, iv, buf, encrypt),
        _ => Err(CryptoError::BadKeyLength),
    }
}

fn gcm_key(
    enc: Encryption,
    key_and_salt: &[u8],
) -> Result<(aead::LessSafeKey, [u8; 4]), CryptoError> {
    let alg = match enc {
        Encryption::AesGcm16_128 => &aead::AES_128_GCM,
        Encryption::AesGcm16_192 => &aead::AES_192_GCM,
        Encryption::AesGcm16_256 => &aead::AES_256_GCM,
        _ => return Err(CryptoError::BadKeyLength),
    };
    let kl = enc.key_bits() as usize / 8;
    if key_and_salt.len() != kl + 4 {
        return Err(CryptoError::BadKeyLength);
    }
    let key =
        aead::UnboundKey::new(alg, &key_and_salt[..kl]).map_err(|_| CryptoError::BadKeyLength)?;
    let salt: [u8; 4] = key_and_salt[kl..].try_into().expect("4 octets");
    Ok((aead::LessSafeKey::new(key), salt))
}

/// AES-GCM seal as used by the SK payload (RFC 5282): nonce = salt || 8-octet IV; encrypts
/// `buf` in place and returns the 16-octet tag.
pub fn aead_seal(
    enc: Encryption,
    key_and_salt: &[u8],
    iv: &[u8],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; 16], CryptoError> {
    let (key, salt) = gcm_key(enc, key_and_salt)?;
    let nonce = gcm_nonce(&salt, iv)?;
    let mut v = buf.to_vec();
    let tag = key
        .seal_in_place_separate_tag(nonce, aead::Aad::from(aad), &mut v)
        .map_err(|_| CryptoError::KeyGeneration)?;
    buf.copy_from_slice(&v);
    let mut t = [0u8; 16];
    t.copy_from_slice(tag.as_ref());
    Ok(t)
}

/// AES-GCM open: `buf` is ciphertext || tag; returns the plaintext length (decrypted in place).
pub fn aead_open(
    enc: Encryption,
    key_and_salt: &[u8],
    iv: &[u8],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<usize, CryptoError> {
    let (key, salt) = gcm_key(enc, key_and_salt)?;
    let nonce = gcm_nonce(&salt, iv)?;
    key.open_in_place(nonce, aead::Aad::from(aad), buf)
        .map(|p| p.len())
        .map_err(|_| CryptoError::IntegrityCheckFailed)
}

fn gcm_nonce(salt: &[u8; 4], iv: &[u8]) -> Result<aead::Nonce, CryptoError> {
    if iv.len() != 8 {
        return Err(CryptoError::BadKeyLength);
    }
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(iv);
    Ok(aead::Nonce::assume_unique_for_key(nonce))
}

/// One direction's SK payload keys.
pub struct SkDirection<'a> {
    /// Encryption algorithm.
    pub encryption: Encryption,
    /// Integrity algorithm (None with AEAD).
    pub integrity: Option<Integrity>,
    /// SK_e (GCM: key || salt).
    pub enc_key: &'a [u8],
    /// SK_a (empty with AEAD).
    pub integ_key: &'a [u8],
}

impl IkeKeys {
    /// Keys for messages sent by the original initiator (`true`) or responder (`false`).
    pub fn direction(&self, from_initiator: bool) -> SkDirection<'_> {
        let (e, a) = if from_initiator {
            (self.sk_ei(), self.sk_ai())
        } else {
            (self.sk_er(), self.sk_ar())
        };
        SkDirection {
            encryption: self.suite.encryption,
            integrity: self.suite.integrity,
            enc_key: e,
            integ_key: a,
        }
    }
}

/// Builds an encrypted message: header, then SK{inner}. `iv` must be unique per key
/// ([`Encryption::iv_len`] octets: the cipher's block for CBC, 8 for GCM); the header's length and next_payload are filled in.
pub fn protect(
    keys: &SkDirection<'_>,
    header: &Header,
    inner: &[Payload],
    iv: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut plain = Zeroizing::new(Vec::with_capacity(256));
    let first = codec::encode_chain(inner, &mut plain);
    let iv_len = keys.encryption.iv_len();
    let icv_len = if keys.encryption.is_aead() {
        16
    } else {
        keys.integrity.map_or(0, |i| i.icv_len())
    };
    if iv.len() != iv_len || keys.encryption == Encryption::Null {
        return Err(CryptoError::BadKeyLength);
    }
    if !keys.encryption.is_aead() {
        let block = keys.encryption.block_len();
        let pad = (block - (plain.len() + 1) % block) % block;
        plain.extend(std::iter::repeat_n(0u8, pad));
        plain.push(pad as u8);
    } else {
        plain.push(0);
    }
    let sk_len = 4 + iv_len + plain.len() + icv_len;
    let mut h = header.clone();
    h.next_payload = codec::payload_type::SK;
    h.length = (HEADER_LEN + sk_len) as u32;
    let mut out = Vec::with_capacity(HEADER_LEN + sk_len);
    h.encode(&mut out);
    out.push(first);
    out.push(0);
    out.extend_from_slice(&(sk_len as u16).to_be_bytes());
    out.extend_from_slice(iv);
    let aad_end = out.len() - iv_len;
    if keys.encryption.is_aead() {
        let aad = out[..aad_end].to_vec();
        let mut buf = plain.to_vec();
        let tag = aead_seal(keys.encryption, keys.enc_key, iv, &aad, &mut buf)?;
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);
    } else {
        let integ = keys.integrity.ok_or(CryptoError::BadKeyLength)?;
        let mut buf = plain.to_vec();
        cbc_crypt(keys.encryption, keys.enc_key, iv, &mut buf, true)?;
        out.extend_from_slice(&buf);
        let icv = integrity_icv(integ, keys.integ_key, &[&out]);
        out.extend_from_slice(&icv);
    }
    Ok(out)
}

/// Verifies and decrypts the SK payload of `msg`; returns the header and inner payloads.
pub fn unprotect(keys: &SkDirection<'_>, msg: &[u8]) -> Result<(Header, Vec<Payload>), IkeError> {
    let header = Header::decode(msg)?;
    if header.length as usize != msg.len() {
        return Err(DecodeError::BadLength("IKE header length").into());
    }
    let off = codec::sk_offset(msg)?.ok_or(IkeError::MissingPayload("SK"))?;
    let first = msg[off];
    let sk_len = u16::from_be_bytes([msg[off + 2], msg[off + 3]]) as usize;
    if off + sk_len != msg.len() {
        return Err(DecodeError::SkNotLast.into());
    }
    let iv_len = keys.encryption.iv_len();
    let icv_len = if keys.encryption.is_aead() {
        16
    } else {
        keys.integrity.map_or(0, |i| i.icv_len())
    };
    let body = &msg[off + 4..];
    if body.len() < iv_len + icv_len + 1 {
        return Err(CryptoError::BadCiphertextLength.into());
    }
    let iv = &body[..iv_len];
    let mut plain: Secret;
    if keys.encryption.is_aead() {
        let mut buf = Zeroizing::new(body[iv_len..].to_vec());
        let n = aead_open(keys.encryption, keys.enc_key, iv, &msg[..off + 4], &mut buf)?;
        buf.truncate(n);
        plain = buf;
    } else {
        let integ = keys.integrity.ok_or(CryptoError::BadKeyLength)?;
        let icv_start = msg.len() - icv_len;
        let icv = integrity_icv(integ, keys.integ_key, &[&msg[..icv_start]]);
        constant_time::verify_slices_are_equal(&icv, &msg[icv_start..])
            .map_err(|_| CryptoError::IntegrityCheckFailed)?;
        let ct = &body[iv_len..body.len() - icv_len];
        if ct.is_empty() || !ct.len().is_multiple_of(keys.encryption.block_len()) {
            return Err(CryptoError::BadCiphertextLength.into());
        }
        let mut buf = Zeroizing::new(ct.to_vec());
        cbc_crypt(keys.encryption, keys.enc_key, iv, &mut buf, false)?;
        plain = buf;
    }
    let pad = *plain.last().ok_or(CryptoError::BadPadding)? as usize;
    if pad + 1 > plain.len() {
        return Err(CryptoError::BadPadding.into());
    }
    let inner_len = plain.len() - pad - 1;
    plain.truncate(inner_len);
    let payloads = codec::decode_chain(first, &plain)?;
    Ok((header, payloads))
}

/// NAT detection hash: SHA1(SPIi | SPIr | IP | port).
pub fn nat_hash(spi_i: u64, spi_r: u64, addr: std::net::SocketAddr) -> Vec<u8> {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    sha1(&[
        &spi_i.to_be_bytes(),
        &spi_r.to_be_bytes(),
        &ip,
        &addr.port().to_be_bytes(),
    ])
}
