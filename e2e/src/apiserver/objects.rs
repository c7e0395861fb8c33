//! Generic object rules shared by every kind: metadata on create (uid, generateName,
//! creationTimestamp, generation), what an update may change (status subresource split,
//! generation bumps, optimistic concurrency), deletion with finalizers, and the per-kind
//! hooks (Service defaults, Namespace/CRD status).

use serde_json::{Map, Value, json};

use super::error::{ApiError, ApiResult, FieldError};
use super::ids::{new_uid, next_random};
use super::resources::ResourceType;
use super::store::Inner;
use super::{service, time};

/// The 5-character suffix `generateName` gets (consonants and digits, as the real server).
fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = next_random();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
            r /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// RFC 1123 subdomain (what most kinds require for names).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// RFC 1123 label (namespaces and services).
pub fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && is_dns_subdomain(s)
}

/// kube-apiserver's `ValidatePathSegmentName`: what a name needs to be usable in a URL.
fn path_segment_problem(name: &str) -> Option<&'static str> {
    if name == "." || name == ".." {
        Some("may not be '.' or '..'")
    } else if name.contains('/') {
        Some("may not contain '/'")
    } else if name.contains('%') {
        Some("may not contain '%'")
    } else {
        None
    }
}

/// `metadata` as a mutable map, created if missing.
pub fn meta_mut(obj: &mut Value) -> ApiResult<&mut Map<String, Value>> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if meta.is_null() {
        *meta = json!({});
    }
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

fn str_at<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = obj;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// Checks apiVersion/kind of a body against the endpoint and fills them in when absent.
pub fn check_type(rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let want_av = rt.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(want_av));
        }
        Some(av) if av == want_av => {}
        Some(av) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(rt.kind));
        }
        Some(k) if k == rt.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
    }
    Ok(())
}

/// The namespace rules of the real server: a namespaced object takes the request's
/// namespace (a different one in the body is 400), a cluster-scoped one has none.
fn check_namespace(rt: &ResourceType, ns: &str, obj: &mut Value) -> ApiResult<()> {
    let meta = meta_mut(obj)?;
    if rt.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                meta.insert("namespace".into(), json!(ns));
            }
            Some(n) if n == ns => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
    } else {
        meta.remove("namespace");
    }
    Ok(())
}

/// Everything but metadata and status: what `generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

