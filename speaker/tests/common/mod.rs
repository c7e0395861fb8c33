//! Small network-namespace helpers for the speaker's root tests: create namespaces, veth pairs
//! and addresses, run commands and closures inside a namespace, and clean everything up (by
//! name for namespaces, by PID for processes) even when the test fails.
//!
//! Only lab addresses (10.200.0.0/16, fd00:200::/48) are meant to be configured here.

#![allow(dead_code)]

pub mod router_lab;

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether the test can run: true as root. Not root: panics under CI (`CI` set), otherwise
/// prints why and returns false so the test can return early.
pub fn require_root(test: &str) -> bool {
    // /proc/self belongs to the effective user of the process.
    let root = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata("/proc/self").expect("reading /proc/self"),
    ) == 0;
    if root {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs root (network namespaces) and CI is set");
    }
    eprintln!("skipping {test}: needs root to create network namespaces");
    false
}

/// Whether `command` is on the PATH (or, with a slash, exists).
pub fn has_command(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the test can run: root, and every one of `commands` present. Otherwise panics
/// under CI (`CI` set), or prints why (`install` says how to get the commands) and returns
/// false so the test can return early.
pub fn require_root_and_tools(test: &str, commands: &[&str], install: &str) -> bool {
    let root = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata("/proc/self").expect("reading /proc/self"),
    ) == 0;
    let why = if !root {
        "needs root (network namespaces)".to_string()
    } else if let Some(missing) = commands.iter().find(|c| !has_command(c)) {
        format!("needs {missing} ({install})")
    } else {
        return true;
    };
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {why}, and CI is set");
    }
    eprintln!("skipping {test}: {why}");
    false
}

/// Makes sure the commands exist, installing `packages` with apt-get if one is missing.
pub fn ensure_tools(commands: &[&str], packages: &[&str]) {
    let missing = commands.iter().any(|c| !has_command(c));
    if missing {
        let status = Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("running apt-get");
        assert!(status.success(), "apt-get install {packages:?} failed");
    }
}

/// Runs a command, panicking with its output when it fails.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named `flb-<tag>-<pid>-<n>` (unique per process and call) with `lo`
    /// up. Names stay within the 15 characters interface-style tools like.
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("flb-{tag}-{}-{n}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name (as under `/var/run/netns`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path of the namespace file.
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// Runs a command in the namespace; panics if it fails.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Runs a command in the namespace and returns its output whatever the exit status.
    pub fn try_exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
    }

    /// Starts a background command in the namespace, killed by PID on drop of the guard.
    pub fn spawn(&self, args: &[&str]) -> ChildGuard {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {args:?}: {e}"));
        ChildGuard { child: Some(child) }
    }

    /// Sets a sysctl in the namespace.
    pub fn sysctl(&self, key: &str, value: &str) {
        self.exec(&["sysctl", "-qw", &format!("{key}={value}")]);
    }

    /// Adds an address (CIDR) to an interface; IPv6 addresses skip DAD.
    pub fn add_addr(&self, dev: &str, cidr: &str) {
        if cidr.contains(':') {
            self.exec(&["ip", "addr", "add", cidr, "dev", dev, "nodad"]);
        } else {
            self.exec(&["ip", "addr", "add", cidr, "dev", dev]);
        }
    }

    /// Sets an interface up.
    pub fn up(&self, dev: &str) {
        self.exec(&["ip", "link", "set", dev, "up"]);
    }

    /// The MAC address of an interface.
    pub fn mac(&self, dev: &str) -> String {
        let out = self.exec(&["cat", &format!("/sys/class/net/{dev}/address")]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns its result. The
    /// thread's network namespace changes, the test process's other threads do not.
    pub fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
        .join()
        .expect("thread in namespace panicked")
    }

    /// Like [`Netns::run_in`] but returns the join handle at once.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = self.path();
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
    }
}

/// Moves the calling thread into the namespace at `path`.
pub fn enter(path: &str) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {path}: {e}"));
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace also deletes the interfaces inside it (a veth's peer goes with
        // it). Best effort: a failing test must still get here.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Creates a veth pair `a_dev` in `a` and `b_dev` in `b`, both up.
pub fn veth(a: &Netns, a_dev: &str, b: &Netns, b_dev: &str) {
    run(&[
        "ip",
        "-n",
        a.name(),
        "link",
        "add",
        a_dev,
        "type",
        "veth",
        "peer",
        "name",
        b_dev,
        "netns",
        b.name(),
    ]);
    a.up(a_dev);
    b.up(b_dev);
}

/// A background process, killed by PID (SIGKILL) and reaped on drop.
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// The PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits for the process to exit and returns its output.
    pub fn wait(mut self) -> Output {
        let child = self.child.take().expect("child present");
        child.wait_with_output().expect("waiting for child")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
