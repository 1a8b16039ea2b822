//! Error handlers and error codes (MPI-4.1 §9.3–9.5): `MPI_Comm_set_errhandler`,
//! `MPI_Comm_get_errhandler`, `MPI_Comm_create_errhandler`, `MPI_Errhandler_free`,
//! `MPI_Comm_call_errhandler`, `MPI_Error_string`, `MPI_Error_class`.
//!
//! Error codes are error classes (no user-defined codes); the handler semantics live in
//! [`crate::error`].

use std::ffi::{c_char, c_int};
use std::sync::atomic::Ordering;

use crate::abi::*;
use crate::error::{class_name, class_text, raise, with_comm, MpiErr};
use crate::handle;

/// `MPI_Comm_set_errhandler`: the handler of `comm`'s errors: `MPI_ERRORS_ARE_FATAL`
/// (default), `MPI_ERRORS_ABORT`, `MPI_ERRORS_RETURN` or a user handler. Errors:
/// `MPI_ERR_COMM`, `MPI_ERR_ERRHANDLER`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_set_errhandler(
    comm: MPI_Comm,
    errhandler: MPI_Errhandler,
) -> c_int {
    // SAFETY: the caller's handles.
    unsafe {
        with_comm("MPI_Comm_set_errhandler", comm, |c| {
            handle::errhandler(errhandler as usize)?;
            c.errh.store(errhandler as usize, Ordering::Relaxed);
            Ok(())
        })
    }
}

/// `MPI_Comm_get_errhandler`: the handler of `comm`. Errors: `MPI_ERR_COMM`, `MPI_ERR_ARG`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_get_errhandler(
    comm: MPI_Comm,
    errhandler: *mut MPI_Errhandler,
) -> c_int {
    // SAFETY: the caller's handle; pointer checked.
    unsafe {
        with_comm("MPI_Comm_get_errhandler", comm, |c| {
            if errhandler.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "errhandler is NULL"));
            }
            errhandler.write(c.errh.load(Ordering::Relaxed) as MPI_Errhandler);
            Ok(())
        })
    }
}

/// `MPI_Comm_create_errhandler`: a handler calling `comm_errhandler_fn(&comm, &code)`.
/// Errors: `MPI_ERR_ARG` (NULL function or output).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_create_errhandler(
    comm_errhandler_fn: MPI_Comm_errhandler_function,
    errhandler: *mut MPI_Errhandler,
) -> c_int {
    if comm_errhandler_fn.is_none() || errhandler.is_null() {
        return raise(
            "MPI_Comm_create_errhandler",
            None,
            MpiErr::new(MPI_ERR_ARG, "comm_errhandler_fn or errhandler is NULL"),
        );
    }
    // SAFETY: non-null `MPI_Errhandler *`.
    unsafe { errhandler.write(handle::new_errhandler(comm_errhandler_fn)) };
    MPI_SUCCESS
}

/// `MPI_Errhandler_free`: sets the handle to MPI_ERRHANDLER_NULL. The object itself stays
/// (communicators may still use it, as MPI requires). Errors: `MPI_ERR_ERRHANDLER`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Errhandler_free(errhandler: *mut MPI_Errhandler) -> c_int {
    let r = (|| {
        if errhandler.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "errhandler is NULL"));
        }
        // SAFETY: non-null pointer from the caller; the value is validated.
        unsafe {
            handle::errhandler(errhandler.read() as usize)?;
            errhandler.write(MPI_ERRHANDLER_NULL as MPI_Errhandler);
        }
        Ok(())
    })();
    crate::error::finish("MPI_Errhandler_free", None, r)
}

/// `MPI_Comm_call_errhandler`: invokes `comm`'s handler with `errorcode` (a fatal handler
/// ends the job); returns MPI_SUCCESS once the handler returned.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_call_errhandler(comm: MPI_Comm, errorcode: c_int) -> c_int {
    // SAFETY: the caller's handle.
    match unsafe { handle::comm(comm) } {
        Ok(c) => {
            let e = MpiErr::new(
                errorcode,
                format!("error code {errorcode} raised by the application"),
            );
            raise("MPI_Comm_call_errhandler", Some((c, comm)), e);
            MPI_SUCCESS
        }
        Err(e) => raise("MPI_Comm_call_errhandler", None, e),
    }
}

/// `MPI_Error_string`: `"MPI_ERR_XXX: description"` for an error class (the codes this
/// library returns are classes). Errors: `MPI_ERR_ARG` for an unknown code or NULL output.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Error_string(
    errorcode: c_int,
    string: *mut c_char,
    resultlen: *mut c_int,
) -> c_int {
    let Some(name) = class_name(errorcode) else {
        return raise(
            "MPI_Error_string",
            None,
            MpiErr::new(MPI_ERR_ARG, format!("{errorcode} is not an error code")),
        );
    };
    let s = format!("{name}: {}", class_text(errorcode));
    // SAFETY: MPI_MAX_ERROR_STRING bytes at `string` (the caller's contract).
    if unsafe { crate::init::c_string_out(&s, string, resultlen, MPI_MAX_ERROR_STRING as usize) } {
        MPI_SUCCESS
    } else {
        raise(
            "MPI_Error_string",
            None,
            MpiErr::new(MPI_ERR_ARG, "string is NULL"),
        )
    }
}

/// `MPI_Error_class`: the class of an error code (every code is its own class). Errors:
/// `MPI_ERR_ARG` for an unknown code or NULL output.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Error_class(errorcode: c_int, errorclass: *mut c_int) -> c_int {
    if errorclass.is_null() || class_name(errorcode).is_none() {
        return raise(
            "MPI_Error_class",
            None,
            MpiErr::new(
                MPI_ERR_ARG,
                format!("{errorcode} is not an error code (or errorclass is NULL)"),
            ),
        );
    }
    // SAFETY: non-null `int *`.
    unsafe { errorclass.write(errorcode) };
    MPI_SUCCESS
}
