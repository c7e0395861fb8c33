//! Reflector-backed caches of everything the speaker reads: Services, EndpointSlices, Nodes,
//! our configuration CRDs and the Secrets of its own namespace (BGP passwords, the membership
//! key). Every change bumps a counter on a `watch` channel; the speaker then rebuilds its index
//! from the whole current view (level-triggered).

use ferrolb_api::service::ClassPolicy;
use ferrolb_api::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use ferrolb_config::{Config, ConfigError, Inputs};
use ferrolb_speaker_core::index::{
    ClusterIndex, endpoint_slice_from_k8s, node_from_k8s, service_from_k8s,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Starts a reflector for `K`; every applied or deleted object bumps `changes`.
fn spawn_store<K>(api: Api<K>, changes: watch::Sender<u64>, tasks: &mut JoinSet<()>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    tasks.spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(_) => changes.send_modify(|n| *n = n.wrapping_add(1)),
                Err(e) => {
                    tracing::warn!(error = %e, kind = %K::kind(&Default::default()), "watch error")
                }
            }
        }
    });
    reader
}

/// The speaker's caches.
#[derive(Clone)]
pub struct SpeakerStores {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    nodes: Store<Node>,
    secrets: Store<Secret>,
    pools: Store<IPAddressPool>,
    l2: Store<L2Advertisement>,
    bgp: Store<BGPAdvertisement>,
    peers: Store<BGPPeer>,
    bfd: Store<BFDProfile>,
    communities: Store<Community>,
}

/// The configuration as the speaker sees it now.
pub enum ConfigView {
    /// Valid.
    Valid(Config),
    /// Invalid: the errors (the caller keeps its last valid configuration).
    Invalid(Vec<ConfigError>),
}

impl SpeakerStores {
    /// Starts every reflector. Configuration CRDs and Secrets are read in `namespace` only.
    pub fn start(
        client: &Client,
        namespace: &str,
        changes: watch::Sender<u64>,
        tasks: &mut JoinSet<()>,
    ) -> Self {
        Self {
            services: spawn_store(Api::all(client.clone()), changes.clone(), tasks),
            slices: spawn_store(Api::all(client.clone()), changes.clone(), tasks),
            nodes: spawn_store(Api::all(client.clone()), changes.clone(), tasks),
            secrets: spawn_store(
                Api::namespaced(client.clone(), namespace),
                changes.clone(),
                tasks,
            ),
            pools: spawn_store(
                Api::namespaced(client.clone(), namespace),
                changes.clone(),
                tasks,
            ),
            l2: spawn_store(
                Api::namespaced(client.clone(), namespace),
                changes.clone(),
                tasks,
            ),
            bgp: spawn_store(
                Api::namespaced(client.clone(), namespace),
                changes.clone(),
                tasks,
            ),
            peers: spawn_store(
                Api::namespaced(client.clone(), namespace),
                changes.clone(),
                tasks,
            ),
            bfd: spawn_store(
                Api::namespaced(client.clone(), namespace),
                changes.clone(),
                tasks,
            ),
            communities: spawn_store(Api::namespaced(client.clone(), namespace), changes, tasks),
        }
    }

    /// Waits until every cache holds a complete first listing.
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.services.wait_until_ready().await?;
        self.slices.wait_until_ready().await?;
        self.nodes.wait_until_ready().await?;
        self.secrets.wait_until_ready().await?;
        self.pools.wait_until_ready().await?;
        self.l2.wait_until_ready().await?;
        self.bgp.wait_until_ready().await?;
        self.peers.wait_until_ready().await?;
        self.bfd.wait_until_ready().await?;
        self.communities.wait_until_ready().await
    }

    /// Builds the configuration from the CRDs as they are now.
    pub fn config(&self) -> ConfigView {
        let inputs = Inputs {
            pools: sorted(&self.pools),
            l2_advertisements: sorted(&self.l2),
            bgp_advertisements: sorted(&self.bgp),
            peers: sorted(&self.peers),
            bfd_profiles: sorted(&self.bfd),
            communities: sorted(&self.communities),
        };
        match Config::build(&inputs) {
            Ok(c) => ConfigView::Valid(c),
            Err(e) => ConfigView::Invalid(e),
        }
    }

    /// The index over `config` and every Service, EndpointSlice and Node now cached.
    pub fn index(&self, config: Config, class_policy: ClassPolicy) -> ClusterIndex {
        let mut index = ClusterIndex::new(config);
        for svc in self.services.state() {
            if let Some(info) = service_from_k8s(&svc, class_policy) {
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

fn sorted<K>(store: &Store<K>) -> Vec<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    let mut v: Vec<K> = store.state().iter().map(|o| (**o).clone()).collect();
    v.sort_by(|a, b| {
        (a.meta().namespace.as_deref(), a.meta().name.as_deref())
            .cmp(&(b.meta().namespace.as_deref(), b.meta().name.as_deref()))
    });
    v
}
