//! Error types, split by cause: what the peer sent (decoding, each with the NOTIFICATION that
//! answers it) and what we were asked to send (encoding).

use std::net::Ipv4Addr;

use thiserror::Error;

use crate::codec::{subcode, ErrorCode, Notification};

/// A malformed message from the peer. RFC 4271 §6 prescribes the NOTIFICATION for each cause;
/// [`DecodeError::notification`] builds it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The marker is not sixteen octets of ones (RFC 4271 §6.1).
    #[error("message marker is not all ones")]
    NotSynchronized,
    /// The length field is outside 19..=4096 or wrong for the message type.
    #[error("bad message length {0}")]
    BadMessageLength(u16),
    /// The type field names no message we know.
    #[error("bad message type {0}")]
    BadMessageType(u8),
    /// OPEN carries a version other than 4.
    #[error("unsupported BGP version {0}")]
    UnsupportedVersion(u8),
    /// OPEN carries a hold time of 1 or 2 seconds (RFC 4271 §4.2: 0 or at least 3).
    #[error("unacceptable hold time {0} s")]
    UnacceptableHoldTime(u16),
    /// OPEN carries a BGP identifier that is not a unicast host address.
    #[error("bad BGP identifier {0}")]
    BadBgpIdentifier(Ipv4Addr),
    /// OPEN carries an optional parameter other than capabilities (RFC 5492).
    #[error("unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    /// OPEN's optional parameters or capabilities do not add up.
    #[error("malformed OPEN: {0}")]
    MalformedOpen(&'static str),
    /// UPDATE's lengths do not add up or an attribute appears twice.
    #[error("malformed attribute list: {0}")]
    MalformedAttributeList(&'static str),
    /// A well-known attribute type we do not know.
    #[error("unrecognized well-known attribute type {type_code}")]
    UnrecognizedWellKnown {
        /// The attribute's type code.
        type_code: u8,
        /// The attribute as received (flags, type, length, value).
        attribute: Vec<u8>,
    },
    /// ORIGIN, AS_PATH or NEXT_HOP missing from an UPDATE that carries NLRI.
    #[error("missing well-known attribute type {0}")]
    MissingWellKnown(u8),
    /// A known attribute with flags that contradict its type.
    #[error("attribute flags error in attribute type {type_code}")]
    AttributeFlags {
        /// The attribute's type code.
        type_code: u8,
        /// The attribute as received.
        attribute: Vec<u8>,
    },
    /// A known attribute whose length differs from the one its type has.
    #[error("attribute length error in attribute type {type_code}")]
    AttributeLength {
        /// The attribute's type code.
        type_code: u8,
        /// The attribute as received.
        attribute: Vec<u8>,
    },
    /// ORIGIN is not IGP, EGP or INCOMPLETE.
    #[error("invalid ORIGIN value")]
    InvalidOrigin {
        /// The attribute as received.
        attribute: Vec<u8>,
    },
    /// NEXT_HOP is not a unicast host address.
    #[error("invalid NEXT_HOP {next_hop}")]
    InvalidNextHop {
        /// The address received.
        next_hop: Ipv4Addr,
        /// The attribute as received.
        attribute: Vec<u8>,
    },
    /// A prefix in the withdrawn routes or the NLRI is longer than 32 bits or truncated.
    #[error("invalid network field")]
    InvalidNetworkField,
    /// AS_PATH segments do not add up or have an unknown type.
    #[error("malformed AS_PATH")]
    MalformedAsPath,
}

impl DecodeError {
    /// The NOTIFICATION RFC 4271 §6 (and RFC 5492 for capabilities) prescribes in answer.
    pub fn notification(&self) -> Notification {
        use DecodeError::*;
        let (code, sub, data) = match self {
            NotSynchronized => (
                ErrorCode::MessageHeaderError,
                subcode::CONNECTION_NOT_SYNCHRONIZED,
                vec![],
            ),
            BadMessageLength(len) => (
                ErrorCode::MessageHeaderError,
                subcode::BAD_MESSAGE_LENGTH,
                len.to_be_bytes().to_vec(),
            ),
            BadMessageType(t) => (
                ErrorCode::MessageHeaderError,
                subcode::BAD_MESSAGE_TYPE,
                vec![*t],
            ),
            // The data names the largest version we support (RFC 4271 §6.2).
            UnsupportedVersion(_) => (
                ErrorCode::OpenMessageError,
                subcode::UNSUPPORTED_VERSION_NUMBER,
                4u16.to_be_bytes().to_vec(),
            ),
            UnacceptableHoldTime(_) => (
                ErrorCode::OpenMessageError,
                subcode::UNACCEPTABLE_HOLD_TIME,
                vec![],
            ),
            BadBgpIdentifier(_) => (
                ErrorCode::OpenMessageError,
                subcode::BAD_BGP_IDENTIFIER,
                vec![],
            ),
            UnsupportedOptionalParameter(_) => (
                ErrorCode::OpenMessageError,
                subcode::UNSUPPORTED_OPTIONAL_PARAMETER,
                vec![],
            ),
            MalformedOpen(_) => (ErrorCode::OpenMessageError, subcode::UNSPECIFIC, vec![]),
            MalformedAttributeList(_) => (
                ErrorCode::UpdateMessageError,
                subcode::MALFORMED_ATTRIBUTE_LIST,
                vec![],
            ),
            UnrecognizedWellKnown { attribute, .. } => (
                ErrorCode::UpdateMessageError,
                subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                attribute.clone(),
            ),
            MissingWellKnown(t) => (
                ErrorCode::UpdateMessageError,
                subcode::MISSING_WELL_KNOWN_ATTRIBUTE,
                vec![*t],
            ),
            AttributeFlags { attribute, .. } => (
                ErrorCode::UpdateMessageError,
                subcode::ATTRIBUTE_FLAGS_ERROR,
                attribute.clone(),
            ),
            AttributeLength { attribute, .. } => (
                ErrorCode::UpdateMessageError,
                subcode::ATTRIBUTE_LENGTH_ERROR,
                attribute.clone(),
            ),
            InvalidOrigin { attribute } => (
                ErrorCode::UpdateMessageError,
                subcode::INVALID_ORIGIN_ATTRIBUTE,
                attribute.clone(),
            ),
            InvalidNextHop { attribute, .. } => (
                ErrorCode::UpdateMessageError,
                subcode::INVALID_NEXT_HOP_ATTRIBUTE,
                attribute.clone(),
            ),
            InvalidNetworkField => (
                ErrorCode::UpdateMessageError,
                subcode::INVALID_NETWORK_FIELD,
                vec![],
            ),
            MalformedAsPath => (
                ErrorCode::UpdateMessageError,
                subcode::MALFORMED_AS_PATH,
                vec![],
            ),
        };
        Notification::new(code, sub, data)
    }
}

/// A message we were asked to send that cannot be put on the wire.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The message would exceed the 4096 octets RFC 4271 §4.1 allows.
    #[error("message of {0} octets exceeds the BGP maximum of 4096")]
    TooLong(usize),
    /// A field does not fit its wire width (e.g. more than 255 ASNs in one segment).
    #[error("{0} does not fit its wire field")]
    FieldTooLarge(&'static str),
}
