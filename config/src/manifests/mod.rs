//! Reading multi-document YAML manifests into [`Inputs`].
//!
//! Accepts our `ferrolb.io/v1beta1` kinds and MetalLB's equivalents (`metallb.io/v1beta1`,
//! `metallb.io/v1beta2`; same field names, read with their MetalLB meaning by [`metallb`]), and
//! `List` objects holding them. Objects of other
//! kinds (Services, Secrets, …) are skipped and counted, so a whole deployment directory can be
//! checked. Every problem names the file and either the line (bad YAML) or the document and
//! object (a wrong field).

mod cluster;
pub mod metallb;
pub mod migrate;
mod schema;

pub use cluster::{ClusterObject, group_conflicts, read_cluster_objects};

use crate::Inputs;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

/// `apiVersion`s whose objects we read.
pub const ACCEPTED_API_VERSIONS: [&str; 3] = [
    ferrolb_api::API_VERSION,
    "metallb.io/v1beta1",
    "metallb.io/v1beta2",
];

/// Our kinds, as written in `kind`.
pub const KINDS: [&str; 6] = [
    "IPAddressPool",
    "L2Advertisement",
    "BGPAdvertisement",
    "BGPPeer",
    "BFDProfile",
    "Community",
];

/// A problem reading a manifest file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The text is not valid YAML; nothing of the file was read.
    #[error("{file}:{line}:{column}: invalid YAML: {message}")]
    Yaml {
        /// File name as given.
        file: String,
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// What the parser says.
        message: String,
    },
    /// A document is not a mapping, so it cannot be a Kubernetes object; it was skipped.
    #[error(
        "{file}:{line}: document {document}: not a Kubernetes object (expected a mapping with \
         apiVersion, kind, metadata and spec)"
    )]
    NotAnObject {
        /// File name as given.
        file: String,
        /// Line where the document starts.
        line: u64,
        /// 1-based index of the document among the file's non-empty documents.
        document: usize,
    },
    /// One document could not be read as the object it claims to be; it was skipped.
    #[error("{file}:{line}: document {document} ({object}): {field}: {message}")]
    Document {
        /// File name as given.
        file: String,
        /// Line where the document starts.
        line: u64,
        /// 1-based index of the document among the file's non-empty documents.
        document: usize,
        /// `Kind namespace/name` of the object, as far as known.
        object: String,
        /// Field path, e.g. `spec.myASN`, or `apiVersion`.
        field: String,
        /// What was wrong and what is accepted.
        message: String,
    },
}

/// Objects read from manifests so far.
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    /// Our objects.
    pub inputs: Inputs,
    /// Objects of other kinds that were skipped, counted by `apiVersion`/`kind`.
    pub skipped: BTreeMap<String, usize>,
    /// Problems found; documents with problems are not in `inputs`.
    pub errors: Vec<ManifestError>,
}

impl Manifests {
    /// Reads every document of `text` (the contents of `file`).
    pub fn add(&mut self, file: &str, text: &str) {
        let docs = match parse_documents(file, text) {
            Ok(d) => d,
            Err(e) => {
                self.errors.push(e);
                return;
            }
        };
        for (i, (line, value)) in docs.into_iter().enumerate() {
            let at = DocAt {
                file,
                line,
                document: i + 1,
            };
            self.add_object(&at, value);
        }
    }

    /// Number of skipped objects of other kinds.
    pub fn skipped_count(&self) -> usize {
        self.skipped.values().sum()
    }

