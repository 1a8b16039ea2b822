//! The machine's cores as hwloc reports them, for binding ranks (rank i → core i % ncores).
//!
//! The topology is read once per process and kept as plain data (the OS indices of each
//! core's processing units), so that a child can be bound between fork and exec with one
//! `sched_setaffinity` call, before the program runs its first instruction.

use std::sync::OnceLock;

use hwlocality::object::types::ObjectType;
use hwlocality::Topology;

/// Per core (in hwloc's logical order), the OS indices of its processing units; or why the
/// topology could not be read.
static CORES: OnceLock<Result<Vec<Vec<usize>>, String>> = OnceLock::new();

/// The cores hwloc reports (only those this process may run on), each as the OS indices of
/// its processing units.
///
/// # Errors
/// Why hwloc could not give the topology (the caller then runs without binding).
pub(crate) fn cores() -> Result<&'static [Vec<usize>], &'static str> {
    CORES
        .get_or_init(|| {
            let topo =
                Topology::new().map_err(|e| format!("hwloc could not read the topology: {e}"))?;
            let cores: Vec<Vec<usize>> = topo
                .objects_with_type(ObjectType::Core)
                .filter_map(|c| c.cpuset())
                .map(|set| set.iter_set().map(usize::from).collect::<Vec<usize>>())
                .filter(|pus| !pus.is_empty())
                .collect();
            if cores.is_empty() {
                Err("hwloc reports no cores".to_owned())
            } else {
                Ok(cores)
            }
        })
        .as_ref()
        .map(|v| v.as_slice())
        .map_err(|e| e.as_str())
}

/// Number of cores, falling back to the available parallelism if hwloc fails.
pub(crate) fn core_count() -> usize {
    match cores() {
        Ok(c) => c.len(),
        Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// A CPU mask holding `pus`, for `sched_setaffinity`.
pub(crate) fn cpu_set(pus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &pu in pus {
        if pu < libc::CPU_SETSIZE as usize {
            // SAFETY: `pu` is below CPU_SETSIZE, so the bit lies inside `set`.
            unsafe { libc::CPU_SET(pu, &mut set) };
        }
    }
    set
}
