//! `ferrolb-e2e lab --once --json --scenario l2` end to end: the command CI users run to see
//! ferrolb work. Needs root (CI runs it as root).
//!
//! Two tests, one per scenario, each strict about its own rows: the layer 2 one never looks at
//! BGP rows and the BGP one requires established sessions and routes — neither passes when a
//! mode silently does nothing.

use ferrolb_e2e::lab;
use serde_json::Value;
use std::process::Command;

/// What one run of `ferrolb-e2e lab … --json` gave.
struct LabRun {
    /// Its exit code: 0 all green, 1 ran but something is not green (the report says what).
    code: Option<i32>,
    /// The JSON report on stdout.
    report: Value,
    /// Its stderr, for messages.
    stderr: String,
}

/// Runs the lab command with `args` (and `env`); fails the test when it crashed or printed no
/// JSON report.
fn run_lab(args: &[&str], env: &[(&str, &str)]) -> LabRun {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb-e2e"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("running ferrolb-e2e {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    // Exit code 1 means "ran, but something is not green": the JSON says what, and each
    // test decides what it requires.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "lab {args:?} crashed ({}):\n{stderr}",
        out.status
    );
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}\n--- stderr:\n{stderr}"));
    LabRun {
        code: out.status.code(),
        report,
        stderr,
    }
}

