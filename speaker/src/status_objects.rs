//! Keeps this node's status objects — MetalLB's kinds `ServiceL2Status` (one per Service
//! announced in layer 2), `ServiceBGPStatus` (one per Service advertised over BGP) and
//! `BGPSessionState` (one per BGP session) — equal to what the speaker does, off the
//! announcing path.
//!
//! - Level-triggered: the main loop computes, with the pure functions below, what this node's
//!   objects of each kind must say and publishes it; a task per kind lists the objects of this
//!   node and creates, updates (status only, when it differs) and deletes to match. Leftovers
//!   of an earlier run of this speaker go at the first sync.
//! - Names are a function of (node, what the object is about), so two speakers never write the
//!   same object and a restart finds its own: a kind prefix and 20 hex digits of SHA-256.
//! - Writes are coalesced (a burst of changes is one sync, [`COALESCE`] after the first) and
//!   failures retried with backoff; none of it delays an announcement.
//! - Each object has the Node as owner, so Kubernetes removes it with the Node. A speaker that
//!   dies cannot remove its objects; they stay until it runs again (and removes what no longer
//!   holds) or the Node is deleted, so during a layer 2 failover the old and the new owner may
//!   both have a `ServiceL2Status` for a Service. A speaker stopped with SIGTERM removes its
//!   own on the way out.

use ferrolb_api::bgp_status::PEER_LABEL;
use ferrolb_api::l2_status::{NODE_LABEL, SERVICE_NAME_LABEL, SERVICE_NAMESPACE_LABEL};
use ferrolb_api::status::{Announcement, AnnouncementMode, BgpPeerStatus};
use ferrolb_api::{
    BGPSessionState, BGPSessionStateStatus, InterfaceInfo, ServiceBGPStatus,
    ServiceBGPStatusStatus, ServiceL2Status, ServiceL2StatusStatus,
};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::object::HasStatus;
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
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
    /// Prefix of object names.
    const PREFIX: &'static str;
    /// An object with this metadata and no status.
    fn with_metadata(metadata: ObjectMeta) -> Self;
    /// The node a status names.
    fn node(report: &Self::Report) -> &str;
    /// Labels beyond the node's, from the status.
    fn labels(report: &Self::Report) -> Vec<(&'static str, String)>;
}

