//! Teardown of lab runs: by their owner (Drop), by the SIGINT/SIGTERM handler, and by a later
//! run for a run whose process died without unwinding (from the state file the run
//! registry mirrors to `/tmp/ferrolb-lab-<prefix>/lab.state`).
//!
//! PIDs are always paired with their start time, so a recycled PID is never killed.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::child::{ProcShared, proc_pgid, proc_starttime};
use crate::registry::registry;
pub use crate::registry::{STATE_FILE, is_registered, live_pids};
use crate::{LabError, Result, netns};

/// Grace between SIGTERM and SIGKILL during teardown.
pub const TEARDOWN_GRACE: Duration = Duration::from_secs(2);

/// Stops every process of the run (SIGTERM to all, grace, SIGKILL), kills any
/// other process still inside its namespaces (by PID, from `ip netns pids`),
/// deletes the namespaces and the state file. The log dir is removed unless
/// `keep_logs`. Idempotent: a second call finds nothing registered.
pub fn teardown_run(prefix: &str, keep_logs: bool) -> Result<()> {
    let Some(entry) = registry().remove(prefix) else {
        return Ok(());
    };
    tracing::debug!(%prefix, "tearing down lab");
    let procs: Vec<Arc<ProcShared>> = entry.procs.iter().filter_map(Weak::upgrade).collect();
    // Signal all first, then wait once: teardown time is one grace, not one per process.
    for p in &procs {
        p.begin_stop();
    }
    let deadline = Instant::now() + TEARDOWN_GRACE;
    for p in &procs {
        p.finish_stop(deadline);
    }
    let mut first_err = None;
    for ns in entry.namespaces.iter().rev() {
        if let Err(e) = kill_netns_pids(ns).and_then(|_| netns::delete(ns)) {
            tracing::warn!(%ns, error = %e, "namespace cleanup failed");
            first_err.get_or_insert(e);
        }
    }
    let _ = std::fs::remove_file(entry.log_dir.join(STATE_FILE));
    if keep_logs {
        tracing::info!(logs = %entry.log_dir.display(), "lab logs kept");
    } else {
        let _ = std::fs::remove_dir_all(&entry.log_dir);
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Tears down every run of this process (used by the signal handler).
pub fn teardown_all(keep_logs: bool) {
    let prefixes: Vec<String> = registry().keys().cloned().collect();
    for p in prefixes {
        if let Err(e) = teardown_run(&p, keep_logs) {
            eprintln!("ferrolb-lab: teardown of {p} failed: {e}");
        }
    }
}

/// SIGKILLs every process that still lives in namespace `ns`. These are
/// processes started in our namespace behind the library's back (e.g. a test
/// shelling out to `ip netns exec … &`); they are found and killed by PID.
fn kill_netns_pids(ns: &str) -> Result<()> {
    if !netns::exists(ns) {
        return Ok(());
    }
    for _ in 0..3 {
        let pids = netns::pids(ns)?;
        if pids.is_empty() {
            return Ok(());
        }
        for pid in pids {
            tracing::debug!(%ns, pid, "killing leftover process in namespace");
            let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Deletes every namespace named `<prefix>-…` (after killing the processes in
/// it). For re-using a fixed prefix after a crashed run.
pub fn remove_namespaces_with_prefix(prefix: &str) -> Result<Vec<String>> {
    let want = format!("{prefix}-");
    let mut removed = Vec::new();
    for ns in netns::list()? {
        if ns.starts_with(&want) {
            kill_netns_pids(&ns)?;
            netns::delete(&ns)?;
            removed.push(ns);
        }
    }
    Ok(removed)
}

fn alive_as(pid: i32, starttime: u64) -> bool {
    pid > 0 && proc_starttime(pid).is_some_and(|t| t == starttime)
}

/// Cleans up runs whose owning process is dead (found through their state
/// files): kills their recorded processes (PID + start time must match), kills
/// what is left in their namespaces and deletes them. Returns the prefixes cleaned.
pub fn reap_stale() -> Result<Vec<String>> {
    let root = Path::new(crate::LOG_ROOT);
    let mut cleaned = Vec::new();
    let Ok(dir) = std::fs::read_dir(root) else {
        return Ok(cleaned);
    };
    for ent in dir.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        let Some(prefix) = name.strip_prefix(crate::LOG_DIR_PREFIX) else {
            continue;
        };
        let state_path = ent.path().join(STATE_FILE);
        let Ok(state) = std::fs::read_to_string(&state_path) else {
            continue;
        };
        let mut owner_alive = false;
        let mut namespaces = Vec::new();
        let mut procs = Vec::new();
        for line in state.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["owner", pid, st] => {
                    if let (Ok(pid), Ok(st)) = (pid.parse::<i32>(), st.parse::<u64>()) {
                        owner_alive = alive_as(pid, st);
                    }
                }
                ["ns", ns] => namespaces.push(ns.to_string()),
                ["proc", pid, st] => {
                    if let (Ok(pid), Ok(st)) = (pid.parse::<i32>(), st.parse::<u64>()) {
                        procs.push((pid, st));
                    }
                }
                _ => {}
            }
        }
        if owner_alive || is_registered(prefix) {
            continue;
        }
        tracing::info!(%prefix, "cleaning up stale lab run");
        for (pid, st) in procs {
            if alive_as(pid, st) {
                if proc_pgid(pid) == Some(pid) {
                    let _ = nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
                }
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        for ns in &namespaces {
            kill_netns_pids(ns)?;
            netns::delete(ns)?;
        }
        remove_namespaces_with_prefix(prefix)?;
        let _ = std::fs::remove_file(&state_path);
        cleaned.push(prefix.to_string());
    }
    Ok(cleaned)
}

static SIGNAL_PIPE_W: OnceLock<OwnedFd> = OnceLock::new();
static SIGNALS_SEEN: AtomicUsize = AtomicUsize::new(0);

/// Installs (once per process) a SIGINT/SIGTERM/SIGHUP handler that tears down
/// every registered lab and then exits with 128+signal. A second signal during
/// teardown exits at once.
///
/// Uses signal-hook-registry, the registry tokio uses too, so a tokio program
/// can still `tokio::signal::ctrl_c()`; it simply also gets the lab cleanup.
/// Programs that want to run their own shutdown first should not call this and
/// call [`teardown_all`] themselves.
#[allow(unsafe_code)]
pub fn install_signal_handler() -> Result<()> {
    if SIGNAL_PIPE_W.get().is_some() {
        return Ok(());
    }
    let (r, w) = nix::unistd::pipe().map_err(|e| LabError::io("creating signal pipe", e.into()))?;
    let wfd = w.as_raw_fd();
    if SIGNAL_PIPE_W.set(w).is_err() {
        // Another thread won the race; its handler is in place.
        return Ok(());
    }
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let action = move || {
            // Only async-signal-safe calls here: an atomic and write(2)/_exit(2).
            if SIGNALS_SEEN.fetch_add(1, Ordering::SeqCst) > 0 {
                // SAFETY: _exit(2) is async-signal-safe and takes any status.
                unsafe { libc::_exit(128 + sig) };
            }
            let b = sig as u8;
            // SAFETY: write(2) is async-signal-safe; the buffer is one live byte on this
            // stack and `wfd` stays open for the life of the process (SIGNAL_PIPE_W).
            unsafe { libc::write(wfd, (&b as *const u8).cast(), 1) };
        };
        // SAFETY: the action only uses async-signal-safe operations (see above).
        unsafe { signal_hook_registry::register(sig, action) }
            .map_err(|e| LabError::io("installing signal handler", e))?;
    }
    std::thread::Builder::new()
        .name("ferrolb-lab-signals".into())
        .spawn(move || {
            let mut f = std::fs::File::from(r);
            let mut b = [0u8; 1];
            use std::io::Read;
            if f.read_exact(&mut b).is_ok() {
                let sig = i32::from(b[0]);
                eprintln!(
                    "ferrolb-lab: caught signal {sig}, tearing down lab namespaces and processes"
                );
                teardown_all(true);
                std::process::exit(128 + sig);
            }
        })
        .map_err(|e| LabError::io("spawning signal thread", e))?;
    Ok(())
}
