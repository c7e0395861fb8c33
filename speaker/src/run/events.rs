//! `nodeAssigned` and `NoCarrier` events, published beside the loop: a takeover of many
//! addresses must not wait for one API write per Service before the next pass.

use crate::stores::SpeakerStores;
use ferrolb_speaker_core::pass::NodeAssigned;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};
use tokio::sync::mpsc;

/// Events waiting to be published; a pass that finds the queue full waits for room.
const EVENT_QUEUE: usize = 1024;

/// An event about a Service address, recorded on the Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ServiceEvent {
    /// This node took the address over.
    Assigned(NodeAssigned),
    /// This node, its owner, stopped announcing it for lack of carrier: `why`.
    NoCarrier(NodeAssigned, String),
}

/// The sending side of the event queue.
#[derive(Clone)]
pub(crate) struct EventQueue {
    tx: mpsc::Sender<ServiceEvent>,
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
    pub(crate) async fn send(&self, events: Vec<ServiceEvent>) {
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
    mut rx: mpsc::Receiver<ServiceEvent>,
) {
    while let Some(event) = rx.recv().await {
        let (assigned, type_, reason, note, action) = match event {
            ServiceEvent::Assigned(a) => {
                let note = format!("announcing {} from node {node} with protocol layer2", a.ip);
                (
                    a,
                    EventType::Normal,
                    ferrolb_api::events::NODE_ASSIGNED,
                    note,
                    "Announce",
                )
            }
            ServiceEvent::NoCarrier(a, why) => {
                let note = format!(
                    "node {node} stops announcing {} in layer 2: {why}; another node takes it over",
                    a.ip
                );
                (
                    a,
                    EventType::Warning,
                    ferrolb_api::events::NO_CARRIER,
                    note,
                    "Withdraw",
                )
            }
        };
        let Some((ns, name)) = assigned.service.split_once('/') else {
            continue;
        };
        // A Service deleted meanwhile has nothing to attach the event to.
        let Some(obj) = stores.service(ns, name) else {
            continue;
        };
        let reference: ObjectReference = obj.object_ref(&());
        let ev = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&ev, &reference).await {
            tracing::warn!(error = %e, service = %assigned.service, reason, "recording an event failed");
        }
    }
}
