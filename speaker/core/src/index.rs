//! The cluster index: what the speaker watches, reduced to what announcing needs.
//!
//! The watch loops (not here) translate each Kubernetes object with the `*_from_k8s` functions
//! and upsert or remove the result; [`crate::desired::desired_announcements`] then reads the
//! whole index. Keeping only reduced forms means the decisions can be tested with small
//! hand-written values and never depend on fields we do not look at.

use crate::layer2::carrier::LinkReport;
use crate::pool_lookup::PoolLookup;
use ferrolb_api::annotations::{ALLOW_SHARED_IP, lookup};
use ferrolb_api::service::{ClassPolicy, ServiceKey, TrafficPolicy, handles, ingress_ips};
use ferrolb_config::{Config, Pool};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::{EndpointConditions, EndpointSlice};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Label by which an EndpointSlice names the Service it belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service as the speaker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// `namespace/name`.
    pub key: ServiceKey,
    /// Addresses from `status.loadBalancer.ingress[].ip`, sorted and deduplicated.
    pub ips: Vec<IpAddr>,
    /// `spec.externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// Whether ferrolb announces this Service: `type: LoadBalancer` and a load balancer class
    /// that is ours (or unset while ferrolb is the default implementation).
    pub ours: bool,
    /// The Service's labels (advertisement `serviceSelectors` match these).
    pub labels: BTreeMap<String, String>,
    /// Whether the Service carries the `allow-shared-ip` annotation (under any accepted
    /// prefix), whatever its value.
    pub allow_shared_ip: bool,
}

/// The endpoints of one EndpointSlice that matter: whether any can serve, and on which nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSliceInfo {
    /// Namespace of the slice (always the Service's).
    pub namespace: String,
    /// Name of the slice (a Service usually has several).
    pub name: String,
    /// Name of the Service the slice belongs to (its `kubernetes.io/service-name` label).
    pub service: String,
    /// Names of the nodes hosting at least one endpoint of the slice that can serve.
    pub serving_nodes: BTreeSet<String>,
    /// Whether any endpoint of the slice can serve, with or without a node name.
    pub any_serving: bool,
}

impl EndpointSliceInfo {
    /// Key of the Service the slice belongs to.
    pub fn service_key(&self) -> ServiceKey {
        ServiceKey::new(&self.namespace, &self.service)
    }
}

/// A Node as the speaker sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Node labels (advertisement and peer node selectors match these).
    pub labels: BTreeMap<String, String>,
    /// Whether the `Ready` condition is `True`.
    pub ready: bool,
    /// Whether the `NetworkUnavailable` condition is `True` (the node's network is not set up,
    /// e.g. its CNI has not configured routes yet).
    pub network_unavailable: bool,
}

/// Everything the speaker knows about the cluster, in reduced form.
#[derive(Clone, Debug, Default)]
pub struct ClusterIndex {
    config: Config,
    services: BTreeMap<ServiceKey, ServiceInfo>,
    /// Slices by namespace and slice name: slices arrive and leave one at a time, and a deleted
    /// slice must take exactly its own endpoints with it.
    slices: BTreeMap<String, BTreeMap<String, EndpointSliceInfo>>,
    /// The names of each Service's slices, by namespace and Service: a pass asks for the
    /// endpoints of every Service, and scanning a namespace's slices for each would cost the
    /// square of the Services (a pass over 4,000 took seconds).
    slices_by_service: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    nodes: BTreeMap<String, NodeInfo>,
    members_alive: Option<BTreeSet<String>>,
    /// Each node's announcing interfaces with their carrier, as its speaker reported them
    /// through the membership; a node without an entry counts as having carrier.
    links: BTreeMap<String, Vec<LinkReport>>,
    ignore_exclude_lb: bool,
    /// The pool of an address in `config`, by binary search.
    pools: PoolLookup,
}

