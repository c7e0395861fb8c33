//! Translation between Kubernetes Services and the allocator's plain request type.

use crate::allocator::{
    AnnotationRequest, IpFamilyPolicy, Protocol, RequestError, ServicePort, ServiceRequest,
    TrafficPolicy, parse_ip_families,
};
use ferrolb_api::annotations;
use ferrolb_api::service::ingress_ips;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

/// Builds the allocator's request from a Service and its Namespace's labels. The error names
/// the annotation or field that could not be read.
pub fn to_request(
    svc: &Service,
    namespace_labels: &Arc<BTreeMap<String, String>>,
) -> Result<ServiceRequest, RequestError> {
    let namespace = svc.metadata.namespace.as_deref().unwrap_or("default");
    let name = svc.metadata.name.as_deref().unwrap_or_default();
    let default_spec = ServiceSpec::default();
    // Borrowed: a copy of every Service's spec on every pass was a tenth of the controller's
    // peak memory in a burst.
    let spec = svc.spec.as_ref().unwrap_or(&default_spec);
    let empty = BTreeMap::new();
    let annotations = svc.metadata.annotations.as_ref().unwrap_or(&empty);
    let ann = AnnotationRequest::parse(annotations, spec.load_balancer_ip.as_deref())?;
    let mut req = ServiceRequest::new(namespace, name);
    req.namespace_labels = namespace_labels.clone();
    req.service_labels = svc.metadata.labels.clone().unwrap_or_default();
    req.requested_ips = ann.requested_ips;
    req.requested_pool = ann.requested_pool;
    req.sharing_key = ann.sharing_key;
    req.ip_family_policy = IpFamilyPolicy::parse(spec.ip_family_policy.as_deref())?;
    req.ip_families = parse_ip_families(spec.ip_families.as_deref().unwrap_or_default())?;
    req.traffic_policy = TrafficPolicy::of(svc);
    req.selector = spec.selector.clone().unwrap_or_default();
    for (i, p) in spec.ports.iter().flatten().enumerate() {
        let port = u16::try_from(p.port).map_err(|_| RequestError::InvalidPort {
            index: i,
            port: p.port,
        })?;
        let protocol = Protocol::parse(p.protocol.as_deref())
            .map_err(|protocol| RequestError::PortProtocol { index: i, protocol })?;
        req.ports.push(ServicePort { port, protocol });
    }
    req.current = ingress_ips(svc);
    Ok(req)
}

/// Drops from a cached Service the fields the controller never reads (cluster addresses,
/// session affinity, port names and targets, conditions): the cache holds every Service of the
/// cluster. What [`to_request`], the class and type checks, the events and the status writes
/// read stays.
pub fn drop_unread(svc: &mut Service) {
    svc.metadata.owner_references = None;
    svc.metadata.generate_name = None;
    if let Some(spec) = &mut svc.spec {
        spec.cluster_ip = None;
        spec.cluster_ips = None;
        spec.external_ips = None;
        spec.external_name = None;
        spec.internal_traffic_policy = None;
        spec.load_balancer_source_ranges = None;
        spec.session_affinity = None;
        spec.session_affinity_config = None;
        spec.traffic_distribution = None;
        for p in spec.ports.iter_mut().flatten() {
            p.name = None;
            p.app_protocol = None;
            p.target_port = None;
        }
    }
    if let Some(status) = &mut svc.status {
        status.conditions = None;
    }
}

/// The merge patch for the status subresource: the ingress set to `ips` (each with
/// `ipMode: VIP`) and the pool annotation under each spelling ferrolb writes (removed when
/// `pool` is `None`). The annotation travels with the status as MetalLB sends it
/// (controller/service.go convergeBalancer, one UpdateStatus): kube-apiserver resets only a
/// Service's spec on a status write, so no write access to Services themselves is needed.
pub fn status_patch(ips: &[IpAddr], pool: Option<&str>) -> serde_json::Value {
    let ingress: Vec<serde_json::Value> = ips
        .iter()
        .map(|ip| serde_json::json!({"ip": ip.to_string(), "ipMode": "VIP"}))
        .collect();
    let annotations: serde_json::Map<String, serde_json::Value> =
        annotations::written_keys(annotations::IP_ALLOCATED_FROM_POOL)
            .into_iter()
            .map(|k| (k, pool.map_or(serde_json::Value::Null, |p| p.into())))
            .collect();
    serde_json::json!({
        "metadata": {"annotations": annotations},
        "status": {"loadBalancer": {"ingress": ingress}},
    })
}

