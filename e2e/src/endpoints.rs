//! The lab's stand-in for the EndpointSlice controller of kube-controller-manager, which the
//! lab does not run. Every node runs the lab's echo server, so every Service is served on every
//! node: each Service gets one EndpointSlice `<service>-slice` with a ready endpoint per node,
//! created once; it is never recreated, and tests that shape endpoints overwrite it. Services
//! with `externalTrafficPolicy: Local` get none: which node serves them is what the tests and
//! lab scenarios that create them decide, and a slice on every node racing theirs would let
//! any node announce them for a moment.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Name of the slice the lab creates for `service`.
pub fn slice_name(service: &str) -> String {
    format!("{service}-slice")
}

/// The slice of `service` in `namespace` with a ready endpoint on each of `nodes`.
pub fn every_node_slice(
    namespace: &str,
    service: &str,
    nodes: &[(String, Ipv4Addr)],
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(slice_name(service)),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/service-name".to_string(),
                service.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: nodes
            .iter()
            .map(|(name, ip)| Endpoint {
                addresses: vec![ip.to_string()],
                node_name: Some(name.clone()),
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    serving: Some(true),
                    terminating: Some(false),
                }),
                ..Endpoint::default()
            })
            .collect(),
        ports: None,
    }
}

/// Watches Services and creates each one's slice when it has none; runs until dropped.
pub async fn run(client: Client, nodes: Vec<(String, Ipv4Addr)>) {
    let services: Api<Service> = Api::all(client.clone());
    let stream = watcher(services, watcher::Config::default())
        .backoff(RetryEvery(Duration::from_millis(200)))
        .applied_objects();
    let mut stream = std::pin::pin!(stream);
    // Every Service is looked at once, not at each of its status updates.
    let mut seen = std::collections::HashSet::new();
    while let Some(item) = stream.next().await {
        let Ok(svc) = item else { continue };
        let (Some(ns), Some(name)) = (
            svc.metadata.namespace.as_deref(),
            svc.metadata.name.as_deref(),
        ) else {
            continue;
        };
        if !seen.insert((ns.to_string(), name.to_string())) {
            continue;
        }
        let local = svc
            .spec
            .as_ref()
            .and_then(|s| s.external_traffic_policy.as_deref())
            == Some("Local");
        if local {
            continue;
        }
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
        let slice = every_node_slice(ns, name, &nodes);
        match slices.create(&PostParams::default(), &slice).await {
            Ok(_) => {}
            // A test made it first, or it was made for an earlier event of this Service.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => {
                tracing::warn!(error = %e, service = %name, "creating the lab EndpointSlice failed")
            }
        }
    }
}

/// A constant wait between watch retries: the stand-in comes back at once after an API server
/// outage, so what a test measures after one is ferrolb's recovery, not the stand-in's.
struct RetryEvery(Duration);

impl Iterator for RetryEvery {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.0)
    }
}

impl kube::runtime::utils::Backoff for RetryEvery {
    fn reset(&mut self) {}
}
