//! What a Service asks the allocator for, and the helpers that read it from annotations.
//!
//! The reconciler fills a [`ServiceRequest`] from the Service object; nothing here knows about
//! Kubernetes types, so the allocator stays testable with plain values.

use super::request_error::{
    MAX_POOL_NAME_LEN, MAX_SHARING_KEY_LEN, RequestError, UnknownProtocol, excerpt,
};
use ferrolb_api::annotations::{self, ADDRESS_POOL, ALLOW_SHARED_IP, LOAD_BALANCER_IPS};
pub use ferrolb_api::service::{ServiceKey, TrafficPolicy};
use ferrolb_config::IpFamily;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// `spec.ipFamilyPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IpFamilyPolicy {
    /// One address, of the first family (Kubernetes' default).
    #[default]
    SingleStack,
    /// Both families when one pool can give both, else one.
    PreferDualStack,
    /// One address of each family from one pool, or none.
    RequireDualStack,
}

impl IpFamilyPolicy {
    /// Parses the Kubernetes spelling; absent means SingleStack.
    pub fn parse(value: Option<&str>) -> Result<Self, RequestError> {
        match value {
            None | Some("SingleStack") => Ok(Self::SingleStack),
            Some("PreferDualStack") => Ok(Self::PreferDualStack),
            Some("RequireDualStack") => Ok(Self::RequireDualStack),
            Some(other) => Err(RequestError::UnknownIpFamilyPolicy(other.to_string())),
        }
    }
}

impl fmt::Display for IpFamilyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SingleStack => "SingleStack",
            Self::PreferDualStack => "PreferDualStack",
            Self::RequireDualStack => "RequireDualStack",
        })
    }
}

/// Parses `spec.ipFamilies` (`IPv4`, `IPv6`), keeping the order.
pub fn parse_ip_families(values: &[String]) -> Result<Vec<IpFamily>, RequestError> {
    let mut out = Vec::new();
    for v in values {
        let f = match v.as_str() {
            "IPv4" => IpFamily::V4,
            "IPv6" => IpFamily::V6,
            other => return Err(RequestError::UnknownIpFamily(other.to_string())),
        };
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Ok(out)
}

/// Transport protocol of a Service port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (Kubernetes' default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parses the Kubernetes spelling; absent means TCP.
    pub fn parse(value: Option<&str>) -> Result<Self, UnknownProtocol> {
        match value {
            None | Some("TCP") => Ok(Self::Tcp),
            Some("UDP") => Ok(Self::Udp),
            Some("SCTP") => Ok(Self::Sctp),
            Some(other) => Err(UnknownProtocol(other.to_string())),
        }
    }
}

/// One port of a Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServicePort {
    /// Port number.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

impl ServicePort {
    /// A TCP port.
    pub fn tcp(port: u16) -> Self {
        Self {
            port,
            protocol: Protocol::Tcp,
        }
    }

    /// A UDP port.
    pub fn udp(port: u16) -> Self {
        Self {
            port,
            protocol: Protocol::Udp,
        }
    }
}

impl fmt::Display for ServicePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.protocol {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        };
        write!(f, "{p}/{}", self.port)
    }
}

/// A value the Service asked for, with where it was written (an annotation key or
/// `spec.loadBalancerIP`) so messages can point the user at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requested<T> {
    /// The value.
    pub value: T,
    /// Where it came from, e.g. `ferrolb.io/address-pool`.
    pub source: String,
}

