//! BGP end to end: the in-memory API server, the controller and three speakers in network
//! namespaces, a real routing daemon (BIRD 2, FRR bgpd, gobgpd) in the router namespace and a
//! client behind the router. Needs root (CI runs it as root) and the daemons
//! (scripts/install-test-deps.sh).

mod common;

use common::bgp::*;
use common::*;
use ferrolb_e2e::cluster::{Cluster, ClusterOptions, EXAMPLE_BGP_PASSWORD, NODE_ASN, RouterKind};
use ferrolb_e2e::lab;
use std::time::{Duration, Instant};

#[test]
fn bird_ecmp_communities_traffic_and_withdraw() {
    if !lab::tools_or_skip(
        "bird_ecmp_communities_traffic_and_withdraw",
        &["bird", "birdc", "curl"],
    ) {
        return;
    }
    let c = bgp_cluster(RouterKind::Bird);
    wait_established(&c, &ALL, Duration::from_secs(20));
    let protocols = c
        .bird
        .as_ref()
        .expect("bird")
        .birdc("show protocols")
        .expect("birdc");
    println!("{protocols}");
    let ip = service(&c, "web", false);

    // One route per node in BIRD's RIB, merged into one ECMP route in the kernel.
    wait_hops("BIRD RIB", Duration::from_secs(10), &ALL, || {
        bird_next_hops(&c, ip)
    });
    wait_hops("router kernel", Duration::from_secs(5), &ALL, || {
        kernel_next_hops(&c, ip)
    });
    let kernel = kernel_route(&c, ip);
    println!("{kernel}");
    assert_eq!(kernel.matches("nexthop via").count(), 3, "{kernel}");
    let route = bird_route(&c, ip);
    println!("{route}");
    // Communities of the example: no-export, 64512:100, and the large one; on each route.
    for line in ["BGP.community: ", "BGP.large_community: "] {
        assert_eq!(
            route.matches(line).count(),
            3,
            "{line} once per route:\n{route}"
        );
    }
    for l in route.lines().filter(|l| l.contains("BGP.community: ")) {
        assert!(
            l.contains("(65535,65281)") && l.contains("(64512,100)"),
            "{l}"
        );
    }
    for l in route
        .lines()
        .filter(|l| l.contains("BGP.large_community: "))
    {
        assert!(l.contains("(64512, 1, 1)"), "{l}");
    }
    assert_eq!(route.matches("BGP.as_path: 64512").count(), 3, "{route}");
    // The speakers count what they advertise (their status refreshes every second).
    for i in ALL {
        eventually(
            &format!("node{i} reports 1 prefix advertised"),
            Duration::from_secs(3),
            || (speaker_peer(&c, i)?["prefixesAdvertised"].as_u64() == Some(1)).then_some(()),
        );
    }

    // The same as Kubernetes objects (MetalLB's kinds): every node's sessions Established
    // (no BFD profile: "N/A"), and one ServiceBGPStatus per node naming the peers.
    let names: Vec<String> = ALL
        .iter()
        .map(|&i| c.lab.node(i).name().to_string())
        .collect();
    let sessions = eventually(
        "BGPSessionState Established on every node",
        Duration::from_secs(10),
        || {
            let s = session_states(&c)?;
            let all_up = names.iter().all(|n| {
                let mine: Vec<_> = s.iter().filter(|x| x.node == *n).collect();
                !mine.is_empty()
                    && mine
                        .iter()
                        .all(|x| x.bgp_status == "Established" && x.bfd_status == "N/A")
            });
            all_up.then_some(s)
        },
    );
    println!("BGPSessionState: {sessions:?}");
    let reported = eventually(
        "ServiceBGPStatus from every node",
        Duration::from_secs(10),
        || {
            let mut s = service_bgp_statuses(&c, "web")?;
            s.sort();
            (s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>() == names
                && s.iter().all(|(_, p)| !p.is_empty()))
            .then_some(s)
        },
    );
    println!("ServiceBGPStatus for web: {reported:?}");

    // The client behind the router reaches the Service, on one of the nodes, source kept.
    let answer = eventually(
        "curl from the upstream client",
        Duration::from_secs(10),
        || curl_upstream(&c, ip),
    );
    println!("upstream client -> {ip}: {answer}");
    let mut words = answer.split_whitespace();
    let node = words.next().unwrap_or_default();
    assert!(
        c.lab.nodes().iter().any(|n| n.name() == node),
        "answered by {node:?}"
    );
    assert_eq!(
        words.next(),
        Some(c.lab.upstream_client().v4().to_string().as_str())
    );

    // Deleting the Service withdraws it from the router everywhere.
    delete_service(&c, "web");
    let took = wait_hops(
        "BIRD RIB after delete",
        Duration::from_secs(10),
        &[],
        || bird_next_hops(&c, ip),
    );
    println!("service deleted: withdrawn from BIRD in {took:?}");
    wait_hops(
        "router kernel after delete",
        Duration::from_secs(5),
        &[],
        || kernel_next_hops(&c, ip),
    );
    for i in ALL {
        eventually(
            &format!("node{i} advertises nothing"),
            Duration::from_secs(5),
            || (speaker_peer(&c, i)?["prefixesAdvertised"].as_u64() == Some(0)).then_some(()),
        );
    }
    assert!(curl_upstream(&c, ip).is_none(), "{ip} still reachable");
    eventually(
        "no ServiceBGPStatus left for web",
        Duration::from_secs(10),
        || service_bgp_statuses(&c, "web")?.is_empty().then_some(()),
    );
}

