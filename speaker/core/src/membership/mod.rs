//! Speaker membership, the pure half: the owner → successor heartbeat watchdog
//! ([`heartbeat`]), the holds granted to speakers restarting in place ([`restart_hold`]) and
//! the authentication of every membership datagram ([`auth`]). The gossip
//! driver and its sockets live in `ferrolb-speaker`.

pub mod auth;
pub mod heartbeat;
pub mod restart_hold;
