//! Who this rank is, what it is doing, and how it ends: the case name and rank for the
//! messages, [`step`] (the last step reached, named by the watchdog), [`fail`] (print
//! `FAIL CASE rank R/N: why` and exit 1 at once), [`start_watchdog`] (exit 3 when stuck)
//! and [`finish`] (print `ok CASE rank R/N` or the failure).
//!
//! A failure ends the process at once rather than unwinding: unwinding a scope with
//! transfers in flight waits for them (up to `tocsin::SCOPE_UNWIND_GRACE`) and then aborts,
//! which would blur the failure being reported.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

static CASE: OnceLock<String> = OnceLock::new();
static STEP: Mutex<String> = Mutex::new(String::new());
static RANK: AtomicU32 = AtomicU32::new(u32::MAX);
static SIZE: AtomicU32 = AtomicU32::new(0);

/// Names the case in every later message (first call wins).
pub fn set_case(case: &str) {
    let _ = CASE.set(case.to_owned());
}

/// The case name given to [`set_case`], or `?`.
pub fn case() -> &'static str {
    CASE.get().map_or("?", |c| c.as_str())
}

/// Records this rank's place in the job once `tocsin::init` returned.
pub fn set_rank(comm: &tocsin::Comm) {
    RANK.store(comm.rank(), Ordering::Relaxed);
    SIZE.store(comm.size(), Ordering::Relaxed);
}

/// `rank R/N`, or `pid P` before [`set_rank`].
pub fn who() -> String {
    match RANK.load(Ordering::Relaxed) {
        u32::MAX => format!("pid {}", std::process::id()),
        r => format!("rank {r}/{}", SIZE.load(Ordering::Relaxed)),
    }
}

/// Records what the rank is doing, for the watchdog's message.
pub fn step(s: impl Into<String>) {
    *STEP.lock().unwrap_or_else(|e| e.into_inner()) = s.into();
}

/// Prints `FAIL CASE rank R/N: msg` and ends the process with code 1 at once (see the module
/// doc). Typed as returning the message so that it fits `Err(fail(…))`.
pub fn fail(msg: String) -> String {
    eprintln!("FAIL {} {}: {msg}", case(), who());
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(1)
}

/// Ends a rank stuck longer than `timeout` with exit code 3, naming the last [`step`] and
/// whatever `extra` adds (called then, from the watchdog thread).
pub fn start_watchdog(timeout: Duration, extra: fn() -> String) {
    std::thread::spawn(move || {
        std::thread::sleep(timeout);
        let st = STEP.lock().map(|g| g.clone()).unwrap_or_default();
        eprintln!(
            "FAIL {} {}: watchdog: still running after {timeout:?}; last step: {st}{}",
            case(),
            who(),
            extra()
        );
        let _ = std::io::stderr().flush();
        // SAFETY: `_exit` ends the process at once; nothing to uphold.
        unsafe { libc::_exit(3) };
    });
}

/// Prints the outcome of the case (`ok CASE rank R/N`, or `FAIL …`) and gives the exit code.
pub fn finish(r: super::R) -> ExitCode {
    match r {
        Ok(()) => {
            println!("ok {} {}", case(), who());
            let _ = std::io::stdout().flush();
            ExitCode::SUCCESS
        }
        Err(m) => {
            eprintln!("FAIL {} {}: {m}", case(), who());
            let _ = std::io::stderr().flush();
            ExitCode::from(1)
        }
    }
}
