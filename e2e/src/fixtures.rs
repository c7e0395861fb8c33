//! Helpers shared by tests, benchmarks and the lab for driving a cluster (the in-memory API
//! server or any other): installing our CRDs, creating namespaces, waiting for conditions.

use k8s_openapi::api::core::v1::{Namespace, Service, ServicePort, ServiceSpec};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// A LoadBalancer Service in `default` selecting `app: NAME`, with one port.
pub fn lb_service(name: &str, port: i32, annotations: &[(&str, &str)]) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            selector: Some(BTreeMap::from([("app".to_string(), name.to_string())])),
            ports: Some(vec![ServicePort {
                port,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The addresses in a Service's `status.loadBalancer.ingress`, read as the binaries read them.
pub use ferrolb_api::service::ingress_ips;

/// Creates every ferrolb CRD (already existing ones are left alone).
pub async fn install_crds(client: &Client) -> Result<(), kube::Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in ferrolb_api::crds::all() {
        match api.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates a namespace unless it exists.
pub async fn ensure_namespace(client: &Client, name: &str) -> Result<(), kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Polls `cond` every 25 ms until it returns `Some`, or fails with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for: {what}"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `GET` of a plain-HTTP path on `addr`, returning status code and body. Enough for the status
/// APIs of our own processes; no client library needed.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP response: {head}")))?;
    Ok((code, body.to_string()))
}

/// The request head that opens a long-lived connection on the echo server: after the answer's
/// head, every line the client sends is answered with the server's text line, until the
/// client closes (how benchmarks see whether one TCP connection survives an operation).
pub const STREAM_REQUEST: &str = "GET /stream HTTP/1.1\r\n";

/// Serves a long-lived connection opened with [`STREAM_REQUEST`]: `head` is what was read of
/// the request (possibly with the first lines of the stream after it).
async fn answer_stream(
    mut stream: tokio::net::TcpStream,
    head: &[u8],
    line: &[u8],
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        .await?;
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(head.len(), |p| p + 4);
    let mut pending = head[end..].iter().filter(|b| **b == b'\n').count();
    let mut buf = [0u8; 512];
    loop {
        for _ in 0..pending {
            stream.write_all(line).await?;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        pending = buf[..n].iter().filter(|b| **b == b'\n').count();
    }
}

/// Answers every HTTP request on `listen` with `text` and the client's address (so tests can
/// check that client source addresses are preserved), until the process ends;
/// [`STREAM_REQUEST`] opens a long-lived connection.
pub async fn echo_server(listen: std::net::SocketAddr, text: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(listen).await?;
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let body = format!("{text} {}\n", peer.ip().to_canonical());
        tokio::spawn(async move {
            // Read the request head (bounded), then answer; the content is not interpreted.
            let mut buf = [0u8; 2048];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 16 * 1024 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            if seen.starts_with(STREAM_REQUEST.as_bytes()) {
                let _ = answer_stream(stream, &seen, body.as_bytes()).await;
                return;
            }
            let resp = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(resp.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
