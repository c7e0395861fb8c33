//! keepalived (VRRPv3) in a lab namespace: the reference layer-2 failover that benchmarks run
//! beside ferrolb.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::Result;
use crate::ns::Netns;
use crate::process::{LabProcess, ProcessSpec};

/// One VRRP instance holding one IPv4 VIP on one interface.
#[derive(Debug, Clone)]
pub struct KeepalivedConfig {
    /// Interface VRRP runs on and the VIP is added to.
    pub iface: String,
    /// The virtual address.
    pub vip: Ipv4Addr,
    /// Prefix length the VIP is added with.
    pub prefix_len: u8,
    /// VRRP priority (the highest running instance holds the VIP).
    pub priority: u8,
}

impl KeepalivedConfig {
    /// keepalived.conf: VRRPv3 with the fastest advertisement interval it accepts.
    pub fn render(&self) -> Result<String> {
        crate::topology::ensure_lab_addr(self.vip.into())?;
        let (iface, priority, vip, len) = (&self.iface, self.priority, self.vip, self.prefix_len);
        // VRRPv3 takes advert_int in centiseconds: 0.01 s is the fastest it accepts. Preemption
        // stays on (the highest priority takes the VIP back), as it is keepalived's default.
        Ok(format!(
            "global_defs {{\n  vrrp_version 3\n  script_user root\n  enable_script_security\n  vrrp_garp_master_delay 0\n  vrrp_garp_master_repeat 1\n}}\n\
             vrrp_instance VI_BENCH {{\n  state BACKUP\n  interface {iface}\n  virtual_router_id 51\n  priority {priority}\n  advert_int 0.01\n  virtual_ipaddress {{\n    {vip}/{len} dev {iface}\n  }}\n}}\n"
        ))
    }
}

/// A running keepalived (in the foreground, stopped by PID with the lab).
pub struct Keepalived {
    proc: LabProcess,
    vrrp_pidfile: PathBuf,
}

impl Keepalived {
    /// Starts keepalived in `ns`; `instance` names its files in the namespace's log directory.
    pub fn start(ns: &Netns, instance: &str, cfg: &KeepalivedConfig) -> Result<Keepalived> {
        let dir = ns.log_dir().to_path_buf();
        let conf = dir.join(format!("keepalived-{instance}.conf"));
        let pid = dir.join(format!("keepalived-{instance}.pid"));
        let vrrp_pidfile = dir.join(format!("keepalived-vrrp-{instance}.pid"));
        let _ = std::fs::remove_file(&vrrp_pidfile);
        super::write_file(&conf, &cfg.render()?)?;
        let spec = ProcessSpec::new("keepalived", "keepalived")
            .args(["-n", "-l", "-D", "-P", "-R", "--no_bfd", "-f"])
            .arg(&conf)
            .arg("-p")
            .arg(&pid)
            .arg("-r")
            .arg(&vrrp_pidfile)
            .arg("-i")
            .arg(instance);
        let proc = ns.spawn_spec(&spec)?;
        Ok(Keepalived { proc, vrrp_pidfile })
    }

    /// The parent process.
    pub fn process(&self) -> &LabProcess {
        &self.proc
    }

    /// The VRRP child's pid file (written once the child runs).
    pub fn vrrp_pidfile(&self) -> &Path {
        &self.vrrp_pidfile
    }

    /// Whether `iface` in `ns` holds `vip` now.
    pub fn holds_vip(ns: &Netns, iface: &str, vip: Ipv4Addr) -> Result<bool> {
        let out = ns.ip(["-4", "addr", "show", "dev", iface])?;
        Ok(out.contains(&format!("inet {vip}/")))
    }
}

impl std::fmt::Debug for Keepalived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keepalived")
            .field("proc", &self.proc)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LabError;

    #[test]
    fn renders_one_vrrp_instance() {
        let cfg = KeepalivedConfig {
            iface: "eth0".into(),
            vip: Ipv4Addr::new(10, 200, 0, 250),
            prefix_len: 24,
            priority: 200,
        };
        let s = cfg.render().expect("lab address");
        assert!(s.contains("  priority 200\n"), "{s}");
        assert!(s.contains("    10.200.0.250/24 dev eth0\n"), "{s}");
        let outside = KeepalivedConfig {
            vip: Ipv4Addr::new(192, 0, 2, 1),
            ..cfg
        };
        assert!(matches!(
            outside.render(),
            Err(LabError::AddressOutsideLab(_))
        ));
    }
}
