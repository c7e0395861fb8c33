//! Between the stored form of an object and the form a request's group-version serves.
//!
//! Most kinds are stored as served (only `apiVersion` is rewritten, e.g. for CRDs with
//! several served versions: no conversion webhooks, versions must be schema-compatible).
//! `events.k8s.io/v1` Events share storage with core `v1` Events, as in the real server,
//! so events recorded by kube-rs's `Recorder` show up in `kubectl get events`; the field
//! mapping is the one of the real conversion functions.

use std::borrow::Cow;

use serde_json::{Map, Value, json};

use super::resources::ResourceType;

/// (events.k8s.io/v1 field, core/v1 field).
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn is_new_event(rt: &ResourceType) -> bool {
    rt.group == "events.k8s.io" && rt.kind == "Event"
}

fn rename(obj: &Value, from_new: bool, api_version: &str) -> Value {
    let Some(m) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        let renamed = EVENT_FIELDS.iter().find_map(|(new, old)| {
            if from_new && k == new {
                Some(*old)
            } else if !from_new && k == old {
                Some(*new)
            } else {
                None
            }
        });
        out.insert(renamed.unwrap_or(k).to_string(), v.clone());
    }
    out.insert("apiVersion".into(), json!(api_version));
    Value::Object(out)
}

/// The stored object as the request's group-version serves it.
pub fn present(rt: &ResourceType, stored: &Value) -> Value {
    if is_new_event(rt) {
        return rename(stored, false, &rt.api_version());
    }
    let mut v = stored.clone();
    if v.is_object() {
        v["apiVersion"] = json!(rt.api_version());
    }
    v
}

/// As [`present`], but without a copy when the stored form is already what `rt` serves (the
/// common case: one served version whose `apiVersion` the object already carries).
pub fn present_cow<'a>(rt: &ResourceType, stored: &'a Value) -> Cow<'a, Value> {
    if !is_new_event(rt) && (!stored.is_object() || served_as_stored(rt, stored)) {
        return Cow::Borrowed(stored);
    }
    Cow::Owned(present(rt, stored))
}

/// Whether `present` would return `stored` unchanged.
fn served_as_stored(rt: &ResourceType, stored: &Value) -> bool {
    let Some(av) = stored.get("apiVersion").and_then(Value::as_str) else {
        return false;
    };
    if rt.group.is_empty() {
        av == rt.version
    } else {
        av.strip_prefix(rt.group.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            == Some(rt.version.as_str())
    }
}

/// A request body (already checked against the served schema) in stored form.
pub fn to_storage(rt: &ResourceType, served: Value) -> Value {
    if is_new_event(rt) {
        return rename(&served, true, "v1");
    }
    served
}

/// The resource type objects of `rt` are stored as (for the generic write rules).
pub fn storage_type(rt: &ResourceType, types: &[ResourceType]) -> ResourceType {
    if is_new_event(rt)
        && let Some(core) = types
            .iter()
            .find(|t| t.group.is_empty() && t.plural == "events")
    {
        return core.clone();
    }
    rt.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::builtins;

    #[test]
    fn events_round_trip() {
        let types = builtins();
        let new = types
            .iter()
            .find(|t| t.group == "events.k8s.io")
            .expect("type");
        let served = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Service", "name": "web"}, "note": "assigned", "reportingController": "ferrolb.io/controller",
            "reason": "IPAllocated", "type": "Normal"});
        let stored = to_storage(new, served.clone());
        assert_eq!(stored["apiVersion"], json!("v1"));
        assert_eq!(stored["involvedObject"]["name"], json!("web"));
        assert_eq!(stored["message"], json!("assigned"));
        assert_eq!(present(new, &stored), served);
        assert_eq!(storage_type(new, &types).api_version(), "v1");
        // The borrowed fast path never serves a form `present` would not.
        assert_eq!(*present_cow(new, &stored), served);
    }

    #[test]
    fn present_cow_borrows_only_when_unchanged() {
        let types = builtins();
        let svc_rt = types
            .iter()
            .find(|t| t.group.is_empty() && t.kind == "Service")
            .expect("type");
        let stored = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}});
        assert!(matches!(present_cow(svc_rt, &stored), Cow::Borrowed(_)));
        let other = json!({"apiVersion": "v2", "kind": "Service", "metadata": {"name": "a"}});
        let shown = present_cow(svc_rt, &other);
        assert!(matches!(shown, Cow::Owned(_)));
        assert_eq!(*shown, present(svc_rt, &other));
        let lease_rt = types.iter().find(|t| t.kind == "Lease").expect("type");
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease"});
        assert!(matches!(present_cow(lease_rt, &lease), Cow::Borrowed(_)));
        let wrong_group = json!({"apiVersion": "coordination.k8s.iox/v1", "kind": "Lease"});
        assert!(matches!(present_cow(lease_rt, &wrong_group), Cow::Owned(_)));
    }
}
