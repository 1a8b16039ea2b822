//! Reduction operations of the C API (MPI-4.1 §6.9): `MPI_Op_create`, `MPI_Op_free`,
//! `MPI_Op_commutative`, `MPI_Reduce_local`, and the mapping of an (operation, datatype,
//! count) triple to what tocsin's engine reduces: a [`tocsin::Elem`], a number of elements
//! and where they start ([`reduction`]).
//!
//! ## Datatypes of reductions
//! A predefined datatype reduces as its basic kind: `MPI_CHAR`, `MPI_SIGNED_CHAR`,
//! `MPI_INT8_T` as `i8` (OSU reduces `MPI_CHAR` with `MPI_SUM`); `MPI_UNSIGNED_CHAR`,
//! `MPI_UINT8_T` as `u8`; `MPI_BYTE` as `u8` for the bitwise operations only; integers of
//! every width, `float`, `double`; `MPI_C_BOOL` and `MPI_LOGICAL1` as bool, the wider Fortran
//! logicals as integers of their size (logical operations only); the C complex types; the
//! pair types `MPI_FLOAT_INT`, `MPI_DOUBLE_INT`, `MPI_LONG_INT`, `MPI_2INT`, `MPI_SHORT_INT`,
//! `MPI_2INTEGER` for `MPI_MINLOC`/`MPI_MAXLOC`. A derived datatype whose basic elements all
//! have one kind and lie back to back (e.g. a contiguous of `MPI_INT`) reduces as `count ×`
//! its elements of that kind. Anything else fails with `MPI_ERR_TYPE` (non-contiguous or
//! mixed types) or `MPI_ERR_OP` (an operation not defined on the kind, or a kind tocsin has
//! no arithmetic for: `long double` is x87 80-bit extended precision, which Rust cannot
//! compute with; `REAL*2`, `REAL*16`, `INTEGER*16`).
//!
//! ## User operations
//! `MPI_Op_create` keeps the C function; each collective wraps it into a
//! `tocsin::Op::User` closure that knows the call's datatype: it is called with
//! `len` = bytes / extent of the datatype and the original datatype handle (when the engine
//! splits a vector inside one derived element, with the predefined type it is made of). The
//! engine runs user operations only in ordinary context (the caller's thread in MPI calls,
//! or the progress thread), never in a signal or interrupt handler.

use std::ffi::{c_int, c_void};
use std::sync::Arc;

use tocsin::{Elem, Op};

use crate::abi::*;
use crate::datatype::{self, Basic, Combiner, Datatype};
use crate::error::{finish, MpiErr, MpiResult};
use crate::handle::{self, OpObj};

/// What the engine reduces for one call: `count` elements of `elem` starting `off` bytes
/// after the user's buffer address, with `op`.
#[derive(Clone, Debug)]
pub struct Red {
    /// Element type.
    pub elem: Elem,
    /// Elements.
    pub count: usize,
    /// Byte offset of the first element from the buffer address (the type's true lb).
    pub off: isize,
    /// The operation (a user one bound to the call's datatype).
    pub op: Op,
}

impl Red {
    /// Bytes spanned.
    pub fn bytes(&self) -> usize {
        self.count * self.elem.size()
    }
}

/// The `Elem` a predefined operation computes on for basic kind `b`, or why not.
fn elem_for(b: Basic, op: &Op) -> MpiResult<Elem> {
    use Basic as B;
    let logical = matches!(op, Op::Land | Op::Lor | Op::Lxor | Op::Replace | Op::NoOp);
    let bitwise = matches!(op, Op::Band | Op::Bor | Op::Bxor | Op::Replace | Op::NoOp);
    let e = match b {
        B::I8 => Elem::I8,
        B::I16 => Elem::I16,
        B::I32 => Elem::I32,
        B::I64 => Elem::I64,
        B::U8 => Elem::U8,
        B::U16 => Elem::U16,
        B::U32 => Elem::U32,
        B::U64 => Elem::U64,
        B::F32 => Elem::F32,
        B::F64 => Elem::F64,
        B::Bool | B::Logical1 => Elem::Bool,
        B::Logical2 | B::Logical4 | B::Logical8 if logical => match b {
            B::Logical2 => Elem::I16,
            B::Logical4 => Elem::I32,
            _ => Elem::I64,
        },
        B::Byte if bitwise => Elem::U8,
        B::ComplexF32 => Elem::C32,
        B::ComplexF64 => Elem::C64,
        B::FloatInt => Elem::F32I32,
        B::DoubleInt => Elem::F64I32,
        B::LongInt => Elem::I64I32,
        B::TwoInt | B::TwoInteger => Elem::I32I32,
        B::ShortInt => Elem::I16I32,
        B::LongDouble | B::ComplexLongDouble | B::LongDoubleInt => {
            return Err(MpiErr::new(
                MPI_ERR_OP,
                format!(
                    "{} on long double data: tocsin has no 80-bit x87 extended-precision \
                     arithmetic (Rust has no such type); reduce double data, or use a user \
                     operation (MPI_Op_create)",
                    op.name()
                ),
            ))
        }
        _ => {
            return Err(MpiErr::new(
                MPI_ERR_OP,
                format!(
                    "{} is not defined on {b:?} data here (sum/prod: integers, floating point, \
                     complex; min/max: integers, floating point; logical: integers, logicals; \
                     bitwise: integers, MPI_BYTE; minloc/maxloc: MPI_FLOAT_INT, MPI_DOUBLE_INT, \
                     MPI_LONG_INT, MPI_2INT, MPI_SHORT_INT, MPI_2INTEGER)",
                    op.name()
                ),
            ))
        }
    };
    op.check(e).map_err(|m| MpiErr::new(MPI_ERR_OP, m))?;
    Ok(e)
}

