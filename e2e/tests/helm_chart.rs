//! The Helm chart in deploy/helm/ferrolb, offline: `helm lint --strict`, what `helm template`
//! renders for the defaults and for chosen values (HTTPS probes, the token-review RBAC), the
//! opt-in objects (ServiceMonitor or PodMonitor, PrometheusRule) and the NetworkPolicy, the
//! values schema's rejections, the built-in objects against the Kubernetes API schemas
//! (kubernetes-validate, 1.29 and 1.35), agreement with `kubectl kustomize deploy`, and the
//! chart's CRDs being deploy/crds.yaml byte for byte.
//!
//! The tools are the pinned ones of `scripts/install-tools.sh` (`ferrolb_e2e::tools`): a test
//! whose tool is missing skips with a printed reason, or fails when `CI` is set. helm runs with
//! a private HOME and HELM_*_HOME and a kubeconfig that does not exist, so nothing on the
//! machine leaks in and no cluster is contacted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use ferrolb_e2e::tools::{self, Tool};
use serde_json::{Value, json};

const NAMESPACE: &str = "ferrolb-system";
const RELEASE: &str = "ferrolb";
const REPOSITORY: &str = "ghcr.io/ferrolb/ferrolb";
/// The labels (on metadata) that Helm's conventions add and deploy/ does not carry.
const HELM_LABELS: [&str; 3] = [
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
];
/// Every opt-in, with the ServiceMonitor (the PodMonitor excludes it).
const OPT_INS_SERVICE_MONITOR: &[&str] = &[
    "prometheus.serviceMonitor.enabled=true",
    "prometheus.rules.enabled=true",
    "networkPolicy.enabled=true",
];
/// Every opt-in, with the PodMonitor.
const OPT_INS_POD_MONITOR: &[&str] = &[
    "prometheus.podMonitor.enabled=true",
    "prometheus.podMonitor.bearerTokenSecret.name=prometheus-token",
    "prometheus.rules.enabled=true",
    "networkPolicy.enabled=true",
];
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn repo_path(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    assert!(p.exists(), "{} is missing", p.display());
    p
}

fn chart_dir() -> PathBuf {
    repo_path("deploy/helm/ferrolb")
}

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "ferrolb-helm-chart-{test}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(mut cmd: Command) -> Out {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The pinned helm with a private home.
struct Helm {
    bin: PathBuf,
    tmp: TempDir,
}

impl Helm {
    fn new(test: &str) -> Option<Helm> {
        let bin = tools::for_test(Tool::Helm, test)?;
        let tmp = TempDir::new(test);
        for d in ["home", "cache", "config", "data"] {
            std::fs::create_dir_all(tmp.path().join(d)).expect("helm dirs");
        }
        Some(Helm { bin, tmp })
    }

    fn command(&self, args: &[&str]) -> Command {
        let t = self.tmp.path();
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("HOME", t.join("home"))
            .env("HELM_CACHE_HOME", t.join("cache"))
            .env("HELM_CONFIG_HOME", t.join("config"))
            .env("HELM_DATA_HOME", t.join("data"))
            .env("KUBECONFIG", t.join("no-kubeconfig"))
            .env_remove("HELM_NAMESPACE")
            .env_remove("HELM_KUBECONTEXT")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME");
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        run(self.command(args))
    }

    /// `helm template` of the chart in `NAMESPACE` with `--set` values and extra flags.
    fn template_out(&self, sets: &[&str], extra: &[&str]) -> Out {
        let chart = chart_dir().display().to_string();
        let mut args = vec![
            "template",
            RELEASE,
            chart.as_str(),
            "--namespace",
            NAMESPACE,
        ];
        for s in sets {
            args.push("--set");
            args.push(s);
        }
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// The rendered objects; panics when helm fails.
    fn template(&self, sets: &[&str], extra: &[&str]) -> Vec<Value> {
        let out = self.template_out(sets, extra);
        assert!(
            out.ok,
            "helm template {sets:?} {extra:?} failed:\n{}",
            out.stderr
        );
        parse_docs(&out.stdout)
    }

    /// The rendered objects for a values file.
    fn template_values(&self, values_yaml: &str) -> Vec<Value> {
        let f = self.tmp.write("values.yaml", values_yaml);
        let f = f.display().to_string();
        self.template(&[], &["--values", &f])
    }
}

fn parse_docs(text: &str) -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("bad YAML: {e}\n{text}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// The one object of `kind` named `name`; panics if there is not exactly one.
fn find<'a>(objs: &'a [Value], k: &str, n: &str) -> &'a Value {
    let found: Vec<&Value> = objs
        .iter()
        .filter(|o| kind(o) == k && name(o) == n)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {k} {n}, found {}",
        found.len()
    );
    found[0]
}

fn has(objs: &[Value], k: &str) -> bool {
    objs.iter().any(|o| kind(o) == k)
}

/// (kind, name) of every object, sorted.
fn inventory(objs: &[Value]) -> BTreeSet<(String, String)> {
    objs.iter()
        .map(|o| (kind(o).to_string(), name(o).to_string()))
        .collect()
}

fn container<'a>(objs: &'a [Value], k: &str, n: &str) -> &'a Value {
    let c = &find(objs, k, n)["spec"]["template"]["spec"]["containers"][0];
    assert!(c.is_object(), "{k} {n} has no container");
    c
}

fn args(c: &Value) -> Vec<String> {
    c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

fn env(c: &Value, var: &str) -> Option<String> {
    c["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == var)
        .and_then(|e| e["value"].as_str())
        .map(str::to_string)
}

fn port<'a>(c: &'a Value, port_name: &str) -> Option<&'a Value> {
    c["ports"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == port_name)
}

fn app_version() -> String {
    let chart: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml parses");
    chart["appVersion"]
        .as_str()
        .expect("appVersion is a string")
        .to_string()
}

