//! Outbound and inbound Security Associations: the per-packet seal and open paths.
//!
//! Packet layout (RFC 4303 §2, RFC 4106 §3, RFC 3602 §3), as carried after the UDP header of a
//! RFC 3948 datagram:
//!
//! ```text
//! SPI (4) | sequence number (4) | IV (8 GCM, 16 AES-CBC, 8 DES/3DES-CBC, none NULL) |
//! encrypted: inner packet, padding 1,2,3…, pad length (1), next header (1) |
//! ICV (16 GCM / 12, 16 or 24 HMAC)
//! ```
//!
//! With ENCR_NULL (RFC 2410) the "encrypted" part travels in clear, aligned to 4 bytes.
//!
//! An SA is used from one thread at a time (`&mut self`); outbound and inbound SAs are separate
//! objects so the gateway can run encryption and decryption on different cores. To spread one
//! SA's packets over several cores, the keyed half is shareable: [`SealContext`] encrypts with
//! sequence numbers reserved in blocks ([`SeqBlock`]) from the [`OutboundSa`], and
//! [`OpenContext`] verifies and decrypts while the [`InboundSa`] alone owns the replay window
//! ([`InboundSa::commit`]).

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::cipher::{padded_len, Cipher, ESP_HEADER_LEN, GCM_ICV_LEN, GCM_IV_LEN};
use crate::crypto::{Gcm, HmacOpen, HmacSeal};
use crate::error::{DropReason, EspError};
use crate::inner::{inner_len, next_header_for};
use crate::replay::{ReplayCheck, ReplayWindow};

/// Traffic and drop statistics of one SA, for status output and byte-based rekeying.
///
/// `packets` and `bytes` count packets that were sealed (outbound) or accepted (inbound); `bytes`
/// is the length of the inner IP packets. The drop counters only move on inbound SAs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets sealed or accepted.
    pub packets: u64,
    /// Inner IP bytes sealed or accepted.
    pub bytes: u64,
    /// Dropped: sequence number already seen or behind the replay window.
    pub replayed: u64,
    /// Dropped: ICV did not verify.
    pub auth_failed: u64,
    /// Dropped: truncated, misaligned, wrong SPI, sequence number 0, or bad inner IP header.
    pub malformed: u64,
    /// Dropped: padding bytes not 1, 2, 3, … or pad length too large.
    pub bad_padding: u64,
    /// Dropped: next header neither IPv4 (4) nor IPv6 (41).
    pub unknown_next_header: u64,
    /// Discarded dummy packets (next header 59); not an attack, so not part of [`Self::dropped`].
    pub dummy: u64,
}

impl Counters {
    /// Sum of all drop reasons (dummy packets excluded).
    pub fn dropped(&self) -> u64 {
        self.replayed
            + self.auth_failed
            + self.malformed
            + self.bad_padding
            + self.unknown_next_header
    }

    fn count(&mut self, reason: DropReason) {
        let c = match reason {
            DropReason::Replayed => &mut self.replayed,
            DropReason::AuthFailed => &mut self.auth_failed,
            DropReason::Malformed => &mut self.malformed,
            DropReason::BadPadding => &mut self.bad_padding,
            DropReason::UnknownNextHeader => &mut self.unknown_next_header,
            DropReason::Dummy => &mut self.dummy,
        };
        *c += 1;
    }
}

fn check_key_lengths(cipher: Cipher, enc_key: &[u8], integ_key: &[u8]) -> Result<(), EspError> {
    if enc_key.len() != cipher.enc_key_len() {
        return Err(EspError::KeyLength {
            which: "encryption",
            cipher,
            expected: cipher.enc_key_len(),
            got: enc_key.len(),
        });
    }
    if integ_key.len() != cipher.integ_key_len() {
        return Err(EspError::KeyLength {
            which: "integrity",
            cipher,
            expected: cipher.integ_key_len(),
            got: integ_key.len(),
        });
    }
    Ok(())
}

// The HMAC variant carries expanded AES or DES key schedules inline; an SA is built once and
// keeping them next to the rest of the SA saves a pointer chase per packet.
#[allow(clippy::large_enum_variant)]
enum SealKeys {
    Gcm(Gcm),
    /// A CBC cipher or NULL, with an HMAC. Boxed: its key schedules and HMAC states take
    /// ~1 KB, which every GCM SA (the common case) would otherwise carry unused.
    Hmac(Box<HmacSeal>),
}

