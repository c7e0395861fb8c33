//! Layer 2 mode: ARP (IPv4) and NDP (IPv6) for the IPs this node owns.
//!
//! - [`frames`]: pure frame codecs (ARP, NDP, checksums, solicited-node multicast).
//! - [`interfaces`]: links and addresses from rtnetlink, change notifications, and the choice
//!   of interfaces to announce on.
//! - [`arp`] / [`ndp`]: one `AF_PACKET` (ETH_P_ARP) socket and one ICMPv6 raw socket per
//!   interface, answering for owned IPs and sending gratuitous announcements.
//! - [`announcer`]: the level-triggered announcer that opens, feeds and closes those sockets
//!   from the desired set of IPs.

pub mod announcer;
pub mod arp;
pub mod frames;
pub mod interfaces;
pub mod ndp;
mod sys;

pub use announcer::{
    ANNOUNCE_SCHEDULE, Announcer, AnnouncerConfig, DesiredIp, L2CounterValues, L2Error,
};
pub use interfaces::{DEFAULT_EXCLUDE_PATTERNS, InterfaceTable, InterfaceWatcher, Link};
