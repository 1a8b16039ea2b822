//! Communicator management (MPI-4.1 §7.4): `MPI_Comm_dup(_with_info)`, `MPI_Comm_split`,
//! `MPI_Comm_split_type`, `MPI_Comm_create`, `MPI_Comm_create_group`, `MPI_Comm_free`,
//! `MPI_Comm_compare`, `MPI_Comm_group`, `MPI_Comm_test_inter`, `MPI_Comm_get_parent`,
//! `MPI_Comm_set_name`/`get_name`, `MPI_Comm_set_info`/`get_info`.
//!
//! New communicators inherit the error handler of their parent (MPI-4.1 §9.3); a dup also
//! copies attributes (copy callbacks) and the Cartesian topology. Deviations:
//! `MPI_Comm_create_group` is collective over the whole parent communicator (it uses
//! tocsin's `Comm::create`), not only over the group; info hints are accepted and ignored.

use std::ffi::{c_char, c_int, CStr};
use std::sync::atomic::Ordering;

use crate::abi::*;
use crate::error::{raise, with_comm, MpiErr, MpiResult};
use crate::handle::{self, CommObj};

/// Writes a new communicator handle (or MPI_COMM_NULL) with `parent`'s error handler.
///
/// # Safety
/// `out` writable.
unsafe fn out_comm(parent: &CommObj, c: Option<tocsin::Comm>, out: *mut MPI_Comm) -> MPI_Comm {
    let h = match c {
        None => MPI_COMM_NULL as MPI_Comm,
        Some(c) => {
            let h = handle::new_comm(c);
            // SAFETY: just created.
            if let Ok(o) = unsafe { handle::comm(h) } {
                o.errh
                    .store(parent.errh.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            h
        }
    };
    // SAFETY: the caller's contract.
    unsafe { out.write(h) };
    h
}

fn check_out(p: *mut MPI_Comm) -> MpiResult<()> {
    if p.is_null() {
        return Err(MpiErr::new(MPI_ERR_ARG, "newcomm is NULL"));
    }
    Ok(())
}

/// Duplicates `c` (handle `h`) into `*newcomm`: new context, same group, error handler,
/// attributes (copy callbacks) and topology.
///
/// # Safety
/// `newcomm` writable.
pub(crate) unsafe fn dup_into(c: &CommObj, h: MPI_Comm, newcomm: *mut MPI_Comm) -> MpiResult<()> {
    check_out(newcomm)?;
    let d = c.comm.dup()?;
    // SAFETY: checked non-null.
    let nh = unsafe { out_comm(c, Some(d), newcomm) };
    // SAFETY: just created.
    let n = unsafe { handle::comm(nh)? };
    crate::topo::copy_topo(h, nh);
    crate::attr::copy_attrs(c, h, n)
}

/// `MPI_Comm_dup`: a new communicator with the same group (collective). Errors:
/// `MPI_ERR_COMM`, `MPI_ERR_ARG`, an attribute copy callback's code.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_dup(comm: MPI_Comm, newcomm: *mut MPI_Comm) -> c_int {
    // SAFETY: the caller's handle and output.
    unsafe { with_comm("MPI_Comm_dup", comm, |c| dup_into(c, comm, newcomm)) }
}

/// `MPI_Comm_dup_with_info`: as `MPI_Comm_dup` (the hints are checked and ignored).
/// Errors: also `MPI_ERR_INFO`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_dup_with_info(
    comm: MPI_Comm,
    info: MPI_Info,
    newcomm: *mut MPI_Comm,
) -> c_int {
    // SAFETY: the caller's handles and output.
    unsafe {
        with_comm("MPI_Comm_dup_with_info", comm, |c| {
            handle::info(info)?;
            dup_into(c, comm, newcomm)
        })
    }
}

/// `MPI_Comm_split`: one communicator per `color`, ranks ordered by (`key`, old rank);
/// MPI_UNDEFINED gets MPI_COMM_NULL. Errors: `MPI_ERR_COMM`, `MPI_ERR_ARG` (negative color
/// other than MPI_UNDEFINED).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_split(
    comm: MPI_Comm,
    color: c_int,
    key: c_int,
    newcomm: *mut MPI_Comm,
) -> c_int {
    // SAFETY: the caller's handle and output.
    unsafe {
        with_comm("MPI_Comm_split", comm, |c| {
            check_out(newcomm)?;
            let col = if color == MPI_UNDEFINED {
                None
            } else {
                Some(u32::try_from(color).map_err(|_| {
                    MpiErr::new(
                        MPI_ERR_ARG,
                        format!("color {color} is negative (and not MPI_UNDEFINED)"),
                    )
                })?)
            };
            let n = c.comm.split(col, key)?;
            out_comm(c, n, newcomm);
            Ok(())
        })
    }
}