/// Builds the object to store for a create.
pub fn prepare_create(
    view: &Inner,
    rt: &ResourceType,
    ns: &str,
    mut obj: Value,
    field_manager: Option<&str>,
) -> ApiResult<Value> {
    check_type(rt, &mut obj)?;
    check_namespace(rt, ns, &mut obj)?;
    if rt.namespaced && !view.namespace_exists(ns) {
        return Err(ApiError::not_found("", "namespaces", ns));
    }
    let kind = rt.kind.clone();
    let meta = meta_mut(&mut obj)?;
    let name = match meta.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => match meta.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => {
                let n = format!("{prefix}{}", name_suffix());
                meta.insert("name".into(), json!(n));
                n
            }
            _ => {
                return Err(ApiError::invalid(
                    &rt.group,
                    &kind,
                    "",
                    vec![FieldError::required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ));
            }
        },
    };
    let name_problem = match (rt.group.as_str(), kind.as_str()) {
        ("", "Namespace" | "Service") => (!is_dns_label(&name)).then_some(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        ),
        // RBAC objects only need a valid path segment (`system:controller:x` is common).
        ("rbac.authorization.k8s.io", _) => path_segment_problem(&name),
        _ => (!is_dns_subdomain(&name)).then_some(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ),
    };
    if let Some(problem) = name_problem {
        return Err(ApiError::invalid(
            &rt.group,
            &kind,
            &name,
            vec![FieldError::invalid("metadata.name", &json!(name), problem)],
        ));
    }
    meta.insert("uid".into(), json!(new_uid()));
    meta.insert("creationTimestamp".into(), json!(time::now_rfc3339()));
    meta.remove("resourceVersion");
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("managedFields");
    if rt.has_generation {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    if let Some(m) = field_manager {
        record_manager(&mut obj, m, "Update", &rt.api_version(), None);
    }
    // Status is not client-writable on create where a status subresource exists.
    if rt.status_subresource
        && let Some(m) = obj.as_object_mut()
        && !matches!(kind.as_str(), "Node" | "Pod")
    {
        m.remove("status");
    }
    match (rt.group.as_str(), kind.as_str()) {
        ("", "Service") => service::on_create(view, &mut obj)?,
        ("", "Secret") => secret_defaults(&mut obj),
        ("", "Namespace") => {
            obj["status"] = json!({"phase": "Active"});
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            if let Some(l) = meta_mut(&mut obj)?
                .entry("labels")
                .or_insert_with(|| json!({}))
                .as_object_mut()
            {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
        ("", "Pod") if obj["status"]["phase"].is_null() => {
            obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            super::crd::validate(view, &obj, None)?;
            obj["status"] = super::crd::status(&obj);
        }
        _ => {}
    }
    Ok(obj)
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Part {
    Main,
    Status,
}

/// Builds the object to store for an update (PUT, or the result of a patch), given the
/// stored object. `check_rv` enforces optimistic concurrency when the body carries a
/// resourceVersion.
pub fn prepare_update(
    view: &Inner,
    rt: &ResourceType,
    current: &Value,
    mut obj: Value,
    part: Part,
    field_manager: Option<(&str, &str)>,
) -> ApiResult<Value> {
    check_type(rt, &mut obj)?;
    let ns = str_at(current, &["metadata", "namespace"])
        .unwrap_or("")
        .to_string();
    let name = str_at(current, &["metadata", "name"])
        .unwrap_or("")
        .to_string();
    check_namespace(rt, &ns, &mut obj)?;
    {
        let meta = meta_mut(&mut obj)?;
        match meta.get("name").and_then(Value::as_str) {
            None | Some("") => {
                meta.insert("name".into(), json!(name));
            }
            Some(n) if n == name => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
        }
        if let Some(rv) = meta.get("resourceVersion").and_then(Value::as_str)
            && !rv.is_empty()
            && Some(rv) != str_at(current, &["metadata", "resourceVersion"])
        {
            return Err(ApiError::stale(&rt.group, &rt.plural, &name));
        }
        if let Some(uid) = meta.get("uid").and_then(Value::as_str)
            && !uid.is_empty()
            && Some(uid) != str_at(current, &["metadata", "uid"])
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                &name,
                "Precondition failed: UID in precondition does not match the UID of the object",
            ));
        }
    }
    // Status subresource split: each endpoint changes only its own part.
    if rt.status_subresource {
        match part {
            Part::Main => {
                if let Some(m) = obj.as_object_mut() {
                    match current.get("status") {
                        Some(s) => m.insert("status".into(), s.clone()),
                        None => m.remove("status"),
                    };
                }
            }
            Part::Status => {
                let status = obj.get("status").cloned();
                // kube-apiserver's Service status strategy resets only spec: labels and
                // annotations sent with a Service's status are kept (MetalLB writes its
                // ip-allocated-from-pool annotation that way). Other kinds keep the stored
                // metadata.
                let meta_kept = (rt.group.is_empty() && rt.kind == "Service").then(|| {
                    ["labels", "annotations"]
                        .map(|k| (k, obj.get("metadata").and_then(|m| m.get(k)).cloned()))
                });
                let mut keep = current.clone();
                if let Some(m) = keep.as_object_mut() {
                    match status {
                        Some(s) => m.insert("status".into(), s),
                        None => m.remove("status"),
                    };
                }
                if let Some(fields) = meta_kept
                    && let Some(meta) = keep.get_mut("metadata").and_then(Value::as_object_mut)
                {
                    for (k, v) in fields {
                        match v {
                            Some(v) => meta.insert(k.into(), v),
                            None => meta.remove(k),
                        };
                    }
                }
                obj = keep;
            }
        }
    }
    // Immutable/system metadata comes from the stored object.
    {
        // Borrowed: only the fields below are copied (managedFields only when absent).
        let empty = json!({});
        let cur_meta = current.get("metadata").unwrap_or(&empty);
        let meta = meta_mut(&mut obj)?;
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match cur_meta.get(k) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
        if meta.get("managedFields").is_none_or(Value::is_null)
            && let Some(mf) = cur_meta.get("managedFields")
        {
            meta.insert("managedFields".into(), mf.clone());
        }
        // Finalizers cannot be added to an object that is being deleted.
        if cur_meta.get("deletionTimestamp").is_some() {
            let old: Vec<Value> = cur_meta["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if let Some(new) = meta.get("finalizers").and_then(Value::as_array)
                && new.iter().any(|f| !old.contains(f))
            {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    &name,
                    vec![FieldError::forbidden(
                        "metadata.finalizers",
                        "no new finalizers can be added if the object is being deleted",
                    )],
                ));
            }
        }
    }
    if rt.has_generation && spec_part(&obj) != spec_part(current) {
        let g = current["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        obj["metadata"]["generation"] = json!(g);
    }
    if let Some((m, op)) = field_manager {
        let sub = (part == Part::Status).then_some("status");
        record_manager(&mut obj, m, op, &rt.api_version(), sub);
    }
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Service") => service::on_update(view, current, &mut obj)?,
        ("", "Secret") => secret_defaults(&mut obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") if part == Part::Main => {
            super::crd::validate(view, &obj, Some(current))?;
            obj["status"] = super::crd::status(&obj);
            // Conditions keep their transition times: an update is not a transition.
            if current["status"]["conditions"].is_array() {
                obj["status"]["conditions"] = current["status"]["conditions"].clone();
            }
        }
        _ => {}
    }
    Ok(obj)
}

