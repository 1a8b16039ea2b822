//! Start and end of MPI, and the environment queries (MPI-4.1 §11): `MPI_Init(_thread)`,
//! `MPI_Finalize`, `MPI_Initialized`, `MPI_Finalized`, `MPI_Abort`, `MPI_Query_thread`,
//! `MPI_Is_thread_main`, `MPI_Wtime`, `MPI_Wtick`, `MPI_Get_processor_name`,
//! `MPI_Get_library_version`, `MPI_Comm_rank`, `MPI_Comm_size`.
//!
//! Owns the process state's life ([`crate::handle::State`]). Thread support: up to
//! `MPI_THREAD_MULTIPLE` (tocsin communicators are `Send + Sync`; interrupts go to the
//! thread that called `MPI_Init`, whose handler progresses every thread's requests).

use std::ffi::{c_char, c_int};
use std::sync::atomic::Ordering;

use crate::abi::*;
use crate::error::{raise, with_comm, MpiErr};
use crate::handle::{self, CommObj, State, PHASE};

fn init(func: &str, required: c_int, provided: *mut c_int) -> c_int {
    if PHASE.load(Ordering::Acquire) != 0 {
        return raise(
            func,
            None,
            MpiErr::new(
                MPI_ERR_OTHER,
                "MPI is already initialized (or finalized): call MPI_Init once",
            ),
        );
    }
    let level = match required {
        MPI_THREAD_SINGLE | MPI_THREAD_FUNNELED | MPI_THREAD_SERIALIZED | MPI_THREAD_MULTIPLE => {
            required
        }
        _ => MPI_THREAD_MULTIPLE,
    };
    let world = match tocsin::init() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("tocsin-mpi: {func}: {e}");
            std::process::exit(1);
        }
    };
    let selfc = world.self_comm();
    handle::set_state(State {
        world: CommObj::new(world),
        selfc: CommObj::new(selfc),
        thread_level: level,
        main_thread: std::thread::current().id(),
    });
    PHASE.store(1, Ordering::Release);
    if !provided.is_null() {
        // SAFETY: non-null `int *` from the caller.
        unsafe { provided.write(level) };
    }
    MPI_SUCCESS
}

/// `MPI_Init(int *argc, char ***argv)`: joins the job (PMI-1 from the launcher, or a
/// singleton). `argc`/`argv` may be NULL; they are not read.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Init(_argc: *mut c_int, _argv: *mut *mut *mut c_char) -> c_int {
    init("MPI_Init", MPI_THREAD_SINGLE, std::ptr::null_mut())
}

/// `MPI_Init_thread`: as `MPI_Init`; grants the level required (every level up to
/// `MPI_THREAD_MULTIPLE` is supported; an unknown value gets `MPI_THREAD_MULTIPLE`).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Init_thread(
    _argc: *mut c_int,
    _argv: *mut *mut *mut c_char,
    required: c_int,
    provided: *mut c_int,
) -> c_int {
    init("MPI_Init_thread", required, provided)
}

/// `MPI_Finalize`: finishes this rank's part (see `tocsin::Comm::finalize`).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Finalize() -> c_int {
    match handle::state() {
        Ok(s) => {
            s.world.comm.finalize();
            handle::retire_world();
            PHASE.store(2, Ordering::Release);
            MPI_SUCCESS
        }
        Err(e) => raise("MPI_Finalize", None, e),
    }
}

/// `MPI_Initialized(int *flag)`: true once MPI_Init ran (even after MPI_Finalize).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Initialized(flag: *mut c_int) -> c_int {
    flag_out(flag, PHASE.load(Ordering::Acquire) >= 1)
}

/// `MPI_Finalized(int *flag)`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Finalized(flag: *mut c_int) -> c_int {
    flag_out(flag, PHASE.load(Ordering::Acquire) == 2)
}

fn flag_out(flag: *mut c_int, v: bool) -> c_int {
    if flag.is_null() {
        return MPI_ERR_ARG;
    }
    // SAFETY: non-null `int *` from the caller.
    unsafe { flag.write(c_int::from(v)) };
    MPI_SUCCESS
}

/// `MPI_Abort(MPI_Comm comm, int errorcode)`: ends the whole job with `errorcode`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Abort(comm: MPI_Comm, errorcode: c_int) -> c_int {
    let msg = format!("MPI_Abort called with error code {errorcode}");
    eprintln!("tocsin-mpi: {msg}");
    match handle::state_any() {
        Some(s) => {
            // SAFETY: any handle; the world is used if it is invalid.
            let c = unsafe { handle::comm(comm) }.map_or(&s.world.comm, |c| &c.comm);
            c.abort(errorcode, &msg)
        }
        None => std::process::exit(errorcode),
    }
}

