//! What a stopping speaker does with its layer 2 addresses, from the departure decision the
//! BGP side makes too ([`crate::bgp::departure`]) and what this node can do.
//!
//! - **Restart in place** with the in-kernel responder: the eBPF program and its maps stay
//!   attached (pinned in bpffs) and answer under a hand-over lease while the next process
//!   starts and adopts the addresses; the membership is told "restarting, hold my addresses",
//!   so no other node takes them meanwhile. Clients see no ARP change at all.
//! - **Restart without the kernel responder** (no BPF, or pinning failed): nothing in the
//!   node can answer while no speaker runs, so staying silent for the restart would be an
//!   outage. The addresses are handed to their successors make-before-break instead, as for a
//!   leaving node; the restarted speaker takes them back the same way.
//! - **The node leaving**: the speaker leaves the membership (the successors take over and
//!   announce), keeps answering until it sees their announcements (or
//!   [`super::handover::HANDOVER_WINDOW`]), then stops.
//! - **Hitless operations off**, or no membership to tell: stop answering at once (MetalLB's
//!   behaviour; without membership the others follow the Node Ready condition and nothing
//!   they do depends on this speaker's goodbye).

use crate::bgp::departure::Departure;

/// The layer 2 side of stopping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L2Stop {
    /// Leave the kernel responder answering under a lease and ask the others to hold.
    HandToNextProcess,
    /// Leave the membership, answer until the successors have announced, then stop.
    HandToSuccessors,
    /// Stop answering now.
    ReleaseAtOnce,
}

/// Decides the layer 2 side of stopping. `kernel_hand_over`: the in-kernel responder answers
/// every owned address here and can be left attached; `membership`: gossip membership runs.
pub fn l2_stop(how: Departure, kernel_hand_over: bool, membership: bool) -> L2Stop {
    match how {
        Departure::Cease => L2Stop::ReleaseAtOnce,
        Departure::Restart if kernel_hand_over => L2Stop::HandToNextProcess,
        Departure::Restart | Departure::Leave(_) if membership => L2Stop::HandToSuccessors,
        Departure::Restart | Departure::Leave(_) => L2Stop::ReleaseAtOnce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::departure::LeaveReason;

    #[test]
    fn every_departure() {
        use L2Stop::*;
        let leave = Departure::Leave(LeaveReason::Excluded);
        let cases = [
            // (departure, kernel hand-over possible, membership, expected)
            (Departure::Restart, true, true, HandToNextProcess),
            (Departure::Restart, true, false, HandToNextProcess),
            (Departure::Restart, false, true, HandToSuccessors),
            (Departure::Restart, false, false, ReleaseAtOnce),
            (leave, true, true, HandToSuccessors),
            (leave, false, true, HandToSuccessors),
            (leave, true, false, ReleaseAtOnce),
            (Departure::Cease, true, true, ReleaseAtOnce),
            (Departure::Cease, false, false, ReleaseAtOnce),
        ];
        for (how, kernel, membership, want) in cases {
            assert_eq!(
                l2_stop(how, kernel, membership),
                want,
                "{how:?} {kernel} {membership}"
            );
        }
    }
}