/// Records or refreshes a `managedFields` entry (one per manager, operation, subresource).
pub fn record_manager(
    obj: &mut Value,
    manager: &str,
    operation: &str,
    api_version: &str,
    subresource: Option<&str>,
) {
    record_manager_fields(obj, manager, operation, api_version, subresource, None);
}

pub fn record_manager_fields(
    obj: &mut Value,
    manager: &str,
    operation: &str,
    api_version: &str,
    subresource: Option<&str>,
    fields: Option<Value>,
) {
    let Ok(meta) = meta_mut(obj) else { return };
    let list = meta.entry("managedFields").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let Some(entries) = list.as_array_mut() else {
        return;
    };
    let same = |e: &Value| {
        e["manager"] == json!(manager)
            && e["operation"] == json!(operation)
            && e["subresource"].as_str() == subresource
    };
    let mut entry = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": time::now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields.unwrap_or_else(|| json!({})),
    });
    if let Some(s) = subresource {
        entry["subresource"] = json!(s);
    }
    match entries.iter_mut().find(|e| same(e)) {
        Some(e) => {
            if entry["fieldsV1"] == json!({}) {
                entry["fieldsV1"] = e["fieldsV1"].clone();
            }
            *e = entry;
        }
        None => entries.push(entry),
    }
}

/// What a DELETE does to a stored object: with finalizers it is only marked.
pub fn delete_decision(current: &Value) -> Option<Value> {
    let has_finalizers = current["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if !has_finalizers {
        return None;
    }
    let mut marked = current.clone();
    if marked["metadata"]["deletionTimestamp"].is_null() {
        marked["metadata"]["deletionTimestamp"] = json!(time::now_rfc3339());
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    }
    Some(marked)
}

