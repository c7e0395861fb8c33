//! Which API groups the configuration is read from: ferrolb's own (`ferrolb.io`) and MetalLB's
//! (`metallb.io`, so a cluster's MetalLB configuration works as it is). By default every group
//! whose CRDs the API server serves at start is read.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// An API group the configuration kinds can come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigGroup {
    /// `ferrolb.io/v1beta1`.
    Ferrolb,
    /// `metallb.io/v1beta1` (and `v1beta2` for BGPPeer).
    Metallb,
}

impl ConfigGroup {
    /// The group's name.
    pub fn name(self) -> &'static str {
        match self {
            ConfigGroup::Ferrolb => ferrolb_api::GROUP,
            ConfigGroup::Metallb => ferrolb_api::METALLB_GROUP,
        }
    }
}

impl fmt::Display for ConfigGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `--config-groups`: `auto` or a comma-separated list of group names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GroupChoice {
    /// Every group whose CRDs are installed when the component starts.
    #[default]
    Auto,
    /// These groups; one whose CRDs are missing is an error at start.
    Only(BTreeSet<ConfigGroup>),
}

impl FromStr for GroupChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "auto" {
            return Ok(GroupChoice::Auto);
        }
        let mut groups = BTreeSet::new();
        for part in s.split(',').map(str::trim) {
            let group = match part {
                "ferrolb.io" => ConfigGroup::Ferrolb,
                "metallb.io" => ConfigGroup::Metallb,
                other => {
                    return Err(format!(
                        "unknown group {other:?}: expected `auto` or a comma-separated list of \
                         ferrolb.io and metallb.io"
                    ));
                }
            };
            groups.insert(group);
        }
        if groups.is_empty() {
            return Err("no group given".into());
        }
        Ok(GroupChoice::Only(groups))
    }
}

/// The groups in use, and the version MetalLB's BGPPeer is read in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedGroups {
    /// Groups read, sorted.
    pub groups: BTreeSet<ConfigGroup>,
    /// `v1beta2` where served (MetalLB's storage version), else `v1beta1`.
    pub metallb_bgp_peer_version: &'static str,
}

impl ResolvedGroups {
    /// Whether `group` is read.
    pub fn uses(&self, group: ConfigGroup) -> bool {
        self.groups.contains(&group)
    }

    /// The groups' names, for the status API and logs.
    pub fn names(&self) -> Vec<String> {
        self.groups.iter().map(|g| g.name().to_string()).collect()
    }
}

/// What the API server serves of each group: `group/version`s such as `metallb.io/v1beta2`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// Every served `group/version`.
    pub group_versions: BTreeSet<String>,
}

impl Served {
    fn has(&self, gv: &str) -> bool {
        self.group_versions.contains(gv)
    }

    fn has_group(&self, group: ConfigGroup) -> bool {
        match group {
            ConfigGroup::Ferrolb => self.has(ferrolb_api::API_VERSION),
            ConfigGroup::Metallb => self.has("metallb.io/v1beta1"),
        }
    }
}

/// Resolves `choice` against what the API server serves. `auto` keeps ferrolb.io even when its
/// CRDs are missing (nothing else would configure the component, and the watch then says so);
/// an explicit group that is not served is an error.
pub fn resolve(choice: &GroupChoice, served: &Served) -> Result<ResolvedGroups, String> {
    let groups = match choice {
        GroupChoice::Auto => {
            let mut g = BTreeSet::from([ConfigGroup::Ferrolb]);
            if served.has_group(ConfigGroup::Metallb) {
                g.insert(ConfigGroup::Metallb);
            }
            g
        }
        GroupChoice::Only(groups) => {
            if let Some(missing) = groups.iter().find(|g| !served.has_group(**g)) {
                return Err(format!(
                    "--config-groups names {missing}, but the API server serves no {missing} \
                     CRDs: install them first, or leave the group out"
                ));
            }
            groups.clone()
        }
    };
    let metallb_bgp_peer_version = if served.has("metallb.io/v1beta2") {
        "v1beta2"
    } else {
        "v1beta1"
    };
    Ok(ResolvedGroups {
        groups,
        metallb_bgp_peer_version,
    })
}

/// The command-line flags both binaries share.
#[derive(Clone, Debug, clap::Args)]
pub struct ConfigSourceArgs {
    /// API groups to read the configuration kinds from: `auto` (every group whose CRDs are
    /// installed when the component starts), or a comma-separated list of `ferrolb.io` and
    /// `metallb.io`. MetalLB's objects are read as they are, so a cluster's MetalLB
    /// configuration works without conversion.
    #[arg(long, default_value = "auto")]
    pub config_groups: GroupChoice,
    /// Namespace of the `metallb.io` configuration objects (MetalLB's own default).
    #[arg(long, default_value = "metallb-system")]
    pub metallb_namespace: String,
}

impl Default for ConfigSourceArgs {
    fn default() -> Self {
        Self {
            config_groups: GroupChoice::Auto,
            metallb_namespace: "metallb-system".into(),
        }
    }
}

