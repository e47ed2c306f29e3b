//! BGP-4 wire format (RFC 4271 §4): the 19-octet header and the five messages, parsed into
//! owned structures that encode back to the same octets. Decoding never panics; every error
//! maps to the NOTIFICATION RFC 4271 §6 prescribes ([`crate::DecodeError::notification`]).

mod open;
pub mod update;

pub use open::{Capability, Open, AS_TRANS};
pub use update::{AsPath, AsSegment, Origin, PathAttributes, RawAttribute, Update};

use crate::error::{DecodeError, EncodeError};

/// Length of the message header: marker, length, type (RFC 4271 §4.1).
pub const HEADER_LEN: usize = 19;
/// Largest message RFC 4271 §4.1 allows.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Address family identifier for IPv4 (IANA).
pub const AFI_IPV4: u16 = 1;
/// Subsequent address family identifier for unicast (RFC 4760).
pub const SAFI_UNICAST: u8 = 1;

use codepoints::code_points;

code_points! {
    /// NOTIFICATION error codes (RFC 4271 §4.5).
    ErrorCode: u8 {
        /// Message Header Error.
        MessageHeaderError = 1 => "Message Header Error",
        /// OPEN Message Error.
        OpenMessageError = 2 => "OPEN Message Error",
        /// UPDATE Message Error.
        UpdateMessageError = 3 => "UPDATE Message Error",
        /// Hold Timer Expired.
        HoldTimerExpired = 4 => "Hold Timer Expired",
        /// Finite State Machine Error.
        FiniteStateMachineError = 5 => "Finite State Machine Error",
        /// Cease.
        Cease = 6 => "Cease",
    }
}

/// NOTIFICATION error subcodes (RFC 4271 §4.5, RFC 5492, RFC 6608, RFC 4486), by error code.
pub mod subcode {
    /// Any code: no more specific subcode applies.
    pub const UNSPECIFIC: u8 = 0;
    /// Message Header Error: the marker is not all ones.
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    /// Message Header Error: bad length field.
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    /// Message Header Error: unknown message type.
    pub const BAD_MESSAGE_TYPE: u8 = 3;
    /// OPEN Message Error: version other than 4.
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    /// OPEN Message Error: the peer's AS is not the one configured.
    pub const BAD_PEER_AS: u8 = 2;
    /// OPEN Message Error: BGP identifier unacceptable.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// OPEN Message Error: an optional parameter we do not know.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// OPEN Message Error: hold time of 1 or 2 seconds.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// OPEN Message Error: a capability we require is missing (RFC 5492 §5).
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    /// UPDATE Message Error: lengths do not add up, or an attribute appears twice.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    /// UPDATE Message Error: a well-known attribute type we do not know.
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    /// UPDATE Message Error: ORIGIN, AS_PATH or NEXT_HOP missing.
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    /// UPDATE Message Error: flags contradict the attribute type.
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    /// UPDATE Message Error: length wrong for the attribute type.
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    /// UPDATE Message Error: ORIGIN value undefined.
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    /// UPDATE Message Error: NEXT_HOP not a unicast host address.
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    /// UPDATE Message Error: optional attribute wrong.
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    /// UPDATE Message Error: a prefix is malformed.
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    /// UPDATE Message Error: AS_PATH malformed.
    pub const MALFORMED_AS_PATH: u8 = 11;
    /// Finite State Machine Error: unexpected message in OpenSent (RFC 6608).
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    /// Finite State Machine Error: unexpected message in OpenConfirm (RFC 6608).
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    /// Finite State Machine Error: unexpected message in Established (RFC 6608).
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
    /// Cease: the session was shut down by its operator (RFC 4486).
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;