#[test]
fn lab_l2_scenario_serves_reports_fails_over_and_cleans_up() {
    if !lab::tools_or_skip("lab_command", &["ip"]) {
        return;
    }
    let LabRun { report: r, .. } = run_lab(&["lab", "--once", "--json", "--scenario", "l2"], &[]);
    let prefix = r["prefix"].as_str().expect("prefix").to_string();
    assert!(!prefix.is_empty());
    let services = r["services"].as_array().expect("services");

    let l2: Vec<&Value> = services
        .iter()
        .filter(|s| s["mode"] == "L2" && s["expect"] == "reachable")
        .collect();
    let names: Vec<&str> = l2.iter().filter_map(|s| s["name"].as_str()).collect();
    for want in ["web", "web-local", "dns-tcp", "dns-udp", "web-fixed"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for s in &l2 {
        let name = &s["name"];
        assert_eq!(s["reachable"], true, "{name} not reachable: {s:#}");
        let probes = s["probes"].as_array().expect("probes");
        assert_eq!(
            probes.len(),
            s["ips"].as_array().map_or(0, Vec::len),
            "{name}: {s:#}"
        );
        assert!(
            probes
                .iter()
                .all(|p| p["reachable"] == true && p["from"] == "lan-client"),
            "{name}: {s:#}"
        );
        // Every address is announced by exactly one node (layer 2 elects one).
        for (ip, nodes) in s["announcedBy"].as_object().expect("announcedBy") {
            assert_eq!(
                nodes.as_array().map(Vec::len),
                Some(1),
                "{name} {ip}: {s:#}"
            );
        }
    }
    let web = l2.iter().find(|s| s["name"] == "web").expect("web");
    assert_eq!(
        web["ips"].as_array().map(Vec::len),
        Some(2),
        "dual-stack: {web:#}"
    );
    let local = l2
        .iter()
        .find(|s| s["name"] == "web-local")
        .expect("web-local");
    assert_eq!(local["ok"], true, "{local:#}");
    assert!(
        local["probes"][0]["answeredBy"] == "node2",
        "the Local Service must be served by the endpoint's node: {local:#}"
    );
    let tcp = l2.iter().find(|s| s["name"] == "dns-tcp").expect("dns-tcp");
    let udp = l2.iter().find(|s| s["name"] == "dns-udp").expect("dns-udp");
    assert_eq!(tcp["ips"], udp["ips"], "shared IP");
    assert_eq!(tcp["ips"][0], "10.200.0.210");
    let fixed = l2
        .iter()
        .find(|s| s["name"] == "web-fixed")
        .expect("web-fixed");
    assert_eq!(fixed["ips"][0], "10.200.0.220");

    let bad = services
        .iter()
        .find(|s| s["name"] == "unservable")
        .expect("the unservable Service is reported");
    assert_eq!(bad["ips"].as_array().map(Vec::len), Some(0), "{bad:#}");
    let reason = bad["reason"].as_str().expect("a reason");
    assert!(reason.contains("10.200.99.99"), "{reason}");
    assert_eq!(bad["ok"], true, "{bad:#}");

    let fo = &r["failover"];
    assert!(fo.is_object(), "no failover measured: {r:#}");
    assert!(fo["takeoverMs"].as_f64().is_some_and(|t| t > 0.0), "{fo:#}");
    assert!(fo["outageMs"].as_f64().is_some(), "{fo:#}");
    assert_ne!(fo["oldOwner"], fo["newOwner"], "{fo:#}");
    assert_eq!(fo["restarted"], true, "{fo:#}");

    // Nothing left behind, by the command's own account and by ours.
    assert_eq!(r["leftoverNamespaces"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["leftoverPids"], serde_json::json!([]), "{r:#}");
    let ours: Vec<String> = lab::netns::list()
        .expect("ip netns list")
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect();
    assert!(ours.is_empty(), "namespaces left behind: {ours:?}");
}

#[test]
fn lab_bgp_scenario_routes_through_the_router() {
    if !lab::tools_or_skip("lab_command", &["ip", "bird", "birdc"]) {
        return;
    }
    let LabRun {
        code,
        report: r,
        stderr,
    } = run_lab(&["lab", "--once", "--json", "--scenario", "bgp"], &[]);
    // Every BIRD session (IPv4 and IPv6 to each of the 3 nodes) is up.
    let sessions = r["bgpSessions"].as_array().expect("bgpSessions");
    assert_eq!(sessions.len(), 6, "{r:#}");
    assert!(sessions.iter().all(|s| s["established"] == true), "{r:#}");
    let services = r["services"].as_array().expect("services");
    let bgp: Vec<&Value> = services.iter().filter(|s| s["mode"] == "BGP").collect();
    assert_eq!(bgp.len(), 2, "api and web-dual: {r:#}");
    for s in bgp {
        assert_eq!(s["reachable"], true, "{s:#}");
        assert_eq!(s["ok"], true, "{s:#}");
        let routes = s["router"].as_array().expect("router");
        assert_eq!(
            routes.len(),
            s["ips"].as_array().map_or(0, Vec::len),
            "{s:#}"
        );
        for rt in routes {
            // ECMP: with externalTrafficPolicy Cluster every node advertises.
            assert_eq!(rt["learnedFrom"].as_array().map(Vec::len), Some(3), "{s:#}");
        }
        assert!(
            s["probes"]
                .as_array()
                .is_some_and(|p| p.iter().all(|p| p["from"] == "upstream-client")),
            "{s:#}"
        );
    }
    assert!(
        r["failover"].is_null(),
        "no L2 failover under --scenario bgp"
    );
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(r["leftoverNamespaces"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["leftoverPids"], serde_json::json!([]), "{r:#}");
}

#[test]
fn lab_installs_through_the_chart_and_runs_its_workloads() {
    if !lab::tools_or_skip("lab_command", &["ip", "bird", "birdc"]) {
        return;
    }
    let Some(_helm) = ferrolb_e2e::tools::for_test(ferrolb_e2e::tools::Tool::Helm, "lab_helm")
    else {
        return;
    };
    // Kept so this test can read the command lines the lab started; removed below.
    let LabRun {
        code,
        report: r,
        stderr,
    } = run_lab(
        &["lab", "--once", "--json", "--install", "helm"],
        &[("FERROLB_LAB_KEEP_LOGS", "1")],
    );
    let log_dir = r["logDir"].as_str().map(std::path::PathBuf::from);
    let read_log = |name: &str| -> String {
        log_dir
            .as_ref()
            .map(|d| std::fs::read_to_string(d.join(name)).unwrap_or_default())
            .unwrap_or_default()
    };
    let controller_log = read_log("cp-controller.log");
    let speaker_log = read_log("node1-speaker.log");
    if let Some(d) = &log_dir {
        let _ = std::fs::remove_dir_all(d);
    }
    assert_eq!(r["install"], "helm", "{r:#}");
    assert_eq!(r["ok"], true, "failures: {:#}\n{stderr}", r["failures"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(r["bgpSessionsEstablished"], 6, "{r:#}");
    assert_eq!(r["failover"]["restarted"], true, "{r:#}");
    // The processes ran as the chart's workloads say, not with the lab's own arguments: the
    // chart's `--flag=value` spellings, and the controller with leader election.
    let first_line = |log: &str| log.lines().next().unwrap_or("").to_string();
    let controller = first_line(&controller_log);
    assert!(
        controller
            .contains("ferrolb-controller run --namespace=ferrolb-system --listen=0.0.0.0:7472")
            && !controller.contains("--no-leader-election"),
        "{controller}"
    );
    assert!(
        controller_log.contains("leadership changed"),
        "the chart's controller elects a leader:\n{controller_log}"
    );
    let speaker = first_line(&speaker_log);
    assert!(
        speaker.contains("--namespace=ferrolb-system --listen=0.0.0.0:7473 --membership-port=7946")
            && speaker.contains("--node-name=")
            && !speaker.contains("$("),
        "{speaker}"
    );
    assert_eq!(r["leftoverNamespaces"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["leftoverPids"], serde_json::json!([]), "{r:#}");
}

/// Swapping MetalLB for ferrolb: with MetalLB's CRDs, `metallb.io` configuration in
/// `metallb-system` and Services carrying MetalLB's annotations and addresses, ferrolb keeps
/// every address (as MetalLB controller/service.go `convergeBalancer` keeps the addresses of
/// `status.loadBalancer.ingress`; ferrolb restores them from status), announces each, and the
/// clients see every address come up once and stay up.
#[test]
fn lab_metallb_swap_keeps_every_address_and_never_flaps() {
    if !lab::tools_or_skip("lab_command", &["ip", "bird", "birdc"]) {
        return;
    }
    let LabRun {
        code,
        report: r,
        stderr,
    } = run_lab(&["lab", "--once", "--json", "--scenario", "metallb"], &[]);
    assert_eq!(r["scenario"], "metallb", "{r:#}");
    let m = &r["metallb"];
    assert!(m.is_object(), "no swap result: {r:#}");

    // (a) Nothing moved: every Service has exactly the addresses MetalLB gave it.
    assert_eq!(m["ipsMoved"], 0, "{m:#}");
    let services = m["services"].as_array().expect("services");
    let names: Vec<&str> = services.iter().filter_map(|s| s["name"].as_str()).collect();
    for want in ["web", "legacy", "web-fixed", "dns-tcp", "dns-udp", "api"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for s in services {
        assert!(
            s["before"]["ips"].as_array().is_some_and(|v| !v.is_empty()),
            "{s:#}"
        );
        assert_eq!(s["before"], s["after"], "{s:#}");
        assert_eq!(s["moved"], false, "{s:#}");
    }
    let ips_of = |name: &str| {
        services
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["after"]["ips"].clone())
            .unwrap_or_default()
    };
    assert_eq!(
        ips_of("web"),
        serde_json::json!(["10.200.0.200", "fd00:200::c8"])
    );
    assert_eq!(ips_of("legacy"), serde_json::json!(["10.200.0.201"]));
    assert_eq!(ips_of("dns-tcp"), ips_of("dns-udp"), "shared IP");
    assert_eq!(ips_of("api"), serde_json::json!(["10.200.100.1"]));

    // (b) and (c): every address announced, reached, and never lost after its first success.
    let addresses = m["addresses"].as_array().expect("addresses");
    assert_eq!(addresses.len(), 6, "{m:#}");
    for a in addresses {
        assert!(
            a["announcedBy"].as_array().is_some_and(|v| !v.is_empty()),
            "{a:#}"
        );
        assert!(
            a["firstSuccessMs"].as_f64().is_some(),
            "never reached: {a:#}"
        );
        assert_eq!(a["answeredBeforeStart"], 0, "{a:#}");
        assert!(
            a["probesAfterFirstSuccess"].as_u64().is_some_and(|n| n > 0),
            "{a:#}"
        );
        // Layer 2 loses nothing; over BGP each next hop the router adds after the first may
        // rehash the client's flow and break the one connection in flight.
        let allowed = if a["from"] == "upstream-client" {
            a["announcedBy"].as_array().map_or(0, |v| v.len() - 1)
        } else {
            0
        };
        assert_eq!(a["failuresAllowed"], allowed, "{a:#}");
        assert!(
            a["failedAfterFirstSuccess"]
                .as_u64()
                .is_some_and(|n| n <= allowed as u64),
            "{a:#}"
        );
    }
    for row in r["services"].as_array().expect("rows") {
        assert_eq!(row["reachable"], true, "{row:#}");
        assert_eq!(row["ok"], true, "{row:#}");
    }

    // The controller and every speaker read metallb.io (and ferrolb.io, whose CRDs a ferrolb
    // install brings).
    let groups = m["configGroups"].as_object().expect("configGroups");
    for who in ["controller", "node1", "node2", "node3"] {
        let g = groups
            .get(who)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{who} missing: {m:#}"));
        assert!(g.iter().any(|x| x == "metallb.io"), "{who}: {g:?}");
        assert!(g.iter().any(|x| x == "ferrolb.io"), "{who}: {g:?}");
    }

    assert_eq!(r["ok"], true, "failures: {:#}\n{stderr}", r["failures"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(r["leftoverNamespaces"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["leftoverPids"], serde_json::json!([]), "{r:#}");
}
