//! Keeps this node's `ServiceL2Status` objects (one per Service it announces in layer 2 mode,
//! MetalLB's kind) equal to what its announcer does, off the announcing path.
//!
//! - Level-triggered: the main loop publishes the announcer's snapshot after every change;
//!   this task lists the objects of this node, and creates, updates (status only, when it
//!   differs) and deletes to match. Leftovers of an earlier run of this speaker go at the
//!   first sync.
//! - Names are a function of (node, Service), so two speakers never write the same object and
//!   a restart finds its own: `l2-` and 20 hex digits of SHA-256.
//! - Writes are coalesced (a burst of changes is one sync, [`COALESCE`] after the first) and
//!   failures are retried with backoff; none of it delays an announcement.
//! - Each object has the Node as owner, so Kubernetes removes it with the Node. A speaker that
//!   dies cannot remove its objects; they stay until it runs again (and removes what it no
//!   longer announces) or the Node is deleted, so during a failover the old and the new owner
//!   may both have one for a Service — `status.node` of the newest is the owner. A speaker
//!   stopped with SIGTERM removes its own on the way out.

use ferrolb_api::l2_status::{NODE_LABEL, SERVICE_NAME_LABEL, SERVICE_NAMESPACE_LABEL};
use ferrolb_api::status::{Announcement, AnnouncementMode};
use ferrolb_api::{InterfaceInfo, ServiceL2Status, ServiceL2StatusStatus};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::watch;

/// How long after a change the objects are synced, so a burst of changes is one sync.
pub const COALESCE: Duration = Duration::from_millis(200);
/// First retry after a failed sync; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Label values are at most 63 characters; longer names are left out of the labels (the
/// status carries them in full).
const MAX_LABEL_VALUE: usize = 63;

/// The object name for `service` (`namespace/name`) announced by `node`.
pub fn object_name(node: &str, service: &str) -> String {
    let digest = Sha256::new()
        .chain_update(node.as_bytes())
        .chain_update([0u8])
        .chain_update(service.as_bytes())
        .finalize();
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("l2-{hex}")
}

/// What this node's objects must say: by object name, the status of each Service it announces
/// in layer 2 mode (its interfaces merged over the Service's addresses).
pub fn desired(
    node: &str,
    announcements: &[Announcement],
) -> BTreeMap<String, ServiceL2StatusStatus> {
    let mut by_service: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for a in announcements {
        if a.mode != AnnouncementMode::Layer2 {
            continue;
        }
        for service in &a.services {
            by_service
                .entry(service.as_str())
                .or_default()
                .extend(a.interfaces.iter().map(String::as_str));
        }
    }
    by_service
        .into_iter()
        .filter_map(|(service, interfaces)| {
            let (namespace, name) = service.split_once('/')?;
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
            Some((object_name(node, service), status))
        })
        .collect()
}

/// One write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new object with this status.
    Create(String, ServiceL2StatusStatus),
    /// An existing object whose status must change.
    Update(String, ServiceL2StatusStatus),
    /// An object of this node that no longer reports anything.
    Delete(String),
}

