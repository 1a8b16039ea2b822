//! `thread` mode's progress thread (PIOMan-style): one per rank, so that requests progress
//! while the application computes.
//!
//! Owns the thread's life (start, deferred start, binding, stop, join); the loop body is the engine's
//! ([`super::Engine::progress_until`]). It must not touch protocol state directly.
//!
//! ## When the progress thread runs, and the trade-off
//! A progress thread is a second runnable thread per rank: on a full node (as many ranks as
//! cores) every cycle it spins is taken from a computing rank, and while its own rank waits
//! in tocsin it only competes with the thread that already makes the progress. It sleeps on
//! a doorbell of its own (`pt_bell`, armed through `pt_watch`: see [`crate::interrupt`]), so
//! the rings meant for its rank's waiting threads, and their wake-ups when it completes a
//! request, never wake it. So:
//! - **while an application thread of the rank waits in tocsin**, the progress thread
//!   *parks* on its doorbell without arming it (peers do not ring it): the waiting thread
//!   spins, then sleeps armed, as in `block` mode, and does the progress;
//! - **when the last waiting thread leaves**, it hands the watch back without waking the
//!   progress thread (no system call): it arms the thread's doorbell on its behalf and
//!   re-polls once, so the next record a peer pushes rings the progress thread awake;
//! - **while the application computes**, the woken progress thread makes progress, spins
//!   the engine's adaptive budget ([`super::Engine::spin_budget`]: a few wake-up costs, at
//!   most 250 µs) for what follows, then sleeps armed on its doorbell.
//!
//! **On an oversubscribed node** (more ranks than cores) a wake-up takes a core from a rank,
//! and a progress thread woken per message of a halo exchange made `thread` mode 1.4–1.6×
//! the serial time of the oversubscribed jacobi (`block`: 1.1–1.2×). There the thread:
//! - is armed (handed the watch, or by itself) for the records that ask the rank to act
//!   only — RTS, CTS, DATA, a collective's later rounds, space freed in a ring our records
//!   wait for: the records that interrupt a computing rank in `signal` mode. EAGER data and
//!   FIN wait for the rank's next call, as in `block` mode. A rendezvous that arrives while
//!   the rank computes is answered as soon as the scheduler runs the woken thread (it used
//!   to look every 1 ms instead);
//! - never spins;
//! - is started only with the rank's first post that may need it ([`ProgressThread::defer`]:
//!   a send or nonblocking receive above the eager threshold, a synchronous send, a
//!   nonblocking collective). A second thread per process, even one that never wakes, cost
//!   about 10% of the oversubscribed jacobi (measured with a thread that only sleeps), so a
//!   code that exchanges small messages only runs as in `block` mode. The price: until then,
//!   a synchronous send or an oversized message matched by one of the rank's small posted
//!   receives waits for its next call. With TCP peers the thread starts at `init` (it alone
//!   watches the sockets).
//!
//! **Where it runs.** Unless `TOCSIN_PROGRESS_CORE` binds it, the thread may run on every
//! CPU of its rank's NUMA node(s) (the launcher binds the rank to one core; the thread is
//! widened at start): the scheduler then runs it where a core is idle — typically the core
//! of the peer that sleeps in its wait (the short adaptive spin makes it sleep early) —
//! instead of on the core its own rank computes on. With 2 ranks on 2 cores, a 4 MiB
//! receive behind 1 ms of computation took 550 µs from the computation before this, 10 µs
//! after (BENCHMARKS.md).
//!
//! What this costs: a record that needs the computing rank's attention (a rendezvous
//! request, a CTS) waits for a wake-up of the progress thread (the measured wake-up cost,
//! 5–25 µs on a KVM guest) unless it comes within the spin; and when no core is idle (every
//! rank computes) the copy the progress thread makes (a CMA read of a large message) takes
//! a core from some computation wherever it runs: overlap then needs a spare core (bind the
//! thread there with `TOCSIN_PROGRESS_CORE`), or `signal` mode (the same progress from a
//! handler, with no second thread). With TCP peers the progress thread does not park (it
//! alone watches the sockets) and behaves as before: bounded spin, then an armed sleep on
//! the doorbell and the sockets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;

use hwlocality::cpu::binding::CpuBindingFlags;
use hwlocality::object::types::ObjectType;
use hwlocality::Topology;

use super::Engine;
use crate::error::{Error, Result};

/// A progress thread: running, or deferred until the rank first needs it
/// ([`ProgressThread::defer`]).
#[derive(Debug, Default)]
pub(crate) struct ProgressThread {
    stop: Arc<AtomicBool>,
    handle: Mutex<Option<JoinHandle<()>>>,
    /// A deferred start: the engine to run on and the core to bind to, until
    /// [`ProgressThread::start_deferred`] (or `stop`) takes it.
    deferred: Mutex<Option<(Weak<Engine>, Option<usize>)>>,
    /// `deferred` holds a start (read without the lock on every post).
    has_deferred: AtomicBool,
}

/// Binds the calling thread to core `core` (hwloc logical index among the cores this
/// process may use).
///
/// # Errors
/// [`Error::Config`] if there is no such core, [`Error::Unsupported`] if hwloc fails.
pub(crate) fn bind_current_thread(core: usize) -> Result<()> {
    let topo = Topology::new().map_err(|e| Error::Unsupported(format!("hwloc: {e}")))?;
    let n = topo.objects_with_type(ObjectType::Core).count();
    let set = topo
        .objects_with_type(ObjectType::Core)
        .nth(core)
        .and_then(|c| c.cpuset())
        .ok_or_else(|| Error::Config {
            name: "TOCSIN_PROGRESS_CORE",
            value: core.to_string(),
            reason: format!("hwloc reports {n} cores (valid: 0..{n})"),
        })?
        .clone_target();
    topo.bind_cpu(&set, CpuBindingFlags::THREAD).map_err(|e| {
        Error::Unsupported(format!(
            "hwloc could not bind the progress thread to core {core}: {e}"
        ))
    })
}