/// The predefined handle of a pair kind tocsin reduces.
fn pair_handle(b: Basic) -> Option<usize> {
    Some(match b {
        Basic::FloatInt => MPI_FLOAT_INT,
        Basic::DoubleInt => MPI_DOUBLE_INT,
        Basic::LongInt => MPI_LONG_INT,
        Basic::TwoInt => MPI_2INT,
        Basic::ShortInt => MPI_SHORT_INT,
        Basic::TwoInteger => MPI_2INTEGER,
        _ => return None,
    })
}

/// The handle of the first predefined type `d` is built from.
fn leaf(d: &Datatype) -> Option<(usize, usize)> {
    if let Some(h) = d.handle_value() {
        return Some((h, d.extent().max(1) as usize));
    }
    match d.combiner() {
        Combiner::Named(_) => None,
        Combiner::Dup(o)
        | Combiner::Contiguous { old: o, .. }
        | Combiner::Vector { old: o, .. }
        | Combiner::Hvector { old: o, .. }
        | Combiner::Indexed { old: o, .. }
        | Combiner::Hindexed { old: o, .. }
        | Combiner::IndexedBlock { old: o, .. }
        | Combiner::HindexedBlock { old: o, .. }
        | Combiner::Resized { old: o, .. } => leaf(o),
        Combiner::Struct { types, .. } => types.first().and_then(|t| leaf(t)),
    }
}

/// `(basic kind, elements of it per datatype element)` if `d`'s data is that many elements
/// of one kind laid out back to back from its true lb, consecutive datatype elements too.
fn homogeneous(d: &Arc<Datatype>) -> Option<(Basic, usize)> {
    let b = d.basic()?;
    if b.size() == 0 || d.size() % b.size() != 0 {
        return None;
    }
    let k = d.size() / b.size();
    if let Some(h) = pair_handle(b) {
        if d.is_predefined() {
            return Some((b, 1));
        }
        let base = datatype::predefined(h)?;
        let c = datatype::contiguous(k as i64, base).ok()?;
        let same = d.extent() == c.extent()
            && d.blocks().len() == c.blocks().len()
            && d.blocks()
                .iter()
                .zip(c.blocks())
                .all(|(x, y)| x.len == y.len && x.disp.checked_sub(d.true_lb()) == Some(y.disp));
        return same.then_some((b, k));
    }
    (d.is_contiguous() && b.extent() == b.size()).then_some((b, k))
}

fn elem_of_size(n: usize) -> Option<Elem> {
    Some(match n {
        1 => Elem::U8,
        2 => Elem::U16,
        4 => Elem::U32,
        8 => Elem::U64,
        16 => Elem::C64,
        _ => return None,
    })
}

/// The C function and commutativity of a user operation handle, `None` for a predefined one.
///
/// # Safety
/// `h` as for [`handle::op`] (checked first).
unsafe fn user_of(h: MPI_Op) -> MpiResult<Option<(MPI_User_function, bool)>> {
    // SAFETY: forwarded; validates the handle.
    let op = unsafe { handle::op(h)? };
    match op {
        Op::User { commutative, .. } => {
            // SAFETY: validated as a live `OpObj` by `handle::op`.
            let f = unsafe { (*(h as *const OpObj)).user };
            Ok(Some((f, commutative)))
        }
        _ => Ok(None),
    }
}

