//! One reconcile pass: from the whole current view (Services, configuration objects, Namespace
//! labels) to the list of writes that bring the cluster in line. Level-triggered: the pass is
//! recomputed from scratch on every change, so missed or reordered events cannot leave stale
//! state. No I/O here; `run.rs` executes the status writes, records the events and applies the
//! metric updates of the returned [`PassOutcome`].

mod outcome;
mod settled;
#[cfg(test)]
mod tests;

pub use outcome::{
    Event, EventKind, MetricDeltas, PassOutcome, PoolAddresses, ServiceFailure, StatusWrite,
};

use crate::allocator::{Allocator, Outcome, ReleaseReason, ServiceKey, ServiceRequest};
use crate::service::{pool_annotations, to_request};
use crate::stores::NamespaceLabels;
use ferrolb_api::IPAddressPoolStatus;
use ferrolb_api::annotations::{ALIAS_PREFIXES, DEPRECATED_PREFIX, deprecated_keys};
use ferrolb_api::events as reasons;
use ferrolb_api::service::{ClassPolicy, handles, ingress_ips};
use ferrolb_api::status::{ControllerStatus, ServiceAllocation};
use ferrolb_config::{Config, ConfigError};
use ferrolb_runtime::{ConfigTracker, ConfigUpdate};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use settled::{NextSettled, Settled};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pool status is written at most this often per pool.
pub const POOL_STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// What the pass needs besides the objects.
#[derive(Clone, Copy, Debug)]
pub struct PassContext {
    /// Which `loadBalancerClass` values are ours to handle.
    pub class_policy: ClassPolicy,
    /// Whether this replica leads (followers write nothing).
    pub leader: bool,
    /// Now, for rate limits.
    pub now: Instant,
}

/// State kept between passes.
#[derive(Debug, Default)]
pub struct Core {
    allocator: Allocator,
    /// The configuration in force (also held by the allocator) and its status.
    config: ConfigTracker,
    restored: bool,
    /// Last failure reported per Service, so an event is recorded once per change.
    failures: HashMap<ServiceKey, ServiceFailure>,
    /// Last status written per Service with the resourceVersion it was computed from: until the
    /// cache shows a newer version, the same write is not repeated.
    written: HashMap<ServiceKey, Written>,
    pool_status: HashMap<String, (IPAddressPoolStatus, Instant)>,
    /// Services the next pass need not decide again.
    settled: Settled,
}

/// A status write made for a Service.
#[derive(Debug)]
struct Written {
    /// The Service's resourceVersion the write was computed from.
    resource_version: String,
    /// Addresses written.
    ips: Vec<IpAddr>,
    /// Pool annotation written.
    pool: Option<String>,
}

/// What settling one Service reported, held until the pass puts every Service's report in
/// the order of their names.
#[derive(Debug, Default)]
struct Reported {
    status_writes: Vec<StatusWrite>,
    events: Vec<Event>,
    /// Metric reasons of newly reported failures.
    allocation_failures: Vec<&'static str>,
    /// Nothing is left to do for the Service: it holds what it should, its status says so, and
    /// no failure is reported ([`settled`]).
    settled: bool,
}

/// Where a pass's rounds stand.
struct Rounds {
    /// Services that got nothing yet, with their request and last outcome, by their place in
    /// the list being decided.
    waiting: Vec<(usize, ServiceRequest, Outcome)>,
    /// What deciding each Service reported, by its place: put in that order at the end,
    /// whichever round the Service was settled in.
    finished: Vec<(usize, Reported)>,
    /// Services with nothing left to do.
    settled: NextSettled,
}

impl Rounds {
    /// Keeps the report of the `i`-th Service, `svc`, unless there is nothing in it, and the
    /// Service as settled if it is.
    fn keep(&mut self, i: usize, svc: &Arc<Service>, reported: Reported) {
        if reported.settled {
            self.settled.insert(svc);
        }
        let empty = reported.status_writes.is_empty()
            && reported.events.is_empty()
            && reported.allocation_failures.is_empty();
        if !empty {
            self.finished.push((i, reported));
        }
    }
}

