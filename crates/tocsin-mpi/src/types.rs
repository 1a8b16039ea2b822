//! The datatype functions of the C API (MPI-4.1/5.0 chapter 5): the derived-type
//! constructors (`MPI_Type_contiguous` … `MPI_Type_create_resized`, `MPI_Type_dup`, with
//! their `_c` forms), commit and free, the queries (size, extent, true extent, name,
//! envelope), `MPI_Pack` / `MPI_Unpack` / `MPI_Pack_size`, `MPI_Get_address`,
//! `MPI_Aint_add`, `MPI_Aint_diff`.
//!
//! Owns only the C glue: argument decoding, handle creation, error classes. The type maps
//! themselves are [`crate::datatype`]'s. Errors go to MPI_COMM_WORLD's error handler (no
//! communicator is involved), except `MPI_Pack`/`MPI_Unpack`/`MPI_Pack_size`, which use
//! their `comm` argument's.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::Arc;

use crate::abi::*;
use crate::datatype::{self, pack, Combiner, Datatype, DtypeError};
use crate::error::{finish, with_comm, MpiErr, MpiResult};
use crate::handle;

/// Maps a datatype-engine error to its MPI error class.
pub(crate) fn dt_err(e: DtypeError) -> MpiErr {
    let class = match &e {
        DtypeError::NegativeCount { what: "count", .. } => MPI_ERR_COUNT,
        DtypeError::NegativeCount { .. } | DtypeError::LengthMismatch => MPI_ERR_ARG,
        DtypeError::Overflow | DtypeError::TooComplex => MPI_ERR_TYPE,
        DtypeError::Truncated { .. } => MPI_ERR_TRUNCATE,
    };
    MpiErr::new(class, e.to_string())
}

/// The datatype behind `h` (committed or not: constructors and queries accept both).
unsafe fn dt<'a>(h: MPI_Datatype) -> MpiResult<&'a Arc<Datatype>> {
    // SAFETY: forwarded (the caller's handle).
    unsafe { handle::datatype(h) }.map(|(d, _)| d)
}

/// Writes a new handle for `d` to `out`.
unsafe fn out_type(out: *mut MPI_Datatype, d: Arc<Datatype>) -> MpiResult<()> {
    if out.is_null() {
        return Err(MpiErr::new(MPI_ERR_ARG, "newtype is NULL"));
    }
    // SAFETY: non-null `MPI_Datatype *` from the caller.
    unsafe { out.write(handle::new_datatype(d)) };
    Ok(())
}

/// Writes `v` through a non-null pointer, else `MPI_ERR_ARG` naming `what`.
unsafe fn put<T>(p: *mut T, v: T, what: &str) -> MpiResult<()> {
    if p.is_null() {
        return Err(MpiErr::new(MPI_ERR_ARG, format!("{what} is NULL")));
    }
    // SAFETY: non-null, writable by the caller's contract.
    unsafe { p.write(v) };
    Ok(())
}

/// Reads `n` values of an argument array (empty when `n` is 0, even for NULL).
unsafe fn arr<'a, T>(p: *const T, n: usize, what: &str) -> MpiResult<&'a [T]> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(MpiErr::new(MPI_ERR_ARG, format!("{what} is NULL")));
    }
    // SAFETY: the caller passes an array of `n` elements (MPI's contract).
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// A count argument that must not be negative.
fn cnt(count: i64) -> MpiResult<usize> {
    usize::try_from(count)
        .map_err(|_| MpiErr::new(MPI_ERR_COUNT, format!("count {count} is negative")))
}

/// Runs a datatype function body with errors routed to MPI_COMM_WORLD's handler.
fn run(func: &str, f: impl FnOnce() -> MpiResult<()>) -> c_int {
    if let Err(e) = handle::state() {
        return finish(func, None, Err(e));
    }
    finish(func, None, f())
}

fn to_isize(v: i64) -> MpiResult<isize> {
    isize::try_from(v).map_err(|_| MpiErr::new(MPI_ERR_ARG, format!("{v} does not fit an address")))
}

/// `MPI_Type_contiguous(count, oldtype, newtype)`: `count` consecutive copies of `oldtype`.
/// Errors: `MPI_ERR_COUNT` (negative count), `MPI_ERR_TYPE` (invalid old type).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_contiguous(
    count: c_int,
    oldtype: MPI_Datatype,
    newtype: *mut MPI_Datatype,
) -> c_int {
    // SAFETY: the caller's handles and pointers.
    unsafe { PMPI_Type_contiguous_c(count as MPI_Count, oldtype, newtype) }
}

