//! Configuration objects of MetalLB's group read from the cluster (a watch of `metallb.io`),
//! converted exactly as manifests are, and merged with ferrolb's own.

use super::{DocAt, ManifestError, Manifests};
use crate::{ConfigError, Inputs, Severity};
use serde_json::Value;
use std::collections::BTreeMap;

/// One object as the API server returned it.
#[derive(Clone, Debug)]
pub struct ClusterObject {
    /// Its kind, e.g. `IPAddressPool`.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The whole object (`apiVersion`, `kind`, `metadata`, `spec`).
    pub value: Value,
}

/// Reads `objects` into [`Inputs`]; an object that cannot be read is left out and reported,
/// naming it and the field.
pub fn read_cluster_objects(objects: Vec<ClusterObject>) -> (Inputs, Vec<ConfigError>) {
    let mut inputs = Inputs::default();
    let mut errors = Vec::new();
    for obj in objects {
        let mut one = Manifests::default();
        let at = DocAt {
            file: "cluster",
            line: 0,
            document: 1,
        };
        one.add_object(&at, obj.value);
        for e in one.errors {
            let (field, message) = match e {
                ManifestError::Document { field, message, .. } => (field, message),
                other => (String::new(), other.to_string()),
            };
            errors.push(ConfigError {
                kind: obj.kind.clone(),
                namespace: obj.namespace.clone(),
                name: obj.name.clone(),
                field,
                message,
                severity: Severity::Error,
            });
        }
        inputs.extend(one.inputs);
    }
    (inputs, errors)
}

impl Inputs {
    /// Adds every object of `other`.
    pub fn extend(&mut self, other: Inputs) {
        self.pools.extend(other.pools);
        self.l2_advertisements.extend(other.l2_advertisements);
        self.bgp_advertisements.extend(other.bgp_advertisements);
        self.peers.extend(other.peers);
        self.bfd_profiles.extend(other.bfd_profiles);
        self.communities.extend(other.communities);
    }

    /// `(kind, name) → namespace` of every object: names are unique per kind across the whole
    /// configuration (advertisements and peers refer to pools, profiles and communities by name).
    fn names(&self) -> BTreeMap<(&'static str, String), String> {
        fn add<'a>(
            out: &mut BTreeMap<(&'static str, String), String>,
            kind: &'static str,
            metas: impl Iterator<Item = &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
        ) {
            for m in metas {
                out.insert(
                    (kind, m.name.clone().unwrap_or_default()),
                    m.namespace.clone().unwrap_or_default(),
                );
            }
        }
        let mut out = BTreeMap::new();
        add(
            &mut out,
            "IPAddressPool",
            self.pools.iter().map(|o| &o.metadata),
        );
        add(
            &mut out,
            "L2Advertisement",
            self.l2_advertisements.iter().map(|o| &o.metadata),
        );
        add(
            &mut out,
            "BGPAdvertisement",
            self.bgp_advertisements.iter().map(|o| &o.metadata),
        );
        add(&mut out, "BGPPeer", self.peers.iter().map(|o| &o.metadata));
        add(
            &mut out,
            "BFDProfile",
            self.bfd_profiles.iter().map(|o| &o.metadata),
        );
        add(
            &mut out,
            "Community",
            self.communities.iter().map(|o| &o.metadata),
        );
        out
    }
}

/// Objects of the same kind and name in both groups: each is an error naming both, because
/// references by name (an advertisement's pools, a peer's BFD profile) would be ambiguous.
pub fn group_conflicts(ferrolb: &Inputs, metallb: &Inputs) -> Vec<ConfigError> {
    let ours = ferrolb.names();
    metallb
        .names()
        .into_iter()
        .filter_map(|((kind, name), metallb_ns)| {
            let ferrolb_ns = ours.get(&(kind, name.clone()))?;
            Some(ConfigError {
                kind: kind.to_string(),
                namespace: metallb_ns.clone(),
                name: name.clone(),
                field: "metadata.name".into(),
                message: format!(
                    "{kind} {name:?} exists both as {}/{} in {ferrolb_ns} and as \
                     {}/{} in {metallb_ns}; names must be unique across the two groups: delete \
                     or rename one",
                    ferrolb_api::GROUP,
                    kind,
                    ferrolb_api::METALLB_GROUP,
                    kind,
                ),
                severity: Severity::Error,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool(group_version: &str, ns: &str, name: &str, addresses: &[&str]) -> ClusterObject {
        ClusterObject {
            kind: "IPAddressPool".into(),
            namespace: ns.into(),
            name: name.into(),
            value: json!({
                "apiVersion": group_version,
                "kind": "IPAddressPool",
                "metadata": {"namespace": ns, "name": name},
                "spec": {"addresses": addresses},
            }),
        }
    }

    #[test]
    fn metallb_objects_read_from_the_cluster_become_inputs() {
        let (inputs, errors) = read_cluster_objects(vec![pool(
            "metallb.io/v1beta1",
            "metallb-system",
            "lan",
            &["10.200.9.0/24"],
        )]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(inputs.pools.len(), 1);
        assert_eq!(inputs.pools[0].spec.addresses, vec!["10.200.9.0/24"]);
    }

    #[test]
    fn an_unreadable_object_is_reported_by_name_and_field_and_left_out() {
        let mut bad = pool("metallb.io/v1beta1", "metallb-system", "bad", &[]);
        bad.value["spec"]["autoAssign"] = json!("yes please");
        let good = pool(
            "metallb.io/v1beta1",
            "metallb-system",
            "good",
            &["10.200.9.0/24"],
        );
        let (inputs, errors) = read_cluster_objects(vec![bad, good]);
        assert_eq!(inputs.pools.len(), 1);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert_eq!((e.kind.as_str(), e.name.as_str()), ("IPAddressPool", "bad"));
        assert!(e.field.contains("autoAssign"), "{e}");
    }

    #[test]
    fn the_same_name_in_both_groups_is_an_error_naming_both() {
        let (ours, _) = read_cluster_objects(vec![pool(
            ferrolb_api::API_VERSION,
            "ferrolb-system",
            "lan",
            &["10.200.9.0/24"],
        )]);
        let (theirs, _) = read_cluster_objects(vec![
            pool(
                "metallb.io/v1beta1",
                "metallb-system",
                "lan",
                &["10.200.8.0/24"],
            ),
            pool(
                "metallb.io/v1beta1",
                "metallb-system",
                "other",
                &["10.200.7.0/24"],
            ),
        ]);
        let errors = group_conflicts(&ours, &theirs);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let text = errors[0].to_string();
        for part in [
            "ferrolb.io/IPAddressPool",
            "ferrolb-system",
            "metallb.io/IPAddressPool",
            "metallb-system",
            "\"lan\"",
        ] {
            assert!(text.contains(part), "{part} missing in {text}");
        }
    }
}
