//! A passive capture of gratuitous ARP on a lab interface: every announcement a speaker sends
//! when it takes an address over, with the kernel's receive timestamp. It sends nothing, so
//! it costs the speaker nothing (an ARP prober's requests would have to be answered).
//!
//! Times are on the monotonic clock ([`crate::arp_probe::arrival`] places the kernel's
//! `CLOCK_REALTIME` stamps there): compare them with an [`Instant`] read when the change that
//! caused the announcement was made. A step of the realtime clock between the two then does
//! not count as delay.

use crate::arp_probe::{arrival, open_arp_socket, recv_stamped, wait_readable};
use ferrolb_speaker_core::layer2::frames;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one wait for a frame lasts before the stop flag is looked at again.
const POLL_WAIT_MS: i32 = 50;

/// Gratuitous ARP seen: (address, when it arrived).
pub type Seen = Vec<(Ipv4Addr, Instant)>;

/// A running capture; [`GratuitousCapture::finish`] ends it.
pub struct GratuitousCapture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<Seen>>>,
}

impl GratuitousCapture {
    /// Starts recording the gratuitous ARP for any of `addresses` seen on interface `iface`
    /// of the network namespace at `netns`.
    pub fn start(
        netns: PathBuf,
        iface: &str,
        addresses: BTreeSet<Ipv4Addr>,
    ) -> std::io::Result<GratuitousCapture> {
        let iface = std::ffi::CString::new(iface).map_err(std::io::Error::other)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // The socket is open before this returns: nothing sent after it is missed.
        let (opened_tx, opened_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let opened = std::fs::File::open(&netns)
                .and_then(|ns| {
                    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(std::io::Error::from)
                })
                .and_then(|()| open_arp_socket(&iface));
            let fd = match opened {
                Ok(fd) => {
                    let _ = opened_tx.send(Ok(()));
                    fd
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            let mut seen = Vec::new();
            let mut buf = [0u8; 256];
            while !flag.load(Ordering::Relaxed) {
                if !wait_readable(&fd, POLL_WAIT_MS) {
                    continue;
                }
                while let Some((n, stamp)) = recv_stamped(&fd, &mut buf)? {
                    let Some((_, arp)) = buf.get(..n).and_then(frames::parse_arp_frame) else {
                        continue;
                    };
                    if arp.sender_ip == arp.target_ip && addresses.contains(&arp.sender_ip) {
                        seen.push((arp.sender_ip, arrival(stamp)?));
                    }
                }
            }
            Ok(seen)
        });
        match opened_rx.recv() {
            Ok(Ok(())) => Ok(GratuitousCapture {
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(std::io::Error::other(format!("ARP capture: {e}"))),
            Err(_) => Err(std::io::Error::other("ARP capture thread ended")),
        }
    }

    /// Stops; every gratuitous ARP seen.
    pub fn finish(mut self) -> std::io::Result<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(std::io::Error::other("ARP capture thread panicked")),
        }
    }
}

impl Drop for GratuitousCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// For each change (address, when it was made), the time to the first gratuitous ARP for that
/// address at or after it and before the next change of the same address; `None` when none
/// came.
pub fn announcement_delays(
    changes: &[(Ipv4Addr, Instant)],
    seen: &[(Ipv4Addr, Instant)],
) -> Vec<Option<Duration>> {
    changes
        .iter()
        .enumerate()
        .map(|(i, (ip, at))| {
            let until = changes[i + 1..]
                .iter()
                .find(|(other, _)| other == ip)
                .map(|(_, t)| *t);
            seen.iter()
                .filter(|(s, t)| s == ip && t >= at && until.is_none_or(|u| *t < u))
                .map(|(_, t)| *t - *at)
                .min()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_change_is_matched_with_its_own_first_announcement() {
        let a = Ipv4Addr::new(10, 200, 0, 1);
        let b = Ipv4Addr::new(10, 200, 0, 2);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let changes = [(a, ms(100)), (b, ms(150)), (a, ms(300)), (b, ms(400))];
        let seen = [
            (a, ms(90)),  // before any change: an earlier announcement
            (a, ms(120)), // the first change's
            (a, ms(130)), // a repeat
            (b, ms(170)),
            (a, ms(340)),
        ];
        assert_eq!(
            announcement_delays(&changes, &seen),
            [20, 20, 40]
                .map(|n| Some(Duration::from_millis(n)))
                .into_iter()
                .chain([None])
                .collect::<Vec<_>>()
        );
    }
}
