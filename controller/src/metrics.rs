//! Prometheus metrics of the controller.

use crate::reconciler::MetricDeltas;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;

/// Labels of per-pool gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// Pool name.
    pub pool: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
}

/// Labels of allocation failures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Short machine-readable reason (`AllocError::metric_reason`,
    /// `RequestError::metric_reason`), e.g. `exhausted`.
    pub reason: String,
}

/// The metrics a reconcile pass updates (see [`MetricDeltas`]).
pub struct ReconcileMetrics {
    /// Addresses assigned, per pool and family.
    pub addresses_in_use: Family<PoolLabels, Gauge>,
    /// Addresses in the pool, per family (saturated at i64::MAX).
    pub addresses_total: Family<PoolLabels, Gauge>,
    /// Services that could not get an address, by reason.
    pub allocation_failures: Family<ReasonLabels, Counter>,
    /// Time spent allocating for one Service.
    pub reconcile_duration: Histogram,
    /// Configuration updates rejected as invalid.
    pub config_errors: Counter,
    /// 1 when the latest configuration is valid.
    pub config_valid: Gauge,
}

impl ReconcileMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            addresses_in_use: Family::default(),
            addresses_total: Family::default(),
            allocation_failures: Family::default(),
            // 100 µs .. ~3 s: a reconcile pass over thousands of Services stays well inside.
            reconcile_duration: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16),
            ),
            config_errors: Counter::default(),
            config_valid: Gauge::default(),
        };
        registry.register(
            "pool_addresses_in_use",
            "Addresses of the pool assigned to Services",
            m.addresses_in_use.clone(),
        );
        registry.register(
            "pool_addresses_total",
            "Addresses in the pool (saturated at the largest int64)",
            m.addresses_total.clone(),
        );
        registry.register(
            "allocation_failures",
            "Services that could not get an address, by reason",
            m.allocation_failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent allocating for one Service",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "config_errors",
            "Configuration updates rejected as invalid",
            m.config_errors.clone(),
        );
        registry.register(
            "config_valid",
            "1 when the latest configuration is valid",
            m.config_valid.clone(),
        );
        m
    }

    /// Applies the metric updates of one pass.
    pub fn apply(&self, deltas: &MetricDeltas) {
        if deltas.config_rejected {
            self.config_errors.inc();
        }
        self.config_valid.set(i64::from(deltas.config_valid));
        for reason in &deltas.allocation_failures {
            self.allocation_failures
                .get_or_create(&ReasonLabels {
                    reason: (*reason).to_string(),
                })
                .inc();
        }
        for p in &deltas.pool_addresses {
            let labels = PoolLabels {
                pool: p.pool.clone(),
                family: p.family.to_string(),
            };
            self.addresses_in_use.get_or_create(&labels).set(p.in_use);
            self.addresses_total.get_or_create(&labels).set(p.total);
        }
        for seconds in &deltas.allocate_seconds {
            self.reconcile_duration.observe(*seconds);
        }
    }
}

/// Label of MetalLB's per-pool gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MetallbPoolLabels {
    /// Pool name.
    pub pool: String,
}

/// MetalLB's controller metric names, exported beside ferrolb's so that dashboards and alerts
/// written for MetalLB keep working (the mapping is in the README).
#[derive(Default)]
pub struct MetallbMetrics {
    /// `metallb_allocator_addresses_in_use_total`, and per family.
    in_use: [Family<MetallbPoolLabels, Gauge>; 3],
    /// `metallb_allocator_addresses_total`, and per family.
    total: [Family<MetallbPoolLabels, Gauge>; 3],
    /// `metallb_k8s_client_config_{loaded,stale}_bool`.
    config: ferrolb_runtime::metallb_metrics::ConfigGauges,
}

impl MetallbMetrics {
    /// Registers every metric in `r`, which must carry the `metallb` prefix.
    fn register(r: &mut Registry) -> Self {
        let m = Self {
            config: ferrolb_runtime::metallb_metrics::ConfigGauges::register(r),
            ..Self::default()
        };
        for (i, family) in ["", "ipv4_", "ipv6_"].iter().enumerate() {
            let which = match *family {
                "ipv4_" => "IPV4 ",
                "ipv6_" => "IPV6 ",
                _ => "",
            };
            r.register(
                format!("allocator_{family}addresses_in_use_total"),
                format!("Number of {which}IP addresses in use, per pool"),
                m.in_use[i].clone(),
            );
            r.register(
                format!("allocator_{family}addresses_total"),
                format!("Number of usable {which}IP addresses, per pool"),
                m.total[i].clone(),
            );
        }
        m
    }