/// `MPI_Comm_split_type`: `MPI_COMM_TYPE_SHARED` splits by node (shared memory);
/// `MPI_UNDEFINED` gets MPI_COMM_NULL; the hardware/resource-guided types give
/// MPI_COMM_NULL (allowed by MPI when no such split is known). Errors: `MPI_ERR_COMM`,
/// `MPI_ERR_ARG` (unknown split type), `MPI_ERR_INFO`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_split_type(
    comm: MPI_Comm,
    split_type: c_int,
    key: c_int,
    info: MPI_Info,
    newcomm: *mut MPI_Comm,
) -> c_int {
    // SAFETY: the caller's handles and output.
    unsafe {
        with_comm("MPI_Comm_split_type", comm, |c| {
            check_out(newcomm)?;
            handle::info(info)?;
            let n = match split_type {
                MPI_COMM_TYPE_SHARED => Some(c.comm.split_shared(key)?),
                MPI_UNDEFINED
                | MPI_COMM_TYPE_HW_UNGUIDED
                | MPI_COMM_TYPE_HW_GUIDED
                | MPI_COMM_TYPE_RESOURCE_GUIDED => c.comm.split(None, key)?,
                t => {
                    return Err(MpiErr::new(
                        MPI_ERR_ARG,
                        format!(
                        "unknown split type {t} (MPI_COMM_TYPE_SHARED or MPI_UNDEFINED expected)"
                    ),
                    ))
                }
            };
            out_comm(c, n, newcomm);
            Ok(())
        })
    }
}

/// `MPI_Comm_create`: a communicator of `group` (a subset of `comm`'s group; collective
/// over `comm`); MPI_COMM_NULL for the ranks outside. Errors: `MPI_ERR_COMM`,
/// `MPI_ERR_GROUP`, `MPI_ERR_ARG` (a member outside `comm`).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_create(
    comm: MPI_Comm,
    group: MPI_Group,
    newcomm: *mut MPI_Comm,
) -> c_int {
    // SAFETY: the caller's handles and output.
    unsafe {
        with_comm("MPI_Comm_create", comm, |c| {
            check_out(newcomm)?;
            let g = handle::group(group)?;
            let n = c.comm.create(&g)?;
            out_comm(c, n, newcomm);
            Ok(())
        })
    }
}

/// `MPI_Comm_create_group`: as `MPI_Comm_create`. Deviation: collective over all of
/// `comm` (every rank must call it, non-members get MPI_COMM_NULL); `tag` is unused.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_create_group(
    comm: MPI_Comm,
    group: MPI_Group,
    _tag: c_int,
    newcomm: *mut MPI_Comm,
) -> c_int {
    // SAFETY: the caller's handles and output.
    unsafe {
        with_comm("MPI_Comm_create_group", comm, |c| {
            check_out(newcomm)?;
            let g = handle::group(group)?;
            let n = c.comm.create(&g)?;
            out_comm(c, n, newcomm);
            Ok(())
        })
    }
}

/// `MPI_Comm_free`: runs the attributes' delete callbacks, drops the topology, frees the
/// communicator and sets the handle to MPI_COMM_NULL. Requests in flight on it still
/// complete. Errors: `MPI_ERR_COMM` (predefined or invalid).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_free(comm: *mut MPI_Comm) -> c_int {
    const F: &str = "MPI_Comm_free";
    if comm.is_null() {
        return raise(F, None, MpiErr::new(MPI_ERR_ARG, "comm is NULL"));
    }
    // SAFETY: non-null pointer from the caller.
    let h = unsafe { comm.read() };
    if (h as usize) < 4096 {
        return raise(
            F,
            // SAFETY: a predefined handle is looked up by value.
            unsafe { handle::comm(h) }.ok().map(|c| (c, h)),
            MpiErr::new(
                MPI_ERR_COMM,
                "predefined communicators (MPI_COMM_WORLD, MPI_COMM_SELF, MPI_COMM_NULL) cannot be freed",
            ),
        );
    }
    // SAFETY: the caller's handle.
    let c = match unsafe { handle::comm(h) } {
        Ok(c) => c,
        Err(e) => return raise(F, None, e),
    };
    let r = crate::attr::delete_attrs(c, h);
    if let Err(e) = r {
        return raise(F, Some((c, h)), e);
    }
    crate::topo::drop_topo(h);
    // SAFETY: live user handle (checked above).
    match unsafe { handle::free_comm(h) } {
        Ok(()) => {
            // SAFETY: non-null pointer from the caller.
            unsafe { comm.write(MPI_COMM_NULL as MPI_Comm) };
            MPI_SUCCESS
        }
        Err(e) => raise(F, None, e),
    }
}

