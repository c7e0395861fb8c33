//! MetalLB configuration objects rewritten as ferrolb's: same kinds, names, namespaces, labels
//! and annotations, `apiVersion: ferrolb.io/v1beta1`, and each spec read with its MetalLB
//! meaning (see [`super::metallb`]). The report lists every difference in behaviour that
//! applies to the input: fields written differently, fields ferrolb cannot honour yet, and the
//! errors and warnings ferrolb's validation finds in the configuration.
//!
//! Objects that are not MetalLB configuration are left out of the output and listed: MetalLB's
//! install manifests, Services or Secrets in the same directory stay in the cluster as they
//! are and must not be applied again. `ferrolb.io` objects are carried over unchanged.

use super::{ACCEPTED_API_VERSIONS, KINDS, Manifests, metallb, object_name, parse_documents};
use crate::Config;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Metadata fields the API server sets; a manifest to apply leaves them out.
const SERVER_SET: [&str; 8] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// An annotation kubectl writes; it holds the MetalLB object as last applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Where ferrolb's components read their configuration by default.
const DEFAULT_NAMESPACE: &str = "ferrolb-system";

/// The outcome of a migration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Migration {
    /// The objects to apply, as multi-document YAML.
    pub yaml: String,
    /// `error:`, `warning:`, `note:` and `skipped:` lines, then a `migrated:` summary.
    pub lines: Vec<String>,
    /// Number of objects written, by kind.
    pub written: BTreeMap<String, usize>,
    /// Every object was carried over with its meaning and the result is a valid configuration.
    pub ok: bool,
}

/// Migrates the manifests `texts`, given as (file name, contents) pairs.
pub fn migrate(texts: &[(String, String)]) -> Migration {
    let mut m = Migration::default();
    let mut objects: Vec<Value> = Vec::new();
    let mut namespaces = BTreeSet::new();
    let mut unreadable = false;
    for (file, text) in texts {
        let docs = match parse_documents(file, text) {
            Ok(d) => d,
            Err(e) => {
                m.lines.push(format!("error: {e}"));
                unreadable = true;
                continue;
            }
        };
        for (line, doc) in docs {
            let at = format!("{file}:{line}");
            for value in expand_lists(doc) {
                if let Some(object) = carry_over(&at, value, &mut m.lines) {
                    if let Some(ns) = object
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                    {
                        namespaces.insert(ns.to_string());
                    }
                    let kind = object["kind"].as_str().unwrap_or_default().to_string();
                    *m.written.entry(kind).or_default() += 1;
                    objects.push(object);
                }
            }
        }
    }
    namespaces.remove(DEFAULT_NAMESPACE);
    if !namespaces.is_empty() {
        let list: Vec<&str> = namespaces.iter().map(String::as_str).collect();
        m.lines.push(format!(
            "note: objects keep their namespace ({}); ferrolb's controller and speakers read \
             configuration from their own namespace (--namespace, default {DEFAULT_NAMESPACE}): \
             run them there, use the controller's --all-namespaces-config, or change \
             metadata.namespace in the output",
            list.join(", ")
        ));
    }
    let validated = validate(texts, unreadable, &mut m.lines);
    m.yaml = match serde_saphyr::to_string_multiple(&objects) {
        Ok(yaml) => yaml,
        Err(e) => {
            m.lines.push(format!(
                "error: the output could not be written as YAML: {e}"
            ));
            String::new()
        }
    };
    let errors = m.lines.iter().any(|l| l.starts_with("error: "));
    m.ok = validated && !errors;
    let summary: Vec<String> = m.written.iter().map(|(k, n)| format!("{n} {k}")).collect();
    m.lines.push(format!(
        "migrated: {}",
        if summary.is_empty() {
            "nothing".to_string()
        } else {
            summary.join(", ")
        }
    ));
    m
}

/// The items of a `v1` `…List`, or the object itself.
fn expand_lists(doc: Value) -> Vec<Value> {
    let is_list = doc.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && doc
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"));
    match doc {
        Value::Object(mut map) if is_list => match map.remove("items") {
            Some(Value::Array(items)) => items.into_iter().flat_map(expand_lists).collect(),
            _ => Vec::new(),
        },
        other => vec![other],
    }
}

/// The object to write for `value` found at `at`, or `None` (with the reason in `lines`).
fn carry_over(at: &str, value: Value, lines: &mut Vec<String>) -> Option<Value> {
    let Value::Object(map) = value else {
        lines.push(format!("skipped: {at}: not a Kubernetes object"));
        return None;
    };
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = object_name(kind, map.get("metadata"));
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    if group == ferrolb_api::GROUP {
        return Some(Value::Object(map));
    }
    if group != ferrolb_api::METALLB_GROUP {
        lines.push(format!(
            "skipped: {at}: {api_version} {name}: not MetalLB configuration, so left out (it \
             stays in the cluster as it is)"
        ));
        return None;
    }
    if !KINDS.contains(&kind) {
        lines.push(format!(
            "skipped: {at}: {api_version} {name}: MetalLB's own status, not configuration; \
             ferrolb's speakers write their own"
        ));
        return None;
    }
    if !ACCEPTED_API_VERSIONS.contains(&api_version) {
        lines.push(format!(
            "error: {at}: {name}: apiVersion {api_version:?} is not one ferrolb reads; accepted: {}",
            ACCEPTED_API_VERSIONS.join(", ")
        ));
        return None;
    }
    let spec = map
        .get("spec")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let translation = metallb::translate(kind, api_version, &spec);
    for (field, message) in &translation.notes {
        lines.push(format!("note: {at}: {name}: {field}: {message}"));
    }
    let mut out = Map::new();
    out.insert(
        "apiVersion".to_string(),
        Value::String(ferrolb_api::API_VERSION.to_string()),
    );
    out.insert("kind".to_string(), Value::String(kind.to_string()));
    out.insert(
        "metadata".to_string(),
        clean_metadata(map.get("metadata").cloned()),
    );
    out.insert("spec".to_string(), translation.spec);
    Some(Value::Object(out))
}