/// Bytes an opened inner packet always has before it in the caller's buffer
/// ([`InboundSa::open_in_place`], [`Opened::inner`]), so a TUN header such as the 10- or 12-byte
/// `virtio_net_hdr` can be written in front of it without a copy. Every transform's header is
/// this long or longer except NULL's 8 bytes; for NULL the inner packet is moved back over its
/// trailer and ICV instead.
pub const OPEN_HEADROOM: usize = 16;

/// Identifies an SA so a [`SeqBlock`] or an [`Opened`] cannot be used with another SA.
static NEXT_SA_ID: AtomicU64 = AtomicU64::new(1);

/// The immutable, keyed part of an outbound SA.
struct SealShared {
    id: u64,
    spi: u32,
    cipher: Cipher,
    keys: SealKeys,
}

impl SealShared {
    /// Writes header and IV for `seq`, encrypts the `body` bytes after the header in place and
    /// appends the ICV; returns the packet length.
    #[inline]
    fn encrypt_body(&self, seq: u32, buf: &mut [u8], body: usize) -> Result<usize, EspError> {
        let hdr = self.cipher.header_len();
        buf[..4].copy_from_slice(&self.spi.to_be_bytes());
        buf[4..8].copy_from_slice(&seq.to_be_bytes());
        Ok(match &self.keys {
            SealKeys::Gcm(gcm) => {
                // RFC 4106 §3.1: the IV only has to be unique per key; the sequence number is.
                let iv = u64::from(seq).to_be_bytes();
                buf[ESP_HEADER_LEN..hdr].copy_from_slice(&iv);
                let (head, rest) = buf.split_at_mut(hdr);
                let tag = gcm.seal(&iv, &head[..ESP_HEADER_LEN], &mut rest[..body])?;
                rest[body..body + GCM_ICV_LEN].copy_from_slice(tag.as_ref());
                hdr + body + GCM_ICV_LEN
            }
            SealKeys::Hmac(keys) => {
                let (head, rest) = buf.split_at_mut(hdr);
                keys.encrypt(seq, &mut head[ESP_HEADER_LEN..], &mut rest[..body])?;
                let icv_len = self.cipher.icv_len();
                let (data, icv) = buf.split_at_mut(hdr + body);
                keys.integ.compute(data, &mut icv[..icv_len]);
                hdr + body + icv_len
            }
        })
    }

    /// Appends padding and trailer to the inner packet at `header_len()` and encrypts.
    #[inline]
    fn seal_prepared(
        &self,
        seq: u32,
        buf: &mut [u8],
        inner_len: usize,
        next_header: u8,
    ) -> Result<usize, EspError> {
        let hdr = self.cipher.header_len();
        let body = padded_len(inner_len, self.cipher.block_len());
        let pad = body - inner_len - 2;
        let trailer = &mut buf[hdr + inner_len..hdr + body];
        for (i, b) in trailer[..pad].iter_mut().enumerate() {
            *b = (i + 1) as u8;
        }
        trailer[pad] = pad as u8;
        trailer[pad + 1] = next_header;
        self.encrypt_body(seq, buf, body)
    }

    /// Checks the inner packet and the buffer size; returns the next header.
    #[inline]
    fn check_in_place(&self, buf: &[u8], inner_len: usize) -> Result<u8, EspError> {
        let hdr = self.cipher.header_len();
        let needed = self.cipher.sealed_len(inner_len);
        if buf.len() < needed {
            return Err(EspError::BufferTooSmall {
                needed,
                available: buf.len(),
            });
        }
        next_header_for(&buf[hdr..hdr + inner_len])
    }

    /// Checks the inner packet and the buffer size, then copies the inner packet into place.
    #[inline]
    fn place(&self, inner: &[u8], out: &mut [u8]) -> Result<u8, EspError> {
        let next_header = next_header_for(inner)?;
        let needed = self.cipher.sealed_len(inner.len());
        if out.len() < needed {
            return Err(EspError::BufferTooSmall {
                needed,
                available: out.len(),
            });
        }
        let hdr = self.cipher.header_len();
        out[hdr..hdr + inner.len()].copy_from_slice(inner);
        Ok(next_header)
    }
}

/// The sending half of a Child SA: assigns sequence numbers and encrypts inner packets.
pub struct OutboundSa {
    shared: Arc<SealShared>,
    /// Sequence number of the last packet sealed or reserved (0 = none yet).
    seq: u32,
    counters: Counters,
}

impl fmt::Debug for OutboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundSa")
            .field("spi", &format_args!("{:#010x}", self.shared.spi))
            .field("cipher", &self.shared.cipher)
            .field("keys", &"<redacted>")
            .field("seq", &self.seq)
            .field("counters", &self.counters)
            .finish()
    }
}

