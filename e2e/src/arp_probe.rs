//! An ARP prober for layer 2 hand-over tests and the chaos run: from a lab namespace, one ARP request for the
//! address every interval on one `AF_PACKET` socket, recording every reply (who answered, when)
//! and every gratuitous ARP for the address seen meanwhile. Finer than arping (one process per
//! request) and it is its own capture: every ARP frame of the interface passes through it.
//!
//! When a reply arrived is the kernel's receive timestamp (`SO_TIMESTAMPNS`), not when this
//! thread read it: on a loaded machine the thread may wake several milliseconds late, and a
//! reply that reached the interface in time must not count as late or go to the wrong
//! request. For the same reason a request is never sent before the previous one has had its
//! whole interval: a late thread sends the next request late instead of two back to back.
//!
//! The kernel stamps with `CLOCK_REALTIME`, which NTP or a virtual machine's clock sync may
//! step at any moment. Each stamp is therefore placed on the monotonic clock by its age, read
//! against the realtime clock when the frame is taken from the socket ([`arrival`]): a step
//! shifts only a frame that waited in the socket across it, where a pair of readings taken
//! once at the start would shift every later reply by the whole step (a 50 ms step forward
//! made every request after it look unanswered).

use ferrolb_speaker_core::layer2::frames::{self, ArpOp, ArpPacket, MacAddr};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request and the unicast replies that arrived after it and before the next request.
#[derive(Clone, Debug)]
pub struct Probe {
    /// When it was sent.
    pub at: Instant,
    /// Replies: (when it arrived, MAC).
    pub replies: Vec<(Instant, String)>,
}

impl Probe {
    /// Whether a reply arrived within `interval` of the request.
    pub fn answered_within(&self, interval: Duration) -> bool {
        self.replies
            .iter()
            .any(|(t, _)| t.saturating_duration_since(self.at) <= interval)
    }
}

/// What a probing run saw.
#[derive(Clone, Debug, Default)]
pub struct ProbeRun {
    /// The time between requests, and what each one is given to be answered.
    pub interval: Duration,
    /// Every request, in order.
    pub probes: Vec<Probe>,
    /// Gratuitous ARP for the address: (when, MAC).
    pub gratuitous: Vec<(Instant, String)>,
}

impl ProbeRun {
    /// Requests not answered within the interval.
    pub fn unanswered(&self) -> Vec<&Probe> {
        self.probes
            .iter()
            .filter(|p| !p.answered_within(self.interval))
            .collect()
    }

    /// The longest time from a request to its first reply (answered requests only).
    pub fn slowest_answer(&self) -> Duration {
        self.probes
            .iter()
            .filter_map(|p| {
                let (t, _) = p.replies.first()?;
                Some(t.saturating_duration_since(p.at))
            })
            .max()
            .unwrap_or(Duration::ZERO)
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
        if !crate::lab::topology::is_lab_addr(target.into()) {
            return Err(std::io::Error::other(format!(
                "{target} is not a lab address"
            )));
        }
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

    /// Stops probing; what was seen. Panics if the prober failed (for tests).
    pub fn stop(self) -> ProbeRun {
        match self.finish() {
            Ok(run) => run,
            Err(e) => panic!("ARP prober failed: {e}"),
        }
    }

    /// Stops probing; what was seen, or why probing failed.
    pub fn finish(mut self) -> std::io::Result<ProbeRun> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(std::io::Error::other("ARP prober thread panicked")),
        }
    }
}

impl Drop for ArpProber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `CLOCK_REALTIME` now, as the kernel stamps received packets (`SO_TIMESTAMPNS`).
fn realtime() -> std::io::Result<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    timespec_duration(&ts)
}

/// When a frame stamped `stamp` by the kernel (`CLOCK_REALTIME`) arrived, on the monotonic
/// clock: now minus the frame's age by the realtime clock now. Never later than now, whichever
/// way the realtime clock was stepped while the frame waited.
pub(crate) fn arrival(stamp: Duration) -> std::io::Result<Instant> {
    let (real, now) = (realtime()?, Instant::now());
    let age = real.saturating_sub(stamp);
    Ok(now.checked_sub(age).unwrap_or(now))
}