/// Every `ferrolb_*` metric name the binaries register, from their metrics modules: the
/// registry prefix joined to each registered name, and `_total` variants (counters). The
/// speaker's metrics are one file per subsystem; MetalLB's names (`metallb.rs`, and the
/// controller's `MetallbMetrics`) are not `ferrolb_*` and are left out.
fn exported_metric_names() -> BTreeSet<String> {
    let speaker_dir = repo_path("speaker/src/metrics");
    let mut sources = vec![(
        "ferrolb_controller",
        "controller/src/metrics.rs".to_string(),
    )];
    for entry in std::fs::read_dir(&speaker_dir).expect("speaker/src/metrics") {
        let file = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .to_string();
        if file.ends_with(".rs") && file != "metallb.rs" {
            sources.push(("ferrolb_speaker", format!("speaker/src/metrics/{file}")));
        }
    }
    for (prefix, module) in [
        ("ferrolb_controller", "controller/src/metrics.rs"),
        ("ferrolb_speaker", "speaker/src/metrics/mod.rs"),
    ] {
        let src = std::fs::read_to_string(repo_path(module)).expect("metrics source");
        assert!(
            src.contains(&format!("with_prefix(\"{prefix}\")")),
            "{module}: no registry with prefix {prefix}"
        );
    }
    let mut names = BTreeSet::new();
    for (prefix, file) in &sources {
        let mut src = std::fs::read_to_string(repo_path(file)).expect("metrics source");
        // The controller's MetalLB names come after its own.
        if let Some(at) = src.find("pub struct MetallbMetrics") {
            src.truncate(at);
        }
        for part in src.split(".register(").skip(1) {
            let Some(registered) = part.split('"').nth(1) else {
                continue;
            };
            names.insert(format!("{prefix}_{registered}"));
            names.insert(format!("{prefix}_{registered}_total"));
        }
    }
    assert!(
        names.len() > 20,
        "too few metrics found in the sources: {names:?}"
    );
    names
}

/// `ferrolb_…` identifiers in a PromQL expression.
fn metrics_in(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("ferrolb_"))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// (1) helm lint --strict