impl OutboundSa {
    /// Keys the SA once. `enc_key` is the encryption KEYMAT (for GCM: key followed by the 4-byte
    /// salt; empty for NULL); `integ_key` the integrity KEYMAT (empty for GCM). The caller's key
    /// bytes are not retained; the expanded keys are wiped when the SA (and every
    /// [`SealContext`]) is dropped (the keyed HMAC-MD5 state, which RustCrypto cannot zeroize,
    /// is overwritten instead).
    pub fn new(
        spi: u32,
        cipher: Cipher,
        enc_key: &[u8],
        integ_key: &[u8],
    ) -> Result<Self, EspError> {
        check_key_lengths(cipher, enc_key, integ_key)?;
        let keys = match cipher.auth() {
            None => SealKeys::Gcm(Gcm::new(cipher, enc_key)?),
            Some(auth) => {
                SealKeys::Hmac(Box::new(HmacSeal::new(cipher, auth, enc_key, integ_key)?))
            }
        };
        Ok(Self {
            shared: Arc::new(SealShared {
                id: NEXT_SA_ID.fetch_add(1, Ordering::Relaxed),
                spi,
                cipher,
                keys,
            }),
            seq: 0,
            counters: Counters::default(),
        })
    }

    /// The SPI the peer chose for this SA (written into every packet).
    pub fn spi(&self) -> u32 {
        self.shared.spi
    }

    /// The SA's transform.
    pub fn cipher(&self) -> Cipher {
        self.shared.cipher
    }

    /// Bytes before the inner packet (SPI, sequence number, IV): where [`Self::seal_in_place`]
    /// expects the inner packet to start.
    pub fn header_len(&self) -> usize {
        self.shared.cipher.header_len()
    }

    /// Largest number of bytes sealing adds to an inner packet, for the tunnel MTU.
    pub fn overhead(&self) -> usize {
        self.shared.cipher.overhead()
    }

    /// Exact ESP packet length for an inner packet of `inner_len` bytes.
    pub fn sealed_len(&self, inner_len: usize) -> usize {
        self.shared.cipher.sealed_len(inner_len)
    }

    /// Sequence number of the last packet sealed or reserved (0 before the first).
    pub fn last_seq(&self) -> u32 {
        self.seq
    }

    /// Packets that can still be sealed before the sequence number space runs out.
    pub fn remaining_packets(&self) -> u32 {
        u32::MAX - self.seq
    }

    /// Snapshot of the traffic counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    #[inline]
    fn next_seq(&mut self) -> Result<u32, EspError> {
        if self.seq == u32::MAX {
            return Err(EspError::SequenceExhausted);
        }
        self.seq += 1;
        Ok(self.seq)
    }

    /// Encapsulates one inner IPv4/IPv6 packet into an ESP packet (SPI through ICV, without the
    /// UDP header) written to the start of `out`; returns its length.
    pub fn seal(&mut self, inner: &[u8], out: &mut [u8]) -> Result<usize, EspError> {
        let next_header = self.shared.place(inner, out)?;
        let seq = self.next_seq()?;
        let len = self
            .shared
            .seal_prepared(seq, out, inner.len(), next_header)?;
        self.counters.packets += 1;
        self.counters.bytes += inner.len() as u64;
        Ok(len)
    }

    /// Like [`Self::seal`], but the inner packet already sits in `buf` at offset
    /// [`Self::header_len`] with length `inner_len`, so nothing is copied: the gateway reads
    /// from the TUN device straight into that offset. `buf` must have room for
    /// [`Self::sealed_len`] bytes.
    pub fn seal_in_place(&mut self, buf: &mut [u8], inner_len: usize) -> Result<usize, EspError> {
        let next_header = self.shared.check_in_place(buf, inner_len)?;
        let seq = self.next_seq()?;
        let len = self
            .shared
            .seal_prepared(seq, buf, inner_len, next_header)?;
        self.counters.packets += 1;
        self.counters.bytes += inner_len as u64;
        Ok(len)
    }

    /// Reserves up to `n` consecutive sequence numbers for packets sealed through a
    /// [`SealContext`] (e.g. on worker threads, in order per block). Fails only when numbers
    /// are wanted and none are left; the block may be shorter than `n` near the end of the
    /// sequence space. Reserved numbers that are never used are simply skipped by the peer's
    /// replay window.
    pub fn reserve(&mut self, n: u32) -> Result<SeqBlock, EspError> {
        let take = n.min(self.remaining_packets());
        if take == 0 && n > 0 {
            return Err(EspError::SequenceExhausted);
        }
        let next = u64::from(self.seq) + 1;
        self.seq += take;
        Ok(SeqBlock {
            sa: self.shared.id,
            next,
            end: u64::from(self.seq) + 1,
        })
    }