fn service_ref(svc: &Service) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        namespace: svc.metadata.namespace.clone(),
        name: svc.metadata.name.clone(),
        uid: svc.metadata.uid.clone(),
        resource_version: svc.metadata.resource_version.clone(),
        field_path: None,
    }
}

fn config_ref(kind: &str, namespace: &str, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some(ferrolb_api::API_VERSION.into()),
        kind: Some(kind.into()),
        namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
        name: Some(name.into()),
        ..ObjectReference::default()
    }
}

/// (namespace, name) of a Service, borrowed; the order of [`ServiceKey`].
fn name_of(svc: &Service) -> (&str, &str) {
    (
        svc.metadata.namespace.as_deref().unwrap_or("default"),
        svc.metadata.name.as_deref().unwrap_or_default(),
    )
}

fn key_of(svc: &Service) -> ServiceKey {
    ServiceKey::new(
        svc.metadata.namespace.as_deref().unwrap_or("default"),
        svc.metadata.name.as_deref().unwrap_or_default(),
    )
}

fn saturate(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Core {
    /// Whether a valid configuration has been loaded.
    pub fn loaded(&self) -> bool {
        self.config.loaded()
    }

    /// Forget the allocation table, so that the next pass rebuilds it from the Services'
    /// statuses (called when this replica becomes leader: a follower's view may be stale).
    pub fn reset_for_leadership(&mut self) {
        self.restored = false;
        self.written.clear();
        self.failures.clear();
        self.settled.clear();
    }

    /// Forgets that a status was written (the write failed), so the next pass writes it again.
    pub fn forget_written(&mut self, key: &ServiceKey) {
        self.written.remove(key);
    }

    /// The status API document.
    pub fn status(&self, version: &str, ready: bool, leader: bool) -> ControllerStatus {
        ControllerStatus {
            version: version.to_string(),
            ready,
            leader,
            config: self.config.status().clone(),
            pools: self.allocator.usage_status(),
            services: self.allocator.allocations(),
        }
    }

    /// One Service's allocation.
    pub fn service(&self, namespace: &str, name: &str) -> Option<ServiceAllocation> {
        let key = ServiceKey::new(namespace, name);
        let mut found = self
            .allocator
            .allocations()
            .into_iter()
            .find(|a| a.namespace == namespace && a.name == name)?;
        if found.error.is_none() {
            found.error = self.failures.get(&key).map(ToString::to_string);
        }
        Some(found)
    }

    fn load_config(
        &mut self,
        built: Result<Arc<Config>, Vec<ConfigError>>,
        ctx: &PassContext,
        out: &mut PassOutcome,
    ) {
        match self.config.update(built) {
            ConfigUpdate::Valid { recovered } => {
                if recovered {
                    tracing::info!("configuration is valid again");
                }
                if let Some(cfg) = self.config.in_force_shared()
                    && !self.allocator.runs_on(&cfg)
                {
                    tracing::info!(pools = cfg.pools.len(), "configuration loaded");
                    self.allocator.set_config(cfg);
                    self.settled.clear();
                }
            }
            ConfigUpdate::Rejected { changed, errors } => {
                if changed {
                    out.metrics.config_rejected = true;
                    for e in errors {
                        tracing::error!(error = %e, "configuration rejected; the last valid configuration stays in force");
                        if ctx.leader {
                            out.events.push(Event {
                                regarding: config_ref(&e.kind, &e.namespace, &e.name),
                                kind: EventKind::Warning,
                                reason: reasons::CONFIG_INVALID,
                                note: format!(
                                    "{}: {} (the last valid configuration stays in force)",
                                    e.field, e.message
                                ),
                            });
                        }
                    }
                }
            }
        }
        out.metrics.config_valid = self.config.valid();
        out.metrics.config_loaded = self.config.loaded();
    }

    /// The configuration's validity and problems, as the status API shows them.
    pub fn config_status(&self) -> &ferrolb_api::status::ConfigStatus {
        self.config.status()
    }

    /// Records the API groups the configuration is read from (shown in the status).
    pub fn set_config_groups(&mut self, groups: Vec<String>) {
        self.config.set_groups(groups);
    }

    /// Runs one pass over the whole view; `built` is the configuration as its objects are now
    /// (or why it is invalid), from `ConfigStores::build`.
    pub fn pass(
        &mut self,
        services: &[std::sync::Arc<Service>],
        built: Result<Arc<Config>, Vec<ConfigError>>,
        namespace_labels: &NamespaceLabels,
        ctx: PassContext,
    ) -> PassOutcome {
        let mut out = PassOutcome::default();
        self.load_config(built, &ctx, &mut out);
        // Without any valid configuration every address would look invalid: touch nothing.
        if !self.config.loaded() || !ctx.leader {
            return out;
        }
        let empty = Arc::default();
        let labels_of = |s: &Service| {
            let ns = s.metadata.namespace.as_deref().unwrap_or("default");
            namespace_labels.get(ns).unwrap_or(&empty)
        };
        // Only the Services are listed, borrowed: each one's request is built when its turn
        // comes and dropped once its outcome is reported. A request and an outcome held for
        // every Service at once were a sixth of the controller's peak memory at 50,000
        // Services.
        let mut ours: Vec<&Arc<Service>> = Vec::with_capacity(services.len());
        ours.extend(
            services.iter().filter(|s| {
                handles(s, ctx.class_policy) && s.metadata.deletion_timestamp.is_none()
            }),
        );
        if !self.restored {
            let conflicts = self
                .allocator
                .restore(ours.iter().filter_map(|s| to_request(s, labels_of(s)).ok()));
            for c in conflicts {
                tracing::warn!(ip = %c.ip, service = %c.service, holder = %c.holder, why = %c.why, "two Services' statuses claim one address");
            }
            self.restored = true;
            self.settled.clear();
        }
        // The Services the last pass settled stay settled (`settled.rs`); the rest are decided
        // below.
        let mut next_settled = self.settled.start_pass(namespace_labels);
        let mut deciding: Vec<&Arc<Service>> = Vec::new();
        for svc in ours.iter().copied() {
            if self.settled.contains(svc) {
                next_settled.insert(svc);
            } else {
                deciding.push(svc);
            }
        }
        // Services that are gone, changed type or changed class release their addresses, and
        // before the others are reconciled: a Service waiting for an address then gets a freed
        // one in this same pass. Released after, it would need another pass that nothing may
        // start (the pool status write the release implies can be rate-limited away).
        let gone = self.gone(&ours, ours.len() - deciding.len(), &deciding);
        drop(ours);
        let by_name: HashMap<(&str, &str), &Service> = if gone.is_empty() {
            HashMap::new()
        } else {
            services.iter().map(|s| (name_of(s), &**s)).collect()
        };
        let mut cleared: BTreeSet<ServiceKey> = BTreeSet::new();
        for key in gone {
            let freed = self.allocator.release(&key);
            self.failures.remove(&key);
            self.written.remove(&key);
            let svc = by_name.get(&(key.namespace.as_str(), key.name.as_str()));
            if let Some(svc) = svc {
                let still_lb =
                    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
                // A Service that is no longer a LoadBalancer keeps no stale ingress; one that
                // moved to another class belongs to that class's controller now.
                let annotated = pool_annotations(svc).iter().any(Option::is_some);
                if !still_lb && (!ingress_ips(svc).is_empty() || annotated) {
                    cleared.insert(key.clone());
                    out.status_writes.push(StatusWrite::Service {
                        key: key.clone(),
                        ips: Vec::new(),
                        pool: None,
                    });
                }
                if !freed.is_empty() {
                    out.events.push(Event {
                        regarding: service_ref(svc),
                        kind: EventKind::Normal,
                        reason: reasons::IP_RELEASED,
                        note: format!(
                            "released {} (no longer a ferrolb LoadBalancer Service)",
                            join(&freed)
                        ),
                    });
                }
            }
        }
        // A Service that is not a LoadBalancer carries no load balancer status, whoever wrote
        // it (a type change while no controller ran, or MetalLB's state handed over): MetalLB
        // clears it (controller/service.go convergeBalancer, clearServiceState). Only where
        // Services without a class are ours: those are the only ones a non-LoadBalancer
        // Service can be (the API server keeps loadBalancerClass to LoadBalancer Services).
        if matches!(ctx.class_policy, ClassPolicy::OursOrUnset) {
            for svc in services {
                let not_lb =
                    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("LoadBalancer");
                if !not_lb || svc.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let stale = !ingress_ips(svc).is_empty()
                    || pool_annotations(svc).iter().any(Option::is_some);
                let key = key_of(svc);
                if stale && !cleared.contains(&key) {
                    out.status_writes.push(StatusWrite::Service {
                        key,
                        ips: Vec::new(),
                        pool: None,
                    });
                }
            }
        }
        // The unsettled Services are decided in the order of their names, whatever order the
        // cache lists them in. Compared borrowed: a key built per comparison cost a tenth of a
        // pass at 50,000 Services.
        deciding.sort_by(|a, b| name_of(a).cmp(&name_of(b)));
        let mut rounds = Rounds {
            waiting: Vec::new(),
            finished: Vec::new(),
            settled: next_settled,
        };
        // Every pass reaches a fixed point: a Service that got nothing is asked again as long
        // as the previous round made room (an address freed, a holder's sharing fields
        // changed, a shareable address taken), so a Service waiting for an address a holder
        // gives up gets it in this pass whatever their names sort to. MetalLB re-processes
        // every Service on such a change (controller/main.go SetBalancer,
        // SyncStateReprocessAll). Each further round needs a Service that got an address in
        // the one before, so there are at most as many rounds as Services.
        let mut mark = self.allocator.room_made();
        for (i, svc) in deciding.iter().copied().enumerate() {
            match to_request(svc, labels_of(svc)) {
                Err(e) => {
                    let mut reported = Reported::default();
                    // Keep whatever the Service holds: a typo in an annotation must not take
                    // its address away.
                    let failure = ServiceFailure::Request(e);
                    self.report_failure(svc, &key_of(svc), failure, &mut reported);
                    rounds.keep(i, svc, reported);
                }
                Ok(req) => self.ask(i, svc, req, &mut rounds, &mut out),
            }
        }
        while !rounds.waiting.is_empty() && self.allocator.room_made() != mark {
            mark = self.allocator.room_made();
            for (i, req, _) in std::mem::take(&mut rounds.waiting) {
                self.ask(i, deciding[i], req, &mut rounds, &mut out);
            }
        }
        for (i, req, outcome) in std::mem::take(&mut rounds.waiting) {
            let reported = self.finish_one(deciding[i], &req, outcome);
            rounds.keep(i, deciding[i], reported);
        }
        self.settled.finish_pass(rounds.settled);
        let mut finished = rounds.finished;
        finished.sort_by_key(|(i, _)| *i);
        for (_, reported) in finished {
            out.status_writes.extend(reported.status_writes);
            out.events.extend(reported.events);
            out.metrics
                .allocation_failures
                .extend(reported.allocation_failures);
        }
        out.again_after = self.pool_status_writes(ctx.now, &mut out);
        out
    }

    /// The Services the allocator has an entry for that are not among `ours` (any more),
    /// sorted; `settled` of `ours` are settled and the rest are `deciding`.
    ///
    /// Every settled Service has an entry: it was decided, and an entry leaves only when its
    /// Service is released, which no Service among `ours` is. No two of `ours` share a name. So
    /// when the settled Services and the deciding ones with an entry are as many as the
    /// entries, none is gone, and the names of all Services need not be looked up: hashing and
    /// comparing 50,000 of them was a third of a pass with nothing else to do.
    fn gone(
        &self,
        ours: &[&Arc<Service>],
        settled: usize,
        deciding: &[&Arc<Service>],
    ) -> Vec<ServiceKey> {
        let with_entry = deciding
            .iter()
            .filter(|s| self.allocator.has_entry(&key_of(s)))
            .count();
        if settled + with_entry == self.allocator.service_count() {
            return Vec::new();
        }
        let seen: HashSet<(&str, &str)> = ours.iter().map(|s| name_of(s)).collect();
        let mut gone: Vec<ServiceKey> = self
            .allocator
            .services()
            .filter(|k| !seen.contains(&(k.namespace.as_str(), k.name.as_str())))
            .cloned()
            .collect();
        gone.sort();
        gone
    }

    /// Asks the allocator for the `i`-th Service: it waits for another round if it got
    /// nothing, else its outcome is reported.
    fn ask(
        &mut self,
        i: usize,
        svc: &Arc<Service>,
        req: ServiceRequest,
        rounds: &mut Rounds,
        out: &mut PassOutcome,
    ) {
        let outcome = self.allocate_one(svc, &req, out);
        if outcome.error.is_some() {
            rounds.waiting.push((i, req, outcome));
        } else {
            let reported = self.finish_one(svc, &req, outcome);
            rounds.keep(i, svc, reported);
        }
    }

    /// Allocates for one Service and records what changed hands as events.
    fn allocate_one(
        &mut self,
        svc: &Service,
        req: &ServiceRequest,
        out: &mut PassOutcome,
    ) -> Outcome {
        let key = &req.key;
        let started = Instant::now();
        let outcome = self.allocator.allocate(req);
        out.metrics
            .allocate_seconds
            .push(started.elapsed().as_secs_f64());
        for r in &outcome.released {
            out.events.push(Event {
                regarding: service_ref(svc),
                kind: EventKind::Normal,
                reason: reasons::IP_RELEASED,
                note: r.to_string(),
            });
            if let ReleaseReason::PoolShrunk { pool } = &r.reason
                && let Some(p) = self.allocator.config().pools.get(pool)
            {
                out.events.push(Event {
                    regarding: config_ref("IPAddressPool", &p.namespace, &p.name),
                    kind: EventKind::Warning,
                    reason: reasons::POOL_IN_USE,
                    note: format!(
                        "{} no longer contains {} used by {key}; it was released",
                        p.name, r.ip
                    ),
                });
            }
        }
        for (ip, pool) in &outcome.pool_deleted {
            out.events.push(Event {
                regarding: service_ref(svc),
                kind: EventKind::Warning,
                reason: reasons::POOL_IN_USE,
                note: format!("pool {pool} was deleted while {ip} was in use by {key}"),
            });
        }
        if !outcome.added.is_empty() {
            out.events.push(Event {
                regarding: service_ref(svc),
                kind: EventKind::Normal,
                reason: reasons::IP_ALLOCATED,
                note: format!(
                    "assigned {} from pool {}",
                    join(&outcome.added),
                    outcome.pool.as_deref().unwrap_or("?")
                ),
            });
        }
        outcome
    }

    /// Reports the final state of one Service after the pass's rounds: its failure, or the
    /// status (and pool annotation) to write.
    fn finish_one(&mut self, svc: &Service, req: &ServiceRequest, outcome: Outcome) -> Reported {
        let mut reported = Reported::default();
        let (key, out) = (&req.key, &mut reported);
        let failed = outcome.error.is_some();
        match &outcome.error {
            Some(e) => self.report_failure(svc, key, ServiceFailure::Allocation(e.clone()), out),
            None => {
                self.failures.remove(key);
            }
        }
        let pool = outcome.pool.filter(|_| !outcome.ips.is_empty());
        let status_differs = outcome.ips != req.current;
        let annotation_differs = pool_annotations(svc) != [pool.as_deref(); 2];
        let rv = svc.metadata.resource_version.clone().unwrap_or_default();
        // The same write is not repeated until the cache shows a newer version of the Service;
        // a write for the annotation alone is made once (a server that drops metadata on a
        // status write would otherwise be written to for ever).
        let already_written = self.written.get(key).is_some_and(|w| {
            w.ips == outcome.ips && w.pool == pool && (w.resource_version == rv || !status_differs)
        });
        if (status_differs || annotation_differs) && !already_written {
            // As MetalLB, deprecated annotations are reported when the Service is written,
            // not on every pass (controller/main.go SetBalancer).
            let annotations = svc.metadata.annotations.as_ref();
            for k in annotations.map(deprecated_keys).unwrap_or_default() {
                out.events.push(Event {
                    regarding: service_ref(svc),
                    kind: EventKind::Warning,
                    reason: reasons::DEPRECATED_ANNOTATION,
                    note: format!(
                        "Service uses deprecated annotation {k}; use {} instead",
                        k.replacen(DEPRECATED_PREFIX, ALIAS_PREFIXES[0], 1)
                    ),
                });
            }
            out.status_writes.push(StatusWrite::Service {
                key: key.clone(),
                ips: outcome.ips.clone(),
                pool: pool.clone(),
            });
            self.written.insert(
                key.clone(),
                Written {
                    resource_version: rv,
                    ips: outcome.ips,
                    pool,
                },
            );
        }
        reported.settled = !failed && !status_differs && !annotation_differs;
        reported
    }

    fn report_failure(
        &mut self,
        svc: &Service,
        key: &ServiceKey,
        failure: ServiceFailure,
        out: &mut Reported,
    ) {
        if self.failures.get(key) == Some(&failure) {
            return;
        }
        out.allocation_failures.push(failure.metric_reason());
        tracing::warn!(service = %key, reason = %failure, "allocation failed");
        out.events.push(Event {
            regarding: service_ref(svc),
            kind: EventKind::Warning,
            reason: reasons::ALLOCATION_FAILED,
            note: failure.to_string(),
        });
        self.failures.insert(key.clone(), failure);
    }

    fn pool_status_writes(&mut self, now: Instant, out: &mut PassOutcome) -> Option<Duration> {
        let mut again: Option<Duration> = None;
        for u in self.allocator.usage_status() {
            for (family, used, total) in [
                (
                    "ipv4",
                    u.assigned_ipv4,
                    u.assigned_ipv4.saturating_add(u.available_ipv4),
                ),
                (
                    "ipv6",
                    u.assigned_ipv6,
                    u.assigned_ipv6.saturating_add(u.available_ipv6),
                ),
            ] {
                out.metrics.pool_addresses.push(PoolAddresses {
                    pool: u.name.clone(),
                    family,
                    in_use: saturate(used),
                    total: saturate(total),
                });
            }
            let status = IPAddressPoolStatus {
                assigned_ipv4: saturate(u.assigned_ipv4),
                assigned_ipv6: saturate(u.assigned_ipv6),
                available_ipv4: saturate(u.available_ipv4),
                available_ipv6: saturate(u.available_ipv6),
            };
            match self.pool_status.get(&u.name) {
                Some((last, _)) if *last == status => {}
                Some((_, at)) if now.duration_since(*at) < POOL_STATUS_INTERVAL => {
                    let wait = POOL_STATUS_INTERVAL - now.duration_since(*at);
                    again = Some(again.map_or(wait, |a| a.min(wait)));
                }
                _ => {
                    self.pool_status
                        .insert(u.name.clone(), (status.clone(), now));
                    out.status_writes.push(StatusWrite::Pool {
                        namespace: u.namespace.clone(),
                        name: u.name.clone(),
                        status,
                    });
                }
            }
        }
        again
    }
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
