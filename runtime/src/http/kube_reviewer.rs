//! The [`Reviewer`] that asks the API server: `authentication.k8s.io/v1` TokenReview and
//! `authorization.k8s.io/v1` SubjectAccessReview, created with the component's own client
//! (its ServiceAccount needs `create` on both; deploy/rbac.yaml grants it).

use super::access::{Authentication, Authorization, ReviewError, Reviewer, User};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client, Resource};

/// Reviews tokens and access with the API server `client` talks to.
#[derive(Clone)]
pub struct KubeReviewer {
    client: Client,
}

impl KubeReviewer {
    /// A reviewer over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// The error of a review request: the API server's code and message, or kube's error (which
/// names the failure, never the request body holding the token).
fn failed(review: &'static str, e: kube::Error) -> ReviewError {
    let message = match &e {
        kube::Error::Api(status) => format!(
            "the API server answered {} {}: {}",
            status.code, status.reason, status.message
        ),
        other => other.to_string(),
    };
    ReviewError { review, message }
}

impl Reviewer for KubeReviewer {
    async fn authenticate(&self, token: &str) -> Result<Authentication, ReviewError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        // The answer may echo the review's spec with the token, and `Api::create` logs an
        // answer it cannot parse: send the request and parse the answer here, where nothing
        // logs it.
        let fail = |message: String| ReviewError {
            review: "TokenReview",
            message,
        };
        let body =
            serde_json::to_vec(&review).map_err(|e| fail(format!("encoding the review: {e}")))?;
        let request = kube::core::Request::new(TokenReview::url_path(&(), None))
            .create(&PostParams::default(), body)
            .map_err(|e| fail(e.to_string()))?;
        let text = self
            .client
            .request_text(request)
            .await
            .map_err(|e| failed("TokenReview", e))?;
        let answer: TokenReview = serde_json::from_str(&text).map_err(|e| {
            fail(format!(
                "the API server's answer is not a TokenReview (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        Ok(authentication_of(answer))
    }

    async fn authorize(&self, user: &User, path: &str) -> Result<Authorization, ReviewError> {
        let review = access_review(user, path);
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| failed("SubjectAccessReview", e))?;
        Ok(authorization_of(answer))
    }
}

/// What a TokenReview's status says.
fn authentication_of(answer: TokenReview) -> Authentication {
    let status = answer.status.unwrap_or_default();
    match (status.authenticated, status.user) {
        (Some(true), Some(u)) => Authentication::Authenticated(User {
            name: u.username.unwrap_or_default(),
            uid: u.uid.unwrap_or_default(),
            groups: u.groups.unwrap_or_default(),
            extra: u.extra.unwrap_or_default(),
        }),
        _ => Authentication::Rejected(status.error.unwrap_or_default()),
    }
}

/// The SubjectAccessReview asking whether `user` may `get` the non-resource URL `path`.
fn access_review(user: &User, path: &str) -> SubjectAccessReview {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: some(&user.name),
            uid: some(&user.uid),
            groups: (!user.groups.is_empty()).then(|| user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some(path.to_string()),
                verb: Some("get".into()),
            }),
            resource_attributes: None,
        },
        ..SubjectAccessReview::default()
    }
}

