//! Reflector-backed caches of the objects the controller reads besides Services: our
//! configuration CRDs and Namespaces. Every change bumps a counter on a `watch` channel, so the
//! reconciler can rebuild the configuration level-triggered from the whole current view.

use ferrolb_api::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use ferrolb_config::Inputs;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Starts a reflector for `K` on `api` in `tasks`; every applied or deleted object bumps
/// `changes`.
pub fn spawn_store<K>(api: Api<K>, changes: watch::Sender<u64>, tasks: &mut JoinSet<()>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        // Deletions count too (a deleted Service or pool must start a pass at once);
        // `applied_objects` would drop them.
        .touched_objects();
    tasks.spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(_) => {
                    changes.send_modify(|n| *n = n.wrapping_add(1));
                }
                Err(e) => {
                    tracing::warn!(error = %e, kind = %K::kind(&Default::default()), "watch error")
                }
            }
        }
    });
    reader
}

/// Caches of the configuration CRDs and Namespaces.
#[derive(Clone)]
pub struct ConfigStores {
    pools: Store<IPAddressPool>,
    l2: Store<L2Advertisement>,
    bgp: Store<BGPAdvertisement>,
    peers: Store<BGPPeer>,
    bfd: Store<BFDProfile>,
    communities: Store<Community>,
    namespaces: Store<Namespace>,
}

impl ConfigStores {
    /// Starts every reflector. `config_ns` restricts the CRDs to one namespace (`None`: all).
    pub fn start(
        client: &Client,
        config_ns: Option<&str>,
        changes: watch::Sender<u64>,
        tasks: &mut JoinSet<()>,
    ) -> Self {
        fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
        where
            K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
            K::DynamicType: Default,
        {
            match ns {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            }
        }
        Self {
            pools: spawn_store(api(client, config_ns), changes.clone(), tasks),
            l2: spawn_store(api(client, config_ns), changes.clone(), tasks),
            bgp: spawn_store(api(client, config_ns), changes.clone(), tasks),
            peers: spawn_store(api(client, config_ns), changes.clone(), tasks),
            bfd: spawn_store(api(client, config_ns), changes.clone(), tasks),
            communities: spawn_store(api(client, config_ns), changes.clone(), tasks),
            namespaces: spawn_store(Api::all(client.clone()), changes, tasks),
        }
    }

    /// Waits until every cache holds a complete first listing.
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.pools.wait_until_ready().await?;
        self.l2.wait_until_ready().await?;
        self.bgp.wait_until_ready().await?;
        self.peers.wait_until_ready().await?;
        self.bfd.wait_until_ready().await?;
        self.communities.wait_until_ready().await?;
        self.namespaces.wait_until_ready().await
    }

    /// The configuration objects as they are now, sorted by namespace/name so that building a
    /// configuration is deterministic.
    pub fn inputs(&self) -> Inputs {
        Inputs {
            pools: sorted(&self.pools),
            l2_advertisements: sorted(&self.l2),
            bgp_advertisements: sorted(&self.bgp),
            peers: sorted(&self.peers),
            bfd_profiles: sorted(&self.bfd),
            communities: sorted(&self.communities),
        }
    }

    /// Labels of every Namespace, by name.
    pub fn namespace_labels(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.namespaces
            .state()
            .iter()
            .filter_map(|ns| {
                let name = ns.metadata.name.clone()?;
                Some((name, ns.metadata.labels.clone().unwrap_or_default()))
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
