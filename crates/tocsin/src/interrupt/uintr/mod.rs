//! `uintr` mode: x86 user interrupts (Intel UINTR) as interrupts.
//!
//! Owns detection (CPU and kernel), the Linux UINTR system calls of Intel's
//! `uintr-linux-kernel` tree (numbers 471–479, see `shared/reference/uintr.md` §1.1–1.2),
//! receiver registration (handler entry, vector fd), sender registration (one UITT index per
//! peer), `SENDUIPI` and `STUI`. The handler entry itself is assembly ([`entry`]); it calls
//! [`super::dispatch`] like the signal handler does.
//!
//! The ABI followed, from that tree's man pages (`tools/uintr/manpages`):
//! - `uintr_register_handler(u64 handler, u32 flags)` = 471: per thread; ENOSYS/EOPNOTSUPP
//!   without hardware, EBUSY if registered.
//! - `uintr_unregister_handler(u32 flags)` = 472.
//! - `uintr_vector_fd(u64 vector, u32 flags)` = 473 → an fd naming (thread, vector 0–63).
//! - `uintr_register_sender(int uvec_fd, u32 flags)` = 474 → UITT index for `SENDUIPI`.
//! - `uintr_unregister_sender(int index, u32 flags)` = 475.
//!
//! Detection never issues these system calls unless the CPU has UINTR
//! (CPUID.(EAX=7,ECX=0):EDX[5]) *and* the kernel advertises the `uintr` flag in
//! `/proc/cpuinfo` (only patched kernels know it): on a mainline kernel 471–479 may be
//! other system calls.

#[cfg(target_arch = "x86_64")]
pub mod entry;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};
use crate::Rank;

/// `uintr_register_handler` (Intel tree).
pub const SYS_UINTR_REGISTER_HANDLER: libc::c_long = 471;
/// `uintr_unregister_handler`.
pub const SYS_UINTR_UNREGISTER_HANDLER: libc::c_long = 472;
/// `uintr_vector_fd`.
pub const SYS_UINTR_VECTOR_FD: libc::c_long = 473;
/// `uintr_register_sender`.
pub const SYS_UINTR_REGISTER_SENDER: libc::c_long = 474;
/// `uintr_unregister_sender`.
pub const SYS_UINTR_UNREGISTER_SENDER: libc::c_long = 475;

/// The user-interrupt vector tocsin uses (0–63; one per receiving thread suffices).
pub const VECTOR: u64 = 0;

/// What this machine offers for UINTR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    /// The CPU implements UINTR (CPUID.(EAX=7,ECX=0):EDX[5]).
    pub cpu: bool,
    /// The kernel supports it: `Ok` after a successful registration attempt, or why not.
    pub kernel: std::result::Result<(), String>,
}

impl Support {
    /// `Ok` if `uintr` mode can run, else an error that says what is missing.
    ///
    /// # Errors
    /// [`Error::Unsupported`] naming the CPU or the kernel.
    pub fn require(&self) -> Result<()> {
        if !self.cpu {
            return Err(Error::Unsupported(
                "uintr progress mode: this CPU has no user interrupts (CPUID.(EAX=7,ECX=0):EDX[5] = 0; \
                 UINTR needs Sapphire Rapids or later, and a hypervisor that exposes it)"
                    .into(),
            ));
        }
        if let Err(why) = &self.kernel {
            return Err(Error::Unsupported(format!("uintr progress mode: {why}")));
        }
        Ok(())
    }
}

/// CPUID.(EAX=7,ECX=0):EDX[5].
pub fn cpu_has_uintr() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // Leaf 7 is valid when the max leaf (leaf 0 EAX) is at least 7, checked first.
        let max = std::arch::x86_64::__cpuid(0).eax;
        max >= 7 && std::arch::x86_64::__cpuid_count(7, 0).edx & (1 << 5) != 0
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `true` if the running kernel lists the `uintr` CPU flag (only UINTR-patched kernels do).
pub fn kernel_flag() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("flags"))
                .any(|l| l.split_whitespace().any(|f| f == "uintr"))
        })
        .unwrap_or(false)
}

