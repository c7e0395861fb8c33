//! BIRD 2: configuration, launch in a lab namespace, `birdc` queries.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};

use super::peer::BgpPeer;
use super::{wait_started, write_file};
use crate::ns::Netns;
use crate::process::LabProcess;
use crate::{LabError, Result, root, wait_until};

/// BIRD 2 configuration.
#[derive(Debug, Clone)]
pub struct BirdConfig {
    pub router_id: Ipv4Addr,
    pub asn: u32,
    pub peers: Vec<BgpPeer>,
    /// Install learned routes into the namespace's kernel table, with ECMP
    /// (`merge paths on`), so traffic actually follows BGP.
    pub kernel_export: bool,
    /// Prefixes announced to every peer (blackhole static routes).
    pub announce_v4: Vec<Ipv4Net>,
    pub announce_v6: Vec<Ipv6Net>,
    /// Raw text appended to the configuration.
    pub extra: String,
}

impl BirdConfig {
    pub fn new(router_id: Ipv4Addr, asn: u32) -> Self {
        BirdConfig {
            router_id,
            asn,
            peers: Vec::new(),
            kernel_export: true,
            announce_v4: Vec::new(),
            announce_v6: Vec::new(),
            extra: String::new(),
        }
    }

    pub fn peer(mut self, p: BgpPeer) -> Self {
        self.peers.push(p);
        self
    }

    pub fn render(&self) -> Result<String> {
        let mut s = String::new();
        let w = &mut s;
        // Infallible: writing into a String.
        let _ = writeln!(w, "router id {};", self.router_id);
        let _ = writeln!(w, "log stderr all;");
        let _ = writeln!(w, "protocol device {{ scan time 10; }}");
        if self.kernel_export {
            for fam in ["ipv4", "ipv6"] {
                let _ = writeln!(
                    w,
                    "protocol kernel k_{fam} {{ {fam} {{ import none; export all; }}; merge paths on; }}"
                );
            }
        }
        if !self.announce_v4.is_empty() {
            let _ = writeln!(w, "protocol static st_ipv4 {{ ipv4;");
            for n in &self.announce_v4 {
                let _ = writeln!(w, "  route {n} blackhole;");
            }
            let _ = writeln!(w, "}}");
        }
        if !self.announce_v6.is_empty() {
            let _ = writeln!(w, "protocol static st_ipv6 {{ ipv6;");
            for n in &self.announce_v6 {
                let _ = writeln!(w, "  route {n} blackhole;");
            }
            let _ = writeln!(w, "}}");
        }
        if self.peers.iter().any(|p| p.bfd.is_some()) {
            // The BGP protocols' `bfd { .. }` blocks need a BFD protocol instance.
            let _ = writeln!(w, "protocol bfd {{}}");
        }
        for p in &self.peers {
            p.check()?;
            let _ = writeln!(w, "protocol bgp {} {{", p.name);
            let _ = writeln!(w, "  local as {};", self.asn);
            let _ = writeln!(w, "  neighbor {} as {};", p.address, p.asn);
            let _ = writeln!(w, "  hold time {}; connect retry time 2;", p.hold_time);
            if p.passive {
                let _ = writeln!(w, "  passive on;");
            }
            if let Some(pw) = &p.password {
                let _ = writeln!(w, "  password \"{pw}\";");
            }
            if let Some(ttl) = p.multihop {
                let _ = writeln!(w, "  multihop {ttl};");
            }
            if p.graceful_restart {
                let _ = writeln!(w, "  graceful restart on;");
            }
            if let Some(b) = p.bfd {
                if p.multihop.is_some() {
                    // BIRD: "Multihop BGP with BFD requires specified local address", and
                    // BgpPeer has none.
                    return Err(LabError::Config(format!(
                        "peer {}: BFD on a multihop BGP session is not supported by the BIRD \
                         config writer (it needs a local address)",
                        p.name
                    )));
                }
                let _ = writeln!(
                    w,
                    "  bfd {{ min rx interval {} ms; min tx interval {} ms; multiplier {}; passive {}; }};",
                    b.receive_ms,
                    b.transmit_ms,
                    b.multiplier,
                    if b.passive { "on" } else { "off" }
                );
            }
            for (on, fam) in [(p.ipv4, "ipv4"), (p.ipv6, "ipv6")] {
                if on {
                    let _ = writeln!(
                        w,
                        "  {fam} {{ import all; export where source = RTS_STATIC; }};"
                    );
                }
            }
            let _ = writeln!(w, "}}");
        }
        s.push_str(&self.extra);
        Ok(s)
    }
}

