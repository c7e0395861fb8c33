//! Smoke tests of the network-namespace lab (need root; see `lab::root_or_skip`).
//!
//! - the full topology pings over IPv4 and IPv6, BIRD answers in the router,
//!   and after the lab is dropped nothing of the run is left;
//! - a panic inside a lab closure still cleans up;
//! - SIGTERM to a process holding a lab tears it down (signal handler);
//! - after a SIGKILL, the next run reaps the leftovers (state file);
//! - without root the builder returns a typed error.

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrolb_e2e::lab::{self, BgpPeer, Bird, BirdConfig, Lab, LabError, netns, topology};
use nix::sys::signal::Signal;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "ferrolb_e2e=info".into()),
        )
        .with_test_writer()
        .try_init();
}

fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let want = format!("{prefix}-");
    netns::list()
        .expect("list namespaces")
        .into_iter()
        .filter(|n| n.starts_with(&want))
        .collect()
}

/// A PID is gone when /proc has no entry (a zombie would still count as left).
fn pid_gone(pid: i32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn pid_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z')),
    }
}

fn assert_clean(prefix: &str, pids: &[i32]) {
    let left = namespaces_with_prefix(prefix);
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    let alive: Vec<i32> = pids.iter().copied().filter(|p| !pid_gone(*p)).collect();
    assert!(alive.is_empty(), "processes left behind: {alive:?}");
}

