//! OpenAPI documents kubectl downloads before `apply`/`create`/`replace`: `/openapi/v3`
//! (an index of per-group-version documents) and `/openapi/v3/<api|apis/group>/<version>`,
//! plus `/openapi/v2` (JSON).
//!
//! Built-in schemas come from k8s-openapi's `schemars` implementations (already named like
//! the real definitions, e.g. `io.k8s.api.core.v1.Service`), generated with OpenAPI 3
//! settings and decorated with `x-kubernetes-group-version-kind` and the patch merge keys of
//! [`super::patch::list_strategy`]. Custom resources use their CRD's `openAPIV3Schema` with
//! `metadata` pointing at ObjectMeta, as the real server publishes them.
//!
//! Every resource gets paths whose PATCH operation declares the `fieldValidation` query
//! parameter, so kubectl (like against a real 1.27+ server) sends `fieldValidation=Strict`
//! and the server rejects unknown fields.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use super::resources::ResourceType;
use super::validation::Defs;

const REF3: &str = "#/components/schemas/";

fn builtin_defs() -> &'static (Defs, Vec<(String, String)>) {
    static DEFS: OnceLock<(Defs, Vec<(String, String)>)> = OnceLock::new();
    DEFS.get_or_init(|| {
        use k8s_openapi::api::{apps, coordination, core, discovery, events, networking, rbac};
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
        use schemars::JsonSchema;
        let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
        // (definition name, kind) of every top-level kind.
        let mut roots = Vec::new();
        macro_rules! root {
            ($t:ty) => {{
                generator.subschema_for::<$t>();
                roots.push((
                    <$t>::schema_name().to_string(),
                    <$t as k8s_openapi::Resource>::KIND.to_string(),
                ));
            }};
        }
        root!(core::v1::Namespace);
        root!(core::v1::Node);
        root!(core::v1::Service);
        root!(core::v1::Event);
        root!(core::v1::Secret);
        root!(core::v1::ConfigMap);
        root!(core::v1::Pod);
        root!(discovery::v1::EndpointSlice);
        root!(events::v1::Event);
        root!(coordination::v1::Lease);
        root!(core::v1::ServiceAccount);
        root!(apps::v1::Deployment);
        root!(apps::v1::DaemonSet);
        root!(rbac::v1::Role);
        root!(rbac::v1::RoleBinding);
        root!(rbac::v1::ClusterRole);
        root!(rbac::v1::ClusterRoleBinding);
        root!(networking::v1::NetworkPolicy);
        root!(apiext::CustomResourceDefinition);
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>();
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Patch>();
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>();
        let mut defs = generator.take_definitions(true);
        for (name, _) in &roots {
            let gvk = gvk_of_def(name);
            if let Some(d) = defs.get_mut(name).and_then(Value::as_object_mut) {
                d.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
            }
        }
        add_patch_extensions(&mut defs);
        (defs, roots)
    })
}

/// `io.k8s.api.core.v1.Service` -> {group: "", version: "v1", kind: "Service"}.
fn gvk_of_def(name: &str) -> Value {
    let parts: Vec<&str> = name.split('.').collect();
    let kind = parts.last().copied().unwrap_or("");
    let version = parts
        .get(parts.len().saturating_sub(2))
        .copied()
        .unwrap_or("");
    let group = if name.starts_with("io.k8s.api.core.") {
        String::new()
    } else if name.starts_with("io.k8s.apiextensions-apiserver.") {
        "apiextensions.k8s.io".to_string()
    } else {
        match parts.get(3).copied().unwrap_or("") {
            "apps" => "apps".to_string(),
            "rbac" => "rbac.authorization.k8s.io".to_string(),
            // io.k8s.api.<group-prefix>.<version>.<Kind>: discovery, events, coordination,
            // networking.
            prefix => format!("{prefix}.k8s.io"),
        }
    };
    json!({"group": group, "version": version, "kind": kind})
}

