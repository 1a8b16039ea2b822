//! `signal` mode: real-time signals as interrupts.
//!
//! Owns the choice of the signal, the handler's installation on an alternate signal stack,
//! and sending (`tgkill` to the peer's registered thread). It must not make progress itself:
//! the handler saves `errno` and calls `super::dispatch`.
//!
//! ## What a signal-mode application must know
//! - tocsin installs a handler for one real-time signal (default: the first free one from
//!   `SIGRTMIN+3`, or `TOCSIN_SIGNAL`) with `SA_RESTART | SA_ONSTACK | SA_SIGINFO`, and
//!   gives the thread that called `tocsin::init` (the *registered thread*) a 256 KiB alternate
//!   signal stack if it has a smaller one. Peers send the signal to that thread only.
//! - A signal is *free* if it has no handler and no thread of the process blocks it: an
//!   application that reads a signal through `signalfd` or `sigwait` blocks it and installs
//!   no handler, and tocsin must not take it (a thread that blocks *every* real-time signal,
//!   as glibc does for a moment in `pthread_create`, claims none). A `TOCSIN_SIGNAL` that has a handler or is
//!   blocked is refused at `init` with [`Error::Config`] saying so.
//! - Install no handler for tocsin's signal after `init` and keep it unblocked in the
//!   registered thread: a replaced handler loses every interrupt, a blocked signal delays
//!   progress until the thread calls tocsin again (nothing is lost: rings keep the
//!   messages). `Installed::check` detects both, for the engine to warn and fall back.
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
///
/// Owns the handler's registration for `signo`, the alternate stack mapped for the
/// registered thread (if its own was missing or too small) and that thread's previous
/// alternate-stack descriptor, restored on drop when that is safe (see [`Drop`]).
pub(crate) struct Installed {
    signo: i32,
    /// Kernel thread id of the registered thread (the one that called [`install`]).
    tid: i32,
    stack: Option<Mapping>,
    old_stack: Option<libc::stack_t>,
}

// SAFETY: `Installed` only records what was installed (a signal number, a thread id, a
// mapping, the previous stack descriptor as plain data); nothing in it is used through
// shared references.
unsafe impl Send for Installed {}
// SAFETY: as above.
unsafe impl Sync for Installed {}

impl std::fmt::Debug for Installed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installed")
            .field("signo", &self.signo)
            .field("tid", &self.tid)
            .finish()
    }
}

extern "C" fn on_signal(_sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    super::preserving_errno(super::dispatch);
}

/// The address tocsin's handler is registered with (what `sigaction` reports back).
fn handler_addr() -> usize {
    on_signal as *const () as usize
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

/// `true` if `signo` is blocked in the calling thread's signal mask.
fn blocked_here(signo: i32) -> bool {
    // SAFETY: a zeroed sigset is a valid out-parameter; query only (null new set).
    unsafe {
        let mut cur: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur);
        libc::sigismember(&cur, signo) == 1
    }
}

/// Parses the `SigBlk:` line of a `/proc/<pid>/task/<tid>/status` text: the thread's
/// blocked-signal mask (bit `n - 1` for signal `n`), or `None` if absent or malformed.
fn parse_sigblk(status: &str) -> Option<u64> {
    let v = status.lines().find_map(|l| l.strip_prefix("SigBlk:"))?;
    u64::from_str_radix(v.trim(), 16).ok()
}

/// `true` if bit `signo` is set in a `SigBlk`-style mask.
fn mask_has(mask: u64, signo: i32) -> bool {
    (1..=64).contains(&signo) && mask & (1u64 << (signo - 1)) != 0
}

/// `true` if `mask` blocks every real-time signal: a blanket mask, not a claim on one
/// signal. glibc's `pthread_create`, `fork` and `posix_spawn` block everything for a moment
/// (and a new thread starts so), and worker threads often block all asynchronous signals;
/// an application that reads a signal through `signalfd` blocks that signal specifically.
fn blanket(mask: u64) -> bool {
    (libc::SIGRTMIN()..=libc::SIGRTMAX()).all(|s| mask_has(mask, s))
}

