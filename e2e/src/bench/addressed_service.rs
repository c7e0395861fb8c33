//! What the controller bench reads of a Service: its name, its resourceVersion (for the
//! watch) and whether its status holds an address. The bench's client shares the process and
//! the two cores with the API server, and decoding each Service whole (managed fields, spec)
//! on every watch event was a sixth of the machine's time in the 50,000-Service burst; this
//! decodes those three fields and skips the rest without building it.

use kube::api::ObjectMeta;
use kube::core::NamespaceResourceScope;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;

/// A Service as the bench reads it.
#[derive(Clone, Debug, Deserialize)]
pub struct AddressedService {
    /// Name, namespace and resourceVersion only.
    #[serde(deserialize_with = "thin_meta")]
    pub metadata: ObjectMeta,
    /// `status.loadBalancer.ingress` is not empty.
    #[serde(rename = "status", default, deserialize_with = "has_address")]
    pub has_address: bool,
}

fn thin_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Thin {
        name: Option<String>,
        namespace: Option<String>,
        resource_version: Option<String>,
    }
    let t = Thin::deserialize(d)?;
    Ok(ObjectMeta {
        name: t.name,
        namespace: t.namespace,
        resource_version: t.resource_version,
        ..ObjectMeta::default()
    })
}

fn has_address<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Status {
        load_balancer: Option<LoadBalancer>,
    }
    #[derive(Deserialize)]
    struct LoadBalancer {
        ingress: Option<Vec<IgnoredAny>>,
    }
    let status = Option::<Status>::deserialize(d)?;
    Ok(status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .is_some_and(|i| !i.is_empty()))
}

impl kube::Resource for AddressedService {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Service".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "services".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_name_version_and_whether_an_address_is_set() {
        let with: AddressedService = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a", "namespace": "default", "resourceVersion": "7",
                         "managedFields": [{"manager": "x", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.200.0.1"}]}}
        }))
        .expect("a Service decodes");
        assert_eq!(with.metadata.name.as_deref(), Some("a"));
        assert_eq!(with.metadata.resource_version.as_deref(), Some("7"));
        assert!(with.has_address);
        for status in [
            serde_json::json!(null),
            serde_json::json!({}),
            serde_json::json!({"loadBalancer": {}}),
            serde_json::json!({"loadBalancer": {"ingress": []}}),
        ] {
            let without: AddressedService = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "b"}, "status": status
            }))
            .expect("a Service decodes");
            assert!(!without.has_address, "{status}");
        }
        let no_status: AddressedService =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "c"}}))
                .expect("a Service without status decodes");
        assert!(!no_status.has_address);
    }
}
