//! Keeps this node's status objects — MetalLB's kinds `ServiceL2Status` (one per Service
//! announced in layer 2), `ServiceBGPStatus` (one per Service advertised over BGP) and
//! `BGPSessionState` (one per BGP session) — equal to what the speaker does, off the
//! announcing path.
//!
//! - Level-triggered: the main loop computes, with the pure functions of
//!   [`ferrolb_speaker_core::status`], what this node's objects of each kind must say and
//!   publishes it; a task per kind lists the objects of this node and creates, updates (status
//!   only, when it differs) and deletes to match. Leftovers of an earlier run of this speaker
//!   go at the first sync.
//! - Writes are coalesced (a burst of changes is one sync, [`COALESCE`] after the first) and
//!   failures retried with backoff; none of it delays an announcement.
//! - Each object has the Node as owner, so Kubernetes removes it with the Node. A speaker that
//!   dies cannot remove its objects; they stay until it runs again (and removes what no longer
//!   holds) or the Node is deleted, so during a layer 2 failover the old and the new owner may
//!   both have a `ServiceL2Status` for a Service. A speaker stopped with SIGTERM removes its
//!   own on the way out.

use ferrolb_api::bgp_status::PEER_LABEL;
use ferrolb_api::l2_status::{NODE_LABEL, SERVICE_NAME_LABEL, SERVICE_NAMESPACE_LABEL};
use ferrolb_api::status::{Announcement, BgpPeerStatus};
use ferrolb_api::{
    BGPSessionState, BGPSessionStateStatus, ServiceBGPStatus, ServiceBGPStatusStatus,
    ServiceL2Status, ServiceL2StatusStatus,
};
use ferrolb_speaker_core::status::{
    Change, bgp_service_statuses, bgp_session_states, diff, l2_statuses,
};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::object::HasStatus;
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;
use tokio::sync::watch;

/// How long after a change the objects are synced, so a burst of changes is one sync.
pub const COALESCE: Duration = Duration::from_millis(200);
/// First retry after a failed sync; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Label values are at most 63 characters; longer ones are left out of the labels (the status
/// carries them in full).
const MAX_LABEL_VALUE: usize = 63;

/// A kind of status object this module keeps.
pub trait StatusKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + HasStatus<Status = <Self as StatusKind>::Report>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// The status type.
    type Report: Clone + Debug + PartialEq + Serialize + Send + Sync + 'static;
    /// An object with this metadata and no status.
    fn with_metadata(metadata: ObjectMeta) -> Self;
    /// The node a status names.
    fn node(report: &Self::Report) -> &str;
    /// Labels beyond the node's, from the status.
    fn labels(report: &Self::Report) -> Vec<(&'static str, String)>;
}

/// The two per-Service kinds differ only in their types.
macro_rules! service_status_kind {
    ($kind:ident, $report:ident) => {
        impl StatusKind for $kind {
            type Report = $report;
            fn with_metadata(metadata: ObjectMeta) -> Self {
                $kind {
                    metadata,
                    spec: Default::default(),
                    status: None,
                }
            }
            fn node(report: &Self::Report) -> &str {
                &report.node
            }
            fn labels(report: &Self::Report) -> Vec<(&'static str, String)> {
                vec![
                    (SERVICE_NAME_LABEL, report.service_name.clone()),
                    (SERVICE_NAMESPACE_LABEL, report.service_namespace.clone()),
                ]
            }
        }
    };
}

service_status_kind!(ServiceL2Status, ServiceL2StatusStatus);
service_status_kind!(ServiceBGPStatus, ServiceBGPStatusStatus);