/// Every BGPSessionState's status in ferrolb-system.
fn session_states(c: &Cluster) -> Option<Vec<ferrolb_api::BGPSessionStateStatus>> {
    use kube::api::{Api, ListParams};
    let api: Api<ferrolb_api::BGPSessionState> =
        Api::namespaced(c.client.clone(), "ferrolb-system");
    let list = c
        .run(async move { api.list(&ListParams::default()).await })
        .ok()?
        .ok()?;
    Some(list.items.into_iter().filter_map(|o| o.status).collect())
}

/// (node, peers) of every ServiceBGPStatus reporting Service `default/name`.
fn service_bgp_statuses(c: &Cluster, name: &str) -> Option<Vec<(String, Vec<String>)>> {
    use kube::api::{Api, ListParams};
    let api: Api<ferrolb_api::ServiceBGPStatus> =
        Api::namespaced(c.client.clone(), "ferrolb-system");
    let list = c
        .run(async move { api.list(&ListParams::default()).await })
        .ok()?
        .ok()?;
    Some(
        list.items
            .into_iter()
            .filter_map(|o| o.status)
            .filter(|s| s.service_name == name && s.service_namespace == "default")
            .map(|s| (s.node, s.peers))
            .collect(),
    )
}

/// ETP Local: only nodes with a ready endpoint are next hops at the router, moving the
/// endpoint moves them, and (where the router forwards) the endpoint's node answers the
/// client behind the router with the client's own address.
fn etp_local_only_endpoint_nodes(router: RouterKind) {
    let c = bgp_cluster(router);
    wait_established(&c, &ALL, Duration::from_secs(30));
    let ip = service(&c, "local", true);
    let name = |i: usize| c.lab.node(i).name().to_string();
    set_endpoints(&c, "local", &[(&name(2), true)]);
    wait_hops("only node2", Duration::from_secs(10), &[2], || {
        router_next_hops(&c, ip)
    });
    if router_routes_traffic(&c) {
        wait_hops("kernel: only node2", Duration::from_secs(10), &[2], || {
            kernel_next_hops(&c, ip)
        });
        let answer = eventually(
            "curl from the upstream client",
            Duration::from_secs(10),
            || curl_upstream(&c, ip),
        );
        assert_eq!(
            answer,
            format!("{} {}", name(2), c.lab.upstream_client().v4()),
            "Local: the endpoint's node answers and sees the client's address"
        );
    }
    // The endpoint moves to node3 (and an unready one on node1 does not count).
    set_endpoints(&c, "local", &[(&name(1), false), (&name(3), true)]);
    wait_hops("only node3", Duration::from_secs(10), &[3], || {
        router_next_hops(&c, ip)
    });
    // Two ready endpoints: two next hops.
    set_endpoints(&c, "local", &[(&name(1), true), (&name(3), true)]);
    wait_hops("nodes 1 and 3", Duration::from_secs(10), &[1, 3], || {
        router_next_hops(&c, ip)
    });
    // node2's status API says so too, within its refresh (every pass, and the 1 s tick).
    eventually(
        "node2's status shows no prefix advertised",
        Duration::from_secs(3),
        || {
            let p = speaker_peer(&c, 2).expect("node2 status");
            (p["prefixesAdvertised"].as_u64() == Some(0)).then_some(())
        },
    );
    // No ready endpoint anywhere: nobody advertises.
    set_endpoints(&c, "local", &[(&name(1), false)]);
    wait_hops("no node", Duration::from_secs(10), &[], || {
        router_next_hops(&c, ip)
    });
}

