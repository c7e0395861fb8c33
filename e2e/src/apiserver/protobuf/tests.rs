//! Whole bodies as clients send them: envelope + message -> the JSON the store keeps.

use k8s_pb::api::core::v1 as core_pb;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta_pb;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Value, json};

use super::*;

fn body(api_version: &str, kind: &str, msg: &impl Message) -> Vec<u8> {
    envelope::seal(api_version, kind, msg.encode_to_vec())
}

fn named(name: &str, namespace: &str) -> Option<meta_pb::ObjectMeta> {
    Some(meta_pb::ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        // What Go writes for fields the client left unset.
        generate_name: Some(String::new()),
        resource_version: Some(String::new()),
        generation: Some(0),
        creation_timestamp: Some(meta_pb::Time {
            seconds: Some(0),
            nanos: Some(0),
        }),
        ..Default::default()
    })
}

/// The JSON must also be a valid object of the k8s-openapi type (field names and shapes).
fn typed<T: serde::de::DeserializeOwned>(v: &Value) {
    if let Err(e) = serde_json::from_value::<T>(v.clone()) {
        panic!("{v} is not a valid object: {e}");
    }
}

#[test]
fn namespace_as_kubectl_create_namespace_sends_it() {
    let ns = core_pb::Namespace {
        metadata: named("team-a", ""),
        spec: Some(core_pb::NamespaceSpec::default()),
        status: Some(core_pb::NamespaceStatus {
            phase: Some(String::new()),
            conditions: vec![],
        }),
    };
    let v = decode_object(&body("v1", "Namespace", &ns), ("v1", "Namespace")).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    );
    typed::<k8s_openapi::api::core::v1::Namespace>(&v);
}

#[test]
fn service_with_every_spec_field() {
    let svc = core_pb::Service {
        metadata: named("web", "default"),
        spec: Some(core_pb::ServiceSpec {
            ports: vec![
                core_pb::ServicePort {
                    name: Some("80-8080".into()),
                    protocol: Some("TCP".into()),
                    app_protocol: None,
                    port: Some(80),
                    target_port: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: Some(String::new()),
                    }),
                    node_port: Some(0),
                },
                core_pb::ServicePort {
                    name: Some("dns".into()),
                    protocol: Some("UDP".into()),
                    app_protocol: Some("dns".into()),
                    port: Some(53),
                    target_port: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: Some("dns".into()),
                    }),
                    node_port: Some(30053),
                },
            ],
            selector: [("app".to_string(), "web".to_string())].into(),
            cluster_ip: Some(String::new()),
            cluster_ips: vec![],
            r#type: Some("LoadBalancer".into()),
            external_ips: vec!["10.200.0.9".into()],
            session_affinity: Some("ClientIP".into()),
            load_balancer_ip: Some(String::new()),
            load_balancer_source_ranges: vec!["10.200.0.0/16".into()],
            external_name: Some(String::new()),
            external_traffic_policy: Some("Local".into()),
            health_check_node_port: Some(0),
            publish_not_ready_addresses: Some(false),
            session_affinity_config: Some(core_pb::SessionAffinityConfig {
                client_ip: Some(core_pb::ClientIpConfig {
                    timeout_seconds: Some(600),
                }),
            }),
            ip_families: vec!["IPv4".into()],
            ip_family_policy: Some("SingleStack".into()),
            allocate_load_balancer_node_ports: Some(false),
            load_balancer_class: Some("ferrolb.io/lb".into()),
            internal_traffic_policy: None,
            traffic_distribution: None,
        }),
        status: Some(core_pb::ServiceStatus {
            load_balancer: Some(core_pb::LoadBalancerStatus {
                ingress: vec![core_pb::LoadBalancerIngress {
                    ip: Some("10.200.0.200".into()),
                    hostname: Some(String::new()),
                    ip_mode: Some("VIP".into()),
                    ports: vec![core_pb::PortStatus {
                        port: Some(80),
                        protocol: Some("TCP".into()),
                        error: None,
                    }],
                }],
            }),
            conditions: vec![],
        }),
    };
    let v = decode_object(&body("v1", "Service", &svc), ("v1", "Service")).unwrap();
    assert_eq!(
        v,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "ports": [
                    {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "dns", "protocol": "UDP", "appProtocol": "dns", "port": 53,
                     "targetPort": "dns", "nodePort": 30053},
                ],
                "selector": {"app": "web"},
                "type": "LoadBalancer",
                "externalIPs": ["10.200.0.9"],
                "sessionAffinity": "ClientIP",
                "loadBalancerSourceRanges": ["10.200.0.0/16"],
                "externalTrafficPolicy": "Local",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "allocateLoadBalancerNodePorts": false,
                "loadBalancerClass": "ferrolb.io/lb",
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "10.200.0.200", "ipMode": "VIP",
                "ports": [{"port": 80, "protocol": "TCP"}]}]}},
        })
    );
    typed::<k8s_openapi::api::core::v1::Service>(&v);
}

#[test]
fn service_status_load_balancer_is_kept_when_empty() {
    let svc = core_pb::Service {
        metadata: named("web", "default"),
        spec: Some(core_pb::ServiceSpec::default()),
        status: Some(core_pb::ServiceStatus {
            load_balancer: Some(core_pb::LoadBalancerStatus { ingress: vec![] }),
            conditions: vec![],
        }),
    };
    let v = decode_object(&body("v1", "Service", &svc), ("v1", "Service")).unwrap();
    assert_eq!(v["status"], json!({"loadBalancer": {}}));
    assert_eq!(v["spec"], json!({}));
}