#[test]
fn smoke_topology_ping_bird_and_cleanup() {
    if !lab::tools_or_skip(
        "smoke_topology_ping_bird_and_cleanup",
        &["ip", "ping", "bird", "birdc"],
    ) {
        return;
    }
    init_tracing();
    let t0 = Instant::now();
    let lab = Lab::builder()
        .nodes(3)
        .lan_client(true)
        .upstream_client(true)
        .build()
        .expect("build lab");
    eprintln!("lab {} built in {:?}", lab.prefix(), t0.elapsed());
    let prefix = lab.prefix().to_string();
    assert_eq!(lab.namespaces().len(), 1 + 1 + 1 + 3 + 1 + 1);
    for ns in lab.namespaces() {
        assert!(ns.len() <= 15, "{ns} too long");
        assert!(netns::exists(&ns), "{ns} missing");
    }

    // DAD off and forwarding on where expected.
    assert_eq!(
        lab.node(1)
            .ns()
            .sysctl_get("net.ipv6.conf.eth0.accept_dad")
            .unwrap(),
        "0"
    );
    assert_eq!(
        lab.router().ns().sysctl_get("net.ipv4.ip_forward").unwrap(),
        "1"
    );
    assert_eq!(
        lab.node(1).ns().sysctl_get("net.ipv4.ip_forward").unwrap(),
        "0"
    );

    // Every host pings every neighbour on each network it shares, both families.
    let mut failures = Vec::new();
    let mut count = 0;
    for a in lab.hosts() {
        for b in lab.hosts() {
            if a.name() == b.name() {
                continue;
            }
            for att in a.attachments() {
                let Some(peer) = b.on(att.network) else {
                    continue;
                };
                for dst in [IpAddr::V4(peer.v4), IpAddr::V6(peer.v6)] {
                    count += 1;
                    if !a.ns().ping(dst).expect("run ping") {
                        failures.push(format!("{} -> {} {dst}", a.name(), b.name()));
                    }
                }
            }
        }
    }
    // Routed through the router, both directions.
    let uc = lab.upstream_client();
    for h in [lab.node(1), lab.lan_client(), lab.control_plane()] {
        for (src, dst) in [(uc, h), (h, uc)] {
            for d in [IpAddr::V4(dst.v4()), IpAddr::V6(dst.v6())] {
                count += 1;
                if !src.ns().ping(d).expect("run ping") {
                    failures.push(format!("{} -> {} {d} (routed)", src.name(), dst.name()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "pings failed: {failures:#?}");
    eprintln!("{count} pings ok after {:?}", t0.elapsed());

    // ARP and NDP helpers from the LAN client to node1.
    let (c, n1) = (lab.lan_client(), lab.node(1));
    let arp = c.ns().arping(c.iface(), n1.v4(), 1).expect("arping");
    assert!(arp.success(), "arping: {arp:?}");
    let mac = n1.mac(n1.iface()).expect("node1 MAC");
    assert!(
        arp.stdout.to_lowercase().contains(&mac.to_lowercase()),
        "{arp:?} vs {mac}"
    );
    let nd = c.ns().ndisc6(c.iface(), n1.v6()).expect("ndisc6");
    assert!(nd.success(), "ndisc6: {nd:?}");
    assert!(
        nd.stdout.to_lowercase().contains(&mac.to_lowercase()),
        "{nd:?} vs {mac}"
    );

    // A tiny HTTP server on node1 (a spawned, logged process), fetched with curl
    // from the upstream client through the router, over IPv4 and IPv6.
    let http = n1
        .ns()
        .spawn(
            "http",
            [
                "socat",
                "TCP6-LISTEN:8080,ipv6only=0,fork,reuseaddr",
                "SYSTEM:'printf \"HTTP/1.0 200 OK\\r\\n\\r\\nhello\"'",
            ],
        )
        .expect("spawn socat");
    for dst in [IpAddr::V4(n1.v4()), IpAddr::V6(n1.v6())] {
        let body = lab::wait_for(
            &format!("HTTP answer from {dst}"),
            Duration::from_secs(5),
            || {
                uc.ns()
                    .curl(dst, 8080, "/", Duration::from_secs(2))
                    .ok()
                    .filter(|o| o.success())
            },
        )
        .unwrap_or_else(|e| panic!("{e}; server log: {}", http.log()));
        assert_eq!(body.stdout, "hello");
    }

    // The async wrapper, as tokio code (e.g. the future `lab` command) uses it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = rt
        .block_on(
            n1.ns()
                .exec_async(vec!["ip".into(), "-br".into(), "addr".into()]),
        )
        .unwrap();
    assert!(out.stdout.contains(&n1.v4().to_string()), "{out:?}");

    // The traffic guard refuses destinations outside the lab.
    assert!(matches!(
        lab.node(1).ns().ping("192.0.2.1".parse().unwrap()),
        Err(LabError::AddressOutsideLab(_))
    ));

    // BIRD in the router, with (unanswered) sessions to the nodes.
    let mut cfg = BirdConfig::new(lab.router().v4(), topology::ROUTER_ASN);
    for (i, n) in lab.nodes().iter().enumerate() {
        cfg = cfg.peer(BgpPeer::new(
            format!("node{}", i + 1),
            IpAddr::V4(n.v4()),
            topology::NODE_ASN,
        ));
    }
    let bird = Bird::start(lab.router().ns(), &cfg).expect("start BIRD");
    let status = bird.birdc("show status").expect("birdc show status");
    assert!(status.contains("Daemon is up"), "{status}");
    assert!(
        status.contains(&lab.router().v4().to_string()),
        "router id: {status}"
    );
    assert!(bird.protocol_info("node1").unwrap().is_some());

    // A process we can signal by PID: stop / continue / still running.
    let sleeper = lab
        .node(2)
        .ns()
        .spawn("sleeper", ["sleep", "300"])
        .expect("spawn");
    sleeper.signal(Signal::SIGSTOP).unwrap();
    lab::wait_until("sleeper stopped", Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{}/stat", sleeper.pid())).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('T'))
        })
    })
    .unwrap();
    sleeper.resume().unwrap();
    assert!(sleeper.is_running());
    // Its namespace is really node2's.
    let pids = netns::pids(lab.node(2).name()).unwrap();
    assert!(pids.contains(&sleeper.pid()), "{pids:?}");

    let mut started = lab.live_pids();
    started.extend([bird.process().pid(), sleeper.pid(), http.pid()]);
    started.sort_unstable();
    started.dedup();
    eprintln!("pids started: {started:?}");

    // Drop the lab while the handles are still alive: the lab must stop and
    // reap them itself.
    drop(lab);
    assert_clean(&prefix, &started);
    assert!(!sleeper.is_running());
    assert!(matches!(
        sleeper.terminate(),
        Err(LabError::NotRunning { .. })
    ));
    drop((bird, sleeper, http));
    assert!(
        !lab::log_dir_for(&prefix).exists(),
        "log dir removed on clean teardown"
    );
    eprintln!("smoke done in {:?}", t0.elapsed());
}

#[test]
fn panic_inside_lab_closure_cleans_up() {
    if !lab::root_or_skip("panic_inside_lab_closure_cleans_up") {
        return;
    }
    init_tracing();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let lab = Lab::builder()
            .nodes(1)
            .lan_client(false)
            .upstream_client(false)
            .build()
            .expect("build lab");
        let p = lab
            .node(1)
            .ns()
            .spawn("sleeper", ["sleep", "300"])
            .expect("spawn");
        tx.send((lab.prefix().to_string(), vec![p.pid()])).unwrap();
        // `lab` and `p` are dropped while unwinding.
        panic!("deliberate panic inside the lab");
    });
    assert!(handle.join().is_err(), "the thread must have panicked");
    let (prefix, pids) = rx.recv().expect("prefix from thread");
    assert_clean(&prefix, &pids);
    // Logs are kept after a panic, for the post-mortem; the state file is not.
    let dir = lab::log_dir_for(&prefix);
    assert!(dir.join("node1-sleeper.log").exists());
    assert!(!dir.join(lab::cleanup::STATE_FILE).exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn refuses_without_root() {
    if !lab::root_or_skip("refuses_without_root") {
        return;
    }
    // Drop the effective uid of one thread only (the raw syscall, unlike libc's
    // setresuid, does not propagate to other threads); the thread's credentials
    // die with it.
    let r = std::thread::spawn(|| {
        // SAFETY: plain syscall; keeps real and saved uid 0.
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, -1i64, 65534i64, -1i64) };
        assert_eq!(rc, 0);
        Lab::builder().nodes(1).build().map(|_| ())
    })
    .join()
    .expect("thread");
    match r {
        Err(e @ LabError::NotRoot { euid: 65534 }) => {
            assert!(e.to_string().contains("needs root"), "{e}")
        }
        other => panic!("expected NotRoot, got {other:?}"),
    }
}

