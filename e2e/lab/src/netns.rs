//! Network namespaces, links, addresses and sysctls, via the `ip` command (so
//! every step is what a human would type and shows up readably in errors). [`crate::Netns`]
//! is the handle tests use to run things inside a namespace.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sched::CloneFlags;

use crate::process;
use crate::{LabError, Result};

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";
/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

const IP_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `ip ARGS…` in the root context and returns stdout; errors carry stderr.
pub fn ip<I, S>(args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let argv: Vec<std::ffi::OsString> = std::iter::once(OsStr::new("ip").to_owned())
        .chain(args.into_iter().map(|a| a.as_ref().to_owned()))
        .collect();
    Ok(process::run_capture(None, None, argv, IP_TIMEOUT)?
        .check()?
        .stdout)
}

/// Names of all named namespaces (from /run/netns).
pub fn list() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(NETNS_RUN_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io(format!("reading {NETNS_RUN_DIR}"), e)),
    };
    let mut v: Vec<String> = dir
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Ok(v)
}

pub fn exists(name: &str) -> bool {
    Path::new(NETNS_RUN_DIR).join(name).exists()
}

/// Checks a namespace name: short (so it fits where interface names must),
/// and only `[a-z0-9-]`.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(LabError::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() || name.len() > IFNAME_MAX {
        return bad("must be 1 to 15 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return bad("only a-z, 0-9 and '-' are allowed");
    }
    Ok(())
}

/// `ip netns add NAME`.
pub(crate) fn add(name: &str) -> Result<()> {
    validate_name(name)?;
    ip(["netns", "add", name]).map(drop)
}

/// `ip netns del NAME`; a missing namespace is not an error.
pub(crate) fn delete(name: &str) -> Result<()> {
    if !exists(name) {
        return Ok(());
    }
    match ip(["netns", "del", name]) {
        Ok(_) => Ok(()),
        Err(_) if !exists(name) => Ok(()),
        Err(e) => Err(e),
    }
}

/// PIDs of the processes inside namespace `name`.
pub fn pids(name: &str) -> Result<Vec<i32>> {
    let out = ip(["netns", "pids", name])?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Runs `f` on a short-lived thread that has joined namespace `name` (setns
/// applies to the calling thread only, so the rest of the process is untouched).
/// Handy for sysctls and for netlink sockets opened inside the namespace.
pub fn in_netns<T, F>(name: &str, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let path = Path::new(NETNS_RUN_DIR).join(name);
    let file =
        File::open(&path).map_err(|e| LabError::io(format!("opening {}", path.display()), e))?;
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
                .map_err(|e| LabError::io(format!("setns into {name}"), e.into()))?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Sets sysctl `key` (dotted, e.g. `net.ipv4.ip_forward`) in namespace `ns`.
/// Keys are our own constants (interface names without dots), so the dotted
/// form maps 1:1 onto /proc/sys paths.
pub fn sysctl(ns: &str, key: &str, value: &str) -> Result<()> {
    let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    let v = value.to_string();
    in_netns(ns, move || {
        std::fs::write(&path, v.as_bytes()).map_err(|e| (path, e))
    })?
    .map_err(|(path, e)| LabError::io(format!("[{ns}] writing {}", path.display()), e))
}

/// Reads sysctl `key` in namespace `ns`.
pub fn sysctl_get(ns: &str, key: &str) -> Result<String> {
    let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    in_netns(ns, move || {
        std::fs::read_to_string(&path).map_err(|e| (path, e))
    })?
    .map(|s| s.trim().to_string())
    .map_err(|(path, e)| LabError::io(format!("[{ns}] reading {}", path.display()), e))
}
