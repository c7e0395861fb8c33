//! The chaos run's deployment: N nodes, two controller replicas electing a leader, BIRD with
//! BFD as the router, and Services of every shape the invariants talk about: layer 2 IPv4,
//! dual-stack and a shared address, BGP with cluster and local traffic policy, and a churn
//! pool whose Services come and go.

use super::invariants::{Plane, ServiceFacts};
use crate::cluster::{Cluster, ClusterOptions};
use crate::lab::daemons::BfdTimers;
use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Controller replicas (leader election).
pub const CONTROLLER_REPLICAS: usize = 2;
/// The Local BGP Service, whose endpoints the run moves.
pub const LOCAL_SERVICE: &str = "bgp-local";
/// The key of the two Services sharing an address.
const SHARE_KEY: &str = "chaos-shared";
/// The churn pool, full and shrunk.
const CHURN_FULL: &str = "10.200.0.230-10.200.0.239";
const CHURN_SHRUNK: &str = "10.200.0.230-10.200.0.235";
/// Live churn Services at most (fit in the shrunk pool).
pub const CHURN_LIVE: usize = 4;

/// BFD on the router's sessions: 100 ms x 3. Detection in 300 ms, slow enough that a loaded
/// two-core machine does not flap sessions by itself.
fn bfd() -> BfdTimers {
    BfdTimers::new(100, 3)
}

fn config() -> String {
    let t = bfd();
    format!(
        "\
apiVersion: ferrolb.io/v1beta1
kind: BFDProfile
metadata: {{name: chaos, namespace: ferrolb-system}}
spec: {{receiveInterval: {rx}, transmitInterval: {tx}, detectMultiplier: {m}}}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {{name: router, namespace: ferrolb-system}}
spec: {{myASN: 64512, peerASN: 64500, peerAddress: 10.200.0.1, holdTime: 9s, bfdProfile: chaos}}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {{name: lan-pool, namespace: ferrolb-system}}
spec: {{addresses: [10.200.0.200-10.200.0.229, 'fd00:200::c8-fd00:200::cf']}}
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {{name: lan, namespace: ferrolb-system}}
spec: {{ipAddressPools: [lan-pool, churn-pool]}}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bgp-pool, namespace: ferrolb-system}}
spec: {{addresses: [10.200.100.0/24]}}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp, namespace: ferrolb-system}}
spec: {{ipAddressPools: [bgp-pool]}}
",
        rx = t.receive_ms,
        tx = t.transmit_ms,
        m = t.multiplier
    ) + &churn_pool(CHURN_FULL)
}

fn churn_pool(range: &str) -> String {
    format!(
        "---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {{name: churn-pool, namespace: ferrolb-system}}
spec: {{addresses: [{range}]}}
"
    )
}

/// The static Services: (name, plane, manifest).
fn static_services() -> Vec<(ServiceFacts, serde_json::Value)> {
    let svc = |name: &str,
               plane: Plane,
               pool: &str,
               extra_ann: &[(&str, &str)],
               spec: serde_json::Value| {
        let mut ann = serde_json::Map::new();
        ann.insert("ferrolb.io/address-pool".into(), pool.into());
        for (k, v) in extra_ann {
            ann.insert((*k).into(), (*v).into());
        }
        let mut s = serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "annotations": ann},
            "spec": {"type": "LoadBalancer", "selector": {"app": name},
                     "ports": [{"port": 80, "protocol": "TCP"}]},
        });
        if let (Some(dst), Some(src)) = (s["spec"].as_object_mut(), spec.as_object()) {
            dst.extend(src.clone());
        }
        let facts = ServiceFacts {
            name: name.into(),
            share_key: extra_ann
                .iter()
                .find(|(k, _)| *k == "ferrolb.io/allow-shared-ip")
                .map(|(_, v)| v.to_string()),
            plane,
            local: spec["externalTrafficPolicy"] == "Local",
            churn_pool: false,
            created: Duration::ZERO,
            deleted: None,
        };
        (facts, s)
    };
    let shared = [
        ("ferrolb.io/allow-shared-ip", SHARE_KEY),
        ("ferrolb.io/loadBalancerIPs", "10.200.0.210"),
    ];
    vec![
        svc("l2-v4", Plane::L2, "lan-pool", &[], serde_json::json!({})),
        svc(
            "l2-dual",
            Plane::L2,
            "lan-pool",
            &[],
            serde_json::json!({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}),
        ),
        svc(
            "shared-tcp",
            Plane::L2,
            "lan-pool",
            &shared,
            serde_json::json!({}),
        ),
        svc(
            "shared-udp",
            Plane::L2,
            "lan-pool",
            &shared,
            serde_json::json!({"ports": [{"port": 80, "protocol": "UDP"}]}),
        ),
        svc("bgp-v4", Plane::Bgp, "bgp-pool", &[], serde_json::json!({})),
        svc(
            LOCAL_SERVICE,
            Plane::Bgp,
            "bgp-pool",
            &[],
            serde_json::json!({"externalTrafficPolicy": "Local"}),
        ),
    ]
}