    /// A shareable handle on this SA's keys for sealing on other threads with reserved
    /// sequence numbers.
    pub fn context(&self) -> SealContext {
        SealContext {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Adds packets sealed through a [`SealContext`] to this SA's counters (contexts do not
    /// count, so that workers share no mutable state).
    pub fn record_sealed(&mut self, packets: u64, inner_bytes: u64) {
        self.counters.packets += packets;
        self.counters.bytes += inner_bytes;
    }

    /// Encrypts an arbitrary ESP payload (the bytes that end in pad length and next header),
    /// zero-extended to the block size, so fuzzers and tests can produce authentic packets
    /// whose decrypted contents are malformed.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn seal_raw_payload(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, EspError> {
        let cipher = self.shared.cipher;
        let block = cipher.block_len();
        let body = payload.len().max(1).div_ceil(block) * block;
        let hdr = cipher.header_len();
        let needed = hdr + body + cipher.icv_len();
        if out.len() < needed {
            return Err(EspError::BufferTooSmall {
                needed,
                available: out.len(),
            });
        }
        out[hdr..hdr + payload.len()].copy_from_slice(payload);
        out[hdr + payload.len()..hdr + body].fill(0);
        let seq = self.next_seq()?;
        self.shared.encrypt_body(seq, out, body)
    }
}

/// Sequence numbers reserved from one [`OutboundSa`], spent one per packet by
/// [`SealContext::seal`]. Not `Clone` and bound to its SA, so no number can be used twice:
/// with GCM a repeated sequence number would repeat the nonce.
#[derive(Debug)]
pub struct SeqBlock {
    sa: u64,
    next: u64,
    end: u64,
}

impl SeqBlock {
    /// Sequence numbers left in the block.
    pub fn remaining(&self) -> u32 {
        (self.end - self.next) as u32
    }

    /// Whether every number of the block has been used.
    pub fn is_empty(&self) -> bool {
        self.next == self.end
    }

    #[inline]
    fn take(&mut self, sa: u64) -> Result<u32, EspError> {
        if self.sa != sa {
            return Err(EspError::ForeignSeqBlock);
        }
        if self.next == self.end {
            return Err(EspError::SeqBlockEmpty);
        }
        let seq = self.next as u32;
        self.next += 1;
        Ok(seq)
    }
}

/// The keyed half of an [`OutboundSa`], shareable across threads: seals with sequence numbers
/// from a [`SeqBlock`] and keeps no other state.
#[derive(Clone)]
pub struct SealContext {
    shared: Arc<SealShared>,
}

impl fmt::Debug for SealContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealContext")
            .field("spi", &format_args!("{:#010x}", self.shared.spi))
            .field("cipher", &self.shared.cipher)
            .field("keys", &"<redacted>")
            .finish()
    }
}

impl SealContext {
    /// As [`OutboundSa::seal`], with the next number of `block`. A packet that fails its
    /// checks uses no number.
    pub fn seal(
        &self,
        block: &mut SeqBlock,
        inner: &[u8],
        out: &mut [u8],
    ) -> Result<usize, EspError> {
        let next_header = self.shared.place(inner, out)?;
        let seq = block.take(self.shared.id)?;
        self.shared
            .seal_prepared(seq, out, inner.len(), next_header)
    }

    /// As [`OutboundSa::seal_in_place`], with the next number of `block`.
    pub fn seal_in_place(
        &self,
        block: &mut SeqBlock,
        buf: &mut [u8],
        inner_len: usize,
    ) -> Result<usize, EspError> {
        let next_header = self.shared.check_in_place(buf, inner_len)?;
        let seq = block.take(self.shared.id)?;
        self.shared.seal_prepared(seq, buf, inner_len, next_header)
    }

    /// Bytes before the inner packet, as [`OutboundSa::header_len`].
    pub fn header_len(&self) -> usize {
        self.shared.cipher.header_len()
    }

    /// Exact ESP packet length for an inner packet of `inner_len` bytes.
    pub fn sealed_len(&self, inner_len: usize) -> usize {
        self.shared.cipher.sealed_len(inner_len)
    }
}

#[allow(clippy::large_enum_variant)]
enum OpenKeys {
    Gcm(Gcm),
    /// A CBC cipher or NULL, with an HMAC; boxed as in [`SealKeys`].
    Hmac(Box<HmacOpen>),
}

/// The immutable, keyed part of an inbound SA.
struct OpenShared {
    id: u64,
    spi: u32,
    cipher: Cipher,
    keys: OpenKeys,
}

