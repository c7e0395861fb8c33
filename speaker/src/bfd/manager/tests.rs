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
        })
    );
}

#[test]
fn echo_mode_is_reported_and_the_session_runs_without_it() {
    let mut p = peer("fd00:200:0:42::1", None);
    p.profile.echo_mode = true;
    let mut problems = Vec::new();
    assert!(spec_for("ns/p", &p, &mut problems).is_some());
    assert_eq!(
        problems,
        vec![BfdProblem::EchoNotSupported {
            profile: "ferrolb-system/fast".into(),
            peer: "ns/p".into()
        }]
    );
    assert_eq!(
        problems[0].to_string(),
        "BFDProfile ferrolb-system/fast: spec.echoMode is not supported by ferrolb's BFD; the \
         session for BGPPeer ns/p runs without echo"
    );
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
