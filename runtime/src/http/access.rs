//! Who may read `/metrics` and `/api/*`: the API server decides, as for kube-rbac-proxy and
//! MetalLB. A bearer token is authenticated with a `TokenReview`; the user it names is then
//! authorized with a `SubjectAccessReview` for `get` on the request path as a non-resource
//! URL, so RBAC rules such as `nonResourceURLs: [/metrics]` grant access.
//!
//! [`Access`] holds the decision logic over a [`Reviewer`] (the API server in production, a
//! fake in tests) and caches answers briefly (see [`access_cache`](super::access_cache)).
//! Failures to reach the API server are not cached and never become a "denied".

use super::access_cache::{AccessCache, AccessKey};
use crate::sync::lock;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an answer of the API server is reused.
pub const DECISION_TTL: Duration = Duration::from_secs(10);
/// Most answers kept at once: far more than the scrapers and clients of one component.
pub const DECISION_CACHE_CAPACITY: usize = 1024;

/// The identity a token stands for, as the API server's `TokenReview` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    /// User name, e.g. `system:serviceaccount:monitoring:prometheus`.
    pub name: String,
    /// UID, when the authenticator reports one.
    pub uid: String,
    /// Groups the user belongs to.
    pub groups: Vec<String>,
    /// Extra attributes the authenticator reports (passed on to the authorizer).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The answer of a token review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authentication {
    /// The token is valid for this user.
    Authenticated(User),
    /// The token is not valid; the reason the API server gave, if any.
    Rejected(String),
}

/// The answer of an access review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authorization {
    /// The user may `get` the path.
    Allowed,
    /// The user may not; the reason the API server gave, if any.
    Denied(String),
}

/// A review could not be made (API server unreachable, rejected the review, ...).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the {review} could not be made: {message}")]
pub struct ReviewError {
    /// `TokenReview` or `SubjectAccessReview`.
    pub review: &'static str,
    /// What went wrong.
    pub message: String,
}

/// Asks whoever decides about tokens and permissions.
pub trait Reviewer: Send + Sync + 'static {
    /// Who `token` belongs to.
    fn authenticate(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<Authentication, ReviewError>> + Send;

    /// Whether `user` may `get` the non-resource URL `path`.
    fn authorize(
        &self,
        user: &User,
        path: &str,
    ) -> impl Future<Output = Result<Authorization, ReviewError>> + Send;
}

/// What to do with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Serve it; `user` is who asked.
    Allowed {
        /// The authenticated user's name.
        user: String,
    },
    /// 401: the token is not valid.
    Unauthenticated(String),
    /// 403: the token is valid, the user may not read the path.
    Forbidden {
        /// The authenticated user's name.
        user: String,
        /// Why, as the API server said.
        reason: String,
    },
    /// 503: the API server could not be asked; the request may be retried.
    Unavailable(String),
}

/// The access decisions of one HTTP API: a reviewer and the answers it gave recently.
pub struct Access<R> {
    reviewer: R,
    cache: Mutex<AccessCache<Decision>>,
}

impl<R: Reviewer> Access<R> {
    /// Decisions by `reviewer`, each reused for [`DECISION_TTL`].
    pub fn new(reviewer: R) -> Self {
        Self::with_cache(reviewer, DECISION_TTL, DECISION_CACHE_CAPACITY)
    }

    /// Decisions by `reviewer`, each reused for `ttl`, at most `capacity` kept.
    pub fn with_cache(reviewer: R, ttl: Duration, capacity: usize) -> Self {
        Self {
            reviewer,
            cache: Mutex::new(AccessCache::new(ttl, capacity)),
        }
    }

    /// Whether the holder of `token` may `get` `path`.
    pub async fn decide(&self, token: &str, path: &str) -> Decision {
        let key = AccessKey::new(token, path);
        if let Some(d) = lock(&self.cache).get(&key, Instant::now()) {
            return d;
        }
        let decision = self.ask(token, path).await;
        if !matches!(decision, Decision::Unavailable(_)) {
            lock(&self.cache).insert(key, decision.clone(), Instant::now());
        }
        decision
    }