impl ConfigSourceArgs {
    /// Resolves the groups against the API server; logs what is read.
    pub async fn resolve(&self, client: &kube::Client) -> Result<ResolvedGroups, String> {
        let served = discover(client)
            .await
            .map_err(|e| format!("listing the API server's groups: {e}"))?;
        self.resolve_served(&served)
    }

    /// Resolves the groups against the API server, waiting for it while it cannot be reached
    /// (see [`crate::retry`]); `Ok(None)` when the component is asked to stop meanwhile.
    pub async fn resolve_when_reachable(
        &self,
        client: &kube::Client,
        stop: &mut crate::process::StopSignal,
    ) -> Result<Option<ResolvedGroups>, String> {
        let served =
            crate::retry::until_ok("listing the API server's groups", stop, || discover(client))
                .await;
        served.map(|s| self.resolve_served(&s)).transpose()
    }

    /// Resolves the groups against what the API server serves ([`discover`]); logs what is
    /// read.
    pub fn resolve_served(&self, served: &Served) -> Result<ResolvedGroups, String> {
        let groups = resolve(&self.config_groups, served)?;
        tracing::info!(
            groups = ?groups.names(),
            metallb_namespace = %self.metallb_namespace,
            "configuration groups"
        );
        Ok(groups)
    }
}

/// Label of the `config_groups` metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct GroupLabels {
    /// `ferrolb.io` or `metallb.io`.
    pub group: String,
}

/// The metric `<prefix>_config_groups{group}`: 1 for each group the configuration is read
/// from.
#[derive(Clone, Default)]
pub struct GroupsGauge {
    family: prometheus_client::metrics::family::Family<
        GroupLabels,
        prometheus_client::metrics::gauge::Gauge,
    >,
}

impl GroupsGauge {
    /// Registers the metric in `r`.
    pub fn register(r: &mut prometheus_client::registry::Registry) -> Self {
        let g = Self::default();
        r.register(
            "config_groups",
            "1 for each API group the configuration kinds are read from",
            g.family.clone(),
        );
        g
    }

    /// Sets the groups in use.
    pub fn set(&self, groups: &[String]) {
        self.family.clear();
        for group in groups {
            self.family
                .get_or_create(&GroupLabels {
                    group: group.clone(),
                })
                .set(1);
        }
    }
}

/// Asks the API server which configuration groups it serves.
pub async fn discover(client: &kube::Client) -> Result<Served, kube::Error> {
    let list = client.list_api_groups().await?;
    let group_versions = list
        .groups
        .iter()
        .filter(|g| g.name == ferrolb_api::GROUP || g.name == ferrolb_api::METALLB_GROUP)
        .flat_map(|g| g.versions.iter().map(|v| v.group_version.clone()))
        .collect();
    Ok(Served { group_versions })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(gvs: &[&str]) -> Served {
        Served {
            group_versions: gvs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_flag_reads_auto_or_a_list() {
        assert_eq!("auto".parse(), Ok(GroupChoice::Auto));
        assert_eq!(
            "metallb.io, ferrolb.io".parse(),
            Ok(GroupChoice::Only(BTreeSet::from([
                ConfigGroup::Ferrolb,
                ConfigGroup::Metallb
            ])))
        );
        let err = "metallb.universe.tf".parse::<GroupChoice>().unwrap_err();
        assert!(err.contains("metallb.universe.tf"), "{err}");
    }

    #[test]
    fn auto_adds_metallb_when_its_crds_are_served() {
        let only_ours =
            resolve(&GroupChoice::Auto, &served(&["ferrolb.io/v1beta1"])).expect("resolves");
        assert_eq!(only_ours.names(), vec!["ferrolb.io"]);
        let both = resolve(
            &GroupChoice::Auto,
            &served(&[
                "ferrolb.io/v1beta1",
                "metallb.io/v1beta1",
                "metallb.io/v1beta2",
            ]),
        )
        .expect("resolves");
        assert_eq!(both.names(), vec!["ferrolb.io", "metallb.io"]);
        assert_eq!(both.metallb_bgp_peer_version, "v1beta2");
    }

    #[test]
    fn metallb_bgp_peers_fall_back_to_v1beta1() {
        let r = resolve(&GroupChoice::Auto, &served(&["metallb.io/v1beta1"])).expect("resolves");
        assert!(r.uses(ConfigGroup::Metallb));
        assert_eq!(r.metallb_bgp_peer_version, "v1beta1");
    }

    #[test]
    fn an_explicit_group_that_is_not_served_is_an_error() {
        let choice = GroupChoice::Only(BTreeSet::from([ConfigGroup::Metallb]));
        let err = resolve(&choice, &served(&["ferrolb.io/v1beta1"])).unwrap_err();
        assert!(err.contains("metallb.io"), "{err}");
        let ok = resolve(&choice, &served(&["metallb.io/v1beta1"])).expect("served");
        assert_eq!(ok.names(), vec!["metallb.io"]);
    }
}
