//! `kubectl auth can-i` (SelfSubjectAccessReview), `can-i --list` (SelfSubjectRulesReview)
//! and impersonation with `--as`, as kubectl users run them.

use ferrolb_e2e::apiserver::ApiServerOptions;
use ferrolb_e2e::tools::Tool;
use serde_json::{Value, json};

use super::Kubectl;
use crate::with_both_kubectls;

with_both_kubectls!(can_i_answers_and_lists_rules_also_impersonated);

const AS_SPEAKER: &str = "--as=system:serviceaccount:ferrolb-system:speaker";

/// `yes` or `no`, with the exit code kubectl documents (0 for yes, 1 for no).
async fn can_i(k: &Kubectl, token: Option<&str>, args: &[&str]) -> String {
    let mut full = vec!["auth", "can-i"];
    full.extend(args);
    let out = k.run_as(token, &full).await;
    let answer = out.stdout.trim().to_string();
    assert_eq!(
        out.ok,
        answer == "yes",
        "{} {full:?}: exit status disagrees with {answer:?}: {}",
        k.version,
        out.stderr
    );
    answer
}

/// The rows of `can-i --list` as (resource or `[non-resource URLs]`, resourceNames, verbs),
/// cut at the header's column offsets (verb lists contain spaces).
fn rows(table: &str) -> Vec<(String, String, String)> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or("");
    let (Some(urls), Some(names), Some(verbs)) = (
        header.find("Non-Resource URLs"),
        header.find("Resource Names"),
        header.find("Verbs"),
    ) else {
        panic!("not a can-i --list table:\n{table}");
    };
    lines
        .filter(|l| l.len() > verbs)
        .map(|l| {
            let cell = |a: usize, b: usize| l.get(a..b).unwrap_or("").trim().to_string();
            let resource = cell(0, urls);
            let first = if resource.is_empty() {
                cell(urls, names)
            } else {
                resource
            };
            (first, cell(names, verbs), cell(verbs, l.len()))
        })
        .collect()
}

async fn can_i_answers_and_lists_rules_also_impersonated(tool: Tool) {
    let Some(k) = Kubectl::new(tool, "can-i", ApiServerOptions::default()).await else {
        return;
    };
    let v = k.version.clone();
    let token = k
        .service_account_token("ferrolb-system", "speaker", &[])
        .await;
    let t = Some(token.as_str());
    k.ok(&[
        "create",
        "role",
        "svc-reader",
        "--verb=get,list,watch",
        "--resource=services",
        "-n",
        "default",
    ])
    .await;
    k.ok(&[
        "create",
        "rolebinding",
        "speaker-svc",
        "--role=svc-reader",
        "--serviceaccount=ferrolb-system:speaker",
        "-n",
        "default",
    ])
    .await;

    assert_eq!(
        can_i(&k, t, &["list", "services", "-n", "default"]).await,
        "yes",
        "{v}"
    );
    assert_eq!(
        can_i(&k, t, &["update", "services", "-n", "default"]).await,
        "no",
        "{v}"
    );
    assert_eq!(
        can_i(&k, t, &["list", "services", "-n", "kube-system"]).await,
        "no",
        "{v}"
    );
    assert_eq!(
        can_i(
            &k,
            t,
            &["get", "services", "--subresource=status", "-n", "default"]
        )
        .await,
        "no",
        "{v}"
    );
    assert_eq!(
        can_i(&k, None, &["delete", "nodes"]).await,
        "yes",
        "{v}: the admin"
    );
    assert_eq!(
        can_i(&k, None, &["list", "services", "-n", "default", AS_SPEAKER]).await,
        "yes",
        "{v}"
    );
    assert_eq!(
        can_i(
            &k,
            None,
            &["create", "services", "-n", "default", AS_SPEAKER]
        )
        .await,
        "no",
        "{v}"
    );
    assert_eq!(
        can_i(&k, None, &["get", "/metrics", AS_SPEAKER]).await,
        "no",
        "{v}"
    );
    k.ok(&[
        "create",
        "clusterrole",
        "metrics-reader",
        "--verb=get",
        "--non-resource-url=/metrics",
    ])
    .await;
    k.ok(&[
        "create",
        "clusterrolebinding",
        "speaker-metrics",
        "--clusterrole=metrics-reader",
        "--serviceaccount=ferrolb-system:speaker",
    ])
    .await;
    assert_eq!(
        can_i(&k, None, &["get", "/metrics", AS_SPEAKER]).await,
        "yes",
        "{v}"
    );
    assert_eq!(
        can_i(&k, None, &["get", "/metrics/extra", AS_SPEAKER]).await,
        "no",
        "{v}"
    );

    let table = k
        .ok(&["auth", "can-i", "--list", "-n", "default", AS_SPEAKER])
        .await;
    let rows = rows(&table);
    let has =
        |resource: &str, verbs: &str| rows.iter().any(|(r, _, vs)| r == resource && vs == verbs);
    assert!(has("services", "[get list watch]"), "{v}:\n{table}");
    assert!(
        has("selfsubjectaccessreviews.authorization.k8s.io", "[create]"),
        "{v}:\n{table}"
    );
    assert!(has("[/metrics]", "[get]"), "{v}:\n{table}");
    assert!(has("[/api/*]", "[get]"), "{v}:\n{table}");
    assert!(
        !rows.iter().any(|(r, _, _)| r == "*.*"),
        "{v}: the speaker is no admin:\n{table}"
    );
    let elsewhere = k
        .ok_as(t, &["auth", "can-i", "--list", "-n", "kube-system"])
        .await;
    assert!(
        !rows_of(&elsewhere).iter().any(|r| r == "services"),
        "{v}:\n{elsewhere}"
    );
    let admin = k.ok(&["auth", "can-i", "--list", "-n", "default"]).await;
    assert!(
        rows_of(&admin).iter().any(|r| r == "*.*"),
        "{v}: cluster-admin:\n{admin}"
    );

    // Impersonating a ServiceAccount gives its groups; a user gets system:authenticated.
    let me: Value =
        serde_json::from_str(&k.ok(&["auth", "whoami", "-o", "json", AS_SPEAKER]).await)
            .expect("whoami JSON");
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:ferrolb-system",
            "system:authenticated"
        ]),
        "{v}: {me}"
    );
    let me: Value = serde_json::from_str(
        &k.ok(&[
            "auth",
            "whoami",
            "-o",
            "json",
            "--as=alice",
            "--as-group=devs",
        ])
        .await,
    )
    .expect("whoami JSON");
    assert_eq!(me["status"]["userInfo"]["username"], "alice", "{v}: {me}");
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        json!(["devs", "system:authenticated"]),
        "{v}: {me}"
    );
    // Impersonation needs the impersonate verb.
    let err = k
        .fails_as(t, &["get", "services", "-n", "default", "--as=admin"])
        .await;
    assert!(
        err.contains("users \"admin\" is forbidden: User \"system:serviceaccount:ferrolb-system:speaker\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"),
        "{v}: {err}"
    );
    k.finish().await;
}

fn rows_of(table: &str) -> Vec<String> {
    rows(table).into_iter().map(|(r, _, _)| r).collect()
}
