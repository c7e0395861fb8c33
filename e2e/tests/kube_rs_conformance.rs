//! kube-rs (a real client we did not write) against the in-memory API server: CRUD,
//! optimistic concurrency, selectors, pagination, status subresources, patches, CRDs,
//! watcher/reflector convergence after dropped watches, 410 Gone and restarts, a
//! `Controller`, and injected 500/429 faults.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrolb_e2e::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions, Fault, FaultScope};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "test.ferrolb.io",
    version = "v1",
    kind = "Gadget",
    namespaced,
    status = "GadgetStatus",
    printcolumn = r#"{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}"#
)]
pub struct GadgetSpec {
    size: i32,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct GadgetStatus {
    ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// What the controller reconciled: (name, data value).
type Seen = Arc<Mutex<Vec<(String, String)>>>;

const WAIT: Duration = Duration::from_secs(15);

async fn start() -> ApiServerHandle {
    ApiServer::start(ApiServerOptions::default())
        .await
        .expect("start apiserver")
}

/// Polls `cond` until it holds or WAIT passes.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn cm(name: &str, labels: &[(&str, &str)], data: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.to_string());
    c.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    c.data = Some(BTreeMap::from([("k".to_string(), data.to_string())]));
    c
}

fn api_code(e: &kube::Error) -> Option<(u16, String)> {
    match e {
        kube::Error::Api(s) => Some((s.code, s.reason.clone())),
        _ => None,
    }
}

fn names(store: &Store<ConfigMap>) -> Vec<String> {
    let mut n: Vec<String> = store.state().iter().map(|c| c.name_any()).collect();
    n.sort();
    n
}

#[tokio::test]
async fn crud_conflicts_selectors_and_pagination() {
    let server = start().await;
    let client = server.client().expect("client");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    let a = cms
        .create(&pp, &cm("a", &[("app", "web"), ("tier", "front")], "1"))
        .await
        .expect("create a");
    let uid = a.metadata.uid.clone().expect("uid");
    assert!(a.metadata.creation_timestamp.is_some());
    let rv_a: u64 = a
        .resource_version()
        .expect("rv")
        .parse()
        .expect("numeric rv");
    cms.create(&pp, &cm("b", &[("app", "db")], "1"))
        .await
        .expect("create b");
    cms.create(&pp, &cm("c", &[], "1")).await.expect("create c");

    // AlreadyExists, NotFound, missing namespace.
    let e = cms
        .create(&pp, &cm("a", &[], "1"))
        .await
        .expect_err("duplicate");
    assert_eq!(api_code(&e), Some((409, "AlreadyExists".into())));
    let e = cms.get("nope").await.expect_err("missing");
    assert_eq!(api_code(&e), Some((404, "NotFound".into())));
    let nowhere: Api<ConfigMap> = Api::namespaced(client.clone(), "no-such-ns");
    let e = nowhere
        .create(&pp, &cm("x", &[], "1"))
        .await
        .expect_err("no namespace");
    assert_eq!(api_code(&e).map(|c| c.0), Some(404));

    // generateName.
    let mut g = cm("", &[], "1");
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let g = cms.create(&pp, &g).await.expect("generateName");
    assert!(
        g.name_any().starts_with("gen-") && g.name_any().len() == 9,
        "{}",
        g.name_any()
    );

    // Label selectors.
    let sel = |s: &str| {
        let cms = cms.clone();
        let s = s.to_string();
        async move {
            let mut n: Vec<String> = cms
                .list(&ListParams::default().labels(&s))
                .await
                .expect("list")
                .items
                .iter()
                .map(|c| c.name_any())
                .collect();
            n.sort();
            n
        }
    };
    assert_eq!(sel("app=web").await, vec!["a"]);
    assert_eq!(sel("app in (web,db)").await, vec!["a", "b"]);
    assert_eq!(sel("app notin (web)").await.len(), 3); // b, c, gen-*
    assert_eq!(sel("app").await, vec!["a", "b"]);
    assert_eq!(sel("!app").await.len(), 2);
    assert_eq!(sel("app!=db,tier=front").await, vec!["a"]);
    let fs = cms
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .expect("fields");
    assert_eq!(fs.items.len(), 1);
    let e = cms
        .list(&ListParams::default().labels("app in web"))
        .await
        .expect_err("bad selector");
    assert_eq!(api_code(&e).map(|c| c.0), Some(400));

    // Pagination.
    let page1 = cms
        .list(&ListParams::default().limit(2))
        .await
        .expect("page 1");
    assert_eq!(page1.items.len(), 2);
    let token = page1.metadata.continue_.clone().expect("continue token");
    let page2 = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .expect("page 2");
    assert_eq!(page2.items.len(), 2);
    assert!(page2.metadata.continue_.as_deref().unwrap_or("").is_empty());

    // Optimistic concurrency: a replace with the old resourceVersion is a 409 Conflict.
    let mut fresh = cms.get("a").await.expect("get");
    fresh.data = Some(BTreeMap::from([("k".into(), "2".into())]));
    let updated = cms.replace("a", &pp, &fresh).await.expect("replace");
    let rv_new: u64 = updated
        .resource_version()
        .expect("rv")
        .parse()
        .expect("numeric");
    assert!(rv_new > rv_a);
    let e = cms
        .replace("a", &pp, &fresh)
        .await
        .expect_err("stale replace");
    assert_eq!(api_code(&e), Some((409, "Conflict".into())));
    assert_eq!(updated.metadata.uid.as_deref(), Some(uid.as_str()));

    // Patches: merge, JSON, strategic, apply.
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"m": "1"}})),
    )
    .await
    .expect("merge");
    let jp = serde_json::from_value(json!([{"op": "add", "path": "/data/j", "value": "1"}]))
        .expect("json patch");
    cms.patch("a", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .expect("json patch");
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Strategic(json!({"data": {"s": "1"}})),
    )
    .await
    .expect("strategic");
    let applied = cms
        .patch(
            "a",
            &PatchParams::apply("conformance").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"ap": "1"}})),
        )
        .await
        .expect("apply");
    let data = applied.data.expect("data");
    for k in ["k", "m", "j", "s", "ap"] {
        assert!(data.contains_key(k), "missing {k} in {data:?}");
    }
    assert!(
        applied
            .metadata
            .managed_fields
            .unwrap_or_default()
            .iter()
            .any(|m| m.manager.as_deref() == Some("conformance")
                && m.operation.as_deref() == Some("Apply"))
    );
    let e = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::<()>::Json(
                serde_json::from_value(json!([{"op": "test", "path": "/data/k", "value": "nope"}]))
                    .expect("p"),
            ),
        )
        .await
        .expect_err("failed test op");
    assert_eq!(api_code(&e).map(|c| c.0), Some(422));

    // Delete, then it is gone.
    cms.delete("a", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(
        api_code(&cms.get("a").await.expect_err("deleted")).map(|c| c.0),
        Some(404)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn services_status_subresource_and_finalizers() {
    let server = start().await;
    let client = server.client().expect("client");
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "ferrolb.io/lb", "externalTrafficPolicy": "Local",
                 "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}
    }))
    .expect("service");
    let created = svcs
        .create(&PostParams::default(), &svc)
        .await
        .expect("create svc");
    let spec = created.spec.clone().expect("spec");
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
    assert_eq!(spec.ip_families, Some(vec!["IPv4".to_string()]));
    assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
    assert_eq!(spec.session_affinity.as_deref(), Some("None"));
    assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(spec.allocate_load_balancer_node_ports, Some(true));
    let node_ports: Vec<i32> = spec
        .ports
        .clone()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.node_port)
        .collect();
    assert_eq!(node_ports.len(), 2);
    assert!(node_ports.iter().all(|p| (30000..=32767).contains(p)));
    let hc = spec.health_check_node_port.expect("healthCheckNodePort");
    assert!(!node_ports.contains(&hc));
    assert!(
        created
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .is_some()
    );

    // Status via merge patch on /status; the main resource cannot change status.
    let st =
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.200.0.1", "ipMode": "VIP"}]}}});
    let after = svcs
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&st))
        .await
        .expect("status patch");
    assert_eq!(
        after
            .status
            .clone()
            .and_then(|s| s.load_balancer)
            .and_then(|l| l.ingress)
            .map(|i| i.len()),
        Some(1)
    );
    let main = svcs
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"x": "1"}}, "status": {"loadBalancer": {}}}),
            ),
        )
        .await
        .expect("main patch");
    assert_eq!(
        main.status
            .clone()
            .and_then(|s| s.load_balancer)
            .and_then(|l| l.ingress)
            .map(|i| i.len()),
        Some(1),
        "main resource writes keep status"
    );
    // Status writes leave spec alone.
    let s2 = svcs
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"sessionAffinity": "ClientIP"}, "status": {"loadBalancer": {}}}),
            ),
        )
        .await
        .expect("status patch 2");
    assert_eq!(
        s2.spec.and_then(|s| s.session_affinity).as_deref(),
        Some("None")
    );
    // Server-side apply on /status.
    let applied = svcs
        .patch_status(
            "web",
            &PatchParams::apply("ferrolb-controller").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Service", "status": {"loadBalancer": {"ingress": [{"ip": "10.200.0.2"}]}}})),
        )
        .await
        .expect("apply status");
    assert_eq!(
        applied
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|l| l.ingress)
            .and_then(|i| i.first().and_then(|x| x.ip.clone()))
            .as_deref(),
        Some("10.200.0.2")
    );

    // loadBalancerClass is immutable: 422 with a field error.
    let e = svcs
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"loadBalancerClass": "other"}})),
        )
        .await
        .expect_err("immutable class");
    match &e {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            let causes = s
                .details
                .as_ref()
                .map(|d| d.causes.clone())
                .unwrap_or_default();
            assert!(
                causes.iter().any(|c| c.field == "spec.loadBalancerClass"),
                "{s:?}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }

    // Finalizers: delete marks, removing the last finalizer removes.
    svcs.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["ferrolb.io/test"]}})),
    )
    .await
    .expect("add finalizer");
    svcs.delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    let marked = svcs.get("web").await.expect("still there");
    assert!(marked.metadata.deletion_timestamp.is_some());
    svcs.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove finalizer");
    assert_eq!(
        api_code(&svcs.get("web").await.expect_err("gone")).map(|c| c.0),
        Some(404)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn crds_are_served_and_keep_generation_semantics() {
    let server = start().await;
    let client = server.client().expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Gadget::crd())
        .await
        .expect("create crd");
    tokio::time::timeout(
        WAIT,
        await_condition(
            crds.clone(),
            "gadgets.test.ferrolb.io",
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("established in time")
    .expect("await");
    let gadgets: Api<Gadget> = Api::namespaced(client.clone(), "default");
    let g = gadgets
        .create(
            &PostParams::default(),
            &Gadget::new("g1", GadgetSpec { size: 1 }),
        )
        .await
        .expect("create gadget");
    assert_eq!(g.metadata.generation, Some(1));
    let st = gadgets
        .patch_status(
            "g1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await
        .expect("status");
    assert_eq!(
        st.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );
    let st = gadgets
        .patch_status("g1", &PatchParams::apply("ctl").force(), &Patch::Apply(json!({"apiVersion": "test.ferrolb.io/v1", "kind": "Gadget", "status": {"ready": true, "note": "hi"}})))
        .await
        .expect("apply status");
    assert_eq!(st.status.and_then(|s| s.note).as_deref(), Some("hi"));
    let sp = gadgets
        .patch(
            "g1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .expect("spec");
    assert_eq!(sp.metadata.generation, Some(2));
    let e = gadgets
        .patch(
            "g1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": "big"}})),
        )
        .await
        .expect_err("schema type check");
    assert_eq!(api_code(&e).map(|c| c.0), Some(422));
    // Server-side apply creates.
    let created = gadgets
        .patch(
            "g2",
            &PatchParams::apply("ctl"),
            &Patch::Apply(
                json!({"apiVersion": "test.ferrolb.io/v1", "kind": "Gadget", "spec": {"size": 5}}),
            ),
        )
        .await
        .expect("apply create");
    assert_eq!(created.spec.size, 5);
    assert_eq!(
        gadgets
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        2
    );
    // Deleting the CRD stops serving it.
    crds.delete("gadgets.test.ferrolb.io", &DeleteParams::default())
        .await
        .expect("delete crd");
    let e = gadgets
        .list(&ListParams::default())
        .await
        .expect_err("no longer served");
    assert_eq!(api_code(&e).map(|c| c.0), Some(404));
    server.shutdown().await;
}

