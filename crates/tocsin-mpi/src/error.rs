//! MPI errors: classes, messages, and the error handlers that decide what a failing call
//! does (MPI-4.1 §9.3–9.4).
//!
//! Owns [`MpiErr`], the mapping from tocsin's errors to MPI error classes, and [`finish`],
//! through which every implemented function returns: `MPI_SUCCESS`, or the error passed to
//! the error handler of the communicator concerned (MPI_COMM_WORLD's when none is):
//! `MPI_ERRORS_ARE_FATAL` (the default) and `MPI_ERRORS_ABORT` print the function, the
//! error class and what was wrong, then end the job; `MPI_ERRORS_RETURN` returns the class.

use std::ffi::c_int;
use std::sync::atomic::Ordering;

use crate::abi::*;
use crate::handle::{self, CommObj, Errh};

/// An MPI error: its class (the code returned) and what was wrong.
#[derive(Debug, Clone)]
pub struct MpiErr {
    /// The error class (`MPI_ERR_*`).
    pub class: c_int,
    /// What was wrong and what is accepted.
    pub msg: String,
}

impl MpiErr {
    /// An error of `class`.
    pub fn new(class: c_int, msg: impl Into<String>) -> MpiErr {
        MpiErr {
            class,
            msg: msg.into(),
        }
    }
}

/// Result of the implementation of an MPI function.
pub type MpiResult<T> = Result<T, MpiErr>;

impl From<tocsin::Error> for MpiErr {
    fn from(e: tocsin::Error) -> MpiErr {
        use tocsin::Error as E;
        let class = match &e {
            E::InvalidRank { .. } | E::AnySourceOnSend => MPI_ERR_RANK,
            E::InvalidTag { .. } => MPI_ERR_TAG,
            E::Truncated { .. } => MPI_ERR_TRUNCATE,
            E::PeerDied { .. } => MPI_ERR_PROC_ABORTED,
            E::Malformed { .. } => MPI_ERR_INTERN,
            E::InvalidArgument { what, .. } => match *what {
                "operation" => MPI_ERR_OP,
                "counts" | "buffer length" => MPI_ERR_COUNT,
                _ => MPI_ERR_ARG,
            },
            E::Unsupported(_) => MPI_ERR_UNSUPPORTED_OPERATION,
            _ => MPI_ERR_OTHER,
        };
        MpiErr::new(class, e.to_string())
    }
}

/// The name of an error class (`"MPI_ERR_RANK"`…), or `None`.
pub fn class_name(class: c_int) -> Option<&'static str> {
    Some(match class {
        MPI_SUCCESS => "MPI_SUCCESS",
        MPI_ERR_BUFFER => "MPI_ERR_BUFFER",
        MPI_ERR_COUNT => "MPI_ERR_COUNT",
        MPI_ERR_TYPE => "MPI_ERR_TYPE",
        MPI_ERR_TAG => "MPI_ERR_TAG",
        MPI_ERR_COMM => "MPI_ERR_COMM",
        MPI_ERR_RANK => "MPI_ERR_RANK",
        MPI_ERR_REQUEST => "MPI_ERR_REQUEST",
        MPI_ERR_ROOT => "MPI_ERR_ROOT",
        MPI_ERR_GROUP => "MPI_ERR_GROUP",
        MPI_ERR_OP => "MPI_ERR_OP",
        MPI_ERR_TOPOLOGY => "MPI_ERR_TOPOLOGY",
        MPI_ERR_DIMS => "MPI_ERR_DIMS",
        MPI_ERR_ARG => "MPI_ERR_ARG",
        MPI_ERR_UNKNOWN => "MPI_ERR_UNKNOWN",
        MPI_ERR_TRUNCATE => "MPI_ERR_TRUNCATE",
        MPI_ERR_OTHER => "MPI_ERR_OTHER",
        MPI_ERR_INTERN => "MPI_ERR_INTERN",
        MPI_ERR_PENDING => "MPI_ERR_PENDING",
        MPI_ERR_IN_STATUS => "MPI_ERR_IN_STATUS",
        MPI_ERR_INFO => "MPI_ERR_INFO",
        MPI_ERR_INFO_KEY => "MPI_ERR_INFO_KEY",
        MPI_ERR_INFO_NOKEY => "MPI_ERR_INFO_NOKEY",
        MPI_ERR_INFO_VALUE => "MPI_ERR_INFO_VALUE",
        MPI_ERR_KEYVAL => "MPI_ERR_KEYVAL",
        MPI_ERR_NO_MEM => "MPI_ERR_NO_MEM",
        MPI_ERR_PROC_ABORTED => "MPI_ERR_PROC_ABORTED",
        MPI_ERR_UNSUPPORTED_OPERATION => "MPI_ERR_UNSUPPORTED_OPERATION",
        MPI_ERR_ERRHANDLER => "MPI_ERR_ERRHANDLER",
        MPI_ERR_VALUE_TOO_LARGE => "MPI_ERR_VALUE_TOO_LARGE",
        MPI_ERR_SESSION => "MPI_ERR_SESSION",
        MPI_ERR_ABI => "MPI_ERR_ABI",
        MPI_ERR_WIN => "MPI_ERR_WIN",
        MPI_ERR_FILE => "MPI_ERR_FILE",
        MPI_ERR_NAME => "MPI_ERR_NAME",
        MPI_ERR_SIZE => "MPI_ERR_SIZE",
        MPI_ERR_SERVICE => "MPI_ERR_SERVICE",
        MPI_ERR_PORT => "MPI_ERR_PORT",
        MPI_ERR_SPAWN => "MPI_ERR_SPAWN",
        MPI_ERR_DISP => "MPI_ERR_DISP",
        MPI_ERR_BASE => "MPI_ERR_BASE",
        MPI_ERR_ASSERT => "MPI_ERR_ASSERT",
        _ => return None,
    })
}

