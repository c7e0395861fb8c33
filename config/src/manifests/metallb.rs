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
const UNSUPPORTED: [Unsupported; 6] = [
    Unsupported {
        kind: "BGPPeer",
        field: "vrf",
        why: "ferrolb has no VRF support yet, so the session would be opened from the default \
              VRF instead; remove vrf to peer from the default VRF",
    },
    Unsupported {
        kind: "BGPPeer",
        field: "interface",
        why: "ferrolb has no unnumbered BGP (peering over an interface) yet; set peerAddress to \
              the router's address instead",
    },
    Unsupported {
        kind: "BGPPeer",
        field: "localASN",
        why: "ferrolb does not implement localASN yet, so the router would see myASN instead; \
              set myASN to the AS the router expects, or remove localASN",
    },
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

/// Reads the spec of a `kind` object of `api_version` (`metallb.io/v1beta1` or `/v1beta2`).
pub fn translate(kind: &str, api_version: &str, spec: &Value) -> Translation {
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
        address_families(&mut fields, api_version, &mut out.notes);
    }
    out.spec = Value::Object(fields);
    out
}

/// MetalLB sends a session only the routes of its own address family unless
/// `dualStackAddressFamily` is true (`disableMP` is deprecated and "the default behavior
/// now", MetalLB's bgppeer webhook; v1beta1 has neither). ferrolb.io sends both families unless
/// `disableMP` is true, so the MetalLB meaning is written as `disableMP`.
fn address_families(
    fields: &mut Map<String, Value>,
    api_version: &str,
    notes: &mut Vec<(String, String)>,
) {
    let dual = fields
        .remove("dualStackAddressFamily")
        .is_some_and(|v| v == Value::Bool(true));
    let had_disable_mp = fields.get("disableMP") == Some(&Value::Bool(true));
    if dual {
        fields.remove("disableMP");
        notes.push((
            "spec.dualStackAddressFamily".to_string(),
            "true: both address families over this session, which is ferrolb's default; \
             written without the field"
                .to_string(),
        ));
    } else {
        fields.insert("disableMP".to_string(), Value::Bool(true));
        let source = if api_version.ends_with("v1beta1") {
            "a v1beta1 BGPPeer has no dualStackAddressFamily"
        } else if had_disable_mp {
            "disableMP: true, MetalLB's default"
        } else {
            "dualStackAddressFamily is not set"
        };
        notes.push((
            "spec.disableMP".to_string(),
            format!(
                "{source}, so MetalLB sends this session only routes of the peer address's \
                 family; written as disableMP: true, which means the same in ferrolb.io (whose \
                 default sends both families)"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// MetalLB api/v1beta2 BGPPeerSpec: `vrf`, `interface`, `localASN` (MetalLB
    /// internal/config/config.go peerFromCR keeps them; TestParse "config using all features",
    /// "unnumbered peer without address with interface ok", "peer with localASN field").
    #[test]
    fn fields_ferrolb_cannot_honour_are_errors_naming_them() {
        let t = translate(
            "BGPPeer",
            "metallb.io/v1beta2",
            &json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "vrf": "red",
                    "interface": "", "localASN": 65410}),
        );
        let fields: Vec<&str> = t.errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, vec!["spec.vrf", "spec.localASN"]);
        assert!(t.errors[0].1.starts_with("ferrolb has no VRF support yet"));
        // Kept as written; an unset (zero) field is dropped.
        assert_eq!(t.spec["vrf"], json!("red"));
        assert!(t.spec.get("interface").is_none());
    }

    /// MetalLB's FRR templates activate a neighbor for its own family only unless
    /// dualStackAddressFamily is set (internal/bgp/frr/frr.go); ferrolb's disableMP says
    /// the same.
    #[test]
    fn address_families_keep_metallb_meaning() {
        let t = translate("BGPPeer", "metallb.io/v1beta2", &json!({"myASN": 1}));
        assert_eq!(t.spec, json!({"myASN": 1, "disableMP": true}));
        let t = translate(
            "BGPPeer",
            "metallb.io/v1beta2",
            &json!({"myASN": 1, "dualStackAddressFamily": true, "disableMP": true}),
        );
        assert_eq!(t.spec, json!({"myASN": 1}));
        let t = translate("BGPPeer", "metallb.io/v1beta1", &json!({"myASN": 1}));
        assert_eq!(t.spec["disableMP"], json!(true));
        assert!(t.notes[0].1.starts_with("a v1beta1 BGPPeer has no"));
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
        assert_eq!(t.spec, json!({"myASN": 1, "connectTime": "5s"}));
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
