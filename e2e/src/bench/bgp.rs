//! BGP table propagation: N IPv4 prefixes sent to BIRD, by ferrolb's native speaker and, side
//! by side in the same lab, by gobgpd. The prefixes stay inside the lab's 10.200.0.0/16: the
//! /32s of 10.200.64.0/18 first (16,384), then its shorter prefixes, then those of
//! 10.200.128.0/17 and 10.200.32.0/19 — 114,685 in all, enough for 100,000 distinct routes.
//! Nothing is installed in a kernel (BIRD does not export, gobgpd has no zebra), so the
//! prefixes only ever travel inside BGP messages.
//!
//! Setup: a lab with two nodes and the router. BIRD runs in the router (no kernel export, so
//! only BGP is measured) with a passive session for each node. Node 1 runs ferrolb's
//! `PeerManager` in-process (a tokio runtime whose threads joined node 1's namespace: the same
//! code the speaker runs, without the Kubernetes watches); node 2 runs gobgpd.
//!
//! Both senders hold the whole table before their session exists: ferrolb's manager gets it
//! with the peer in one `apply` (as the speaker hands over its desired table); gobgpd gets it
//! by `gobgp mrt inject global` of a generated MRT file, before `gobgp neighbor add`. The
//! figure compared is the sender's propagation time as BIRD sees it, from BIRD's own
//! millisecond timestamps: from the moment its session went Established to the import of the
//! last prefix. Wall-clock figures (from handing over / adding the neighbor until BIRD counts
//! all N, polled) are printed beside it, and for ferrolb also the time from handing the table
//! to an already Established session until BIRD counts all N.

use crate::cluster::ns_runtime;
use crate::lab::daemons::{BgpPeer, Bird, BirdConfig, Gobgp, GobgpConfig};
use crate::lab::{Lab, LabError};
use anyhow::{Context, anyhow};
use ferrolb_config::{CommunityValue, Peer, PeerAsn};
use ferrolb_speaker::bgp::manager::{Passwords, PeerManager};
use ferrolb_speaker_core::bgp::RouteAttributes;
use ferrolb_speaker_core::bgp::fsm::StopCause;
use ferrolb_speaker_core::desired::BgpAnnouncement;
use ipnet::Ipv4Net;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const ROUTER_ASN: u32 = 64500;
const NODE_ASN: u32 = 64512;
/// The blocks the prefixes are carved from, in order; each gives every prefix from /32 up to
/// its own length, the longest first.
const BLOCKS: [(Ipv4Addr, u8); 3] = [
    (Ipv4Addr::new(10, 200, 64, 0), 18),
    (Ipv4Addr::new(10, 200, 128, 0), 17),
    (Ipv4Addr::new(10, 200, 32, 0), 19),
];
/// Every prefix of a /L block, /32 to /L: 2^(33-L) - 1.
const MAX_PREFIXES: usize = (1 << 15) - 1 + (1 << 16) - 1 + (1 << 14) - 1;
/// Community on every route (both senders), 64512:100.
const COMMUNITY: u32 = (64512 << 16) | 100;

/// Options.
#[derive(Clone, Debug)]
pub struct BgpBench {
    /// Prefixes to send (at most 114,685).
    pub prefixes: usize,
    /// Also run gobgpd.
    pub gobgp: bool,
    /// Give up waiting for a table after this long.
    pub timeout: Duration,
}

/// One sender's figures.
#[derive(Debug, Default, Serialize)]
pub struct SenderFigures {
    /// BIRD: session Established -> last prefix imported (BIRD's timestamps), ms.
    pub established_to_all_ms: f64,
    /// Wall clock: table handed over / neighbor added -> BIRD counts all, ms (polled).
    pub start_to_all_wall_ms: f64,
}

