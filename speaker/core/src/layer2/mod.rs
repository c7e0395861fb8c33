//! Layer 2 mode, the pure half: ARP and NDP frame codecs ([`frames`]), make-before-break
//! hand-overs of addresses moving between live nodes ([`handover`]), what a stopping
//! speaker does with its addresses ([`stop`]) and whether a node's announcing interfaces have
//! carrier ([`carrier`]). The sockets, the eBPF responder and the
//! announcer that drives them live in `ferrolb-speaker`.

pub mod carrier;
pub mod frames;
pub mod handover;
pub mod stop;
