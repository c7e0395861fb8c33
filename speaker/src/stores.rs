//! Reflector-backed caches of everything the speaker reads: Services, EndpointSlices, Nodes,
//! our configuration CRDs and the Secrets of its own namespace (BGP passwords, the membership
//! key). Every change bumps a counter on a `watch` channel; the speaker then passes over the
//! whole current view (level-triggered).

use ferrolb_config::{Config, ConfigError};
use ferrolb_runtime::Wiring;
use ferrolb_runtime::groups::{ConfigGroup, ResolvedGroups};
use ferrolb_runtime::store::{ConfigNamespaces, ConfigStores, WriterDropped};
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::{Api, Client};
use std::collections::BTreeMap;

/// The speaker's caches.
#[derive(Clone)]
pub struct SpeakerStores {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
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
        Self {
            services: w.store(Api::all(client.clone())),
            slices: w.store(Api::all(client.clone())),
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

    /// Builds the configuration from the CRDs as they are now (the caller keeps its last valid
    /// configuration when this is an error).
    pub fn config(&self) -> Result<Config, Vec<ConfigError>> {
        self.config.build()
    }

    /// Every Service now cached.
    pub fn services(&self) -> Vec<std::sync::Arc<Service>> {
        self.services.state()
    }

    /// Every EndpointSlice now cached.
    pub fn slices(&self) -> Vec<std::sync::Arc<EndpointSlice>> {
        self.slices.state()
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
