//! The BGP wire codec: a thin layer over `netgauze-bgp-pkt`.
//!
//! netgauze parses and writes OPEN, UPDATE, KEEPALIVE and ROUTE-REFRESH. This module adds what a
//! speaker needs around it, one file per idea:
//! - [`header`]: message sizes and types;
//! - [`frame`]: header checks before any parsing, so every framing error maps to the RFC 4271
//!   §6.1 NOTIFICATION, and one message on or off a byte buffer;
//! - [`notification`]: NOTIFICATION as raw code/subcode/data, with the codes named;
//! - [`open`]: our OPEN and a peer's, read into plain fields;
//! - [`extended_next_hop`]: RFC 8950's capability, offered by unnumbered sessions;
//! - [`update`]: the UPDATEs an LB speaker sends (announcements with its attributes,
//!   withdrawals, End-of-RIB), batched to fit 4096 octets, and a summary of received ones.

pub mod extended_next_hop;
pub mod frame;
pub mod header;
pub mod notification;
pub mod open;
pub mod rfc7606;
pub mod update;

pub use extended_next_hop::{accepts_ipv4_with_ipv6_next_hop, offer_extended_next_hop};
pub use frame::{CodecError, Decoded, Message, decode, decode_one, encode, encode_into};
pub use header::{HEADER_LEN, MAX_MESSAGE_LEN};
pub use notification::{Notification, notification_from_netgauze};
pub use open::{AS_TRANS, GracefulRestart, MAX_RESTART_TIME, OpenConfig, PeerOpen, build_open};
pub use update::{
    BuildError, UpdateContext, UpdateSummary, build_announcements, build_withdrawals, end_of_rib,
    route_refresh, summarize_update,
};

#[cfg(test)]
mod tests;