/// Everything the allocator needs to know about one Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRequest {
    /// `namespace/name`.
    pub key: ServiceKey,
    /// Labels of the Service's Namespace, shared by the requests of its Services (a copy per
    /// Service was a tenth of the controller's peak memory at 50,000 Services).
    pub namespace_labels: Arc<BTreeMap<String, String>>,
    /// Labels of the Service.
    pub service_labels: BTreeMap<String, String>,
    /// Addresses asked for (at most one per family).
    pub requested_ips: Option<Requested<Vec<IpAddr>>>,
    /// Pool asked for.
    pub requested_pool: Option<Requested<String>>,
    /// `spec.ipFamilyPolicy`.
    pub ip_family_policy: IpFamilyPolicy,
    /// `spec.ipFamilies` in order (empty means IPv4).
    pub ip_families: Vec<IpFamily>,
    /// Sharing key (`ferrolb.io/allow-shared-ip` or an alias), with the annotation it was
    /// written under.
    pub sharing_key: Option<Requested<String>>,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// `spec.externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// `spec.selector`.
    pub selector: BTreeMap<String, String>,
    /// Addresses in `status.loadBalancer.ingress` now.
    pub current: Vec<IpAddr>,
}

impl ServiceRequest {
    /// A request with defaults (SingleStack IPv4, Cluster, no ports) for `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            key: ServiceKey::new(namespace, name),
            ..Self::default()
        }
    }
}

/// The allocation-related annotations (and `spec.loadBalancerIP`) of a Service, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnnotationRequest {
    /// From `ferrolb.io/loadBalancerIPs` (or an alias) or `spec.loadBalancerIP`.
    pub requested_ips: Option<Requested<Vec<IpAddr>>>,
    /// From `ferrolb.io/address-pool` (or an alias).
    pub requested_pool: Option<Requested<String>>,
    /// From `ferrolb.io/allow-shared-ip` (or an alias); empty means none.
    pub sharing_key: Option<Requested<String>>,
}

impl AnnotationRequest {
    /// Parses every allocation annotation; the error names the annotation key (or field) and
    /// says what is accepted.
    pub fn parse(
        annotations: &BTreeMap<String, String>,
        load_balancer_ip: Option<&str>,
    ) -> Result<Self, RequestError> {
        let requested_pool = match annotations::lookup(annotations, ADDRESS_POOL) {
            None => None,
            Some((key, v)) if v.trim().is_empty() => {
                return Err(RequestError::EmptyPoolAnnotation { key });
            }
            Some((key, v)) if v.trim().len() > MAX_POOL_NAME_LEN => {
                let len = v.trim().len();
                return Err(RequestError::PoolNameTooLong { key, len });
            }
            Some((key, v)) => Some(Requested {
                value: v.trim().to_string(),
                source: key,
            }),
        };
        let sharing_key = match annotations::lookup(annotations, ALLOW_SHARED_IP) {
            Some((key, v)) if v.trim().len() > MAX_SHARING_KEY_LEN => {
                let len = v.trim().len();
                return Err(RequestError::SharingKeyTooLong { key, len });
            }
            found => found
                .map(|(key, v)| Requested {
                    value: v.trim().to_string(),
                    source: key,
                })
                .filter(|r| !r.value.is_empty()),
        };
        Ok(Self {
            requested_ips: parse_requested_ips(annotations, load_balancer_ip)?,
            requested_pool,
            sharing_key,
        })
    }
}

