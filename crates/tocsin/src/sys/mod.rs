//! The few system calls tocsin needs, each wrapped once with its `unsafe` and its errors:
//! futex wait/wake on shared memory, CMA (`process_vm_readv`/`writev`), memfd and POSIX
//! shared memory, `mmap`, pidfds, `getrandom`, the host name, CPU affinity.
//!
//! Owns nothing but these wrappers; it must not know about ranks, rings or protocols.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Online CPUs of the machine (`sysconf(_SC_NPROCESSORS_ONLN)`), at least 1.
pub fn online_cpus() -> usize {
    // SAFETY: sysconf with a valid name has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// The CPUs the calling thread may run on (`sched_getaffinity`), ascending; `None` if the
/// call fails.
pub fn thread_cpus() -> Option<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is a valid (empty) set; sched_getaffinity writes at most
    // its size, and CPU_ISSET reads inside it (indices below CPU_SETSIZE).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        Some(
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect(),
        )
    }
}

/// Binds the calling thread to `cpus` (`sched_setaffinity`; indices at or above
/// `CPU_SETSIZE` are ignored, and the kernel drops CPUs the cgroup forbids). `false` if
/// refused or if no CPU is left.
pub fn bind_thread(cpus: &[usize]) -> bool {
    let max = libc::CPU_SETSIZE as usize;
    if !cpus.iter().any(|&c| c < max) {
        return false;
    }
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes inside it (every index is
    // below CPU_SETSIZE); sched_setaffinity(0, ..) applies to the calling thread only and
    // reads the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus.iter().filter(|&&c| c < max) {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Sleeps while `*word == expected`, at most `timeout`. Shared (not `FUTEX_PRIVATE`) so it
/// works across processes on a `MAP_SHARED` mapping. Returns on wake, timeout, signal or
/// value mismatch; callers re-check their condition.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call; the kernel only
    // reads it. Errors (EAGAIN, ETIMEDOUT, EINTR) all mean "re-check", so they are ignored.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

/// Wakes every thread sleeping in [`futex_wait`] on `word`.
pub fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE does not dereference other args.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// Copies from `remote` in process `pid` into `local` (Linux CMA), looping over partial
/// transfers.
///
/// # Errors
/// EPERM (ptrace rules), ESRCH (no such process), EFAULT (bad remote range), ENOSYS.
pub fn cma_read(pid: libc::pid_t, remote: u64, local: &mut [u8]) -> io::Result<()> {
    let mut done = 0usize;
    while done < local.len() {
        let l = libc::iovec {
            // SAFETY: `done < len`, inside `local`.
            iov_base: unsafe { local.as_mut_ptr().add(done) } as *mut libc::c_void,
            iov_len: local.len() - done,
        };
        let r = libc::iovec {
            iov_base: (remote as usize + done) as *mut libc::c_void,
            iov_len: local.len() - done,
        };
        // SAFETY: the local iovec describes memory we own exclusively; the kernel validates
        // the remote one against the other process's address space.
        let n = cvt(unsafe { libc::process_vm_readv(pid, &l, 1, &r, 1, 0) } as libc::c_long)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "CMA read made no progress",
            ));
        }
        done += n as usize;
    }
    Ok(())
}

/// Copies `local` to `remote` in process `pid` (Linux CMA), looping over partial transfers.
///
/// # Errors
/// As [`cma_read`].
pub fn cma_write(pid: libc::pid_t, remote: u64, local: &[u8]) -> io::Result<()> {
    let mut done = 0usize;
    while done < local.len() {
        let l = libc::iovec {
            // SAFETY: `done < len`, inside `local`; the kernel only reads it.
            iov_base: unsafe { local.as_ptr().add(done) } as *mut libc::c_void,
            iov_len: local.len() - done,
        };
        let r = libc::iovec {
            iov_base: (remote as usize + done) as *mut libc::c_void,
            iov_len: local.len() - done,
        };
        // SAFETY: as in `cma_read`.
        let n = cvt(unsafe { libc::process_vm_writev(pid, &l, 1, &r, 1, 0) } as libc::c_long)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "CMA write made no progress",
            ));
        }
        done += n as usize;
    }
    Ok(())
}

