use super::*;
use std::time::Duration;

fn profile() -> BfdProfile {
    BfdProfile {
        namespace: "ferrolb-system".into(),
        name: "fast".into(),
        receive_interval: Duration::from_millis(50),
        transmit_interval: Duration::from_millis(60),
        detect_multiplier: 3,
        echo_interval: Duration::from_millis(50),
        echo_mode: false,
        passive_mode: true,
        minimum_ttl: 254,
        strict_mode: false,
    }
}

fn peer(addr: &str, local: Option<&str>) -> BfdPeer {
    BfdPeer {
        peer: addr.parse().expect("test address"),
        local: local.map(|l| l.parse().expect("test address")),
        multihop: true,
        profile: profile(),
    }
}

#[test]
fn profile_becomes_session_spec() {
    let mut problems = Vec::new();
    let spec = spec_for(
        "ns/p",
        &peer("10.200.42.1", Some("10.200.42.2")),
        &mut problems,
    );
    assert!(problems.is_empty());
    assert_eq!(
        spec,
        Some(SessionSpec {
            peer: "10.200.42.1".parse().expect("addr"),
            local: Some("10.200.42.2".parse().expect("addr")),
            multihop: true,
            timers: Timers {
                desired_min_tx: Duration::from_millis(60),
                required_min_rx: Duration::from_millis(50),
                detect_mult: 3,
            },
            passive: true,
            minimum_ttl: 254,
            echo: None,
        })
    );
}

#[test]
fn echo_mode_runs_on_ipv4_single_hop_and_is_reported_elsewhere() {
    let mut p = peer("10.200.42.1", None);
    p.multihop = false;
    p.profile.echo_mode = true;
    let mut problems = Vec::new();
    let spec = spec_for("ns/p", &p, &mut problems).expect("session");
    assert_eq!(spec.echo, Some(Duration::from_millis(50)));
    assert_eq!(problems, vec![]);

    let mut v6 = peer("fd00:200:0:42::1", None);
    v6.multihop = false;
    v6.profile.echo_mode = true;
    let spec = spec_for("ns/p", &v6, &mut problems).expect("session without echo");
    assert_eq!(spec.echo, None);
    assert_eq!(
        problems,
        vec![BfdProblem::EchoNotApplicable {
            profile: "ferrolb-system/fast".into(),
            peer: "ns/p".into(),
            reason: "IPv6 peer",
        }]
    );
    assert_eq!(
        problems[0].to_string(),
        "BFDProfile ferrolb-system/fast: spec.echoMode applies to single-hop IPv4 sessions \
         only; the session for BGPPeer ns/p (IPv6 peer) runs without echo"
    );

    let mut problems = Vec::new();
    let mut multihop = peer("10.200.42.1", None);
    multihop.profile.echo_mode = true;
    multihop.multihop = true;
    assert_eq!(
        spec_for("ns/m", &multihop, &mut problems).map(|s| s.echo),
        Some(None)
    );
    assert!(matches!(
        problems.as_slice(),
        [BfdProblem::EchoNotApplicable {
            reason: "ebgpMultiHop",
            ..
        }]
    ));
}

#[test]
fn family_mismatch_and_zero_multiplier_get_no_session() {
    let mut problems = Vec::new();
    assert_eq!(
        spec_for(
            "ns/a",
            &peer("10.200.42.1", Some("fd00:200:0:42::2")),
            &mut problems
        ),
        None
    );
    let mut p = peer("10.200.42.1", None);
    p.profile.detect_multiplier = 0;
    assert_eq!(spec_for("ns/b", &p, &mut problems), None);
    assert!(matches!(problems[0], BfdProblem::FamilyMismatch { .. }));
    assert!(matches!(problems[1], BfdProblem::ZeroMultiplier { .. }));
    assert!(
        problems[1]
            .to_string()
            .contains("spec.detectMultiplier is 0")
    );
}
