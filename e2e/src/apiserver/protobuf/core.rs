//! core/v1 kinds clients send as protobuf: Namespace, Service, Secret, ConfigMap,
//! ServiceAccount.

use k8s_pb::api::core::v1 as pb;
use serde_json::Value;

use super::error::ProtobufError;
use super::json::{JsonObject, each};
use super::meta;

pub fn namespace(ns: pb::Namespace) -> Result<Value, ProtobufError> {
    let spec = ns.spec.map(|s| {
        JsonObject::new()
            .strings("finalizers", s.finalizers)
            .build()
    });
    let status = ns.status.map(|s| {
        JsonObject::new()
            .string("phase", s.phase)
            .list(
                "conditions",
                each(s.conditions, |c| {
                    JsonObject::new()
                        .string("type", c.r#type)
                        .string("status", c.status)
                        .value("lastTransitionTime", meta::time(c.last_transition_time))
                        .string("reason", c.reason)
                        .string("message", c.message)
                        .build()
                }),
            )
            .build()
    });
    Ok(JsonObject::new()
        .value_kept(
            "metadata",
            Some(meta::object_meta("Namespace", ns.metadata)?),
        )
        .value("spec", spec)
        .value("status", status)
        .build())
}

pub fn service(svc: pb::Service) -> Result<Value, ProtobufError> {
    let spec = svc.spec.map(service_spec);
    let status = svc.status.map(|s| {
        let load_balancer = s.load_balancer.map(|lb| {
            JsonObject::new()
                .list("ingress", each(lb.ingress, load_balancer_ingress))
                .build()
        });
        JsonObject::new()
            // `loadBalancer` is a non-pointer struct without omitempty: `{}` when empty.
            .value_kept(
                "loadBalancer",
                Some(load_balancer.unwrap_or_else(|| JsonObject::new().build())),
            )
            .list("conditions", each(s.conditions, meta::condition))
            .build()
    });
    Ok(JsonObject::new()
        .value_kept(
            "metadata",
            Some(meta::object_meta("Service", svc.metadata)?),
        )
        .value_kept("spec", spec)
        .value("status", status)
        .build())
}

fn service_spec(s: pb::ServiceSpec) -> Value {
    let affinity = s.session_affinity_config.map(|c| {
        let client_ip = c.client_ip.map(|ip| {
            JsonObject::new()
                .int_ptr("timeoutSeconds", ip.timeout_seconds)
                .build()
        });
        JsonObject::new().value_kept("clientIP", client_ip).build()
    });
    JsonObject::new()
        .list("ports", each(s.ports, service_port))
        .string_map("selector", s.selector)
        .string("clusterIP", s.cluster_ip)
        .strings("clusterIPs", s.cluster_ips)
        .string("type", s.r#type)
        .strings("externalIPs", s.external_ips)
        .string("sessionAffinity", s.session_affinity)
        .string("loadBalancerIP", s.load_balancer_ip)
        .strings("loadBalancerSourceRanges", s.load_balancer_source_ranges)
        .string("externalName", s.external_name)
        .string("externalTrafficPolicy", s.external_traffic_policy)
        .int("healthCheckNodePort", s.health_check_node_port)
        .flag("publishNotReadyAddresses", s.publish_not_ready_addresses)
        .value_kept("sessionAffinityConfig", affinity)
        .strings("ipFamilies", s.ip_families)
        .string_ptr("ipFamilyPolicy", s.ip_family_policy)
        .flag_ptr(
            "allocateLoadBalancerNodePorts",
            s.allocate_load_balancer_node_ports,
        )
        .string_ptr("loadBalancerClass", s.load_balancer_class)
        .string_ptr("internalTrafficPolicy", s.internal_traffic_policy)
        .string_ptr("trafficDistribution", s.traffic_distribution)
        .build()
}

fn service_port(p: pb::ServicePort) -> Value {
    JsonObject::new()
        .string("name", p.name)
        .string("protocol", p.protocol)
        .string_ptr("appProtocol", p.app_protocol)
        // `port` has no omitempty: a zero port is sent and rejected by validation.
        .int_ptr("port", p.port)
        .value("targetPort", meta::int_or_string(p.target_port))
        .int("nodePort", p.node_port)
        .build()
}

fn load_balancer_ingress(i: pb::LoadBalancerIngress) -> Value {
    JsonObject::new()
        .string("ip", i.ip)
        .string("hostname", i.hostname)
        .string_ptr("ipMode", i.ip_mode)
        .list(
            "ports",
            each(i.ports, |p| {
                JsonObject::new()
                    .int_ptr("port", p.port)
                    .string("protocol", p.protocol)
                    .string_ptr("error", p.error)
                    .build()
            }),
        )
        .build()
}

pub fn secret(s: pb::Secret) -> Result<Value, ProtobufError> {
    Ok(JsonObject::new()
        .value_kept("metadata", Some(meta::object_meta("Secret", s.metadata)?))
        .flag_ptr("immutable", s.immutable)
        .bytes_map("data", s.data)
        .string_map("stringData", s.string_data)
        .string("type", s.r#type)
        .build())
}

pub fn config_map(c: pb::ConfigMap) -> Result<Value, ProtobufError> {
    Ok(JsonObject::new()
        .value_kept(
            "metadata",
            Some(meta::object_meta("ConfigMap", c.metadata)?),
        )
        .flag_ptr("immutable", c.immutable)
        .string_map("data", c.data)
        .bytes_map("binaryData", c.binary_data)
        .build())
}

pub fn service_account(sa: pb::ServiceAccount) -> Result<Value, ProtobufError> {
    Ok(JsonObject::new()
        .value_kept(
            "metadata",
            Some(meta::object_meta("ServiceAccount", sa.metadata)?),
        )
        .list("secrets", each(sa.secrets, object_reference))
        .list(
            "imagePullSecrets",
            each(sa.image_pull_secrets, local_object_reference),
        )
        .flag_ptr(
            "automountServiceAccountToken",
            sa.automount_service_account_token,
        )
        .build())
}

pub fn object_reference(r: pb::ObjectReference) -> Value {
    JsonObject::new()
        .string("kind", r.kind)
        .string("namespace", r.namespace)
        .string("name", r.name)
        .string("uid", r.uid)
        .string("apiVersion", r.api_version)
        .string("resourceVersion", r.resource_version)
        .string("fieldPath", r.field_path)
        .build()
}

pub fn local_object_reference(r: pb::LocalObjectReference) -> Value {
    JsonObject::new().string("name", r.name).build()
}
