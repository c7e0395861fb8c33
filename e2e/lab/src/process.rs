//! Processes inside lab namespaces: long-running daemons with per-run log files
//! ([`LabProcess`]) and short commands whose output is captured ([`CmdOutput`]).
//!
//! Every process is started through `ip netns exec NS …` (which `exec`s the
//! program, so the PID we hold is the program's own PID, and it also gives the
//! program a `/sys` of its namespace) in its **own process group**, so a Ctrl-C
//! on the terminal does not hit it before our cleanup can, and teardown can
//! signal stragglers it forked by process-group id. Signals are only sent while
//! the child is not yet reaped, so the PID can never belong to someone else.

use std::ffi::{OsStr, OsString};
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::child::ProcShared;
use crate::{LabError, Result, registry};

/// How long a dropped process gets between SIGTERM and SIGKILL.
pub const DROP_GRACE: Duration = Duration::from_secs(2);
/// Default timeout of [`crate::Netns::exec`].
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// What to run: program, arguments, environment, working directory.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Short name, used in the log file name `<role>-<name>.log`.
    pub name: String,
    pub program: OsString,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub cwd: Option<PathBuf>,
}

impl ProcessSpec {
    pub fn new(name: impl Into<String>, program: impl AsRef<OsStr>) -> Self {
        ProcessSpec {
            name: name.into(),
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
        }
    }

    /// Spec from an argv (first element is the program).
    pub fn from_argv<I, S>(name: impl Into<String>, argv: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut it = argv.into_iter();
        let program = it
            .next()
            .ok_or_else(|| LabError::Config("empty command line".into()))?;
        Ok(ProcessSpec::new(name, program).args(it))
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.env
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(self.args.iter())
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Builds the `ip netns exec NS program args…` command (or the bare program when
/// `ns` is None, for root-namespace helpers such as `ip netns add`).
fn command(ns: Option<&str>, spec: &ProcessSpec) -> Command {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.arg("netns").arg("exec").arg(ns).arg(&spec.program);
            c
        }
        None => Command::new(&spec.program),
    };
    cmd.args(&spec.args);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(d) = &spec.cwd {
        cmd.current_dir(d);
    }
    cmd.stdin(Stdio::null());
    // Own process group: terminal Ctrl-C does not reach it directly, and
    // teardown can kill what it forked by group id.
    cmd.process_group(0);
    cmd
}

/// A long-running process in a lab namespace. Killed (SIGTERM, then SIGKILL
/// after [`DROP_GRACE`]) and reaped when dropped.
pub struct LabProcess {
    shared: Arc<ProcShared>,
    ns: String,
    log_path: PathBuf,
}

impl std::fmt::Debug for LabProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabProcess")
            .field("name", &self.shared.label)
            .field("pid", &self.shared.pid)
            .field("ns", &self.ns)
            .finish()
    }
}

