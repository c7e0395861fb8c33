//! What a request asks to do, as kube-apiserver's `RequestInfoFactory` reads it from the
//! method, path and query: a resource request (verb, API group, resource, subresource,
//! namespace, name) or a non-resource request (lower-case method and path). Authorization
//! decides on these, and a denial names them in kube's exact words.

use std::collections::HashMap;

use serde_json::json;

use super::super::error::ApiError;

/// One request, as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub verb: String,
    pub resource_request: bool,
    /// The URL path of a non-resource request.
    pub path: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

impl Attributes {
    pub fn resource(verb: &str, group: &str, resource: &str, namespace: &str) -> Attributes {
        Attributes {
            verb: verb.to_string(),
            resource_request: true,
            api_group: group.to_string(),
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            ..Attributes::default()
        }
    }

    pub fn non_resource(verb: &str, path: &str) -> Attributes {
        Attributes {
            verb: verb.to_string(),
            path: path.to_string(),
            ..Attributes::default()
        }
    }

    pub fn named(mut self, name: &str) -> Attributes {
        self.name = name.to_string();
        self
    }

    pub fn subresource(mut self, subresource: &str) -> Attributes {
        self.subresource = subresource.to_string();
        self
    }

    /// `resource` or `resource/subresource`, as rules name it.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// kube's `forbiddenMessage`.
    fn forbidden_message(&self, username: &str) -> String {
        if !self.resource_request {
            return format!(
                "User {username:?} cannot {} path {:?}",
                self.verb, self.path
            );
        }
        let resource = self.combined_resource();
        if self.namespace.is_empty() {
            format!(
                "User {username:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
                self.verb, self.api_group
            )
        } else {
            format!(
                "User {username:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
                self.verb, self.api_group, self.namespace
            )
        }
    }

    /// The 403 kube-apiserver answers when `username` may not do this (`reason` is the
    /// authorizer's, e.g. RBAC's note about a binding to a missing role).
    pub fn forbidden(&self, username: &str, reason: &str) -> ApiError {
        let mut why = self.forbidden_message(username);
        if !reason.is_empty() {
            why = format!("{why}: {reason}");
        }
        let message = match (self.resource.is_empty(), self.name.is_empty()) {
            (true, _) => format!("forbidden: {why}"),
            (false, true) => format!("{} is forbidden: {why}", self.qualified_resource()),
            (false, false) => format!(
                "{} {:?} is forbidden: {why}",
                self.qualified_resource(),
                self.name
            ),
        };
        let mut details = json!({});
        if !self.name.is_empty() {
            details["name"] = json!(self.name);
        }
        if !self.api_group.is_empty() {
            details["group"] = json!(self.api_group);
        }
        if !self.resource.is_empty() {
            details["kind"] = json!(self.resource);
        }
        ApiError::forbidden(message, details)
    }

    /// `services` or `ipaddresspools.ferrolb.io` (Go's `GroupResource.String`).
    fn qualified_resource(&self) -> String {
        if self.api_group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.api_group)
        }
    }
}

/// The attributes of a request. `query` is the decoded query string.
pub fn from_request(method: &str, path: &str, query: &HashMap<String, String>) -> Attributes {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let non_resource = || Attributes::non_resource(&method.to_ascii_lowercase(), path);
    if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
        return non_resource();
    }
    let mut rest = &parts[1..];
    let mut attrs = Attributes {
        resource_request: true,
        ..Attributes::default()
    };
    if parts[0] == "apis" {
        if rest.len() < 3 {
            return non_resource();
        }
        attrs.api_group = rest[0].to_string();
        rest = &rest[1..];
    }
    attrs.api_version = rest[0].to_string();
    rest = &rest[1..];
    let special_verb = matches!(rest[0], "watch" | "proxy");
    if special_verb {
        if rest.len() < 2 {
            // kube refuses such a path before authorization; no verb then matches any rule.
            return attrs;
        }
        attrs.verb = rest[0].to_string();
        rest = &rest[1..];
    } else {
        attrs.verb = match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_string();
    }
    if rest[0] == "namespaces" && rest.len() > 1 {
        attrs.namespace = rest[1].to_string();
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    if rest.len() >= 3 && attrs.verb != "proxy" {
        attrs.subresource = rest[2].to_string();
    }
    if rest.len() >= 2 {
        attrs.name = rest[1].to_string();
    }
    attrs.resource = rest[0].to_string();
    if attrs.name.is_empty() && attrs.verb == "get" {
        let watch = query
            .get("watch")
            .is_some_and(|v| matches!(v.as_str(), "true" | "1"));
        attrs.verb = if watch { "watch" } else { "list" }.to_string();
    }
    if attrs.name.is_empty() && matches!(attrs.verb.as_str(), "list" | "watch") {
        // A list or watch of one object by `metadata.name=` counts as naming it.
        if let Some(name) = query
            .get("fieldSelector")
            .and_then(|s| exact_name_selector(s))
        {
            attrs.name = name;
        }
    }
    if attrs.name.is_empty() && attrs.verb == "delete" {
        attrs.verb = "deletecollection".to_string();
    }
    attrs
}

/// The name a field selector requires exactly (`metadata.name=x` or `==x`), if it is a
/// valid path segment (kube's `RequiresExactMatch("metadata.name")`).
fn exact_name_selector(selector: &str) -> Option<String> {
    let value = selector.split(',').map(str::trim).find_map(|term| {
        term.strip_prefix("metadata.name==")
            .or_else(|| term.strip_prefix("metadata.name="))
    })?;
    let valid = !value.is_empty()
        && !value.contains('/')
        && !value.contains('%')
        && value != "."
        && value != "..";
    valid.then(|| value.to_string())
}
