//! [`Config::build`]: raw resources to a validated configuration, or every problem at once.
//!
//! Each kind has its own module. Every check records its problem in a [`Ctx`] and carries on,
//! so one run reports everything; references are resolved against the names present in the
//! inputs (even of objects that have errors) so one mistake does not cascade into others.

mod advertisements;
mod bfd;
mod bfd_echo;
mod communities;
mod local_pref;
pub(crate) mod peers;
mod pools;
pub use pools::MAX_REPORTED_OVERLAPS;
pub(crate) mod selectors;

use crate::error::{ConfigError, Severity};
use crate::{Config, Inputs};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// Kind names as users write them.
pub(crate) mod kinds {
    pub const POOL: &str = "IPAddressPool";
    pub const L2: &str = "L2Advertisement";
    pub const BGP_ADV: &str = "BGPAdvertisement";
    pub const PEER: &str = "BGPPeer";
    pub const BFD: &str = "BFDProfile";
    pub const COMMUNITY: &str = "Community";
}

/// The object a problem is about.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Obj<'a> {
    pub kind: &'static str,
    pub namespace: &'a str,
    pub name: &'a str,
}

impl<'a> Obj<'a> {
    pub fn new(kind: &'static str, meta: &'a ObjectMeta) -> Self {
        Obj {
            kind,
            namespace: meta.namespace.as_deref().unwrap_or(""),
            name: meta.name.as_deref().unwrap_or(""),
        }
    }