/// Not a test on its own: run by the signal tests as a child process
/// (`FERROLB_LAB_CHILD=1`). Builds a lab, starts a process, prints the prefix
/// and PIDs, then waits to be killed.
#[test]
fn child_lab_for_signal_tests() {
    if std::env::var_os("FERROLB_LAB_CHILD").is_none() {
        return;
    }
    let lab = Lab::builder()
        .nodes(1)
        .lan_client(false)
        .upstream_client(false)
        .build()
        .expect("build lab");
    let p = lab
        .node(1)
        .ns()
        .spawn("sleeper", ["sleep", "300"])
        .expect("spawn");
    println!("LABCHILD {} {}", lab.prefix(), p.pid());
    std::thread::sleep(Duration::from_secs(60));
    drop(p);
}

/// Starts the child lab and returns (child, prefix, pids).
fn start_child() -> (std::process::Child, String, Vec<i32>) {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_lab_for_signal_tests",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FERROLB_LAB_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child test");
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("child has no stdout");
    };
    let mut lines = BufReader::new(stdout).lines();
    // The harness prints "test NAME ... " without a newline before our line.
    // (If the child hangs before printing, the test's own timeout applies.)
    let report = lines.by_ref().map_while(|l| l.ok()).find_map(|line| {
        let rest = line.split_once("LABCHILD ")?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let prefix = f.first()?.to_string();
        let pids: Option<Vec<i32>> = f[1..].iter().map(|p| p.parse().ok()).collect();
        Some((prefix, pids?))
    });
    match report {
        Some((prefix, pids)) => {
            // Keep draining stdout so the child never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            (child, prefix, pids)
        }
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child exited before reporting its lab");
        }
    }
}

#[test]
fn sigterm_tears_the_lab_down() {
    if !lab::root_or_skip("sigterm_tears_the_lab_down") {
        return;
    }
    let (mut child, prefix, pids) = start_child();
    assert!(!namespaces_with_prefix(&prefix).is_empty());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().expect("wait child");
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGTERM),
        "exit status {status:?}"
    );
    assert_clean(&prefix, &pids);
    let _ = std::fs::remove_dir_all(lab::log_dir_for(&prefix));
}

