//! [`Scratch`]: a lab without a fixed topology, for tests that build their own few
//! namespaces and links (two namespaces on a veth pair, one namespace alone). Its namespaces
//! and processes are registered and torn down exactly as a [`crate::Lab`]'s: on drop (also
//! while unwinding), by the signal handler, and by a later run if this one died.

use std::path::{Path, PathBuf};

use crate::ns::Netns;
use crate::topology::{create_ns, random_prefix};
use crate::{LabError, Result, cleanup, registry, root};

/// See the module docs.
#[derive(Debug)]
pub struct Scratch {
    prefix: String,
    log_dir: PathBuf,
}

impl Scratch {
    /// Registers a new run (random prefix, log dir) after cleaning up stale runs. Needs root.
    pub fn new() -> Result<Scratch> {
        root::require_root()?;
        root::require_tool("ip")?;
        match cleanup::reap_stale() {
            Ok(c) if !c.is_empty() => tracing::info!(runs = ?c, "cleaned up stale lab runs"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cleaning stale lab runs failed"),
        }
        let prefix = random_prefix()?;
        let log_dir = registry::register_run(&prefix)?;
        Ok(Scratch { prefix, log_dir })
    }

    /// Creates namespace `<prefix>-<role>` with `lo` up.
    pub fn netns(&self, role: &str) -> Result<Netns> {
        let ns = Netns::new(&self.prefix, role, &self.log_dir);
        create_ns(&ns)?;
        Ok(ns)
    }

    /// A veth pair: `a_dev` in `a`, `b_dev` in `b`, both up. Created inside `a` and moved
    /// straight into `b`, so nothing appears in the root namespace.
    pub fn veth(&self, a: &Netns, a_dev: &str, b: &Netns, b_dev: &str) -> Result<()> {
        for ns in [a, b] {
            if ns.prefix() != self.prefix {
                return Err(LabError::Config(format!(
                    "namespace {} is not part of lab {}",
                    ns.name(),
                    self.prefix
                )));
            }
        }
        a.ip([
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
        ])?;
        a.ip(["link", "set", a_dev, "up"])?;
        b.ip(["link", "set", b_dev, "up"])?;
        Ok(())
    }

    /// The run's prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The run's log dir, removed on a clean teardown and kept when the thread is panicking or
    /// `FERROLB_LAB_KEEP_LOGS` is set.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = cleanup::teardown_run(&self.prefix, crate::topology::keep_logs()) {
            tracing::error!(prefix = %self.prefix, error = %e, "lab teardown failed");
            eprintln!("ferrolb-lab: teardown of {} failed: {e}", self.prefix);
        }
    }
}