/// Lets the calling thread (the progress thread, unbound by `TOCSIN_PROGRESS_CORE`) run on
/// every CPU of the NUMA nodes of the CPUs it may run on now (the rank's binding, often one
/// core): the scheduler then runs it where a core is idle (the core of a peer asleep in a
/// wait, say) rather than always on the core its rank computes on. Without NUMA information,
/// every online CPU. Failures leave the binding as it was.
fn widen_to_node() {
    let Some(mine) = crate::sys::thread_cpus() else {
        return;
    };
    let mut want: Vec<usize> = Vec::new();
    match std::fs::read_dir("/sys/devices/system/node") {
        Ok(dir) => {
            for e in dir.flatten() {
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                if !name.starts_with("node") || name[4..].parse::<u32>().is_err() {
                    continue;
                }
                let Ok(list) = std::fs::read_to_string(e.path().join("cpulist")) else {
                    continue;
                };
                let cpus = parse_cpulist(&list);
                if cpus.iter().any(|c| mine.contains(c)) {
                    want.extend(cpus);
                }
            }
        }
        Err(_) => want.extend(0..crate::sys::online_cpus()),
    }
    want.retain(|&c| c < libc::CPU_SETSIZE as usize);
    if want.len() <= mine.len() {
        return;
    }
    crate::sys::bind_thread(&want);
}

/// Parses a kernel CPU list (`0-3,8,10-11`); malformed items are skipped.
fn parse_cpulist(s: &str) -> Vec<usize> {
    let mut v = Vec::new();
    for item in s.trim().split(',').filter(|i| !i.is_empty()) {
        match item.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    if b >= a && b - a < 1 << 16 {
                        v.extend(a..=b);
                    }
                }
            }
            None => v.extend(item.parse::<usize>().ok()),
        }
    }
    v
}

impl ProgressThread {
    /// Starts the thread on `eng`, bound to `core` if given.
    ///
    /// # Errors
    /// [`Error::Io`] if the thread cannot be spawned; binding errors are reported by the
    /// thread through `tracing` and do not stop it.
    pub(crate) fn start(&self, eng: Arc<Engine>, core: Option<usize>) -> Result<()> {
        let stop = self.stop.clone();
        let h = std::thread::Builder::new()
            .name(format!("tocsin-progress-{}", eng.rank()))
            .spawn(move || {
                if core.is_none() {
                    widen_to_node();
                }
                if let Some(c) = core {
                    if let Err(e) = bind_current_thread(c) {
                        crate::diag::warn_once(
                            crate::diag::Warn::ProgressCore,
                            format_args!(
                                "TOCSIN_PROGRESS_CORE={c}: progress thread left unbound: {e}"
                            ),
                        );
                    }
                }
                eng.progress_until(&|| stop.load(Ordering::Acquire));
            })
            .map_err(|e| Error::io("spawning the progress thread", e))?;
        *self.handle.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
        Ok(())
    }

    /// Defers the start of the thread on `eng` (bound to `core` if given) until
    /// [`ProgressThread::start_deferred`]: on an oversubscribed node a second thread per
    /// rank costs every rank's context switches even asleep (module docs), so it is started
    /// only once the rank posts something that may need progress while it computes.
    pub(crate) fn defer(&self, eng: &Arc<Engine>, core: Option<usize>) {
        *self.deferred.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Arc::downgrade(eng), core));
        self.has_deferred.store(true, Ordering::Release);
    }

    /// Starts the thread if its start was deferred and has not happened yet; otherwise
    /// does nothing (one atomic load). Ordinary context only; not with the engine lock held.
    ///
    /// # Errors
    /// As [`ProgressThread::start`].
    pub(crate) fn start_deferred(&self) -> Result<()> {
        if !self.has_deferred.load(Ordering::Acquire) {
            return Ok(());
        }
        // Held while starting, so that `stop` finds the handle once it gets the lock.
        let mut d = self.deferred.lock().unwrap_or_else(|e| e.into_inner());
        self.has_deferred.store(false, Ordering::Release);
        match d.take() {
            Some((eng, core)) if !self.stop.load(Ordering::Acquire) => match eng.upgrade() {
                Some(eng) => self.start(eng, core),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Asks the thread to stop, wakes it, and joins it (a deferred start is dropped).
    pub(crate) fn stop(&self, wake: impl FnOnce()) {
        self.stop.store(true, Ordering::Release);
        self.has_deferred.store(false, Ordering::Release);
        drop(
            self.deferred
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        wake();
        if let Some(h) = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulists_parse() {
        assert_eq!(parse_cpulist("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpulist("5"), vec![5]);
        assert_eq!(parse_cpulist(""), Vec::<usize>::new());
        assert_eq!(parse_cpulist("3-1,x,2"), vec![2]);
    }

    #[test]
    fn widening_keeps_the_current_cpus() {
        // Outcome: the thread may still run where it could before (run in a thread of its
        // own: the test harness's threads keep their binding).
        std::thread::spawn(|| {
            let before = crate::sys::thread_cpus().unwrap();
            widen_to_node();
            let after = crate::sys::thread_cpus().unwrap();
            assert!(
                before.iter().all(|c| after.contains(c)),
                "{before:?} -> {after:?}"
            );
        })
        .join()
        .unwrap();
    }
}
