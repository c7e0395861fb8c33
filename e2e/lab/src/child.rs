//! A child process the lab started, shared between its handle and the registry so that a
//! teardown (or the signal handler) can stop and reap it while the handle lives elsewhere; and
//! the /proc readers that tell a live process from a recycled PID.

use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::{LabError, Result};

enum ProcState {
    Running(Child),
    Exited(ExitStatus),
}

/// State shared between a [`LabProcess`] handle and the cleanup registry, so that
/// a lab teardown (or the signal handler) can stop and reap processes whose
/// handles are still alive elsewhere.
pub(crate) struct ProcShared {
    pub(crate) label: String,
    pub(crate) pid: i32,
    pub(crate) starttime: Option<u64>,
    state: Mutex<ProcState>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not stop teardown, so ignore poisoning.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Process state letter from /proc/<pid>/stat ('R', 'S', 'Z', …), None if gone.
pub(crate) fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

/// Field `n` (1-based, as in proc(5)) of /proc/<pid>/stat.
fn stat_field(pid: i32, n: usize) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields after the comm start at field 3.
    rest.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
}

/// Start time (clock ticks since boot) of `pid`; with the PID it identifies a
/// process across PID reuse.
pub(crate) fn proc_starttime(pid: i32) -> Option<u64> {
    stat_field(pid, 22)
}

/// Process group id of `pid`.
pub(crate) fn proc_pgid(pid: i32) -> Option<i32> {
    stat_field(pid, 5).and_then(|v| i32::try_from(v).ok())
}

impl ProcShared {
    pub(crate) fn new(label: String, child: Child) -> Arc<Self> {
        let pid = child.id() as i32;
        Arc::new(ProcShared {
            label,
            pid,
            starttime: proc_starttime(pid),
            state: Mutex::new(ProcState::Running(child)),
        })
    }

    pub(crate) fn is_reaped(&self) -> bool {
        matches!(*lock(&self.state), ProcState::Exited(_))
    }

    pub(crate) fn signal(&self, sig: Signal) -> Result<()> {
        let st = lock(&self.state);
        match &*st {
            ProcState::Running(_) => {
                kill(Pid::from_raw(self.pid), sig).map_err(|e| LabError::Signal {
                    name: self.label.clone(),
                    pid: self.pid,
                    signal: sig.as_str().to_string(),
                    source: e,
                })
            }
            ProcState::Exited(_) => Err(LabError::NotRunning {
                name: self.label.clone(),
                pid: self.pid,
            }),
        }
    }

    /// Signals the whole process group (the child leads it) while the leader is unreaped.
    fn signal_group(&self, sig: Signal) {
        let st = lock(&self.state);
        if let ProcState::Running(_) = &*st {
            // ESRCH just means everybody is gone already.
            let _ = killpg(Pid::from_raw(self.pid), sig);
        }
    }

    pub(crate) fn try_wait(&self) -> Result<Option<ExitStatus>> {
        let mut st = lock(&self.state);
        match &mut *st {
            ProcState::Exited(s) => Ok(Some(*s)),
            ProcState::Running(child) => match child.try_wait() {
                Ok(Some(s)) => {
                    *st = ProcState::Exited(s);
                    Ok(Some(s))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(LabError::io(format!("waiting for {}", self.label), e)),
            },
        }
    }

    /// Exited (zombie or gone) without reaping it — keeps the PID reserved so we
    /// can still kill leftovers of its process group.
    pub(crate) fn has_exited(&self) -> bool {
        if self.is_reaped() {
            return true;
        }
        matches!(proc_state(self.pid), None | Some('Z') | Some('X'))
    }

    /// First half of a stop: SIGTERM (plus SIGCONT so a SIGSTOPped process sees it)
    /// to the process group.
    pub(crate) fn begin_stop(&self) {
        self.signal_group(Signal::SIGTERM);
        self.signal_group(Signal::SIGCONT);
    }

    /// Second half: wait until `deadline`, then SIGKILL the group, then reap.
    pub(crate) fn finish_stop(&self, deadline: Instant) -> Option<ExitStatus> {
        while !self.has_exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Also kills children the program forked into its group.
        self.signal_group(Signal::SIGKILL);
        let hard_deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.try_wait() {
                Ok(Some(s)) => return Some(s),
                Ok(None) if Instant::now() < hard_deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    tracing::warn!(pid = self.pid, name = %self.label, "process did not die after SIGKILL");
                    return None;
                }
            }
        }
    }

    pub(crate) fn stop_and_reap(&self, grace: Duration) -> Option<ExitStatus> {
        if self.has_exited() {
            // Already dead: only kill what it left in its group, then reap.
            return self.finish_stop(Instant::now());
        }
        self.begin_stop();
        self.finish_stop(Instant::now() + grace)
    }
}
