//! Layer 2 mode: ARP (IPv4) and NDP (IPv6) for the IPs this node owns.
//!
//! - [`ferrolb_speaker_core::layer2::frames`]: pure frame codecs (ARP, NDP, checksums,
//!   solicited-node multicast).
//! - `interfaces`: links and addresses from rtnetlink, change notifications, and the choice
//!   of interfaces to announce on.
//! - `arp` / `ndp`: one `AF_PACKET` (ETH_P_ARP) socket and one ICMPv6 raw socket per
//!   interface, answering for owned IPs and sending gratuitous announcements.
//! - [`kernel_responder`]: an eBPF program on tc ingress that answers ARP requests and Neighbor
//!   Solicitations for owned addresses inside the kernel (where it can be loaded), in front of
//!   those sockets.
//! - [`handover_pin`]: the responder left attached across a restart in place.
//! - `announcer`: the level-triggered announcer that opens, feeds and closes those sockets
//!   from the desired set of IPs.

pub(crate) mod announcer;
pub(crate) mod arp;
mod bpf_asm;
mod bpf_sys;
pub mod handover_pin;
pub(crate) mod interfaces;
pub mod kernel_responder;
pub(crate) mod ndp;
mod responder_program;
pub(crate) mod sys;

pub use announcer::{
    ANNOUNCE_SCHEDULE, Announcer, AnnouncerConfig, DesiredIp, L2CounterValues, L2Error, L2Responder,
};
pub use bpf_sys::TestRun;
pub use interfaces::{DEFAULT_EXCLUDE_PATTERNS, InterfaceTable, InterfaceWatcher, Link};
