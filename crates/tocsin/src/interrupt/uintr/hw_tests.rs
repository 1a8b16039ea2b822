//! Tests that need UINTR hardware and a UINTR kernel (run them on the emulated Sapphire
//! Rapids: `tests/uintr-emu/run.sh`). Elsewhere each test prints why it is skipped and
//! passes, unless `TOCSIN_UINTR_REQUIRED` is set: then a missing UINTR fails it (the
//! emulated run sets it, so that nothing there passes by skipping).
//!
//! The tests share one process-wide handler hook ([`super::entry::set_hook`]), so they run
//! one at a time (`SERIAL`). Each receiver is a fresh thread: registration is per thread.
//! They assert outcomes (handler runs, vectors, register contents, error numbers), never
//! durations; waits have a generous deadline that only turns a hang into a failure.

use super::*;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// Handler runs seen by the hooks.
static RUNS: AtomicU64 = AtomicU64::new(0);
/// Bit v set: vector v was delivered.
static VECTORS: AtomicU64 = AtomicU64::new(0);
/// The vectors of the first 8 runs, in order (`u64::MAX`: none).
static ORDER: [AtomicU64; 8] = [const { AtomicU64::new(u64::MAX) }; 8];
/// Thread that ran the last handler.
static HANDLER_TID: AtomicI32 = AtomicI32::new(0);
/// Current and greatest nesting depth of the hook.
static DEPTH: AtomicU64 = AtomicU64::new(0);
static MAX_DEPTH: AtomicU64 = AtomicU64::new(0);
/// Runs in which TESTUI said UIF was set (it must not be, inside a handler).
static UIF_IN_HANDLER: AtomicU64 = AtomicU64::new(0);
/// A UITT index the next handler run sends to once, from inside the handler.
static SEND_FROM_HANDLER: AtomicU64 = AtomicU64::new(u64::MAX);

fn gettid() -> i32 {
    // SAFETY: no arguments; async-signal-safe.
    unsafe { libc::gettid() }
}

/// The test hook: records the run, and sends once from inside the handler when asked.
extern "C" fn counting_hook(vector: u64) {
    let d = DEPTH.fetch_add(1, SeqCst) + 1;
    MAX_DEPTH.fetch_max(d, SeqCst);
    if testui() {
        UIF_IN_HANDLER.fetch_add(1, SeqCst);
    }
    let n = RUNS.fetch_add(1, SeqCst) as usize;
    if let Some(o) = ORDER.get(n) {
        o.store(vector, SeqCst);
    }
    VECTORS.fetch_or(1u64.checked_shl(vector as u32).unwrap_or(0), SeqCst);
    HANDLER_TID.store(gettid(), SeqCst);
    let s = SEND_FROM_HANDLER.swap(u64::MAX, SeqCst);
    if s != u64::MAX {
        // SAFETY: the test stored an index registered in this process.
        unsafe { senduipi(s) };
        // Give a (wrong) nested delivery every chance to happen now.
        for _ in 0..200_000 {
            std::hint::spin_loop();
        }
    }
    DEPTH.fetch_sub(1, SeqCst);
}

/// Holds the test lock and the hook; `None` (test skipped) without UINTR.
struct Hw {
    _g: MutexGuard<'static, ()>,
}

fn hw(name: &str) -> Option<Hw> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = support().require() {
        assert!(
            std::env::var_os("TOCSIN_UINTR_REQUIRED").is_none(),
            "{name}: TOCSIN_UINTR_REQUIRED is set but {e}"
        );
        eprintln!("{name}: skipped (needs UINTR): {e}");
        return None;
    }
    RUNS.store(0, SeqCst);
    VECTORS.store(0, SeqCst);
    for o in &ORDER {
        o.store(u64::MAX, SeqCst);
    }
    HANDLER_TID.store(0, SeqCst);
    DEPTH.store(0, SeqCst);
    MAX_DEPTH.store(0, SeqCst);
    UIF_IN_HANDLER.store(0, SeqCst);
    SEND_FROM_HANDLER.store(u64::MAX, SeqCst);
    // SAFETY: the hook uses atomics and one system call only, and cannot unwind.
    unsafe { entry::set_hook(Some(counting_hook)) };
    Some(Hw { _g: g })
}

impl Drop for Hw {
    fn drop(&mut self) {
        // SAFETY: restores the engine dispatch.
        unsafe { entry::set_hook(None) };
    }
}

/// Spins until `f()` holds; fails the test after 120 s (a hang guard, not a timing check).
fn wait_until(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(120), "timed out: {what}");
        std::hint::spin_loop();
    }
}

/// Busy work that calls nothing, to give a pending interrupt every chance to arrive.
fn compute(iters: u64) -> u64 {
    let mut x = 1u64;
    for i in 0..iters {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    x
}

fn errno(r: io::Result<impl std::fmt::Debug>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.raw_os_error().unwrap_or(0),
    }
}

#[test]
fn uintr_registration_and_unregistration() {
    let Some(_hw) = hw("uintr_registration_and_unregistration") else {
        return;
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            // Before registration a vector fd is refused.
            assert_ne!(errno(vector_fd(1)), 0);
            register_handler().expect("first registration");
            assert_eq!(
                errno(register_handler()),
                libc::EBUSY,
                "second registration"
            );
            // The probe treats "already registered" as supported, and leaves it registered.
            assert_eq!(support().kernel, Ok(()));
            assert_eq!(errno(register_handler()), libc::EBUSY, "after the probe");
            let fd = vector_fd(1).expect("vector fd once registered");
            drop(fd);
            unregister_handler();
            register_handler().expect("registration after unregistration");
            unregister_handler();
            // The probe from an unregistered thread registers and undoes it.
            assert_eq!(support().kernel, Ok(()));
            register_handler().expect("registration after the probe");
            unregister_handler();
        });
    });
}

#[test]
fn uintr_vector_allocation() {
    let Some(_hw) = hw("uintr_vector_allocation") else {
        return;
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            register_handler().expect("register");
            let a = vector_fd(0).expect("vector 0");
            let b = vector_fd(63).expect("vector 63");
            assert_ne!(a.as_raw_fd(), b.as_raw_fd());
            for fd in [&a, &b] {
                let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                    .expect("readlink");
                assert!(
                    link.to_string_lossy().contains("uvec"),
                    "vector fd is {link:?}"
                );
            }
            assert_eq!(errno(vector_fd(64)), libc::ENOSPC, "vector 64");
            drop((a, b));
            unregister_handler();
        });
    });
}

