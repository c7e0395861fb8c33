//! Reflector-backed caches. Every applied or deleted object bumps a counter on a `watch`
//! channel, so a binary's loop can recompute level-triggered from the whole current view.

use ferrolb_api::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use ferrolb_config::{Config, ConfigError, Inputs};
use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use kube::runtime::reflector::store::WriterDropped;

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
                Ok(_) => changes.send_modify(|n| *n = n.wrapping_add(1)),
                Err(e) => {
                    tracing::warn!(error = %e, kind = %K::kind(&Default::default()), "watch error")
                }
            }
        }
    });
    reader
}

/// The objects of `store`, sorted by namespace/name so that whatever is built from them is
/// deterministic.
pub fn sorted<K>(store: &Store<K>) -> Vec<K>
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

/// Caches of the configuration CRDs.
#[derive(Clone)]
pub struct ConfigStores {
    pools: Store<IPAddressPool>,
    l2: Store<L2Advertisement>,
    bgp: Store<BGPAdvertisement>,
    peers: Store<BGPPeer>,
    bfd: Store<BFDProfile>,
    communities: Store<Community>,
}

impl ConfigStores {
    /// Starts a reflector per CRD. `namespace` restricts them to one namespace (`None`: all).
    pub fn start(
        client: &Client,
        namespace: Option<&str>,
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
            pools: spawn_store(api(client, namespace), changes.clone(), tasks),
            l2: spawn_store(api(client, namespace), changes.clone(), tasks),
            bgp: spawn_store(api(client, namespace), changes.clone(), tasks),
            peers: spawn_store(api(client, namespace), changes.clone(), tasks),
            bfd: spawn_store(api(client, namespace), changes.clone(), tasks),
            communities: spawn_store(api(client, namespace), changes, tasks),
        }
    }

    /// Waits until every cache holds a complete first listing.
    pub async fn wait_until_ready(&self) -> Result<(), WriterDropped> {
        self.pools.wait_until_ready().await?;
        self.l2.wait_until_ready().await?;
        self.bgp.wait_until_ready().await?;
        self.peers.wait_until_ready().await?;
        self.bfd.wait_until_ready().await?;
        self.communities.wait_until_ready().await
    }

    /// The configuration objects as they are now, each kind sorted by namespace/name.
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

    /// The configuration built from the objects as they are now, or every error.
    pub fn build(&self) -> Result<Config, Vec<ConfigError>> {
        Config::build(&self.inputs())
    }
}