/// Calls the C user function on `inv`/`inout` (aligned copies if either is not 16-aligned).
fn call_user(
    f: unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_int, *mut MPI_Datatype),
    inv: &[u8],
    inout: &mut [u8],
    len: usize,
    dt: usize,
) {
    let mut n = c_int::try_from(len).unwrap_or(c_int::MAX);
    let mut h = dt as MPI_Datatype;
    if (inv.as_ptr() as usize) % 16 == 0 && (inout.as_ptr() as usize) % 16 == 0 {
        // SAFETY: the application's function on `len` elements of its datatype, which the
        // two slices hold (the engine passes whole elements); it reads `inv` only.
        unsafe {
            f(
                inv.as_ptr() as *mut c_void,
                inout.as_mut_ptr() as *mut c_void,
                &mut n,
                &mut h,
            )
        };
        return;
    }
    let words = inout.len().div_ceil(16);
    let mut a = vec![0u128; words];
    let mut b = vec![0u128; words];
    // SAFETY: both vectors have at least `inout.len()` bytes; `inv` is as long as `inout`.
    unsafe {
        std::ptr::copy_nonoverlapping(inv.as_ptr(), a.as_mut_ptr() as *mut u8, inv.len());
        std::ptr::copy_nonoverlapping(inout.as_ptr(), b.as_mut_ptr() as *mut u8, inout.len());
        f(
            a.as_mut_ptr() as *mut c_void,
            b.as_mut_ptr() as *mut c_void,
            &mut n,
            &mut h,
        );
        std::ptr::copy_nonoverlapping(b.as_ptr() as *const u8, inout.as_mut_ptr(), inout.len());
    }
}

/// What the engine reduces for `count` elements of datatype `dth` with operation `oph`.
///
/// # Errors
/// `MPI_ERR_OP` (invalid handle, operation not defined on the type, long double),
/// `MPI_ERR_TYPE` (invalid or uncommitted type, non-contiguous or mixed derived type).
///
/// # Safety
/// Handles as for [`handle::op`] and [`handle::datatype`].
pub unsafe fn reduction(oph: MPI_Op, dth: MPI_Datatype, count: usize) -> MpiResult<Red> {
    // SAFETY: the caller's handles (validated).
    let d = unsafe { handle::comm_datatype(dth)? };
    // SAFETY: as above.
    let user = unsafe { user_of(oph)? };
    // SAFETY: as above (validated by `user_of`).
    let op = unsafe { handle::op(oph)? };
    if d.size() == 0 || count == 0 {
        return Ok(Red {
            elem: Elem::U8,
            count: 0,
            off: 0,
            op: if user.is_some() { op } else { Op::NoOp },
        });
    }
    let layout = homogeneous(d);
    match user {
        None => {
            let Some((b, k)) = layout else {
                return Err(MpiErr::new(
                    MPI_ERR_TYPE,
                    format!(
                        "{} on a datatype that is not contiguous elements of one basic type \
                         (type size {}, extent {}): predefined reductions need a predefined \
                         type or a contiguous derived type of one (pack the data first)",
                        op.name(),
                        d.size(),
                        d.extent()
                    ),
                ));
            };
            let elem = elem_for(b, &op)?;
            Ok(Red {
                elem,
                count: count * k,
                off: d.true_lb(),
                op,
            })
        }
        Some((f, commutative)) => {
            let Some(f) = f else {
                return Err(MpiErr::new(MPI_ERR_OP, "user operation without a function"));
            };
            // The engine's element: the pair itself, else a word of the basic size.
            let (elem, n, off) = match layout {
                Some((b, k)) => match pair_handle(b) {
                    Some(_) => (elem_for(b, &Op::MinLoc)?, count * k, d.true_lb()),
                    None => match elem_of_size(b.size()) {
                        Some(e) => (e, count * k, d.true_lb()),
                        None => {
                            let e = Elem::C64;
                            (e, count * d.size() / e.size(), d.true_lb())
                        }
                    },
                },
                None => match elem_of_size(d.size()) {
                    Some(e) if d.is_contiguous() => (e, count, d.true_lb()),
                    _ => {
                        return Err(MpiErr::new(
                            MPI_ERR_TYPE,
                            format!(
                                "user operation on a non-contiguous or mixed-type datatype \
                                 (size {}, extent {}): not supported by tocsin's engine, which \
                                 reduces vectors of fixed-size elements",
                                d.size(),
                                d.extent()
                            ),
                        ))
                    }
                },
            };
            let ext = (elem.size() * n / count).max(1);
            let (leaf_h, leaf_ext) = leaf(d).unwrap_or((dth as usize, ext));
            let dh = dth as usize;
            let op = Op::User {
                f: Arc::new(move |a: &[u8], b: &mut [u8]| {
                    let (len, h) = if b.len() % ext == 0 {
                        (b.len() / ext, dh)
                    } else {
                        (b.len() / leaf_ext, leaf_h)
                    };
                    call_user(f, a, b, len, h);
                }),
                commutative,
            };
            Ok(Red {
                elem,
                count: n,
                off,
                op,
            })
        }
    }
}