#[test]
fn uintr_sender_registration_and_uitt_index() {
    let Some(_hw) = hw("uintr_sender_registration_and_uitt_index") else {
        return;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            register_handler().expect("register");
            let a = vector_fd(1).expect("vector 1");
            let b = vector_fd(2).expect("vector 2");
            tx.send((a.as_raw_fd(), b.as_raw_fd())).expect("send fds");
            wait_until("sender side done", || done.load(SeqCst));
            drop((a, b));
            unregister_handler();
        });
        let (fa, fb) = rx.recv().expect("fds");
        // SAFETY: the receiver keeps both fds open until `done`; borrowed only meanwhile.
        let (ba, bb) = unsafe {
            (
                std::os::fd::BorrowedFd::borrow_raw(fa),
                std::os::fd::BorrowedFd::borrow_raw(fb),
            )
        };
        let (oa, ob) = (
            ba.try_clone_to_owned().expect("dup"),
            bb.try_clone_to_owned().expect("dup"),
        );
        let mut k = KernelRegistrar;
        let ia = k.register_sender(&oa).expect("sender to vector 1");
        let ib = k.register_sender(&ob).expect("sender to vector 2");
        assert_ne!(ia, ib);
        assert!(ia < 256 && ib < 256, "UITT has 256 entries: {ia} {ib}");
        unregister_sender(ia).expect("unregister");
        assert_ne!(errno(unregister_sender(ia)), 0, "double unregistration");
        let ia2 = k.register_sender(&oa).expect("again");
        unregister_sender(ia2).expect("unregister");
        unregister_sender(ib).expect("unregister");
        // Not a vector fd.
        let null: OwnedFd = std::fs::File::open("/dev/null").expect("null").into();
        assert_ne!(errno(k.register_sender(&null)), 0);
        // The real registrar through pidfd_getfd, as ranks do with each other; 300 rounds
        // (more than the UITT's 256 entries) show `Senders` frees its indexes on drop.
        let pid = std::process::id() as i32;
        let peers = [(0, pid, fa), (1, pid, fb), (2, pid, fa)];
        for round in 0..300 {
            let senders = Senders::register(1, 3, &peers, &mut KernelRegistrar)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            let (s0, s2) = (senders.index(0), senders.index(2));
            assert!(s0.is_some() && s2.is_some() && s0 != s2 && senders.index(1).is_none());
        }
        done.store(true, SeqCst);
    });
}

/// A receiver thread: registers, creates a vector fd for `vector`, hands its raw fd over,
/// sets UIF and runs `body`; unregisters at the end.
fn receiver<'s>(
    s: &'s std::thread::Scope<'s, '_>,
    vector: u64,
    body: impl FnOnce() + Send + 's,
) -> (std::thread::ScopedJoinHandle<'s, ()>, OwnedFd, i32) {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = s.spawn(move || {
        register_handler().expect("register");
        let fd = vector_fd(vector).expect("vector fd");
        let dup = fd.try_clone().expect("dup");
        tx.send((dup, gettid())).expect("handover");
        stui();
        assert!(testui(), "UIF after STUI");
        body();
        drop(fd);
        unregister_handler();
    });
    let (fd, tid) = rx.recv().expect("receiver set-up");
    (h, fd, tid)
}

#[test]
fn uintr_senduipi_to_a_running_receiver() {
    let Some(_hw) = hw("uintr_senduipi_to_a_running_receiver") else {
        return;
    };
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (h, fd, tid) = receiver(s, 5, || {
            // Computes, calling nothing, until the sender is satisfied.
            while !stop.load(SeqCst) {
                compute(1000);
            }
        });
        let i = KernelRegistrar.register_sender(&fd).expect("sender");
        for n in 1..=20 {
            // SAFETY: `i` was just registered in this process.
            unsafe { senduipi(i) };
            wait_until("handler run", || RUNS.load(SeqCst) >= n);
            assert_eq!(RUNS.load(SeqCst), n, "one run per interrupt");
        }
        stop.store(true, SeqCst);
        h.join().expect("receiver");
        assert_eq!(ORDER[0].load(SeqCst), 5, "vector");
        assert_eq!(VECTORS.load(SeqCst), 1 << 5);
        assert_eq!(HANDLER_TID.load(SeqCst), tid, "ran on the receiver thread");
        assert_eq!(MAX_DEPTH.load(SeqCst), 1);
        assert_eq!(UIF_IN_HANDLER.load(SeqCst), 0, "UIF clear in the handler");
        unregister_sender(i).expect("unregister");
    });
}

/// State letter of thread `tid` of this process ('S' = asleep in the kernel).
fn thread_state(tid: i32) -> char {
    let st = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    st.rsplit(')')
        .next()
        .and_then(|r| r.trim_start().chars().next())
        .unwrap_or('?')
}

#[test]
fn uintr_receiver_blocked_in_a_system_call() {
    let Some(_hw) = hw("uintr_receiver_blocked_in_a_system_call") else {
        return;
    };
    let mut p = [0i32; 2];
    // SAFETY: `p` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
    let (rfd, wfd) = (p[0], p[1]);
    let after_read = AtomicU64::new(u64::MAX);
    std::thread::scope(|s| {
        let (h, fd, tid) = receiver(s, 9, || {
            let mut b = [0u8; 1];
            // SAFETY: reads one byte into `b`.
            let n = unsafe { libc::read(rfd, b.as_mut_ptr().cast(), 1) };
            // The kernel delivers on the way back to user space: by now, or very soon.
            wait_until("delivery after the system call", || RUNS.load(SeqCst) >= 1);
            after_read.store(RUNS.load(SeqCst), SeqCst);
            assert_eq!((n, b[0]), (1, 0x5a), "the system call's own result");
        });
        let i = KernelRegistrar.register_sender(&fd).expect("sender");
        wait_until("receiver asleep in read()", || thread_state(tid) == 'S');
        // SAFETY: registered above.
        unsafe { senduipi(i) };
        // SAFETY: writes one byte from a local.
        assert_eq!(unsafe { libc::write(wfd, [0x5au8].as_ptr().cast(), 1) }, 1);
        h.join().expect("receiver");
        assert_eq!(after_read.load(SeqCst), 1, "exactly one run");
        assert_eq!(HANDLER_TID.load(SeqCst), tid);
        unregister_sender(i).expect("unregister");
    });
    // SAFETY: our pipe's descriptors.
    unsafe {
        libc::close(rfd);
        libc::close(wfd);
    }
}

