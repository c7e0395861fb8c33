//! Layer 2 end to end: the in-memory API server, the controller and three speakers in network
//! namespaces, a client on the same LAN. Needs root (CI runs it as root).

mod common;

use common::*;
use ferrolb_e2e::cluster::{Cluster, ClusterOptions};
use ferrolb_e2e::lab;
use std::net::IpAddr;
use std::time::Duration;

const L2_EXAMPLE: &str = include_str!("../../deploy/examples/l2.yaml");

#[test]
fn one_elected_node_answers_arp_and_ndp_and_serves_traffic() {
    if !lab::tools_or_skip("l2_e2e", &["arping", "ndisc6", "curl"]) {
        return;
    }
    let c = Cluster::start(ClusterOptions::default()).expect("cluster");
    c.apply_yaml(L2_EXAMPLE).expect("apply l2 example");
    let mut svc = lb_service("web", &[]);
    if let Some(spec) = svc.spec.as_mut() {
        spec.ip_family_policy = Some("PreferDualStack".into());
        spec.ip_families = Some(vec!["IPv4".into(), "IPv6".into()]);
    }
    create_service(&c, &svc);
    let ips = wait_ips(&c, "web", 2, Duration::from_secs(20));
    let client = c.lab.lan_client();
    for ip in ips {
        let owner = wait_single_owner(&c, ip, Duration::from_secs(20));
        let owner_host = c.lab.node(owner);
        let owner_mac = owner_host.mac(owner_host.iface()).expect("mac").to_lowercase();
        match ip {
            IpAddr::V4(v4) => {
                let out = client.ns().arping(client.iface(), v4, 3).expect("arping");
                assert!(out.success(), "arping {v4}: {}", out.stdout);
                assert_eq!(arping_macs(&out.stdout), vec![owner_mac.clone()], "{}", out.stdout);
            }
            IpAddr::V6(v6) => {
                let out = client.ns().ndisc6(client.iface(), v6).expect("ndisc6");
                assert!(out.success(), "ndisc6 {v6}: {}", out.stdout);
                assert!(out.stdout.to_lowercase().contains(&owner_mac), "{}", out.stdout);
            }
        }
        let out = client.ns().curl(ip, 80, "/", Duration::from_secs(3)).expect("curl");
        assert!(out.success(), "curl {ip}: {} {}", out.stdout, out.stderr);
        assert!(
            out.stdout.starts_with(owner_host.name()),
            "{ip} reached {} instead of {}",
            out.stdout,
            owner_host.name()
        );
    }
}