#[test]
fn secret_data_is_base64_and_string_data_is_kept_for_the_server_to_fold() {
    let secret = core_pb::Secret {
        metadata: Some(meta_pb::ObjectMeta {
            labels: [
                ("owner".to_string(), "helm".to_string()),
                ("name".to_string(), "rel".to_string()),
            ]
            .into(),
            ..named("sh.helm.release.v1.rel.v1", "ferrolb-system").unwrap()
        }),
        immutable: Some(false),
        data: [("release".to_string(), b"H4sI\x00\xff".to_vec())].into(),
        string_data: [("note".to_string(), "plain".to_string())].into(),
        r#type: Some("helm.sh/release.v1".into()),
    };
    let v = decode_object(&body("v1", "Secret", &secret), ("v1", "Secret")).unwrap();
    assert_eq!(
        v,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "sh.helm.release.v1.rel.v1", "namespace": "ferrolb-system",
                         "labels": {"owner": "helm", "name": "rel"}},
            "immutable": false,
            "data": {"release": "SDRzSQD/"},
            "stringData": {"note": "plain"},
            "type": "helm.sh/release.v1",
        })
    );
    typed::<k8s_openapi::api::core::v1::Secret>(&v);
}

#[test]
fn config_map_with_text_and_binary_data() {
    let cm = core_pb::ConfigMap {
        metadata: named("settings", "default"),
        immutable: None,
        data: [("level".to_string(), "debug".to_string())].into(),
        binary_data: [("blob".to_string(), vec![0, 1, 2])].into(),
    };
    let v = decode_object(&body("v1", "ConfigMap", &cm), ("v1", "ConfigMap")).unwrap();
    assert_eq!(
        v,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "default"},
            "data": {"level": "debug"},
            "binaryData": {"blob": "AAEC"},
        })
    );
    typed::<k8s_openapi::api::core::v1::ConfigMap>(&v);
}

#[test]
fn service_account_with_references() {
    let sa = core_pb::ServiceAccount {
        metadata: named("speaker", "ferrolb-system"),
        secrets: vec![core_pb::ObjectReference {
            name: Some("token".into()),
            namespace: Some(String::new()),
            ..Default::default()
        }],
        image_pull_secrets: vec![core_pb::LocalObjectReference {
            name: Some("registry".into()),
        }],
        automount_service_account_token: Some(false),
    };
    let v = decode_object(&body("v1", "ServiceAccount", &sa), ("v1", "ServiceAccount")).unwrap();
    assert_eq!(
        v,
        json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "speaker", "namespace": "ferrolb-system"},
            "secrets": [{"name": "token"}],
            "imagePullSecrets": [{"name": "registry"}],
            "automountServiceAccountToken": false,
        })
    );
    typed::<k8s_openapi::api::core::v1::ServiceAccount>(&v);
}

#[test]
fn an_envelope_without_a_type_takes_the_path_s_kind() {
    let cm = core_pb::ConfigMap {
        metadata: named("x", "default"),
        ..Default::default()
    };
    let v = decode_object(&body("", "", &cm), ("v1", "ConfigMap")).unwrap();
    assert_eq!(v["kind"], "ConfigMap");
    assert!(matches!(
        decode_object(&body("", "", &cm), ("", "")),
        Err(ProtobufError::NoKind)
    ));
}

#[test]
fn a_kind_without_a_conversion_is_unsupported_and_named() {
    let err =
        decode_object(&body("v1", "Pod", &core_pb::Pod::default()), ("v1", "Pod")).unwrap_err();
    assert!(
        matches!(&err, ProtobufError::UnsupportedKind { kind, .. } if kind == "Pod"),
        "{err}"
    );
    let api: super::super::error::ApiError = err.into();
    assert_eq!(api.code, 415);
    assert!(api.message.contains("Pod"), "{}", api.message);
}

#[test]
fn a_malformed_message_is_a_bad_request_naming_the_kind() {
    // A length-delimited field 1 (metadata) that claims more bytes than there are.
    let err = decode_object(
        &envelope::seal("v1", "Secret", vec![0x0a, 0x7f, 0x01]),
        ("v1", "Secret"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("protobuf Secret (v1)"), "{err}");
    let api: super::super::error::ApiError = err.into();
    assert_eq!(api.code, 400);
}

#[test]
fn random_bytes_never_panic() {
    // A fixed pseudo-random sequence (xorshift) of bodies with the right prefix.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in 0..400 {
        let mut b = envelope::MAGIC.to_vec();
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.push(x as u8);
        }
        let _ = decode_object(&b, ("v1", "Service"));
        let _ = decode_delete_options(&b);
    }
}

#[test]
fn delete_options_bodies() {
    let opts = meta_pb::DeleteOptions {
        propagation_policy: Some("Background".into()),
        ..Default::default()
    };
    let v = decode_delete_options(&body("meta.k8s.io/v1", "DeleteOptions", &opts)).unwrap();
    assert_eq!(v, json!({"propagationPolicy": "Background"}));
    let err =
        decode_delete_options(&body("v1", "Secret", &core_pb::Secret::default())).unwrap_err();
    assert!(err.to_string().contains("Secret"), "{err}");
}

#[test]
fn media_types() {
    assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
    assert!(is_protobuf(
        "application/vnd.kubernetes.protobuf; charset=utf-8"
    ));
    assert!(!is_protobuf("application/json"));
    assert!(accepts_json(""));
    assert!(accepts_json("application/vnd.kubernetes.protobuf, */*"));
    assert!(accepts_json(
        "application/vnd.kubernetes.protobuf,application/json"
    ));
    assert!(accepts_json(
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    ));
    assert!(!accepts_json("application/vnd.kubernetes.protobuf"));
    assert!(!accepts_json(
        "application/vnd.kubernetes.protobuf;stream=watch"
    ));
}
