//! A configuration problem, naming the object and field.

use ferrolb_api::status::ConfigProblem;

/// Whether a problem rejects the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The configuration is rejected.
    Error,
    /// Reported, but the configuration is accepted.
    Warning,
}

/// One problem of a configuration: which object, which field, what was wrong and what is
/// accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {}: {field}: {message}", object_name(namespace, name))]
pub struct ConfigError {
    /// Kind of the object, e.g. `IPAddressPool`.
    pub kind: String,
    /// Namespace of the object (may be empty).
    pub namespace: String,
    /// Name of the object.
    pub name: String,
    /// Field path, e.g. `spec.addresses[1]`.
    pub field: String,
    /// What was wrong and what is accepted.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
}

fn object_name(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

impl ConfigError {
    /// The problem as the status API reports it.
    pub fn to_problem(&self) -> ConfigProblem {
        ConfigProblem {
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            field: self.field.clone(),
            message: self.message.clone(),
        }
    }
}
