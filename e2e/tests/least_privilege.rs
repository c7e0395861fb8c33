//! Least privilege, proven on the lab: the controller and the speakers run with tokens of their
//! ServiceAccounts under `deploy/rbac.yaml`, enforced by the API server. With every rule the
//! whole scenario passes; then each rule is removed in turn, the components holding it are
//! restarted, and the scenario must fail — the test prints which checks failed without which
//! rule, so no rule is superfluous.
//!
//! The scenario touches everything the components do: addresses from ferrolb.io and metallb.io
//! pools, layer 2 and BGP (with the peer's password Secret), events, pool status, status
//! objects and their cleanup, ConfigurationStates in both groups, the leader Lease, the
//! membership Secret the controller creates, gossip membership keyed by the speakers' Secret,
//! and the HTTP APIs (which ask the API server to review tokens).

mod common;

use common::{create_service, lb_service};
use ferrolb_e2e::apiserver::audit::AuditRecord;
use ferrolb_e2e::apiserver::auth::rbac::{PolicyRule, rule_allows};
use ferrolb_e2e::cluster::{
    Cluster, ClusterOptions, DEPLOY_RBAC, EXAMPLE_BGP_PASSWORD, LAB_MEMBERSHIP_KEY,
};
use ferrolb_e2e::fixtures::ingress_ips;
use ferrolb_e2e::labcmd::metallb::{METALLB_NAMESPACE, install_metallb_crds};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const NS: &str = "ferrolb-system";
const NODES: usize = 2;
/// The Secret the controller is told to create when missing (not the speakers' key, so the
/// check can delete it freely).
const ML_CHECK: &str = "ml-check";
/// How long the scenario may take with every rule in place, and so how long a failing one is
/// given before it counts as failed.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(10);

/// A MetalLB pool and its L2Advertisement, read through `--config-groups auto`.
const METALLB_CONFIG: &str = "\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: mlb-pool
  namespace: metallb-system
spec:
  addresses:
    - 10.200.0.240-10.200.0.250
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: mlb-l2
  namespace: metallb-system
spec:
  ipAddressPools: [mlb-pool]
";

/// Which component a rule belongs to (whose ServiceAccount its bindings name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Component {
    Controller,
    Speaker,
}

/// One rule of a Role or ClusterRole of the manifest.
#[derive(Clone, Debug)]
struct Rule {
    kind: String,
    name: String,
    namespace: Option<String>,
    index: usize,
    /// The role's rules as the manifest has them.
    all_rules: Vec<serde_json::Value>,
    components: BTreeSet<Component>,
}

impl Rule {
    fn label(&self) -> String {
        let r = &self.all_rules[self.index];
        let list = |k: &str| {
            r[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str())
                        .map(|v| if v.is_empty() { "\"\"" } else { v })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        let what = if r.get("nonResourceURLs").is_some() {
            format!("nonResourceURLs [{}]", list("nonResourceURLs"))
        } else {
            let names = list("resourceNames");
            format!(
                "[{}] {}{}",
                list("apiGroups"),
                list("resources"),
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" names [{names}]")
                }
            )
        };
        format!(
            "{}/{} rule {}: {what} verbs [{}]",
            self.kind,
            self.name,
            self.index,
            list("verbs")
        )
    }
}

/// Every rule of the Roles and ClusterRoles of `manifest`, with the components their bindings
/// give them to.
fn rules_of(manifest: &str) -> Vec<Rule> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(manifest).expect("rbac yaml");
    let component_of = |sa: &str| match sa {
        "controller" => Some(Component::Controller),
        "speaker" => Some(Component::Speaker),
        _ => None,
    };
    let mut rules = Vec::new();
    for role in docs
        .iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("Role" | "ClusterRole")))
    {
        let kind = role["kind"].as_str().unwrap_or_default().to_string();
        let name = role["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let namespace = role["metadata"]["namespace"].as_str().map(str::to_string);
        let components: BTreeSet<Component> = docs
            .iter()
            .filter(|b| {
                matches!(
                    b["kind"].as_str(),
                    Some("RoleBinding" | "ClusterRoleBinding")
                ) && b["roleRef"]["kind"].as_str() == Some(kind.as_str())
                    && b["roleRef"]["name"].as_str() == Some(name.as_str())
            })
            .flat_map(|b| b["subjects"].as_array().cloned().unwrap_or_default())
            .filter(|s| s["kind"] == "ServiceAccount" && s["namespace"] == NS)
            .filter_map(|s| component_of(s["name"].as_str().unwrap_or_default()))
            .collect();
        let all_rules = role["rules"].as_array().cloned().unwrap_or_default();
        for index in 0..all_rules.len() {
            rules.push(Rule {
                kind: kind.clone(),
                name: name.clone(),
                namespace: namespace.clone(),
                index,
                all_rules: all_rules.clone(),
                components: components.clone(),
            });
        }
    }
    rules
}

