//! What this component may do, asked of the API server (SelfSubjectAccessReview, which every
//! authenticated identity may create: kube's `system:basic-user`). Used where a permission is
//! optional, so a missing grant narrows what is read instead of stalling a cache forever.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};

/// Whether this identity may `verb` the core `resource` in `namespace`. An API server that
/// cannot be asked counts as no.
pub async fn may(client: &Client, verb: &str, resource: &str, namespace: &str) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(String::new()),
                resource: Some(resource.into()),
                namespace: Some(namespace.into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    match api.create(&PostParams::default(), &review).await {
        Ok(answer) => answer.status.is_some_and(|s| s.allowed),
        Err(e) => {
            tracing::warn!(error = %e, verb, resource, namespace, "SelfSubjectAccessReview failed");
            false
        }
    }
}

/// Whether this identity may list and watch the core `resource` in `namespace` (what a cache
/// of it needs).
pub async fn may_watch(client: &Client, resource: &str, namespace: &str) -> bool {
    may(client, "list", resource, namespace).await
        && may(client, "watch", resource, namespace).await
}