/// `MPI_Op_create(user_fn, commute, op)`: a user reduction operation. `user_fn(invec,
/// inoutvec, len, datatype)` must set `inoutvec[i] = invec[i] ⊕ inoutvec[i]`; it is called
/// with the datatype of the collective. Non-commutative operations are applied in rank
/// order. Errors: `MPI_ERR_ARG` (NULL function or output).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Op_create(
    user_fn: MPI_User_function,
    commute: c_int,
    op: *mut MPI_Op,
) -> c_int {
    let r = (|| {
        handle::state()?;
        let Some(f) = user_fn else {
            return Err(MpiErr::new(MPI_ERR_ARG, "user_fn is NULL"));
        };
        if op.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "op is NULL"));
        }
        // The stored closure (used only if a call cannot bind a datatype): bytes as MPI_BYTE.
        let o = Op::User {
            f: Arc::new(move |a: &[u8], b: &mut [u8]| call_user(f, a, b, b.len(), MPI_BYTE)),
            commutative: commute != 0,
        };
        // SAFETY: non-null `MPI_Op *` from the caller.
        unsafe { op.write(handle::new_op(o, user_fn)) };
        Ok(())
    })();
    finish("MPI_Op_create", None, r)
}

/// `MPI_Op_free(op)`: frees a user operation and sets the handle to MPI_OP_NULL (pending
/// collectives keep their own reference). Errors: `MPI_ERR_OP` for predefined operations.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Op_free(op: *mut MPI_Op) -> c_int {
    let r = (|| {
        handle::state()?;
        if op.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "op is NULL"));
        }
        // SAFETY: non-null handle pointer; the handle is validated before being freed.
        unsafe {
            handle::free_op(*op)?;
            op.write(MPI_OP_NULL as MPI_Op);
        }
        Ok(())
    })();
    finish("MPI_Op_free", None, r)
}

/// `MPI_Op_commutative(op, commute)`: 1 for predefined operations and commutative user ones.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Op_commutative(op: MPI_Op, commute: *mut c_int) -> c_int {
    let r = (|| {
        // SAFETY: the caller's handle (validated).
        let o = unsafe { handle::op(op)? };
        if commute.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "commute is NULL"));
        }
        // SAFETY: non-null `int *`.
        unsafe { commute.write(c_int::from(o.commutative())) };
        Ok(())
    })();
    finish("MPI_Op_commutative", None, r)
}

unsafe fn reduce_local(
    inbuf: *const c_void,
    inoutbuf: *mut c_void,
    count: i64,
    datatype: MPI_Datatype,
    op: MPI_Op,
) -> MpiResult<()> {
    handle::state()?;
    let n = usize::try_from(count)
        .map_err(|_| MpiErr::new(MPI_ERR_COUNT, format!("count {count} is negative")))?;
    // SAFETY: the caller's handles.
    let red = unsafe { reduction(op, datatype, n)? };
    if red.count == 0 {
        return Ok(());
    }
    let bytes = red.bytes();
    // SAFETY: MPI's contract: both buffers hold `count` elements of `datatype`, whose data
    // spans `bytes` from `off` (contiguous layout checked by `reduction`).
    unsafe {
        let a = (inbuf as *const u8).offset(red.off);
        let b = (inoutbuf as *mut u8).offset(red.off);
        match &red.op {
            Op::User { f, .. } => f(
                std::slice::from_raw_parts(a, bytes),
                std::slice::from_raw_parts_mut(b, bytes),
            ),
            o => {
                tocsin::coll::op::apply(o, red.elem, a, b, red.count);
            }
        }
    }
    Ok(())
}

/// `MPI_Reduce_local(inbuf, inoutbuf, count, datatype, op)`: `inoutbuf = inbuf ⊕ inoutbuf`
/// element-wise, locally. Errors: `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_OP`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Reduce_local(
    inbuf: *const c_void,
    inoutbuf: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    op: MPI_Op,
) -> c_int {
    // SAFETY: the caller's buffers and handles.
    let r = unsafe { reduce_local(inbuf, inoutbuf, count.into(), datatype, op) };
    finish("MPI_Reduce_local", None, r)
}

/// `MPI_Reduce_local_c`: as `MPI_Reduce_local` with an `MPI_Count` count.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Reduce_local_c(
    inbuf: *const c_void,
    inoutbuf: *mut c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    op: MPI_Op,
) -> c_int {
    // SAFETY: the caller's buffers and handles.
    let r = unsafe { reduce_local(inbuf, inoutbuf, count, datatype, op) };
    finish("MPI_Reduce_local_c", None, r)
}
