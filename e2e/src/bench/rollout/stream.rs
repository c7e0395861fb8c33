//! A long-lived TCP connection to a Service, as a client with a persistent connection holds
//! one: a line every 100 ms on one connection to the echo server's stream
//! ([`crate::fixtures::STREAM_REQUEST`]), each answered within a second, or the connection
//! counts as broken (reset, closed, or silent) and a new one is opened.

use crate::cluster::ns_runtime;
use anyhow::bail;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const PING_EVERY: Duration = Duration::from_millis(100);
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// One broken connection.
#[derive(Clone, Debug)]
pub struct Break {
    pub at: Instant,
    /// The node that served the connection until it broke.
    pub node: String,
    pub why: String,
}

#[derive(Default)]
struct Record {
    breaks: Vec<Break>,
    answers: u64,
}

/// A long-lived connection kept from a lab namespace.
pub struct LongLived {
    rt: Option<tokio::runtime::Runtime>,
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
}

impl LongLived {
    /// Opens the connection to `target` from namespace `ns` and keeps it (and, once broken,
    /// its successors) until dropped.
    pub fn start(ns: &str, target: SocketAddr) -> anyhow::Result<LongLived> {
        if !crate::lab::topology::is_lab_addr(target.ip()) {
            bail!("{target} is not a lab address");
        }
        let rt = ns_runtime(ns)?;
        let stop = Arc::new(AtomicBool::new(false));
        let record = Arc::new(Mutex::new(Record::default()));
        let (stop2, record2) = (stop.clone(), record.clone());
        rt.spawn(async move {
            while !stop2.load(Ordering::Relaxed) {
                let outcome = hold(target, &stop2, &record2).await;
                if let Some((node, why)) = outcome {
                    lock(&record2).breaks.push(Break {
                        at: Instant::now(),
                        node,
                        why,
                    });
                }
                tokio::time::sleep(PING_EVERY).await;
            }
        });
        Ok(LongLived {
            rt: Some(rt),
            stop,
            record,
        })
    }

    /// Every break so far.
    pub fn breaks(&self) -> Vec<Break> {
        lock(&self.record).breaks.clone()
    }

    /// Answers received so far, over every connection.
    pub fn answers(&self) -> u64 {
        lock(&self.record).answers
    }
}

impl Drop for LongLived {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

fn lock(r: &Mutex<Record>) -> std::sync::MutexGuard<'_, Record> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// Holds one connection until it breaks (`Some((node, why))`) or the stream is stopped
/// (`None`). A connection that never answered is not a break of a connection that existed:
/// it is reported as `None` too and retried.
async fn hold(
    target: SocketAddr,
    stop: &AtomicBool,
    record: &Mutex<Record>,
) -> Option<(String, String)> {
    let stream = tokio::time::timeout(ANSWER_WITHIN, tokio::net::TcpStream::connect(target))
        .await
        .ok()?
        .ok()?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let request = format!("{}Host: stream\r\n\r\n", crate::fixtures::STREAM_REQUEST);
    write.write_all(request.as_bytes()).await.ok()?;
    // The answer's head: status line, header lines, an empty line.
    let head = async {
        loop {
            match lines.next_line().await {
                Ok(Some(l)) if l.is_empty() => return Some(()),
                Ok(Some(_)) => {}
                _ => return None,
            }
        }
    };
    tokio::time::timeout(ANSWER_WITHIN, head).await.ok()??;
    let mut node = String::new();
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = write.write_all(b"ping\n").await {
            return Some((node, format!("write: {e}")));
        }
        match tokio::time::timeout(ANSWER_WITHIN, lines.next_line()).await {
            Err(_) => return Some((node, "no answer within 1 s".into())),
            Ok(Err(e)) => return Some((node, format!("read: {e}"))),
            Ok(Ok(None)) => return Some((node, "closed by the server".into())),
            Ok(Ok(Some(line))) => {
                let name = line.split_whitespace().next().unwrap_or_default();
                if node.is_empty() {
                    node = name.to_string();
                } else if node != name {
                    return Some((node, format!("answered by {name}")));
                }
                lock(record).answers += 1;
            }
        }
        tokio::time::sleep(PING_EVERY).await;
    }
    None
}
