//! BFDProfiles: timer and TTL ranges (MetalLB's `bfdProfileFromCR`) and defaults.

use super::{Ctx, Obj, kinds};
use crate::model::BfdProfile;
use std::collections::BTreeMap;
use std::time::Duration;

const INTERVAL_MS: (u32, u32) = (10, 60_000);

pub fn build(ctx: &mut Ctx, inputs: &[ferrolb_api::BFDProfile]) -> BTreeMap<String, BfdProfile> {
    let objs: Vec<Obj<'_>> = inputs
        .iter()
        .map(|p| Obj::new(kinds::BFD, &p.metadata))
        .collect();
    let keep = ctx.check_names(
        &objs,
        true,
        "BGPPeers refer to profiles by name only, so names must be unique across all namespaces",
    );
    let mut out = BTreeMap::new();
    for ((input, obj), keep) in inputs.iter().zip(&objs).zip(keep) {
        let profile = build_one(ctx, obj, &input.spec);
        if keep {
            out.insert(profile.name.clone(), profile);
        }
    }
    out
}

/// Checks `value` (defaulting to `default`) against `min..=max`, reporting at `field`.
fn ranged(
    ctx: &mut Ctx,
    obj: &Obj<'_>,
    field: &str,
    value: Option<u32>,
    default: u32,
    (min, max): (u32, u32),
    unit: &str,
) -> u32 {
    let v = value.unwrap_or(default);
    if !(min..=max).contains(&v) {
        ctx.error(
            obj,
            field,
            format!("{v}{unit} is out of range; accepted: {min} to {max}{unit} (default {default}{unit})"),
        );
    }
    v.clamp(min, max)
}

fn build_one(ctx: &mut Ctx, obj: &Obj<'_>, spec: &ferrolb_api::BFDProfileSpec) -> BfdProfile {
    let ms = |v: u32| Duration::from_millis(u64::from(v));
    let receive = ranged(
        ctx,
        obj,
        "spec.receiveInterval",
        spec.receive_interval,
        300,
        INTERVAL_MS,
        " ms",
    );
    let transmit = ranged(
        ctx,
        obj,
        "spec.transmitInterval",
        spec.transmit_interval,
        300,
        INTERVAL_MS,
        " ms",
    );
    let echo = ranged(
        ctx,
        obj,
        "spec.echoInterval",
        spec.echo_interval,
        50,
        INTERVAL_MS,
        " ms",
    );
    let multiplier = ranged(
        ctx,
        obj,
        "spec.detectMultiplier",
        spec.detect_multiplier,
        3,
        (2, 255),
        "",
    );
    let ttl = ranged(
        ctx,
        obj,
        "spec.minimumTtl",
        spec.minimum_ttl,
        254,
        (1, 254),
        "",
    );
    BfdProfile {
        namespace: obj.namespace.to_string(),
        name: obj.name.to_string(),
        receive_interval: ms(receive),
        transmit_interval: ms(transmit),
        // Both were clamped into ranges that fit in a byte.
        detect_multiplier: u8::try_from(multiplier).unwrap_or(u8::MAX),
        echo_interval: ms(echo),
        echo_mode: spec.echo_mode.unwrap_or(false),
        passive_mode: spec.passive_mode.unwrap_or(false),
        minimum_ttl: u8::try_from(ttl).unwrap_or(u8::MAX),
        strict_mode: spec.strict_mode.unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::{Config, Inputs};
    use ferrolb_api::{BFDProfile, BFDProfileSpec};
    use std::time::Duration;

    fn profile(spec: BFDProfileSpec) -> BFDProfile {
        BFDProfile {
            metadata: meta("fast"),
            spec,
        }
    }

    #[test]
    fn out_of_range_values_say_what_is_accepted() {
        let inputs = Inputs {
            bfd_profiles: vec![profile(BFDProfileSpec {
                receive_interval: Some(5),
                transmit_interval: Some(60_001),
                echo_interval: Some(9),
                detect_multiplier: Some(1),
                minimum_ttl: Some(255),
                ..Default::default()
            })],
            ..Default::default()
        };
        assert_eq!(
            lines(&inputs),
            vec![
                "BFDProfile ferrolb-system/fast: spec.receiveInterval: 5 ms is out of range; accepted: 10 to 60000 ms (default 300 ms)",
                "BFDProfile ferrolb-system/fast: spec.transmitInterval: 60001 ms is out of range; accepted: 10 to 60000 ms (default 300 ms)",
                "BFDProfile ferrolb-system/fast: spec.echoInterval: 9 ms is out of range; accepted: 10 to 60000 ms (default 50 ms)",
                "BFDProfile ferrolb-system/fast: spec.detectMultiplier: 1 is out of range; accepted: 2 to 255 (default 3)",
                "BFDProfile ferrolb-system/fast: spec.minimumTtl: 255 is out of range; accepted: 1 to 254 (default 254)",
            ]
        );
    }

    /// Echo mode and strict mode are accepted (MetalLB: TestParse "Session with ipv4 and bfd
    /// echo mode"); the echo interval keeps MetalLB's 10-60000 ms bounds.
    #[test]
    fn echo_and_strict_mode_are_accepted_echo_interval_is_bounded() {
        let config = Config::build(&Inputs {
            bfd_profiles: vec![profile(BFDProfileSpec {
                echo_mode: Some(true),
                echo_interval: Some(100),
                strict_mode: Some(true),
                ..Default::default()
            })],
            ..Default::default()
        })
        .expect("valid");
        let p = &config.bfd_profiles["fast"];
        assert!(p.echo_mode && p.strict_mode);
        assert_eq!(p.echo_interval, Duration::from_millis(100));
        let too_slow = Inputs {
            bfd_profiles: vec![profile(BFDProfileSpec {
                echo_mode: Some(true),
                echo_interval: Some(60_001),
                ..Default::default()
            })],
            ..Default::default()
        };
        assert_eq!(
            lines(&too_slow),
            vec![
                "BFDProfile ferrolb-system/fast: spec.echoInterval: 60001 ms is out of range; \
                 accepted: 10 to 60000 ms (default 50 ms)"
            ]
        );
    }

    #[test]
    fn defaults_apply() {
        let config = Config::build(&Inputs {
            bfd_profiles: vec![profile(BFDProfileSpec::default())],
            ..Default::default()
        })
        .expect("valid");
        let p = &config.bfd_profiles["fast"];
        assert_eq!(p.receive_interval, Duration::from_millis(300));
        assert_eq!(p.detect_multiplier, 3);
        assert_eq!(p.minimum_ttl, 254);
        assert_eq!(p.echo_interval, Duration::from_millis(50));
        assert!(!p.echo_mode && !p.strict_mode);
    }
}
