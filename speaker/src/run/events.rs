//! `nodeAssigned` events, published beside the loop: a takeover of many addresses must not
//! wait for one API write per Service before the next pass.

use crate::stores::SpeakerStores;
use ferrolb_speaker_core::pass::NodeAssigned;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};
use tokio::sync::mpsc;

/// Events waiting to be published; a pass that finds the queue full waits for room.
const EVENT_QUEUE: usize = 1024;

/// The sending side of the event queue.
#[derive(Clone)]
pub(crate) struct EventQueue {
    tx: mpsc::Sender<NodeAssigned>,
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

    /// Queues the events of one pass.
    pub(crate) async fn send(&self, events: Vec<NodeAssigned>) {
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
    mut rx: mpsc::Receiver<NodeAssigned>,
) {
    while let Some(assigned) = rx.recv().await {
        let Some((ns, name)) = assigned.service.split_once('/') else {
            continue;
        };
        // A Service deleted meanwhile has nothing to attach the event to.
        let Some(obj) = stores.service(ns, name) else {
            continue;
        };
        let reference: ObjectReference = obj.object_ref(&());
        let ev = Event {
            type_: EventType::Normal,
            reason: ferrolb_api::events::NODE_ASSIGNED.to_string(),
            note: Some(format!(
                "announcing {} from node {node} with protocol layer2",
                assigned.ip
            )),
            action: "Announce".to_string(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&ev, &reference).await {
            tracing::warn!(error = %e, service = %assigned.service, "recording nodeAssigned failed");
        }
    }
}