fn timespec_duration(ts: &libc::timespec) -> std::io::Result<Duration> {
    let secs = u64::try_from(ts.tv_sec).map_err(std::io::Error::other)?;
    let nanos = u32::try_from(ts.tv_nsec).map_err(std::io::Error::other)?;
    Ok(Duration::new(secs, nanos))
}

/// Waits up to `ms` milliseconds for `fd` to have something to read; whether it has.
pub(crate) fn wait_readable(fd: &OwnedFd, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
    ready > 0
}

/// Receives one frame into `buf` without blocking: its length and the kernel's receive
/// timestamp (`CLOCK_REALTIME`); `None` when nothing is queued.
pub(crate) fn recv_stamped(
    fd: &OwnedFd,
    buf: &mut [u8],
) -> std::io::Result<Option<(usize, Duration)>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: an all-zero msghdr is valid; the fields set below are the ones recvmsg reads.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `msg` points at `iov` (over `buf`) and `control`, both alive and writable.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    let n = usize::try_from(n).map_err(std::io::Error::other)?;
    // SAFETY: `msg` was filled by recvmsg; the CMSG_* macros walk its control buffer within
    // `msg_controllen`, and a SCM_TIMESTAMPNS message carries one timespec.
    let stamp = unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        let mut stamp = None;
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                stamp = Some(ts);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        stamp
    };
    let stamp = match stamp {
        Some(ts) => timespec_duration(&ts)?,
        None => return Err(std::io::Error::other("a frame without a receive timestamp")),
    };
    Ok(Some((n, stamp)))
}

/// An `AF_PACKET` socket receiving every ARP frame of interface `iface` of the current
/// network namespace, with the kernel's receive timestamps (`SO_TIMESTAMPNS`).
pub(crate) fn open_arp_socket(iface: &std::ffi::CStr) -> std::io::Result<OwnedFd> {
    let proto = frames::ETHERTYPE_ARP.to_be();
    // SAFETY: plain socket(2); the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let on: libc::c_int = 1;
    // SAFETY: `on` is a valid c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            std::ptr::from_ref(&on).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
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
    Ok(fd)
}

fn run(
    stop: &AtomicBool,
    iface: &std::ffi::CStr,
    mac: MacAddr,
    me: Ipv4Addr,
    target: Ipv4Addr,
    interval: Duration,
) -> std::io::Result<ProbeRun> {
    let fd = open_arp_socket(iface)?;
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
    let mut out = ProbeRun {
        interval,
        ..ProbeRun::default()
    };
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        // SAFETY: `request` is a valid buffer of the length passed.
        let rc = unsafe { libc::send(fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut probe = Probe {
            at: sent,
            replies: Vec::new(),
        };
        let deadline = sent + interval;
        // Wait out the interval, then take whatever is already queued: a thread that woke
        // late still files each reply by when it arrived.
        loop {
            let now = Instant::now();
            let wait = deadline.saturating_duration_since(now);
            let wait_ms = i32::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            if !wait_readable(&fd, wait_ms) {
                if Instant::now() >= deadline {
                    break;
                }
                continue;
            }
            let Some((n, stamp)) = recv_stamped(&fd, &mut buf)? else {
                continue;
            };
            let Some((eth, arp)) = buf.get(..n).and_then(frames::parse_arp_frame) else {
                continue;
            };
            let at = arrival(stamp)?;
            if arp.sender_ip == target && arp.target_ip == target {
                out.gratuitous.push((at, mac_text(arp.sender_mac)));
            } else if arp.op == ArpOp::Reply
                && arp.sender_ip == target
                && arp.target_ip == me
                && eth.dst == mac
            {
                let reply = (at, mac_text(arp.sender_mac));
                // Arrived before this request left (between the previous wait's end and the
                // send): the previous request's.
                match out.probes.last_mut() {
                    Some(previous) if at < sent => previous.replies.push(reply),
                    _ => probe.replies.push(reply),
                }
            }
        }
        out.probes.push(probe);
    }
    Ok(out)
}