/// `MPI_Comm_compare`: MPI_IDENT (same communicator), MPI_CONGRUENT (same group, other
/// context), MPI_SIMILAR (same members, other order) or MPI_UNEQUAL. Errors:
/// `MPI_ERR_COMM`, `MPI_ERR_ARG`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_compare(
    comm1: MPI_Comm,
    comm2: MPI_Comm,
    result: *mut c_int,
) -> c_int {
    // SAFETY: the caller's handles; output checked.
    unsafe {
        with_comm("MPI_Comm_compare", comm1, |c1| {
            let c2 = handle::comm(comm2)?;
            if result.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "result is NULL"));
            }
            result.write(compare_value(c1.comm.compare(&c2.comm)));
            Ok(())
        })
    }
}

/// The MPI constant of a comparison.
pub(crate) fn compare_value(c: tocsin::Compare) -> c_int {
    match c {
        tocsin::Compare::Ident => MPI_IDENT,
        tocsin::Compare::Congruent => MPI_CONGRUENT,
        tocsin::Compare::Similar => MPI_SIMILAR,
        tocsin::Compare::Unequal => MPI_UNEQUAL,
    }
}

/// `MPI_Comm_group`: the group of `comm` (free it with `MPI_Group_free`).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_group(comm: MPI_Comm, group: *mut MPI_Group) -> c_int {
    // SAFETY: the caller's handle; output checked.
    unsafe {
        with_comm("MPI_Comm_group", comm, |c| {
            if group.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "group is NULL"));
            }
            group.write(handle::new_group(c.comm.group()));
            Ok(())
        })
    }
}

/// `MPI_Comm_test_inter`: false (tocsin has intracommunicators only).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_test_inter(comm: MPI_Comm, flag: *mut c_int) -> c_int {
    // SAFETY: the caller's handle; output checked.
    unsafe {
        with_comm("MPI_Comm_test_inter", comm, |_| {
            if flag.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "flag is NULL"));
            }
            flag.write(0);
            Ok(())
        })
    }
}

/// `MPI_Comm_get_parent`: MPI_COMM_NULL (no dynamic processes).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_get_parent(parent: *mut MPI_Comm) -> c_int {
    if parent.is_null() {
        return raise(
            "MPI_Comm_get_parent",
            None,
            MpiErr::new(MPI_ERR_ARG, "parent is NULL"),
        );
    }
    // SAFETY: non-null pointer from the caller.
    unsafe { parent.write(MPI_COMM_NULL as MPI_Comm) };
    MPI_SUCCESS
}

/// `MPI_Comm_set_name`: names the communicator (at most MPI_MAX_OBJECT_NAME - 1 bytes kept).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_set_name(comm: MPI_Comm, comm_name: *const c_char) -> c_int {
    // SAFETY: the caller's handle; the name is a NUL-terminated string (checked non-null).
    unsafe {
        with_comm("MPI_Comm_set_name", comm, |c| {
            if comm_name.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "comm_name is NULL"));
            }
            c.comm
                .set_name(&CStr::from_ptr(comm_name).to_string_lossy());
            Ok(())
        })
    }
}

/// `MPI_Comm_get_name`: the name ("MPI_COMM_WORLD", "MPI_COMM_SELF", or what was set;
/// empty by default).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_get_name(
    comm: MPI_Comm,
    comm_name: *mut c_char,
    resultlen: *mut c_int,
) -> c_int {
    // SAFETY: the caller's handle; MPI_MAX_OBJECT_NAME bytes at `comm_name`.
    unsafe {
        with_comm("MPI_Comm_get_name", comm, |c| {
            if crate::init::c_string_out(
                &c.comm.name(),
                comm_name,
                resultlen,
                MPI_MAX_OBJECT_NAME as usize,
            ) {
                Ok(())
            } else {
                Err(MpiErr::new(MPI_ERR_ARG, "comm_name is NULL"))
            }
        })
    }
}

/// `MPI_Comm_set_info`: hints accepted and ignored. Errors: `MPI_ERR_COMM`, `MPI_ERR_INFO`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_set_info(comm: MPI_Comm, info: MPI_Info) -> c_int {
    // SAFETY: the caller's handles.
    unsafe {
        with_comm("MPI_Comm_set_info", comm, |_| {
            handle::info(info)?;
            Ok(())
        })
    }
}

/// `MPI_Comm_get_info`: a new, empty info object (no hints in use).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Comm_get_info(comm: MPI_Comm, info_used: *mut MPI_Info) -> c_int {
    // SAFETY: the caller's handle; output checked.
    unsafe {
        with_comm("MPI_Comm_get_info", comm, |_| {
            if info_used.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "info_used is NULL"));
            }
            info_used.write(handle::new_info(Vec::new()));
            Ok(())
        })
    }
}
