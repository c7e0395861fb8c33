//! helm 4 (a real client we did not write) installs, upgrades, rolls back and uninstalls the
//! project's chart against the in-memory API server: server-side apply of every kind in the
//! chart, CRDs from `crds/`, release records as protobuf Secrets found by label selector.
//!
//! The chart is `deploy/helm/ferrolb` unless `FERROLB_HELM_CHART` names another directory.
//! Run with `--nocapture` to see helm's output of every step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrolb_e2e::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use ferrolb_e2e::tools::{self, Tool};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::discovery;
use serde_json::Value;
use tokio::process::Command;

const RELEASE: &str = "ferrolb";
const NAMESPACE: &str = "ferrolb-system";
/// A value whose change must show in a workload's pod template. Adapt here when the chart's
/// values change.
const UPGRADE_VALUE_PATH: &str = "speaker.logLevel";
const UPGRADE_VALUE: &str = "debug";
/// A CRD the chart must install (and uninstall must keep).
const EXPECTED_CRD: &str = "ipaddresspools.ferrolb.io";

fn chart_dir() -> PathBuf {
    match std::env::var_os("FERROLB_HELM_CHART") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/helm/ferrolb"),
    }
}

struct Helm {
    bin: PathBuf,
    server: ApiServerHandle,
    home: PathBuf,
}

impl Helm {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .arg("--kubeconfig")
            .arg(self.server.kubeconfig_path())
            // Nothing from the developer's helm or kube configuration leaks in.
            .env("HOME", &self.home)
            .env("HELM_CACHE_HOME", self.home.join("cache"))
            .env("HELM_CONFIG_HOME", self.home.join("config"))
            .env("HELM_DATA_HOME", self.home.join("data"))
            .env_remove("KUBECONFIG")
            .env_remove("HELM_NAMESPACE")
            .env_remove("HELM_DRIVER")
            .kill_on_drop(true);
        c
    }

    /// Runs helm, prints its output, and requires success.
    async fn ok(&self, args: &[&str]) -> String {
        let out = tokio::time::timeout(Duration::from_secs(120), self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("helm {args:?} timed out"))
            .expect("run helm");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("$ helm {}\n{stdout}{stderr}", args.join(" "));
        assert!(
            out.status.success(),
            "helm {args:?} failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
        stdout
    }
}

/// One object of a rendered manifest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ObjectRef {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    name: String,
    /// Annotated `helm.sh/resource-policy: keep`: uninstall leaves it in place.
    kept_on_uninstall: bool,
}

/// The objects of `helm get manifest` output (YAML documents separated by `---`).
fn manifest_objects(manifest: &str) -> Vec<ObjectRef> {
    let mut docs = vec![String::new()];
    for line in manifest.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else if let Some(doc) = docs.last_mut() {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
        })
        .map(|d| {
            let v: Value = serde_saphyr::from_str(d)
                .unwrap_or_else(|e| panic!("manifest document is not YAML ({e}):\n{d}"));
            let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
            ObjectRef {
                api_version: s("/apiVersion").expect("apiVersion"),
                kind: s("/kind").expect("kind"),
                namespace: s("/metadata/namespace"),
                name: s("/metadata/name").expect("metadata.name"),
                kept_on_uninstall: v
                    .pointer("/metadata/annotations/helm.sh~1resource-policy")
                    .and_then(Value::as_str)
                    == Some("keep"),
            }
        })
        .collect()
}

/// The server's resource for an apiVersion/kind and whether it is namespaced.
async fn resource_of(client: &kube::Client, api_version: &str, kind: &str) -> (ApiResource, bool) {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let (ar, caps) = discovery::pinned_kind(client, &GroupVersionKind::gvk(group, version, kind))
        .await
        .unwrap_or_else(|e| panic!("the server does not serve {api_version} {kind}: {e}"));
    (ar, caps.scope == discovery::Scope::Namespaced)
}