/// Declares the merge keys our strategic merge patch uses so kubectl computes patches
/// with the same list semantics.
fn add_patch_extensions(defs: &mut Defs) {
    let table: &[(&str, &str, &str)] = &[
        ("io.k8s.api.core.v1.ServiceSpec", "ports", "port"),
        ("io.k8s.api.core.v1.PodSpec", "containers", "name"),
        ("io.k8s.api.core.v1.PodSpec", "initContainers", "name"),
        ("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", "name"),
        ("io.k8s.api.core.v1.PodSpec", "volumes", "name"),
        ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", "name"),
        ("io.k8s.api.core.v1.Container", "ports", "containerPort"),
        ("io.k8s.api.core.v1.Container", "env", "name"),
        ("io.k8s.api.core.v1.Container", "volumeMounts", "mountPath"),
        ("io.k8s.api.core.v1.PodStatus", "conditions", "type"),
        ("io.k8s.api.core.v1.NodeStatus", "conditions", "type"),
        ("io.k8s.api.core.v1.NodeStatus", "addresses", "type"),
        ("io.k8s.api.core.v1.NamespaceStatus", "conditions", "type"),
        ("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "type"),
        ("io.k8s.api.apps.v1.DaemonSetStatus", "conditions", "type"),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "ownerReferences",
            "uid",
        ),
    ];
    for (def, field, key) in table {
        if let Some(p) = defs
            .get_mut(*def)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(*field))
            .and_then(Value::as_object_mut)
        {
            p.insert("x-kubernetes-patch-merge-key".into(), json!(key));
            p.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
        }
    }
    if let Some(p) = defs
        .get_mut("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        .and_then(|d| d.get_mut("properties"))
        .and_then(|p| p.get_mut("finalizers"))
        .and_then(Value::as_object_mut)
    {
        p.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
    }
}

/// Definitions for validating built-in kinds (`$ref`s are `#/components/schemas/...`).
pub fn defs() -> &'static Defs {
    &builtin_defs().0
}

/// The definition name of a built-in kind's schema.
pub fn builtin_def_name(rt: &ResourceType) -> Option<String> {
    builtin_defs()
        .1
        .iter()
        .find(|(name, kind)| *kind == rt.kind && gvk_of_def(name)["group"] == json!(rt.group))
        .map(|(n, _)| n.clone())
}

/// Definition name for a custom resource, as the real server names it
/// (reversed group, e.g. `io.ferrolb.v1beta1.IPAddressPool`).
fn crd_def_name(rt: &ResourceType) -> String {
    let mut g: Vec<&str> = rt.group.split('.').collect();
    g.reverse();
    format!("{}.{}.{}", g.join("."), rt.version, rt.kind)
}

/// The schema a custom resource is published with: the CRD's schema plus the standard
/// apiVersion/kind/metadata properties.
fn crd_schema(rt: &ResourceType, meta_ref: &str) -> Value {
    let mut s = rt
        .crd_schema
        .as_deref()
        .cloned()
        .unwrap_or_else(|| json!({"type": "object"}));
    if let Some(m) = s.as_object_mut() {
        let props = m.entry("properties").or_insert_with(|| json!({}));
        if let Some(p) = props.as_object_mut() {
            p.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
            p.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
            p.insert("metadata".into(), json!({"$ref": meta_ref}));
        }
        m.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": rt.group, "version": rt.version, "kind": rt.kind}]),
        );
    }
    s
}

