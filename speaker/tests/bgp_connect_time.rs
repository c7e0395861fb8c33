//! A BGPPeer's `connectTime` observed on the wire: the speaker's connection attempts to a peer
//! start `connectTime` apart, not on the 1 s, 2 s, 4 s … backoff used when it is unset.
//!
//! MetalLB api/v1beta2 bgppeer_types.go BGPPeerSpec ConnectTime ("how long BGP waits between
//! connection attempts to a neighbor"), written by MetalLB as FRR's `neighbor … timers
//! connect` (internal/bgp/frr/templates/neighborsession.tmpl).
//!
//! The lab is `common::router_lab::RouterLab` with no daemon: the peer's namespace has the
//! address but nothing listens on port 179. tcpdump in that namespace records every SYN; an
//! attempt is the first SYN from a source port (later ones are the kernel's retransmissions).
//!
//! Needs root and tcpdump. Without root: skipped with a message locally, a failure when `CI`
//! is set.

mod common;

use common::router_lab::{OUR_V4, RouterLab, THEIR_V4};
use ferrolb_config::{Peer, PeerAsn};
use ferrolb_lab::{LabProcess, Netns};
use ferrolb_speaker::bgp::manager::{Passwords, PeerManager};
use ferrolb_speaker_core::bgp::fsm::StopCause;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const CONNECT_TIME: Duration = Duration::from_secs(2);
/// Scheduling and capture jitter allowed around each interval.
const TOLERANCE: f64 = 0.35;

fn peer() -> Peer {
    Peer {
        hold_time: Duration::from_secs(9),
        keepalive_time: Duration::from_secs(3),
        connect_time: Some(CONNECT_TIME),
        ..Peer::with_defaults(
            "ferrolb-system",
            "router",
            64512,
            PeerAsn::Fixed(64513),
            THEIR_V4.parse().expect("address"),
        )
    }
}

/// Starts tcpdump on the peer's side of the link, capturing SYNs to port 179, and waits until
/// it captures.
fn capture_syns(lab: &RouterLab) -> LabProcess {
    let p = lab
        .them
        .spawn(
            "tcpdump",
            [
                "tcpdump",
                "-l",
                "-n",
                "-tt",
                "-i",
                "rtr0",
                "tcp[tcpflags] & tcp-syn != 0 and dst port 179",
            ],
        )
        .unwrap_or_else(|e| panic!("starting tcpdump: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.log().contains("listening on") {
        assert!(
            Instant::now() < deadline && p.is_running(),
            "tcpdump did not start: {}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    p
}

/// Timestamps (seconds) of the first SYN from each of our source ports, in capture order.
fn attempt_times(capture: &str) -> Vec<f64> {
    let mut seen = BTreeSet::new();
    let mut times = Vec::new();
    for line in capture.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "<time> IP <src>.<port> > <dst>.179: Flags [S], …"
        let (Some(time), Some(src)) = (fields.first(), fields.get(2)) else {
            continue;
        };
        let Some((addr, port)) = src.rsplit_once('.') else {
            continue;
        };
        let Ok(time) = time.parse::<f64>() else {
            continue;
        };
        if addr == OUR_V4 && seen.insert(port.to_string()) {
            times.push(time);
        }
    }
    times
}

/// Runs our speaker in `us` with one session to the peer for `run_for`.
fn run_session(us: &Netns, run_for: Duration) {
    let handle = us
        .spawn_thread(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut m = PeerManager::new(Some(OUR_V4.parse().expect("v4")));
                m.apply(&[peer()], &Passwords::new(), &[]).await;
                tokio::time::sleep(run_for).await;
                m.shutdown(StopCause::Shutdown).await;
            });
        })
        .expect("entering the namespace");
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Asserts at least `min` attempts, each starting `CONNECT_TIME` after the previous one.
fn assert_spaced_by_connect_time(times: &[f64], min: usize, capture: &str) {
    assert!(
        times.len() >= min,
        "expected at least {min} connection attempts, got {times:?}; capture:\n{capture}"
    );
    let want = CONNECT_TIME.as_secs_f64();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (gap - want).abs() <= TOLERANCE,
            "attempts {gap:.3}s apart, expected {want}s ± {TOLERANCE}s: {times:?}"
        );
    }
}

/// A peer that refuses (RST): the next attempt waits for the rest of connectTime, where the
/// backoff would have retried after 1 s, then 2 s, then 4 s.
#[test]
fn refused_attempts_start_connect_time_apart() {
    if !ferrolb_lab::tools_or_skip("refused_attempts_start_connect_time_apart", &["tcpdump"]) {
        return;
    }
    let lab = RouterLab::new("connect");
    let tcpdump = capture_syns(&lab);
    run_session(&lab.us, Duration::from_millis(7_000));
    tcpdump.shutdown(Duration::from_secs(5));
    let capture = tcpdump.log();
    // 0, 2, 4, 6 s: four attempts (the backoff would have made 0, 1, 3 s).
    assert_spaced_by_connect_time(&attempt_times(&capture), 4, &capture);
}

/// A peer that never answers (its SYNs dropped): an attempt still in flight when connectTime
/// is up is abandoned and the next one starts (RFC 4271 §8.2.2, Connect state, Event 9),
/// where without connectTime one attempt would have lasted 10 s.
#[test]
fn unanswered_attempts_are_abandoned_after_connect_time() {
    if !ferrolb_lab::tools_or_skip(
        "unanswered_attempts_are_abandoned_after_connect_time",
        &["tcpdump", "nft"],
    ) {
        return;
    }
    let lab = RouterLab::new("connect");
    lab.them
        .exec_ok([
            "nft",
            "add table inet drop179; add chain inet drop179 input { type filter hook input \
             priority 0; }; add rule inet drop179 input tcp dport 179 drop",
        ])
        .unwrap_or_else(|e| panic!("dropping SYNs to port 179: {e}"));
    let tcpdump = capture_syns(&lab);
    run_session(&lab.us, Duration::from_millis(7_000));
    tcpdump.shutdown(Duration::from_secs(5));
    let capture = tcpdump.log();
    assert_spaced_by_connect_time(&attempt_times(&capture), 4, &capture);
}