/// `MPI_Type_contiguous_c`: as `MPI_Type_contiguous` with an `MPI_Count` count.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_contiguous_c(
    count: MPI_Count,
    oldtype: MPI_Datatype,
    newtype: *mut MPI_Datatype,
) -> c_int {
    run("MPI_Type_contiguous", || {
        // SAFETY: the caller's handle and out pointer.
        unsafe {
            let d = datatype::contiguous(count, dt(oldtype)?).map_err(dt_err)?;
            out_type(newtype, d)
        }
    })
}

/// `MPI_Type_vector(count, blocklength, stride, oldtype, newtype)`: `count` blocks of
/// `blocklength` elements, block starts `stride` extents of `oldtype` apart.
/// Errors: `MPI_ERR_COUNT`, `MPI_ERR_ARG` (negative block length), `MPI_ERR_TYPE`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_vector(
    count: c_int,
    blocklength: c_int,
    stride: c_int,
    oldtype: MPI_Datatype,
    newtype: *mut MPI_Datatype,
) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        PMPI_Type_vector_c(
            count.into(),
            blocklength.into(),
            stride.into(),
            oldtype,
            newtype,
        )
    }
}

/// `MPI_Type_vector_c`: as `MPI_Type_vector` with `MPI_Count` arguments.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_vector_c(
    count: MPI_Count,
    blocklength: MPI_Count,
    stride: MPI_Count,
    oldtype: MPI_Datatype,
    newtype: *mut MPI_Datatype,
) -> c_int {
    run("MPI_Type_vector", || {
        // SAFETY: the caller's handle and out pointer.
        unsafe {
            let d = datatype::vector(count, blocklength, stride, dt(oldtype)?).map_err(dt_err)?;
            out_type(newtype, d)
        }
    })
}

/// `MPI_Type_create_hvector`: as `MPI_Type_vector` with the stride in bytes.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_create_hvector(
    count: c_int,
    blocklength: c_int,
    stride: MPI_Aint,
    oldtype: MPI_Datatype,
    newtype: *mut MPI_Datatype,
) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        PMPI_Type_create_hvector_c(
            count.into(),
            blocklength.into(),
            stride as MPI_Count,
            oldtype,
            newtype,
        )
    }
}

/// `MPI_Type_create_hvector_c`: as `MPI_Type_create_hvector` with `MPI_Count` arguments.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_create_hvector_c(
    count: MPI_Count,
    blocklength: MPI_Count,
    stride: MPI_Count,
    oldtype: MPI_Datatype,
    newtype: *mut MPI_Datatype,
) -> c_int {
    run("MPI_Type_create_hvector", || {
        // SAFETY: the caller's handle and out pointer.
        unsafe {
            let d = datatype::hvector(count, blocklength, to_isize(stride)?, dt(oldtype)?)
                .map_err(dt_err)?;
            out_type(newtype, d)
        }
    })
}

/// `MPI_Type_indexed(count, blocklengths, displacements, oldtype, newtype)`: blocks at
/// displacements in extents of `oldtype`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_indexed(
    count: c_int,
    array_of_blocklengths: *const c_int,
    array_of_displacements: *const c_int,
    oldtype: MPI_Datatype,
    newtype: *mut MPI_Datatype,
) -> c_int {
    run("MPI_Type_indexed", || {
        let n = cnt(count.into())?;
        // SAFETY: arrays of `count` ints (the caller's contract); handles checked.
        unsafe {
            let bl: Vec<i64> = arr(array_of_blocklengths, n, "array_of_blocklengths")?
                .iter()
                .map(|&v| v.into())
                .collect();
            let dp: Vec<i64> = arr(array_of_displacements, n, "array_of_displacements")?
                .iter()
                .map(|&v| v.into())
                .collect();
            out_type(
                newtype,
                datatype::indexed(&bl, &dp, dt(oldtype)?).map_err(dt_err)?,
            )
        }
    })
}

/// `MPI_Type_indexed_c`: as `MPI_Type_indexed` with `MPI_Count` arrays.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_indexed_c(
    count: MPI_Count,
    array_of_blocklengths: *const MPI_Count,
    array_of_displacements: *const MPI_Count,
    oldtype: MPI_Datatype,
    newtype: *mut MPI_Datatype,
) -> c_int {
    run("MPI_Type_indexed_c", || {
        let n = cnt(count)?;
        // SAFETY: arrays of `count` values (the caller's contract); handles checked.
        unsafe {
            let bl = arr(array_of_blocklengths, n, "array_of_blocklengths")?;
            let dp = arr(array_of_displacements, n, "array_of_displacements")?;
            out_type(
                newtype,
                datatype::indexed(bl, dp, dt(oldtype)?).map_err(dt_err)?,
            )
        }
    })
}

