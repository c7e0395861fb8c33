//! The layer 2 announcer: level-triggered application of "these IPs are mine" to ARP / NDP.
//!
//! [`Announcer::set_desired`] takes the whole set of IPs this node owns (each with the
//! interfaces its `L2Advertisement` names, or none for automatic choice) and applies the
//! difference against what is in force:
//!
//! - **gain** of (interface, IP): the interface's sockets are opened if it had no IP yet, the
//!   IP is added to the set the listeners answer for (and, for IPv6, its solicited-node
//!   multicast group joined), and a gratuitous ARP (IPv4) or unsolicited NA with the Override
//!   flag (IPv6) is sent at once and repeated on [`ANNOUNCE_SCHEDULE`];
//! - **while owned**: requests / solicitations for it are answered with the interface's MAC;
//! - **loss**: the IP leaves the answer set synchronously, before `set_desired` returns, and
//!   its pending repetitions are cancelled; an interface left without IPs has its sockets
//!   closed.
//!
//! Interface changes from rtnetlink (an interface appearing, going up, changing MAC, getting a
//! link-local address) go through the same reconciliation, so an interface that appears later
//! is used as soon as the kernel reports it.
//!
//! - [`core`]: the decisions, [`AnnouncerCore`](self::core::AnnouncerCore), generic over an
//!   [`L2Backend`](self::core::L2Backend) and driven with an explicit clock, so it is
//!   unit-tested with a fake backend;
//! - [`socket`]: [`SocketBackend`](socket::SocketBackend), the real backend (sockets, listener
//!   threads, the kernel responder where it can be loaded);
//! - [`lease`]: the thread that keeps the kernel responder's lease alive;
//! - [`handle`]: [`Announcer`], the handle the speaker holds, driving the core from tokio.

pub mod core;
pub mod handle;
pub mod lease;
pub mod socket;

pub use self::core::{ANNOUNCE_SCHEDULE, DesiredIp, L2CounterValues, L2Error, rfc3339};
pub use handle::{Announcer, AnnouncerConfig};
pub use lease::KERNEL_LEASE;
pub use socket::L2Responder;
