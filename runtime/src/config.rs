//! The configuration in force: an invalid new configuration is reported and the last valid
//! one stays in force (DESIGN.md, "Never lose what works").

use ferrolb_api::status::ConfigStatus;
use ferrolb_config::{Config, ConfigError};
use std::sync::Arc;

/// Tracks the configuration in force and what the status API says about it.
#[derive(Debug, Default)]
pub struct ConfigTracker {
    status: ConfigStatus,
    last_valid: Option<Arc<Config>>,
    last_errors: Vec<ConfigError>,
}

/// What one [`ConfigTracker::update`] changed, for the caller to report (logs, events,
/// metrics): each binary words its reports itself.
#[derive(Debug, PartialEq)]
pub enum ConfigUpdate<'a> {
    /// The configuration is valid and now in force.
    Valid {
        /// The configuration seen before was rejected.
        recovered: bool,
    },
    /// The configuration was rejected; the last valid one (if any) stays in force.
    Rejected {
        /// The errors differ from those of the previous update: report them (once per change,
        /// not on every pass).
        changed: bool,
        /// Every error of the rejected configuration.
        errors: &'a [ConfigError],
    },
}

impl ConfigTracker {
    /// Takes the result of building the configuration from the objects as they are now. The
    /// same shared configuration as the one in force (a build served again while no object
    /// changed) changes nothing.
    pub fn update(&mut self, built: Result<Arc<Config>, Vec<ConfigError>>) -> ConfigUpdate<'_> {
        match built {
            Ok(cfg)
                if self.last_errors.is_empty()
                    && self
                        .last_valid
                        .as_ref()
                        .is_some_and(|last| Arc::ptr_eq(last, &cfg)) =>
            {
                ConfigUpdate::Valid { recovered: false }
            }
            Ok(cfg) => {
                self.status = ConfigStatus {
                    valid: true,
                    loaded: true,
                    errors: Vec::new(),
                    warnings: cfg.warnings.iter().map(ConfigError::to_problem).collect(),
                    groups: std::mem::take(&mut self.status.groups),
                };
                let recovered = !self.last_errors.is_empty();
                self.last_errors.clear();
                self.last_valid = Some(cfg);
                ConfigUpdate::Valid { recovered }
            }
            Err(errors) => {
                self.status.valid = false;
                let changed = errors != self.last_errors;
                if changed {
                    self.status.errors = errors.iter().map(ConfigError::to_problem).collect();
                    self.last_errors = errors;
                }
                ConfigUpdate::Rejected {
                    changed,
                    errors: &self.last_errors,
                }
            }
        }
    }

    /// Records the API groups the configuration is read from, for the status.
    pub fn set_groups(&mut self, groups: Vec<String>) {
        self.status.groups = groups;
    }

    /// What the status API shows: validity of the latest configuration, its errors, and the
    /// warnings of the one in force.
    pub fn status(&self) -> &ConfigStatus {
        &self.status
    }

    /// Whether the latest configuration was valid.
    pub fn valid(&self) -> bool {
        self.status.valid
    }

    /// Whether any valid configuration has been loaded yet.
    pub fn loaded(&self) -> bool {
        self.status.loaded
    }

    /// The configuration in force: the last valid one.
    pub fn in_force(&self) -> Option<&Config> {
        self.last_valid.as_deref()
    }

    /// The configuration in force, shared.
    pub fn in_force_shared(&self) -> Option<Arc<Config>> {
        self.last_valid.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(message: &str) -> ConfigError {
        ConfigError {
            kind: "IPAddressPool".into(),
            namespace: "ferrolb-system".into(),
            name: "lan".into(),
            field: "spec.addresses[0]".into(),
            message: message.into(),
            severity: ferrolb_config::Severity::Error,
        }
    }

    #[test]
    fn the_last_valid_configuration_stays_in_force() {
        let mut t = ConfigTracker::default();
        assert!(!t.loaded() && t.in_force().is_none());
        assert_eq!(
            t.update(Err(vec![error("bad")])),
            ConfigUpdate::Rejected {
                changed: true,
                errors: &[error("bad")]
            }
        );
        assert!(!t.loaded() && !t.valid());

        assert_eq!(
            t.update(Ok(Arc::default())),
            ConfigUpdate::Valid { recovered: true }
        );
        assert!(t.loaded() && t.valid());
        assert_eq!(t.in_force(), Some(&Config::default()));
        assert!(t.status().errors.is_empty());

        let rejected = t.update(Err(vec![error("worse")]));
        assert!(matches!(
            rejected,
            ConfigUpdate::Rejected { changed: true, .. }
        ));
        assert!(t.loaded() && !t.valid());
        assert_eq!(t.in_force(), Some(&Config::default()));
        assert_eq!(t.status().errors.len(), 1);
        assert_eq!(t.status().errors[0].message, "worse");

        // The same errors again are not news.
        let again = t.update(Err(vec![error("worse")]));
        assert!(matches!(
            again,
            ConfigUpdate::Rejected { changed: false, .. }
        ));
        assert_eq!(
            t.update(Ok(Arc::default())),
            ConfigUpdate::Valid { recovered: true }
        );
        assert_eq!(
            t.update(Ok(Arc::default())),
            ConfigUpdate::Valid { recovered: false }
        );
    }

    /// A build served again (the same `Arc`) is the configuration in force; after a rejection
    /// it is news again.
    #[test]
    fn the_same_shared_configuration_again_changes_nothing_but_recovers_a_rejection() {
        let mut t = ConfigTracker::default();
        let mut with_warning = Config::default();
        with_warning.warnings.push(error("deprecated"));
        let built = Arc::new(with_warning);
        assert_eq!(
            t.update(Ok(built.clone())),
            ConfigUpdate::Valid { recovered: false }
        );
        assert_eq!(t.status().warnings.len(), 1);
        assert_eq!(
            t.update(Ok(built.clone())),
            ConfigUpdate::Valid { recovered: false }
        );
        assert!(t.valid() && t.status().warnings.len() == 1);
        assert!(t.in_force_shared().is_some_and(|c| Arc::ptr_eq(&c, &built)));

        t.update(Err(vec![error("bad")]));
        assert!(!t.valid());
        assert_eq!(t.update(Ok(built)), ConfigUpdate::Valid { recovered: true });
        assert!(t.valid() && t.status().errors.is_empty());
    }
}