#[test]
fn uintr_clui_holds_and_coalesces_interrupts() {
    let Some(_hw) = hw("uintr_clui_holds_and_coalesces_interrupts") else {
        return;
    };
    let in_section = AtomicBool::new(false);
    let sent = AtomicBool::new(false);
    let runs_in_section = AtomicU64::new(u64::MAX);
    std::thread::scope(|s| {
        let (h, fd, _tid) = receiver(s, 3, || {
            clui();
            assert!(!testui(), "UIF after CLUI");
            in_section.store(true, SeqCst);
            wait_until("sends done", || sent.load(SeqCst));
            compute(2_000_000);
            runs_in_section.store(RUNS.load(SeqCst), SeqCst);
            stui();
            wait_until("held interrupt delivered after STUI", || {
                RUNS.load(SeqCst) >= 1
            });
            compute(2_000_000);
        });
        let i = KernelRegistrar.register_sender(&fd).expect("sender");
        wait_until("critical section entered", || in_section.load(SeqCst));
        for _ in 0..100 {
            // SAFETY: registered above.
            unsafe { senduipi(i) };
        }
        sent.store(true, SeqCst);
        h.join().expect("receiver");
        assert_eq!(runs_in_section.load(SeqCst), 0, "no run while UIF = 0");
        assert_eq!(RUNS.load(SeqCst), 1, "100 interrupts, one handler run");
        assert_eq!(ORDER[0].load(SeqCst), 3);
        unregister_sender(i).expect("unregister");
    });
}

#[test]
fn uintr_held_vectors_are_delivered_highest_first() {
    let Some(_hw) = hw("uintr_held_vectors_are_delivered_highest_first") else {
        return;
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            register_handler().expect("register");
            let fds: Vec<OwnedFd> = [4u64, 40, 17]
                .iter()
                .map(|&v| vector_fd(v).expect("vector fd"))
                .collect();
            let idx: Vec<u64> = fds
                .iter()
                .map(|f| KernelRegistrar.register_sender(f).expect("self sender"))
                .collect();
            // Interrupts to oneself, held by UIF = 0, then released at once.
            clui();
            for &i in &idx {
                // SAFETY: registered above.
                unsafe { senduipi(i) };
            }
            compute(1_000_000);
            assert_eq!(RUNS.load(SeqCst), 0);
            stui();
            wait_until("three runs", || RUNS.load(SeqCst) >= 3);
            let order: Vec<u64> = ORDER[..4].iter().map(|o| o.load(SeqCst)).collect();
            assert_eq!(
                order,
                [40, 17, 4, u64::MAX],
                "one run per vector, highest first"
            );
            for i in idx {
                unregister_sender(i).expect("unregister");
            }
            drop(fds);
            unregister_handler();
        });
    });
}

#[test]
fn uintr_no_nested_delivery_in_the_handler() {
    let Some(_hw) = hw("uintr_no_nested_delivery_in_the_handler") else {
        return;
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            register_handler().expect("register");
            let fd = vector_fd(7).expect("vector fd");
            let i = KernelRegistrar.register_sender(&fd).expect("self sender");
            SEND_FROM_HANDLER.store(i, SeqCst);
            stui();
            // SAFETY: registered above. The first run sends again from inside the handler.
            unsafe { senduipi(i) };
            wait_until("second run, after UIRET", || RUNS.load(SeqCst) >= 2);
            compute(1_000_000);
            assert_eq!(RUNS.load(SeqCst), 2);
            assert_eq!(MAX_DEPTH.load(SeqCst), 1, "a handler was re-entered");
            assert_eq!(UIF_IN_HANDLER.load(SeqCst), 0);
            assert!(testui(), "UIRET sets UIF again");
            unregister_sender(i).expect("unregister");
            drop(fd);
            unregister_handler();
        });
    });
}

#[test]
fn uintr_teardown_while_interrupts_are_in_flight() {
    let Some(_hw) = hw("uintr_teardown_while_interrupts_are_in_flight") else {
        return;
    };
    let stop = AtomicBool::new(false);
    let sends = AtomicU64::new(0);
    let at_unregister = AtomicU64::new(0);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let recv = s.spawn(|| {
            register_handler().expect("register");
            let fd = vector_fd(11).expect("vector fd");
            tx.send(fd.try_clone().expect("dup")).expect("handover");
            stui();
            wait_until("some runs", || RUNS.load(SeqCst) >= 20);
            // Tear down under fire: unregister while interrupts keep coming.
            unregister_handler();
            at_unregister.store(RUNS.load(SeqCst), SeqCst);
            compute(1_000_000);
            drop(fd);
            // The thread exits with interrupts still being sent to its vector.
        });
        let fd = rx.recv().expect("fd");
        let i = KernelRegistrar.register_sender(&fd).expect("sender");
        let (stop_r, sends_r) = (&stop, &sends);
        let sender = s.spawn(move || {
            while !stop_r.load(SeqCst) {
                // SAFETY: registered above; stays registered until this thread ends.
                unsafe { senduipi(i) };
                sends_r.fetch_add(1, SeqCst);
            }
        });
        recv.join().expect("receiver");
        let n = sends.load(SeqCst);
        wait_until("more sends after the receiver left", || {
            sends.load(SeqCst) > n + 1000
        });
        stop.store(true, SeqCst);
        sender.join().expect("sender");
        let at = at_unregister.load(SeqCst);
        assert!(at >= 20);
        assert_eq!(RUNS.load(SeqCst), at, "a handler ran after unregistration");
        assert!(RUNS.load(SeqCst) <= sends.load(SeqCst));
        unregister_sender(i).expect("unregister");
    });
    // Everything still works afterwards.
    RUNS.store(0, SeqCst);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (h, fd, _) = receiver(s, 11, || {
            while !stop.load(SeqCst) {
                compute(1000);
            }
        });
        let i = KernelRegistrar.register_sender(&fd).expect("sender");
        // SAFETY: registered above.
        unsafe { senduipi(i) };
        wait_until("run after the teardown", || RUNS.load(SeqCst) >= 1);
        stop.store(true, SeqCst);
        h.join().expect("receiver");
        assert_eq!(RUNS.load(SeqCst), 1);
        unregister_sender(i).expect("unregister");
    });
}

/// Register images: the pattern loaded before the interrupt and what was found after.
/// Layout (offsets used by the assembly): 15 GPRs at 0, MXCSR at 128, x87 control word at
/// 132, k0–k7 at 192, zmm0–31 (or xmm0–15, 64 bytes apart) at 256.
#[repr(C, align(64))]
struct Regs {
    gpr: [u64; 16],
    mxcsr: u32,
    fcw: u16,
    _pad: [u8; 58],
    k: [u64; 8],
    z: [[u64; 8]; 32],
}

