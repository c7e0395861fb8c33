//! MetalLB's configuration gauges, which both of its components export and so both of ours
//! do: `metallb_k8s_client_config_loaded_bool` and `metallb_k8s_client_config_stale_bool`.

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The two gauges.
#[derive(Clone, Default)]
pub struct ConfigGauges {
    loaded: Gauge,
    stale: Gauge,
}

impl ConfigGauges {
    /// Registers them in `r`, which must carry the `metallb` prefix.
    pub fn register(r: &mut Registry) -> Self {
        let g = Self::default();
        r.register(
            "k8s_client_config_loaded_bool",
            "1 if the MetalLB configuration was successfully loaded at least once.",
            g.loaded.clone(),
        );
        r.register(
            "k8s_client_config_stale_bool",
            "1 if running on a stale configuration, because the latest config failed to load.",
            g.stale.clone(),
        );
        g
    }

    /// Sets them: stale means a configuration is in force but the latest one was rejected.
    pub fn set(&self, loaded: bool, valid: bool) {
        self.loaded.set(i64::from(loaded));
        self.stale.set(i64::from(loaded && !valid));
    }
}