fn role_api(c: &Cluster, rule: &Rule) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", &rule.kind);
    let ar = ApiResource::from_gvk(&gvk);
    match &rule.namespace {
        Some(ns) => Api::namespaced_with(c.client.clone(), ns, &ar),
        None => Api::all_with(c.client.clone(), &ar),
    }
}

/// Sets the role's rules (a merge patch replaces the whole list).
fn set_rules(c: &Cluster, rule: &Rule, rules: Vec<serde_json::Value>) {
    let api = role_api(c, rule);
    let name = rule.name.clone();
    let patch = serde_json::json!({ "rules": rules });
    c.run(async move {
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
    })
    .expect("runtime")
    .unwrap_or_else(|e| panic!("patching {} {}: {e}", rule.kind, rule.name));
}

fn dynamic(c: &Cluster, group: &str, kind: &str, plural: &str, ns: &str) -> Api<DynamicObject> {
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1beta1", kind), plural);
    Api::namespaced_with(c.client.clone(), ns, &ar)
}

/// Deletes every object of `api` (or only `name`), ignoring what is already gone.
fn delete_all(c: &Cluster, api: Api<DynamicObject>, name: Option<&str>) {
    let name = name.map(str::to_string);
    let _ = c.run(async move {
        let names: Vec<String> = match name {
            Some(n) => vec![n],
            None => api
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items
                        .into_iter()
                        .filter_map(|o| o.metadata.name)
                        .collect()
                })
                .unwrap_or_default(),
        };
        for n in names {
            let _ = api.delete(&n, &DeleteParams::default()).await;
        }
    });
}

