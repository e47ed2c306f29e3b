//! Sans-IO BGP-4 (RFC 4271) for the VPN gateways: bytes of a TCP stream and the current time
//! in; bytes to send, timeouts and events out. No sockets, no clocks, so the gateway runtime
//! and tests drive it alike.
//!
//! * [`codec`]: the wire format (RFC 4271 §4) with the capabilities a gateway needs
//!   (multiprotocol IPv4 unicast, RFC 4760; 4-octet AS numbers, RFC 6793; route refresh,
//!   RFC 2918). Every decoding error names the NOTIFICATION RFC 4271 §6 prescribes for it.
//! * [`session`]: [`Session`], one peer's finite state machine (RFC 4271 §8): OPEN
//!   negotiation and checks, hold and keepalive timers, connect-retry, framing of the stream.
//! * [`rib`]: [`Rib`], per-peer Adj-RIB-In, the Loc-RIB with best-path selection
//!   (RFC 4271 §9.1) and per-peer Adj-RIB-Out producing the UPDATEs for each peer.
//! * [`speaker`]: [`Speaker`], what a VPN gateway runs: a session per configured peer over
//!   one RIB, collision resolution, peers tried only while their tunnel is up.
//!
//! Driving a [`Session`]: call `start`, open a TCP connection when `poll_event` says
//! [`Event::Connect`] (or accept one) and report it with `tcp_connected`; feed every byte read
//! to `handle_bytes`, call `handle_timeout` when `poll_timeout` is reached, and after any call
//! drain `poll_transmit` (write to the connection) and `poll_event`. Routes a session reports go
//! to [`Rib::receive`]; the UPDATEs it returns go to the named peers' `Session::send_update`.

#![forbid(unsafe_code)]

pub mod codec;
pub mod error;
pub mod rib;
pub mod session;
pub mod speaker;

pub use codec::{
    AsPath, AsSegment, Capability, ErrorCode, Message, Notification, Open, Origin, PathAttributes,
    RawAttribute, RouteRefresh, Update,
};
pub use error::{DecodeError, EncodeError};
pub use rib::{PeerInfo, Rib, Route, RouteSource};
pub use session::{DownReason, Event, Session, SessionConfig, State};
pub use speaker::{ConnId, KnownRoute, Output, PeerConfig, PeerStatus, Speaker, SpeakerConfig};
