//! HTTP routing and the REST verbs: get, list, watch, create, update, patch, delete,
//! deletecollection, on main resources and `/status`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::objects::{self, Part};
use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::Write;
use super::{Shared, auth, convert, discovery, openapi, patch, protobuf, table, validation, watch};

/// Bodies larger than this are rejected (the real server's limit is 3 MiB for etcd).
const MAX_BODY: usize = 8 * 1024 * 1024;

fn json_response(code: StatusCode, v: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => (code, [(CONTENT_TYPE, "application/json")], body).into_response(),
        // Only a map with non-string keys fails to serialise; no Value has one.
        Err(e) => ApiError::internal(format!("cannot encode the response: {e}")).into_response(),
    }
}

/// A list response, serialised straight from the stored objects (no copy of each item).
#[derive(serde::Serialize)]
struct ListBody<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<Cow<'a, Value>>,
}

fn ok(v: &impl serde::Serialize) -> Response {
    json_response(StatusCode::OK, v)
}

/// The one entry point: routes by path, never panics on client input.
pub async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let header = |req: &Request, name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (content_type, accept) = (header(&req, CONTENT_TYPE), header(&req, ACCEPT));
    let result = route(shared, req).await;
    match result {
        Ok(r) => {
            tracing::trace!(%method, %uri, %content_type, %accept, code = r.status().as_u16(), "request");
            r
        }
        Err(e) => {
            tracing::debug!(%method, %uri, %content_type, %accept, code = e.code, "request failed: {}", e.message);
            e.into_response()
        }
    }
}

/// A parsed resource request.
struct Target {
    rt: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

async fn route(shared: Arc<Shared>, req: Request) -> ApiResult<Response> {
    let user = auth::admit(&shared, req.method(), req.uri(), req.headers())?;
    let req = match auth::endpoints::serve(&shared, &user, req).await? {
        auth::endpoints::Routed::Answered(r) => return Ok(r),
        auth::endpoints::Routed::NotOurs(req) => req,
    };
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    // Shared, not copied: CRD types carry their whole schema.
    let types = shared.store.lock().types_shared();
    let get_only = |v: Value| -> ApiResult<Response> {
        if req.method() != Method::GET {
            return Err(ApiError::method_not_allowed(
                "only GET is supported on this path",
            ));
        }
        Ok(ok(&v))
    };
    match segs.as_slice() {
        ["version"] => return get_only(discovery::version()),
        ["healthz"] | ["livez"] | ["readyz"] => return Ok((StatusCode::OK, "ok").into_response()),
        ["api"] => return get_only(discovery::core_versions()),
        ["apis"] => return get_only(discovery::group_list(&types)),
        ["api", v] => {
            return get_only(
                discovery::resource_list(&types, "", v).ok_or_else(ApiError::no_route)?,
            );
        }
        ["apis", g] => {
            return get_only(discovery::group(&types, g).ok_or_else(ApiError::no_route)?);
        }
        ["apis", g, v] => {
            return get_only(
                discovery::resource_list(&types, g, v).ok_or_else(ApiError::no_route)?,
            );
        }
        ["openapi", "v2"] => {
            let accept = req
                .headers()
                .get(ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if accept.contains("protobuf") && req.method() == Method::GET {
                return Ok((
                    [(CONTENT_TYPE, openapi::V2_PROTOBUF)],
                    openapi::v2_protobuf(),
                )
                    .into_response());
            }
            return get_only(openapi::v2_document(&types));
        }
        ["openapi", "v3"] => return get_only(openapi::v3_index(&types)),
        ["openapi", "v3", "api", v] => {
            return get_only(openapi::v3_document(&types, "", v).ok_or_else(ApiError::no_route)?);
        }
        ["openapi", "v3", "apis", g, v] => {
            return get_only(openapi::v3_document(&types, g, v).ok_or_else(ApiError::no_route)?);
        }
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route()),
    };
    let find = |plural: &str| {
        types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    };
    let target = match rest {
        // Namespace subresources (/api/v1/namespaces/x/status) look like a collection path.
        ["namespaces", ns, sub @ ("status" | "finalize")] if group.is_empty() => Target {
            rt: find("namespaces").ok_or_else(ApiError::no_route)?,
            namespace: None,
            name: Some(ns.to_string()),
            sub: Some(sub.to_string()),
        },
        ["namespaces", ns, plural, tail @ ..] if tail.len() <= 2 => {
            let rt = find(plural).ok_or_else(ApiError::no_route)?;
            if !rt.namespaced {
                return Err(ApiError::no_route());
            }
            Target {
                rt,
                namespace: Some(ns.to_string()),
                name: tail.first().map(|s| s.to_string()),
                sub: tail.get(1).map(|s| s.to_string()),
            }
        }
        [plural, tail @ ..] if tail.len() <= 2 => {
            let rt = find(plural).ok_or_else(ApiError::no_route)?;
            if rt.namespaced && !tail.is_empty() {
                return Err(ApiError::no_route());
            }
            Target {
                rt,
                namespace: None,
                name: tail.first().map(|s| s.to_string()),
                sub: tail.get(1).map(|s| s.to_string()),
            }
        }
        _ => return Err(ApiError::no_route()),
    };
    let part = match target.sub.as_deref() {
        None => Part::Main,
        Some("status") if target.rt.status_subresource => Part::Status,
        Some("finalize") if target.rt.kind == "Namespace" => Part::Main,
        Some(_) => return Err(ApiError::no_route()),
    };
    let query: HashMap<String, String> = Query::<Vec<(String, String)>>::try_from_uri(req.uri())
        .map(|Query(v)| v.into_iter().collect())
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    let is_watch = query.get("watch").is_some_and(|v| v == "true" || v == "1");
    if let Some(e) = shared.faults.take(is_watch) {
        return Err(e);
    }
    let accept = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let method = req.method().clone();
    if content_type.contains("cbor") {
        return Err(ApiError::unsupported_media_type(&content_type));
    }
    if !protobuf::accepts_json(&accept) && accept.contains(protobuf::MEDIA_TYPE) {
        // Responses are JSON only; kube-apiserver answers 406 when nothing it can produce
        // is acceptable.
        return Err(ApiError::not_acceptable(format!(
            "only the following media types are accepted: application/json, application/yaml (Accept: {accept:?})"
        )));
    }
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("failed to read the request body: {e}")))?;
    let body = if protobuf::is_protobuf(&content_type) {
        protobuf_body_as_json(&method, &target.rt, &body)?
    } else {
        body
    };
    let ctx = Ctx {
        shared,
        t: target,
        part,
        query,
        accept,
    };
    match (method, ctx.t.name.is_some()) {
        (Method::GET, false) if is_watch => ctx.watch().await,
        (Method::GET, false) => ctx.list(),
        (Method::GET, true) => ctx.get(),
        (Method::POST, false) => ctx.create(&body),
        (Method::PUT, true) => ctx.update(&body),
        (Method::PATCH, true) => ctx.patch(&content_type, &body),
        (Method::DELETE, true) => ctx.delete(&body),
        (Method::DELETE, false) => ctx.delete_collection(),
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "{m} is not supported on this path"
        ))),
    }
}

