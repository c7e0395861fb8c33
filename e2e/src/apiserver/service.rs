//! Service defaulting and allocation as the real API server does it: type, sessionAffinity,
//! ipFamilies/ipFamilyPolicy, clusterIP(s) from 10.96.0.0/16 and fd00:96::/112, nodePorts
//! from 30000-32767, healthCheckNodePort for LoadBalancer+Local, traffic policies,
//! allocateLoadBalancerNodePorts, the immutable loadBalancerClass and the empty
//! `status.loadBalancer`. The ranges are data only: nothing ever connects to them.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, FieldError};
use super::service_index::{
    FIRST_OFFSET, ServiceIndex, V4_BASE, V4_SIZE, V6_BASE, V6_SIZE, held, ip_at, offset_of,
};
use super::store::Inner;

const NODE_PORT_MIN: i64 = 30000;
const NODE_PORT_MAX: i64 = 32767;
/// Addresses and ports held by every Service except `(ns, name)`, plus those this write takes.
struct Used<'a> {
    index: &'a ServiceIndex,
    me: (String, String),
    /// Cluster IPs the stored version of this Service holds: the only addresses below the
    /// index's low-water mark that this write may take.
    mine: Vec<IpAddr>,
    ips: HashSet<IpAddr>,
    ports: HashSet<i64>,
}

impl Used<'_> {
    /// Takes `ip` unless another Service (or this write) holds it.
    fn take_ip(&mut self, ip: IpAddr) -> bool {
        let other = self.index.ips.get(&ip).is_some_and(|k| *k != self.me);
        !other && self.ips.insert(ip)
    }

    fn port_taken(&self, p: i64) -> bool {
        self.ports.contains(&p) || self.index.ports.get(&p).is_some_and(|k| *k != self.me)
    }

    /// Takes port `p` unless another Service (or this write) holds it.
    fn take_port(&mut self, p: i64) -> bool {
        !self.port_taken(p) && self.ports.insert(p)
    }
}

fn used<'a>(view: &'a Inner, ns: &str, name: &str, current: Option<&Value>) -> Used<'a> {
    Used {
        index: view.service_index(),
        me: (ns.to_string(), name.to_string()),
        mine: current.map(|c| held(c).0).unwrap_or_default(),
        ips: HashSet::new(),
        ports: HashSet::new(),
    }
}

fn in_range(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => u32::from(v4).wrapping_sub(V4_BASE) < V4_SIZE,
        IpAddr::V6(v6) => u128::from(v6).wrapping_sub(V6_BASE) < V6_SIZE,
    }
}

/// The lowest free address of the family from `FIRST_OFFSET` up.
fn allocate_ip(u: &mut Used<'_>, v6: bool) -> Option<IpAddr> {
    let end = (if v6 { V6_SIZE } else { u128::from(V4_SIZE) }) - 1;
    let low = u.index.low[usize::from(v6)];
    // Below the low-water mark every address is held, so only this Service's own ones can be
    // free for it; in ascending order to give the same answer as a scan from the start.
    let mut mine: Vec<u128> = u
        .mine
        .iter()
        .filter_map(|ip| offset_of(*ip))
        .filter(|(fam, off)| *fam == usize::from(v6) && (FIRST_OFFSET..low.min(end)).contains(off))
        .map(|(_, off)| off)
        .collect();
    mine.sort_unstable();
    mine.into_iter()
        .chain(low.max(FIRST_OFFSET)..end)
        .map(|off| ip_at(v6, off))
        .find(|ip| u.take_ip(*ip))
}

fn allocate_port(u: &mut Used<'_>) -> Option<i64> {
    (NODE_PORT_MIN..=NODE_PORT_MAX).find(|p| u.take_port(*p))
}

fn family_of(ip: &str) -> Option<&'static str> {
    match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(_) => Some("IPv4"),
        IpAddr::V6(_) => Some("IPv6"),
    }
}

pub fn on_create(view: &Inner, obj: &mut Value) -> ApiResult<()> {
    defaults(view, obj, None)
}

