//! Routing daemons as BGP peers in the lab: config writers and launchers for
//! BIRD 2, FRR (zebra + bgpd) and GoBGP, each run in the foreground inside a lab
//! namespace (never daemonized, so the PID we hold is the daemon and teardown
//! can stop it), with helpers to query them (`birdc`, `vtysh`, `gobgp`).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::netns::Netns;
use crate::process::LabProcess;
use crate::{LabError, Result, root, wait_until};

/// How long a daemon gets to answer its control socket after start.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// One BGP neighbor, as seen from the daemon being configured.
#[derive(Debug, Clone)]
pub struct BgpPeer {
    /// Protocol name (BIRD) / description; `[a-z0-9_]`.
    pub name: String,
    pub address: IpAddr,
    pub asn: u32,
    /// Exchange IPv4 unicast on this session.
    pub ipv4: bool,
    /// Exchange IPv6 unicast on this session (FRR wants IPv6 routes on an IPv6
    /// session; GoBGP accepts both on one).
    pub ipv6: bool,
    /// TCP MD5 password (RFC 2385).
    pub password: Option<String>,
    /// Wait for the peer to connect.
    pub passive: bool,
    /// eBGP multihop TTL.
    pub multihop: Option<u8>,
    /// Hold time in seconds (keepalive is a third of it).
    pub hold_time: u16,
    /// Run BFD on this session (BIRD: `bfd { .. }` in the BGP protocol plus a `protocol
    /// bfd`; FRR: a bfdd profile and `neighbor .. bfd profile`, bfdd started beside bgpd).
    pub bfd: Option<BfdTimers>,
}

/// BFD timers of a daemon's session (RFC 5880 intervals in milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdTimers {
    /// Required minimum receive interval, ms.
    pub receive_ms: u32,
    /// Desired minimum transmit interval, ms.
    pub transmit_ms: u32,
    /// Detection multiplier.
    pub multiplier: u8,
    /// Wait for the peer to send first.
    pub passive: bool,
}

impl BfdTimers {
    /// `ms` both ways, multiplier `multiplier`, active.
    pub fn new(ms: u32, multiplier: u8) -> Self {
        BfdTimers {
            receive_ms: ms,
            transmit_ms: ms,
            multiplier,
            passive: false,
        }
    }
}

impl BgpPeer {
    /// A peer with the address family of `address` enabled, hold time 9 s.
    pub fn new(name: impl Into<String>, address: IpAddr, asn: u32) -> Self {
        BgpPeer {
            name: name.into(),
            address,
            asn,
            ipv4: address.is_ipv4(),
            ipv6: address.is_ipv6(),
            password: None,
            passive: false,
            multihop: None,
            hold_time: 9,
            bfd: None,
        }
    }

    /// Runs BFD on this session with `timers`.
    pub fn bfd(mut self, timers: BfdTimers) -> Self {
        self.bfd = Some(timers);
        self
    }

    pub fn families(mut self, ipv4: bool, ipv6: bool) -> Self {
        self.ipv4 = ipv4;
        self.ipv6 = ipv6;
        self
    }

    pub fn password(mut self, p: impl Into<String>) -> Self {
        self.password = Some(p.into());
        self
    }

    pub fn passive(mut self, yes: bool) -> Self {
        self.passive = yes;
        self
    }

    pub fn multihop(mut self, ttl: u8) -> Self {
        self.multihop = Some(ttl);
        self
    }

    pub fn hold_time(mut self, secs: u16) -> Self {
        self.hold_time = secs;
        self
    }

    fn check(&self) -> Result<()> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(LabError::Config(format!(
                "BGP peer name {:?} must be [A-Za-z0-9_]+",
                self.name
            )));
        }
        if let Some(p) = &self.password
            && (p.contains('"') || p.contains('\n') || p.contains(' '))
        {
            return Err(LabError::Config(format!(
                "password of peer {} must not contain quotes, spaces or newlines",
                self.name
            )));
        }
        crate::topology::ensure_lab_addr(self.address)
    }
}

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

// ---------------------------------------------------------------- BIRD 2

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

// ---------------------------------------------------------------- FRR

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

// ---------------------------------------------------------------- GoBGP

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
            for (on, fam) in [(p.ipv4, "ipv4-unicast"), (p.ipv6, "ipv6-unicast")] {
                if on {
                    let _ = writeln!(
                        w,
                        "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{fam}\""
                    );
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

    fn peer() -> BgpPeer {
        BgpPeer::new("node1", "10.200.0.11".parse().unwrap(), 64512).password("s3cret")
    }

    #[test]
    fn bird_config_renders() {
        let c = BirdConfig::new(Ipv4Addr::new(10, 200, 0, 1), 64500).peer(peer());
        let s = c.render().unwrap();
        assert!(s.contains("neighbor 10.200.0.11 as 64512;"));
        assert!(s.contains("password \"s3cret\";"));
        assert!(s.contains("merge paths on"));
    }

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
    }

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
    fn gobgp_config_renders() {
        let c =
            GobgpConfig::new(Ipv4Addr::new(10, 200, 0, 1), 64500).peer(peer().families(true, true));
        let s = c.render().unwrap();
        assert!(s.contains("auth-password = \"s3cret\""));
        assert!(s.contains("ipv6-unicast"));
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
