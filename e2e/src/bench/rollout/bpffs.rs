//! A bpffs instance of a lab's own: its speakers pin their layer 2 responders there across a
//! restart in place (never in the host's /sys/fs/bpf, which other labs share).

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

/// A mounted bpffs, unmounted (which releases whatever is still pinned) when dropped.
pub struct Bpffs {
    dir: PathBuf,
}

impl Bpffs {
    pub fn mount() -> anyhow::Result<Bpffs> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "ferrolb-rollout-bpffs-{}-{stamp}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let out = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&dir)
            .output()
            .context("running mount")?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            bail!(
                "mounting bpffs at {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Bpffs { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
        // A speaker still stopping may have created its directory after the unmount.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
