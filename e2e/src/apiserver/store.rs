//! The object store: every object of every kind, one resourceVersion sequence across all
//! kinds (like etcd's revision), a bounded event history for watch resumption and `410 Gone`,
//! and a broadcast channel that feeds open watches.
//!
//! All reads and writes go through one mutex and never await while holding it, so every
//! write is atomic with respect to its optimistic-concurrency check and to the watch
//! subscriptions that must not miss or duplicate an event.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use axum::body::Bytes;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::error::{ApiError, ApiResult};
use super::resources::{self, GroupResource, ResourceType};

/// Capacity of the broadcast channel; a watch that falls this far behind is closed and the
/// client resumes from its last resourceVersion (as after any dropped watch).
const BROADCAST_CAPACITY: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in history and sent to watchers.
///
/// Objects are shared (`Arc`) with the store and with every watcher: an event costs no copy of
/// its object, however many watches receive it.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub gr: GroupResource,
    pub namespace: String,
    pub type_: EventType,
    pub object: Arc<Value>,
    /// The object before a modification: a watch with a selector turns MODIFIED into
    /// ADDED/DELETED when the object enters/leaves the selection, as the real server does.
    pub prev: Option<Arc<Value>>,
    /// `object` serialised, done by the first watch that sends it and reused by the others.
    encoded: OnceLock<Bytes>,
}

impl Event {
    fn new(
        rv: u64,
        gr: GroupResource,
        namespace: String,
        type_: EventType,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) -> Self {
        Event {
            rv,
            gr,
            namespace,
            type_,
            object,
            prev,
            encoded: OnceLock::new(),
        }
    }

    /// The stored object as JSON, serialised once for all watches.
    pub fn encoded_object(&self) -> &Bytes {
        self.encoded
            .get_or_init(|| Bytes::from(self.object.to_string()))
    }
}

/// What a write closure decides.
pub enum Write {
    /// Store this object (create or replace). No event and no new resourceVersion when it is
    /// identical to the stored one, as etcd-backed updates that change nothing.
    Put(Value),
    /// Remove the object (a DELETED event).
    Remove,
}

/// The result of a write: the stored (or removed) object and what happened.
pub struct Written {
    pub object: Arc<Value>,
    pub created: bool,
    /// The event the write recorded (none for a write that changed nothing): the response
    /// reuses its serialisation, made once for the response and every watch.
    pub event: Option<Arc<Event>>,
}

type Key = (String, String);

/// Serializable state for restarts (`--state` file and in-memory snapshot).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(rename = "resourceVersion")]
    pub resource_version: u64,
    pub objects: Vec<SnapshotObject>,
    /// The key ServiceAccount tokens are signed with (base64url), so tokens issued before a
    /// restart stay valid after it.
    #[serde(
        rename = "serviceAccountSigningKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub service_account_signing_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotObject {
    pub group: String,
    pub resource: String,
    pub object: Value,
}

pub struct Inner {
    rv: u64,
    /// Objects are immutable once stored (a write replaces the `Arc`), so reads, lists, watch
    /// backlogs and events share them instead of copying.
    objects: BTreeMap<GroupResource, BTreeMap<Key, Arc<Value>>>,
    history: VecDeque<Arc<Event>>,
    /// Every event with rv > history_start is in `history`.
    history_start: u64,
    history_limit: usize,
    /// Shared with every request, which needs the list to route but must not copy it (CRD
    /// types carry their whole schema).
    types: Arc<[ResourceType]>,
    changes: u64,
    /// Cluster IPs and node ports held by Services, maintained on every Service write.
    services: super::service_index::ServiceIndex,
}

impl Inner {
    /// Cluster IPs and node ports held by Services.
    pub fn service_index(&self) -> &super::service_index::ServiceIndex {
        &self.services
    }

    pub fn rv(&self) -> u64 {
        self.rv
    }

    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The served types, shared (a cheap reference-count increment).
    pub fn types_shared(&self) -> Arc<[ResourceType]> {
        self.types.clone()
    }