#[test]
fn lint_strict_with_defaults_and_with_every_opt_in() {
    let Some(helm) = Helm::new("lint_strict_with_defaults_and_with_every_opt_in") else {
        return;
    };
    let chart = chart_dir().display().to_string();
    for sets in [&[][..], OPT_INS_SERVICE_MONITOR, OPT_INS_POD_MONITOR] {
        let mut a = vec!["lint", "--strict", chart.as_str(), "--namespace", NAMESPACE];
        for s in sets {
            a.push("--set");
            a.push(s);
        }
        let out = helm.run(&a);
        assert!(
            out.ok && out.stdout.contains("0 chart(s) failed"),
            "helm lint --strict {sets:?} failed:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }
    // Lint runs the schema and the templates: a wrong value must make it fail.
    let out = helm.run(&["lint", "--strict", &chart, "--set", "controller.replicas=0"]);
    assert!(
        !out.ok,
        "lint accepted controller.replicas=0:\n{}",
        out.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// (2) helm template: key facts

#[test]
fn template_defaults() {
    let Some(helm) = Helm::new("template_defaults") else {
        return;
    };
    let objs = helm.template(&[], &[]);
    let expected: BTreeSet<(String, String)> = [
        ("ServiceAccount", "controller"),
        ("ServiceAccount", "speaker"),
        ("Secret", "memberlist"),
        ("ClusterRole", "ferrolb:controller"),
        ("ClusterRole", "ferrolb:speaker"),
        ("ClusterRole", "ferrolb:auth-delegator"),
        ("ClusterRole", "ferrolb:metrics-reader"),
        ("ClusterRole", "ferrolb:status-reader"),
        ("ClusterRoleBinding", "ferrolb:controller"),
        ("ClusterRoleBinding", "ferrolb:speaker"),
        ("ClusterRoleBinding", "ferrolb:auth-delegator"),
        ("NetworkPolicy", "controller"),
        ("Role", "controller-leader-election"),
        ("Role", "controller-namespaced"),
        ("Role", "speaker-secrets"),
        ("Role", "speaker-status-objects"),
        ("RoleBinding", "controller-leader-election"),
        ("RoleBinding", "controller-namespaced"),
        ("RoleBinding", "speaker-secrets"),
        ("RoleBinding", "speaker-status-objects"),
        ("Deployment", "controller"),
        ("DaemonSet", "speaker"),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    assert_eq!(inventory(&objs), expected, "the default render's objects");
    for o in &objs {
        if o["metadata"]["namespace"].is_string() {
            assert_eq!(o["metadata"]["namespace"], NAMESPACE, "{}", name(o));
        }
        let labels = &o["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], "ferrolb", "{o}");
        assert_eq!(labels["app.kubernetes.io/instance"], RELEASE, "{o}");
    }

    let image = format!("{REPOSITORY}:{}", app_version());
    assert_eq!(image, "ghcr.io/ferrolb/ferrolb:0.1.0");

    // The controller: versioned image, flags, RUST_LOG, non-root, read-only, nothing added.
    let deploy = find(&objs, "Deployment", "controller");
    assert_eq!(deploy["spec"]["replicas"], 2);
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "controller");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(
        pod["hostNetwork"].is_null(),
        "controller must not use hostNetwork"
    );
    assert!(pod["tolerations"].is_null() && pod["priorityClassName"].is_null());
    let c = container(&objs, "Deployment", "controller");
    assert_eq!(c["image"], image.as_str());
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["command"], json!(["/ferrolb-controller", "run"]));
    assert_eq!(
        args(c),
        ["--namespace=$(POD_NAMESPACE)", "--listen=0.0.0.0:7472"]
    );
    assert_eq!(env(c, "RUST_LOG").as_deref(), Some("info"));
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"], json!({"drop": ["ALL"]}));
    assert!(sc["privileged"].is_null() && sc["runAsUser"].is_null());
    assert_eq!(port(c, "http").expect("http port")["containerPort"], 7472);
    check_https_probes(c);
    assert!(
        c["volumeMounts"].is_null() && pod["volumes"].is_null(),
        "no TLS Secret by default: the certificate is self-signed"
    );

    // The speaker: host network, root with exactly deploy/'s capabilities, every taint.
    let ds = find(&objs, "DaemonSet", "speaker");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["serviceAccountName"], "speaker");
    assert_eq!(pod["tolerations"], json!([{"operator": "Exists"}]));
    let c = container(&objs, "DaemonSet", "speaker");
    assert_eq!(c["image"], image.as_str());
    assert_eq!(c["command"], json!(["/ferrolb-speaker", "run"]));
    assert_eq!(
        args(c),
        [
            "--node-name=$(NODE_NAME)",
            "--namespace=$(POD_NAMESPACE)",
            "--listen=0.0.0.0:7473",
            "--membership-port=7946",
        ]
    );
    assert_eq!(env(c, "RUST_LOG").as_deref(), Some("info"));
    let membership = port(c, "membership").expect("membership port");
    assert_eq!(membership["containerPort"], 7946);
    assert_eq!(membership["protocol"], "UDP");
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsUser"], 0);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert!(
        sc["privileged"].is_null(),
        "the speaker must not be privileged"
    );
    assert_eq!(
        sc["capabilities"],
        json!({"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN", "BPF", "SYS_NICE"]})
    );
    check_https_probes(c);

    // Both components may review tokens and access (their HTTP APIs' checks), nothing more of
    // system:auth-delegator; readers of /metrics and /api/* are roles to bind, bound to nobody.
    assert_eq!(
        find(&objs, "ClusterRole", "ferrolb:auth-delegator")["rules"],
        json!([
            {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
            {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
        ])
    );
    let binding = find(&objs, "ClusterRoleBinding", "ferrolb:auth-delegator");
    assert_eq!(binding["roleRef"]["name"], "ferrolb:auth-delegator");
    assert_eq!(
        binding["subjects"],
        json!([
            {"kind": "ServiceAccount", "name": "controller", "namespace": NAMESPACE},
            {"kind": "ServiceAccount", "name": "speaker", "namespace": NAMESPACE},
        ])
    );
    assert_eq!(
        find(&objs, "ClusterRole", "ferrolb:metrics-reader")["rules"],
        json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])
    );
    assert_eq!(
        find(&objs, "ClusterRole", "ferrolb:status-reader")["rules"],
        json!([{"nonResourceURLs": ["/api/*"], "verbs": ["get"]}])
    );
    // From the node, nothing more: the restart marker's directory and the bpffs a speaker
    // restarting in place pins its in-kernel ARP/NDP responder in (--l2-handover-dir).
    assert_eq!(
        c["volumeMounts"],
        json!([
            {"name": "restart-marker", "mountPath": "/run/ferrolb"},
            {"name": "bpffs", "mountPath": "/sys/fs/bpf", "mountPropagation": "HostToContainer"},
        ])
    );
    assert_eq!(
        pod["volumes"],
        json!([
            {"name": "restart-marker", "hostPath": {"path": "/run/ferrolb", "type": "DirectoryOrCreate"}},
            {"name": "bpffs", "hostPath": {"path": "/sys/fs/bpf", "type": "Directory"}},
        ])
    );

    // The membership key: 128 random bytes as base64 text (like `openssl rand -base64 128`),
    // kept on uninstall, different on every fresh render.
    let secret = find(&objs, "Secret", "memberlist");
    assert_eq!(
        secret["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    let key = |s: &Value| {
        s["data"]["secretkey"]
            .as_str()
            .expect("secretkey")
            .to_string()
    };
    let text = base64_decode(&key(secret));
    let raw = base64_decode(std::str::from_utf8(&text).expect("the key is base64 text"));
    assert_eq!(raw.len(), 128, "the key must be 128 random bytes");
    let again = helm.template(&[], &[]);
    assert_ne!(
        key(secret),
        key(find(&again, "Secret", "memberlist")),
        "two fresh renders gave the same membership key: it is not random"
    );

    // No CRDs among the templates: they live in crds/ and come only with --include-crds.
    assert!(!has(&objs, "CustomResourceDefinition"));
    let with_crds = helm.template(&[], &["--include-crds"]);
    assert_eq!(
        with_crds
            .iter()
            .filter(|o| kind(o) == "CustomResourceDefinition")
            .count(),
        ferrolb_api::crds::all().len()
    );
}

/// The container's probes: /healthz and /readyz over HTTPS on the http port.
fn check_https_probes(c: &Value) {
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(
            c[probe]["httpGet"],
            json!({"path": path, "port": "http", "scheme": "HTTPS"}),
            "{probe}"
        );
    }
}

/// Decodes standard base64 (with padding).
fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let s = s.trim().trim_end_matches('=');
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for ch in s.bytes() {
        let v = ALPHABET
            .iter()
            .position(|&a| a == ch)
            .unwrap_or_else(|| panic!("not base64: {ch:?} in {s:?}")) as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn template_applies_values() {
    let Some(helm) = Helm::new("template_applies_values") else {
        return;
    };
    let objs = helm.template_values(
        r#"
image:
  repository: registry.example/mirror/ferrolb
  tag: "0.2.0-rc.1"
  pullPolicy: Always
imagePullSecrets:
  - name: pull-secret
commonLabels:
  team: network
commonAnnotations:
  owner: netops
podLabels:
  extra-pod-label: "yes"
  app.kubernetes.io/component: not-the-selector
podAnnotations:
  scrape: "true"
loadBalancerClass: example.com/lb
configGroups: metallb.io
metallb:
  namespace: mlb
  readPasswordSecrets: true
controller:
  replicas: 3
  logLevel: "info,ferrolb_controller=debug"
  resources:
    limits:
      memory: 256Mi
  tolerations:
    - key: dedicated
      operator: Equal
      value: infra
      effect: NoSchedule
  nodeSelector:
    kubernetes.io/os: linux
  priorityClassName: system-cluster-critical
  tlsSecretName: controller-tls
speaker:
  tlsSecretName: speaker-tls
  ignoreExcludeLb: true
  excludeInterfaces: [eth9, "bond*"]
  membershipPort: 8946
  logLevel: debug
  memberlist:
    createSecret: false
  layer2:
    enabled: false
  resources:
    requests:
      cpu: 50m
  tolerations: []
  nodeSelector:
    ferrolb.io/speaker: "true"
  priorityClassName: system-node-critical
"#,
    );
    assert!(
        !has(&objs, "Secret"),
        "createSecret=false must leave the Secret out"
    );
    for o in &objs {
        assert_eq!(o["metadata"]["labels"]["team"], "network", "{o}");
        assert_eq!(o["metadata"]["annotations"]["owner"], "netops", "{o}");
    }
    for (k, n) in [("Deployment", "controller"), ("DaemonSet", "speaker")] {
        let o = find(&objs, k, n);
        let c = container(&objs, k, n);
        assert_eq!(
            c["image"], "registry.example/mirror/ferrolb:0.2.0-rc.1",
            "{k}"
        );
        assert_eq!(c["imagePullPolicy"], "Always", "{k}");
        let tpl = &o["spec"]["template"];
        assert_eq!(
            tpl["spec"]["imagePullSecrets"],
            json!([{"name": "pull-secret"}])
        );
        assert_eq!(tpl["metadata"]["labels"]["extra-pod-label"], "yes");
        // The selector labels win over podLabels, or the workload would not select its Pods.
        assert_eq!(tpl["metadata"]["labels"]["app.kubernetes.io/component"], n);
        assert_eq!(
            o["spec"]["selector"]["matchLabels"],
            json!({"app.kubernetes.io/name": "ferrolb", "app.kubernetes.io/component": n})
        );
        assert_eq!(tpl["metadata"]["annotations"], json!({"scrape": "true"}));
        assert!(
            tpl["metadata"]["labels"]["team"].is_null(),
            "commonLabels are not Pod labels"
        );
        // The TLS Secret: mounted read-only and passed as the certificate and key files.
        // (The speaker mounts its restart-marker directory beside it.)
        let has = |list: &serde_json::Value, item: serde_json::Value| {
            list.as_array().is_some_and(|l| l.contains(&item))
        };
        assert!(
            has(
                &tpl["spec"]["volumes"],
                json!({"name": "tls", "secret": {"secretName": format!("{n}-tls")}})
            ),
            "{k}: {}",
            tpl["spec"]["volumes"]
        );
        assert!(
            has(
                &c["volumeMounts"],
                json!({"name": "tls", "mountPath": "/etc/ferrolb/tls", "readOnly": true})
            ),
            "{k}: {}",
            c["volumeMounts"]
        );
        let a = args(c);
        for flag in [
            "--tls-cert-file=/etc/ferrolb/tls/tls.crt",
            "--tls-key-file=/etc/ferrolb/tls/tls.key",
        ] {
            assert!(a.contains(&flag.to_string()), "{k}: {a:?}");
        }
    }

    let deploy = find(&objs, "Deployment", "controller");
    assert_eq!(deploy["spec"]["replicas"], 3);
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    let c = container(&objs, "Deployment", "controller");
    assert_eq!(
        env(c, "RUST_LOG").as_deref(),
        Some("info,ferrolb_controller=debug")
    );
    // Helm merges maps with the defaults: the default requests stay.
    assert_eq!(
        c["resources"],
        json!({"limits": {"memory": "256Mi"}, "requests": {"cpu": "20m", "memory": "32Mi"}})
    );

    let ds = find(&objs, "DaemonSet", "speaker");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["nodeSelector"], json!({"ferrolb.io/speaker": "true"}));
    assert!(
        pod["tolerations"].is_null(),
        "empty tolerations render none"
    );
    let c = container(&objs, "DaemonSet", "speaker");
    assert_eq!(env(c, "RUST_LOG").as_deref(), Some("debug"));
    assert_eq!(
        c["resources"],
        json!({"limits": {"memory": "128Mi"}, "requests": {"cpu": "50m", "memory": "32Mi"}})
    );
    let a = args(c);
    assert!(a.contains(&"--membership-port=8946".to_string()), "{a:?}");
    let excludes: Vec<&String> = a
        .iter()
        .filter(|x| x.starts_with("--exclude-interface"))
        .collect();
    assert_eq!(
        excludes,
        ["--exclude-interface=eth9", "--exclude-interface=bond*"]
    );
    assert!(a.contains(&"--disable-layer2".to_string()), "{a:?}");
    assert!(!a.contains(&"--disable-bgp".to_string()), "{a:?}");
    assert!(a.contains(&"--ignore-exclude-lb".to_string()), "{a:?}");
    // MetalLB's flags, on both components.
    for (k, n) in [("Deployment", "controller"), ("DaemonSet", "speaker")] {
        let a = args(container(&objs, k, n));
        for flag in [
            "--lb-class=example.com/lb",
            "--config-groups=metallb.io",
            "--metallb-namespace=mlb",
        ] {
            assert!(
                a.contains(&flag.to_string()),
                "{n}: {flag} missing in {a:?}"
            );
        }
    }
    // The speakers may read the password Secrets of MetalLB's namespace.
    let role = find(&objs, "Role", "ferrolb-speaker-secrets");
    assert_eq!(role["metadata"]["namespace"], "mlb");
    assert_eq!(role["rules"][0]["resources"], json!(["secrets"]));
    let binding = find(&objs, "RoleBinding", "ferrolb-speaker-secrets");
    assert_eq!(binding["subjects"][0]["name"], "speaker");
    assert_eq!(port(c, "membership").expect("port")["containerPort"], 8946);

    // The other mode off; membership off (port 0: the flag says so, no container port).
    let objs = helm.template(
        &["speaker.bgp.enabled=false", "speaker.membershipPort=0"],
        &[],
    );
    let c = container(&objs, "DaemonSet", "speaker");
    let a = args(c);
    assert!(a.contains(&"--disable-bgp".to_string()), "{a:?}");
    assert!(!a.contains(&"--disable-layer2".to_string()), "{a:?}");
    assert!(a.contains(&"--membership-port=0".to_string()), "{a:?}");
    assert!(port(c, "membership").is_none());

    // A digest wins over the tag, for both images.
    let objs = helm.template(
        &[
            &format!("image.digest={DIGEST}"),
            "image.tag=9.9.9",
            "speaker.logLevel=debug",
        ],
        &[],
    );
    for (k, n) in [("Deployment", "controller"), ("DaemonSet", "speaker")] {
        assert_eq!(
            container(&objs, k, n)["image"],
            format!("{REPOSITORY}@{DIGEST}").as_str()
        );
    }
    // The upgrade value the install test uses reaches only the speaker.
    assert_eq!(
        env(container(&objs, "DaemonSet", "speaker"), "RUST_LOG").as_deref(),
        Some("debug")
    );
    assert_eq!(
        env(container(&objs, "Deployment", "controller"), "RUST_LOG").as_deref(),
        Some("info")
    );
}

#[test]
fn notes_say_what_to_do_next() {
    let Some(helm) = Helm::new("notes_say_what_to_do_next") else {
        return;
    };
    let chart = chart_dir().display().to_string();
    let install = |sets: &[&str]| {
        let mut a = vec![
            "install",
            RELEASE,
            chart.as_str(),
            "--namespace",
            NAMESPACE,
            "--dry-run=client",
        ];
        for s in sets {
            a.push("--set");
            a.push(s);
        }
        let out = helm.run(&a);
        assert!(
            out.ok,
            "helm install --dry-run=client failed:\n{}",
            out.stderr
        );
        out.stdout
            .split_once("NOTES:")
            .map(|(_, n)| n.to_string())
            .unwrap_or_else(|| panic!("no NOTES in\n{}", out.stdout))
    };
    let notes = install(&[]);
    for needle in [
        "IPAddressPool",
        "L2Advertisement",
        "BGPPeer",
        "deploy/examples",
        "pod-security.kubernetes.io/enforce=privileged",
        &format!("{REPOSITORY}:{}", app_version()),
    ] {
        assert!(notes.contains(needle), "NOTES lack {needle:?}:\n{notes}");
    }
    assert!(!notes.contains("create secret generic memberlist"));
    assert!(
        notes.contains("--clusterrole=ferrolb:metrics-reader"),
        "the NOTES must say how to let Prometheus read /metrics:\n{notes}"
    );
    let bound = install(&[
        "prometheus.metricsReader.serviceAccounts[0].name=prometheus-k8s",
        "prometheus.metricsReader.serviceAccounts[0].namespace=monitoring",
    ]);
    assert!(
        !bound.contains("create clusterrolebinding"),
        "with Prometheus bound by the chart the NOTES do not ask for a binding:\n{bound}"
    );
    let notes = install(&["speaker.memberlist.createSecret=false"]);
    assert!(
        notes.contains("create secret generic memberlist"),
        "without the chart's Secret the NOTES must say how to create it:\n{notes}"
    );
}

// ---------------------------------------------------------------------------------------------
// Opt-ins

#[test]
fn opt_ins_render_only_when_enabled() {
    let Some(helm) = Helm::new("opt_ins_render_only_when_enabled") else {
        return;
    };
    let defaults = helm.template(&[], &[]);
    for k in ["ServiceMonitor", "PodMonitor", "PrometheusRule", "Service"] {
        assert!(!has(&defaults, k), "{k} rendered by default");
    }
    assert!(
        !has(
            &helm.template(&["networkPolicy.enabled=false"], &[]),
            "NetworkPolicy"
        ),
        "networkPolicy.enabled=false renders no NetworkPolicy"
    );
    assert!(
        !defaults
            .iter()
            .any(|o| kind(o) == "ClusterRoleBinding" && name(o) == "ferrolb:metrics-reader"),
        "ferrolb:metrics-reader is bound to nobody by default"
    );

    // ServiceMonitor: a headless Service per component, selected by the monitor, port http.
    let objs = helm.template(OPT_INS_SERVICE_MONITOR, &[]);
    assert!(!has(&objs, "PodMonitor"));
    let sm = find(&objs, "ServiceMonitor", "ferrolb");
    check_prometheus_operator_object(sm);
    let selector = sm["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels");
    assert_eq!(
        sm["spec"]["namespaceSelector"]["matchNames"],
        json!([NAMESPACE])
    );
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    // HTTPS with Prometheus's own token, accepting the self-signed certificates by default.
    assert_eq!(endpoint["scheme"], "https");
    assert_eq!(
        endpoint["bearerTokenFile"],
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    );
    assert_eq!(endpoint["tlsConfig"], json!({"insecureSkipVerify": true}));
    for (component, port_number) in [("controller", 7472), ("speaker", 7473)] {
        let svc = find(&objs, "Service", &format!("{component}-metrics"));
        let labels = svc["metadata"]["labels"].as_object().expect("labels");
        for (k, v) in selector {
            assert_eq!(
                labels.get(k),
                Some(v),
                "ServiceMonitor does not select {component}"
            );
        }
        assert_eq!(labels["app.kubernetes.io/component"], component);
        assert_eq!(
            svc["spec"]["selector"],
            json!({"app.kubernetes.io/name": "ferrolb", "app.kubernetes.io/component": component})
        );
        assert_eq!(svc["spec"]["ports"][0]["name"], endpoint["port"]);
        assert_eq!(svc["spec"]["ports"][0]["port"], port_number);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    }

    // PodMonitor: selects both components' Pods by their port name.
    let objs = helm.template(OPT_INS_POD_MONITOR, &[]);
    assert!(!has(&objs, "ServiceMonitor") && !has(&objs, "Service"));
    let pm = find(&objs, "PodMonitor", "ferrolb");
    check_prometheus_operator_object(pm);
    let ep = &pm["spec"]["podMetricsEndpoints"][0];
    assert_eq!(ep["path"], "/metrics");
    assert_eq!(ep["scheme"], "https");
    assert_eq!(
        ep["bearerTokenSecret"],
        json!({"name": "prometheus-token", "key": "token"})
    );
    assert_eq!(ep["tlsConfig"], json!({"insecureSkipVerify": true}));
    for (k, n) in [("Deployment", "controller"), ("DaemonSet", "speaker")] {
        let pod_labels = &find(&objs, k, n)["spec"]["template"]["metadata"]["labels"];
        for (lk, lv) in pm["spec"]["selector"]["matchLabels"]
            .as_object()
            .expect("matchLabels")
        {
            assert_eq!(&pod_labels[lk], lv, "PodMonitor does not select {n}");
        }
        assert!(
            pm["spec"]["selector"]["matchExpressions"][0]["values"]
                .as_array()
                .expect("values")
                .contains(&json!(n))
        );
        assert!(port(container(&objs, k, n), ep["port"].as_str().expect("port")).is_some());
    }

    // A PodMonitor without a token Secret: refused with a message naming the value.
    let out = helm.template_out(&["prometheus.podMonitor.enabled=true"], &[]);
    assert!(
        !out.ok
            && out
                .stderr
                .contains("prometheus.podMonitor.bearerTokenSecret.name is empty"),
        "{}",
        out.stderr
    );

    // A CA instead of insecureSkipVerify, and Prometheus bound to the metrics reader.
    let objs = helm.template_values(
        r#"
prometheus:
  serviceMonitor:
    enabled: true
  tlsConfig:
    ca:
      secret:
        name: ferrolb-ca
        key: ca.crt
    serverName: ferrolb.example
  metricsReader:
    serviceAccounts:
      - name: prometheus-k8s
        namespace: monitoring
"#,
    );
    assert_eq!(
        find(&objs, "ServiceMonitor", "ferrolb")["spec"]["endpoints"][0]["tlsConfig"],
        json!({"ca": {"secret": {"name": "ferrolb-ca", "key": "ca.crt"}}, "serverName": "ferrolb.example"})
    );
    let binding = find(&objs, "ClusterRoleBinding", "ferrolb:metrics-reader");
    assert_eq!(binding["roleRef"]["name"], "ferrolb:metrics-reader");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "prometheus-k8s", "namespace": "monitoring"}])
    );

    // Both monitors at once: refused with a message naming them.
    let out = helm.template_out(
        &[
            "prometheus.serviceMonitor.enabled=true",
            "prometheus.podMonitor.enabled=true",
        ],
        &[],
    );
    assert!(!out.ok && out.stderr.contains("prometheus.podMonitor.enabled"));
}

