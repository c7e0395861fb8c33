//! The restart marker on the node's disk: written by a speaker stopping for a restart in place,
//! taken (read and removed) by the next one at start. What it says and when it is believed is
//! decided in [`ferrolb_speaker_core::bgp::restart_marker`]; this file only moves bytes.
//!
//! The directory is `--restart-marker-dir` (default `/run/ferrolb`, a hostPath in the
//! DaemonSet: the node's tmpfs, so a node reboot clears it). One file per node, so a directory
//! shared by several speakers (the lab's namespaces share one filesystem) holds each its own.

use ferrolb_speaker_core::bgp::restart_marker::RestartMarker;
use std::path::{Path, PathBuf};

/// Default directory of the marker.
pub const DEFAULT_DIR: &str = "/run/ferrolb";

/// Why the marker could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum MarkerFileError {
    /// The file system refused.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is there but is not a marker.
    #[error("{path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        source: ferrolb_speaker_core::bgp::restart_marker::MarkerError,
    },
}

/// The marker file of `node` in `dir`.
pub fn path(dir: &Path, node: &str) -> PathBuf {
    dir.join(format!("bgp-restart-{node}"))
}

/// Writes the marker atomically (a temporary file renamed over it), creating `dir`.
pub fn write(dir: &Path, marker: &RestartMarker) -> Result<PathBuf, MarkerFileError> {
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| MarkerFileError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let target = path(dir, &marker.node);
    let tmp = target.with_extension("tmp");
    std::fs::write(&tmp, marker.render()).map_err(io("writing", &tmp))?;
    std::fs::rename(&tmp, &target).map_err(io("renaming into", &target))?;
    Ok(target)
}

/// Reads and removes the marker of `node`: it speaks of one restart only. `Ok(None)` when
/// there is none.
pub fn take(dir: &Path, node: &str) -> Result<Option<RestartMarker>, MarkerFileError> {
    let file = path(dir, node);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(MarkerFileError::Io {
                action: "reading",
                path: file,
                source,
            });
        }
    };
    if let Err(source) = std::fs::remove_file(&file)
        && source.kind() != std::io::ErrorKind::NotFound
    {
        return Err(MarkerFileError::Io {
            action: "removing",
            path: file,
            source,
        });
    }
    RestartMarker::parse(&text)
        .map(Some)
        .map_err(|source| MarkerFileError::Invalid { path: file, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_speaker_core::bgp::restart_marker::MarkerPeer;

    #[test]
    fn written_then_taken_once() {
        let dir = std::env::temp_dir().join(format!("ferrolb-marker-test-{}", std::process::id()));
        let marker = RestartMarker {
            node: "node1".into(),
            written: 1_767_225_600,
            peers: vec![MarkerPeer {
                name: "ferrolb-system/router".into(),
                address: "10.200.0.1".parse().expect("ip"),
                restart_time: 120,
            }],
        };
        let file = write(&dir, &marker).expect("write");
        assert_eq!(file, dir.join("bgp-restart-node1"));
        // Another node's speaker sharing the directory finds nothing of its own.
        assert!(take(&dir, "node2").expect("take").is_none());
        assert_eq!(take(&dir, "node1").expect("take"), Some(marker));
        assert!(take(&dir, "node1").expect("take again").is_none());
        std::fs::write(path(&dir, "node3"), "garbage").expect("write");
        let e = take(&dir, "node3").expect_err("not a marker");
        assert!(e.to_string().contains("not a restart marker"), "{e}");
        assert!(
            !path(&dir, "node3").exists(),
            "a damaged marker is removed too"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
