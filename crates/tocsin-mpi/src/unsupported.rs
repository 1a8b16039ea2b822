//! The answer of every MPI function tocsin-mpi does not implement (yet): a one-time message
//! on stderr per function, and `MPI_ERR_UNSUPPORTED_OPERATION`.
//!
//! The generated stubs of `exports.rs` (see `build.rs`) call [`unsupported`]; a hand-written
//! `PMPI_` function replaces its stub.

use core::ffi::c_int;
use std::collections::HashSet;
use std::io::Write;
use std::sync::Mutex;

use crate::abi::MPI_ERR_UNSUPPORTED_OPERATION;

/// The functions already reported on stderr.
static REPORTED: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

/// Reports, once per function `name` (e.g. `"MPI_Send"`), that it is not implemented, on
/// stderr: `tocsin-mpi: MPI_Xxx is not implemented: returning MPI_ERR_UNSUPPORTED_OPERATION`,
/// and returns `MPI_ERR_UNSUPPORTED_OPERATION` (55). Never panics (a poisoned lock is taken
/// over, a failed write to stderr ignored); not async-signal-safe.
pub fn unsupported(name: &'static str) -> c_int {
    let first = {
        let mut reported = REPORTED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        reported.get_or_insert_with(HashSet::new).insert(name)
    };
    if first {
        let _ = writeln!(
            std::io::stderr(),
            "tocsin-mpi: {name} is not implemented: returning MPI_ERR_UNSUPPORTED_OPERATION"
        );
    }
    MPI_ERR_UNSUPPORTED_OPERATION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_55_every_time() {
        assert_eq!(unsupported("MPI_Unit_test_only"), 55);
        assert_eq!(unsupported("MPI_Unit_test_only"), 55);
        let reported = REPORTED.lock().unwrap();
        assert!(reported.as_ref().unwrap().contains("MPI_Unit_test_only"));
    }
}