/// The two per-Service kinds differ only in their types and name prefix.
macro_rules! service_status_kind {
    ($kind:ident, $report:ident, $prefix:literal) => {
        impl StatusKind for $kind {
            type Report = $report;
            const PREFIX: &'static str = $prefix;
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

service_status_kind!(ServiceL2Status, ServiceL2StatusStatus, "l2");
service_status_kind!(ServiceBGPStatus, ServiceBGPStatusStatus, "bgp");

impl StatusKind for BGPSessionState {
    type Report = BGPSessionStateStatus;
    const PREFIX: &'static str = "session";
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

/// The name of the object of kind prefix `prefix` about `subject` (a Service `namespace/name`,
/// a BGPPeer `namespace/name`) written by `node`.
pub fn object_name(prefix: &str, node: &str, subject: &str) -> String {
    let digest = Sha256::new()
        .chain_update(node.as_bytes())
        .chain_update([0u8])
        .chain_update(subject.as_bytes())
        .finalize();
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

/// Services (`namespace/name`) of `mode` announcements, with the union of `field` over their
/// addresses.
fn by_service<'a>(
    announcements: &'a [Announcement],
    mode: AnnouncementMode,
    field: impl Fn(&'a Announcement) -> &'a [String],
) -> BTreeMap<(&'a str, &'a str), BTreeSet<&'a str>> {
    let mut out: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for a in announcements.iter().filter(|a| a.mode == mode) {
        for service in &a.services {
            if let Some(key) = service.split_once('/') {
                out.entry(key)
                    .or_default()
                    .extend(field(a).iter().map(String::as_str));
            }
        }
    }
    out
}

/// The `ServiceL2Status` objects of `node`: one per Service it announces in layer 2, with the
/// interfaces of its addresses.
pub fn l2_statuses(
    node: &str,
    announcements: &[Announcement],
) -> BTreeMap<String, ServiceL2StatusStatus> {
    by_service(announcements, AnnouncementMode::Layer2, |a| &a.interfaces)
        .into_iter()
        .map(|((namespace, name), interfaces)| {
            let status = ServiceL2StatusStatus {
                node: node.to_string(),
                service_name: name.to_string(),
                service_namespace: namespace.to_string(),
                interfaces: interfaces
                    .into_iter()
                    .map(|i| InterfaceInfo {
                        name: i.to_string(),
                    })
                    .collect(),
            };
            let subject = format!("{namespace}/{name}");
            (object_name(ServiceL2Status::PREFIX, node, &subject), status)
        })
        .collect()
}

/// The `ServiceBGPStatus` objects of `node`: one per Service it advertises over BGP, with the
/// peers its addresses go to.
pub fn bgp_service_statuses(
    node: &str,
    announcements: &[Announcement],
) -> BTreeMap<String, ServiceBGPStatusStatus> {
    by_service(announcements, AnnouncementMode::Bgp, |a| &a.peers)
        .into_iter()
        .map(|((namespace, name), peers)| {
            let status = ServiceBGPStatusStatus {
                node: node.to_string(),
                service_name: name.to_string(),
                service_namespace: namespace.to_string(),
                peers: peers.into_iter().map(str::to_string).collect(),
            };
            let subject = format!("{namespace}/{name}");
            (
                object_name(ServiceBGPStatus::PREFIX, node, &subject),
                status,
            )
        })
        .collect()
}

/// The `BGPSessionState` objects of `node`: one per session, with the peer's address (without
/// the port), the FSM state and the BFD state (`N/A` without BFD, as MetalLB says).
pub fn bgp_session_states(
    node: &str,
    sessions: &[BgpPeerStatus],
) -> BTreeMap<String, (BGPSessionStateStatus, String)> {
    sessions
        .iter()
        .map(|s| {
            let peer = s
                .address
                .parse::<std::net::SocketAddr>()
                .map(|a| a.ip().to_string())
                .unwrap_or_else(|_| s.address.clone());
            let status = BGPSessionStateStatus {
                node: node.to_string(),
                peer,
                vrf: String::new(),
                bgp_status: s.state.clone(),
                bfd_status: s
                    .bfd
                    .as_ref()
                    .map_or_else(|| "N/A".to_string(), |b| b.state.clone()),
            };
            let peer_name = s.name.rsplit('/').next().unwrap_or(&s.name).to_string();
            (
                object_name(BGPSessionState::PREFIX, node, &s.name),
                (status, peer_name),
            )
        })
        .collect()
}

/// One write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change<S> {
    /// A new object with this status.
    Create(String, S),
    /// An existing object whose status must change.
    Update(String, S),
    /// An object of this node that no longer reports anything.
    Delete(String),
}

/// The writes that turn `existing` (this node's objects, by name, with their status if any)
/// into `desired`.
pub fn diff<S: Clone + PartialEq>(
    desired: &BTreeMap<String, S>,
    existing: &BTreeMap<String, Option<S>>,
) -> Vec<Change<S>> {
    let mut out = Vec::new();
    for (name, status) in desired {
        match existing.get(name) {
            None => out.push(Change::Create(name.clone(), status.clone())),
            Some(current) if current.as_ref() != Some(status) => {
                out.push(Change::Update(name.clone(), status.clone()))
            }
            Some(_) => {}
        }
    }
    for name in existing.keys() {
        if !desired.contains_key(name) {
            out.push(Change::Delete(name.clone()));
        }
    }
    out
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
                Change::Update(name, status) => self.write_status(&name, status).await?,
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
        let patch = serde_json::json!({ "status": status });
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

    /// What is advertised over BGP, and the sessions.
    pub fn publish_bgp(&self, announcements: &[Announcement], sessions: &[BgpPeerStatus]) {
        self.bgp
            .publish(no_labels(bgp_service_statuses(&self.node, announcements)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_api::status::BfdSessionStatus;

    fn ann(
        ip: &str,
        mode: AnnouncementMode,
        services: &[&str],
        interfaces: &[&str],
        peers: &[&str],
    ) -> Announcement {
        Announcement {
            ip: ip.parse().expect("ip"),
            mode,
            services: services.iter().map(|s| s.to_string()).collect(),
            interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
            peers: peers.iter().map(|s| s.to_string()).collect(),
            since: "2026-11-24T00:00:00Z".into(),
        }
    }

    #[test]
    fn one_object_per_service_and_mode() {
        let l2 = AnnouncementMode::Layer2;
        let bgp = AnnouncementMode::Bgp;
        let anns = [
            ann("10.200.10.1", l2, &["default/web"], &["eth0"], &[]),
            ann("fd00:200::1", l2, &["default/web"], &["eth1"], &[]),
            ann("10.200.10.2", l2, &["a/x", "b/y"], &["eth0"], &[]),
            ann("10.200.20.1", bgp, &["default/api"], &[], &["ns/r1"]),
            ann("fd00:200::20", bgp, &["default/api"], &[], &["ns/r2"]),
        ];
        let d = l2_statuses("node1", &anns);
        assert_eq!(d.len(), 3, "{d:?}");
        let web = &d[&object_name("l2", "node1", "default/web")];
        assert_eq!(web.node, "node1");
        assert_eq!(
            (web.service_namespace.as_str(), web.service_name.as_str()),
            ("default", "web")
        );
        let names: Vec<&str> = web.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth0", "eth1"]);
        assert!(d.contains_key(&object_name("l2", "node1", "a/x")));
        assert!(d.contains_key(&object_name("l2", "node1", "b/y")));

        let b = bgp_service_statuses("node1", &anns);
        assert_eq!(b.len(), 1);
        let api = &b[&object_name("bgp", "node1", "default/api")];
        assert_eq!(api.peers, ["ns/r1", "ns/r2"]);
        assert_eq!(api.service_name, "api");
    }

    #[test]
    fn sessions_report_address_state_and_bfd() {
        let session = |name: &str, address: &str, state: &str, bfd: Option<&str>| BgpPeerStatus {
            name: name.into(),
            address: address.into(),
            state: state.into(),
            uptime_seconds: None,
            last_error: None,
            last_notification: None,
            prefixes_advertised: 0,
            updates_sent: 0,
            updates_received: 0,
            bfd: bfd.map(|s| BfdSessionStatus {
                state: s.into(),
                detection_time_ms: 150,
            }),
        };
        let s = bgp_session_states(
            "node1",
            &[
                session("ferrolb-system/r4", "10.200.0.1:179", "Established", None),
                session(
                    "ferrolb-system/r6",
                    "[fd00:200::1]:179",
                    "Active",
                    Some("Down"),
                ),
            ],
        );
        let (r4, label4) = &s[&object_name("session", "node1", "ferrolb-system/r4")];
        assert_eq!(
            (
                r4.peer.as_str(),
                r4.bgp_status.as_str(),
                r4.bfd_status.as_str()
            ),
            ("10.200.0.1", "Established", "N/A")
        );
        assert_eq!(label4, "r4");
        let (r6, _) = &s[&object_name("session", "node1", "ferrolb-system/r6")];
        assert_eq!(
            (
                r6.peer.as_str(),
                r6.bgp_status.as_str(),
                r6.bfd_status.as_str()
            ),
            ("fd00:200::1", "Active", "Down")
        );
    }

    #[test]
    fn names_are_per_kind_node_and_subject_and_valid() {
        let a = object_name("l2", "node1", "default/web");
        assert_eq!(a, object_name("l2", "node1", "default/web"));
        assert_ne!(a, object_name("l2", "node2", "default/web"));
        assert_ne!(a, object_name("l2", "node1", "default/web2"));
        assert_ne!(a, object_name("bgp", "node1", "default/web"));
        // The separator keeps ("ab", "c/d") and ("a", "bc/d") apart.
        assert_ne!(
            object_name("l2", "ab", "c/d"),
            object_name("l2", "a", "bc/d")
        );
        assert_eq!(a.len(), 23);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[test]
    fn diff_creates_updates_and_deletes() {
        let status = |svc: &str| ServiceL2StatusStatus {
            node: "n".into(),
            service_name: svc.into(),
            service_namespace: "default".into(),
            interfaces: vec![InterfaceInfo {
                name: "eth0".into(),
            }],
        };
        let want = BTreeMap::from([
            ("keep".to_string(), status("a")),
            ("change".to_string(), status("b")),
            ("new".to_string(), status("c")),
            ("half".to_string(), status("d")),
        ]);
        let have = BTreeMap::from([
            ("keep".to_string(), Some(status("a"))),
            ("change".to_string(), Some(status("old"))),
            ("half".to_string(), None),
            ("stale".to_string(), Some(status("e"))),
        ]);
        assert_eq!(
            diff(&want, &have),
            vec![
                Change::Update("change".into(), status("b")),
                Change::Update("half".into(), status("d")),
                Change::Create("new".into(), status("c")),
                Change::Delete("stale".into()),
            ]
        );
        let same: BTreeMap<String, Option<ServiceL2StatusStatus>> = want
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        assert!(diff(&want, &same).is_empty());
    }
}
