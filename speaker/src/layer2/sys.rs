//! The few raw system calls layer 2 needs that neither `nix` nor `socket2` wrap for us:
//! creating and binding an `AF_PACKET` socket, attaching a classic BPF filter, reading from it
//! with the packet type, and typed `setsockopt`. Every `unsafe` block of the layer 2 runtime is
//! in this file.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `socket(2)` with `SOCK_CLOEXEC`, owned. Blocking: the layer 2 listeners read on dedicated
/// threads (see `announcer.rs`), and every send passes `MSG_DONTWAIT` so that no caller ever
/// waits on a full device queue.
pub(crate) fn socket(
    domain: libc::c_int,
    ty: libc::c_int,
    protocol: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes plain integers and returns a new descriptor or -1.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2), is valid and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(2)` with a value of any plain-old-data type.
pub(crate) fn setsockopt<T: Copy>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `value` points to `len` readable bytes for the duration of the call; the kernel
    // copies them and keeps no pointer. `T: Copy` rules out types with drop glue or pointers
    // the kernel could not interpret (callers pass C structs and integers).
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(value).cast::<libc::c_void>(),
            len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Attaches a classic BPF program (`SO_ATTACH_FILTER`): the kernel then runs it on every frame
/// before queueing, so frames it rejects never wake the reader.
pub(crate) fn attach_filter(fd: &impl AsRawFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let len =
        u16::try_from(program.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let prog = libc::sock_fprog {
        len,
        // The kernel only reads through this pointer (it copies the program during the call).
        filter: program.as_ptr().cast_mut(),
    };
    let size = libc::socklen_t::try_from(size_of::<libc::sock_fprog>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `prog` is a valid sock_fprog whose `filter` points at `len` initialised
    // instructions that outlive the call; the kernel copies and verifies the program and keeps
    // no pointer into our memory.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            std::ptr::from_ref(&prog).cast::<libc::c_void>(),
            size,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `SO_RCVTIMEO`: a blocking read returns `EAGAIN` after `timeout` without data, which is how a
/// listener thread gets to check whether it should stop.
pub(crate) fn set_recv_timeout(fd: &impl AsRawFd, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(timeout.as_secs())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
}

/// An `AF_PACKET` / `SOCK_RAW` socket receiving only `ethertype` on interface `ifindex`, with
/// `filter` attached before it is bound.
///
/// The protocol is given to socket(2) *and* bind(2): until bind, the socket would see that
/// EtherType on every interface, so callers also check the interface of each frame.
pub(crate) fn packet_socket(
    ethertype: u16,
    ifindex: u32,
    filter: &[libc::sock_filter],
) -> io::Result<OwnedFd> {
    let proto_be = ethertype.to_be();
    let fd = socket(libc::AF_PACKET, libc::SOCK_RAW, libc::c_int::from(proto_be))?;
    if !filter.is_empty() {
        attach_filter(&fd, filter)?;
    }
    let ifindex =
        libc::c_int::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let addr = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: proto_be,
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: `addr` is a fully initialised sockaddr_ll and its exact size is passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&addr).cast::<libc::sockaddr>(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// One frame read from a packet socket: its length, interface index and packet type
/// (`PACKET_HOST`, `PACKET_BROADCAST`, `PACKET_OUTGOING`, …).
pub(crate) fn packet_recv(fd: &impl AsRawFd, buf: &mut [u8]) -> io::Result<(usize, i32, u8)> {
    let mut addr = libc::sockaddr_ll {
        sll_family: 0,
        sll_protocol: 0,
        sll_ifindex: 0,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    let mut addr_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `buf` is writable for `buf.len()` bytes; `addr`/`addr_len` describe a writable
    // sockaddr_ll the kernel fills in (it never writes more than `addr_len`).
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast::<libc::c_void>(),
            buf.len(),
            0,
            std::ptr::from_mut(&mut addr).cast::<libc::sockaddr>(),
            &mut addr_len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // n >= 0 was checked, so the conversion cannot fail.
    let n = usize::try_from(n).unwrap_or(0);
    Ok((n, addr.sll_ifindex, addr.sll_pkttype))
}

/// Sends a whole frame on a bound packet socket (the kernel takes interface and protocol from
/// the binding). Never blocks: a full device queue is reported as `WouldBlock`.
pub(crate) fn packet_send(fd: &impl AsRawFd, frame: &[u8]) -> io::Result<usize> {
    // SAFETY: `frame` is readable for its length; the kernel copies it.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            frame.as_ptr().cast::<libc::c_void>(),
            frame.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Whether a blocking receive ended without a packet only because its `SO_RCVTIMEO` expired
/// or a signal arrived, so the caller checks its stop flag and receives again.
pub(crate) fn is_timeout_or_interrupt(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