    /// The name of `subcode` under `code`, when one is defined.
    pub fn name(code: super::ErrorCode, subcode: u8) -> Option<&'static str> {
        use super::ErrorCode::*;
        Some(match (code, subcode) {
            (_, 0) => "Unspecific",
            (MessageHeaderError, 1) => "Connection Not Synchronized",
            (MessageHeaderError, 2) => "Bad Message Length",
            (MessageHeaderError, 3) => "Bad Message Type",
            (OpenMessageError, 1) => "Unsupported Version Number",
            (OpenMessageError, 2) => "Bad Peer AS",
            (OpenMessageError, 3) => "Bad BGP Identifier",
            (OpenMessageError, 4) => "Unsupported Optional Parameter",
            (OpenMessageError, 6) => "Unacceptable Hold Time",
            (OpenMessageError, 7) => "Unsupported Capability",
            (UpdateMessageError, 1) => "Malformed Attribute List",
            (UpdateMessageError, 2) => "Unrecognized Well-known Attribute",
            (UpdateMessageError, 3) => "Missing Well-known Attribute",
            (UpdateMessageError, 4) => "Attribute Flags Error",
            (UpdateMessageError, 5) => "Attribute Length Error",
            (UpdateMessageError, 6) => "Invalid ORIGIN Attribute",
            (UpdateMessageError, 8) => "Invalid NEXT_HOP Attribute",
            (UpdateMessageError, 9) => "Optional Attribute Error",
            (UpdateMessageError, 10) => "Invalid Network Field",
            (UpdateMessageError, 11) => "Malformed AS_PATH",
            (FiniteStateMachineError, 1) => "Receive Unexpected Message in OpenSent State",
            (FiniteStateMachineError, 2) => "Receive Unexpected Message in OpenConfirm State",
            (FiniteStateMachineError, 3) => "Receive Unexpected Message in Established State",
            (Cease, 1) => "Maximum Number of Prefixes Reached",
            (Cease, 2) => "Administrative Shutdown",
            (Cease, 3) => "Peer De-configured",
            (Cease, 4) => "Administrative Reset",
            (Cease, 5) => "Connection Rejected",
            (Cease, 6) => "Other Configuration Change",
            (Cease, 7) => "Connection Collision Resolution",
            (Cease, 8) => "Out of Resources",
            _ => return None,
        })
    }
}

/// Message type codes (RFC 4271 §4.1, RFC 2918).
pub mod message_type {
    /// OPEN.
    pub const OPEN: u8 = 1;
    /// UPDATE.
    pub const UPDATE: u8 = 2;
    /// NOTIFICATION.
    pub const NOTIFICATION: u8 = 3;
    /// KEEPALIVE.
    pub const KEEPALIVE: u8 = 4;
    /// ROUTE-REFRESH (RFC 2918).
    pub const ROUTE_REFRESH: u8 = 5;
}

