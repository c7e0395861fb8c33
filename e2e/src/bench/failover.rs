//! Layer 2 failover benchmark: ferrolb against keepalived (VRRPv3) in the same lab with the same
//! probe, plus the speaker's ARP reply latency against the kernel's and the speaker's peak RSS
//! with 1,000 announced addresses.
//!
//! The probe is an HTTP GET to the VIP every 10 ms from the LAN client namespace (10 ms connect
//! timeout). Each node's echo server answers with the node's name, so a sample also says which
//! node served it.
//!
//! Two figures per trial:
//! - *gap*: last success before the fault → first success after it (the outage a client sees);
//! - *takeover*: fault → first success served by another node (how fast the VIP moved).
//!
//! Killing only the daemon (`--fault kill`) leaves the old node's data path up: the client's
//! neighbour entry still points there and that node still accepts the VIP, so the gap is close
//! to the probe interval for both systems and the takeover time is the informative figure.
//! `--fault link-down` (the owner's eth0 goes down) is a node failure: there the gap is real.

use crate::bench::prober::{Prober, measure};
use crate::bench::stats::{peak_rss_kib, percentile};
use crate::cluster::{Cluster, ClusterOptions, default_service_ranges};
use crate::fixtures::ingress_ips;
use crate::lab::{Keepalived, KeepalivedConfig};
use anyhow::{Context, anyhow, bail};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// How the owner fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL the daemon (ferrolb's speaker, keepalived's VRRP child).
    Kill,
    /// The owner's eth0 goes down (a node failure).
    LinkDown,
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kill" => Ok(Fault::Kill),
            "link-down" => Ok(Fault::LinkDown),
            _ => Err(format!("unknown fault {s:?}: kill or link-down")),
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct FailoverBench {
    pub trials: usize,
    pub fault: Fault,
    /// Also run keepalived.
    pub keepalived: bool,
    /// Also measure ARP latency and RSS with 1,000 addresses.
    pub extras: bool,
    /// Extra arguments for the ferrolb speakers.
    pub speaker_args: Vec<String>,
}

/// Percentiles of one series (milliseconds).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Series {
    pub samples_ms: Vec<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Trials without a measurement (no success in time).
    pub failed_trials: usize,
}

impl Series {
    fn from(samples: &[Duration], failed: usize) -> Series {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Series {
            samples_ms: samples.iter().map(|d| ms(*d)).collect(),
            p50_ms: percentile(samples, 50.0).map(ms),
            p99_ms: percentile(samples, 99.0).map(ms),
            failed_trials: failed,
        }
    }
}

/// Gap and takeover series of one system.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SystemResult {
    pub gap: Series,
    pub takeover: Series,
}

/// The report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    pub trials: usize,
    pub fault: String,
    pub ferrolb: SystemResult,
    pub keepalived: Option<SystemResult>,
    /// ARP RTT percentiles (µs) for a VIP answered by the speaker as it runs by default, by
    /// the speaker restarted with `--l2-responder socket` (userspace), and for the node's own
    /// address answered by the kernel's ARP.
    pub arp_speaker_p50_us: Option<f64>,
    pub arp_kernel_p50_us: Option<f64>,
    pub arp_speaker_p99_us: Option<f64>,
    pub arp_kernel_p99_us: Option<f64>,
    pub arp_socket_p50_us: Option<f64>,
    pub arp_socket_p99_us: Option<f64>,
    /// Who answered for the speaker by default: "eBPF" (in-kernel responder) or "socket".
    pub arp_speaker_responder: String,
    /// Announced addresses and the largest speaker VmHWM (KiB) with them.
    pub rss_ips: usize,
    pub rss_peak_kib: Option<u64>,
    /// What the in-kernel responder costs, in ns per packet as the kernel times it: frames it
    /// passes on (an IPv4 and an IPv6 data packet) and frames it answers (ARP, NS).
    pub responder_cost: Option<ResponderCost>,
}

