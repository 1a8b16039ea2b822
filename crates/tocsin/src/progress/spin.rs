//! How long a waiting thread spins before it sleeps on its doorbell (`block` mode and up):
//! the *spin budget*.
//!
//! Sleeping costs a wake-up: when the awaited record arrives, the sender rings the doorbell
//! and the sleeper runs again only after the kernel (and, in a virtual machine, the
//! hypervisor) has woken its CPU, some µs on bare metal, 25–50 µs in a KVM guest. Spinning
//! costs CPU for as long as it lasts. The classic competitive argument for spin-then-block
//! (Karlin et al., 1991) says that spinning for as long as one wake-up costs, then sleeping,
//! is never worse than twice the best choice made in hindsight; a spin that is a fixed
//! constant is wrong on a machine whose wake-ups cost much more or much less than where it
//! was tuned. So the engine measures, at `init`, what a wake-up costs *here*
//! ([`measure_wake_cost`]: a helper thread on another CPU rings a futex this thread sleeps
//! on, and the time from the ring to this thread running is taken, median of a few), and
//! spins [`SPIN_PER_WAKE`] times that ([`budget`]), within [`MIN_SPIN`]..=[`MAX_SPIN`]:
//! - small multiple: a message that arrives within a few wake-up times (a ping-pong, a
//!   halo exchange between ranks in step) never pays a wake-up, so the latency of `block`,
//!   `signal` and `uintr` stays that of `poll`;
//! - bounded: a rank blocked for long uses at most [`MAX_SPIN`] of CPU per wait plus the
//!   wake-ups themselves (a rank blocked 200 ms stays under 2 ms of CPU whatever the
//!   machine).
//!
//! An explicit `TOCSIN_SPIN_US` ([`crate::Config::spin_us`]) overrides the measurement; an
//! oversubscribed node never spins (a core spun on is taken from a rank that has work). The
//! engine keeps the result behind one function, `Engine::spin_budget`, so that a calibrated
//! value (a `tocsin tune` cache, say) can later be supplied the same way as the variable.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::DEFAULT_SPIN_US;

/// The adaptive spin is this many times the measured wake-up cost.
pub(crate) const SPIN_PER_WAKE: u32 = 4;
/// Shortest adaptive spin: below it a message a peer sends "right away" (a collective's
/// next step, a reply computed in a few µs) would already make the waiter sleep.
pub(crate) const MIN_SPIN: Duration = Duration::from_micros(20);
/// Longest adaptive spin, also the spin used when the wake-up cost cannot be measured.
pub(crate) const MAX_SPIN: Duration = Duration::from_micros(DEFAULT_SPIN_US);

/// Samples taken by [`measure_wake_cost`] (the median is kept).
const SAMPLES: usize = 7;
/// How long the ringer sleeps, once the sleeper has announced itself, before ringing: long
/// enough for the sleeper to be in the kernel and its CPU to have gone idle (the state a
/// real sleeper is woken from). Timer slack makes it about twice that.
const SETTLE: Duration = Duration::from_micros(50);
/// The whole measurement gives up after this (a helper thread that is not scheduled, on a
/// loaded machine): the engine then spins [`MAX_SPIN`].
const GIVE_UP: Duration = Duration::from_millis(20);

/// The spin budget: `configured` (µs, `TOCSIN_SPIN_US`) if set; none when `oversubscribed`;
/// else [`SPIN_PER_WAKE`] × `wake` within [`MIN_SPIN`]..=[`MAX_SPIN`], or [`MAX_SPIN`] when
/// the wake-up cost is unknown. `wake` is called only when needed.
pub(crate) fn budget(
    configured: Option<u64>,
    oversubscribed: bool,
    wake: impl FnOnce() -> Option<Duration>,
) -> Duration {
    if oversubscribed {
        return Duration::ZERO;
    }
    if let Some(us) = configured {
        return Duration::from_micros(us);
    }
    match wake() {
        Some(w) => w.saturating_mul(SPIN_PER_WAKE).clamp(MIN_SPIN, MAX_SPIN),
        None => MAX_SPIN,
    }
}

