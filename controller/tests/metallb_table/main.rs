//! Replays MetalLB's configuration test tables through `ferrolb-controller validate`'s code path
//! ([`ferrolb_controller::validate::validate_texts`]) and checks that ferrolb reaches MetalLB's
//! verdict on every case, except the deliberate differences listed with their reason.
//!
//! Sources, in MetalLB's repository: `internal/config/config_test.go` (`TestParse`, run through
//! `config.For` with no mode-specific validation) and `internal/config/validation_test.go`
//! (`TestValidate`: the native BGP mode's `DiscardFRROnly`; `TestValidateFRR`: the FRR mode's
//! `DiscardNativeOnly`). Each case is written as the `metallb.io` manifests a user would apply.
//! Kubernetes needs a name on every object, so objects MetalLB's tests leave unnamed get one,
//! and the fragments of `validation_test.go`, which only one rule ever sees, are completed with
//! the fields every manifest needs (names, `myASN`, `peerASN`) so that the case still tests
//! that one rule. Nodes, Namespaces and Secrets of MetalLB's inputs are written too, although
//! ferrolb's configuration does not read them, so each case shows everything MetalLB saw.
//!
//! Not replayed: `TestContainsAdvertisement`, `TestL2AdvertisementFromCRPreferred` and
//! `TestSetL2AdvertisementsToPoolsPreferred` test how MetalLB merges advertisements internally
//! and have no valid/invalid verdict; `TestServiceSelectors` needs the advertisements'
//! `serviceSelectors` field.

mod cases;
mod parse_cases;
mod validation_cases;

use cases::{Case, Verdict};

fn ferrolb_verdict(case: &Case) -> (Verdict, String) {
    let report = ferrolb_controller::validate::validate_texts(&[(
        format!("{}.yaml", case.name.replace(' ', "-")),
        case.yaml.clone(),
    )]);
    let verdict = if report.ok {
        Verdict::Valid
    } else {
        Verdict::Invalid
    };
    (verdict, report.render())
}

#[test]
fn ferrolb_agrees_with_metallb_on_its_configuration_tests() {
    let all: Vec<Case> = parse_cases::cases()
        .into_iter()
        .chain(validation_cases::cases())
        .collect();
    let mut agree = 0;
    let mut deliberate = 0;
    let mut failures = Vec::new();
    for case in &all {
        let (verdict, report) = ferrolb_verdict(case);
        let same = verdict == case.metallb;
        match (&case.differs, same) {
            (None, true) => agree += 1,
            (Some(_), false) => deliberate += 1,
            (None, false) => failures.push(format!(
                "{} {:?}: MetalLB says {:?}, ferrolb says {verdict:?}:\n{report}",
                case.test, case.name, case.metallb
            )),
            (Some(reason), true) => failures.push(format!(
                "{} {:?}: listed as a deliberate difference ({reason}) but ferrolb agrees with \
                 MetalLB ({verdict:?}); remove the entry:\n{report}",
                case.test, case.name
            )),
        }
    }
    println!(
        "MetalLB configuration tests: ferrolb agrees on {agree}/{}, {deliberate} deliberate \
         differences",
        all.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree:\n\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

/// The table itself must be sound: every case has a unique name within its MetalLB test, and
/// every deliberate difference gives its reason.
#[test]
fn the_table_is_well_formed() {
    let mut seen = std::collections::BTreeSet::new();
    for case in parse_cases::cases()
        .into_iter()
        .chain(validation_cases::cases())
    {
        assert!(
            seen.insert((case.test, case.name)),
            "{} {:?} appears twice",
            case.test,
            case.name
        );
        if let Some(reason) = case.differs {
            assert!(reason.len() > 20, "{:?}: give the reason", case.name);
        }
    }
    assert_eq!(
        parse_cases::cases().len(),
        95,
        "every TestParse case is replayed"
    );
}
