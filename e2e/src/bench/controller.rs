//! Controller throughput benchmark: N LoadBalancer Services created at once against the
//! in-memory API server, with the real `ferrolb-controller` binary as a separate process (so
//! its peak RSS is its own). Reports p50/p99 of create→status time, total time and peak RSS.
//! A status counts from when the API server commits it ([`record_assignments`]).

use super::addressed_service::AddressedService;
use super::stats::{peak_rss_kib, percentile};
use crate::apiserver::{ApiServer, ApiServerOptions};
use crate::fixtures::{ensure_namespace, install_crds};
use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, Resource};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Benchmark settings.
#[derive(Clone, Debug)]
pub struct ControllerBench {
    /// Services to create.
    pub services: usize,
    /// Path of the `ferrolb-controller` binary.
    pub controller_bin: PathBuf,
    /// Creates in flight at once: the bench's client shares the process (and the machine)
    /// with the API server, so this is how hard the burst presses, not a property of the
    /// controller.
    pub concurrency: usize,
    /// Give up after this long.
    pub timeout: Duration,
}

/// Benchmark figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ControllerBenchReport {
    /// Services created.
    pub services: usize,
    /// Services whose status was set before the timeout.
    pub assigned: usize,
    /// Median create→status time, ms.
    pub p50_ms: f64,
    /// 99th percentile create→status time, ms.
    pub p99_ms: f64,
    /// From the first create to the last status, ms.
    pub total_ms: f64,
    /// From the first create to the last create's response, ms: how fast the API server took
    /// the burst (the controller works concurrently).
    pub create_ms: f64,
    /// Controller peak RSS, MiB.
    pub controller_peak_rss_mib: f64,
}

impl std::fmt::Display for ControllerBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "controller bench: {} services, {} assigned, create->status p50 {:.1} ms, p99 {:.1} ms, \
             all assigned in {:.0} ms (all created in {:.0} ms), controller peak RSS {:.1} MiB",
            self.services,
            self.assigned,
            self.p50_ms,
            self.p99_ms,
            self.total_ms,
            self.create_ms,
            self.controller_peak_rss_mib
        )
    }
}

/// The binary next to the current executable (target/{debug,release}/), or on PATH.
pub fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().ok();
    let dirs = exe
        .iter()
        .flat_map(|e| e.ancestors().skip(1).take(2).map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from(name)
}

