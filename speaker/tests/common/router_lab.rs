//! The two-namespace lab of the interop tests: namespace "them" runs a routing daemon (BIRD,
//! FRR), namespace "us" runs our code in-process (a thread that entered it), joined by a veth
//! pair with one IPv4 and one IPv6 address on each side. Built on `ferrolb_lab::Scratch`, so
//! daemons are stopped by PID and the namespaces deleted on drop, also when an assertion fails,
//! and by the next run if this one was killed.
//!
//! Each lab has namespaces of its own (the veth pair is created inside them, never in the root
//! namespace), so parallel tests share the same addresses without clashing.

use ferrolb_lab::{LabProcess, Netns, Scratch};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The daemon's addresses and ours.
pub const THEIR_V4: &str = "10.200.42.1";
pub const OUR_V4: &str = "10.200.42.2";
pub const THEIR_V6: &str = "fd00:200:0:42::1";
pub const OUR_V6: &str = "fd00:200:0:42::2";

/// See the module comment.
pub struct RouterLab {
    /// The routing daemon's namespace.
    pub them: Netns,
    /// Ours.
    pub us: Netns,
    dir: PathBuf,
    // Dropped before `lab`: daemons stop (SIGTERM, then SIGKILL) before their namespace goes.
    daemons: Vec<LabProcess>,
    lab: Scratch,
}

impl RouterLab {
    /// Creates the namespaces, the link and the addresses, and a scratch directory (the lab's
    /// log directory, kept when a test fails).
    pub fn new(tag: &str) -> Self {
        let lab = Scratch::new().unwrap_or_else(|e| panic!("{tag} lab: {e}"));
        let them = lab.netns("them").expect("namespace them");
        let us = lab.netns("us").expect("namespace us");
        lab.veth(&them, "rtr0", &us, "us0").expect("veth pair");
        for (ns, dev, v4, v6) in [
            (&them, "rtr0", THEIR_V4, THEIR_V6),
            (&us, "us0", OUR_V4, OUR_V6),
        ] {
            ns.add_addr(dev, &format!("{v4}/24")).expect("IPv4 address");
            ns.add_addr(dev, &format!("{v6}/64")).expect("IPv6 address");
        }
        RouterLab {
            them,
            us,
            dir: lab.log_dir().to_path_buf(),
            daemons: Vec::new(),
            lab,
        }
    }

    /// A file in the lab's scratch directory.
    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// Starts `args` in the daemon namespace as process `name` (its output in the lab's
    /// `them-<name>.log`); returns its index for [`RouterLab::kill`].
    fn spawn(&mut self, name: &str, args: &[&str]) -> usize {
        let p = self
            .them
            .spawn(name, args)
            .unwrap_or_else(|e| panic!("starting {args:?}: {e}"));
        self.daemons.push(p);
        self.daemons.len() - 1
    }

    /// Kills daemon `index` with SIGKILL (by PID) and reaps it.
    pub fn kill(&mut self, index: usize) {
        let p = &self.daemons[index];
        p.kill()
            .unwrap_or_else(|e| panic!("killing {}: {e}", p.name()));
        let _ = p.wait_timeout(Duration::from_secs(5));
    }

    /// Path of BIRD's control socket.
    pub fn bird_ctl(&self) -> String {
        self.path("bird.ctl")
    }

    /// Starts BIRD (router id [`THEIR_V4`], logging to `bird.log`) with `protocols`, waits
    /// for its control socket, and returns its index.
    pub fn start_bird(&mut self, protocols: &str) -> usize {
        let conf = format!(
            "router id {THEIR_V4};\nlog \"{}\" all;\nprotocol device {{}}\n{protocols}\n",
            self.path("bird.log")
        );
        let conf_path = self.path("bird.conf");
        std::fs::write(&conf_path, conf).expect("bird.conf");
        let ctl = self.bird_ctl();
        let index = self.spawn("bird", &["bird", "-f", "-c", &conf_path, "-s", &ctl]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.birdc(&["show", "status"]).contains("BIRD") {
                return index;
            }
            if !self.daemons[index].is_running() {
                break; // exited: a configuration error, reported below
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "bird did not start; output: {}; log: {}",
            self.daemons[index].log(),
            self.bird_log()
        );
    }

    /// `birdc` output (empty when it fails).
    pub fn birdc(&self, args: &[&str]) -> String {
        birdc_at(&self.bird_ctl(), args)
    }

    /// BIRD's log.
    pub fn bird_log(&self) -> String {
        std::fs::read_to_string(self.path("bird.log")).unwrap_or_default()
    }

    /// FRR's directory (configuration, pid files, sockets, logs), readable by the frr user.
    pub fn frr_dir(&self) -> String {
        self.path("frr")
    }

    /// Writes FRR's configuration; call before [`RouterLab::start_frr_daemon`].
    pub fn frr_conf(&self, conf: &str) {
        let dir = self.frr_dir();
        std::fs::create_dir_all(&dir).expect("frr dir");
        std::fs::write(format!("{dir}/frr.conf"), conf).expect("frr.conf");
        let out = Command::new("chown")
            .args(["-R", "frr:frr", &dir])
            .output()
            .expect("running chown");
        assert!(out.status.success(), "chown frr {dir}: {out:?}");
    }

    /// Starts FRR daemon `daemon` (`zebra`, `bgpd`, `bfdd`; no watchfrr) in the daemon
    /// namespace with the lab's configuration and sockets, `extra` arguments last; returns its
    /// index.
    pub fn start_frr_daemon(&mut self, daemon: &str, extra: &[&str]) -> usize {
        let dir = self.frr_dir();
        let (binary, conf, pid, zserv) = (
            format!("/usr/lib/frr/{daemon}"),
            format!("{dir}/frr.conf"),
            format!("{dir}/{daemon}.pid"),
            format!("{dir}/zserv.api"),
        );
        let mut args = vec![
            binary.as_str(),
            "-f",
            &conf,
            "-i",
            &pid,
            "-z",
            &zserv,
            "--vty_socket",
            &dir,
            "-u",
            "frr",
            "-g",
            "frr",
            "-P",
            "0",
        ];
        args.extend_from_slice(extra);
        self.spawn(daemon, &args)
    }

    /// `vtysh -c cmd` output (empty when it fails).
    pub fn vtysh(&self, cmd: &str) -> String {
        self.them
            .exec(["vtysh", "--vty_socket", &self.frr_dir(), "-c", cmd])
            .map(|o| o.stdout)
            .unwrap_or_default()
    }
}

/// `birdc -s ctl args` output (empty when it fails); usable from a thread that holds only the
/// socket path.
pub fn birdc_at(ctl: &str, args: &[&str]) -> String {
    Command::new("birdc")
        .args(["-s", ctl])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}
