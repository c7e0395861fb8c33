//! An in-memory Kubernetes API server that real clients (kubectl 1.29 and 1.35, helm 4,
//! kube-rs) accept: discovery, OpenAPI, list/watch with resourceVersions and 410 Gone,
//! optimistic concurrency, status subresources, merge/JSON/strategic/apply patches, JSON and
//! protobuf bodies, finalizers, CRDs served on creation, Service defaulting and allocation,
//! authentication and RBAC, and fault injection.
//!
//! Every request is authenticated and authorized ([`auth`]): [`ApiServerHandle::client`] and
//! the kubeconfig act as the admin (`system:masters`, token [`ApiServerHandle::admin_token`]);
//! ServiceAccount tokens come from the TokenRequest API (`kubectl create token`, kube-rs
//! `Api::<ServiceAccount>::create_token_request`) and are used with
//! [`ApiServerHandle::client_with_token`] or `kubectl --token`. One port serves HTTPS (the
//! kubeconfig's `https://` address with the server's CA: client-go sends credentials only
//! over TLS) and plain HTTP ([`ApiServerHandle::url`], for kube-rs clients).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use ferrolb_e2e::apiserver::{ApiServer, ApiServerOptions};
//! let server = ApiServer::start(ApiServerOptions::default()).await?;
//! let client = server.client()?;
//! // ... use `client`, or run kubectl with `--kubeconfig server.kubeconfig_path()`.
//! server.faults().drop_watches();
//! let server = server.restart().await?; // same port, same objects
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Fidelity
//!
//! Faithful (checked with kubectl 1.35 and 1.29, helm 4.1 and kube-rs 5): `/version`
//! (v1.33.x), legacy discovery (the aggregated-discovery request of kubectl and helm gets a
//! plain answer and falls back, as with older servers), OpenAPI v3 index and documents
//! (kubectl and helm then send `fieldValidation=Strict`: unknown fields are 400 "strict
//! decoding error", otherwise a `Warning` header), one resourceVersion sequence, no-op writes
//! keep the version, `metav1.Status` errors with real codes/reasons, label/field selectors,
//! limit/continue, watch semantics (resume, 410 ERROR event, bookmarks,
//! `sendInitialEvents`, selector enter/leave as ADDED/DELETED, timeoutSeconds), status
//! subresource split, generation on spec changes (CRs, CRDs, Deployments, DaemonSets,
//! NetworkPolicies), finalizers and deletionTimestamp, CRD status conditions (Established,
//! NamesAccepted), CRD schema validation (types, required, enum, pruning), Tables with CRD
//! printer columns, Service defaults and allocations, Secret defaults (`type: Opaque`,
//! `stringData` folded into `data`), name rules per kind (DNS label, DNS subdomain, or a path
//! segment for RBAC objects), events.k8s.io/v1 and core/v1 Events sharing storage.
//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`, the `k8s\0` +
//! `runtime.Unknown` envelope that kubectl's `create` generators and client-go typed clients
//! such as helm's release storage send) are decoded for the kinds listed in [`protobuf`]
//! (Namespace, Service, Secret, ConfigMap, ServiceAccount, Role, ClusterRole, RoleBinding,
//! ClusterRoleBinding, DeleteOptions, and the TokenRequest and review bodies) and stored as
//! JSON; a kind without a conversion is 415 naming the kind, a malformed body 400.
//! Authentication as kube-apiserver with anonymous auth on: a bearer token is the static
//! admin token or a ServiceAccount JWT (HMAC-SHA256 under a key kept in the state, claims
//! as kube's, bound to the ServiceAccount's uid, expiry with kube's one-minute leeway); no
//! token is `system:anonymous`; a bad, expired or revoked token is kube's 401.
//! Impersonation headers are authorized with the `impersonate` verb. Authorization is
//! `system:masters` plus RBAC, read from the store on every request: Roles, ClusterRoles,
//! RoleBindings (also of ClusterRoles), ClusterRoleBindings, subjects User/Group/
//! ServiceAccount, `resource/subresource`, resourceNames, nonResourceURLs with `*` suffixes,
//! request attributes as kube's RequestInfo (list/watch/deletecollection, `/watch/` paths,
//! `fieldSelector=metadata.name=` naming the object), kube's exact 403 messages and the
//! bootstrap roles (`cluster-admin`, `system:discovery`, `system:basic-user`,
//! `system:public-info-viewer`, `system:auth-delegator`) with kube's bindings. TokenRequest,
//! TokenReview, SelfSubjectReview, SubjectAccessReview, LocalSubjectAccessReview,
//! SelfSubjectAccessReview and SelfSubjectRulesReview answer as kube's (create only, in
//! discovery, nothing stored).
//!
//! Approximated: strategic merge patch knows the merge keys of the lists listed in
//! [`patch::list_strategy`] (other lists are replaced); server-side apply merges the applied
//! configuration into the live object and records `managedFields`, but never removes
//! fields a manager stopped applying and never reports conflicts (so `helm upgrade` changes
//! and adds fields, but a field dropped from a template stays); CRD versions are served
//! without conversion; namespace deletion cascades at once (no Terminating phase); DELETE
//! honours `preconditions` but ignores `propagationPolicy`, `gracePeriodSeconds` and
//! `orphanDependents` (there is no garbage collector: `ownerReferences` dependents stay);
//! workloads (Deployment, DaemonSet) are stored and versioned but no controller runs them,
//! so their `status` stays empty; `/openapi/v2` protobuf is a minimal document without
//! definitions (kubectl only falls back to it with a stale v3 cache); list `continue`
//! tokens are served from the current state, not the original snapshot; dryRun is supported
//! on writes but allocations are not held. Responses are always JSON: a client whose Accept
//! header allows only protobuf gets 406, as kube-apiserver answers an unsatisfiable Accept.
//!
//! Missing: CBOR bodies (415), protobuf responses and watch streams, protobuf bodies of
//! kinds other than those above; client certificates, OIDC, webhook authentication and
//! authorization, legacy Secret-based ServiceAccount tokens, tokens bound to Pods, Secrets or
//! Nodes (`boundObjectRef` is 400), RBAC escalation checks on writes of roles and bindings
//! (`escalate`/`bind`), ClusterRole aggregation (`aggregationRule` grants nothing), admission,
//! pods/log/exec/portforward and other subresources except `/status`, deletecollection of
//! namespaces, `resourceVersionMatch=Exact` on lists, built-in kinds other than those in
//! [`resources::builtins`] (e.g. StatefulSet, Job, Ingress: 404).

