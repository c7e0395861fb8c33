//! Checks a document against the OpenAPI schema of our CRDs, the way the API server does, so a
//! typo or a wrong type is reported with its field path before serde sees the object.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// The `spec` schema of each of our kinds, generated from the CRD types themselves.
static SPEC_SCHEMAS: LazyLock<BTreeMap<String, JSONSchemaProps>> = LazyLock::new(|| {
    ferrolb_api::crds::all()
        .into_iter()
        .filter_map(|crd| {
            let kind = crd.spec.names.kind.clone();
            let root = crd
                .spec
                .versions
                .into_iter()
                .next()?
                .schema?
                .open_api_v3_schema?;
            let spec = root.properties?.remove("spec")?;
            Some((kind, spec))
        })
        .collect()
});

/// Problems of `spec` of a `kind` object: (field path, message).
pub fn check_spec(kind: &str, spec: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(schema) = SPEC_SCHEMAS.get(kind) {
        check(spec, schema, "spec", &mut out);
    }
    out
}

/// Whether `kind`'s spec has a top-level field `field`.
pub fn has_field(kind: &str, field: &str) -> bool {
    SPEC_SCHEMAS
        .get(kind)
        .and_then(|s| s.properties.as_ref())
        .is_some_and(|p| p.contains_key(field))
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
    }
}

/// Inclusive bounds of an integer field, from its `format` and `minimum`/`maximum`.
fn int_bounds(schema: &JSONSchemaProps) -> (i128, i128) {
    let (mut lo, mut hi) = match schema.format.as_deref() {
        Some("uint8") => (0, i128::from(u8::MAX)),
        Some("uint16") => (0, i128::from(u16::MAX)),
        Some("uint32") => (0, i128::from(u32::MAX)),
        Some("int32") => (i128::from(i32::MIN), i128::from(i32::MAX)),
        Some("uint64") => (0, i128::from(u64::MAX)),
        _ => (i128::from(i64::MIN), i128::from(i64::MAX)),
    };
    // Schema bounds are whole numbers for integer fields; `as` saturates otherwise.
    if let Some(min) = schema.minimum {
        lo = lo.max(min.ceil() as i128);
    }
    if let Some(max) = schema.maximum {
        hi = hi.min(max.floor() as i128);
    }
    (lo, hi)
}

fn check(v: &Value, schema: &JSONSchemaProps, path: &str, out: &mut Vec<(String, String)>) {
    let ty = schema.type_.as_deref().unwrap_or("");
    if v.is_null() {
        if schema.nullable != Some(true) && !ty.is_empty() {
            out.push((
                path.to_string(),
                format!("is null; expected {}, or leave the field out", expected(ty)),
            ));
        }
        return;
    }
    match (ty, v) {
        ("object", Value::Object(map)) => check_object(map, schema, path, out),
        ("array", Value::Array(items)) => {
            if let Some(JSONSchemaPropsOrArray::Schema(item)) = &schema.items {
                for (i, x) in items.iter().enumerate() {
                    check(x, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        ("string", Value::String(s)) => {
            if let Some(allowed) = &schema.enum_
                && !allowed.iter().any(|a| a.0.as_str() == Some(s))
            {
                let names: Vec<String> = allowed
                    .iter()
                    .map(|a| a.0.as_str().unwrap_or_default().to_string())
                    .collect();
                out.push((
                    path.to_string(),
                    format!("{s:?} is not accepted; accepted: {}", names.join(", ")),
                ));
            }
        }
        ("string", Value::Number(_)) if schema.x_kubernetes_int_or_string == Some(true) => {}
        ("string", other @ (Value::Number(_) | Value::Bool(_))) => out.push((
            path.to_string(),
            format!(
                "expected a string, got {}; quote it: \"{other}\"",
                describe(other)
            ),
        )),
        ("integer", Value::Number(n)) => {
            let (lo, hi) = int_bounds(schema);
            let as_int = n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from));
            match as_int {
                Some(i) if (lo..=hi).contains(&i) => {}
                _ => out.push((
                    path.to_string(),
                    format!("{n} is not accepted; expected a whole number from {lo} to {hi}"),
                )),
            }
        }
        ("number", Value::Number(_)) | ("boolean", Value::Bool(_)) | ("", _) => {}
        (ty, other) => out.push((
            path.to_string(),
            format!("expected {}, got {}", expected(ty), describe(other)),
        )),
    }
}

fn expected(ty: &str) -> &'static str {
    match ty {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "true or false",
        _ => "a value",
    }
}

fn check_object(
    map: &serde_json::Map<String, Value>,
    schema: &JSONSchemaProps,
    path: &str,
    out: &mut Vec<(String, String)>,
) {
    let props = schema.properties.as_ref();
    let additional = match &schema.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(s)) => Some(s.as_ref()),
        _ => None,
    };
    for (key, value) in map {
        let at = format!("{path}.{key}");
        if let Some(p) = props.and_then(|p| p.get(key)) {
            check(value, p, &at, out);
        } else if let Some(a) = additional {
            check(value, a, &at, out);
        } else if props.is_some() && schema.x_kubernetes_preserve_unknown_fields != Some(true) {
            let known: Vec<&str> = props
                .into_iter()
                .flat_map(|p| p.keys())
                .map(String::as_str)
                .collect();
            let hint = close_match(key, &known)
                .map(|k| format!("did you mean {k:?}? "))
                .unwrap_or_default();
            out.push((
                at,
                format!("unknown field; {hint}accepted: {}", known.join(", ")),
            ));
        }
    }
    for req in schema.required.iter().flatten() {
        if !map.contains_key(req) {
            out.push((
                format!("{path}.{req}"),
                "is required but missing".to_string(),
            ));
        }
    }
}

/// A known field name that differs from `key` only in case or by one edit, for typo hints.
pub(crate) fn close_match<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .copied()
        .find(|k| k.eq_ignore_ascii_case(key) || edit_distance(k, key) <= 1)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_and_types_have_paths() {
        let problems = check_spec(
            "BGPPeer",
            &json!({"myASN": "x", "peerAdress": "10.0.0.1", "peerPort": 70000, "dynamicASN": "both",
                    "nodeSelectors": [{"matchLabels": {"a": 1}}], "ebgpMultiHop": "yes"}),
        );
        let text: Vec<String> = problems.iter().map(|(p, m)| format!("{p}: {m}")).collect();
        assert_eq!(
            text,
            vec![
                "spec.dynamicASN: \"both\" is not accepted; accepted: internal, external",
                "spec.ebgpMultiHop: expected true or false, got string \"yes\"",
                "spec.myASN: expected a whole number, got string \"x\"",
                "spec.nodeSelectors[0].matchLabels.a: expected a string, got number 1; quote it: \"1\"",
                "spec.peerAdress: unknown field; did you mean \"peerAddress\"? accepted: bfdProfile, \
                 connectTime, disableMP, dualStackAddressFamily, dynamicASN, ebgpMultiHop, \
                 enableGracefulRestart, gracefulRestartTime, holdTime, interface, keepaliveTime, localASN, \
                 myASN, nodeSelectors, password, passwordSecret, peerASN, peerAddress, peerPort, \
                 routerID, sourceAddress, vrf",
                "spec.peerPort: 70000 is not accepted; expected a whole number from 0 to 65535",
            ]
        );
    }
}
