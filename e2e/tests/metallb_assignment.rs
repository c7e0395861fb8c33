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
    ferrolb_e2e::cluster::apply_manifest(client.clone(), text.to_string(), "metallb-user")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
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
    server: ApiServerHandle,
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
        Self { server, client }
    }

    /// The controller with its defaults (`--config-groups auto`, `--metallb-namespace
    /// metallb-system`), without leader election.
    async fn controller(&self) -> Handle {
        let mut o = RunOptions::new(NS, "test-controller");
        o.listen = "127.0.0.1:0".parse().expect("addr");
        // Plain HTTP on loopback: the test reads the HTTP API without a token.
        o.http = run::HttpSecurityArgs::insecure_loopback();
        o.leader_election = false;
        let token = ferrolb_e2e::credentials::deploy_rbac_token(self.client.clone(), "controller")
            .await
            .expect("the controller's token");
        let as_controller = self
            .server
            .client_with_token(&token)
            .expect("controller client");
        let ctl = run::start(as_controller, o)
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

/// The Service's addresses are in the pool's `addresses` (CIDRs or `first-last` ranges), as
/// MetalLB's e2e `config.ValidateIPInRange` checks.
async fn assert_in(cluster: &Cluster, ns: &str, name: &str, addresses: &[&str], count: usize) {
    let got = cluster.ingress(ns, name).await;
    assert_eq!(got.len(), count, "{ns}/{name} has {got:?}");
    for ip in &got {
        let ip: std::net::IpAddr = ip.parse().expect("ingress IP");
        let inside = addresses.iter().any(|a| match a.split_once('-') {
            Some((first, last)) => {
                let first: std::net::IpAddr = first.parse().expect("range start");
                let last: std::net::IpAddr = last.parse().expect("range end");
                first <= ip && ip <= last
            }
            None => a.parse::<ipnet::IpNet>().expect("CIDR").contains(&ip),
        });
        assert!(inside, "{ns}/{name}: {ip} is not in {addresses:?}");
    }
}

/// Waits until the Service has `count` addresses.
async fn wait_count(cluster: &Cluster, ns: &str, name: &str, count: usize) {
    let what = format!("{ns}/{name} to have {count} addresses");
    eventually(&what, WAIT, || async {
        (cluster.ingress(ns, name).await.len() == count).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Creates or relabels a Namespace with exactly `labels`.
async fn label_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) {
    use k8s_openapi::api::core::v1::Namespace;
    ensure_namespace(client, name).await.expect("namespace");
    let api: Api<Namespace> = Api::all(client.clone());
    let mut ns = api.get(name).await.expect("get namespace");
    ns.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    api.replace(name, &PostParams::default(), &ns)
        .await
        .expect("label namespace");
}

/// The namespaces MetalLB's l2 assignment tests run in (its `BeforeEach`): the test
/// namespace labelled `first-ns: "true"` and `test-namespace` labelled `second-ns: "true"`.
const TEST_NS: &str = "assignement";
const SECOND_NS: &str = "test-namespace";

async fn assignment_namespaces(client: &Client) {
    label_namespace(client, TEST_NS, &[("first-ns", "true")]).await;
    label_namespace(client, SECOND_NS, &[("second-ns", "true")]).await;
}

/// MetalLB e2etest/l2tests/assignment.go Context "IPV4 Assignment", It "should reconsider
/// services when sharing the ip and conditions change": two Services share the one address
/// of the pool (same sharing key and selector, different ports); one switching to
/// `externalTrafficPolicy: Local` loses the address, the other keeps it; both Local share it
/// again; a different selector on the first makes it lose the address; the same selector on
/// the second lets both share it again.
#[tokio::test]
async fn sharing_reconsidered_when_traffic_policy_or_selector_changes() {
    const SHARE: &str = "metallb.io/allow-shared-ip";
    let ip = "10.200.63.1";
    let cluster = Cluster::start(&pool("singleip-pool", &["10.200.63.1/32"], "")).await;
    let ctl = cluster.controller().await;
    let ns = TEST_NS;
    assignment_namespaces(&cluster.client).await;
    let cluster_policy = json!({"externalTrafficPolicy": "Cluster"});
    cluster
        .create(service(
            ns,
            "changesharing",
            &[(SHARE, "share")],
            &[],
            cluster_policy.clone(),
        ))
        .await;
    let mut second = cluster_policy;
    second["ports"] = json!([{ "port": 81, "protocol": "TCP" }]);
    second["selector"] = json!({ "app": "changesharing" });
    cluster
        .create(service(
            ns,
            "changesharing1",
            &[(SHARE, "share")],
            &[],
            second,
        ))
        .await;
    cluster.wait_ingress(ns, "changesharing", &[ip]).await;
    cluster.wait_ingress(ns, "changesharing1", &[ip]).await;

    let local = json!({"spec": {"externalTrafficPolicy": "Local"}});
    cluster.patch(ns, "changesharing1", local.clone()).await;
    cluster.wait_ingress(ns, "changesharing1", &[]).await;
    cluster
        .stays_unassigned_other_than(ns, "changesharing", &[ip])
        .await;

    cluster.patch(ns, "changesharing", local).await;
    cluster.wait_ingress(ns, "changesharing", &[ip]).await;
    cluster.wait_ingress(ns, "changesharing1", &[ip]).await;

    let foo = json!({"spec": {"selector": {"app": null, "foo": "bar"}}});
    cluster.patch(ns, "changesharing", foo.clone()).await;
    cluster.wait_ingress(ns, "changesharing", &[]).await;
    cluster
        .stays_unassigned_other_than(ns, "changesharing1", &[ip])
        .await;

    cluster.patch(ns, "changesharing1", foo).await;
    cluster.wait_ingress(ns, "changesharing", &[ip]).await;
    cluster.wait_ingress(ns, "changesharing1", &[ip]).await;
    ctl.stop().await.expect("stop");
}

/// MetalLB e2etest/l2tests/assignment.go Context "IPV4 removing pools" (its `BeforeEach`):
/// `test-ns-pool-1` for the test namespace at priority 20, `test-ns-pool-2` for everyone.
fn removing_pools_config() -> String {
    pool(
        "test-ns-pool-1",
        &["10.200.64.0/32"],
        &format!("  serviceAllocation:\n    priority: 20\n    namespaces: [{TEST_NS}]\n"),
    ) + &pool("test-ns-pool-2", &["10.200.65.0/32"], "")
}

/// MetalLB e2etest/l2tests/assignment.go Context "IPV4 removing pools", It "removes all
/// pools": the Service's address comes from the namespace's pool; once every pool is
/// deleted it has none.
#[tokio::test]
async fn removing_all_pools_removes_the_address() {
    let cluster = Cluster::start(&removing_pools_config()).await;
    assignment_namespaces(&cluster.client).await;
    let ctl = cluster.controller().await;
    cluster
        .create(service(TEST_NS, "svc-test-ns-pool-1", &[], &[], json!({})))
        .await;
    cluster
        .wait_ingress(TEST_NS, "svc-test-ns-pool-1", &["10.200.64.0"])
        .await;
    delete_pool(&cluster.client, "test-ns-pool-1").await;
    delete_pool(&cluster.client, "test-ns-pool-2").await;
    cluster
        .wait_ingress(TEST_NS, "svc-test-ns-pool-1", &[])
        .await;
    ctl.stop().await.expect("stop");
}

/// MetalLB e2etest/l2tests/assignment.go Context "IPV4 removing pools", It "reallocates svc
/// after deleting a pool": deleting the namespace's pool moves the Service to the other.
#[tokio::test]
async fn deleting_a_pool_reallocates_from_another() {
    let cluster = Cluster::start(&removing_pools_config()).await;
    assignment_namespaces(&cluster.client).await;
    let ctl = cluster.controller().await;
    cluster
        .create(service(TEST_NS, "svc-test-ns-pool-1", &[], &[], json!({})))
        .await;
    cluster
        .wait_ingress(TEST_NS, "svc-test-ns-pool-1", &["10.200.64.0"])
        .await;
    delete_pool(&cluster.client, "test-ns-pool-1").await;
    cluster
        .wait_ingress(TEST_NS, "svc-test-ns-pool-1", &["10.200.65.0"])
        .await;
    ctl.stop().await.expect("stop");
}

/// `spec.serviceAllocation` YAML for a pool.
fn allocation(body: &str) -> String {
    format!("  serviceAllocation:\n{body}")
}

type Labels = &'static [(&'static str, &'static str)];

/// One case of MetalLB e2etest/l2tests/assignment.go Context "IPV4 - Validate service
/// allocation in address pools": pools, then Services created one after another, each
/// waiting for its address (MetalLB's `CreateWithBackend` waits), each expected to get one
/// pool's only address.
struct AllocationCase {
    /// MetalLB's `It` text.
    it: &'static str,
    /// Labels of the test namespace besides MetalLB's `first-ns: "true"`.
    test_ns_labels: Labels,
    pools: String,
    /// Namespace, name, labels of each Service, and the address it must get.
    services: Vec<(&'static str, &'static str, Labels, &'static str)>,
}

async fn run_allocation_case(c: AllocationCase) -> (Cluster, Handle) {
    let cluster = Cluster::start("").await;
    assignment_namespaces(&cluster.client).await;
    let mut labels = vec![("first-ns", "true")];
    labels.extend_from_slice(c.test_ns_labels);
    label_namespace(&cluster.client, TEST_NS, &labels).await;
    apply_yaml(&cluster.client, &c.pools).await;
    let ctl = cluster.controller().await;
    for (ns, name, labels, ip) in &c.services {
        cluster
            .create(service(ns, name, &[], labels, json!({})))
            .await;
        let what = format!("{}: {ns}/{name} to get an address", c.it);
        let got = eventually(&what, WAIT, || async {
            let got = cluster.ingress(ns, name).await;
            (!got.is_empty()).then_some(got)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, [*ip], "{}: {ns}/{name}", c.it);
    }
    (cluster, ctl)
}

/// The first three Services of a case, in the test namespace, expected in the pool of
/// highest priority (10.200.66.10), the next one (10.200.66.5), the one without priority
/// (10.200.66.20).
fn three(
    names: [&'static str; 3],
    labels: Labels,
) -> Vec<(&'static str, &'static str, Labels, &'static str)> {
    vec![
        (TEST_NS, names[0], labels, "10.200.66.10"),
        (TEST_NS, names[1], labels, "10.200.66.5"),
        (TEST_NS, names[2], labels, "10.200.66.20"),
    ]
}

/// MetalLB e2etest/l2tests/assignment.go Context "IPV4 - Validate service allocation in
/// address pools", its Its "with namespace", "with only priority", "with namespace and
/// namespace labels", "with service label" and "with namespace and service label": the
/// first Service gets the pool of highest priority (lowest number), the second the next one,
/// the third the pool without priority.
#[tokio::test]
async fn service_allocation_priorities() {
    let ns = |prio: &str| allocation(&format!("{prio}    namespaces: [{TEST_NS}]\n"));
    let svc_label = |prio: u32| {
        allocation(&format!(
            "    priority: {prio}\n    serviceSelectors:\n    - matchLabels: {{test: e2e}}\n"
        ))
    };
    let e2e: Labels = &[("test", "e2e")];
    let no_priority = pool(
        &format!("ns-{TEST_NS}-ip-pool"),
        &["10.200.66.20/32"],
        &ns(""),
    );
    let low = "10.200.66.5/32";
    let high = "10.200.66.10/32";
    let cases = vec![
        AllocationCase {
            it: "with namespace",
            test_ns_labels: &[],
            pools: pool("test-ns-pool-1", &[low], &ns("    priority: 20\n"))
                + &pool("test-ns-pool-2", &[high], &ns("    priority: 10\n"))
                + &no_priority,
            services: three(
                [
                    "svc-test-ns-pool-1",
                    "svc-test-ns-pool-2",
                    "svc-test-ns-pool-3",
                ],
                &[],
            ),
        },
        AllocationCase {
            it: "with only priority",
            test_ns_labels: &[],
            pools: pool(
                "test-priority-pool-1",
                &[low],
                &allocation("    priority: 20\n"),
            ) + &pool(
                "test-priority-pool-2",
                &[high],
                &allocation("    priority: 10\n"),
            ),
            services: vec![
                (TEST_NS, "svc-test-priority-pool-1", &[], "10.200.66.10"),
                (TEST_NS, "svc-test-priority-pool-2", &[], "10.200.66.5"),
            ],
        },
        AllocationCase {
            it: "with namespace and namespace labels",
            test_ns_labels: &[("foo1", "bar1"), ("foo2", "bar2")],
            pools: pool("test-ns-label-pool-1", &[low], &ns("    priority: 20\n"))
                + &pool(
                    "test-ns-label-pool-2",
                    &[high],
                    &allocation(
                        "    priority: 10\n    namespaceSelectors:\n    \
                         - matchLabels: {foo1: bar1, foo2: bar2}\n",
                    ),
                )
                + &no_priority,
            services: three(
                [
                    "svc-test-ns-label-pool-1",
                    "svc-test-ns-label-pool-2",
                    "svc-test-ns-label-pool-3",
                ],
                &[],
            ),
        },
        AllocationCase {
            it: "with service label",
            test_ns_labels: &[],
            pools: pool("test-svc-label-pool-1", &[low], &svc_label(20))
                + &pool("test-svc-label-pool-2", &[high], &svc_label(10))
                + &no_priority,
            services: three(
                [
                    "svc-test-svc-label-pool-1",
                    "svc-test-svc-label-pool-2",
                    "svc-test-svc-label-pool-3",
                ],
                e2e,
            ),
        },
        AllocationCase {
            it: "with namespace and service label",
            test_ns_labels: &[],
            pools: pool(
                "test-ns-svc-label-pool-1",
                &[low],
                &ns("    priority: 20\n"),
            ) + &pool("test-ns-svc-label-pool-2", &[high], &svc_label(10))
                + &no_priority,
            services: three(
                [
                    "svc-ns-svc-label-pool-1",
                    "svc-ns-svc-label-pool-2",
                    "svc-ns-svc-label-pool-3",
                ],
                e2e,
            ),
        },
    ];
    let mut failed = Vec::new();
    for c in cases {
        let it = c.it;
        // Each case in its own task, so one failure still lets every other case report.
        let run = tokio::spawn(async move {
            let (_cluster, ctl) = run_allocation_case(c).await;
            ctl.stop().await.expect("stop");
        });
        if let Err(e) = run.await {
            failed.push(format!("{it}: {e}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// MetalLB e2etest/l2tests/assignment.go Context "IPV4 - Validate service allocation in
/// address pools", It "with namespace with labels": pools chosen by namespace labels at
/// priority 10, a pool for everyone without priority; after relabelling the second
/// namespace to match a priority-5 pool, its next Service gets that pool's address.
#[tokio::test]
async fn service_allocation_by_namespace_labels() {
    let by_labels = |prio: u32, labels: &str| {
        allocation(&format!(
            "    priority: {prio}\n    namespaceSelectors:\n    - matchLabels: {{{labels}}}\n"
        ))
    };
    let pools = pool(
        "first-ns-labels-ip-pool",
        &["10.200.67.20/32"],
        &by_labels(10, "first-ns: \"true\""),
    ) + &pool(
        "second-ns-labels-ip-pool",
        &["10.200.67.30/32"],
        &by_labels(10, "second-ns: \"true\""),
    ) + &pool(
        "second-ns-labels-higher-priority-ip-pool",
        &["10.200.67.50/32"],
        &by_labels(5, "second-ns: \"true\", newLabel: \"true\""),
    ) + &pool("no-ns-labels-ip-pool", &["10.200.67.40/32"], "");
    let (cluster, ctl) = run_allocation_case(AllocationCase {
        it: "with namespace with labels",
        test_ns_labels: &[],
        pools,
        services: vec![
            (SECOND_NS, "second-ns-service", &[], "10.200.67.30"),
            (TEST_NS, "default-ns-service", &[], "10.200.67.20"),
            (TEST_NS, "default-ns-service2", &[], "10.200.67.40"),
        ],
    })
    .await;
    label_namespace(
        &cluster.client,
        SECOND_NS,
        &[("second-ns", "true"), ("newLabel", "true")],
    )
    .await;
    cluster
        .create(service(
            SECOND_NS,
            "second-ns-service2",
            &[],
            &[],
            json!({}),
        ))
        .await;
    cluster
        .wait_ingress(SECOND_NS, "second-ns-service2", &["10.200.67.50"])
        .await;
    ctl.stop().await.expect("stop");
}

// MetalLB e2etest/l2tests/assignment.go Context "PREFER DUALSTACK": its pools.
const V4_POOL: &str = "10.200.68.100/32";
const V6_POOL: &str = "fd00:200:68::/124";
const V4_POOL2: &str = "10.200.69.100/32";
const V6_POOL2: &str = "fd00:200:69::/124";

fn pool_v4() -> String {
    pool("test-ns-ipv4-pool", &[V4_POOL], "")
}
fn pool_v6() -> String {
    pool("test-ns-ipv6-pool", &[V6_POOL], "")
}
fn pool_dual() -> String {
    pool("test-ns-dualstack-pool", &[V4_POOL2, V6_POOL2], "")
}

/// A PreferDualStack Service in the test namespace (`first` family first).
async fn prefer_dual_stack(cluster: &Cluster, families: &[&str]) {
    cluster
        .create(service(
            TEST_NS,
            "svc-test-ns-pool-1",
            &[],
            &[],
            json!({"ipFamilyPolicy": "PreferDualStack", "ipFamilies": families}),
        ))
        .await;
}

async fn dual_stack_cluster(config: &str) -> (Cluster, Handle) {
    let cluster = Cluster::start(config).await;
    assignment_namespaces(&cluster.client).await;
    let ctl = cluster.controller().await;
    (cluster, ctl)
}

const SVC: &str = "svc-test-ns-pool-1";

/// MetalLB e2etest/l2tests/assignment.go Context "PREFER DUALSTACK", It "Should select
/// dual-stack pool if available": with an IPv4, an IPv6 and a dual-stack pool, a
/// PreferDualStack Service gets both addresses from the dual-stack pool.
#[tokio::test]
async fn prefer_dual_stack_selects_the_dual_stack_pool() {
    let (cluster, ctl) = dual_stack_cluster(&(pool_v4() + &pool_v6() + &pool_dual())).await;
    prefer_dual_stack(&cluster, &["IPv4", "IPv6"]).await;
    wait_count(&cluster, TEST_NS, SVC, 2).await;
    assert_in(&cluster, TEST_NS, SVC, &[V4_POOL2, V6_POOL2], 2).await;
    ctl.stop().await.expect("stop");
}

/// MetalLB e2etest/l2tests/assignment.go Context "PREFER DUALSTACK", Its "Should prefer
/// primary ip ipv4 family among single-stack pools by default" and "Should prefer primary
/// ipv6 ip family among single-stack pools": without a dual-stack pool, a PreferDualStack
/// Service gets one address, of its primary family, whatever the order of the pools.
#[tokio::test]
async fn prefer_dual_stack_takes_the_primary_family_from_single_stack_pools() {
    for (pools, families, want) in [
        (pool_v6() + &pool_v4(), ["IPv4", "IPv6"], V4_POOL),
        (pool_v4() + &pool_v6(), ["IPv6", "IPv4"], V6_POOL),
    ] {
        let (cluster, ctl) = dual_stack_cluster(&pools).await;
        prefer_dual_stack(&cluster, &families).await;
        wait_count(&cluster, TEST_NS, SVC, 1).await;
        let got = cluster.ingress(TEST_NS, SVC).await;
        cluster
            .stays_unassigned_other_than(
                TEST_NS,
                SVC,
                &got.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .await;
        assert_in(&cluster, TEST_NS, SVC, &[want], 1).await;
        ctl.stop().await.expect("stop");
    }
}

/// `test-ns-dualstack-pool` for the test namespace, as MetalLB's PREFER DUALSTACK cases
/// define it.
fn namespace_pool(name: &str, addresses: &[&str]) -> String {
    pool(
        name,
        addresses,
        &allocation(&format!("    namespaces: [{TEST_NS}]\n")),
    )
}

/// MetalLB e2etest/l2tests/assignment.go Context "PREFER DUALSTACK", It "Additional ip
/// should be assigned when the assigned 1-stack pool becomes dual-stack": the pool gains
/// IPv6 addresses (and more IPv4 ones, written `192.168.10.100/24` in MetalLB, a CIDR with
/// host bits); the Service keeps its IPv4 address and gains an IPv6 one from the pool.
#[tokio::test]
async fn prefer_dual_stack_gains_a_family_when_its_pool_does() {
    let (cluster, ctl) =
        dual_stack_cluster(&namespace_pool("test-ns-dualstack-pool", &[V4_POOL])).await;
    prefer_dual_stack(&cluster, &["IPv4", "IPv6"]).await;
    wait_count(&cluster, TEST_NS, SVC, 1).await;
    assert_in(&cluster, TEST_NS, SVC, &[V4_POOL], 1).await;
    let first = cluster.ingress(TEST_NS, SVC).await;
    apply_yaml(
        &cluster.client,
        &namespace_pool("test-ns-dualstack-pool", &["10.200.68.100/24", V6_POOL]),
    )
    .await;
    wait_count(&cluster, TEST_NS, SVC, 2).await;
    let got = cluster.ingress(TEST_NS, SVC).await;
    assert_eq!(got[0], first[0], "the first address stays");
    assert!(got[1].contains(':'), "the second address is IPv6: {got:?}");
    assert_in(&cluster, TEST_NS, SVC, &["10.200.68.0/24", V6_POOL], 2).await;
    ctl.stop().await.expect("stop");
}

/// MetalLB e2etest/l2tests/assignment.go Context "PREFER DUALSTACK", It "Single-stack pool
/// should assign based on svc changes between PreferDualStack and RequireDualStack": with
/// only an IPv4 pool the Service has one address, none once it requires both families, one
/// again when it prefers them.
#[tokio::test]
async fn single_stack_pool_follows_the_family_policy() {
    let (cluster, ctl) =
        dual_stack_cluster(&namespace_pool("test-ns-dualstack-pool", &[V4_POOL])).await;
    prefer_dual_stack(&cluster, &["IPv4", "IPv6"]).await;
    wait_count(&cluster, TEST_NS, SVC, 1).await;
    assert_in(&cluster, TEST_NS, SVC, &[V4_POOL], 1).await;
    let policy = |p: &str| json!({"spec": {"ipFamilyPolicy": p}});
    cluster
        .patch(TEST_NS, SVC, policy("RequireDualStack"))
        .await;
    wait_count(&cluster, TEST_NS, SVC, 0).await;
    cluster.patch(TEST_NS, SVC, policy("PreferDualStack")).await;
    wait_count(&cluster, TEST_NS, SVC, 1).await;
    assert_in(&cluster, TEST_NS, SVC, &[V4_POOL], 1).await;
    ctl.stop().await.expect("stop");
}

/// Waits until the controller counts the pool (its status API lists it).
async fn wait_pool_loaded(ctl: &Handle, name: &str) {
    let quoted = format!("\"{name}\"");
    eventually(&format!("pool {name} to be loaded"), WAIT, || async {
        let (_, body) = http_get(ctl.addr, "/api/v1/status").await.ok()?;
        body.contains(&quoted).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// MetalLB e2etest/l2tests/assignment.go Context "PREFER DUALSTACK", It "Svc assigned from
/// single-stack pool should not jump to dual-stack pool when it's available".
#[tokio::test]
async fn single_stack_assignment_stays_when_a_dual_stack_pool_appears() {
    let (cluster, ctl) = dual_stack_cluster(&pool_v4()).await;
    prefer_dual_stack(&cluster, &["IPv4", "IPv6"]).await;
    wait_count(&cluster, TEST_NS, SVC, 1).await;
    assert_in(&cluster, TEST_NS, SVC, &[V4_POOL], 1).await;
    let first = cluster.ingress(TEST_NS, SVC).await;
    apply_yaml(&cluster.client, &pool_dual()).await;
    wait_pool_loaded(&ctl, "test-ns-dualstack-pool").await;
    cluster
        .stays_unassigned_other_than(
            TEST_NS,
            SVC,
            &first.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await;
    ctl.stop().await.expect("stop");
}

/// MetalLB e2etest/l2tests/assignment.go Context "PREFER DUALSTACK", It "When current
/// dualstack pool becomes single-stack, svc should pick another dualstack pool if
/// possible". MetalLB waits for the new pool's `status.availableIPv6`; this waits for the
/// controller to count it (see `pool_status_dual_stack` for the status).
#[tokio::test]
async fn dual_stack_service_moves_when_its_pool_becomes_single_stack() {
    let edit = "test-ns-dualstack-pool-to-edit";
    let (cluster, ctl) = dual_stack_cluster(&pool(edit, &[V4_POOL, V6_POOL], "")).await;
    prefer_dual_stack(&cluster, &["IPv4", "IPv6"]).await;
    wait_count(&cluster, TEST_NS, SVC, 2).await;
    assert_in(&cluster, TEST_NS, SVC, &[V4_POOL, V6_POOL], 2).await;
    let original = cluster.ingress(TEST_NS, SVC).await;
    apply_yaml(&cluster.client, &pool_dual()).await;
    wait_pool_loaded(&ctl, "test-ns-dualstack-pool").await;
    apply_yaml(&cluster.client, &pool(edit, &[V6_POOL], "")).await;
    let what = "the Service to have two new addresses";
    eventually(what, WAIT, || async {
        let got = cluster.ingress(TEST_NS, SVC).await;
        (got.len() == 2 && got != original).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_in(&cluster, TEST_NS, SVC, &[V4_POOL2, V6_POOL2], 2).await;
    ctl.stop().await.expect("stop");
}

/// The `status` of a `metallb.io` IPAddressPool in `metallb-system`.
async fn metallb_pool_status(client: &Client, name: &str) -> Value {
    let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", "IPAddressPool");
    let (resource, _) = pinned_kind(client, &gvk).await.expect("kind served");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), METALLB_NS, &resource);
    let pool = api.get(name).await.expect("get pool");
    pool.data.get("status").cloned().unwrap_or(Value::Null)
}

/// MetalLB e2etest/l2tests/assignment.go Context "Pool Status", It "DUALSTACK": MetalLB
/// writes `status.{available,assigned}IPv{4,6}` on its IPAddressPool (4/4/0/0, then 3/3/1/1
/// with a dual-stack Service, 7/7/1/1 once the pool grows, 8/8/0/0 once the Service is
/// gone); ferrolb writes the same on the `metallb.io` object, and its status API says the
/// same. Not replayed: MetalLB's last step, a status written by hand reverted at once (ferrolb
/// rewrites a pool's status when its counts change).
#[tokio::test]
async fn pool_status_dual_stack() {
    let name = "status-pool";
    let small = pool(name, &["10.200.70.0/30", "fd00:200:70::/126"], "");
    let (cluster, ctl) = dual_stack_cluster(&small).await;
    let counts = |a4: u64, a6: u64, s4: u64, s6: u64| json!({"availableIPv4": a4, "availableIPv6": a6, "assignedIPv4": s4, "assignedIPv6": s6});
    let ctl_client = cluster.client.clone();
    let wait_counts = |want: Value| {
        let ctl = &ctl;
        let ctl_client = ctl_client.clone();
        async move {
            let what = format!("pool {name} counted as {want}");
            eventually(&what, WAIT, || async {
                let (_, body) = http_get(ctl.addr, "/api/v1/status").await.ok()?;
                let status: Value = serde_json::from_str(&body).ok()?;
                let found = status["pools"]
                    .as_array()?
                    .iter()
                    .find(|p| p["name"] == name)?
                    .clone();
                let keys = [
                    "availableIPv4",
                    "availableIPv6",
                    "assignedIPv4",
                    "assignedIPv6",
                ];
                let api_says = keys.iter().all(|k| found[*k] == want[*k]);
                let object = metallb_pool_status(&ctl_client, name).await;
                let object_says = keys.iter().all(|k| object[*k] == want[*k]);
                (api_says && object_says).then_some(())
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
    };
    wait_counts(counts(4, 4, 0, 0)).await;
    cluster
        .create(service(
            TEST_NS,
            "status-svc",
            &[],
            &[],
            serde_json::from_str(DUAL_REQUIRE).expect("spec"),
        ))
        .await;
    wait_counts(counts(3, 3, 1, 1)).await;
    apply_yaml(
        &cluster.client,
        &pool(name, &["10.200.70.0/29", "fd00:200:70::/125"], ""),
    )
    .await;
    wait_counts(counts(7, 7, 1, 1)).await;
    cluster
        .services(TEST_NS)
        .delete("status-svc", &DeleteParams::default())
        .await
        .expect("delete");
    wait_counts(counts(8, 8, 0, 0)).await;
    ctl.stop().await.expect("stop");
}

// ---------------------------------------------------------------------------------------------
// e2etest/bgptests/bgp.go (the assignment part of its cases)
// ---------------------------------------------------------------------------------------------

/// MetalLB e2etest/bgptests/bgp.go DescribeTable "A load balancer service should work with
/// overlapping IPs" (entries "IPV4" and "IPV6"): two Services on different ports ask for the
/// pool's second address with the same sharing key; both get it.
#[tokio::test]
async fn overlapping_ips_are_shared() {
    // MetalLB's IPV6 entry runs in an IPv6 cluster: its Services are IPv6.
    for (addresses, ip, family) in [
        ("10.200.71.0/24", "10.200.71.1", "IPv4"),
        ("fd00:200:71::/124", "fd00:200:71::1", "IPv6"),
    ] {
        let (cluster, ctl) = dual_stack_cluster(&pool("bgp-test", &[addresses], "")).await;
        let share = [("metallb.io/allow-shared-ip", "foo")];
        for (name, port) in [("first-service", 80), ("second-service", 81)] {
            cluster
                .create(service(
                    TEST_NS,
                    name,
                    &share,
                    &[],
                    json!({"ipFamilies": [family], "loadBalancerIP": ip, "ports": [{ "port": port, "protocol": "TCP" }]}),
                ))
                .await;
        }
        cluster.wait_ingress(TEST_NS, "first-service", &[ip]).await;
        cluster.wait_ingress(TEST_NS, "second-service", &[ip]).await;
        ctl.stop().await.expect("stop");
    }
}

/// MetalLB e2etest/bgptests/bgp.go Context "validate different AddressPools for
/// type=Loadbalancer", DescribeTable "set different AddressPools ranges modes": a pool
/// written as a range or as a prefix, for IPv4, IPv6 and both; the Service's addresses are
/// in the pool.
#[tokio::test]
async fn address_pools_by_range_or_prefix() {
    const V4_RANGE: &str = "10.200.72.0-10.200.72.18";
    const V6_RANGE: &str = "fd00:200:72::0-fd00:200:72::18";
    let entries: [(&str, &'static [&'static str], &str, usize); 6] = [
        (
            "IPV4 - test AddressPool defined by address range",
            &[V4_RANGE],
            V4,
            1,
        ),
        (
            "IPV4 - test AddressPool defined by network prefix",
            &["10.200.72.0/24"],
            V4,
            1,
        ),
        (
            "IPV6 - test AddressPool defined by address range",
            &[V6_RANGE],
            V6,
            1,
        ),
        (
            "IPV6 - test AddressPool defined by network prefix",
            &["fd00:200:72::/124"],
            V6,
            1,
        ),
        (
            "DUALSTACK - test AddressPool defined by address range",
            &[V4_RANGE, V6_RANGE],
            DUAL_REQUIRE,
            2,
        ),
        (
            "DUALSTACK - test AddressPool defined by network prefix",
            &["10.200.72.0/24", "fd00:200:72::/124"],
            DUAL_REQUIRE,
            2,
        ),
    ];
    let mut failed = Vec::new();
    for (entry, addresses, spec, count) in entries {
        // Each entry in its own task, so one failure still lets every other entry report.
        let run = tokio::spawn(async move {
            let (cluster, ctl) = dual_stack_cluster(&pool("bgp-test", addresses, "")).await;
            let spec: Value = serde_json::from_str(spec).expect("spec");
            cluster
                .create(service(TEST_NS, "external-local-lb", &[], &[], spec))
                .await;
            wait_count(&cluster, TEST_NS, "external-local-lb", count).await;
            assert_in(&cluster, TEST_NS, "external-local-lb", addresses, count).await;
            ctl.stop().await.expect("stop");
        });
        if let Err(e) = run.await {
            failed.push(format!("{entry}: {e}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