fn lb_service(i: usize) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(format!("bench-{i:05}")),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            // 5,000 Services would exhaust the 2,768 node ports; load balancers that route to
            // the Service address do not need them.
            allocate_load_balancer_node_ports: Some(false),
            ports: Some(vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Runs the benchmark.
pub async fn run(opts: &ControllerBench) -> anyhow::Result<ControllerBenchReport> {
    let server = ApiServer::start(ApiServerOptions {
        history_limit: opts.services * 8 + 1000,
        ..ApiServerOptions::default()
    })
    .await?;
    let client = server.client()?;
    install_crds(&client).await?;
    ensure_namespace(&client, "ferrolb-system").await?;
    let pools: Api<ferrolb_api::IPAddressPool> = Api::namespaced(client.clone(), "ferrolb-system");
    let pool = ferrolb_api::IPAddressPool::new(
        "bench",
        ferrolb_api::IPAddressPoolSpec {
            // Data only: these addresses are written into statuses, never used on a network.
            // 65,536 of them, so 50,000 Services all get one.
            addresses: vec!["10.200.0.0/16".into()],
            auto_assign: true,
            ..Default::default()
        },
    );
    pools.create(&PostParams::default(), &pool).await?;

    let mut child = tokio::process::Command::new(&opts.controller_bin)
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--namespace",
            "ferrolb-system",
        ])
        .arg("--no-leader-election")
        .env("KUBECONFIG", server.kubeconfig_path())
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", opts.controller_bin.display()))?;
    let pid = child.id().context("controller pid")?;

    let assigned_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let lagged: Arc<Mutex<u64>> = Arc::default();
    let watch_task = tokio::spawn(record_assignments(
        server.changes(),
        assigned_at.clone(),
        lagged.clone(),
    ));
    // Give the controller time to sync before the burst, so start-up is not measured.
    wait_ready(&client).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let start = Instant::now();
    let created_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let services = kube::core::Request::new(AddressedService::url_path(&(), Some("default")));
    futures::stream::iter(0..opts.services)
        .map(|i| {
            let (client, services) = (&client, &services);
            let created_at = created_at.clone();
            async move {
                let svc = lb_service(i);
                let name = svc.metadata.name.clone().unwrap_or_default();
                let body = serde_json::to_vec(&svc).map_err(kube::Error::SerdeError)?;
                let create = services
                    .create(&PostParams::default(), body)
                    .map_err(kube::Error::BuildRequest)?;
                let t = Instant::now();
                // The created object is not decoded: the bench needs only that it was.
                client.request_text(create).await?;
                if let Ok(mut m) = created_at.lock() {
                    m.insert(name, t);
                }
                Ok::<(), kube::Error>(())
            }
        })
        .buffer_unordered(opts.concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, kube::Error>>()?;
    let created_in = start.elapsed();

    let deadline = start + opts.timeout;
    loop {
        let n = assigned_at.lock().map(|m| m.len()).unwrap_or(0);
        if n >= opts.services || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rss_kib = peak_rss_kib(pid).unwrap_or(0);
    watch_task.abort();
    let missed = lagged.lock().map(|n| *n).unwrap_or(0);
    anyhow::ensure!(
        missed == 0,
        "the bench's observer fell {missed} changes behind the store: its figures would be wrong"
    );
    let _ = child.kill().await;
    server.shutdown().await;

    let created = created_at.lock().map(|m| m.clone()).unwrap_or_default();
    let assigned = assigned_at.lock().map(|m| m.clone()).unwrap_or_default();
    let latencies: Vec<Duration> = created
        .iter()
        .filter_map(|(name, c)| assigned.get(name).map(|a| a.saturating_duration_since(*c)))
        .collect();
    let last = assigned.values().max().copied().unwrap_or(start);
    let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    Ok(ControllerBenchReport {
        services: opts.services,
        assigned: latencies.len(),
        p50_ms: ms(percentile(&latencies, 50.0)),
        p99_ms: ms(percentile(&latencies, 99.0)),
        total_ms: last.saturating_duration_since(start).as_secs_f64() * 1000.0,
        create_ms: created_in.as_secs_f64() * 1000.0,
        controller_peak_rss_mib: rss_kib as f64 / 1024.0,
    })
}

/// Records when each Service's status first carries an address, as the API server commits
/// it. Observed in this process, on the store's own change feed: a watch over HTTP and TLS, as
/// the bench used, made the measuring compete with the controller and the API server for the
/// same two cores (a second stream of every Service change, encrypted, sent, decrypted and
/// decoded), and stamped each status when that watch delivered it rather than when it was
/// written. Changes missed by falling behind are counted in `lagged`.
async fn record_assignments(
    mut changes: tokio::sync::broadcast::Receiver<Arc<crate::apiserver::store::Event>>,
    assigned_at: Arc<Mutex<HashMap<String, Instant>>>,
    lagged: Arc<Mutex<u64>>,
) {
    use tokio::sync::broadcast::error::RecvError;
    let services = crate::apiserver::store::core("services");
    loop {
        let ev = match changes.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                if let Ok(mut l) = lagged.lock() {
                    *l += n;
                }
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if ev.gr != services || ev.namespace != "default" {
            continue;
        }
        let addressed = ev.object["status"]["loadBalancer"]["ingress"]
            .as_array()
            .is_some_and(|i| !i.is_empty());
        // The readiness probe is not one of the measured Services: counting it would end the
        // wait one Service early and leave that one unmeasured.
        if addressed
            && let Some(name) = ev.object["metadata"]["name"].as_str()
            && name != PROBE
            && let Ok(mut m) = assigned_at.lock()
        {
            m.entry(name.to_string()).or_insert_with(Instant::now);
        }
    }
}

/// Name of the Service [`wait_ready`] creates and deletes before the burst.
const PROBE: &str = "bench-probe";

/// Waits until a probe Service gets an address: the controller is synced and allocating. The
/// probe is deleted again so it does not count.
async fn wait_ready(client: &Client) {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let mut probe = lb_service(0);
    probe.metadata.name = Some(PROBE.into());
    if api.create(&PostParams::default(), &probe).await.is_err() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(s) = api.get(PROBE).await
            && s.status
                .and_then(|st| st.load_balancer)
                .and_then(|lb| lb.ingress)
                .is_some_and(|i| !i.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = api.delete(PROBE, &Default::default()).await;
}