impl StatusKind for BGPSessionState {
    type Report = BGPSessionStateStatus;
    fn with_metadata(metadata: ObjectMeta) -> Self {
        BGPSessionState {
            metadata,
            spec: Default::default(),
            status: None,
        }
    }
    fn node(report: &Self::Report) -> &str {
        &report.node
    }
    fn labels(_: &Self::Report) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// Errors of one sync, naming the object.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Listing this node's objects failed.
    #[error("listing {kind} objects in {namespace}: {source}")]
    List {
        /// The kind.
        kind: String,
        /// The namespace.
        namespace: String,
        /// The API error.
        source: kube::Error,
    },
    /// A write failed.
    #[error("{what} {kind} {namespace}/{name}: {source}")]
    Write {
        /// create, update status, delete.
        what: &'static str,
        /// The kind.
        kind: String,
        /// The namespace.
        namespace: String,
        /// The object.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

/// What a writer must make true: by object name, the status and extra labels.
pub type Wanted<S> = BTreeMap<String, (S, Vec<(&'static str, String)>)>;

/// The writer of one kind: call [`Writer::run`] in a task.
pub struct Writer<K: StatusKind> {
    api: Api<K>,
    nodes: Api<Node>,
    namespace: String,
    node: String,
    owner: Option<OwnerReference>,
}

impl<K: StatusKind> Writer<K> {
    /// A writer of `node`'s objects in `namespace`.
    pub fn new(client: Client, namespace: &str, node: &str) -> Self {
        Writer {
            api: Api::namespaced(client.clone(), namespace),
            nodes: Api::all(client),
            namespace: namespace.to_string(),
            node: node.to_string(),
            owner: None,
        }
    }

    /// Syncs after every change of `wanted` (coalesced), retrying failures with backoff, until
    /// the sender is dropped; then removes this node's objects (best effort) and returns.
    pub async fn run(mut self, mut wanted: watch::Receiver<Wanted<K::Report>>) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            tokio::time::sleep(COALESCE).await;
            let want = wanted.borrow_and_update().clone();
            match self.sync(&want).await {
                Ok(()) => {
                    backoff = FIRST_BACKOFF;
                    if wanted.changed().await.is_err() {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "status objects not in sync");
                    tokio::select! {
                        r = wanted.changed() => if r.is_err() { break },
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        if let Err(error) = self.sync(&BTreeMap::new()).await {
            tracing::warn!(%error, "removing this node's status objects on the way out");
        }
    }

    /// This node's objects: by label when the node name fits in one, else all of the namespace
    /// filtered by `status.node`.
    async fn existing(&self) -> Result<BTreeMap<String, Option<K::Report>>, SyncError> {
        let params = if self.node.len() <= MAX_LABEL_VALUE {
            ListParams::default().labels(&format!("{NODE_LABEL}={}", self.node))
        } else {
            ListParams::default()
        };
        let list = self
            .api
            .list(&params)
            .await
            .map_err(|source| SyncError::List {
                kind: K::kind(&()).into_owned(),
                namespace: self.namespace.clone(),
                source,
            })?;
        Ok(list
            .items
            .into_iter()
            .filter(|o| {
                let labelled = o.meta().labels.as_ref().and_then(|l| l.get(NODE_LABEL));
                let reported = o.status().map(K::node);
                labelled.map(String::as_str) == Some(self.node.as_str())
                    || reported == Some(self.node.as_str())
            })
            .filter_map(|o| Some((o.meta().name.clone()?, o.status().cloned())))
            .collect())
    }

    async fn owner(&mut self) -> Option<OwnerReference> {
        if self.owner.is_none() {
            // Best effort: without it the objects lack only garbage collection with the Node.
            if let Ok(node) = self.nodes.get(&self.node).await {
                self.owner = node.controller_owner_ref(&()).map(|mut r| {
                    r.controller = Some(false);
                    r.block_owner_deletion = None;
                    r
                });
            }
        }
        self.owner.clone()
    }

    async fn sync(&mut self, want: &Wanted<K::Report>) -> Result<(), SyncError> {
        let existing = self.existing().await?;
        let statuses: BTreeMap<String, K::Report> = want
            .iter()
            .map(|(name, (status, _))| (name.clone(), status.clone()))
            .collect();
        for change in diff(&statuses, &existing) {
            match change {
                Change::Create(name, status) => {
                    let owner = self.owner().await;
                    let labels = want.get(&name).map(|(_, l)| l.clone()).unwrap_or_default();
                    self.create(&name, status, labels, owner).await?;
                }
                Change::Update(name, status) => {
                    let before = existing.get(&name).cloned().flatten();
                    self.write_status_over(&name, status, before.as_ref())
                        .await?
                }
                Change::Delete(name) => {
                    match self.api.delete(&name, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 404 => {}
                        Err(source) => return Err(self.write_error("deleting", &name, source)),
                    }
                }
            }
        }
        Ok(())
    }

    async fn create(
        &self,
        name: &str,
        status: K::Report,
        extra_labels: Vec<(&'static str, String)>,
        owner: Option<OwnerReference>,
    ) -> Result<(), SyncError> {
        let mut labels = BTreeMap::new();
        let all = [(NODE_LABEL, K::node(&status).to_string())]
            .into_iter()
            .chain(K::labels(&status))
            .chain(extra_labels);
        for (key, value) in all {
            if value.len() <= MAX_LABEL_VALUE {
                labels.insert(key.to_string(), value);
            }
        }
        let object = K::with_metadata(ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        });
        match self.api.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            // Left by an earlier sync that failed between create and status: fill it in.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(source) => return Err(self.write_error("creating", name, source)),
        }
        // The status is a subresource: the create above ignores it.
        self.write_status(name, status).await
    }

    async fn write_status(&self, name: &str, status: K::Report) -> Result<(), SyncError> {
        self.write_status_over(name, status, None).await
    }

    /// Writes `status` over `before`: a merge patch leaves a field the new status omits (an
    /// empty message, say) as it was, so such fields are sent as null, which removes them.
    async fn write_status_over(
        &self,
        name: &str,
        status: K::Report,
        before: Option<&K::Report>,
    ) -> Result<(), SyncError> {
        let mut new = serde_json::to_value(&status).unwrap_or(serde_json::Value::Null);
        if let (Some(old), serde_json::Value::Object(fields)) =
            (before.and_then(|b| serde_json::to_value(b).ok()), &mut new)
            && let serde_json::Value::Object(old) = old
        {
            for key in old.keys() {
                fields.entry(key.clone()).or_insert(serde_json::Value::Null);
            }
        }
        let patch = serde_json::json!({ "status": new });
        self.api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|source| self.write_error("updating the status of", name, source))
    }

    fn write_error(&self, what: &'static str, name: &str, source: kube::Error) -> SyncError {
        SyncError::Write {
            what,
            kind: K::kind(&()).into_owned(),
            namespace: self.namespace.clone(),
            name: name.to_string(),
            source,
        }
    }
}

/// A channel and the task keeping one kind's objects; see [`Writers`].
struct Channel<K: StatusKind> {
    tx: watch::Sender<Wanted<K::Report>>,
    task: tokio::task::JoinHandle<()>,
}

impl<K: StatusKind> Channel<K> {
    fn start(client: &Client, namespace: &str, node: &str) -> Self {
        let (tx, rx) = watch::channel(BTreeMap::new());
        let task = tokio::spawn(Writer::<K>::new(client.clone(), namespace, node).run(rx));
        Channel { tx, task }
    }

    fn publish(&self, wanted: Wanted<K::Report>) {
        self.tx.send_if_modified(|current| {
            let changed = *current != wanted;
            if changed {
                *current = wanted;
            }
            changed
        });
    }
}

/// The three writers of a speaker, fed by [`Writers::publish_layer2`] and
/// [`Writers::publish_bgp`].
pub struct Writers {
    node: String,
    l2: Channel<ServiceL2Status>,
    bgp: Channel<ServiceBGPStatus>,
    sessions: Channel<BGPSessionState>,
}

impl Writers {
    /// Starts the writers of `node`'s objects in `namespace`.
    pub fn start(client: &Client, namespace: &str, node: &str) -> Self {
        Writers {
            node: node.to_string(),
            l2: Channel::start(client, namespace, node),
            bgp: Channel::start(client, namespace, node),
            sessions: Channel::start(client, namespace, node),
        }
    }

    /// What the layer 2 announcer announces now.
    pub fn publish_layer2(&self, announcements: &[Announcement]) {
        self.l2
            .publish(no_labels(l2_statuses(&self.node, announcements)));
    }

    /// This node's ServiceBGPStatus objects: one per Service it advertises.
    pub fn publish_bgp_services(&self, announcements: &[Announcement]) {
        self.bgp
            .publish(no_labels(bgp_service_statuses(&self.node, announcements)));
    }

    /// This node's BGPSessionState objects: one per session.
    pub fn publish_bgp_sessions(&self, sessions: &[BgpPeerStatus]) {
        self.sessions.publish(
            bgp_session_states(&self.node, sessions)
                .into_iter()
                .map(|(name, (status, peer))| (name, (status, vec![(PEER_LABEL, peer)])))
                .collect(),
        );
    }

    /// Stops the writers, which first remove this node's objects; waits at most `within`.
    pub async fn stop(self, within: Duration) {
        let Writers {
            l2, bgp, sessions, ..
        } = self;
        let (a, b, c) = (l2.task, bgp.task, sessions.task);
        drop((l2.tx, bgp.tx, sessions.tx));
        let all = async {
            let _ = tokio::join!(a, b, c);
        };
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!(?within, "status objects not removed in time on the way out");
        }
    }
}

fn no_labels<S>(m: BTreeMap<String, S>) -> Wanted<S> {
    m.into_iter().map(|(k, v)| (k, (v, Vec::new()))).collect()
}
