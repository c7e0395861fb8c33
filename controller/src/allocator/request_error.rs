//! Why a Service's request cannot be read at all: a field or annotation the allocator cannot
//! understand. The `Display` of each variant is the message users read in the
//! `AllocationFailed` event and the status API, naming the field and what is accepted.

use ferrolb_config::IpFamily;
use std::net::IpAddr;

/// Longest pool name: pools are Kubernetes objects, whose names are DNS subdomains.
pub const MAX_POOL_NAME_LEN: usize = 253;
/// Longest sharing key accepted. MetalLB sets no limit; real keys are short words, and the key
/// is quoted in the messages of Services that cannot share.
pub const MAX_SHARING_KEY_LEN: usize = 1024;
/// Longest piece of a rejected value quoted back in a message.
pub const MAX_QUOTED_LEN: usize = 64;

/// `text`, or its first [`MAX_QUOTED_LEN`] characters and `…` when longer.
pub fn excerpt(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_LEN) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// A port protocol other than TCP, UDP and SCTP.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("port protocol {0:?} is unknown; accepted: TCP, UDP, SCTP")]
pub struct UnknownProtocol(pub String);

/// A Service field or annotation that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// `spec.ipFamilyPolicy` is none of the three policies.
    #[error(
        "spec.ipFamilyPolicy {0:?} is unknown; accepted: SingleStack, PreferDualStack, \
         RequireDualStack"
    )]
    UnknownIpFamilyPolicy(String),
    /// An entry of `spec.ipFamilies` is neither IPv4 nor IPv6.
    #[error("spec.ipFamilies: {0:?} is unknown; accepted: IPv4, IPv6")]
    UnknownIpFamily(String),
    /// `spec.ports[index].port` does not fit a port number.
    #[error("spec.ports[{index}].port {port} is not a valid port")]
    InvalidPort {
        /// Index in `spec.ports`.
        index: usize,
        /// The value.
        port: i32,
    },
    /// `spec.ports[index].protocol` is unknown.
    #[error("spec.ports[{index}]: {protocol}")]
    PortProtocol {
        /// Index in `spec.ports`.
        index: usize,
        /// The protocol.
        protocol: UnknownProtocol,
    },
    /// The pool annotation is present but empty.
    #[error("annotation {key} is empty; expected the name of a pool")]
    EmptyPoolAnnotation {
        /// Annotation key as written (ours or an alias).
        key: String,
    },
    /// The pool annotation is longer than any pool name can be.
    #[error(
        "annotation {key} is {len} bytes long; expected the name of a pool (at most \
         {MAX_POOL_NAME_LEN} characters)"
    )]
    PoolNameTooLong {
        /// Annotation key as written (ours or an alias).
        key: String,
        /// Length of the value in bytes.
        len: usize,
    },
    /// The sharing key annotation is longer than ferrolb accepts.
    #[error(
        "annotation {key} is {len} bytes long; a sharing key has at most {MAX_SHARING_KEY_LEN} \
         bytes"
    )]
    SharingKeyTooLong {
        /// Annotation key as written (ours or an alias).
        key: String,
        /// Length of the value in bytes.
        len: usize,
    },
    /// Addresses asked for both by annotation and by `spec.loadBalancerIP`.
    #[error("annotation {key} and spec.loadBalancerIP are both set; use only {key}")]
    IpsAskedTwice {
        /// Annotation key as written.
        key: String,
    },
    /// A requested address does not parse.
    #[error(
        "{location}: {value:?} is not an IP address; expected up to one IPv4 and one IPv6 \
         address separated by a comma"
    )]
    NotAnIp {
        /// Annotation key or `spec.loadBalancerIP`.
        location: String,
        /// The text that is not an address, cut to [`MAX_QUOTED_LEN`] characters (with `…`)
        /// so a hostile annotation cannot make a hostile event.
        value: String,
    },
    /// Two requested addresses of one family.
    #[error(
        "{location}: {first} and {second} are both {}; at most one address per family",
        IpFamily::of(second).k8s_name()
    )]
    TwoOfOneFamily {
        /// Annotation key or `spec.loadBalancerIP`.
        location: String,
        /// The address listed first.
        first: IpAddr,
        /// The one of the same family listed after it.
        second: IpAddr,
    },
}

impl RequestError {
    /// The `reason` label of `ferrolb_controller_allocation_failures_total`: a Service the
    /// allocator cannot read is an invalid Service, whatever the field.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            // Exported under `exhausted`: the released label set is what dashboards and alerts
            // count on, and a refactor keeps it (a relabel is a change of its own).
            Self::UnknownIpFamilyPolicy(_) => "exhausted",
            Self::UnknownIpFamily(_)
            | Self::InvalidPort { .. }
            | Self::PortProtocol { .. }
            | Self::EmptyPoolAnnotation { .. }
            | Self::PoolNameTooLong { .. }
            | Self::SharingKeyTooLong { .. }
            | Self::IpsAskedTwice { .. }
            | Self::NotAnIp { .. }
            | Self::TwoOfOneFamily { .. } => "invalid_service",
        }
    }
}
