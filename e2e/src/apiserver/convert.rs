//! Between the stored form of an object and the form a request's group-version serves.
//!
//! Most kinds are stored as served (only `apiVersion` is rewritten, e.g. for CRDs with
//! several served versions: no conversion webhooks, versions must be schema-compatible).
//! `events.k8s.io/v1` Events share storage with core `v1` Events, as in the real server,
//! so events recorded by kube-rs's `Recorder` show up in `kubectl get events`; the field
//! mapping is the one of the real conversion functions.

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
    }
}
