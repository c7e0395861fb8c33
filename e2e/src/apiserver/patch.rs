//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch,
//! and server-side apply.
//!
//! Strategic merge patch fidelity: maps merge recursively and `null` deletes, like merge
//! patch. Lists listed in [`list_strategy`] (the ones kubectl and our code touch: Service
//! ports by `port`, containers/initContainers/volumes/env by `name`, container ports by
//! `containerPort`, conditions by `type`, node addresses by `type`, ownerReferences by `uid`,
//! finalizers as a merged set) merge by key, honouring the `$patch: delete|replace|merge`
//! directives, `$deleteFromPrimitiveList/<field>`, `$retainKeys` and `$setElementOrder/<field>`
//! (used to order the result). Every other list is replaced, as for lists without a patch
//! strategy in the real server. The OpenAPI documents we serve declare the same merge keys
//! (`x-kubernetes-patch-merge-key`), so kubectl computes patches with the same semantics.
//!
//! Server-side apply is approximated: the applied object is merged into the live object
//! with the strategic rules above (fields absent from the applied configuration are kept,
//! not removed as real SSA does for fields the manager owned before), and `managedFields`
//! records one entry per manager with the applied field set. Conflicts between managers are
//! never reported, so `force` is accepted and ignored.

use serde_json::{Map, Value, json};

use super::error::{ApiError, ApiResult};

/// The merge behaviour of one list field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ListStrategy {
    MergeKey(&'static str),
    /// A set of scalars (e.g. finalizers): union, `$deleteFromPrimitiveList` removes.
    MergePrimitive,
}

/// Patch strategies of the list fields we merge by key, by kind and dotted field path
/// (list items contribute no path segment).
pub fn list_strategy(kind: &str, path: &str) -> Option<ListStrategy> {
    use ListStrategy::*;
    match path {
        "metadata.finalizers" => return Some(MergePrimitive),
        "metadata.ownerReferences" => return Some(MergeKey("uid")),
        _ => {}
    }
    let pod_spec = |p: &str| -> Option<ListStrategy> {
        match p {
            "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "volumes"
            | "imagePullSecrets" => Some(MergeKey("name")),
            "containers.ports" | "initContainers.ports" => Some(MergeKey("containerPort")),
            "containers.env" | "initContainers.env" => Some(MergeKey("name")),
            "containers.volumeMounts" | "initContainers.volumeMounts" => {
                Some(MergeKey("mountPath"))
            }
            "tolerations" => None,
            _ => None,
        }
    };
    match kind {
        "Service" => match path {
            "spec.ports" => Some(MergeKey("port")),
            "status.conditions" => Some(MergeKey("type")),
            _ => None,
        },
        "Pod" => match path {
            "status.conditions" => Some(MergeKey("type")),
            p => p.strip_prefix("spec.").and_then(pod_spec),
        },
        "Deployment" | "DaemonSet" => match path {
            "status.conditions" => Some(MergeKey("type")),
            p => p.strip_prefix("spec.template.spec.").and_then(pod_spec),
        },
        "Node" => match path {
            "status.conditions" => Some(MergeKey("type")),
            "status.addresses" => Some(MergeKey("type")),
            _ => None,
        },
        "Namespace" => match path {
            "status.conditions" => Some(MergeKey("type")),
            _ => None,
        },
        _ => None,
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) -> ApiResult<()> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "merge patch body must be a JSON object",
        ));
    }
    json_patch::merge(target, patch);
    Ok(())
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &mut Value, patch: &Value) -> ApiResult<()> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    json_patch::patch(target, &ops.0).map_err(|e| {
        // The real server answers 422 for a patch that cannot be applied (e.g. a failed
        // `test` operation or a missing path).
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("the server rejected our request due to an error in our request: {e}"),
            details: None,
            retry_after: None,
        }
    })
}

