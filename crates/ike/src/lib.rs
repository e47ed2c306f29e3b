//! Sans-IO IKEv2 (RFC 7296): datagrams and the current time in; datagrams, timeouts and
//! events out. No sockets, no clocks, so the gateway runtime and tests drive it alike.

pub mod codec;
pub mod config;
pub mod crypto;
pub mod endpoint;
pub mod error;
pub mod proposal;

pub use config::{
    ConnectionConfig, DhGroup, Encryption, Identity, Integrity, Prf, Proposal, Psk, TrafficSelector,
};
pub use endpoint::{
    ChildSaKeys, ConnectionId, ConnectionStatus, DownReason, Endpoint, Event, Transmit,
};
pub use error::{ConfigError, CryptoError, DecodeError, IkeError};
