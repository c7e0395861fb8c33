//! The Service vocabulary both binaries share: which Services ferrolb handles, their key, their
//! traffic policy and the addresses written to their status.
//!
//! The controller decides which Services get an address and the speakers which addresses they
//! announce; both must agree on the same facts about a Service, so they read them here.

use crate::annotations::LOAD_BALANCER_CLASS;
use k8s_openapi::api::core::v1::Service;
use std::fmt;
use std::net::IpAddr;

/// `namespace/name` of a Service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ServiceKey {
    /// Builds a key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `spec.externalTrafficPolicy` of a Service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrafficPolicy {
    /// Traffic may land on any node; kube-proxy forwards it (the Kubernetes default).
    #[default]
    Cluster,
    /// Traffic must land on a node with a ready endpoint of the Service.
    Local,
}

impl TrafficPolicy {
    /// The policy of `svc`: `Local` when it says so; unset and any other value mean `Cluster`,
    /// as in Kubernetes.
    pub fn of(svc: &Service) -> Self {
        match svc
            .spec
            .as_ref()
            .and_then(|s| s.external_traffic_policy.as_deref())
        {
            Some("Local") => TrafficPolicy::Local,
            _ => TrafficPolicy::Cluster,
        }
    }
}

impl fmt::Display for TrafficPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cluster => "Cluster",
            Self::Local => "Local",
        })
    }
}

/// Which `spec.loadBalancerClass` values ferrolb handles. Services of another class are never
/// touched either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClassPolicy {
    /// Ours ([`LOAD_BALANCER_CLASS`]) or unset: ferrolb is the cluster's default load balancer
    /// implementation.
    #[default]
    OursOrUnset,
    /// Ours only (`--require-class`): Services without a class are left to another
    /// implementation.
    OursOnly,
    /// Exactly this class (`--lb-class NAME`, MetalLB's flag of the same name): Services
    /// without a class, and with ferrolb's own, are left to another implementation. Several
    /// installations can then share a cluster, each with its own class.
    Named(&'static str),
}

impl ClassPolicy {
    /// The policy the `--require-class` flag selects.
    pub fn from_require_class(require_class: bool) -> Self {
        if require_class {
            ClassPolicy::OursOnly
        } else {
            ClassPolicy::OursOrUnset
        }
    }

    /// The policy of the `--lb-class` and `--require-class` flags: a non-empty `--lb-class`
    /// names the only class handled (MetalLB: an empty `--lb-class` is the default, unset);
    /// without one, `--require-class` decides.
    ///
    /// The name is read once per process and kept for its whole life (leaked), which keeps
    /// the policy `Copy` for every pass of both binaries.
    pub fn from_flags(lb_class: Option<String>, require_class: bool) -> Self {
        match lb_class.filter(|c| !c.is_empty()) {
            Some(class) => ClassPolicy::Named(Box::leak(class.into_boxed_str())),
            None => ClassPolicy::from_require_class(require_class),
        }
    }
}

/// Whether ferrolb handles `svc`: `type: LoadBalancer` with a class `policy` accepts
/// (MetalLB internal/k8s/controllers/service_controller.go filterByLoadBalancerClass, plus
/// ferrolb's own class unless `--lb-class` names another).
pub fn handles(svc: &Service, policy: ClassPolicy) -> bool {
    let Some(spec) = svc.spec.as_ref() else {
        return false;
    };
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return false;
    }
    let class = spec.load_balancer_class.as_deref();
    match policy {
        ClassPolicy::Named(name) => class == Some(name),
        ClassPolicy::OursOnly => class == Some(LOAD_BALANCER_CLASS),
        ClassPolicy::OursOrUnset => class.is_none_or(|c| c == LOAD_BALANCER_CLASS),
    }
}

/// The addresses in `status.loadBalancer.ingress[].ip`, in order. Hostname-only entries
/// (written by another implementation) and unparsable ones are skipped: there is no address in
/// them.
pub fn ingress_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| {
            ing.iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };

    fn svc(class: Option<&str>, type_: &str) -> Service {
        Service {
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                load_balancer_class: class.map(str::to_string),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    #[test]
    fn which_services_are_handled() {
        use ClassPolicy::{OursOnly, OursOrUnset};
        assert!(handles(&svc(None, "LoadBalancer"), OursOrUnset));
        assert!(!handles(&svc(None, "LoadBalancer"), OursOnly));
        assert!(handles(
            &svc(Some(LOAD_BALANCER_CLASS), "LoadBalancer"),
            OursOnly
        ));
        assert!(!handles(
            &svc(Some("other.io/lb"), "LoadBalancer"),
            OursOrUnset
        ));
        assert!(!handles(&svc(None, "ClusterIP"), OursOrUnset));
        assert!(!handles(&Service::default(), OursOrUnset));
        assert_eq!(ClassPolicy::from_require_class(true), OursOnly);
        assert_eq!(ClassPolicy::from_require_class(false), OursOrUnset);
    }

    /// MetalLB internal/k8s/controllers/service_controller.go filterByLoadBalancerClass: with
    /// `--lb-class` set only Services of exactly that class are handled (none without a
    /// class); an empty `--lb-class` is the same as none.
    #[test]
    fn lb_class_names_the_only_class_handled() {
        let named = ClassPolicy::from_flags(Some("example.com/lb".into()), false);
        assert_eq!(named, ClassPolicy::Named("example.com/lb"));
        assert!(handles(&svc(Some("example.com/lb"), "LoadBalancer"), named));
        assert!(!handles(&svc(None, "LoadBalancer"), named));
        assert!(!handles(
            &svc(Some(LOAD_BALANCER_CLASS), "LoadBalancer"),
            named
        ));
        assert!(!handles(&svc(Some("example.com/lb"), "ClusterIP"), named));
        // --lb-class wins over --require-class; an empty one leaves --require-class in charge.
        assert_eq!(
            ClassPolicy::from_flags(Some("example.com/lb".into()), true),
            named
        );
        assert_eq!(
            ClassPolicy::from_flags(Some(String::new()), true),
            ClassPolicy::OursOnly
        );
        assert_eq!(
            ClassPolicy::from_flags(None, false),
            ClassPolicy::OursOrUnset
        );
    }

    #[test]
    fn ingress_ips_keep_order_and_skip_hostnames() {
        let mut s = svc(None, "LoadBalancer");
        s.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![
                    LoadBalancerIngress {
                        ip: Some("fd00:200::1".into()),
                        ..Default::default()
                    },
                    LoadBalancerIngress {
                        hostname: Some("lb.example".into()),
                        ..Default::default()
                    },
                    LoadBalancerIngress {
                        ip: Some("10.200.0.1".into()),
                        ..Default::default()
                    },
                ]),
            }),
            ..ServiceStatus::default()
        });
        let ips: Vec<String> = ingress_ips(&s).iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["fd00:200::1", "10.200.0.1"]);
        assert!(ingress_ips(&svc(None, "LoadBalancer")).is_empty());
    }

    #[test]
    fn traffic_policy_defaults_to_cluster() {
        let mut s = svc(None, "LoadBalancer");
        assert_eq!(TrafficPolicy::of(&s), TrafficPolicy::Cluster);
        s.spec.as_mut().expect("spec").external_traffic_policy = Some("Local".into());
        assert_eq!(TrafficPolicy::of(&s), TrafficPolicy::Local);
        s.spec.as_mut().expect("spec").external_traffic_policy = Some("Other".into());
        assert_eq!(TrafficPolicy::of(&s), TrafficPolicy::Cluster);
    }
}
