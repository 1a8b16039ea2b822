//! SIGINT/SIGTERM delivery to running launches through self-pipes.
//!
//! A process-wide handler writes the signal number into the pipe of every active launch;
//! each launch polls its pipe's read end. Pipes live in a fixed table of slots and are never
//! closed (a handler may still be writing to one), so several launches in one process, one
//! after the other or at the same time, each get their own. The previous dispositions are
//! restored when the last active launch ends.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// Concurrent launches supported in one process.
const SLOTS: usize = 16;

/// Write end of each slot's pipe (-1: not created yet).
static WRITE_FD: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];
/// Whether each slot belongs to an active launch.
static ACTIVE: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];

/// Slots' read ends, active-launch count and the dispositions saved when it went 0 → 1.
struct Table {
    read_fd: Vec<Option<OwnedFd>>,
    users: usize,
    saved: Option<(SigAction, SigAction)>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    read_fd: Vec::new(),
    users: 0,
    saved: None,
});

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe operations: atomics, write(2), errno save/restore.
    // SAFETY: __errno_location returns this thread's errno slot, valid for the thread's life.
    let errno = unsafe { *libc::__errno_location() };
    let byte = sig as u8;
    for i in 0..SLOTS {
        if ACTIVE[i].load(Ordering::SeqCst) {
            let fd = WRITE_FD[i].load(Ordering::SeqCst);
            if fd >= 0 {
                // SAFETY: `fd` is a pipe write end that is never closed; `byte` outlives the
                // call. A full pipe (O_NONBLOCK) just drops the byte: the reader is awake.
                unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
            }
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// An active launch's subscription to SIGINT and SIGTERM. Dropping it unsubscribes.
pub(crate) struct Signals {
    slot: usize,
    read: RawFd,
}

impl Signals {
    /// Subscribes: installs the handler if this is the first active launch.
    pub(crate) fn subscribe() -> std::io::Result<Signals> {
        let mut t = TABLE.lock().unwrap_or_else(|p| p.into_inner());
        if t.read_fd.is_empty() {
            t.read_fd = (0..SLOTS).map(|_| None).collect();
        }
        let slot = (0..SLOTS)
            .find(|&i| !ACTIVE[i].load(Ordering::SeqCst))
            .ok_or_else(|| {
                std::io::Error::other(format!(
                    "more than {SLOTS} concurrent launches in one process"
                ))
            })?;
        if t.read_fd[slot].is_none() {
            let (r, w) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
            // The write end is leaked on purpose (see the module doc).
            WRITE_FD[slot].store(std::os::fd::IntoRawFd::into_raw_fd(w), Ordering::SeqCst);
            t.read_fd[slot] = Some(r);
        }
        let read = t.read_fd[slot]
            .as_ref()
            .map(|f| f.as_raw_fd())
            .unwrap_or(-1);
        // Drop bytes a previous user of the slot left behind.
        let mut buf = [0u8; 64];
        while matches!(nix::unistd::read(read, &mut buf), Ok(n) if n > 0) {}
        ACTIVE[slot].store(true, Ordering::SeqCst);
        if t.users == 0 {
            let act = SigAction::new(
                SigHandler::Handler(on_signal),
                SaFlags::SA_RESTART,
                SigSet::empty(),
            );
            // SAFETY: `on_signal` only performs async-signal-safe operations.
            let old_int = unsafe { sigaction(Signal::SIGINT, &act) };
            // SAFETY: as above.
            let old_term = unsafe { sigaction(Signal::SIGTERM, &act) };
            match (old_int, old_term) {
                (Ok(i), Ok(t2)) => t.saved = Some((i, t2)),
                (i, t2) => {
                    ACTIVE[slot].store(false, Ordering::SeqCst);
                    // SAFETY: restoring dispositions that were in place before.
                    unsafe {
                        if let Ok(i) = i {
                            let _ = sigaction(Signal::SIGINT, &i);
                        }
                        if let Ok(t2) = t2 {
                            let _ = sigaction(Signal::SIGTERM, &t2);
                        }
                    }
                    return Err(std::io::Error::other(
                        "cannot install SIGINT/SIGTERM handlers",
                    ));
                }
            }
        }
        t.users += 1;
        Ok(Signals { slot, read })
    }

    /// The descriptor to poll for readability.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the read end is owned by TABLE and never closed while the process runs.
        unsafe { BorrowedFd::borrow_raw(self.read) }
    }

    /// Signals received since the last call, in order.
    pub(crate) fn take(&self) -> Vec<Signal> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok(n) = nix::unistd::read(self.read, &mut buf) {
            if n == 0 {
                break;
            }
            out.extend(
                buf[..n]
                    .iter()
                    .filter_map(|b| Signal::try_from(i32::from(*b)).ok()),
            );
        }
        out
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        let mut t = TABLE.lock().unwrap_or_else(|p| p.into_inner());
        ACTIVE[self.slot].store(false, Ordering::SeqCst);
        t.users -= 1;
        if t.users == 0 {
            if let Some((i, term)) = t.saved.take() {
                // SAFETY: restoring the dispositions saved when the first launch subscribed.
                unsafe {
                    let _ = sigaction(Signal::SIGINT, &i);
                    let _ = sigaction(Signal::SIGTERM, &term);
                }
            }
        }
    }
}