/// What [`ptrace_policy_for_cma`] did so that the job's ranks may use CMA on this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PtraceOutcome {
    /// Nothing needed, nothing set: no Yama (or `ptrace_scope` 0: classic same-user rules),
    /// or scope 1 or 2 while this process has `CAP_SYS_PTRACE`.
    NotNeeded,
    /// Yama scope 1: `PR_SET_PTRACER(pid)` named `pid` (and, by Yama's rule, its
    /// descendants) as allowed: the parent every peer shares with us (the launcher or its
    /// proxy, whose descendants are the job), or the only peer.
    Allowed(i32),
    /// Yama scope 1, peers without a common parent and more than one of them:
    /// `PR_SET_PTRACER_ANY` had to be set (any process of the same user may ptrace this
    /// one); a [`crate::diag::Warn::Ptrace`] warning said so.
    AllowedAny,
    /// CMA will be refused whatever this process sets (Yama scope 3, or scope 2 without
    /// `CAP_SYS_PTRACE`); nothing was set. The caller warns (the reason is given) and uses
    /// the pipelined copy.
    Refused(String),
}

/// The pure decision of [`ptrace_policy_for_cma`], for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PtracePlan {
    Nothing,
    Ptracer(i32),
    Any,
    Refused,
}

/// Parses `/proc/sys/kernel/yama/ptrace_scope` (a number 0..=3 and a newline).
fn parse_ptrace_scope(s: &str) -> Option<u32> {
    s.trim().parse().ok().filter(|v| *v <= 3)
}

/// What to set: `scope` is Yama's ptrace scope (`None`: no Yama), `cap` whether we have
/// `CAP_SYS_PTRACE`, `my_ppid` our parent, `peers` each peer's `(pid, ppid)` (ppid `None`
/// when unknown).
fn plan_ptrace(
    scope: Option<u32>,
    cap: bool,
    my_ppid: i32,
    peers: &[(i32, Option<i32>)],
) -> PtracePlan {
    match scope {
        None | Some(0) => PtracePlan::Nothing,
        Some(1) | Some(2) if cap => PtracePlan::Nothing,
        Some(1) => {
            if peers.is_empty() {
                PtracePlan::Nothing
            } else if my_ppid > 1 && peers.iter().all(|&(_, pp)| pp == Some(my_ppid)) {
                PtracePlan::Ptracer(my_ppid)
            } else if let [(pid, _)] = peers {
                PtracePlan::Ptracer(*pid)
            } else {
                PtracePlan::Any
            }
        }
        Some(_) => PtracePlan::Refused,
    }
}

/// Parent pid of `pid`, from `/proc/<pid>/stat` (the field after the parenthesised name).
fn ppid_of(pid: i32) -> Option<i32> {
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &st[st.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `true` if this process has `CAP_SYS_PTRACE` in its effective set.
fn has_cap_sys_ptrace() -> bool {
    const CAP_SYS_PTRACE: u32 = 19;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let v = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(v.trim(), 16).ok()
        })
        .is_some_and(|c| c & (1u64 << CAP_SYS_PTRACE) != 0)
}

