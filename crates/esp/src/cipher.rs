//! The ESP transforms an SA can use, and the sizes each one puts on the wire.

use std::fmt;

/// Integrity algorithm for SAs whose cipher is not an AEAD (the CBC ciphers and NULL); GCM
/// carries its own ICV.
///
/// The ICV is the HMAC output truncated to 96 bits for MD5 and SHA-1 (RFC 2403, RFC 2404) and
/// to half the output for SHA-2 (RFC 4868).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Auth {
    /// HMAC-MD5-96 (IKEv2 integrity transform 1, RFC 2403): only for peers such as Azure policies
    /// that still offer it.
    HmacMd5_96,
    /// HMAC-SHA1-96 (IKEv2 integrity transform 2, RFC 2404).
    HmacSha1_96,
    /// HMAC-SHA2-256-128 (IKEv2 integrity transform 12, RFC 4868).
    HmacSha256_128,
    /// HMAC-SHA2-384-192 (IKEv2 integrity transform 13, RFC 4868).
    HmacSha384_192,
}

impl Auth {
    /// Key length in bytes, which equals the hash output length (RFC 2403 §3, RFC 2404 §3,
    /// RFC 4868 §2.1.1).
    pub fn key_len(self) -> usize {
        match self {
            Auth::HmacMd5_96 => 16,
            Auth::HmacSha1_96 => 20,
            Auth::HmacSha256_128 => 32,
            Auth::HmacSha384_192 => 48,
        }
    }

    /// Truncated ICV length in bytes as carried in each packet.
    pub fn icv_len(self) -> usize {
        match self {
            Auth::HmacMd5_96 | Auth::HmacSha1_96 => 12,
            Auth::HmacSha256_128 => 16,
            Auth::HmacSha384_192 => 24,
        }
    }

    /// The aws-lc-rs HMAC; `None` for HMAC-MD5, which aws-lc-rs lacks (RustCrypto computes it).
    pub(crate) fn algorithm(self) -> Option<aws_lc_rs::hmac::Algorithm> {
        match self {
            Auth::HmacMd5_96 => None,
            Auth::HmacSha1_96 => Some(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
            Auth::HmacSha256_128 => Some(aws_lc_rs::hmac::HMAC_SHA256),
            Auth::HmacSha384_192 => Some(aws_lc_rs::hmac::HMAC_SHA384),
        }
    }

    /// The transform from its IKEv2 integrity transform ID (IANA "Transform Type 3"), so the
    /// gateway can build an SA straight from a negotiated proposal.
    pub fn from_ikev2(integ_id: u16) -> Option<Self> {
        match integ_id {
            1 => Some(Auth::HmacMd5_96),
            2 => Some(Auth::HmacSha1_96),
            12 => Some(Auth::HmacSha256_128),
            13 => Some(Auth::HmacSha384_192),
            _ => None,
        }
    }

    /// Name as strongSwan prints it (`swanctl --list-sas`), so status output can be compared.
    pub fn name(self) -> &'static str {
        match self {
            Auth::HmacMd5_96 => "HMAC_MD5_96",
            Auth::HmacSha1_96 => "HMAC_SHA1_96",
            Auth::HmacSha256_128 => "HMAC_SHA2_256_128",
            Auth::HmacSha384_192 => "HMAC_SHA2_384_192",
        }
    }
}

impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The complete ESP transform of one SA: an AEAD, or a CBC cipher or NULL with an HMAC.
///
/// DES, 3DES, NULL and HMAC-MD5 exist only because Azure's IPsec policies can still select them;
/// DES and 3DES come from RustCrypto's `des`, which is not audited to be constant-time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// AES-GCM with a 16-byte ICV and a 128-bit key (RFC 4106; IKEv2 encryption 20, keylen 128).
    AesGcm128,
    /// AES-GCM with a 16-byte ICV and a 192-bit key (RFC 4106; IKEv2 encryption 20, keylen 192).
    AesGcm192,
    /// AES-GCM with a 16-byte ICV and a 256-bit key (RFC 4106; IKEv2 encryption 20, keylen 256).
    AesGcm256,
    /// AES-CBC with a 128-bit key (RFC 3602) plus the given integrity algorithm.
    AesCbc128(Auth),
    /// AES-CBC with a 192-bit key (RFC 3602) plus the given integrity algorithm.
    AesCbc192(Auth),
    /// AES-CBC with a 256-bit key (RFC 3602) plus the given integrity algorithm.
    AesCbc256(Auth),
    /// 3DES-EDE-CBC (RFC 2451; IKEv2 encryption 3) with its fixed 192-bit key (parity bits
    /// included) plus the given integrity algorithm.
    TripleDesCbc(Auth),
    /// Single DES-CBC (RFC 2405; IKEv2 encryption 2) with its fixed 64-bit key (parity bits
    /// included) plus the given integrity algorithm.
    DesCbc(Auth),
    /// ENCR_NULL (RFC 2410; IKEv2 encryption 11): no confidentiality, the inner packet travels in
    /// clear and only the given integrity algorithm protects it.
    Null(Auth),
}