pub mod audit;
pub mod auth;
mod convert;
mod crd;
pub mod discovery;
pub mod error;
pub mod faults;
mod handlers;
mod ids;
mod kubeconfig;
mod listener;
mod objects;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod selectors;
mod service;
mod service_index;
mod shared;
pub mod store;
mod table;
pub mod time;
pub mod tls;
mod validation;
mod watch;
pub mod watch_stats;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use faults::{Fault, FaultScope, Faults};
pub use kubeconfig::kubeconfig_text;
pub use shared::Shared;
pub use store::Snapshot;
pub use watch_stats::WatchTotals;

/// Errors starting or stopping a server.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "{addr} is neither loopback nor a lab address; this server only listens on 127.0.0.1/::1 \
         or inside the lab's 10.200.0.0/16 and fd00:200::/48"
    )]
    NotLoopback { addr: SocketAddr },
    #[error("cannot read state file {path}: {source}")]
    ReadState {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} is not valid: {source}")]
    ParseState {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build a kube client: {0}")]
    Client(String),
    #[error(
        "the admin token must be non-empty printable ASCII without spaces (it is sent in an Authorization header)"
    )]
    BadAdminToken,
    #[error(
        "the state's serviceAccountSigningKey is not a key this server wrote (base64url of at least 32 bytes)"
    )]
    BadSigningKey,
    #[error("cannot create the default RBAC roles: {0}")]
    Bootstrap(String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ApiServerOptions {
    /// Loopback address; port 0 picks a free port.
    pub listen: SocketAddr,
    /// JSON state file: loaded at start if it exists, written on shutdown and about once a
    /// second after changes. The TLS identity is kept beside it (`STATE.tls.json`), so a
    /// restarted process serves the certificate its clients' kubeconfigs trust.
    pub state_file: Option<PathBuf>,
    /// Where to write the kubeconfig; default: a file in a fresh temporary directory.
    pub kubeconfig_path: Option<PathBuf>,
    /// Start from this state (takes precedence over `state_file`).
    pub snapshot: Option<Snapshot>,
    /// Events kept for watch resumption; older resourceVersions get 410 Gone.
    pub history_limit: usize,
    /// Interval of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// The static admin token (user `admin`, groups `system:masters` and
    /// `system:authenticated`). `None`: a random token, generated at start and kept across
    /// [`ApiServerHandle::restart`]; [`ApiServerHandle::admin_token`] tells it.
    pub admin_token: Option<String>,
    /// The shortest `expirationSeconds` a TokenRequest may ask for (kube-apiserver: 10
    /// minutes); tests lower it to watch a token expire.
    pub min_token_expiration: Duration,
    /// Tolerance of token expiry checks (kube-apiserver's JWT library: one minute).
    pub token_expiry_leeway: Duration,
    /// Append every authorization decision to this file ([`audit`]).
    pub audit_log: Option<PathBuf>,
}

impl Default for ApiServerOptions {
    fn default() -> Self {
        ApiServerOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_file: None,
            kubeconfig_path: None,
            snapshot: None,
            history_limit: 1000,
            bookmark_interval: Duration::from_secs(5),
            admin_token: None,
            min_token_expiration: Duration::from_secs(600),
            token_expiry_leeway: Duration::from_secs(60),
            audit_log: None,
        }
    }
}