/// A running BIRD 2 (`bird -f`).
#[derive(Debug)]
pub struct Bird {
    ns: Netns,
    ctl: PathBuf,
    conf: PathBuf,
    process: LabProcess,
}

impl Bird {
    /// Writes the config (`<role>-bird.conf`), checks it with `bird -p`, starts
    /// BIRD and waits until `birdc show status` answers.
    pub fn start(ns: &Netns, cfg: &BirdConfig) -> Result<Bird> {
        root::require_tool("bird")?;
        root::require_tool("birdc")?;
        let conf = ns.file("bird.conf");
        let ctl = ns.file("bird.ctl");
        write_file(&conf, &cfg.render()?)?;
        let conf_s = conf.to_string_lossy().into_owned();
        let ctl_s = ctl.to_string_lossy().into_owned();
        ns.exec(["bird", "-p", "-c", &conf_s])?.check()?;
        let process = ns.spawn("bird", ["bird", "-f", "-c", &conf_s, "-s", &ctl_s])?;
        let bird = Bird {
            ns: ns.clone(),
            ctl,
            conf,
            process,
        };
        wait_started(
            &format!("BIRD in {} to answer", ns.name()),
            &[&bird.process],
            || {
                bird.birdc("show status")
                    .is_ok_and(|o| o.contains("Daemon is up"))
            },
        )?;
        Ok(bird)
    }

    /// Runs a `birdc` command (words separated by spaces) and returns stdout.
    pub fn birdc(&self, cmd: &str) -> Result<String> {
        let ctl = self.ctl.to_string_lossy().into_owned();
        let argv = ["birdc", "-s", ctl.as_str()]
            .into_iter()
            .chain(cmd.split_whitespace());
        Ok(self.ns.exec(argv.collect::<Vec<_>>())?.check()?.stdout)
    }

    /// State of protocol `name` from `show protocols` (e.g. "Established",
    /// "Active", "Connect"); None if unknown.
    pub fn protocol_info(&self, name: &str) -> Result<Option<String>> {
        let out = self.birdc("show protocols")?;
        Ok(out.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&name)).then(|| f.get(5).map(|s| s.to_string()).unwrap_or_default())
        }))
    }

    pub fn is_established(&self, name: &str) -> bool {
        matches!(self.protocol_info(name), Ok(Some(s)) if s == "Established")
    }

    pub fn wait_established(&self, name: &str, timeout: Duration) -> Result<()> {
        wait_until(&format!("BIRD session {name} Established"), timeout, || {
            self.is_established(name)
        })
    }

    /// `birdc configure` after rewriting the config file.
    pub fn reconfigure(&self, cfg: &BirdConfig) -> Result<String> {
        write_file(&self.conf, &cfg.render()?)?;
        self.birdc("configure")
    }

    pub fn process(&self) -> &LabProcess {
        &self.process
    }

    pub fn ctl_path(&self) -> &Path {
        &self.ctl
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemons::peer::test_peer as peer;

    #[test]
    fn bird_config_renders() {
        let c = BirdConfig::new(Ipv4Addr::new(10, 200, 0, 1), 64500).peer(peer());
        let s = c.render().unwrap();
        assert!(s.contains("neighbor 10.200.0.11 as 64512;"));
        assert!(s.contains("password \"s3cret\";"));
        assert!(s.contains("merge paths on"));
        assert!(!s.contains("graceful restart"));
        let gr = BirdConfig::new(Ipv4Addr::new(10, 200, 0, 1), 64500)
            .peer(peer().graceful_restart(true))
            .render()
            .unwrap();
        assert!(gr.contains("  graceful restart on;\n"));
    }
}