/// `MPI_Type_create_hindexed`: as `MPI_Type_indexed` with displacements in bytes.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_create_hindexed(
    count: c_int,
    array_of_blocklengths: *const c_int,
    array_of_displacements: *const MPI_Aint,
    oldtype: MPI_Datatype,
    newtype: *mut MPI_Datatype,
) -> c_int {
    run("MPI_Type_create_hindexed", || {
        let n = cnt(count.into())?;
        // SAFETY: arrays of `count` values (the caller's contract); handles checked.
        unsafe {
            let bl: Vec<i64> = arr(array_of_blocklengths, n, "array_of_blocklengths")?
                .iter()
                .map(|&v| v.into())
                .collect();
            let dp = arr(array_of_displacements, n, "array_of_displacements")?;
            out_type(
                newtype,
                datatype::hindexed(&bl, dp, dt(oldtype)?).map_err(dt_err)?,
            )
        }
    })
}

/// `MPI_Type_create_hindexed_c`: as `MPI_Type_create_hindexed` with `MPI_Count` arrays.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_create_hindexed_c(
    count: MPI_Count,
    array_of_blocklengths: *const MPI_Count,
    array_of_displacements: *const MPI_Count,
    oldtype: MPI_Datatype,
    newtype: *mut MPI_Datatype,
) -> c_int {
    run("MPI_Type_create_hindexed_c", || {
        let n = cnt(count)?;
        // SAFETY: arrays of `count` values (the caller's contract); handles checked.
        unsafe {
            let bl = arr(array_of_blocklengths, n, "array_of_blocklengths")?;
            let dp = arr(array_of_displacements, n, "array_of_displacements")?
                .iter()
                .map(|&v| to_isize(v))
                .collect::<MpiResult<Vec<isize>>>()?;
            out_type(
                newtype,
                datatype::hindexed(bl, &dp, dt(oldtype)?).map_err(dt_err)?,
            )
        }
    })
}

/// `MPI_Type_create_indexed_block`: blocks of equal length at displacements in extents.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_create_indexed_block(
    count: c_int,
    blocklength: c_int,
    array_of_displacements: *const c_int,
    oldtype: MPI_Datatype,
    newtype: *mut MPI_Datatype,
) -> c_int {
    run("MPI_Type_create_indexed_block", || {
        let n = cnt(count.into())?;
        // SAFETY: an array of `count` ints (the caller's contract); handles checked.
        unsafe {
            let dp: Vec<i64> = arr(array_of_displacements, n, "array_of_displacements")?
                .iter()
                .map(|&v| v.into())
                .collect();
            let d =
                datatype::indexed_block(blocklength.into(), &dp, dt(oldtype)?).map_err(dt_err)?;
            out_type(newtype, d)
        }
    })
}

/// `MPI_Type_create_indexed_block_c`: with `MPI_Count` arguments.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_create_indexed_block_c(
    count: MPI_Count,
    blocklength: MPI_Count,
    array_of_displacements: *const MPI_Count,
    oldtype: MPI_Datatype,
    newtype: *mut MPI_Datatype,
) -> c_int {
    run("MPI_Type_create_indexed_block_c", || {
        let n = cnt(count)?;
        // SAFETY: an array of `count` values (the caller's contract); handles checked.
        unsafe {
            let dp = arr(array_of_displacements, n, "array_of_displacements")?;
            let d = datatype::indexed_block(blocklength, dp, dt(oldtype)?).map_err(dt_err)?;
            out_type(newtype, d)
        }
    })
}

/// `MPI_Type_create_hindexed_block`: blocks of equal length at byte displacements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_create_hindexed_block(
    count: c_int,
    blocklength: c_int,
    array_of_displacements: *const MPI_Aint,
    oldtype: MPI_Datatype,
    newtype: *mut MPI_Datatype,
) -> c_int {
    run("MPI_Type_create_hindexed_block", || {
        let n = cnt(count.into())?;
        // SAFETY: an array of `count` values (the caller's contract); handles checked.
        unsafe {
            let dp = arr(array_of_displacements, n, "array_of_displacements")?;
            let d =
                datatype::hindexed_block(blocklength.into(), dp, dt(oldtype)?).map_err(dt_err)?;
            out_type(newtype, d)
        }
    })
}

