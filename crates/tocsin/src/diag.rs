//! Diagnostics a user must see: warnings that reach stderr even when the application
//! installed no `tracing` subscriber, and the fatal exit of code that runs in a signal or
//! interrupt handler.
//!
//! Owns the once-per-kind bookkeeping of warnings ([`warn_once`]) and [`fatal`]. It must not
//! decide *what* is worth a warning: the modules that detect a condition call it.
//!
//! ## Warnings
//! MPI libraries print their warnings on stderr; an HPC application rarely sets up a
//! `tracing` subscriber. So every warning is both emitted as a `tracing` event (for
//! applications that collect them) and, when no global subscriber is installed, written to
//! stderr as `tocsin warning (rank R): …`, once per [`Warn`] kind per process.
//! `TOCSIN_QUIET=1` silences the stderr copy.
//!
//! ## Fatal errors in handlers
//! A panic in a signal handler formats, allocates and takes the stderr lock, which the
//! interrupted code may hold: the rank could deadlock instead of dying. [`fatal`] writes a
//! fixed message with one `write(2)` and aborts, so the launcher sees the death and ends
//! the job as MPI's default error handler does.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The kinds of warning, each printed at most once per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
#[allow(dead_code)] // kinds are used as the modules that detect them adopt `warn_once`
pub(crate) enum Warn {
    /// The progress thread could not be bound to the requested core.
    ProgressCore = 0,
    /// Signal mode cannot interrupt (e.g. `RLIMIT_SIGPENDING` is 0): it falls back to sleeping.
    SignalQueue = 1,
    /// CMA (process_vm_readv/writev) refused: the pipelined copy is used instead.
    CmaRefused = 2,
    /// A peer's liveness cannot be watched with a pidfd; a slower check is used.
    Liveness = 3,
    /// A peer sent something malformed and is treated as failed.
    Malformed = 4,
    /// tocsin's signal handler was replaced or its signal blocked by the application.
    SignalStolen = 5,
    /// A peer exited while requests still depended on it.
    PeerExited = 6,
    /// Ptrace permission had to be widened for CMA.
    Ptrace = 7,
    /// Anything else worth one line.
    Other = 8,
}

static SEEN: AtomicU64 = AtomicU64::new(0);
static RANK: AtomicU32 = AtomicU32::new(u32::MAX);

/// Records this process's rank, shown in stderr warnings.
pub(crate) fn set_rank(rank: u32) {
    RANK.store(rank, Ordering::Relaxed);
}

fn quiet() -> bool {
    std::env::var_os("TOCSIN_QUIET").is_some_and(|v| v == "1")
}

/// Emits `msg` as a `tracing` warning every time, and, the first time a warning of `kind`
/// is seen in this process, also on stderr unless a global `tracing` subscriber is set (it
/// then has the event) or `TOCSIN_QUIET=1`. Not for handlers (it allocates).
pub(crate) fn warn_once(kind: Warn, msg: impl std::fmt::Display) {
    tracing::warn!("{msg}");
    let bit = 1u64 << (kind as u32);
    if SEEN.fetch_or(bit, Ordering::Relaxed) & bit != 0 {
        return;
    }
    if tracing::dispatcher::has_been_set() || quiet() {
        return;
    }
    let rank = RANK.load(Ordering::Relaxed);
    let who = if rank == u32::MAX {
        String::new()
    } else {
        format!(" (rank {rank})")
    };
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "tocsin warning{who}: {msg}");
}

/// Ends the process at once from any context, a signal or interrupt handler included:
/// writes `tocsin: fatal: <msg>\n` to stderr with `write(2)` (no allocation, no lock) and
/// calls `abort(2)`. For impossible states reached where a panic could deadlock.
/// Async-signal-safe.
#[cold]
pub fn fatal(msg: &str) -> ! {
    fn put(b: &[u8]) {
        // SAFETY: writing a valid byte slice to fd 2; the result is ignored on purpose
        // (nothing better can be done while dying).
        unsafe { libc::write(2, b.as_ptr().cast(), b.len()) };
    }
    put(b"tocsin: fatal: ");
    put(msg.as_bytes());
    put(b"\n");
    // SAFETY: abort is async-signal-safe and never returns.
    unsafe { libc::abort() }
}

/// `Option::expect` for code reachable from handlers: [`fatal`] instead of a panic.
#[allow(dead_code)] // adopted by the handler-reachable modules
pub(crate) trait OrFatal<T> {
    /// The value, or [`fatal`] with `msg`.
    fn or_fatal(self, msg: &str) -> T;
}

impl<T> OrFatal<T> for Option<T> {
    #[inline]
    fn or_fatal(self, msg: &str) -> T {
        match self {
            Some(v) => v,
            None => fatal(msg),
        }
    }
}

impl<T, E> OrFatal<T> for Result<T, E> {
    #[inline]
    fn or_fatal(self, msg: &str) -> T {
        match self {
            Ok(v) => v,
            Err(_) => fatal(msg),
        }
    }
}

/// `debug_assert!` for code reachable from handlers: in debug builds, a failed check ends
/// the process with [`fatal`] (a panic could deadlock there); in release builds, nothing.
macro_rules! debug_check {
    ($cond:expr) => {
        if cfg!(debug_assertions) && !$cond {
            $crate::diag::fatal(concat!("debug check failed: ", stringify!($cond)));
        }
    };
    ($cond:expr, $($rest:tt)*) => {
        $crate::diag::debug_check!($cond)
    };
}
pub(crate) use debug_check;

#[cfg(all(test, not(loom)))]
mod tests {
    use std::process::Command;

    extern "C" fn die_in_handler(_: libc::c_int) {
        super::fatal("impossible state in a handler (test)");
    }

    /// Child half of `fatal_in_a_handler_ends_the_process`: runs only when re-executed.
    #[test]
    fn child_fatal_in_handler() {
        if std::env::var_os("TOCSIN_DIAG_CHILD").is_none() {
            return;
        }
        // SAFETY: installing a plain handler for SIGUSR1 in this (child) process.
        unsafe {
            libc::signal(
                libc::SIGUSR1,
                die_in_handler as *const () as libc::sighandler_t,
            )
        };
        // Hold the stderr lock, as interrupted code may: a panic in the handler would
        // deadlock on it; `fatal` writes with write(2) and aborts.
        let _held = std::io::stderr().lock();
        // SAFETY: raising a signal whose handler is installed above.
        unsafe { libc::raise(libc::SIGUSR1) };
        std::process::exit(0);
    }

    #[test]
    fn fatal_in_a_handler_ends_the_process_with_a_message() {
        use std::os::unix::process::ExitStatusExt;
        let out = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "diag::tests::child_fatal_in_handler",
                "--nocapture",
            ])
            .env("TOCSIN_DIAG_CHILD", "1")
            .output()
            .expect("re-executing the test binary");
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("tocsin: fatal: impossible state in a handler (test)"),
            "{err}"
        );
    }

    #[test]
    fn warnings_are_counted_once_per_kind() {
        use std::sync::atomic::Ordering;
        super::warn_once(super::Warn::Other, "first");
        super::warn_once(super::Warn::Other, "second");
        assert_ne!(
            super::SEEN.load(Ordering::Relaxed) & (1 << super::Warn::Other as u32),
            0
        );
    }
}
