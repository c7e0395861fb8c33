//! MetalLB's spelling of ferrolb's kinds: a `metallb.io` object's spec, turned into the
//! `ferrolb.io` spec that means the same, or errors naming the fields whose meaning ferrolb
//! cannot honour yet (an object is never read as something other than what it asks for).
//!
//! Pure, so that `validate`, `migrate` and a controller reading `metallb.io` objects from a
//! cluster all read them the same way.

use super::schema;
use serde_json::{Map, Value};

/// A MetalLB field ferrolb's own kinds do not have, and why it cannot be honoured yet.
struct Unsupported {
    kind: &'static str,
    field: &'static str,
    why: &'static str,
}

/// Fields of MetalLB's kinds (api/v1beta1, api/v1beta2) that ferrolb does not implement. One
/// that ferrolb's schema gains is read like any other field.
const UNSUPPORTED: [Unsupported; 3] = [
    Unsupported {
        kind: "L2Advertisement",
        field: "preferredNodeSelectors",
        why: "ferrolb does not implement preferred nodes yet, so any eligible node could \
              announce; remove preferredNodeSelectors, or narrow nodeSelectors",
    },
    Unsupported {
        kind: "L2Advertisement",
        field: "serviceSelectors",
        why: "ferrolb does not implement serviceSelectors on advertisements yet, so every \
              Service of the selected pools would be announced; remove serviceSelectors, or \
              give those Services a pool of their own",
    },
    Unsupported {
        kind: "BGPAdvertisement",
        field: "serviceSelectors",
        why: "ferrolb does not implement serviceSelectors on advertisements yet, so every \
              Service of the selected pools would be advertised; remove serviceSelectors, or \
              give those Services a pool of their own",
    },
];

/// A `metallb.io` spec read as ferrolb's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Translation {
    /// The `ferrolb.io` spec. Fields in `errors` are kept as written (so they cannot be
    /// mistaken for what ferrolb does).
    pub spec: Value,
    /// (field path, message): fields whose meaning ferrolb cannot honour yet.
    pub errors: Vec<(String, String)>,
    /// (field path, message): fields written differently in `ferrolb.io` with the same
    /// meaning, for people moving their manifests.
    pub notes: Vec<(String, String)>,
}