impl ClusterIndex {
    /// An empty index with `config`; membership disabled.
    pub fn new(config: Config) -> Self {
        Self {
            pools: PoolLookup::new(&config),
            config,
            ..Self::default()
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the configuration (only ever with a valid one: the caller keeps the last valid
    /// configuration when a new one is rejected).
    pub fn set_config(&mut self, config: Config) {
        self.pools = PoolLookup::new(&config);
        self.config = config;
    }

    /// The pool holding `ip`, if any (validated pools do not overlap).
    pub fn pool_for(&self, ip: IpAddr) -> Option<&Pool> {
        self.pools.pool(&self.config, ip)
    }

    /// Adds or replaces a Service.
    pub fn upsert_service(&mut self, service: ServiceInfo) {
        self.services.insert(service.key.clone(), service);
    }

    /// Forgets a Service; returns what the index held for it.
    pub fn remove_service(&mut self, key: &ServiceKey) -> Option<ServiceInfo> {
        self.services.remove(key)
    }

    /// Every Service, sorted by key.
    pub fn services(&self) -> impl Iterator<Item = &ServiceInfo> {
        self.services.values()
    }

    /// One Service.
    pub fn service(&self, key: &ServiceKey) -> Option<&ServiceInfo> {
        self.services.get(key)
    }

    /// Adds or replaces an EndpointSlice.
    pub fn upsert_endpoint_slice(&mut self, slice: EndpointSliceInfo) {
        self.remove_endpoint_slice(&slice.namespace, &slice.name);
        self.slices_by_service
            .entry(slice.namespace.clone())
            .or_default()
            .entry(slice.service.clone())
            .or_default()
            .insert(slice.name.clone());
        self.slices
            .entry(slice.namespace.clone())
            .or_default()
            .insert(slice.name.clone(), slice);
    }

    /// One EndpointSlice.
    pub fn endpoint_slice(&self, namespace: &str, name: &str) -> Option<&EndpointSliceInfo> {
        self.slices.get(namespace)?.get(name)
    }

    /// Forgets an EndpointSlice.
    pub fn remove_endpoint_slice(&mut self, namespace: &str, name: &str) {
        let Some(in_namespace) = self.slices.get_mut(namespace) else {
            return;
        };
        let Some(old) = in_namespace.remove(name) else {
            return;
        };
        if in_namespace.is_empty() {
            self.slices.remove(namespace);
        }
        if let Some(services) = self.slices_by_service.get_mut(namespace) {
            if let Some(names) = services.get_mut(&old.service) {
                names.remove(name);
                if names.is_empty() {
                    services.remove(&old.service);
                }
            }
            if services.is_empty() {
                self.slices_by_service.remove(namespace);
            }
        }
    }

    /// Whether the Service `key` has an endpoint that can serve anywhere, in any of its slices.
    pub fn has_serving_endpoint(&self, key: &ServiceKey) -> bool {
        self.slices_of(key).any(|s| s.any_serving)
    }

    /// Whether `node` hosts an endpoint of the Service `key` that can serve, in any of its
    /// slices.
    pub fn has_serving_endpoint_on(&self, key: &ServiceKey, node: &str) -> bool {
        self.slices_of(key).any(|s| s.serving_nodes.contains(node))
    }

    /// Nodes hosting an endpoint of the Service `key` that can serve, sorted.
    pub fn serving_endpoint_nodes<'a>(&'a self, key: &ServiceKey) -> BTreeSet<&'a str> {
        self.slices_of(key)
            .flat_map(|s| s.serving_nodes.iter().map(String::as_str))
            .collect()
    }

    fn slices_of<'a>(
        &'a self,
        key: &ServiceKey,
    ) -> impl Iterator<Item = &'a EndpointSliceInfo> + use<'a> {
        let in_namespace = self.slices.get(&key.namespace);
        self.slices_by_service
            .get(&key.namespace)
            .and_then(|services| services.get(&key.name))
            .into_iter()
            .flatten()
            .filter_map(move |name| in_namespace?.get(name))
    }

    /// Adds or replaces a Node.
    pub fn upsert_node(&mut self, node: NodeInfo) {
        self.nodes.insert(node.name.clone(), node);
    }

    /// Replaces every Node (a later one of the same name replaces an earlier one).
    pub fn replace_nodes(&mut self, nodes: impl IntoIterator<Item = NodeInfo>) {
        self.nodes.clear();
        for node in nodes {
            self.upsert_node(node);
        }
    }

