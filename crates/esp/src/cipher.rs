//! The ESP transforms an SA can use, and the sizes each one puts on the wire.

use std::fmt;

/// Integrity algorithm for AES-CBC SAs (GCM carries its own ICV).
///
/// The ICV is the HMAC output truncated to half its length (RFC 2404, RFC 4868).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Auth {
    /// HMAC-SHA1-96 (IKEv2 integrity transform 2, RFC 2404).
    HmacSha1_96,
    /// HMAC-SHA2-256-128 (IKEv2 integrity transform 12, RFC 4868).
    HmacSha256_128,
    /// HMAC-SHA2-384-192 (IKEv2 integrity transform 13, RFC 4868).
    HmacSha384_192,
}

impl Auth {
    /// Key length in bytes, which equals the hash output length (RFC 4868 §2.1.1).
    pub fn key_len(self) -> usize {
        match self {
            Auth::HmacSha1_96 => 20,
            Auth::HmacSha256_128 => 32,
            Auth::HmacSha384_192 => 48,
        }
    }

    /// Truncated ICV length in bytes as carried in each packet.
    pub fn icv_len(self) -> usize {
        match self {
            Auth::HmacSha1_96 => 12,
            Auth::HmacSha256_128 => 16,
            Auth::HmacSha384_192 => 24,
        }
    }

    pub(crate) fn algorithm(self) -> aws_lc_rs::hmac::Algorithm {
        match self {
            Auth::HmacSha1_96 => aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Auth::HmacSha256_128 => aws_lc_rs::hmac::HMAC_SHA256,
            Auth::HmacSha384_192 => aws_lc_rs::hmac::HMAC_SHA384,
        }
    }

    /// The transform from its IKEv2 integrity transform ID (IANA "Transform Type 3"), so the
    /// gateway can build an SA straight from a negotiated proposal.
    pub fn from_ikev2(integ_id: u16) -> Option<Self> {
        match integ_id {
            2 => Some(Auth::HmacSha1_96),
            12 => Some(Auth::HmacSha256_128),
            13 => Some(Auth::HmacSha384_192),
            _ => None,
        }
    }

    /// Name as strongSwan prints it (`swanctl --list-sas`), so status output can be compared.
    pub fn name(self) -> &'static str {
        match self {
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

/// The complete ESP transform of one SA: an AEAD, or AES-CBC with an HMAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// AES-GCM with a 16-byte ICV and a 128-bit key (RFC 4106; IKEv2 encryption 20, keylen 128).
    AesGcm128,
    /// AES-GCM with a 16-byte ICV and a 256-bit key (RFC 4106; IKEv2 encryption 20, keylen 256).
    AesGcm256,
    /// AES-CBC with a 128-bit key (RFC 3602) plus the given integrity algorithm.
    AesCbc128(Auth),
    /// AES-CBC with a 256-bit key (RFC 3602) plus the given integrity algorithm.
    AesCbc256(Auth),
}

/// Bytes of SPI plus sequence number that start every ESP packet.
pub(crate) const ESP_HEADER_LEN: usize = 8;
/// RFC 4106 salt length: the last four bytes of the encryption KEYMAT.
pub(crate) const GCM_SALT_LEN: usize = 4;
/// RFC 4106 explicit IV length.
pub(crate) const GCM_IV_LEN: usize = 8;
/// GCM ICV length (the "16" in AES_GCM_16).
pub(crate) const GCM_ICV_LEN: usize = 16;
/// AES block size, which is also the CBC IV length.
pub(crate) const AES_BLOCK: usize = 16;

impl Cipher {
    /// The transform from IKEv2 IDs (IANA "Transform Type 1" with its key length in bits, and
    /// the integrity transform for non-AEAD ciphers); `None` for anything this crate lacks.
    pub fn from_ikev2(encr_id: u16, key_bits: u16, integ_id: Option<u16>) -> Option<Self> {
        match (encr_id, key_bits, integ_id) {
            (20, 128, None | Some(0)) => Some(Cipher::AesGcm128),
            (20, 256, None | Some(0)) => Some(Cipher::AesGcm256),
            (12, 128, Some(i)) => Auth::from_ikev2(i).map(Cipher::AesCbc128),
            (12, 256, Some(i)) => Auth::from_ikev2(i).map(Cipher::AesCbc256),
            _ => None,
        }
    }

    /// Whether this transform is an AEAD (and so takes no separate integrity key).
    pub fn is_aead(self) -> bool {
        matches!(self, Cipher::AesGcm128 | Cipher::AesGcm256)
    }

    /// Integrity algorithm, `None` for GCM.
    pub fn auth(self) -> Option<Auth> {
        match self {
            Cipher::AesGcm128 | Cipher::AesGcm256 => None,
            Cipher::AesCbc128(a) | Cipher::AesCbc256(a) => Some(a),
        }
    }

    /// AES key length in bytes (without the GCM salt).
    pub fn aes_key_len(self) -> usize {
        match self {
            Cipher::AesGcm128 | Cipher::AesCbc128(_) => 16,
            Cipher::AesGcm256 | Cipher::AesCbc256(_) => 32,
        }
    }

    /// Length of the encryption KEYMAT the SA constructors expect: for GCM the AES key followed
    /// by the 4-byte salt (RFC 4106 §8.1), for CBC just the AES key.
    pub fn enc_key_len(self) -> usize {
        if self.is_aead() {
            self.aes_key_len() + GCM_SALT_LEN
        } else {
            self.aes_key_len()
        }
    }

    /// Length of the integrity KEYMAT the SA constructors expect (0 for GCM).
    pub fn integ_key_len(self) -> usize {
        self.auth().map_or(0, Auth::key_len)
    }

    /// Length of the IV carried in each packet.
    pub fn iv_len(self) -> usize {
        if self.is_aead() {
            GCM_IV_LEN
        } else {
            AES_BLOCK
        }
    }

    /// Length of the ICV carried at the end of each packet.
    pub fn icv_len(self) -> usize {
        self.auth().map_or(GCM_ICV_LEN, Auth::icv_len)
    }

    /// Alignment the encrypted part (payload, padding, pad length, next header) must have.
    pub fn block_len(self) -> usize {
        if self.is_aead() {
            4
        } else {
            AES_BLOCK
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

    /// Name as strongSwan prints it (`swanctl --list-sas`), e.g. `AES_GCM_16-256` or
    /// `AES_CBC-128/HMAC_SHA2_256_128`.
    pub fn name(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cipher::AesGcm128 => f.write_str("AES_GCM_16-128"),
            Cipher::AesGcm256 => f.write_str("AES_GCM_16-256"),
            Cipher::AesCbc128(a) => write!(f, "AES_CBC-128/{a}"),
            Cipher::AesCbc256(a) => write!(f, "AES_CBC-256/{a}"),
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
        assert_eq!(Cipher::from_ikev2(20, 192, None), None);
        assert_eq!(
            Cipher::from_ikev2(3, 192, Some(2)),
            None,
            "3DES not supported"
        );
        assert_eq!(Cipher::from_ikev2(12, 256, Some(5)), None);
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
}
