//! The end of a run: the summary for people (all green, or what failed and where the logs
//! are) and the machine-readable result (`--json`).

use super::failover::FailoverResult;
use super::observe::{Session, Snapshot};
use super::render::Ui;
use super::scenario::{Mode, Scenario};
use std::path::{Path, PathBuf};

/// The result of a run (`--json` prints it on stdout).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Namespaces of this run are named `<prefix>-<role>`.
    pub prefix: String,
    pub scenario: Scenario,
    /// The image the controller and speakers ran from (`--from-image`): its tag and
    /// manifest digest; absent when they were the workspace's binaries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How ferrolb was installed: `direct` or `helm`.
    pub install: String,
    /// Every check passed.
    pub ok: bool,
    /// What failed, one sentence each.
    pub failures: Vec<String>,
    /// The Services once settled (before the failover demo).
    pub services: Vec<super::observe::Row>,
    /// The Services after the failover demo and the killed speaker's restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services_after_failover: Option<Vec<super::observe::Row>>,
    /// BGP sessions as the router sees them.
    pub bgp_sessions: Vec<Session>,
    pub bgp_sessions_established: usize,
    pub failover: Option<FailoverResult>,
    /// `--scenario metallb`: addresses before and after the swap, the clients' outage per
    /// address and the configuration groups each component reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metallb: Option<super::metallb::SwapResult>,
    pub log_dir: PathBuf,
    /// Whether the log dir was kept (failure, `--keep` or FERROLB_LAB_KEEP_LOGS).
    pub logs_kept: bool,
    /// Log file of each process, by `<role>-<name>`.
    pub logs: Vec<PathBuf>,
    /// After teardown: namespaces of this run still present (must be empty).
    pub leftover_namespaces: Vec<String>,
    /// After teardown: processes of this run still alive (must be empty).
    pub leftover_pids: Vec<i32>,
    pub duration_secs: f64,
}

/// The failures of a final snapshot and failover demo.
pub fn failures(
    snap: &Snapshot,
    after: Option<&Snapshot>,
    scenario: Scenario,
    failover: &Option<anyhow::Result<FailoverResult>>,
) -> Vec<String> {
    let rows = snap.rows.iter().map(|r| ("", r));
    let after_rows = after
        .into_iter()
        .flat_map(|a| a.rows.iter().map(|r| ("after the failover: ", r)));
    let mut f: Vec<String> = rows
        .chain(after_rows)
        .filter(|(_, r)| !r.ok)
        .map(|(when, r)| {
            format!(
                "{when}{}/{} ({}): {}",
                r.namespace,
                r.name,
                r.mode.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
                r.problem.clone().unwrap_or_default()
            )
        })
        .collect();
    if scenario.bgp() {
        let down: Vec<_> = snap.sessions.iter().filter(|s| !s.established).collect();
        if snap.sessions.is_empty() || !down.is_empty() {
            f.push(format!(
                "BGP: sessions not established at the router: {}",
                down.iter()
                    .map(|s| format!("{} {}", s.name, s.info))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    match failover {
        Some(Err(e)) => f.push(format!("failover demo: {e:#}")),
        Some(Ok(r)) if !r.restarted => f.push(format!(
            "failover demo: the speaker of {} did not come back",
            r.old_owner
        )),
        _ => {}
    }
    f
}

/// Log files in `dir`, sorted.
pub fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Prints the summary.
pub fn print_summary(ui: &Ui, r: &Report) {
    ui.line("");
    ui.line(ui.bold("Summary"));
    let rows = &r.services;
    let l2 = rows
        .iter()
        .filter(|x| x.mode == Some(Mode::L2))
        .collect::<Vec<_>>();
    let bgp = rows
        .iter()
        .filter(|x| x.mode == Some(Mode::Bgp))
        .collect::<Vec<_>>();
    let mark = |ok: bool| if ok { ui.green("✓") } else { ui.red("✗") };
    if let Some(image) = &r.image {
        ui.line(format!("  controller and speakers from the image {image}"));
    }
    if !l2.is_empty() {
        let n = l2.iter().filter(|x| x.ok).count();
        ui.line(format!(
            "  {} L2: {n}/{} Services reachable from the LAN client as expected",
            mark(n == l2.len()),
            l2.len()
        ));
    }
    if !bgp.is_empty() {
        let n = bgp.iter().filter(|x| x.ok).count();
        ui.line(format!(
            "  {} BGP: {n}/{} Services reachable from the upstream client; {}/{} sessions established at the router",
            mark(n == bgp.len()),
            bgp.len(),
            r.bgp_sessions_established,
            r.bgp_sessions.len()
        ));
    }
    for u in rows.iter().filter(|x| x.expect == "unservable") {
        ui.line(format!(
            "  {} {} is not served, and says why: {}",
            mark(u.ok),
            u.name,
            u.reason.as_deref().unwrap_or("(no AllocationFailed event)")
        ));
    }
    if let Some(f) = &r.failover {
        ui.line(format!(
            "  {} failover of {} ({}): outage {:.1} ms, {} → {} in {:.1} ms",
            mark(f.restarted),
            f.ip,
            f.service,
            f.outage_ms,
            f.old_owner,
            f.new_owner,
            f.takeover_ms
        ));
    }
    if r.failures.is_empty() {
        ui.line(format!("  {}", ui.green("all green")));
    } else {
        ui.line(format!("  {}", ui.red("failed:")));
        for f in &r.failures {
            ui.line(format!("    - {f}"));
        }
    }
    if r.logs_kept {
        ui.line(format!("  logs (kept): {}", r.log_dir.display()));
        for l in &r.logs {
            ui.line(format!("    {}", l.display()));
        }
    } else {
        ui.line("  logs removed with the lab (set FERROLB_LAB_KEEP_LOGS=1 to keep them)");
    }
}