    /// Every Node, sorted by name.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.values()
    }

    /// One Node.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    /// Sets the nodes whose speakers the membership considers alive, or `None` when membership
    /// is disabled (liveness is then the Node `Ready` condition alone).
    pub fn set_members_alive(&mut self, members: Option<BTreeSet<String>>) {
        self.members_alive = members;
    }

    /// Sets the nodes' reports of their announcing interfaces ([`crate::layer2::carrier`]).
    pub fn set_node_links(&mut self, links: BTreeMap<String, Vec<LinkReport>>) {
        self.links = links;
    }

    /// `node`'s report of its announcing interfaces, if it sent one.
    pub fn node_links(&self, node: &str) -> Option<&[LinkReport]> {
        self.links.get(node).map(Vec::as_slice)
    }

    /// Whether nodes labelled `node.kubernetes.io/exclude-from-external-load-balancers` may
    /// announce anyway (the speakers' `--ignore-exclude-lb`, the same on every speaker).
    pub fn set_ignore_exclude_lb(&mut self, ignore: bool) {
        self.ignore_exclude_lb = ignore;
    }

    /// See [`ClusterIndex::set_ignore_exclude_lb`].
    pub fn ignore_exclude_lb(&self) -> bool {
        self.ignore_exclude_lb
    }

    /// Whether the membership considers `node`'s speaker alive; always true when membership is
    /// disabled.
    pub fn is_member_alive(&self, node: &str) -> bool {
        self.members_alive
            .as_ref()
            .is_none_or(|alive| alive.contains(node))
    }
}

/// Reduces a Service; `class_policy` says which load balancer classes ferrolb handles. Returns
/// `None` for an object without namespace or name (never the case for objects from a watch).
///
/// Ingress entries without a parseable `ip` (hostname-only entries written by another
/// implementation) are skipped: there is nothing to announce for them.
pub fn service_from_k8s(svc: &Service, class_policy: ClassPolicy) -> Option<ServiceInfo> {
    let namespace = svc.metadata.namespace.clone()?;
    let name = svc.metadata.name.clone()?;
    let mut ips = ingress_ips(svc);
    ips.sort();
    ips.dedup();
    let allow_shared_ip = svc
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| lookup(a, ALLOW_SHARED_IP).is_some());
    Some(ServiceInfo {
        key: ServiceKey::new(namespace, name),
        ips,
        traffic_policy: TrafficPolicy::of(svc),
        ours: handles(svc, class_policy),
        labels: svc.metadata.labels.clone().unwrap_or_default(),
        allow_shared_ip,
    })
}

/// Reduces an EndpointSlice. Returns `None` for a slice without namespace, name or
/// `kubernetes.io/service-name` label (slices not managed for a Service).
///
/// An endpoint with at least one address can serve when it is ready or, while terminating,
/// still serving (MetalLB internal/k8s/epslices EndpointCanServe): `conditions.ready` absent
/// (and so `conditions` absent) counts as ready, as the Kubernetes API says it "should be
/// interpreted"; a terminating endpoint is reported `ready: false` but `serving: true` while
/// it still answers, and keeps its address announced through a graceful shutdown. Endpoints
/// without `nodeName` count for [`EndpointSliceInfo::any_serving`] only: they cannot be placed
/// on a node.
pub fn endpoint_slice_from_k8s(slice: &EndpointSlice) -> Option<EndpointSliceInfo> {
    let namespace = slice.metadata.namespace.clone()?;
    let name = slice.metadata.name.clone()?;
    let service = slice
        .metadata
        .labels
        .as_ref()?
        .get(SERVICE_NAME_LABEL)?
        .clone();
    let serving: Vec<_> = slice
        .endpoints
        .iter()
        .filter(|ep| !ep.addresses.is_empty() && endpoint_can_serve(ep.conditions.as_ref()))
        .collect();
    Some(EndpointSliceInfo {
        namespace,
        name,
        service,
        serving_nodes: serving
            .iter()
            .filter_map(|ep| ep.node_name.clone())
            .collect(),
        any_serving: !serving.is_empty(),
    })
}

/// Ready (or readiness unknown), or serving while terminating.
fn endpoint_can_serve(conditions: Option<&EndpointConditions>) -> bool {
    conditions.is_none_or(|c| c.ready.unwrap_or(true) || c.serving == Some(true))
}

