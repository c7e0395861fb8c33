//! The settle gate: a freshly (re)started speaker's membership knows only itself, so it would
//! elect itself for every layer 2 address and answer next to the real owners. Its layer 2
//! announcements, owner-change events and readiness wait until it sees every other Ready node
//! with an address alive, or until [`MEMBERSHIP_SETTLE`] has passed (a dead node that is still
//! Ready must not block it).

use std::collections::BTreeSet;
use std::time::Duration;

/// How long a freshly started membership may take to learn the other speakers before layer 2
/// announcements are made anyway.
pub const MEMBERSHIP_SETTLE: Duration = Duration::from_secs(2);

/// A running membership, as the settle gate sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settling {
    /// The gate has opened once since this membership started. It stays open: the gate is
    /// about a fresh start only, and without the latch a Ready node dying within
    /// [`MEMBERSHIP_SETTLE`] of our start would hold back its takeover until then.
    pub latched: bool,
    /// Time since this membership started.
    pub elapsed: Duration,
}

/// Whether layer 2 announcements may be applied. `settling` is `None` without membership (the
/// Node Ready condition is the only liveness, nothing to wait for); `expected` are the Ready
/// nodes with an address (see [`super::expected_members`]).
pub fn membership_settled(
    settling: Option<&Settling>,
    alive: &BTreeSet<String>,
    expected: &BTreeSet<String>,
) -> bool {
    match settling {
        None => true,
        Some(s) => s.latched || expected.is_subset(alive) || s.elapsed >= MEMBERSHIP_SETTLE,
    }
}