    pub fn get(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<&Value> {
        self.get_shared(gr, ns, name).map(|v| &**v)
    }

    /// The stored object itself, to keep after the lock is released without copying it.
    pub fn get_shared(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.objects
            .get(gr)?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of one collection in (namespace, name) order; `ns = None` for all namespaces.
    pub fn list<'a>(
        &'a self,
        gr: &GroupResource,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Arc<Value>)> + 'a {
        let coll = self.objects.get(gr);
        // A namespace's objects are one contiguous key range: no scan of the others.
        let range = match (coll, ns) {
            (Some(m), Some(n)) => Some(m.range::<Key, _>((
                std::ops::Bound::Included((n.to_string(), String::new())),
                std::ops::Bound::Unbounded,
            ))),
            (Some(m), None) => Some(m.range::<Key, _>(..)),
            (None, _) => None,
        };
        range
            .into_iter()
            .flatten()
            .take_while(move |((n, _), _)| ns.is_none_or(|want| want == n))
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.get(&core("namespaces"), "", ns).is_some()
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, ev: Event, tx: &broadcast::Sender<Arc<Event>>) -> Arc<Event> {
        let ev = Arc::new(ev);
        self.history.push_back(ev.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.history_start = old.rv;
            }
        }
        self.changes += 1;
        // No receivers is fine: nobody is watching.
        let _ = tx.send(ev.clone());
        ev
    }

    fn refresh_types(&mut self) {
        let mut types = resources::builtins();
        for crd in self
            .objects
            .get(&crd_gr())
            .into_iter()
            .flat_map(|m| m.values())
        {
            // A CRD being deleted stays served until it is gone.
            types.extend(resources::from_crd(crd));
        }
        self.types = types.into();
    }

    fn remove_and_record(
        &mut self,
        gr: &GroupResource,
        key: &Key,
        tx: &broadcast::Sender<Arc<Event>>,
    ) -> Option<(Arc<Value>, Arc<Event>)> {
        let removed = self.objects.get_mut(gr)?.remove(key)?;
        if *gr == core("services") {
            self.services.update(key, Some(&removed), None);
        }
        let rv = self.next_rv();
        // The DELETED event carries the deletion's version; the one copy is made here.
        let mut obj = Arc::unwrap_or_clone(removed);
        set_rv(&mut obj, rv);
        let obj = Arc::new(obj);
        let event = self.record(
            Event::new(
                rv,
                gr.clone(),
                key.0.clone(),
                EventType::Deleted,
                obj.clone(),
                None,
            ),
            tx,
        );
        Some((obj, event))
    }
}

pub fn core(resource: &str) -> GroupResource {
    GroupResource {
        group: String::new(),
        resource: resource.to_string(),
    }
}

pub fn crd_gr() -> GroupResource {
    GroupResource {
        group: "apiextensions.k8s.io".to_string(),
        resource: "customresourcedefinitions".to_string(),
    }
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
    }
}

/// Equality that ignores the resourceVersion and managedFields timestamps (a write that
/// changes nothing else is a no-op, as in the real server). Compares in place: this runs on
/// every update, and copying both objects to strip those fields cost more than the compare.
fn same_content(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            equal_maps_except(a, b, &["metadata"], |k, x, y| {
                debug_assert_eq!(k, "metadata");
                same_metadata(x, y)
            })
        }
        _ => a == b,
    }
}

/// `a == b` for two maps, except that keys in `special` are compared with `cmp` (absent on
/// both sides is equal; absent on one side only is not).
fn equal_maps_except(
    a: &serde_json::Map<String, Value>,
    b: &serde_json::Map<String, Value>,
    special: &[&str],
    cmp: impl Fn(&str, &Value, &Value) -> bool,
) -> bool {
    a.len() == b.len()
        && a.iter().all(|(k, va)| match b.get(k) {
            None => false,
            Some(vb) if special.contains(&k.as_str()) => cmp(k, va, vb),
            Some(vb) => va == vb,
        })
}

fn same_metadata(a: &Value, b: &Value) -> bool {
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return a == b;
    };
    // resourceVersion is ignored: present on one side only is still the same content.
    let without_rv = |m: &serde_json::Map<String, Value>| {
        m.len() - usize::from(m.contains_key("resourceVersion"))
    };
    without_rv(a) == without_rv(b)
        && a.iter().all(|(k, va)| match k.as_str() {
            "resourceVersion" => true,
            "managedFields" => b.get(k).is_some_and(|vb| same_managed_fields(va, vb)),
            _ => b.get(k) == Some(va),
        })
}