#[test]
fn bird_ibgp_local_pref() {
    if !lab::tools_or_skip("bird_ibgp_local_pref", &["bird", "birdc"]) {
        return;
    }
    let c = Cluster::start(ClusterOptions {
        nodes: NODES as u8,
        bird: true,
        bird_password: Some(EXAMPLE_BGP_PASSWORD.into()),
        router_asn: NODE_ASN,
        ..ClusterOptions::default()
    })
    .expect("cluster");
    // The example with the router in our AS and a local preference on the advertisement.
    let yaml = BGP_EXAMPLE
        .replace("peerASN: 64500", &format!("peerASN: {NODE_ASN}"))
        .replace(
            "  ipAddressPools:\n    - bgp-pool",
            "  localPref: 150\n  ipAddressPools:\n    - bgp-pool",
        );
    assert!(yaml.contains("localPref: 150") && yaml.contains("peerASN: 64512"));
    c.apply_yaml(&yaml).expect("apply");
    wait_established(&c, &ALL, Duration::from_secs(20));
    let ip = service(&c, "ibgp", false);
    wait_hops("BIRD RIB (iBGP)", Duration::from_secs(10), &ALL, || {
        bird_next_hops(&c, ip)
    });
    let route = bird_route(&c, ip);
    println!("{route}");
    assert_eq!(route.matches("BGP.local_pref: 150").count(), 3, "{route}");
    wait_hops("router kernel (iBGP)", Duration::from_secs(5), &ALL, || {
        kernel_next_hops(&c, ip)
    });
}

/// What the router logged or reports about the Cease from node `i`'s speaker.
fn router_saw_cease(c: &Cluster, i: usize) -> Result<(), String> {
    let text = if let Some(b) = &c.bird {
        b.process().log()
    } else if let Some(f) = &c.frr {
        f.vtysh(&format!("show bgp neighbors {}", node_addr(c, i)))
            .unwrap_or_default()
    } else if let Some(g) = &c.gobgp {
        g.process().log()
    } else {
        panic!("no router daemon")
    };
    let lower = text.to_ascii_lowercase();
    // BIRD: "Received: Administrative shutdown"; FRR: "Notification received (Cease/
    // Administrative Shutdown)"; gobgpd logs the NOTIFICATION's code and subcode (6, 2).
    let seen = lower.contains("administrative shutdown")
        || lower.contains("peer de-configured")
        || (lower.contains("notification")
            && lower.contains("code 6")
            && lower.contains("subcode 2"));
    if seen { Ok(()) } else { Err(text) }
}

