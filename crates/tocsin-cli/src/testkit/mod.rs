//! The rank-side harness of the test programs (`tocsin-testrank`, `tocsin-soak`): what a
//! case returns ([`R`]), how failures are reported and end the rank at once
//! ([`report::fail`], the [`ensure!`](crate::ensure) macro, [`Ctx`]), the watchdog and the
//! step it names ([`report`]), deterministic message contents with their checks and
//! checksums ([`data`]), and the checks of a completed receive ([`checks`]).
//!
//! The protocol a test driver relies on: on success every rank prints `ok CASE rank R/N` on
//! stdout and exits 0; on failure it prints `FAIL CASE rank R/N: why` on stderr and exits 1;
//! a rank stuck past its watchdog prints `FAIL CASE rank R/N: watchdog: …; last step: …`
//! and exits 3; bad options are clap's errors (exit 2).

pub mod checks;
pub mod data;
pub mod report;

use std::fmt::Display;

/// A case's outcome: `Err` carries the message printed on failure.
pub type R<T = ()> = Result<T, String>;

/// Fails the case (see [`report::fail`]: the rank exits at once) unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($c:expr, $($a:tt)+) => {
        if !$c {
            return Err($crate::testkit::report::fail(format!($($a)+)));
        }
    };
}

/// Turns a tocsin error into a failure of the case (the rank exits at once), with what was
/// being done.
pub trait Ctx<T> {
    /// `what` names the operation that failed.
    fn ctx(self, what: impl Display) -> R<T>;
    /// As [`Ctx::ctx`], the description computed only on failure.
    fn with_ctx(self, what: impl FnOnce() -> String) -> R<T>;
}

impl<T> Ctx<T> for tocsin::Result<T> {
    fn ctx(self, what: impl Display) -> R<T> {
        self.map_err(|e| report::fail(format!("{what}: unexpected error: {e} ({e:?})")))
    }
    fn with_ctx(self, what: impl FnOnce() -> String) -> R<T> {
        self.map_err(|e| report::fail(format!("{}: unexpected error: {e} ({e:?})", what())))
    }
}

/// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`), to tell a wait that sleeps
/// from one that spins.
pub fn thread_cpu() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