/// The report.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub prefixes: usize,
    pub ferrolb: SenderFigures,
    /// ferrolb: table handed to an Established (empty) session -> BIRD counts all, ms.
    pub ferrolb_handover_wall_ms: f64,
    /// Peak RSS (VmHWM, KiB) of this process, which ran ferrolb's peer manager with the table
    /// (the harness itself included: an upper bound for the speaker's BGP part).
    pub ferrolb_harness_vm_hwm_kib: Option<u64>,
    pub gobgp: Option<SenderFigures>,
    /// gobgpd's VmHWM (KiB) with the table.
    pub gobgp_vm_hwm_kib: Option<u64>,
    /// gobgp / ferrolb on `established_to_all_ms` (> 1: ferrolb faster).
    pub ratio_gobgp_over_ferrolb: Option<f64>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "BGP propagation of {} IPv4 prefixes to BIRD",
            self.prefixes
        )?;
        writeln!(
            f,
            "  ferrolb (PeerManager): Established -> all imported {:.0} ms (BIRD clock); start -> all {:.0} ms (wall)",
            self.ferrolb.established_to_all_ms, self.ferrolb.start_to_all_wall_ms
        )?;
        writeln!(
            f,
            "  ferrolb: table handed to an Established session -> all imported {:.0} ms (wall)",
            self.ferrolb_handover_wall_ms
        )?;
        if let Some(g) = &self.gobgp {
            writeln!(
                f,
                "  gobgpd:                Established -> all imported {:.0} ms (BIRD clock); neighbor add -> all {:.0} ms (wall)",
                g.established_to_all_ms, g.start_to_all_wall_ms
            )?;
        }
        if let Some(r) = self.ratio_gobgp_over_ferrolb {
            writeln!(f, "  ratio gobgpd / ferrolb: {r:.2} (> 1: ferrolb faster)")?;
        }
        if let Some(k) = self.ferrolb_harness_vm_hwm_kib {
            writeln!(
                f,
                "  ferrolb harness peak RSS (VmHWM): {:.1} MiB",
                k as f64 / 1024.0
            )?;
        }
        if let Some(k) = self.gobgp_vm_hwm_kib {
            writeln!(f, "  gobgpd peak RSS (VmHWM): {:.1} MiB", k as f64 / 1024.0)?;
        }
        Ok(())
    }
}

fn lab_err(e: LabError) -> anyhow::Error {
    anyhow!("{e}")
}

/// The `i`-th prefix (`i < MAX_PREFIXES`).
fn prefix(i: usize) -> Ipv4Net {
    let mut rest = i;
    for (base, block_len) in BLOCKS {
        for len in (block_len..=32).rev() {
            let count = 1usize << (len - block_len);
            if rest < count {
                let addr = u32::from(base) + ((rest as u32) << (32 - len));
                return Ipv4Net::new(Ipv4Addr::from(addr), len).expect("length <= 32");
            }
            rest -= count;
        }
    }
    panic!("prefix {i} is beyond MAX_PREFIXES ({MAX_PREFIXES})")
}

/// Milliseconds of the day of a BIRD time `HH:MM:SS.mmm`.
fn bird_ms(t: &str) -> Option<u64> {
    let (hms, ms) = t.split_once('.')?;
    let mut it = hms.split(':').map(|x| x.parse::<u64>().ok());
    let (h, m, s) = (it.next()??, it.next()??, it.next()??);
    Some(((h * 60 + m) * 60 + s) * 1000 + ms.parse::<u64>().ok()?)
}

/// Routes imported by BIRD protocol `name` (`show protocols all`: `Routes: N imported`).
fn imported(bird: &Bird, name: &str) -> Option<usize> {
    let out = bird.birdc(&format!("show protocols all {name}")).ok()?;
    out.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("Routes:")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn wait_imported(bird: &Bird, name: &str, want: usize, timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let n = imported(bird, name);
        // A session that is down has no `Routes:` line: nothing imported.
        if n == Some(want) || (want == 0 && n.is_none()) {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(anyhow!(
                "{name}: BIRD imported {n:?} of {want} after {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// From BIRD's timestamps: protocol `name` Established -> newest route imported, ms.
fn bird_propagation_ms(bird: &Bird, name: &str) -> anyhow::Result<f64> {
    let protos = bird
        .birdc(&format!("show protocols {name}"))
        .map_err(lab_err)?;
    let since = protos
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&name)).then(|| f.get(4).and_then(|t| bird_ms(t)))?
        })
        .ok_or_else(|| anyhow!("no Since time for {name}: {protos}"))?;
    let routes = bird
        .birdc(&format!("show route protocol {name}"))
        .map_err(lab_err)?;
    let tag = format!("[{name} ");
    let last = routes
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find(&tag)? + tag.len()..];
            bird_ms(rest.split(']').next()?)
        })
        .max()
        .ok_or_else(|| anyhow!("no routes of {name}"))?;
    // Around midnight the day wraps.
    let d = if last >= since {
        last - since
    } else {
        last + 86_400_000 - since
    };
    Ok(d as f64)
}

