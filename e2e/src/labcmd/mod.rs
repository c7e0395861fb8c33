//! `ferrolb-e2e lab`: ferrolb end to end in network namespaces, shown as it happens.
//!
//! Builds the lab (3 nodes, a LAN client, a router running BIRD, an upstream client), applies
//! the CRDs, the examples and a handful of Services, shows a live table of addresses,
//! announcing nodes and client reachability, runs a failover demo, prints a summary and tears
//! everything down. Modules: [`scenario`] (what is deployed and expected), [`observe`] (one
//! look at the lab), [`render`] (terminal output), [`failover`] (the demo), [`metallb`] (the
//! swap from MetalLB), [`report`] (summary and JSON).

pub mod failover;
pub mod metallb;
pub mod observe;
pub mod render;
pub mod report;
pub mod scenario;

use crate::bench::controller::sibling_binary;
use crate::cluster::{
    CONTROLLER_HTTP_PORT, Cluster, ClusterOptions, Components, EXAMPLE_BGP_PASSWORD, Install,
    SPEAKER_HTTP_PORT,
};
use crate::image::UnpackedImage;
use crate::lab;
use anyhow::{anyhow, bail};
use observe::{Clients, Snapshot};
use render::Ui;
use report::Report;
pub use scenario::Scenario;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Options of `ferrolb-e2e lab`.
#[derive(clap::Args, Clone, Debug)]
pub struct LabArgs {
    /// Which Services to deploy: layer 2 (reached from the LAN client, with the failover
    /// demo), BGP (reached from the upstream client through the router), or both.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    pub scenario: Scenario,
    /// Leave the lab running at the end and print how to use kubectl and the status APIs
    /// against it; Ctrl-C tears it down.
    #[arg(long)]
    pub keep: bool,
    /// Non-interactive: no live redraw, plain progress lines.
    #[arg(long)]
    pub once: bool,
    /// Print the result as JSON on stdout (human output goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the Services to be served before reporting what is missing.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Run the controller and the speakers from this OCI image archive (as written by
    /// scripts/build-image.sh) instead of the workspace's binaries: the archive is unpacked
    /// and its /ferrolb-controller (as the image's user) and /ferrolb-speaker are started.
    #[arg(long, value_name = "OCI_ARCHIVE")]
    pub from_image: Option<std::path::PathBuf>,
    /// How ferrolb is installed into the lab's API server: `direct` (the lab applies the CRDs
    /// and the membership Secret and starts the controller and speakers with its own
    /// arguments) or `helm` (`helm install` of the chart, then the controller and speakers run
    /// with the command, arguments and environment of the chart's Deployment and DaemonSet).
    #[arg(long, value_enum, default_value_t = InstallMethod::Direct)]
    pub install: InstallMethod,
    /// The chart `--install helm` installs.
    #[arg(long, value_name = "DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/helm/ferrolb"))]
    pub chart: std::path::PathBuf,
}

/// `--install`: how the lab installs ferrolb.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallMethod {
    Direct,
    Helm,
}

/// Fails with what to do when a binary the lab runs is missing.
fn preflight(args: &LabArgs) -> anyhow::Result<()> {
    lab::require_root().map_err(|e| anyhow!("{e}"))?;
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let from_workspace = if args.from_image.is_some() {
        &[][..]
    } else {
        &["ferrolb-controller", "ferrolb-speaker"][..]
    };
    for &bin in from_workspace {
        let p = sibling_binary(bin);
        if !p.is_file() && !lab::root::have_tool(bin) {
            let release = if dir.contains("release") {
                " --release"
            } else {
                ""
            };
            bail!(
                "`{bin}` not found next to {} (in {dir}) nor on PATH: the lab runs the real \
                 binaries; build them first with `cargo build{release} --workspace`",
                exe.display()
            );
        }
    }
    let mut tools = vec!["ip"];
    if args.scenario.bgp() {
        tools.extend(["bird", "birdc"]);
    }
    for t in tools {
        lab::root::require_tool(t).map_err(|e| anyhow!("{e}"))?;
    }
    Ok(())
}

