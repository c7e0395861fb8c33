//! What the speaker's root tests need beyond the lab library: namespaces, links, processes and
//! their cleanup come from `ferrolb-lab` (also used by the e2e tests), the two-namespace router
//! lab of the interop tests is in [`router_lab`].
//!
//! Only lab addresses (10.200.0.0/16, fd00:200::/48) are configured.

#![allow(dead_code)]

pub mod router_lab;

use std::process::{Command, Stdio};

/// Whether `command` is on the PATH (or, with a slash, exists).
fn has_command(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
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
