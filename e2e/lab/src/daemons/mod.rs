//! Routing daemons as BGP peers in the lab: config writers and launchers for
//! BIRD 2, FRR (zebra + bgpd) and GoBGP, and keepalived (VRRP) as a reference for layer 2
//! failover, each run in the foreground inside a lab namespace (never daemonized, so the PID
//! we hold is the daemon and teardown can stop it), with helpers to query them (`birdc`,
//! `vtysh`, `gobgp`).

pub mod bird;
pub mod frr;
pub mod gobgp;
pub mod keepalived;
pub mod peer;

pub use bird::{Bird, BirdConfig};
pub use frr::{FRR_BFDD, FRR_BGPD, FRR_ZEBRA, Frr, FrrConfig};
pub use gobgp::{Gobgp, GobgpConfig};
pub use keepalived::{Keepalived, KeepalivedConfig};
pub use peer::{BfdTimers, BgpPeer};

use std::path::Path;
use std::time::Duration;

use crate::process::LabProcess;
use crate::{LabError, Result, wait_until};

/// How long a daemon gets to answer its control socket after start.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

fn daemon_died(name: &str, p: &LabProcess) -> LabError {
    LabError::Command {
        cmd: name.to_string(),
        status: "exited during start-up".into(),
        stderr: p.log(),
    }
}

/// Waits until `probe` holds, failing early (with the log) if the daemon exits.
fn wait_started(what: &str, procs: &[&LabProcess], mut probe: impl FnMut() -> bool) -> Result<()> {
    let mut dead = None;
    let r = wait_until(what, START_TIMEOUT, || {
        if let Some(p) = procs.iter().find(|p| !p.is_running()) {
            dead = Some(daemon_died(p.name(), p));
            return true;
        }
        probe()
    });
    match dead {
        Some(e) => Err(e),
        None => r,
    }
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| LabError::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemons::peer::test_peer as peer;
    use std::net::Ipv4Addr;

    #[test]
    fn bfd_renders_for_bird_and_frr_and_only_when_asked() {
        let plain = BirdConfig::new(Ipv4Addr::new(10, 200, 0, 1), 64500).peer(peer());
        assert!(!plain.render().unwrap().contains("bfd"));
        let frr_plain = FrrConfig::new("r", Ipv4Addr::new(10, 200, 0, 1), 64500).peer(peer());
        assert!(!frr_plain.bfd());
        assert!(!frr_plain.render().unwrap().contains("bfd"));

        let with_bfd = peer().bfd(BfdTimers::new(50, 3));
        let bird = BirdConfig::new(Ipv4Addr::new(10, 200, 0, 1), 64500)
            .peer(with_bfd.clone())
            .render()
            .unwrap();
        assert!(bird.contains("protocol bfd {}"));
        assert!(bird.contains(
            "  bfd { min rx interval 50 ms; min tx interval 50 ms; multiplier 3; passive off; };"
        ));
        let multihop = BirdConfig::new(Ipv4Addr::new(10, 200, 0, 1), 64500)
            .peer(with_bfd.clone().multihop(2))
            .render();
        assert!(matches!(multihop, Err(LabError::Config(m)) if m.contains("local address")));

        let frr = FrrConfig::new("r", Ipv4Addr::new(10, 200, 0, 1), 64500).peer(with_bfd);
        assert!(frr.bfd());
        let s = frr.render().unwrap();
        assert!(s.contains(
            "bfd\n profile node1\n  receive-interval 50\n  transmit-interval 50\n  detect-multiplier 3\n !\n!\n"
        ));
        assert!(s.contains(" neighbor 10.200.0.11 bfd profile node1\n"));
    }

    #[test]
    fn peers_outside_lab_rejected() {
        let p = BgpPeer::new("x", "192.0.2.1".parse().unwrap(), 1);
        assert!(
            BirdConfig::new(Ipv4Addr::LOCALHOST, 1)
                .peer(p)
                .render()
                .is_err()
        );
    }
}
