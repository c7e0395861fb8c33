//! Builders shared by the allocator's tests.

use super::request::{IpFamilyPolicy, Requested, ServicePort, ServiceRequest, TrafficPolicy};
use ferrolb_config::model::{ip_to_u128, u128_to_ip};
use ferrolb_config::{AddressRange, Config, IpFamily, Pool};
use std::collections::BTreeMap;
use std::net::IpAddr;

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// `a.b.c.d/n`, `x::/n` or `first-last`.
pub fn range(text: &str) -> AddressRange {
    if let Some((first, last)) = text.split_once('-') {
        return AddressRange {
            first: ip(first),
            last: ip(last),
            prefix_len: None,
            text: text.into(),
        };
    }
    let (addr, len) = text.split_once('/').expect("test range");
    let addr = ip(addr);
    let len: u32 = len.parse().expect("test prefix");
    let family = IpFamily::of(&addr);
    let bits = match family {
        IpFamily::V4 => 32,
        IpFamily::V6 => 128,
    };
    let host_bits = bits - len;
    let host_mask: u128 = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let start = ip_to_u128(addr) & !host_mask;
    AddressRange {
        first: u128_to_ip(start, family),
        last: u128_to_ip(start | host_mask, family),
        prefix_len: u8::try_from(len).ok(),
        text: text.into(),
    }
}

pub fn pool(name: &str, ranges: &[&str]) -> Pool {
    Pool::with_ranges(
        "ferrolb-system",
        name,
        ranges.iter().map(|r| range(r)).collect(),
    )
}

pub fn config(pools: Vec<Pool>) -> Config {
    Config {
        pools: pools.into_iter().map(|p| (p.name.clone(), p)).collect(),
        ..Config::default()
    }
}

pub fn svc(ns: &str, name: &str) -> ServiceRequest {
    ServiceRequest::new(ns, name)
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub trait RequestExt {
    fn ips(self, ips: &[&str]) -> Self;
    fn pool(self, pool: &str) -> Self;
    fn key(self, key: &str) -> Self;
    fn ports(self, ports: &[ServicePort]) -> Self;
    fn local(self, app: &str) -> Self;
    fn families(self, policy: IpFamilyPolicy, fams: &[IpFamily]) -> Self;
    fn current(self, ips: &[IpAddr]) -> Self;
}

impl RequestExt for ServiceRequest {
    fn ips(mut self, ips: &[&str]) -> Self {
        self.requested_ips = Some(Requested {
            value: ips.iter().map(|s| ip(s)).collect(),
            source: "ferrolb.io/loadBalancerIPs".into(),
        });
        self
    }
    fn pool(mut self, pool: &str) -> Self {
        self.requested_pool = Some(Requested {
            value: pool.into(),
            source: "ferrolb.io/address-pool".into(),
        });
        self
    }
    fn key(mut self, key: &str) -> Self {
        self.sharing_key = Some(Requested {
            value: key.into(),
            source: "ferrolb.io/allow-shared-ip".into(),
        });
        self
    }
    fn ports(mut self, ports: &[ServicePort]) -> Self {
        self.ports = ports.to_vec();
        self
    }
    fn local(mut self, app: &str) -> Self {
        self.traffic_policy = TrafficPolicy::Local;
        self.selector = labels(&[("app", app)]);
        self
    }
    fn families(mut self, policy: IpFamilyPolicy, fams: &[IpFamily]) -> Self {
        self.ip_family_policy = policy;
        self.ip_families = fams.to_vec();
        self
    }
    fn current(mut self, ips: &[IpAddr]) -> Self {
        self.current = ips.to_vec();
        self
    }
}
