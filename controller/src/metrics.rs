//! Prometheus metrics of the controller.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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
    /// Short machine-readable reason, e.g. `no_free_address`.
    pub reason: String,
}

/// Every metric the controller exports.
pub struct Metrics {
    registry: Registry,
    /// Addresses assigned, per pool and family.
    pub addresses_in_use: Family<PoolLabels, Gauge>,
    /// Addresses in the pool, per family (saturated at i64::MAX).
    pub addresses_total: Family<PoolLabels, Gauge>,
    /// Services that could not get an address, by reason.
    pub allocation_failures: Family<ReasonLabels, Counter>,
    /// Time spent in one reconcile pass.
    pub reconcile_duration: Histogram,
    /// Configuration updates rejected as invalid.
    pub config_errors: Counter,
    /// 1 when the latest configuration is valid.
    pub config_valid: Gauge,
    /// 1 when this replica leads.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `ferrolb_controller` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferrolb_controller");
        let addresses_in_use = Family::<PoolLabels, Gauge>::default();
        let addresses_total = Family::<PoolLabels, Gauge>::default();
        let allocation_failures = Family::<ReasonLabels, Counter>::default();
        // 100 µs .. ~3 s: a reconcile pass over thousands of Services stays well inside.
        let reconcile_duration = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16),
        );
        let config_errors = Counter::default();
        let config_valid = Gauge::default();
        let leader = Gauge::default();
        registry.register(
            "pool_addresses_in_use",
            "Addresses of the pool assigned to Services",
            addresses_in_use.clone(),
        );
        registry.register(
            "pool_addresses_total",
            "Addresses in the pool (saturated at the largest int64)",
            addresses_total.clone(),
        );
        registry.register(
            "allocation_failures",
            "Services that could not get an address, by reason",
            allocation_failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent allocating for one Service",
            reconcile_duration.clone(),
        );
        registry.register(
            "config_errors",
            "Configuration updates rejected as invalid",
            config_errors.clone(),
        );
        registry.register(
            "config_valid",
            "1 when the latest configuration is valid",
            config_valid.clone(),
        );
        registry.register(
            "leader",
            "1 when this replica leads and writes",
            leader.clone(),
        );
        Self {
            registry,
            addresses_in_use,
            addresses_total,
            allocation_failures,
            reconcile_duration,
            config_errors,
            config_valid,
            leader,
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_prefixed_metrics() {
        let m = Metrics::new();
        m.addresses_in_use
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