/// Observes until every row is green or `timeout`; returns the last snapshot.
fn watch(
    c: &Cluster,
    ui: &Ui,
    clients: &Clients,
    specs: &[scenario::SvcSpec],
    timeout: Duration,
) -> anyhow::Result<Snapshot> {
    let t0 = Instant::now();
    let mut last: Option<Snapshot> = None;
    loop {
        let snap = observe::snapshot(c, clients, specs)?;
        let status = if !snap.l2_settled() {
            "waiting for addresses, announcements and clients"
        } else {
            "waiting for BGP sessions and routes"
        };
        if last.as_ref() != Some(&snap) || ui.live {
            ui.show(&snap, status, t0.elapsed());
        }
        let done = snap.all_ok() || t0.elapsed() > timeout;
        last = Some(snap);
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    ui.end_table();
    last.ok_or_else(|| anyhow!("no snapshot"))
}

/// Runs the lab; returns the process exit code (0: all green).
pub fn run(args: &LabArgs) -> anyhow::Result<i32> {
    let started = Instant::now();
    let ui = Ui::new(args.json, args.once);
    preflight(args)?;
    // Kept until the end of the run: dropping it removes the unpacked files.
    let image = match &args.from_image {
        Some(archive) => Some(ui.step(
            &format!("unpacking the image {}", archive.display()),
            || UnpackedImage::unpack(archive, &std::env::temp_dir()),
        )?),
        None => None,
    };
    let components = match &image {
        Some(img) => {
            ui.line(format!(
                "  image {} (manifest {}), user {:?}, {:.1} MB compressed; running {} and {}",
                img.reference,
                img.manifest_digest,
                img.config.user,
                img.compressed_layer_bytes as f64 / 1e6,
                img.path("/ferrolb-controller").display(),
                img.path("/ferrolb-speaker").display(),
            ));
            Components::Image {
                rootfs: img.rootfs(),
                controller_user: img.config.uid_gid()?,
            }
        }
        None => Components::Workspace,
    };
    // Swapping from MetalLB: ferrolb starts once MetalLB's state is in place.
    let swap = args.scenario == Scenario::Metallb;
    let opts = ClusterOptions {
        nodes: 3,
        controller: !swap,
        speakers: !swap,
        bird: args.scenario.bgp(),
        bird_password: Some(EXAMPLE_BGP_PASSWORD.to_string()),
        upstream_client: args.scenario.bgp(),
        components,
        install: match args.install {
            InstallMethod::Direct => Install::Direct,
            InstallMethod::Helm => Install::Helm {
                chart: args.chart.clone(),
            },
        },
        ..ClusterOptions::default()
    };
    if args.install == InstallMethod::Helm {
        ui.line(format!(
            "  installing with helm: {} (the controller and speakers run as its workloads say)",
            args.chart.display()
        ));
    }
    let what = if swap {
        "building the lab: 3 nodes, LAN client, router with BIRD, upstream client; API server (ferrolb not started yet)"
    } else if args.scenario.bgp() {
        "building the lab: 3 nodes, LAN client, router with BIRD, upstream client; API server, controller, speakers"
    } else {
        "building the lab: 3 nodes, LAN client, router; API server, controller, speakers"
    };
    let mut c = ui.step(what, || Cluster::start(opts))?;
    let prefix = c.lab.prefix().to_string();
    let log_dir = c.lab.log_dir().to_path_buf();
    ui.line(format!(
        "  namespaces {prefix}-*, logs in {}",
        log_dir.display()
    ));
    let specs = scenario::services(args.scenario);
    type Outcome = (
        Snapshot,
        Option<Snapshot>,
        Option<anyhow::Result<failover::FailoverResult>>,
        Option<metallb::SwapResult>,
    );
    let outcome = (|| -> anyhow::Result<Outcome> {
        if swap {
            let clients = Clients::new(&c)?;
            let timeout = Duration::from_secs(args.timeout);
            let (snap, result) = metallb::run(&mut c, &ui, &clients, timeout)?;
            return Ok((snap, None, None, Some(result)));
        }
        let applied = ui.step(
            "applying deploy/crds.yaml, the examples and the lab's Services",
            || scenario::apply(&c, args.scenario),
        )?;
        ui.line(format!("  {} objects applied", applied.len()));
        let clients = Clients::new(&c)?;
        ui.line("");
        let timeout = Duration::from_secs(args.timeout);
        let snap = watch(&c, &ui, &clients, &specs, timeout)?;
        if !ui.live {
            ui.line("");
            ui.print_table(&snap);
        }
        if !args.scenario.l2() {
            return Ok((snap, None, None, None));
        }
        ui.line("");
        ui.line(ui.bold("Failover demo"));
        let ip = snap
            .rows
            .iter()
            .find(|r| r.name == "web" && r.reachable)
            .and_then(|r| r.ips.iter().copied().find(IpAddr::is_ipv4));
        let fo = match ip {
            Some(ip) => failover::run(&mut c, &ui, "web", ip),
            None => Err(anyhow!("web has no reachable IPv4 address to fail over")),
        };
        if let Err(e) = &fo {
            ui.line(format!("  {} {e:#}", ui.red("✗")));
        }
        ui.line("");
        ui.line("After the failover (the restarted speaker takes its addresses back):");
        let after = watch(&c, &ui, &clients, &specs, timeout / 2)?;
        if !ui.live {
            ui.line("");
            ui.print_table(&after);
        }
        Ok((snap, Some(after), Some(fo), None))
    })();
    let (snap, after, fo, swapped) = match outcome {
        Ok(x) => x,
        Err(e) => {
            // Nothing to show: keep the logs and say where they are.
            ui.line(format!("{} {e:#}", ui.red("✗")));
            let logs = report::log_files(&log_dir);
            ui.line(format!("logs (kept): {}", log_dir.display()));
            for l in logs {
                ui.line(format!("  {}", l.display()));
            }
            // Tear down before the Cluster's drop, which would remove the logs.
            let _ = lab::cleanup::teardown_run(&prefix, true);
            drop(c);
            return Err(e);
        }
    };
    let mut failures = report::failures(&snap, after.as_ref(), args.scenario, &fo);
    failures.extend(swapped.iter().flat_map(|s| s.failures.iter().cloned()));
    let ok = failures.is_empty();
    let keep_logs = !ok || args.keep || std::env::var_os("FERROLB_LAB_KEEP_LOGS").is_some();
    let mut rep = Report {
        prefix: prefix.clone(),
        scenario: args.scenario,
        image: image
            .as_ref()
            .map(|i| format!("{} ({})", i.reference, i.manifest_digest)),
        install: match args.install {
            InstallMethod::Direct => "direct",
            InstallMethod::Helm => "helm",
        }
        .to_string(),
        ok,
        failures,
        bgp_sessions_established: snap.sessions.iter().filter(|s| s.established).count(),
        bgp_sessions: snap.sessions.clone(),
        services: snap.rows.clone(),
        services_after_failover: after.map(|a| a.rows),
        failover: fo.and_then(Result::ok),
        metallb: swapped,
        log_dir: log_dir.clone(),
        logs_kept: keep_logs,
        logs: report::log_files(&log_dir),
        leftover_namespaces: Vec::new(),
        leftover_pids: Vec::new(),
        duration_secs: 0.0,
    };
    if args.keep {
        report::print_summary(&ui, &rep);
        print_keep_instructions(&ui, &c);
        if args.json {
            rep.duration_secs = started.elapsed().as_secs_f64();
            println!("{}", serde_json::to_string_pretty(&rep)?);
        }
        // The lab library's SIGINT/SIGTERM handler tears every namespace and process down
        // and exits; until then the lab simply stays up.
        loop {
            std::thread::park();
        }
    }
    let pids = lab::cleanup::live_pids(&prefix);
    ui.step("tearing down (processes, namespaces)", || {
        lab::cleanup::teardown_run(&prefix, keep_logs).map_err(|e| anyhow!("{e}"))
    })?;
    drop(c);
    rep.leftover_namespaces = lab::netns::list()
        .map_err(|e| anyhow!("{e}"))?
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect();
    rep.leftover_pids = pids
        .into_iter()
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .collect();
    if !rep.leftover_namespaces.is_empty() || !rep.leftover_pids.is_empty() {
        rep.ok = false;
        rep.failures.push(format!(
            "left behind: namespaces {:?}, pids {:?}",
            rep.leftover_namespaces, rep.leftover_pids
        ));
    }
    drop(image);
    rep.duration_secs = started.elapsed().as_secs_f64();
    report::print_summary(&ui, &rep);
    ui.line(format!(
        "  nothing left behind: no {prefix}-* namespace, no process ({:.0} s in all)",
        rep.duration_secs
    ));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    }
    Ok(if rep.ok { 0 } else { 1 })
}