/// The server type; see [`ApiServer::start`].
pub struct ApiServer;

/// A running server.
pub struct ApiServerHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    kubeconfig: PathBuf,
    /// The kubeconfig's directory was created by us (default path) and is removed at
    /// shutdown.
    owns_kubeconfig_dir: bool,
    options: ApiServerOptions,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    saver: Option<JoinHandle<()>>,
}

impl ApiServer {
    pub async fn start(mut options: ApiServerOptions) -> Result<ApiServerHandle, ApiServerError> {
        let snapshot = match (&options.snapshot, &options.state_file) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(path)) if path.exists() => Some(read_state(path)?),
            _ => None,
        };
        let token = options
            .admin_token
            .take()
            .unwrap_or_else(shared::random_admin_token);
        if !shared::valid_admin_token(&token) {
            return Err(ApiServerError::BadAdminToken);
        }
        options.admin_token = Some(token);
        let identity = match &options.state_file {
            Some(state) => {
                tls::TlsIdentity::load_or_generate(&tls_identity_path(state), options.listen.ip())?
            }
            None => tls::TlsIdentity::generate(options.listen.ip())?,
        };
        let shared = Shared::new(&options, snapshot, Arc::new(Faults::default()), identity)?;
        serve(Arc::new(shared), options).await
    }
}

/// Where a server with state file `state` keeps its TLS identity.
fn tls_identity_path(state: &Path) -> PathBuf {
    let mut name = state.file_name().unwrap_or_default().to_os_string();
    name.push(".tls.json");
    state.with_file_name(name)
}

fn read_state(path: &Path) -> Result<Snapshot, ApiServerError> {
    let text = std::fs::read_to_string(path).map_err(|source| ApiServerError::ReadState {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ApiServerError::ParseState {
        path: path.to_path_buf(),
        source,
    })
}

fn write_state(path: &Path, snap: &Snapshot) -> Result<(), ApiServerError> {
    let err = |source| ApiServerError::Write {
        path: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_string_pretty(snap).map_err(|e| err(std::io::Error::other(e)))?;
    // Write then rename so a crash never leaves a truncated state file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Loopback, or an address of the lab's own namespaces (the lab runs the server in its
/// control-plane namespace so that speakers in node namespaces reach it).
fn allowed_listen_address(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            v4.is_loopback() || (v4.octets()[0] == 10 && v4.octets()[1] == 200)
        }
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] == 0xfd00
                    && v6.segments()[1] == 0x200
                    && v6.segments()[2] == 0)
        }
    }
}

async fn serve(
    shared: Arc<Shared>,
    options: ApiServerOptions,
) -> Result<ApiServerHandle, ApiServerError> {
    if !allowed_listen_address(options.listen.ip()) {
        return Err(ApiServerError::NotLoopback {
            addr: options.listen,
        });
    }
    let listener = bind_retry(options.listen).await?;
    let addr = listener
        .local_addr()
        .map_err(|source| ApiServerError::Bind {
            addr: options.listen,
            source,
        })?;
    let kubeconfig = options
        .kubeconfig_path
        .clone()
        .unwrap_or_else(|| kubeconfig::default_kubeconfig_path(addr));
    if let Some(dir) = kubeconfig.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ApiServerError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(
        &kubeconfig,
        kubeconfig_text(addr, &shared.tls.ca_pem, &shared.auth.admin_token),
    )
    .map_err(|source| ApiServerError::Write {
        path: kubeconfig.clone(),
        source,
    })?;
    let listener = listener::DualListener::new(listener, addr, &shared.tls);
    let app = axum::Router::new()
        .fallback(handlers::handle)
        .with_state(shared.clone());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stop_rx.await;
        });
        if let Err(e) = server.await {
            tracing::warn!("apiserver stopped with an error: {e}");
        }
    });
    let saver = options.state_file.clone().map(|path| {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut last = shared.store.change_count();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = shared.store.change_count();
                if now != last {
                    last = now;
                    if let Err(e) = write_state(&path, &shared.snapshot()) {
                        tracing::warn!("{e}");
                    }
                }
            }
        })
    });
    tracing::info!(%addr, kubeconfig = %kubeconfig.display(), "in-memory apiserver listening");
    Ok(ApiServerHandle {
        shared,
        addr,
        kubeconfig,
        owns_kubeconfig_dir: options.kubeconfig_path.is_none(),
        options,
        stop: Some(stop_tx),
        task: Some(task),
        saver,
    })
}