#[test]
fn next_run_reaps_leftovers_of_a_killed_run() {
    if !lab::root_or_skip("next_run_reaps_leftovers_of_a_killed_run") {
        return;
    }
    let (mut child, prefix, pids) = start_child();
    // SIGKILL: no Drop, no handler — namespaces and the sleeper stay behind.
    child.kill().expect("kill child");
    child.wait().expect("wait child");
    assert!(
        !namespaces_with_prefix(&prefix).is_empty(),
        "leftovers expected"
    );
    let cleaned = lab::cleanup::reap_stale().expect("reap_stale");
    assert!(cleaned.contains(&prefix), "cleaned {cleaned:?}");
    // The orphaned sleeper was re-parented to init; it is dead once gone or a
    // zombie (reaping it is init's job, and not every container's init does).
    lab::wait_until("orphan killed", Duration::from_secs(5), || {
        pids.iter().all(|p| pid_dead(*p))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let left = namespaces_with_prefix(&prefix);
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    let _ = std::fs::remove_dir_all(lab::log_dir_for(&prefix));
}

/// The daemon launchers interoperate: BIRD in the router peers with FRR on
/// node1 (IPv4 session with TCP MD5 + IPv6 session) and GoBGP on node2; the
/// routes they announce land in the router's kernel, and the upstream client
/// reaches the announced addresses through the router.
#[test]
fn bgp_daemons_establish_and_route() {
    if !lab::tools_or_skip(
        "bgp_daemons_establish_and_route",
        &[
            "bird",
            "birdc",
            "gobgpd",
            "gobgp",
            "vtysh",
            lab::daemons::FRR_BGPD,
        ],
    ) {
        return;
    }
    init_tracing();
    let lab = Lab::builder()
        .nodes(2)
        .lan_client(false)
        .build()
        .expect("build lab");
    let (r, n1, n2) = (lab.router(), lab.node(1), lab.node(2));
    let svc1 = "10.200.10.1".parse::<std::net::Ipv4Addr>().unwrap();
    let svc1_v6 = "fd00:200:0:10::1".parse::<std::net::Ipv6Addr>().unwrap();
    let svc2 = "10.200.10.2".parse::<std::net::Ipv4Addr>().unwrap();
    // The "service IPs" live on the nodes' loopbacks.
    n1.ns()
        .ip(["addr", "add", "10.200.10.1/32", "dev", "lo"])
        .unwrap();
    n1.ns()
        .ip(["-6", "addr", "add", "fd00:200:0:10::1/128", "dev", "lo"])
        .unwrap();
    n2.ns()
        .ip(["addr", "add", "10.200.10.2/32", "dev", "lo"])
        .unwrap();

    let bird_cfg = BirdConfig::new(r.v4(), topology::ROUTER_ASN)
        .peer(BgpPeer::new("node1", IpAddr::V4(n1.v4()), topology::NODE_ASN).password("s3cret"))
        .peer(BgpPeer::new(
            "node1v6",
            IpAddr::V6(n1.v6()),
            topology::NODE_ASN,
        ))
        .peer(BgpPeer::new(
            "node2",
            IpAddr::V4(n2.v4()),
            topology::NODE_ASN,
        ));
    let bird = Bird::start(r.ns(), &bird_cfg).expect("BIRD");

    let mut frr_cfg = lab::FrrConfig::new("node1", n1.v4(), topology::NODE_ASN)
        .peer(BgpPeer::new("router", IpAddr::V4(r.v4()), topology::ROUTER_ASN).password("s3cret"))
        .peer(BgpPeer::new(
            "router6",
            IpAddr::V6(r.v6()),
            topology::ROUTER_ASN,
        ));
    frr_cfg.networks_v4.push("10.200.10.1/32".parse().unwrap());
    frr_cfg
        .networks_v6
        .push("fd00:200:0:10::1/128".parse().unwrap());
    let frr = lab::Frr::start(n1.ns(), &frr_cfg).expect("FRR");

    let gobgp_cfg = lab::GobgpConfig::new(n2.v4(), topology::NODE_ASN).peer(BgpPeer::new(
        "router",
        IpAddr::V4(r.v4()),
        topology::ROUTER_ASN,
    ));
    let gobgp = lab::Gobgp::start(n2.ns(), &gobgp_cfg).expect("GoBGP");
    gobgp
        .gobgp("global rib add -a ipv4 10.200.10.2/32")
        .expect("gobgp add");

    let t = Duration::from_secs(30);
    for name in ["node1", "node1v6", "node2"] {
        bird.wait_established(name, t).unwrap_or_else(|e| {
            panic!(
                "{e}\n{}",
                bird.birdc("show protocols all").unwrap_or_default()
            )
        });
    }
    frr.wait_established(IpAddr::V4(r.v4()), t).expect("FRR v4");
    frr.wait_established(IpAddr::V6(r.v6()), t).expect("FRR v6");
    gobgp
        .wait_established(IpAddr::V4(r.v4()), t)
        .expect("GoBGP");

    // Routes reach the router's kernel (BIRD kernel export) and carry traffic.
    let uc = lab.upstream_client();
    for (dst, via) in [
        (IpAddr::V4(svc1), IpAddr::V4(n1.v4())),
        (IpAddr::V6(svc1_v6), IpAddr::V6(n1.v6())),
        (IpAddr::V4(svc2), IpAddr::V4(n2.v4())),
    ] {
        lab::wait_until(&format!("kernel route to {dst} via {via}"), t, || {
            r.ns()
                .ip(["route", "get", &dst.to_string()])
                .is_ok_and(|o| o.contains(&format!("via {via} ")))
        })
        .unwrap();
        assert!(uc.ns().ping(dst).unwrap(), "upstream client -> {dst}");
    }
    let prefix = lab.prefix().to_string();
    let pids = vec![
        bird.process().pid(),
        frr.zebra().pid(),
        frr.bgpd().pid(),
        gobgp.process().pid(),
    ];
    drop((bird, frr, gobgp));
    drop(lab);
    assert_clean(&prefix, &pids);
}