impl LabProcess {
    /// Starts `spec` in namespace `ns`, stdout+stderr appended to `log_path`,
    /// registered under the run `prefix` for teardown.
    pub(crate) fn spawn(
        prefix: &str,
        ns: &str,
        log_path: PathBuf,
        spec: &ProcessSpec,
    ) -> Result<Self> {
        let ctx = || format!("opening log {}", log_path.display());
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| LabError::io(ctx(), e))?;
        // A header per start makes restarts of the same daemon readable in one log.
        writeln!(log, "=== ferrolb-lab: starting in {ns}: {}", spec.display())
            .map_err(|e| LabError::io(ctx(), e))?;
        let err_log = log.try_clone().map_err(|e| LabError::io(ctx(), e))?;
        let mut cmd = command(Some(ns), spec);
        cmd.stdout(Stdio::from(log)).stderr(Stdio::from(err_log));
        let child = cmd.spawn().map_err(|e| LabError::Spawn {
            cmd: spec.display(),
            source: e,
        })?;
        let label = format!("{ns}/{}", spec.name);
        let shared = ProcShared::new(label, child);
        if let Err(e) = registry::register_proc(prefix, &shared) {
            shared.stop_and_reap(Duration::ZERO);
            return Err(e);
        }
        tracing::debug!(pid = shared.pid, %ns, cmd = %spec.display(), log = %log_path.display(), "spawned");
        Ok(LabProcess {
            shared,
            ns: ns.to_string(),
            log_path,
        })
    }

    /// PID of the program (not of a wrapper).
    pub fn pid(&self) -> i32 {
        self.shared.pid
    }

    /// `<ns>/<name>`.
    pub fn name(&self) -> &str {
        &self.shared.label
    }

    /// Full namespace name it runs in.
    pub fn netns(&self) -> &str {
        &self.ns
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The log so far (stdout and stderr interleaved), lossily decoded.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Sends `sig` to the process (by PID). Fails with [`LabError::NotRunning`]
    /// once it has been reaped.
    pub fn signal(&self, sig: Signal) -> Result<()> {
        self.shared.signal(sig)
    }

    pub fn terminate(&self) -> Result<()> {
        self.signal(Signal::SIGTERM)
    }

    pub fn kill(&self) -> Result<()> {
        self.signal(Signal::SIGKILL)
    }

    /// Freezes the process (SIGSTOP), e.g. to simulate a hung speaker.
    pub fn pause(&self) -> Result<()> {
        self.signal(Signal::SIGSTOP)
    }

    /// Resumes after [`LabProcess::pause`] (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.signal(Signal::SIGCONT)
    }

    /// Exit status if it has exited (reaps it).
    pub fn try_wait(&self) -> Result<Option<ExitStatus>> {
        self.shared.try_wait()
    }

    pub fn is_running(&self) -> bool {
        matches!(self.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<ExitStatus> {
        let what = format!("{} (pid {}) to exit", self.name(), self.pid());
        let mut err = None;
        let r = crate::wait_for(&what, timeout, || match self.try_wait() {
            Ok(s) => s,
            Err(e) => {
                err = Some(e);
                Some(ExitStatus::from_raw(0))
            }
        });
        match err {
            Some(e) => Err(e),
            None => r,
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; returns the exit status.
    pub fn shutdown(&self, grace: Duration) -> Option<ExitStatus> {
        self.shared.stop_and_reap(grace)
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        self.shared.stop_and_reap(DROP_GRACE);
    }
}

/// Output of a finished short command.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub cmd: String,
    /// Exit code, None if killed by a signal.
    pub code: Option<i32>,
    /// Terminating signal, if any.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// `Ok(self)` on exit code 0, else a [`LabError::Command`] with stderr.
    pub fn check(self) -> Result<Self> {
        if self.success() {
            Ok(self)
        } else {
            Err(LabError::Command {
                status: self.status_text(),
                stderr: if self.stderr.trim().is_empty() {
                    self.stdout.trim().to_string()
                } else {
                    self.stderr.trim().to_string()
                },
                cmd: self.cmd,
            })
        }
    }

    fn status_text(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "unknown status".into(),
        }
    }
}

/// Runs `argv` (in `ns` if given) to completion and captures its output. Killed
/// (with its process group) after `timeout`. Registered under `prefix` while it
/// runs, so a Ctrl-C during a long command still cleans it up.
pub(crate) fn run_capture<I, S>(
    prefix: Option<&str>,
    ns: Option<&str>,
    argv: I,
    timeout: Duration,
) -> Result<CmdOutput>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let spec = ProcessSpec::from_argv("cmd", argv)?;
    let shown = match ns {
        Some(ns) => format!("[{ns}] {}", spec.display()),
        None => spec.display(),
    };
    let mut cmd = command(ns, &spec);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| LabError::Spawn {
        cmd: shown.clone(),
        source: e,
    })?;
    // Read both pipes in threads so a chatty command cannot block on a full pipe.
    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    for (is_out, pipe) in [
        (
            true,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            false,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ] {
        if let Some(mut p) = pipe {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = p.read_to_end(&mut buf);
                let _ = tx.send((is_out, buf));
            });
        }
    }
    drop(tx);
    let shared = ProcShared::new(shown.clone(), child);
    if let Some(prefix) = prefix
        && let Err(e) = registry::register_proc(prefix, &shared)
    {
        shared.stop_and_reap(Duration::ZERO);
        return Err(e);
    }
    let deadline = Instant::now() + timeout;
    let mut sleep = Duration::from_millis(1);
    let status = loop {
        if shared.has_exited() {
            // Exited but not reaped yet: finish_stop kills leftovers of its process
            // group (a forked helper) while the group id is still reserved, then reaps.
            match shared.finish_stop(Instant::now()) {
                Some(s) => break Some(s),
                None => {
                    return Err(LabError::Command {
                        cmd: shown,
                        status: "could not be reaped".into(),
                        stderr: String::new(),
                    });
                }
            }
        }
        if Instant::now() >= deadline {
            shared.stop_and_reap(Duration::from_millis(200));
            break None;
        }
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    // A process that escaped its group may still hold the pipe: don't hang on it.
    let pipe_deadline = Instant::now() + Duration::from_secs(2);
    while let Ok((is_out, buf)) =
        rx.recv_timeout(pipe_deadline.saturating_duration_since(Instant::now()))
    {
        if is_out { stdout = buf } else { stderr = buf }
    }
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    match status {
        None => Err(LabError::Timeout {
            what: format!("`{shown}` to finish (stdout: {stdout:?}, stderr: {stderr:?})"),
            after: timeout,
        }),
        Some(s) => Ok(CmdOutput {
            cmd: shown,
            code: s.code(),
            signal: s.signal(),
            stdout,
            stderr,
        }),
    }
}
