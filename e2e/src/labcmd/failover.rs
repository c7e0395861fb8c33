//! The failover demo: SIGKILL the speaker that owns an L2 address, probe from the LAN client
//! every 10 ms, report the outage a client saw and the new owner, then restart the speaker.

use super::observe::short;
use super::render::Ui;
use crate::bench::prober::{Prober, measure};
use crate::cluster::Cluster;
use anyhow::{Context, anyhow};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Probe interval (the resolution of the measurement).
const PROBE_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailoverResult {
    pub service: String,
    pub ip: IpAddr,
    /// Node whose speaker was killed.
    pub old_owner: String,
    /// Node that announces the address after the kill (its speaker's status API).
    pub new_owner: String,
    /// Last successful probe before the kill → first successful probe after it.
    pub outage_ms: f64,
    /// Kill → first probe answered by another node.
    pub takeover_ms: f64,
    pub probe_interval_ms: u64,
    /// The killed speaker was started again and its status API answers.
    pub restarted: bool,
}

/// Runs the demo on `ip` of `service`.
pub fn run(c: &mut Cluster, ui: &Ui, service: &str, ip: IpAddr) -> anyhow::Result<FailoverResult> {
    let owner = ui.step(
        &format!("finding the node that owns {ip} ({service})"),
        || {
            c.wait_single_announcer(ip, None, Duration::from_secs(10))
                .ok()
                .ok_or_else(|| anyhow!("no single speaker announces {ip}"))
        },
    )?;
    let owner_name = c.lab.node(owner).name().to_string();
    let prober = Prober::start(
        c.lab.lan_client().ns().name(),
        SocketAddr::new(ip, 80),
        PROBE_INTERVAL,
    )
    .context("starting the prober in the LAN client")?;
    ui.step(
        &format!(
            "probing http://{ip}/ every {} ms from the LAN client",
            PROBE_INTERVAL.as_millis()
        ),
        || {
            prober
                .wait_success(Instant::now(), Duration::from_secs(10), |n| n == owner_name)
                .map(|_| ())
                .ok_or_else(|| anyhow!("{} does not answer before the kill", short(c, &owner_name)))
        },
    )?;
    // A little history before the fault, so the last success before it is a real sample.
    std::thread::sleep(Duration::from_millis(200));
    let speaker = c
        .speaker(owner)
        .ok_or_else(|| anyhow!("node{owner} has no speaker"))?;
    let pid = speaker.pid();
    let fault_at = Instant::now();
    speaker.kill().context("SIGKILL of the owning speaker")?;
    ui.line(format!(
        "  kill -9 {pid}: the speaker of {} (owner of {ip})",
        short(c, &owner_name)
    ));
    let taken = ui.step("waiting for another node to answer", || {
        prober
            .wait_success(fault_at, Duration::from_secs(5), |n| n != owner_name)
            .ok_or_else(|| anyhow!("no other node answered within 5 s"))
    })?;
    // A few samples after the takeover, for the measurement's "first success after".
    std::thread::sleep(Duration::from_millis(50));
    let samples = prober.samples();
    drop(prober);
    let (gap, takeover) =
        measure(&samples, fault_at, &owner_name).ok_or_else(|| anyhow!("too few samples"))?;
    let new_owner = c
        .wait_single_announcer(ip, Some(owner), Duration::from_secs(5))
        .ok()
        .map(|i| short(c, c.lab.node(i).name()))
        .unwrap_or_else(|| format!("{} (no speaker reports it)", taken.node.unwrap_or_default()));
    ui.line(format!(
        "  {} client outage {:.1} ms; takeover by {new_owner} {:.1} ms after the kill",
        ui.green("✓"),
        gap.as_secs_f64() * 1e3,
        takeover.as_secs_f64() * 1e3
    ));
    let restarted = ui
        .step(
            &format!("restarting the speaker of {}", short(c, &owner_name)),
            || {
                c.start_speaker(owner)?;
                let addr = c.speaker_http(owner);
                crate::lab::wait_until(
                    "the restarted speaker's status API",
                    Duration::from_secs(15),
                    || {
                        c.get_json(addr, "/api/v1/status")
                            .is_ok_and(|s| s["ready"].as_bool() == Some(true))
                    },
                )
                .map_err(|e| anyhow!("{e}"))
            },
        )
        .is_ok();
    Ok(FailoverResult {
        service: service.to_string(),
        ip,
        old_owner: short(c, &owner_name),
        new_owner,
        outage_ms: gap.as_secs_f64() * 1e3,
        takeover_ms: takeover.as_secs_f64() * 1e3,
        probe_interval_ms: PROBE_INTERVAL.as_millis() as u64,
        restarted,
    })
}