fn peer(router: Ipv4Addr) -> Peer {
    Peer::with_defaults(
        "ferrolb-system",
        "router",
        NODE_ASN,
        PeerAsn::Fixed(ROUTER_ASN),
        IpAddr::V4(router),
    )
}

fn table(n: usize) -> Vec<BgpAnnouncement> {
    (0..n)
        .map(|i| BgpAnnouncement {
            prefix: ipnet::IpNet::V4(prefix(i)),
            ips: vec![IpAddr::V4(prefix(i).network())],
            services: vec![format!("bench/svc-{i}")],
            peers: BTreeMap::from([(
                "router".to_string(),
                RouteAttributes {
                    local_pref: None,
                    communities: vec![CommunityValue::Standard(COMMUNITY)],
                },
            )]),
        })
        .collect()
}

/// An MRT TABLE_DUMP_V2 file (RFC 6396) with the first `n` prefixes from one peer: ORIGIN IGP, empty
/// AS_PATH (locally originated), NEXT_HOP `nh`, COMMUNITIES 64512:100.
fn mrt(n: usize, nh: Ipv4Addr) -> Vec<u8> {
    fn record(out: &mut Vec<u8>, subtype: u16, body: &[u8]) {
        out.extend_from_slice(&0u32.to_be_bytes()); // timestamp
        out.extend_from_slice(&13u16.to_be_bytes()); // TABLE_DUMP_V2
        out.extend_from_slice(&subtype.to_be_bytes());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
    }
    let mut out = Vec::new();
    // PEER_INDEX_TABLE: collector id, empty view name, one peer (IPv4, 4-octet AS).
    let mut b = Vec::new();
    b.extend_from_slice(&nh.octets());
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&1u16.to_be_bytes());
    b.push(0x02);
    b.extend_from_slice(&nh.octets());
    b.extend_from_slice(&nh.octets());
    b.extend_from_slice(&NODE_ASN.to_be_bytes());
    record(&mut out, 1, &b);
    let mut attrs = Vec::new();
    attrs.extend_from_slice(&[0x40, 1, 1, 0]); // ORIGIN IGP
    // AS_PATH: one AS_SEQUENCE of our AS (4-octet, as RFC 6396 requires); gobgpd skips
    // entries with an empty path, and sends its own AS in front on eBGP (the route is
    // then `64512 64512` at BIRD: one AS longer than ferrolb's, a few bytes per UPDATE).
    attrs.extend_from_slice(&[0x40, 2, 6, 2, 1]);
    attrs.extend_from_slice(&NODE_ASN.to_be_bytes());
    attrs.extend_from_slice(&[0x40, 3, 4]); // NEXT_HOP
    attrs.extend_from_slice(&nh.octets());
    attrs.extend_from_slice(&[0xC0, 8, 4]); // COMMUNITIES
    attrs.extend_from_slice(&COMMUNITY.to_be_bytes());
    for i in 0..n {
        let mut b = Vec::new();
        b.extend_from_slice(&(i as u32).to_be_bytes());
        let p = prefix(i);
        b.push(p.prefix_len());
        b.extend_from_slice(&p.network().octets()[..usize::from(p.prefix_len()).div_ceil(8)]);
        b.extend_from_slice(&1u16.to_be_bytes());
        b.extend_from_slice(&0u16.to_be_bytes()); // peer index
        b.extend_from_slice(&0u32.to_be_bytes()); // originated
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(&attrs);
        record(&mut out, 2, &b); // RIB_IPV4_UNICAST
    }
    out
}