/// Lets the job's other ranks (`peer_pids`) use CMA (and `pidfd_getfd`) on this process,
/// widening ptrace permission only as far as Yama requires:
/// - no Yama, or `ptrace_scope` 0: nothing is set (same-user processes may already);
/// - scope 1 (only ancestors may attach): `PR_SET_PTRACER` names the parent that every peer
///   shares with us (the launcher, whose descendants are the job), else the only peer; with
///   several peers of different parents, `PR_SET_PTRACER_ANY` and a warning;
/// - scope 2 without `CAP_SYS_PTRACE`, or 3: nothing can help; [`PtraceOutcome::Refused`].
///
/// Call after every rank published its pid and before any peer may use CMA on us.
pub(crate) fn ptrace_policy_for_cma(peer_pids: &[i32]) -> PtraceOutcome {
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| parse_ptrace_scope(&s));
    let peers: Vec<(i32, Option<i32>)> = peer_pids.iter().map(|&p| (p, ppid_of(p))).collect();
    // SAFETY: no arguments.
    let my_ppid = unsafe { libc::getppid() };
    let prctl = |v: libc::c_ulong| {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_PTRACER, v, 0, 0, 0) }
    };
    match plan_ptrace(scope, has_cap_sys_ptrace(), my_ppid, &peers) {
        PtracePlan::Nothing => PtraceOutcome::NotNeeded,
        PtracePlan::Ptracer(pid) => {
            if prctl(pid as libc::c_ulong) == 0 {
                PtraceOutcome::Allowed(pid)
            } else {
                PtraceOutcome::Refused(format!(
                    "Yama ptrace_scope is 1 and PR_SET_PTRACER({pid}) failed: {}",
                    io::Error::last_os_error()
                ))
            }
        }
        PtracePlan::Any => {
            crate::diag::warn_once(
                crate::diag::Warn::Ptrace,
                "Yama ptrace_scope is 1 and the ranks share no parent: PR_SET_PTRACER_ANY set \
                 so that they may use CMA on each other; any process of this user may now \
                 ptrace this rank (start ranks from one launcher, or set TOCSIN_CMA=0)",
            );
            if prctl(libc::PR_SET_PTRACER_ANY as libc::c_ulong) == 0 {
                PtraceOutcome::AllowedAny
            } else {
                PtraceOutcome::Refused(format!(
                    "Yama ptrace_scope is 1 and PR_SET_PTRACER_ANY failed: {}",
                    io::Error::last_os_error()
                ))
            }
        }
        PtracePlan::Refused => PtraceOutcome::Refused(format!(
            "Yama ptrace_scope is {} (2: only CAP_SYS_PTRACE, 3: nobody may ptrace): the \
             kernel refuses CMA between ranks",
            scope.unwrap_or(0)
        )),
    }
}

/// Creates an anonymous memory file of `len` bytes (`memfd_create`, close-on-exec).
///
/// # Errors
/// The OS error of `memfd_create` or `ftruncate`.
pub fn memfd(name: &str, len: usize) -> io::Result<OwnedFd> {
    let c = CString::new(name).expect("no NUL in name");
    // SAFETY: `c` is a valid C string.
    let fd = cvt(unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_CLOEXEC) } as libc::c_long)?;
    // SAFETY: `fd` is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    truncate(&fd, len)?;
    Ok(fd)
}

fn truncate(fd: &OwnedFd, len: usize) -> io::Result<()> {
    // SAFETY: valid fd.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } as libc::c_long)?;
    Ok(())
}

/// Opens another process's descriptor through `/proc/PID/fd/FD` (read-write).
///
/// # Errors
/// ENOENT if the process or descriptor is gone, EACCES if not permitted.
pub fn open_proc_fd(pid: i32, fd: i32) -> io::Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/fd/{fd}"))?;
    Ok(f.into())
}

/// Creates a POSIX shared-memory object `name` (exclusive, mode 0600) of `len` bytes.
///
/// # Errors
/// EEXIST if the name is taken, or the OS error.
pub fn shm_create(name: &str, len: usize) -> io::Result<OwnedFd> {
    let c = CString::new(name).expect("no NUL in name");
    // SAFETY: valid C string; flags and mode are plain integers.
    let fd = cvt(unsafe {
        libc::shm_open(
            c.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o600,
        )
    } as libc::c_long)?;
    // SAFETY: fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    truncate(&fd, len)?;
    Ok(fd)
}

/// Opens an existing POSIX shared-memory object read-write.
///
/// # Errors
/// ENOENT, EACCES, or the OS error.
pub fn shm_open(name: &str) -> io::Result<OwnedFd> {
    let c = CString::new(name).expect("no NUL in name");
    // SAFETY: valid C string.
    let fd = cvt(
        unsafe { libc::shm_open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) } as libc::c_long,
    )?;
    // SAFETY: fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Removes a POSIX shared-memory name (ENOENT ignored).
pub fn shm_unlink(name: &str) {
    let c = CString::new(name).expect("no NUL in name");
    // SAFETY: valid C string.
    unsafe { libc::shm_unlink(c.as_ptr()) };
}

/// Size of the file behind `fd`, bytes.
///
/// # Errors
/// The OS error of `fstat`.
pub fn fd_len(fd: &OwnedFd) -> io::Result<usize> {
    // SAFETY: zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out-pointer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } as libc::c_long)?;
    Ok(st.st_size as usize)
}