struct Area(std::cell::UnsafeCell<Regs>);
// SAFETY: accessed by one test at a time (SERIAL), by the receiver thread only.
unsafe impl Sync for Area {}
const ZERO: Regs = Regs {
    gpr: [0; 16],
    mxcsr: 0,
    fcw: 0,
    _pad: [0; 58],
    k: [0; 8],
    z: [[0; 8]; 32],
};
static PAT: Area = Area(std::cell::UnsafeCell::new(ZERO));
static OUT: Area = Area(std::cell::UnsafeCell::new(ZERO));
/// Set by the assembly once the pattern is loaded; set by the hook when it ran.
static READY: AtomicU64 = AtomicU64::new(0);
static HIT: AtomicU64 = AtomicU64::new(0);
/// Spin budget of the assembly loop (a hang guard).
static BUDGET: AtomicU64 = AtomicU64::new(0);
/// The caller's MXCSR and x87 control word, restored after the check.
static SAVED: AtomicU64 = AtomicU64::new(0);
/// What the hook loads into MXCSR (rounding toward zero, FTZ, DAZ; exceptions masked).
static TRASH_MXCSR: u32 = 0xffc0;
static AVX512: AtomicBool = AtomicBool::new(false);

/// A hook that clobbers every register the ABI lets it clobber, vector and control state
/// included, so that only the entry's save/restore can keep the interrupted code's values.
extern "C" fn clobbering_hook(_vector: u64) {
    // SAFETY: writes only registers, all declared clobbered or restored by the compiler.
    // MXCSR and the x87 control word are left modified: the entry's XRSTOR must undo it.
    unsafe {
        if AVX512.load(SeqCst) {
            std::arch::asm!(
            "vpternlogd zmm0, zmm0, zmm0, 0xff",
            "vpternlogd zmm1, zmm1, zmm1, 0xff",
            "vpternlogd zmm2, zmm2, zmm2, 0xff",
            "vpternlogd zmm3, zmm3, zmm3, 0xff",
            "vpternlogd zmm4, zmm4, zmm4, 0xff",
            "vpternlogd zmm5, zmm5, zmm5, 0xff",
            "vpternlogd zmm6, zmm6, zmm6, 0xff",
            "vpternlogd zmm7, zmm7, zmm7, 0xff",
            "vpternlogd zmm8, zmm8, zmm8, 0xff",
            "vpternlogd zmm9, zmm9, zmm9, 0xff",
            "vpternlogd zmm10, zmm10, zmm10, 0xff",
            "vpternlogd zmm11, zmm11, zmm11, 0xff",
            "vpternlogd zmm12, zmm12, zmm12, 0xff",
            "vpternlogd zmm13, zmm13, zmm13, 0xff",
            "vpternlogd zmm14, zmm14, zmm14, 0xff",
            "vpternlogd zmm15, zmm15, zmm15, 0xff",
            "vpternlogd zmm16, zmm16, zmm16, 0xff",
            "vpternlogd zmm17, zmm17, zmm17, 0xff",
            "vpternlogd zmm18, zmm18, zmm18, 0xff",
            "vpternlogd zmm19, zmm19, zmm19, 0xff",
            "vpternlogd zmm20, zmm20, zmm20, 0xff",
            "vpternlogd zmm21, zmm21, zmm21, 0xff",
            "vpternlogd zmm22, zmm22, zmm22, 0xff",
            "vpternlogd zmm23, zmm23, zmm23, 0xff",
            "vpternlogd zmm24, zmm24, zmm24, 0xff",
            "vpternlogd zmm25, zmm25, zmm25, 0xff",
            "vpternlogd zmm26, zmm26, zmm26, 0xff",
            "vpternlogd zmm27, zmm27, zmm27, 0xff",
            "vpternlogd zmm28, zmm28, zmm28, 0xff",
            "vpternlogd zmm29, zmm29, zmm29, 0xff",
            "vpternlogd zmm30, zmm30, zmm30, 0xff",
            "vpternlogd zmm31, zmm31, zmm31, 0xff",
            "kxnorq k0, k0, k0",
            "kxnorq k1, k1, k1",
            "kxnorq k2, k2, k2",
            "kxnorq k3, k3, k3",
            "kxnorq k4, k4, k4",
            "kxnorq k5, k5, k5",
            "kxnorq k6, k6, k6",
            "kxnorq k7, k7, k7",
                out("r12") _, out("r13") _, out("r14") _, out("r15") _,
                clobber_abi("C"),
            );
        } else {
            std::arch::asm!(
            "pcmpeqd xmm0, xmm0",
            "pcmpeqd xmm1, xmm1",
            "pcmpeqd xmm2, xmm2",
            "pcmpeqd xmm3, xmm3",
            "pcmpeqd xmm4, xmm4",
            "pcmpeqd xmm5, xmm5",
            "pcmpeqd xmm6, xmm6",
            "pcmpeqd xmm7, xmm7",
            "pcmpeqd xmm8, xmm8",
            "pcmpeqd xmm9, xmm9",
            "pcmpeqd xmm10, xmm10",
            "pcmpeqd xmm11, xmm11",
            "pcmpeqd xmm12, xmm12",
            "pcmpeqd xmm13, xmm13",
            "pcmpeqd xmm14, xmm14",
            "pcmpeqd xmm15, xmm15",
                out("r12") _, out("r13") _, out("r14") _, out("r15") _,
                clobber_abi("C"),
            );
        }
        std::arch::asm!(
            "ldmxcsr dword ptr [rip + {mx}]",
            "fninit",
            "mov rax, -1", "mov rcx, -1", "mov rdx, -1", "mov rsi, -1", "mov rdi, -1",
            "mov r8, -1", "mov r9, -1", "mov r10, -1", "mov r11, -1",
            "mov r12, -1", "mov r13, -1", "mov r14, -1", "mov r15, -1",
            mx = sym TRASH_MXCSR,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
            clobber_abi("C"),
        );
    }
    RUNS.fetch_add(1, SeqCst);
    HIT.store(1, SeqCst);
}

