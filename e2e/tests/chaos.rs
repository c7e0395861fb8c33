//! A 60-second chaos run with a fixed seed (`ferrolb-e2e chaos --duration 60 --seed 68`):
//! five nodes with layer 2 and BGP Services, BIRD with BFD, and a seeded schedule of
//! overlapping faults — speakers killed and frozen, links down, controller replicas killed,
//! the API server and the router restarted, Services, endpoints and pools churned. The
//! invariants are checked from outside the components every 100 ms; the run must end
//! without a violation. Five nodes on a two-core machine: the run takes about 2 minutes
//! (deployment, 60 s of faults, 20 s of settling).
//!
//! Needs root (CI runs it as root), BIRD and tc (scripts/install-test-deps.sh).

use ferrolb_e2e::chaos::{ChaosOptions, run};
use ferrolb_e2e::lab;
use std::time::Duration;

/// The seed CI replays: its 60 s schedule has every fault kind (one netem fault, which a
/// kernel without `sch_netem` reports as not available).
const SEED: u64 = 68;

#[test]
fn sixty_seconds_of_chaos_break_no_invariant() {
    if !lab::tools_or_skip("chaos", &["bird", "birdc", "tc"]) {
        return;
    }
    let report = run(&ChaosOptions {
        duration: Duration::from_secs(60),
        seed: SEED,
        nodes: 5,
    })
    .expect("chaos run");
    println!("{report}");
    assert!(
        report.faults.len() >= 20,
        "only {} faults injected",
        report.faults.len()
    );
    let kinds = report.faults_by_kind.len();
    assert!(
        kinds >= 7,
        "only {kinds} fault kinds injected: {:?}",
        report.faults_by_kind
    );
    assert!(report.probes_sent > 1000, "{} probes", report.probes_sent);
    assert!(
        report.arp_requests > 1000,
        "{} ARP requests",
        report.arp_requests
    );
    assert!(
        report.violations.is_empty(),
        "invariant violations (replay: {}): {:#?}\n{report}",
        report.replay,
        report.violations
    );
}
