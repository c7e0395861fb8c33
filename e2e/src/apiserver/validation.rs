//! Checking objects against OpenAPI schemas: for custom resources the CRD's
//! `openAPIV3Schema` (types, required, enum, pruning of unknown fields), and for
//! `fieldValidation=Strict` the unknown-field check on built-in kinds too.

use serde_json::{Map, Value};

use super::error::FieldError;

/// Resolves `$ref`s of built-in schemas (`#/components/schemas/<name>`).
pub type Defs = Map<String, Value>;

pub struct Outcome {
    /// Type/required/enum errors: 422 Invalid.
    pub invalid: Vec<FieldError>,
    /// Fields the schema does not declare (pruned, or 400 under `fieldValidation=Strict`).
    pub unknown: Vec<String>,
}

fn resolve<'a>(schema: &'a Value, defs: &'a Defs) -> &'a Value {
    let mut s = schema;
    // allOf with a single $ref is how schemars wraps described refs.
    for _ in 0..8 {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or("");
            match defs.get(name) {
                Some(d) => s = d,
                None => return s,
            }
        } else if let Some([only]) = s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            s = only;
        } else {
            break;
        }
    }
    s
}

/// Where a value sits in the object (`spec.ports[0].port`). Built as a chain on the stack and
/// rendered only for a message: most objects are valid, and formatting the path of every field
/// of every write was a large part of the cost of validating.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn is_root(&self) -> bool {
        matches!(self, Path::Root)
    }

    fn render(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Key(parent, k) if parent.is_root() => (*k).to_string(),
            Path::Key(parent, k) => format!("{}.{k}", parent.render()),
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

/// Validates `value` in place. `types` enables type/required/enum checks (CRDs);
/// `prune` removes undeclared fields (CRDs without preserve-unknown-fields).
pub fn check(schema: &Value, defs: &Defs, value: &mut Value, types: bool, prune: bool) -> Outcome {
    let mut out = Outcome {
        invalid: Vec::new(),
        unknown: Vec::new(),
    };
    walk(
        schema,
        defs,
        value,
        &Path::Root,
        true,
        types,
        prune,
        &mut out,
    );
    out
}

#[allow(clippy::too_many_arguments)]
fn walk(
    schema: &Value,
    defs: &Defs,
    value: &mut Value,
    path: &Path<'_>,
    root: bool,
    types: bool,
    prune: bool,
    out: &mut Outcome,
) {
    let schema = resolve(schema, defs);
    if value.is_null() {
        if types && schema.get("nullable").and_then(Value::as_bool) != Some(true) && !path.is_root()
        {
            // Real CRD validation drops nulls for non-nullable fields rather than failing.
        }
        return;
    }
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        if types && !(value.is_string() || value.is_i64() || value.is_u64()) {
            out.invalid.push(FieldError::invalid(
                &path.render(),
                value,
                "must be an integer or a string",
            ));
        }
        return;
    }
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    let ty = schema.get("type").and_then(Value::as_str);
    if types {
        let ok = match ty {
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            _ => true,
        };
        if !ok {
            let have = match value {
                Value::Object(_) => "object",
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                Value::Bool(_) => "boolean",
                Value::Null => "null",
            };
            out.invalid.push(FieldError {
                field: path.render(),
                reason: "FieldValueTypeInvalid",
                message: format!(
                    "Invalid value: \"{have}\": {path} in body must be of type {}: \"{have}\"",
                    ty.unwrap_or("")
                ),
            });
            return;
        }
        if let (Some(min), Some(n)) = (
            schema.get("minimum").and_then(Value::as_f64),
            value.as_f64(),
        ) && n < min
        {
            out.invalid.push(FieldError::invalid(
                &path.render(),
                value,
                &format!("{path} in body should be greater than or equal to {min}"),
            ));
        }
        if let (Some(max), Some(n)) = (
            schema.get("maximum").and_then(Value::as_f64),
            value.as_f64(),
        ) && n > max
        {
            out.invalid.push(FieldError::invalid(
                &path.render(),
                value,
                &format!("{path} in body should be less than or equal to {max}"),
            ));
        }
        if let Some(en) = schema.get("enum").and_then(Value::as_array)
            && !en.contains(value)
        {
            let allowed: Vec<String> = en.iter().map(Value::to_string).collect();
            out.invalid.push(FieldError {
                field: path.render(),
                reason: "FieldValueNotSupported",
                message: format!(
                    "Unsupported value: {value}: supported values: {}",
                    allowed.join(", ")
                ),
            });
        }
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            // Structural-schema defaulting (CRDs): absent fields with a `default` get it.
            if types && let Some(props) = props {
                for (k, ps) in props {
                    if let Some(d) = ps.get("default")
                        && !map.contains_key(k)
                    {
                        map.insert(k.clone(), d.clone());
                    }
                }
            }
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            if types && let Some(req) = schema.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        out.invalid
                            .push(FieldError::required(&Path::Key(path, r).render(), ""));
                    }
                }
            }
            // Pruned after the walk: the children are visited in place, without copying keys.
            let mut pruned = Vec::new();
            for (k, v) in map.iter_mut() {
                if root && (k == "apiVersion" || k == "kind") {
                    continue;
                }
                if root && k == "metadata" {
                    // ObjectMeta is checked by the generic rules, not by CRD schemas.
                    if let Some(p) = props.and_then(|p| p.get("metadata"))
                        && !types
                    {
                        let sub = Path::Key(&Path::Root, "metadata");
                        walk(p, defs, v, &sub, false, types, prune, out);
                    }
                    continue;
                }
                let sub = Path::Key(path, k);
                let child_schema = props.and_then(|p| p.get(k)).or(additional);
                match child_schema {
                    Some(cs) => walk(cs, defs, v, &sub, false, types, prune, out),
                    None if preserve
                        || (props.is_none() && ty != Some("object") && additional.is_none()) => {}
                    None if props.is_none()
                        && additional.is_none()
                        && ty == Some("object")
                        && !types =>
                    {
                        // A free-form object in a built-in schema (e.g. labels with
                        // additionalProperties elided): allow.
                    }
                    None => {
                        out.unknown.push(sub.render());
                        if prune {
                            pruned.push(k.clone());
                        }
                    }
                }
            }
            for k in pruned {
                map.remove(&k);
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for (i, it) in items.iter_mut().enumerate() {
                    walk(
                        is,
                        defs,
                        it,
                        &Path::Index(path, i),
                        false,
                        types,
                        prune,
                        out,
                    );
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crd_schema_types_required_and_pruning() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["addresses"], "properties": {
                "addresses": {"type": "array", "items": {"type": "string"}},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}});
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"addresses": ["1.2.3.4/32"], "mode": "a", "extra": 1, "free": {"any": 1}}});
        let out = check(&schema, &Defs::new(), &mut obj, true, true);
        assert!(out.invalid.is_empty());
        assert_eq!(out.unknown, vec!["spec.extra".to_string()]);
        assert!(obj["spec"].get("extra").is_none());
        assert_eq!(obj["spec"]["free"], json!({"any": 1}));
        let mut bad = json!({"spec": {"addresses": "x", "mode": "c"}});
        let out = check(&schema, &Defs::new(), &mut bad, true, true);
        assert_eq!(out.invalid.len(), 2, "{:?}", out.invalid);
        let defaulted = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "auto": {"type": "boolean", "default": true}, "n": {"type": "integer", "minimum": 1}}}}});
        let mut o = json!({"spec": {"n": 2}});
        assert!(
            check(&defaulted, &Defs::new(), &mut o, true, true)
                .invalid
                .is_empty()
        );
        assert_eq!(o["spec"]["auto"], json!(true));
        let mut low = json!({"spec": {"n": 0}});
        assert_eq!(
            check(&defaulted, &Defs::new(), &mut low, true, true)
                .invalid
                .len(),
            1
        );
        let mut missing = json!({"spec": {}});
        assert_eq!(
            check(&schema, &Defs::new(), &mut missing, true, true)
                .invalid
                .len(),
            1
        );
    }
}