/// The fields the Prometheus Operator requires, checked here because kubernetes-validate has
/// no schemas for its kinds.
fn check_prometheus_operator_object(o: &Value) {
    assert_eq!(o["apiVersion"], "monitoring.coreos.com/v1", "{o}");
    assert_eq!(o["metadata"]["namespace"], NAMESPACE, "{o}");
    assert!(!name(o).is_empty(), "{o}");
    let spec = &o["spec"];
    match kind(o) {
        "ServiceMonitor" | "PodMonitor" => {
            let eps = if kind(o) == "ServiceMonitor" {
                &spec["endpoints"]
            } else {
                &spec["podMetricsEndpoints"]
            };
            assert!(spec["selector"].is_object(), "{o}");
            let eps = eps.as_array().expect("endpoints");
            assert!(!eps.is_empty(), "{o}");
            for ep in eps {
                assert!(ep["port"].is_string() && ep["path"].is_string(), "{ep}");
                for r in ep["relabelings"].as_array().unwrap_or(&Vec::new()) {
                    assert!(r["sourceLabels"].is_array() && r["targetLabel"].is_string());
                }
            }
        }
        "PrometheusRule" => {
            let groups = spec["groups"].as_array().expect("groups");
            assert!(!groups.is_empty());
            for g in groups {
                assert!(g["name"].is_string(), "{g}");
                let rules = g["rules"].as_array().expect("rules");
                assert!(!rules.is_empty());
                for r in rules {
                    assert!(r["alert"].is_string(), "{r}");
                    assert!(
                        r["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                        "{r}"
                    );
                    let duration = r["for"].as_str().expect("for");
                    assert!(
                        duration.len() > 1
                            && duration.ends_with(['s', 'm', 'h'])
                            && duration[..duration.len() - 1]
                                .chars()
                                .all(|c| c.is_ascii_digit()),
                        "bad duration {duration:?}"
                    );
                    assert!(r["labels"]["severity"].is_string(), "{r}");
                    assert!(r["annotations"]["summary"].is_string(), "{r}");
                }
            }
        }
        other => panic!("not a Prometheus Operator kind: {other}"),
    }
}

#[test]
fn prometheus_rules_use_exported_metrics() {
    let Some(helm) = Helm::new("prometheus_rules_use_exported_metrics") else {
        return;
    };
    let objs = helm.template(
        &[
            "prometheus.rules.enabled=true",
            "prometheus.rules.poolUsagePercent=75",
            "prometheus.rules.labels.release=kube-prometheus-stack",
        ],
        &[],
    );
    let rule = find(&objs, "PrometheusRule", "ferrolb");
    check_prometheus_operator_object(rule);
    assert_eq!(
        rule["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let exported = exported_metric_names();
    let mut alerts = BTreeMap::new();
    for r in rule["spec"]["groups"][0]["rules"]
        .as_array()
        .expect("rules")
    {
        let expr = r["expr"].as_str().expect("expr");
        let used = metrics_in(expr);
        assert!(!used.is_empty(), "{expr}");
        for m in &used {
            assert!(
                exported.contains(m),
                "alert {} uses {m}, which neither binary exports",
                r["alert"]
            );
        }
        // Prometheus' own templating survives Helm's.
        for a in r["annotations"].as_object().expect("annotations").values() {
            let a = a.as_str().expect("annotation");
            assert!(!a.contains("{{`"), "unescaped Helm template in {a}");
        }
        alerts.insert(
            r["alert"].as_str().expect("alert").to_string(),
            expr.to_string(),
        );
    }
    let names: Vec<&str> = alerts.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "FerrolbAddressNotAnnounced",
            "FerrolbBFDSessionDown",
            "FerrolbBGPSessionDown",
            "FerrolbControllerConfigInvalid",
            "FerrolbPoolNearlyExhausted",
            "FerrolbSpeakerConfigInvalid",
        ]
    );
    let uses = |alert: &str, metric: &str| {
        assert!(
            metrics_in(&alerts[alert]).contains(metric),
            "{alert} should use {metric}: {}",
            alerts[alert]
        );
    };
    uses(
        "FerrolbControllerConfigInvalid",
        "ferrolb_controller_config_valid",
    );
    uses(
        "FerrolbSpeakerConfigInvalid",
        "ferrolb_speaker_config_valid",
    );
    uses(
        "FerrolbPoolNearlyExhausted",
        "ferrolb_controller_pool_addresses_in_use",
    );
    uses(
        "FerrolbPoolNearlyExhausted",
        "ferrolb_controller_pool_addresses_total",
    );
    uses(
        "FerrolbAddressNotAnnounced",
        "ferrolb_speaker_not_announced_ips",
    );
    uses("FerrolbBGPSessionDown", "ferrolb_speaker_bgp_session_up");
    uses("FerrolbBFDSessionDown", "ferrolb_speaker_bfd_session_up");
    assert!(
        alerts["FerrolbPoolNearlyExhausted"].contains(">= 75"),
        "the threshold value is not used: {}",
        alerts["FerrolbPoolNearlyExhausted"]
    );
    let peer_alert = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["alert"] == "FerrolbBGPSessionDown")
        .expect("BGP alert");
    assert!(
        peer_alert["annotations"]["description"]
            .as_str()
            .expect("description")
            .contains("{{ $labels.peer }}")
    );
}