    /// `Kind ns/name`, for messages that point at another object.
    pub fn describe(&self) -> String {
        if self.namespace.is_empty() {
            format!("{} {}", self.kind, self.name)
        } else {
            format!("{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Collects problems while building.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

impl Ctx {
    fn problem(obj: &Obj<'_>, field: &str, message: String, severity: Severity) -> ConfigError {
        ConfigError {
            kind: obj.kind.to_string(),
            namespace: obj.namespace.to_string(),
            name: obj.name.to_string(),
            field: field.to_string(),
            message,
            severity,
        }
    }

    pub fn error(&mut self, obj: &Obj<'_>, field: &str, message: impl Into<String>) {
        self.errors
            .push(Self::problem(obj, field, message.into(), Severity::Error));
    }

    pub fn warn(&mut self, obj: &Obj<'_>, field: &str, message: impl Into<String>) {
        self.warnings
            .push(Self::problem(obj, field, message.into(), Severity::Warning));
    }

    /// Reports a missing name and, for kinds referenced by name only (`global`), names used
    /// twice in any namespaces; otherwise names used twice in one namespace. Returns whether
    /// each object (in input order) is the first with its name, i.e. the one that may be kept.
    pub fn check_names(&mut self, objs: &[Obj<'_>], global: bool, why: &str) -> Vec<bool> {
        let mut first_seen: BTreeMap<(&str, &str), Obj<'_>> = BTreeMap::new();
        let mut keep = Vec::with_capacity(objs.len());
        for obj in objs {
            if obj.name.is_empty() {
                self.error(
                    obj,
                    "metadata.name",
                    "is missing; every object needs a name",
                );
                keep.push(false);
                continue;
            }
            let key = (if global { "" } else { obj.namespace }, obj.name);
            match first_seen.get(&key) {
                Some(first) => {
                    self.error(
                        obj,
                        "metadata.name",
                        format!(
                            "{:?} is already used by {}; {why}",
                            obj.name,
                            first.describe()
                        ),
                    );
                    keep.push(false);
                }
                None => {
                    first_seen.insert(key, *obj);
                    keep.push(true);
                }
            }
        }
        keep
    }
}

/// Reports every entry of `list` (at `field`) that repeats an earlier one, as MetalLB's
/// `validateDuplicate` (internal/config/config.go) rejects lists with repeated entries.
pub(crate) fn report_duplicates(ctx: &mut Ctx, obj: &Obj<'_>, field: &str, list: &[String]) {
    for (i, entry) in list.iter().enumerate() {
        if let Some(first) = list[..i].iter().position(|e| e == entry) {
            ctx.error(
                obj,
                &format!("{field}[{i}]"),
                format!("{entry:?} is listed twice (also {field}[{first}]); list each entry once"),
            );
        }
    }
}

/// Lists names for "known: …" hints, bounded so a message stays one readable line.
pub(crate) fn known_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    match names.len() {
        0 => "there are none".to_string(),
        n if n <= 10 => format!("known: {}", names.join(", ")),
        n => format!("known: {}, … ({} more)", names[..10].join(", "), n - 10),
    }
}

/// Everything one build found: the configuration when there is no error, every error, and
/// every warning (also when there are errors, for reports such as `validate`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BuildReport {
    /// The configuration, when `errors` is empty.
    pub config: Option<Config>,
    /// Every error (severity [`Severity::Error`]).
    pub errors: Vec<ConfigError>,
    /// Every warning (severity [`Severity::Warning`]); on success also in
    /// [`Config::warnings`].
    pub warnings: Vec<ConfigError>,
}

impl Config {
    /// Validates and normalizes `inputs`: the configuration with its warnings in
    /// [`Config::warnings`], or every error (warnings are left out; see
    /// [`Config::build_report`] to get both).
    pub fn build(inputs: &Inputs) -> Result<Config, Vec<ConfigError>> {
        let report = Self::build_report(inputs);
        report.config.ok_or(report.errors)
    }

    /// Like [`Config::build`], but returns the warnings also when there are errors.
    pub fn build_report(inputs: &Inputs) -> BuildReport {
        let mut ctx = Ctx::default();
        let pools = pools::build(&mut ctx, &inputs.pools);
        let communities = communities::build(&mut ctx, &inputs.communities);
        let bfd_profiles = bfd::build(&mut ctx, &inputs.bfd_profiles);
        let peers = peers::build(&mut ctx, inputs);
        let refs = advertisements::Refs::new(inputs, &pools, &peers, &communities);
        let l2_advertisements =
            advertisements::build_l2(&mut ctx, &refs, &inputs.l2_advertisements);
        let bgp_advertisements =
            advertisements::build_bgp(&mut ctx, &refs, &inputs.bgp_advertisements);
        local_pref::check(&mut ctx, &pools, &bgp_advertisements);
        bfd_echo::check(&mut ctx, &pools, &peers, &bfd_profiles, &bgp_advertisements);
        let config = ctx.errors.is_empty().then(|| Config {
            pools,
            l2_advertisements,
            bgp_advertisements,
            peers,
            bfd_profiles,
            warnings: ctx.warnings.clone(),
        });
        BuildReport {
            config,
            errors: ctx.errors,
            warnings: ctx.warnings,
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builders for test inputs.
    use super::*;

    pub fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some("ferrolb-system".to_string()),
            ..ObjectMeta::default()
        }
    }

    pub fn pool(name: &str, addresses: &[&str]) -> ferrolb_api::IPAddressPool {
        ferrolb_api::IPAddressPool {
            metadata: meta(name),
            spec: ferrolb_api::IPAddressPoolSpec {
                addresses: addresses.iter().map(|s| s.to_string()).collect(),
                auto_assign: true,
                ..Default::default()
            },
            status: None,
        }
    }

    pub fn peer(name: &str, address: &str) -> ferrolb_api::BGPPeer {
        ferrolb_api::BGPPeer {
            metadata: meta(name),
            spec: ferrolb_api::BGPPeerSpec {
                my_asn: 64512,
                peer_asn: Some(64500),
                peer_address: address.to_string(),
                ..Default::default()
            },
        }
    }

    /// Builds and returns the errors, failing if the build succeeded.
    pub fn errors(inputs: &Inputs) -> Vec<ConfigError> {
        match Config::build(inputs) {
            Ok(c) => panic!("expected errors, got {c:#?}"),
            Err(e) => e,
        }
    }

    /// The one-line rendering of each error, for assertions.
    pub fn lines(inputs: &Inputs) -> Vec<String> {
        errors(inputs).iter().map(|e| e.to_string()).collect()
    }

    pub fn has(lines: &[String], expected: &str) {
        assert!(
            lines.iter().any(|l| l == expected),
            "missing {expected:?} in {lines:#?}"
        );
    }
}
