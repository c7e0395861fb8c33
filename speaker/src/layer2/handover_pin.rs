//! Keeping the in-kernel responder answering while the speaker restarts in place.
//!
//! The responder's tcx links normally live exactly as long as the speaker's descriptors
//! (`kernel_responder.rs`), so a dead speaker never answers. For a planned restart on a node
//! that stays (`ferrolb_speaker_core::layer2::stop::L2Stop::HandToNextProcess`) the departing
//! speaker instead
//! 1. stops renewing the lease and sets it to the hand-over hold (the program checks it on
//!    every request, so the node goes quiet by itself if no successor comes back in time);
//! 2. pins every link that answers for an owned address in a bpffs directory of its own node
//!    (`<dir>/<node>/link-<interface>`): the program stays attached with its maps as they are;
//! 3. exits without removing the addresses from the maps.
//!
//! The next process finds the pins at start ([`predecessor_pins`]), attaches its own responder
//! in front of them (tcx runs the newest first; what it does not answer goes on to the
//! predecessor's program), and removes the pins ([`unpin`]) once its first settled pass has
//! put its own addresses in force: the kernel then detaches the old program. A pin left by a
//! process whose successor never came is removed the same way by the next speaker to start;
//! its program has stopped answering when its lease ran out anyway.
//!
//! The directory must be in a bpffs mount (`/sys/fs/bpf`, mounted into the speaker's pod);
//! elsewhere pinning fails and the restart hands the addresses to the other nodes instead.

use std::path::{Path, PathBuf};

/// Where the speaker pins its links, by default: the node's bpffs.
pub const DEFAULT_DIR: &str = "/sys/fs/bpf/ferrolb";

/// The pins of one node's speaker.
pub fn node_dir(dir: &Path, node: &str) -> PathBuf {
    dir.join(node)
}

/// The pin of the link on interface `interface`.
pub fn link_pin(node_dir: &Path, interface: &str) -> PathBuf {
    node_dir.join(format!("link-{interface}"))
}

/// The pins a previous process of this node left, sorted; none when the directory does not
/// exist or cannot be read (said in the log).
pub fn predecessor_pins(node_dir: &Path) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(node_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(error) => {
            tracing::warn!(%error, dir = %node_dir.display(), "layer 2: cannot read the hand-over directory");
            return Vec::new();
        }
    };
    let mut pins: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("link-"))
        })
        .collect();
    pins.sort();
    pins
}

/// Removes `pins`: their programs detach as the kernel drops the last reference.
pub fn unpin(pins: &[PathBuf]) {
    for pin in pins {
        match std::fs::remove_file(pin) {
            Ok(()) => {
                tracing::info!(pin = %pin.display(), "layer 2: the previous process's responder detached")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(%error, pin = %pin.display(), "layer 2: removing the previous process's pin failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_found_by_name_and_removed() {
        let dir = std::env::temp_dir().join(format!("ferrolb-pins-{}", std::process::id()));
        let node = node_dir(&dir, "node-1");
        std::fs::create_dir_all(&node).expect("dir");
        assert_eq!(link_pin(&node, "eth0"), node.join("link-eth0"));
        for name in ["link-eth1", "link-eth0", "other"] {
            std::fs::write(node.join(name), b"").expect("file");
        }
        let pins = predecessor_pins(&node);
        assert_eq!(pins, [node.join("link-eth0"), node.join("link-eth1")]);
        unpin(&pins);
        assert!(predecessor_pins(&node).is_empty());
        assert!(predecessor_pins(&dir.join("absent")).is_empty());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