fn clean_metadata(metadata: Option<Value>) -> Value {
    let Some(Value::Object(mut m)) = metadata else {
        return metadata.unwrap_or(Value::Null);
    };
    for key in SERVER_SET {
        m.remove(key);
    }
    if let Some(Value::Object(annotations)) = m.get_mut("annotations") {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            m.remove("annotations");
        }
    }
    Value::Object(m)
}

/// Validates the input as `validate` does (the output means the same), adding its errors and
/// warnings to `lines`. Returns whether the configuration is valid.
fn validate(texts: &[(String, String)], unreadable: bool, lines: &mut Vec<String>) -> bool {
    if unreadable {
        return false;
    }
    let mut manifests = Manifests::default();
    for (file, text) in texts {
        manifests.add(file, text);
    }
    lines.extend(manifests.errors.iter().map(|e| format!("error: {e}")));
    if !manifests.errors.is_empty() {
        lines.push(
            "note: configuration checks (overlaps, references, …) run once every document reads \
             cleanly"
                .to_string(),
        );
        return false;
    }
    let built = Config::build_report(&manifests.inputs);
    lines.extend(built.errors.iter().map(|e| format!("error: {e}")));
    lines.extend(built.warnings.iter().map(|w| format!("warning: {w}")));
    built.config.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Migration {
        migrate(&[("in.yaml".to_string(), text.to_string())])
    }

    const PEER: &str = "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata:\n  name: r\n  \
                        namespace: metallb-system\n  uid: abc-123\n  resourceVersion: '7'\n  \
                        annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{}'\n    \
                        team: net\nspec: {myASN: 64512, peerASN: 64500, peerAddress: 10.0.0.1}\n\
                        status: {}\n";

    #[test]
    fn metallb_objects_become_ferrolb_objects_with_their_meaning() {
        let m = run(&format!(
            "{PEER}---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: \
             lan, namespace: metallb-system}}\nspec: {{addresses: [10.0.0.0/24]}}\n"
        ));
        assert!(m.ok, "{:#?}", m.lines);
        let docs: Vec<Value> = serde_saphyr::from_multiple(&m.yaml).expect("output is YAML");
        assert_eq!(
            docs[0],
            serde_json::json!({
                "apiVersion": "ferrolb.io/v1beta1",
                "kind": "BGPPeer",
                "metadata": {"name": "r", "namespace": "metallb-system",
                             "annotations": {"team": "net"}},
                "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "10.0.0.1"}
            })
        );
        assert_eq!(docs[1]["apiVersion"], "ferrolb.io/v1beta1");
        assert_eq!(
            m.written,
            BTreeMap::from([("BGPPeer".into(), 1), ("IPAddressPool".into(), 1)])
        );
        assert!(
            m.lines
                .iter()
                .any(|l| l.starts_with("note: objects keep their namespace (metallb-system)"))
        );
        assert_eq!(
            m.lines.last().map(String::as_str),
            Some("migrated: 1 BGPPeer, 1 IPAddressPool")
        );
    }

    #[test]
    fn other_objects_are_left_out_and_listed() {
        let m = run(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: metallb-system}\n---\n\
             apiVersion: metallb.io/v1beta1\nkind: ServiceL2Status\nmetadata: {name: x}\n",
        );
        assert_eq!(m.yaml, "");
        assert_eq!(
            &m.lines[..2],
            &[
                "skipped: in.yaml:1: v1 Secret metallb-system/s: not MetalLB configuration, so \
                 left out (it stays in the cluster as it is)",
                "skipped: in.yaml:5: metallb.io/v1beta1 ServiceL2Status x: MetalLB's own status, \
                 not configuration; ferrolb's speakers write their own",
            ]
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_an_error_and_kept_for_editing() {
        let m = run(&PEER.replace(
            "peerAddress: 10.0.0.1}",
            "peerAddress: 10.0.0.1, interface: eth0}",
        ));
        assert!(!m.ok);
        assert!(
            m.lines.iter().any(|l| l.contains(
                "BGPPeer metallb-system/r: spec.interface: is set together with peerAddress"
            )),
            "{:#?}",
            m.lines
        );
        assert!(m.yaml.contains("interface: eth0"), "{}", m.yaml);
    }

    /// MetalLB's unnumbered peers (`interface`) move over as written.
    #[test]
    fn unnumbered_peers_are_carried_over() {
        let m = run(&PEER.replace("peerAddress: 10.0.0.1}", "interface: eth1}"));
        assert!(m.ok, "{:#?}", m.lines);
        assert!(m.yaml.contains("interface: eth1"), "{}", m.yaml);
    }
}
