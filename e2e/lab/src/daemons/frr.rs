//! FRR (zebra + bgpd, and bfdd when a peer runs BFD): configuration, launch in a lab
//! namespace, `vtysh` queries.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};

use super::peer::BgpPeer;
use super::{wait_started, write_file};
use crate::ns::Netns;
use crate::process::LabProcess;
use crate::{LabError, Result, root, wait_until};

/// FRR bgpd configuration (integrated frr.conf read by zebra and bgpd).
#[derive(Debug, Clone)]
pub struct FrrConfig {
    pub hostname: String,
    pub router_id: Ipv4Addr,
    pub asn: u32,
    pub peers: Vec<BgpPeer>,
    pub networks_v4: Vec<Ipv4Net>,
    pub networks_v6: Vec<Ipv6Net>,
    /// Raw text appended to the configuration.
    pub extra: String,
}

impl FrrConfig {
    pub fn new(hostname: impl Into<String>, router_id: Ipv4Addr, asn: u32) -> Self {
        FrrConfig {
            hostname: hostname.into(),
            router_id,
            asn,
            peers: Vec::new(),
            networks_v4: Vec::new(),
            networks_v6: Vec::new(),
            extra: String::new(),
        }
    }

    pub fn peer(mut self, p: BgpPeer) -> Self {
        self.peers.push(p);
        self
    }

    /// Whether some peer runs BFD (then bfdd is started too).
    pub fn bfd(&self) -> bool {
        self.peers.iter().any(|p| p.bfd.is_some())
    }

    pub fn render(&self) -> Result<String> {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "frr defaults traditional");
        let _ = writeln!(w, "hostname {}", self.hostname);
        let _ = writeln!(w, "log stdout informational");
        let _ = writeln!(w, "!");
        if self.bfd() {
            // One bfdd profile per peer with BFD, named after the peer.
            let _ = writeln!(w, "bfd");
            for p in &self.peers {
                if let Some(b) = p.bfd {
                    let _ = writeln!(w, " profile {}", p.name);
                    let _ = writeln!(w, "  receive-interval {}", b.receive_ms);
                    let _ = writeln!(w, "  transmit-interval {}", b.transmit_ms);
                    let _ = writeln!(w, "  detect-multiplier {}", b.multiplier);
                    if b.passive {
                        let _ = writeln!(w, "  passive-mode");
                    }
                    if let Some(ms) = b.echo_ms {
                        let _ = writeln!(w, "  echo-mode");
                        let _ = writeln!(w, "  echo transmit-interval {ms}");
                        let _ = writeln!(w, "  echo receive-interval {ms}");
                    }
                    let _ = writeln!(w, " !");
                }
            }
            let _ = writeln!(w, "!");
        }
        let _ = writeln!(w, "router bgp {}", self.asn);
        let _ = writeln!(w, " bgp router-id {}", self.router_id);
        // Without this FRR 8 sends/accepts nothing on eBGP sessions lacking policies.
        let _ = writeln!(w, " no bgp ebgp-requires-policy");
        let _ = writeln!(w, " no bgp network import-check");
        for p in &self.peers {
            p.check()?;
            let a = p.address;
            let _ = writeln!(w, " neighbor {a} remote-as {}", p.asn);
            let _ = writeln!(w, " neighbor {a} description {}", p.name);
            let keepalive = (p.hold_time / 3).max(1);
            let _ = writeln!(w, " neighbor {a} timers {keepalive} {}", p.hold_time);
            let _ = writeln!(w, " neighbor {a} timers connect 2");
            if let Some(pw) = &p.password {
                let _ = writeln!(w, " neighbor {a} password {pw}");
            }
            if p.passive {
                let _ = writeln!(w, " neighbor {a} passive");
            }
            if let Some(ttl) = p.multihop {
                let _ = writeln!(w, " neighbor {a} ebgp-multihop {ttl}");
            }
            if p.bfd.is_some() {
                let _ = writeln!(w, " neighbor {a} bfd profile {}", p.name);
            }
            if p.graceful_restart {
                let _ = writeln!(w, " neighbor {a} graceful-restart-helper");
            }
        }
        let _ = writeln!(w, " address-family ipv4 unicast");
        for n in &self.networks_v4 {
            let _ = writeln!(w, "  network {n}");
        }
        for p in &self.peers {
            // "traditional" activates IPv4 unicast for every neighbor by default.
            let neg = if p.ipv4 { "" } else { "no " };
            let _ = writeln!(w, "  {neg}neighbor {} activate", p.address);
        }
        let _ = writeln!(w, " exit-address-family");
        let _ = writeln!(w, " address-family ipv6 unicast");
        for n in &self.networks_v6 {
            let _ = writeln!(w, "  network {n}");
        }
        for p in self.peers.iter().filter(|p| p.ipv6) {
            let _ = writeln!(w, "  neighbor {} activate", p.address);
        }
        let _ = writeln!(w, " exit-address-family");
        let _ = writeln!(w, "!");
        s.push_str(&self.extra);
        Ok(s)
    }
}

/// A running FRR: zebra + bgpd (+ bfdd when a peer runs BFD) as user frr, sockets in
/// `<log_dir>/<role>-frr/`.
#[derive(Debug)]
pub struct Frr {
    ns: Netns,
    dir: PathBuf,
    // Field order = drop order: bgpd, then bfdd, then zebra.
    bgpd: LabProcess,
    bfdd: Option<LabProcess>,
    zebra: LabProcess,
}

pub const FRR_ZEBRA: &str = "/usr/lib/frr/zebra";
pub const FRR_BGPD: &str = "/usr/lib/frr/bgpd";
pub const FRR_BFDD: &str = "/usr/lib/frr/bfdd";