/// What a SubjectAccessReview's status says. An evaluation error with no rule allowing the
/// request is a denial (the API server's own reading); its text is part of the reason.
fn authorization_of(answer: SubjectAccessReview) -> Authorization {
    let status = answer.status.unwrap_or_default();
    if status.allowed && status.denied != Some(true) {
        return Authorization::Allowed;
    }
    let reason = [status.reason, status.evaluation_error]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Authorization::Denied(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo};
    use k8s_openapi::api::authorization::v1::SubjectAccessReviewStatus;
    use std::collections::BTreeMap;

    #[test]
    fn an_authenticated_review_gives_the_whole_user() {
        let answer = TokenReview {
            status: Some(TokenReviewStatus {
                authenticated: Some(true),
                user: Some(UserInfo {
                    username: Some("system:serviceaccount:monitoring:prometheus".into()),
                    uid: Some("7c1d".into()),
                    groups: Some(vec!["system:serviceaccounts".into()]),
                    extra: Some(BTreeMap::from([(
                        "authentication.kubernetes.io/pod-name".to_string(),
                        vec!["prometheus-0".to_string()],
                    )])),
                }),
                ..TokenReviewStatus::default()
            }),
            ..TokenReview::default()
        };
        let Authentication::Authenticated(user) = authentication_of(answer) else {
            panic!("not authenticated");
        };
        assert_eq!(user.name, "system:serviceaccount:monitoring:prometheus");
        assert_eq!(user.uid, "7c1d");
        assert_eq!(user.groups, ["system:serviceaccounts"]);
        assert_eq!(
            user.extra["authentication.kubernetes.io/pod-name"],
            ["prometheus-0"]
        );

        // The access review carries all of it, and the path as a non-resource URL.
        let review = access_review(&user, "/metrics");
        let json = serde_json::to_value(&review).expect("json");
        assert_eq!(
            json["spec"],
            serde_json::json!({
                "user": "system:serviceaccount:monitoring:prometheus",
                "uid": "7c1d",
                "groups": ["system:serviceaccounts"],
                "extra": {"authentication.kubernetes.io/pod-name": ["prometheus-0"]},
                "nonResourceAttributes": {"path": "/metrics", "verb": "get"},
            })
        );
        assert_eq!(json["apiVersion"], "authorization.k8s.io/v1");
        assert_eq!(json["kind"], "SubjectAccessReview");
    }

    #[test]
    fn an_unauthenticated_review_is_rejected_with_its_error() {
        let answer = TokenReview {
            status: Some(TokenReviewStatus {
                authenticated: Some(false),
                error: Some("token has expired".into()),
                ..TokenReviewStatus::default()
            }),
            ..TokenReview::default()
        };
        assert_eq!(
            authentication_of(answer),
            Authentication::Rejected("token has expired".into())
        );
        assert_eq!(
            authentication_of(TokenReview::default()),
            Authentication::Rejected(String::new())
        );
    }

    #[test]
    fn access_answers() {
        let sar = |allowed, denied, reason: Option<&str>, error: Option<&str>| {
            authorization_of(SubjectAccessReview {
                status: Some(SubjectAccessReviewStatus {
                    allowed,
                    denied,
                    reason: reason.map(str::to_string),
                    evaluation_error: error.map(str::to_string),
                }),
                ..SubjectAccessReview::default()
            })
        };
        assert_eq!(sar(true, None, None, None), Authorization::Allowed);
        assert_eq!(
            sar(false, None, Some("no RBAC policy matched"), None),
            Authorization::Denied("no RBAC policy matched".into())
        );
        assert_eq!(
            sar(
                false,
                Some(true),
                Some("denied by webhook"),
                Some("timeout")
            ),
            Authorization::Denied("denied by webhook; timeout".into())
        );
        assert_eq!(
            authorization_of(SubjectAccessReview::default()),
            Authorization::Denied(String::new())
        );
    }

    /// A stand-in API server answering the two reviews as kube-apiserver does (echoing the
    /// request's spec): token `good` is `prometheus`, who may get `/metrics` only. While
    /// `failing`, it answers 500.
    async fn api_server(failing: bool) -> Client {
        use axum::Json;
        use axum::http::StatusCode;
        use axum::routing::post;
        let token_review = move |Json(mut review): Json<serde_json::Value>| async move {
            if failing {
                return Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(serde_json::json!({
                        "kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "message": "etcd unavailable", "reason": "InternalError", "code": 500,
                    })),
                ));
            }
            review["status"] = if review["spec"]["token"] == "good" {
                serde_json::json!({"authenticated": true, "user": {
                    "username": "prometheus", "uid": "u1", "groups": ["monitoring"]}})
            } else {
                serde_json::json!({"authenticated": false, "error": "invalid bearer token"})
            };
            Ok(Json(review))
        };
        let access_review = |Json(mut review): Json<serde_json::Value>| async move {
            let spec = &review["spec"];
            let allowed = spec["user"] == "prometheus"
                && spec["groups"] == serde_json::json!(["monitoring"])
                && spec["nonResourceAttributes"]
                    == serde_json::json!({"path": "/metrics", "verb": "get"});
            review["status"] = if allowed {
                serde_json::json!({"allowed": true})
            } else {
                serde_json::json!({"allowed": false, "reason": "no RBAC policy matched"})
            };
            Json(review)
        };
        let app = axum::Router::new()
            .route(
                "/apis/authentication.k8s.io/v1/tokenreviews",
                post(token_review),
            )
            .route(
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                post(access_review),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let url = format!("http://{addr}").parse().expect("url");
        Client::try_from(kube::Config::new(url)).expect("client")
    }

    #[tokio::test]
    async fn reviews_over_the_api() {
        let r = KubeReviewer::new(api_server(false).await);
        let Ok(Authentication::Authenticated(user)) = r.authenticate("good").await else {
            panic!("token good not authenticated");
        };
        assert_eq!(user.name, "prometheus");
        assert_eq!(
            r.authenticate("bad").await,
            Ok(Authentication::Rejected("invalid bearer token".into()))
        );
        assert_eq!(
            r.authorize(&user, "/metrics").await,
            Ok(Authorization::Allowed)
        );
        assert_eq!(
            r.authorize(&user, "/api/v1/status").await,
            Ok(Authorization::Denied("no RBAC policy matched".into()))
        );

        let r = KubeReviewer::new(api_server(true).await);
        let err = r.authenticate("good").await.expect_err("500");
        assert_eq!(err.review, "TokenReview");
        assert_eq!(
            err.message,
            "the API server answered 500 InternalError: etcd unavailable"
        );
        assert!(!err.to_string().contains("good"), "{err}");
    }
}
