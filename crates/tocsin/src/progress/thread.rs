//! `thread` mode's progress thread (PIOMan-style): one per rank, spinning a bounded time
//! then sleeping on the rank's doorbell, so that requests progress while the application
//! computes.
//!
//! Owns the thread's life (start, binding, stop, join); the loop body is the engine's
//! ordinary wait ([`super::Engine::progress_until`]). It must not touch protocol state
//! directly.

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
