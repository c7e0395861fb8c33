//! The lab's address space and the guard every traffic helper passes: the lab only ever sends
//! to 10.200.0.0/16, fd00:200::/48 and loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::{LabError, Result};

/// Everything the lab uses, IPv4.
pub const LAB_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 200, 0, 0), 16);
/// Everything the lab uses, IPv6.
pub const LAB_V6: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 0), 48);
/// Whether `ip` is one the lab may send traffic to.
pub fn is_lab_addr(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => LAB_V4.contains(&a) || a.is_loopback(),
        IpAddr::V6(a) => LAB_V6.contains(&a) || a.is_loopback(),
    }
}

/// Error unless [`is_lab_addr`]: the network-safety guard of every traffic helper.
pub fn ensure_lab_addr(ip: IpAddr) -> Result<()> {
    if is_lab_addr(ip) {
        Ok(())
    } else {
        Err(LabError::AddressOutsideLab(ip))
    }
}
