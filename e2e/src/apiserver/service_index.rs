//! The Service cluster IP ranges (10.96.0.0/16, fd00:96::/112; data only, nothing connects to
//! them) and the index of cluster IPs and node ports every stored Service holds, which the
//! store keeps up to date on each Service write.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;

/// The IPv4 Service range, 10.96.0.0/16.
pub const V4_BASE: u32 = u32::from_be_bytes([10, 96, 0, 0]);
pub const V4_SIZE: u32 = 1 << 16;
/// The IPv6 Service range, fd00:96::/112.
pub const V6_BASE: u128 = 0xfd00_0096_0000_0000_0000_0000_0000_0000;
pub const V6_SIZE: u128 = 1 << 16;

/// Cluster IPs and node ports held by every Service, kept up to date by the store on each
/// Service write, so that creating a Service does not scan all the others.
#[derive(Debug)]
pub struct ServiceIndex {
    pub(super) ips: HashMap<IpAddr, (String, String)>,
    pub(super) ports: HashMap<i64, (String, String)>,
    /// Every cluster IP offset in `[FIRST_OFFSET, low)` is held (IPv4, IPv6): allocation looks
    /// for the lowest free address from there, not from the start of the range each time
    /// (with thousands of Services that scan dominated the cost of a create).
    pub(super) low: [u128; 2],
}

impl Default for ServiceIndex {
    fn default() -> Self {
        ServiceIndex {
            ips: HashMap::new(),
            ports: HashMap::new(),
            low: [FIRST_OFFSET; 2],
        }
    }
}

/// `.1` is the `kubernetes` Service's address in a real cluster; allocation starts at `.10`
/// like kubeadm's DNS and goes up.
pub const FIRST_OFFSET: u128 = 10;

/// (family index, offset in the range) of a cluster IP.
pub fn offset_of(ip: IpAddr) -> Option<(usize, u128)> {
    match ip {
        IpAddr::V4(v4) => {
            let off = u32::from(v4).wrapping_sub(V4_BASE);
            (off < V4_SIZE).then_some((0, u128::from(off)))
        }
        IpAddr::V6(v6) => {
            let off = u128::from(v6).wrapping_sub(V6_BASE);
            (off < V6_SIZE).then_some((1, off))
        }
    }
}

pub fn ip_at(v6: bool, off: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(V6_BASE + off))
    } else {
        // Offsets of the IPv4 range are below 2^16: the cast cannot truncate.
        IpAddr::V4(Ipv4Addr::from(V4_BASE + off as u32))
    }
}

impl ServiceIndex {
    /// Replaces what Service `key` holds: `old` is forgotten, `new` recorded.
    pub fn update(&mut self, key: &(String, String), old: Option<&Value>, new: Option<&Value>) {
        let mut released = Vec::new();
        if let Some(old) = old {
            let (ips, ports) = held(old);
            for ip in ips {
                if self.ips.get(&ip) == Some(key) {
                    self.ips.remove(&ip);
                    released.push(ip);
                }
            }
            for p in ports {
                if self.ports.get(&p) == Some(key) {
                    self.ports.remove(&p);
                }
            }
        }
        if let Some(new) = new {
            let (ips, ports) = held(new);
            for ip in ips {
                self.ips.insert(ip, key.clone());
            }
            for p in ports {
                self.ports.insert(p, key.clone());
            }
        }
        // Only addresses that are free after the write lower the mark: an update that keeps
        // its address (every status write) must not send the mark back over all the others.
        for ip in released {
            if !self.ips.contains_key(&ip)
                && let Some((fam, off)) = offset_of(ip)
                && off >= FIRST_OFFSET
            {
                self.low[fam] = self.low[fam].min(off);
            }
        }
        for (fam, v6) in [(0, false), (1, true)] {
            while self.ips.contains_key(&ip_at(v6, self.low[fam])) {
                self.low[fam] += 1;
            }
        }
    }
}

/// Cluster IPs and node ports (including healthCheckNodePort) of a stored Service.
pub fn held(svc: &Value) -> (Vec<IpAddr>, Vec<i64>) {
    let spec = &svc["spec"];
    let ips = spec["clusterIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.as_str()?.parse().ok())
        .collect();
    let mut ports: Vec<i64> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_i64())
        .collect();
    ports.extend(spec["healthCheckNodePort"].as_i64());
    (ips, ports)
}
