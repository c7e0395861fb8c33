//! The controller against the in-memory API server: the wiring of the allocator to Services,
//! configuration objects, events, pool status, the HTTP API, restarts, faults and leader
//! election. The allocation rules themselves are unit-tested in controller/src/allocator.

use ferrolb_api::{IPAddressPool, IPAddressPoolSpec};
use ferrolb_controller::run::{self, Handle, RunOptions};
use ferrolb_e2e::apiserver::faults::{Fault, FaultScope};
use ferrolb_e2e::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use ferrolb_e2e::fixtures::{ensure_namespace, eventually, http_get, install_crds, lb_service};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use std::collections::BTreeMap;
use std::time::Duration;

const NS: &str = "ferrolb-system";
const WAIT: Duration = Duration::from_secs(20);

async fn cluster() -> (ApiServerHandle, Client) {
    let server = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("start apiserver");
    let client = server.client().expect("client");
    install_crds(&client).await.expect("install CRDs");
    ensure_namespace(&client, NS).await.expect("namespace");
    (server, client)
}

fn options(identity: &str, leader_election: bool) -> RunOptions {
    let mut o = RunOptions::new(NS, identity);
    o.listen = "127.0.0.1:0".parse().expect("addr");
    // Plain HTTP on loopback: the test reads the HTTP API without a token.
    o.http = run::HttpSecurityArgs::insecure_loopback();
    o.leader_election = leader_election;
    o.lease_duration = Duration::from_secs(3);
    o.lease_renew_every = Duration::from_millis(500);
    o
}

/// A client acting as the controller's ServiceAccount under deploy/rbac.yaml.
async fn as_controller(server: &ApiServerHandle, admin: &Client) -> Client {
    let token = ferrolb_e2e::credentials::deploy_rbac_token(admin.clone(), "controller")
        .await
        .expect("the controller's token");
    server.client_with_token(&token).expect("controller client")
}

async fn controller(server: &ApiServerHandle, admin: &Client) -> Handle {
    run::start(
        as_controller(server, admin).await,
        options("test-controller", false),
    )
    .await
    .expect("start controller")
}

async fn create_pool(client: &Client, name: &str, addresses: &[&str]) {
    let api: Api<IPAddressPool> = Api::namespaced(client.clone(), NS);
    let pool = IPAddressPool::new(
        name,
        IPAddressPoolSpec {
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            auto_assign: true,
            ..IPAddressPoolSpec::default()
        },
    );
    api.create(&PostParams::default(), &pool)
        .await
        .expect("create pool");
}

async fn create_service(client: &Client, svc: &Service) {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), svc)
        .await
        .expect("create service");
}

fn ingress(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .map(|i| i.iter().filter_map(|x| x.ip.clone()).collect())
        .unwrap_or_default()
}

