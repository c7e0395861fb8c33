//! Publishing Events as kube's `Recorder` does: a new event is created (events.k8s.io/v1);
//! the same event about the same object again within six minutes patches the first one's
//! series instead.
//!
//! kube's `Recorder` keeps a copy of every Event it sent for those six minutes and scans them
//! all on each publish: with 50,000 new Services that copy was the largest part of the
//! controller's peak memory (60 MiB, docs/benchmarks.md). This cache keeps per event only
//! what a repeat needs (the Event's name and its count) and expires entries oldest first.

use crate::reconciler::{Event, EventKind};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a published event is remembered to fold repeats into its series (kube's
/// `CACHE_TTL`).
pub const REMEMBER: Duration = Duration::from_secs(6 * 60);

/// Who reports the events.
#[derive(Clone, Debug)]
pub struct Reporter {
    /// `reportingController`.
    pub controller: String,
    /// `reportingInstance` (the pod name).
    pub instance: String,
}

/// Publishes events; shared by concurrent publishes (the cache is locked only between
/// awaits).
pub struct EventPublisher {
    client: Client,
    reporter: Reporter,
    recent: Mutex<Recent>,
}

/// Events published within [`REMEMBER`].
#[derive(Debug, Default)]
pub struct Recent {
    by_key: HashMap<u64, Sent>,
    /// (when, key) of every publish, oldest first; a key published again has a newer entry
    /// and its older ones are skipped at expiry.
    order: VecDeque<(Instant, u64)>,
}

/// What a repeat of a published event needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// Namespace of the Event object.
    pub namespace: String,
    /// Name of the Event object.
    pub name: String,
    /// Occurrences so far.
    pub count: i32,
    last: Instant,
}

/// What to write for one publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Publish {
    /// A new Event.
    Create,
    /// A repeat: the series of this Event, with this count.
    Repeat(Sent),
}

/// The identity of an event for folding repeats: its type, reason and the object it is about,
/// compared as kube's `Recorder` compares them (the whole reference). Kept as a 64-bit hash:
/// two different events of the last six minutes sharing one is a chance of about n²/2⁶⁵.
fn key_of(kind: EventKind, reason: &str, regarding: &ObjectReference) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (kind == EventKind::Warning).hash(&mut h);
    reason.hash(&mut h);
    let r = regarding;
    (
        &r.api_version,
        &r.kind,
        &r.namespace,
        &r.name,
        &r.uid,
        &r.resource_version,
        &r.field_path,
    )
        .hash(&mut h);
    h.finish()
}

impl Recent {
    /// Forgets events last published before `now - REMEMBER`.
    fn expire(&mut self, now: Instant) {
        while let Some(&(at, key)) = self.order.front() {
            if now.saturating_duration_since(at) < REMEMBER {
                break;
            }
            self.order.pop_front();
            if self.by_key.get(&key).is_some_and(|s| s.last == at) {
                self.by_key.remove(&key);
            }
        }
    }

    /// Decides whether an event is new or a repeat, and records it as published at `now`
    /// under the Event name `name` (used when it is new).
    pub fn record(&mut self, key: u64, namespace: &str, name: String, now: Instant) -> Publish {
        self.expire(now);
        self.order.push_back((now, key));
        match self.by_key.get_mut(&key) {
            Some(sent) => {
                sent.count = sent.count.saturating_add(1);
                sent.last = now;
                Publish::Repeat(sent.clone())
            }
            None => {
                self.by_key.insert(
                    key,
                    Sent {
                        namespace: namespace.to_string(),
                        name,
                        count: 1,
                        last: now,
                    },
                );
                Publish::Create
            }
        }
    }

    /// Forgets an event whose write failed, so that the next one is a new Event.
    fn forget(&mut self, key: u64) {
        self.by_key.remove(&key);
    }

    /// Events remembered.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no event is remembered.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

impl EventPublisher {
    /// A publisher writing with `client` as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            recent: Mutex::new(Recent::default()),
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        ferrolb_runtime::sync::lock(&self.recent)
    }

