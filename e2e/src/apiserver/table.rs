//! `meta.k8s.io/v1` Table responses for `kubectl get`: CRD `additionalPrinterColumns`
//! evaluated with a JSONPath subset (`.a.b`, `[n]`, `[*]`, `[?(@.k=="v")]`), Service
//! columns like the real server, and Name/Age for other kinds.

use serde_json::{Value, json};

use super::resources::{PrinterColumn, ResourceType};
use super::time;

fn col(name: &str, type_: &str, format: &str, description: &str, path: &str) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        type_: type_.into(),
        format: format.into(),
        description: description.into(),
        priority: 0,
        json_path: path.into(),
    }
}

/// Columns after NAME.
fn columns(rt: &ResourceType) -> Vec<PrinterColumn> {
    if !rt.printer_columns.is_empty() {
        return rt.printer_columns.clone();
    }
    let age = col(
        "Age",
        "date",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        ".metadata.creationTimestamp",
    );
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Service") => vec![
            col(
                "Type",
                "string",
                "",
                "The type of the service.",
                ".spec.type",
            ),
            col(
                "Cluster-IP",
                "string",
                "",
                "The cluster IP of the service.",
                ".spec.clusterIP",
            ),
            col(
                "External-IP",
                "string",
                "",
                "The external IP of the service.",
                "@externalip",
            ),
            col(
                "Port(s)",
                "string",
                "",
                "The ports of the service.",
                "@ports",
            ),
            age,
        ],
        ("", "Namespace") => vec![
            col(
                "Status",
                "string",
                "",
                "The status of the namespace",
                ".status.phase",
            ),
            age,
        ],
        _ => vec![age],
    }
}

fn definitions(cols: &[PrinterColumn]) -> Value {
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    for c in cols {
        defs.push(json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}));
    }
    Value::Array(defs)
}

/// Evaluates a printer-column JSONPath; `None` when nothing matches.
pub fn eval(obj: &Value, path: &str) -> Option<Value> {
    let path = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim();
    let mut current = vec![obj.clone()];
    let mut rest = path.strip_prefix('$').unwrap_or(path);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            rest = &r[end..];
            if key.is_empty() {
                continue;
            }
            current = current.iter().filter_map(|v| v.get(key).cloned()).collect();
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            // A filter may contain ']' only inside quotes; our paths do not.
            let inner = &r[..end];
            rest = &r[end + 1..];
            if inner == "*" {
                current = current
                    .iter()
                    .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                    .collect();
            } else if let Ok(i) = inner.parse::<i64>() {
                current = current
                    .iter()
                    .filter_map(|v| {
                        let a = v.as_array()?;
                        let idx = if i < 0 { a.len() as i64 + i } else { i };
                        a.get(usize::try_from(idx).ok()?).cloned()
                    })
                    .collect();
            } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (field, want) = f.split_once("==")?;
                let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                let field = field.trim();
                current = current
                    .iter()
                    .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                    .filter(|item| {
                        let mut cur = item;
                        for seg in field.split('.') {
                            cur = &cur[seg];
                        }
                        match cur {
                            Value::String(s) => s == want,
                            Value::Null => false,
                            other => serde_json::to_string(other).ok().as_deref() == Some(want),
                        }
                    })
                    .collect();
            } else {
                return None;
            }
        } else {
            return None;
        }
    }
    match current.len() {
        0 => None,
        _ => current.into_iter().next(),
    }
}

fn cell(obj: &Value, c: &PrinterColumn, now: i64) -> Value {
    match c.json_path.as_str() {
        "@externalip" => {
            let ingress: Vec<String> = obj["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    i["ip"]
                        .as_str()
                        .or(i["hostname"].as_str())
                        .map(str::to_string)
                })
                .collect();
            let lb = obj["spec"]["type"].as_str() == Some("LoadBalancer");
            return json!(match (ingress.is_empty(), lb) {
                (false, _) => ingress.join(","),
                (true, true) => "<pending>".to_string(),
                (true, false) => "<none>".to_string(),
            });
        }
        "@ports" => {
            let ports: Vec<String> = obj["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let proto = p["protocol"].as_str().unwrap_or("TCP");
                    match p["nodePort"].as_i64() {
                        Some(np) => format!("{}:{np}/{proto}", p["port"]),
                        None => format!("{}/{proto}", p["port"]),
                    }
                })
                .collect();
            return json!(if ports.is_empty() {
                "<none>".to_string()
            } else {
                ports.join(",")
            });
        }
        _ => {}
    }
    let Some(v) = eval(obj, &c.json_path) else {
        return Value::Null;
    };
    match (c.type_.as_str(), &v) {
        ("date", Value::String(s)) => match time::parse_rfc3339(s) {
            Some(t) => json!(time::human_duration(now - t)),
            None => v,
        },
        (_, Value::String(_) | Value::Number(_) | Value::Bool(_)) => v,
        _ => json!(v.to_string()),
    }
}

fn row(
    rt: &ResourceType,
    cols: &[PrinterColumn],
    obj: &Value,
    include_object: &str,
    now: i64,
) -> Value {
    let mut cells = vec![obj["metadata"]["name"].clone()];
    cells.extend(cols.iter().map(|c| cell(obj, c, now)));
    let object = match include_object {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"],
        }),
    };
    let _ = rt;
    json!({"cells": cells, "object": object})
}

/// A Table for a list (or a single object / watch event with `objs` of length 1).
pub fn table(
    rt: &ResourceType,
    objs: &[Value],
    meta: Value,
    include_object: &str,
    with_columns: bool,
) -> Value {
    let cols = columns(rt);
    let now = time::now_secs();
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| row(rt, &cols, o, include_object, now))
        .collect();
    let mut t =
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "rows": rows});
    if with_columns {
        t["columnDefinitions"] = definitions(&cols);
    } else {
        t["columnDefinitions"] = json!([]);
    }
    t
}

/// Whether an Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let o = json!({"spec": {"addresses": ["a", "b"]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}], "n": 3}});
        assert_eq!(eval(&o, ".spec.addresses"), Some(json!(["a", "b"])));
        assert_eq!(eval(&o, ".spec.addresses[1]"), Some(json!("b")));
        assert_eq!(eval(&o, ".spec.addresses[*]"), Some(json!("a")));
        assert_eq!(
            eval(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(json!("True"))
        );
        assert_eq!(eval(&o, "{.status.n}"), Some(json!(3)));
        assert_eq!(eval(&o, ".status.missing"), None);
        assert_eq!(eval(&o, ".spec[oops"), None);
    }
}