/// Probes CPU and kernel. Issues UINTR system calls only when both the CPU bit and the
/// kernel flag are present, and then undoes the test registration.
pub fn support() -> Support {
    let cpu = cpu_has_uintr();
    let kernel = if !cpu {
        Err("not tried: the CPU lacks UINTR".into())
    } else if !kernel_flag() {
        Err("the kernel does not support UINTR (no `uintr` flag in /proc/cpuinfo): it needs Intel's uintr-linux-kernel patches".into())
    } else {
        probe_registration()
    };
    Support { cpu, kernel }
}

fn probe_registration() -> std::result::Result<(), String> {
    #[cfg(target_arch = "x86_64")]
    {
        match register_handler() {
            Ok(()) => {
                unregister_handler();
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(()),
            Err(e) => Err(explain("uintr_register_handler", &e)),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Err("UINTR exists only on x86_64".into())
    }
}

/// A human explanation of a UINTR system call error.
pub fn explain(call: &str, e: &io::Error) -> String {
    let why = match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no UINTR system calls (ENOSYS)",
        Some(libc::EOPNOTSUPP) => "the kernel or CPU does not support UINTR (EOPNOTSUPP)",
        Some(libc::EINVAL) => {
            "the kernel rejected the arguments (EINVAL: a different UINTR ABI version?)"
        }
        Some(libc::EBUSY) => "a handler is already registered on this thread (EBUSY)",
        Some(libc::ENOSPC) => "no free vector or UITT entry (ENOSPC)",
        Some(libc::EPERM) | Some(libc::EACCES) => {
            "not permitted (ptrace rules forbid taking the peer's vector fd)"
        }
        _ => "unexpected error",
    };
    format!("{call}: {why}: {e}")
}

fn sys(n: libc::c_long, a: u64, b: u64) -> io::Result<libc::c_long> {
    // SAFETY: UINTR system calls take integer arguments (the handler address is only
    // recorded by the kernel); called only where support was established.
    let r = unsafe { libc::syscall(n, a, b) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Registers [`entry::tocsin_uintr_entry`] as this thread's user-interrupt handler.
///
/// # Errors
/// As documented for `uintr_register_handler`.
#[cfg(target_arch = "x86_64")]
pub fn register_handler() -> io::Result<()> {
    entry::prepare();
    sys(SYS_UINTR_REGISTER_HANDLER, entry::address(), 0).map(|_| ())
}

/// Unregisters this thread's handler (errors ignored: nothing to undo).
pub fn unregister_handler() {
    let _ = sys(SYS_UINTR_UNREGISTER_HANDLER, 0, 0);
}

/// Creates the vector fd other processes register as senders to.
///
/// # Errors
/// As documented for `uintr_vector_fd`.
pub fn vector_fd(vector: u64) -> io::Result<OwnedFd> {
    let fd = sys(SYS_UINTR_VECTOR_FD, vector, 0)?;
    // SAFETY: a fresh descriptor returned by the kernel, owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sets UIF: user interrupts may be delivered to this thread from now on.
pub fn stui() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: STUI (F3 0F 01 EF) only sets UIF; executed only after a successful handler
    // registration (else it would raise #UD).
    unsafe {
        std::arch::asm!(".byte 0xf3, 0x0f, 0x01, 0xef", options(nomem, nostack));
    }
}

/// Clears UIF: user interrupts are held (recorded in UIRR, coalesced per vector) until the
/// next [`stui`] or `UIRET`. The start of a critical section. Async-signal-safe.
pub fn clui() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: CLUI (F3 0F 01 EE) only clears UIF; executed only on a thread whose handler
    // registration succeeded (else it would raise #UD).
    unsafe {
        std::arch::asm!(".byte 0xf3, 0x0f, 0x01, 0xee", options(nomem, nostack));
    }
}

/// Reads UIF with `TESTUI` (F3 0F 01 ED, result in CF): `true` if user interrupts may be
/// delivered to this thread now. `false` inside a handler. Async-signal-safe.
pub fn testui() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let cf: u8;
        // SAFETY: TESTUI copies UIF into CF and clears the other arithmetic flags; used only
        // where UINTR is supported (else #UD).
        unsafe {
            std::arch::asm!(".byte 0xf3, 0x0f, 0x01, 0xed", "setc {cf}", cf = out(reg_byte) cf,
                options(nomem, nostack));
        }
        cf != 0
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Releases UITT entry `index` (from `uintr_register_sender`) for reuse.
///
/// # Errors
/// As documented for `uintr_unregister_sender` (EINVAL for an index not registered).
pub fn unregister_sender(index: u64) -> io::Result<()> {
    sys(SYS_UINTR_UNREGISTER_SENDER, index, 0).map(|_| ())
}

/// Sends a user interrupt through UITT entry `index`. Async-signal-safe (one instruction).
///
/// # Safety
/// `index` must come from a successful [`Registrar::register_sender`] in this process
/// (an unregistered index raises SIGSEGV/SIGILL).
pub unsafe fn senduipi(index: u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SENDUIPI rax (F3 0F C7 F0); the caller guarantees a registered index.
    unsafe {
        std::arch::asm!(".byte 0xf3, 0x0f, 0xc7, 0xf0", in("rax") index, options(nostack));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = index;
}

/// How a sender obtains a peer's vector fd and a UITT index for it. The real one uses
/// `pidfd_getfd` and `uintr_register_sender`; tests substitute a fake.
pub trait Registrar {
    /// Duplicates descriptor `fd` of process `pid` into this process.
    ///
    /// # Errors
    /// The OS error (EPERM under restrictive ptrace rules, ESRCH if the peer is gone).
    fn get_fd(&mut self, pid: i32, fd: i32) -> io::Result<OwnedFd>;
    /// Registers this process as a sender to the vector fd; returns the UITT index.
    ///
    /// # Errors
    /// As documented for `uintr_register_sender`.
    fn register_sender(&mut self, uvec: &OwnedFd) -> io::Result<u64>;
    /// What frees an index when the [`Senders`] are dropped (`None`: nothing to free).
    fn releaser(&self) -> Option<fn(u64) -> io::Result<()>> {
        None
    }
}

/// The kernel's registrar.
#[derive(Debug, Default)]
pub struct KernelRegistrar;

impl Registrar for KernelRegistrar {
    fn get_fd(&mut self, pid: i32, fd: i32) -> io::Result<OwnedFd> {
        let pidfd = crate::sys::PidFd::open(pid)?;
        // SAFETY: integer arguments; the kernel checks permissions.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.raw(), fd, 0) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
    }
    fn register_sender(&mut self, uvec: &OwnedFd) -> io::Result<u64> {
        sys(SYS_UINTR_REGISTER_SENDER, uvec.as_raw_fd() as u64, 0).map(|i| i as u64)
    }
    fn releaser(&self) -> Option<fn(u64) -> io::Result<()>> {
        Some(unregister_sender)
    }
}

/// The sender side's bookkeeping: for every peer, the UITT index to `SENDUIPI` it, and the
/// duplicated vector fds (kept open for the life of the job).
#[derive(Debug, Default)]
pub struct Senders {
    index: Vec<Option<u64>>,
    _fds: Vec<OwnedFd>,
    release: Option<fn(u64) -> io::Result<()>>,
}

impl Senders {
    /// Registers as a sender to every peer `(rank, pid, uvec_fd)`; `me` is skipped.
    ///
    /// # Errors
    /// [`Error::Unsupported`] naming the peer and the failing call.
    pub fn register(
        me: Rank,
        size: u32,
        peers: &[(Rank, i32, i32)],
        reg: &mut dyn Registrar,
    ) -> Result<Senders> {
        let mut s = Senders {
            index: vec![None; size as usize],
            _fds: Vec::new(),
            release: reg.releaser(),
        };
        for &(r, pid, fd) in peers {
            if r == me {
                continue;
            }
            let local = reg.get_fd(pid, fd).map_err(|e| {
                Error::Unsupported(format!(
                    "uintr: taking rank {r}'s vector fd: {}",
                    explain("pidfd_getfd", &e)
                ))
            })?;
            let idx = reg.register_sender(&local).map_err(|e| {
                Error::Unsupported(format!(
                    "uintr: registering as sender to rank {r}: {}",
                    explain("uintr_register_sender", &e)
                ))
            })?;
            s.index[r as usize] = Some(idx);
            s._fds.push(local);
        }
        Ok(s)
    }

    /// The UITT index for `peer`, if registered.
    pub fn index(&self, peer: Rank) -> Option<u64> {
        self.index.get(peer as usize).copied().flatten()
    }
}

impl Drop for Senders {
    /// Frees the UITT entries (the UITT is per process and has 256 entries: without this,
    /// a process that initializes communicators repeatedly runs out of them).
    fn drop(&mut self) {
        if let Some(release) = self.release {
            for i in self.index.iter().flatten() {
                let _ = release(*i);
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64", not(loom)))]
mod hw_tests;

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        next: u64,
        fail_for_pid: Option<i32>,
    }
    impl Registrar for Fake {
        fn get_fd(&mut self, pid: i32, _fd: i32) -> io::Result<OwnedFd> {
            if Some(pid) == self.fail_for_pid {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            Ok(std::fs::File::open("/dev/null")?.into())
        }
        fn register_sender(&mut self, _u: &OwnedFd) -> io::Result<u64> {
            self.next += 1;
            Ok(self.next - 1)
        }
    }

    #[test]
    fn one_index_per_peer_and_none_for_self() {
        let peers = [(0, 100, 5), (1, 101, 5), (2, 102, 7), (3, 103, 9)];
        let mut f = Fake {
            next: 0,
            fail_for_pid: None,
        };
        let s = Senders::register(1, 4, &peers, &mut f).unwrap();
        assert_eq!(s.index(0), Some(0));
        assert_eq!(s.index(1), None);
        assert_eq!(s.index(2), Some(1));
        assert_eq!(s.index(3), Some(2));
        assert_eq!(s.index(9), None);
    }

    #[test]
    fn failures_name_the_peer_and_the_cause() {
        let peers = [(0, 100, 5), (1, 101, 5)];
        let mut f = Fake {
            next: 0,
            fail_for_pid: Some(101),
        };
        let e = Senders::register(0, 2, &peers, &mut f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rank 1") && e.contains("not permitted"), "{e}");
    }

    #[test]
    fn missing_hardware_is_reported_not_crashed() {
        let s = support();
        if !s.cpu {
            let e = s.require().unwrap_err().to_string();
            assert!(e.contains("CPUID"), "{e}");
            eprintln!("UINTR tests on real hardware skipped: {e}");
        } else if let Err(why) = &s.kernel {
            let e = s.require().unwrap_err().to_string();
            assert!(e.contains(why.as_str()));
            eprintln!("UINTR tests on real hardware skipped: {e}");
        }
    }

    #[test]
    fn errors_are_explained() {
        let e = explain(
            "uintr_register_handler",
            &io::Error::from_raw_os_error(libc::ENOSYS),
        );
        assert!(e.contains("no UINTR system calls"));
        for (errno, says) in [
            (libc::EOPNOTSUPP, "does not support UINTR"),
            (libc::EINVAL, "different UINTR ABI"),
            (libc::EBUSY, "already registered"),
            (libc::ENOSPC, "no free vector or UITT entry"),
            (libc::EPERM, "not permitted"),
            (libc::EACCES, "not permitted"),
            (libc::EIO, "unexpected error"),
        ] {
            let e = explain("call", &io::Error::from_raw_os_error(errno));
            assert!(e.starts_with("call: ") && e.contains(says), "{errno}: {e}");
        }
    }

    #[test]
    fn senders_free_their_indexes_through_the_registrar() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static FREED: AtomicU64 = AtomicU64::new(0);
        struct Freeing;
        impl Registrar for Freeing {
            fn get_fd(&mut self, _pid: i32, _fd: i32) -> io::Result<OwnedFd> {
                Ok(std::fs::File::open("/dev/null")?.into())
            }
            fn register_sender(&mut self, _u: &OwnedFd) -> io::Result<u64> {
                Ok(7)
            }
            fn releaser(&self) -> Option<fn(u64) -> io::Result<()>> {
                Some(|i| {
                    FREED.fetch_add(i, Ordering::SeqCst);
                    Ok(())
                })
            }
        }
        let peers = [(0, 1, 3), (1, 1, 3), (2, 1, 3)];
        drop(Senders::register(0, 3, &peers, &mut Freeing).unwrap());
        assert_eq!(
            FREED.load(Ordering::SeqCst),
            14,
            "both peers' indexes freed once"
        );
    }
}
