//! Registry of everything a lab run created: namespaces and processes, keyed by the run's
//! prefix. It lives in memory (for Drop and for the SIGINT/SIGTERM handler) and is mirrored to
//! `/tmp/ferrolb-lab-<prefix>/lab.state`, so that a later run can clean up after a run whose
//! process died without unwinding (SIGKILL, abort):
//!
//! ```text
//! owner <pid> <starttime>
//! ns <namespace>
//! proc <pid> <starttime>
//! ```
//!
//! PIDs are always paired with their start time, so a recycled PID is never killed. Teardown
//! is in [`crate::cleanup`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::child::{ProcShared, proc_starttime};
use crate::{LabError, Result, log_dir_for};

/// Name of the state file inside the run's log dir.
pub const STATE_FILE: &str = "lab.state";
/// What one run created.
pub(crate) struct RunEntry {
    pub(crate) log_dir: PathBuf,
    pub(crate) namespaces: Vec<String>,
    pub(crate) procs: Vec<Weak<ProcShared>>,
}

static REGISTRY: Mutex<BTreeMap<String, RunEntry>> = Mutex::new(BTreeMap::new());

pub(crate) fn registry() -> MutexGuard<'static, BTreeMap<String, RunEntry>> {
    // Teardown must work even after a panic poisoned the lock.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn write_state(entry: &RunEntry) {
    let me = std::process::id() as i32;
    let mut s = format!("owner {me} {}\n", proc_starttime(me).unwrap_or(0));
    for ns in &entry.namespaces {
        s.push_str(&format!("ns {ns}\n"));
    }
    for p in entry.procs.iter().filter_map(Weak::upgrade) {
        if !p.is_reaped() {
            s.push_str(&format!("proc {} {}\n", p.pid, p.starttime.unwrap_or(0)));
        }
    }
    let path = entry.log_dir.join(STATE_FILE);
    let tmp = entry.log_dir.join(format!("{STATE_FILE}.tmp"));
    // Write-then-rename so a crash never leaves a half-written state file.
    let res = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(s.as_bytes()))
        .and_then(|_| std::fs::rename(&tmp, &path));
    if let Err(e) = res {
        tracing::warn!(path = %path.display(), error = %e, "cannot write lab state file");
    }
}

/// Registers a new run and creates its log dir (mode 0755 so daemons that drop
/// privileges, such as FRR, can reach their subdirectories).
pub(crate) fn register_run(prefix: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let log_dir = log_dir_for(prefix);
    std::fs::create_dir_all(&log_dir)
        .map_err(|e| LabError::io(format!("creating {}", log_dir.display()), e))?;
    std::fs::set_permissions(&log_dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| LabError::io(format!("chmod {}", log_dir.display()), e))?;
    let entry = RunEntry {
        log_dir: log_dir.clone(),
        namespaces: Vec::new(),
        procs: Vec::new(),
    };
    write_state(&entry);
    registry().insert(prefix.to_string(), entry);
    Ok(log_dir)
}

/// Records a namespace (call *before* creating it, so a crash in between still
/// gets it cleaned).
/// Fails with [`LabError::TornDown`] if the run is gone (torn down, e.g. by the
/// signal handler while the builder was still working), so nothing new is
/// created that no one would clean up.
pub(crate) fn register_ns(prefix: &str, ns: &str) -> Result<()> {
    let mut reg = registry();
    let e = reg
        .get_mut(prefix)
        .ok_or_else(|| LabError::TornDown(prefix.to_string()))?;
    if !e.namespaces.iter().any(|n| n == ns) {
        e.namespaces.push(ns.to_string());
    }
    write_state(e);
    Ok(())
}

/// Like [`register_ns`]; the caller must stop the process if this fails.
pub(crate) fn register_proc(prefix: &str, p: &Arc<ProcShared>) -> Result<()> {
    let mut reg = registry();
    let e = reg
        .get_mut(prefix)
        .ok_or_else(|| LabError::TornDown(prefix.to_string()))?;
    e.procs
        .retain(|w| w.upgrade().is_some_and(|p| !p.is_reaped()));
    e.procs.push(Arc::downgrade(p));
    write_state(e);
    Ok(())
}

/// PIDs of the run's processes that are still alive (not yet reaped).
pub fn live_pids(prefix: &str) -> Vec<i32> {
    registry()
        .get(prefix)
        .map(|e| {
            e.procs
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|p| !p.is_reaped())
                .map(|p| p.pid)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a run with this prefix is registered in this process.
pub fn is_registered(prefix: &str) -> bool {
    registry().contains_key(prefix)
}
