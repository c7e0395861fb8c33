//! Scheduling priority for the speaker's timing-critical threads.
//!
//! The membership thread sends a heartbeat every 5 ms and its successors take over after 20 ms
//! without one; the kernel responder's lease is renewed every 3 ms. On a node whose CPUs are
//! busy (builds, batch jobs) the default fair share can keep such a thread waiting for several
//! time slices, and a late beat looks exactly like a dead speaker. A nice value of −10 weighs
//! the thread about ten times a default one, so it runs soon after it wakes, while — unlike a
//! real-time policy — it can never starve the rest of the node and needs no real-time budget
//! from the container runtime.

/// The nice value asked for.
pub const FAVOURED_NICE: i32 = -10;

/// Gives the calling thread (only it: Linux applies nice per thread) nice −10. Needs
/// `CAP_SYS_NICE`; the error says what was refused.
pub fn favour_current_thread() -> std::io::Result<()> {
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    let tid = libc::id_t::try_from(tid).map_err(|_| std::io::Error::other("no thread id"))?;
    // SAFETY: setpriority takes plain integers; `tid` is this thread's id.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, FAVOURED_NICE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root (or CAP_SYS_NICE) gets the nice value on this thread alone; anyone else gets a
    /// permission error, never a changed priority for the whole process.
    #[test]
    fn applies_to_the_calling_thread_only() {
        let nice_of = |tid: libc::id_t| {
            // SAFETY: plain integers; errno is reset first as getpriority may return -1.
            unsafe {
                *libc::__errno_location() = 0;
                libc::getpriority(libc::PRIO_PROCESS, tid)
            }
        };
        let main_tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
        let before = nice_of(main_tid);
        let result = std::thread::spawn(move || {
            let r = favour_current_thread();
            let me = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
            (r.map_err(|e| e.kind()), nice_of(me))
        })
        .join()
        .expect("thread");
        match result {
            (Ok(()), nice) => assert_eq!(nice, FAVOURED_NICE),
            (Err(kind), nice) => {
                assert_eq!(kind, std::io::ErrorKind::PermissionDenied);
                assert_eq!(nice, before);
            }
        }
        assert_eq!(nice_of(main_tid), before, "the calling thread only");
    }
}
