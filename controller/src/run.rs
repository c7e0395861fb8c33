//! The controller process: caches, leader election, the reconcile loop executing each pass's
//! writes, and the HTTP API.

use crate::allocator::ServiceKey;
use crate::events::{EventPublisher, Reporter};
use crate::http::StatusSource;
use crate::leader::{self, LeaderConfig};
use crate::metrics::Metrics;
use crate::reconciler::{Core, Event, PassContext, StatusWrite};
use anyhow::Context;
use ferrolb_api::IPAddressPool;
use ferrolb_api::service::ClassPolicy;
use ferrolb_api::status::{ControllerStatus, ServiceAllocation};
use ferrolb_runtime::Wiring;
use ferrolb_runtime::config_state::ConfigStateWriter;
use ferrolb_runtime::groups::ConfigSourceArgs;
/// The HTTP API's security flags ([`RunOptions::http`]).
pub use ferrolb_runtime::http::HttpSecurityArgs;
use ferrolb_runtime::http::{Health, HttpApi};
use ferrolb_runtime::store::ConfigNamespaces;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Settings of `ferrolb-controller run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// How the HTTP API is protected: HTTPS with token access checks unless it says
    /// otherwise.
    pub http: HttpSecurityArgs,
    /// Namespace of the configuration objects and the leader Lease.
    pub namespace: String,
    /// Read configuration objects from every namespace instead of `namespace` only.
    pub all_namespaces_config: bool,
    /// Which `loadBalancerClass` values are ours to handle.
    pub class_policy: ClassPolicy,
    /// Identity in the leader Lease (pod name).
    pub identity: String,
    /// Elect a leader with a Lease; without it this replica always writes.
    pub leader_election: bool,
    /// Lease validity without renewal (default 15 s).
    pub lease_duration: Duration,
    /// Renewal and retry period of the election (default 2 s).
    pub lease_renew_every: Duration,
    /// Which API groups the configuration is read from, and MetalLB's namespace.
    pub config_source: ConfigSourceArgs,
    /// The speakers' membership key Secret in `namespace`, created at start when missing;
    /// `None` leaves it to the installer.
    pub memberlist_secret: Option<String>,
}

impl RunOptions {
    /// Options with defaults for the given namespace and identity.
    pub fn new(namespace: &str, identity: &str) -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 7472)),
            http: HttpSecurityArgs::default(),
            namespace: namespace.to_string(),
            all_namespaces_config: false,
            class_policy: ClassPolicy::OursOrUnset,
            identity: identity.to_string(),
            leader_election: true,
            lease_duration: Duration::from_secs(15),
            lease_renew_every: Duration::from_secs(2),
            config_source: ConfigSourceArgs::default(),
            memberlist_secret: Some("memberlist".into()),
        }
    }
}

/// State shared by the loop and the HTTP API.
pub struct Shared {
    core: Mutex<Core>,
    metrics: Metrics,
    ready: AtomicBool,
    leader: AtomicBool,
}

impl Shared {
    fn core(&self) -> MutexGuard<'_, Core> {
        ferrolb_runtime::sync::lock(&self.core)
    }
}

impl Health for Shared {
    fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
    fn metrics_text(&self) -> String {
        self.metrics.encode()
    }
}

impl StatusSource for Shared {
    fn status(&self) -> ControllerStatus {
        self.core().status(
            env!("CARGO_PKG_VERSION"),
            self.ready(),
            self.leader.load(Ordering::Relaxed),
        )
    }
    fn service(&self, namespace: &str, name: &str) -> Option<ServiceAllocation> {
        self.core().service(namespace, name)
    }
}

/// A running controller: `stop` stops it and waits for it; `wait` waits until it ends by
/// itself (it only does on an error).
pub type Handle = ferrolb_runtime::Handle<Shared, anyhow::Error>;

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(client: Client, opts: RunOptions) -> anyhow::Result<()> {
    start(client, opts).await?.run_until_signal().await
}

/// Binds the HTTP API and starts the controller in the background.
pub async fn start(client: Client, opts: RunOptions) -> anyhow::Result<Handle> {
    let shared = Arc::new(Shared {
        core: Mutex::new(Core::default()),
        metrics: Metrics::new(),
        ready: AtomicBool::new(false),
        leader: AtomicBool::new(!opts.leader_election),
    });
    let security = opts.http.resolve(opts.listen, &opts.identity)?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding the HTTP API on {}", opts.listen))?;
    let addr = listener.local_addr()?;
    let api = HttpApi::new(crate::http::router(shared.clone()), security, &client);
    tracing::info!(listen = %addr, tls = api.is_tls(), "HTTP API listening");
    Ok(Handle::spawn(listener, api, shared, |w| {
        main_loop(client, opts, w)
    })?)
}

async fn main_loop(client: Client, opts: RunOptions, mut w: Wiring<Shared>) -> anyhow::Result<()> {
    let shared = w.shared.clone();
    let services = w.pruned_store(
        Api::<Service>::all(client.clone()),
        crate::service::drop_unread,
    );
    if let Some(name) = &opts.memberlist_secret {
        let what = format!(
            "ensuring the membership key Secret {}/{name} (the speakers' layer 2 failover \
             needs it; --ml-secret-name= leaves it to the installer)",
            opts.namespace
        );
        let ensured = ferrolb_runtime::retry::until_ok(&what, &mut w.stop, || {
            crate::memberlist::ensure(&client, &opts.namespace, name)
        })
        .await;
        let Some(ensured) = ensured else {
            return Ok(());
        };
        if ensured == crate::memberlist::Ensured::Created {
            tracing::info!(namespace = %opts.namespace, secret = %name, "created the membership key Secret");
        }
    }
    let groups = opts
        .config_source
        .resolve_when_reachable(&client, &mut w.stop)
        .await
        .map_err(anyhow::Error::msg)?;
    let Some(groups) = groups else {
        return Ok(());
    };
    let all = opts.all_namespaces_config;
    let namespaces = ConfigNamespaces {
        ferrolb: (!all).then_some(opts.namespace.as_str()),
        metallb: (!all).then_some(opts.config_source.metallb_namespace.as_str()),
    };
    let stores = w.config_stores(&client, namespaces, &groups);
    shared.core().set_config_groups(groups.names());
    let config_state = ConfigStateWriter::start(
        &client,
        "controller",
        &opts.namespace,
        &opts.config_source.metallb_namespace,
        &groups,
        &mut w.tasks,
    );
    shared.metrics.set_config_groups(&groups.names());
    let namespaces = w.store(Api::<Namespace>::all(client.clone()));

    let (leader_tx, mut leader_rx) = watch::channel(!opts.leader_election);
    let election = opts.leader_election.then(|| {
        let api: Api<Lease> = Api::namespaced(client.clone(), &opts.namespace);
        let mut cfg = LeaderConfig::new(&opts.namespace, &opts.identity);
        cfg.lease_duration = opts.lease_duration;
        cfg.renew_every = opts.lease_renew_every;
        // The election ends with the loop: `w.tasks` aborts it.
        let task = w
            .tasks
            .spawn(leader::run(api.clone(), cfg.clone(), leader_tx));
        (task, api, cfg)
    });

    let mut stop = std::pin::pin!(w.stop);
    tokio::select! {
        r = async {
            services.wait_until_ready().await?;
            stores.wait_until_ready().await?;
            namespaces.wait_until_ready().await
        } => r?,
        _ = &mut stop => return Ok(()),
    }
    tracing::info!("caches synced");

    let publisher = EventPublisher::new(
        client.clone(),
        Reporter {
            controller: "ferrolb-controller".into(),
            instance: opts.identity.clone(),
        },
    );
    // Events are published beside the passes, not within them: a pass that allocates for a
    // burst of Services would otherwise wait for one event per Service before the next pass
    // could write the statuses of the Services created meanwhile.
    let (events, events_rx) = tokio::sync::mpsc::unbounded_channel();
    w.tasks
        .spawn(publish_events(publisher, shared.clone(), events_rx));
    let mut again: Option<Duration> = None;
    let mut was_leader = false;
    let mut writing: Option<tokio::task::JoinHandle<bool>> = None;
    'passes: loop {
        let leading = *leader_rx.borrow_and_update();
        shared.leader.store(leading, Ordering::Relaxed);
        shared.metrics.leader.set(i64::from(leading));
        if leading && !was_leader {
            // A new leader rebuilds its table from the Services' statuses before allocating.
            shared.core().reset_for_leadership();
        }
        was_leader = leading;
        let ctx = PassContext {
            class_policy: opts.class_policy,
            leader: leading,
            now: Instant::now(),
        };
        let started = Instant::now();
        let result = {
            let mut core = shared.core();
            core.pass(
                &services.state(),
                stores.build(),
                &crate::stores::namespace_labels(&namespaces),
                ctx,
            )
        };
        shared.metrics.reconcile.apply(&result.metrics);
        shared.metrics.metallb.apply(&result.metrics);
        if leading {
            config_state.publish(shared.core().config_status());
        }
        shared.ready.store(true, Ordering::Relaxed);
        let computed = started.elapsed();
        // The previous pass's writes end before this pass's start, so the writes of one
        // Service keep their order; this pass was computed while they were in flight (a
        // pass records what it writes before writing it, so it does not repeat a write in
        // flight). In a burst the computing of a pass at tens of thousands of Services
        // then no longer adds to every Service's wait.
        let previous_failed = match writing.take() {
            Some(w) => w.await.unwrap_or(true),
            None => false,
        };
        writing = Some(tokio::spawn(write_pass(
            client.clone(),
            events.clone(),
            shared.clone(),
            result.status_writes,
            result.events,
            computed,
        )));
        again = if previous_failed {
            Some(back_off(again))
        } else {
            result.again_after
        };
        let retry = tokio::time::sleep(again.unwrap_or(NEVER));
        let mut retry = std::pin::pin!(retry);
        loop {
            tokio::select! {
                _ = w.changes.changed() => break,
                _ = leader_rx.changed() => break,
                _ = &mut retry => break,
                failed = written(&mut writing), if writing.is_some() => {
                    writing = None;
                    if failed {
                        let d = back_off(again);
                        again = Some(d);
                        retry.as_mut().reset(tokio::time::Instant::now() + d);
                    }
                }
                _ = &mut stop => break 'passes,
            }
        }
        // Let a burst of watch events land before recomputing.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(w) = writing.take() {
        let _ = w.await;
    }
    if let Some((task, api, cfg)) = election
        && was_leader
    {
        task.abort();
        hand_leadership_over(&api, &cfg).await;
    }
    tracing::info!("controller stopped");
    Ok(())
}

/// A retry that is not due.
const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// The wait before a pass retries failed writes: 200 ms, doubled on each failure, at most 10 s.
fn back_off(again: Option<Duration>) -> Duration {
    again.map_or(Duration::from_millis(200), |d| {
        (d * 2).min(Duration::from_secs(10))
    })
}

/// Whether the writes in flight failed, once they are done (never, if none are).
async fn written(writing: &mut Option<tokio::task::JoinHandle<bool>>) -> bool {
    match writing {
        // A write task that panicked failed.
        Some(w) => w.await.unwrap_or(true),
        None => std::future::pending().await,
    }
}

/// Executes one pass's writes and events; returns whether a write failed.
async fn write_pass(
    client: Client,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    shared: Arc<Shared>,
    writes: Vec<StatusWrite>,
    queued: Vec<Event>,
    computed: Duration,
) -> bool {
    let started = Instant::now();
    let (count, events_queued) = (writes.len(), queued.len());
    let failed = execute(&client, &events, &shared, writes, queued).await;
    tracing::debug!(
        writes = count,
        events = events_queued,
        computed_ms = computed.as_millis() as u64,
        written_ms = started.elapsed().as_millis() as u64,
        "pass"
    );
    failed
}

/// A leader that stops releases its lease, so a standby takes over within one renew period.
async fn hand_leadership_over(api: &Api<Lease>, cfg: &LeaderConfig) {
    match tokio::time::timeout(Duration::from_secs(3), leader::release(api, cfg)).await {
        Ok(Ok(true)) => tracing::info!(identity = %cfg.identity, "released the leader lease"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not release the leader lease"),
        Err(_) => tracing::warn!("releasing the leader lease timed out"),
    }
}

/// Events waiting to be published. Unbounded, so that a pass never waits for events: they
/// are published at a lower concurrency than status writes (which users and speakers wait
/// for) and catch up after a burst; the queue holds at most the few events each change of a
/// Service or pool produces.
type EventQueue = tokio::sync::mpsc::UnboundedReceiver<Event>;

/// Events published at once: a few, so that in a burst the API server serves status writes
/// first.
const EVENTS_IN_FLIGHT: usize = 4;

/// Publishes queued events while this replica leads.
async fn publish_events(publisher: EventPublisher, shared: Arc<Shared>, rx: EventQueue) {
    let queue =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|w| (w, rx)) });
    queue
        .for_each_concurrent(EVENTS_IN_FLIGHT, |ev| {
            let (publisher, shared) = (&publisher, &shared);
            async move {
                // Losing the lease stops writes at once, also for queued events.
                if !shared.leader.load(Ordering::Relaxed) {
                    return;
                }
                // An event that cannot be recorded is logged, not retried: the state it
                // describes is also in the status API and the logs.
                if let Err(e) = publisher.publish(&ev).await {
                    tracing::warn!(error = %e, "recording event failed");
                }
            }
        })
        .await;
}

/// Writes in flight at once: enough to keep the API server busy, bounded so a burst of
/// thousands of Services does not open thousands of requests.
const WRITES_IN_FLIGHT: usize = 32;

/// Which status writes start first: Service statuses are what users and speakers wait for.
fn write_priority(w: &StatusWrite) -> u8 {
    match w {
        StatusWrite::Service { .. } => 0,
        StatusWrite::Pool { .. } => 1,
    }
}

/// Executes status writes concurrently, then queues events; returns whether any write failed
/// (the pass is then retried). Events are queued after the statuses: a pass that allocates for
/// a burst of Services would otherwise interleave one event per status and double the time
/// until the last status is written.
async fn execute(
    client: &Client,
    events: &tokio::sync::mpsc::UnboundedSender<Event>,
    shared: &Shared,
    mut writes: Vec<StatusWrite>,
    queued: Vec<Event>,
) -> bool {
    // Stable: writes of one kind keep their order.
    writes.sort_by_key(write_priority);
    let results = futures::stream::iter(writes)
        .map(|w| async move {
            // Losing the lease stops writes at once, also within a pass.
            if !shared.leader.load(Ordering::Relaxed) {
                return Ok(());
            }
            let status_key = match &w {
                StatusWrite::Service { key, .. } => Some(key.clone()),
                _ => None,
            };
            execute_one(client, w).await.map_err(|e| (status_key, e))
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect::<Vec<Result<(), (Option<ServiceKey>, kube::Error)>>>()
        .await;
    // After this pass's statuses: they are what users and speakers wait for.
    for ev in queued {
        if events.send(ev).is_err() {
            tracing::warn!("event publisher stopped; event dropped");
        }
    }
    let mut failed = false;
    for r in results {
        if let Err((key, e)) = r {
            tracing::warn!(error = %e, "write failed; will retry");
            if let Some(key) = key {
                shared.core().forget_written(&key);
            }
            failed = true;
        }
    }
    failed
}

async fn execute_one(client: &Client, w: StatusWrite) -> Result<(), kube::Error> {
    match w {
        StatusWrite::Service { key, ips, pool } => {
            let api: Api<Service> = Api::namespaced(client.clone(), &key.namespace);
            let patch = crate::service::status_patch(&ips, pool.as_deref());
            match api
                .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => Ok(()),
                // Deleted meanwhile: nothing to write.
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(e),
            }
        }
        StatusWrite::Pool {
            namespace,
            name,
            status,
        } => {
            let api: Api<IPAddressPool> = Api::namespaced(client.clone(), &namespace);
            let patch = serde_json::json!({ "status": status });
            let params = PatchParams::default();
            match api
                .patch_status(&name, &params, &Patch::Merge(&patch))
                .await
            {
                Ok(_) => Ok(()),
                // Not a ferrolb.io pool: names are unique across the two groups, so it is
                // MetalLB's (or was deleted meanwhile), whose status MetalLB's users read.
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    let ar = kube::api::ApiResource {
                        group: ferrolb_api::METALLB_GROUP.into(),
                        version: "v1beta1".into(),
                        api_version: format!("{}/v1beta1", ferrolb_api::METALLB_GROUP),
                        kind: "IPAddressPool".into(),
                        plural: "ipaddresspools".into(),
                    };
                    let api: Api<kube::api::DynamicObject> =
                        Api::namespaced_with(client.clone(), &namespace, &ar);
                    match api
                        .patch_status(&name, &params, &Patch::Merge(&patch))
                        .await
                    {
                        Ok(_) => Ok(()),
                        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        }
    }
}