/// `MPI_Type_create_hindexed_block_c`: with `MPI_Count` arguments.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_create_hindexed_block_c(
    count: MPI_Count,
    blocklength: MPI_Count,
    array_of_displacements: *const MPI_Count,
    oldtype: MPI_Datatype,
    newtype: *mut MPI_Datatype,
) -> c_int {
    run("MPI_Type_create_hindexed_block_c", || {
        let n = cnt(count)?;
        // SAFETY: an array of `count` values (the caller's contract); handles checked.
        unsafe {
            let dp = arr(array_of_displacements, n, "array_of_displacements")?
                .iter()
                .map(|&v| to_isize(v))
                .collect::<MpiResult<Vec<isize>>>()?;
            let d = datatype::hindexed_block(blocklength, &dp, dt(oldtype)?).map_err(dt_err)?;
            out_type(newtype, d)
        }
    })
}

unsafe fn types_of(types: &[MPI_Datatype]) -> MpiResult<Vec<Arc<Datatype>>> {
    types
        .iter()
        // SAFETY: the caller's handles, checked one by one.
        .map(|&t| unsafe { dt(t) }.cloned())
        .collect()
}

/// `MPI_Type_create_struct(count, blocklengths, displacements, types, newtype)`: blocks of
/// different types at byte displacements; the extent is padded to the largest alignment.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_create_struct(
    count: c_int,
    array_of_blocklengths: *const c_int,
    array_of_displacements: *const MPI_Aint,
    array_of_types: *const MPI_Datatype,
    newtype: *mut MPI_Datatype,
) -> c_int {
    run("MPI_Type_create_struct", || {
        let n = cnt(count.into())?;
        // SAFETY: arrays of `count` values (the caller's contract); handles checked.
        unsafe {
            let bl: Vec<i64> = arr(array_of_blocklengths, n, "array_of_blocklengths")?
                .iter()
                .map(|&v| v.into())
                .collect();
            let dp = arr(array_of_displacements, n, "array_of_displacements")?;
            let ts = types_of(arr(array_of_types, n, "array_of_types")?)?;
            out_type(
                newtype,
                datatype::create_struct(&bl, dp, &ts).map_err(dt_err)?,
            )
        }
    })
}

/// `MPI_Type_create_struct_c`: with `MPI_Count` arrays.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_create_struct_c(
    count: MPI_Count,
    array_of_blocklengths: *const MPI_Count,
    array_of_displacements: *const MPI_Count,
    array_of_types: *const MPI_Datatype,
    newtype: *mut MPI_Datatype,
) -> c_int {
    run("MPI_Type_create_struct_c", || {
        let n = cnt(count)?;
        // SAFETY: arrays of `count` values (the caller's contract); handles checked.
        unsafe {
            let bl = arr(array_of_blocklengths, n, "array_of_blocklengths")?;
            let dp = arr(array_of_displacements, n, "array_of_displacements")?
                .iter()
                .map(|&v| to_isize(v))
                .collect::<MpiResult<Vec<isize>>>()?;
            let ts = types_of(arr(array_of_types, n, "array_of_types")?)?;
            out_type(
                newtype,
                datatype::create_struct(bl, &dp, &ts).map_err(dt_err)?,
            )
        }
    })
}

/// `MPI_Type_create_resized(oldtype, lb, extent, newtype)`: the same data with the lower
/// bound and extent given.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_create_resized(
    oldtype: MPI_Datatype,
    lb: MPI_Aint,
    extent: MPI_Aint,
    newtype: *mut MPI_Datatype,
) -> c_int {
    run("MPI_Type_create_resized", || {
        // SAFETY: the caller's handle and out pointer.
        unsafe {
            out_type(
                newtype,
                datatype::resized(dt(oldtype)?, lb, extent).map_err(dt_err)?,
            )
        }
    })
}

/// `MPI_Type_create_resized_c`: with `MPI_Count` bounds.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_create_resized_c(
    oldtype: MPI_Datatype,
    lb: MPI_Count,
    extent: MPI_Count,
    newtype: *mut MPI_Datatype,
) -> c_int {
    run("MPI_Type_create_resized_c", || {
        let (lb, ext) = (to_isize(lb)?, to_isize(extent)?);
        // SAFETY: the caller's handle and out pointer.
        unsafe {
            out_type(
                newtype,
                datatype::resized(dt(oldtype)?, lb, ext).map_err(dt_err)?,
            )
        }
    })
}

/// `MPI_Type_dup(oldtype, newtype)`: a new handle for the same type map (committed if the
/// old one is, as the standard requires).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_dup(oldtype: MPI_Datatype, newtype: *mut MPI_Datatype) -> c_int {
    run("MPI_Type_dup", || {
        // SAFETY: the caller's handle and out pointer.
        unsafe {
            let (old, committed) = handle::datatype(oldtype)?;
            let d = datatype::dup(old).map_err(dt_err)?;
            out_type(newtype, d)?;
            if committed {
                handle::commit_datatype(*newtype)?;
            }
            Ok(())
        }
    })
}

