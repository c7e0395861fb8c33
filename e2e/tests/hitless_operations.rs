//! Operations around the speakers' data path, end to end in the lab with the clients of
//! `bench-rollout` (probes every 10 ms on new connections, long-lived connections):
//! - the controller leader SIGKILLed, and SIGTERMed as in its rolling update: no address
//!   moves (in the Services' statuses, nor the node answering for the layer 2 one), and a
//!   Service created meanwhile gets its address within the Lease time (at once when the
//!   leader released its Lease). The clients' figures are printed; `bench-rollout` reports
//!   them on a quiet machine (here, other labs running beside this one can make a heartbeat
//!   late enough for a presumption, which is the membership's doing, not the controller's);
//! - the API server down for 30 s with the speaker answering for the layer 2 address
//!   SIGKILLed in the middle: the address moves as fast as with the API server up, the router
//!   keeps its routes, and once the API server returns everything reconciles without a
//!   restart.
//!
//! Needs root (CI runs it as root) and BIRD (scripts/install-test-deps.sh).

use ferrolb_e2e::bench::rollout::lab::RolloutLab;
use ferrolb_e2e::bench::rollout::phases::{self, LEASE, LeaderExit};
use ferrolb_e2e::lab;
use std::time::Duration;

/// The election's renew period: a standby notices a released or expired Lease within it.
const RENEW: Duration = Duration::from_secs(2);

fn rollout_lab() -> Option<RolloutLab> {
    if !lab::tools_or_skip("hitless_operations", &["bird", "birdc", "mount", "umount"]) {
        return None;
    }
    Some(RolloutLab::start(true).expect("lab"))
}

#[test]
fn a_controller_failover_moves_no_address() {
    let Some(mut lab) = rollout_lab() else {
        return;
    };
    let owner = lab.l2_owner(Duration::from_secs(10)).expect("owner");
    let (report, killed) =
        phases::controller_failover(&mut lab, LeaderExit::Kill, "created-during-failover")
            .expect("controller failover");
    println!("{report:#?}");
    assert!(
        killed.addresses_moved.is_empty(),
        "{:?}",
        killed.addresses_moved
    );
    assert!(
        killed.new_leader.is_some(),
        "no replica took the Lease over from {}",
        killed.old_leader
    );
    assert!(
        killed.new_service_address_after <= LEASE + RENEW + Duration::from_secs(3),
        "a Service created during the failover waited {:?} for its address (Lease {LEASE:?})",
        killed.new_service_address_after
    );
    assert_eq!(
        lab.l2_owner(Duration::from_secs(10)).expect("owner"),
        owner,
        "the layer 2 address moved during the controller failover"
    );

    let (report, updated) =
        phases::controller_failover(&mut lab, LeaderExit::Terminate, "created-during-update")
            .expect("controller update");
    println!("{report:#?}");
    assert!(
        updated.addresses_moved.is_empty(),
        "{:?}",
        updated.addresses_moved
    );
    // The leader released its Lease: the standby takes over within a renew period, not a
    // Lease time.
    let changed = updated
        .leader_changed_after
        .expect("the standby took the released Lease");
    assert!(
        changed <= RENEW + Duration::from_secs(2),
        "the standby took over {changed:?} after the leader's SIGTERM"
    );
    assert!(
        updated.new_service_address_after <= RENEW + Duration::from_secs(4),
        "a Service created during the update waited {:?}",
        updated.new_service_address_after
    );
    assert_eq!(
        lab.l2_owner(Duration::from_secs(10)).expect("owner"),
        owner,
        "the layer 2 address moved during the controller update"
    );
}

#[test]
fn an_api_server_outage_keeps_every_announcement() {
    let Some(mut lab) = rollout_lab() else {
        return;
    };
    let (report, outage) =
        phases::apiserver_outage(&mut lab, Duration::from_secs(30), "created-after-outage")
            .expect("API server outage");
    println!("{report:#?}");
    let (crash, _) = phases::crash_and_failback(&mut lab).expect("reference crash");
    println!("{crash:#?}");
    let takeover = outage
        .l2_takeover
        .expect("the layer 2 address moved during the outage");
    let reference = crash.facts.get("l2_takeover_ms").and_then(|v| v.as_f64());
    println!(
        "layer 2 takeover: {:.1} ms with the API server down, {reference:?} ms with it up",
        takeover.as_secs_f64() * 1e3
    );
    // Membership decides, not the API server: a takeover as fast as with it up (tens of ms;
    // the bound leaves room for a loaded CI machine).
    assert!(
        takeover <= Duration::from_millis(500),
        "the layer 2 takeover took {takeover:?} with the API server down"
    );
    let alive: Vec<usize> = (1..=3).filter(|i| *i != outage.killed).collect();
    for i in &alive {
        assert!(
            outage.bgp_next_hops_during.contains(i),
            "the router lost its route via node{i} during the outage: {:?}",
            outage.bgp_next_hops_during
        );
    }
    assert!(
        outage.addresses_moved.is_empty(),
        "{:?}",
        outage.addresses_moved
    );
    assert!(
        outage.reconciled_after <= Duration::from_secs(30),
        "a Service created after the outage waited {:?} for its address and announcement",
        outage.reconciled_after
    );
}