/// Strategic merge patch of `patch` into `target` for an object of `kind`.
pub fn strategic_merge(kind: &str, target: &mut Value, patch: &Value) -> ApiResult<()> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "strategic merge patch body must be a JSON object",
        ));
    }
    merge_map(kind, "", target, patch, false)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Merges `patch` (an object) into `target`. With `apply`, `null` does not delete (SSA
/// has no delete-by-null) and directives are not expected.
fn merge_map(
    kind: &str,
    path: &str,
    target: &mut Value,
    patch: &Value,
    apply: bool,
) -> ApiResult<()> {
    let Some(pmap) = patch.as_object() else {
        *target = patch.clone();
        return Ok(());
    };
    match pmap.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut m = pmap.clone();
            m.remove("$patch");
            *target = Value::Object(strip_directives(m));
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type {other:?} at {path:?}"
            )));
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let retain: Option<Vec<String>> = pmap.get("$retainKeys").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    });
    let Some(tmap) = target.as_object_mut() else {
        return Ok(());
    };
    for (k, pv) in pmap {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(del)) = (
                tmap.get_mut(field).and_then(Value::as_array_mut),
                pv.as_array(),
            ) {
                list.retain(|v| !del.contains(v));
            }
            continue;
        }
        if k.starts_with('$') {
            return Err(ApiError::bad_request(format!(
                "unknown patch directive {k:?}"
            )));
        }
        let sub = join(path, k);
        if pv.is_null() {
            if !apply {
                tmap.remove(k);
            }
            continue;
        }
        match pv {
            Value::Object(_) => {
                let t = tmap.entry(k.clone()).or_insert(Value::Null);
                merge_map(kind, &sub, t, pv, apply)?;
                if t.is_null() {
                    tmap.remove(k);
                }
            }
            Value::Array(items) => {
                let t = tmap.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                merge_list(kind, &sub, t, items, apply)?;
                if let Some(order) = pmap
                    .get(&format!("$setElementOrder/{k}"))
                    .and_then(Value::as_array)
                {
                    reorder(kind, &sub, t, order);
                }
            }
            scalar => {
                tmap.insert(k.clone(), scalar.clone());
            }
        }
    }
    if let Some(keep) = retain {
        tmap.retain(|k, _| keep.contains(k));
    }
    Ok(())
}

fn strip_directives(mut m: Map<String, Value>) -> Map<String, Value> {
    m.retain(|k, _| !k.starts_with('$'));
    for v in m.values_mut() {
        if let Value::Object(inner) = v {
            *inner = strip_directives(std::mem::take(inner));
        }
    }
    m
}

fn merge_list(
    kind: &str,
    path: &str,
    target: &mut Value,
    items: &[Value],
    apply: bool,
) -> ApiResult<()> {
    let strategy = list_strategy(kind, path);
    // A `{"$patch": "replace"}` element means: the list is exactly the other elements.
    let replace_all = items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    if strategy.is_none() || replace_all || !target.is_array() {
        let clean: Vec<Value> = items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .map(|i| match i {
                Value::Object(m) => Value::Object(strip_directives(m.clone())),
                other => other.clone(),
            })
            .collect();
        *target = Value::Array(clean);
        return Ok(());
    }
    let Some(list) = target.as_array_mut() else {
        return Ok(());
    };
    match strategy {
        Some(ListStrategy::MergePrimitive) => {
            for i in items {
                if !list.contains(i) {
                    list.push(i.clone());
                }
            }
        }
        Some(ListStrategy::MergeKey(key)) => {
            for item in items {
                let Some(kv) = item.get(key) else {
                    return Err(ApiError::bad_request(format!(
                        "map: {item} does not contain declared merge key: {key}"
                    )));
                };
                let pos = list.iter().position(|e| e.get(key) == Some(kv));
                let directive = item.get("$patch").and_then(Value::as_str);
                match (directive, pos) {
                    (Some("delete"), Some(p)) => {
                        list.remove(p);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(p)) => merge_map(kind, path, &mut list[p], item, apply)?,
                    (_, None) => {
                        let mut fresh = Value::Null;
                        merge_map(kind, path, &mut fresh, item, apply)?;
                        list.push(fresh);
                    }
                }
            }
        }
        None => {}
    }
    Ok(())
}

