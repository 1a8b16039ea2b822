//! Interrupt-driven notification: when a sender must interrupt a peer, how it does so
//! (real-time signal or x86 user interrupt), and the entry point every handler funnels into.
//!
//! Owns the sender-side decision ([`decide`]), the coalescing of interrupts (one
//! outstanding interrupt per rank, the `irq_pending` word of its control block) and the
//! process-wide registration of the engine that handlers drive (`register_target`,
//! `dispatch`). It must not make progress itself: handlers call back into the progress
//! engine through `dispatch`, which is async-signal-safe.
//!
//! ## Which records interrupt
//! Only records that ask the computing peer to act: an RTS (match it, answer CTS), a CTS
//! (copy or stream), DATA (drain the ring so the sender can go on), and any record that
//! finds the peer's ring full (the sender's backlog needs room). EAGER data and FIN need no
//! answer: they wait in the ring and complete at the peer's next tocsin call or in its next
//! handler, which saves an interrupt per message (a signal costs the interrupted thread
//! several µs in a virtual machine). A sleeping peer is always woken (doorbell).
//!
//! A handler that cannot store a record without allocating (unexpected queue or buffer
//! pool full) leaves it in the ring and keeps `irq_pending` set, so that peers stop
//! interrupting a rank whose handlers cannot help; its next ordinary pass re-arms it.
//!
//! ## No lost wake-up
//! A peer's control block says whether it is *asleep* (`sleepers > 0`: ring the futex
//! doorbell), *polling* (`polling > 0`: it will see the record by itself), or neither
//! (computing: interrupt it). The receiver publishes these states with `SeqCst` read-modify-
//! writes and re-polls its rings after each change; the sender publishes its record, issues a
//! `SeqCst` fence, then reads them. So either the receiver's re-poll sees the record or the
//! sender sees the state that makes it ring or interrupt (Dekker). Interrupts coalesce: the
//! sender interrupts only if it flips `irq_pending` from 0 to 1, and the handler clears it
//! *before* draining, so a record published after the drain started finds it clear.
//!
//! ## `thread` mode's progress thread: a doorbell of its own
//! The progress thread sleeps on a second futex word (`pt_bell`), armed through `pt_watch`
//! rather than `sleepers`, so that the doorbells rung for the rank's waiting threads (and
//! the wake-ups of those threads when a request completes) never wake it. It arms with
//! [`WATCH_ANY`] (every record rings it) or, on an oversubscribed node, [`WATCH_URGENT`]
//! (only the records listed above as worth an interrupt ring it: the same records a
//! computing rank of `signal` mode is interrupted for). The sender reads `pt_watch` after
//! the same fence and decides with [`watcher_rings`]; the same Dekker argument applies.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod signal;
pub mod uintr;

use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

/// What a sender does for a peer it just pushed records to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// Nothing: the peer polls (or the mode never notifies).
    Nothing,
    /// Ring the futex doorbell: a thread of the peer sleeps on it.
    Doorbell,
    /// Interrupt the peer (signal or user interrupt), unless one is already pending.
    Interrupt,
}

/// The sender-side policy, from the peer's published state (read after a `SeqCst` fence).
/// `sleeps`: the job's mode sleeps on doorbells; `interrupts`: it interrupts computing peers.
pub fn decide(sleeps: bool, interrupts: bool, sleepers: u32, polling: u32) -> Notify {
    if sleeps && sleepers > 0 {
        Notify::Doorbell
    } else if interrupts && polling == 0 && sleepers == 0 {
        Notify::Interrupt
    } else {
        Notify::Nothing
    }
}

/// `pt_watch` increment of a progress thread that wants every record rung.
pub const WATCH_ANY: u32 = 1;
/// `pt_watch` increment of a progress thread that wants only the records that ask the rank
/// to act (RTS, CTS, DATA, a collective's later rounds, a full ring: see the module docs).
pub const WATCH_URGENT: u32 = 1 << 16;

/// Whether a sender that pushed records (`urgent`: one of them asks the peer to act) rings
/// the peer's progress-thread doorbell, from the peer's `pt_watch` word (read after a
/// `SeqCst` fence): a sum of [`WATCH_ANY`] and [`WATCH_URGENT`] increments.
pub fn watcher_rings(watch: u32, urgent: bool) -> bool {
    watch & (WATCH_URGENT - 1) != 0 || (urgent && watch != 0)
}

/// Claims the right to interrupt: `true` if no interrupt was pending (the caller must then
/// send one), `false` if one is already on its way (coalesced).
pub fn claim_interrupt(irq_pending: &AtomicU32) -> bool {
    irq_pending.swap(1, Ordering::SeqCst) == 0
}

/// Called first by a handler: clears the pending mark so that records published from now on
/// raise a new interrupt.
pub fn acknowledge(irq_pending: &AtomicU32) {
    irq_pending.store(0, Ordering::SeqCst);
}