/// `MPI_Type_commit(datatype)`: makes a type usable in communication (predefined types
/// already are; no-op for them).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_commit(datatype: *mut MPI_Datatype) -> c_int {
    run("MPI_Type_commit", || {
        if datatype.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "datatype is NULL"));
        }
        // SAFETY: non-null handle pointer; the handle is checked.
        unsafe { handle::commit_datatype(*datatype) }
    })
}

/// `MPI_Type_free(datatype)`: frees a derived type and sets the handle to
/// MPI_DATATYPE_NULL. Types built from it and pending operations are unaffected (they hold
/// the type map). Errors: `MPI_ERR_TYPE` for predefined types.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_free(datatype: *mut MPI_Datatype) -> c_int {
    run("MPI_Type_free", || {
        if datatype.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "datatype is NULL"));
        }
        // SAFETY: non-null handle pointer; the handle is checked before being freed.
        unsafe {
            handle::free_datatype(*datatype)?;
            datatype.write(MPI_DATATYPE_NULL as MPI_Datatype);
        }
        Ok(())
    })
}

/// `MPI_Type_size(datatype, size)`: bytes of data in one element; `MPI_UNDEFINED` if it
/// does not fit an int.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_size(datatype: MPI_Datatype, size: *mut c_int) -> c_int {
    run("MPI_Type_size", || {
        // SAFETY: the caller's handle and out pointer.
        unsafe {
            let s = dt(datatype)?.size();
            put(size, c_int::try_from(s).unwrap_or(MPI_UNDEFINED), "size")
        }
    })
}

/// `MPI_Type_size_c`: as `MPI_Type_size`, `MPI_Count` result.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_size_c(datatype: MPI_Datatype, size: *mut MPI_Count) -> c_int {
    run("MPI_Type_size_c", || {
        // SAFETY: the caller's handle and out pointer.
        unsafe { put(size, dt(datatype)?.size() as MPI_Count, "size") }
    })
}

/// `MPI_Type_size_x`: as `MPI_Type_size_c`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_size_x(datatype: MPI_Datatype, size: *mut MPI_Count) -> c_int {
    run("MPI_Type_size_x", || {
        // SAFETY: the caller's handle and out pointer.
        unsafe { put(size, dt(datatype)?.size() as MPI_Count, "size") }
    })
}

unsafe fn extent2<T>(
    datatype: MPI_Datatype,
    a: *mut T,
    b: *mut T,
    truly: bool,
    conv: impl Fn(isize) -> T,
) -> MpiResult<()> {
    // SAFETY: the caller's handle and out pointers.
    unsafe {
        let d = dt(datatype)?;
        let (lb, ext) = if truly {
            (d.true_lb(), d.true_extent())
        } else {
            (d.lb(), d.extent())
        };
        put(a, conv(lb), "lb")?;
        put(b, conv(ext), "extent")
    }
}

/// `MPI_Type_get_extent(datatype, lb, extent)`: lower bound and extent in bytes.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_get_extent(
    datatype: MPI_Datatype,
    lb: *mut MPI_Aint,
    extent: *mut MPI_Aint,
) -> c_int {
    // SAFETY: the caller's handle and pointers.
    run("MPI_Type_get_extent", || unsafe {
        extent2(datatype, lb, extent, false, |v| v)
    })
}

/// `MPI_Type_get_extent_c`: with `MPI_Count` results.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_get_extent_c(
    datatype: MPI_Datatype,
    lb: *mut MPI_Count,
    extent: *mut MPI_Count,
) -> c_int {
    // SAFETY: the caller's handle and pointers.
    run("MPI_Type_get_extent_c", || unsafe {
        extent2(datatype, lb, extent, false, |v| v as MPI_Count)
    })
}

/// `MPI_Type_get_extent_x`: as `MPI_Type_get_extent_c`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_get_extent_x(
    datatype: MPI_Datatype,
    lb: *mut MPI_Count,
    extent: *mut MPI_Count,
) -> c_int {
    // SAFETY: the caller's handle and pointers.
    run("MPI_Type_get_extent_x", || unsafe {
        extent2(datatype, lb, extent, false, |v| v as MPI_Count)
    })
}

/// `MPI_Type_get_true_extent(datatype, true_lb, true_extent)`: the bounds of the data bytes,
/// ignoring resizing.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_get_true_extent(
    datatype: MPI_Datatype,
    true_lb: *mut MPI_Aint,
    true_extent: *mut MPI_Aint,
) -> c_int {
    // SAFETY: the caller's handle and pointers.
    run("MPI_Type_get_true_extent", || unsafe {
        extent2(datatype, true_lb, true_extent, true, |v| v)
    })
}

