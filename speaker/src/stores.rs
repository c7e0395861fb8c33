//! Reflector-backed caches of everything the speaker reads: Services, EndpointSlices, Nodes,
//! our configuration CRDs and the Secrets of its own namespace (BGP passwords, the membership
//! key). Every change bumps a counter on a `watch` channel; the speaker then rebuilds its index
//! from the whole current view (level-triggered).

use ferrolb_api::service::ClassPolicy;
use ferrolb_config::{Config, ConfigError};
use ferrolb_runtime::Wiring;
use ferrolb_runtime::store::{ConfigStores, WriterDropped};
use ferrolb_speaker_core::index::{
    ClusterIndex, endpoint_slice_from_k8s, node_from_k8s, service_from_k8s,
};
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::{Api, Client};
use std::collections::BTreeMap;

/// Settings the index is built with; DaemonSet-wide (the same on every speaker), so every
/// speaker computes the same layer 2 election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexOptions {
    /// Which `loadBalancerClass` values are ours to handle.
    pub class_policy: ClassPolicy,
    /// Announce from nodes labelled `node.kubernetes.io/exclude-from-external-load-balancers`
    /// too (`--ignore-exclude-lb`).
    pub ignore_exclude_lb: bool,
}

impl From<ClassPolicy> for IndexOptions {
    /// `class_policy` with the exclusion label honoured.
    fn from(class_policy: ClassPolicy) -> Self {
        IndexOptions {
            class_policy,
            ignore_exclude_lb: false,
        }
    }
}

/// The speaker's caches.
#[derive(Clone)]
pub struct SpeakerStores {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    nodes: Store<Node>,
    secrets: Store<Secret>,
    config: ConfigStores,
}

impl SpeakerStores {
    /// Starts every reflector. Configuration CRDs and Secrets are read in `namespace` only.
    pub fn start<S>(client: &Client, namespace: &str, w: &mut Wiring<S>) -> Self {
        Self {
            services: w.store(Api::all(client.clone())),
            slices: w.store(Api::all(client.clone())),
            nodes: w.store(Api::all(client.clone())),
            secrets: w.store(Api::namespaced(client.clone(), namespace)),
            config: w.config_stores(client, Some(namespace)),
        }
    }

    /// Waits until every cache holds a complete first listing.
    pub async fn wait_until_ready(&self) -> Result<(), WriterDropped> {
        self.services.wait_until_ready().await?;
        self.slices.wait_until_ready().await?;
        self.nodes.wait_until_ready().await?;
        self.secrets.wait_until_ready().await?;
        self.config.wait_until_ready().await
    }

    /// Builds the configuration from the CRDs as they are now (the caller keeps its last valid
    /// configuration when this is an error).
    pub fn config(&self) -> Result<Config, Vec<ConfigError>> {
        self.config.build()
    }

    /// The index over `config` and every Service, EndpointSlice and Node now cached.
    pub fn index(&self, config: Config, options: impl Into<IndexOptions>) -> ClusterIndex {
        let options = options.into();
        let mut index = ClusterIndex::new(config);
        index.set_ignore_exclude_lb(options.ignore_exclude_lb);
        for svc in self.services.state() {
            if let Some(info) = service_from_k8s(&svc, options.class_policy) {
                index.upsert_service(info);
            }
        }
        for slice in self.slices.state() {
            if let Some(info) = endpoint_slice_from_k8s(&slice) {
                index.upsert_endpoint_slice(info);
            }
        }
        for node in self.nodes.state() {
            if let Some(info) = node_from_k8s(&node) {
                index.upsert_node(info);
            }
        }
        index
    }

    /// A Service object, for events.
    pub fn service(&self, namespace: &str, name: &str) -> Option<std::sync::Arc<Service>> {
        self.services
            .get(&reflector::ObjectRef::new(name).within(namespace))
    }

    /// A Node object (own addresses, peers' gossip addresses).
    pub fn nodes(&self) -> Vec<std::sync::Arc<Node>> {
        self.nodes.state()
    }

    /// `data[key]` of every Secret of the speaker's namespace, by Secret name.
    pub fn secret_values(&self, key: &str) -> BTreeMap<String, Vec<u8>> {
        self.secrets
            .state()
            .iter()
            .filter_map(|s| {
                let name = s.metadata.name.clone()?;
                let bytes = s.data.as_ref()?.get(key)?;
                Some((name, bytes.0.clone()))
            })
            .collect()
    }
}