/// `MPI_Query_thread(int *provided)`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Query_thread(provided: *mut c_int) -> c_int {
    match handle::state() {
        Ok(s) if !provided.is_null() => {
            // SAFETY: non-null `int *` from the caller.
            unsafe { provided.write(s.thread_level) };
            MPI_SUCCESS
        }
        Ok(_) => raise(
            "MPI_Query_thread",
            None,
            MpiErr::new(MPI_ERR_ARG, "provided is NULL"),
        ),
        Err(e) => raise("MPI_Query_thread", None, e),
    }
}

/// `MPI_Is_thread_main(int *flag)`: whether the caller is the thread that called MPI_Init.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Is_thread_main(flag: *mut c_int) -> c_int {
    match handle::state() {
        Ok(s) => flag_out(flag, std::thread::current().id() == s.main_thread),
        Err(e) => raise("MPI_Is_thread_main", None, e),
    }
}

/// `MPI_Wtime()`: seconds of `CLOCK_MONOTONIC` (an arbitrary origin, the same for every
/// thread of the process; not synchronized between ranks: `MPI_WTIME_IS_GLOBAL` is 0). One
/// vDSO call, no allocation: benchmarks call it around every iteration.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Wtime() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// `MPI_Wtick()`: the resolution of `MPI_Wtime`, seconds (1 ns: `CLOCK_MONOTONIC`).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Wtick() -> f64 {
    1e-9
}

/// Copies `s` (truncated to `max - 1` bytes) with a NUL into `buf` and its length to `len`.
///
/// # Safety
/// `buf` has room for `max` bytes; `len` is null or writable.
pub(crate) unsafe fn c_string_out(s: &str, buf: *mut c_char, len: *mut c_int, max: usize) -> bool {
    if buf.is_null() {
        return false;
    }
    let n = s.len().min(max.saturating_sub(1));
    // SAFETY: `buf` has room for `max ≥ n + 1` bytes (caller's contract).
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf as *mut u8, n);
        *buf.add(n) = 0;
        if !len.is_null() {
            len.write(n as c_int);
        }
    }
    true
}

/// `MPI_Get_processor_name(char *name, int *resultlen)`: the host name.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Get_processor_name(
    name: *mut c_char,
    resultlen: *mut c_int,
) -> c_int {
    let mut b = [0u8; 256];
    // SAFETY: gethostname writes at most `b.len()` bytes.
    unsafe { libc::gethostname(b.as_mut_ptr() as *mut c_char, b.len()) };
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let host = String::from_utf8_lossy(&b[..end]).into_owned();
    // SAFETY: MPI_MAX_PROCESSOR_NAME bytes at `name` (the caller's contract).
    if unsafe { c_string_out(&host, name, resultlen, MPI_MAX_PROCESSOR_NAME as usize) } {
        MPI_SUCCESS
    } else {
        raise(
            "MPI_Get_processor_name",
            None,
            MpiErr::new(MPI_ERR_ARG, "name is NULL"),
        )
    }
}

/// The library version string.
pub fn library_version() -> String {
    format!(
        "tocsin-mpi {} (MPI {}.{}, standard ABI {}.{}): message passing progressed by interrupts",
        env!("CARGO_PKG_VERSION"),
        MPI_VERSION,
        MPI_SUBVERSION,
        MPI_ABI_VERSION,
        MPI_ABI_SUBVERSION
    )
}

/// `MPI_Get_library_version(char *version, int *resultlen)`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Get_library_version(
    version: *mut c_char,
    resultlen: *mut c_int,
) -> c_int {
    // SAFETY: MPI_MAX_LIBRARY_VERSION_STRING bytes at `version` (the caller's contract).
    if unsafe {
        c_string_out(
            &library_version(),
            version,
            resultlen,
            MPI_MAX_LIBRARY_VERSION_STRING as usize,
        )
    } {
        MPI_SUCCESS
    } else {
        raise(
            "MPI_Get_library_version",
            None,
            MpiErr::new(MPI_ERR_ARG, "version is NULL"),
        )
    }
}

/// `MPI_Comm_rank(MPI_Comm comm, int *rank)`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_rank(comm: MPI_Comm, rank: *mut c_int) -> c_int {
    // SAFETY: `comm` is the caller's handle.
    unsafe {
        with_comm("MPI_Comm_rank", comm, |c| {
            if rank.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "rank is NULL"));
            }
            rank.write(c.comm.rank() as c_int);
            Ok(())
        })
    }
}

/// `MPI_Comm_size(MPI_Comm comm, int *size)`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_size(comm: MPI_Comm, size: *mut c_int) -> c_int {
    // SAFETY: `comm` is the caller's handle.
    unsafe {
        with_comm("MPI_Comm_size", comm, |c| {
            if size.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "size is NULL"));
            }
            size.write(c.comm.size() as c_int);
            Ok(())
        })
    }
}