impl OpenShared {
    /// Length and SPI checks; returns the sequence number.
    #[inline]
    fn parse(&self, packet: &[u8]) -> Result<u32, EspError> {
        let min = self.cipher.min_packet_len();
        if packet.len() < min {
            return Err(EspError::Truncated {
                len: packet.len(),
                min,
            });
        }
        let spi = u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]]);
        if spi != self.spi {
            return Err(EspError::SpiMismatch {
                expected: self.spi,
                got: spi,
            });
        }
        Ok(u32::from_be_bytes([
            packet[4], packet[5], packet[6], packet[7],
        ]))
    }

    /// Verifies the ICV and decrypts in place (`packet` already parsed); returns where the
    /// plaintext (inner packet, padding, pad length, next header) lies.
    #[inline]
    fn authenticate(&self, seq: u32, packet: &mut [u8]) -> Result<Range<usize>, EspError> {
        let cipher = self.cipher;
        let hdr = cipher.header_len();
        let body_len = packet.len() - hdr - cipher.icv_len();
        let block = cipher.block_len();
        #[allow(clippy::manual_is_multiple_of)] // is_multiple_of is newer than the MSRV
        if body_len % block != 0 {
            return Err(EspError::Misaligned {
                len: body_len,
                block,
            });
        }
        match &self.keys {
            OpenKeys::Gcm(gcm) => {
                let (head, rest) = packet.split_at_mut(hdr);
                let mut iv = [0u8; GCM_IV_LEN];
                iv.copy_from_slice(&head[ESP_HEADER_LEN..]);
                gcm.open(&iv, &head[..ESP_HEADER_LEN], rest)
                    .ok_or(EspError::AuthenticationFailed { seq })?;
            }
            OpenKeys::Hmac(keys) => {
                let (data, icv) = packet.split_at_mut(hdr + body_len);
                if !keys.integ.verify(data, icv) {
                    return Err(EspError::AuthenticationFailed { seq });
                }
                let (head, body) = data.split_at_mut(hdr);
                if !keys.decrypt(&head[ESP_HEADER_LEN..], body) {
                    return Err(EspError::Misaligned {
                        len: body_len,
                        block,
                    });
                }
            }
        }
        Ok(hdr..hdr + body_len)
    }

    /// Checks padding, next header and the inner IP header of decrypted `packet[plain]`;
    /// returns where the inner packet lies, at least [`OPEN_HEADROOM`] bytes into `packet`.
    #[inline]
    fn unpad(&self, packet: &mut [u8], plain: Range<usize>) -> Result<Range<usize>, EspError> {
        let start = plain.start;
        let plain = &packet[plain];
        let n = plain.len();
        let next_header = plain[n - 1];
        let pad = usize::from(plain[n - 2]);
        if pad + 2 > n {
            return Err(EspError::BadPadding);
        }
        let payload_len = n - 2 - pad;
        // Up to 255 pad bytes, so `i + 1` always fits a u8.
        let padding_ok = plain[payload_len..payload_len + pad]
            .iter()
            .enumerate()
            .fold(true, |ok, (i, &b)| ok & (b == (i + 1) as u8));
        if !padding_ok {
            return Err(EspError::BadPadding);
        }
        let len = inner_len(next_header, &plain[..payload_len])?;
        if start >= OPEN_HEADROOM {
            return Ok(start..start + len);
        }
        // NULL: only SPI and sequence number precede the inner packet, but the trailer and the
        // ICV after it (at least 2 + 12 bytes) leave room to move it back to the headroom.
        packet.copy_within(start..start + len, OPEN_HEADROOM);
        Ok(OPEN_HEADROOM..OPEN_HEADROOM + len)
    }
}

/// The receiving half of a Child SA: verifies, decrypts and replay-checks ESP packets.
pub struct InboundSa {
    shared: Arc<OpenShared>,
    window: ReplayWindow,
    counters: Counters,
}

impl fmt::Debug for InboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundSa")
            .field("spi", &format_args!("{:#010x}", self.shared.spi))
            .field("cipher", &self.shared.cipher)
            .field("keys", &"<redacted>")
            .field("highest_seq", &self.window.highest())
            .field("counters", &self.counters)
            .finish()
    }
}