/// The keys of the pool annotation, built once: every pass reads them for every Service.
static POOL_KEYS: LazyLock<[String; 2]> =
    LazyLock::new(|| annotations::written_keys(annotations::IP_ALLOCATED_FROM_POOL));

/// The pool annotation of `svc` under each spelling ferrolb writes, in that order.
pub fn pool_annotations(svc: &Service) -> [Option<&str>; 2] {
    let annotations = svc.metadata.annotations.as_ref();
    let [ours, metallb] = &*POOL_KEYS;
    [ours, metallb].map(|k| annotations.and_then(|a| a.get(k)).map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServicePort as K8sPort, ServiceSpec, ServiceStatus,
    };
    use kube::api::ObjectMeta;

    fn svc(class: Option<&str>, type_: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("apps".into()),
                annotations: Some(BTreeMap::from([(
                    "metallb.universe.tf/allow-shared-ip".to_string(),
                    "k".to_string(),
                )])),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                load_balancer_class: class.map(str::to_string),
                ip_family_policy: Some("PreferDualStack".into()),
                ip_families: Some(vec!["IPv6".into(), "IPv4".into()]),
                external_traffic_policy: Some("Local".into()),
                ports: Some(vec![K8sPort {
                    port: 53,
                    protocol: Some("UDP".into()),
                    ..K8sPort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![
                        LoadBalancerIngress {
                            ip: Some("10.0.0.1".into()),
                            ..Default::default()
                        },
                        LoadBalancerIngress {
                            hostname: Some("lb.example".into()),
                            ..Default::default()
                        },
                    ]),
                }),
                ..ServiceStatus::default()
            }),
        }
    }

    #[test]
    fn request_reads_every_field() {
        let r = to_request(&svc(None, "LoadBalancer"), &Arc::default()).expect("valid");
        assert_eq!(r.key.to_string(), "apps/web");
        assert_eq!(r.ip_family_policy, IpFamilyPolicy::PreferDualStack);
        assert_eq!(
            r.ip_families,
            vec![ferrolb_config::IpFamily::V6, ferrolb_config::IpFamily::V4]
        );
        assert_eq!(r.traffic_policy, TrafficPolicy::Local);
        assert_eq!(r.ports, vec![ServicePort::udp(53)]);
        assert_eq!(
            r.sharing_key
                .as_ref()
                .map(|k| (k.value.as_str(), k.source.as_str())),
            Some(("k", "metallb.universe.tf/allow-shared-ip"))
        );
        assert_eq!(r.current, vec!["10.0.0.1".parse::<IpAddr>().expect("ip")]);
    }

    #[test]
    fn status_patch_sets_vip_mode() {
        let p = status_patch(&["10.0.0.1".parse().expect("ip")], Some("lan"));
        assert_eq!(p["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");
    }

    /// MetalLB controller/service.go convergeBalancer sets `metallb.io/ip-allocated-from-pool`
    /// with the status and clearServiceState deletes it; ferrolb writes its own spelling too.
    #[test]
    fn status_patch_sets_and_clears_the_pool_annotation() {
        let p = status_patch(&["10.0.0.1".parse().expect("ip")], Some("lan"));
        assert_eq!(
            p["metadata"]["annotations"],
            serde_json::json!({
                "ferrolb.io/ip-allocated-from-pool": "lan",
                "metallb.io/ip-allocated-from-pool": "lan",
            })
        );
        let p = status_patch(&[], None);
        assert_eq!(
            p["metadata"]["annotations"],
            serde_json::json!({
                "ferrolb.io/ip-allocated-from-pool": null,
                "metallb.io/ip-allocated-from-pool": null,
            })
        );
        assert_eq!(
            p["status"]["loadBalancer"]["ingress"],
            serde_json::json!([])
        );
    }
}