/// Binds, retrying briefly: after a restart the old socket may linger for a moment.
async fn bind_retry(addr: SocketAddr) -> Result<TcpListener, ApiServerError> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if addr.port() != 0 && e.kind() == std::io::ErrorKind::AddrInUse => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(source) => return Err(ApiServerError::Bind { addr, source }),
        }
    }
    Err(ApiServerError::Bind {
        addr,
        source: last.unwrap_or_else(|| std::io::Error::other("bind failed")),
    })
}

impl ApiServerHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the plain-HTTP side of the port.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://127.0.0.1:PORT`: the TLS side, as the kubeconfig names it.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA (PEM) that signed the server's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.shared.tls.ca_pem
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The static admin token (user `admin`, group `system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.shared.auth.admin_token
    }

    /// A kube client for this server acting as the admin (default namespace `default`).
    pub fn client(&self) -> Result<kube::Client, ApiServerError> {
        self.client_with_token(self.admin_token())
    }

    /// A kube client for this server authenticating with `token` (a ServiceAccount token
    /// from the TokenRequest API, or the admin token).
    pub fn client_with_token(&self, token: &str) -> Result<kube::Client, ApiServerError> {
        let uri: axum::http::Uri = self
            .url()
            .parse()
            .map_err(|e: axum::http::uri::InvalidUri| ApiServerError::Client(e.to_string()))?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".to_string();
        config.auth_info.token = Some(secrecy::SecretString::from(token.to_string()));
        kube::Client::try_from(config).map_err(|e| ApiServerError::Client(e.to_string()))
    }

    /// Fault injection controls.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// What watches have been sent so far, by `group/resource` (since this server, or its
    /// last restart, started).
    pub fn watch_totals(&self) -> std::collections::BTreeMap<String, WatchTotals> {
        self.shared.watch_stats.totals()
    }

    /// Forget the watch history (like an etcd compaction): watches resuming from an older
    /// resourceVersion get 410 Gone.
    pub fn compact(&self) {
        self.shared.store.compact();
    }

    /// Every change the store commits from now on, in this process: for a harness that
    /// observes the server without being one more watch it serves over HTTP. The receiver
    /// lags (and says so) if it falls a few thousand changes behind.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Arc<store::Event>> {
        self.shared.store.changes()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.current_rv()
    }

    /// A copy of every object (and the token signing key).
    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }

    async fn stop(&mut self) {
        // Watches are long-lived responses: end them so graceful shutdown can finish.
        self.shared.faults.drop_watches();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(3), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        if let Some(saver) = self.saver.take() {
            saver.abort();
        }
        if let Some(path) = &self.options.state_file
            && let Err(e) = write_state(path, &self.shared.snapshot())
        {
            tracing::warn!("{e}");
        }
    }

    /// Stops the server and returns its state.
    pub async fn shutdown(mut self) -> Snapshot {
        self.stop().await;
        self.remove_kubeconfig();
        self.shared.snapshot()
    }

    fn remove_kubeconfig(&mut self) {
        if std::mem::take(&mut self.owns_kubeconfig_dir)
            && let Some(dir) = self.kubeconfig.parent()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Stops and starts again on the same address with the same objects and
    /// resourceVersion (watch history is lost, as after an apiserver restart, so old
    /// watches resume with 410 only if their version is older than the restart point).
    pub async fn restart(mut self) -> Result<ApiServerHandle, ApiServerError> {
        self.stop().await;
        let mut options = self.options.clone();
        options.listen = self.addr;
        options.kubeconfig_path = Some(self.kubeconfig.clone());
        options.snapshot = Some(self.shared.snapshot());
        let shared = Shared::new(
            &options,
            options.snapshot.clone(),
            self.shared.faults.clone(),
            self.shared.tls.clone(),
        )?;
        let mut next = serve(Arc::new(shared), options).await?;
        // The new handle takes over the (same) kubeconfig file.
        next.owns_kubeconfig_dir = std::mem::take(&mut self.owns_kubeconfig_dir);
        Ok(next)
    }
}

impl Drop for ApiServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            self.shared.faults.drop_watches();
            let _ = stop.send(());
        }
        if let Some(saver) = self.saver.take() {
            saver.abort();
        }
        self.remove_kubeconfig();
    }
}
