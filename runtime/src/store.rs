//! Reflector-backed caches. Every applied or deleted object, and the end of every (re)list,
//! bumps a counter on a `watch` channel, so a binary's loop can recompute level-triggered from
//! the whole current view.

use crate::change_log::ChangeLog;
use crate::groups::{ConfigGroup, ResolvedGroups};
use ferrolb_api::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use ferrolb_config::manifests::{ClusterObject, group_conflicts, read_cluster_objects};
use ferrolb_config::{Config, ConfigError, Inputs};
use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use kube::runtime::reflector::store::WriterDropped;

/// Starts a reflector for `K` on `api` in `tasks`; every applied or deleted object, and the
/// end of every (re)list, bumps `changes`.
pub fn spawn_store<K>(api: Api<K>, changes: watch::Sender<u64>, tasks: &mut JoinSet<()>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    spawn_pruned_store(api, |_| {}, changes, tasks)
}

/// [`spawn_store`] keeping each object as `prune` leaves it: a binary that caches many objects
/// drops the fields it never reads.
pub fn spawn_pruned_store<K>(
    api: Api<K>,
    prune: fn(&mut K),
    changes: watch::Sender<u64>,
    tasks: &mut JoinSet<()>,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&Default::default()).to_string();
    spawn_watch(api, writer, kind, changes, prune, |_| {}, tasks);
    reader
}

/// [`spawn_store`] with a [`ChangeLog`] of what each change touched, recorded before the
/// change bumps `changes`.
pub fn spawn_logged_store<K>(
    api: Api<K>,
    changes: watch::Sender<u64>,
    tasks: &mut JoinSet<()>,
) -> (Store<K>, ChangeLog<K>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&Default::default()).to_string();
    let log = ChangeLog::new();
    let recorder = log.clone();
    spawn_watch(
        api,
        writer,
        kind,
        changes,
        |_| {},
        move |e| recorder.record(e),
        tasks,
    );
    (reader, log)
}

/// [`spawn_store`] for objects whose type is known only at run time (MetalLB's kinds, read as
/// `DynamicObject`s of the resource `ar`).
pub fn spawn_dynamic_store(
    api: Api<DynamicObject>,
    ar: ApiResource,
    changes: watch::Sender<u64>,
    tasks: &mut JoinSet<()>,
) -> Store<DynamicObject> {
    let writer = reflector::store::Writer::new(ar.clone());
    let reader = writer.as_reader();
    let kind = ar.kind.clone();
    spawn_watch(api, writer, kind, changes, |_| {}, |_| {}, tasks);
    reader
}

fn spawn_watch<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    kind: String,
    changes: watch::Sender<u64>,
    prune: fn(&mut K),
    mut on_event: impl FnMut(&watcher::Event<K>) + Send + 'static,
    tasks: &mut JoinSet<()>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    // managedFields are bookkeeping of the API server's field ownership that neither binary
    // reads, and a cache would keep them for every object (≈ 21 MiB of the controller's peak
    // with 50,000 Services, docs/benchmarks.md).
    let pruned = watcher(api, watcher::Config::default()).modify(move |obj| {
        obj.managed_fields_mut().clear();
        prune(obj);
    });
    let stream = crate::watch_backoff::paced(reflector::reflector(writer, pruned));
    tasks.spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    on_event(&event);
                    // Deletions count (a deleted Service or pool must start a pass at once).
                    // A relist's objects reach the cache only at its end, which replaces the
                    // cache as a whole: that end counts, and can be the only news of objects
                    // deleted while the watch was down.
                    let touched = matches!(
                        event,
                        watcher::Event::Apply(_)
                            | watcher::Event::Delete(_)
                            | watcher::Event::InitDone
                    );
                    if touched {
                        changes.send_modify(|n| *n = n.wrapping_add(1));
                    }
                }
                Err(e) => tracing::warn!(error = %e, kind = %kind, "watch error"),
            }
        }
    });
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

/// Where each group's configuration objects are read: a namespace, or `None` for all.
#[derive(Clone, Copy, Debug)]
pub struct ConfigNamespaces<'a> {
    /// `ferrolb.io` objects.
    pub ferrolb: Option<&'a str>,
    /// `metallb.io` objects (MetalLB's default is `metallb-system`).
    pub metallb: Option<&'a str>,
}

/// Caches of the configuration CRDs of every group in use.
#[derive(Clone)]
pub struct ConfigStores {
    ferrolb: Option<FerrolbStores>,
    metallb: Option<MetallbStores>,
    groups: ResolvedGroups,
    /// The last configuration built, shared by the clones: [`ConfigStores::build`] serves it
    /// again while the objects it was built from are unchanged (a speaker runs a pass for every
    /// endpoint change; building every time was 6.5 % of its CPU under churn).
    last_built: Arc<Mutex<Option<Built>>>,
}

