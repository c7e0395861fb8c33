//! Hostile IPAddressPools: sizes no real cluster has, built without enumerating addresses and
//! with a bounded report.

use ferrolb_config::{Config, Inputs, IpFamily, MAX_REPORTED_OVERLAPS};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn pool(name: &str, addresses: Vec<String>) -> ferrolb_api::IPAddressPool {
    ferrolb_api::IPAddressPool {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some("ferrolb-system".to_string()),
            ..ObjectMeta::default()
        },
        spec: ferrolb_api::IPAddressPoolSpec {
            addresses,
            auto_assign: true,
            ..Default::default()
        },
        status: None,
    }
}

fn build(pools: Vec<ferrolb_api::IPAddressPool>) -> ferrolb_config::BuildReport {
    Config::build_report(&Inputs {
        pools,
        ..Inputs::default()
    })
}

/// 10.0.0.0 + i as a /32, for i below 2^24.
fn host(i: u32) -> String {
    let [_, b, c, d] = i.to_be_bytes();
    format!("10.{b}.{c}.{d}/32")
}

#[test]
fn a_pool_with_a_million_ranges_builds_with_its_exact_size() {
    let entries: Vec<String> = (0..1_000_000).map(host).collect();
    let report = build(vec![pool("huge", entries)]);
    assert!(report.errors.is_empty(), "{:?}", report.errors.first());
    let config = report.config.expect("valid");
    assert_eq!(config.pools["huge"].ranges.len(), 1_000_000);
    assert_eq!(config.pools["huge"].size(IpFamily::V4), 1_000_000);
}

#[test]
fn a_million_copies_of_one_cidr_are_rejected_with_a_bounded_report() {
    let copies = vec!["10.0.0.0/8".to_string(); 1_000_000];
    let report = build(vec![
        pool("copies", copies),
        pool("fine", vec!["10.1.0.0/24".into()]),
    ]);
    assert!(report.config.is_none());
    // The pairs listed, the one saying the list stops, and "fine", which lies inside every copy.
    assert!(
        report.errors.len() <= MAX_REPORTED_OVERLAPS + 1,
        "{} errors",
        report.errors.len()
    );
    assert!(report.errors.len() > MAX_REPORTED_OVERLAPS / 2);
    for e in &report.errors {
        assert_eq!(e.kind, "IPAddressPool");
        assert!(e.field.starts_with("spec.addresses["), "{e}");
        assert!(e.message.contains("overlaps"), "{e}");
    }
    let last = report.errors.last().expect("errors").to_string();
    assert!(
        last.contains(&format!(
            "only the first {MAX_REPORTED_OVERLAPS} overlapping pairs are listed"
        )),
        "{last}"
    );
}

#[test]
fn all_of_ipv6_and_ipv4_build_and_saturate_instead_of_overflowing() {
    let report = build(vec![
        pool("v6-all", vec!["::/0".into()]),
        pool("v4-all", vec!["0.0.0.0-255.255.255.255".into()]),
    ]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let config = report.config.expect("valid");
    assert_eq!(config.pools["v6-all"].size(IpFamily::V6), u128::MAX);
    assert_eq!(config.pools["v4-all"].size(IpFamily::V4), 1 << 32);
    assert_eq!(config.pools["v4-all"].size(IpFamily::V6), 0);
}

#[test]
fn half_of_ipv6_and_ipv4_as_cidrs_have_their_exact_sizes() {
    let report = build(vec![
        pool("v6-low", vec!["::/1".into()]),
        pool("v6-high", vec!["8000::/1".into()]),
        pool("v4-all", vec!["0.0.0.0/0".into()]),
    ]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let config = report.config.expect("valid");
    assert_eq!(config.pools["v6-low"].size(IpFamily::V6), 1 << 127);
    assert_eq!(config.pools["v6-high"].size(IpFamily::V6), 1 << 127);
    assert_eq!(config.pools["v4-all"].size(IpFamily::V4), 1 << 32);
}

#[test]
fn an_ipv6_slash_zero_beside_other_pools_names_each_overlap() {
    let report = build(vec![
        pool("all", vec!["::/0".into()]),
        pool("lab", vec!["fd00:200::/48".into()]),
        pool("v4", vec!["10.200.0.0/24".into()]),
    ]);
    let lines: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with("IPAddressPool ferrolb-system/lab: spec.addresses[0]: \"fd00:200::/48\" overlaps \"::/0\""),
        "{}",
        lines[0]
    );
}