/// Loads the pattern into every register, announces READY, spins (calling nothing) until
/// the hook ran, and stores the registers into `OUT`.
fn interrupted_with_patterns(avx512: bool) {
    // SAFETY: the assembly saves and restores rbx, rbp, MXCSR and the x87 control word,
    // declares every other register it writes as clobbered, keeps rsp balanced, and
    // accesses only the static areas above.
    unsafe {
        std::arch::asm!(
            "stmxcsr dword ptr [rip + {saved}]",
            "fnstcw word ptr [rip + {saved} + 4]",
            "push rbx",
            "push rbp",
            "ldmxcsr dword ptr [rip + {pat} + 128]",
            "fldcw word ptr [rip + {pat} + 132]",
            "cmp byte ptr [rip + {avx}], 0",
            "je 20f",
            "vmovdqu64 zmm0, zmmword ptr [rip + {pat} + 256]",
            "vmovdqu64 zmm1, zmmword ptr [rip + {pat} + 320]",
            "vmovdqu64 zmm2, zmmword ptr [rip + {pat} + 384]",
            "vmovdqu64 zmm3, zmmword ptr [rip + {pat} + 448]",
            "vmovdqu64 zmm4, zmmword ptr [rip + {pat} + 512]",
            "vmovdqu64 zmm5, zmmword ptr [rip + {pat} + 576]",
            "vmovdqu64 zmm6, zmmword ptr [rip + {pat} + 640]",
            "vmovdqu64 zmm7, zmmword ptr [rip + {pat} + 704]",
            "vmovdqu64 zmm8, zmmword ptr [rip + {pat} + 768]",
            "vmovdqu64 zmm9, zmmword ptr [rip + {pat} + 832]",
            "vmovdqu64 zmm10, zmmword ptr [rip + {pat} + 896]",
            "vmovdqu64 zmm11, zmmword ptr [rip + {pat} + 960]",
            "vmovdqu64 zmm12, zmmword ptr [rip + {pat} + 1024]",
            "vmovdqu64 zmm13, zmmword ptr [rip + {pat} + 1088]",
            "vmovdqu64 zmm14, zmmword ptr [rip + {pat} + 1152]",
            "vmovdqu64 zmm15, zmmword ptr [rip + {pat} + 1216]",
            "vmovdqu64 zmm16, zmmword ptr [rip + {pat} + 1280]",
            "vmovdqu64 zmm17, zmmword ptr [rip + {pat} + 1344]",
            "vmovdqu64 zmm18, zmmword ptr [rip + {pat} + 1408]",
            "vmovdqu64 zmm19, zmmword ptr [rip + {pat} + 1472]",
            "vmovdqu64 zmm20, zmmword ptr [rip + {pat} + 1536]",
            "vmovdqu64 zmm21, zmmword ptr [rip + {pat} + 1600]",
            "vmovdqu64 zmm22, zmmword ptr [rip + {pat} + 1664]",
            "vmovdqu64 zmm23, zmmword ptr [rip + {pat} + 1728]",
            "vmovdqu64 zmm24, zmmword ptr [rip + {pat} + 1792]",
            "vmovdqu64 zmm25, zmmword ptr [rip + {pat} + 1856]",
            "vmovdqu64 zmm26, zmmword ptr [rip + {pat} + 1920]",
            "vmovdqu64 zmm27, zmmword ptr [rip + {pat} + 1984]",
            "vmovdqu64 zmm28, zmmword ptr [rip + {pat} + 2048]",
            "vmovdqu64 zmm29, zmmword ptr [rip + {pat} + 2112]",
            "vmovdqu64 zmm30, zmmword ptr [rip + {pat} + 2176]",
            "vmovdqu64 zmm31, zmmword ptr [rip + {pat} + 2240]",
            "kmovq k0, qword ptr [rip + {pat} + 192]",
            "kmovq k1, qword ptr [rip + {pat} + 200]",
            "kmovq k2, qword ptr [rip + {pat} + 208]",
            "kmovq k3, qword ptr [rip + {pat} + 216]",
            "kmovq k4, qword ptr [rip + {pat} + 224]",
            "kmovq k5, qword ptr [rip + {pat} + 232]",
            "kmovq k6, qword ptr [rip + {pat} + 240]",
            "kmovq k7, qword ptr [rip + {pat} + 248]",
            "jmp 21f",
            "20:",
            "movdqu xmm0, xmmword ptr [rip + {pat} + 256]",
            "movdqu xmm1, xmmword ptr [rip + {pat} + 320]",
            "movdqu xmm2, xmmword ptr [rip + {pat} + 384]",
            "movdqu xmm3, xmmword ptr [rip + {pat} + 448]",
            "movdqu xmm4, xmmword ptr [rip + {pat} + 512]",
            "movdqu xmm5, xmmword ptr [rip + {pat} + 576]",
            "movdqu xmm6, xmmword ptr [rip + {pat} + 640]",
            "movdqu xmm7, xmmword ptr [rip + {pat} + 704]",
            "movdqu xmm8, xmmword ptr [rip + {pat} + 768]",
            "movdqu xmm9, xmmword ptr [rip + {pat} + 832]",
            "movdqu xmm10, xmmword ptr [rip + {pat} + 896]",
            "movdqu xmm11, xmmword ptr [rip + {pat} + 960]",
            "movdqu xmm12, xmmword ptr [rip + {pat} + 1024]",
            "movdqu xmm13, xmmword ptr [rip + {pat} + 1088]",
            "movdqu xmm14, xmmword ptr [rip + {pat} + 1152]",
            "movdqu xmm15, xmmword ptr [rip + {pat} + 1216]",
            "21:",
            "mov rax, qword ptr [rip + {pat} + 0]",
            "mov rbx, qword ptr [rip + {pat} + 8]",
            "mov rcx, qword ptr [rip + {pat} + 16]",
            "mov rdx, qword ptr [rip + {pat} + 24]",
            "mov rsi, qword ptr [rip + {pat} + 32]",
            "mov rdi, qword ptr [rip + {pat} + 40]",
            "mov rbp, qword ptr [rip + {pat} + 48]",
            "mov r8, qword ptr [rip + {pat} + 56]",
            "mov r9, qword ptr [rip + {pat} + 64]",
            "mov r10, qword ptr [rip + {pat} + 72]",
            "mov r11, qword ptr [rip + {pat} + 80]",
            "mov r12, qword ptr [rip + {pat} + 88]",
            "mov r13, qword ptr [rip + {pat} + 96]",
            "mov r14, qword ptr [rip + {pat} + 104]",
            "mov r15, qword ptr [rip + {pat} + 112]",
            "mov byte ptr [rip + {ready}], 1",
            "2:",
            "cmp byte ptr [rip + {hit}], 0",
            "jne 3f",
            "dec qword ptr [rip + {budget}]",
            "jnz 2b",
            "3:",
            "mov qword ptr [rip + {out} + 0], rax",
            "mov qword ptr [rip + {out} + 8], rbx",
            "mov qword ptr [rip + {out} + 16], rcx",
            "mov qword ptr [rip + {out} + 24], rdx",
            "mov qword ptr [rip + {out} + 32], rsi",
            "mov qword ptr [rip + {out} + 40], rdi",
            "mov qword ptr [rip + {out} + 48], rbp",
            "mov qword ptr [rip + {out} + 56], r8",
            "mov qword ptr [rip + {out} + 64], r9",
            "mov qword ptr [rip + {out} + 72], r10",
            "mov qword ptr [rip + {out} + 80], r11",
            "mov qword ptr [rip + {out} + 88], r12",
            "mov qword ptr [rip + {out} + 96], r13",
            "mov qword ptr [rip + {out} + 104], r14",
            "mov qword ptr [rip + {out} + 112], r15",
            "stmxcsr dword ptr [rip + {out} + 128]",
            "fnstcw word ptr [rip + {out} + 132]",
            "cmp byte ptr [rip + {avx}], 0",
            "je 12f",
            "vmovdqu64 zmmword ptr [rip + {out} + 256], zmm0",
            "vmovdqu64 zmmword ptr [rip + {out} + 320], zmm1",
            "vmovdqu64 zmmword ptr [rip + {out} + 384], zmm2",
            "vmovdqu64 zmmword ptr [rip + {out} + 448], zmm3",
            "vmovdqu64 zmmword ptr [rip + {out} + 512], zmm4",
            "vmovdqu64 zmmword ptr [rip + {out} + 576], zmm5",
            "vmovdqu64 zmmword ptr [rip + {out} + 640], zmm6",
            "vmovdqu64 zmmword ptr [rip + {out} + 704], zmm7",
            "vmovdqu64 zmmword ptr [rip + {out} + 768], zmm8",
            "vmovdqu64 zmmword ptr [rip + {out} + 832], zmm9",
            "vmovdqu64 zmmword ptr [rip + {out} + 896], zmm10",
            "vmovdqu64 zmmword ptr [rip + {out} + 960], zmm11",
            "vmovdqu64 zmmword ptr [rip + {out} + 1024], zmm12",
            "vmovdqu64 zmmword ptr [rip + {out} + 1088], zmm13",
            "vmovdqu64 zmmword ptr [rip + {out} + 1152], zmm14",
            "vmovdqu64 zmmword ptr [rip + {out} + 1216], zmm15",
            "vmovdqu64 zmmword ptr [rip + {out} + 1280], zmm16",
            "vmovdqu64 zmmword ptr [rip + {out} + 1344], zmm17",
            "vmovdqu64 zmmword ptr [rip + {out} + 1408], zmm18",
            "vmovdqu64 zmmword ptr [rip + {out} + 1472], zmm19",
            "vmovdqu64 zmmword ptr [rip + {out} + 1536], zmm20",
            "vmovdqu64 zmmword ptr [rip + {out} + 1600], zmm21",
            "vmovdqu64 zmmword ptr [rip + {out} + 1664], zmm22",
            "vmovdqu64 zmmword ptr [rip + {out} + 1728], zmm23",
            "vmovdqu64 zmmword ptr [rip + {out} + 1792], zmm24",
            "vmovdqu64 zmmword ptr [rip + {out} + 1856], zmm25",
            "vmovdqu64 zmmword ptr [rip + {out} + 1920], zmm26",
            "vmovdqu64 zmmword ptr [rip + {out} + 1984], zmm27",
            "vmovdqu64 zmmword ptr [rip + {out} + 2048], zmm28",
            "vmovdqu64 zmmword ptr [rip + {out} + 2112], zmm29",
            "vmovdqu64 zmmword ptr [rip + {out} + 2176], zmm30",
            "vmovdqu64 zmmword ptr [rip + {out} + 2240], zmm31",
            "kmovq qword ptr [rip + {out} + 192], k0",
            "kmovq qword ptr [rip + {out} + 200], k1",
            "kmovq qword ptr [rip + {out} + 208], k2",
            "kmovq qword ptr [rip + {out} + 216], k3",
            "kmovq qword ptr [rip + {out} + 224], k4",
            "kmovq qword ptr [rip + {out} + 232], k5",
            "kmovq qword ptr [rip + {out} + 240], k6",
            "kmovq qword ptr [rip + {out} + 248], k7",
            "jmp 13f",
            "12:",
            "movdqu xmmword ptr [rip + {out} + 256], xmm0",
            "movdqu xmmword ptr [rip + {out} + 320], xmm1",
            "movdqu xmmword ptr [rip + {out} + 384], xmm2",
            "movdqu xmmword ptr [rip + {out} + 448], xmm3",
            "movdqu xmmword ptr [rip + {out} + 512], xmm4",
            "movdqu xmmword ptr [rip + {out} + 576], xmm5",
            "movdqu xmmword ptr [rip + {out} + 640], xmm6",
            "movdqu xmmword ptr [rip + {out} + 704], xmm7",
            "movdqu xmmword ptr [rip + {out} + 768], xmm8",
            "movdqu xmmword ptr [rip + {out} + 832], xmm9",
            "movdqu xmmword ptr [rip + {out} + 896], xmm10",
            "movdqu xmmword ptr [rip + {out} + 960], xmm11",
            "movdqu xmmword ptr [rip + {out} + 1024], xmm12",
            "movdqu xmmword ptr [rip + {out} + 1088], xmm13",
            "movdqu xmmword ptr [rip + {out} + 1152], xmm14",
            "movdqu xmmword ptr [rip + {out} + 1216], xmm15",
            "13:",
            "pop rbp",
            "pop rbx",
            "ldmxcsr dword ptr [rip + {saved}]",
            "fldcw word ptr [rip + {saved} + 4]",
            saved = sym SAVED,
            pat = sym PAT,
            out = sym OUT,
            avx = sym AVX512,
            ready = sym READY,
            hit = sym HIT,
            budget = sym BUDGET,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
            clobber_abi("C"),
        );
    }
    let _ = avx512;
}