/// Reduces a Node. Ready means a `Ready` condition with status `True`; a Node without one (just
/// registered, or its kubelet never reported) is not ready. Network unavailable means a
/// `NetworkUnavailable` condition with status `True` (MetalLB internal/k8s/nodes
/// IsNetworkUnavailable); absent or any other status is not. Returns `None` without a name.
pub fn node_from_k8s(node: &Node) -> Option<NodeInfo> {
    let name = node.metadata.name.clone()?;
    let condition_true = |type_: &str| {
        node.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == type_ && c.status == "True")
    };
    Some(NodeInfo {
        name,
        labels: node.metadata.labels.clone().unwrap_or_default(),
        ready: condition_true("Ready"),
        network_unavailable: condition_true("NetworkUnavailable"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, NodeCondition, NodeStatus, ServiceSpec,
        ServiceStatus,
    };
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const CLASS: &str = "ferrolb.io/ferrolb";

    fn meta(ns: Option<&str>, name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: ns.map(String::from),
            name: Some(name.into()),
            ..ObjectMeta::default()
        }
    }

    fn lb_service(
        class: Option<&str>,
        etp: Option<&str>,
        ingress: &[(&str, Option<&str>)],
    ) -> Service {
        Service {
            metadata: meta(Some("web"), "shop"),
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                load_balancer_class: class.map(String::from),
                external_traffic_policy: etp.map(String::from),
                ..ServiceSpec::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        ingress
                            .iter()
                            .map(|(ip, host)| LoadBalancerIngress {
                                ip: (!ip.is_empty()).then(|| ip.to_string()),
                                hostname: host.map(String::from),
                                ..LoadBalancerIngress::default()
                            })
                            .collect(),
                    ),
                }),
                ..ServiceStatus::default()
            }),
        }
    }

    #[test]
    fn service_ips_policy_and_class() {
        let svc = lb_service(
            None,
            Some("Local"),
            &[
                ("fd00:200::5", None),
                ("10.200.0.5", None),
                ("", Some("lb.example")),
                ("10.200.0.5", None),
            ],
        );
        let info = service_from_k8s(&svc, ClassPolicy::OursOrUnset).expect("named");
        assert_eq!(info.key.to_string(), "web/shop");
        assert_eq!(
            info.ips,
            vec![
                "10.200.0.5".parse::<IpAddr>().unwrap(),
                "fd00:200::5".parse().unwrap()
            ]
        );
        assert_eq!(info.traffic_policy, TrafficPolicy::Local);
        assert!(info.ours, "unset class while default");
        assert!(
            !service_from_k8s(&svc, ClassPolicy::OursOnly)
                .expect("named")
                .ours
        );

        let ours = lb_service(Some(CLASS), None, &[]);
        let info = service_from_k8s(&ours, ClassPolicy::OursOnly).expect("named");
        assert!(info.ours);
        assert_eq!(info.traffic_policy, TrafficPolicy::Cluster);
        assert!(info.ips.is_empty());

        let theirs = lb_service(Some("other.io/lb"), None, &[]);
        assert!(
            !service_from_k8s(&theirs, ClassPolicy::OursOrUnset)
                .expect("named")
                .ours
        );
    }

    #[test]
    fn non_load_balancer_service_is_not_ours() {
        let mut svc = lb_service(None, None, &[("10.200.0.5", None)]);
        if let Some(spec) = svc.spec.as_mut() {
            spec.type_ = Some("ClusterIP".into());
        }
        assert!(
            !service_from_k8s(&svc, ClassPolicy::OursOrUnset)
                .expect("named")
                .ours
        );
        svc.spec = None;
        assert!(
            !service_from_k8s(&svc, ClassPolicy::OursOrUnset)
                .expect("named")
                .ours
        );
        svc.metadata.namespace = None;
        assert_eq!(service_from_k8s(&svc, ClassPolicy::OursOrUnset), None);
    }

    fn endpoint(node: Option<&str>, ready: Option<Option<bool>>) -> Endpoint {
        Endpoint {
            addresses: vec!["10.1.0.1".into()],
            conditions: ready.map(|r| EndpointConditions {
                ready: r,
                ..EndpointConditions::default()
            }),
            node_name: node.map(String::from),
            ..Endpoint::default()
        }
    }

    fn slice(name: &str, service: Option<&str>, endpoints: Vec<Endpoint>) -> EndpointSlice {
        let mut m = meta(Some("web"), name);
        m.labels =
            service.map(|s| BTreeMap::from([(SERVICE_NAME_LABEL.to_string(), s.to_string())]));
        EndpointSlice {
            metadata: m,
            address_type: "IPv4".into(),
            endpoints,
            ports: None,
        }
    }

    /// An endpoint with `serving` and `terminating` set but `ready` false.
    fn terminating(node: Option<&str>, serving: Option<bool>) -> Endpoint {
        Endpoint {
            conditions: Some(EndpointConditions {
                ready: Some(false),
                serving,
                terminating: Some(true),
            }),
            ..endpoint(node, None)
        }
    }

    /// Readiness as Kubernetes defines it, plus serving-while-terminating: MetalLB
    /// internal/k8s/epslices EndpointCanServe (ready unset or true, or serving true).
    #[test]
    fn endpoint_can_serve_when_ready_or_serving_while_terminating() {
        let s = slice(
            "shop-abc",
            Some("shop"),
            vec![
                endpoint(Some("n-ready"), Some(Some(true))),
                endpoint(Some("n-absent-ready"), Some(None)),
                endpoint(Some("n-no-conditions"), None),
                endpoint(Some("n-not-ready"), Some(Some(false))),
                terminating(Some("n-terminating-serving"), Some(true)),
                terminating(Some("n-terminating-not-serving"), Some(false)),
                terminating(Some("n-terminating-serving-unknown"), None),
            ],
        );
        let info = endpoint_slice_from_k8s(&s).expect("labelled");
        assert_eq!(info.service_key(), ServiceKey::new("web", "shop"));
        let nodes: Vec<&str> = info.serving_nodes.iter().map(String::as_str).collect();
        assert_eq!(
            nodes,
            [
                "n-absent-ready",
                "n-no-conditions",
                "n-ready",
                "n-terminating-serving"
            ]
        );
        assert!(info.any_serving);
        assert_eq!(endpoint_slice_from_k8s(&slice("x", None, vec![])), None);
    }

    /// MetalLB speaker/bgp_controller.go hasHealthyEndpoint: with `Cluster` any endpoint that
    /// can serve counts, also one without a node name; one without addresses does not.
    #[test]
    fn any_serving_counts_endpoints_without_node_but_not_without_addresses() {
        let s = slice("a", Some("shop"), vec![endpoint(None, Some(Some(true)))]);
        let info = endpoint_slice_from_k8s(&s).expect("labelled");
        assert!(info.any_serving);
        assert!(info.serving_nodes.is_empty());

        let mut empty = endpoint(Some("n"), Some(Some(true)));
        empty.addresses.clear();
        let none_ready = slice(
            "b",
            Some("shop"),
            vec![endpoint(Some("n"), Some(Some(false))), empty],
        );
        let info = endpoint_slice_from_k8s(&none_ready).expect("labelled");
        assert!(!info.any_serving);
        assert!(info.serving_nodes.is_empty());
    }

    #[test]
    fn service_labels_and_shared_ip_annotation() {
        let mut svc = lb_service(None, None, &[]);
        let info = service_from_k8s(&svc, ClassPolicy::OursOrUnset).expect("named");
        assert!(info.labels.is_empty());
        assert!(!info.allow_shared_ip);
        svc.metadata.labels = Some(BTreeMap::from([("tier".into(), "web".into())]));
        for key in [
            "ferrolb.io/allow-shared-ip",
            "metallb.io/allow-shared-ip",
            "metallb.universe.tf/allow-shared-ip",
        ] {
            // Presence alone counts, as in MetalLB speaker/layer2_controller.go
            // serviceHasSharedIP.
            svc.metadata.annotations = Some(BTreeMap::from([(key.into(), String::new())]));
            let info = service_from_k8s(&svc, ClassPolicy::OursOrUnset).expect("named");
            assert!(info.allow_shared_ip, "{key}");
            assert_eq!(info.labels.get("tier").map(String::as_str), Some("web"));
        }
        svc.metadata.annotations = Some(BTreeMap::from([(
            "example.com/allow-shared-ip".into(),
            "x".into(),
        )]));
        let info = service_from_k8s(&svc, ClassPolicy::OursOrUnset).expect("named");
        assert!(!info.allow_shared_ip);
    }

    #[test]
    fn node_ready_condition() {
        let node = |conds: Option<Vec<(&str, &str)>>| Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                labels: Some(BTreeMap::from([("zone".into(), "a".into())])),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(NodeStatus {
                conditions: conds.map(|cs| {
                    cs.into_iter()
                        .map(|(t, s)| NodeCondition {
                            type_: t.into(),
                            status: s.into(),
                            ..NodeCondition::default()
                        })
                        .collect()
                }),
                ..NodeStatus::default()
            }),
        };
        let ready = node_from_k8s(&node(Some(vec![
            ("MemoryPressure", "False"),
            ("Ready", "True"),
        ])))
        .expect("named");
        assert!(ready.ready);
        assert_eq!(ready.labels.get("zone").map(String::as_str), Some("a"));
        assert!(
            !node_from_k8s(&node(Some(vec![("Ready", "Unknown")])))
                .expect("named")
                .ready
        );
        assert!(
            !node_from_k8s(&node(Some(vec![("Ready", "False")])))
                .expect("named")
                .ready
        );
        assert!(!node_from_k8s(&node(None)).expect("named").ready);
        assert!(!ready.network_unavailable);
    }

    /// MetalLB internal/k8s/nodes IsNetworkUnavailable: only status `True` counts.
    #[test]
    fn node_network_unavailable_condition() {
        let node = |status: &str| Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(NodeStatus {
                conditions: Some(vec![
                    NodeCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        ..NodeCondition::default()
                    },
                    NodeCondition {
                        type_: "NetworkUnavailable".into(),
                        status: status.into(),
                        ..NodeCondition::default()
                    },
                ]),
                ..NodeStatus::default()
            }),
        };
        let info = node_from_k8s(&node("True")).expect("named");
        assert!(info.network_unavailable && info.ready);
        for other in ["False", "Unknown"] {
            assert!(
                !node_from_k8s(&node(other))
                    .expect("named")
                    .network_unavailable
            );
        }
    }

    #[test]
    fn slices_are_kept_per_slice_and_per_namespace() {
        let mut idx = ClusterIndex::default();
        let info = |ns: &str, name: &str, svc: &str, nodes: &[&str]| EndpointSliceInfo {
            namespace: ns.into(),
            name: name.into(),
            service: svc.into(),
            serving_nodes: nodes.iter().map(|n| n.to_string()).collect(),
            any_serving: !nodes.is_empty(),
        };
        idx.upsert_endpoint_slice(info("web", "shop-1", "shop", &["a"]));
        idx.upsert_endpoint_slice(info("web", "shop-2", "shop", &["b"]));
        idx.upsert_endpoint_slice(info("web", "cart-1", "cart", &["c"]));
        idx.upsert_endpoint_slice(info("web2", "shop-1", "shop", &["d"]));
        let shop = ServiceKey::new("web", "shop");
        assert_eq!(
            idx.serving_endpoint_nodes(&shop),
            BTreeSet::from(["a", "b"])
        );
        assert!(idx.has_serving_endpoint_on(&shop, "b"));
        assert!(!idx.has_serving_endpoint_on(&shop, "c"));
        assert!(!idx.has_serving_endpoint_on(&shop, "d"));
        assert!(idx.has_serving_endpoint(&shop));
        idx.remove_endpoint_slice("web", "shop-2");
        assert_eq!(idx.serving_endpoint_nodes(&shop), BTreeSet::from(["a"]));
        idx.upsert_endpoint_slice(info("web", "shop-1", "shop", &[]));
        assert!(idx.serving_endpoint_nodes(&shop).is_empty());
        assert!(!idx.has_serving_endpoint(&shop));
        // A slice relabelled to another Service leaves the first one.
        idx.upsert_endpoint_slice(info("web", "shop-1", "shop", &["e"]));
        idx.upsert_endpoint_slice(info("web", "shop-1", "cart", &["e"]));
        assert!(idx.serving_endpoint_nodes(&shop).is_empty());
        let cart = ServiceKey::new("web", "cart");
        assert_eq!(
            idx.serving_endpoint_nodes(&cart),
            BTreeSet::from(["c", "e"])
        );
        idx.remove_endpoint_slice("web", "cart-1");
        idx.remove_endpoint_slice("web", "shop-1");
        idx.remove_endpoint_slice("web", "no-such-slice");
        assert!(!idx.has_serving_endpoint(&cart));
        assert!(idx.has_serving_endpoint(&ServiceKey::new("web2", "shop")));
    }

    #[test]
    fn membership_disabled_means_everyone_alive() {
        let mut idx = ClusterIndex::default();
        assert!(idx.is_member_alive("anything"));
        idx.set_members_alive(Some(BTreeSet::from(["a".to_string()])));
        assert!(idx.is_member_alive("a"));
        assert!(!idx.is_member_alive("b"));
    }
}