/// The standard's short description of an error class (MPI_Error_string).
pub fn class_text(class: c_int) -> &'static str {
    match class {
        MPI_SUCCESS => "no error",
        MPI_ERR_BUFFER => "invalid buffer pointer",
        MPI_ERR_COUNT => "invalid count argument",
        MPI_ERR_TYPE => "invalid datatype argument",
        MPI_ERR_TAG => "invalid tag argument",
        MPI_ERR_COMM => "invalid communicator",
        MPI_ERR_RANK => "invalid rank",
        MPI_ERR_REQUEST => "invalid request (handle)",
        MPI_ERR_ROOT => "invalid root",
        MPI_ERR_GROUP => "invalid group",
        MPI_ERR_OP => "invalid operation",
        MPI_ERR_TOPOLOGY => "invalid topology",
        MPI_ERR_DIMS => "invalid dimension argument",
        MPI_ERR_ARG => "invalid argument of some other kind",
        MPI_ERR_TRUNCATE => "message truncated",
        MPI_ERR_OTHER => "known error not in this list",
        MPI_ERR_INTERN => "internal MPI (implementation) error",
        MPI_ERR_PENDING => "pending request",
        MPI_ERR_IN_STATUS => "error code is in status",
        MPI_ERR_PROC_ABORTED => "operation failed because a peer process has aborted",
        MPI_ERR_UNSUPPORTED_OPERATION => "unsupported operation",
        MPI_ERR_ERRHANDLER => "invalid error handler",
        _ => "unknown error class",
    }
}

/// Hands an error to the error handler of `comm` (MPI_COMM_WORLD's if `None`): ends the job
/// under a fatal handler, calls a user handler, then returns the error class.
pub fn raise(func: &str, comm: Option<(&CommObj, MPI_Comm)>, e: MpiErr) -> c_int {
    let st = handle::state_any();
    let (obj, h) = match comm {
        Some(c) => (Some(c.0), c.1),
        None => (st.map(|s| &s.world), MPI_COMM_WORLD as MPI_Comm),
    };
    let errh = obj.map_or(MPI_ERRORS_ARE_FATAL, |o| o.errh.load(Ordering::Relaxed));
    // SAFETY: the value was stored by MPI_Comm_set_errhandler after validation.
    match unsafe { handle::errhandler(errh) } {
        Ok(Errh::Return) => e.class,
        Ok(Errh::User(Some(f))) => {
            let mut hh = h;
            let mut code = e.class;
            // SAFETY: the application's handler, called as MPI specifies (comm, code).
            unsafe { f(&mut hh, &mut code) };
            e.class
        }
        _ => fatal(func, &e),
    }
}

/// Prints the error and ends the job (MPI_ERRORS_ARE_FATAL).
pub fn fatal(func: &str, e: &MpiErr) -> ! {
    let rank = handle::state_any().map(|s| s.world.comm.rank());
    let who = rank.map_or(String::new(), |r| format!(" (rank {r})"));
    let msg = format!(
        "tocsin-mpi: {func}{who}: {} ({}); MPI_ERRORS_ARE_FATAL: ending the job",
        e.msg,
        class_name(e.class).unwrap_or("MPI_ERR_UNKNOWN")
    );
    eprintln!("{msg}");
    match handle::state_any() {
        Some(s) => s.world.comm.abort(e.class.max(1), &msg),
        None => std::process::exit(e.class.max(1)),
    }
}

/// The return of an implemented function: `MPI_SUCCESS`, or the error through [`raise`].
pub fn finish(func: &str, comm: Option<(&CommObj, MPI_Comm)>, r: MpiResult<()>) -> c_int {
    match r {
        Ok(()) => MPI_SUCCESS,
        Err(e) => raise(func, comm, e),
    }
}

/// Runs `f` (the body of MPI function `func` on communicator `h`): looks the communicator
/// up, and routes an error to its handler.
///
/// # Safety
/// `h` as for [`handle::comm`]; `f`'s own contract.
pub unsafe fn with_comm(
    func: &str,
    h: MPI_Comm,
    f: impl FnOnce(&CommObj) -> MpiResult<()>,
) -> c_int {
    // SAFETY: forwarded.
    match unsafe { handle::comm(h) } {
        Ok(c) => finish(func, Some((c, h)), f(c)),
        Err(e) => raise(func, None, e),
    }
}