/// What a handler drives: the progress engine of this process.
pub(crate) trait Target: Sync {
    /// Runs from a signal or interrupt handler: must be async-signal-safe.
    fn on_interrupt(&self);
}

struct TargetPtr(*const dyn Target);
static TARGET: AtomicPtr<TargetPtr> = AtomicPtr::new(std::ptr::null_mut());
static IN_HANDLER: AtomicU32 = AtomicU32::new(0);

/// Makes `t` the target of every handler of this process until [`unregister_target`].
///
/// # Safety
/// `t` must stay valid until `unregister_target` has returned.
pub(crate) unsafe fn register_target(t: *const dyn Target) {
    let b = Box::into_raw(Box::new(TargetPtr(t)));
    let old = TARGET.swap(b, Ordering::SeqCst);
    if !old.is_null() {
        // SAFETY: `old` came from `Box::into_raw` above; no handler can be using it once
        // IN_HANDLER drains (see `unregister_target`).
        wait_handlers();
        drop(unsafe { Box::from_raw(old) });
    }
}

fn wait_handlers() {
    while IN_HANDLER.load(Ordering::SeqCst) != 0 {
        std::hint::spin_loop();
    }
}

/// Stops handlers from reaching the target and waits for running ones to finish.
pub(crate) fn unregister_target() {
    let old = TARGET.swap(std::ptr::null_mut(), Ordering::SeqCst);
    // A handler that incremented IN_HANDLER before our swap may still use `old`; one that
    // increments after it sees null (SeqCst total order).
    wait_handlers();
    if !old.is_null() {
        // SAFETY: from `Box::into_raw` in `register_target`; no handler uses it any more.
        drop(unsafe { Box::from_raw(old) });
    }
}

/// The body every handler runs: forwards to the registered target, if any.
/// Async-signal-safe: two atomic operations around the target's own async-signal-safe call.
pub(crate) fn dispatch() {
    IN_HANDLER.fetch_add(1, Ordering::SeqCst);
    let p = TARGET.load(Ordering::SeqCst);
    if !p.is_null() {
        crate::stats::bump(crate::stats::Counter::InterruptsReceived);
        // SAFETY: non-null means registered and not yet unregistered; `unregister_target`
        // waits for IN_HANDLER to drain before the target may be freed.
        unsafe { (*(*p).0).on_interrupt() };
    }
    IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
}