/// `MPI_Type_get_true_extent_c`: with `MPI_Count` results.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_get_true_extent_c(
    datatype: MPI_Datatype,
    true_lb: *mut MPI_Count,
    true_extent: *mut MPI_Count,
) -> c_int {
    // SAFETY: the caller's handle and pointers.
    run("MPI_Type_get_true_extent_c", || unsafe {
        extent2(datatype, true_lb, true_extent, true, |v| v as MPI_Count)
    })
}

/// `MPI_Type_get_true_extent_x`: as `MPI_Type_get_true_extent_c`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_get_true_extent_x(
    datatype: MPI_Datatype,
    true_lb: *mut MPI_Count,
    true_extent: *mut MPI_Count,
) -> c_int {
    // SAFETY: the caller's handle and pointers.
    run("MPI_Type_get_true_extent_x", || unsafe {
        extent2(datatype, true_lb, true_extent, true, |v| v as MPI_Count)
    })
}

/// `MPI_Type_get_name(datatype, type_name, resultlen)`: the name (`"MPI_CHAR"` for
/// MPI_CHAR…; empty for an unnamed derived type). `type_name` has room for
/// `MPI_MAX_OBJECT_NAME` bytes.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_get_name(
    datatype: MPI_Datatype,
    type_name: *mut c_char,
    resultlen: *mut c_int,
) -> c_int {
    run("MPI_Type_get_name", || {
        // SAFETY: the caller's handle; `type_name` has MPI_MAX_OBJECT_NAME bytes.
        unsafe {
            let name = dt(datatype)?.name();
            if !crate::init::c_string_out(&name, type_name, resultlen, MPI_MAX_OBJECT_NAME as usize)
            {
                return Err(MpiErr::new(MPI_ERR_ARG, "type_name is NULL"));
            }
        }
        Ok(())
    })
}

/// `MPI_Type_set_name(datatype, type_name)`: names a type (predefined ones too); longer
/// than `MPI_MAX_OBJECT_NAME - 1` bytes is truncated.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_set_name(
    datatype: MPI_Datatype,
    type_name: *const c_char,
) -> c_int {
    run("MPI_Type_set_name", || {
        if type_name.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "type_name is NULL"));
        }
        // SAFETY: the caller's handle; `type_name` is a NUL-terminated string.
        unsafe {
            let d = dt(datatype)?;
            d.set_name(&CStr::from_ptr(type_name).to_string_lossy());
        }
        Ok(())
    })
}

/// (integers, addresses, datatypes) of a combiner, as `MPI_Type_get_envelope` counts them.
fn envelope(c: &Combiner) -> (usize, usize, usize) {
    match c {
        Combiner::Named(_) => (0, 0, 0),
        Combiner::Dup(_) => (0, 0, 1),
        Combiner::Contiguous { .. } => (1, 0, 1),
        Combiner::Vector { .. } => (3, 0, 1),
        Combiner::Hvector { .. } => (2, 1, 1),
        Combiner::Indexed { blocklengths, .. } => (2 * blocklengths.len() + 1, 0, 1),
        Combiner::Hindexed { blocklengths, .. } => (blocklengths.len() + 1, blocklengths.len(), 1),
        Combiner::IndexedBlock { displacements, .. } => (displacements.len() + 2, 0, 1),
        Combiner::HindexedBlock { displacements, .. } => (2, displacements.len(), 1),
        Combiner::Struct { blocklengths, .. } => (
            blocklengths.len() + 1,
            blocklengths.len(),
            blocklengths.len(),
        ),
        Combiner::Resized { .. } => (0, 2, 1),
    }
}

/// `MPI_Type_get_envelope(datatype, num_integers, num_addresses, num_datatypes, combiner)`:
/// how the type was built (`MPI_COMBINER_NAMED` for predefined types) and how many
/// arguments `MPI_Type_get_contents` would return (which is not implemented).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_get_envelope(
    datatype: MPI_Datatype,
    num_integers: *mut c_int,
    num_addresses: *mut c_int,
    num_datatypes: *mut c_int,
    combiner: *mut c_int,
) -> c_int {
    run("MPI_Type_get_envelope", || {
        // SAFETY: the caller's handle and out pointers.
        unsafe {
            let d = dt(datatype)?;
            let (i, a, t) = envelope(d.combiner());
            let ci = |v: usize| c_int::try_from(v).unwrap_or(c_int::MAX);
            put(num_integers, ci(i), "num_integers")?;
            put(num_addresses, ci(a), "num_addresses")?;
            put(num_datatypes, ci(t), "num_datatypes")?;
            put(combiner, d.combiner().code(), "combiner")
        }
    })
}