/// SIGTERM of a speaker: it sends Cease to the router, which withdraws its routes within
/// one second (from the RIB, and from the kernel where the router installs routes).
fn sigterm_withdraws_within_one_second(router: RouterKind) {
    let c = bgp_cluster(router);
    wait_established(&c, &ALL, Duration::from_secs(30));
    let ip = service(&c, "web", false);
    wait_hops("router RIB", Duration::from_secs(10), &ALL, || {
        router_next_hops(&c, ip)
    });
    let kernel = router_routes_traffic(&c);
    if kernel {
        wait_hops("router kernel", Duration::from_secs(10), &ALL, || {
            kernel_next_hops(&c, ip)
        });
    }
    let mut times = Vec::new();
    for (victim, left) in [(2usize, vec![1usize, 3]), (3, vec![1])] {
        let start = Instant::now();
        c.speaker(victim)
            .expect("speaker")
            .terminate()
            .expect("SIGTERM");
        let rib = wait_hops(
            "router after SIGTERM",
            Duration::from_secs(5),
            &left,
            || router_next_hops(&c, ip),
        );
        let mut line = format!(
            "{router:?}: SIGTERM node{victim}: withdrawn from the RIB in {:.0} ms",
            rib.as_secs_f64() * 1e3
        );
        if kernel {
            let k = wait_hops(
                "kernel after SIGTERM",
                Duration::from_secs(5),
                &left,
                || kernel_next_hops(&c, ip),
            );
            line += &format!(
                ", from the router's kernel in {:.0} ms",
                (rib + k).as_secs_f64() * 1e3
            );
        }
        println!("{line} (since SIGTERM: {:?})", start.elapsed());
        assert!(
            !router_established(&c, victim),
            "the session of node{victim} is closed (Cease)"
        );
        if let Err(text) = router_saw_cease(&c, victim) {
            panic!("{router:?} did not see the Cease of node{victim}:\n{text}");
        }
        times.push(rib);
    }
    for t in &times {
        assert!(*t < Duration::from_secs(1), "withdraw took {t:?}");
    }
}

/// The router daemon is killed and started again: every session comes back and every
/// prefix is advertised again.
fn router_restart_reestablishes_and_readvertises(router: RouterKind) {
    let mut c = bgp_cluster(router);
    wait_established(&c, &ALL, Duration::from_secs(30));
    let ips = [service(&c, "a", false), service(&c, "b", false)];
    for ip in ips {
        wait_hops("router RIB", Duration::from_secs(10), &ALL, || {
            router_next_hops(&c, ip)
        });
    }
    let start = Instant::now();
    c.restart_router().expect("restart the router");
    // Nothing survives in the new daemon's RIB but what the speakers send again.
    wait_established(&c, &ALL, Duration::from_secs(30));
    for ip in ips {
        wait_hops(
            "router RIB after restart",
            Duration::from_secs(10),
            &ALL,
            || router_next_hops(&c, ip),
        );
        if router_routes_traffic(&c) {
            wait_hops(
                "kernel after restart",
                Duration::from_secs(10),
                &ALL,
                || kernel_next_hops(&c, ip),
            );
        }
    }
    println!(
        "{router:?} restarted: all sessions and {} prefixes back in {:?}",
        ips.len(),
        start.elapsed()
    );
}

/// SIGSTOP of a speaker: the router keeps it until its hold time (9 s) runs out, then drops
/// its routes; SIGCONT brings the session and the routes back.
fn sigstop_dropped_after_hold_time(router: RouterKind) {
    let c = bgp_cluster(router);
    wait_established(&c, &ALL, Duration::from_secs(30));
    let ip = service(&c, "web", false);
    wait_hops("router RIB", Duration::from_secs(10), &ALL, || {
        router_next_hops(&c, ip)
    });
    let start = Instant::now();
    c.speaker(3).expect("speaker").pause().expect("SIGSTOP");
    // Still there for a while (no spurious drop: a stopped process sends nothing).
    std::thread::sleep(Duration::from_secs(4));
    assert!(router_established(&c, 3), "dropped before the hold time");
    wait_hops(
        "router drops node3",
        Duration::from_secs(10),
        &[1, 2],
        || router_next_hops(&c, ip),
    );
    let dropped = start.elapsed();
    println!("{router:?}: SIGSTOP node3: routes dropped after {dropped:?} (hold time 9 s)");
    // Between hold time minus one keepalive interval (3 s) and hold time plus slack.
    assert!(
        dropped >= Duration::from_secs(5) && dropped <= Duration::from_secs(11),
        "{dropped:?}"
    );
    assert!(!router_established(&c, 3));
    c.speaker(3).expect("speaker").resume().expect("SIGCONT");
    let start = Instant::now();
    wait_established(&c, &[3], Duration::from_secs(30));
    wait_hops("node3 back", Duration::from_secs(10), &ALL, || {
        router_next_hops(&c, ip)
    });
    println!(
        "{router:?}: SIGCONT node3: re-established and re-advertised in {:?}",
        start.elapsed()
    );
}