#[tokio::test]
async fn reflector_converges_after_dropped_watches_410_and_restart() {
    let server = start().await;
    let client = server.client().expect("client");
    let cms: Api<ConfigMap> = Api::all(client.clone());
    let ns_cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let (reader, writer) = reflector::store();
    let stream = kube::runtime::reflector(writer, watcher(cms.clone(), watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(stream.for_each(|_| futures::future::ready(())));
    let pp = PostParams::default();

    ns_cms.create(&pp, &cm("a", &[], "1")).await.expect("a");
    eventually("reflector sees a", || {
        let r = reader.clone();
        async move { names(&r) == ["a"] }
    })
    .await;

    // 1. Every watch dropped: the watcher resumes from its resourceVersion.
    let watches = server.faults().watches_started();
    server.faults().drop_watches();
    ns_cms.create(&pp, &cm("b", &[], "1")).await.expect("b");
    eventually("reflector sees b after drop", || {
        let r = reader.clone();
        async move { names(&r) == ["a", "b"] }
    })
    .await;
    assert!(
        server.faults().watches_started() > watches,
        "the watcher re-watched"
    );

    // 2. 410 Gone: changes happen while the watch is down and history is compacted, so
    //    the resume version is too old; the watcher must relist.
    server.faults().hold_watches();
    server.faults().drop_watches();
    ns_cms
        .delete("a", &DeleteParams::default())
        .await
        .expect("delete a");
    ns_cms.create(&pp, &cm("c", &[], "1")).await.expect("c");
    server.compact();
    let gone = server.faults().gone_served();
    server.faults().release_watches();
    eventually("reflector converges after 410", || {
        let r = reader.clone();
        async move { names(&r) == ["b", "c"] }
    })
    .await;
    assert!(
        server.faults().gone_served() > gone,
        "a 410 was really served"
    );

    // 3. Injected 500s on watches: the watcher backs off and recovers.
    server
        .faults()
        .fail_next(2, Fault::InternalError, FaultScope::Watches);
    server.faults().drop_watches();
    ns_cms.create(&pp, &cm("d", &[], "1")).await.expect("d");
    eventually("reflector sees d after 500s", || {
        let r = reader.clone();
        async move { names(&r) == ["b", "c", "d"] }
    })
    .await;
    assert!(server.faults().faults_served() >= 2);

    // 4. Restart on the same port with the same state.
    let addr = server.addr();
    let rv_before = server.resource_version();
    let server = server.restart().await.expect("restart");
    assert_eq!(server.addr(), addr);
    assert_eq!(server.resource_version(), rv_before);
    ns_cms
        .create(&pp, &cm("e", &[], "1"))
        .await
        .expect("e after restart");
    eventually("reflector sees e after restart", || {
        let r = reader.clone();
        async move { names(&r) == ["b", "c", "d", "e"] }
    })
    .await;
    let e = ns_cms.get("e").await.expect("get e");
    assert!(
        e.resource_version()
            .expect("rv")
            .parse::<u64>()
            .expect("num")
            > rv_before
    );

    task.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn controller_reconciles_on_changes() {
    let server = start().await;
    let client = server.client().expect("client");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));

    #[derive(Debug, thiserror::Error)]
    #[error("never")]
    struct Never;

    let ctx = seen.clone();
    let controller = Controller::new(cms.clone(), watcher::Config::default())
        .run(
            |obj: Arc<ConfigMap>, ctx: Arc<Seen>| async move {
                let v = obj
                    .data
                    .as_ref()
                    .and_then(|d| d.get("k").cloned())
                    .unwrap_or_default();
                ctx.lock().expect("lock").push((obj.name_any(), v));
                Ok::<_, Never>(Action::await_change())
            },
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            Arc::new(ctx),
        )
        .for_each(|_| futures::future::ready(()));
    let task = tokio::spawn(controller);

    cms.create(&PostParams::default(), &cm("x", &[], "1"))
        .await
        .expect("create");
    let has = |name: &'static str, v: &'static str| {
        let seen = seen.clone();
        move || {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .expect("lock")
                    .iter()
                    .any(|(n, d)| n == name && d == v)
            }
        }
    };
    eventually("reconcile of x=1", has("x", "1")).await;
    cms.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .expect("patch");
    eventually("reconcile of x=2", has("x", "2")).await;
    server.faults().drop_watches();
    cms.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "3"}})),
    )
    .await
    .expect("patch");
    eventually("reconcile of x=3 after dropped watch", has("x", "3")).await;
    task.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn injected_500_and_429() {
    let server = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(server.client().expect("client"), "default");
    server
        .faults()
        .fail_next(1, Fault::InternalError, FaultScope::All);
    assert_eq!(
        api_code(&cms.list(&ListParams::default()).await.expect_err("500")).map(|c| c.0),
        Some(500)
    );
    // kube-rs retries 429 by itself (honouring Retry-After): the call succeeds, and the
    // fault counter proves it was throttled first.
    let served = server.faults().faults_served();
    server.faults().fail_next(
        1,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        FaultScope::All,
    );
    cms.list(&ListParams::default())
        .await
        .expect("retried after 429");
    assert_eq!(server.faults().faults_served(), served + 1);
    cms.list(&ListParams::default())
        .await
        .expect("healthy again");
    // Retry-After is on the wire.
    server.faults().fail_next(
        1,
        Fault::TooManyRequests {
            retry_after_secs: 3,
        },
        FaultScope::All,
    );
    let resp = raw_get(&server, "/api/v1/namespaces/default/configmaps").await;
    assert!(resp.starts_with("HTTP/1.1 429"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("retry-after: 3"),
        "{resp}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn state_survives_restart_from_file() {
    let dir = std::env::temp_dir().join(format!("ferrolb-apiserver-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let state = dir.join("state.json");
    let _ = std::fs::remove_file(&state);
    let opts = ApiServerOptions {
        state_file: Some(state.clone()),
        ..ApiServerOptions::default()
    };
    let server = ApiServer::start(opts.clone()).await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client().expect("client"), "default");
    cms.create(&PostParams::default(), &cm("persisted", &[], "1"))
        .await
        .expect("create");
    let rv = server.resource_version();
    server.shutdown().await;
    assert!(state.exists());
    let server = ApiServer::start(opts).await.expect("start again");
    let cms: Api<ConfigMap> = Api::namespaced(server.client().expect("client"), "default");
    assert_eq!(
        cms.get("persisted")
            .await
            .expect("still there")
            .data
            .and_then(|d| d.get("k").cloned())
            .as_deref(),
        Some("1")
    );
    assert_eq!(server.resource_version(), rv);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bare HTTP/1.1 GET, to see headers kube-rs does not expose.
/// A GET as the server's admin, read to the end.
async fn raw_get(server: &ApiServerHandle, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.addr();
    let token = server.admin_token();
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

#[tokio::test]
async fn watch_protocol_events_bookmarks_gone_and_initial_events() {
    use kube::api::{WatchEvent, WatchParams};
    let server = ApiServer::start(ApiServerOptions {
        bookmark_interval: Duration::from_millis(200),
        ..ApiServerOptions::default()
    })
    .await
    .expect("start");
    let client = server.client().expect("client");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("a", &[("app", "web")], "1"))
        .await
        .expect("a");
    let rv = server.resource_version().to_string();

    // Selector transitions: leaving the selection is DELETED, re-entering is ADDED.
    let mut events = cms
        .watch(&WatchParams::default().labels("app=web").timeout(10), &rv)
        .await
        .expect("watch")
        .boxed();
    let set_label = |v: &'static str| {
        let cms = cms.clone();
        async move {
            cms.patch(
                "a",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"app": v}}})),
            )
            .await
            .expect("label");
        }
    };
    set_label("db").await;
    set_label("web").await;
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .expect("data");
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        match tokio::time::timeout(WAIT, events.next())
            .await
            .expect("event in time")
        {
            Some(Ok(WatchEvent::Added(_))) => kinds.push("ADDED"),
            Some(Ok(WatchEvent::Modified(_))) => kinds.push("MODIFIED"),
            Some(Ok(WatchEvent::Deleted(_))) => kinds.push("DELETED"),
            Some(Ok(WatchEvent::Bookmark(_))) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds, ["DELETED", "ADDED", "MODIFIED"]);

    // Bookmarks carry the latest resourceVersion.
    let mut bm = cms
        .watch(
            &WatchParams::default().timeout(10),
            &server.resource_version().to_string(),
        )
        .await
        .expect("watch")
        .boxed();
    match tokio::time::timeout(WAIT, bm.next())
        .await
        .expect("bookmark in time")
    {
        Some(Ok(WatchEvent::Bookmark(b))) => assert_eq!(
            b.metadata.resource_version,
            server.resource_version().to_string()
        ),
        other => panic!("expected a bookmark, got {other:?}"),
    }

    // timeoutSeconds ends the stream.
    let mut short = cms
        .watch(
            &WatchParams::default().disable_bookmarks().timeout(1),
            &server.resource_version().to_string(),
        )
        .await
        .expect("watch")
        .boxed();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while short.next().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the watch ended after timeoutSeconds");

    // A version older than the retained history: one ERROR event with 410 Expired.
    server.compact();
    let mut old = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    match tokio::time::timeout(WAIT, old.next())
        .await
        .expect("error in time")
    {
        Some(Ok(WatchEvent::Error(s))) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }

    // sendInitialEvents: current objects, then a bookmark marking the end.
    let mut init = cms
        .watch(&WatchParams::streaming_lists().timeout(10), "")
        .await
        .expect("watch")
        .boxed();
    let mut added = 0;
    loop {
        match tokio::time::timeout(WAIT, init.next())
            .await
            .expect("initial events in time")
        {
            Some(Ok(WatchEvent::Added(_))) => added += 1,
            Some(Ok(WatchEvent::Bookmark(b))) => {
                assert_eq!(
                    b.metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str),
                    Some("true")
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(added, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn recorder_events_are_visible_in_both_event_apis() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event as NewEvent;
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let server = start().await;
    let client = server.client().expect("client");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let x = cms
        .create(&PostParams::default(), &cm("x", &[], "1"))
        .await
        .expect("x");
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "ferrolb-test".into(),
            instance: Some("pod-0".into()),
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some("hello".into()),
        action: "Test".into(),
        secondary: None,
    };
    let reference = x.object_ref(&());
    recorder.publish(&ev, &reference).await.expect("publish");
    // A repeat becomes a series update (a PATCH on events.k8s.io).
    recorder
        .publish(&ev, &reference)
        .await
        .expect("publish again");

    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let listed = core
        .list(&ListParams::default().fields("involvedObject.name=x"))
        .await
        .expect("core events");
    assert_eq!(listed.items.len(), 1, "{:?}", listed.items);
    assert_eq!(listed.items[0].message.as_deref(), Some("hello"));
    assert_eq!(listed.items[0].reason.as_deref(), Some("Tested"));
    let new: Api<NewEvent> = Api::namespaced(client.clone(), "default");
    let listed = new
        .list(&ListParams::default().fields("regarding.name=x"))
        .await
        .expect("new events");
    assert_eq!(listed.items.len(), 1);
    let e = &listed.items[0];
    assert_eq!(e.note.as_deref(), Some("hello"));
    assert_eq!(e.reporting_controller.as_deref(), Some("ferrolb-test"));
    assert!(e.series.as_ref().is_some_and(|s| s.count >= 2), "{e:?}");
    server.shutdown().await;
}

/// A bare HTTP/1.1 request; returns the whole response (status line, headers, body).
/// A request as the server's admin, read to the end.
async fn raw(
    server: &ApiServerHandle,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.addr();
    let token = server.admin_token();
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

#[tokio::test]
async fn bad_requests_get_status_objects_not_panics() {
    let server = start().await;
    let a = &server;
    let cms = "/api/v1/namespaces/default/configmaps";
    let cases: Vec<(&str, String, &str, &str, &str)> = vec![
        (
            "POST",
            cms.to_string(),
            "application/json",
            "{not json",
            "400",
        ),
        ("POST", cms.to_string(), "application/json", "[1,2]", "400"),
        (
            "POST",
            cms.to_string(),
            "application/json",
            r#"{"metadata": "x"}"#,
            "400",
        ),
        (
            "POST",
            cms.to_string(),
            "application/json",
            r#"{"kind": "Secret", "metadata": {"name": "a"}}"#,
            "400",
        ),
        (
            "POST",
            cms.to_string(),
            "application/json",
            r#"{"metadata": {"name": "Bad_Name"}}"#,
            "422",
        ),
        // A protobuf body cut short of its `k8s\0` prefix is malformed.
        (
            "POST",
            cms.to_string(),
            "application/vnd.kubernetes.protobuf",
            "k8s",
            "400",
        ),
        // A well-formed envelope (runtime.Unknown with typeMeta v1/Pod) of a kind the server
        // has no protobuf conversion for.
        (
            "POST",
            "/api/v1/namespaces/default/pods".to_string(),
            "application/vnd.kubernetes.protobuf",
            "k8s\0\n\t\n\u{2}v1\u{12}\u{3}Pod",
            "415",
        ),
        ("POST", cms.to_string(), "application/cbor", "\u{a0}", "415"),
        ("POST", format!("{cms}/x"), "application/json", "{}", "405"),
        (
            "GET",
            format!("{cms}?labelSelector=a%20in%20b"),
            "",
            "",
            "400",
        ),
        (
            "GET",
            format!("{cms}?fieldSelector=spec.x%3D1"),
            "",
            "",
            "400",
        ),
        ("GET", format!("{cms}?limit=-1"), "", "", "400"),
        ("GET", format!("{cms}?continue=zz"), "", "", "400"),
        (
            "GET",
            format!("{cms}?watch=true&resourceVersion=abc"),
            "",
            "",
            "400",
        ),
        ("GET", "/api/v1/nothings".to_string(), "", "", "404"),
        ("GET", "/apis/no.such/v1/things".to_string(), "", "", "404"),
        (
            "GET",
            "/api/v1/namespaces/default/nodes".to_string(),
            "",
            "",
            "404",
        ),
        (
            "PUT",
            "/version".to_string(),
            "application/json",
            "{}",
            "405",
        ),
    ];
    for (method, path, ct, body, code) in &cases {
        let resp = raw(a, method, path, ct, body).await;
        assert!(
            resp.starts_with(&format!("HTTP/1.1 {code}")),
            "{method} {path} {body}: {resp}"
        );
        assert!(
            resp.contains(r#""kind":"Status""#),
            "{method} {path}: {resp}"
        );
    }
    // Patches that cannot apply.
    let pp = format!("{cms}/p");
    raw(
        a,
        "POST",
        cms,
        "application/json",
        r#"{"metadata": {"name": "p"}}"#,
    )
    .await;
    for (ct, body, code) in [
        ("application/merge-patch+json", "[1]", "400"),
        ("application/json-patch+json", r#"{"op": "add"}"#, "400"),
        (
            "application/json-patch+json",
            r#"[{"op": "remove", "path": "/nope"}]"#,
            "422",
        ),
        (
            "application/strategic-merge-patch+json",
            r#"{"data": {"$patch": "bogus"}}"#,
            "400",
        ),
        (
            "application/apply-patch+yaml",
            "kind: ConfigMap\napiVersion: v1\n",
            "400",
        ),
        ("application/apply-patch+yaml", ": : :\n\t- [", "400"),
        ("text/plain", "x", "415"),
    ] {
        let resp = raw(a, "PATCH", &pp, ct, body).await;
        assert!(
            resp.starts_with(&format!("HTTP/1.1 {code}")),
            "{ct} {body}: {resp}"
        );
    }
    // The server is still healthy.
    assert!(
        raw(a, "GET", "/version", "", "")
            .await
            .starts_with("HTTP/1.1 200")
    );
    server.shutdown().await;
}