    /// Sets the gauges from one pass.
    pub fn apply(&self, deltas: &MetricDeltas) {
        self.config.set(deltas.config_loaded, deltas.config_valid);
        let mut sums: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for p in &deltas.pool_addresses {
            let labels = MetallbPoolLabels {
                pool: p.pool.clone(),
            };
            let i = if p.family == "ipv6" { 2 } else { 1 };
            self.in_use[i].get_or_create(&labels).set(p.in_use);
            self.total[i].get_or_create(&labels).set(p.total);
            let sum = sums.entry(&p.pool).or_default();
            sum.0 = sum.0.saturating_add(p.in_use);
            sum.1 = sum.1.saturating_add(p.total);
        }
        for (pool, (in_use, total)) in sums {
            let labels = MetallbPoolLabels { pool: pool.into() };
            self.in_use[0].get_or_create(&labels).set(in_use);
            self.total[0].get_or_create(&labels).set(total);
        }
    }
}

/// Every metric the controller exports.
pub struct Metrics {
    registry: Registry,
    /// What the reconcile passes update.
    pub reconcile: ReconcileMetrics,
    /// 1 when this replica leads.
    pub leader: Gauge,
    /// The API groups the configuration is read from.
    pub config_groups: ferrolb_runtime::groups::GroupsGauge,
    /// MetalLB's names for what its dashboards read.
    pub metallb: MetallbMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `ferrolb_controller` prefix, and
    /// MetalLB's names under `metallb`.
    pub fn new() -> Self {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("ferrolb_controller");
        let reconcile = ReconcileMetrics::register(registry);
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 when this replica leads and writes",
            leader.clone(),
        );
        let config_groups = ferrolb_runtime::groups::GroupsGauge::register(registry);
        let metallb = MetallbMetrics::register(root.sub_registry_with_prefix("metallb"));
        Self {
            registry: root,
            metallb,
            reconcile,
            leader,
            config_groups,
        }
    }

    /// Records the API groups the configuration is read from.
    pub fn set_config_groups(&self, groups: &[String]) {
        self.config_groups.set(groups);
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        ferrolb_runtime::telemetry::encode_metrics(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_prefixed_metrics() {
        let m = Metrics::new();
        m.reconcile
            .addresses_in_use
            .get_or_create(&PoolLabels {
                pool: "lan".into(),
                family: "ipv4".into(),
            })
            .set(3);
        m.leader.set(1);
        let text = m.encode();
        assert!(
            text.contains(
                r#"ferrolb_controller_pool_addresses_in_use{pool="lan",family="ipv4"} 3"#
            ),
            "{text}"
        );
        assert!(text.contains("ferrolb_controller_leader 1"), "{text}");
    }
}

#[cfg(test)]
mod apply_tests {
    use super::*;
    use crate::reconciler::PoolAddresses;

    #[test]
    fn applies_every_kind_of_delta() {
        let m = Metrics::new();
        let deltas = MetricDeltas {
            config_rejected: true,
            config_valid: false,
            allocation_failures: vec!["exhausted", "exhausted", "sharing"],
            pool_addresses: vec![PoolAddresses {
                pool: "lan".into(),
                family: "ipv6",
                in_use: 2,
                total: 256,
            }],
            allocate_seconds: vec![0.001],
            config_loaded: true,
        };
        m.reconcile.apply(&deltas);
        let text = m.encode();
        for line in [
            "ferrolb_controller_config_errors_total 1",
            "ferrolb_controller_config_valid 0",
            r#"ferrolb_controller_allocation_failures_total{reason="exhausted"} 2"#,
            r#"ferrolb_controller_allocation_failures_total{reason="sharing"} 1"#,
            r#"ferrolb_controller_pool_addresses_in_use{pool="lan",family="ipv6"} 2"#,
            r#"ferrolb_controller_pool_addresses_total{pool="lan",family="ipv6"} 256"#,
            "ferrolb_controller_reconcile_duration_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
    }

    #[test]
    fn metallb_names_are_exported_per_pool_and_family() {
        let m = Metrics::new();
        let pool = |family, in_use, total| PoolAddresses {
            pool: "lan".into(),
            family,
            in_use,
            total,
        };
        m.metallb.apply(&MetricDeltas {
            config_loaded: true,
            config_valid: false,
            pool_addresses: vec![pool("ipv4", 3, 10), pool("ipv6", 2, 256)],
            ..MetricDeltas::default()
        });
        let text = m.encode();
        for line in [
            r#"metallb_allocator_addresses_in_use_total{pool="lan"} 5"#,
            r#"metallb_allocator_addresses_total{pool="lan"} 266"#,
            r#"metallb_allocator_ipv4_addresses_in_use_total{pool="lan"} 3"#,
            r#"metallb_allocator_ipv6_addresses_total{pool="lan"} 256"#,
            "metallb_k8s_client_config_loaded_bool 1",
            "metallb_k8s_client_config_stale_bool 1",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
    }
}