/// The v3 index: one entry per served group-version.
pub fn v3_index(types: &[ResourceType]) -> Value {
    let mut paths = Map::new();
    for rt in types {
        let key = gv_path(&rt.group, &rt.version);
        let url = format!(
            "/openapi/v3/{key}?hash={}",
            doc_hash(types, &rt.group, &rt.version)
        );
        paths.insert(key, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// `api/v1` or `apis/<group>/<version>`.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A content hash so kubectl's disk cache is invalidated when a CRD changes.
fn doc_hash(types: &[ResourceType], group: &str, version: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for rt in types
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        rt.plural.hash(&mut h);
        rt.crd_schema.as_ref().map(|s| s.to_string()).hash(&mut h);
        rt.status_subresource.hash(&mut h);
    }
    format!("{:016X}", h.finish())
}

fn operations(rt: &ResourceType, schema_ref: &str) -> Map<String, Value> {
    let base = if rt.group.is_empty() {
        format!("/api/{}", rt.version)
    } else {
        format!("/apis/{}/{}", rt.group, rt.version)
    };
    let coll = if rt.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", rt.plural)
    } else {
        format!("{base}/{}", rt.plural)
    };
    let gvk = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
    let q = |name: &str, ty: &str| json!({"name": name, "in": "query", "schema": {"type": ty, "uniqueItems": true}});
    let body = json!({"content": {"application/json": {"schema": {"$ref": schema_ref}}}, "required": true});
    let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema_ref}}}}});
    let op = |verb: &str, action: &str, with_body: bool, params: Vec<Value>| {
        let mut o = json!({
            "operationId": format!("{verb}{}", rt.kind),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params,
            "responses": ok,
        });
        if with_body {
            o["requestBody"] = body.clone();
        }
        o
    };
    let write_params = || {
        vec![
            q("dryRun", "string"),
            q("fieldManager", "string"),
            q("fieldValidation", "string"),
        ]
    };
    let mut patch_params = write_params();
    patch_params.push(q("force", "boolean"));
    let mut paths = Map::new();
    paths.insert(
        coll.clone(),
        json!({
            "get": op("list", "list", false, vec![q("labelSelector", "string"), q("fieldSelector", "string"), q("limit", "integer"), q("continue", "string"), q("resourceVersion", "string"), q("watch", "boolean")]),
            "post": op("create", "post", true, write_params()),
            "delete": op("deletecollection", "deletecollection", false, vec![q("labelSelector", "string")]),
        }),
    );
    let item = json!({
        "get": op("read", "get", false, vec![]),
        "put": op("replace", "put", true, write_params()),
        "patch": op("patch", "patch", true, patch_params.clone()),
        "delete": op("delete", "delete", false, vec![q("dryRun", "string")]),
    });
    paths.insert(format!("{coll}/{{name}}"), item);
    if rt.status_subresource {
        paths.insert(
            format!("{coll}/{{name}}/status"),
            json!({
                "get": op("read", "get", false, vec![]),
                "put": op("replace", "put", true, write_params()),
                "patch": op("patch", "patch", true, patch_params),
            }),
        );
    }
    paths
}

/// The v3 document of one group-version.
pub fn v3_document(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let in_gv: Vec<&ResourceType> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if in_gv.is_empty() {
        return None;
    }
    let mut schemas = builtin_defs().0.clone();
    let mut paths = Map::new();
    for rt in in_gv {
        let def = match builtin_def_name(rt) {
            Some(d) => d,
            None => {
                let d = crd_def_name(rt);
                schemas.insert(
                    d.clone(),
                    crd_schema(
                        rt,
                        &format!("{REF3}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
                    ),
                );
                d
            }
        };
        paths.extend(operations(rt, &format!("{REF3}{def}")));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::discovery::GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// The v2 (Swagger) document with every kind, in JSON.
pub fn v2_document(types: &[ResourceType]) -> Value {
    let mut defs = Map::new();
    for (k, v) in builtin_defs().0.iter() {
        defs.insert(k.clone(), v3_to_v2(v));
    }
    for rt in types.iter().filter(|t| !t.is_builtin()) {
        defs.insert(
            crd_def_name(rt),
            v3_to_v2(&crd_schema(
                rt,
                &format!("{REF3}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
            )),
        );
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": super::discovery::GIT_VERSION},
        "paths": {},
        "definitions": defs,
    })
}

/// Rewrites `$ref`s to `#/definitions/` and drops v3-only keywords.
fn v3_to_v2(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                match (k.as_str(), val) {
                    ("$ref", Value::String(r)) => {
                        out.insert(k.clone(), json!(r.replace(REF3, "#/definitions/")));
                    }
                    ("nullable", _) => {}
                    _ => {
                        out.insert(k.clone(), v3_to_v2(val));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(v3_to_v2).collect()),
        other => other.clone(),
    }
}

/// Media type client-go asks `/openapi/v2` for.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// A minimal gnostic `openapi_v2.Document` in protobuf: `swagger`, `info` and empty
/// `paths`, no definitions.
///
/// kubectl only falls back to v2 when a group-version is missing from its (possibly
/// stale) v3 index; with no v2 definitions its client-side validation skips unknown kinds,
/// and the server still validates. Encoding all definitions in protobuf is not done.
pub fn v2_protobuf() -> Vec<u8> {
    fn field(out: &mut Vec<u8>, num: u8, bytes: &[u8]) {
        out.push((num << 3) | 2);
        // Lengths here are < 128, so one varint byte suffices.
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    let mut info = Vec::new();
    field(&mut info, 1, b"Kubernetes");
    field(&mut info, 2, super::discovery::GIT_VERSION.as_bytes());
    let mut doc = Vec::new();
    field(&mut doc, 1, b"2.0");
    field(&mut doc, 2, &info);
    field(&mut doc, 8, &[]);
    doc
}