/// A configuration (or why it is invalid) and the objects it was built from.
struct Built {
    from: Vec<(String, String)>,
    result: Result<Arc<Config>, Vec<ConfigError>>,
}

/// Which configuration objects there are and which version of each: equal fingerprints mean
/// the same objects, so the same configuration. `None`: an object without a
/// resourceVersion, which cannot be told apart from its next version.
type ConfigFingerprint = Option<Vec<(String, String)>>;

/// Adds the (uid, resourceVersion) of every object of `store` to `out`; `None` once one has
/// no resourceVersion.
fn add_versions<K>(store: &Store<K>, out: &mut ConfigFingerprint)
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    for o in store.state() {
        let (Some(list), Some(rv)) = (out.as_mut(), o.meta().resource_version.as_ref()) else {
            *out = None;
            return;
        };
        list.push((o.meta().uid.clone().unwrap_or_default(), rv.clone()));
    }
}

/// Caches of `ferrolb.io` objects.
#[derive(Clone)]
struct FerrolbStores {
    pools: Store<IPAddressPool>,
    l2: Store<L2Advertisement>,
    bgp: Store<BGPAdvertisement>,
    peers: Store<BGPPeer>,
    bfd: Store<BFDProfile>,
    communities: Store<Community>,
}

/// Caches of `metallb.io` objects, by kind.
#[derive(Clone)]
struct MetallbStores {
    kinds: Vec<(String, Store<DynamicObject>)>,
}

/// MetalLB's configuration kinds and their plural resource names.
const METALLB_KINDS: [(&str, &str); 6] = [
    ("IPAddressPool", "ipaddresspools"),
    ("L2Advertisement", "l2advertisements"),
    ("BGPAdvertisement", "bgpadvertisements"),
    ("BGPPeer", "bgppeers"),
    ("BFDProfile", "bfdprofiles"),
    ("Community", "communities"),
];

impl ConfigStores {
    /// Starts a watch of every configuration kind of every group in `groups`.
    pub fn start(
        client: &Client,
        namespaces: ConfigNamespaces<'_>,
        groups: &ResolvedGroups,
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
        let ns = namespaces.ferrolb;
        let ferrolb = groups.uses(ConfigGroup::Ferrolb).then(|| FerrolbStores {
            pools: spawn_store(api(client, ns), changes.clone(), tasks),
            l2: spawn_store(api(client, ns), changes.clone(), tasks),
            bgp: spawn_store(api(client, ns), changes.clone(), tasks),
            peers: spawn_store(api(client, ns), changes.clone(), tasks),
            bfd: spawn_store(api(client, ns), changes.clone(), tasks),
            communities: spawn_store(api(client, ns), changes.clone(), tasks),
        });
        let metallb = groups.uses(ConfigGroup::Metallb).then(|| MetallbStores {
            kinds: METALLB_KINDS
                .iter()
                .map(|&(kind, plural)| {
                    let version = if kind == "BGPPeer" {
                        groups.metallb_bgp_peer_version
                    } else {
                        "v1beta1"
                    };
                    let ar = ApiResource {
                        group: ferrolb_api::METALLB_GROUP.into(),
                        version: version.into(),
                        api_version: format!("{}/{version}", ferrolb_api::METALLB_GROUP),
                        kind: kind.into(),
                        plural: plural.into(),
                    };
                    let api = match namespaces.metallb {
                        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
                        None => Api::all_with(client.clone(), &ar),
                    };
                    let store = spawn_dynamic_store(api, ar, changes.clone(), tasks);
                    (kind.to_string(), store)
                })
                .collect(),
        });
        Self {
            ferrolb,
            metallb,
            groups: groups.clone(),
            last_built: Arc::default(),
        }
    }

    /// The groups read.
    pub fn groups(&self) -> &ResolvedGroups {
        &self.groups
    }

    /// Waits until every cache holds a complete first listing.
    pub async fn wait_until_ready(&self) -> Result<(), WriterDropped> {
        if let Some(f) = &self.ferrolb {
            f.pools.wait_until_ready().await?;
            f.l2.wait_until_ready().await?;
            f.bgp.wait_until_ready().await?;
            f.peers.wait_until_ready().await?;
            f.bfd.wait_until_ready().await?;
            f.communities.wait_until_ready().await?;
        }
        if let Some(m) = &self.metallb {
            for (_, store) in &m.kinds {
                store.wait_until_ready().await?;
            }
        }
        Ok(())
    }

    /// The objects of `ferrolb.io`, sorted by namespace and name.
    fn ferrolb_inputs(&self) -> Inputs {
        let Some(f) = &self.ferrolb else {
            return Inputs::default();
        };
        Inputs {
            pools: sorted(&f.pools),
            l2_advertisements: sorted(&f.l2),
            bgp_advertisements: sorted(&f.bgp),
            peers: sorted(&f.peers),
            bfd_profiles: sorted(&f.bfd),
            communities: sorted(&f.communities),
        }
    }

