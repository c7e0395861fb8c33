//! [`Netns`]: the handle to one lab namespace that tests run commands, daemons and probes
//! through.

use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::addr::ensure_lab_addr;
use crate::netns::{NETNS_RUN_DIR, in_netns, ip, sysctl, sysctl_get};
use crate::process::{self, CmdOutput, EXEC_TIMEOUT, LabProcess, ProcessSpec};
use crate::{LabError, Result};

/// Handle to one lab namespace: run commands and daemons in it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Netns {
    name: String,
    role: String,
    prefix: String,
    log_dir: PathBuf,
}

impl Netns {
    pub(crate) fn new(prefix: &str, role: &str, log_dir: &Path) -> Self {
        Netns {
            name: format!("{prefix}-{role}"),
            role: role.to_string(),
            prefix: prefix.to_string(),
            log_dir: log_dir.to_path_buf(),
        }
    }

    /// Full namespace name, e.g. `flbk3x9-node1` (what `ip netns exec` wants).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Role without the prefix, e.g. `node1`.
    pub fn role(&self) -> &str {
        &self.role
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The run's log dir (`/tmp/ferrolb-lab-<prefix>`).
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// A path for this namespace's files in the log dir: `<log_dir>/<role>-<name>`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{}-{name}", self.role))
    }