/// The signals blocked specifically (not by a [`blanket`] mask) in some thread of this
/// process, from `/proc/self/task/*/status`, OR-ed together: a signal blocked in any
/// thread is taken as in use (an application that reads it with `signalfd` or `sigwait`
/// blocks it, often in one thread only, and the kernel then delivers the signals sent to
/// the process to a thread that does not block it: tocsin's registered thread). Threads
/// that exit while being read are skipped; an unreadable `/proc` gives 0 (then only the
/// calling thread's mask is checked).
fn blocked_in_any_thread() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter_map(|s| parse_sigblk(&s))
        .filter(|&m| !blanket(m))
        .fold(0, |a, m| a | m)
}

/// Why `signo` cannot be taken by tocsin, or `None` if it is free: a handler (anything but
/// `SIG_DFL`, or also `SIG_IGN` when `ignored_is_free`), or blocked in the calling thread
/// (by any mask: peers signal this thread only) or specifically in another thread of the
/// process (`any_blocked` from [`blocked_in_any_thread`]).
fn in_use(signo: i32, ignored_is_free: bool, any_blocked: u64) -> Option<String> {
    match current_action(signo) {
        Err(e) => return Some(format!("sigaction failed: {e}")),
        Ok(a) if a.sa_sigaction == libc::SIG_DFL => {}
        Ok(a) if a.sa_sigaction == libc::SIG_IGN && ignored_is_free => {}
        Ok(_) => return Some("this signal already has a handler in this process".into()),
    }
    if blocked_here(signo) || mask_has(any_blocked, signo) {
        return Some(
            "this signal is blocked by a thread of this process (read through signalfd or \
             sigwait?): tocsin would take it away from the application"
                .into(),
        );
    }
    None
}

/// The first real-time signal from `SIGRTMIN+3` that the process does not use: no handler
/// installed (not even `SIG_IGN`), not blocked in the calling thread, and not blocked
/// specifically in any other thread (an application that reads a signal through `signalfd`
/// or `sigwait` blocks it and installs no handler; a thread that blocks every real-time
/// signal at once claims none of them).
///
/// # Errors
/// [`Error::Unsupported`] if every one is taken.
pub fn pick_free_signal() -> Result<i32> {
    let any_blocked = blocked_in_any_thread();
    for s in libc::SIGRTMIN() + 3..=libc::SIGRTMAX() {
        if in_use(s, false, any_blocked).is_none() {
            return Ok(s);
        }
    }
    Err(Error::Unsupported(
        "signal progress: every real-time signal from SIGRTMIN+3 has a handler or is blocked by \
         the application; set TOCSIN_SIGNAL to a free one"
            .into(),
    ))
}

