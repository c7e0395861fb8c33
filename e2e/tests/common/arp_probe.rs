//! An ARP prober for layer 2 hand-over tests: from a lab namespace, one ARP request for the
//! address every interval on one `AF_PACKET` socket, recording every reply (who answered, when)
//! and every gratuitous ARP for the address seen meanwhile. Finer than arping (one process per
//! request) and it is its own capture: every ARP frame of the interface passes through it.

use ferrolb_speaker_core::layer2::frames::{self, ArpOp, ArpPacket, MacAddr};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request and the unicast replies to it (before the next request).
#[derive(Clone, Debug)]
pub struct Probe {
    /// When it was sent.
    pub at: Instant,
    /// Replies: (when, MAC).
    pub replies: Vec<(Instant, String)>,
}

/// What a probing run saw.
#[derive(Clone, Debug, Default)]
pub struct ProbeRun {
    /// Every request, in order.
    pub probes: Vec<Probe>,
    /// Gratuitous ARP for the address: (when, MAC).
    pub gratuitous: Vec<(Instant, String)>,
}

impl ProbeRun {
    /// Requests nobody answered.
    pub fn unanswered(&self) -> Vec<&Probe> {
        self.probes
            .iter()
            .filter(|p| p.replies.is_empty())
            .collect()
    }

    /// The MACs a client would have cached, in order: the MAC of each request answered by one
    /// MAC alone, consecutive repeats merged.
    pub fn sole_macs(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.probes {
            let mut macs: Vec<&String> = p.replies.iter().map(|(_, m)| m).collect();
            macs.dedup();
            if let [only] = macs.as_slice()
                && out.last() != Some(*only)
            {
                out.push((*only).clone());
            }
        }
        out
    }

    /// Requests answered by two MACs.
    pub fn answered_twice(&self) -> usize {
        self.probes
            .iter()
            .filter(|p| {
                let first = p.replies.first().map(|(_, m)| m);
                p.replies.iter().any(|(_, m)| Some(m) != first)
            })
            .count()
    }

    /// From the first reply by `new` to the last reply by `old` after it: how long both
    /// answered as the client saw it (zero when `old` never answered after `new` did).
    pub fn both_answering(&self, old: &str, new: &str) -> Duration {
        let replies = self.probes.iter().flat_map(|p| p.replies.iter());
        let Some(first_new) = replies
            .clone()
            .filter(|(_, m)| m == new)
            .map(|(t, _)| *t)
            .min()
        else {
            return Duration::ZERO;
        };
        replies
            .filter(|(t, m)| m == old && *t >= first_new)
            .map(|(t, _)| t.saturating_duration_since(first_new))
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

/// A running prober; [`ArpProber::stop`] ends it and returns what it saw.
pub struct ArpProber {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<ProbeRun>>>,
}

fn parse_mac(s: &str) -> Option<MacAddr> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr)
}

fn mac_text(m: MacAddr) -> String {
    m.0.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl ArpProber {
    /// Starts probing `target` every `interval` from interface `iface` (MAC `mac`, address
    /// `me`) of the network namespace at `netns`.
    pub fn start(
        netns: PathBuf,
        iface: &str,
        mac: &str,
        me: Ipv4Addr,
        target: Ipv4Addr,
        interval: Duration,
    ) -> std::io::Result<ArpProber> {
        assert!(
            ferrolb_e2e::lab::topology::is_lab_addr(target.into()),
            "{target} is not a lab address"
        );
        let mac = parse_mac(mac).ok_or_else(|| std::io::Error::other("bad MAC"))?;
        let iface = std::ffi::CString::new(iface).map_err(std::io::Error::other)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let ns = std::fs::File::open(&netns)?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            run(&flag, &iface, mac, me, target, interval)
        });
        Ok(ArpProber {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops probing; what was seen.
    pub fn stop(mut self) -> ProbeRun {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Ok(run))) => run,
            Some(Ok(Err(e))) => panic!("ARP prober failed: {e}"),
            _ => panic!("ARP prober thread panicked"),
        }
    }
}

impl Drop for ArpProber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(
    stop: &AtomicBool,
    iface: &std::ffi::CStr,
    mac: MacAddr,
    me: Ipv4Addr,
    target: Ipv4Addr,
    interval: Duration,
) -> std::io::Result<ProbeRun> {
    let proto = frames::ETHERTYPE_ARP.to_be();
    // SAFETY: plain socket(2); the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `iface` is a NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(iface.as_ptr()) };
    if ifindex == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: an all-zero sockaddr_ll is valid; the fields set below are the ones bind reads.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = i32::try_from(ifindex).map_err(std::io::Error::other)?;
    // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&sll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let request = frames::arp_frame(
        MacAddr::BROADCAST,
        mac,
        &ArpPacket {
            op: ArpOp::Request,
            sender_mac: mac,
            sender_ip: me,
            target_mac: MacAddr::ZERO,
            target_ip: target,
        },
    );
    let mut out = ProbeRun::default();
    let mut buf = [0u8; 256];
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `request` is a valid buffer of the length passed.
        let sent = unsafe { libc::send(fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
        if sent < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut probe = Probe {
            at: Instant::now(),
            replies: Vec::new(),
        };
        next += interval;
        loop {
            let now = Instant::now();
            if now >= next {
                break;
            }
            let wait = i32::try_from((next - now).as_millis().max(1)).unwrap_or(1);
            let mut pfd = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut pfd, 1, wait) };
            if ready <= 0 {
                continue;
            }
            // SAFETY: `buf` is writable for its length.
            let n = unsafe {
                libc::recv(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            let Ok(n) = usize::try_from(n) else { continue };
            let Some((eth, arp)) = buf.get(..n).and_then(frames::parse_arp_frame) else {
                continue;
            };
            let at = Instant::now();
            if arp.sender_ip == target && arp.target_ip == target {
                out.gratuitous.push((at, mac_text(arp.sender_mac)));
            } else if arp.op == ArpOp::Reply
                && arp.sender_ip == target
                && arp.target_ip == me
                && eth.dst == mac
            {
                probe.replies.push((at, mac_text(arp.sender_mac)));
            }
        }
        out.probes.push(probe);
    }
    Ok(out)
}
