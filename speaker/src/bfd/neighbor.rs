//! The peer's link-layer address, which echo packets are sent to, from the kernel's ARP
//! table. Read from `/proc/thread-self/net/arp`: `/proc/net` is `/proc/self/net`, the
//! namespace of the process's main thread, while the BFD thread may run in another one (it
//! inherits the namespace of the thread that started it).
//!
//! The entry exists because the BFD session sends its control packets to the peer; an
//! incomplete entry is not used. Echo is IPv4 only (as FRR's forwarding-plane echo), so the
//! IPv4 table is all that is needed.

use std::net::Ipv4Addr;

/// `ATF_COM`: the entry is complete (the address is resolved).
const ATF_COM: u32 = 0x2;

/// Where to send frames for an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Neighbor {
    /// Link-layer address.
    pub mac: [u8; 6],
    /// Interface name.
    pub device: String,
}

/// Finds `ip` in the text of `/proc/net/arp`.
pub(crate) fn find(arp_table: &str, ip: Ipv4Addr) -> Option<Neighbor> {
    arp_table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [addr, _hw_type, flags, mac, _mask, device] = f.as_slice() else {
            return None;
        };
        if addr.parse::<Ipv4Addr>().ok()? != ip {
            return None;
        }
        let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
        if flags & ATF_COM == 0 {
            return None;
        }
        let mut out = [0u8; 6];
        let mut parts = mac.split(':');
        for b in &mut out {
            *b = u8::from_str_radix(parts.next()?, 16).ok()?;
        }
        if parts.next().is_some() || out == [0; 6] {
            return None;
        }
        Some(Neighbor {
            mac: out,
            device: (*device).to_string(),
        })
    })
}

/// Looks `ip` up in this namespace's ARP table.
pub(crate) fn lookup(ip: Ipv4Addr) -> Option<Neighbor> {
    let table = std::fs::read_to_string("/proc/thread-self/net/arp").ok()?;
    find(&table, ip)
}

/// Whether this namespace forwards IPv4 on `device` (so that the peer's echo packets, which
/// are addressed to the peer itself, are sent back to it).
pub(crate) fn forwards_ipv4(device: &str) -> bool {
    // A device name never contains '/', but do not let a strange one walk the tree.
    if device.contains('/') || device.starts_with('.') {
        return false;
    }
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{device}/forwarding"))
        .is_ok_and(|s| s.trim() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str =
        "IP address       HW type     Flags       HW address            Mask     Device
10.200.0.1       0x1         0x2         02:aa:bb:cc:dd:01     *        eth0
10.200.0.2       0x1         0x0         00:00:00:00:00:00     *        eth0
10.200.0.3       0x1         0x6         02:aa:bb:cc:dd:03     *        veth-x
";

    #[test]
    fn complete_entries_are_found_incomplete_ones_not() {
        assert_eq!(
            find(TABLE, Ipv4Addr::new(10, 200, 0, 1)),
            Some(Neighbor {
                mac: [2, 0xaa, 0xbb, 0xcc, 0xdd, 1],
                device: "eth0".into()
            })
        );
        assert_eq!(find(TABLE, Ipv4Addr::new(10, 200, 0, 2)), None);
        assert_eq!(
            find(TABLE, Ipv4Addr::new(10, 200, 0, 3)).map(|n| n.device),
            Some("veth-x".into())
        );
        assert_eq!(find(TABLE, Ipv4Addr::new(10, 200, 0, 4)), None);
        assert_eq!(find("", Ipv4Addr::new(10, 200, 0, 1)), None);
        assert_eq!(
            find(
                "h\n10.200.0.1 0x1 0x2 zz:aa:bb:cc:dd:01 * eth0\n",
                Ipv4Addr::new(10, 200, 0, 1)
            ),
            None
        );
    }

    #[test]
    fn device_names_cannot_walk_proc() {
        assert!(!forwards_ipv4("../../kernel"));
        assert!(!forwards_ipv4(".."));
    }
}
