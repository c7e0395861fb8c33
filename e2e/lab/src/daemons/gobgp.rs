//! GoBGP: configuration, launch of gobgpd in a lab namespace, `gobgp` CLI queries.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::peer::BgpPeer;
use super::{wait_started, write_file};
use crate::ns::Netns;
use crate::process::LabProcess;
use crate::{Result, root, wait_until};

/// gobgpd configuration (TOML).
#[derive(Debug, Clone)]
pub struct GobgpConfig {
    pub router_id: Ipv4Addr,
    pub asn: u32,
    pub peers: Vec<BgpPeer>,
    /// gRPC API port on 127.0.0.1 of the namespace.
    pub api_port: u16,
}

impl GobgpConfig {
    pub fn new(router_id: Ipv4Addr, asn: u32) -> Self {
        GobgpConfig {
            router_id,
            asn,
            peers: Vec::new(),
            api_port: 50051,
        }
    }

    pub fn peer(mut self, p: BgpPeer) -> Self {
        self.peers.push(p);
        self
    }

    pub fn render(&self) -> Result<String> {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(
            w,
            "[global.config]\n  as = {}\n  router-id = \"{}\"",
            self.asn, self.router_id
        );
        for p in &self.peers {
            p.check()?;
            let _ = writeln!(w, "[[neighbors]]\n  [neighbors.config]");
            let _ = writeln!(
                w,
                "    neighbor-address = \"{}\"\n    peer-as = {}",
                p.address, p.asn
            );
            if let Some(pw) = &p.password {
                let _ = writeln!(w, "    auth-password = \"{pw}\"");
            }
            let _ = writeln!(w, "  [neighbors.timers.config]");
            let _ = writeln!(
                w,
                "    hold-time = {}\n    keepalive-interval = {}\n    connect-retry = 2",
                p.hold_time,
                (p.hold_time / 3).max(1)
            );
            if p.passive {
                let _ = writeln!(w, "  [neighbors.transport.config]\n    passive-mode = true");
            }
            if let Some(ttl) = p.multihop {
                let _ = writeln!(
                    w,
                    "  [neighbors.ebgp-multihop.config]\n    enabled = true\n    multihop-ttl = {ttl}"
                );
            }
            if p.graceful_restart {
                let _ = writeln!(
                    w,
                    "  [neighbors.graceful-restart.config]\n    enabled = true\n    helper-only = true\n    notification-enabled = true"
                );
            }
            for (on, fam) in [(p.ipv4, "ipv4-unicast"), (p.ipv6, "ipv6-unicast")] {
                if on {
                    let _ = writeln!(
                        w,
                        "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{fam}\""
                    );
                    if p.graceful_restart {
                        let _ = writeln!(
                            w,
                            "    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true"
                        );
                    }
                }
            }
        }
        Ok(s)
    }
}

/// A running gobgpd; queried with the `gobgp` CLI inside the same namespace.
#[derive(Debug)]
pub struct Gobgp {
    ns: Netns,
    api_port: u16,
    process: LabProcess,
}

impl Gobgp {
    pub fn start(ns: &Netns, cfg: &GobgpConfig) -> Result<Gobgp> {
        root::require_tool("gobgpd")?;
        root::require_tool("gobgp")?;
        let conf = ns.file("gobgpd.toml");
        write_file(&conf, &cfg.render()?)?;
        let conf_s = conf.to_string_lossy().into_owned();
        let api = format!("127.0.0.1:{}", cfg.api_port);
        let process = ns.spawn(
            "gobgpd",
            ["gobgpd", "-t", "toml", "-f", &conf_s, "--api-hosts", &api],
        )?;
        let g = Gobgp {
            ns: ns.clone(),
            api_port: cfg.api_port,
            process,
        };
        wait_started(
            &format!("gobgpd in {} to answer", ns.name()),
            &[&g.process],
            || g.gobgp("global").is_ok(),
        )?;
        Ok(g)
    }

    /// Runs `gobgp ARGS…` (words separated by spaces) against this gobgpd.
    pub fn gobgp(&self, args: &str) -> Result<String> {
        let port = self.api_port.to_string();
        let argv = ["gobgp", "-u", "127.0.0.1", "-p", port.as_str()]
            .into_iter()
            .chain(args.split_whitespace());
        Ok(self.ns.exec(argv.collect::<Vec<_>>())?.check()?.stdout)
    }

    pub fn is_established(&self, peer: IpAddr) -> bool {
        self.gobgp(&format!("neighbor {peer}")).is_ok_and(|o| {
            // gobgp 3.x prints e.g. "BGP state = BGP_FSM_ESTABLISHED"; older
            // releases printed "established": match the line case-insensitively.
            o.lines().any(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("bgp state =") && l.contains("established")
            })
        })
    }

    pub fn wait_established(&self, peer: IpAddr, timeout: Duration) -> Result<()> {
        wait_until(
            &format!("GoBGP session to {peer} established"),
            timeout,
            || self.is_established(peer),
        )
    }

    /// `gobgp global rib -a ipv4|ipv6`.
    pub fn rib(&self, v6: bool) -> Result<String> {
        self.gobgp(if v6 {
            "global rib -a ipv6"
        } else {
            "global rib -a ipv4"
        })
    }

    pub fn process(&self) -> &LabProcess {
        &self.process
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemons::peer::test_peer as peer;

    #[test]
    fn gobgp_config_renders() {
        let c =
            GobgpConfig::new(Ipv4Addr::new(10, 200, 0, 1), 64500).peer(peer().families(true, true));
        let s = c.render().unwrap();
        assert!(s.contains("auth-password = \"s3cret\""));
        assert!(s.contains("ipv6-unicast"));
        assert!(!s.contains("graceful-restart"));
        let gr = GobgpConfig::new(Ipv4Addr::new(10, 200, 0, 1), 64500)
            .peer(peer().graceful_restart(true))
            .render()
            .unwrap();
        assert!(gr.contains("[neighbors.graceful-restart.config]\n    enabled = true\n    helper-only = true\n    notification-enabled = true\n"));
        assert!(
            gr.contains("[neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n")
        );
    }
}
