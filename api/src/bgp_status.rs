//! `ServiceBGPStatus` and `BGPSessionState`: what each speaker advertises over BGP and the
//! state of its sessions, as Kubernetes objects (MetalLB's kinds and status fields). Written by
//! the speakers, each keeping exactly its own node's objects.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label naming the BGPPeer (its name) of a `BGPSessionState`.
pub const PEER_LABEL: &str = "ferrolb.io/peer";

/// No desired state: the object only reports.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "ServiceBGPStatus",
    namespaced,
    status = "ServiceBGPStatusStatus",
    derive = "PartialEq",
    derive = "Default",
    category = "ferrolb",
    doc = "ServiceBGPStatus reports which BGP peers a node advertises a Service's addresses to. Written by the speaker of that node.",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
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
pub struct ServiceBGPStatusSpec {}

/// What a speaker reports for one Service it advertises over BGP.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBGPStatusStatus {
    /// The advertising node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// The Service's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_name: String,
    /// The Service's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_namespace: String,
    /// The BGPPeers (`namespace/name`) the addresses are advertised to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}

/// No desired state: the object only reports.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BGPSessionState",
    namespaced,
    status = "BGPSessionStateStatus",
    derive = "PartialEq",
    derive = "Default",
    category = "ferrolb",
    doc = "BGPSessionState reports the state of one BGP session (and its BFD session) of a node. Written by the speaker of that node.",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(name = "Peer", type_ = "string", json_path = ".status.peer"),
    printcolumn(name = "VRF", type_ = "string", json_path = ".status.vrf"),
    printcolumn(name = "BGP Status", type_ = "string", json_path = ".status.bgpStatus"),
    printcolumn(name = "BFD Status", type_ = "string", json_path = ".status.bfdStatus")
)]
pub struct BGPSessionStateSpec {}

/// The state of one session.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BGPSessionStateStatus {
    /// The node whose session this is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// The peer's address; for an unnumbered session, the link-local address discovered on
    /// its interface, with the interface as scope (`fe80::1%eth1`), empty while none is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer: String,
    /// The node's interface an unnumbered session runs over (the BGPPeer's `interface`);
    /// empty for sessions to a configured address (ferrolb only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface: String,
    /// The VRF the session is opened in (the BGPPeer's `vrf`); empty for the default VRF.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vrf: String,
    /// The AS number this node presents to the peer: the BGPPeer's `localASN`, or else its
    /// `myASN` (ferrolb only).
    #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
    pub local_asn: Option<u32>,
    /// Why the session cannot be opened as configured, e.g. its VRF does not exist on the
    /// node; empty otherwise (ferrolb only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// RFC 4271 state: Idle, Connect, Active, OpenSent, OpenConfirm or Established.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bgp_status: String,
    /// BFD state (AdminDown, Down, Init, Up), or `N/A` without a BFD profile.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bfd_status: String,
    /// The BFD Echo function runs (profile `echoMode`; ferrolb only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bfd_echo_active: bool,
    /// BFD strict mode: the BGP session waits for BFD Up (profile `strictMode`; ferrolb only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bfd_strict_mode: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    fn columns(
        crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    ) -> Vec<String> {
        crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect()
    }

    #[test]
    fn metallb_field_names_and_printer_columns() {
        let s = BGPSessionStateStatus {
            node: "n1".into(),
            peer: "10.200.0.1".into(),
            vrf: String::new(),
            bgp_status: "Established".into(),
            bfd_status: "N/A".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&s).expect("json"),
            serde_json::json!({"node": "n1", "peer": "10.200.0.1", "bgpStatus": "Established", "bfdStatus": "N/A"})
        );
        let echo = BGPSessionStateStatus {
            bfd_status: "Up".into(),
            bfd_echo_active: true,
            bfd_strict_mode: true,
            ..s.clone()
        };
        assert_eq!(
            serde_json::to_value(&echo).expect("json")["bfdEchoActive"],
            serde_json::json!(true)
        );
        assert_eq!(
            serde_json::to_value(&echo).expect("json")["bfdStrictMode"],
            serde_json::json!(true)
        );
        let s = ServiceBGPStatusStatus {
            node: "n1".into(),
            service_name: "web".into(),
            service_namespace: "default".into(),
            peers: vec!["ferrolb-system/router".into()],
        };
        assert_eq!(
            serde_json::to_value(&s).expect("json"),
            serde_json::json!({"node": "n1", "serviceName": "web", "serviceNamespace": "default", "peers": ["ferrolb-system/router"]})
        );
        assert_eq!(
            columns(&BGPSessionState::crd()),
            ["Node", "Peer", "VRF", "BGP Status", "BFD Status"]
        );
        assert_eq!(
            columns(&ServiceBGPStatus::crd()),
            ["Node", "Service Name", "Service Namespace"]
        );
        assert_eq!(BGPSessionState::crd().spec.names.plural, "bgpsessionstates");
        assert_eq!(
            ServiceBGPStatus::crd().spec.names.plural,
            "servicebgpstatuses"
        );
    }
}
