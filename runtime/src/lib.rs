//! ferrolb runtime: the Kubernetes and process glue both binaries share.
//!
//! The controller and the speaker differ in what they decide; they do not differ in how they
//! watch the cluster, keep the last valid configuration in force, serve their probes and
//! metrics, start, stop and log. That part lives here, once:
//!
//! - [`store`]: reflector-backed caches that bump a change counter, and the configuration CRDs;
//!   [`change_log`]: which objects of a cache changed since a reader last asked;
//! - [`groups`]: which API groups the configuration is read from (`ferrolb.io`, MetalLB's
//!   `metallb.io`), `--config-groups` and `--metallb-namespace`;
//! - [`config`]: the rule "an invalid configuration is reported, the last valid one stays in
//!   force", with the status the status API shows;
//! - [`http`]: `/healthz`, `/readyz` and `/metrics`, which each binary extends with its routes,
//!   served over HTTPS with every path but the probes behind a token the API server
//!   authenticates and authorizes (`--tls-cert-file`, `--tls-key-file`,
//!   `--http-insecure-loopback`);
//! - [`process`]: the start/stop handle of a running component and SIGTERM/SIGINT;
//! - [`telemetry`]: tracing set-up, the command line shell and Prometheus text encoding;
//! - [`sync`]: locks that survive a panicked holder.
//!
//! The pure crates (`ferrolb-config`, `ferrolb-speaker-core`) do not depend on this one.

#![forbid(unsafe_code)]

pub mod change_log;
pub mod config;
pub mod config_state;
pub mod groups;
pub mod http;
pub mod metallb_metrics;
pub mod process;
pub mod retry;
pub mod self_access;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod watch_backoff;

pub use config::{ConfigTracker, ConfigUpdate};
pub use process::{Handle, StopSignal, Wiring, shutdown_signal};