/// Installs the handler for `signo` (chosen if `None`) on the calling thread, which becomes
/// the registered thread.
///
/// # Errors
/// [`Error::Config`] if `signo` already has a handler or is blocked in a thread of this
/// process (the application uses it); [`Error::Unsupported`] if no signal is free;
/// [`Error::Io`] if `sigaction`, `sigaltstack` or the stack mapping fails.
pub(crate) fn install(signo: Option<i32>) -> Result<Installed> {
    let signo = match signo {
        Some(s) => {
            if let Some(reason) = in_use(s, true, blocked_in_any_thread()) {
                return Err(Error::Config {
                    name: "TOCSIN_SIGNAL",
                    value: s.to_string(),
                    reason,
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
    act.sa_sigaction = handler_addr();
    act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
    // SAFETY: valid sigset pointer.
    unsafe { libc::sigemptyset(&mut act.sa_mask) };
    // SAFETY: a valid action for a real-time signal.
    if unsafe { libc::sigaction(signo, &act, std::ptr::null_mut()) } != 0 {
        let e = Error::last_os(format!("sigaction({signo})"));
        if let (Some(old), Some(m)) = (old_stack, stack.take()) {
            // SAFETY: `old` is what sigaltstack reported before, on this same thread, and we
            // are not running on our stack (no handler of ours is installed).
            if unsafe { libc::sigaltstack(&old, std::ptr::null_mut()) } == 0 {
                drop(m);
            } else {
                std::mem::forget(m);
            }
        }
        return Err(e);
    }
    Ok(Installed {
        signo,
        tid: gettid(),
        stack,
        old_stack,
    })
}

/// `signal` mode with TCP peers: when the kernel cannot queue a socket's real-time signal
/// (the `RLIMIT_SIGPENDING` queue is full) it raises plain `SIGIO` instead, whose default
/// action ends the process. If the application left `SIGIO` at its default, tocsin's
/// handler takes it too (it drains every socket, so it is a "scan all"); if the application
/// handles or ignores `SIGIO` itself it is left alone, and progress relies on the periodic
/// scan of waits. Returns whether the handler was installed.
pub(crate) fn install_sigio_fallback() -> bool {
    match current_action(libc::SIGIO) {
        Ok(old) if old.sa_sigaction == libc::SIG_DFL => {}
        _ => return false,
    }
    // SAFETY: zeroed sigaction, then filled field by field.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler_addr();
    act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
    // SAFETY: valid sigset pointer.
    unsafe { libc::sigemptyset(&mut act.sa_mask) };
    // SAFETY: a valid action for SIGIO.
    unsafe { libc::sigaction(libc::SIGIO, &act, std::ptr::null_mut()) == 0 }
}

impl Installed {
    /// The signal number in use.
    pub(crate) fn signo(&self) -> i32 {
        self.signo
    }

    /// Kernel thread id of the registered thread.
    #[allow(dead_code)] // for the engine's diagnostics
    pub(crate) fn tid(&self) -> i32 {
        self.tid
    }

    /// Checks that interrupts can still reach tocsin: its handler is still the one installed
    /// for the signal (an application's later `sigaction` silently replaces it), the signal
    /// is not blocked in the registered thread (it would then wait in the queue until the
    /// thread unblocks it, or be read by the application's `signalfd`), and the registered
    /// thread still exists.
    ///
    /// Not for handlers: it allocates and reads `/proc/self/task/<tid>/status`. Meant for the
    /// engine's periodic liveness check and for waits that find no progress.
    ///
    /// # Errors
    /// A sentence saying what is wrong and what the application should do, ready for a
    /// warning ([`crate::diag::Warn::SignalStolen`]).
    #[cfg_attr(loom, allow(dead_code))] // the engine calls it outside loom models
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let s = self.signo;
        match current_action(s) {
            Err(e) => return Err(format!("signal progress: sigaction({s}) failed: {e}")),
            Ok(a) if a.sa_sigaction != handler_addr() => {
                let what = if a.sa_sigaction == libc::SIG_DFL {
                    "reset to the default action".to_string()
                } else if a.sa_sigaction == libc::SIG_IGN {
                    "set to be ignored".to_string()
                } else {
                    format!("another handler, at {:#x}", a.sa_sigaction)
                };
                return Err(format!(
                    "signal progress: tocsin's handler for signal {s} was replaced after \
                     tocsin::init ({what}); interrupts from peers no longer reach tocsin. Leave \
                     signal {s} alone, or choose another with TOCSIN_SIGNAL"
                ));
            }
            Ok(_) => {}
        }
        let path = format!("/proc/self/task/{}/status", self.tid);
        // A thread blocks every signal for a moment while it creates a thread or forks: a
        // blocked signal counts only if it stays blocked over a few reads 1 ms apart.
        let mut read = std::fs::read_to_string(&path);
        for _ in 0..3 {
            match &read {
                Ok(st) if parse_sigblk(st).is_some_and(|m| mask_has(m, s)) => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    read = std::fs::read_to_string(&path);
                }
                _ => break,
            }
        }
        match read {
            Err(e) => Err(format!(
                "signal progress: the registered thread (tid {}, the one that called \
                 tocsin::init) cannot be inspected ({e}): has it exited? Peers signal only it",
                self.tid
            )),
            Ok(st) => match parse_sigblk(&st) {
                Some(m) if mask_has(m, s) => Err(format!(
                    "signal progress: signal {s} is blocked in the registered thread (tid {}, \
                     the one that called tocsin::init); interrupts from peers wait until it is \
                     unblocked (or go to the application's signalfd). Keep it unblocked there, \
                     or choose another with TOCSIN_SIGNAL",
                    self.tid
                )),
                Some(_) => Ok(()),
                None => Err(format!("signal progress: no SigBlk line in {path}")),
            },
        }
    }
}

/// Leaves the signal ignored (a late signal from a peer must not kill the process), then
/// deals with the alternate stack tocsin mapped, if any:
/// - dropped on the registered thread, not running on that stack, and the stack still the
///   thread's alternate stack: the thread's previous alternate stack is restored and ours
///   unmapped;
/// - dropped on the registered thread after the application replaced the alternate stack
///   (and not running on ours): the application's stays, ours is unmapped;
/// - dropped on another thread, or while running on our stack: nothing can be changed for
///   the registered thread (`sigaltstack` acts on the calling thread only), so our mapping
///   is deliberately leaked (256 KiB, once per `init`): unmapping it would make the
///   registered thread's next `SA_ONSTACK` handler run on unmapped memory.
impl Drop for Installed {
    fn drop(&mut self) {
        // SAFETY: zeroed then set to SIG_IGN: a valid action.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = libc::SIG_IGN;
            libc::sigaction(self.signo, &act, std::ptr::null_mut());
        }
        let Some(m) = self.stack.take() else {
            return;
        };
        if gettid() != self.tid {
            std::mem::forget(m);
            return;
        }
        // SAFETY: zeroed stack_t is a valid out-parameter; query only.
        let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let r = unsafe { libc::sigaltstack(std::ptr::null(), &mut cur) };
        if r != 0 || cur.ss_flags & libc::SS_ONSTACK != 0 {
            std::mem::forget(m);
            return;
        }
        if std::ptr::eq(cur.ss_sp.cast::<u8>(), m.ptr()) && cur.ss_flags & libc::SS_DISABLE == 0 {
            if let Some(old) = self.old_stack {
                // SAFETY: `old` is what sigaltstack reported on this thread before install;
                // reinstalling it is valid, and we are not running on our stack.
                if unsafe { libc::sigaltstack(&old, std::ptr::null_mut()) } != 0 {
                    std::mem::forget(m);
                    return;
                }
            }
        }
        // The thread's alternate stack is no longer ours: unmapping is safe.
        drop(m);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Tests that install handlers or change masks of signals other tests may pick run one
    /// at a time (dispositions are process-wide; the test harness runs tests on threads).
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_mask(how: libc::c_int, signo: i32) {
        // SAFETY: a local sigset, then pthread_sigmask on the calling thread.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signo);
            assert_eq!(
                libc::pthread_sigmask(how, &set, std::ptr::null_mut()),
                0,
                "pthread_sigmask"
            );
        }
    }

    fn set_action(signo: i32, handler: usize) {
        // SAFETY: zeroed sigaction with a handler value valid for `signo`.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = handler;
            libc::sigemptyset(&mut act.sa_mask);
            assert_eq!(libc::sigaction(signo, &act, std::ptr::null_mut()), 0);
        }
    }

    extern "C" fn other_handler(_: libc::c_int) {}

    fn altstack() -> libc::stack_t {
        // SAFETY: zeroed out-parameter, query only.
        unsafe {
            let mut cur: libc::stack_t = std::mem::zeroed();
            assert_eq!(libc::sigaltstack(std::ptr::null(), &mut cur), 0);
            cur
        }
    }

    #[test]
    fn sigblk_lines_parse() {
        let st = "Name:\tx\nSigPnd:\t0000000000000000\nSigBlk:\t0000000400000001\nSigIgn:\t0\n";
        let m = parse_sigblk(st).expect("parsed");
        assert!(mask_has(m, 1));
        assert!(mask_has(m, 35));
        assert!(!mask_has(m, 34));
        assert!(!mask_has(m, 0) && !mask_has(m, 65));
        assert_eq!(parse_sigblk("SigBlk:\tzz\n"), None);
        assert_eq!(parse_sigblk("Name:\tx\n"), None);
        // glibc's pthread_create mask (everything the kernel lets block) claims no signal.
        assert!(blanket(
            parse_sigblk("SigBlk:\tfffffffffffbfeff\n").unwrap()
        ));
        assert!(!blanket(1u64 << (libc::SIGRTMIN() + 3 - 1)));
    }

    #[test]
    fn a_signalfd_blocked_signal_is_never_picked() {
        let _g = serial();
        let first = libc::SIGRTMIN() + 3;
        // Another thread reads `first` through a signalfd: it blocks it, installs nothing.
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            set_mask(libc::SIG_BLOCK, first);
            // SAFETY: a local sigset for signalfd; the fd is closed below.
            let fd = unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, first);
                libc::signalfd(-1, &set, libc::SFD_CLOEXEC)
            };
            assert!(fd >= 0, "signalfd");
            tx.send(()).unwrap();
            done_rx.recv().unwrap();
            // SAFETY: our own descriptor.
            unsafe { libc::close(fd) };
        });
        rx.recv().unwrap();
        let picked = pick_free_signal().expect("some signal free");
        assert_ne!(
            picked, first,
            "took a signal another thread reads via signalfd"
        );
        match install(Some(first)) {
            Err(Error::Config { name, reason, .. }) => {
                assert_eq!(name, "TOCSIN_SIGNAL");
                assert!(reason.contains("blocked"), "{reason}");
            }
            other => panic!("explicit blocked signal accepted: {other:?}"),
        }
        done_tx.send(()).unwrap();
        t.join().unwrap();

        // Blocked in the calling thread too.
        set_mask(libc::SIG_BLOCK, first);
        let picked = pick_free_signal().expect("some signal free");
        set_mask(libc::SIG_UNBLOCK, first);
        assert_ne!(picked, first);
    }

    #[test]
    fn a_handled_signal_is_refused_by_name() {
        let _g = serial();
        let s = libc::SIGRTMAX() - 1;
        set_action(s, other_handler as *const () as usize);
        let r = install(Some(s));
        set_action(s, libc::SIG_DFL);
        match r {
            Err(Error::Config {
                name,
                value,
                reason,
            }) => {
                assert_eq!(name, "TOCSIN_SIGNAL");
                assert_eq!(value, s.to_string());
                assert!(reason.contains("handler"), "{reason}");
            }
            other => panic!("explicit handled signal accepted: {other:?}"),
        }
    }

    #[test]
    fn check_sees_a_replaced_handler() {
        let _g = serial();
        let s = libc::SIGRTMAX() - 2;
        let inst = install(Some(s)).expect("install");
        assert_eq!(inst.check(), Ok(()));
        set_action(s, other_handler as *const () as usize);
        let e = inst.check().expect_err("replaced handler not seen");
        assert!(e.contains("handler") && e.contains(&s.to_string()), "{e}");
        set_action(s, libc::SIG_DFL);
        let e = inst.check().expect_err("reset handler not seen");
        assert!(e.contains("default"), "{e}");
        drop(inst);
    }

    #[test]
    fn check_sees_the_signal_blocked_in_the_registered_thread() {
        let _g = serial();
        let s = libc::SIGRTMAX() - 3;
        let inst = install(Some(s)).expect("install");
        assert_eq!(inst.check(), Ok(()));
        set_mask(libc::SIG_BLOCK, s);
        let e = inst.check().expect_err("blocked signal not seen");
        assert!(e.contains("blocked"), "{e}");
        set_mask(libc::SIG_UNBLOCK, s);
        assert_eq!(inst.check(), Ok(()));
        // Checked from another thread, it still inspects the registered one.
        let inst = std::thread::scope(|sc| sc.spawn(|| inst.check().map(|_| inst)).join());
        let inst = inst.unwrap().expect("check from another thread");
        drop(inst);
    }

    #[test]
    fn the_handler_runs_and_drop_leaves_the_signal_ignored() {
        let _g = serial();
        let s = libc::SIGRTMAX() - 4;
        let inst = install(Some(s)).expect("install");
        // No target registered: dispatch does nothing, but the handler must run and return.
        send(std::process::id() as i32, gettid(), s).expect("tgkill");
        assert_eq!(inst.check(), Ok(()));
        drop(inst);
        assert_eq!(current_action(s).unwrap().sa_sigaction, libc::SIG_IGN);
        // An ignored signal is not picked automatically, but may be named again.
        let again = install(Some(s)).expect("re-install over SIG_IGN");
        drop(again);
        set_action(s, libc::SIG_DFL);
    }

    #[test]
    fn drop_on_the_registered_thread_restores_the_old_stack() {
        let _g = serial();
        let s = libc::SIGRTMAX() - 5;
        // A fresh thread has no alternate stack (Rust's own guard stack is installed only on
        // the main thread and threads that overflowed): tocsin maps one and restores none.
        std::thread::spawn(move || {
            let before = altstack();
            let inst = install(Some(s)).expect("install");
            let ours = altstack();
            assert_eq!(ours.ss_size, ALT_STACK_BYTES);
            assert_eq!(ours.ss_flags & libc::SS_DISABLE, 0);
            drop(inst);
            let after = altstack();
            assert_eq!(after.ss_sp, before.ss_sp);
            assert_eq!(after.ss_size, before.ss_size);
            assert_eq!(
                after.ss_flags & libc::SS_DISABLE,
                before.ss_flags & libc::SS_DISABLE
            );
        })
        .join()
        .unwrap();
        set_action(s, libc::SIG_DFL);
    }

    #[test]
    fn drop_on_another_thread_leaves_the_registered_threads_stack_mapped() {
        let _g = serial();
        let s = libc::SIGRTMAX() - 6;
        let (tx, rx) = std::sync::mpsc::channel();
        let (back_tx, back_rx) = std::sync::mpsc::channel::<()>();
        let reg = std::thread::spawn(move || {
            let inst = install(Some(s)).expect("install");
            let ours = altstack();
            tx.send(inst).unwrap();
            back_rx.recv().unwrap(); // the other thread dropped `inst`
            let now = altstack();
            assert_eq!(now.ss_sp, ours.ss_sp, "another thread changed our stack");
            // The stack must still be mapped: a handler with SA_ONSTACK runs on it.
            static HIT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            extern "C" fn probe(_: libc::c_int) {
                HIT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            // SAFETY: a valid SA_ONSTACK action for `s`, then the signal to this thread.
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = probe as *const () as usize;
                act.sa_flags = libc::SA_ONSTACK;
                libc::sigemptyset(&mut act.sa_mask);
                assert_eq!(libc::sigaction(s, &act, std::ptr::null_mut()), 0);
            }
            send(std::process::id() as i32, gettid(), s).expect("tgkill");
            assert_eq!(HIT.load(std::sync::atomic::Ordering::SeqCst), 1);
            // Nothing restores it on this thread now: clear it ourselves (leaked mapping).
            // SAFETY: disabling this thread's alternate stack, not running on it.
            unsafe {
                let off = libc::stack_t {
                    ss_sp: std::ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                libc::sigaltstack(&off, std::ptr::null_mut());
            }
        });
        let inst = rx.recv().unwrap();
        drop(inst); // on this (test) thread, not the registered one
        back_tx.send(()).unwrap();
        reg.join().unwrap();
        set_action(s, libc::SIG_DFL);
    }
}
