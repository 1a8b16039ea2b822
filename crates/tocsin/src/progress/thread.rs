//! `thread` mode's progress thread (PIOMan-style): one per rank, so that requests progress
//! while the application computes.
//!
//! Owns the thread's life (start, binding, stop, join); the loop body is the engine's
//! ([`super::Engine::progress_until`]). It must not touch protocol state directly.
//!
//! ## When the progress thread runs, and the trade-off
//! A progress thread is a second runnable thread per rank: on a full node (as many ranks as
//! cores) every cycle it spins is taken from a computing rank, and while its own rank waits
//! in tocsin it only competes with the thread that already makes the progress. So:
//! - **while an application thread of the rank waits in tocsin**, the progress thread
//!   *parks* on the rank's doorbell futex without arming it (peers do not ring for it): the
//!   waiting thread spins, then sleeps armed, as in `block` mode, and does the progress;
//! - **when the last waiting thread leaves**, it hands the watch back without waking the
//!   progress thread (no system call): it arms the doorbell on the parked thread's behalf
//!   and re-polls once, so the next record a peer pushes rings the progress thread awake;
//! - **while the application computes**, the woken progress thread makes progress, spins
//!   the engine's adaptive budget ([`super::Engine::spin_budget`]: a few wake-up costs, at
//!   most 250 µs) for what follows, then sleeps armed on the doorbell; on an oversubscribed
//!   node it never spins.
//!
//! What this costs: a record that needs the computing rank's attention (a rendezvous
//! request, a CTS) waits for a wake-up of the progress thread (the measured wake-up cost,
//! 5–25 µs on a KVM guest) unless it comes within the spin; and the copy the progress thread
//! then makes (a CMA read of a large message) still takes its core from the computation when
//! the node is full, since both run on the rank's core unless `TOCSIN_PROGRESS_CORE` binds
//! the thread elsewhere — on a full node, binding it to a core nobody computes on (or
//! leaving one core per node free) is what gives overlap without stealing; `signal` mode
//! makes the same progress from a handler, with no second thread. With TCP peers the
//! progress thread does not park (it alone watches the sockets) and behaves as before:
//! bounded spin, then an armed sleep on the doorbell and the sockets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use hwlocality::cpu::binding::CpuBindingFlags;
use hwlocality::object::types::ObjectType;
use hwlocality::Topology;

use super::Engine;
use crate::error::{Error, Result};

/// A running progress thread.
#[derive(Debug, Default)]
pub(crate) struct ProgressThread {
    stop: Arc<AtomicBool>,
    handle: Mutex<Option<JoinHandle<()>>>,
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

    /// Asks the thread to stop, wakes it, and joins it.
    pub(crate) fn stop(&self, wake: impl FnOnce()) {
        self.stop.store(true, Ordering::Release);
        wake();
        if let Some(h) = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}
