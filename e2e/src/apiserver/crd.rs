//! CustomResourceDefinition validation and the status the real server reports
//! (NamesAccepted, Established), which `kube::runtime::wait::conditions::is_crd_established`
//! and `kubectl wait --for condition=established` look for.

use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, FieldError};
use super::store::{Inner, crd_gr};
use super::time;

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().filter(|x| !x.is_empty())
}

pub fn validate(view: &Inner, crd: &Value, current: Option<&Value>) -> ApiResult<()> {
    let name = s(crd, &["metadata", "name"]).unwrap_or("").to_string();
    let mut errs = Vec::new();
    let group = s(crd, &["spec", "group"]);
    let plural = s(crd, &["spec", "names", "plural"]);
    if group.is_none() {
        errs.push(FieldError::required("spec.group", ""));
    }
    if plural.is_none() {
        errs.push(FieldError::required("spec.names.plural", ""));
    }
    if s(crd, &["spec", "names", "kind"]).is_none() {
        errs.push(FieldError::required("spec.names.kind", ""));
    }
    match s(crd, &["spec", "scope"]) {
        Some("Namespaced" | "Cluster") => {}
        _ => errs.push(FieldError::invalid(
            "spec.scope",
            &crd["spec"]["scope"],
            "should be either Cluster or Namespaced",
        )),
    }
    if let (Some(g), Some(p)) = (group, plural)
        && name != format!("{p}.{g}")
    {
        errs.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let versions = crd["spec"]["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    }
    let storage = versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            &json!(storage),
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if s(v, &["name"]).is_none() {
            errs.push(FieldError::required(
                &format!("spec.versions[{i}].name"),
                "",
            ));
        }
        if !v["schema"]["openAPIV3Schema"].is_object() {
            errs.push(FieldError::required(
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "schemas are required",
            ));
        }
    }
    if let Some(cur) = current
        && cur["spec"]["group"] != crd["spec"]["group"]
    {
        errs.push(FieldError::invalid(
            "spec.group",
            &crd["spec"]["group"],
            "field is immutable",
        ));
    }
    // A plural already served by another CRD of the same group is a conflict.
    if let (Some(g), Some(p)) = (group, plural)
        && view.list(&crd_gr(), None).any(|((_, n), other)| {
            *n != name
                && s(other, &["spec", "group"]) == Some(g)
                && s(other, &["spec", "names", "plural"]) == Some(p)
        })
    {
        errs.push(FieldError::invalid(
            "spec.names.plural",
            &json!(p),
            "is already in use",
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &name,
            errs,
        ))
    }
}

pub fn status(crd: &Value) -> Value {
    let now = time::now_rfc3339();
    let mut accepted = crd["spec"]["names"].clone();
    if accepted["singular"].is_null()
        && let Some(k) = crd["spec"]["names"]["kind"].as_str()
    {
        accepted["singular"] = json!(k.to_lowercase());
    }
    if accepted["listKind"].is_null()
        && let Some(k) = crd["spec"]["names"]["kind"].as_str()
    {
        accepted["listKind"] = json!(format!("{k}List"));
    }
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .filter_map(|v| v["name"].as_str().map(|n| json!(n)))
        .collect();
    json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": stored,
    })
}
