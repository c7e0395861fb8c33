//! Watch streams: newline-delimited `{"type": ..., "object": ...}` events over a chunked
//! HTTP response, as the real server sends them.
//!
//! Supports resuming from a resourceVersion (replayed from the bounded history, or a single
//! ERROR event with a 410 Expired Status when it is older than the history), `rv=0`/empty
//! (current objects as ADDED first), `sendInitialEvents=true` (current objects, then a
//! BOOKMARK annotated `k8s.io/initial-events-end`), periodic BOOKMARKs with
//! `allowWatchBookmarks`, `timeoutSeconds`, selectors (objects entering/leaving the
//! selection become ADDED/DELETED), Table output, and fault injection (drop all watches).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{Event, EventType, WatchFrom};
use super::watch_stats::WatchCounter;
use super::{Shared, convert, table};

pub struct WatchParams {
    pub from: WatchFrom,
    pub send_initial_events: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// `Some(includeObject)` when the client asked for Table output.
    pub table: Option<String>,
}

/// One watch line, `{"type":...,"object":...}` and a newline, around an object already
/// serialised (`type_` is one of the fixed event type names: nothing to escape).
fn line_bytes(type_: &str, object: &[u8]) -> Bytes {
    let mut s = Vec::with_capacity(object.len() + type_.len() + 24);
    s.extend_from_slice(b"{\"type\":\"");
    s.extend_from_slice(type_.as_bytes());
    s.extend_from_slice(b"\",\"object\":");
    s.extend_from_slice(object);
    s.extend_from_slice(b"}\n");
    Bytes::from(s)
}

fn line(type_: &str, object: &Value) -> Bytes {
    line_bytes(type_, object.to_string().as_bytes())
}

/// How one watch renders objects: as served, or as Table rows (the first with columns).
struct Encoder {
    table: Option<String>,
    first: bool,
}

impl Encoder {
    /// The line for `obj` (already presented). `shared` is the event's own serialisation,
    /// usable when `obj` is the stored object unchanged: then nothing is serialised again.
    fn line(
        &mut self,
        type_: &str,
        obj: &Value,
        rt: &ResourceType,
        shared: Option<&Bytes>,
    ) -> Bytes {
        match &self.table {
            Some(include) => {
                let t = table::table(
                    rt,
                    std::slice::from_ref(obj),
                    json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
                    include,
                    self.first,
                );
                self.first = false;
                line(type_, &t)
            }
            None => match shared {
                Some(bytes) => line_bytes(type_, bytes),
                None => line(type_, obj),
            },
        }
    }
}

/// A watch's response stream, counting what it is handed.
struct Lines {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    counter: Arc<WatchCounter>,
}

impl Lines {
    /// Sends an object event line; false when the client is gone.
    async fn event(&self, line: Bytes) -> bool {
        let len = line.len();
        let sent = self.tx.send(Ok(line)).await.is_ok();
        if sent {
            self.counter.event(len);
        }
        sent
    }

    /// Sends a BOOKMARK line; false when the client is gone.
    async fn bookmark(&self, line: Bytes) -> bool {
        let len = line.len();
        let sent = self.tx.send(Ok(line)).await.is_ok();
        if sent {
            self.counter.bookmark(len);
        }
        sent
    }
}