/// State the components must write again after a restart: it is removed (or emptied) first so
/// a check can only pass if the restarted component could write it.
fn reset_for(c: &Cluster, components: &BTreeSet<Component>, round: usize) {
    let client = c.client.clone();
    if components.contains(&Component::Controller) {
        let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
        let _ = c.run(async move {
            let _ = leases
                .delete("ferrolb-controller", &DeleteParams::default())
                .await;
            let _ = secrets.delete(ML_CHECK, &DeleteParams::default()).await;
        });
        for (group, ns, pool) in [
            ("ferrolb.io", NS, "lan-pool"),
            (METALLB_GROUP, METALLB_NAMESPACE, "mlb-pool"),
        ] {
            let api = dynamic(c, group, "IPAddressPool", "ipaddresspools", ns);
            let patch = serde_json::json!({ "status": null });
            let _ = c.run(async move {
                api.patch_status(pool, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
            });
        }
        for (group, ns) in [("ferrolb.io", NS), (METALLB_GROUP, METALLB_NAMESPACE)] {
            let api = dynamic(c, group, "ConfigurationState", "configurationstates", ns);
            delete_all(c, api, Some("controller"));
        }
    }
    if components.contains(&Component::Speaker) {
        for i in 1..=NODES {
            let name = format!("speaker-{}", c.lab.node(i).name());
            for (group, ns) in [("ferrolb.io", NS), (METALLB_GROUP, METALLB_NAMESPACE)] {
                let api = dynamic(c, group, "ConfigurationState", "configurationstates", ns);
                delete_all(c, api, Some(&name));
            }
        }
        let sessions = dynamic(c, "ferrolb.io", "BGPSessionState", "bgpsessionstates", NS);
        delete_all(c, sessions, None);
    }
    // The previous round's Services: their status objects must be cleaned up.
    if round > 0 {
        let services: Api<Service> = Api::namespaced(client, "default");
        let prev = round - 1;
        let _ = c.run(async move {
            for kind in ["l2", "bgp", "mlb"] {
                let _ = services
                    .delete(&format!("lp-{kind}-{prev}"), &DeleteParams::default())
                    .await;
            }
        });
    }
}

const METALLB_GROUP: &str = "metallb.io";

fn restart(c: &mut Cluster, components: &BTreeSet<Component>) {
    if components.contains(&Component::Controller) {
        c.start_controller().expect("restart controller");
    }
    if components.contains(&Component::Speaker) {
        for i in 1..=NODES {
            c.start_speaker(i).expect("restart speaker");
        }
    }
}

fn create_round_services(c: &Cluster, round: usize) {
    for (kind, pool) in [("l2", "lan-pool"), ("bgp", "bgp-pool"), ("mlb", "mlb-pool")] {
        let svc = lb_service(
            &format!("lp-{kind}-{round}"),
            &[("metallb.io/address-pool", pool)],
        );
        create_service(c, &svc);
    }
}

/// One check of the scenario: its name and whether it holds now.
type Check = (&'static str, Box<dyn Fn(&Cluster, usize) -> bool>);

fn service_ips(c: &Cluster, name: &str) -> Vec<IpAddr> {
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let name = name.to_string();
    c.run(async move { api.get(&name).await })
        .ok()
        .and_then(Result::ok)
        .map(|s| ingress_ips(&s))
        .unwrap_or_default()
}

fn list_dynamic(c: &Cluster, api: Api<DynamicObject>) -> Vec<DynamicObject> {
    c.run(async move { api.list(&ListParams::default()).await })
        .ok()
        .and_then(Result::ok)
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Status objects (ServiceL2Status or ServiceBGPStatus) naming Service `name`.
fn status_objects_for(c: &Cluster, kind: &str, plural: &str, name: &str) -> usize {
    list_dynamic(c, dynamic(c, "ferrolb.io", kind, plural, NS))
        .iter()
        .filter(|o| {
            o.data["status"]["serviceName"].as_str() == Some(name)
                && !o.data["status"]["node"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty()
        })
        .count()
}

fn events_from(c: &Cluster, service: &str, reporter: &str) -> bool {
    let api: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let (service, reporter) = (service.to_string(), reporter.to_string());
    c.run(async move { api.list(&ListParams::default()).await })
        .ok()
        .and_then(Result::ok)
        .is_some_and(|l| {
            l.items.iter().any(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(service.as_str())
                    && e.reporting_controller.as_deref() == Some(reporter.as_str())
            })
        })
}

fn config_state_written(c: &Cluster, group: &str, ns: &str, name: &str) -> bool {
    let api = dynamic(c, group, "ConfigurationState", "configurationstates", ns);
    let name = name.to_string();
    c.run(async move { api.get_opt(&name).await })
        .ok()
        .and_then(Result::ok)
        .flatten()
        .is_some_and(|o| o.data["status"].is_object())
}

fn checks() -> Vec<Check> {
    vec![
        (
            "controller: every Service has an address",
            Box::new(|c, r| {
                ["l2", "bgp", "mlb"]
                    .iter()
                    .all(|k| service_ips(c, &format!("lp-{k}-{r}")).len() == 1)
            }),
        ),
        (
            "controller: an event on the Service",
            Box::new(|c, r| events_from(c, &format!("lp-l2-{r}"), "ferrolb-controller")),
        ),
        (
            "controller: pool status of both groups",
            Box::new(|c, _| {
                [
                    ("ferrolb.io", NS, "lan-pool"),
                    (METALLB_GROUP, METALLB_NAMESPACE, "mlb-pool"),
                ]
                .iter()
                .all(|(group, ns, pool)| {
                    let api = dynamic(c, group, "IPAddressPool", "ipaddresspools", ns);
                    let pool = pool.to_string();
                    c.run(async move { api.get(&pool).await })
                        .ok()
                        .and_then(Result::ok)
                        .is_some_and(|p| p.data["status"]["assignedIPv4"].as_u64() >= Some(1))
                })
            }),
        ),
        (
            "controller: ConfigurationState in both groups",
            Box::new(|c, _| {
                config_state_written(c, "ferrolb.io", NS, "controller")
                    && config_state_written(c, METALLB_GROUP, METALLB_NAMESPACE, "controller")
            }),
        ),
        (
            "controller: holds and renews the leader Lease",
            Box::new(|c, _| {
                let api: Api<Lease> = Api::namespaced(c.client.clone(), NS);
                c.run(async move { api.get_opt("ferrolb-controller").await })
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
                    .and_then(|l| l.spec)
                    .is_some_and(|s| {
                        // A renewal replaced the lease: renewTime moved past acquireTime.
                        s.holder_identity.is_some()
                            && match (s.acquire_time, s.renew_time) {
                                (Some(a), Some(r)) => r.0 > a.0,
                                _ => false,
                            }
                    })
            }),
        ),
        (
            "controller: creates the missing membership Secret",
            Box::new(|c, _| {
                let api: Api<Secret> = Api::namespaced(c.client.clone(), NS);
                c.run(async move { api.get_opt(ML_CHECK).await })
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
                    .is_some()
            }),
        ),
        (
            "controller: status API answers a reviewed token",
            Box::new(|c, _| c.get_json(c.controller_http(), "/api/v1/status").is_ok()),
        ),
        (
            "speaker: layer 2 announced, ServiceL2Status for both groups' pools",
            Box::new(|c, r| {
                ["l2", "mlb"].iter().all(|k| {
                    let name = format!("lp-{k}-{r}");
                    let ips = service_ips(c, &name);
                    status_objects_for(c, "ServiceL2Status", "servicel2statuses", &name) == 1
                        && ips.len() == 1
                        && c.announcing_nodes(ips[0]).len() == 1
                })
            }),
        ),
        (
            "speaker: BGP route at the router, ServiceBGPStatus",
            Box::new(|c, r| {
                let name = format!("lp-bgp-{r}");
                let ips = service_ips(c, &name);
                ips.len() == 1
                    && common::bgp::bird_next_hops(c, ips[0]).len() == NODES
                    && status_objects_for(c, "ServiceBGPStatus", "servicebgpstatuses", &name)
                        == NODES
            }),
        ),
        (
            "speaker: BGPSessionState Established on every node",
            Box::new(|c, _| {
                let sessions = list_dynamic(
                    c,
                    dynamic(c, "ferrolb.io", "BGPSessionState", "bgpsessionstates", NS),
                );
                (1..=NODES).all(|i| {
                    let node = c.lab.node(i).name();
                    sessions.iter().any(|s| {
                        s.data["status"]["node"].as_str() == Some(node)
                            && s.data["status"]["bgpStatus"].as_str() == Some("Established")
                    })
                })
            }),
        ),
        (
            "speaker: an event on the Service",
            Box::new(|c, r| events_from(c, &format!("lp-l2-{r}"), "ferrolb-speaker")),
        ),
        (
            "speaker: ConfigurationState in both groups",
            Box::new(|c, _| {
                (1..=NODES).all(|i| {
                    let name = format!("speaker-{}", c.lab.node(i).name());
                    config_state_written(c, "ferrolb.io", NS, &name)
                        && config_state_written(c, METALLB_GROUP, METALLB_NAMESPACE, &name)
                })
            }),
        ),
        (
            "speaker: gossip membership with every node (keyed by its Secret)",
            Box::new(|c, _| {
                (1..=NODES).all(|i| {
                    c.get_json(c.speaker_http(i), "/api/v1/status")
                        .is_ok_and(|s| {
                            s["membership"]["enabled"] == true
                                && s["membership"]["members"].as_array().is_some_and(|m| {
                                    m.iter().filter(|m| m["alive"] == true).count() == NODES
                                })
                        })
                })
            }),
        ),
        (
            "speaker: status objects of deleted Services removed",
            Box::new(|c, r| {
                r == 0
                    || ["l2", "bgp", "mlb"].iter().all(|k| {
                        let name = format!("lp-{k}-{}", r - 1);
                        status_objects_for(c, "ServiceL2Status", "servicel2statuses", &name) == 0
                            && status_objects_for(
                                c,
                                "ServiceBGPStatus",
                                "servicebgpstatuses",
                                &name,
                            ) == 0
                    })
            }),
        ),
    ]
}

/// Runs the checks until all hold or `timeout` passes; returns the names of those that never
/// held.
fn failing_checks(c: &Cluster, round: usize, timeout: Duration) -> Vec<&'static str> {
    let checks = checks();
    let mut pending: Vec<&Check> = checks.iter().collect();
    let deadline = Instant::now() + timeout;
    loop {
        pending.retain(|(_, check)| !check(c, round));
        if pending.is_empty() || Instant::now() > deadline {
            return pending.iter().map(|(name, _)| *name).collect();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start_cluster() -> Cluster {
    let c = Cluster::start(ClusterOptions {
        nodes: NODES as u8,
        bird: true,
        bird_password: Some(EXAMPLE_BGP_PASSWORD.into()),
        leader_election: true,
        controller: false,
        speakers: false,
        controller_args: vec!["--ml-secret-name".into(), ML_CHECK.into()],
        ..ClusterOptions::default()
    })
    .expect("cluster");
    install_metallb_crds(&c).expect("MetalLB's CRDs");
    c.apply_yaml(include_str!("../../deploy/examples/l2.yaml"))
        .expect("l2 example");
    c.apply_yaml(common::bgp::BGP_EXAMPLE).expect("bgp example");
    c.apply_yaml(METALLB_CONFIG)
        .expect("metallb.io configuration");
    c
}

#[test]
fn every_rule_of_the_rbac_is_needed() {
    if !ferrolb_e2e::lab::tools_or_skip("every_rule_of_the_rbac_is_needed", &["bird", "birdc"]) {
        return;
    }
    let rules = rules_of(DEPLOY_RBAC);
    let bound: Vec<&Rule> = rules.iter().filter(|r| !r.components.is_empty()).collect();
    assert!(
        bound.len() > 10,
        "rules of deploy/rbac.yaml: {}",
        bound.len()
    );
    let mut c = start_cluster();
    let both = BTreeSet::from([Component::Controller, Component::Speaker]);
    reset_for(&c, &both, 0);
    restart(&mut c, &both);
    create_round_services(&c, 0);
    let failing = failing_checks(&c, 0, SCENARIO_TIMEOUT * 2);
    assert!(
        failing.is_empty(),
        "with every rule of deploy/rbac.yaml the scenario fails: {failing:?}"
    );
    let secrets = lab_secrets(&c);
    let mut superfluous = Vec::new();
    for (n, rule) in bound.iter().enumerate() {
        let round = n + 1;
        let mut without = rule.all_rules.clone();
        without.remove(rule.index);
        set_rules(&c, rule, without);
        reset_for(&c, &rule.components, round);
        restart(&mut c, &rule.components);
        create_round_services(&c, round);
        let seen = c.audit_records().expect("audit log").len();
        let failing = failing_checks(&c, round, SCENARIO_TIMEOUT);
        println!("without {}:", rule.label());
        for f in &failing {
            println!("    fails: {f}");
        }
        let denied = denied_since(&c, seen, &rule.components);
        for d in &denied {
            println!("    denied: {d}");
        }
        if failing.is_empty() || denied.is_empty() {
            println!("    nothing fails: superfluous");
            superfluous.push(rule.label());
        }
        set_rules(&c, rule, rule.all_rules.clone());
        restart(&mut c, &rule.components);
    }
    // After the last rule is back, the scenario passes again.
    let last = bound.len() + 1;
    reset_for(&c, &both, last);
    restart(&mut c, &both);
    create_round_services(&c, last);
    let failing = failing_checks(&c, last, SCENARIO_TIMEOUT * 2);
    assert!(failing.is_empty(), "with the rules restored: {failing:?}");
    // Every round denied requests, restarted components and moved addresses: their logs,
    // APIs, events and status objects still hold no secret.
    let revealed = revealed_anywhere(&c, &secrets, last);
    assert!(revealed.is_empty(), "secrets revealed: {revealed:#?}");
    assert!(
        superfluous.is_empty(),
        "rules of deploy/rbac.yaml nothing needs: {superfluous:#?}"
    );
    // Finer than a rule: every verb on every resource of every rule allowed some request of
    // its component.
    let records = c.audit_records().expect("audit log");
    let unused = unused_verbs(&bound, &records);
    assert!(
        unused.is_empty(),
        "verbs of deploy/rbac.yaml no request of the scenario used: {unused:#?}"
    );
}

fn user_of(component: Component) -> String {
    let sa = match component {
        Component::Controller => "controller",
        Component::Speaker => "speaker",
    };
    format!("system:serviceaccount:{NS}:{sa}")
}

/// Requests of `components` the API server denied after the first `seen` audit records,
/// deduplicated, as `verb group/resource/subresource ns/name`.
fn denied_since(c: &Cluster, seen: usize, components: &BTreeSet<Component>) -> Vec<String> {
    let users: BTreeSet<String> = components.iter().map(|&k| user_of(k)).collect();
    let records = c.audit_records().expect("audit log");
    let denied: BTreeSet<String> = records
        .iter()
        .skip(seen)
        .filter(|r| !r.allowed && users.contains(&r.user))
        .map(|r| {
            let who = r.user.rsplit(':').next().unwrap_or_default();
            if r.resource_request {
                let sub = if r.subresource.is_empty() {
                    String::new()
                } else {
                    format!("/{}", r.subresource)
                };
                format!(
                    "{who}: {} {}/{}{sub} in {:?} name {:?}",
                    r.verb, r.api_group, r.resource, r.namespace, r.name
                )
            } else {
                format!("{who}: {} {}", r.verb, r.path)
            }
        })
        .collect();
    denied.into_iter().collect()
}

/// A verb a component needs although no scenario can make it use it: kube-rs's event
/// `Recorder` patches the series of an event it publishes again within its cache time
/// (kube-runtime `events.rs`, `publish`), and both components dedupe what they report.
const NEEDED_UNEXERCISED: &[(&str, &str, &str)] = &[("events.k8s.io", "events", "patch")];

/// `(group, resource, verb)` of each rule that allowed no request of its components in
/// `records` (a Role's rules only count in its namespace).
fn unused_verbs(rules: &[&Rule], records: &[AuditRecord]) -> Vec<String> {
    let mut unused = Vec::new();
    for rule in rules {
        let users: BTreeSet<String> = rule.components.iter().map(|&k| user_of(k)).collect();
        let policy = PolicyRule::from_json(&rule.all_rules[rule.index]);
        for group in &policy.api_groups {
            for resource in &policy.resources {
                for verb in &policy.verbs {
                    if NEEDED_UNEXERCISED.contains(&(
                        group.as_str(),
                        resource.as_str(),
                        verb.as_str(),
                    )) {
                        continue;
                    }
                    let single = PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        ..policy.clone()
                    };
                    let used = records.iter().any(|r| {
                        r.allowed
                            && users.contains(&r.user)
                            && rule.namespace.as_ref().is_none_or(|ns| *ns == r.namespace)
                            && rule_allows(&r.attributes(), &single)
                    });
                    if !used {
                        unused.push(format!("{}: {verb} {group}/{resource}", rule.label()));
                    }
                }
            }
        }
    }
    unused
}

/// Where a secret could leak: every log line of the controller and the speakers, every response
/// of their HTTP APIs, every Event, and every status object and ConfigurationState.
fn revealed_anywhere(c: &Cluster, secrets: &[(String, String)], round: usize) -> Vec<String> {
    let mut texts: Vec<(String, String)> = Vec::new();
    let dir = c.lab.log_dir();
    for entry in std::fs::read_dir(dir).expect("lab log dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".log") && (name.contains("controller") || name.contains("speaker")) {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            texts.push((format!("log {name}"), text));
        }
    }
    assert!(
        texts.iter().any(|(n, _)| n.contains("speaker")),
        "no speaker log found in {}",
        dir.display()
    );
    let mut apis = vec![
        (c.controller_http(), "/api/v1/status".to_string()),
        (c.controller_http(), "/metrics".to_string()),
    ];
    for i in 1..=NODES {
        apis.push((c.speaker_http(i), "/api/v1/status".into()));
        apis.push((c.speaker_http(i), "/metrics".into()));
    }
    for kind in ["l2", "bgp", "mlb"] {
        apis.push((
            c.controller_http(),
            format!("/api/v1/services/default/lp-{kind}-{round}"),
        ));
    }
    for (addr, path) in apis {
        let body = c
            .get_text(addr, &path)
            .unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"));
        texts.push((format!("GET {addr}{path}"), body));
    }
    let client = c.client.clone();
    let events = c
        .run(async move { Api::<Event>::all(client).list(&ListParams::default()).await })
        .expect("runtime")
        .expect("events");
    assert!(!events.items.is_empty(), "no events to search");
    texts.push((
        "events".into(),
        serde_json::to_string(&events.items).unwrap_or_default(),
    ));
    for (group, kind, plural) in [
        ("ferrolb.io", "ServiceL2Status", "servicel2statuses"),
        ("ferrolb.io", "ServiceBGPStatus", "servicebgpstatuses"),
        ("ferrolb.io", "BGPSessionState", "bgpsessionstates"),
        ("ferrolb.io", "ConfigurationState", "configurationstates"),
        (METALLB_GROUP, "ConfigurationState", "configurationstates"),
    ] {
        let ns = if group == METALLB_GROUP {
            METALLB_NAMESPACE
        } else {
            NS
        };
        let objects = list_dynamic(c, dynamic(c, group, kind, plural, ns));
        texts.push((
            format!("{plural}.{group}"),
            serde_json::to_string(&objects).unwrap_or_default(),
        ));
    }
    let mut found = Vec::new();
    for (what, secret) in secrets {
        for (place, text) in &texts {
            if text.contains(secret.as_str()) {
                found.push(format!("{what} in {place}"));
            }
        }
    }
    found
}

/// The secrets of the lab: the BGP password, both membership keys, every token (whole, and a
/// JWT's signature alone, which a log could print without the rest).
fn lab_secrets(c: &Cluster) -> Vec<(String, String)> {
    let mut secrets = vec![
        (
            "the BGP password".to_string(),
            EXAMPLE_BGP_PASSWORD.to_string(),
        ),
        (
            "the speakers' membership key".to_string(),
            LAB_MEMBERSHIP_KEY.to_string(),
        ),
        ("the admin token".to_string(), c.admin_token().to_string()),
    ];
    let secrets_api: Api<Secret> = Api::namespaced(c.client.clone(), NS);
    let created = c
        .run(async move { secrets_api.get(ML_CHECK).await })
        .expect("runtime")
        .expect("the membership Secret the controller created");
    for (k, v) in created.data.unwrap_or_default() {
        secrets.push((
            format!("key {k} of the Secret the controller created"),
            String::from_utf8_lossy(&v.0).into_owned(),
        ));
    }
    for (i, token) in c.component_tokens().iter().enumerate() {
        let who = if i == 0 { "controller" } else { "speaker" };
        secrets.push((format!("the {who}'s token"), token.clone()));
        if let Some(signature) = token.rsplit('.').next().filter(|s| s.len() >= 16) {
            secrets.push((
                format!("the {who}'s token signature"),
                signature.to_string(),
            ));
        }
    }
    assert!(
        secrets.iter().all(|(_, s)| s.len() >= 8),
        "a secret too short to search for"
    );
    secrets
}

#[test]
fn rules_are_read_with_their_components() {
    let rules = rules_of(DEPLOY_RBAC);
    let speaker_secrets = rules
        .iter()
        .find(|r| r.name == "speaker-secrets")
        .expect("Role speaker-secrets");
    assert_eq!(
        speaker_secrets.components,
        BTreeSet::from([Component::Speaker])
    );
    assert_eq!(speaker_secrets.namespace.as_deref(), Some(NS));
    let controller = rules
        .iter()
        .filter(|r| r.name == "ferrolb:controller")
        .collect::<Vec<_>>();
    assert!(controller.len() > 3);
    assert!(
        controller
            .iter()
            .all(|r| r.components == BTreeSet::from([Component::Controller]))
    );
    assert_eq!(
        controller[0].label(),
        "ClusterRole/ferrolb:controller rule 0: [\"\"] services,namespaces verbs [list,watch]"
    );
}