fn same_managed_fields(a: &Value, b: &Value) -> bool {
    let (Value::Array(a), Value::Array(b)) = (a, b) else {
        return a == b;
    };
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Value::Object(x), Value::Object(y)) => {
                let without_time = |m: &serde_json::Map<String, Value>| {
                    m.len() - usize::from(m.contains_key("time"))
                };
                without_time(x) == without_time(y)
                    && x.iter().all(|(k, vx)| k == "time" || y.get(k) == Some(vx))
            }
            _ => x == y,
        })
}

/// Where a watch starts.
pub enum WatchFrom {
    /// Replay history after this resourceVersion, then live events.
    Version(u64),
    /// Current objects as synthetic ADDED events, then live events.
    Now,
}

/// What a new watch receives before live events.
pub struct Subscription {
    pub backlog: Vec<Arc<Event>>,
    /// For `WatchFrom::Now`: the current objects.
    pub initial: Vec<Arc<Value>>,
    pub rv: u64,
    pub rx: broadcast::Receiver<Arc<Event>>,
}

pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Event>>,
}

impl Store {
    pub fn new(history_limit: usize, snapshot: Option<Snapshot>) -> Self {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let mut inner = Inner {
            rv: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_start: 0,
            history_limit: history_limit.max(1),
            types: Vec::new().into(),
            changes: 0,
            services: Default::default(),
        };
        match snapshot {
            Some(snap) => {
                inner.rv = snap.resource_version;
                for o in snap.objects {
                    let ns = o.object["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    let Some(name) = o.object["metadata"]["name"].as_str().map(str::to_string)
                    else {
                        continue;
                    };
                    let gr = GroupResource {
                        group: o.group,
                        resource: o.resource,
                    };
                    if gr == core("services") {
                        inner
                            .services
                            .update(&(ns.clone(), name.clone()), None, Some(&o.object));
                    }
                    inner
                        .objects
                        .entry(gr)
                        .or_default()
                        .insert((ns, name), Arc::new(o.object));
                }
            }
            None => {
                for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                    inner.rv += 1;
                    let obj = json!({
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {
                            "name": ns,
                            "uid": super::ids::new_uid(),
                            "resourceVersion": inner.rv.to_string(),
                            "creationTimestamp": super::time::now_rfc3339(),
                            "labels": {"kubernetes.io/metadata.name": ns},
                        },
                        "spec": {"finalizers": ["kubernetes"]},
                        "status": {"phase": "Active"},
                    });
                    inner
                        .objects
                        .entry(core("namespaces"))
                        .or_default()
                        .insert((String::new(), ns.to_string()), Arc::new(obj));
                }
            }
        }
        // Watches may resume from any version up to now only if history covers it; after a
        // restart history is empty, so older versions get 410 as after an etcd compaction.
        inner.history_start = inner.rv;
        inner.refresh_types();
        Store {
            inner: Mutex::new(inner),
            tx,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug in this server; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        Snapshot {
            resource_version: inner.rv,
            objects: inner
                .objects
                .iter()
                .flat_map(|(gr, m)| {
                    m.values().map(move |o| SnapshotObject {
                        group: gr.group.clone(),
                        resource: gr.resource.clone(),
                        object: Value::clone(o),
                    })
                })
                .collect(),
            service_account_signing_key: None,
        }
    }

    /// A counter that changes on every write (for periodic state-file saves).
    pub fn change_count(&self) -> u64 {
        self.lock().changes
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn history_start(&self) -> u64 {
        self.lock().history_start
    }

    /// Forget all history, as an etcd compaction: watches from older versions get 410.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.history_start = inner.rv;
    }

    /// Atomically read the current object and apply the closure's decision.
    pub fn write<F>(&self, gr: &GroupResource, ns: &str, name: &str, f: F) -> ApiResult<Written>
    where
        F: FnOnce(&Inner, Option<&Value>) -> ApiResult<Write>,
    {
        let mut inner = self.lock();
        let key = (ns.to_string(), name.to_string());
        let current = inner.get_shared(gr, ns, name).cloned();
        let decision = f(&inner, current.as_deref())?;
        let is_crd = *gr == crd_gr();
        let written = match decision {
            Write::Put(mut obj) => {
                if let Some(cur) = &current
                    && same_content(cur, &obj)
                {
                    return Ok(Written {
                        object: cur.clone(),
                        created: false,
                        event: None,
                    });
                }
                let rv = inner.next_rv();
                set_rv(&mut obj, rv);
                if *gr == core("services") {
                    inner.services.update(&key, current.as_deref(), Some(&obj));
                }
                let obj = Arc::new(obj);
                inner
                    .objects
                    .entry(gr.clone())
                    .or_default()
                    .insert(key.clone(), obj.clone());
                let created = current.is_none();
                let event = inner.record(
                    Event::new(
                        rv,
                        gr.clone(),
                        ns.to_string(),
                        if created {
                            EventType::Added
                        } else {
                            EventType::Modified
                        },
                        obj.clone(),
                        current,
                    ),
                    &self.tx,
                );
                Written {
                    object: obj,
                    created,
                    event: Some(event),
                }
            }
            Write::Remove => {
                let Some((obj, event)) = inner.remove_and_record(gr, &key, &self.tx) else {
                    return Err(ApiError::not_found(&gr.group, &gr.resource, name));
                };
                if is_crd {
                    // Deleting a CRD deletes all its objects.
                    let group = obj["spec"]["group"].as_str().unwrap_or("").to_string();
                    let plural = obj["spec"]["names"]["plural"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    self.remove_collection(
                        &mut inner,
                        &GroupResource {
                            group,
                            resource: plural,
                        },
                        None,
                    );
                }
                if *gr == core("namespaces") {
                    // Cascade: the namespace controller would delete everything inside.
                    let namespaced: Vec<GroupResource> = inner
                        .types
                        .iter()
                        .filter(|t| t.namespaced)
                        .map(ResourceType::group_resource)
                        .collect();
                    for gr in namespaced {
                        self.remove_collection(&mut inner, &gr, Some(name));
                    }
                }
                Written {
                    object: obj,
                    created: false,
                    event: Some(event),
                }
            }
        };
        if is_crd {
            inner.refresh_types();
        }
        Ok(written)
    }

    fn remove_collection(&self, inner: &mut Inner, gr: &GroupResource, ns: Option<&str>) {
        let keys: Vec<Key> = inner.list(gr, ns).map(|(k, _)| k.clone()).collect();
        for k in keys {
            inner.remove_and_record(gr, &k, &self.tx);
        }
    }

    /// Every change committed from now on.
    pub fn changes(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Subscribe a watch. `Err` is the 410 the client must answer with a relist.
    pub fn subscribe(
        &self,
        gr: &GroupResource,
        ns: Option<&str>,
        from: WatchFrom,
    ) -> ApiResult<Subscription> {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        match from {
            WatchFrom::Now => Ok(Subscription {
                backlog: Vec::new(),
                initial: inner.list(gr, ns).map(|(_, v)| v.clone()).collect(),
                rv: inner.rv,
                rx,
            }),
            WatchFrom::Version(v) => {
                if v < inner.history_start {
                    return Err(ApiError::gone(format!(
                        "too old resource version: {v} ({})",
                        inner.history_start
                    )));
                }
                let backlog = inner
                    .history
                    .iter()
                    .filter(|e| e.rv > v && e.gr == *gr && ns.is_none_or(|n| n == e.namespace))
                    .cloned()
                    .collect();
                Ok(Subscription {
                    backlog,
                    initial: Vec::new(),
                    rv: inner.rv,
                    rx,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}})
    }

    fn put(store: &Store, name: &str, data: &str) -> Value {
        let mut o = cm(name);
        o["data"] = json!({"k": data});
        store
            .write(&core("configmaps"), "default", name, |_, _| {
                Ok(Write::Put(o))
            })
            .map(|w| Value::clone(&w.object))
            .expect("write")
    }

    #[test]
    fn one_sequence_and_noop_writes() {
        let store = Store::new(10, None);
        let start = store.current_rv();
        let a = put(&store, "a", "1");
        assert_eq!(
            a["metadata"]["resourceVersion"],
            json!((start + 1).to_string())
        );
        // Same content: no new version.
        let again = put(&store, "a", "1");
        assert_eq!(
            again["metadata"]["resourceVersion"],
            a["metadata"]["resourceVersion"]
        );
        let b = put(&store, "b", "1");
        assert_eq!(
            b["metadata"]["resourceVersion"],
            json!((start + 2).to_string())
        );
    }

    #[test]
    fn same_content_ignores_only_the_version_and_manager_times() {
        let a = json!({"metadata": {"name": "a", "resourceVersion": "1",
            "managedFields": [{"manager": "m", "operation": "Update", "time": "t1"}]},
            "data": {"k": "v"}});
        let mut b = a.clone();
        b["metadata"]["resourceVersion"] = json!("2");
        b["metadata"]["managedFields"][0]["time"] = json!("t2");
        assert!(same_content(&a, &b));
        let mut no_rv = a.clone();
        if let Some(m) = no_rv["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        assert!(same_content(&a, &no_rv) && same_content(&no_rv, &a));
        let mut no_time = a.clone();
        if let Some(e) = no_time["metadata"]["managedFields"][0].as_object_mut() {
            e.remove("time");
        }
        assert!(same_content(&a, &no_time) && same_content(&no_time, &a));
        let mut data = b.clone();
        data["data"]["k"] = json!("w");
        assert!(!same_content(&a, &data));
        let mut manager = a.clone();
        manager["metadata"]["managedFields"][0]["manager"] = json!("n");
        assert!(!same_content(&a, &manager));
        let mut label = a.clone();
        label["metadata"]["labels"] = json!({"x": "y"});
        assert!(!same_content(&a, &label) && !same_content(&label, &a));
        let mut status = a.clone();
        status["status"] = json!({});
        assert!(!same_content(&a, &status) && !same_content(&status, &a));
        let mut swapped = a.clone();
        if let Some(m) = swapped["metadata"].as_object_mut() {
            m.remove("resourceVersion");
            m.insert("uid".into(), json!("u"));
        }
        assert!(!same_content(&a, &swapped) && !same_content(&swapped, &a));
    }

    #[test]
    fn list_by_namespace_is_exact() {
        let store = Store::new(10, None);
        for (ns, name) in [
            ("a", "x"),
            ("a-b", "y"),
            ("ab", "z"),
            ("a", "w"),
            ("b", "v"),
        ] {
            store
                .write(&core("configmaps"), ns, name, |_, _| {
                    Ok(Write::Put(
                        json!({"metadata": {"name": name, "namespace": ns}}),
                    ))
                })
                .expect("write");
        }
        let inner = store.lock();
        let names = |ns: Option<&str>| -> Vec<String> {
            inner
                .list(&core("configmaps"), ns)
                .map(|((n, name), _)| format!("{n}/{name}"))
                .collect()
        };
        assert_eq!(names(Some("a")), ["a/w", "a/x"]);
        assert_eq!(names(Some("ab")), ["ab/z"]);
        assert_eq!(names(Some("c")), Vec::<String>::new());
        assert_eq!(names(None), ["a/w", "a/x", "a-b/y", "ab/z", "b/v"]);
    }

    #[test]
    fn history_is_bounded_and_old_versions_are_gone() {
        let store = Store::new(3, None);
        let start = store.current_rv();
        for i in 0..5 {
            put(&store, "a", &i.to_string());
        }
        // 5 events, 3 kept: events start+3..start+5 remain, so resuming from start+2 works.
        assert!(
            store
                .subscribe(&core("configmaps"), None, WatchFrom::Version(start + 2))
                .is_ok()
        );
        let gone = store
            .subscribe(&core("configmaps"), None, WatchFrom::Version(start + 1))
            .err()
            .expect("410");
        assert_eq!(gone.code, 410);
        assert_eq!(gone.reason, "Expired");
        let sub = store
            .subscribe(&core("configmaps"), None, WatchFrom::Version(start + 3))
            .expect("sub");
        assert_eq!(sub.backlog.len(), 2);
        store.compact();
        assert!(
            store
                .subscribe(&core("configmaps"), None, WatchFrom::Version(start + 4))
                .is_err()
        );
        assert!(
            store
                .subscribe(&core("configmaps"), None, WatchFrom::Version(start + 5))
                .is_ok()
        );
    }

    #[test]
    fn snapshot_round_trip() {
        let store = Store::new(10, None);
        put(&store, "a", "1");
        let snap = store.snapshot();
        let restored = Store::new(10, Some(snap.clone()));
        assert_eq!(restored.current_rv(), snap.resource_version);
        assert!(
            restored
                .lock()
                .get(&core("configmaps"), "default", "a")
                .is_some()
        );
        assert!(restored.lock().namespace_exists("default"));
    }
}