#[test]
fn network_policy_limits_the_controller() {
    let Some(helm) = Helm::new("network_policy_limits_the_controller") else {
        return;
    };
    // By default: the HTTP port from anywhere (the API checks tokens).
    let defaults = helm.template(&[], &[]);
    let ingress = &find(&defaults, "NetworkPolicy", "controller")["spec"]["ingress"];
    assert_eq!(
        ingress,
        &json!([{"ports": [{"port": 7472, "protocol": "TCP"}]}])
    );

    let objs = helm.template(
        &[
            "networkPolicy.metrics.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring",
            "networkPolicy.metrics.podSelector.matchLabels.app=prometheus",
            "networkPolicy.apiServer.cidrs[0]=192.0.2.10/32",
        ],
        &[],
    );
    let nps: Vec<&Value> = objs.iter().filter(|o| kind(o) == "NetworkPolicy").collect();
    assert_eq!(
        nps.len(),
        1,
        "one NetworkPolicy (the speaker is hostNetwork)"
    );
    let np = find(&objs, "NetworkPolicy", "controller");
    let spec = &np["spec"];
    assert_eq!(
        spec["podSelector"]["matchLabels"],
        find(&objs, "Deployment", "controller")["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    let ingress = spec["ingress"].as_array().expect("ingress");
    assert_eq!(ingress.len(), 1);
    assert_eq!(
        ingress[0]["ports"],
        json!([{"port": 7472, "protocol": "TCP"}])
    );
    assert_eq!(
        ingress[0]["from"],
        json!([{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app": "prometheus"}},
        }])
    );
    let egress = spec["egress"].as_array().expect("egress");
    assert_eq!(egress.len(), 2);
    assert_eq!(
        egress[0],
        json!({
            "ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}],
            "to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}],
        })
    );
    let dns_ports: BTreeSet<String> = egress[1]["ports"]
        .as_array()
        .expect("dns ports")
        .iter()
        .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        dns_ports,
        ["53/TCP", "53/UDP"].iter().map(|s| s.to_string()).collect()
    );
    assert_eq!(
        egress[1]["to"][0]["podSelector"]["matchLabels"],
        json!({"k8s-app": "kube-dns"})
    );
}

// ---------------------------------------------------------------------------------------------
// (3) kubernetes-validate --strict on the built-in objects

/// apiVersions whose kinds kubernetes-validate knows (built into Kubernetes).
fn is_builtin(api_version: &str) -> bool {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    group.is_empty() || group.ends_with(".k8s.io") || ["apps", "batch", "policy"].contains(&group)
}

fn kubernetes_validate(bin: &Path, tmp: &TempDir, version: &str, objs: &[&Value]) -> Out {
    let text: String = objs
        .iter()
        .map(|o| format!("---\n{}\n", serde_json::to_string(o).expect("json")))
        .collect();
    let file = tmp.write(&format!("objects-{version}.yaml"), &text);
    let mut cmd = Command::new(bin);
    cmd.args(["--strict", "-k", version])
        .arg(&file)
        .env("HOME", tmp.path());
    run(cmd)
}

#[test]
fn builtin_objects_validate_against_kubernetes_1_29_and_1_35() {
    let test = "builtin_objects_validate_against_kubernetes_1_29_and_1_35";
    let Some(helm) = Helm::new(test) else {
        return;
    };
    let Some(validate) = tools::for_test(Tool::KubernetesValidate, test) else {
        return;
    };
    let tmp = TempDir::new(test);
    // A broken object must fail, or a green run would prove nothing.
    let broken = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "x", "unexpected": true}});
    let out = kubernetes_validate(&validate, &tmp, "1.35.0", &[&broken]);
    assert!(
        !out.ok,
        "kubernetes-validate accepted an unknown field:\n{}",
        out.stdout
    );

    for version in ["1.29.0", "1.35.0"] {
        for sets in [&[][..], OPT_INS_SERVICE_MONITOR, OPT_INS_POD_MONITOR] {
            let objs = helm.template(sets, &["--include-crds", "--kube-version", version]);
            let (builtin, other): (Vec<&Value>, Vec<&Value>) = objs
                .iter()
                .partition(|o| is_builtin(o["apiVersion"].as_str().unwrap_or("")));
            // Every other kind is handled explicitly here, none is waved through.
            for o in &other {
                check_prometheus_operator_object(o);
            }
            if sets.is_empty() {
                assert!(other.is_empty(), "defaults render only built-in kinds");
            } else {
                assert_eq!(other.len(), 2, "a monitor and the rules: {other:?}");
            }
            let out = kubernetes_validate(&validate, &tmp, version, &builtin);
            let short = version.rsplit_once('.').map_or(version, |(v, _)| v);
            let passed = out
                .stdout
                .lines()
                .chain(out.stderr.lines())
                .filter(|l| l.contains("passed for resource") && l.ends_with(short))
                .count();
            let complaints: Vec<&str> = out
                .stdout
                .lines()
                .chain(out.stderr.lines())
                .filter(|l| l.starts_with("WARN") || l.starts_with("ERROR"))
                .collect();
            assert!(
                out.ok && complaints.is_empty() && passed == builtin.len(),
                "kubernetes-validate --strict -k {version} {sets:?}: {passed}/{} passed\n{}\n{}",
                builtin.len(),
                out.stdout,
                out.stderr
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (4) values.schema.json and the chart's own checks reject wrong values, naming the field

#[test]
fn wrong_values_are_rejected_with_the_field_named() {
    let Some(helm) = Helm::new("wrong_values_are_rejected_with_the_field_named") else {
        return;
    };
    let cases: &[(&[&str], &str)] = &[
        (&["image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (&["image.digest=sha256:abc"], "/image/digest"),
        (&["image.digest=md5:0123"], "/image/digest"),
        (&["image.tag=latest"], "image.tag"),
        (&["image.tag=a b"], "/image/tag"),
        (&["controller.replicas=0"], "/controller/replicas"),
        (&["controller.replicas=two"], "/controller/replicas"),
        (&["controller.replica=3"], "'replica'"),
        (&["speaker.membershipPort=70000"], "/speaker/membershipPort"),
        (&["speaker.membershipPort=-1"], "/speaker/membershipPort"),
        (&["speaker.layer2.enabled=maybe"], "/speaker/layer2/enabled"),
        (
            &["speaker.excludeInterfaces=eth0"],
            "/speaker/excludeInterfaces",
        ),
        (&["speaker.logLevel=debug please"], "/speaker/logLevel"),
        (&["commonLabels.n=1"], "/commonLabels/n"),
        (
            &["prometheus.rules.poolUsagePercent=101"],
            "/prometheus/rules/poolUsagePercent",
        ),
        (
            &["prometheus.serviceMonitor.interval=often"],
            "/prometheus/serviceMonitor/interval",
        ),
        (
            &["networkPolicy.apiServer.ports[0]=0"],
            "/networkPolicy/apiServer/ports/0",
        ),
        (
            &["controller.tlsSecretName=Not_A_Name"],
            "/controller/tlsSecretName",
        ),
        (
            &["prometheus.metricsReader.serviceAccounts[0].name=prometheus"],
            "/prometheus/metricsReader/serviceAccounts/0",
        ),
        (&["unknownTopLevel=1"], "'unknownTopLevel'"),
        (
            &["speaker.layer2.enabled=false", "speaker.bgp.enabled=false"],
            "speaker.layer2.enabled and speaker.bgp.enabled",
        ),
    ];
    for (sets, field) in cases {
        let out = helm.template_out(sets, &[]);
        assert!(!out.ok, "helm template accepted {sets:?}");
        assert!(
            out.stderr.contains(field),
            "the error for {sets:?} does not name {field:?}:\n{}",
            out.stderr
        );
        let line = out.stderr.lines().find(|l| l.contains(field)).unwrap_or("");
        eprintln!("{sets:?} -> {}", line.trim());
    }
}

// ---------------------------------------------------------------------------------------------
// (5) the default render is `kubectl kustomize deploy`

type ObjKey = (String, String, String);

/// Every number as a float: kustomize re-serialises `minimum: 0.0` of deploy/crds.yaml as
/// `minimum: 0`, which is the same value.
fn normalize_numbers(v: Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().expect("finite number")),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize_numbers).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (k, normalize_numbers(v)))
                .collect(),
        ),
        other => other,
    }
}

