//! Speaker membership, the pure half: the owner → successor heartbeat watchdog
//! ([`heartbeat`]) and the authentication of every membership datagram ([`auth`]). The gossip
//! driver and its sockets live in `ferrolb-speaker`.

pub mod auth;
pub mod heartbeat;
