//! What a kubelet would start for one pod of a workload: the container's command and args with
//! `$(VAR)` references expanded, and its environment with the downward-API fields the pod
//! would get. The lab uses it to run the controller and the speakers exactly as the installed
//! Deployment and DaemonSet say (`lab --install helm`), so a flag the chart renders wrongly
//! fails in the lab, not first on a user's cluster.

use serde_json::Value;
use thiserror::Error;

/// The pod the container runs in, as the downward API sees it.
#[derive(Debug, Clone, Copy)]
pub struct PodContext<'a> {
    pub pod_name: &'a str,
    pub namespace: &'a str,
    pub node_name: &'a str,
}

/// A container's process: argv (command then args) and environment, both expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerProcess {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WorkloadError {
    #[error("{workload}: no container named {container:?} in spec.template.spec.containers")]
    NoContainer { workload: String, container: String },
    #[error(
        "{workload}: container {container:?} has no command (the image's entrypoint is not known here)"
    )]
    NoCommand { workload: String, container: String },
    #[error("{workload}: container {container:?}: env {name}: {what} is not supported by the lab")]
    UnsupportedEnv {
        workload: String,
        container: String,
        name: String,
        what: String,
    },
}

/// The process of container `container` of `workload` (a Deployment or DaemonSet as JSON) in
/// the pod described by `pod`.
pub fn container_process(
    workload: &Value,
    container: &str,
    pod: PodContext<'_>,
) -> Result<ContainerProcess, WorkloadError> {
    let workload_name = format!(
        "{} {}/{}",
        workload["kind"].as_str().unwrap_or("workload"),
        workload["metadata"]["namespace"].as_str().unwrap_or(""),
        workload["metadata"]["name"].as_str().unwrap_or("")
    );
    let c = workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container))
        .ok_or_else(|| WorkloadError::NoContainer {
            workload: workload_name.clone(),
            container: container.to_string(),
        })?;
    let mut env: Vec<(String, String)> = Vec::new();
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or("").to_string();
        let unsupported = |what: String| WorkloadError::UnsupportedEnv {
            workload: workload_name.clone(),
            container: container.to_string(),
            name: name.clone(),
            what,
        };
        let value = if let Some(v) = e["value"].as_str() {
            expand(v, &env)
        } else if let Some(path) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            match path {
                "metadata.name" => pod.pod_name.to_string(),
                "metadata.namespace" => pod.namespace.to_string(),
                "spec.nodeName" => pod.node_name.to_string(),
                other => return Err(unsupported(format!("fieldRef {other}"))),
            }
        } else if e["valueFrom"].is_object() {
            return Err(unsupported(format!("valueFrom {}", e["valueFrom"])));
        } else {
            String::new()
        };
        env.push((name, value));
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(|s| expand(s, &env)))
            .collect()
    };
    let mut argv = strings(&c["command"]);
    if argv.is_empty() {
        return Err(WorkloadError::NoCommand {
            workload: workload_name,
            container: container.to_string(),
        });
    }
    argv.extend(strings(&c["args"]));
    Ok(ContainerProcess { argv, env })
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, `$$` is a literal `$`, and
/// anything else (an undefined variable, an unclosed reference) stays as written.
pub fn expand(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let e = env(&[("NODE_NAME", "node1"), ("NS", "ferrolb-system")]);
        assert_eq!(expand("--node-name=$(NODE_NAME)", &e), "--node-name=node1");
        assert_eq!(expand("$(NS)/$(NODE_NAME)", &e), "ferrolb-system/node1");
        assert_eq!(expand("$(UNSET)", &e), "$(UNSET)");
        assert_eq!(expand("$$(NODE_NAME)", &e), "$(NODE_NAME)");
        assert_eq!(expand("cost $5 $(", &e), "cost $5 $(");
        assert_eq!(expand("trailing $", &e), "trailing $");
    }

    fn daemonset() -> Value {
        json!({
            "kind": "DaemonSet",
            "metadata": {"name": "speaker", "namespace": "ferrolb-system"},
            "spec": {"template": {"spec": {"containers": [{
                "name": "speaker",
                "command": ["/ferrolb-speaker", "run"],
                "args": ["--node-name=$(NODE_NAME)", "--namespace=$(POD_NAMESPACE)", "--x=$(LATER)"],
                "env": [
                    {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "GREETING", "value": "on $(NODE_NAME)"},
                    {"name": "RUST_LOG", "value": "info"}
                ]
            }]}}}
        })
    }

    #[test]
    fn the_process_of_a_daemonset_pod() {
        let pod = PodContext {
            pod_name: "speaker-abcde",
            namespace: "ferrolb-system",
            node_name: "node2",
        };
        let p = container_process(&daemonset(), "speaker", pod).expect("process");
        assert_eq!(
            p.argv,
            [
                "/ferrolb-speaker",
                "run",
                "--node-name=node2",
                "--namespace=ferrolb-system",
                "--x=$(LATER)"
            ]
        );
        assert_eq!(
            p.env,
            env(&[
                ("NODE_NAME", "node2"),
                ("POD_NAMESPACE", "ferrolb-system"),
                ("POD", "speaker-abcde"),
                ("GREETING", "on node2"),
                ("RUST_LOG", "info"),
            ])
        );
    }

    #[test]
    fn what_the_lab_cannot_provide_is_an_error_naming_it() {
        let pod = PodContext {
            pod_name: "p",
            namespace: "n",
            node_name: "x",
        };
        let err = container_process(&daemonset(), "other", pod).expect_err("no container");
        assert!(
            err.to_string().contains("DaemonSet ferrolb-system/speaker"),
            "{err}"
        );
        let mut ds = daemonset();
        ds["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"] =
            json!({"secretKeyRef": {"name": "s", "key": "k"}});
        let err = container_process(&ds, "speaker", pod).expect_err("secretKeyRef");
        assert!(
            matches!(err, WorkloadError::UnsupportedEnv { ref name, .. } if name == "NODE_NAME"),
            "{err}"
        );
        ds["spec"]["template"]["spec"]["containers"][0]["command"] = json!(null);
        ds["spec"]["template"]["spec"]["containers"][0]["env"] = json!([]);
        assert!(matches!(
            container_process(&ds, "speaker", pod),
            Err(WorkloadError::NoCommand { .. })
        ));
    }
}