fn key(o: &Value) -> ObjKey {
    (
        kind(o).to_string(),
        o["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        name(o).to_string(),
    )
}

/// Removes the labels Helm's conventions add; fails if a templated object lacks them (then the
/// strip would hide nothing and the comparison would test less than it claims).
fn strip_helm_labels(o: &mut Value) {
    let templated = kind(o) != "CustomResourceDefinition";
    let what = format!("{} {}", kind(o), name(o));
    match o
        .get_mut("metadata")
        .and_then(|m| m.get_mut("labels"))
        .and_then(Value::as_object_mut)
    {
        Some(labels) => {
            for l in HELM_LABELS {
                let was = labels.remove(l);
                assert!(was.is_some() || !templated, "{l} missing on {what}");
            }
        }
        None => assert!(!templated, "no labels on {what}"),
    }
}

#[test]
fn default_render_equals_kustomize_deploy() {
    let test = "default_render_equals_kustomize_deploy";
    let Some(helm) = Helm::new(test) else {
        return;
    };
    let Some(kubectl) = tools::for_test(Tool::Kubectl, test) else {
        return;
    };
    let mut cmd = Command::new(kubectl);
    cmd.arg("kustomize")
        .arg(repo_path("deploy"))
        .env("HOME", helm.tmp.path().join("home"));
    let out = run(cmd);
    assert!(out.ok, "kubectl kustomize deploy failed:\n{}", out.stderr);
    let kustomized: BTreeMap<ObjKey, Value> = parse_docs(&out.stdout)
        .into_iter()
        .map(|o| (key(&o), normalize_numbers(o)))
        .collect();
    let rendered: BTreeMap<ObjKey, Value> = helm
        .template(&[], &["--include-crds"])
        .into_iter()
        .map(|mut o| {
            strip_helm_labels(&mut o);
            (key(&o), normalize_numbers(o))
        })
        .collect();

    // The documented exceptions, exactly: deploy/ carries the Namespace (a chart does not own
    // its release namespace), the chart carries the memberlist Secret (kustomize cannot
    // generate a random key; the README says how to create it).
    let only_deploy: Vec<&ObjKey> = kustomized
        .keys()
        .filter(|k| !rendered.contains_key(*k))
        .collect();
    let only_chart: Vec<&ObjKey> = rendered
        .keys()
        .filter(|k| !kustomized.contains_key(*k))
        .collect();
    let ns: ObjKey = ("Namespace".into(), String::new(), NAMESPACE.into());
    let secret: ObjKey = ("Secret".into(), NAMESPACE.into(), "memberlist".into());
    assert_eq!(only_deploy, [&ns], "objects only deploy/ has");
    assert_eq!(only_chart, [&secret], "objects only the chart has");

    let mut differ = Vec::new();
    for (k, want) in &kustomized {
        let Some(got) = rendered.get(k) else {
            continue;
        };
        if got != want {
            differ.push(format!(
                "{k:?}\n  deploy/: {}\n  chart:   {}",
                serde_json::to_string(want).expect("json"),
                serde_json::to_string(got).expect("json")
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "the chart (defaults) and deploy/ disagree:\n{}",
        differ.join("\n")
    );
    assert_eq!(kustomized.len(), 32, "deploy/ objects compared");
}

// ---------------------------------------------------------------------------------------------
// (6) the chart's CRDs are deploy/crds.yaml

#[test]
fn chart_crds_are_deploy_crds_byte_for_byte() {
    let deploy = std::fs::read(repo_path("deploy/crds.yaml")).expect("deploy/crds.yaml");
    let chart = std::fs::read(chart_dir().join("crds/crds.yaml")).expect("chart crds");
    assert!(
        deploy == chart,
        "deploy/helm/ferrolb/crds/crds.yaml differs from deploy/crds.yaml (generated by \
         `cargo run -p ferrolb-api --bin crdgen`): copy it with \
         `cp deploy/crds.yaml deploy/helm/ferrolb/crds/crds.yaml`"
    );
    let files: Vec<String> = std::fs::read_dir(chart_dir().join("crds"))
        .expect("crds dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["crds.yaml"], "only the generated CRDs in crds/");
}