/// Bytes of SPI plus sequence number that start every ESP packet.
pub(crate) const ESP_HEADER_LEN: usize = 8;
/// RFC 4106 salt length: the last four bytes of the encryption KEYMAT.
pub(crate) const GCM_SALT_LEN: usize = 4;
/// RFC 4106 explicit IV length.
pub(crate) const GCM_IV_LEN: usize = 8;
/// GCM ICV length (the "16" in AES_GCM_16).
pub(crate) const GCM_ICV_LEN: usize = 16;
/// AES block size, which is also the AES-CBC IV length.
pub(crate) const AES_BLOCK: usize = 16;
/// DES and 3DES block size, which is also their CBC IV length (RFC 2405 §3, RFC 2451 §3).
pub(crate) const DES_BLOCK: usize = 8;
/// Alignment of the encrypted part when the cipher has no block of its own (GCM, NULL): the
/// 4-byte boundary RFC 4303 §2.4 requires.
pub(crate) const ESP_ALIGN: usize = 4;

impl Cipher {
    /// The transform from IKEv2 IDs (IANA "Transform Type 1" with its key length in bits, and
    /// the integrity transform for non-AEAD ciphers); `None` for anything this crate lacks.
    ///
    /// DES, 3DES and NULL have fixed key sizes, so their proposals carry no key-length attribute:
    /// `key_bits` 0 is accepted for them, as is the natural size (64, 192, 0).
    pub fn from_ikev2(encr_id: u16, key_bits: u16, integ_id: Option<u16>) -> Option<Self> {
        match (encr_id, key_bits, integ_id) {
            (20, 128, None | Some(0)) => Some(Cipher::AesGcm128),
            (20, 192, None | Some(0)) => Some(Cipher::AesGcm192),
            (20, 256, None | Some(0)) => Some(Cipher::AesGcm256),
            (12, 128, Some(i)) => Auth::from_ikev2(i).map(Cipher::AesCbc128),
            (12, 192, Some(i)) => Auth::from_ikev2(i).map(Cipher::AesCbc192),
            (12, 256, Some(i)) => Auth::from_ikev2(i).map(Cipher::AesCbc256),
            (3, 0 | 192, Some(i)) => Auth::from_ikev2(i).map(Cipher::TripleDesCbc),
            (2, 0 | 64, Some(i)) => Auth::from_ikev2(i).map(Cipher::DesCbc),
            (11, 0, Some(i)) => Auth::from_ikev2(i).map(Cipher::Null),
            _ => None,
        }
    }

