//! Error types, split by cause: configuration, wire decoding, cryptography, protocol handling.

use thiserror::Error;

/// Invalid configuration (bad proposal strings, missing selectors, ...).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A proposal string contained an algorithm keyword we do not know.
    #[error("unknown algorithm keyword '{0}' in proposal")]
    UnknownAlgorithm(String),
    /// A proposal string was empty.
    #[error("empty proposal string")]
    EmptyProposal,
    /// A proposal named no encryption algorithm.
    #[error("proposal '{0}' names no encryption algorithm")]
    MissingEncryption(String),
    /// An IKE proposal had no PRF (AEAD proposals need an explicit prfXXX).
    #[error("IKE proposal '{0}' names no PRF (add e.g. prfsha256)")]
    MissingPrf(String),
    /// An IKE proposal had no DH group.
    #[error("IKE proposal '{0}' names no DH group")]
    MissingDhGroup(String),
    /// An IKE proposal offered no encryption (NULL is for ESP only).
    #[error("IKE proposal '{0}' uses NULL encryption, which only ESP allows")]
    NullForIke(String),
    /// A non-AEAD proposal had no integrity algorithm.
    #[error("proposal '{0}' uses a non-AEAD cipher but names no integrity algorithm")]
    MissingIntegrity(String),
    /// AEAD and non-AEAD ciphers cannot share one proposal.
    #[error("proposal '{0}' mixes AEAD and non-AEAD ciphers")]
    MixedAeadAndClassic(String),
    /// AEAD proposals must not carry an integrity algorithm.
    #[error("proposal '{0}' combines an AEAD cipher with an integrity algorithm")]
    IntegrityWithAead(String),
    /// No IKE proposal configured.
    #[error("no IKE proposals configured")]
    NoIkeProposals,
    /// No ESP proposal configured.
    #[error("no ESP proposals configured")]
    NoEspProposals,
    /// Local or remote traffic selectors missing.
    #[error("local and remote traffic selectors must both be configured")]
    NoTrafficSelectors,
    /// An initiating connection needs a concrete peer address.
    #[error("a connection that initiates needs a specific remote address")]
    InitiatorWithoutPeer,
    /// One Child SA per selector pair was asked for with more pairs than allowed.
    #[error("{pairs} selector pairs (local prefixes x remote prefixes) with one Child SA per pair; at most {max}")]
    TooManySelectorPairs {
        /// Local selectors times remote selectors.
        pairs: usize,
        /// [`crate::config::MAX_SELECTOR_PAIRS`].
        max: usize,
    },
    /// Identity string empty.
    #[error("empty identity")]
    EmptyIdentity,
}

/// Malformed IKE message on the wire.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer octets than a structure needs.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A length field disagrees with the data.
    #[error("invalid length in {0}")]
    BadLength(&'static str),
    /// Major version is not 2.
    #[error("unsupported IKE major version {0}")]
    UnsupportedVersion(u8),
    /// An unknown payload had the critical bit set (RFC 7296 §2.5).
    #[error("unsupported critical payload type {0}")]
    UnsupportedCriticalPayload(u8),
    /// The SK payload was not the last payload.
    #[error("encrypted payload is not the last payload")]
    SkNotLast,
    /// Attribute or structure value invalid.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Cryptographic failure.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The peer's KE data is not a valid public value for the group.
    #[error("invalid peer key exchange value")]
    InvalidPeerPublicKey,
    /// The ICV / GCM tag did not verify.
    #[error("integrity check failed")]
    IntegrityCheckFailed,
    /// Ciphertext length not a multiple of the block size or too short.
    #[error("invalid ciphertext length")]
    BadCiphertextLength,
    /// Padding length points outside the plaintext.
    #[error("invalid padding")]
    BadPadding,
    /// The crypto library refused to generate a key or random data.
    #[error("key generation or random number generation failed")]
    KeyGeneration,
    /// Key material of the wrong length was supplied.
    #[error("wrong key length")]
    BadKeyLength,
    /// Protection was asked of an IKE SA whose key exchange has not happened yet.
    #[error("the IKE SA has no keys yet")]
    NotKeyed,
}

/// Why a datagram was not accepted by the endpoint; the datagram is dropped and counted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IkeError {
    /// The message could not be parsed.
    #[error("malformed IKE message: {0}")]
    Decode(#[from] DecodeError),
    /// Decryption, integrity or key exchange failed.
    #[error("crypto failure: {0}")]
    Crypto(#[from] CryptoError),
    /// A datagram on port 4500 did not start with the non-ESP marker.
    #[error("datagram on port 4500 lacks the non-ESP marker (ESP belongs to the ESP path)")]
    MissingNonEspMarker,
    /// No IKE SA matches the SPIs.
    #[error("no IKE SA for SPIs {0:016x}/{1:016x}")]
    UnknownSpi(u64, u64),
    /// No configured connection accepts this peer.
    #[error("no connection configured for peer {0}")]
    NoMatchingConnection(std::net::IpAddr),
    /// The peer address already has too many half-open IKE SAs.
    #[error("too many half-open IKE SAs from {0}")]
    TooManyHalfOpen(std::net::IpAddr),
    /// The message ID is outside the window.
    #[error("unexpected message ID {0}")]
    UnexpectedMessageId(u32),
    /// Exchange type not valid in the SA's current state.
    #[error("unexpected exchange {0} in current state")]
    UnexpectedExchange(crate::codec::ExchangeType),
    /// A required payload is missing.
    #[error("missing {0} payload")]
    MissingPayload(&'static str),
    /// Payload contents are unacceptable.
    #[error("invalid payload: {0}")]
    InvalidPayload(&'static str),
    /// Unknown connection ID passed by the caller.
    #[error("unknown connection {0}")]
    UnknownConnection(crate::endpoint::ConnectionId),
    /// Handling the datagram hit a bug (a panic); only the IKE SA concerned was dropped.
    #[error("internal error while handling the datagram; only its IKE SA was dropped")]
    Internal,
}

impl IkeError {
    /// A short, stable name of the cause, for drop counters and rate-limited logs.
    pub fn cause_name(&self) -> &'static str {
        match self {
            IkeError::Decode(_) => "malformed",
            IkeError::Crypto(CryptoError::IntegrityCheckFailed) => "integrity",
            IkeError::Crypto(CryptoError::InvalidPeerPublicKey) => "invalid_ke",
            IkeError::Crypto(_) => "crypto",
            IkeError::MissingNonEspMarker => "non_esp_marker",
            IkeError::UnknownSpi(..) => "unknown_spi",
            IkeError::NoMatchingConnection(_) => "no_connection",
            IkeError::TooManyHalfOpen(_) => "half_open_limit",
            IkeError::UnexpectedMessageId(_) => "message_id",
            IkeError::UnexpectedExchange(_) => "unexpected_exchange",
            IkeError::MissingPayload(_) | IkeError::InvalidPayload(_) => "invalid_payload",
            IkeError::UnknownConnection(_) => "unknown_connection",
            IkeError::Internal => "internal_error",
        }
    }
}