/// Whether a field is set to something other than its zero value (MetalLB's Go types treat
/// "", 0, false and empty lists as unset).
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Reads the spec of a `kind` object of `api_version` (`metallb.io/v1beta1` or `/v1beta2`;
/// both read the same today, since v1beta1's BGPPeer fields are a subset of v1beta2's).
pub fn translate(kind: &str, _api_version: &str, spec: &Value) -> Translation {
    let Value::Object(fields) = spec else {
        return Translation {
            spec: spec.clone(),
            ..Translation::default()
        };
    };
    let mut out = Translation::default();
    let mut fields = fields.clone();
    for u in UNSUPPORTED.iter().filter(|u| u.kind == kind) {
        if schema::has_field(kind, u.field) {
            continue;
        }
        match fields.get(u.field) {
            Some(v) if is_set(v) => out
                .errors
                .push((format!("spec.{}", u.field), u.why.to_string())),
            // MetalLB's zero value means "not set".
            Some(_) => {
                fields.remove(u.field);
            }
            None => {}
        }
    }
    if kind == "BGPPeer" {
        address_families(&mut fields, &mut out.notes);
    }
    out.spec = Value::Object(fields);
    out
}

/// BGPPeer fields whose zero value MetalLB reads as "not set" (Go's `omitempty`), while
/// ferrolb.io would read the zero as written (`localASN: 0` is an error there).
const UNSET_WHEN_ZERO: [&str; 4] = ["localASN", "vrf", "interface", "peerAddress"];

/// `dualStackAddressFamily` means the same in both groups and is carried over as written.
/// `disableMP` is deprecated in MetalLB and "has no effect since it's the default behavior
/// now" (its bgppeer webhook), while in ferrolb.io it would still keep a dual-stack session to
/// its own family: it is dropped, with a note.
fn address_families(fields: &mut Map<String, Value>, notes: &mut Vec<(String, String)>) {
    for field in UNSET_WHEN_ZERO {
        if fields.get(field).is_some_and(|v| !is_set(v)) {
            fields.remove(field);
        }
    }
    if fields.remove("disableMP") == Some(Value::Bool(true)) {
        notes.push((
            "spec.disableMP".to_string(),
            "true: deprecated in MetalLB and without effect there (a session carries only the \
             peer address's family unless dualStackAddressFamily is true, in ferrolb.io too); \
             written without the field"
                .to_string(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// MetalLB api/v1beta2 BGPPeerSpec: `interface` (unnumbered), `vrf` and `localASN` are
    /// carried over, their zero values (unset in MetalLB) dropped.
    #[test]
    fn bgppeer_fields_are_carried_over_and_zero_values_dropped() {
        let t = translate(
            "BGPPeer",
            "metallb.io/v1beta2",
            &json!({"myASN": 1, "peerASN": 2, "vrf": "red", "peerAddress": "",
                    "interface": "eth0", "localASN": 65410}),
        );
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert_eq!(t.spec["vrf"], json!("red"));
        assert_eq!(t.spec["interface"], json!("eth0"));
        assert_eq!(t.spec["localASN"], json!(65410));
        assert_eq!(t.spec.get("peerAddress"), None);
        let t = translate(
            "BGPPeer",
            "metallb.io/v1beta2",
            &json!({"myASN": 1, "vrf": "", "interface": "", "localASN": 0}),
        );
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert_eq!(t.spec, json!({"myASN": 1}));
    }

    /// MetalLB's FRR templates activate a neighbor for its own family only unless
    /// dualStackAddressFamily is set (internal/bgp/frr/frr.go), as ferrolb.io does; MetalLB's
    /// webhook says disableMP has no effect.
    #[test]
    fn address_families_keep_metallb_meaning() {
        let t = translate("BGPPeer", "metallb.io/v1beta2", &json!({"myASN": 1}));
        assert_eq!(t.spec, json!({"myASN": 1}));
        assert!(t.notes.is_empty());
        let t = translate(
            "BGPPeer",
            "metallb.io/v1beta2",
            &json!({"myASN": 1, "dualStackAddressFamily": true, "disableMP": true}),
        );
        assert_eq!(t.spec, json!({"myASN": 1, "dualStackAddressFamily": true}));
        assert_eq!(t.notes[0].0, "spec.disableMP");
        let t = translate(
            "BGPPeer",
            "metallb.io/v1beta1",
            &json!({"myASN": 1, "disableMP": false}),
        );
        assert_eq!(t.spec, json!({"myASN": 1}));
    }

    /// MetalLB api/v1beta2 BGPPeerSpec ConnectTime: "how long BGP waits between connection
    /// attempts to a neighbor", which ferrolb.io's connectTime also means: carried over as it is.
    #[test]
    fn connect_time_is_carried_over() {
        let t = translate(
            "BGPPeer",
            "metallb.io/v1beta2",
            &json!({"myASN": 1, "connectTime": "5s", "dualStackAddressFamily": true}),
        );
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert_eq!(
            t.spec,
            json!({"myASN": 1, "connectTime": "5s", "dualStackAddressFamily": true})
        );
    }

    #[test]
    fn advertisement_fields_not_in_ferrolb_are_errors() {
        let t = translate(
            "L2Advertisement",
            "metallb.io/v1beta1",
            &json!({"preferredNodeSelectors": [{"weight": 1, "preference": {}}]}),
        );
        // An error exactly while ferrolb's schema lacks the field.
        let known = schema::has_field("L2Advertisement", "preferredNodeSelectors");
        let fields: Vec<&str> = t.errors.iter().map(|(f, _)| f.as_str()).collect();
        let expected: Vec<&str> = if known {
            vec![]
        } else {
            vec!["spec.preferredNodeSelectors"]
        };
        assert_eq!(fields, expected);
        assert!(
            translate("IPAddressPool", "metallb.io/v1beta1", &json!({}))
                .errors
                .is_empty()
        );
    }
}