    /// Whether this transform is an AEAD (and so takes no separate integrity key).
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            Cipher::AesGcm128 | Cipher::AesGcm192 | Cipher::AesGcm256
        )
    }

    /// Integrity algorithm, `None` for GCM.
    pub fn auth(self) -> Option<Auth> {
        match self {
            Cipher::AesGcm128 | Cipher::AesGcm192 | Cipher::AesGcm256 => None,
            Cipher::AesCbc128(a)
            | Cipher::AesCbc192(a)
            | Cipher::AesCbc256(a)
            | Cipher::TripleDesCbc(a)
            | Cipher::DesCbc(a)
            | Cipher::Null(a) => Some(a),
        }
    }

    /// Cipher key length in bytes without the GCM salt, parity bits included for DES and 3DES
    /// (as IKEv2 KEYMAT carries them); 0 for NULL.
    pub fn key_len(self) -> usize {
        match self {
            Cipher::Null(_) => 0,
            Cipher::DesCbc(_) => 8,
            Cipher::AesGcm128 | Cipher::AesCbc128(_) => 16,
            Cipher::AesGcm192 | Cipher::AesCbc192(_) | Cipher::TripleDesCbc(_) => 24,
            Cipher::AesGcm256 | Cipher::AesCbc256(_) => 32,
        }
    }

    /// AES key length in bytes (without the GCM salt), kept for callers written when every
    /// transform was AES; the same as [`Self::key_len`], so for DES, 3DES and NULL it is their
    /// key length, not an AES one.
    pub fn aes_key_len(self) -> usize {
        self.key_len()
    }

    /// Length of the encryption KEYMAT the SA constructors expect: for GCM the AES key followed
    /// by the 4-byte salt (RFC 4106 §8.1), for CBC just the cipher key, for NULL nothing.
    pub fn enc_key_len(self) -> usize {
        if self.is_aead() {
            self.key_len() + GCM_SALT_LEN
        } else {
            self.key_len()
        }
    }

    /// Length of the integrity KEYMAT the SA constructors expect (0 for GCM).
    pub fn integ_key_len(self) -> usize {
        self.auth().map_or(0, Auth::key_len)
    }

    /// Length of the IV carried in each packet: 8 for GCM (RFC 4106 §3.1), the cipher block for
    /// CBC, none for NULL (RFC 2410 §2).
    pub fn iv_len(self) -> usize {
        match self {
            Cipher::AesGcm128 | Cipher::AesGcm192 | Cipher::AesGcm256 => GCM_IV_LEN,
            Cipher::AesCbc128(_) | Cipher::AesCbc192(_) | Cipher::AesCbc256(_) => AES_BLOCK,
            Cipher::TripleDesCbc(_) | Cipher::DesCbc(_) => DES_BLOCK,
            Cipher::Null(_) => 0,
        }
    }

    /// Length of the ICV carried at the end of each packet.
    pub fn icv_len(self) -> usize {
        self.auth().map_or(GCM_ICV_LEN, Auth::icv_len)
    }

    /// Alignment the encrypted part (payload, padding, pad length, next header) must have: the
    /// cipher block for CBC, 4 bytes for GCM and NULL.
    pub fn block_len(self) -> usize {
        match self {
            Cipher::AesGcm128 | Cipher::AesGcm192 | Cipher::AesGcm256 | Cipher::Null(_) => {
                ESP_ALIGN
            }
            Cipher::AesCbc128(_) | Cipher::AesCbc192(_) | Cipher::AesCbc256(_) => AES_BLOCK,
            Cipher::TripleDesCbc(_) | Cipher::DesCbc(_) => DES_BLOCK,
        }
    }

    /// Bytes before the inner packet: SPI, sequence number and IV.
    pub fn header_len(self) -> usize {
        ESP_HEADER_LEN + self.iv_len()
    }

    /// Exact ESP packet length for an inner packet of `inner_len` bytes.
    pub fn sealed_len(self, inner_len: usize) -> usize {
        self.header_len() + padded_len(inner_len, self.block_len()) + self.icv_len()
    }

    /// Largest number of bytes ESP adds to an inner packet (header, IV, worst-case padding, pad
    /// length, next header, ICV); the tunnel MTU is the path MTU minus this and the UDP/IP headers.
    pub fn overhead(self) -> usize {
        self.header_len() + (self.block_len() - 1) + 2 + self.icv_len()
    }

    /// Smallest ESP packet that can possibly be valid: one aligned block of ciphertext.
    pub(crate) fn min_packet_len(self) -> usize {
        self.header_len() + self.block_len() + self.icv_len()
    }

    /// Name as strongSwan prints it (`swanctl --list-sas`), e.g. `AES_GCM_16-256`,
    /// `AES_CBC-128/HMAC_SHA2_256_128` or `3DES_CBC/HMAC_MD5_96`.
    pub fn name(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cipher::AesGcm128 => f.write_str("AES_GCM_16-128"),
            Cipher::AesGcm192 => f.write_str("AES_GCM_16-192"),
            Cipher::AesGcm256 => f.write_str("AES_GCM_16-256"),
            Cipher::AesCbc128(a) => write!(f, "AES_CBC-128/{a}"),
            Cipher::AesCbc192(a) => write!(f, "AES_CBC-192/{a}"),
            Cipher::AesCbc256(a) => write!(f, "AES_CBC-256/{a}"),
            Cipher::TripleDesCbc(a) => write!(f, "3DES_CBC/{a}"),
            Cipher::DesCbc(a) => write!(f, "DES_CBC/{a}"),
            Cipher::Null(a) => write!(f, "NULL/{a}"),
        }
    }
}