/// The Secret `router-password` with `password`, as `data` (what the speakers read).
fn set_password(c: &Cluster, password: &str) {
    // JSON is YAML; k8s-openapi encodes `data` as base64.
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "router-password", "namespace": "ferrolb-system"},
        "type": "kubernetes.io/basic-auth",
        "data": {"password": k8s_openapi::ByteString(password.as_bytes().to_vec())},
    });
    c.apply_yaml(&secret.to_string()).expect("apply secret");
}

/// The password Secret changes to a wrong one: nothing establishes (watched through several
/// connect attempts); the right one again brings everything back.
fn wrong_password_never_establishes(router: RouterKind) {
    let c = bgp_cluster(router);
    wait_established(&c, &ALL, Duration::from_secs(30));
    let ip = service(&c, "web", false);
    wait_hops("router RIB", Duration::from_secs(10), &ALL, || {
        router_next_hops(&c, ip)
    });
    // The Secret changes: every speaker reconnects with the new (wrong) key.
    set_password(&c, "not-the-password");
    for i in ALL {
        eventually(
            &format!("node{i} leaves Established"),
            Duration::from_secs(10),
            || (!speaker_established(&c, i)).then_some(()),
        );
    }
    wait_hops("routes gone", Duration::from_secs(15), &[], || {
        router_next_hops(&c, ip)
    });
    // Long enough for several connect attempts (backoff 1, 2, 4 s; connect timeout 10 s).
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(12) {
        for i in ALL {
            assert!(
                !router_established(&c, i),
                "node{i} established with a wrong password"
            );
            assert!(!speaker_established(&c, i), "node{i} reports Established");
        }
        assert!(router_next_hops(&c, ip).is_empty());
        std::thread::sleep(Duration::from_millis(200));
    }
    let p = speaker_peer(&c, 1).expect("status");
    println!("{router:?}: node1 with a wrong password: {p}");
    // The right password again: back (so the test above did watch a working setup).
    set_password(&c, EXAMPLE_BGP_PASSWORD);
    wait_established(&c, &ALL, Duration::from_secs(30));
    wait_hops("routes back", Duration::from_secs(10), &ALL, || {
        router_next_hops(&c, ip)
    });
}

#[test]
fn frr_md5_ecmp_and_withdraw() {
    if !lab::tools_or_skip(
        "frr_md5_ecmp_and_withdraw",
        &["vtysh", "/usr/lib/frr/bgpd", "/usr/lib/frr/zebra"],
    ) {
        return;
    }
    let c = bgp_cluster(RouterKind::Frr);
    wait_established(&c, &ALL, Duration::from_secs(30));
    let frr = c.frr.as_ref().expect("frr");
    let ip = service(&c, "web", false);
    let pfx = prefix(ip);
    // RIB: three paths, multipath; zebra's table and the kernel: three next hops.
    wait_hops("FRR BGP table", Duration::from_secs(10), &ALL, || {
        via_nodes_frr(
            &c,
            &frr.vtysh(&format!("show ip bgp {pfx}")).unwrap_or_default(),
        )
    });
    let bgp = frr.vtysh(&format!("show ip bgp {pfx}")).expect("vtysh");
    println!("{bgp}");
    assert!(bgp.contains("Paths: (3 available"), "{bgp}");
    assert_eq!(bgp.matches("multipath").count(), 3, "{bgp}");
    assert!(bgp.contains("Community: 64512:100 no-export"), "{bgp}");
    assert!(bgp.contains("Large Community: 64512:1:1"), "{bgp}");
    wait_hops("FRR zebra", Duration::from_secs(10), &ALL, || {
        via_nodes_frr(
            &c,
            &frr.vtysh(&format!("show ip route {pfx}"))
                .unwrap_or_default(),
        )
    });
    wait_hops("router kernel", Duration::from_secs(10), &ALL, || {
        kernel_next_hops(&c, ip)
    });
    println!("{}", kernel_route(&c, ip));
    let answer = eventually(
        "curl from the upstream client",
        Duration::from_secs(10),
        || curl_upstream(&c, ip),
    );
    println!("upstream client -> {ip} via FRR: {answer}");
    delete_service(&c, "web");
    let took = wait_hops("FRR after delete", Duration::from_secs(10), &[], || {
        via_nodes_frr(
            &c,
            &frr.vtysh(&format!("show ip bgp {pfx}")).unwrap_or_default(),
        )
    });
    println!("service deleted: withdrawn from FRR in {took:?}");
    wait_hops("kernel after delete", Duration::from_secs(10), &[], || {
        kernel_next_hops(&c, ip)
    });
}