/// A protobuf body in the JSON form the verbs take (client-go's typed clients and kubectl's
/// generators send built-in kinds as protobuf).
fn protobuf_body_as_json(
    method: &Method,
    rt: &ResourceType,
    body: &axum::body::Bytes,
) -> ApiResult<axum::body::Bytes> {
    let json = match *method {
        Method::POST | Method::PUT => protobuf::decode_object(body, (&rt.api_version(), &rt.kind))?,
        Method::DELETE if !body.is_empty() => protobuf::decode_delete_options(body)?,
        // Patches have their own media types; GET and an empty DELETE have no body.
        Method::PATCH => return Err(ApiError::unsupported_media_type(protobuf::MEDIA_TYPE)),
        _ => return Ok(axum::body::Bytes::new()),
    };
    serde_json::to_vec(&json)
        .map(axum::body::Bytes::from)
        .map_err(|e| ApiError::internal(format!("cannot re-encode a decoded body: {e}")))
}

struct Ctx {
    shared: Arc<Shared>,
    t: Target,
    part: Part,
    query: HashMap<String, String>,
    accept: String,
}

fn parse_json(body: &[u8]) -> ApiResult<Value> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as JSON: {e}"
        ))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    Ok(v)
}

impl Ctx {
    fn rt(&self) -> &ResourceType {
        &self.t.rt
    }

    fn ns(&self) -> &str {
        self.t.namespace.as_deref().unwrap_or("")
    }