impl Frr {
    pub fn start(ns: &Netns, cfg: &FrrConfig) -> Result<Frr> {
        for t in [FRR_ZEBRA, FRR_BGPD, "vtysh"] {
            root::require_tool(t)?;
        }
        if cfg.bfd() {
            root::require_tool(FRR_BFDD)?;
        }
        let dir = ns.file("frr");
        std::fs::create_dir_all(&dir)
            .map_err(|e| LabError::io(format!("creating {}", dir.display()), e))?;
        let conf = dir.join("frr.conf");
        write_file(&conf, &cfg.render()?)?;
        let d = dir.to_string_lossy().into_owned();
        // The daemons drop to user frr and must write pid files and sockets here.
        ns.exec(["chown", "-R", "frr:frr", &d])?.check()?;
        let conf_s = conf.to_string_lossy().into_owned();
        let zserv = format!("{d}/zserv.api");
        let args = |daemon: &str| -> Vec<String> {
            let mut v: Vec<String> = vec![
                daemon.into(),
                "-f".into(),
                conf_s.clone(),
                "-i".into(),
                format!("{d}/{}.pid", daemon.rsplit('/').next().unwrap_or("frr")),
                "-z".into(),
                zserv.clone(),
                "--vty_socket".into(),
                d.clone(),
                "-u".into(),
                "frr".into(),
                "-g".into(),
                "frr".into(),
            ];
            // No vty TCP listener: only the unix sockets in our dir.
            v.extend(["-P".into(), "0".into()]);
            v
        };
        let zpath = PathBuf::from(&zserv);
        // A restarted FRR finds the socket of the killed zebra: remove it, so that waiting for
        // it below waits for the new zebra.
        if let Err(e) = std::fs::remove_file(&zpath)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(LabError::io(format!("removing {zserv}"), e));
        }
        let zebra = ns.spawn("zebra", args(FRR_ZEBRA))?;
        wait_started(
            &format!("zebra in {} to listen", ns.name()),
            &[&zebra],
            || zpath.exists(),
        )?;
        // bfdd before bgpd, so that bgpd's BFD registrations (via zebra) find it.
        let bfdd = if cfg.bfd() {
            let mut a = args(FRR_BFDD);
            // Its control socket defaults to /var/run/frr: keep it in our dir.
            a.extend(["--bfdctl".into(), format!("{d}/bfdd.sock")]);
            Some(ns.spawn("bfdd", a)?)
        } else {
            None
        };
        let bgpd = ns.spawn("bgpd", args(FRR_BGPD))?;
        let frr = Frr {
            ns: ns.clone(),
            dir,
            bgpd,
            bfdd,
            zebra,
        };
        wait_started(
            &format!("FRR bgpd in {} to answer", ns.name()),
            &[&frr.zebra, &frr.bgpd],
            || frr.vtysh("show bgp summary").is_ok(),
        )?;
        if let Some(bfdd) = &frr.bfdd {
            wait_started(
                &format!("FRR bfdd in {} to answer", ns.name()),
                &[&frr.zebra, bfdd],
                || frr.vtysh("show bfd peers").is_ok(),
            )?;
        }
        Ok(frr)
    }

    /// Runs one vtysh command and returns stdout.
    pub fn vtysh(&self, cmd: &str) -> Result<String> {
        let d = self.dir.to_string_lossy().into_owned();
        Ok(self
            .ns
            .exec(["vtysh", "--vty_socket", &d, "-c", cmd])?
            .check()?
            .stdout)
    }

    pub fn is_established(&self, peer: IpAddr) -> bool {
        self.vtysh(&format!("show bgp neighbors {peer} json"))
            .map(|o| {
                let compact: String = o.chars().filter(|c| !c.is_whitespace()).collect();
                compact.contains("\"bgpState\":\"Established\"")
            })
            .unwrap_or(false)
    }

    pub fn wait_established(&self, peer: IpAddr, timeout: Duration) -> Result<()> {
        wait_until(
            &format!("FRR session to {peer} Established"),
            timeout,
            || self.is_established(peer),
        )
    }

    pub fn zebra(&self) -> &LabProcess {
        &self.zebra
    }

    pub fn bgpd(&self) -> &LabProcess {
        &self.bgpd
    }

    /// bfdd, when a peer runs BFD.
    pub fn bfdd(&self) -> Option<&LabProcess> {
        self.bfdd.as_ref()
    }

    /// `show bfd peers` state of the session to `peer` (`up`, `down`, `init`, ...).
    pub fn bfd_status(&self, peer: IpAddr) -> Option<String> {
        let out = self.vtysh(&format!("show bfd peer {peer} json")).ok()?;
        let compact: String = out.chars().filter(|c| !c.is_whitespace()).collect();
        let rest = compact.split("\"status\":\"").nth(1)?;
        rest.split('"').next().map(str::to_string)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemons::peer::test_peer as peer;

    #[test]
    fn frr_config_renders() {
        let v6 = BgpPeer::new("node1v6", "fd00:200::11".parse().unwrap(), 64512);
        let c = FrrConfig::new("r", Ipv4Addr::new(10, 200, 0, 1), 64500)
            .peer(peer())
            .peer(v6);
        let s = c.render().unwrap();
        assert!(s.contains("no bgp ebgp-requires-policy"));
        assert!(s.contains("  no neighbor fd00:200::11 activate"));
        assert!(s.contains("  neighbor 10.200.0.11 activate"));
        assert!(!s.contains("graceful-restart"));
        let gr = FrrConfig::new("r", Ipv4Addr::new(10, 200, 0, 1), 64500)
            .peer(peer().graceful_restart(true))
            .render()
            .unwrap();
        assert!(gr.contains(" neighbor 10.200.0.11 graceful-restart-helper\n"));
    }
}