    fn add_object(&mut self, at: &DocAt<'_>, value: Value) {
        let Value::Object(map) = &value else {
            self.errors.push(ManifestError::NotAnObject {
                file: at.file.to_string(),
                line: at.line,
                document: at.document,
            });
            return;
        };
        let api_version = map
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kind.ends_with("List")
            && api_version == "v1"
            && let Some(Value::Array(items)) = map.get("items")
        {
            for item in items.clone() {
                self.add_object(at, item);
            }
            return;
        }
        let group = api_version.split_once('/').map_or("", |(g, _)| g);
        let ours = group == ferrolb_api::GROUP || group == ferrolb_api::METALLB_GROUP;
        if ours && !KINDS.contains(&kind) {
            // Every kind of our group is ours, so an unknown one is a mistake; MetalLB has kinds
            // we do not read (ServiceL2Status, …), so there only near-misses of ours are.
            let near = schema::close_match(kind, &KINDS);
            if group == ferrolb_api::GROUP || near.is_some() {
                let hint = near
                    .map(|k| format!("did you mean {k}? "))
                    .unwrap_or_default();
                self.errors.push(at.error(
                    &object_name(kind, map.get("metadata")),
                    "kind",
                    &format!(
                        "{kind:?} is not a kind ferrolb reads; {hint}accepted: {}",
                        KINDS.join(", ")
                    ),
                ));
                return;
            }
        }
        if !ours || !KINDS.contains(&kind) {
            let label = if api_version.is_empty() && kind.is_empty() {
                "(no apiVersion/kind)".to_string()
            } else {
                format!("{api_version}/{kind}")
            };
            *self.skipped.entry(label).or_default() += 1;
            return;
        }
        let object = object_name(kind, map.get("metadata"));
        if !ACCEPTED_API_VERSIONS.contains(&api_version) {
            self.errors.push(at.error(
                &object,
                "apiVersion",
                &format!(
                    "{api_version:?} is not supported; accepted: {}",
                    ACCEPTED_API_VERSIONS.join(", ")
                ),
            ));
            return;
        }
        // A missing spec is an empty one (MetalLB's spec-less L2Advertisement means "every
        // pool"); kinds with required fields then report those.
        let mut spec = map
            .get("spec")
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        let mut problems = Vec::new();
        if group == ferrolb_api::METALLB_GROUP {
            let translation = metallb::translate(kind, api_version, &spec);
            problems.extend(translation.errors.iter().cloned());
            spec = translation.spec;
            // Fields reported above are not also unknown fields.
            if let Value::Object(fields) = &mut spec {
                for (field, _) in &translation.errors {
                    if let Some(name) = field.strip_prefix("spec.") {
                        fields.remove(name);
                    }
                }
            }
        }
        problems.extend(schema::check_spec(kind, &spec));
        problems.extend(check_metadata(map.get("metadata")));
        if !problems.is_empty() {
            for (field, message) in problems {
                self.errors.push(at.error(&object, &field, &message));
            }
            return;
        }
        let inputs = &mut self.inputs;
        let result = match kind {
            "IPAddressPool" => typed(map, spec).map(|(metadata, spec)| {
                inputs.pools.push(ferrolb_api::IPAddressPool {
                    metadata,
                    spec,
                    status: None,
                })
            }),
            "L2Advertisement" => typed(map, spec).map(|(metadata, spec)| {
                inputs
                    .l2_advertisements
                    .push(ferrolb_api::L2Advertisement { metadata, spec })
            }),
            "BGPAdvertisement" => typed(map, spec).map(|(metadata, spec)| {
                inputs
                    .bgp_advertisements
                    .push(ferrolb_api::BGPAdvertisement { metadata, spec })
            }),
            "BGPPeer" => typed(map, spec)
                .map(|(metadata, spec)| inputs.peers.push(ferrolb_api::BGPPeer { metadata, spec })),
            "BFDProfile" => typed(map, spec).map(|(metadata, spec)| {
                inputs
                    .bfd_profiles
                    .push(ferrolb_api::BFDProfile { metadata, spec })
            }),
            "Community" => typed(map, spec).map(|(metadata, spec)| {
                inputs
                    .communities
                    .push(ferrolb_api::Community { metadata, spec })
            }),
            // KINDS was checked above; nothing else reaches here.
            _ => Ok(()),
        };
        if let Err((field, message)) = result {
            self.errors.push(at.error(&object, &field, &message));
        }
    }
}

/// The documents of `text` (the contents of `file`) with the line each starts on.
pub(crate) fn parse_documents(file: &str, text: &str) -> Result<Vec<(u64, Value)>, ManifestError> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        // YAML 1.2: `yes`/`no`/`on`/`off` stay strings, as most people mean them.
        strict_booleans: true,
    };
    match serde_saphyr::from_multiple_with_options::<serde_saphyr::Spanned<Value>>(text, options) {
        Ok(docs) => Ok(docs
            .into_iter()
            .map(|d| (d.referenced.line(), d.value))
            .collect()),
        Err(e) => {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            Err(ManifestError::Yaml {
                file: file.to_string(),
                line,
                column,
                message: strip_location(&e.to_string()),
            })
        }
    }
}

/// Where a document is, for errors.
struct DocAt<'a> {
    file: &'a str,
    line: u64,
    document: usize,
}

impl DocAt<'_> {
    fn error(&self, object: &str, field: &str, message: &str) -> ManifestError {
        ManifestError::Document {
            file: self.file.to_string(),
            line: self.line,
            document: self.document,
            object: object.to_string(),
            field: field.to_string(),
            message: message.to_string(),
        }
    }
}

fn object_name(kind: &str, metadata: Option<&Value>) -> String {
    let get = |k: &str| {
        metadata
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    match (get("namespace"), get("name")) {
        (_, "") => format!("{kind} (no name)"),
        ("", name) => format!("{kind} {name}"),
        (ns, name) => format!("{kind} {ns}/{name}"),
    }
}

/// The metadata fields we use must have the right shape; others are not ours to judge.
fn check_metadata(metadata: Option<&Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(m) = metadata else {
        return vec![(
            "metadata".to_string(),
            "is missing; every object needs metadata.name".to_string(),
        )];
    };
    let Value::Object(m) = m else {
        return vec![(
            "metadata".to_string(),
            "expected a mapping with name and namespace".to_string(),
        )];
    };
    for key in ["name", "namespace"] {
        if let Some(v) = m.get(key).filter(|v| !v.is_string()) {
            out.push((
                format!("metadata.{key}"),
                format!("expected a string, got {v}"),
            ));
        }
    }
    if let Some(labels) = m.get("labels") {
        match labels {
            Value::Object(l) => {
                for (k, v) in l.iter().filter(|(_, v)| !v.is_string()) {
                    out.push((
                        format!("metadata.labels.{k}"),
                        format!("expected a string, got {v}; quote it: \"{v}\""),
                    ));
                }
            }
            Value::Null => {}
            other => out.push((
                "metadata.labels".to_string(),
                format!("expected a mapping, got {other}"),
            )),
        }
    }
    out
}

/// The typed metadata and spec of an object that passed the schema check. serde can still
/// reject what the schema does not describe; its message is passed on.
fn typed<S: DeserializeOwned>(
    map: &serde_json::Map<String, Value>,
    spec: Value,
) -> Result<(ObjectMeta, S), (String, String)> {
    let metadata = map.get("metadata").cloned().unwrap_or(Value::Null);
    let metadata: ObjectMeta =
        serde_json::from_value(metadata).map_err(|e| ("metadata".to_string(), e.to_string()))?;
    let spec: S = serde_json::from_value(spec).map_err(|e| ("spec".to_string(), e.to_string()))?;
    Ok((metadata, spec))
}

/// serde-saphyr ends messages with " at line L, column C"; we print the location ourselves.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests;