#[test]
fn uintr_handler_preserves_registers() {
    let Some(_hw) = hw("uintr_handler_preserves_registers") else {
        return;
    };
    let avx512 = std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw");
    AVX512.store(avx512, SeqCst);
    eprintln!(
        "uintr_handler_preserves_registers: checking 15 GPRs, MXCSR, x87 CW and {}",
        if avx512 {
            "zmm0-31, k0-7"
        } else {
            "xmm0-15 (no AVX-512)"
        }
    );
    // SAFETY: the test lock is held; nothing else touches the areas.
    let pat = unsafe { &mut *PAT.0.get() };
    for (i, g) in pat.gpr.iter_mut().enumerate() {
        *g = 0x0123_4567_89ab_cdef_u64.rotate_left(i as u32 * 5) ^ ((i as u64) << 56);
    }
    pat.mxcsr = 0x3fc0; // round down, DAZ, exceptions masked
    pat.fcw = 0x0c7f; // round toward zero, 24-bit precision
    for (i, k) in pat.k.iter_mut().enumerate() {
        *k = 0xfeed_f00d_0000_0000 | ((i as u64 + 1) * 0x0101);
    }
    for (i, z) in pat.z.iter_mut().enumerate() {
        for (j, w) in z.iter_mut().enumerate() {
            *w = ((i * 8 + j) as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    READY.store(0, SeqCst);
    HIT.store(0, SeqCst);
    BUDGET.store(1 << 40, SeqCst);
    // SAFETY: as for `counting_hook`; the assembly clobbers are declared.
    unsafe { entry::set_hook(Some(clobbering_hook)) };
    std::thread::scope(|s| {
        let (h, fd, _) = receiver(s, 6, || interrupted_with_patterns(avx512));
        let i = KernelRegistrar.register_sender(&fd).expect("sender");
        wait_until("patterns loaded", || READY.load(SeqCst) == 1);
        // SAFETY: registered above.
        unsafe { senduipi(i) };
        h.join().expect("receiver");
        unregister_sender(i).expect("unregister");
    });
    assert_eq!(HIT.load(SeqCst), 1, "the interrupt arrived during the loop");
    assert_eq!(RUNS.load(SeqCst), 1);
    // SAFETY: the receiver has finished.
    let (pat, out) = unsafe { (&*PAT.0.get(), &*OUT.0.get()) };
    let names = [
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13",
        "r14", "r15",
    ];
    for (n, name) in names.iter().enumerate() {
        assert_eq!(out.gpr[n], pat.gpr[n], "{name}");
    }
    assert_eq!(out.mxcsr, pat.mxcsr, "MXCSR");
    assert_eq!(out.fcw, pat.fcw, "x87 control word");
    let nz = if avx512 { 32 } else { 16 };
    for r in 0..nz {
        let words = if avx512 { 8 } else { 2 };
        assert_eq!(out.z[r][..words], pat.z[r][..words], "vector register {r}");
    }
    if avx512 {
        assert_eq!(out.k, pat.k, "k0-k7");
    }
}

/// A child forked by a registered thread starts without UINTR state: UIF clear, no handler
/// (so registering one succeeds), and its own receiver works while the parent's still does.
/// Also the reproducer of an emulator bug the entry works around ("First instruction" in
/// `entry.rs`): the child's first delivery faults on the handler's first instruction (the
/// child's page tables do not map the entry's code yet); without the workaround Bochs
/// resumed the interrupted code with the delivery frame still pushed, no handler ran, and
/// the child's locals were read from shifted stack slots (every run with 2 CPUs).
#[test]
fn uintr_forked_child_starts_unregistered() {
    let Some(_hw) = hw("uintr_forked_child_starts_unregistered") else {
        return;
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            register_handler().expect("register");
            let fd = vector_fd(12).expect("vector fd");
            let i = KernelRegistrar.register_sender(&fd).expect("self sender");
            stui();
            let runs_before_fork = RUNS.load(SeqCst);
            let mut p = [0i32; 2];
            // SAFETY: `p` has room for the two descriptors.
            assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
            // SAFETY: fork from a multi-threaded test process: the child calls only
            // async-signal-safe code (system calls, UINTR instructions, atomics) and leaves
            // with `_exit`.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // Report: [status bits, errno of the failed call, child's UITT index].
                // Bits: 1 UIF inherited, 2 registration refused, 4 no delivery to the
                // child's own receiver, 8 STUI did not set UIF, 16 same UITT index as the
                // parent's, 32 vector fd refused, 64 sender registration refused.
                let mut rep = [0i64; 3];
                if testui() {
                    rep[0] |= 1;
                }
                match register_handler() {
                    Err(e) => {
                        rep[0] |= 2;
                        rep[1] = e.raw_os_error().unwrap_or(-1) as i64;
                    }
                    Ok(()) => match vector_fd(13) {
                        Err(e) => {
                            rep[0] |= 32;
                            rep[1] = e.raw_os_error().unwrap_or(-1) as i64;
                        }
                        Ok(cfd) => match KernelRegistrar.register_sender(&cfd) {
                            Err(e) => {
                                rep[0] |= 64;
                                rep[1] = e.raw_os_error().unwrap_or(-1) as i64;
                            }
                            Ok(ci) => {
                                rep[2] = ci as i64;
                                let before = RUNS.load(SeqCst);
                                stui();
                                if !testui() {
                                    rep[0] |= 8;
                                }
                                if ci == i {
                                    rep[0] |= 16;
                                }
                                // SAFETY: registered in this (child) process just above.
                                unsafe { senduipi(ci) };
                                let mut n = 0u64;
                                while RUNS.load(SeqCst) == before && n < 200_000_000 {
                                    n += 1;
                                    std::hint::spin_loop();
                                }
                                if RUNS.load(SeqCst) == before {
                                    rep[0] |= 4;
                                }
                                std::mem::forget(cfd);
                            }
                        },
                    },
                }
                // SAFETY: 24 bytes from a local to the pipe's write end; then leaves the
                // child without running the parent's destructors.
                unsafe {
                    libc::write(p[1], rep.as_ptr().cast(), 24);
                    libc::_exit(0)
                };
            }
            assert!(pid > 0, "fork failed");
            // SAFETY: our pipe's write end, not used by the parent.
            unsafe { libc::close(p[1]) };
            let mut rep = [-1i64; 3];
            // SAFETY: reads at most 24 bytes into a local.
            let got = unsafe { libc::read(p[0], rep.as_mut_ptr().cast(), 24) };
            let read_err = io::Error::last_os_error();
            // SAFETY: our pipe's read end.
            unsafe { libc::close(p[0]) };
            let mut status = 0;
            // SAFETY: waits for our own child.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            assert!(
                libc::WIFEXITED(status) && got == 24,
                "child died: wait status {status:#x}; read {got} bytes ({read_err}): {rep:?}"
            );
            eprintln!(
                "forked child: report {rep:?} (bits, errno, child UITT index; parent index {i})"
            );
            let st = rep[0];
            assert_eq!(st & (32 | 64), 0, "a UINTR call failed in the child");
            let stray = RUNS.load(SeqCst) - runs_before_fork;
            eprintln!(
                "forked child: status bits {st:#x} (16: same UITT index as the parent's); \
                 parent runs while the child ran: {stray}"
            );
            assert_eq!(
                stray, 0,
                "the child's SENDUIPI reached the parent's receiver"
            );
            assert_eq!(st & 8, 0, "STUI did not set UIF in the child");
            assert_eq!(st & 1, 0, "the child inherited UIF = 1");
            assert_eq!(st & 2, 0, "the child inherited the handler registration");
            assert_eq!(st & 4, 0, "the child's own receiver got nothing");
            // The parent's registration is intact.
            let before = RUNS.load(SeqCst);
            // SAFETY: registered above in this process.
            unsafe { senduipi(i) };
            wait_until("parent run after the fork", || RUNS.load(SeqCst) > before);
            unregister_sender(i).expect("unregister");
            drop(fd);
            unregister_handler();
        });
    });
}