/// Length of payload plus padding plus the two trailer bytes, rounded up to `block`.
pub(crate) fn padded_len(inner_len: usize, block: usize) -> usize {
    (inner_len + 2).div_ceil(block) * block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ikev2_ids_map_to_transforms() {
        assert_eq!(Cipher::from_ikev2(20, 256, None), Some(Cipher::AesGcm256));
        assert_eq!(
            Cipher::from_ikev2(20, 128, Some(0)),
            Some(Cipher::AesGcm128)
        );
        assert_eq!(
            Cipher::from_ikev2(12, 256, Some(12)),
            Some(Cipher::AesCbc256(Auth::HmacSha256_128))
        );
        assert_eq!(
            Cipher::from_ikev2(12, 128, Some(2)),
            Some(Cipher::AesCbc128(Auth::HmacSha1_96))
        );
        assert_eq!(
            Cipher::from_ikev2(12, 128, Some(13)),
            Some(Cipher::AesCbc128(Auth::HmacSha384_192))
        );
        assert_eq!(
            Cipher::from_ikev2(12, 128, None),
            None,
            "CBC needs integrity"
        );
        assert_eq!(Cipher::from_ikev2(20, 192, None), Some(Cipher::AesGcm192));
        assert_eq!(
            Cipher::from_ikev2(12, 192, Some(1)),
            Some(Cipher::AesCbc192(Auth::HmacMd5_96))
        );
        assert_eq!(
            Cipher::from_ikev2(3, 192, Some(2)),
            Some(Cipher::TripleDesCbc(Auth::HmacSha1_96))
        );
        assert_eq!(Cipher::from_ikev2(12, 256, Some(5)), None);
    }

    #[test]
    fn legacy_ids_without_key_length_attribute_map_to_transforms() {
        assert_eq!(Auth::from_ikev2(1), Some(Auth::HmacMd5_96));
        assert_eq!(
            Cipher::from_ikev2(3, 0, Some(1)),
            Some(Cipher::TripleDesCbc(Auth::HmacMd5_96))
        );
        assert_eq!(
            Cipher::from_ikev2(2, 0, Some(12)),
            Some(Cipher::DesCbc(Auth::HmacSha256_128))
        );
        assert_eq!(
            Cipher::from_ikev2(2, 64, Some(2)),
            Some(Cipher::DesCbc(Auth::HmacSha1_96))
        );
        assert_eq!(
            Cipher::from_ikev2(11, 0, Some(13)),
            Some(Cipher::Null(Auth::HmacSha384_192))
        );
        for (encr, bits) in [(2, 0), (3, 0), (11, 0), (12, 192)] {
            assert_eq!(
                Cipher::from_ikev2(encr, bits, None),
                None,
                "encr {encr}: no cipher without integrity"
            );
            assert_eq!(
                Cipher::from_ikev2(encr, bits, Some(0)),
                None,
                "encr {encr}: integrity NONE is no integrity"
            );
        }
        assert_eq!(Cipher::from_ikev2(3, 128, Some(2)), None, "3DES is 192-bit");
        assert_eq!(
            Cipher::from_ikev2(2, 56, Some(2)),
            None,
            "DES keys are 64-bit"
        );
        assert_eq!(
            Cipher::from_ikev2(11, 128, Some(2)),
            None,
            "NULL has no key"
        );
        assert_eq!(
            Cipher::from_ikev2(20, 0, None),
            None,
            "GCM needs a key length"
        );
        assert_eq!(
            Cipher::from_ikev2(20, 192, Some(1)),
            None,
            "GCM takes no HMAC"
        );
    }

    #[test]
    fn sizes_and_names() {
        let c = Cipher::AesGcm256;
        assert_eq!(
            (
                c.enc_key_len(),
                c.integ_key_len(),
                c.header_len(),
                c.icv_len()
            ),
            (36, 0, 16, 16)
        );
        assert_eq!(c.overhead(), 8 + 8 + 3 + 2 + 16);
        assert_eq!(c.to_string(), "AES_GCM_16-256");
        let c = Cipher::AesCbc128(Auth::HmacSha384_192);
        assert_eq!(
            (
                c.enc_key_len(),
                c.integ_key_len(),
                c.header_len(),
                c.icv_len()
            ),
            (16, 48, 24, 24)
        );
        assert_eq!(c.overhead(), 8 + 16 + 15 + 2 + 24);
        assert_eq!(c.to_string(), "AES_CBC-128/HMAC_SHA2_384_192");
        assert_eq!(c.sealed_len(1400), 24 + 1408 + 24);
        assert_eq!(Cipher::AesGcm128.sealed_len(1400), 16 + 1404 + 16);
    }

    #[test]
    fn sizes_and_names_of_the_legacy_transforms() {
        // (cipher, key, enc KEYMAT, integ KEYMAT, IV, block, header, ICV, overhead, name)
        let cases = [
            (
                Cipher::AesGcm192,
                24,
                28,
                0,
                8,
                4,
                16,
                16,
                8 + 8 + 3 + 2 + 16,
                "AES_GCM_16-192",
            ),
            (
                Cipher::AesCbc192(Auth::HmacSha256_128),
                24,
                24,
                32,
                16,
                16,
                24,
                16,
                8 + 16 + 15 + 2 + 16,
                "AES_CBC-192/HMAC_SHA2_256_128",
            ),
            (
                Cipher::TripleDesCbc(Auth::HmacMd5_96),
                24,
                24,
                16,
                8,
                8,
                16,
                12,
                8 + 8 + 7 + 2 + 12,
                "3DES_CBC/HMAC_MD5_96",
            ),
            (
                Cipher::DesCbc(Auth::HmacSha1_96),
                8,
                8,
                20,
                8,
                8,
                16,
                12,
                8 + 8 + 7 + 2 + 12,
                "DES_CBC/HMAC_SHA1_96",
            ),
            (
                Cipher::Null(Auth::HmacSha384_192),
                0,
                0,
                48,
                0,
                4,
                8,
                24,
                8 + 3 + 2 + 24,
                "NULL/HMAC_SHA2_384_192",
            ),
        ];
        for (c, key, enc, integ, iv, block, header, icv, overhead, name) in cases {
            assert_eq!(
                (
                    c.key_len(),
                    c.aes_key_len(),
                    c.enc_key_len(),
                    c.integ_key_len(),
                    c.iv_len(),
                    c.block_len(),
                    c.header_len(),
                    c.icv_len(),
                    c.overhead()
                ),
                (key, key, enc, integ, iv, block, header, icv, overhead),
                "{name}"
            );
            assert_eq!(c.to_string(), name);
            assert_eq!(c.name(), name);
            assert_eq!(c.is_aead(), c == Cipher::AesGcm192, "{name}");
        }
        assert_eq!(Auth::HmacMd5_96.to_string(), "HMAC_MD5_96");
        assert_eq!(
            (Auth::HmacMd5_96.key_len(), Auth::HmacMd5_96.icv_len()),
            (16, 12)
        );
        // 1400 + 2 trailer bytes rounded up to the 8-byte block: 1408 (DES) or 4-byte: 1404.
        let des = Cipher::TripleDesCbc(Auth::HmacMd5_96);
        assert_eq!(des.sealed_len(1400), 16 + 1408 + 12);
        assert_eq!(des.sealed_len(1398), 16 + 1400 + 12);
        assert_eq!(des.sealed_len(1399), 16 + 1408 + 12);
        let null = Cipher::Null(Auth::HmacSha1_96);
        assert_eq!(null.sealed_len(1400), 8 + 1404 + 12);
        assert_eq!(null.sealed_len(1402), 8 + 1404 + 12);
        assert_eq!(null.sealed_len(1403), 8 + 1408 + 12);
        assert_eq!(null.min_packet_len(), 8 + 4 + 12);
        assert_eq!(Cipher::AesGcm192.sealed_len(1400), 16 + 1404 + 16);
        assert_eq!(
            Cipher::AesCbc192(Auth::HmacSha1_96).sealed_len(1400),
            24 + 1408 + 12
        );
    }
}
