//! Why an SA could not be set up, a packet not sealed, or a received packet was dropped.

use crate::cipher::Cipher;

/// Everything that can go wrong in the ESP data path. Setup and sealing errors are the caller's
/// problem; the inbound ones are reasons to drop a packet, each counted in [`crate::Counters`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EspError {
    /// A key of the wrong length was handed to an SA constructor.
    #[error("{which} key for {cipher} must be {expected} bytes, got {got}")]
    KeyLength {
        /// "encryption" or "integrity".
        which: &'static str,
        /// The transform the key was meant for.
        cipher: Cipher,
        /// Required length in bytes.
        expected: usize,
        /// Length that was passed.
        got: usize,
    },
    /// The crypto library refused to key the transform.
    #[error("the crypto library rejected the {which} key for {cipher}")]
    KeyRejected {
        /// "encryption", "integrity" or "IV generator".
        which: &'static str,
        /// The transform the key was meant for.
        cipher: Cipher,
    },
    /// The caller's buffer cannot hold the sealed packet.
    #[error("buffer of {available} bytes cannot hold the {needed}-byte ESP packet")]
    BufferTooSmall {
        /// Bytes the sealed packet needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// The packet handed to `seal` is not a complete IPv4 or IPv6 packet.
    #[error("inner packet is not a complete IPv4 or IPv6 packet")]
    NotIpPacket,
    /// Every 32-bit sequence number has been used; the SA must be rekeyed (RFC 4303 §3.3.3).
    #[error("sequence numbers of this SA are exhausted; rekey required")]
    SequenceExhausted,
    /// A `SeqBlock` reserved from one SA was handed to another SA's `SealContext`.
    #[error("sequence block belongs to another SA")]
    ForeignSeqBlock,
    /// A packet opened by one inbound SA's `OpenContext` was committed to another SA.
    #[error("opened packet belongs to another SA")]
    ForeignOpened,
    /// Every sequence number of the `SeqBlock` has been used; reserve another.
    #[error("sequence block is used up")]
    SeqBlockEmpty,
    /// The crypto library failed to encrypt (it never should with valid inputs).
    #[error("encryption failed in the crypto library")]
    SealFailed,
    /// The received packet is shorter than the smallest packet this SA can produce.
    #[error("ESP packet of {len} bytes is shorter than the minimum {min}")]
    Truncated {
        /// Received length.
        len: usize,
        /// Minimum length for this SA's transform.
        min: usize,
    },
    /// The packet carries another SA's SPI; the caller dispatched it to the wrong SA.
    #[error("packet SPI {got:#010x} does not belong to SA {expected:#010x}")]
    SpiMismatch {
        /// This SA's SPI.
        expected: u32,
        /// SPI in the packet.
        got: u32,
    },
    /// The ciphertext length is not a multiple of the transform's block size.
    #[error("ciphertext of {len} bytes is not a multiple of the {block}-byte block")]
    Misaligned {
        /// Ciphertext length.
        len: usize,
        /// Required alignment.
        block: usize,
    },
    /// Sequence number zero is never sent (counting starts at 1).
    #[error("sequence number 0 is invalid")]
    ZeroSequence,
    /// This sequence number was already received.
    #[error("sequence number {seq} was already received (replay)")]
    Replayed {
        /// The duplicate sequence number.
        seq: u32,
    },
    /// The sequence number lies behind the anti-replay window.
    #[error("sequence number {seq} is behind the replay window (highest seen {highest})")]
    TooOld {
        /// The stale sequence number.
        seq: u32,
        /// Highest sequence number received so far.
        highest: u32,
    },
    /// The ICV did not verify: corrupted, forged, or keyed with other keys.
    #[error("integrity check failed for sequence number {seq}")]
    AuthenticationFailed {
        /// Sequence number the packet claimed.
        seq: u32,
    },
    /// The decrypted padding is not the sequence 1, 2, 3, … or longer than the payload.
    #[error("invalid ESP padding")]
    BadPadding,
    /// The next-header field names neither IPv4 (4) nor IPv6 (41): not tunnel-mode traffic.
    #[error("unsupported next header {0} in tunnel mode")]
    UnknownNextHeader(u8),
    /// A dummy packet (next header 59, RFC 4303 §2.6), discarded by design.
    #[error("dummy packet (next header 59) discarded")]
    DummyPacket,
    /// The decrypted inner packet's IP header does not match its next header or its length.
    #[error("decrypted inner packet has an invalid IP header")]
    BadInnerPacket,
}

/// The counter a dropped inbound packet is booked under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Duplicate or behind the window.
    Replayed,
    /// ICV verification failed.
    AuthFailed,
    /// Truncated, misaligned, wrong SPI, zero sequence number, or a bad inner IP header.
    Malformed,
    /// Padding bytes or pad length wrong.
    BadPadding,
    /// Next header neither 4 nor 41.
    UnknownNextHeader,
    /// Dummy packet (next header 59).
    Dummy,
}

impl EspError {
    /// Which drop counter this error belongs to; `None` for setup and sealing errors.
    pub fn drop_reason(&self) -> Option<DropReason> {
        Some(match self {
            EspError::Replayed { .. } | EspError::TooOld { .. } => DropReason::Replayed,
            EspError::AuthenticationFailed { .. } => DropReason::AuthFailed,
            EspError::Truncated { .. }
            | EspError::SpiMismatch { .. }
            | EspError::Misaligned { .. }
            | EspError::ZeroSequence
            | EspError::BadInnerPacket => DropReason::Malformed,
            EspError::BadPadding => DropReason::BadPadding,
            EspError::UnknownNextHeader(_) => DropReason::UnknownNextHeader,
            EspError::DummyPacket => DropReason::Dummy,
            EspError::KeyLength { .. }
            | EspError::KeyRejected { .. }
            | EspError::BufferTooSmall { .. }
            | EspError::NotIpPacket
            | EspError::SequenceExhausted
            | EspError::ForeignSeqBlock
            | EspError::ForeignOpened
            | EspError::SeqBlockEmpty
            | EspError::SealFailed => return None,
        })
    }
}
