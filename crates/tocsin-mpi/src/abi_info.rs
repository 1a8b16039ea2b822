//! Version queries: `MPI_Abi_get_version` and `MPI_Get_version`.
//!
//! The model of a hand-written MPI function: define only the profiling entry point
//! `PMPI_Xxx`, `#[no_mangle] pub unsafe extern "C"`, with the C prototype of
//! `abi/functions.txt` written with the types of [`crate::abi`]. `build.rs` finds the
//! definition (text scan of `src/`), drops the generated stub, and generates `MPI_Xxx`, which
//! calls this `PMPI_Xxx` (the profiling interface).

use core::ffi::c_int;

use crate::abi::{
    MPI_ABI_SUBVERSION, MPI_ABI_VERSION, MPI_ERR_ARG, MPI_SUBVERSION, MPI_SUCCESS, MPI_VERSION,
};

/// `MPI_Abi_get_version(int *abi_major, int *abi_minor)`: the version of the standard ABI this
/// library implements, 1.0 (`MPI_ABI_VERSION`, `MPI_ABI_SUBVERSION`). mpi4py calls it to
/// detect the standard ABI. Callable at any time, even before `MPI_Init`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Abi_get_version(
    abi_major: *mut c_int,
    abi_minor: *mut c_int,
) -> c_int {
    if abi_major.is_null() || abi_minor.is_null() {
        return MPI_ERR_ARG;
    }
    // SAFETY: both pointers are non-null and, by the MPI contract, point to writable ints.
    unsafe {
        abi_major.write(MPI_ABI_VERSION);
        abi_minor.write(MPI_ABI_SUBVERSION);
    }
    MPI_SUCCESS
}

/// `MPI_Get_version(int *version, int *subversion)`: the MPI standard version, 5.0
/// (`MPI_VERSION`, `MPI_SUBVERSION`). Callable at any time, even before `MPI_Init`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Get_version(version: *mut c_int, subversion: *mut c_int) -> c_int {
    if version.is_null() || subversion.is_null() {
        return MPI_ERR_ARG;
    }
    // SAFETY: both pointers are non-null and, by the MPI contract, point to writable ints.
    unsafe {
        version.write(MPI_VERSION);
        subversion.write(MPI_SUBVERSION);
    }
    MPI_SUCCESS
}
