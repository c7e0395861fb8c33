//! Root requirement and the shared skip policy for tests that need root.
//!
//! Policy: a test that needs root (or lab tools) calls [`root_or_skip`] /
//! [`tools_or_skip`] first. Without root:
//! - in CI (env `CI` set and not empty/"false"/"0") the test panics loudly, because
//!   CI runs as root and a silent skip would hide that the lab never ran;
//! - locally it prints why it is skipped and the test returns early.

use crate::{LabError, Result};

/// Whether the effective user is root.
pub fn is_root() -> bool {
    euid() == 0
}

/// Effective uid (nix's wrapper needs its `user` feature, which the workspace
/// does not enable; libc's is a plain syscall).
#[allow(unsafe_code)]
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Typed error unless running as root.
pub fn require_root() -> Result<()> {
    if is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot { euid: euid() })
    }
}

/// Whether we run in CI (`CI` set to anything but "", "0" or "false").
pub fn in_ci() -> bool {
    match std::env::var("CI") {
        Ok(v) => {
            let v = v.trim().to_ascii_lowercase();
            !(v.is_empty() || v == "0" || v == "false")
        }
        Err(_) => false,
    }
}

/// Returns `true` if the test may run (we are root). Otherwise panics in CI,
/// or prints a skip reason and returns `false` locally.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    let why = format!(
        "{test}: needs root for network namespaces (euid {})",
        euid()
    );
    skip_or_panic(&why)
}

/// Like [`root_or_skip`], and also checks that every program in `tools` is
/// installed (see scripts/install-test-deps.sh).
pub fn tools_or_skip(test: &str, tools: &[&str]) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have_tool(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{test}: missing programs {missing:?}; run scripts/install-test-deps.sh");
    skip_or_panic(&why)
}

fn skip_or_panic(why: &str) -> bool {
    if in_ci() {
        panic!("CI is set but the test cannot run: {why}");
    }
    eprintln!("SKIPPED {why}");
    false
}

/// Whether `tool` is an executable path or found in `PATH`.
pub fn have_tool(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if tool.contains('/') {
        return is_exec(std::path::Path::new(tool));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).any(|dir| is_exec(&dir.join(tool)))
}

/// Typed error if `tool` is missing.
pub fn require_tool(tool: &str) -> Result<()> {
    if have_tool(tool) {
        Ok(())
    } else {
        Err(LabError::MissingTool { tool: tool.into() })
    }
}
