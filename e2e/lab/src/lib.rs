//! Network-namespace lab: a small bare-metal network built from Linux network
//! namespaces, veth pairs and bridges, for end-to-end tests of ferrolb with real
//! routing daemons (BIRD 2, FRR, GoBGP) as peers.
//!
//! # Topology
//!
//! ```text
//!                       ns "<prefix>-lan" (switch: bridges only, no IP, no IPv6)
//!   ns cp ─────eth0──┐
//!   ns node1 ──eth0──┤
//!   ns node2 ──eth0──┼── br-lan   (LAN 10.200.0.0/24, fd00:200::/64)
//!   ns nodeN ──eth0──┤
//!   ns client ─eth0──┤
//!   ns router ─eth0──┘
//!   ns router ─eth1──┐
//!   ns uclient eth0──┴── br-up    (upstream 10.200.1.0/24, fd00:200:0:1::/64)
//! ```
//!
//! Every veth pair is created directly between two lab namespaces
//! (`ip -n A link add … peer name … netns B`), so nothing is ever created in the
//! root namespace except the `/run/netns/<name>` mount points and the log dir.
//!
//! # Address plan
//!
//! Only 10.200.0.0/16 and fd00:200::/48 are used.
//!
//! | host            | namespace        | interface | IPv4             | IPv6                |
//! |-----------------|------------------|-----------|------------------|---------------------|
//! | router (LAN)    | `<prefix>-router`| eth0      | 10.200.0.1/24    | fd00:200::1/64      |
//! | control plane   | `<prefix>-cp`    | eth0      | 10.200.0.2/24    | fd00:200::2/64      |
//! | LAN client      | `<prefix>-client`| eth0      | 10.200.0.5/24    | fd00:200::5/64      |
//! | node *i* (1..=99)| `<prefix>-node<i>`| eth0    | 10.200.0.(10+i)/24 | fd00:200::(10+i)/64 (decimal digits) |
//! | router (upstream)| `<prefix>-router`| eth1     | 10.200.1.1/24    | fd00:200:0:1::1/64    |
//! | upstream client | `<prefix>-uclient`| eth0     | 10.200.1.2/24    | fd00:200:0:1::2/64    |
//! | service IPs (pools) | —            | —         | 10.200.10.0/24   | fd00:200:0:10::/64    |
//! | cp, node *i*: management (optional) | as above | mgmt0 | 10.200.2.2, 10.200.2.(10+i)/24 | fd00:200:0:2::2, ::(10+i)/64 |
//!
//! With [`LabBuilder::management_network`] a third bridge, `br-mgmt`, attaches the control
//! plane and every node on `mgmt0`, which becomes their primary attachment ([`Host::v4`],
//! [`Host::iface`]); their LAN interface keeps the name `eth0`.
//!
//! Routes: LAN hosts reach 10.200.0.0/16 and fd00:200::/48 via the router; the
//! upstream client reaches them via the router's upstream address. The LAN
//! client has the service range on-link (so L2 mode is tested with ARP/NDP);
//! the router gets it on-link only with [`LabBuilder::router_service_onlink`]
//! (otherwise it learns service IPs by BGP only). No namespace has a default
//! route, so nothing can leave the lab.
//!
//! BGP numbering used by convention ([`topology::ROUTER_ASN`], [`topology::NODE_ASN`]):
//! router AS 64500, nodes AS 64512.
//!
//! # Lifetime and cleanup
//!
//! Namespace names are `<prefix>-<role>` with a per-run prefix (`flb` + 4 random
//! characters) so parallel runs never collide. Every namespace and process is
//! registered ([`cleanup`]) and removed when the [`Lab`] is dropped (also during
//! panic unwinding), on SIGINT/SIGTERM (a signal handler tears every lab down,
//! then exits), and by the next run ([`cleanup::reap_stale`]) if the owning
//! process died without cleaning up. Processes are only ever signalled by PID
//! (or their own process group), never by name.
//!
//! A [`Scratch`] lab (no fixed topology: namespaces and veth pairs a test creates one by
//! one) has the same lifetime and cleanup.
//!
//! Logs of spawned processes go to `/tmp/ferrolb-lab-<prefix>/<role>-<name>.log`;
//! the directory is removed on a clean teardown and kept when the thread is
//! panicking or `FERROLB_LAB_KEEP_LOGS` is set.
//!
//! # Example
//!
//! ```no_run
//! use ferrolb_lab::{self as lab, Lab};
//! # fn main() -> Result<(), lab::LabError> {
//! if !lab::root_or_skip("example") { return Ok(()); }
//! let lab = Lab::builder().nodes(2).lan_client(true).build()?;
//! let out = lab.lan_client().ns().exec(["ping", "-c1", "-W1", "10.200.0.11"])?;
//! assert!(out.success());
//! # Ok(()) }
//! ```

