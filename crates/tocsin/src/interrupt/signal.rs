//! `signal` mode: real-time signals as interrupts.
//!
//! Owns the choice of the signal, the handler's installation on an alternate signal stack,
//! and sending (`tgkill` to the peer's registered thread). It must not make progress itself:
//! the handler saves `errno` and calls [`super::dispatch`].
//!
//! ## What a signal-mode application must know
//! - tocsin installs a handler for one real-time signal (default: the first free one from
//!   `SIGRTMIN+3`, or `TOCSIN_SIGNAL`) with `SA_RESTART | SA_ONSTACK | SA_SIGINFO`, and
//!   gives the thread that called `tocsin::init` (the *registered thread*) a 256 KiB alternate
//!   signal stack if it has a smaller one. Peers send the signal to that thread only.
//! - Keep that signal unblocked in the registered thread; a blocked signal delays progress
//!   until the thread calls tocsin again (nothing is lost: rings keep the messages).
//! - Slow system calls in the registered thread may return `EINTR` where `SA_RESTART` does
//!   not apply (e.g. `nanosleep`, `epoll_wait`, `poll` with a timeout, `read` on a socket with
//!   `SO_RCVTIMEO`); retry them. tocsin's own calls restart by themselves.
//! - Other threads may call tocsin too; their calls synchronise with the handler through
//!   the engine's lock: a handler that finds it taken leaves the work to the lock holder.
//! - After the communicator is dropped the signal stays *ignored* (a late signal from a peer
//!   must not kill the process with the default action of a real-time signal).
//! - Do not raise tocsin's signal yourself: real-time signals queue rather than merge, so an
//!   unpaced flood keeps the registered thread entering handlers (tocsin's senders keep at
//!   most one outstanding per rank).
//! - Real-time signals count against `RLIMIT_SIGPENDING`; if that queue is full, a sender's
//!   `tgkill` fails with EAGAIN, it retries briefly and then gives up *this* interrupt (the
//!   next message to the rank tries again). Nothing is lost: the messages wait in the rings
//!   and progress on the rank's next tocsin call.

use std::io;

use crate::error::{Error, Result};
use crate::sys::Mapping;

/// Size of the alternate signal stack tocsin installs, bytes.
pub const ALT_STACK_BYTES: usize = 256 * 1024;

/// The installed handler; uninstalling leaves the signal ignored.
pub(crate) struct Installed {
    signo: i32,
    _stack: Option<Mapping>,
    old_stack: Option<libc::stack_t>,
}

// SAFETY: `Installed` only records what was installed (a signal number, a mapping, the
// previous stack descriptor as plain data); nothing in it is used through shared references.
unsafe impl Send for Installed {}
// SAFETY: as above.
unsafe impl Sync for Installed {}

impl std::fmt::Debug for Installed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installed")
            .field("signo", &self.signo)
            .finish()
    }
}

extern "C" fn on_signal(_sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    super::preserving_errno(super::dispatch);
}

fn current_action(signo: i32) -> io::Result<libc::sigaction> {
    // SAFETY: a zeroed sigaction is a valid out-parameter.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: query only (null new action).
    if unsafe { libc::sigaction(signo, std::ptr::null(), &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(old)
}

/// The first real-time signal from `SIGRTMIN+3` with no handler installed.
///
/// # Errors
/// [`Error::Unsupported`] if every one is taken.
pub fn pick_free_signal() -> Result<i32> {
    for s in libc::SIGRTMIN() + 3..=libc::SIGRTMAX() {
        if let Ok(a) = current_action(s) {
            if a.sa_sigaction == libc::SIG_DFL {
                return Ok(s);
            }
        }
    }
    Err(Error::Unsupported(
        "signal progress: every real-time signal from SIGRTMIN+3 has a handler; set TOCSIN_SIGNAL"
            .into(),
    ))
}

/// Installs the handler for `signo` (chosen if `None`) on the calling thread, which becomes
/// the registered thread.
///
/// # Errors
/// [`Error::Config`] if `signo` already has a handler; [`Error::Io`] if `sigaction`,
/// `sigaltstack` or the stack mapping fails.
pub(crate) fn install(signo: Option<i32>) -> Result<Installed> {
    let signo = match signo {
        Some(s) => {
            let a = current_action(s).map_err(|e| Error::io(format!("sigaction({s})"), e))?;
            if a.sa_sigaction != libc::SIG_DFL && a.sa_sigaction != libc::SIG_IGN {
                return Err(Error::Config {
                    name: "TOCSIN_SIGNAL",
                    value: s.to_string(),
                    reason: "this signal already has a handler in this process".into(),
                });
            }
            s
        }
        None => pick_free_signal()?,
    };
    // Alternate stack: keep the thread's own if it is large enough.
    // SAFETY: zeroed stack_t is a valid out-parameter.
    let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: query only.
    unsafe { libc::sigaltstack(std::ptr::null(), &mut cur) };
    let mut stack = None;
    let mut old_stack = None;
    if cur.ss_flags & libc::SS_DISABLE != 0 || cur.ss_size < ALT_STACK_BYTES {
        let m = Mapping::anonymous(ALT_STACK_BYTES)
            .map_err(|e| Error::io("mapping the alternate signal stack", e))?;
        let st = libc::stack_t {
            ss_sp: m.ptr() as *mut libc::c_void,
            ss_flags: 0,
            ss_size: m.len(),
        };
        // SAFETY: `st` describes a mapping we keep alive while installed.
        if unsafe { libc::sigaltstack(&st, std::ptr::null_mut()) } != 0 {
            return Err(Error::last_os("sigaltstack"));
        }
        stack = Some(m);
        old_stack = Some(cur);
    }
    // SAFETY: zeroed sigaction, then filled field by field.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = on_signal as *const () as usize;
    act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
    // SAFETY: valid sigset pointer.
    unsafe { libc::sigemptyset(&mut act.sa_mask) };
    // SAFETY: a valid action for a real-time signal.
    if unsafe { libc::sigaction(signo, &act, std::ptr::null_mut()) } != 0 {
        return Err(Error::last_os(format!("sigaction({signo})")));
    }
    // Make sure the registered thread can receive it.
    // SAFETY: a local sigset, then pthread_sigmask on the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signo);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    Ok(Installed {
        signo,
        _stack: stack,
        old_stack,
    })
}

impl Installed {
    /// The signal number in use.
    pub(crate) fn signo(&self) -> i32 {
        self.signo
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        // SAFETY: zeroed then set to SIG_IGN: a valid action.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = libc::SIG_IGN;
            libc::sigaction(self.signo, &act, std::ptr::null_mut());
        }
        if let Some(old) = self.old_stack {
            // Restore the previous alternate stack only if we are on the registered thread
            // and not running on ours; otherwise keep ours mapped (leak it) for safety.
            // SAFETY: `old` is what sigaltstack reported before; reinstalling it is valid.
            let r = unsafe { libc::sigaltstack(&old, std::ptr::null_mut()) };
            if r != 0 {
                if let Some(m) = self._stack.take() {
                    std::mem::forget(m);
                }
            }
        }
    }
}

/// This thread's kernel thread id.
pub(crate) fn gettid() -> i32 {
    // SAFETY: no arguments.
    unsafe { libc::gettid() }
}

/// Sends `signo` to thread `tid` of process `pid`. Async-signal-safe (one system call).
///
/// # Errors
/// ESRCH if the thread is gone; EAGAIN if the user's queue of pending real-time signals is
/// full (`RLIMIT_SIGPENDING`): nothing was queued.
pub(crate) fn send(pid: i32, tid: i32, signo: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, signo) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
