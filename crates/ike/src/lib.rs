//! Sans-IO IKEv2 (RFC 7296): datagrams and the current time in; datagrams, timeouts and
//! events out. No sockets, no clocks, so the gateway runtime and tests drive it alike.
//!
//! * [`codec`]: the wire format; every payload it parses it writes back byte for byte.
//! * [`crypto`]: prf+, SKEYSEED/SK_* derivation, SK payload protection (AES-CBC + HMAC with
//!   truncated ICV, AES-GCM-16 with 8-octet IV), PSK AUTH, Child SA KEYMAT, DH (MODP 2/14/24
//!   via crypto-bigint, ECP-256/384 and Curve25519 via aws-lc-rs).
//! * [`proposal`]: IANA transforms, selection and validation of proposals.
//! * [`endpoint`]: [`Endpoint`], the state machines (IKE_SA_INIT, IKE_AUTH with PSK,
//!   CREATE_CHILD_SA for rekeys, INFORMATIONAL), retransmission, message-ID window of one.
//!
//! Driving an [`Endpoint`]: call `handle_datagram` for every UDP datagram received on port 500
//! or 4500 (on any port but 500 the datagram must start with the non-ESP marker), call
//! `handle_timeout` when `poll_timeout` is reached, and after either drain `poll_transmit`
//! (send from `local_port`) and `poll_event`. IKE always floats to UDP 4500 after
//! IKE_SA_INIT and claims NAT (like strongSwan's kernel-libipsec), so ESP is always
//! UDP-encapsulated to [`ChildSaKeys::peer`].
//!
//! Child SAs come and go: a rekey reports the new SA with `ChildSaInstalled` first and the old
//! one with `ChildSaDeleted` once the peer confirmed its deletion, so a connection can briefly
//! have two. Only the side whose connection has `initiate = true` rekeys on lifetimes; the
//! other side answers the peer's rekeys (so two hybridnet peers never collide).

#![forbid(unsafe_code)]

pub mod codec;
pub mod config;
pub mod cookie;
pub mod crypto;
pub mod endpoint;
pub mod error;
pub mod proposal;
pub mod rng;

pub use config::{
    ConnectionConfig, DhGroup, DownAction, Encryption, Identity, Integrity, Prf, Proposal, Psk,
    Recovery, TrafficSelector,
};
pub use endpoint::{
    AuthFailure, ChildSaKeys, ConnectionId, ConnectionStatus, DownReason, Endpoint, Event, Transmit,
};
pub use error::{ConfigError, CryptoError, DecodeError, IkeError};