impl InboundSa {
    /// Keys the SA once; key layout as for [`OutboundSa::new`].
    pub fn new(
        spi: u32,
        cipher: Cipher,
        enc_key: &[u8],
        integ_key: &[u8],
    ) -> Result<Self, EspError> {
        check_key_lengths(cipher, enc_key, integ_key)?;
        let keys = match cipher.auth() {
            None => OpenKeys::Gcm(Gcm::new(cipher, enc_key)?),
            Some(auth) => {
                OpenKeys::Hmac(Box::new(HmacOpen::new(cipher, auth, enc_key, integ_key)?))
            }
        };
        Ok(Self {
            shared: Arc::new(OpenShared {
                id: NEXT_SA_ID.fetch_add(1, Ordering::Relaxed),
                spi,
                cipher,
                keys,
            }),
            window: ReplayWindow::new(),
            counters: Counters::default(),
        })
    }

    /// The SPI we chose for this SA (the one packets for it carry).
    pub fn spi(&self) -> u32 {
        self.shared.spi
    }

    /// The SA's transform.
    pub fn cipher(&self) -> Cipher {
        self.shared.cipher
    }

    /// Highest sequence number accepted so far.
    pub fn highest_seq(&self) -> u32 {
        self.window.highest()
    }

    /// Snapshot of the traffic and drop counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Decapsulates in place; returns the inner IP packet (a slice of `packet`) or the reason
    /// the packet was dropped, which is also counted. `packet` starts at the SPI.
    pub fn open<'a>(&mut self, packet: &'a mut [u8]) -> Result<&'a [u8], EspError> {
        let range = self.open_in_place(packet)?;
        Ok(&packet[range])
    }

    /// Like [`Self::open`], but returns where the inner packet lies in `packet`, leaving the
    /// caller free to keep using the buffer mutably (e.g. to prepend a TUN header in place):
    /// the range starts at least [`OPEN_HEADROOM`] bytes into `packet`.
    pub fn open_in_place(&mut self, packet: &mut [u8]) -> Result<Range<usize>, EspError> {
        match self.decapsulate(packet) {
            Ok(range) => {
                self.counters.packets += 1;
                self.counters.bytes += range.len() as u64;
                Ok(range)
            }
            Err(e) => {
                self.record_drop(&e);
                Err(e)
            }
        }
    }

    #[inline]
    fn decapsulate(&mut self, packet: &mut [u8]) -> Result<Range<usize>, EspError> {
        let seq = self.shared.parse(packet)?;
        // Cheap rejection of replays before any cryptography (RFC 4303 §3.4.3).
        self.window_verdict(seq)?;
        let plain = self.shared.authenticate(seq, packet)?;
        // Authentic: only now may the packet move the window (RFC 4303 §3.4.3).
        self.window.accept(seq);
        self.shared.unpad(packet, plain)
    }

    #[inline]
    fn window_verdict(&self, seq: u32) -> Result<(), EspError> {
        match self.window.check(seq) {
            ReplayCheck::Fresh => Ok(()),
            ReplayCheck::Zero => Err(EspError::ZeroSequence),
            ReplayCheck::Duplicate => Err(EspError::Replayed { seq }),
            ReplayCheck::TooOld => Err(EspError::TooOld {
                seq,
                highest: self.window.highest(),
            }),
        }
    }

    /// The cheap checks [`Self::open`] does before any cryptography (length, SPI, replay
    /// window), for a dispatcher that hands packets to [`OpenContext`] workers. Counts nothing;
    /// pass a failure to [`Self::record_drop`].
    pub fn precheck(&self, packet: &[u8]) -> Result<u32, EspError> {
        let seq = self.shared.parse(packet)?;
        self.window_verdict(seq)?;
        Ok(seq)
    }

    /// Accepts a packet an [`OpenContext`] verified: records its sequence number in the replay
    /// window (rejecting it if another copy got there first) and counts it.
    pub fn commit(&mut self, opened: Opened) -> Result<Range<usize>, EspError> {
        if opened.sa != self.shared.id {
            return Err(EspError::ForeignOpened);
        }
        let seq = opened.seq;
        let verdict = match self.window.accept(seq) {
            ReplayCheck::Fresh => Ok(opened.inner),
            ReplayCheck::Zero => Err(EspError::ZeroSequence),
            ReplayCheck::Duplicate => Err(EspError::Replayed { seq }),
            ReplayCheck::TooOld => Err(EspError::TooOld {
                seq,
                highest: self.window.highest(),
            }),
        };
        match verdict {
            Ok(inner) => {
                self.counters.packets += 1;
                self.counters.bytes += inner.len() as u64;
                Ok(inner)
            }
            Err(e) => {
                self.record_drop(&e);
                Err(e)
            }
        }
    }

    /// Counts a drop that happened outside [`Self::open`] (in [`Self::precheck`] or an
    /// [`OpenContext`]); setup and sealing errors are ignored.
    pub fn record_drop(&mut self, error: &EspError) {
        if let Some(reason) = error.drop_reason() {
            self.counters.count(reason);
        }
    }

    /// A shareable handle on this SA's keys, for verifying and decrypting on other threads.
    pub fn context(&self) -> OpenContext {
        OpenContext {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// A packet an [`OpenContext`] authenticated and decrypted, waiting for
/// [`InboundSa::commit`] to check it against the replay window. Only the crate creates these.
#[derive(Debug)]
pub struct Opened {
    sa: u64,
    seq: u32,
    inner: Range<usize>,
}

impl Opened {
    /// The packet's sequence number.
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// Where the inner IP packet lies in the buffer that was opened.
    pub fn inner(&self) -> Range<usize> {
        self.inner.clone()
    }
}

/// The keyed half of an [`InboundSa`], shareable across threads: authenticates and decrypts
/// but leaves the replay window to [`InboundSa::commit`].
#[derive(Clone)]
pub struct OpenContext {
    shared: Arc<OpenShared>,
}

impl fmt::Debug for OpenContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenContext")
            .field("spi", &format_args!("{:#010x}", self.shared.spi))
            .field("cipher", &self.shared.cipher)
            .field("keys", &"<redacted>")
            .finish()
    }
}