/// What it costs to wake this thread from a futex sleep: the time from another CPU's ring
/// (`FUTEX_WAKE`) to this thread running again, median of [`SAMPLES`]; `None` if the
/// measurement could not be made (no thread, or more than [`GIVE_UP`]). Takes about
/// 1 ms. The helper thread is moved to another CPU than this thread's when it can be
/// (ranks are bound one per core, their peers ring them from other cores), and blocks every
/// signal (it must not take the rank's).
pub(crate) fn measure_wake_cost() -> Option<Duration> {
    struct Shared {
        /// The futex word the measuring thread sleeps on; bumped by each ring.
        word: AtomicU32,
        /// Sample `k` may be rung once this reaches `k + 1`.
        ready: AtomicU32,
        /// When the last ring was made, ns since `epoch`.
        rung_ns: AtomicU64,
        abort: AtomicBool,
        epoch: Instant,
    }
    let sh = Arc::new(Shared {
        word: AtomicU32::new(0),
        ready: AtomicU32::new(0),
        rung_ns: AtomicU64::new(0),
        abort: AtomicBool::new(false),
        epoch: Instant::now(),
    });
    let ns = |sh: &Shared| sh.epoch.elapsed().as_nanos() as u64;
    let here = current_cpu();
    let helper = {
        let sh = sh.clone();
        std::thread::Builder::new()
            .name("tocsin-wake-calib".into())
            .spawn(move || {
                block_signals();
                if let Some(cpu) = here {
                    move_off(cpu);
                }
                // The helper never spins: on a node where every rank measures at once, it
                // shares its CPU with another rank's measuring thread, whose wake-up it
                // would delay.
                for k in 1..=SAMPLES as u32 {
                    loop {
                        let r = sh.ready.load(Ordering::Acquire);
                        if r >= k {
                            break;
                        }
                        if sh.abort.load(Ordering::Relaxed) {
                            return;
                        }
                        crate::sys::futex_wait(&sh.ready, r, GIVE_UP);
                    }
                    std::thread::sleep(SETTLE);
                    sh.rung_ns.store(ns(&sh), Ordering::Relaxed);
                    sh.word.fetch_add(1, Ordering::Release);
                    crate::sys::futex_wake_all(&sh.word);
                }
            })
            .ok()?
    };
    let began = Instant::now();
    let mut samples = Vec::with_capacity(SAMPLES);
    'outer: for k in 1..=SAMPLES as u32 {
        let seq = sh.word.load(Ordering::Acquire);
        sh.ready.store(k, Ordering::Release);
        crate::sys::futex_wake_all(&sh.ready);
        while sh.word.load(Ordering::Acquire) == seq {
            if began.elapsed() > GIVE_UP {
                break 'outer;
            }
            crate::sys::futex_wait(&sh.word, seq, GIVE_UP);
        }
        let now = ns(&sh);
        samples.push(Duration::from_nanos(
            now.saturating_sub(sh.rung_ns.load(Ordering::Relaxed)),
        ));
    }
    sh.abort.store(true, Ordering::Relaxed);
    sh.ready.fetch_add(1, Ordering::Release);
    crate::sys::futex_wake_all(&sh.ready);
    let _ = helper.join();
    median(&mut samples)
}

/// The median of `v` (`None` unless every sample was taken).
fn median(v: &mut [Duration]) -> Option<Duration> {
    if v.len() < SAMPLES {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

/// The CPU this thread runs on.
fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no preconditions.
    let c = unsafe { libc::sched_getcpu() };
    usize::try_from(c).ok()
}

/// Moves the calling thread to an online CPU other than `cpu`, if there is one it may use
/// (a failure leaves it where it is: the measurement is then that of a same-CPU wake-up).
fn move_off(cpu: usize) {
    let n = crate::sys::online_cpus();
    if n >= 2 {
        crate::sys::bind_thread(&[(cpu + 1) % n]);
    }
}

/// Blocks every signal in the calling thread (a helper must not take the rank's signals).
fn block_signals() {
    // SAFETY: sigfillset initialises the set; pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    #[test]
    fn configured_value_overrides_the_measurement() {
        let b = budget(Some(1234), false, || panic!("must not measure"));
        assert_eq!(b, us(1234));
        assert_eq!(budget(Some(0), false, || panic!()), Duration::ZERO);
    }

    #[test]
    fn oversubscribed_never_spins() {
        assert_eq!(budget(None, true, || panic!()), Duration::ZERO);
        assert_eq!(budget(Some(500), true, || panic!()), Duration::ZERO);
    }

    #[test]
    fn adaptive_spin_is_a_multiple_of_the_wake_cost_within_bounds() {
        assert_eq!(budget(None, false, || Some(us(25))), us(100));
        assert_eq!(budget(None, false, || Some(us(1))), MIN_SPIN);
        assert_eq!(budget(None, false, || Some(Duration::ZERO)), MIN_SPIN);
        assert_eq!(budget(None, false, || Some(us(10_000))), MAX_SPIN);
        assert_eq!(budget(None, false, || Some(Duration::MAX)), MAX_SPIN);
        assert_eq!(budget(None, false, || None), MAX_SPIN);
        for w in [0, 1, 3, 7, 30, 60, 100, 5000] {
            let b = budget(None, false, || Some(us(w)));
            assert!((MIN_SPIN..=MAX_SPIN).contains(&b), "{w} µs -> {b:?}");
        }
    }

    #[test]
    fn bounds_keep_a_blocked_rank_under_two_ms() {
        // The target: a rank blocked 200 ms uses under 2 ms of CPU; the spin is at
        // most one wait's share of it, leaving room for the wake-ups themselves.
        assert!(MAX_SPIN <= Duration::from_micros(500));
        assert!(MIN_SPIN < MAX_SPIN);
    }

    #[test]
    fn wake_cost_is_measured() {
        // Outcome, not speed: a measurement is made (or given up) and is finite.
        let t = Instant::now();
        let w = measure_wake_cost();
        eprintln!("wake-up cost here: {w:?} (measured in {:?})", t.elapsed());
        assert!(t.elapsed() < Duration::from_secs(5));
        if let Some(w) = w {
            assert!(w < Duration::from_secs(1), "{w:?}");
        }
    }
}
