//! MetalLB's controller tests (controller/controller_test.go) and its e2e assignment tests
//! (e2etest/l2tests/assignment.go) replayed through the in-memory API server and the real
//! controller, configured as a MetalLB user configures it: MetalLB's CRDs
//! (`e2e/testdata/metallb/crds/`), `metallb.io/v1beta1` IPAddressPools in `metallb-system`
//! (read by the controller's default `--config-groups auto`) and MetalLB's annotations.
//!
//! Each case names the MetalLB test and case it replays. MetalLB's unit tests feed Services
//! with a given `spec.clusterIPs`; the in-memory API server is a dual-stack cluster that
//! allocates cluster IPs itself, so a case states the families those cluster IPs imply
//! (`ipFamilies`/`ipFamilyPolicy`). Cases that only exist in a single-stack cluster, or for a
//! Service without a cluster IP, cannot be expressed through an API server and are listed
//! in `NOT_REPRODUCIBLE` with the reason.

use ferrolb_controller::run::{self, Handle, RunOptions};
use ferrolb_e2e::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use ferrolb_e2e::fixtures::{ensure_namespace, eventually, http_get, install_crds};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::pinned_kind;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use std::time::Duration;

const NS: &str = "ferrolb-system";
const METALLB_NS: &str = "metallb-system";
const WAIT: Duration = Duration::from_secs(20);
/// How long a Service must keep no address (MetalLB's e2e tests use `Consistently`).
const QUIET: Duration = Duration::from_millis(1500);

macro_rules! metallb_crd {
    ($file:literal) => {
        include_str!(concat!("../testdata/metallb/crds/", $file))
    };
}

/// MetalLB's CRDs, as its repository's `config/crd/bases/` has them.
const METALLB_CRDS: [&str; 9] = [
    metallb_crd!("metallb.io_bfdprofiles.yaml"),
    metallb_crd!("metallb.io_bgpadvertisements.yaml"),
    metallb_crd!("metallb.io_bgppeers.yaml"),
    metallb_crd!("metallb.io_communities.yaml"),
    metallb_crd!("metallb.io_configurationstates.yaml"),
    metallb_crd!("metallb.io_ipaddresspools.yaml"),
    metallb_crd!("metallb.io_l2advertisements.yaml"),
    metallb_crd!("metallb.io_servicebgpstatuses.yaml"),
    metallb_crd!("metallb.io_servicel2statuses.yaml"),
];

/// Applies every document of a YAML manifest (server-side apply), as `kubectl apply` does.
async fn apply_yaml(client: &Client, text: &str) {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).expect("YAML");
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let obj: DynamicObject = serde_json::from_value(doc).expect("object");
        let types = obj.types.clone().expect("apiVersion and kind");
        let gvk = GroupVersionKind::try_from(&types).expect("GVK");
        let (resource, caps) = pinned_kind(client, &gvk).await.expect("kind served");
        let api: Api<DynamicObject> = match caps.scope {
            kube::discovery::Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                obj.namespace().as_deref().unwrap_or("default"),
                &resource,
            ),
            kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let params = PatchParams::apply("metallb-user").force();
        api.patch(&obj.name_any(), &params, &Patch::Apply(&obj))
            .await
            .unwrap_or_else(|e| panic!("apply {}/{}: {e}", gvk.kind, obj.name_any()));
    }
}

/// Deletes a `metallb.io` IPAddressPool from `metallb-system`.
async fn delete_pool(client: &Client, name: &str) {
    let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", "IPAddressPool");
    let (resource, _) = pinned_kind(client, &gvk).await.expect("kind served");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), METALLB_NS, &resource);
    api.delete(name, &DeleteParams::default())
        .await
        .expect("delete pool");
}

/// One `metallb.io/v1beta1` IPAddressPool in `metallb-system`, as YAML.
fn pool(name: &str, addresses: &[&str], extra: &str) -> String {
    format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: {name}\n  \
         namespace: {METALLB_NS}\nspec:\n  addresses: [{}]\n{extra}---\n",
        addresses.join(", ")
    )
}

/// An API server with ferrolb's and MetalLB's CRDs, MetalLB's namespace and `config` applied.
struct Cluster {
    _server: ApiServerHandle,
    client: Client,
}

