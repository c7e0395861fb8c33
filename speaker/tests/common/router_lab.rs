//! The two-namespace lab of the interop tests: namespace "them" runs a routing daemon (BIRD,
//! FRR), namespace "us" runs our code in-process (a thread that entered it), joined by a veth
//! pair with one IPv4 and one IPv6 address on each side. Daemons are stopped by PID and the
//! namespaces deleted on drop, also when an assertion fails.
//!
//! The namespaces are private to each lab (the veth pair is created inside them, never in the
//! root namespace), so parallel tests share the same addresses without clashing.

use super::{Netns, run, veth};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The daemon's addresses and ours.
pub const THEIR_V4: &str = "10.200.42.1";
pub const OUR_V4: &str = "10.200.42.2";
pub const THEIR_V6: &str = "fd00:200:42::1";
pub const OUR_V6: &str = "fd00:200:42::2";

/// See the module comment.
pub struct RouterLab {
    /// The routing daemon's namespace.
    pub them: Netns,
    /// Ours.
    pub us: Netns,
    dir: PathBuf,
    daemons: Vec<Child>,
}

impl RouterLab {
    /// Creates the namespaces, the link and the addresses, and a scratch directory.
    pub fn new(tag: &str) -> Self {
        let them = Netns::new(&format!("{tag}t"));
        let us = Netns::new(&format!("{tag}u"));
        veth(&them, "rtr0", &us, "us0");
        for (ns, dev, v4, v6) in [
            (&them, "rtr0", THEIR_V4, THEIR_V6),
            (&us, "us0", OUR_V4, OUR_V6),
        ] {
            ns.add_addr(dev, &format!("{v4}/24"));
            ns.add_addr(dev, &format!("{v6}/64"));
        }
        let dir = std::env::temp_dir().join(format!("{}-lab", us.name()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("lab dir");
        RouterLab {
            them,
            us,
            dir,
            daemons: Vec::new(),
        }
    }

    /// A file in the lab's scratch directory.
    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// Starts `args` in the daemon namespace with stderr to `stderr` (a file in the scratch
    /// directory); returns its index for [`RouterLab::kill`].
    fn spawn(&mut self, args: &[&str], stderr: &str) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", self.them.name()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.path(stderr)).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {args:?}: {e}"));
        self.daemons.push(child);
        self.daemons.len() - 1
    }

    /// Kills daemon `index` with SIGKILL (by PID) and reaps it.
    pub fn kill(&mut self, index: usize) {
        let child = &mut self.daemons[index];
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        let _ = child.wait();
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
        let index = self.spawn(&["bird", "-f", "-c", &conf_path, "-s", &ctl], "bird.stderr");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.birdc(&["show", "status"]).contains("BIRD") {
                return index;
            }
            if let Ok(Some(_)) = self.daemons[index].try_wait() {
                break; // exited: a configuration error, reported below
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "bird did not start; stderr: {}; log: {}",
            std::fs::read_to_string(self.path("bird.stderr")).unwrap_or_default(),
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
        run(&["chown", "-R", "frr:frr", &dir]);
        // The scratch directory must be traversable by the frr user.
        run(&["chmod", "755", &self.dir.display().to_string()]);
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
        self.spawn(&args, &format!("frr/{daemon}.stderr"))
    }

    /// `vtysh -c cmd` output (empty when it fails).
    pub fn vtysh(&self, cmd: &str) -> String {
        Command::new("ip")
            .args(["netns", "exec", self.them.name(), "vtysh"])
            .args(["--vty_socket", &self.frr_dir()])
            .args(["-c", cmd])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
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

impl Drop for RouterLab {
    fn drop(&mut self) {
        // Daemons first (SIGTERM, then SIGKILL after 3 s), by PID; the namespaces go when the
        // fields drop after this body.
        for child in &mut self.daemons {
            if let Ok(Some(_)) = child.try_wait() {
                continue;
            }
            // SAFETY: kill(2) on a child we spawned and have not reaped yet.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