    /// The objects of `metallb.io`, converted, and the problems of those that could not be.
    fn metallb_inputs(&self) -> (Inputs, Vec<ConfigError>) {
        let Some(m) = &self.metallb else {
            return (Inputs::default(), Vec::new());
        };
        let mut objects = Vec::new();
        for (kind, store) in &m.kinds {
            for obj in sorted(store) {
                let api_version = obj
                    .types
                    .as_ref()
                    .map(|t| t.api_version.clone())
                    .filter(|v| !v.is_empty());
                let namespace = obj.metadata.namespace.clone().unwrap_or_default();
                let name = obj.metadata.name.clone().unwrap_or_default();
                let mut value = match serde_json::to_value(&obj) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, %kind, %namespace, %name, "unreadable object");
                        continue;
                    }
                };
                // List items may come without apiVersion and kind; the watch says which they are.
                value["kind"] = kind.clone().into();
                value["apiVersion"] = api_version
                    .unwrap_or_else(|| store_api_version(kind, &self.groups))
                    .into();
                objects.push(ClusterObject {
                    kind: kind.clone(),
                    namespace,
                    name,
                    value,
                });
            }
        }
        read_cluster_objects(objects)
    }

    /// Every object of every group in use, as the configuration is built from them; objects
    /// that could not be read and names used in both groups are errors.
    pub fn inputs(&self) -> (Inputs, Vec<ConfigError>) {
        let mut inputs = self.ferrolb_inputs();
        let (metallb, mut errors) = self.metallb_inputs();
        errors.extend(group_conflicts(&inputs, &metallb));
        inputs.extend(metallb);
        (inputs, errors)
    }

    /// The objects as they are now, by identity and version (see [`ConfigFingerprint`]).
    fn fingerprint(&self) -> ConfigFingerprint {
        let mut out = Some(Vec::new());
        if let Some(f) = &self.ferrolb {
            add_versions(&f.pools, &mut out);
            add_versions(&f.l2, &mut out);
            add_versions(&f.bgp, &mut out);
            add_versions(&f.peers, &mut out);
            add_versions(&f.bfd, &mut out);
            add_versions(&f.communities, &mut out);
        }
        if let Some(m) = &self.metallb {
            for (_, store) in &m.kinds {
                add_versions(store, &mut out);
            }
        }
        in_order(out)
    }

    /// The configuration as the objects are now (or why it is invalid): built again only when
    /// an object was added, changed or deleted since the last build, else the same shared
    /// configuration as the last time.
    pub fn build(&self) -> Result<Arc<Config>, Vec<ConfigError>> {
        let fingerprint = self.fingerprint();
        let mut last = crate::sync::lock(&self.last_built);
        if let (Some(from), Some(built)) = (&fingerprint, last.as_ref())
            && built.from == *from
        {
            return built.result.clone();
        }
        let result = self.build_now().map(Arc::new);
        *last = fingerprint.map(|from| Built {
            from,
            result: result.clone(),
        });
        result
    }

    fn build_now(&self) -> Result<Config, Vec<ConfigError>> {
        let (inputs, mut errors) = self.inputs();
        match Config::build(&inputs) {
            Ok(config) if errors.is_empty() => Ok(config),
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }
}

/// A fingerprint whose entries are in one order whatever order the caches listed them in.
fn in_order(mut fingerprint: ConfigFingerprint) -> ConfigFingerprint {
    if let Some(list) = fingerprint.as_mut() {
        list.sort_unstable();
    }
    fingerprint
}