/// Reads the requested addresses from `ferrolb.io/loadBalancerIPs` (or its MetalLB aliases) or
/// from `spec.loadBalancerIP`. The error names the annotation key or field.
pub fn parse_requested_ips(
    annotations: &BTreeMap<String, String>,
    load_balancer_ip: Option<&str>,
) -> Result<Option<Requested<Vec<IpAddr>>>, RequestError> {
    let spec_ip = load_balancer_ip.map(str::trim).filter(|s| !s.is_empty());
    let (source, text) = match (annotations::lookup(annotations, LOAD_BALANCER_IPS), spec_ip) {
        (None, None) => return Ok(None),
        // Two places saying possibly different things: refuse rather than guess (as MetalLB).
        (Some((key, _)), Some(_)) => return Err(RequestError::IpsAskedTwice { key }),
        (Some((key, v)), None) => (key, v),
        (None, Some(ip)) => ("spec.loadBalancerIP".to_string(), ip),
    };
    let mut ips: Vec<IpAddr> = Vec::new();
    for part in text.split(',').map(str::trim) {
        let ip: IpAddr = part.parse().map_err(|_| RequestError::NotAnIp {
            location: source.clone(),
            value: excerpt(part),
        })?;
        if let Some(other) = ips.iter().find(|o| IpFamily::of(o) == IpFamily::of(&ip)) {
            return Err(RequestError::TwoOfOneFamily {
                location: source,
                first: *other,
                second: ip,
            });
        }
        ips.push(ip);
    }
    Ok(Some(Requested { value: ips, source }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn requested_ips_from_annotation_and_aliases() {
        let r = parse_requested_ips(
            &ann(&[("metallb.io/loadBalancerIPs", "10.0.0.5, fd00::5")]),
            None,
        )
        .expect("valid")
        .expect("present");
        assert_eq!(r.source, "metallb.io/loadBalancerIPs");
        assert_eq!(
            r.value,
            vec![
                "10.0.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );

        let r = parse_requested_ips(&ann(&[]), Some("10.0.0.7"))
            .expect("valid")
            .expect("present");
        assert_eq!(r.source, "spec.loadBalancerIP");
        assert_eq!(parse_requested_ips(&ann(&[]), Some("")), Ok(None));
    }

    #[test]
    fn requested_ips_errors_name_the_key() {
        let e = parse_requested_ips(
            &ann(&[("ferrolb.io/loadBalancerIPs", "10.0.0.1,nope")]),
            None,
        )
        .expect_err("bad ip")
        .to_string();
        assert!(e.starts_with("ferrolb.io/loadBalancerIPs: \"nope\""), "{e}");
        let e = parse_requested_ips(
            &ann(&[("metallb.universe.tf/loadBalancerIPs", "10.0.0.1,10.0.0.2")]),
            None,
        )
        .expect_err("two v4")
        .to_string();
        assert!(
            e.contains("metallb.universe.tf/loadBalancerIPs")
                && e.contains("one address per family"),
            "{e}"
        );
        let e = parse_requested_ips(
            &ann(&[("ferrolb.io/loadBalancerIPs", "10.0.0.1")]),
            Some("10.0.0.1"),
        )
        .expect_err("both")
        .to_string();
        assert!(e.contains("spec.loadBalancerIP"), "{e}");
    }

    #[test]
    fn annotation_request_reads_pool_and_key() {
        let a = AnnotationRequest::parse(
            &ann(&[
                ("metallb.universe.tf/address-pool", "lan"),
                ("ferrolb.io/allow-shared-ip", "k"),
            ]),
            None,
        )
        .expect("valid");
        assert_eq!(
            a.requested_pool,
            Some(Requested {
                value: "lan".into(),
                source: "metallb.universe.tf/address-pool".into()
            })
        );
        assert_eq!(
            a.sharing_key,
            Some(Requested {
                value: "k".into(),
                source: "ferrolb.io/allow-shared-ip".into()
            })
        );
        let e = AnnotationRequest::parse(&ann(&[("ferrolb.io/address-pool", " ")]), None)
            .expect_err("empty")
            .to_string();
        assert!(e.contains("ferrolb.io/address-pool"), "{e}");
    }

    #[test]
    fn policy_and_families_parse() {
        assert_eq!(IpFamilyPolicy::parse(None), Ok(IpFamilyPolicy::SingleStack));
        assert_eq!(
            IpFamilyPolicy::parse(Some("RequireDualStack")),
            Ok(IpFamilyPolicy::RequireDualStack)
        );
        assert!(IpFamilyPolicy::parse(Some("Dual")).is_err());
        assert_eq!(
            parse_ip_families(&["IPv6".into(), "IPv4".into()]),
            Ok(vec![IpFamily::V6, IpFamily::V4])
        );
        assert!(parse_ip_families(&["IPv5".into()]).is_err());
        assert_eq!(Protocol::parse(Some("UDP")), Ok(Protocol::Udp));
        assert_eq!(ServicePort::tcp(80).to_string(), "TCP/80");
    }
}