impl Cluster {
    async fn start(config: &str) -> Self {
        let server = ApiServer::start(ApiServerOptions::default())
            .await
            .expect("start apiserver");
        let client = server.client().expect("client");
        install_crds(&client).await.expect("install ferrolb CRDs");
        for crd in METALLB_CRDS {
            apply_yaml(&client, crd).await;
        }
        for ns in [NS, METALLB_NS, "test-ns1", "test-ns2"] {
            ensure_namespace(&client, ns).await.expect("namespace");
        }
        if !config.is_empty() {
            apply_yaml(&client, config).await;
        }
        Self {
            _server: server,
            client,
        }
    }

    /// The controller with its defaults (`--config-groups auto`, `--metallb-namespace
    /// metallb-system`), without leader election.
    async fn controller(&self) -> Handle {
        let mut o = RunOptions::new(NS, "test-controller");
        o.listen = "127.0.0.1:0".parse().expect("addr");
        o.leader_election = false;
        let ctl = run::start(self.client.clone(), o)
            .await
            .expect("start controller");
        eventually("a ready controller", WAIT, || async {
            (http_get(ctl.addr, "/readyz").await.ok()?.0 == 200).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        ctl
    }

    fn services(&self, ns: &str) -> Api<Service> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn create(&self, svc: Value) {
        let svc: Service = serde_json::from_value(svc).expect("Service");
        let ns = svc.namespace().unwrap_or_else(|| "default".into());
        self.services(&ns)
            .create(&PostParams::default(), &svc)
            .await
            .unwrap_or_else(|e| panic!("create {}: {e}", svc.name_any()));
    }

    /// Writes `status.loadBalancer.ingress` as a previous owner left it (`host:NAME` entries
    /// are hostnames).
    async fn write_status(&self, ns: &str, name: &str, ingress: &[&str]) {
        let ingress: Vec<Value> = ingress
            .iter()
            .map(|i| match i.strip_prefix("host:") {
                Some(h) => json!({ "hostname": h }),
                None => json!({ "ip": i }),
            })
            .collect();
        let patch = json!({ "status": { "loadBalancer": { "ingress": ingress } } });
        self.services(ns)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("status of {name}: {e}"));
    }

    async fn patch(&self, ns: &str, name: &str, patch: Value) {
        self.services(ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("patch {name}: {e}"));
    }

    async fn ingress(&self, ns: &str, name: &str) -> Vec<String> {
        let svc = self.services(ns).get(name).await.expect("get service");
        ferrolb_e2e::fixtures::ingress_ips(&svc)
            .iter()
            .map(|ip| ip.to_string())
            .collect()
    }

    async fn wait_ingress(&self, ns: &str, name: &str, want: &[&str]) {
        let what = format!("{ns}/{name} to have ingress {want:?}");
        let last = eventually(&what, WAIT, || async {
            let got = self.ingress(ns, name).await;
            (got == want).then_some(got)
        })
        .await;
        if let Err(e) = last {
            panic!("{e}; it has {:?}", self.ingress(ns, name).await);
        }
    }

    /// The Service keeps no address for a while.
    async fn stays_unassigned(&self, ns: &str, name: &str) {
        let deadline = tokio::time::Instant::now() + QUIET;
        while tokio::time::Instant::now() < deadline {
            let got = self.ingress(ns, name).await;
            assert!(got.is_empty(), "{ns}/{name} got {got:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The Service keeps exactly `ips` for a while.
    async fn stays_unassigned_other_than(&self, ns: &str, name: &str, ips: &[&str]) {
        let deadline = tokio::time::Instant::now() + QUIET;
        while tokio::time::Instant::now() < deadline {
            let got = self.ingress(ns, name).await;
            assert_eq!(got, ips, "{ns}/{name}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn warnings(&self, ns: &str, name: &str) -> Vec<String> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        api.list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
            })
            .map(|e| {
                format!(
                    "{}: {}",
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default()
                )
            })
            .collect()
    }

    async fn wait_warning(&self, ns: &str, name: &str) -> String {
        let what = format!("a Warning event about {ns}/{name}");
        eventually(&what, WAIT, || async {
            self.warnings(ns, name).await.into_iter().next()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A Service as a case describes it: `spec` is merged over a LoadBalancer Service with one
/// TCP port.
fn service(
    ns: &str,
    name: &str,
    annotations: &[(&str, &str)],
    labels: &[(&str, &str)],
    spec: Value,
) -> Value {
    let mut base = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": ns,
            "annotations": annotations.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        },
        "spec": {
            "type": "LoadBalancer",
            "selector": { "app": name },
            "ports": [{ "port": 80, "protocol": "TCP" }],
        },
    });
    json_patch::merge(&mut base["spec"], &spec);
    base
}

// ---------------------------------------------------------------------------------------------
// TestControllerMutation
// ---------------------------------------------------------------------------------------------

/// TestControllerMutation's pools as IPAddressPools. MetalLB's test builds them in memory,
/// past its validation; `pool5` (1.2.3.0/31 and 1000::/127) overlaps `pool1` and `pool3`,
/// which MetalLB's configuration rejects (internal/config/config.go: "overlaps with already
/// defined CIDR"), so a cluster holds either `pool1` and `pool3` (`Pools::Main`) or `pool5`
/// in their place (`Pools::DualStack`). Both give the same addresses.
fn mutation_pools(pools: Pools) -> String {
    let no_auto = "  autoAssign: false\n";
    let ns1 = |prio: u32| {
        format!("  serviceAllocation:\n    priority: {prio}\n    namespaces: [test-ns1]\n")
    };
    let team = |prio: u32| {
        format!(
            "  serviceAllocation:\n    priority: {prio}\n    serviceSelectors:\n    \
             - matchLabels: {{team: metallb}}\n"
        )
    };
    let ns1_team = |prio: u32| {
        format!(
            "  serviceAllocation:\n    priority: {prio}\n    namespaces: [test-ns1]\n    \
             serviceSelectors:\n    - matchLabels: {{team: metallb}}\n"
        )
    };
    let mut y = String::new();
    match pools {
        Pools::Main => {
            y += &pool("pool1", &["1.2.3.0/31"], "");
            y += &pool("pool3", &["1000::/127"], "");
        }
        Pools::DualStack => y += &pool("pool5", &["1.2.3.0/31", "1000::/127"], ""),
    }
    y += &pool("pool2", &["3.4.5.6/32"], no_auto);
    y += &pool("pool4", &["2000::1/128"], no_auto);
    y += &pool("pool6", &["7.8.9.0/31"], &ns1(10));
    y += &pool("pool7", &["10.11.12.0/31"], &ns1(11));
    y += &pool("pool8", &["13.14.15.0/31"], &team(9));
    y += &pool(
        "pool9",
        &["16.17.18.0/31"],
        "  serviceAllocation:\n    namespaces: [test-ns2]\n",
    );
    y += &pool("pool10", &["19.20.21.0/31"], &team(8));
    y += &pool("pool11", &["22.23.24.0/31"], &ns1_team(8));
    y += &pool("pool12", &["25.26.27.0/31"], &ns1_team(5));
    y
}

#[derive(Clone, Copy, Debug)]
enum Pools {
    Main,
    DualStack,
}

/// What MetalLB's case expects.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// These addresses, in this order, and no warning event.
    Ips(&'static [&'static str]),
    /// No address and a warning event (MetalLB's `wantErr`).
    Warning,
    /// No address and no warning event (MetalLB's `want: nil`, no `wantErr`).
    Nothing,
    /// ferrolb decides otherwise: what it does, what MetalLB does, and why.
    Differs {
        ferrolb: &'static Want,
        metallb: &'static str,
        why: &'static str,
    },
}

struct MutationCase {
    /// MetalLB's `desc`.
    desc: &'static str,
    pools: Pools,
    ns: &'static str,
    labels: &'static [(&'static str, &'static str)],
    annotations: &'static [(&'static str, &'static str)],
    /// Merged into the Service's `spec`, as JSON text.
    spec: &'static str,
    /// `status.loadBalancer.ingress` before the controller sees the Service.
    status: &'static [&'static str],
    want: Want,
}

const IPS: &str = "metallb.io/loadBalancerIPs";
const POOL: &str = "metallb.io/address-pool";
/// MetalLB's `ClusterIPs: ["1.2.3.4"]`.
const V4: &str = r#"{"ipFamilies": ["IPv4"]}"#;
/// MetalLB's `ClusterIPs: ["3000::1"]`.
const V6: &str = r#"{"ipFamilies": ["IPv6"]}"#;
const DUAL_REQUIRE: &str =
    r#"{"ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack"}"#;
const DUAL_PREFER: &str =
    r#"{"ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack"}"#;

const fn case(desc: &'static str, spec: &'static str, want: Want) -> MutationCase {
    MutationCase {
        desc,
        pools: Pools::Main,
        ns: "default",
        labels: &[],
        annotations: &[],
        spec,
        status: &[],
        want,
    }
}

/// TestControllerMutation's cases (MetalLB controller/controller_test.go), in its order.
/// MetalLB runs them one after another on one Service; each replaces the previous one, so
/// each is a Service alone in a fresh cluster here.
const MUTATION: &[MutationCase] = &[
    case(
        "simple non-LoadBalancer",
        r#"{"type": "ClusterIP", "ipFamilies": ["IPv4"]}"#,
        Want::Nothing,
    ),
    case("simple LoadBalancer", V4, Want::Ips(&["1.2.3.0"])),
    case(
        "request specific IP",
        r#"{"ipFamilies": ["IPv4"], "loadBalancerIP": "1.2.3.1"}"#,
        Want::Ips(&["1.2.3.1"]),
    ),
    MutationCase {
        annotations: &[(IPS, "1.2.3.1")],
        ..case(
            "request specific IP via custom annotation",
            V4,
            Want::Ips(&["1.2.3.1"]),
        )
    },
    MutationCase {
        annotations: &[(IPS, "1.2.3.1")],
        ..case(
            "request IP from both svc.spec.LoadBalancerIP and custom annotation",
            r#"{"ipFamilies": ["IPv4"], "loadBalancerIP": "1.2.3.2"}"#,
            Want::Warning,
        )
    },
    case(
        "request invalid IP",
        r#"{"ipFamilies": ["IPv4"], "loadBalancerIP": "please sir may I have an IP address thank you"}"#,
        Want::Warning,
    ),
    MutationCase {
        annotations: &[(IPS, "1.2.3.1"), (POOL, "pool2")],
        ..case(
            "incompatible ip and address pool annotations",
            V4,
            Want::Warning,
        )
    },
    MutationCase {
        annotations: &[(IPS, "please sir may I have an IP address thank you")],
        ..case(
            "request invalid IP via custom annotation",
            V4,
            Want::Warning,
        )
    },
    MutationCase {
        annotations: &[(IPS, "1.2.3.1,1.2.3.2")],
        ..case(
            "request two IPs from same ip family via custom annotation",
            V4,
            Want::Warning,
        )
    },
    MutationCase {
        status: &["1.2.3.1"],
        ..case(
            "request infeasible IP",
            r#"{"ipFamilies": ["IPv4"], "loadBalancerIP": "1.2.3.4"}"#,
            Want::Warning,
        )
    },
    MutationCase {
        annotations: &[(POOL, "pool1")],
        ..case("request IP from specific pool", V4, Want::Ips(&["1.2.3.0"]))
    },
    MutationCase {
        annotations: &[(POOL, "pool2")],
        status: &["1.2.3.0"],
        ..case(
            "switch to a different specific pool",
            V4,
            Want::Ips(&["3.4.5.6"]),
        )
    },
    MutationCase {
        annotations: &[(POOL, "does-not-exist")],
        ..case("unknown pool requested", V4, Want::Warning)
    },
    MutationCase {
        status: &["2.3.4.5"],
        ..case("invalid IP assigned", V4, Want::Ips(&["1.2.3.0"]))
    },
    MutationCase {
        status: &["host:foo.bar.local", "10.10.10.10"],
        ..case("invalid ingress state", V4, Want::Ips(&["1.2.3.0"]))
    },
    MutationCase {
        status: &["1.2.3.0"],
        ..case(
            "former LoadBalancer, now NodePort",
            r#"{"type": "NodePort", "ipFamilies": ["IPv4"]}"#,
            Want::Nothing,
        )
    },
    case(
        "request layer2 service",
        r#"{"ipFamilies": ["IPv4"], "loadBalancerIP": "3.4.5.6"}"#,
        Want::Ips(&["3.4.5.6"]),
    ),
    case(
        "Layer2 service with local traffic policy",
        r#"{"ipFamilies": ["IPv4"], "loadBalancerIP": "3.4.5.6", "externalTrafficPolicy": "Local"}"#,
        Want::Ips(&["3.4.5.6"]),
    ),
    case(
        "request IP from wrong ip-family (ipv4)",
        r#"{"ipFamilies": ["IPv6"], "loadBalancerIP": "1.2.3.1"}"#,
        Want::Warning,
    ),
    MutationCase {
        annotations: &[(IPS, "1.2.3.1")],
        ..case(
            "request IP from wrong ip-family (ipv4) via custom annotation",
            V6,
            Want::Warning,
        )
    },
    case(
        "request IP from wrong ip-family (ipv6)",
        r#"{"ipFamilies": ["IPv4"], "loadBalancerIP": "1000::"}"#,
        Want::Warning,
    ),
    MutationCase {
        annotations: &[(IPS, "1000::")],
        ..case(
            "request IP from wrong ip-family (ipv6) via custom annotation",
            V4,
            Want::Warning,
        )
    },
    MutationCase {
        status: &["1000::"],
        ..case(
            "IP from wrong ip-family (ipv6) assigned",
            V4,
            Want::Ips(&["1.2.3.0"]),
        )
    },
    MutationCase {
        status: &["1.2.3.0"],
        ..case(
            "IP from wrong ip-family (ipv4) assigned",
            V6,
            Want::Ips(&["1000::"]),
        )
    },
    MutationCase {
        pools: Pools::DualStack,
        ..case(
            "simple dual-stack LoadBalancer",
            DUAL_REQUIRE,
            Want::Ips(&["1.2.3.0", "1000::"]),
        )
    },
    MutationCase {
        pools: Pools::DualStack,
        annotations: &[(POOL, "pool5")],
        ..case(
            "request IPs from specific pool",
            DUAL_REQUIRE,
            Want::Ips(&["1.2.3.0", "1000::"]),
        )
    },
    MutationCase {
        pools: Pools::DualStack,
        ..case(
            "simple dual-stack LoadBalancer with PreferDualStack policy",
            DUAL_PREFER,
            Want::Ips(&["1.2.3.0", "1000::"]),
        )
    },
    // MetalLB's cluster is single-stack here; in this dual-stack cluster the Service has both
    // families, and the namespace's pools (IPv4 only, tried before the dual-stack pool5)
    // still give it the one address MetalLB's case expects.
    MutationCase {
        pools: Pools::DualStack,
        ns: "test-ns1",
        ..case(
            "single-stack LoadBalancer with PreferDualStack policy",
            DUAL_PREFER,
            Want::Ips(&["7.8.9.0"]),
        )
    },
    MutationCase {
        pools: Pools::DualStack,
        annotations: &[(POOL, "pool5")],
        ..case(
            "request IPs from dualstack pool with PreferDualStack policy",
            DUAL_PREFER,
            Want::Ips(&["1.2.3.0", "1000::"]),
        )
    },
    MutationCase {
        annotations: &[(POOL, "pool1")],
        ..case(
            "request IP from single-stack ipv4 pool with PreferDualStack policy",
            DUAL_PREFER,
            Want::Ips(&["1.2.3.0"]),
        )
    },
    // MetalLB's cluster IPs are ["1000::1"]: IPv6 first; this cluster adds IPv4.
    MutationCase {
        annotations: &[(POOL, "pool3")],
        ..case(
            "request IP from single-stack ipv6 pool with PreferDualStack policy",
            r#"{"ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "PreferDualStack"}"#,
            Want::Ips(&["1000::"]),
        )
    },
    case(
        "request specific loadbalancer IP with dual-stack",
        r#"{"ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack", "loadBalancerIP": "1.2.3.1"}"#,
        Want::Warning,
    ),
    MutationCase {
        annotations: &[(IPS, "1.2.3.1")],
        ..case(
            "request specific loadbalancer IPv4 address via custom annotation for dual-stack config",
            DUAL_REQUIRE,
            Want::Warning,
        )
    },
    MutationCase {
        pools: Pools::DualStack,
        annotations: &[(IPS, "1.2.3.0,1000::")],
        ..case(
            "request dual-stack loadbalancer IPs via custom annotation",
            DUAL_REQUIRE,
            Want::Ips(&["1.2.3.0", "1000::"]),
        )
    },
    MutationCase {
        pools: Pools::DualStack,
        status: &["host:foo.bar.local", "1000::"],
        ..case(
            "request dual-stack loadbalancer with invalid ingress",
            r#"{"ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "RequireDualStack"}"#,
            Want::Differs {
                ferrolb: &Want::Ips(&["1000::", "1.2.3.0"]),
                metallb: "[1.2.3.0, 1000::]: MetalLB writes IPv4 first whatever the order of \
                          the Service's families",
                why: "ferrolb writes the addresses in the order of spec.ipFamilies (the \
                      Service's primary family first); the set is the same",
            },
        )
    },
    MutationCase {
        pools: Pools::DualStack,
        annotations: &[(IPS, "1.2.3.0,1000::")],
        ..case(
            "request dual-stack loadbalancer IPs via custom annotation in a single stack cluster",
            V4,
            Want::Warning,
        )
    },
    MutationCase {
        ns: "test-ns1",
        ..case(
            "request IP for service from namespace specific ip pool",
            V4,
            Want::Ips(&["7.8.9.0"]),
        )
    },
    MutationCase {
        ns: "test-ns2",
        ..case(
            "request IP for service from no priority namespace specific ip pool",
            V4,
            Want::Ips(&["16.17.18.0"]),
        )
    },
    MutationCase {
        labels: &[("team", "metallb")],
        ..case(
            "request IP for service from service label specific ip pool",
            V4,
            Want::Ips(&["19.20.21.0"]),
        )
    },
    MutationCase {
        ns: "test-ns1",
        labels: &[("team", "metallb")],
        ..case(
            "request IP for service from ip pool having both namespace and service label",
            V4,
            Want::Ips(&["25.26.27.0"]),
        )
    },
    MutationCase {
        status: &["1.2.3.0", "1.2.3.1", "1.2.3.2"],
        ..case(
            "simple LoadBalancer, ips already assigned but can't determine family",
            V4,
            Want::Differs {
                ferrolb: &Want::Ips(&["1.2.3.0"]),
                metallb: "[1.2.3.0] and a warning event about the unreadable status",
                why: "ferrolb keeps the first address of the family silently; the address \
                      is the same, only the warning is missing",
            },
        )
    },
];

/// TestControllerMutation cases with no equivalent through an API server.
const NOT_REPRODUCIBLE: &[(&str, &str)] = &[
    ("deleted balancer", "no Service at all: nothing to observe"),
    (
        "No ClusterIP",
        "an API server allocates a cluster IP to every LoadBalancer Service",
    ),
    (
        "request IPs from dualstack pool with PreferDualStack policy but single stack clusterip",
        "a dual-stack cluster gives a PreferDualStack Service both families",
    ),
    (
        "request IPs from dualstack pool with RequireDualStack policy but single stack clusterip",
        "an API server gives a RequireDualStack Service both families or rejects it",
    ),
];

async fn run_mutation_case(c: &'static MutationCase) {
    let name = "test";
    let cluster = Cluster::start(&mutation_pools(c.pools)).await;
    let spec: Value = serde_json::from_str(c.spec).expect("case spec");
    cluster
        .create(service(c.ns, name, c.annotations, c.labels, spec))
        .await;
    if !c.status.is_empty() {
        cluster.write_status(c.ns, name, c.status).await;
    }
    let ctl = cluster.controller().await;
    expect(&cluster, c.ns, name, c.desc, &c.want).await;
    ctl.stop().await.expect("stop");
}

async fn expect(cluster: &Cluster, ns: &str, name: &str, desc: &str, want: &Want) {
    match *want {
        Want::Ips(ips) => {
            cluster.wait_ingress(ns, name, ips).await;
            let w = cluster.warnings(ns, name).await;
            assert!(w.is_empty(), "{desc}: unexpected warnings {w:?}");
        }
        Want::Warning => {
            cluster.wait_warning(ns, name).await;
            cluster.wait_ingress(ns, name, &[]).await;
            cluster.stays_unassigned(ns, name).await;
        }
        Want::Nothing => {
            cluster.wait_ingress(ns, name, &[]).await;
            cluster.stays_unassigned(ns, name).await;
            let w = cluster.warnings(ns, name).await;
            assert!(w.is_empty(), "{desc}: unexpected warnings {w:?}");
        }
        Want::Differs { ferrolb, .. } => Box::pin(expect(cluster, ns, name, desc, ferrolb)).await,
    }
}

/// MetalLB controller/controller_test.go TestControllerMutation, every case it has that a
/// Service in a cluster can express (see `NOT_REPRODUCIBLE` for the others).
#[tokio::test]
async fn controller_mutation_cases() {
    assert_eq!(MUTATION.len() + NOT_REPRODUCIBLE.len(), 45);
    let mut failed = Vec::new();
    for c in MUTATION {
        // Each case in its own task, so one failure still lets every other case report.
        if let Err(e) = tokio::spawn(run_mutation_case(c)).await {
            failed.push(format!("TestControllerMutation/{}: {e}", c.desc));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    for c in MUTATION {
        if let Want::Differs { metallb, why, .. } = c.want {
            eprintln!("differs: {}: MetalLB: {metallb}; ferrolb: {why}", c.desc);
        }
    }
    for (desc, why) in NOT_REPRODUCIBLE {
        eprintln!("not reproducible: {desc}: {why}");
    }
}

// ---------------------------------------------------------------------------------------------
// TestControllerConfig, TestDeleteRecyclesIP, TestControllerReassign,
// TestControllerDualStackConfig
// ---------------------------------------------------------------------------------------------

/// MetalLB controller/controller_test.go TestControllerConfig: without any pool the Service
/// gets nothing; once a pool is applied it gets the pool's first address; deleting the pool
/// clears it (ferrolb adds a `PoolInUse` warning). MetalLB's first step (no configuration
/// loaded at all: no warning) has no equivalent here: the controller reads the cluster's
/// configuration before its first pass, and an empty set of pools is a configuration, for
/// which MetalLB's allocator fails with a warning too (controller/service.go allocateIPs).
#[tokio::test]
async fn controller_config() {
    let cluster = Cluster::start("").await;
    cluster
        .create(service(
            "default",
            "test",
            &[],
            &[],
            json!({"ipFamilies": ["IPv4"]}),
        ))
        .await;
    let ctl = cluster.controller().await;
    let warning = cluster.wait_warning("default", "test").await;
    assert!(warning.starts_with("AllocationFailed: "), "{warning}");
    cluster.stays_unassigned("default", "test").await;

    apply_yaml(&cluster.client, &pool("default", &["1.2.3.0/24"], "")).await;
    cluster.wait_ingress("default", "test", &["1.2.3.0"]).await;

    delete_pool(&cluster.client, "default").await;
    eventually("a PoolInUse warning about default/test", WAIT, || async {
        let w = cluster.warnings("default", "test").await;
        w.iter().any(|w| w.starts_with("PoolInUse: ")).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    cluster.wait_ingress("default", "test", &[]).await;
    ctl.stop().await.expect("stop");
}

/// MetalLB controller/controller_test.go TestDeleteRecyclesIP: a /32 pool; the second
/// Service gets nothing and a warning; deleting the first gives its address to the second.
#[tokio::test]
async fn delete_recycles_ip() {
    let cluster = Cluster::start(&pool("default", &["1.2.3.0/32"], "")).await;
    let ctl = cluster.controller().await;
    cluster
        .create(service(
            "default",
            "test",
            &[],
            &[],
            json!({"ipFamilies": ["IPv4"]}),
        ))
        .await;
    cluster.wait_ingress("default", "test", &["1.2.3.0"]).await;
    cluster
        .create(service(
            "default",
            "test2",
            &[],
            &[],
            json!({"ipFamilies": ["IPv4"]}),
        ))
        .await;
    cluster.wait_warning("default", "test2").await;
    assert!(cluster.ingress("default", "test2").await.is_empty());
    cluster
        .services("default")
        .delete("test", &DeleteParams::default())
        .await
        .expect("delete");
    cluster.wait_ingress("default", "test2", &["1.2.3.0"]).await;
    ctl.stop().await.expect("stop");
}

/// MetalLB controller/controller_test.go TestControllerReassign: adding a pool moves
/// nothing; deleting the pool in use gives the Service an address from the other one.
#[tokio::test]
async fn controller_reassign() {
    let default = pool("default", &["1.2.3.0/24", "1000::1/127"], "");
    let cluster = Cluster::start(&default).await;
    let ctl = cluster.controller().await;
    cluster
        .create(service(
            "default",
            "test",
            &[],
            &[],
            json!({"ipFamilies": ["IPv4"]}),
        ))
        .await;
    cluster.wait_ingress("default", "test", &["1.2.3.0"]).await;
    apply_yaml(&cluster.client, &pool("second", &["4.5.6.0/24"], "")).await;
    // The new pool loaded (it has a status) and the Service kept its address.
    eventually("pool second to be counted", WAIT, || async {
        let (_, body) = http_get(ctl.addr, "/api/v1/status").await.ok()?;
        body.contains("\"second\"").then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    cluster
        .stays_unassigned_other_than("default", "test", &["1.2.3.0"])
        .await;
    delete_pool(&cluster.client, "default").await;
    cluster.wait_ingress("default", "test", &["4.5.6.0"]).await;
    ctl.stop().await.expect("stop");
}

/// MetalLB controller/controller_test.go TestControllerDualStackConfig: nothing without a
/// pool (with the warning of an empty configuration, as in `controller_config`), then a
/// RequireDualStack Service gets one address of each family from the pool.
#[tokio::test]
async fn controller_dual_stack_config() {
    let cluster = Cluster::start("").await;
    cluster
        .create(service(
            "default",
            "test",
            &[],
            &[],
            json!({
                "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack"
            }),
        ))
        .await;
    let ctl = cluster.controller().await;
    let warning = cluster.wait_warning("default", "test").await;
    assert!(warning.starts_with("AllocationFailed: "), "{warning}");
    cluster.stays_unassigned("default", "test").await;
    apply_yaml(
        &cluster.client,
        &pool("default", &["1.2.3.0/24", "1000::1/127"], ""),
    )
    .await;
    cluster
        .wait_ingress("default", "test", &["1.2.3.0", "1000::"])
        .await;
    ctl.stop().await.expect("stop");
}

// ---------------------------------------------------------------------------------------------
// e2etest/l2tests/assignment.go
// ---------------------------------------------------------------------------------------------

/// MetalLB e2etest/l2tests/assignment.go "should remove the ip from a service assign it to a
/// free one when" (entries "changing the service type to clusterIP" and "deleting the
/// service"): a one-address pool, a second Service waits; freeing the address gives it to
/// the second.
#[tokio::test]
async fn freed_ip_goes_to_the_waiting_service() {
    for delete in [false, true] {
        let cluster = Cluster::start(&pool("singleip-pool", &["10.200.60.1/32"], "")).await;
        let ctl = cluster.controller().await;
        cluster
            .create(service("default", "singleip", &[], &[], json!({})))
            .await;
        cluster
            .wait_ingress("default", "singleip", &["10.200.60.1"])
            .await;
        cluster
            .create(service("default", "singleip1", &[], &[], json!({})))
            .await;
        cluster.stays_unassigned("default", "singleip1").await;
        if delete {
            cluster
                .services("default")
                .delete("singleip", &DeleteParams::default())
                .await
                .expect("delete");
        } else {
            cluster
                .patch(
                    "default",
                    "singleip",
                    json!({"spec": {"type": "ClusterIP"}}),
                )
                .await;
            cluster.wait_ingress("default", "singleip", &[]).await;
        }
        cluster
            .wait_ingress("default", "singleip1", &["10.200.60.1"])
            .await;
        ctl.stop().await.expect("stop");
    }
}

/// MetalLB e2etest/l2tests/assignment.go "should preseve the same external ip after
/// controller restart": two one-address pools, four Services; after each restart the first
/// two keep their addresses and the others still have none.
#[tokio::test]
async fn same_ips_after_controller_restarts() {
    let config = pool(
        "assignment-controller-reset-test-pool",
        &["10.200.61.100/32", "10.200.62.200/32"],
        "",
    );
    let cluster = Cluster::start(&config).await;
    let mut ctl = cluster.controller().await;
    for name in ["service-a", "service-b"] {
        cluster
            .create(service("default", name, &[], &[], json!({})))
            .await;
    }
    cluster
        .wait_ingress("default", "service-a", &["10.200.61.100"])
        .await;
    cluster
        .wait_ingress("default", "service-b", &["10.200.62.200"])
        .await;
    for name in ["service-c", "service-d"] {
        cluster
            .create(service("default", name, &[], &[], json!({})))
            .await;
        cluster.wait_warning("default", name).await;
    }
    for _ in 0..3 {
        ctl.stop().await.expect("stop");
        ctl = cluster.controller().await;
        cluster
            .stays_unassigned_other_than("default", "service-a", &["10.200.61.100"])
            .await;
        assert_eq!(
            cluster.ingress("default", "service-b").await,
            ["10.200.62.200"]
        );
        assert!(cluster.ingress("default", "service-c").await.is_empty());
        assert!(cluster.ingress("default", "service-d").await.is_empty());
    }
    ctl.stop().await.expect("stop");
}