    async fn ask(&self, token: &str, path: &str) -> Decision {
        let user = match self.reviewer.authenticate(token).await {
            Ok(Authentication::Authenticated(user)) => user,
            Ok(Authentication::Rejected(reason)) => {
                return Decision::Unauthenticated(if reason.is_empty() {
                    "the API server did not accept the bearer token".into()
                } else {
                    format!("the API server did not accept the bearer token: {reason}")
                });
            }
            Err(e) => return Decision::Unavailable(e.to_string()),
        };
        match self.reviewer.authorize(&user, path).await {
            Ok(Authorization::Allowed) => Decision::Allowed { user: user.name },
            Ok(Authorization::Denied(reason)) => Decision::Forbidden {
                user: user.name,
                reason,
            },
            Err(e) => Decision::Unavailable(e.to_string()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Knows one token (`good`, user `prometheus`, allowed on `/metrics` only) and fails
    /// every review while `down` is set.
    #[derive(Default)]
    pub(crate) struct FakeReviewer {
        pub(crate) down: std::sync::atomic::AtomicBool,
        pub(crate) token_reviews: AtomicUsize,
        pub(crate) access_reviews: AtomicUsize,
    }

    pub(crate) fn prometheus() -> User {
        User {
            name: "system:serviceaccount:monitoring:prometheus".into(),
            uid: "7c1d".into(),
            groups: vec!["system:serviceaccounts".into()],
            extra: BTreeMap::new(),
        }
    }

    impl Reviewer for FakeReviewer {
        async fn authenticate(&self, token: &str) -> Result<Authentication, ReviewError> {
            self.token_reviews.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(ReviewError {
                    review: "TokenReview",
                    message: "connection refused".into(),
                });
            }
            Ok(match token {
                "good" => Authentication::Authenticated(prometheus()),
                "empty-reason" => Authentication::Rejected(String::new()),
                _ => Authentication::Rejected("token expired".into()),
            })
        }

        async fn authorize(&self, user: &User, path: &str) -> Result<Authorization, ReviewError> {
            self.access_reviews.fetch_add(1, Ordering::SeqCst);
            assert_eq!(user, &prometheus(), "the reviewed user is passed on whole");
            if self.down.load(Ordering::SeqCst) {
                return Err(ReviewError {
                    review: "SubjectAccessReview",
                    message: "503 Service Unavailable".into(),
                });
            }
            Ok(if path == "/metrics" {
                Authorization::Allowed
            } else {
                Authorization::Denied("no RBAC policy matched".into())
            })
        }
    }

    fn counts(a: &Access<FakeReviewer>) -> (usize, usize) {
        (
            a.reviewer.token_reviews.load(Ordering::SeqCst),
            a.reviewer.access_reviews.load(Ordering::SeqCst),
        )
    }

    #[tokio::test]
    async fn an_allowed_user_gets_in() {
        let a = Access::new(FakeReviewer::default());
        assert_eq!(
            a.decide("good", "/metrics").await,
            Decision::Allowed {
                user: "system:serviceaccount:monitoring:prometheus".into()
            }
        );
        assert_eq!(counts(&a), (1, 1));
    }

    #[tokio::test]
    async fn a_valid_token_without_permission_is_forbidden_with_the_reason() {
        let a = Access::new(FakeReviewer::default());
        assert_eq!(
            a.decide("good", "/api/v1/status").await,
            Decision::Forbidden {
                user: "system:serviceaccount:monitoring:prometheus".into(),
                reason: "no RBAC policy matched".into(),
            }
        );
    }

    #[tokio::test]
    async fn an_invalid_token_is_unauthenticated_without_an_access_review() {
        let a = Access::new(FakeReviewer::default());
        assert_eq!(
            a.decide("stale", "/metrics").await,
            Decision::Unauthenticated(
                "the API server did not accept the bearer token: token expired".into()
            )
        );
        assert_eq!(
            a.decide("empty-reason", "/metrics").await,
            Decision::Unauthenticated("the API server did not accept the bearer token".into())
        );
        assert_eq!(counts(&a), (2, 0));
    }

    #[tokio::test]
    async fn an_api_server_failure_is_unavailable_and_not_cached() {
        let a = Access::new(FakeReviewer::default());
        a.reviewer.down.store(true, Ordering::SeqCst);
        assert_eq!(
            a.decide("good", "/metrics").await,
            Decision::Unavailable("the TokenReview could not be made: connection refused".into())
        );
        a.reviewer.down.store(false, Ordering::SeqCst);
        assert!(matches!(
            a.decide("good", "/metrics").await,
            Decision::Allowed { .. }
        ));
        assert_eq!(counts(&a), (2, 1), "the failure was not reused");
    }

    #[tokio::test]
    async fn an_access_review_failure_is_unavailable() {
        struct AuthOnly;
        impl Reviewer for AuthOnly {
            async fn authenticate(&self, _: &str) -> Result<Authentication, ReviewError> {
                Ok(Authentication::Authenticated(prometheus()))
            }
            async fn authorize(&self, _: &User, _: &str) -> Result<Authorization, ReviewError> {
                Err(ReviewError {
                    review: "SubjectAccessReview",
                    message: "503 Service Unavailable".into(),
                })
            }
        }
        let a = Access::new(AuthOnly);
        assert_eq!(
            a.decide("good", "/metrics").await,
            Decision::Unavailable(
                "the SubjectAccessReview could not be made: 503 Service Unavailable".into()
            )
        );
    }

    #[tokio::test]
    async fn answers_are_reused_per_token_and_path() {
        let a = Access::new(FakeReviewer::default());
        for _ in 0..3 {
            assert!(matches!(
                a.decide("good", "/metrics").await,
                Decision::Allowed { .. }
            ));
            assert!(matches!(
                a.decide("good", "/api/v1/status").await,
                Decision::Forbidden { .. }
            ));
            assert!(matches!(
                a.decide("stale", "/metrics").await,
                Decision::Unauthenticated(_)
            ));
        }
        // One review per (token, path): positive and negative answers are both reused.
        assert_eq!(counts(&a), (3, 2));
        // While the API server is down, a cached answer still serves.
        a.reviewer.down.store(true, Ordering::SeqCst);
        assert!(matches!(
            a.decide("good", "/metrics").await,
            Decision::Allowed { .. }
        ));
    }

    #[tokio::test]
    async fn answers_expire() {
        let a = Access::with_cache(FakeReviewer::default(), Duration::ZERO, 8);
        a.decide("good", "/metrics").await;
        a.decide("good", "/metrics").await;
        assert_eq!(counts(&a), (2, 2));
    }
}