fn store_api_version(kind: &str, groups: &ResolvedGroups) -> String {
    let version = if kind == "BGPPeer" {
        groups.metallb_bgp_peer_version
    } else {
        "v1beta1"
    };
    format!("{}/{version}", ferrolb_api::METALLB_GROUP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn pool(name: &str, uid: &str, rv: Option<&str>) -> IPAddressPool {
        let mut p = IPAddressPool::new(name, Default::default());
        p.metadata = ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ferrolb-system".into()),
            uid: Some(uid.into()),
            resource_version: rv.map(str::to_string),
            ..ObjectMeta::default()
        };
        p
    }

    fn fingerprint_of(objects: &[IPAddressPool]) -> ConfigFingerprint {
        let (store, mut writer) = reflector::store::<IPAddressPool>();
        for o in objects {
            writer.apply_watcher_event(&watcher::Event::Apply(o.clone()));
        }
        let mut out = Some(Vec::new());
        add_versions(&store, &mut out);
        in_order(out)
    }

    #[test]
    fn a_fingerprint_changes_with_any_object_version_and_only_then() {
        let a1 = pool("a", "u-a", Some("1"));
        let b1 = pool("b", "u-b", Some("2"));
        let base = fingerprint_of(&[a1.clone(), b1.clone()]);
        assert!(base.is_some());
        assert_eq!(base, fingerprint_of(&[b1.clone(), a1.clone()]), "order");
        let a3 = pool("a", "u-a", Some("3"));
        assert_ne!(base, fingerprint_of(&[a3, b1.clone()]), "a new version");
        assert_ne!(
            base,
            fingerprint_of(std::slice::from_ref(&a1)),
            "an object gone"
        );
        let a_again = pool("a", "u-a2", Some("1"));
        assert_ne!(
            base,
            fingerprint_of(&[a_again, b1]),
            "deleted and created again"
        );
        assert_eq!(fingerprint_of(&[pool("c", "u-c", None), a1]), None);
    }

    /// Config stores of the ferrolb.io group whose pools are fed through the returned writer.
    fn ferrolb_stores() -> (ConfigStores, reflector::store::Writer<IPAddressPool>) {
        let (pools, writer) = reflector::store::<IPAddressPool>();
        let stores = ConfigStores {
            ferrolb: Some(FerrolbStores {
                pools,
                l2: reflector::store().0,
                bgp: reflector::store().0,
                peers: reflector::store().0,
                bfd: reflector::store().0,
                communities: reflector::store().0,
            }),
            metallb: None,
            groups: ResolvedGroups {
                groups: [crate::groups::ConfigGroup::Ferrolb].into(),
                metallb_bgp_peer_version: "v1beta1",
            },
            last_built: Arc::default(),
        };
        (stores, writer)
    }

    fn with_addresses(mut p: IPAddressPool, addresses: &str) -> IPAddressPool {
        p.spec.addresses = vec![addresses.into()];
        p
    }

    /// Whether the built configuration has pool `name` and it holds `ip`.
    fn holds(built: &Result<Arc<Config>, Vec<ConfigError>>, name: &str, ip: &str) -> bool {
        let ip = ip.parse().expect("test address");
        built
            .as_ref()
            .is_ok_and(|c| c.pools.get(name).is_some_and(|p| p.contains(ip)))
    }

    #[test]
    fn a_build_sees_every_change_of_an_object_and_serves_the_last_one_meanwhile() {
        let (stores, mut pools) = ferrolb_stores();
        let apply = |w: &mut reflector::store::Writer<IPAddressPool>, p: IPAddressPool| {
            w.apply_watcher_event(&watcher::Event::Apply(p));
        };
        apply(
            &mut pools,
            with_addresses(pool("a", "u-a", Some("1")), "10.200.10.0/30"),
        );
        let first = stores.build();
        assert!(holds(&first, "a", "10.200.10.1"), "{first:?}");
        let same = |a: &Result<Arc<Config>, _>, b: &Result<Arc<Config>, _>| match (a, b) {
            (Ok(a), Ok(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        assert!(
            same(&stores.build(), &first),
            "unchanged objects: not built again"
        );
        // A clone shares what was built.
        assert!(same(&stores.clone().build(), &first), "a clone");

        apply(
            &mut pools,
            with_addresses(pool("a", "u-a", Some("2")), "10.200.11.0/30"),
        );
        let second = stores.build();
        assert!(
            holds(&second, "a", "10.200.11.1"),
            "a new version: {second:?}"
        );
        assert!(
            !holds(&second, "a", "10.200.10.1"),
            "a new version: {second:?}"
        );

        // Without a resourceVersion an object's versions cannot be told apart: built each time.
        apply(
            &mut pools,
            with_addresses(pool("b", "u-b", None), "10.200.12.0/30"),
        );
        assert!(holds(&stores.build(), "b", "10.200.12.1"));
        apply(
            &mut pools,
            with_addresses(pool("b", "u-b", None), "10.200.13.0/30"),
        );
        assert!(
            holds(&stores.build(), "b", "10.200.13.1"),
            "a version without resourceVersion"
        );

        apply(
            &mut pools,
            with_addresses(pool("b", "u-b", Some("3")), "not an address"),
        );
        let invalid = stores.build();
        assert!(invalid.is_err(), "{invalid:?}");
        assert_eq!(stores.build(), invalid, "the same invalid objects");
        apply(
            &mut pools,
            with_addresses(pool("b", "u-b", Some("4")), "10.200.14.0/30"),
        );
        assert!(holds(&stores.build(), "b", "10.200.14.1"), "valid again");

        pools.apply_watcher_event(&watcher::Event::Delete(pool("b", "u-b", Some("4"))));
        let gone = stores.build();
        assert!(
            gone.as_ref().is_ok_and(|c| !c.pools.contains_key("b")),
            "{gone:?}"
        );
    }
}