/// The live object, or `None` when it does not exist.
async fn live(client: &kube::Client, obj: &ObjectRef) -> Option<DynamicObject> {
    let (ar, namespaced) = resource_of(client, &obj.api_version, &obj.kind).await;
    let api: Api<DynamicObject> = if namespaced {
        let ns = obj.namespace.as_deref().unwrap_or(NAMESPACE);
        Api::namespaced_with(client.clone(), ns, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    };
    api.get_opt(&obj.name)
        .await
        .unwrap_or_else(|e| panic!("get {obj:?}: {e}"))
}

/// (kind/name -> (generation, pod template)) of every Deployment and DaemonSet.
async fn workload_templates(
    client: &kube::Client,
    objects: &[ObjectRef],
) -> BTreeMap<String, (i64, Value)> {
    let mut out = BTreeMap::new();
    for o in objects
        .iter()
        .filter(|o| matches!(o.kind.as_str(), "Deployment" | "DaemonSet"))
    {
        let obj = live(client, o)
            .await
            .unwrap_or_else(|| panic!("{} {} is missing", o.kind, o.name));
        let generation = obj
            .metadata
            .generation
            .expect("workloads have a generation");
        out.insert(
            format!("{}/{}", o.kind, o.name),
            (generation, obj.data["spec"]["template"].clone()),
        );
    }
    out
}

/// helm's release records: (name, labels) of the Secrets labelled owner=helm.
async fn release_secrets(client: &kube::Client) -> Vec<(String, BTreeMap<String, String>)> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let mut out: Vec<_> = secrets
        .list(&ListParams::default().labels(&format!("owner=helm,name={RELEASE}")))
        .await
        .expect("list release secrets")
        .items
        .into_iter()
        .map(|s| {
            assert_eq!(s.type_.as_deref(), Some("helm.sh/release.v1"));
            (
                s.metadata.name.unwrap_or_default(),
                s.metadata.labels.unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

fn label<'a>(labels: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    labels.get(key).map(String::as_str).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_rollback_uninstall() {
    let Some(bin) = tools::for_test(Tool::Helm, "helm_install_upgrade_rollback_uninstall") else {
        return;
    };
    let chart = chart_dir();
    assert!(
        chart.join("Chart.yaml").is_file(),
        "no chart at {} (set FERROLB_HELM_CHART to test another chart directory)",
        chart.display()
    );
    let chart = chart.display().to_string();
    let server = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("start apiserver");
    let home = std::env::temp_dir().join(format!(
        "ferrolb-helm-{}-{}",
        std::process::id(),
        server.addr().port()
    ));
    std::fs::create_dir_all(&home).expect("helm home");
    let client = server.client().expect("kube client");
    let helm = Helm { bin, server, home };
    let ns_args = ["--namespace", NAMESPACE];

    // Install.
    let mut install = vec!["install", RELEASE, &chart, "--create-namespace"];
    install.extend(ns_args);
    let out = helm.ok(&install).await;
    assert!(out.contains("STATUS: deployed"), "{out}");

    let mut get_manifest = vec!["get", "manifest", RELEASE];
    get_manifest.extend(ns_args);
    let objects = manifest_objects(&helm.ok(&get_manifest).await);
    let kinds: Vec<&str> = objects.iter().map(|o| o.kind.as_str()).collect();
    for kind in [
        "Deployment",
        "DaemonSet",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
    ] {
        assert!(
            kinds.contains(&kind),
            "the chart renders no {kind}: {kinds:?}"
        );
    }
    for o in &objects {
        let obj = live(&client, o)
            .await
            .unwrap_or_else(|| panic!("after install, {o:?} does not exist"));
        let annotations = obj.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations
                .get("meta.helm.sh/release-name")
                .map(String::as_str),
            Some(RELEASE),
            "{o:?} lacks helm's ownership annotation"
        );
        let managers: Vec<String> = obj
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.manager)
            .collect();
        assert!(
            managers.iter().any(|m| m == "helm"),
            "{o:?} was not applied by helm: managers {managers:?}"
        );
    }

    // CRDs from crds/ are installed and established.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let project_crds: Vec<CustomResourceDefinition> = crds
        .list(&ListParams::default())
        .await
        .expect("list CRDs")
        .items
        .into_iter()
        .filter(|c| c.spec.group == "ferrolb.io")
        .collect();
    let crd_names: Vec<String> = project_crds
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert!(
        crd_names.iter().any(|n| n == EXPECTED_CRD),
        "{EXPECTED_CRD} not installed: {crd_names:?}"
    );
    for crd in &project_crds {
        let established = crd
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        assert!(
            established,
            "CRD {:?} is not Established",
            crd.metadata.name
        );
    }

    // The release record: a Secret with helm's labels.
    let records = release_secrets(&client).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let (name, labels) = &records[0];
    assert_eq!(name, &format!("sh.helm.release.v1.{RELEASE}.v1"));
    assert_eq!(label(labels, "owner"), "helm", "{labels:?}");
    assert_eq!(label(labels, "status"), "deployed", "{labels:?}");
    assert_eq!(label(labels, "version"), "1", "{labels:?}");

    let mut list = vec!["list"];
    list.extend(ns_args);
    let out = helm.ok(&list).await;
    assert!(
        out.lines()
            .any(|l| l.starts_with(RELEASE) && l.contains("deployed")),
        "{out}"
    );
    let mut status = vec!["status", RELEASE];
    status.extend(ns_args);
    let out = helm.ok(&status).await;
    assert!(
        out.contains("STATUS: deployed") && out.contains("REVISION: 1"),
        "{out}"
    );

    // Upgrade with a value that changes a workload's pod template.
    let before = workload_templates(&client, &objects).await;
    let set = format!("{UPGRADE_VALUE_PATH}={UPGRADE_VALUE}");
    let mut upgrade = vec!["upgrade", RELEASE, &chart, "--set", &set];
    upgrade.extend(ns_args);
    let out = helm.ok(&upgrade).await;
    assert!(out.contains("REVISION: 2"), "{out}");
    let after = workload_templates(&client, &objects).await;
    let changed: Vec<&String> = after
        .iter()
        .filter(|(k, (_, t))| before.get(*k).is_some_and(|(_, old)| old != t))
        .map(|(k, _)| k)
        .collect();
    assert!(
        !changed.is_empty(),
        "--set {set} changed no Deployment/DaemonSet pod template"
    );
    for k in &changed {
        let (generation, template) = &after[*k];
        assert_eq!(
            *generation,
            before[*k].0 + 1,
            "{k}: the template changed but the generation did not advance"
        );
        assert!(
            template.to_string().contains(UPGRADE_VALUE),
            "{k}: the new template does not carry {UPGRADE_VALUE:?}: {template}"
        );
    }
    for (k, (generation, template)) in &after {
        if !changed.contains(&k) {
            assert_eq!(
                (generation, template),
                (&before[k].0, &before[k].1),
                "{k} changed without a template change"
            );
        }
    }
    let records = release_secrets(&client).await;
    let status_of = |v: &str| {
        records
            .iter()
            .find(|(_, l)| label(l, "version") == v)
            .map(|(_, l)| label(l, "status").to_string())
    };
    assert_eq!(status_of("1").as_deref(), Some("superseded"), "{records:?}");
    assert_eq!(status_of("2").as_deref(), Some("deployed"), "{records:?}");

    // Rollback to the first revision restores its templates.
    let mut rollback = vec!["rollback", RELEASE, "1"];
    rollback.extend(ns_args);
    helm.ok(&rollback).await;
    let rolled_back = workload_templates(&client, &objects).await;
    for (k, (generation, template)) in &rolled_back {
        assert_eq!(
            template, &before[k].1,
            "{k}: rollback did not restore the template"
        );
        if changed.contains(&k) {
            assert_eq!(
                *generation,
                after[k].0 + 1,
                "{k}: generation after rollback"
            );
        }
    }
    let out = helm.ok(&status).await;
    assert!(
        out.contains("STATUS: deployed") && out.contains("REVISION: 3"),
        "{out}"
    );

    // Uninstall removes every object of the release and its records; CRDs and objects
    // annotated `helm.sh/resource-policy: keep` stay.
    let mut uninstall = vec!["uninstall", RELEASE];
    uninstall.extend(ns_args);
    let out = helm.ok(&uninstall).await;
    assert!(
        out.contains(&format!("release \"{RELEASE}\" uninstalled")),
        "{out}"
    );
    for o in &objects {
        let exists = live(&client, o).await.is_some();
        if o.kept_on_uninstall {
            assert!(
                exists,
                "uninstall removed {o:?} despite resource-policy keep"
            );
        } else {
            assert!(!exists, "after uninstall, {o:?} still exists");
        }
    }
    let records = release_secrets(&client).await;
    assert!(records.is_empty(), "release records left: {records:?}");
    for name in &crd_names {
        assert!(
            crds.get_opt(name).await.expect("get CRD").is_some(),
            "uninstall removed CRD {name}; helm keeps CRDs from crds/"
        );
    }
    let out = helm.ok(&list).await;
    assert!(!out.lines().any(|l| l.starts_with(RELEASE)), "{out}");

    let Helm { server, home, .. } = helm;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(home);
}