/// Serves one watch request.
pub async fn serve(
    shared: Arc<Shared>,
    rt: ResourceType,
    ns: Option<String>,
    p: WatchParams,
) -> Response {
    shared.faults.wait_released().await;
    let gr = rt.group_resource();
    let mut epoch = shared.faults.epoch();
    epoch.borrow_and_update();
    let sub = match shared.store.subscribe(&gr, ns.as_deref(), p.from) {
        Ok(s) => s,
        Err(e) => {
            // A watch from a compacted version: 200 with one ERROR event, as the real server.
            shared.faults.note_gone();
            tracing::debug!(resource = %rt.plural, "watch from expired resourceVersion: {}", e.message);
            return (
                [(CONTENT_TYPE, "application/json")],
                Body::from(line("ERROR", &e.to_status())),
            )
                .into_response();
        }
    };
    shared.faults.note_watch();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    let counter = shared
        .watch_stats
        .open(format!("{}/{}", display_group(&gr.group), gr.resource));
    let bookmark_every = shared.bookmark_interval.max(Duration::from_millis(10));
    tokio::spawn(async move {
        let tx = Lines { tx, counter };
        let mut enc = Encoder {
            table: p.table.clone(),
            first: true,
        };
        let matches = |o: &Value| p.labels.matches(o) && p.fields.matches(o);
        let mut last_rv = sub.rv;
        for stored in &sub.initial {
            let obj = convert::present_cow(&rt, stored);
            if !matches(&obj) {
                continue;
            }
            if !tx.event(enc.line("ADDED", &obj, &rt, None)).await {
                return;
            }
        }
        if p.send_initial_events {
            let bm = json!({"kind": rt.kind, "apiVersion": rt.api_version(),
                "metadata": {"resourceVersion": sub.rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
            if !tx.bookmark(line("BOOKMARK", &bm)).await {
                return;
            }
        }
        for ev in &sub.backlog {
            if let Some(l) = event_line(ev, &matches, &mut enc, &rt)
                && !tx.event(l).await
            {
                return;
            }
        }
        let mut rx_events = sub.rx;
        let deadline = tokio::time::sleep(p.timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(bookmark_every);
        tick.reset();
        loop {
            tokio::select! {
                ev = rx_events.recv() => match ev {
                    Ok(ev) => {
                        last_rv = last_rv.max(ev.rv);
                        if ev.gr != gr || ns.as_deref().is_some_and(|n| n != ev.namespace) {
                            continue;
                        }
                        if let Some(l) = event_line(&ev, &matches, &mut enc, &rt)
                            && !tx.event(l).await
                        {
                            return;
                        }
                    }
                    // Too slow or server gone: end the stream; the client resumes.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
                _ = epoch.changed() => return,
                _ = &mut deadline => return,
                _ = tick.tick(), if p.bookmarks => {
                    let bm = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": last_rv.to_string()}});
                    if !tx.bookmark(line("BOOKMARK", &bm)).await {
                        return;
                    }
                }
                _ = tx.tx.closed() => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        [(CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// `core` for the core group's empty name, so every resource reads `group/resource`.
fn display_group(group: &str) -> &str {
    if group.is_empty() { "core" } else { group }
}

fn event_line(
    ev: &Event,
    matches: &impl Fn(&Value) -> bool,
    enc: &mut Encoder,
    rt: &ResourceType,
) -> Option<Bytes> {
    let obj = convert::present_cow(rt, &ev.object);
    let now = matches(&obj);
    let type_ = match ev.type_ {
        EventType::Modified => {
            let before = ev
                .prev
                .as_ref()
                .is_some_and(|p| matches(&convert::present_cow(rt, p)));
            match (before, now) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            }
        }
        t if now => t.as_str(),
        _ => return None,
    };
    // Served as stored: every watch of this event shares one serialisation.
    let shared = matches!(obj, Cow::Borrowed(_)).then(|| ev.encoded_object());
    Some(enc.line(type_, &obj, rt, shared))
}

/// Parses the watch query parameters.
pub fn params(
    q: &std::collections::HashMap<String, String>,
    labels: LabelSelector,
    fields: FieldSelector,
    table: Option<String>,
) -> Result<WatchParams, ApiError> {
    let send_initial_events = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let from = match q.get("resourceVersion").map(String::as_str) {
        _ if send_initial_events => WatchFrom::Now,
        None | Some("") | Some("0") => WatchFrom::Now,
        Some(v) => WatchFrom::Version(
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v:?}")))?,
        ),
    };
    // The real server picks a random 30-60 minute timeout when none is given; very large
    // values are capped so the deadline arithmetic cannot overflow.
    let timeout = match q.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {t:?}")))?
                .min(24 * 3600),
        ),
        None => Duration::from_secs(30 * 60),
    };
    Ok(WatchParams {
        from,
        send_initial_events,
        bookmarks: q.get("allowWatchBookmarks").is_some_and(|v| v == "true"),
        timeout,
        labels,
        fields,
        table,
    })
}