fn print_keep_instructions(ui: &Ui, c: &Cluster) {
    let cp = c.lab.control_plane().ns().name().to_string();
    // The pinned kubectl when installed (scripts/install-tools.sh), else whatever PATH has.
    let pinned = crate::tools::path(crate::tools::Tool::Kubectl);
    let kubectl = if pinned.is_file() {
        pinned.display().to_string()
    } else {
        "kubectl".to_string()
    };
    ui.line("");
    ui.line(ui.bold("The lab keeps running"));
    ui.line(format!(
        "  kubectl:  ip netns exec {cp} {kubectl} --kubeconfig {} get svc -A",
        c.kubeconfig.display()
    ));
    ui.line(format!(
        "            ip netns exec {cp} {kubectl} --kubeconfig {} get events",
        c.kubeconfig.display()
    ));
    ui.line(format!(
        "  status APIs (from a lab namespace, e.g. ip netns exec {cp} curl -s URL):"
    ));
    ui.line(format!(
        "    controller  http://{}:{CONTROLLER_HTTP_PORT}/api/v1/status",
        c.lab.control_plane().v4()
    ));
    for (i, n) in c.lab.nodes().iter().enumerate() {
        ui.line(format!(
            "    node{} speaker  http://{}:{SPEAKER_HTTP_PORT}/api/v1/status",
            i + 1,
            n.v4()
        ));
    }
    if let Some(b) = &c.bird {
        ui.line(format!(
            "  BIRD:     birdc -s {} show protocols",
            b.ctl_path().display()
        ));
    }
    ui.line(format!("  logs:     {}", c.lab.log_dir().display()));
    ui.line("Press Ctrl-C to tear everything down.");
}