/// See [`Report::responder_cost`].
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ResponderCost {
    pub pass_ipv4_ns: u32,
    pub pass_ipv6_ns: u32,
    pub answer_arp_ns: u32,
    pub answer_ns_ns: u32,
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".into(),
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0} ms"))
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "failover, {} trials, fault {}", self.trials, self.fault)?;
        let k = self.keepalived.clone().unwrap_or_default();
        for (what, a, b) in [
            ("gap", &self.ferrolb.gap, &k.gap),
            ("takeover", &self.ferrolb.takeover, &k.takeover),
        ] {
            for (p, x, y) in [("p50", a.p50_ms, b.p50_ms), ("p99", a.p99_ms, b.p99_ms)] {
                writeln!(
                    f,
                    "  {what} {p}: ferrolb {}, keepalived {} (ratio {})",
                    opt_ms(x),
                    opt_ms(y),
                    ratio(x, y)
                )?;
            }
            writeln!(
                f,
                "  {what} failed trials: ferrolb {}, keepalived {}",
                a.failed_trials, b.failed_trials
            )?;
        }
        let us = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.0} µs"));
        writeln!(
            f,
            "arp reply p50: speaker ({}) {}, kernel {} (ratio {}); p99: speaker {}, kernel {} (ratio {})",
            self.arp_speaker_responder,
            us(self.arp_speaker_p50_us),
            us(self.arp_kernel_p50_us),
            ratio(self.arp_speaker_p50_us, self.arp_kernel_p50_us),
            us(self.arp_speaker_p99_us),
            us(self.arp_kernel_p99_us),
            ratio(self.arp_speaker_p99_us, self.arp_kernel_p99_us),
        )?;
        writeln!(
            f,
            "arp reply, speaker with --l2-responder socket: p50 {} (ratio to kernel {}), p99 {} (ratio {})",
            us(self.arp_socket_p50_us),
            ratio(self.arp_socket_p50_us, self.arp_kernel_p50_us),
            us(self.arp_socket_p99_us),
            ratio(self.arp_socket_p99_us, self.arp_kernel_p99_us),
        )?;
        if let Some(c) = &self.responder_cost {
            writeln!(
                f,
                "in-kernel responder cost per packet: passed on {} ns (IPv4) / {} ns (IPv6); answered {} ns (ARP) / {} ns (NS)",
                c.pass_ipv4_ns, c.pass_ipv6_ns, c.answer_arp_ns, c.answer_ns_ns
            )?;
        }
        write!(
            f,
            "speaker peak RSS with {} announced IPs: {}",
            self.rss_ips,
            self.rss_peak_kib
                .map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
        )
    }
}

const L2_EXAMPLE: &str = include_str!("../../../deploy/examples/l2.yaml");
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
const KEEPALIVED_VIP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 250);

/// Runs the benchmark (blocking: call it outside any tokio runtime).
pub fn run(opts: &FailoverBench) -> anyhow::Result<Report> {
    crate::lab::root::require_root().map_err(|e| anyhow!("{e}"))?;
    let mut report = Report {
        trials: opts.trials,
        fault: format!("{:?}", opts.fault),
        ..Report::default()
    };
    {
        let mut c = Cluster::start(ClusterOptions {
            speaker_args: opts.speaker_args.clone(),
            ..ClusterOptions::default()
        })?;
        report.ferrolb = ferrolb_trials(&mut c, opts)?;
        if opts.extras {
            arp_latency(&mut c, &mut report)?;
        }
    }
    if opts.keepalived {
        let c = Cluster::start(ClusterOptions {
            controller: false,
            speakers: false,
            ..ClusterOptions::default()
        })?;
        report.keepalived = Some(keepalived_trials(&c, opts)?);
    }
    if opts.extras {
        rss_1000(&mut report)?;
        report.responder_cost = Some(responder_cost()?);
    }
    Ok(report)
}

