//! What every request handler of one server shares, and what a restart carries over.

use std::sync::Arc;
use std::time::Duration;

use super::store::{Snapshot, Store};
use super::{ApiServerError, ApiServerOptions, Faults, audit, auth, tls};

/// State shared by all request handlers of one server (and kept across restarts).
pub struct Shared {
    pub(super) store: Store,
    pub(super) faults: Arc<Faults>,
    pub(super) bookmark_interval: Duration,
    pub(super) auth: auth::AuthSettings,
    pub(super) tls: tls::TlsIdentity,
    /// Where authorization decisions are recorded (`--audit-log`).
    pub(super) audit: Option<audit::AuditLog>,
    /// What watches have sent, by resource.
    pub(super) watch_stats: super::watch_stats::WatchStats,
}

impl Shared {
    /// Every object and the token signing key: what a restart must keep.
    pub(super) fn snapshot(&self) -> Snapshot {
        let mut snap = self.store.snapshot();
        snap.service_account_signing_key = Some(self.auth.signing_key.to_text());
        snap
    }

    /// The state of a server started with `options` from `snapshot` (objects and signing
    /// key; a fresh key without one), with the default RBAC roles in place.
    pub(super) fn new(
        options: &ApiServerOptions,
        snapshot: Option<Snapshot>,
        faults: Arc<Faults>,
        tls: tls::TlsIdentity,
    ) -> Result<Shared, ApiServerError> {
        let signing_key = match snapshot
            .as_ref()
            .and_then(|s| s.service_account_signing_key.as_deref())
        {
            Some(text) => {
                auth::tokens::SigningKey::from_text(text).ok_or(ApiServerError::BadSigningKey)?
            }
            None => auth::tokens::SigningKey::generate(),
        };
        let admin_token = options
            .admin_token
            .clone()
            .ok_or(ApiServerError::BadAdminToken)?;
        let store = Store::new(options.history_limit, snapshot);
        auth::bootstrap::ensure(&store).map_err(|e| ApiServerError::Bootstrap(e.to_string()))?;
        let audit = match &options.audit_log {
            Some(path) => {
                Some(
                    audit::AuditLog::open(path).map_err(|source| ApiServerError::Write {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        Ok(Shared {
            store,
            faults,
            bookmark_interval: options.bookmark_interval,
            auth: auth::AuthSettings {
                admin_token,
                signing_key,
                min_token_expiration: options.min_token_expiration,
                token_leeway: options.token_expiry_leeway,
            },
            tls,
            audit,
            watch_stats: Default::default(),
        })
    }
}

/// 24 random bytes, hex: a token no test guesses.
pub(super) fn random_admin_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn valid_admin_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}