/// Saves `errno`, runs `f`, restores `errno`: what every handler must do so that the
/// interrupted code never sees its `errno` change.
#[inline]
pub(crate) fn preserving_errno(f: impl FnOnce()) {
    // SAFETY: `__errno_location` returns this thread's errno slot, always valid.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: as above.
    let saved = unsafe { *slot };
    f();
    // SAFETY: as above.
    unsafe { *slot = saved };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        // poll mode: never
        assert_eq!(decide(false, false, 0, 0), Notify::Nothing);
        // block/thread: doorbell only for sleepers
        assert_eq!(decide(true, false, 1, 0), Notify::Doorbell);
        assert_eq!(decide(true, false, 0, 0), Notify::Nothing);
        // signal/uintr: sleeping → doorbell, polling → nothing, computing → interrupt
        assert_eq!(decide(true, true, 2, 1), Notify::Doorbell);
        assert_eq!(decide(true, true, 0, 1), Notify::Nothing);
        assert_eq!(decide(true, true, 0, 0), Notify::Interrupt);
    }

    #[test]
    fn watcher_decisions() {
        // not armed: never
        assert!(!watcher_rings(0, false));
        assert!(!watcher_rings(0, true));
        // armed for every record
        assert!(watcher_rings(WATCH_ANY, false));
        assert!(watcher_rings(WATCH_ANY, true));
        // armed for urgent records only (oversubscribed node)
        assert!(!watcher_rings(WATCH_URGENT, false));
        assert!(watcher_rings(WATCH_URGENT, true));
        // two arms (a hand-off not yet taken back, and the thread's own)
        assert!(!watcher_rings(2 * WATCH_URGENT, false));
        assert!(watcher_rings(WATCH_URGENT + WATCH_ANY, false));
    }

    #[test]
    fn interrupts_coalesce_until_acknowledged() {
        let w = AtomicU32::new(0);
        assert!(claim_interrupt(&w));
        assert!(!claim_interrupt(&w), "second sender coalesces");
        assert!(!claim_interrupt(&w));
        acknowledge(&w);
        assert!(
            claim_interrupt(&w),
            "after the handler started, a new one is needed"
        );
    }

    #[test]
    fn errno_is_preserved() {
        // SAFETY: this thread's errno slot.
        unsafe { *libc::__errno_location() = 42 };
        preserving_errno(|| unsafe { *libc::__errno_location() = 7 });
        // SAFETY: as above.
        assert_eq!(unsafe { *libc::__errno_location() }, 42);
    }

    struct Count(AtomicU32);
    impl Target for Count {
        fn on_interrupt(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn dispatch_reaches_only_a_registered_target() {
        static C: Count = Count(AtomicU32::new(0));
        dispatch();
        // SAFETY: `C` is static.
        unsafe { register_target(&C as &dyn Target as *const dyn Target) };
        dispatch();
        dispatch();
        unregister_target();
        dispatch();
        assert_eq!(C.0.load(Ordering::SeqCst), 2);
    }
}

/// Loom model of the no-lost-wake-up protocol: a receiver leaves its wait (stops polling)
/// while a sender publishes a record. Either the receiver's final re-poll sees the record,
/// or the sender decides to interrupt it. Run with
/// `RUSTFLAGS="--cfg loom" cargo test -p tocsin --lib --release interrupt::loom`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::{fence, AtomicBool, AtomicU32};
    use loom::sync::Arc;

    #[test]
    fn loom_no_lost_wakeup() {
        loom::model(|| {
            let record = Arc::new(AtomicBool::new(false));
            let polling = Arc::new(AtomicU32::new(1));
            let pending = Arc::new(AtomicU32::new(0));
            let (r2, p2, q2) = (record.clone(), polling.clone(), pending.clone());
            let sender = loom::thread::spawn(move || {
                r2.store(true, Ordering::Release);
                fence(Ordering::SeqCst);
                let n = decide(true, true, 0, p2.load(Ordering::Relaxed));
                n == Notify::Interrupt && q2.swap(1, Ordering::SeqCst) == 0
            });
            // receiver leaves its wait, then re-polls once
            polling.fetch_sub(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let seen = record.load(Ordering::Acquire);
            let interrupted = sender.join().unwrap();
            assert!(seen || interrupted, "record neither seen nor notified");
        });
    }

    /// `thread` mode on an oversubscribed node: the application thread leaving its wait
    /// arms `pt_watch` (urgent records only) on behalf of the parked progress thread, then
    /// re-polls once, while a sender publishes an urgent record and reads `pt_watch`. Either
    /// the re-poll sees the record or the sender rings the progress thread's doorbell (the
    /// thread, parked on `pt_bell` since before, then wakes). The progress thread's own
    /// armed sleep is the same exchange (it reads `pt_bell`, arms, re-polls, then sleeps
    /// only while `pt_bell` has not moved).
    #[test]
    fn loom_urgent_record_reaches_the_handed_off_progress_thread() {
        // (arming level, the record is urgent): oversubscribed, and a full node's `WATCH_ANY`
        // with a plain EAGER record.
        for (level, urgent) in [(WATCH_URGENT, true), (WATCH_ANY, false)] {
            loom::model(move || {
                let record = Arc::new(AtomicBool::new(false));
                let watch = Arc::new(AtomicU32::new(0));
                let pt_bell = Arc::new(AtomicU32::new(0));
                let (r2, w2, b2) = (record.clone(), watch.clone(), pt_bell.clone());
                // the progress thread parked: it read its doorbell before the hand-off
                let seq = pt_bell.load(Ordering::Acquire);
                let sender = loom::thread::spawn(move || {
                    r2.store(true, Ordering::Release);
                    fence(Ordering::SeqCst);
                    if watcher_rings(w2.load(Ordering::Relaxed), urgent) {
                        b2.fetch_add(1, Ordering::Release);
                    }
                });
                // the last application thread leaves: hand-off, then one re-poll
                watch.fetch_add(level, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                let seen = record.load(Ordering::Acquire);
                sender.join().unwrap();
                let rung = pt_bell.load(Ordering::Acquire) != seq;
                assert!(seen || rung, "record neither seen nor rung");
            });
        }
    }

    /// The "space freed" bell (`Segment::space_freed` / the engine's sleep): a producer with
    /// records waiting for ring space sets its wanted word, fences, re-checks the ring and
    /// then sleeps; the consumer frees space, fences, and rings if the word is set. Either
    /// the producer's re-check sees the space or the consumer rings it: no lost wake-up.
    #[test]
    fn loom_space_freed_is_never_lost() {
        loom::model(|| {
            let head = Arc::new(AtomicU32::new(0)); // consumer's released position
            let wanted = Arc::new(AtomicU32::new(0));
            let bell = Arc::new(AtomicU32::new(0));
            let (h2, w2, b2) = (head.clone(), wanted.clone(), bell.clone());
            let consumer = loom::thread::spawn(move || {
                h2.store(1, Ordering::Release); // frees space
                fence(Ordering::SeqCst);
                if w2.load(Ordering::Relaxed) != 0 && w2.swap(0, Ordering::SeqCst) != 0 {
                    b2.fetch_add(1, Ordering::Release);
                }
            });
            // producer: ring full at head 0
            let seq = bell.load(Ordering::Acquire);
            wanted.store(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let space = head.load(Ordering::Acquire) != 0;
            consumer.join().unwrap();
            let rung = bell.load(Ordering::Acquire) != seq;
            assert!(
                space || rung,
                "space freed but the sleeping producer never told"
            );
        });
    }
}