/// The writes that turn `existing` (this node's objects, by name, with their status if any)
/// into `desired`.
pub fn diff(
    desired: &BTreeMap<String, ServiceL2StatusStatus>,
    existing: &BTreeMap<String, Option<ServiceL2StatusStatus>>,
) -> Vec<Change> {
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
    #[error("listing ServiceL2Status objects in {namespace}: {source}")]
    List {
        /// The namespace.
        namespace: String,
        /// The API error.
        source: kube::Error,
    },
    /// A write failed.
    #[error("{what} ServiceL2Status {namespace}/{name}: {source}")]
    Write {
        /// create, update status, delete.
        what: &'static str,
        /// The namespace.
        namespace: String,
        /// The object.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

/// The writer: call [`Writer::run`] in a task.
pub struct Writer {
    api: Api<ServiceL2Status>,
    nodes: Api<Node>,
    namespace: String,
    node: String,
    owner: Option<OwnerReference>,
}

impl Writer {
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

    /// Syncs after every change of `snapshots` (coalesced), retrying failures with backoff,
    /// until the sender is dropped; then removes this node's objects (best effort) and returns.
    pub async fn run(mut self, mut snapshots: watch::Receiver<Vec<Announcement>>) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            tokio::time::sleep(COALESCE).await;
            let want = desired(&self.node, &snapshots.borrow_and_update());
            match self.sync(&want).await {
                Ok(()) => {
                    backoff = FIRST_BACKOFF;
                    if snapshots.changed().await.is_err() {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "layer 2 status objects not in sync");
                    tokio::select! {
                        r = snapshots.changed() => if r.is_err() { break },
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        if let Err(error) = self.sync(&BTreeMap::new()).await {
            tracing::warn!(%error, "removing this node's layer 2 status objects on the way out");
        }
    }

    /// This node's objects: by label when the node name fits in one, else all of the namespace
    /// filtered by `status.node`.
    async fn existing(&self) -> Result<BTreeMap<String, Option<ServiceL2StatusStatus>>, SyncError> {
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
                namespace: self.namespace.clone(),
                source,
            })?;
        Ok(list
            .items
            .into_iter()
            .filter(|o| {
                let labelled = o.metadata.labels.as_ref().and_then(|l| l.get(NODE_LABEL));
                let reported = o.status.as_ref().map(|s| s.node.as_str());
                labelled.map(String::as_str) == Some(self.node.as_str())
                    || reported == Some(self.node.as_str())
            })
            .filter_map(|o| Some((o.metadata.name?, o.status)))
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

    async fn sync(
        &mut self,
        want: &BTreeMap<String, ServiceL2StatusStatus>,
    ) -> Result<(), SyncError> {
        let existing = self.existing().await?;
        for change in diff(want, &existing) {
            match change {
                Change::Create(name, status) => {
                    let owner = self.owner().await;
                    self.create(&name, status, owner).await?;
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
        status: ServiceL2StatusStatus,
        owner: Option<OwnerReference>,
    ) -> Result<(), SyncError> {
        let mut labels = BTreeMap::new();
        for (key, value) in [
            (NODE_LABEL, &status.node),
            (SERVICE_NAME_LABEL, &status.service_name),
            (SERVICE_NAMESPACE_LABEL, &status.service_namespace),
        ] {
            if value.len() <= MAX_LABEL_VALUE {
                labels.insert(key.to_string(), value.clone());
            }
        }
        let object = ServiceL2Status {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                owner_references: owner.map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            spec: Default::default(),
            status: None,
        };
        match self.api.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            // Left by an earlier sync that failed between create and status: fill it in.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(source) => return Err(self.write_error("creating", name, source)),
        }
        // The status is a subresource: the create above ignores it.
        self.write_status(name, status).await
    }

    async fn write_status(
        &self,
        name: &str,
        status: ServiceL2StatusStatus,
    ) -> Result<(), SyncError> {
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
            namespace: self.namespace.clone(),
            name: name.to_string(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(
        ip: &str,
        mode: AnnouncementMode,
        services: &[&str],
        interfaces: &[&str],
    ) -> Announcement {
        Announcement {
            ip: ip.parse().expect("ip"),
            mode,
            services: services.iter().map(|s| s.to_string()).collect(),
            interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
            peers: vec![],
            since: "2026-11-24T00:00:00Z".into(),
        }
    }

    #[test]
    fn one_object_per_layer2_service_with_merged_interfaces() {
        let anns = [
            ann(
                "10.200.10.1",
                AnnouncementMode::Layer2,
                &["default/web"],
                &["eth0"],
            ),
            ann(
                "fd00:200::1",
                AnnouncementMode::Layer2,
                &["default/web"],
                &["eth1"],
            ),
            ann(
                "10.200.10.2",
                AnnouncementMode::Layer2,
                &["a/x", "b/y"],
                &["eth0"],
            ),
            ann("10.200.20.1", AnnouncementMode::Bgp, &["default/bgp"], &[]),
        ];
        let d = desired("node1", &anns);
        assert_eq!(d.len(), 3, "{d:?}");
        let web = &d[&object_name("node1", "default/web")];
        assert_eq!(web.node, "node1");
        assert_eq!(
            (web.service_namespace.as_str(), web.service_name.as_str()),
            ("default", "web")
        );
        let names: Vec<&str> = web.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth0", "eth1"]);
        assert!(d.contains_key(&object_name("node1", "a/x")));
        assert!(d.contains_key(&object_name("node1", "b/y")));
        assert!(!d.contains_key(&object_name("node1", "default/bgp")));
    }

    #[test]
    fn names_are_per_node_and_service_and_valid() {
        let a = object_name("node1", "default/web");
        assert_eq!(a, object_name("node1", "default/web"));
        assert_ne!(a, object_name("node2", "default/web"));
        assert_ne!(a, object_name("node1", "default/web2"));
        // The separator keeps ("ab", "c/d") and ("a", "bc/d") apart.
        assert_ne!(object_name("ab", "c/d"), object_name("a", "bc/d"));
        assert_eq!(a.len(), 23);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[test]
    fn diff_creates_updates_and_deletes() {
        let status = |node: &str, svc: &str| ServiceL2StatusStatus {
            node: node.into(),
            service_name: svc.into(),
            service_namespace: "default".into(),
            interfaces: vec![InterfaceInfo {
                name: "eth0".into(),
            }],
        };
        let want = BTreeMap::from([
            ("keep".to_string(), status("n", "a")),
            ("change".to_string(), status("n", "b")),
            ("new".to_string(), status("n", "c")),
            ("half".to_string(), status("n", "d")),
        ]);
        let have = BTreeMap::from([
            ("keep".to_string(), Some(status("n", "a"))),
            ("change".to_string(), Some(status("n", "old"))),
            ("half".to_string(), None),
            ("stale".to_string(), Some(status("n", "e"))),
        ]);
        let changes = diff(&want, &have);
        assert_eq!(
            changes,
            vec![
                Change::Update("change".into(), status("n", "b")),
                Change::Update("half".into(), status("n", "d")),
                Change::Create("new".into(), status("n", "c")),
                Change::Delete("stale".into()),
            ]
        );
        assert!(
            diff(
                &want,
                &want
                    .iter()
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect()
            )
            .is_empty()
        );
    }
}