/// What the red-zone probe found below its stack pointer after the interrupt.
struct RedZone(std::cell::UnsafeCell<[u64; 16]>);
// SAFETY: written by one probe at a time (SERIAL), read after it returned.
unsafe impl Sync for RedZone {}
static RZ_OUT: RedZone = RedZone(std::cell::UnsafeCell::new([0; 16]));
/// Base of the red-zone pattern: qword k holds `RZ_PATTERN + k`.
static RZ_DELTA: AtomicU64 = AtomicU64::new(0);
const RZ_PATTERN: u64 = 0x5afe_7ed0_0000_0000;

/// A hook that only counts and raises `HIT`.
extern "C" fn hit_hook(vector: u64) {
    RUNS.fetch_add(1, SeqCst);
    VECTORS.fetch_or(1u64.checked_shl(vector as u32).unwrap_or(0), SeqCst);
    HIT.store(1, SeqCst);
}

/// Fills the 128-byte red zone below the stack pointer with a pattern (as a leaf function
/// may), optionally sends `SENDUIPI index` (`u64::MAX`: no), then spins calling nothing until
/// a handler sets `HIT` or `budget` runs out, and compares the red zone with the pattern.
/// Returns the mask of damaged qwords (bit k: the qword at RSP-128+8k); the red zone's
/// content is left in `RZ_OUT`. Async-signal-safe (also runs in a forked child).
///
/// # Safety
/// `index` must be `u64::MAX` or a UITT index registered in this process.
unsafe fn red_zone_probe(index: u64, budget: u64) -> u64 {
    let mask: u64;
    let delta: u64;
    // SAFETY: writes only below the stack pointer (no `nostack`: the compiler keeps nothing
    // there across this block) and `RZ_OUT`; SENDUIPI per the caller's guarantee.
    unsafe {
        std::arch::asm!(
            "mov rdi, rsp",
            "xor ecx, ecx",
            "2:",
            "lea rdx, [r11 + rcx]",
            "mov qword ptr [rsp + rcx*8 - 128], rdx",
            "inc ecx",
            "cmp ecx, 16",
            "jb 2b",
            "cmp rax, -1",
            "je 3f",
            ".byte 0xf3, 0x0f, 0xc7, 0xf0",
            "3:",
            "cmp qword ptr [rip + {hit}], 0",
            "jne 4f",
            "dec r8",
            "jnz 3b",
            "4:",
            "xor r10d, r10d",
            "xor ecx, ecx",
            "lea r9, [rip + {out}]",
            "5:",
            "mov rdx, qword ptr [rsp + rcx*8 - 128]",
            "mov qword ptr [r9 + rcx*8], rdx",
            "lea rsi, [r11 + rcx]",
            "cmp rdx, rsi",
            "je 6f",
            "bts r10, rcx",
            "6:",
            "inc ecx",
            "cmp ecx, 16",
            "jb 5b",
            "sub rdi, rsp",
            hit = sym HIT,
            out = sym RZ_OUT,
            in("rax") index,
            inout("r8") budget => _,
            in("r11") RZ_PATTERN,
            out("r10") mask,
            out("rcx") _, out("rdx") _, out("r9") _, out("rsi") _, out("rdi") delta,
        );
    }
    RZ_DELTA.store(delta, SeqCst);
    mask
}