    /// Creates the event, or patches the series of the same event published within
    /// [`REMEMBER`].
    pub async fn publish(&self, event: &Event) -> Result<(), kube::Error> {
        let Event {
            regarding,
            kind,
            reason,
            note,
        } = event;
        let key = key_of(*kind, reason, regarding);
        let ts = Timestamp::now();
        // Cluster-scoped objects' events go to `default`, as with kube's `Recorder`.
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let name = format!(
            "{}.{:x}",
            regarding
                .name
                .as_deref()
                .unwrap_or(&self.reporter.controller),
            ts.as_nanosecond()
        );
        let decision = self
            .recent()
            .record(key, namespace, name.clone(), Instant::now());
        let result = match decision {
            Publish::Create => {
                let ev = K8sEvent {
                    action: Some(reason.to_string()),
                    reason: Some(reason.to_string()),
                    event_time: Some(MicroTime(ts)),
                    regarding: Some(regarding.clone()),
                    note: Some(note.clone()),
                    metadata: ObjectMeta {
                        namespace: Some(namespace.to_string()),
                        name: Some(name),
                        ..ObjectMeta::default()
                    },
                    reporting_controller: Some(self.reporter.controller.clone()),
                    reporting_instance: Some(self.reporter.instance.clone()),
                    type_: Some(type_name(*kind).into()),
                    ..K8sEvent::default()
                };
                Api::<K8sEvent>::namespaced(self.client.clone(), namespace)
                    .create(&PostParams::default(), &ev)
                    .await
                    .map(drop)
            }
            Publish::Repeat(sent) => {
                let patch = serde_json::json!({
                    "series": {"count": sent.count, "lastObservedTime": MicroTime(ts)},
                });
                Api::<K8sEvent>::namespaced(self.client.clone(), &sent.namespace)
                    .patch(&sent.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop)
            }
        };
        if result.is_err() {
            self.recent().forget(key);
        }
        result
    }
}

fn type_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Normal => "Normal",
        EventKind::Warning => "Warning",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, rv: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            namespace: Some("apps".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some(rv.into()),
            field_path: None,
        }
    }

    #[test]
    fn a_repeat_within_the_window_continues_the_series() {
        let mut r = Recent::default();
        let t0 = Instant::now();
        let k = key_of(EventKind::Normal, "IPAllocated", &svc("web", "1"));
        assert_eq!(r.record(k, "apps", "web.1".into(), t0), Publish::Create);
        let again = r.record(k, "apps", "web.2".into(), t0 + Duration::from_secs(10));
        let Publish::Repeat(sent) = again else {
            panic!("expected a repeat, got {again:?}");
        };
        assert_eq!((sent.name.as_str(), sent.count), ("web.1", 2));
        let third = r.record(k, "apps", "web.3".into(), t0 + Duration::from_secs(20));
        assert!(matches!(third, Publish::Repeat(s) if s.count == 3 && s.name == "web.1"));
    }

    #[test]
    fn events_differing_in_reason_kind_or_object_are_distinct() {
        let base = key_of(EventKind::Normal, "IPAllocated", &svc("web", "1"));
        for other in [
            key_of(EventKind::Warning, "IPAllocated", &svc("web", "1")),
            key_of(EventKind::Normal, "IPReleased", &svc("web", "1")),
            key_of(EventKind::Normal, "IPAllocated", &svc("db", "1")),
            // kube's `Recorder` compares the whole reference, resourceVersion included.
            key_of(EventKind::Normal, "IPAllocated", &svc("web", "2")),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn an_event_is_forgotten_after_the_window_from_its_last_publish() {
        let mut r = Recent::default();
        let t0 = Instant::now();
        let k = key_of(EventKind::Normal, "IPAllocated", &svc("web", "1"));
        let other = key_of(EventKind::Normal, "IPAllocated", &svc("db", "1"));
        r.record(k, "apps", "web.1".into(), t0);
        r.record(other, "apps", "db.1".into(), t0);
        // Published again 5 minutes later: remembered until 6 minutes after that.
        let t5 = t0 + Duration::from_secs(300);
        assert!(matches!(
            r.record(k, "apps", "web.2".into(), t5),
            Publish::Repeat(_)
        ));
        let t7 = t0 + Duration::from_secs(420);
        r.expire(t7);
        assert_eq!(r.len(), 1, "db expired, web was refreshed at 5 min");
        assert!(matches!(
            r.record(k, "apps", "web.3".into(), t7),
            Publish::Repeat(s) if s.count == 3
        ));
        let t14 = t7 + REMEMBER;
        assert_eq!(r.record(k, "apps", "web.4".into(), t14), Publish::Create);
        assert_eq!(r.len(), 1);
        assert_eq!(r.order.len(), 1, "expired entries leave the queue");
    }

    #[test]
    fn a_failed_write_makes_the_next_one_new() {
        let mut r = Recent::default();
        let t0 = Instant::now();
        let k = key_of(EventKind::Normal, "IPAllocated", &svc("web", "1"));
        r.record(k, "apps", "web.1".into(), t0);
        r.forget(k);
        assert_eq!(r.record(k, "apps", "web.2".into(), t0), Publish::Create);
        assert!(!r.is_empty());
    }
}
