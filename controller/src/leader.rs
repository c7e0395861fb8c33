//! Leader election with a `coordination.k8s.io/v1` Lease, so two replicas can run and only one
//! writes.
//!
//! The holder renews the lease every `renew_every`; a candidate takes it over once
//! `renewTime + leaseDurationSeconds` has passed. Updates use the lease's resourceVersion, so two
//! candidates racing for an expired lease cannot both win (the loser gets 409 Conflict).
//! Leadership is published on a `watch` channel; the holder drops it *before* the lease could
//! expire in anybody else's eyes (when a renewal has not succeeded within the lease duration
//! minus one renew period), so two replicas never write at once.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use std::time::Duration;
use tokio::sync::watch;

/// Settings of the election.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's identity (pod name).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews and candidates retry.
    pub renew_every: Duration,
}

impl LeaderConfig {
    /// Defaults: 15 s lease renewed every 2 s.
    pub fn new(namespace: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            lease_name: "ferrolb-controller".to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(2),
        }
    }
}

/// What one election round decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Round {
    /// We hold the lease (created, renewed or taken over).
    Leading,
    /// Somebody else holds a valid lease.
    Following,
}

/// Decides, from the current lease (if any), whether we may claim it now.
fn may_claim(lease: Option<&Lease>, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return true;
    };
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(holder) if holder == identity => true,
        Some(_) => {
            let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
            let renewed = spec
                .renew_time
                .as_ref()
                .or(spec.acquire_time.as_ref())
                .map(|t| t.0);
            match renewed {
                Some(t) => t + SignedDuration::from_secs(duration) < now,
                None => true,
            }
        }
    }
}

/// One election round: get the lease, then create, renew or take it over if allowed.
pub async fn round(api: &Api<Lease>, cfg: &LeaderConfig) -> Result<Round, kube::Error> {
    let now = Timestamp::now();
    let current = api.get_opt(&cfg.lease_name).await?;
    if !may_claim(current.as_ref(), &cfg.identity, now) {
        return Ok(Round::Following);
    }
    let held_by_us = current
        .as_ref()
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.holder_identity.as_deref())
        == Some(cfg.identity.as_str());
    let transitions = current
        .as_ref()
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0);
    let acquire_time = if held_by_us {
        current
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.acquire_time.clone())
    } else {
        Some(MicroTime(now))
    };
    let spec = LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(i32::try_from(cfg.lease_duration.as_secs()).unwrap_or(15)),
        acquire_time,
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if held_by_us {
            transitions
        } else {
            transitions + 1
        }),
        ..LeaseSpec::default()
    };
    let result = match current {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.lease_name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        Some(mut lease) => {
            lease.spec = Some(spec);
            // replace carries the resourceVersion we read: a concurrent winner makes this 409.
            api.replace(&cfg.lease_name, &PostParams::default(), &lease)
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(Round::Leading),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Round::Following),
        Err(e) => Err(e),
    }
}

/// Gives the lease up if we hold it, as client-go's `ReleaseOnCancel` does: holder empty, a
/// one-second duration. A standby takes over at its next round instead of waiting out the
/// lease, so a planned restart of the leader (a rolling update) leaves no gap of the lease's
/// length. Run it after the election loop is stopped, or the loop would claim it again.
pub async fn release(api: &Api<Lease>, cfg: &LeaderConfig) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(&cfg.lease_name).await? else {
        return Ok(false);
    };
    let ours = lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        == Some(cfg.identity.as_str());
    if !ours {
        return Ok(false);
    }
    let now = MicroTime(Timestamp::now());
    let transitions = lease.spec.as_ref().and_then(|s| s.lease_transitions);
    lease.spec = Some(LeaseSpec {
        holder_identity: Some(String::new()),
        lease_duration_seconds: Some(1),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        lease_transitions: transitions,
        ..LeaseSpec::default()
    });
    // The read resourceVersion makes this 409 if somebody took the lease meanwhile.
    api.replace(&cfg.lease_name, &PostParams::default(), &lease)
        .await?;
    Ok(true)
}

/// Runs the election forever, publishing whether we lead. Returns when every receiver is gone.
pub async fn run(api: Api<Lease>, cfg: LeaderConfig, tx: watch::Sender<bool>) {
    // We stop considering ourselves leader when the last successful renewal is older than this,
    // one renew period before the lease expires for everybody else.
    let safe_for = cfg.lease_duration.saturating_sub(cfg.renew_every);
    let mut last_renewed: Option<tokio::time::Instant> = None;
    loop {
        let leading = match round(&api, &cfg).await {
            Ok(Round::Leading) => {
                last_renewed = Some(tokio::time::Instant::now());
                true
            }
            Ok(Round::Following) => {
                last_renewed = None;
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "leader election round failed");
                last_renewed.is_some_and(|t| t.elapsed() < safe_for)
            }
        };
        if *tx.borrow() != leading {
            tracing::info!(leading, identity = %cfg.identity, "leadership changed");
        }
        if tx.send(leading).is_err() {
            return;
        }
        tokio::time::sleep(cfg.renew_every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_secs_ago: i64, duration: i32) -> Lease {
        let now = Timestamp::now();
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(now - SignedDuration::from_secs(renewed_secs_ago))),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn claim_rules() {
        let now = Timestamp::now();
        assert!(may_claim(None, "a", now), "no lease: claim");
        assert!(
            may_claim(Some(&lease(None, 0, 15)), "a", now),
            "no holder: claim"
        );
        assert!(
            may_claim(Some(&lease(Some("a"), 0, 15)), "a", now),
            "ours: renew"
        );
        assert!(
            !may_claim(Some(&lease(Some("b"), 3, 15)), "a", now),
            "valid other: wait"
        );
        assert!(
            may_claim(Some(&lease(Some("b"), 20, 15)), "a", now),
            "expired other: take"
        );
    }
}
