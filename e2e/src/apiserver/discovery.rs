//! `/version` and legacy (unaggregated) discovery: `/api`, `/api/v1`, `/apis`,
//! `/apis/<group>`, `/apis/<group>/<version>`.
//!
//! Newer clients first ask `/api` and `/apis` for the aggregated `APIGroupDiscoveryList`
//! (apidiscovery.k8s.io/v2) via the Accept header; answering with a plain `application/json`
//! `APIVersions`/`APIGroupList` makes client-go fall back to the per-group documents, which
//! is what older real servers do.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::resources::ResourceType;

pub const GIT_VERSION: &str = "v1.33.4";

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
    })
}

pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
    })
}

/// Groups in discovery order (built-ins first, then CRD groups), each with its versions.
fn groups(types: &[ResourceType]) -> Vec<(String, Vec<String>)> {
    let mut order: Vec<(String, Vec<String>)> = Vec::new();
    for rt in types.iter().filter(|t| !t.group.is_empty()) {
        match order.iter_mut().find(|(g, _)| *g == rt.group) {
            Some((_, vs)) => {
                if !vs.contains(&rt.version) {
                    vs.push(rt.version.clone());
                }
            }
            None => order.push((rt.group.clone(), vec![rt.version.clone()])),
        }
    }
    for g in super::auth::endpoints::GROUPS {
        order.push((g.to_string(), vec!["v1".to_string()]));
    }
    order
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

pub fn group_list(types: &[ResourceType]) -> Value {
    let groups: Vec<Value> = groups(types)
        .iter()
        .map(|(g, vs)| group_json(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(types: &[ResourceType], group: &str) -> Option<Value> {
    groups(types)
        .into_iter()
        .find(|(g, _)| g == group)
        .map(|(g, vs)| {
            let mut v = group_json(&g, &vs);
            v["kind"] = json!("APIGroup");
            v["apiVersion"] = json!("v1");
            v
        })
}

pub fn resource_list(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let in_gv: Vec<&ResourceType> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    let mut resources = Vec::new();
    if in_gv.is_empty() {
        resources = super::auth::endpoints::discovery_resources(group, version)?;
    }
    // Sorted by name like the real server's output; stable for caches.
    let mut by_name: BTreeMap<String, &ResourceType> = BTreeMap::new();
    for rt in in_gv {
        by_name.insert(rt.plural.clone(), rt);
    }
    for rt in by_name.values() {
        let mut r = json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": rt.verbs(),
        });
        if !rt.short_names.is_empty() {
            r["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            r["categories"] = json!(rt.categories);
        }
        resources.push(r);
        if rt.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if group.is_empty() && version == "v1" {
        resources.push(super::auth::endpoints::service_account_token_resource());
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}
