//! What a stopping speaker does with its BGP sessions, decided from its Node as the store holds
//! it at stop time.
//!
//! A speaker gets SIGTERM for two different reasons, and routers must be told differently:
//! - **A restart in place** (a DaemonSet rolling update, a crash loop's restart): the node keeps
//!   forwarding, and a new speaker process is back within seconds. Routers with graceful
//!   restart (RFC 4724) keep our routes as stale until the new process has announced them
//!   again, so clients see nothing.
//! - **The node leaving** (drained for maintenance, excluded from load balancers, shut down
//!   after a failure, deleted): routers must move traffic to the other nodes before this one
//!   stops forwarding. The speaker withdraws its routes first, then closes with a Cease that
//!   makes the router drop anything left at once (Hard Reset where RFC 8538 is negotiated).
//!
//! Signs of leaving: the Node is gone from the store (deleted), cordoned
//! (`spec.unschedulable`, what `kubectl drain` does first), labelled
//! `node.kubernetes.io/exclude-from-external-load-balancers` (unless the speakers run with
//! `--ignore-exclude-lb`, which makes the label mean nothing to them), or tainted
//! `node.kubernetes.io/out-of-service` (the non-graceful node shutdown taint).

use ferrolb_api::annotations::EXCLUDE_FROM_LB_LABEL;
use k8s_openapi::api::core::v1::Node;

/// The taint of a node shut down without draining (Kubernetes non-graceful node shutdown).
pub const OUT_OF_SERVICE_TAINT: &str = "node.kubernetes.io/out-of-service";

/// How the BGP sessions end when the speaker stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Departure {
    /// The speaker restarts in place: keep routes through graceful restart where negotiated,
    /// and leave a marker so the next process announces the Restart State bit.
    Restart,
    /// The node is leaving: withdraw every route, then Cease.
    Leave(LeaveReason),
    /// Hitless operations are off (`--hitless-operations=false`): Cease at once, as MetalLB
    /// does, whatever the node's state.
    Cease,
}

/// Why the node counts as leaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaveReason {
    /// The Node object no longer exists.
    Deleted,
    /// `spec.unschedulable` is set (cordoned, as by `kubectl drain`).
    Cordoned,
    /// Labelled `node.kubernetes.io/exclude-from-external-load-balancers`.
    Excluded,
    /// Tainted `node.kubernetes.io/out-of-service`.
    OutOfService,
}

impl LeaveReason {
    /// For logs: what was seen on the Node.
    pub fn describe(self) -> &'static str {
        match self {
            LeaveReason::Deleted => "the Node was deleted",
            LeaveReason::Cordoned => "the Node is cordoned (spec.unschedulable)",
            LeaveReason::Excluded => {
                "the Node is labelled node.kubernetes.io/exclude-from-external-load-balancers"
            }
            LeaveReason::OutOfService => "the Node is tainted node.kubernetes.io/out-of-service",
        }
    }
}

/// Decides how to stop from this speaker's Node (`None`: not in the store, i.e. deleted),
/// the `--hitless-operations` flag and `--ignore-exclude-lb`.
pub fn departure(node: Option<&Node>, hitless: bool, ignore_exclude_lb: bool) -> Departure {
    if !hitless {
        return Departure::Cease;
    }
    let Some(node) = node else {
        return Departure::Leave(LeaveReason::Deleted);
    };
    let spec = node.spec.as_ref();
    if spec.and_then(|s| s.unschedulable).unwrap_or(false) {
        return Departure::Leave(LeaveReason::Cordoned);
    }
    let excluded = node
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(EXCLUDE_FROM_LB_LABEL));
    if excluded && !ignore_exclude_lb {
        return Departure::Leave(LeaveReason::Excluded);
    }
    let out_of_service = spec
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| t.iter().any(|t| t.key == OUT_OF_SERVICE_TAINT));
    if out_of_service {
        return Departure::Leave(LeaveReason::OutOfService);
    }
    Departure::Restart
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn node(labels: &[(&str, &str)], unschedulable: bool, taints: &[&str]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<BTreeMap<_, _>>(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                unschedulable: unschedulable.then_some(true),
                taints: Some(
                    taints
                        .iter()
                        .map(|k| Taint {
                            key: k.to_string(),
                            effect: "NoExecute".into(),
                            ..Taint::default()
                        })
                        .collect(),
                ),
                ..NodeSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn a_node_that_stays_restarts_in_place() {
        let plain = node(&[("kubernetes.io/hostname", "n1")], false, &[]);
        assert_eq!(departure(Some(&plain), true, false), Departure::Restart);
        // Other taints (not ready, unreachable) are not a drain: the speaker restarts.
        let tainted = node(&[], false, &["node.kubernetes.io/not-ready"]);
        assert_eq!(departure(Some(&tainted), true, false), Departure::Restart);
        // A Node without spec or labels at all.
        let bare = Node::default();
        assert_eq!(departure(Some(&bare), true, false), Departure::Restart);
    }

    #[test]
    fn each_sign_of_leaving_is_named() {
        let cases = [
            (None, LeaveReason::Deleted),
            (Some(node(&[], true, &[])), LeaveReason::Cordoned),
            (
                Some(node(&[(EXCLUDE_FROM_LB_LABEL, "")], false, &[])),
                LeaveReason::Excluded,
            ),
            (
                Some(node(&[], false, &[OUT_OF_SERVICE_TAINT])),
                LeaveReason::OutOfService,
            ),
        ];
        for (n, reason) in cases {
            assert_eq!(
                departure(n.as_ref(), true, false),
                Departure::Leave(reason),
                "{}",
                reason.describe()
            );
        }
    }

    #[test]
    fn ignore_exclude_lb_makes_the_label_no_sign_of_leaving() {
        let excluded = node(&[(EXCLUDE_FROM_LB_LABEL, "true")], false, &[]);
        assert_eq!(departure(Some(&excluded), true, true), Departure::Restart);
        // Cordoning still counts.
        let cordoned = node(&[(EXCLUDE_FROM_LB_LABEL, "true")], true, &[]);
        assert_eq!(
            departure(Some(&cordoned), true, true),
            Departure::Leave(LeaveReason::Cordoned)
        );
    }

    #[test]
    fn hitless_operations_off_always_ceases() {
        for n in [
            None,
            Some(node(&[], false, &[])),
            Some(node(&[], true, &[OUT_OF_SERVICE_TAINT])),
        ] {
            assert_eq!(departure(n.as_ref(), false, false), Departure::Cease);
        }
    }
}
