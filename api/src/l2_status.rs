//! `ServiceL2Status`: which node announces a Service in layer 2 mode, and on which interfaces.
//! Written by the speakers (each keeps exactly its own node's objects), read by operators
//! (`kubectl get servicel2statuses -n ferrolb-system`). Same kind and status fields as
//! MetalLB's.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label naming the node whose speaker wrote the object.
pub const NODE_LABEL: &str = "ferrolb.io/node";
/// Label naming the Service's name.
pub const SERVICE_NAME_LABEL: &str = "ferrolb.io/service-name";
/// Label naming the Service's namespace.
pub const SERVICE_NAMESPACE_LABEL: &str = "ferrolb.io/service-namespace";

/// No desired state: the object only reports.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "ServiceL2Status",
    namespaced,
    status = "ServiceL2StatusStatus",
    derive = "PartialEq",
    derive = "Default",
    category = "ferrolb",
    doc = "ServiceL2Status reports which node announces a Service with ARP/NDP, and on which interfaces. Written by the speaker of that node.",
    printcolumn(name = "Allocated Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    )
)]
pub struct ServiceL2StatusSpec {}

/// What a speaker reports for one Service it announces in layer 2 mode.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceL2StatusStatus {
    /// The node that answers ARP/NDP for the Service's addresses, so receives its traffic.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// The Service's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_name: String,
    /// The Service's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_namespace: String,
    /// The interfaces the addresses are announced on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceInfo>,
}

/// One interface of [`ServiceL2StatusStatus::interfaces`].
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub struct InterfaceInfo {
    /// The interface's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn status_has_metallb_field_names_and_printer_columns() {
        let s = ServiceL2StatusStatus {
            node: "node1".into(),
            service_name: "web".into(),
            service_namespace: "default".into(),
            interfaces: vec![InterfaceInfo {
                name: "eth0".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&s).expect("json"),
            serde_json::json!({
                "node": "node1",
                "serviceName": "web",
                "serviceNamespace": "default",
                "interfaces": [{"name": "eth0"}]
            })
        );
        let crd = ServiceL2Status::crd();
        let v = &crd.spec.versions[0];
        let cols: Vec<_> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            cols,
            ["Allocated Node", "Service Name", "Service Namespace"]
        );
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        assert_eq!(crd.spec.names.plural, "servicel2statuses");
    }
}