impl OpenContext {
    /// Verifies, decrypts in place and checks the trailer and inner header; the result must
    /// still pass [`InboundSa::commit`]. Nothing is counted here.
    pub fn open(&self, packet: &mut [u8]) -> Result<Opened, EspError> {
        let seq = self.shared.parse(packet)?;
        if seq == 0 {
            return Err(EspError::ZeroSequence);
        }
        let plain = self.shared.authenticate(seq, packet)?;
        let inner = self.shared.unpad(packet, plain)?;
        Ok(Opened {
            sa: self.shared.id,
            seq,
            inner,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cipher::Auth;

    const CIPHERS: [Cipher; 9] = [
        Cipher::AesGcm128,
        Cipher::AesGcm192,
        Cipher::AesGcm256,
        Cipher::AesCbc128(Auth::HmacSha1_96),
        Cipher::AesCbc192(Auth::HmacMd5_96),
        Cipher::AesCbc256(Auth::HmacSha384_192),
        Cipher::TripleDesCbc(Auth::HmacMd5_96),
        Cipher::DesCbc(Auth::HmacSha256_128),
        Cipher::Null(Auth::HmacSha1_96),
    ];

    fn pair(cipher: Cipher) -> (OutboundSa, InboundSa) {
        let e = vec![0x5a; cipher.enc_key_len()];
        let i = vec![0x3c; cipher.integ_key_len()];
        (
            OutboundSa::new(0x100, cipher, &e, &i).unwrap(),
            InboundSa::new(0x100, cipher, &e, &i).unwrap(),
        )
    }

    fn ipv4(len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p
    }

    /// Seals `payload` (the plaintext ESP payload incl. trailer) and opens it.
    fn open_raw(cipher: Cipher, payload: &[u8]) -> (Result<Vec<u8>, EspError>, Counters) {
        let (mut o, mut i) = pair(cipher);
        let mut buf = vec![0u8; payload.len() + 64];
        let n = o.seal_raw_payload(payload, &mut buf).unwrap();
        let r = i.open(&mut buf[..n]).map(<[u8]>::to_vec);
        (r, i.counters())
    }

    fn with_trailer(inner: &[u8], pad: &[u8], pad_len: u8, nh: u8, block: usize) -> Vec<u8> {
        let mut p = inner.to_vec();
        p.extend_from_slice(pad);
        p.extend_from_slice(&[pad_len, nh]);
        assert_eq!(p.len() % block, 0, "test payload must be aligned");
        p
    }

    #[test]
    fn well_formed_raw_payload_opens() {
        for c in CIPHERS {
            let inner = ipv4(28);
            let pad: Vec<u8> =
                (1..=(c.block_len() - 30 % c.block_len()) as u8 % c.block_len() as u8).collect();
            let p = with_trailer(&inner, &pad, pad.len() as u8, 4, c.block_len());
            let (r, _) = open_raw(c, &p);
            assert_eq!(r.unwrap(), inner, "{c}");
        }
    }

    #[test]
    fn non_monotonic_padding_is_bad_padding_and_counted() {
        for c in CIPHERS {
            // 28 + 2 + pad = multiple of block: pad = 2 (GCM) or 2 (CBC: 32).
            let p = with_trailer(&ipv4(28), &[1, 3], 2, 4, c.block_len());
            let (r, counters) = open_raw(c, &p);
            assert_eq!(r, Err(EspError::BadPadding), "{c}");
            assert_eq!(counters.bad_padding, 1);
            assert_eq!(counters.packets, 0);
        }
    }

    /// Regression (found by fuzz target `esp_open`): 255 padding bytes overflowed the expected
    /// pad-byte counter.
    #[test]
    fn maximal_padding_of_255_bytes_is_accepted() {
        for c in CIPHERS {
            let pad: Vec<u8> = (1..=255).collect();
            let p = with_trailer(&ipv4(31), &pad, 255, 4, c.block_len());
            assert_eq!(open_raw(c, &p).0.unwrap(), ipv4(31), "{c}");
            let mut bad = pad.clone();
            bad[254] = 0;
            let p = with_trailer(&ipv4(31), &bad, 255, 4, c.block_len());
            assert_eq!(open_raw(c, &p).0, Err(EspError::BadPadding), "{c}");
        }
    }

    #[test]
    fn pad_length_beyond_the_payload_is_bad_padding() {
        for c in CIPHERS {
            let p = with_trailer(&ipv4(28), &[1, 2], 250, 4, c.block_len());
            assert_eq!(open_raw(c, &p).0, Err(EspError::BadPadding), "{c}");
        }
    }

    #[test]
    fn unknown_next_header_is_dropped_and_counted() {
        for c in CIPHERS {
            // Next header 6 (TCP): transport mode, which a tunnel SA never carries.
            let p = with_trailer(&ipv4(28), &[1, 2], 2, 6, c.block_len());
            let (r, counters) = open_raw(c, &p);
            assert_eq!(r, Err(EspError::UnknownNextHeader(6)), "{c}");
            assert_eq!(counters.unknown_next_header, 1);
        }
    }

    #[test]
    fn dummy_packets_are_discarded_but_not_counted_as_attacks() {
        for c in CIPHERS {
            let p = with_trailer(&[0xEE; 28], &[1, 2], 2, 59, c.block_len());
            let (r, counters) = open_raw(c, &p);
            assert_eq!(r, Err(EspError::DummyPacket), "{c}");
            assert_eq!((counters.dummy, counters.dropped()), (1, 0));
        }
    }

    #[test]
    fn inner_header_disagreeing_with_next_header_is_malformed() {
        for c in CIPHERS {
            // IPv4 packet announced as IPv6.
            let p = with_trailer(&ipv4(28), &[1, 2], 2, 41, c.block_len());
            let (r, counters) = open_raw(c, &p);
            assert_eq!(r, Err(EspError::BadInnerPacket), "{c}");
            assert_eq!(counters.malformed, 1);
            // IPv4 header claiming more bytes than were carried.
            let mut inner = ipv4(28);
            inner[2..4].copy_from_slice(&1000u16.to_be_bytes());
            let p = with_trailer(&inner, &[1, 2], 2, 4, c.block_len());
            assert_eq!(open_raw(c, &p).0, Err(EspError::BadInnerPacket), "{c}");
        }
    }

    #[test]
    fn authentic_but_malformed_packet_still_uses_up_its_sequence_number() {
        let c = Cipher::AesGcm128;
        let (mut o, mut i) = pair(c);
        let p = with_trailer(&ipv4(28), &[1, 3], 2, 4, 4);
        let mut buf = vec![0u8; 128];
        let n = o.seal_raw_payload(&p, &mut buf).unwrap();
        let copy = buf[..n].to_vec();
        assert_eq!(i.open(&mut buf[..n]), Err(EspError::BadPadding));
        let mut again = copy;
        assert_eq!(i.open(&mut again), Err(EspError::Replayed { seq: 1 }));
    }

    #[test]
    fn sequence_numbers_never_wrap() {
        for c in CIPHERS {
            let (mut o, mut i) = pair(c);
            o.seq = u32::MAX - 1;
            let inner = ipv4(40);
            let mut buf = vec![0u8; 200];
            let n = o.seal(&inner, &mut buf).unwrap();
            assert_eq!(&buf[4..8], &u32::MAX.to_be_bytes());
            assert_eq!(i.open(&mut buf[..n]).unwrap(), &inner[..]);
            assert_eq!(o.remaining_packets(), 0);
            assert_eq!(
                o.seal(&inner, &mut buf),
                Err(EspError::SequenceExhausted),
                "{c}"
            );
            assert_eq!(o.seal(&inner, &mut buf), Err(EspError::SequenceExhausted));
            assert_eq!(o.last_seq(), u32::MAX);
            assert_eq!(o.counters().packets, 1);
        }
    }
}