/// Times the in-kernel responder with `BPF_PROG_TEST_RUN` (in the kernel, on loopback; nothing
/// is sent): a million runs over a frame it passes on, and the median of single runs over a
/// frame it answers (a repeated run would see its own answer, which it passes on).
fn responder_cost() -> anyhow::Result<ResponderCost> {
    use ferrolb_speaker::layer2::kernel_responder::{KernelResponder, TC_ACT_REDIRECT, TCX_NEXT};
    use ferrolb_speaker_core::layer2::frames::{
        self, ArpOp, ArpPacket, ETHERTYPE_IPV6, EthernetHeader, Ipv6Header, MacAddr,
        NeighborSolicitation,
    };
    const LOOPBACK: u32 = 1;
    let ours = MacAddr([0x02, 0xfe, 0, 0, 0, 1]);
    let client = MacAddr([0x02, 0xc1, 0, 0, 0, 2]);
    let (vip4, vip6): (Ipv4Addr, std::net::Ipv6Addr) =
        (Ipv4Addr::new(10, 200, 99, 1), "fd00:200:0:99::1".parse()?);
    let (client4, client6): (Ipv4Addr, std::net::Ipv6Addr) =
        (Ipv4Addr::new(10, 200, 99, 2), "fd00:200:0:99::2".parse()?);
    let k = KernelResponder::load().context("loading the in-kernel responder")?;
    k.renew_lease(Duration::from_secs(600))?;
    k.answer(LOOPBACK, IpAddr::V4(vip4), ours)?;
    k.answer(LOOPBACK, IpAddr::V6(vip6), ours)?;

    let arp = frames::arp_frame(
        MacAddr::BROADCAST,
        client,
        &ArpPacket {
            op: ArpOp::Request,
            sender_mac: client,
            sender_ip: client4,
            target_mac: MacAddr::ZERO,
            target_ip: vip4,
        },
    );
    // A unicast solicitation (a reachability probe): the IPv6 header below goes to the VIP.
    let icmp = NeighborSolicitation {
        target: vip6,
        source_mac: Some(client),
    }
    .to_icmpv6(client6, vip6);
    let ipv6_frame = |payload: &[u8], next_header: u8| {
        let mut f = Vec::new();
        EthernetHeader {
            dst: ours,
            src: client,
            ethertype: ETHERTYPE_IPV6,
        }
        .write(&mut f);
        Ipv6Header {
            src: client6,
            dst: vip6,
            next_header,
            hop_limit: 255,
        }
        .write(u16::try_from(payload.len()).unwrap_or(u16::MAX), &mut f);
        f.extend_from_slice(payload);
        f
    };
    let ns = ipv6_frame(&icmp, frames::IPPROTO_ICMPV6);
    // Data packets: a TCP segment's worth of bytes behind each header (their content does not
    // matter to the program, only that it is not ARP / not a solicitation).
    let tcp6 = ipv6_frame(&[0u8; 40], 6);
    let mut tcp4 = Vec::new();
    EthernetHeader {
        dst: ours,
        src: client,
        ethertype: frames::ETHERTYPE_IPV4,
    }
    .write(&mut tcp4);
    tcp4.extend_from_slice(&[0x45, 0, 0, 60]);
    tcp4.resize(74, 0);

    let pass = |frame: &[u8]| -> anyhow::Result<u32> {
        let run = k.time_run(frame, 1_000_000)?;
        anyhow::ensure!(run.retval == TCX_NEXT, "data packet not passed on");
        Ok(run.duration_ns)
    };
    let answer = |frame: &[u8]| -> anyhow::Result<u32> {
        let mut times = Vec::with_capacity(2001);
        for _ in 0..2001 {
            let run = k.time_run(frame, 1)?;
            anyhow::ensure!(run.retval == TC_ACT_REDIRECT, "request not answered");
            times.push(run.duration_ns);
        }
        times.sort_unstable();
        Ok(times[times.len() / 2])
    };
    Ok(ResponderCost {
        pass_ipv4_ns: pass(&tcp4)?,
        pass_ipv6_ns: pass(&tcp6)?,
        answer_arp_ns: answer(&arp)?,
        answer_ns_ns: answer(&ns)?,
    })
}