#[test]
fn gobgp_md5_ecmp_and_withdraw() {
    if !lab::tools_or_skip("gobgp_md5_ecmp_and_withdraw", &["gobgpd", "gobgp"]) {
        return;
    }
    let c = bgp_cluster(RouterKind::Gobgp);
    wait_established(&c, &ALL, Duration::from_secs(30));
    let g = c.gobgp.as_ref().expect("gobgp");
    let ip = service(&c, "web", false);
    let pfx = prefix(ip);
    let hops = || gobgp_next_hops(&c, ip);
    wait_hops("GoBGP RIB", Duration::from_secs(10), &ALL, hops);
    let rib = g.rib(false).expect("gobgp rib");
    println!("{rib}");
    for l in rib.lines().filter(|l| l.contains(&pfx)) {
        // GoBGP names 65535:65281 well-known: `no-export`.
        assert!(l.contains("Communities: 64512:100, no-export"), "{l}");
        assert!(l.contains("64512:1:1"), "large community: {l}");
    }
    delete_service(&c, "web");
    let took = wait_hops("GoBGP after delete", Duration::from_secs(10), &[], hops);
    println!("service deleted: withdrawn from GoBGP in {took:?}");
}

/// One `#[test]` per router daemon for a scenario.
macro_rules! against_every_router {
    ($scenario:ident: $bird:ident, $frr:ident, $gobgp:ident) => {
        #[test]
        fn $bird() {
            with_router(
                stringify!($bird),
                RouterKind::Bird,
                router_tools(RouterKind::Bird),
                $scenario,
            );
        }
        #[test]
        fn $frr() {
            with_router(
                stringify!($frr),
                RouterKind::Frr,
                router_tools(RouterKind::Frr),
                $scenario,
            );
        }
        #[test]
        fn $gobgp() {
            with_router(
                stringify!($gobgp),
                RouterKind::Gobgp,
                router_tools(RouterKind::Gobgp),
                $scenario,
            );
        }
    };
}

against_every_router!(
    etp_local_only_endpoint_nodes:
    etp_local_bird,
    etp_local_frr,
    etp_local_gobgp
);
against_every_router!(
    sigterm_withdraws_within_one_second:
    sigterm_withdraws_within_one_second_bird,
    sigterm_withdraws_within_one_second_frr,
    sigterm_withdraws_within_one_second_gobgp
);
against_every_router!(
    router_restart_reestablishes_and_readvertises:
    router_restart_bird,
    router_restart_frr,
    router_restart_gobgp
);
against_every_router!(
    sigstop_dropped_after_hold_time:
    sigstop_hold_time_bird,
    sigstop_hold_time_frr,
    sigstop_hold_time_gobgp
);
against_every_router!(
    wrong_password_never_establishes:
    wrong_password_bird,
    wrong_password_frr,
    wrong_password_gobgp
);