/// After an update: an object marked for deletion whose last finalizer is gone is removed.
pub fn ready_to_remove(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
        && obj["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty())
}

/// What kube-apiserver does to every Secret it decodes: an empty type is `Opaque` and
/// `stringData` is folded into `data`.
fn secret_defaults(obj: &mut Value) {
    if obj["type"].as_str().is_none_or(str::is_empty) {
        obj["type"] = json!("Opaque");
    }
    fold_string_data(obj);
}

/// As the real API server: a Secret's `stringData` is a write-only convenience, merged into
/// `data` (base64, overriding keys of the same name) and never stored or returned.
fn fold_string_data(obj: &mut Value) {
    let Some(string_data) = obj.as_object_mut().and_then(|m| m.remove("stringData")) else {
        return;
    };
    let Value::Object(entries) = string_data else {
        return;
    };
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    for (k, v) in entries {
        let Some(text) = v.as_str() else { continue };
        let encoded = serde_json::to_value(k8s_openapi::ByteString(text.as_bytes().to_vec()))
            .unwrap_or(Value::Null);
        obj["data"][k.as_str()] = encoded;
    }
}

#[cfg(test)]
mod string_data_tests {
    use super::*;

    #[test]
    fn string_data_is_folded_into_data() {
        let mut s = json!({
            "kind": "Secret",
            "data": {"keep": "a2VlcA==", "password": "b2xk"},
            "stringData": {"password": "s3cret"},
        });
        fold_string_data(&mut s);
        assert!(s.get("stringData").is_none());
        assert_eq!(s["data"]["password"], "czNjcmV0");
        assert_eq!(s["data"]["keep"], "a2VlcA==");
    }

    #[test]
    fn a_secret_without_a_type_is_opaque() {
        let mut s = json!({"kind": "Secret", "data": {}});
        secret_defaults(&mut s);
        assert_eq!(s["type"], "Opaque");
        let mut s = json!({"kind": "Secret", "type": "kubernetes.io/tls"});
        secret_defaults(&mut s);
        assert_eq!(s["type"], "kubernetes.io/tls");
    }
}

#[cfg(test)]
mod kind_rules_tests {
    use super::super::resources::builtins;
    use super::super::store::Store;
    use super::*;

    fn rt(kind: &str) -> ResourceType {
        builtins()
            .into_iter()
            .find(|t| t.kind == kind)
            .unwrap_or_else(|| panic!("no built-in {kind}"))
    }

    #[test]
    fn rbac_names_only_need_to_be_path_segments() {
        let store = Store::new(10, None);
        let view = store.lock();
        let role = json!({"metadata": {"name": "ferrolb:speaker"}, "rules": []});
        let created = prepare_create(&view, &rt("ClusterRole"), "", role, None).unwrap();
        assert_eq!(created["metadata"]["name"], "ferrolb:speaker");
        let bad = json!({"metadata": {"name": "a/b"}});
        let err = prepare_create(&view, &rt("ClusterRole"), "", bad, None).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message.contains("may not contain '/'"),
            "{}",
            err.message
        );
        // Everything else keeps the DNS rules.
        let sa = json!({"metadata": {"name": "ferrolb:speaker"}});
        let err = prepare_create(&view, &rt("ServiceAccount"), "default", sa, None).unwrap_err();
        assert!(
            err.message.contains("RFC 1123 subdomain"),
            "{}",
            err.message
        );
    }

    #[test]
    fn workloads_count_template_changes_in_generation() {
        let store = Store::new(10, None);
        let view = store.lock();
        let ds = rt("DaemonSet");
        let obj = json!({
            "metadata": {"name": "speaker"},
            "spec": {"template": {"spec": {"containers": [{"name": "s", "args": ["--log-level=info"]}]}}},
        });
        let created = prepare_create(&view, &ds, "default", obj.clone(), None).unwrap();
        assert_eq!(created["metadata"]["generation"], 1);
        let mut changed = created.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["--log-level=debug"]);
        let updated = prepare_update(&view, &ds, &created, changed, Part::Main, None).unwrap();
        assert_eq!(updated["metadata"]["generation"], 2);
        let mut labelled = updated.clone();
        labelled["metadata"]["labels"] = json!({"tier": "edge"});
        let relabelled = prepare_update(&view, &ds, &updated, labelled, Part::Main, None).unwrap();
        assert_eq!(
            relabelled["metadata"]["generation"], 2,
            "metadata is not spec"
        );
    }

    /// kube-apiserver pkg/registry/core/service/strategy.go serviceStatusStrategy resets only
    /// spec on a status write, so a Service's annotations travel with its status (MetalLB's
    /// ip-allocated-from-pool); other kinds keep their stored metadata.
    #[test]
    fn service_status_writes_keep_annotations_but_not_spec() {
        let store = Store::new(10, None);
        let view = store.lock();
        let svc = rt("Service");
        let obj = json!({
            "metadata": {"name": "web"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        });
        let created = prepare_create(&view, &svc, "default", obj, None).unwrap();
        let mut written = created.clone();
        written["metadata"]["annotations"] = json!({"metallb.io/ip-allocated-from-pool": "lan"});
        written["spec"]["type"] = json!("ClusterIP");
        written["status"] = json!({"loadBalancer": {"ingress": [{"ip": "10.200.0.1"}]}});
        let updated = prepare_update(&view, &svc, &created, written, Part::Status, None).unwrap();
        assert_eq!(
            updated["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"],
            "lan"
        );
        assert_eq!(updated["spec"]["type"], "LoadBalancer");
        assert_eq!(
            updated["status"]["loadBalancer"]["ingress"][0]["ip"],
            "10.200.0.1"
        );
        let ds = rt("DaemonSet");
        let obj = json!({"metadata": {"name": "speaker"}, "spec": {"template": {}}});
        let created = prepare_create(&view, &ds, "default", obj, None).unwrap();
        let mut written = created.clone();
        written["metadata"]["annotations"] = json!({"a": "b"});
        let updated = prepare_update(&view, &ds, &created, written, Part::Status, None).unwrap();
        assert!(updated["metadata"].get("annotations").is_none());
    }
}