/// Runs the benchmark (blocking; call it off any tokio runtime).
pub fn run(opts: &BgpBench) -> anyhow::Result<Report> {
    let n = opts.prefixes;
    if n == 0 || n > MAX_PREFIXES {
        return Err(anyhow!(
            "--prefixes must be 1..={MAX_PREFIXES} (inside 10.200.0.0/16)"
        ));
    }
    let lab = Lab::builder().nodes(2).build().map_err(lab_err)?;
    let router = lab.router().v4();
    let mut bird_cfg = BirdConfig::new(router, ROUTER_ASN);
    bird_cfg.kernel_export = false;
    for i in 1..=2 {
        bird_cfg = bird_cfg.peer(
            BgpPeer::new(format!("node{i}"), IpAddr::V4(lab.node(i).v4()), NODE_ASN)
                .passive(true)
                .hold_time(90),
        );
    }
    let bird = Bird::start(lab.router().ns(), &bird_cfg).map_err(lab_err)?;
    let mut report = Report {
        prefixes: n,
        ..Report::default()
    };

    // ferrolb: the table and the peer in one apply (as the speaker's first pass).
    let rt = ns_runtime(lab.node(1).ns().name())?;
    let node1 = lab.node(1).v4();
    let announcements = std::sync::Arc::new(table(n));
    let mut manager = PeerManager::new(Some(node1));
    let peers = vec![peer(router)];
    let passwords = Passwords::new();
    let start = Instant::now();
    {
        let (p, pw, a) = (peers.clone(), passwords.clone(), announcements.clone());
        manager = rt.block_on(rt.spawn(async move {
            let errors = manager.apply(&p, &pw, &a).await;
            assert!(errors.is_empty(), "{errors:?}");
            manager
        }))?;
    }
    wait_imported(&bird, "node1", n, opts.timeout)?;
    report.ferrolb.start_to_all_wall_ms = start.elapsed().as_secs_f64() * 1e3;
    report.ferrolb.established_to_all_ms = bird_propagation_ms(&bird, "node1")?;

    // ferrolb: withdraw everything, then hand the whole table to the Established session.
    {
        let (p, pw) = (peers.clone(), passwords.clone());
        manager = rt.block_on(rt.spawn(async move {
            manager.apply(&p, &pw, &[]).await;
            manager
        }))?;
    }
    wait_imported(&bird, "node1", 0, opts.timeout)?;
    let start = Instant::now();
    {
        let (p, pw, a) = (peers, passwords, announcements.clone());
        manager = rt.block_on(rt.spawn(async move {
            manager.apply(&p, &pw, &a).await;
            manager
        }))?;
    }
    wait_imported(&bird, "node1", n, opts.timeout)?;
    report.ferrolb_handover_wall_ms = start.elapsed().as_secs_f64() * 1e3;
    report.ferrolb_harness_vm_hwm_kib = super::stats::peak_rss_kib(std::process::id());
    rt.block_on(rt.spawn(async move {
        manager.shutdown(StopCause::Shutdown).await;
    }))?;
    wait_imported(&bird, "node1", 0, opts.timeout)?;
    drop(rt);

    if opts.gobgp {
        let ns = lab.node(2).ns();
        let node2 = lab.node(2).v4();
        let g = Gobgp::start(ns, &GobgpConfig::new(node2, NODE_ASN)).map_err(lab_err)?;
        let file = ns.file("bench-routes.mrt");
        std::fs::write(&file, mrt(n, node2)).context("writing the MRT file")?;
        let injected = g
            .gobgp(&format!(
                "mrt inject global --nexthop {node2} {}",
                file.display()
            ))
            .map_err(lab_err)?;
        // Wait until gobgpd holds the whole table before it gets a neighbor.
        let count = || -> usize {
            g.gobgp("global rib summary -a ipv4")
                .unwrap_or_default()
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|w| w.parse::<usize>().ok())
                .max()
                .unwrap_or(0)
        };
        // `mrt inject` returns before gobgpd has taken everything, and gobgp 3.10 drops the
        // last partial batch (9,781 of 10,000 here; nothing of 100): wait until the count
        // settles, then add what is missing with one `gobgp global rib add` per prefix, 8 in
        // parallel. Not timed: the table is loaded before the neighbor exists either way.
        let mut last = usize::MAX;
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let c = count();
            if c == last {
                break;
            }
            last = c;
        }
        if last < n {
            let rib = g.rib(false).map_err(lab_err)?;
            let have: std::collections::BTreeSet<Ipv4Net> = rib
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            let missing: Vec<usize> = (0..n).filter(|&i| !have.contains(&prefix(i))).collect();
            eprintln!(
                "gobgp mrt inject loaded {last} of {n}; adding {} with the CLI",
                missing.len()
            );
            let next = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..8 {
                    s.spawn(|| {
                        loop {
                            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(&i) = missing.get(k) else {
                                break;
                            };
                            let _ = g.gobgp(&format!(
                                "global rib -a ipv4 add {} nexthop {node2} community 64512:100",
                                prefix(i)
                            ));
                        }
                    });
                }
            });
        }
        let load = Instant::now();
        loop {
            let out = g.gobgp("global rib summary -a ipv4").map_err(lab_err)?;
            if count() >= n {
                break;
            }
            if load.elapsed() > opts.timeout {
                let rib = g.rib(false).unwrap_or_default();
                let head: String = rib.lines().take(3).collect::<Vec<_>>().join("\n");
                return Err(anyhow!(
                    "gobgpd did not load {n} routes: {out}; mrt inject said {injected:?}; rib: {head}; log: {}",
                    g.process().log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let start = Instant::now();
        g.gobgp(&format!("neighbor add {router} as {ROUTER_ASN}"))
            .map_err(lab_err)?;
        wait_imported(&bird, "node2", n, opts.timeout)?;
        let wall = start.elapsed().as_secs_f64() * 1e3;
        let fig = SenderFigures {
            established_to_all_ms: bird_propagation_ms(&bird, "node2")?,
            start_to_all_wall_ms: wall,
        };
        report.gobgp_vm_hwm_kib = super::stats::peak_rss_kib(g.process().pid() as u32);
        report.ratio_gobgp_over_ferrolb =
            Some(fig.established_to_all_ms / report.ferrolb.established_to_all_ms.max(1.0));
        report.gobgp = Some(fig);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_times_parse() {
        assert_eq!(bird_ms("20:47:14.662"), Some(74_834_662));
        assert_eq!(bird_ms("x"), None);
    }

    #[test]
    fn mrt_has_one_record_per_prefix() {
        let m = mrt(3, Ipv4Addr::new(10, 200, 0, 12));
        // The first prefixes are /32s: four prefix octets each.
        // 12-byte header + 21-byte peer index body; then 3 RIB records.
        let rib_len = 12 + 4 + 1 + 4 + 2 + 2 + 4 + 2 + (4 + 9 + 7 + 7);
        assert_eq!(m.len(), 12 + 21 + 3 * rib_len);
        assert_eq!(&m[4..8], &[0, 13, 0, 1]);
    }

    #[test]
    fn prefixes_are_distinct_and_stay_in_the_lab() {
        let lab: Ipv4Net = "10.200.0.0/16".parse().unwrap();
        let all: std::collections::BTreeSet<Ipv4Net> = (0..MAX_PREFIXES).map(prefix).collect();
        assert_eq!(all.len(), MAX_PREFIXES);
        assert!(
            all.iter()
                .all(|p| lab.contains(p) && p.network() == p.trunc().network())
        );
        // The first 16,384 are the /32s of 10.200.64.0/18, as the 10,000-prefix figures had.
        assert_eq!(prefix(0), "10.200.64.0/32".parse().unwrap());
        assert_eq!(prefix(16_383), "10.200.127.255/32".parse().unwrap());
        assert_eq!(prefix(16_384), "10.200.64.0/31".parse().unwrap());
        assert_eq!(prefix(MAX_PREFIXES - 1), "10.200.32.0/19".parse().unwrap());
    }

    #[test]
    fn mrt_carries_short_prefixes_in_fewer_octets() {
        let nh = Ipv4Addr::new(10, 200, 0, 12);
        // Prefix 32,766 is 10.200.64.0/18: three octets in its RIB entry, one fewer than a /32.
        assert_eq!(prefix(32_766), "10.200.64.0/18".parse().unwrap());
        let one_more = mrt(32_767, nh).len() - mrt(32_766, nh).len();
        let a_32 = mrt(2, nh).len() - mrt(1, nh).len();
        assert_eq!(one_more + 1, a_32);
    }
}
