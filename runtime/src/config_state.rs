//! Writes a component's `ConfigurationState` (MetalLB's kind: one object per component saying
//! whether its configuration is valid and why not) in `ferrolb.io`, and in `metallb.io` where
//! MetalLB's configuration is read, so tools watching MetalLB's object keep working. Off the
//! loop's path: the loop publishes its status, a task of its own writes when it changed.

use crate::groups::{ConfigGroup, ResolvedGroups};
use ferrolb_api::ConfigurationStateStatus;
use ferrolb_api::status::ConfigStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long a failed write waits before it is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// Where one `ConfigurationState` object lives.
#[derive(Clone, Debug)]
struct Target {
    resource: ApiResource,
    namespace: String,
}

/// The publishing side of the writer.
#[derive(Clone)]
pub struct ConfigStateWriter {
    tx: watch::Sender<Option<ConfigStatus>>,
}

impl ConfigStateWriter {
    /// Starts the writer of object `name` (`controller`, `speaker-<node>`) in `namespace`, and
    /// in `metallb_namespace` when `groups` reads MetalLB's configuration.
    pub fn start(
        client: &Client,
        name: &str,
        namespace: &str,
        metallb_namespace: &str,
        groups: &ResolvedGroups,
        tasks: &mut JoinSet<()>,
    ) -> Self {
        let mut targets = vec![Target {
            resource: resource(ferrolb_api::GROUP),
            namespace: namespace.into(),
        }];
        if groups.uses(ConfigGroup::Metallb) {
            targets.push(Target {
                resource: resource(ferrolb_api::METALLB_GROUP),
                namespace: metallb_namespace.into(),
            });
        }
        let (tx, rx) = watch::channel(None);
        tasks.spawn(run(client.clone(), name.to_string(), targets, rx));
        Self { tx }
    }

    /// Hands over the status to report; written when it differs from the last one.
    pub fn publish(&self, status: &ConfigStatus) {
        self.tx.send_if_modified(|current| {
            let changed = current.as_ref() != Some(status);
            if changed {
                *current = Some(status.clone());
            }
            changed
        });
    }
}

fn resource(group: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: "v1beta1".into(),
        api_version: format!("{group}/v1beta1"),
        kind: "ConfigurationState".into(),
        plural: "configurationstates".into(),
    }
}

async fn run(
    client: Client,
    name: String,
    targets: Vec<Target>,
    mut rx: watch::Receiver<Option<ConfigStatus>>,
) {
    let mut written: Option<ConfigurationStateStatus> = None;
    let mut failed = false;
    loop {
        if failed {
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(RETRY) => {}
            }
        } else if rx.changed().await.is_err() {
            return;
        }
        let Some(config) = rx.borrow_and_update().clone() else {
            continue;
        };
        // The transition time moves only when the result does.
        let since = written
            .as_ref()
            .filter(|w| w.result == ConfigurationStateStatus::of(&config, now()).result)
            .and_then(|w| w.conditions.first())
            .map_or_else(now, |c| c.last_transition_time.clone());
        let status = ConfigurationStateStatus::of(&config, since);
        if !failed && written.as_ref().is_some_and(|w| w.same_as(&status)) {
            continue;
        }
        failed = false;
        for t in &targets {
            if let Err(e) = write(&client, t, &name, &status).await {
                tracing::warn!(error = %e, group = %t.resource.group, namespace = %t.namespace, %name, "writing ConfigurationState failed; retrying");
                failed = true;
            }
        }
        written = Some(status);
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

async fn write(
    client: &Client,
    target: &Target,
    name: &str,
    status: &ConfigurationStateStatus,
) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &target.namespace, &target.resource);
    if api.get_opt(name).await?.is_none() {
        let mut obj = DynamicObject::new(name, &target.resource).within(&target.namespace);
        obj.data = serde_json::json!({"spec": {}});
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    let patch = serde_json::json!({ "status": status });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}