/// `MPI_Type_get_envelope_c`: as `MPI_Type_get_envelope`; no large counts are used.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Type_get_envelope_c(
    datatype: MPI_Datatype,
    num_integers: *mut MPI_Count,
    num_addresses: *mut MPI_Count,
    num_large_counts: *mut MPI_Count,
    num_datatypes: *mut MPI_Count,
    combiner: *mut c_int,
) -> c_int {
    run("MPI_Type_get_envelope_c", || {
        // SAFETY: the caller's handle and out pointers.
        unsafe {
            let d = dt(datatype)?;
            let (i, a, t) = envelope(d.combiner());
            put(num_integers, i as MPI_Count, "num_integers")?;
            put(num_addresses, a as MPI_Count, "num_addresses")?;
            put(num_large_counts, 0, "num_large_counts")?;
            put(num_datatypes, t as MPI_Count, "num_datatypes")?;
            put(combiner, d.combiner().code(), "combiner")
        }
    })
}

unsafe fn do_pack(
    inbuf: *const c_void,
    incount: i64,
    datatype: MPI_Datatype,
    outbuf: *mut c_void,
    outsize: i64,
    position: &mut usize,
) -> MpiResult<()> {
    let n = cnt(incount)?;
    let size = usize::try_from(outsize)
        .map_err(|_| MpiErr::new(MPI_ERR_ARG, format!("outsize {outsize} is negative")))?;
    // SAFETY: the caller's handle; `outbuf` has `outsize` bytes and `inbuf` holds `incount`
    // elements (MPI's contract).
    unsafe {
        let d = handle::comm_datatype(datatype)?;
        if outbuf.is_null() && size > 0 {
            return Err(MpiErr::new(MPI_ERR_ARG, "outbuf is NULL"));
        }
        let out: &mut [u8] = if size == 0 {
            &mut []
        } else {
            std::slice::from_raw_parts_mut(outbuf as *mut u8, size)
        };
        pack::pack_at(d, n, inbuf as *const u8, out, position).map_err(dt_err)
    }
}

/// `MPI_Pack(inbuf, incount, datatype, outbuf, outsize, position, comm)`: appends the data
/// of `incount` elements at `outbuf + *position` (native representation: the data bytes in
/// type-map order) and advances `*position`. Errors: `MPI_ERR_TRUNCATE` if `outbuf` is too
/// small, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_COMM`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Pack(
    inbuf: *const c_void,
    incount: c_int,
    datatype: MPI_Datatype,
    outbuf: *mut c_void,
    outsize: c_int,
    position: *mut c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's handles and buffers.
    unsafe {
        with_comm("MPI_Pack", comm, |_| {
            if position.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "position is NULL"));
            }
            let mut pos = usize::try_from(*position)
                .map_err(|_| MpiErr::new(MPI_ERR_ARG, "position is negative"))?;
            do_pack(
                inbuf,
                incount.into(),
                datatype,
                outbuf,
                outsize.into(),
                &mut pos,
            )?;
            *position = c_int::try_from(pos).map_err(|_| {
                MpiErr::new(MPI_ERR_COUNT, "position overflows int: use MPI_Pack_c")
            })?;
            Ok(())
        })
    }
}

/// `MPI_Pack_c`: as `MPI_Pack` with `MPI_Count` sizes.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Pack_c(
    inbuf: *const c_void,
    incount: MPI_Count,
    datatype: MPI_Datatype,
    outbuf: *mut c_void,
    outsize: MPI_Count,
    position: *mut MPI_Count,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's handles and buffers.
    unsafe {
        with_comm("MPI_Pack_c", comm, |_| {
            if position.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "position is NULL"));
            }
            let mut pos = usize::try_from(*position)
                .map_err(|_| MpiErr::new(MPI_ERR_ARG, "position is negative"))?;
            do_pack(inbuf, incount, datatype, outbuf, outsize, &mut pos)?;
            *position = pos as MPI_Count;
            Ok(())
        })
    }
}