    fn name(&self) -> &str {
        self.t.name.as_deref().unwrap_or("")
    }

    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }

    fn dry_run(&self) -> bool {
        self.q("dryRun").is_some_and(|v| v == "All")
    }

    fn field_manager(&self) -> Option<&str> {
        self.q("fieldManager").filter(|m| !m.is_empty())
    }

    fn selectors(&self) -> ApiResult<(LabelSelector, FieldSelector)> {
        Ok((
            LabelSelector::parse(self.q("labelSelector").unwrap_or(""))?,
            FieldSelector::parse(self.q("fieldSelector").unwrap_or(""), &self.rt().kind)?,
        ))
    }

    fn table_include(&self) -> Option<String> {
        table::wants_table(&self.accept)
            .then(|| self.q("includeObject").unwrap_or("Metadata").to_string())
    }

    /// The object as served at the requested version.
    fn out<'a>(&self, obj: &'a Value) -> Cow<'a, Value> {
        convert::present_cow(self.rt(), obj)
    }

    /// The type the generic write rules apply to (the stored form).
    fn store_rt(&self) -> ResourceType {
        convert::storage_type(self.rt(), self.shared.store.lock().types())
    }

    fn respond_obj(&self, code: StatusCode, obj: &Value, warnings: &[String]) -> Response {
        let obj = self.out(obj);
        let mut r = match self.table_include() {
            Some(inc) => {
                let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
                json_response(
                    code,
                    &table::table(self.rt(), &[obj.into_owned()], meta, &inc, true),
                )
            }
            None => json_response(code, &obj),
        };
        for w in warnings {
            if let Ok(v) = HeaderValue::from_str(&format!("299 - {:?}", w)) {
                r.headers_mut().append("Warning", v);
            }
        }
        r
    }

    /// The response to a write: the stored object as [`Ctx::respond_obj`] renders it, with the
    /// serialisation its watch event shares when the object is served as stored (one encoding
    /// of each write for the writer and every watch).
    fn respond_written(
        &self,
        code: StatusCode,
        written: &super::store::Written,
        warnings: &[String],
    ) -> Response {
        let shared = written.event.as_ref().filter(|ev| {
            self.table_include().is_none()
                && Arc::ptr_eq(&ev.object, &written.object)
                && matches!(self.out(&written.object), Cow::Borrowed(_))
        });
        let Some(ev) = shared else {
            return self.respond_obj(code, &written.object, warnings);
        };
        let mut r = (
            code,
            [(CONTENT_TYPE, "application/json")],
            ev.encoded_object().clone(),
        )
            .into_response();
        for w in warnings {
            if let Ok(v) = HeaderValue::from_str(&format!("299 - {:?}", w)) {
                r.headers_mut().append("Warning", v);
            }
        }
        r
    }

    fn get(&self) -> ApiResult<Response> {
        let store = self.shared.store.lock();
        let obj = store
            .get_shared(&self.rt().group_resource(), self.ns(), self.name())
            .cloned()
            .ok_or_else(|| ApiError::not_found(&self.rt().group, &self.rt().plural, self.name()))?;
        drop(store);
        Ok(self.respond_obj(StatusCode::OK, &obj, &[]))
    }

    fn list(&self) -> ApiResult<Response> {
        let (labels, fields) = self.selectors()?;
        let limit = match self.q("limit") {
            Some(l) => l
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l:?}")))?,
            None => 0,
        };
        let after: Option<(String, String)> = match self.q("continue").filter(|c| !c.is_empty()) {
            Some(c) => Some(decode_continue(c)?),
            None => None,
        };
        let store = self.shared.store.lock();
        let rv = store.rv();
        let mut items = Vec::new();
        let mut remaining = 0usize;
        let mut last_key = None;
        for ((ns, name), obj) in
            store.list(&self.rt().group_resource(), self.t.namespace.as_deref())
        {
            if after.as_ref().is_some_and(|a| (ns, name) <= (&a.0, &a.1)) {
                continue;
            }
            let shown = convert::present_cow(self.rt(), obj);
            if !(labels.matches(&shown) && fields.matches(&shown)) {
                continue;
            }
            if limit > 0 && items.len() >= limit {
                remaining += 1;
                continue;
            }
            items.push(Arc::clone(obj));
            last_key = Some((ns.clone(), name.clone()));
        }
        drop(store);
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if remaining > 0
            && let Some((ns, name)) = last_key
        {
            meta["continue"] = json!(encode_continue(&ns, &name));
            meta["remainingItemCount"] = json!(remaining);
        }
        let items: Vec<Cow<'_, Value>> = items.iter().map(|o| self.out(o)).collect();
        if let Some(inc) = self.table_include() {
            let items: Vec<Value> = items.into_iter().map(Cow::into_owned).collect();
            return Ok(ok(&table::table(self.rt(), &items, meta, &inc, true)));
        }
        Ok(ok(&ListBody {
            kind: format!("{}List", self.rt().kind),
            api_version: self.rt().api_version(),
            metadata: meta,
            items,
        }))
    }

    async fn watch(&self) -> ApiResult<Response> {
        let (labels, fields) = self.selectors()?;
        let p = watch::params(&self.query, labels, fields, self.table_include())?;
        Ok(watch::serve(
            self.shared.clone(),
            self.rt().clone(),
            self.t.namespace.clone(),
            p,
        )
        .await)
    }

    /// Schema checks: CRD schemas (types, required, enum; unknown fields pruned) and
    /// unknown fields of built-ins; `fieldValidation=Strict` turns unknown fields into 400,
    /// otherwise they become warnings, as the real server does.
    fn validate(&self, obj: &mut Value) -> ApiResult<Vec<String>> {
        let rt = self.rt();
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let outcome = match (&rt.crd_schema, openapi::builtin_def_name(rt)) {
            (Some(schema), _) => {
                validation::check(schema, &validation::Defs::new(), obj, true, true)
            }
            (None, Some(def)) => {
                let schema = json!({"$ref": format!("#/components/schemas/{def}")});
                validation::check(&schema, openapi::defs(), obj, false, true)
            }
            (None, None) => return Ok(Vec::new()),
        };
        let unknown: Vec<String> = outcome
            .unknown
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect();
        if self.q("fieldValidation") == Some("Strict") && !unknown.is_empty() {
            return Err(ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
                rt.kind,
                rt.version,
                rt.kind,
                unknown.join(", ")
            )));
        }
        if !outcome.invalid.is_empty() {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                &name,
                outcome.invalid,
            ));
        }
        Ok(if self.q("fieldValidation") == Some("Ignore") {
            Vec::new()
        } else {
            unknown
        })
    }

    fn create(&self, body: &[u8]) -> ApiResult<Response> {
        if self.part != Part::Main {
            return Err(ApiError::method_not_allowed(
                "create is not supported on subresources",
            ));
        }
        if self.rt().namespaced && self.t.namespace.is_none() {
            return Err(ApiError::no_route());
        }
        let mut obj = parse_json(body)?;
        let warnings = self.validate(&mut obj)?;
        let obj = convert::to_storage(self.rt(), obj);
        let rt = self.store_rt();
        let ns = self.ns().to_string();
        let fm = self.field_manager().map(str::to_string);
        let prepare = |view: &super::store::Inner| {
            objects::prepare_create(view, &rt, &ns, obj.clone(), fm.as_deref())
        };
        if self.dry_run() {
            let obj = prepare(&self.shared.store.lock())?;
            return Ok(self.respond_obj(StatusCode::CREATED, &obj, &warnings));
        }
        // With generateName the name is known only after preparing; compute it first, then
        // write at that key. A body that names its object needs no extra preparation (the
        // write below prepares it again under the lock, with the same checks).
        let name = match obj["metadata"]["name"].as_str().filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => {
                let prepared = prepare(&self.shared.store.lock())?;
                prepared["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            }
        };
        let written = self
            .shared
            .store
            .write(&rt.group_resource(), &ns, &name, |view, cur| {
                if cur.is_some() {
                    return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
                }
                // Re-run against the locked view (allocations must not race).
                let mut fresh = obj.clone();
                objects::meta_mut(&mut fresh)?.insert("name".into(), json!(name));
                Ok(Write::Put(objects::prepare_create(
                    view,
                    &rt,
                    &ns,
                    fresh,
                    fm.as_deref(),
                )?))
            })?;
        Ok(self.respond_written(StatusCode::CREATED, &written, &warnings))
    }

    fn update(&self, body: &[u8]) -> ApiResult<Response> {
        let mut obj = parse_json(body)?;
        let warnings = self.validate(&mut obj)?;
        let obj = convert::to_storage(self.rt(), obj);
        let rt = self.store_rt();
        let part = self.part;
        let fm = self
            .field_manager()
            .map(|m| (m.to_string(), "Update".to_string()));
        let name = self.name().to_string();
        let decide = |view: &super::store::Inner, cur: Option<&Value>| -> ApiResult<Write> {
            let cur = cur.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, &name))?;
            let fm = fm.as_ref().map(|(m, o)| (m.as_str(), o.as_str()));
            let new = objects::prepare_update(view, &rt, cur, obj.clone(), part, fm)?;
            Ok(if objects::ready_to_remove(&new) {
                Write::Remove
            } else {
                Write::Put(new)
            })
        };
        self.run_write(decide, &warnings)
    }

    /// Runs a write (or only computes it for dryRun) and renders the result.
    fn run_write<F>(&self, decide: F, warnings: &[String]) -> ApiResult<Response>
    where
        F: FnOnce(&super::store::Inner, Option<&Value>) -> ApiResult<Write>,
    {
        let gr = self.rt().group_resource();
        if self.dry_run() {
            let store = self.shared.store.lock();
            let cur = store.get_shared(&gr, self.ns(), self.name()).cloned();
            return match decide(&store, cur.as_deref())? {
                Write::Put(o) => Ok(self.respond_obj(StatusCode::OK, &o, warnings)),
                Write::Remove => Ok(self.respond_obj(
                    StatusCode::OK,
                    cur.as_deref().unwrap_or(&Value::Null),
                    warnings,
                )),
            };
        }
        let w = self
            .shared
            .store
            .write(&gr, self.ns(), self.name(), decide)?;
        let code = if w.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(self.respond_written(code, &w, warnings))
    }

    fn patch(&self, content_type: &str, body: &[u8]) -> ApiResult<Response> {
        let ct = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let rt = self.rt().clone();
        let part = self.part;
        let name = self.name().to_string();
        let ns = self.ns().to_string();
        let patch_body: Value = match ct.as_str() {
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                let text = std::str::from_utf8(body)
                    .map_err(|_| ApiError::bad_request("apply patch body is not UTF-8"))?;
                serde_saphyr::from_str::<Value>(text)
                    .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
            }
            "application/merge-patch+json"
            | "application/strategic-merge-patch+json"
            | "application/json-patch+json" => serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
            other => return Err(ApiError::unsupported_media_type(other)),
        };
        if ct == "application/strategic-merge-patch+json" && !rt.is_builtin() {
            return Err(ApiError::unsupported_media_type(&ct));
        }
        let is_apply = ct.starts_with("application/apply-patch");
        let fm = self.field_manager().map(str::to_string);
        if is_apply && fm.is_none() {
            return Err(ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        let mut applied = patch_body.clone();
        if is_apply {
            // The applied configuration must be a valid object of this kind.
            objects::check_type(&rt, &mut applied)?;
        }
        let strict_check = self.clone_for_validation();
        let srt = self.store_rt();
        // The patched object as it would be stored: the patch applied, validated, converted.
        let patch_onto = |cur: &Value| -> ApiResult<Value> {
            let mut target = convert::present(&rt, cur);
            match ct.as_str() {
                "application/merge-patch+json" => patch::merge_patch(&mut target, &patch_body)?,
                "application/json-patch+json" => patch::json_patch(&mut target, &patch_body)?,
                "application/strategic-merge-patch+json" => {
                    patch::strategic_merge(&rt.kind, &mut target, &patch_body)?
                }
                _ => patch::apply(&rt.kind, &mut target, &applied)?,
            }
            strict_check.validate(&mut target)?;
            Ok(convert::to_storage(&rt, target))
        };
        // Applied to the stored object before the store's lock is taken: under the lock only
        // the write rules run, unless another write replaced the object meanwhile (then the
        // patch is applied again, to that one). Every write waits for the lock; patching and
        // validating under it made the writes of a burst queue behind each other.
        let stored = self
            .shared
            .store
            .lock()
            .get_shared(&rt.group_resource(), &ns, &name)
            .cloned();
        let early = stored.map(|cur| {
            let patched = patch_onto(&cur);
            (cur, patched)
        });
        let decide = |view: &super::store::Inner, cur: Option<&Value>| -> ApiResult<Write> {
            let Some(cur) = cur else {
                if is_apply && part == Part::Main {
                    // Server-side apply creates missing objects.
                    let mut obj = applied.clone();
                    objects::meta_mut(&mut obj)?.insert("name".into(), json!(name));
                    strict_check.validate(&mut obj)?;
                    let obj = convert::to_storage(&rt, obj);
                    let mut created = objects::prepare_create(view, &srt, &ns, obj, None)?;
                    let fields = patch::fields_v1(&rt.kind, "", &applied);
                    objects::record_manager_fields(
                        &mut created,
                        fm.as_deref().unwrap_or(""),
                        "Apply",
                        &rt.api_version(),
                        None,
                        Some(fields),
                    );
                    return Ok(Write::Put(created));
                }
                return Err(ApiError::not_found(&rt.group, &rt.plural, &name));
            };
            let target = match early {
                Some((seen, patched)) if std::ptr::eq(&*seen, cur) => patched?,
                _ => patch_onto(cur)?,
            };
            let op = if is_apply { "Apply" } else { "Update" };
            let mut new = objects::prepare_update(view, &srt, cur, target, part, None)?;
            if let Some(m) = &fm {
                let sub = (part == Part::Status).then_some("status");
                let fields = is_apply.then(|| patch::fields_v1(&rt.kind, "", &applied));
                objects::record_manager_fields(&mut new, m, op, &rt.api_version(), sub, fields);
            }
            Ok(if objects::ready_to_remove(&new) {
                Write::Remove
            } else {
                Write::Put(new)
            })
        };
        self.run_write(decide, &[])
    }

    /// A copy with what `validate` needs, usable inside a write closure.
    fn clone_for_validation(&self) -> Ctx {
        Ctx {
            shared: self.shared.clone(),
            t: Target {
                rt: self.t.rt.clone(),
                namespace: self.t.namespace.clone(),
                name: self.t.name.clone(),
                sub: self.t.sub.clone(),
            },
            part: self.part,
            query: self.query.clone(),
            accept: self.accept.clone(),
        }
    }

    fn delete(&self, body: &[u8]) -> ApiResult<Response> {
        if self.part != Part::Main {
            return Err(ApiError::method_not_allowed(
                "delete is not supported on subresources",
            ));
        }
        let opts: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
        };
        let rt = self.rt().clone();
        let name = self.name().to_string();
        let decide = |_: &super::store::Inner, cur: Option<&Value>| -> ApiResult<Write> {
            let cur = cur.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, &name))?;
            let pre = &opts["preconditions"];
            if let Some(uid) = pre["uid"].as_str()
                && Some(uid) != cur["metadata"]["uid"].as_str()
            {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    &name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        cur["metadata"]["uid"].as_str().unwrap_or("")
                    ),
                ));
            }
            if let Some(rv) = pre["resourceVersion"].as_str()
                && Some(rv) != cur["metadata"]["resourceVersion"].as_str()
            {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    &name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        cur["metadata"]["resourceVersion"].as_str().unwrap_or("")
                    ),
                ));
            }
            Ok(match objects::delete_decision(cur) {
                Some(marked) => Write::Put(marked),
                None => Write::Remove,
            })
        };
        self.run_write(decide, &[])
    }

    fn delete_collection(&self) -> ApiResult<Response> {
        let (labels, fields) = self.selectors()?;
        let gr = self.rt().group_resource();
        let keys: Vec<(String, String)> = {
            let store = self.shared.store.lock();
            store
                .list(&gr, self.t.namespace.as_deref())
                .filter(|(_, o)| {
                    let shown = convert::present(self.rt(), o);
                    labels.matches(&shown) && fields.matches(&shown)
                })
                .map(|(k, _)| k.clone())
                .collect()
        };
        let mut items = Vec::new();
        for (ns, name) in keys {
            let res = self.shared.store.write(&gr, &ns, &name, |_, cur| {
                let cur = cur.ok_or_else(|| ApiError::not_found(&gr.group, &gr.resource, &name))?;
                Ok(match objects::delete_decision(cur) {
                    Some(marked) => Write::Put(marked),
                    None => Write::Remove,
                })
            });
            // Objects deleted concurrently are simply skipped.
            if let Ok(w) = res {
                items.push(self.out(&w.object).into_owned());
            }
        }
        Ok(ok(&json!({
            "kind": format!("{}List", self.rt().kind),
            "apiVersion": self.rt().api_version(),
            "metadata": {"resourceVersion": self.shared.store.current_rv().to_string()},
            "items": items,
        })))
    }
}

fn encode_continue(ns: &str, name: &str) -> String {
    let raw = json!([ns, name]).to_string();
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> ApiResult<(String, String)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let v: (String, String) = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok(v)
}