/// Builds the lab, applies the configuration and the static Services with the Local
/// Service's endpoints on nodes 1 and 2; returns the Services.
pub fn deploy(nodes: u8) -> anyhow::Result<(Cluster, Vec<ServiceFacts>)> {
    let mut cluster = Cluster::start(ClusterOptions {
        nodes,
        bird: true,
        upstream_client: true,
        leader_election: true,
        router_bfd: Some(bfd()),
        ..ClusterOptions::default()
    })?;
    for r in 1..CONTROLLER_REPLICAS {
        cluster.start_controller_replica(r)?;
    }
    cluster.apply_yaml(&config())?;
    let services = static_services();
    for (facts, manifest) in &services {
        let svc: Service = serde_json::from_value(manifest.clone())
            .with_context(|| format!("Service {}", facts.name))?;
        create_service(&cluster, svc)?;
    }
    set_endpoints(&cluster, LOCAL_SERVICE, &BTreeSet::from([1, 2]))?;
    Ok((cluster, services.into_iter().map(|(f, _)| f).collect()))
}

fn create_service(c: &Cluster, svc: Service) -> anyhow::Result<()> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    c.run(async move {
        tokio::time::timeout(
            Duration::from_secs(5),
            api.create(&PostParams::default(), &svc),
        )
        .await
    })?
    .with_context(|| format!("creating Service {name}: timed out"))?
    .with_context(|| format!("creating Service {name}"))?;
    Ok(())
}

/// Creates churn Service `name` in the churn pool (layer 2, IPv4).
pub fn create_churn_service(c: &Cluster, name: &str) -> anyhow::Result<ServiceFacts> {
    let svc = crate::fixtures::lb_service(name, 80, &[("ferrolb.io/address-pool", "churn-pool")]);
    create_service(c, svc)?;
    Ok(ServiceFacts {
        name: name.into(),
        share_key: None,
        plane: Plane::L2,
        local: false,
        churn_pool: true,
        created: Duration::ZERO,
        deleted: None,
    })
}

pub fn delete_service(c: &Cluster, name: &str) -> anyhow::Result<()> {
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let n = name.to_string();
    c.run(async move {
        tokio::time::timeout(
            Duration::from_secs(5),
            api.delete(&n, &DeleteParams::default()),
        )
        .await
    })?
    .with_context(|| format!("deleting Service {name}: timed out"))?
    .with_context(|| format!("deleting Service {name}"))?;
    Ok(())
}

/// The churn pool's step: 0 shrink, 1 remove, 2 restore. Returns whether the pool exists.
pub fn churn_pool_step(c: &Cluster, step: usize) -> anyhow::Result<bool> {
    match step {
        0 => c.apply_yaml(&churn_pool(CHURN_SHRUNK)).map(|_| true),
        1 => delete_pool(c, "churn-pool").map(|()| false),
        _ => c.apply_yaml(&churn_pool(CHURN_FULL)).map(|_| true),
    }
}

fn delete_pool(c: &Cluster, name: &str) -> anyhow::Result<()> {
    use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
    let gvk = GroupVersionKind::gvk("ferrolb.io", "v1beta1", "IPAddressPool");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "ipaddresspools");
    let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), "ferrolb-system", &ar);
    let n = name.to_string();
    let r = c.run(async move {
        tokio::time::timeout(
            Duration::from_secs(5),
            api.delete(&n, &DeleteParams::default()),
        )
        .await
    })?;
    match r {
        Ok(Ok(_)) => Ok(()),
        // Already gone: the step's outcome holds.
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => Ok(()),
        Ok(Err(e)) => Err(anyhow::Error::from(e).context(format!("deleting pool {name}"))),
        Err(_) => bail!("deleting pool {name}: timed out"),
    }
}

/// Writes the EndpointSlice of `svc` with one ready endpoint on each of `nodes` (there is no
/// EndpointSlice controller for Local Services in the lab).
pub fn set_endpoints(c: &Cluster, svc: &str, nodes: &BTreeSet<usize>) -> anyhow::Result<()> {
    let eps: Vec<serde_json::Value> = nodes
        .iter()
        .map(|&n| {
            serde_json::json!({
                "addresses": [format!("10.244.{n}.10")],
                "nodeName": c.lab.node(n).name(),
                "conditions": {"ready": true, "serving": true, "terminating": false},
            })
        })
        .collect();
    let name = crate::endpoints::slice_name(svc);
    let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "default",
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": [{"port": 80, "protocol": "TCP"}],
    }))?;
    let api: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    c.run(async move {
        tokio::time::timeout(
            Duration::from_secs(5),
            api.patch(
                &name,
                &PatchParams::apply("ferrolb-chaos").force(),
                &Patch::Apply(&slice),
            ),
        )
        .await
    })?
    .context("writing the EndpointSlice: timed out")?
    .context("writing the EndpointSlice")?;
    Ok(())
}

/// Waits until every named Service has all its addresses (two for dual-stack); returns them.
pub fn wait_addresses(
    c: &Cluster,
    services: &[ServiceFacts],
    timeout: Duration,
) -> anyhow::Result<std::collections::BTreeMap<String, Vec<std::net::IpAddr>>> {
    let deadline = Instant::now() + timeout;
    loop {
        let sample = super::observers::sample_services(c, Instant::now());
        if let Some(addrs) = sample.addresses {
            let done = services.iter().all(|s| {
                let want = if s.name == "l2-dual" { 2 } else { 1 };
                addrs.get(&s.name).is_some_and(|a| a.len() == want)
            });
            if done {
                return Ok(addrs);
            }
            if Instant::now() > deadline {
                bail!("Services without their addresses after {timeout:?}: {addrs:?}");
            }
        } else if Instant::now() > deadline {
            bail!("the API server does not answer");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