/// Orders a merged list as `$setElementOrder` says; elements not named keep their place at
/// the end (as the server does for items the patch did not mention).
fn reorder(kind: &str, path: &str, target: &mut Value, order: &[Value]) {
    let Some(list) = target.as_array_mut() else {
        return;
    };
    let key = match list_strategy(kind, path) {
        Some(ListStrategy::MergeKey(k)) => Some(k),
        _ => None,
    };
    let ident = |v: &Value| -> Value {
        match key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for o in order {
        let want = ident(o);
        if let Some(p) = list.iter().position(|e| ident(e) == want) {
            out.push(list.remove(p));
        }
    }
    out.append(list);
    *list = out;
}

/// Server-side apply (approximation, see the module docs).
pub fn apply(kind: &str, target: &mut Value, applied: &Value) -> ApiResult<()> {
    if !applied.is_object() {
        return Err(ApiError::bad_request("apply patch body must be an object"));
    }
    merge_map(kind, "", target, applied, true)
}

/// `fieldsV1` for an applied configuration: every field it sets (`f:<name>`), list
/// items by merge key (`k:{"port":80}`) or as a whole.
pub fn fields_v1(kind: &str, path: &str, v: &Value) -> Value {
    let mut out = Map::new();
    if let Some(m) = v.as_object() {
        for (k, child) in m {
            if path.is_empty() && (k == "apiVersion" || k == "kind") {
                continue;
            }
            let sub = join(path, k);
            let inner = match child {
                Value::Object(_) => fields_v1(kind, &sub, child),
                Value::Array(items) => match list_strategy(kind, &sub) {
                    Some(ListStrategy::MergeKey(key)) => {
                        let mut lm = Map::new();
                        for it in items {
                            if let Some(kv) = it.get(key) {
                                let mut e = fields_v1(kind, &sub, it);
                                if let Some(em) = e.as_object_mut() {
                                    em.insert(".".into(), json!({}));
                                }
                                lm.insert(format!("k:{}", json!({ key: kv })), e);
                            }
                        }
                        Value::Object(lm)
                    }
                    _ => json!({}),
                },
                _ => json!({}),
            };
            out.insert(format!("f:{k}"), inner);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_deletes_with_null() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        merge_patch(&mut t, &json!({"a": null, "b": {"c": 5}, "l": [3]})).expect("patch");
        assert_eq!(t, json!({"b": {"c": 5, "d": 3}, "l": [3]}));
        assert!(merge_patch(&mut t, &json!([1])).is_err());
    }

    #[test]
    fn json_patch_ops_and_failures() {
        let mut t = json!({"metadata": {"labels": {"a": "1"}}});
        json_patch(
            &mut t,
            &json!([{"op": "add", "path": "/metadata/labels/b", "value": "2"},
                    {"op": "remove", "path": "/metadata/labels/a"}]),
        )
        .expect("patch");
        assert_eq!(t, json!({"metadata": {"labels": {"b": "2"}}}));
        let e = json_patch(
            &mut t,
            &json!([{"op": "test", "path": "/metadata/labels/b", "value": "x"}]),
        )
        .expect_err("test op fails");
        assert_eq!(e.code, 422);
        assert_eq!(
            json_patch(&mut t, &json!({"op": "nope"}))
                .expect_err("bad")
                .code,
            400
        );
    }

    #[test]
    fn strategic_ports_merge_by_port() {
        let mut svc = json!({"spec": {"ports": [
            {"port": 80, "name": "http", "protocol": "TCP"},
            {"port": 443, "name": "https", "protocol": "TCP"}]}});
        strategic_merge(
            "Service",
            &mut svc,
            &json!({"spec": {
                "$setElementOrder/ports": [{"port": 8080}, {"port": 80}],
                "ports": [{"port": 80, "name": "web"}, {"port": 8080}, {"port": 443, "$patch": "delete"}]}}),
        )
        .expect("patch");
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"port": 8080}, {"port": 80, "name": "web", "protocol": "TCP"}])
        );
    }

    #[test]
    fn strategic_other_lists_replace_and_finalizers_union() {
        let mut o = json!({"metadata": {"finalizers": ["a"]}, "spec": {"addresses": ["x", "y"]}});
        strategic_merge(
            "IPAddressPool",
            &mut o,
            &json!({"metadata": {"finalizers": ["b"]}, "spec": {"addresses": ["z"]}}),
        )
        .expect("patch");
        assert_eq!(
            o,
            json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"addresses": ["z"]}})
        );
        strategic_merge(
            "IPAddressPool",
            &mut o,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}, "spec": {"$patch": "replace", "other": 1}}),
        )
        .expect("patch");
        assert_eq!(
            o,
            json!({"metadata": {"finalizers": ["b"]}, "spec": {"other": 1}})
        );
    }

    #[test]
    fn apply_keeps_unmentioned_fields_and_records_fields() {
        let mut live = json!({"spec": {"a": 1, "b": 2}, "status": {"x": 1}});
        apply("Foo", &mut live, &json!({"spec": {"a": 3}})).expect("apply");
        assert_eq!(live, json!({"spec": {"a": 3, "b": 2}, "status": {"x": 1}}));
        assert_eq!(
            fields_v1(
                "Service",
                "",
                &json!({"apiVersion": "v1", "spec": {"ports": [{"port": 80}]}})
            ),
            json!({"f:spec": {"f:ports": {"k:{\"port\":80}": {".": {}, "f:port": {}}}}})
        );
    }
}