pub fn on_update(view: &Inner, current: &Value, obj: &mut Value) -> ApiResult<()> {
    // The stored spec is already defaulted and validated: a write that leaves it as it is
    // (status, labels, annotations) has nothing to default or allocate.
    if obj["spec"] == current["spec"] {
        return Ok(());
    }
    defaults(view, obj, Some(current))
}

fn invalid(name: &str, errs: Vec<FieldError>) -> ApiError {
    ApiError::invalid("", "Service", name, errs)
}

fn defaults(view: &Inner, obj: &mut Value, current: Option<&Value>) -> ApiResult<()> {
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    if obj["spec"].is_null() {
        obj["spec"] = json!({});
    }
    if !obj["spec"].is_object() {
        return Err(invalid(
            &name,
            vec![FieldError::invalid(
                "spec",
                &obj["spec"],
                "must be an object",
            )],
        ));
    }
    let old_spec = current.map(|c| c["spec"].clone()).unwrap_or(Value::Null);
    let mut u = used(view, &ns, &name, current);
    let mut errs = Vec::new();
    let spec = &mut obj["spec"];

    let type_ = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    if !matches!(
        type_.as_str(),
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        errs.push(FieldError {
            field: "spec.type".into(),
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {type_:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
            ),
        });
        return Err(invalid(&name, errs));
    }
    spec["type"] = json!(type_);
    let is_lb = type_ == "LoadBalancer";
    let needs_node_ports = type_ == "NodePort" || is_lb;
    let external_name = type_ == "ExternalName";
    if spec["sessionAffinity"].is_null() {
        spec["sessionAffinity"] = json!("None");
    }

    // loadBalancerClass: only for LoadBalancer, and immutable while it stays one.
    if !spec["loadBalancerClass"].is_null() && !is_lb {
        errs.push(FieldError::invalid(
            "spec.loadBalancerClass",
            &spec["loadBalancerClass"],
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if is_lb
        && old_spec["type"].as_str() == Some("LoadBalancer")
        && old_spec["loadBalancerClass"] != spec["loadBalancerClass"]
    {
        errs.push(FieldError::invalid(
            "spec.loadBalancerClass",
            &spec["loadBalancerClass"],
            "may not change once set",
        ));
    }

    // Ports.
    let mut seen = HashSet::new();
    let headless = spec["clusterIP"].as_str() == Some("None");
    let ports_len = spec["ports"].as_array().map_or(0, Vec::len);
    if ports_len == 0 && !external_name && !headless {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let old_ports = old_spec["ports"].as_array().cloned().unwrap_or_default();
    let allocate_node_ports = needs_node_ports
        && (!is_lb || spec["allocateLoadBalancerNodePorts"].as_bool() != Some(false));
    for i in 0..ports_len {
        let p = &mut spec["ports"][i];
        let field = format!("spec.ports[{i}]");
        let Some(port) = p["port"].as_i64().filter(|n| (1..=65535).contains(n)) else {
            errs.push(FieldError::invalid(
                &format!("{field}.port"),
                &p["port"],
                "must be between 1 and 65535, inclusive",
            ));
            continue;
        };
        if p["protocol"].is_null() {
            p["protocol"] = json!("TCP");
        }
        if p["targetPort"].is_null() {
            p["targetPort"] = json!(port);
        }
        let proto = p["protocol"].as_str().unwrap_or("TCP").to_string();
        if !seen.insert((port, proto.clone())) {
            errs.push(FieldError {
                field: field.clone(),
                reason: "FieldValueDuplicate",
                message: format!("Duplicate value: {{\"port\":{port},\"protocol\":{proto:?}}}"),
            });
        }
        if ports_len > 1 && p["name"].as_str().is_none_or(str::is_empty) {
            errs.push(FieldError::required(&format!("{field}.name"), ""));
        }
        if needs_node_ports {
            match p["nodePort"].as_i64() {
                Some(np) if !(NODE_PORT_MIN..=NODE_PORT_MAX).contains(&np) => errs.push(FieldError::invalid(
                    &format!("{field}.nodePort"),
                    &p["nodePort"],
                    &format!("provided port is not in the valid range. The range of valid ports is {NODE_PORT_MIN}-{NODE_PORT_MAX}"),
                )),
                Some(np) if u.port_taken(np) => {
                    errs.push(FieldError::invalid(&format!("{field}.nodePort"), &p["nodePort"], "provided port is already allocated"));
                }
                _ => {}
            }
        } else if let Some(m) = p.as_object_mut() {
            m.remove("nodePort");
        }
    }

    // Second pass: explicitly requested ports (and a requested healthCheckNodePort) are
    // reserved first, then missing ones are kept from the old object or allocated.
    if needs_node_ports {
        for i in 0..ports_len {
            if let Some(np) = spec["ports"][i]["nodePort"].as_i64() {
                u.ports.insert(np);
            }
        }
        if let Some(h) = spec["healthCheckNodePort"].as_i64() {
            u.ports.insert(h);
        } else if is_lb
            && spec["externalTrafficPolicy"].as_str() == Some("Local")
            && let Some(h) = old_spec["healthCheckNodePort"].as_i64()
        {
            u.ports.insert(h);
        }
        for i in 0..ports_len {
            let p = &mut spec["ports"][i];
            if !p["nodePort"].is_null() || p["port"].as_i64().is_none() {
                continue;
            }
            let port = p["port"].as_i64();
            let proto = p["protocol"].as_str().unwrap_or("TCP").to_string();
            // Keep the port this Service already had for the same port/protocol.
            let kept = old_ports
                .iter()
                .find(|o| {
                    o["port"].as_i64() == port && o["protocol"].as_str().unwrap_or("TCP") == proto
                })
                .and_then(|o| o["nodePort"].as_i64())
                .filter(|k| u.take_port(*k));
            let np = match kept {
                Some(k) => Some(k),
                None if allocate_node_ports => {
                    let np = allocate_port(&mut u);
                    if np.is_none() {
                        // As the real allocator: the create fails rather than leaving a port
                        // without a nodePort.
                        errs.push(FieldError::invalid(
                            &format!("spec.ports[{i}].nodePort"),
                            &Value::Null,
                            "failed to allocate a nodePort: range is full",
                        ));
                    }
                    np
                }
                None => None,
            };
            if let Some(np) = np {
                p["nodePort"] = json!(np);
            }
        }
    }

    if needs_node_ports {
        if spec["externalTrafficPolicy"].is_null() {
            spec["externalTrafficPolicy"] = json!("Cluster");
        }
        if is_lb && spec["allocateLoadBalancerNodePorts"].is_null() {
            spec["allocateLoadBalancerNodePorts"] = json!(true);
        }
    } else if let Some(m) = spec.as_object_mut() {
        m.remove("externalTrafficPolicy");
    }
    if !is_lb && let Some(m) = spec.as_object_mut() {
        m.remove("allocateLoadBalancerNodePorts");
    }
    if is_lb && spec["externalTrafficPolicy"].as_str() == Some("Local") {
        if spec["healthCheckNodePort"].is_null() {
            let h = old_spec["healthCheckNodePort"]
                .as_i64()
                .or_else(|| allocate_port(&mut u));
            if let Some(h) = h {
                spec["healthCheckNodePort"] = json!(h);
            }
        }
    } else if let Some(m) = spec.as_object_mut() {
        m.remove("healthCheckNodePort");
    }

    // IP families and cluster IPs (not for ExternalName).
    if external_name {
        if let Some(m) = spec.as_object_mut() {
            for k in [
                "clusterIP",
                "clusterIPs",
                "ipFamilies",
                "ipFamilyPolicy",
                "internalTrafficPolicy",
            ] {
                m.remove(k);
            }
        }
    } else {
        if spec["internalTrafficPolicy"].is_null() {
            spec["internalTrafficPolicy"] = json!("Cluster");
        }
        // An update that omits the allocation keeps it (clusterIP is immutable).
        if spec["clusterIP"].as_str().is_none_or(str::is_empty) && spec["clusterIPs"].is_null() {
            for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                if !old_spec[k].is_null() && spec[k].is_null() {
                    spec[k] = old_spec[k].clone();
                }
            }
        }
        let mut ips: Vec<String> = spec["clusterIPs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if ips.is_empty()
            && let Some(ip) = spec["clusterIP"].as_str().filter(|s| !s.is_empty())
        {
            ips.push(ip.to_string());
        }
        let policy = spec["ipFamilyPolicy"]
            .as_str()
            .unwrap_or("SingleStack")
            .to_string();
        if !matches!(
            policy.as_str(),
            "SingleStack" | "PreferDualStack" | "RequireDualStack"
        ) {
            errs.push(FieldError {
                field: "spec.ipFamilyPolicy".into(),
                reason: "FieldValueNotSupported",
                message: format!("Unsupported value: {policy:?}: supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\""),
            });
        }
        let mut families: Vec<String> = spec["ipFamilies"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if families.is_empty() {
            families = ips
                .iter()
                .filter_map(|ip| family_of(ip))
                .map(str::to_string)
                .collect();
        }
        if families.is_empty() {
            families.push("IPv4".into());
        }
        if policy != "SingleStack" && families.len() == 1 {
            // This cluster is dual-stack: PreferDualStack/RequireDualStack get both families.
            let other = if families[0] == "IPv4" {
                "IPv6"
            } else {
                "IPv4"
            };
            families.push(other.into());
        }
        if policy == "SingleStack" {
            families.truncate(1);
        }
        for (i, f) in families.iter().enumerate() {
            if f != "IPv4" && f != "IPv6" {
                errs.push(FieldError {
                    field: format!("spec.ipFamilies[{i}]"),
                    reason: "FieldValueNotSupported",
                    message: format!(
                        "Unsupported value: {f:?}: supported values: \"IPv4\", \"IPv6\""
                    ),
                });
            }
        }
        if headless {
            spec["clusterIPs"] = json!(["None"]);
        } else {
            for (i, ip) in ips.iter().enumerate() {
                let same_as_before = old_spec["clusterIPs"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(ip)));
                match ip.parse::<IpAddr>() {
                    Ok(addr) if !in_range(addr) => errs.push(FieldError::invalid(
                        &format!("spec.clusterIPs[{i}]"),
                        &json!(ip),
                        "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/16,fd00:96::/112",
                    )),
                    Ok(addr) => {
                        if !u.take_ip(addr) && !same_as_before {
                            errs.push(FieldError::invalid(&format!("spec.clusterIPs[{i}]"), &json!(ip), "provided IP is already allocated"));
                        }
                    }
                    Err(_) => errs.push(FieldError::invalid(&format!("spec.clusterIPs[{i}]"), &json!(ip), "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")),
                }
            }
            for f in families.iter().skip(ips.len()) {
                match allocate_ip(&mut u, f == "IPv6") {
                    Some(ip) => ips.push(ip.to_string()),
                    None => {
                        return Err(ApiError::internal(
                            "failed to allocate a serviceIP: range is full",
                        ));
                    }
                }
            }
            if let Some(first) = ips.first() {
                spec["clusterIP"] = json!(first);
            }
            spec["clusterIPs"] = json!(ips);
        }
        spec["ipFamilies"] = json!(families);
        spec["ipFamilyPolicy"] = json!(policy);
    }
    if !errs.is_empty() {
        return Err(invalid(&name, errs));
    }
    if obj["status"]["loadBalancer"].is_null() {
        obj["status"] = json!({"loadBalancer": {}});
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::store::{Store, Write, core};

    fn create(store: &Store, svc: Value) -> ApiResult<Value> {
        let name = svc["metadata"]["name"].as_str().unwrap_or("x").to_string();
        store
            .write(&core("services"), "default", &name, |view, _| {
                let mut s = svc.clone();
                on_create(view, &mut s)?;
                Ok(Write::Put(s))
            })
            .map(|w| Value::clone(&w.object))
    }

    #[test]
    fn lb_defaults_and_allocation() {
        let store = Store::new(10, None);
        let a = create(
            &store,
            json!({"metadata": {"name": "a", "namespace": "default"},
                   "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}}),
        )
        .expect("create");
        let s = &a["spec"];
        assert_eq!(s["clusterIP"], json!("10.96.0.10"));
        assert_eq!(s["clusterIPs"], json!(["10.96.0.10"]));
        assert_eq!(s["ipFamilies"], json!(["IPv4"]));
        assert_eq!(s["ipFamilyPolicy"], json!("SingleStack"));
        assert_eq!(s["ports"][0]["nodePort"], json!(30000));
        assert_eq!(s["ports"][0]["protocol"], json!("TCP"));
        assert_eq!(s["ports"][0]["targetPort"], json!(80));
        assert_eq!(s["healthCheckNodePort"], json!(30001));
        assert_eq!(s["allocateLoadBalancerNodePorts"], json!(true));
        assert_eq!(s["sessionAffinity"], json!("None"));
        assert_eq!(s["internalTrafficPolicy"], json!("Cluster"));
        assert_eq!(a["status"], json!({"loadBalancer": {}}));
        let b = create(
            &store,
            json!({"metadata": {"name": "b", "namespace": "default"},
                   "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "PreferDualStack", "ports": [{"port": 80}]}}),
        )
        .expect("create");
        assert_eq!(b["spec"]["clusterIPs"], json!(["10.96.0.11", "fd00:96::a"]));
        assert_eq!(b["spec"]["externalTrafficPolicy"], json!("Cluster"));
        assert_eq!(b["spec"]["ports"][0]["nodePort"], json!(30002));
        let dup = create(
            &store,
            json!({"metadata": {"name": "c", "namespace": "default"},
                   "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000}]}}),
        )
        .expect_err("dup");
        assert_eq!(dup.code, 422);
    }

    fn cluster_ip(store: &Store, name: &str) -> Value {
        create(
            store,
            json!({"metadata": {"name": name, "namespace": "default"},
                   "spec": {"ports": [{"port": 80}]}}),
        )
        .expect("create")["spec"]["clusterIP"]
            .clone()
    }

    #[test]
    fn allocation_takes_the_lowest_free_address() {
        let store = Store::new(10, None);
        for i in 0..5 {
            assert_eq!(
                cluster_ip(&store, &format!("s{i}")),
                json!(format!("10.96.0.{}", 10 + i))
            );
        }
        // Freeing an address below the others makes it the next one handed out.
        store
            .write(&core("services"), "default", "s1", |_, _| Ok(Write::Remove))
            .expect("delete");
        assert_eq!(cluster_ip(&store, "x"), json!("10.96.0.11"));
        assert_eq!(cluster_ip(&store, "y"), json!("10.96.0.15"));
        // A requested address in the middle of the free space is skipped later.
        create(
            &store,
            json!({"metadata": {"name": "fixed", "namespace": "default"},
                   "spec": {"clusterIP": "10.96.0.17", "ports": [{"port": 80}]}}),
        )
        .expect("create");
        assert_eq!(cluster_ip(&store, "z"), json!("10.96.0.16"));
        assert_eq!(cluster_ip(&store, "w"), json!("10.96.0.18"));
    }

    #[test]
    fn load_balancer_class_is_immutable() {
        let store = Store::new(10, None);
        let a = create(
            &store,
            json!({"metadata": {"name": "a", "namespace": "default"},
                   "spec": {"type": "LoadBalancer", "loadBalancerClass": "x", "ports": [{"port": 80}]}}),
        )
        .expect("create");
        let mut changed = a.clone();
        changed["spec"]["loadBalancerClass"] = json!("y");
        let view = store.lock();
        let e = on_update(&view, &a, &mut changed).expect_err("immutable");
        assert_eq!(e.code, 422);
        assert!(
            e.message.contains("spec.loadBalancerClass"),
            "{}",
            e.message
        );
        // Omitting allocations on update keeps them.
        let mut put = json!({"metadata": {"name": "a", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": "x", "ports": [{"port": 80}]}});
        on_update(&view, &a, &mut put).expect("update");
        assert_eq!(put["spec"]["clusterIP"], a["spec"]["clusterIP"]);
        assert_eq!(
            put["spec"]["ports"][0]["nodePort"],
            a["spec"]["ports"][0]["nodePort"]
        );
    }
}