/// A shared read-write mapping, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; synchronization is the users' business
// (atomics in the rings and control blocks).
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` shared, read-write.
    ///
    /// # Errors
    /// The OS error of `mmap`.
    pub fn map(fd: &OwnedFd, len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh mapping chosen by the kernel; `fd` is valid.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: p as *mut u8,
            len,
        })
    }
    /// Maps `len` bytes of private anonymous memory (for stacks).
    ///
    /// # Errors
    /// The OS error of `mmap`.
    pub fn anonymous(len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh private anonymous mapping chosen by the kernel.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: p as *mut u8,
            len,
        })
    }

    /// Pre-faults bytes `off..off + len` of the mapping for writing
    /// (`MADV_POPULATE_WRITE`, Linux 5.14): allocates the pages a shared mapping lacks and
    /// maps them in this process, so the first pass over them costs no page fault. The range
    /// is widened to whole pages and clipped to the mapping. Best effort: `false` if the
    /// kernel refused (older kernel, no memory), in which case pages fault in on first use
    /// as before.
    pub fn populate(&self, off: usize, len: usize) -> bool {
        const PAGE: usize = 4096;
        let start = off / PAGE * PAGE;
        let end = off.saturating_add(len).min(self.len).div_ceil(PAGE) * PAGE;
        if start >= end {
            return true;
        }
        // SAFETY: a range of pages inside this mapping (clipped above); POPULATE_WRITE only
        // faults pages in, it changes no content.
        unsafe {
            libc::madvise(
                self.ptr.add(start) as *mut libc::c_void,
                end - start,
                libc::MADV_POPULATE_WRITE,
            ) == 0
        }
    }

    /// Base address (page aligned).
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }
    /// Length, bytes.
    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped; no reference into it outlives the
        // owner (the engine drops its rings first).
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// A pidfd: tells whether a peer process has exited, even if it is a zombie not yet reaped,
/// and immune to pid reuse.
#[derive(Debug)]
pub struct PidFd(OwnedFd);

impl PidFd {
    /// Opens a pidfd for `pid` (Linux ≥ 5.3).
    ///
    /// # Errors
    /// ESRCH if the process is already gone, ENOSYS on older kernels.
    pub fn open(pid: i32) -> io::Result<PidFd> {
        // SAFETY: integer arguments only.
        let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
        // SAFETY: fresh descriptor we own.
        Ok(PidFd(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
    }
    /// The raw descriptor.
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
    /// `true` if the process has exited (its pidfd polls readable).
    pub fn exited(&self) -> bool {
        let mut p = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let r = unsafe { libc::poll(&mut p, 1, 0) };
        r > 0 && p.revents & (libc::POLLIN | libc::POLLHUP) != 0
    }
}

/// The soft `RLIMIT_SIGPENDING` (queued signals per user), `None` if unlimited or unknown.
pub fn rlimit_sigpending() -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_SIGPENDING, &mut r) } != 0
        || r.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    Some(r.rlim_cur)
}

/// Liveness without a pidfd (when `pidfd_open` fails, e.g. out of descriptors): `true` if
/// process `pid` no longer exists or is a zombie. Weaker than a pidfd (a recycled pid looks
/// alive), which is why callers warn when they have to use it.
pub fn pid_gone(pid: i32) -> bool {
    // SAFETY: signal 0 only checks existence and permission.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    // Exists: a zombie (exited, not yet reaped by its parent) is gone too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(st) => st
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|c| c == 'Z' || c == 'X'),
        // Gone between the two calls. Any other failure (EMFILE when descriptors ran out,
        // no /proc) says nothing: kill(2) found the process, so it is not declared gone.
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// Fills `buf` with random bytes from the kernel.
///
/// # Errors
/// The OS error of `getrandom`.
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writes at most `len - done` bytes inside `buf`.
        let n = cvt(unsafe {
            libc::getrandom(
                buf.as_mut_ptr().add(done) as *mut libc::c_void,
                buf.len() - done,
                0,
            )
        } as libc::c_long)?;
        done += n as usize;
    }
    Ok(())
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut b = [0u8; 256];
    // SAFETY: writes at most `len` bytes into `b`.
    unsafe { libc::gethostname(b.as_mut_ptr() as *mut libc::c_char, b.len()) };
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// An `AF_UNIX` socket address, built once (sending to it never allocates).
#[derive(Clone, Copy)]
pub struct UnixAddr {
    addr: libc::sockaddr_un,
    len: libc::socklen_t,
}

impl UnixAddr {
    /// The abstract address `\0name` (Linux: no file; scoped to the network namespace).
    /// Names longer than 106 bytes are cut.
    pub fn abstract_name(name: &str) -> UnixAddr {
        // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let b = name.as_bytes();
        let n = b.len().min(addr.sun_path.len() - 1);
        for (d, s) in addr.sun_path[1..=n].iter_mut().zip(b) {
            *d = *s as libc::c_char;
        }
        let len = (std::mem::size_of::<libc::sa_family_t>() + 1 + n) as libc::socklen_t;
        UnixAddr { addr, len }
    }
}

/// A non-blocking, close-on-exec `AF_UNIX` datagram socket.
///
/// # Errors
/// `socket(2)`'s error.
pub fn unix_dgram() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds `fd` to `addr`.
///
/// # Errors
/// `bind(2)`'s error (EADDRINUSE: the name is taken).
pub fn bind_unix(fd: &OwnedFd, addr: &UnixAddr) -> io::Result<()> {
    // SAFETY: `addr.addr` is a valid sockaddr_un of `addr.len` bytes.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr.addr as *const libc::sockaddr_un as *const libc::sockaddr,
            addr.len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends one byte to `addr` from `fd`, ignoring every error (EAGAIN: the peer's queue is
/// full, so it has been woken already; ECONNREFUSED: nobody bound, it sleeps on its futex).
/// Async-signal-safe; errno is preserved.
pub fn send_unix(fd: &OwnedFd, addr: &UnixAddr) {
    // SAFETY: errno location of this thread.
    let saved = unsafe { *libc::__errno_location() };
    // SAFETY: a one-byte buffer and a valid sockaddr_un of `addr.len` bytes.
    unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            b"!".as_ptr() as *const libc::c_void,
            1,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            &addr.addr as *const libc::sockaddr_un as *const libc::sockaddr,
            addr.len,
        )
    };
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

/// Reads and drops one datagram queued on `fd`, if any (non-blocking). Async-signal-safe.
pub fn drain_one_dgram(fd: RawFd) {
    let mut b = [0u8; 64];
    // SAFETY: reads into a local buffer of its length.
    unsafe {
        libc::recv(
            fd,
            b.as_mut_ptr() as *mut libc::c_void,
            b.len(),
            libc::MSG_DONTWAIT,
        )
    };
}

/// Reads and drops every datagram queued on `fd` (non-blocking). Async-signal-safe.
pub fn drain_dgrams(fd: RawFd) {
    let mut b = [0u8; 64];
    loop {
        // SAFETY: reads into a local buffer of its length.
        let r = unsafe {
            libc::recv(
                fd,
                b.as_mut_ptr() as *mut libc::c_void,
                b.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if r <= 0 {
            break;
        }
    }
}

/// The IPv4 address of each interface that has one: `(name, address)`.
///
/// # Errors
/// `getifaddrs(3)`'s error.
pub fn ipv4_interfaces() -> io::Result<Vec<(String, std::net::Ipv4Addr)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: out-parameter; freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*p };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: non-null sockaddr of the list.
            let fam = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if fam == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                // SAFETY: ifa_name is a NUL-terminated string of the list.
                let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
                    .to_string_lossy()
                    .into_owned();
                out.push((
                    name,
                    std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                ));
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// Has the kernel raise `signo` on thread `tid` whenever `fd` becomes readable (or writable
/// after a full send buffer): `F_SETSIG`, `F_SETOWN_EX(F_OWNER_TID)`, `O_ASYNC`.
///
/// # Errors
/// `fcntl(2)`'s error.
pub fn async_signal(fd: RawFd, tid: i32, signo: i32) -> io::Result<()> {
    #[repr(C)]
    struct FOwnerEx {
        kind: libc::c_int,
        pid: libc::pid_t,
    }
    // <asm-generic/fcntl.h> (Linux): not exported by the libc crate.
    const F_OWNER_TID: libc::c_int = 0;
    const F_SETSIG: libc::c_int = 10;
    const F_SETOWN_EX: libc::c_int = 15;
    let own = FOwnerEx {
        kind: F_OWNER_TID,
        pid: tid,
    };
    // SAFETY: fcntl on a descriptor we own, with the documented argument types.
    unsafe {
        if libc::fcntl(fd, F_SETSIG, signo) < 0
            || libc::fcntl(fd, F_SETOWN_EX, &own as *const FOwnerEx) < 0
        {
            return Err(io::Error::last_os_error());
        }
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_ASYNC | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets or clears `O_ASYNC` on `fd` (whose signal and owner are already set). Async-
/// signal-safe.
///
/// # Errors
/// `fcntl(2)`'s error.
pub fn set_async(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller owns.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 {
            return Err(io::Error::last_os_error());
        }
        let nfl = if on {
            fl | libc::O_ASYNC
        } else {
            fl & !libc::O_ASYNC
        };
        if nfl != fl && libc::fcntl(fd, libc::F_SETFL, nfl) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A close-on-exec epoll set.
///
/// # Errors
/// `epoll_create1(2)`'s error.
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: plain system call.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn epoll_ctl(ep: RawFd, op: libc::c_int, fd: RawFd, out: bool) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLRDHUP | if out { libc::EPOLLOUT } else { 0 }) as u32,
        u64: fd as u64,
    };
    // SAFETY: valid epoll and target descriptors, a valid event.
    if unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Watches `fd` for input (and output if `out`), level-triggered.
///
/// # Errors
/// `epoll_ctl(2)`'s error.
pub fn epoll_add(ep: RawFd, fd: RawFd, out: bool) -> io::Result<()> {
    epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, out)
}

/// Changes whether `fd` is watched for output. Async-signal-safe.
///
/// # Errors
/// `epoll_ctl(2)`'s error.
pub fn epoll_mod(ep: RawFd, fd: RawFd, out: bool) -> io::Result<()> {
    epoll_ctl(ep, libc::EPOLL_CTL_MOD, fd, out)
}

/// Waits until a descriptor of `ep` is ready, at most `timeout` (or a signal).
pub fn epoll_wait(ep: RawFd, timeout: Duration) {
    let mut evs: [libc::epoll_event; 8] = [libc::epoll_event { events: 0, u64: 0 }; 8];
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: a valid epoll descriptor and an array of 8 events.
    unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), evs.len() as i32, ms) };
}

/// `sendmsg(2)` of `parts` with `MSG_NOSIGNAL | MSG_DONTWAIT` (no `SIGPIPE` on a closed
/// peer); retries on `EINTR`. Async-signal-safe.
///
/// # Errors
/// `WouldBlock` when the socket is full; the socket's error otherwise.
pub fn send_vectored(fd: RawFd, parts: &[std::io::IoSlice<'_>]) -> io::Result<usize> {
    loop {
        // SAFETY: a zeroed msghdr is valid; it points at `parts`, IoSlice being iovec-compatible.
        let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = parts.as_ptr() as *mut libc::iovec;
        m.msg_iovlen = parts.len() as _;
        // SAFETY: `m` describes live buffers.
        let r = unsafe { libc::sendmsg(fd, &m, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Makes the kernel notice a TCP peer that vanished silently (host down, link cut) within
/// about `timeout`: keepalive probes every second once the connection is idle for a second,
/// and `TCP_USER_TIMEOUT` (milliseconds: keepalive alone counts in whole seconds), after
/// which unacknowledged data or probes end the connection with `ETIMEDOUT`.
///
/// # Errors
/// `setsockopt(2)`'s error.
pub fn tcp_liveness(fd: RawFd, timeout: Duration) -> io::Result<()> {
    let set = |level, name, v| setsockopt_int(fd, level, name, v);
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 1)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 1)?;
    set(
        libc::IPPROTO_TCP,
        libc::TCP_KEEPCNT,
        (timeout.as_secs() as libc::c_int).max(1),
    )?;
    set(
        libc::IPPROTO_TCP,
        libc::TCP_USER_TIMEOUT,
        timeout.as_millis().min(i32::MAX as u128) as libc::c_int,
    )
}

/// Sets `SO_RCVLOWAT`: the socket reports itself readable (epoll, and the `O_ASYNC` signal)
/// only once `bytes` are queued. Async-signal-safe.
///
/// # Errors
/// `setsockopt(2)`'s error.
pub fn set_rcvlowat(fd: RawFd, bytes: usize) -> io::Result<()> {
    let v = bytes.clamp(1, i32::MAX as usize) as libc::c_int;
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVLOWAT, v)
}

/// `setsockopt(2)` of an `int` option. Async-signal-safe.
fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: an int option of the right size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Bytes of a TCP socket's send queue not yet acknowledged by the peer (`SIOCOUTQ`).
///
/// # Errors
/// `ioctl(2)`'s error.
pub fn unsent_bytes(fd: RawFd) -> io::Result<usize> {
    const SIOCOUTQ: libc::c_ulong = 0x5411; // = TIOCOUTQ (<linux/sockios.h>)
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int.
    if unsafe { libc::ioctl(fd, SIOCOUTQ, &mut n) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n.max(0) as usize)
}

/// Non-blocking `recv(2)` into `buf`; retries on `EINTR`. Async-signal-safe.
///
/// # Errors
/// `WouldBlock` when nothing is queued; the socket's error otherwise.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: reads at most `buf.len()` bytes into `buf`.
        let r = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptrace_scope_parses() {
        assert_eq!(parse_ptrace_scope("0\n"), Some(0));
        assert_eq!(parse_ptrace_scope("1\n"), Some(1));
        assert_eq!(parse_ptrace_scope(" 3 "), Some(3));
        assert_eq!(parse_ptrace_scope("4\n"), None);
        assert_eq!(parse_ptrace_scope(""), None);
        assert_eq!(parse_ptrace_scope("x"), None);
    }

    #[test]
    fn ptrace_plan_widens_only_as_yama_requires() {
        let sib = [(100, Some(7)), (101, Some(7))];
        assert_eq!(plan_ptrace(None, false, 7, &sib), PtracePlan::Nothing);
        assert_eq!(plan_ptrace(Some(0), false, 7, &sib), PtracePlan::Nothing);
        // Scope 1: the common parent (the launcher) is named.
        assert_eq!(plan_ptrace(Some(1), false, 7, &sib), PtracePlan::Ptracer(7));
        // No common parent: the only peer, else ANY.
        assert_eq!(
            plan_ptrace(Some(1), false, 7, &[(100, Some(8))]),
            PtracePlan::Ptracer(100)
        );
        assert_eq!(
            plan_ptrace(Some(1), false, 7, &[(100, Some(8)), (101, None)]),
            PtracePlan::Any
        );
        // init (1) as the "common parent" would allow every orphan: never named.
        assert_eq!(
            plan_ptrace(Some(1), false, 1, &[(100, Some(1)), (101, Some(1))]),
            PtracePlan::Any
        );
        assert_eq!(plan_ptrace(Some(1), false, 7, &[]), PtracePlan::Nothing);
        assert_eq!(plan_ptrace(Some(1), true, 7, &sib), PtracePlan::Nothing);
        assert_eq!(plan_ptrace(Some(2), true, 7, &sib), PtracePlan::Nothing);
        assert_eq!(plan_ptrace(Some(2), false, 7, &sib), PtracePlan::Refused);
        assert_eq!(plan_ptrace(Some(3), true, 7, &sib), PtracePlan::Refused);
    }

    #[test]
    fn ppid_is_read_from_proc() {
        // SAFETY: no arguments.
        let pp = unsafe { libc::getppid() };
        assert_eq!(ppid_of(std::process::id() as i32), Some(pp));
    }

    #[test]
    fn without_yama_nothing_is_set() {
        if std::path::Path::new("/proc/sys/kernel/yama/ptrace_scope").exists() {
            eprintln!("skipped: this kernel has Yama");
            return;
        }
        assert_eq!(ptrace_policy_for_cma(&[1]), PtraceOutcome::NotNeeded);
    }
}