/// Creates a LoadBalancer Service `name` (IPv4) and returns its address once assigned.
pub fn create_v4_service(c: &Cluster, name: &str, timeout: Duration) -> anyhow::Result<IpAddr> {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Api, PostParams};
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]}
    }))?;
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let name = name.to_string();
    c.run(async move {
        api.create(&PostParams::default(), &svc).await?;
        let deadline = Instant::now() + timeout;
        loop {
            let s = api.get(&name).await?;
            if let Some(ip) = ingress_ips(&s).first() {
                return Ok(*ip);
            }
            if Instant::now() > deadline {
                bail!("service {name} got no address in {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })?
}

fn ferrolb_trials(c: &mut Cluster, opts: &FailoverBench) -> anyhow::Result<SystemResult> {
    c.apply_yaml(L2_EXAMPLE)?;
    let ip = create_v4_service(c, "bench", Duration::from_secs(20))?;
    let client_ns = c.lab.lan_client().ns().name().to_string();
    let prober = Prober::start(&client_ns, SocketAddr::new(ip, 80), PROBE_INTERVAL)?;
    let (mut gaps, mut takeovers, mut failed) = (Vec::new(), Vec::new(), 0);
    for trial in 0..opts.trials {
        let owner = c.wait_single_announcer(ip, None, Duration::from_secs(20))?;
        let owner_name = c.lab.node(owner).name().to_string();
        // Converged: the client reaches the owner now.
        let now = Instant::now();
        prober
            .wait_success(now, Duration::from_secs(10), |n| n == owner_name)
            .ok_or_else(|| anyhow!("trial {trial}: {ip} not served by {owner_name}"))?;
        // Enough history before the fault for "last success before".
        std::thread::sleep(Duration::from_millis(200));
        prober.clear();
        std::thread::sleep(Duration::from_millis(50));
        let fault_at = Instant::now();
        inject_ferrolb(c, owner, opts.fault)?;
        let got = prober.wait_success(fault_at, Duration::from_secs(10), |n| n != owner_name);
        // A little more history so the gap's "first success after" is settled.
        std::thread::sleep(Duration::from_millis(50));
        match got.and_then(|_| measure(&prober.samples(), fault_at, &owner_name)) {
            Some((gap, takeover)) => {
                eprintln!(
                    "ferrolb trial {trial}: owner {owner_name}, gap {gap:?}, takeover {takeover:?}"
                );
                gaps.push(gap);
                takeovers.push(takeover);
            }
            None => {
                eprintln!("ferrolb trial {trial}: owner {owner_name}: no takeover within 10 s");
                failed += 1;
            }
        }
        heal_ferrolb(c, owner, opts.fault)?;
    }
    Ok(SystemResult {
        gap: Series::from(&gaps, failed),
        takeover: Series::from(&takeovers, failed),
    })
}

fn inject_ferrolb(c: &mut Cluster, node: usize, fault: Fault) -> anyhow::Result<()> {
    match fault {
        Fault::Kill => c
            .speaker(node)
            .ok_or_else(|| anyhow!("no speaker on node {node}"))?
            .kill()
            .map_err(|e| anyhow!("{e}")),
        Fault::LinkDown => {
            let h = c.lab.node(node);
            h.ns()
                .ip(["link", "set", h.iface(), "down"])
                .map(|_| ())
                .map_err(|e| anyhow!("{e}"))
        }
    }
}

fn heal_ferrolb(c: &mut Cluster, node: usize, fault: Fault) -> anyhow::Result<()> {
    match fault {
        Fault::Kill => {
            c.drop_speaker(node);
            c.start_speaker(node)?;
        }
        Fault::LinkDown => {
            let h = c.lab.node(node);
            h.ns()
                .ip(["link", "set", h.iface(), "up"])
                .map_err(|e| anyhow!("{e}"))?;
        }
    }
    // Wait for the node to be back in the membership of every speaker, so the next trial
    // starts converged (its owner may be the healed node again).
    let deadline = Instant::now() + Duration::from_secs(20);
    let name = c.lab.node(node).name().to_string();
    loop {
        // A member may not list itself: ask the others, and the healed node only for ready.
        let all_see = (1..=c.lab.nodes().len()).all(|i| {
            if i == node {
                return c
                    .get_json(c.speaker_http(i), "/api/v1/status")
                    .is_ok_and(|s| s["ready"].as_bool() == Some(true));
            }
            c.get_json(c.speaker_http(i), "/api/v1/status")
                .is_ok_and(|s| {
                    s["ready"].as_bool() == Some(true)
                        && s["membership"]["members"].as_array().is_some_and(|m| {
                            m.iter().any(|x| {
                                x["node"].as_str() == Some(&name)
                                    && x["alive"].as_bool() == Some(true)
                            })
                        })
                })
        });
        if all_see {
            break;
        }
        if Instant::now() > deadline {
            bail!("node {name} did not rejoin within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let the re-elected owner's gratuitous announcements (0, 0.5, 2, 5 s) settle the client.
    std::thread::sleep(Duration::from_millis(700));
    Ok(())
}

fn start_keepalived(c: &Cluster, node: usize) -> anyhow::Result<Keepalived> {
    let h = c.lab.node(node);
    // node1 highest: it is master whenever it runs.
    let priority = 250u8.saturating_sub(u8::try_from(node * 50).unwrap_or(200));
    let cfg = KeepalivedConfig {
        iface: h.iface().to_string(),
        vip: KEEPALIVED_VIP,
        prefix_len: 24,
        priority,
    };
    Keepalived::start(h.ns(), h.name(), &cfg).map_err(|e| anyhow!("{e}"))
}

/// The node whose eth0 holds the keepalived VIP (exactly one), if any.
fn keepalived_master(c: &Cluster) -> anyhow::Result<Option<usize>> {
    let mut holders = Vec::new();
    for i in 1..=c.lab.nodes().len() {
        let h = c.lab.node(i);
        if Keepalived::holds_vip(h.ns(), h.iface(), KEEPALIVED_VIP).map_err(|e| anyhow!("{e}"))? {
            holders.push(i);
        }
    }
    Ok((holders.len() == 1).then(|| holders[0]))
}

fn keepalived_trials(c: &Cluster, opts: &FailoverBench) -> anyhow::Result<SystemResult> {
    let mut ks: Vec<Option<Keepalived>> = Vec::new();
    for i in 1..=c.lab.nodes().len() {
        ks.push(Some(start_keepalived(c, i)?));
    }
    let client_ns = c.lab.lan_client().ns().name().to_string();
    let prober = Prober::start(
        &client_ns,
        SocketAddr::new(IpAddr::V4(KEEPALIVED_VIP), 80),
        PROBE_INTERVAL,
    )?;
    let (mut gaps, mut takeovers, mut failed) = (Vec::new(), Vec::new(), 0);
    for trial in 0..opts.trials {
        // The keepalived killed in the last trial restarts with the highest priority and
        // preempts the backup that took over: the master is the one still serving once that
        // has settled, not merely the first VIP holder seen.
        let deadline = Instant::now() + Duration::from_secs(20);
        let owner = loop {
            if let Some(m) = keepalived_master(c)? {
                let name = c.lab.node(m).name().to_string();
                let served = prober
                    .wait_success(Instant::now(), Duration::from_secs(2), |n| n == name)
                    .is_some();
                if served && keepalived_master(c)? == Some(m) {
                    break m;
                }
            }
            if Instant::now() > deadline {
                bail!("keepalived trial {trial}: no single master serving the VIP within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let owner_name = c.lab.node(owner).name().to_string();
        std::thread::sleep(Duration::from_millis(200));
        prober.clear();
        std::thread::sleep(Duration::from_millis(50));
        let k = ks[owner - 1]
            .as_ref()
            .ok_or_else(|| anyhow!("no keepalived on node {owner}"))?;
        let fault_at = Instant::now();
        match opts.fault {
            Fault::Kill => {
                // The VRRP child holds the instance; the parent (run with -R) does not respawn
                // it. By PID from its pidfile only.
                let text = std::fs::read_to_string(k.vrrp_pidfile())
                    .with_context(|| format!("reading {}", k.vrrp_pidfile().display()))?;
                let child: i32 = text.trim().parse().context("VRRP child pid")?;
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(child),
                    nix::sys::signal::Signal::SIGKILL,
                )?;
            }
            Fault::LinkDown => {
                let h = c.lab.node(owner);
                h.ns()
                    .ip(["link", "set", h.iface(), "down"])
                    .map_err(|e| anyhow!("{e}"))?;
            }
        }
        let got = prober.wait_success(fault_at, Duration::from_secs(10), |n| n != owner_name);
        std::thread::sleep(Duration::from_millis(50));
        match got.and_then(|_| measure(&prober.samples(), fault_at, &owner_name)) {
            Some((gap, takeover)) => {
                eprintln!(
                    "keepalived trial {trial}: owner {owner_name}, gap {gap:?}, takeover {takeover:?}"
                );
                gaps.push(gap);
                takeovers.push(takeover);
            }
            None => {
                eprintln!("keepalived trial {trial}: owner {owner_name}: no takeover in 10 s");
                failed += 1;
            }
        }
        // Heal: restart that node's keepalived (a SIGKILLed child leaves its VIP behind, so
        // remove it first) or bring the link back; it preempts the VIP back as highest priority.
        let h = c.lab.node(owner);
        match opts.fault {
            Fault::Kill => {
                ks[owner - 1] = None;
                let _ = h.ns().ip([
                    "addr",
                    "del",
                    &format!("{KEEPALIVED_VIP}/24"),
                    "dev",
                    h.iface(),
                ]);
                ks[owner - 1] = Some(start_keepalived(c, owner)?);
            }
            Fault::LinkDown => {
                h.ns()
                    .ip(["link", "set", h.iface(), "up"])
                    .map_err(|e| anyhow!("{e}"))?;
            }
        }
        std::thread::sleep(Duration::from_millis(700));
    }
    for k in ks.iter().flatten() {
        let _ = k.process().terminate();
    }
    Ok(SystemResult {
        gap: Series::from(&gaps, failed),
        takeover: Series::from(&takeovers, failed),
    })
}

/// RTTs (µs) from Habets arping output (`… time=123.456 usec` / `msec`).
pub fn arping_rtts_us(out: &str) -> Vec<f64> {
    out.lines()
        .filter_map(|l| {
            let rest = l.split("time=").nth(1)?;
            let mut it = rest.split_whitespace();
            let v: f64 = it.next()?.parse().ok()?;
            match it.next()? {
                "usec" => Some(v),
                "msec" => Some(v * 1000.0),
                "sec" => Some(v * 1e6),
                _ => None,
            }
        })
        .collect()
}

fn arp_series(c: &Cluster, target: Ipv4Addr, rounds: u32) -> anyhow::Result<Vec<f64>> {
    crate::lab::topology::ensure_lab_addr(IpAddr::V4(target)).map_err(|e| anyhow!("{e}"))?;
    let client = c.lab.lan_client();
    let out = client
        .ns()
        .exec_timeout(
            [
                "arping",
                "-c",
                &rounds.to_string(),
                "-W",
                "0.01",
                "-i",
                client.iface(),
                &target.to_string(),
            ],
            Duration::from_secs(60),
        )
        .map_err(|e| anyhow!("{e}"))?;
    let rtts = arping_rtts_us(&out.stdout);
    if rtts.is_empty() {
        bail!("arping {target}: no replies: {} {}", out.stdout, out.stderr);
    }
    Ok(rtts)
}

fn arp_latency(c: &mut Cluster, report: &mut Report) -> anyhow::Result<()> {
    let ip = create_v4_service(c, "arp-latency", Duration::from_secs(20))?;
    let IpAddr::V4(vip) = ip else {
        bail!("expected an IPv4 address, got {ip}");
    };
    let owner = c.wait_single_announcer(ip, None, Duration::from_secs(20))?;
    let own = c.lab.node(owner).v4();
    report.arp_speaker_responder = match c.kernel_responder_interfaces(owner) {
        Some(i) if !i.is_empty() => "eBPF".into(),
        _ => "socket".into(),
    };
    let p = |v: &[f64], q: f64| {
        let d: Vec<Duration> = v
            .iter()
            .map(|us| Duration::from_nanos((us * 1000.0) as u64))
            .collect();
        percentile(&d, q).map(|d| d.as_secs_f64() * 1e6)
    };
    // Interleave rounds so drift in machine load hits both equally.
    let (mut sp, mut kn) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        sp.extend(arp_series(c, vip, 50)?);
        kn.extend(arp_series(c, own, 50)?);
    }
    // The same owner answering from userspace: restarted with the socket responder, and back
    // in charge of the address once the others see it alive again.
    c.start_speaker_with(owner, &["--l2-responder", "socket"])?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(c.announces(owner, ip)
        && c.kernel_responder_interfaces(owner)
            .is_some_and(|i| i.is_empty()))
    {
        if Instant::now() > deadline {
            bail!("node {owner} did not announce {ip} again after restarting its speaker");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut so = Vec::new();
    for _ in 0..4 {
        so.extend(arp_series(c, vip, 50)?);
        kn.extend(arp_series(c, own, 50)?);
    }
    report.arp_speaker_p50_us = p(&sp, 50.0);
    report.arp_speaker_p99_us = p(&sp, 99.0);
    report.arp_socket_p50_us = p(&so, 50.0);
    report.arp_socket_p99_us = p(&so, 99.0);
    report.arp_kernel_p50_us = p(&kn, 50.0);
    report.arp_kernel_p99_us = p(&kn, 99.0);
    Ok(())
}

const RSS_IPS: usize = 1000;
const RSS_POOL: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata:
  name: big-pool
  namespace: ferrolb-system
  labels:
    announce: l2
spec:
  addresses:
    - 10.200.12.0/22
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata:
  name: big
  namespace: ferrolb-system
spec:
  ipAddressPoolSelectors:
    - matchLabels:
        announce: l2
"#;

fn rss_1000(report: &mut Report) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Api, PostParams};
    let mut ranges = default_service_ranges();
    ranges.push("10.200.12.0/22".parse()?);
    let c = Cluster::start(ClusterOptions {
        service_ranges: ranges,
        ..ClusterOptions::default()
    })?;
    c.apply_yaml(RSS_POOL)?;
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    for batch in 0..RSS_IPS / 100 {
        let api = api.clone();
        c.run(async move {
            let creates = (0..100).map(|j| {
                let api = api.clone();
                async move {
                    let name = format!("rss-{}", batch * 100 + j);
                    let svc: Service = serde_json::from_value(serde_json::json!({
                        "metadata": {"name": name, "namespace": "default"},
                        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]}
                    }))?;
                    api.create(&PostParams::default(), &svc).await?;
                    Ok::<(), anyhow::Error>(())
                }
            });
            futures::future::try_join_all(creates).await
        })??;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let total: usize = (1..=c.lab.nodes().len())
            .map(|i| {
                c.get_json(c.speaker_http(i), "/api/v1/status")
                    .ok()
                    .and_then(|s| s["announcements"].as_array().map(Vec::len))
                    .unwrap_or(0)
            })
            .sum();
        if total >= RSS_IPS {
            report.rss_ips = total;
            break;
        }
        if Instant::now() > deadline {
            bail!("only {total} of {RSS_IPS} addresses announced after 120 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the gratuitous announcements of the burst (up to 5 s after gain) happen: they are
    // part of the peak.
    std::thread::sleep(Duration::from_secs(6));
    report.rss_peak_kib = (1..=c.lab.nodes().len())
        .filter_map(|i| c.speaker(i))
        .filter_map(|p| u32::try_from(p.pid()).ok().and_then(peak_rss_kib))
        .max();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arping_rtts() {
        let out = "ARPING 10.200.0.200\n60 bytes from 02:00:00:00:00:01 (10.200.0.200): index=0 time=85.123 usec\n60 bytes from 02:00:00:00:00:01 (10.200.0.200): index=1 time=1.5 msec\n";
        assert_eq!(arping_rtts_us(out), vec![85.123, 1500.0]);
    }
}