/// One BGP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// OPEN (RFC 4271 §4.2).
    Open(Open),
    /// UPDATE (RFC 4271 §4.3), IPv4 unicast.
    Update(Update),
    /// NOTIFICATION (RFC 4271 §4.5).
    Notification(Notification),
    /// KEEPALIVE (RFC 4271 §4.4): the header alone.
    Keepalive,
    /// ROUTE-REFRESH (RFC 2918 §3).
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// Decodes exactly one message: `bytes` must be as long as its header says.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let (length, kind) = header(bytes)?.ok_or(DecodeError::BadMessageLength(0))?;
        if bytes.len() != length {
            return Err(DecodeError::BadMessageLength(length as u16));
        }
        let body = &bytes[HEADER_LEN..];
        let bad_length = DecodeError::BadMessageLength(length as u16);
        match kind {
            message_type::OPEN => {
                if length < 29 {
                    return Err(bad_length);
                }
                Open::decode(body).map(Message::Open)
            }
            message_type::UPDATE => {
                if length < 23 {
                    return Err(bad_length);
                }
                Update::decode(body).map(Message::Update)
            }
            message_type::NOTIFICATION => {
                if length < 21 {
                    return Err(bad_length);
                }
                Ok(Message::Notification(Notification {
                    code: body[0].into(),
                    subcode: body[1],
                    data: body[2..].to_vec(),
                }))
            }
            message_type::KEEPALIVE if length == HEADER_LEN => Ok(Message::Keepalive),
            message_type::KEEPALIVE => Err(bad_length),
            message_type::ROUTE_REFRESH if length == 23 => {
                Ok(Message::RouteRefresh(RouteRefresh {
                    afi: u16::from_be_bytes([body[0], body[1]]),
                    safi: body[3],
                }))
            }
            message_type::ROUTE_REFRESH => Err(bad_length),
            other => Err(DecodeError::BadMessageType(other)),
        }
    }

    /// Encodes the message with its header.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = vec![0xff; 16];
        out.extend_from_slice(&[0, 0, self.type_code()]);
        match self {
            Message::Open(open) => open.encode_body(&mut out)?,
            Message::Update(update) => update.encode_body(&mut out)?,
            Message::Notification(n) => {
                out.push(n.code.into());
                out.push(n.subcode);
                out.extend_from_slice(&n.data);
            }
            Message::Keepalive => {}
            Message::RouteRefresh(rr) => {
                out.extend_from_slice(&rr.afi.to_be_bytes());
                out.push(0);
                out.push(rr.safi);
            }
        }
        if out.len() > MAX_MESSAGE_LEN {
            return Err(EncodeError::TooLong(out.len()));
        }
        let len = (out.len() as u16).to_be_bytes();
        out[16..18].copy_from_slice(&len);
        Ok(out)
    }

    /// The message's type code.
    pub fn type_code(&self) -> u8 {
        match self {
            Message::Open(_) => message_type::OPEN,
            Message::Update(_) => message_type::UPDATE,
            Message::Notification(_) => message_type::NOTIFICATION,
            Message::Keepalive => message_type::KEEPALIVE,
            Message::RouteRefresh(_) => message_type::ROUTE_REFRESH,
        }
    }

    /// The RFC's name of the message type, for logs and FSM errors.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Open(_) => "OPEN",
            Message::Update(_) => "UPDATE",
            Message::Notification(_) => "NOTIFICATION",
            Message::Keepalive => "KEEPALIVE",
            Message::RouteRefresh(_) => "ROUTE-REFRESH",
        }
    }
}

/// Frames a TCP stream: the length of the message at the start of `buf` once all of it has
/// arrived, `None` while more octets are needed. Checks the marker and the length field as
/// soon as the header is complete, so a desynchronized stream fails before it is buffered.
pub fn frame(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    Ok(header(buf)?.and_then(|(length, _)| (buf.len() >= length).then_some(length)))
}

/// Marker, length and type of the header at the start of `buf`, `None` if it is incomplete.
fn header(buf: &[u8]) -> Result<Option<(usize, u8)>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[..16].iter().any(|&b| b != 0xff) {
        return Err(DecodeError::NotSynchronized);
    }
    let length = u16::from_be_bytes([buf[16], buf[17]]);
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&(length as usize)) {
        return Err(DecodeError::BadMessageLength(length));
    }
    Ok(Some((length as usize, buf[18])))
}

/// A NOTIFICATION: the error that closes the session (RFC 4271 §4.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Error code.
    pub code: ErrorCode,
    /// Error subcode, meaningful under `code` (see [`subcode`]).
    pub subcode: u8,
    /// Data whose meaning the code and subcode define.
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION with the given code, subcode and data.
    pub fn new(code: ErrorCode, subcode: u8, data: Vec<u8>) -> Self {
        Notification {
            code,
            subcode,
            data,
        }
    }
}

impl std::fmt::Display for Notification {
    /// "OPEN Message Error / Bad Peer AS", or the subcode's number when it has no name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match subcode::name(self.code, self.subcode) {
            Some(name) => write!(f, "{} / {name}", self.code),
            None => write!(f, "{} / subcode {}", self.code, self.subcode),
        }
    }
}

/// A ROUTE-REFRESH: asks the peer to send its Adj-RIB-Out for one address family again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRefresh {
    /// Address family identifier.
    pub afi: u16,
    /// Subsequent address family identifier.
    pub safi: u8,
}

/// Reads big-endian fields off a slice; every read is checked, so a short input is an error
/// the caller names rather than a panic.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Octets not yet read.
    pub(crate) fn buf_len(&self) -> usize {
        self.buf.len()
    }

    /// Whether every octet was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next `n` octets.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    /// The next octet.
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    /// The next two octets as a number.
    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// The next four octets as a number.
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}