unsafe fn do_unpack(
    inbuf: *const c_void,
    insize: i64,
    position: &mut usize,
    outbuf: *mut c_void,
    outcount: i64,
    datatype: MPI_Datatype,
) -> MpiResult<()> {
    let n = cnt(outcount)?;
    let size = usize::try_from(insize)
        .map_err(|_| MpiErr::new(MPI_ERR_ARG, format!("insize {insize} is negative")))?;
    // SAFETY: the caller's handle; `inbuf` has `insize` bytes and `outbuf` room for
    // `outcount` elements (MPI's contract).
    unsafe {
        let d = handle::comm_datatype(datatype)?;
        if inbuf.is_null() && size > 0 {
            return Err(MpiErr::new(MPI_ERR_ARG, "inbuf is NULL"));
        }
        let inp: &[u8] = if size == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(inbuf as *const u8, size)
        };
        pack::unpack_at(inp, position, d, n, outbuf as *mut u8).map_err(dt_err)
    }
}

/// `MPI_Unpack(inbuf, insize, position, outbuf, outcount, datatype, comm)`: reads
/// `outcount` elements from `inbuf + *position` into `outbuf` and advances `*position`.
/// Errors: `MPI_ERR_TRUNCATE` if `inbuf` holds too few bytes.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Unpack(
    inbuf: *const c_void,
    insize: c_int,
    position: *mut c_int,
    outbuf: *mut c_void,
    outcount: c_int,
    datatype: MPI_Datatype,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's handles and buffers.
    unsafe {
        with_comm("MPI_Unpack", comm, |_| {
            if position.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "position is NULL"));
            }
            let mut pos = usize::try_from(*position)
                .map_err(|_| MpiErr::new(MPI_ERR_ARG, "position is negative"))?;
            do_unpack(
                inbuf,
                insize.into(),
                &mut pos,
                outbuf,
                outcount.into(),
                datatype,
            )?;
            *position = c_int::try_from(pos).unwrap_or(c_int::MAX);
            Ok(())
        })
    }
}

/// `MPI_Unpack_c`: as `MPI_Unpack` with `MPI_Count` sizes.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Unpack_c(
    inbuf: *const c_void,
    insize: MPI_Count,
    position: *mut MPI_Count,
    outbuf: *mut c_void,
    outcount: MPI_Count,
    datatype: MPI_Datatype,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's handles and buffers.
    unsafe {
        with_comm("MPI_Unpack_c", comm, |_| {
            if position.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "position is NULL"));
            }
            let mut pos = usize::try_from(*position)
                .map_err(|_| MpiErr::new(MPI_ERR_ARG, "position is negative"))?;
            do_unpack(inbuf, insize, &mut pos, outbuf, outcount, datatype)?;
            *position = pos as MPI_Count;
            Ok(())
        })
    }
}

/// `MPI_Pack_size(incount, datatype, comm, size)`: an upper bound (here: exactly) of the
/// bytes `MPI_Pack` needs for `incount` elements.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Pack_size(
    incount: c_int,
    datatype: MPI_Datatype,
    comm: MPI_Comm,
    size: *mut c_int,
) -> c_int {
    // SAFETY: the caller's handles and out pointer.
    unsafe {
        with_comm("MPI_Pack_size", comm, |_| {
            let n = cnt(incount.into())?;
            let s = pack::pack_size(handle::comm_datatype(datatype)?, n).map_err(dt_err)?;
            let s = c_int::try_from(s).map_err(|_| {
                MpiErr::new(MPI_ERR_COUNT, "size overflows int: use MPI_Pack_size_c")
            })?;
            put(size, s, "size")
        })
    }
}

/// `MPI_Pack_size_c`: as `MPI_Pack_size` with `MPI_Count`s.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Pack_size_c(
    incount: MPI_Count,
    datatype: MPI_Datatype,
    comm: MPI_Comm,
    size: *mut MPI_Count,
) -> c_int {
    // SAFETY: the caller's handles and out pointer.
    unsafe {
        with_comm("MPI_Pack_size_c", comm, |_| {
            let n = cnt(incount)?;
            let s = pack::pack_size(handle::comm_datatype(datatype)?, n).map_err(dt_err)?;
            put(size, s as MPI_Count, "size")
        })
    }
}

/// `MPI_Get_address(location, address)`: the address of `location` as an `MPI_Aint`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Get_address(
    location: *const c_void,
    address: *mut MPI_Aint,
) -> c_int {
    // SAFETY: the caller's out pointer.
    finish("MPI_Get_address", None, unsafe {
        put(address, location as MPI_Aint, "address")
    })
}

/// `MPI_Aint_add(base, disp)`: `base + disp` (wrapping, as address arithmetic in C).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Aint_add(base: MPI_Aint, disp: MPI_Aint) -> MPI_Aint {
    base.wrapping_add(disp)
}

/// `MPI_Aint_diff(addr1, addr2)`: `addr1 - addr2` (wrapping).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Aint_diff(addr1: MPI_Aint, addr2: MPI_Aint) -> MPI_Aint {
    addr1.wrapping_sub(addr2)
}
