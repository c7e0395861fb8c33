//! Bodies of the fuzz targets in `fuzz/` for what the controller reads from users: manifests
//! (`config_manifest`, as `ferrolb-controller validate` and `migrate` read them) and a
//! Service's allocation annotations (`service_annotations`). The fuzz targets call them, and
//! the tests below replay every seed and crash reproducer of `fuzz/seeds/<target>/` through
//! them on stable Rust, so a regression fails `cargo test`.
//!
//! Not for production code paths: the panics are the point.

use crate::allocator::{Allocator, AnnotationRequest, ServiceRequest};
use crate::service::to_request;
use crate::validate::validate_texts;
use ferrolb_config::manifests::Manifests;
use ferrolb_config::manifests::migrate::migrate;
use ferrolb_config::{Config, IpFamily};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// Longest message a rejected request may carry: a hostile annotation must not turn into a
/// hostile event or status.
pub const MAX_REQUEST_ERROR_LEN: usize = 1024;

/// `data` (as UTF-8, invalid sequences replaced) as the one manifest file of
/// `ferrolb-controller validate`, then of `ferrolb-controller migrate`. Invariants: no panic;
/// the report is valid exactly when it has no `error:` line, and a valid one ends with its
/// `ok:` summary; a migration reported ok produces manifests that validate.
pub fn config_manifest(data: &[u8]) {
    let texts = [(
        "fuzz.yaml".to_string(),
        String::from_utf8_lossy(data).into_owned(),
    )];
    let report = validate_texts(&texts);
    let errors = report
        .lines
        .iter()
        .filter(|l| l.starts_with("error: "))
        .count();
    assert_eq!(report.ok, errors == 0, "{}", report.render());
    if report.ok {
        let last = report.lines.last().map(String::as_str).unwrap_or_default();
        assert!(last.starts_with("ok: "), "{}", report.render());
    }
    let migration = migrate(&texts);
    if migration.ok {
        let again = validate_texts(&[("migrated.yaml".to_string(), migration.yaml)]);
        assert!(
            again.ok,
            "migrated manifests do not validate:\n{}",
            again.render()
        );
    }
}

/// The pools the harness allocates from: a small IPv4 range and all of IPv6.
const POOLS: &str = "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: small, namespace: ns}\nspec: {addresses: [10.200.0.0/30]}\n---\napiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: everything, namespace: ns}\nspec: {addresses: ['::/0']}\n";

/// `data` (as UTF-8, invalid sequences replaced) as a Service's annotations, one `key=value`
/// per line; a line `spec.loadBalancerIP=…` sets that field and `spec.ports=N` gives the
/// Service N ports. The Service is read as the controller reads it and, when readable,
/// allocated from [`POOLS`]. Invariants: no panic; a rejection names an annotation key or a
/// `spec.` field and stays under [`MAX_REQUEST_ERROR_LEN`]; accepted addresses are at most one
/// per family; an allocation gives what was asked for or says why not.
pub fn service_annotations(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut annotations = BTreeMap::new();
    let mut spec = ServiceSpec {
        type_: Some("LoadBalancer".to_string()),
        ..ServiceSpec::default()
    };
    for line in text.lines() {
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        match key {
            "spec.loadBalancerIP" => spec.load_balancer_ip = Some(value.to_string()),
            "spec.ports" => {
                let n = value.trim().parse::<u16>().unwrap_or(0);
                spec.ports = Some(
                    (0..n)
                        .map(|p| ServicePort {
                            port: i32::from(p),
                            protocol: Some("TCP".to_string()),
                            ..ServicePort::default()
                        })
                        .collect(),
                );
            }
            _ => {
                annotations.insert(key.to_string(), value.to_string());
            }
        }
    }
    let parsed = AnnotationRequest::parse(&annotations, spec.load_balancer_ip.as_deref());
    let svc = Service {
        metadata: ObjectMeta {
            namespace: Some("ns".to_string()),
            name: Some("svc".to_string()),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        ..Service::default()
    };
    let request = match to_request(&svc, &Default::default()) {
        Ok(request) => request,
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.len() <= MAX_REQUEST_ERROR_LEN,
                "{} bytes: {}…",
                message.len(),
                message.get(..200).unwrap_or_default()
            );
            assert!(
                message.contains("annotation ")
                    || message.contains("spec.")
                    || message.contains(".io/")
                    || message.contains(".tf/"),
                "the error names no annotation or field: {message}"
            );
            return;
        }
    };
    let Ok(ann) = parsed else {
        panic!("to_request accepted what AnnotationRequest::parse rejected");
    };
    assert_eq!(request.requested_ips, ann.requested_ips);
    if let Some(ips) = &request.requested_ips {
        assert!(ips.value.len() <= 2);
        let families: Vec<IpFamily> = ips.value.iter().map(IpFamily::of).collect();
        assert!(families.len() < 2 || families[0] != families[1]);
    }
    allocate(&request);
}

fn allocate(request: &ServiceRequest) {
    let mut manifests = Manifests::default();
    manifests.add("pools.yaml", POOLS);
    let Some(config) = Config::build_report(&manifests.inputs).config else {
        panic!("the harness pools are valid");
    };
    let mut allocator = Allocator::new(config);
    let outcome = allocator.allocate(request);
    assert!(outcome.ips.is_empty() || outcome.error.is_none());
    if let (Some(asked), false) = (&request.requested_ips, outcome.ips.is_empty()) {
        for ip in &outcome.ips {
            assert!(asked.value.contains(ip), "{ip} was not asked for");
        }
    }
    assert!(outcome.ips.len() <= 2);
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    fn replay(target: &str, body: fn(&[u8])) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../fuzz/seeds/{target}"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("seed directory entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: no seeds", dir.display());
        for path in files {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| body(&bytes));
            assert!(outcome.is_ok(), "{target}: seed {} fails", path.display());
        }
    }

    #[test]
    fn config_manifest_seeds_replay() {
        replay("config_manifest", super::config_manifest);
    }

    #[test]
    fn service_annotations_seeds_replay() {
        replay("service_annotations", super::service_annotations);
    }

    /// The manifest seeds are valid configurations (the shipped examples and a MetalLB one),
    /// so the fuzzer starts from what validates and mutates into what does not.
    #[test]
    fn config_manifest_seeds_validate() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/config_manifest");
        for name in [
            "l2.yaml",
            "bgp.yaml",
            "bfd.yaml",
            "dual-stack.yaml",
            "metallb.yaml",
        ] {
            let text = std::fs::read_to_string(dir.join(name)).expect("seed");
            let report = crate::validate::validate_texts(&[(name.to_string(), text)]);
            assert!(report.ok, "{name}:\n{}", report.render());
        }
    }
}