    /// `ip -n NS ARGS…`, returns stdout.
    pub fn ip<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<std::ffi::OsString> = ["-n", self.name.as_str()]
            .iter()
            .map(|s| OsStr::new(s).to_owned())
            .chain(args.into_iter().map(|a| a.as_ref().to_owned()))
            .collect();
        ip(args)
    }

    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        sysctl(&self.name, key, value)
    }

    pub fn sysctl_get(&self, key: &str) -> Result<String> {
        sysctl_get(&self.name, key)
    }

    /// Runs `f` on a thread inside this namespace (see [`in_netns`]).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        in_netns(&self.name, f)
    }

    /// Starts `f` on a new thread that has entered this namespace and returns at once: for
    /// code that lives as long as a test, such as an async runtime serving sockets in the
    /// namespace. A panic in `f` (also failing to enter the namespace) surfaces at `join`.
    pub fn spawn_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<T>> {
        let path = self.path();
        let file = std::fs::File::open(&path)
            .map_err(|e| LabError::io(format!("opening {}", path.display()), e))?;
        let name = self.name.clone();
        Ok(std::thread::spawn(move || {
            if let Err(e) = nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET) {
                panic!("setns into {name}: {e}");
            }
            f()
        }))
    }

    /// The namespace's file under `/run/netns`.
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_RUN_DIR).join(&self.name)
    }

    /// Adds address `cidr` to `dev`; IPv6 addresses skip duplicate address detection, so they
    /// are usable at once. Not guarded like the traffic helpers: an address on a lab
    /// interface is reachable only inside the lab's namespaces, which have no route out.
    pub fn add_addr(&self, dev: &str, cidr: &str) -> Result<()> {
        let ip: IpAddr = cidr
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| LabError::Config(format!("{cidr:?} is not an address/prefix")))?;
        if ip.is_ipv6() {
            self.ip(["addr", "add", cidr, "dev", dev, "nodad"])?;
        } else {
            self.ip(["addr", "add", cidr, "dev", dev])?;
        }
        Ok(())
    }

    /// MAC address of `iface` (`ip -br link`).
    pub fn mac(&self, iface: &str) -> Result<String> {
        let out = self.ip(["-br", "link", "show", "dev", iface])?;
        out.split_whitespace()
            .nth(2)
            .map(str::to_string)
            .ok_or_else(|| LabError::Config(format!("no MAC in `ip -br link` output: {out:?}")))
    }

    /// Runs `argv` inside the namespace and captures its output (timeout
    /// [`EXEC_TIMEOUT`]). A non-zero exit is *not* an error here; see
    /// [`Netns::exec_ok`] / [`CmdOutput::check`].
    pub fn exec<I, S>(&self, argv: I) -> Result<CmdOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.exec_timeout(argv, EXEC_TIMEOUT)
    }

    pub fn exec_timeout<I, S>(&self, argv: I, timeout: Duration) -> Result<CmdOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        process::run_capture(Some(&self.prefix), Some(&self.name), argv, timeout)
    }

    /// Like [`Netns::exec`] but a non-zero exit is an error.
    pub fn exec_ok<I, S>(&self, argv: I) -> Result<CmdOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.exec(argv)?.check()
    }

    /// [`Netns::exec`] for async code (runs on tokio's blocking pool).
    pub async fn exec_async(&self, argv: Vec<String>) -> Result<CmdOutput> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.exec(&argv))
            .await
            .map_err(|e| LabError::io("exec task", std::io::Error::other(e.to_string())))?
    }

    /// Starts a long-running process; output goes to `<log_dir>/<role>-<name>.log`.
    pub fn spawn<I, S>(&self, name: &str, argv: I) -> Result<LabProcess>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.spawn_spec(&ProcessSpec::from_argv(name, argv)?)
    }

    pub fn spawn_spec(&self, spec: &ProcessSpec) -> Result<LabProcess> {
        if !spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(LabError::InvalidName {
                name: spec.name.clone(),
                reason: "process names are used in file names: a-z, 0-9, '-', '_', '.'".into(),
            });
        }
        let log = self.file(&format!("{}.log", spec.name));
        LabProcess::spawn(&self.prefix, &self.name, log, spec)
    }

    /// One ping (1 s wait) to a lab address; `Ok(true)` if answered.
    pub fn ping(&self, dst: IpAddr) -> Result<bool> {
        self.ping_count(dst, 1, Duration::from_secs(1))
    }

    /// `count` pings, each waiting up to `wait` (whole seconds, at least 1).
    pub fn ping_count(&self, dst: IpAddr, count: u32, wait: Duration) -> Result<bool> {
        ensure_lab_addr(dst)?;
        let fam = if dst.is_ipv4() { "-4" } else { "-6" };
        let wait = wait.as_secs().max(1).to_string();
        let out = self.exec([
            "ping",
            fam,
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            "-W",
            &wait,
            &dst.to_string(),
        ])?;
        Ok(out.success())
    }

    /// `arping -c COUNT -i IFACE DST` (Habets arping); exit 0 if a reply came.
    pub fn arping(&self, iface: &str, dst: Ipv4Addr, count: u32) -> Result<CmdOutput> {
        ensure_lab_addr(IpAddr::V4(dst))?;
        self.exec([
            "arping",
            "-c",
            &count.to_string(),
            "-w",
            "1",
            "-i",
            iface,
            &dst.to_string(),
        ])
    }

    /// Gratuitous ARP for `addr` from `iface` (`arping -U`; never gets a reply).
    pub fn arping_gratuitous(&self, iface: &str, addr: Ipv4Addr) -> Result<CmdOutput> {
        ensure_lab_addr(IpAddr::V4(addr))?;
        let a = addr.to_string();
        self.exec(["arping", "-c", "1", "-U", "-i", iface, "-S", &a, &a])
    }

    /// `ndisc6 -n -r 2 DST IFACE`: a Neighbor Solicitation from its own raw
    /// socket; stdout has the target's link-layer address. Exit 0 if answered.
    pub fn ndisc6(&self, iface: &str, dst: Ipv6Addr) -> Result<CmdOutput> {
        ensure_lab_addr(IpAddr::V6(dst))?;
        self.exec([
            "ndisc6",
            "-n",
            "-r",
            "2",
            "-w",
            "500",
            &dst.to_string(),
            iface,
        ])
    }

    /// `curl -sS --max-time T http://DST:PORT/PATH` to a lab address.
    pub fn curl(&self, dst: IpAddr, port: u16, path: &str, timeout: Duration) -> Result<CmdOutput> {
        ensure_lab_addr(dst)?;
        let host = match dst {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        let path = path.trim_start_matches('/');
        let url = format!("http://{host}:{port}/{path}");
        let secs = format!("{:.1}", timeout.as_secs_f64());
        self.exec_timeout(
            [
                "curl",
                "-sS",
                "-g",
                "--noproxy",
                "*",
                "--max-time",
                &secs,
                &url,
            ],
            timeout + Duration::from_secs(5),
        )
    }

    /// The neighbour entry for `addr` (`ip neigh show ADDR`), empty if none.
    pub fn neigh(&self, addr: IpAddr) -> Result<String> {
        Ok(self
            .ip(["neigh", "show", &addr.to_string()])?
            .trim()
            .to_string())
    }

    /// `ip -4 route show` / `ip -6 route show`.
    pub fn routes(&self, v6: bool) -> Result<String> {
        if v6 {
            self.ip(["-6", "route", "show"])
        } else {
            self.ip(["-4", "route", "show"])
        }
    }
}
