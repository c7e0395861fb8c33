//! Layer 2 mode, the pure half: ARP and NDP frame codecs ([`frames`]). The sockets, the eBPF
//! responder and the announcer that drives them live in `ferrolb-speaker`.

pub mod frames;