/// Runs the red-zone probe on a receiver thread pinned to `cpu_r` while a sender thread
/// pinned to `cpu_s` sends once the probe spins; returns (mask, handler ran).
fn red_zone_case(cpu_r: usize, cpu_s: usize) -> (u64, bool) {
    fn pin(cpu: usize) {
        // SAFETY: a zeroed cpu_set_t is valid; pins the calling thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
    HIT.store(0, SeqCst);
    READY.store(0, SeqCst);
    let mask = AtomicU64::new(u64::MAX);
    std::thread::scope(|s| {
        let (h, fd, _) = receiver(s, 7, || {
            pin(cpu_r);
            READY.store(1, SeqCst);
            // SAFETY: no SENDUIPI from here.
            mask.store(unsafe { red_zone_probe(u64::MAX, 1 << 27) }, SeqCst);
        });
        pin(cpu_s);
        let i = KernelRegistrar.register_sender(&fd).expect("sender");
        wait_until("probe ready", || READY.load(SeqCst) == 1);
        // Let the probe reach its loop (it may need the CPU the sender holds).
        for _ in 0..20 {
            // SAFETY: no arguments.
            unsafe { libc::sched_yield() };
        }
        // SAFETY: registered above.
        unsafe { senduipi(i) };
        h.join().expect("receiver");
        unregister_sender(i).expect("unregister");
    });
    (mask.load(SeqCst), HIT.load(SeqCst) == 1)
}

/// Delivery leaves the interrupted code's 128-byte red zone intact (the kernel programs
/// STACKADJUST = 128), and the handler returns to the same stack pointer: a receiver
/// fills its red zone and spins, another thread interrupts it, from another CPU and from
/// the receiver's own CPU (then the interrupt waits for a context switch and is replayed
/// by the kernel's self-IPI on the way back to user space).
#[test]
fn uintr_delivery_spares_the_red_zone() {
    let Some(_hw) = hw("uintr_delivery_spares_the_red_zone") else {
        return;
    };
    // SAFETY: as for `counting_hook`.
    unsafe { entry::set_hook(Some(hit_hook)) };
    let last = std::thread::available_parallelism().map_or(1, |n| n.get()) - 1;
    for (r, s) in [(0, last), (0, 0)] {
        for k in 0..3 {
            let (mask, hit) = red_zone_case(r, s);
            // SAFETY: the probe is done.
            let zone = unsafe { *RZ_OUT.0.get() };
            assert!(hit, "CPUs {r},{s} run {k}: no handler ran");
            assert_eq!(
                (mask, RZ_DELTA.load(SeqCst)),
                (0, 0),
                "CPUs {r},{s} run {k}: red zone damaged or stack pointer moved: {zone:x?}"
            );
        }
    }
}