async fn wait_ingress(client: &Client, name: &str, want: &[&str]) {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    let what = format!("service {name} to have ingress {want:?}");
    eventually(&what, WAIT, || async {
        let svc = api.get(name).await.ok()?;
        (ingress(&svc) == want).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn events(client: &Client, namespace: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .expect("list events")
        .items
}

async fn wait_event(client: &Client, namespace: &str, reason: &str, note_part: &str) -> Event {
    let what = format!("event {reason} containing {note_part:?} in {namespace}");
    eventually(&what, WAIT, || async {
        events(client, namespace).await.into_iter().find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.note.as_deref().is_some_and(|n| n.contains(note_part))
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn status_json(handle: &Handle, path: &str) -> (u16, serde_json::Value) {
    let (code, body) = http_get(handle.addr, path).await.expect("GET");
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    (code, json)
}

#[tokio::test]
async fn assigns_lowest_free_ip_with_event_pool_status_and_status_api() {
    let (server, client) = cluster().await;
    create_pool(&client, "lan", &["10.200.50.10-10.200.50.20"]).await;
    let ctl = controller(&server, &client).await;
    create_service(&client, &lb_service("web", 80, &[])).await;
    wait_ingress(&client, "web", &["10.200.50.10"]).await;
    create_service(&client, &lb_service("api", 80, &[])).await;
    wait_ingress(&client, "api", &["10.200.50.11"]).await;

    let ev = wait_event(&client, "default", "IPAllocated", "10.200.50.10").await;
    assert_eq!(
        ev.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("web")
    );

    let pools: Api<IPAddressPool> = Api::namespaced(client.clone(), NS);
    eventually("pool status to count 2 assigned", WAIT, || async {
        let p = pools.get("lan").await.ok()?;
        let s = p.status?;
        (s.assigned_ipv4 == 2 && s.available_ipv4 == 9).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let (code, svc) = status_json(&ctl, "/api/v1/services/default/web").await;
    assert_eq!(code, 200, "{svc}");
    assert_eq!(svc["ips"][0], "10.200.50.10");
    assert_eq!(svc["pool"], "lan");
    let (code, _) = status_json(&ctl, "/api/v1/services/default/nope").await;
    assert_eq!(code, 404);
    let (code, status) = status_json(&ctl, "/api/v1/status").await;
    assert_eq!(code, 200);
    assert_eq!(status["config"]["valid"], true);
    // No metallb.io CRDs here: only ferrolb.io is read.
    assert_eq!(
        status["config"]["groups"],
        serde_json::json!(["ferrolb.io"])
    );
    assert_eq!(status["pools"][0]["assignedIPv4"], 2);
    let (code, body) = http_get(ctl.addr, "/metrics").await.expect("metrics");
    assert_eq!(code, 200);
    assert!(
        body.contains(r#"ferrolb_controller_pool_addresses_in_use{pool="lan",family="ipv4"} 2"#),
        "{body}"
    );
    assert!(
        body.contains(r#"ferrolb_controller_config_groups{group="ferrolb.io"} 1"#),
        "{body}"
    );
    assert_eq!(http_get(ctl.addr, "/readyz").await.expect("readyz").0, 200);
    ctl.stop().await.expect("stop");
}

/// MetalLB's controller creates the speakers' membership key Secret when it is missing
/// (`--ml-secret-name`); ferrolb's does too, once, and never replaces an existing key.
#[tokio::test]
async fn creates_the_membership_key_secret_when_missing_and_keeps_it() {
    use k8s_openapi::api::core::v1::Secret;
    let (server, client) = cluster().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    assert!(secrets.get_opt("memberlist").await.expect("get").is_none());
    let ctl = controller(&server, &client).await;
    let key = eventually("the memberlist Secret", WAIT, || async {
        let s = secrets.get_opt("memberlist").await.ok()??;
        s.data?.get("secretkey").map(|k| k.0.clone())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(key.len(), 64, "256 random bits as hex");
    ctl.stop().await.expect("stop");
    // A restart finds it and leaves it alone.
    let again = controller(&server, &client).await;
    eventually("a ready controller", WAIT, || async {
        (http_get(again.addr, "/readyz").await.ok()?.0 == 200).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let after = secrets.get("memberlist").await.expect("get");
    assert_eq!(after.data.expect("data")["secretkey"].0, key);
    again.stop().await.expect("stop");
}

/// Deleting a Service releases its address at once: the deletion alone (no other change)
/// must start a pass, which hands the address to a Service waiting for it.
#[tokio::test]
async fn deleting_a_service_releases_its_ip_at_once() {
    let (server, client) = cluster().await;
    create_pool(&client, "one", &["10.200.50.10/32"]).await;
    let ctl = controller(&server, &client).await;
    create_service(&client, &lb_service("first", 80, &[])).await;
    wait_ingress(&client, "first", &["10.200.50.10"]).await;
    create_service(&client, &lb_service("second", 80, &[])).await;
    wait_event(&client, "default", "AllocationFailed", "").await;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    assert!(ingress(&api.get("second").await.expect("get")).is_empty());
    api.delete("first", &DeleteParams::default())
        .await
        .expect("delete first");
    wait_ingress(&client, "second", &["10.200.50.10"]).await;
    let (_, status) = status_json(&ctl, "/api/v1/status").await;
    let services = status["services"].to_string();
    assert!(
        services.contains("\"second\"") && !services.contains("\"first\""),
        "{services}"
    );
    ctl.stop().await.expect("stop");
}

#[tokio::test]
async fn requested_ip_outside_every_pool_gets_no_ip_and_an_event() {
    let (server, client) = cluster().await;
    create_pool(&client, "lan", &["10.200.50.0/28"]).await;
    let ctl = controller(&server, &client).await;
    create_service(
        &client,
        &lb_service(
            "stray",
            80,
            &[("metallb.universe.tf/loadBalancerIPs", "10.200.99.1")],
        ),
    )
    .await;
    let ev = wait_event(&client, "default", "AllocationFailed", "10.200.99.1").await;
    let note = ev.note.unwrap_or_default();
    assert!(note.contains("not in any pool"), "{note}");
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    assert!(ingress(&api.get("stray").await.expect("get")).is_empty());
    let (_, svc) = status_json(&ctl, "/api/v1/services/default/stray").await;
    assert!(
        svc["error"]
            .as_str()
            .is_some_and(|e| e.contains("10.200.99.1")),
        "{svc}"
    );
    ctl.stop().await.expect("stop");
}

#[tokio::test]
async fn invalid_configuration_keeps_the_last_valid_one() {
    let (server, client) = cluster().await;
    create_pool(&client, "lan", &["10.200.50.0/29"]).await;
    let ctl = controller(&server, &client).await;
    create_service(&client, &lb_service("web", 80, &[])).await;
    wait_ingress(&client, "web", &["10.200.50.0"]).await;
    // MetalLB's ConfigurationState, one per component.
    let states: Api<ferrolb_api::ConfigurationState> = Api::namespaced(client.clone(), NS);
    let state = |want: &'static str| {
        let states = states.clone();
        async move {
            eventually(
                &format!("ConfigurationState controller {want}"),
                WAIT,
                || async {
                    let s = states.get_opt("controller").await.ok()??.status?;
                    (s.result == want).then_some(s)
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    let valid = state("Valid").await;
    assert!(valid.error_summary.is_empty());
    assert_eq!(valid.conditions[0].status, "True");

    // Overlaps "lan": the whole new configuration is rejected.
    create_pool(&client, "clash", &["10.200.50.4/30"]).await;
    let ev = wait_event(&client, NS, "ConfigInvalid", "overlap").await;
    assert_eq!(
        ev.regarding.as_ref().and_then(|r| r.kind.as_deref()),
        Some("IPAddressPool")
    );
    let (_, status) = status_json(&ctl, "/api/v1/status").await;
    assert_eq!(status["config"]["valid"], false, "{status}");
    let errors = status["config"]["errors"].to_string();
    assert!(
        errors.contains("clash") && errors.contains("lan"),
        "{errors}"
    );
    let invalid = state("Invalid").await;
    assert!(
        invalid.error_summary.contains("clash"),
        "{}",
        invalid.error_summary
    );

    // The old configuration still allocates and nothing moved.
    create_service(&client, &lb_service("api", 80, &[])).await;
    wait_ingress(&client, "api", &["10.200.50.1"]).await;
    wait_ingress(&client, "web", &["10.200.50.0"]).await;
    let (_, metrics) = http_get(ctl.addr, "/metrics").await.expect("metrics");
    assert!(
        metrics.contains("ferrolb_controller_config_valid 0"),
        "{metrics}"
    );
    ctl.stop().await.expect("stop");
}

#[tokio::test]
async fn shrunk_pool_and_type_change_release_addresses() {
    let (server, client) = cluster().await;
    create_pool(&client, "lan", &["10.200.50.10-10.200.50.20"]).await;
    let ctl = controller(&server, &client).await;
    create_service(&client, &lb_service("web", 80, &[])).await;
    wait_ingress(&client, "web", &["10.200.50.10"]).await;
    create_service(&client, &lb_service("api", 81, &[])).await;
    wait_ingress(&client, "api", &["10.200.50.11"]).await;

    let pools: Api<IPAddressPool> = Api::namespaced(client.clone(), NS);
    let patch = serde_json::json!({"spec": {"addresses": ["10.200.50.11-10.200.50.20"]}});
    pools
        .patch("lan", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("shrink");
    wait_ingress(&client, "web", &["10.200.50.12"]).await;
    wait_ingress(&client, "api", &["10.200.50.11"]).await;
    wait_event(
        &client,
        "default",
        "IPReleased",
        "no longer contains 10.200.50.10",
    )
    .await;
    wait_event(&client, NS, "PoolInUse", "10.200.50.10").await;

    // No longer a LoadBalancer: the ingress is cleared and the address is free again.
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let patch = serde_json::json!({"spec": {"type": "ClusterIP"}});
    svcs.patch("api", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("retype");
    wait_ingress(&client, "api", &[]).await;
    create_service(&client, &lb_service("next", 82, &[])).await;
    wait_ingress(&client, "next", &["10.200.50.11"]).await;
    ctl.stop().await.expect("stop");
}

#[tokio::test]
async fn restart_with_1000_services_moves_no_ip_and_writes_nothing() {
    let (server, client) = cluster().await;
    create_pool(&client, "big", &["10.200.128.0/20"]).await;
    let ctl = controller(&server, &client).await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    // Created concurrently, so addresses are not in name order: a restart that re-allocated
    // from scratch in sorted order would move most of them.
    let creates = (0..1000).map(|i| {
        let client = client.clone();
        async move { create_service(&client, &lb_service(&format!("svc-{i:04}"), 80, &[])).await }
    });
    futures::future::join_all(creates).await;
    let before = eventually(
        "1000 services to have an address",
        Duration::from_secs(60),
        || async {
            let list = svcs.list(&ListParams::default()).await.ok()?;
            let all: BTreeMap<String, (Vec<String>, String)> = list
                .items
                .iter()
                .map(|s| {
                    (
                        s.metadata.name.clone().unwrap_or_default(),
                        (
                            ingress(s),
                            s.metadata.resource_version.clone().unwrap_or_default(),
                        ),
                    )
                })
                .collect();
            (all.len() == 1000 && all.values().all(|(ips, _)| ips.len() == 1)).then_some(all)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let distinct: std::collections::BTreeSet<&String> =
        before.values().map(|(ips, _)| &ips[0]).collect();
    assert_eq!(distinct.len(), 1000, "every service has its own address");
    ctl.stop().await.expect("stop");

    let ctl = controller(&server, &client).await;
    eventually("restarted controller to be ready", WAIT, || async {
        let (code, _) = http_get(ctl.addr, "/readyz").await.ok()?;
        (code == 200).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // A later Service proves the restarted controller has run passes since.
    create_service(&client, &lb_service("after-restart", 80, &[])).await;
    let api = svcs.clone();
    eventually(
        "service created after restart to get an address",
        WAIT,
        || async {
            let s = api.get("after-restart").await.ok()?;
            (!ingress(&s).is_empty()).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let list = svcs.list(&ListParams::default()).await.expect("list");
    let mut moved = 0;
    for s in &list.items {
        let name = s.metadata.name.clone().unwrap_or_default();
        if let Some((ips, rv)) = before.get(&name)
            && (*ips != ingress(s) || Some(rv) != s.metadata.resource_version.as_ref())
        {
            moved += 1;
        }
    }
    assert_eq!(moved, 0, "services changed by the restarted controller");
    ctl.stop().await.expect("stop");
}

#[tokio::test]
async fn survives_dropped_watches_and_server_errors() {
    let (server, client) = cluster().await;
    create_pool(&client, "lan", &["10.200.50.0/28"]).await;
    let ctl = controller(&server, &client).await;
    create_service(&client, &lb_service("one", 80, &[])).await;
    wait_ingress(&client, "one", &["10.200.50.0"]).await;

    server.faults().drop_watches();
    create_service(&client, &lb_service("two", 80, &[])).await;
    wait_ingress(&client, "two", &["10.200.50.1"]).await;

    // Every request fails for a while (watches re-established, status writes retried).
    server
        .faults()
        .fail_next(30, Fault::InternalError, FaultScope::All);
    server.faults().drop_watches();
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let create = async {
        loop {
            match svcs
                .create(&PostParams::default(), &lb_service("three", 80, &[]))
                .await
            {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 500 => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("create: {e}"),
            }
        }
    };
    create.await;
    wait_ingress(&client, "three", &["10.200.50.2"]).await;
    assert!(
        server.faults().faults_served() >= 30,
        "the faults were really served"
    );
    ctl.stop().await.expect("stop");
}

#[tokio::test]
async fn two_replicas_only_the_leader_writes_and_the_other_takes_over() {
    let (server, client) = cluster().await;
    create_pool(&client, "lan", &["10.200.50.0/28"]).await;
    let a = run::start(
        as_controller(&server, &client).await,
        options("replica-a", true),
    )
    .await
    .expect("a");
    let b = run::start(
        as_controller(&server, &client).await,
        options("replica-b", true),
    )
    .await
    .expect("b");
    let leader_of = |h: &Handle| {
        let addr = h.addr;
        async move {
            let (_, body) = http_get(addr, "/api/v1/status").await.ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            v["leader"].as_bool()
        }
    };
    let (first, second) = eventually("exactly one leader", WAIT, || async {
        match (leader_of(&a).await?, leader_of(&b).await?) {
            (true, false) => Some(("replica-a", "replica-b")),
            (false, true) => Some(("replica-b", "replica-a")),
            _ => None,
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    create_service(&client, &lb_service("web", 80, &[])).await;
    wait_ingress(&client, "web", &["10.200.50.0"]).await;
    let ev = wait_event(&client, "default", "IPAllocated", "10.200.50.0").await;
    assert_eq!(ev.reporting_instance.as_deref(), Some(first));
    for e in events(&client, "default").await {
        assert_ne!(
            e.reporting_instance.as_deref(),
            Some(second),
            "follower wrote {e:?}"
        );
    }

    // Stop the leader: the other replica takes the lease over once it expires.
    let (leader, follower) = if first == "replica-a" { (a, b) } else { (b, a) };
    leader.stop().await.expect("stop leader");
    create_service(&client, &lb_service("api", 80, &[])).await;
    wait_ingress(&client, "api", &["10.200.50.1"]).await;
    let ev = wait_event(&client, "default", "IPAllocated", "10.200.50.1").await;
    assert_eq!(ev.reporting_instance.as_deref(), Some(second));
    wait_ingress(&client, "web", &["10.200.50.0"]).await;
    follower.stop().await.expect("stop");
}

#[tokio::test]
async fn other_classes_are_never_touched_and_require_class_is_honoured() {
    let (server, client) = cluster().await;
    create_pool(&client, "lan", &["10.200.50.0/28"]).await;
    let mut opts = options("class-controller", false);
    opts.class_policy = ferrolb_api::service::ClassPolicy::OursOnly;
    let ctl = run::start(as_controller(&server, &client).await, opts)
        .await
        .expect("start");
    let mut ours = lb_service("ours", 80, &[]);
    let mut theirs = lb_service("theirs", 80, &[]);
    let unset = lb_service("unset", 80, &[]);
    if let Some(spec) = ours.spec.as_mut() {
        spec.load_balancer_class = Some("ferrolb.io/ferrolb".into());
    }
    if let Some(spec) = theirs.spec.as_mut() {
        spec.load_balancer_class = Some("example.com/other".into());
    }
    create_service(&client, &theirs).await;
    create_service(&client, &unset).await;
    create_service(&client, &ours).await;
    wait_ingress(&client, "ours", &["10.200.50.0"]).await;
    // A later pass has run (it served "ours"); the others are untouched.
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    for name in ["theirs", "unset"] {
        let svc = api.get(name).await.expect("get");
        assert!(ingress(&svc).is_empty(), "{name} was given an address");
        let (code, _) = status_json(&ctl, &format!("/api/v1/services/default/{name}")).await;
        assert_eq!(code, 404, "{name} is not ours");
    }
    ctl.stop().await.expect("stop");
}
