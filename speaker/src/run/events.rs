//! Events, published beside the loop: `nodeAssigned` and `NoCarrier` on Services (a takeover
//! of many addresses must not wait for one API write per Service before the next pass) and
//! `VRFNotFound` on a BGPPeer whose VRF device is missing on this node.

use crate::stores::SpeakerStores;
use ferrolb_speaker_core::pass::NodeAssigned;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};
use tokio::sync::mpsc;

/// Events waiting to be published; a pass that finds the queue full waits for room.
const EVENT_QUEUE: usize = 1024;

/// One event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    /// This node took over a layer 2 address.
    Assigned(NodeAssigned),
    /// This node, the address's owner, stopped announcing it for lack of carrier: `why`.
    NoCarrier(NodeAssigned, String),
    /// The VRF of a BGPPeer (`namespace/name`) does not exist on this node.
    VrfMissing { peer: String, vrf: String },
}

/// The sending side of the event queue.
#[derive(Clone)]
pub(crate) struct EventQueue {
    tx: mpsc::Sender<Pending>,
}

impl EventQueue {
    /// Starts the publisher task in `tasks`.
    pub(crate) fn start(
        recorder: Recorder,
        stores: SpeakerStores,
        node: String,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        tasks.spawn(publish(recorder, stores, node, rx));
        Self { tx }
    }

    /// Queues events.
    pub(crate) async fn send(&self, events: Vec<Pending>) {
        for ev in events {
            if self.tx.send(ev).await.is_err() {
                tracing::warn!("event publisher stopped; event dropped");
            }
        }
    }
}

async fn publish(
    recorder: Recorder,
    stores: SpeakerStores,
    node: String,
    mut rx: mpsc::Receiver<Pending>,
) {
    while let Some(pending) = rx.recv().await {
        let Some((reference, ev)) = event(&stores, &node, &pending) else {
            continue;
        };
        if let Err(e) = recorder.publish(&ev, &reference).await {
            tracing::warn!(error = %e, event = ?pending, "recording an event failed");
        }
    }
}

/// The object an event is about and the event; `None` when the object is gone.
fn event(
    stores: &SpeakerStores,
    node: &str,
    pending: &Pending,
) -> Option<(ObjectReference, Event)> {
    match pending {
        Pending::Assigned(assigned) => {
            let (ns, name) = assigned.service.split_once('/')?;
            // A Service deleted meanwhile has nothing to attach the event to.
            let obj = stores.service(ns, name)?;
            let reference: ObjectReference = obj.object_ref(&());
            Some((
                reference,
                Event {
                    type_: EventType::Normal,
                    reason: ferrolb_api::events::NODE_ASSIGNED.to_string(),
                    note: Some(format!(
                        "announcing {} from node {node} with protocol layer2",
                        assigned.ip
                    )),
                    action: "Announce".to_string(),
                    secondary: None,
                },
            ))
        }
        Pending::NoCarrier(assigned, why) => {
            let (ns, name) = assigned.service.split_once('/')?;
            let obj = stores.service(ns, name)?;
            let reference: ObjectReference = obj.object_ref(&());
            Some((
                reference,
                Event {
                    type_: EventType::Warning,
                    reason: ferrolb_api::events::NO_CARRIER.to_string(),
                    note: Some(format!(
                        "node {node} stops announcing {} in layer 2: {why}; another node takes it \
                         over",
                        assigned.ip
                    )),
                    action: "Withdraw".to_string(),
                    secondary: None,
                },
            ))
        }
        Pending::VrfMissing { peer, vrf } => {
            let (ns, name) = peer.split_once('/')?;
            let reference = ObjectReference {
                api_version: Some("ferrolb.io/v1beta1".to_string()),
                kind: Some("BGPPeer".to_string()),
                namespace: Some(ns.to_string()),
                name: Some(name.to_string()),
                ..ObjectReference::default()
            };
            Some((
                reference,
                Event {
                    type_: EventType::Warning,
                    reason: ferrolb_api::events::VRF_NOT_FOUND.to_string(),
                    note: Some(format!(
                        "VRF {vrf} does not exist on node {node}; the BGP session of this node \
                         stays down until a VRF device of that name is created"
                    )),
                    action: "Connect".to_string(),
                    secondary: None,
                },
            ))
        }
    }
}