// unsafe only where a syscall has no safe wrapper here (root::euid, the signal handler in
// cleanup), each allowed at its item with a SAFETY note.
#![deny(unsafe_code)]

pub mod addr;
mod child;
pub mod cleanup;
pub mod daemons;
pub mod netns;
pub mod ns;
pub mod process;
mod registry;
pub mod root;
pub mod scratch;
pub mod topology;
pub mod wait;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use daemons::{
    BgpPeer, Bird, BirdConfig, Frr, FrrConfig, Gobgp, GobgpConfig, Keepalived, KeepalivedConfig,
};
pub use ns::Netns;
pub use process::{CmdOutput, LabProcess, ProcessSpec};
pub use root::{is_root, require_root, root_or_skip, tools_or_skip};
pub use scratch::Scratch;
pub use topology::{Attachment, Host, Lab, LabBuilder, Network, Role};
pub use wait::{wait_for, wait_until, wait_until_async};

/// Errors of the lab library.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The lab manipulates network namespaces and needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN).
    #[error(
        "the network lab needs root (effective uid is {euid}); run as root (e.g. `sudo -E cargo test …`) or in CI as root"
    )]
    NotRoot { euid: u32 },
    /// A required program is not installed.
    #[error("required program `{tool}` not found; run scripts/install-test-deps.sh")]
    MissingTool { tool: String },
    /// A command ran but failed.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    /// A process could not be started.
    #[error("cannot start `{cmd}`: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    /// Any other I/O error, with what we were doing.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A condition did not hold (or a command did not finish) in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    /// Signalling a process failed.
    #[error("cannot send {signal} to `{name}` (pid {pid}): {source}")]
    Signal {
        name: String,
        pid: i32,
        signal: String,
        #[source]
        source: nix::Error,
    },
    /// The process has already exited (and was reaped), so its PID must not be signalled.
    #[error("process `{name}` (pid {pid}) is not running")]
    NotRunning { name: String, pid: i32 },
    /// A destination outside the lab's ranges was requested; the lab never sends
    /// traffic outside 10.200.0.0/16, fd00:200::/48 and loopback.
    #[error("address {0} is outside the lab (10.200.0.0/16, fd00:200::/48, loopback)")]
    AddressOutsideLab(IpAddr),
    /// A name (prefix, namespace, process) is not acceptable.
    #[error("invalid name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },
    /// A builder or daemon configuration is inconsistent.
    #[error("invalid lab configuration: {0}")]
    Config(String),
    /// The lab has already been torn down.
    #[error("the lab `{0}` has been torn down")]
    TornDown(String),
}

/// Result type of the lab library.
pub type Result<T, E = LabError> = std::result::Result<T, E>;

impl LabError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LabError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Root directory of all per-run log directories.
pub const LOG_ROOT: &str = "/tmp";
/// Per-run directory name prefix: `/tmp/ferrolb-lab-<prefix>`.
pub const LOG_DIR_PREFIX: &str = "ferrolb-lab-";

/// `/tmp/ferrolb-lab-<prefix>`.
pub fn log_dir_for(prefix: &str) -> PathBuf {
    PathBuf::from(LOG_ROOT).join(format!("{LOG_DIR_PREFIX}{prefix}"))
}
