//! Reflector-backed caches of everything the speaker reads: Services, EndpointSlices, Nodes,
//! our configuration CRDs and the Secrets of its own namespace (BGP passwords, the membership
//! key). Every change bumps a counter on a `watch` channel; the speaker then passes over the
//! whole current view (level-triggered). The two large caches, Services and EndpointSlices,
//! also log which objects changed, and the executor keeps its own [`Lists`] of them up to date
//! by those alone.

use ferrolb_config::{Config, ConfigError};
use ferrolb_runtime::Wiring;
use ferrolb_runtime::change_log::ChangeLog;
use ferrolb_runtime::groups::{ConfigGroup, ResolvedGroups};
use ferrolb_runtime::store::{ConfigNamespaces, ConfigStores, WriterDropped};
use ferrolb_speaker_core::pass::Mirror;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::{Api, Client};
use std::collections::BTreeMap;

/// The speaker's caches.
#[derive(Clone)]
pub struct SpeakerStores {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    /// Which Services and EndpointSlices changed since [`SpeakerStores::refresh`] last read
    /// them (one reader: the executor).
    service_changes: ChangeLog<Service>,
    slice_changes: ChangeLog<EndpointSlice>,
    nodes: Store<Node>,
    secrets: Store<Secret>,
    /// Secrets of MetalLB's namespace (its BGPPeers' password Secrets), when that group is read.
    metallb_secrets: Option<(String, Store<Secret>)>,
    config: ConfigStores,
}

impl SpeakerStores {
    /// Starts every reflector. `ferrolb.io` configuration and Secrets are read in `namespace`
    /// only, `metallb.io` configuration (when `groups` has it) in `metallb_namespace`, and
    /// Secrets there when `metallb_secrets_readable` (a grant the user chooses to give).
    pub fn start<S>(
        client: &Client,
        namespace: &str,
        metallb_namespace: &str,
        groups: &ResolvedGroups,
        metallb_secrets_readable: bool,
        w: &mut Wiring<S>,
    ) -> Self {
        let (services, service_changes) = w.logged_store(Api::all(client.clone()));
        let (slices, slice_changes) = w.logged_store(Api::all(client.clone()));
        Self {
            services,
            slices,
            service_changes,
            slice_changes,
            nodes: w.store(Api::all(client.clone())),
            secrets: w.store(Api::namespaced(client.clone(), namespace)),
            metallb_secrets: (groups.uses(ConfigGroup::Metallb)
                && metallb_namespace != namespace
                && metallb_secrets_readable)
                .then(|| {
                    let store = w.store(Api::namespaced(client.clone(), metallb_namespace));
                    (metallb_namespace.to_string(), store)
                }),
            config: w.config_stores(
                client,
                ConfigNamespaces {
                    ferrolb: Some(namespace),
                    metallb: Some(metallb_namespace),
                },
                groups,
            ),
        }
    }

    /// Waits until every cache holds a complete first listing.
    pub async fn wait_until_ready(&self) -> Result<(), WriterDropped> {
        self.services.wait_until_ready().await?;
        self.slices.wait_until_ready().await?;
        self.nodes.wait_until_ready().await?;
        self.secrets.wait_until_ready().await?;
        if let Some((_, s)) = &self.metallb_secrets {
            s.wait_until_ready().await?;
        }
        self.config.wait_until_ready().await
    }

    /// The configuration from the CRDs as they are now, built again only when one changed (the
    /// caller keeps its last valid configuration when this is an error).
    pub fn config(&self) -> Result<std::sync::Arc<Config>, Vec<ConfigError>> {
        self.config.build()
    }

    /// Brings `lists` up to date with the Service and EndpointSlice caches, by the objects that
    /// changed since the last call (the whole caches after a relist).
    pub fn refresh(&self, lists: &mut Lists) {
        refresh(&self.services, &self.service_changes, &mut lists.services);
        refresh(&self.slices, &self.slice_changes, &mut lists.slices);
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
        values_of(&self.secrets, key)
    }

    /// The `password` of every Secret the speaker reads (its namespace's, and MetalLB's when
    /// that group is read), by (namespace, name): BGPPeers name them in `passwordSecret`.
    pub fn passwords(&self, namespace: &str) -> BTreeMap<(String, String), String> {
        let own = std::iter::once((namespace, &self.secrets));
        let metallb = self
            .metallb_secrets
            .iter()
            .map(|(ns, store)| (ns.as_str(), store));
        own.chain(metallb)
            .flat_map(|(ns, store)| {
                values_of(store, "password")
                    .into_iter()
                    .filter_map(move |(name, bytes)| {
                        let text = String::from_utf8(bytes).ok()?;
                        Some(((ns.to_string(), name), text))
                    })
            })
            .collect()
    }
}

/// `data[key]` of every Secret in `store`, by Secret name.
/// The executor's own lists of every Service and EndpointSlice (see [`Mirror`]).
#[derive(Default)]
pub struct Lists {
    services: Mirror<ObjectRef<Service>, Service>,
    slices: Mirror<ObjectRef<EndpointSlice>, EndpointSlice>,
}

impl Lists {
    /// Every Service, as of the last [`SpeakerStores::refresh`].
    pub fn services(&self) -> &[std::sync::Arc<Service>] {
        self.services.objects()
    }

    /// Every EndpointSlice, as of the last [`SpeakerStores::refresh`].
    pub fn slices(&self) -> &[std::sync::Arc<EndpointSlice>] {
        self.slices.objects()
    }
}

fn refresh<K>(store: &Store<K>, log: &ChangeLog<K>, list: &mut Mirror<ObjectRef<K>, K>)
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let changes = log.take();
    if changes.relisted {
        list.reset(
            store
                .state()
                .into_iter()
                .map(|obj| (ObjectRef::from_obj(obj.as_ref()), obj)),
        );
    }
    for key in changes.keys {
        let now = store.get(&key);
        list.set(key, now);
    }
}

fn values_of(store: &Store<Secret>, key: &str) -> BTreeMap<String, Vec<u8>> {
    store
        .state()
        .iter()
        .filter_map(|s| {
            let name = s.metadata.name.clone()?;
            let bytes = s.data.as_ref()?.get(key)?;
            Some((name, bytes.0.clone()))
        })
        .collect()
}
