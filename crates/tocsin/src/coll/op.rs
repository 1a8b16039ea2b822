//! Reduction operations: the predefined operations of MPI (MPI-4.1 §6.9.2) on every numeric
//! element type, and user operations.
//!
//! Owns [`Op`], [`Elem`], the [`Reducible`] element types and [`apply`], the element-wise
//! `inout = in ⊕ inout` on raw bytes. It never communicates. `apply` is async-signal-safe
//! for the predefined operations (no allocation, no lock): schedules may run it in an
//! interrupt handler. User operations are never run in a handler (see `progress::coll`).

use std::sync::Arc;

use bytemuck::Pod;

/// The element type of a reduction: what the bytes mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Elem {
    /// `i8` (also MPI's `MPI_CHAR`, `MPI_SIGNED_CHAR`, `MPI_INT8_T`).
    I8,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `u8` (also `MPI_BYTE` for the bitwise operations).
    U8,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `u64`.
    U64,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// C `_Bool`, one byte (logical operations only).
    Bool,
    /// C `float _Complex` (two `f32`): sum and product.
    C32,
    /// C `double _Complex` (two `f64`): sum and product.
    C64,
    /// MINLOC/MAXLOC pair `{float, int}` (`MPI_FLOAT_INT`), 8 bytes.
    F32I32,
    /// `{double, int}` (`MPI_DOUBLE_INT`), 16 bytes with padding.
    F64I32,
    /// `{long, int}` (`MPI_LONG_INT`), 16 bytes with padding.
    I64I32,
    /// `{int, int}` (`MPI_2INT`), 8 bytes.
    I32I32,
    /// `{short, int}` (`MPI_SHORT_INT`), 8 bytes with padding.
    I16I32,
}

impl Elem {
    /// Size of one element, bytes (C layout on x86-64 Linux).
    pub fn size(self) -> usize {
        match self {
            Elem::I8 | Elem::U8 | Elem::Bool => 1,
            Elem::I16 | Elem::U16 => 2,
            Elem::I32 | Elem::U32 | Elem::F32 => 4,
            Elem::I64 | Elem::U64 | Elem::F64 | Elem::C32 => 8,
            Elem::C64 => 16,
            Elem::F32I32 | Elem::I32I32 | Elem::I16I32 => 8,
            Elem::F64I32 | Elem::I64I32 => 16,
        }
    }
}

/// An element type that the predefined operations apply to.
pub trait Reducible: Pod {
    /// Its [`Elem`].
    const ELEM: Elem;
}

macro_rules! reducible {
    ($($t:ty => $e:ident),*) => {$(impl Reducible for $t { const ELEM: Elem = Elem::$e; })*};
}
reducible!(i8 => I8, i16 => I16, i32 => I32, i64 => I64, u8 => U8, u16 => U16, u32 => U32,
    u64 => U64, f32 => F32, f64 => F64);
#[cfg(target_pointer_width = "64")]
reducible!(isize => I64, usize => U64);

/// A user reduction: `f(in, inout)` sets `inout[i] = in[i] ⊕ inout[i]` over the bytes of
/// whole elements (both slices the same length). Called by the rank's own threads (never in
/// an interrupt handler), possibly from another thread than the one that started the
/// collective (`thread` mode's progress thread).
pub type UserFn = dyn Fn(&[u8], &mut [u8]) + Send + Sync;

/// A reduction operation.
#[derive(Clone)]
pub enum Op {
    /// Sum.
    Sum,
    /// Product.
    Prod,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Logical and (integers and `Bool`: non-zero is true; result 0 or 1).
    Land,
    /// Logical or.
    Lor,
    /// Logical exclusive or.
    Lxor,
    /// Bitwise and (integers).
    Band,
    /// Bitwise or.
    Bor,
    /// Bitwise exclusive or.
    Bxor,
    /// Minimum value and the lowest index holding it (pair elements).
    MinLoc,
    /// Maximum value and the lowest index holding it (pair elements).
    MaxLoc,
    /// `inout = in` (MPI_REPLACE).
    Replace,
    /// `inout` unchanged (MPI_NO_OP).
    NoOp,
    /// A user operation; `commutative` lets algorithms reorder it.
    User {
        /// The function.
        f: Arc<UserFn>,
        /// Whether `a ⊕ b = b ⊕ a` (else the result is `x0 ⊕ x1 ⊕ … ⊕ x(n-1)` in rank order).
        commutative: bool,
    },
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::User { commutative, .. } => write!(f, "User(commutative: {commutative})"),
            o => write!(f, "{}", o.name()),
        }
    }
}

impl Op {
    /// A user operation from a function on typed slices (`inout[i] = in[i] ⊕ inout[i]`).
    pub fn user<T: Pod>(
        commutative: bool,
        f: impl Fn(&[T], &mut [T]) + Send + Sync + 'static,
    ) -> Op {
        Op::User {
            f: Arc::new(move |a: &[u8], b: &mut [u8]| {
                // Buffers of the schedule may be unaligned for T: copy through aligned ones.
                let n = a.len() / std::mem::size_of::<T>().max(1);
                let mut x = vec![T::zeroed(); n];
                let mut y = vec![T::zeroed(); n];
                bytemuck::cast_slice_mut::<T, u8>(&mut x)
                    .copy_from_slice(&a[..n * std::mem::size_of::<T>()]);
                bytemuck::cast_slice_mut::<T, u8>(&mut y)
                    .copy_from_slice(&b[..n * std::mem::size_of::<T>()]);
                f(&x, &mut y);
                b.copy_from_slice(bytemuck::cast_slice(&y));
            }),
            commutative,
        }
    }

    /// The MPI name (`"MPI_SUM"`…; `"user"`).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Sum => "MPI_SUM",
            Op::Prod => "MPI_PROD",
            Op::Min => "MPI_MIN",
            Op::Max => "MPI_MAX",
            Op::Land => "MPI_LAND",
            Op::Lor => "MPI_LOR",
            Op::Lxor => "MPI_LXOR",
            Op::Band => "MPI_BAND",
            Op::Bor => "MPI_BOR",
            Op::Bxor => "MPI_BXOR",
            Op::MinLoc => "MPI_MINLOC",
            Op::MaxLoc => "MPI_MAXLOC",
            Op::Replace => "MPI_REPLACE",
            Op::NoOp => "MPI_NO_OP",
            Op::User { .. } => "user",
        }
    }

    /// Whether the operation is commutative (every predefined one is).
    pub fn commutative(&self) -> bool {
        match self {
            Op::User { commutative, .. } => *commutative,
            Op::Replace => false,
            _ => true,
        }
    }

    /// `true` for a user operation (never run in a handler).
    pub fn is_user(&self) -> bool {
        matches!(self, Op::User { .. })
    }

    /// `Ok` if this operation is defined on `e` (MPI-4.1 §6.9.2's table).
    ///
    /// # Errors
    /// A message naming the operation, the element type and what is accepted.
    pub fn check(&self, e: Elem) -> Result<(), String> {
        use Elem::*;
        let int = matches!(e, I8 | I16 | I32 | I64 | U8 | U16 | U32 | U64);
        let ok = match self {
            Op::Sum | Op::Prod => int || matches!(e, F32 | F64 | C32 | C64),
            Op::Min | Op::Max => int || matches!(e, F32 | F64),
            Op::Land | Op::Lor | Op::Lxor => int || e == Bool,
            Op::Band | Op::Bor | Op::Bxor => int,
            Op::MinLoc | Op::MaxLoc => matches!(e, F32I32 | F64I32 | I64I32 | I32I32 | I16I32),
            Op::Replace | Op::NoOp | Op::User { .. } => true,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} is not defined on {e:?} elements (sum/prod: integers, floats, complex; \
                 min/max: integers, floats; logical: integers, bool; bitwise: integers; \
                 minloc/maxloc: value-index pairs)",
                self.name()
            ))
        }
    }
}

#[inline]
unsafe fn each<T: Pod>(inp: *const u8, inout: *mut u8, n: usize, f: impl Fn(T, T) -> T) {
    let sz = std::mem::size_of::<T>();
    let al = std::mem::align_of::<T>();
    if (inp as usize) % al == 0 && (inout as usize) % al == 0 {
        // SAFETY: the caller guarantees `n` elements at both pointers (non-overlapping), and
        // both are aligned for T: plain slices, which the compiler vectorizes.
        let a = unsafe { std::slice::from_raw_parts(inp as *const T, n) };
        let b = unsafe { std::slice::from_raw_parts_mut(inout as *mut T, n) };
        for (x, y) in a.iter().zip(b.iter_mut()) {
            *y = f(*x, *y);
        }
    } else {
        for i in 0..n {
            // SAFETY: as above, element i of each buffer is in bounds; unaligned accesses.
            unsafe {
                let x = std::ptr::read_unaligned(inp.add(i * sz) as *const T);
                let p = inout.add(i * sz) as *mut T;
                std::ptr::write_unaligned(p, f(x, std::ptr::read_unaligned(p)));
            }
        }
    }
}

macro_rules! int_ops {
    ($op:expr, $t:ty, $a:expr, $b:expr, $n:expr) => {{
        let (a, b, n) = ($a, $b, $n);
        // SAFETY: forwarded from `apply`'s contract.
        unsafe {
            match $op {
                Op::Sum => each::<$t>(a, b, n, |x, y| x.wrapping_add(y)),
                Op::Prod => each::<$t>(a, b, n, |x, y| x.wrapping_mul(y)),
                Op::Min => each::<$t>(a, b, n, |x, y| x.min(y)),
                Op::Max => each::<$t>(a, b, n, |x, y| x.max(y)),
                Op::Land => each::<$t>(a, b, n, |x, y| ((x != 0) && (y != 0)) as $t),
                Op::Lor => each::<$t>(a, b, n, |x, y| ((x != 0) || (y != 0)) as $t),
                Op::Lxor => each::<$t>(a, b, n, |x, y| ((x != 0) != (y != 0)) as $t),
                Op::Band => each::<$t>(a, b, n, |x, y| x & y),
                Op::Bor => each::<$t>(a, b, n, |x, y| x | y),
                Op::Bxor => each::<$t>(a, b, n, |x, y| x ^ y),
                _ => return false,
            }
        }
        true
    }};
}

macro_rules! float_ops {
    ($op:expr, $t:ty, $a:expr, $b:expr, $n:expr) => {{
        let (a, b, n) = ($a, $b, $n);
        // SAFETY: forwarded from `apply`'s contract.
        unsafe {
            match $op {
                Op::Sum => each::<$t>(a, b, n, |x, y| x + y),
                Op::Prod => each::<$t>(a, b, n, |x, y| x * y),
                Op::Min => each::<$t>(a, b, n, |x, y| if x < y { x } else { y }),
                Op::Max => each::<$t>(a, b, n, |x, y| if x > y { x } else { y }),
                _ => return false,
            }
        }
        true
    }};
}

/// `{value, index}` pairs for MINLOC/MAXLOC, read field by field (no padding bytes read).
#[inline]
unsafe fn loc<V: Pod + PartialOrd>(
    inp: *const u8,
    inout: *mut u8,
    n: usize,
    stride: usize,
    idx_off: usize,
    min: bool,
) {
    for i in 0..n {
        // SAFETY: the caller guarantees `n` pair elements of `stride` bytes at both
        // pointers; the value at offset 0 and the int at `idx_off` lie within each.
        unsafe {
            let a = inp.add(i * stride);
            let b = inout.add(i * stride);
            let (va, ia) = (
                std::ptr::read_unaligned(a as *const V),
                std::ptr::read_unaligned(a.add(idx_off) as *const i32),
            );
            let (vb, ib) = (
                std::ptr::read_unaligned(b as *const V),
                std::ptr::read_unaligned(b.add(idx_off) as *const i32),
            );
            let take_a = if min { va < vb } else { va > vb };
            if take_a || (va == vb && ia < ib) {
                std::ptr::write_unaligned(b as *mut V, va);
                std::ptr::write_unaligned(b.add(idx_off) as *mut i32, ia);
            }
        }
    }
}

/// `inout[i] = in[i] ⊕ inout[i]` for `n` elements of type `e` (a predefined `op`).
/// Returns `false` (nothing done) for a user operation or an operation not defined on `e`
/// ([`Op::check`] says why). Async-signal-safe.
///
/// # Safety
/// `inp` must be readable and `inout` readable and writable for `n * e.size()` bytes, and
/// the two regions must not overlap.
pub unsafe fn apply(op: &Op, e: Elem, inp: *const u8, inout: *mut u8, n: usize) -> bool {
    match op {
        Op::NoOp => return true,
        Op::Replace => {
            // SAFETY: the caller's contract (n elements, no overlap).
            unsafe { std::ptr::copy_nonoverlapping(inp, inout, n * e.size()) };
            return true;
        }
        Op::User { .. } => return false,
        _ => {}
    }
    match e {
        Elem::I8 => int_ops!(op, i8, inp, inout, n),
        Elem::I16 => int_ops!(op, i16, inp, inout, n),
        Elem::I32 => int_ops!(op, i32, inp, inout, n),
        Elem::I64 => int_ops!(op, i64, inp, inout, n),
        Elem::U8 => int_ops!(op, u8, inp, inout, n),
        Elem::U16 => int_ops!(op, u16, inp, inout, n),
        Elem::U32 => int_ops!(op, u32, inp, inout, n),
        Elem::U64 => int_ops!(op, u64, inp, inout, n),
        Elem::F32 => float_ops!(op, f32, inp, inout, n),
        Elem::F64 => float_ops!(op, f64, inp, inout, n),
        Elem::Bool => match op {
            Op::Land | Op::Lor | Op::Lxor => int_ops!(op, u8, inp, inout, n),
            _ => false,
        },
        Elem::C32 | Elem::C64 => {
            let half = e.size() / 2;
            match op {
                // Sum is component-wise.
                Op::Sum if half == 4 => float_ops!(op, f32, inp, inout, 2 * n),
                Op::Sum => float_ops!(op, f64, inp, inout, 2 * n),
                Op::Prod => {
                    for i in 0..n {
                        // SAFETY: element i of each buffer is in bounds (caller's contract).
                        unsafe {
                            let (a, b) = (inp.add(i * 2 * half), inout.add(i * 2 * half));
                            if half == 4 {
                                let r = |p: *const u8, k| {
                                    std::ptr::read_unaligned((p as *const f32).add(k)) as f64
                                };
                                let (ar, ai, br, bi) = (r(a, 0), r(a, 1), r(b, 0), r(b, 1));
                                std::ptr::write_unaligned(
                                    b as *mut f32,
                                    (ar * br - ai * bi) as f32,
                                );
                                std::ptr::write_unaligned(
                                    (b as *mut f32).add(1),
                                    (ar * bi + ai * br) as f32,
                                );
                            } else {
                                let r = |p: *const u8, k| {
                                    std::ptr::read_unaligned((p as *const f64).add(k))
                                };
                                let (ar, ai, br, bi) = (r(a, 0), r(a, 1), r(b, 0), r(b, 1));
                                std::ptr::write_unaligned(b as *mut f64, ar * br - ai * bi);
                                std::ptr::write_unaligned(
                                    (b as *mut f64).add(1),
                                    ar * bi + ai * br,
                                );
                            }
                        }
                    }
                    true
                }
                _ => false,
            }
        }
        Elem::F32I32 | Elem::F64I32 | Elem::I64I32 | Elem::I32I32 | Elem::I16I32 => {
            let min = match op {
                Op::MinLoc => true,
                Op::MaxLoc => false,
                _ => return false,
            };
            let s = e.size();
            // SAFETY: forwarded from the caller's contract.
            unsafe {
                match e {
                    Elem::F32I32 => loc::<f32>(inp, inout, n, s, 4, min),
                    Elem::F64I32 => loc::<f64>(inp, inout, n, s, 8, min),
                    Elem::I64I32 => loc::<i64>(inp, inout, n, s, 8, min),
                    Elem::I32I32 => loc::<i32>(inp, inout, n, s, 4, min),
                    _ => loc::<i16>(inp, inout, n, s, 4, min),
                }
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T: Reducible>(op: Op, a: &[T], b: &mut [T]) {
        assert!(unsafe {
            apply(
                &op,
                T::ELEM,
                a.as_ptr() as *const u8,
                b.as_mut_ptr() as *mut u8,
                a.len(),
            )
        });
    }

    #[test]
    fn predefined_ops() {
        let mut b = [1i32, -5, 7];
        run(Op::Sum, &[2, 3, -4], &mut b);
        assert_eq!(b, [3, -2, 3]);
        run(Op::Max, &[9, -9, 3], &mut b);
        assert_eq!(b, [9, -2, 3]);
        let mut f = [1.5f64, 2.0];
        run(Op::Prod, &[2.0, 0.5], &mut f);
        assert_eq!(f, [3.0, 1.0]);
        let mut l = [0u8, 3, 0];
        run(Op::Lor, &[0, 0, 9], &mut l);
        assert_eq!(l, [0, 1, 1]);
        let mut x = [0b1100u16];
        run(Op::Bxor, &[0b1010], &mut x);
        assert_eq!(x, [0b0110]);
        assert!(Op::Band.check(Elem::F64).is_err());
        assert!(Op::Sum.check(Elem::I8).is_ok());
    }

    #[test]
    fn unaligned_and_loc() {
        let mut raw = [0u8; 13];
        raw[1..5].copy_from_slice(&5i32.to_ne_bytes());
        raw[5..9].copy_from_slice(&7i32.to_ne_bytes());
        let inp = 10i32
            .to_ne_bytes()
            .iter()
            .chain(&1i32.to_ne_bytes())
            .copied()
            .collect::<Vec<_>>();
        assert!(unsafe {
            apply(
                &Op::Sum,
                Elem::I32,
                inp.as_ptr(),
                raw.as_mut_ptr().add(1),
                2,
            )
        });
        assert_eq!(&raw[1..5], &15i32.to_ne_bytes());
        assert_eq!(&raw[5..9], &8i32.to_ne_bytes());
        // MINLOC on {float, int}: lower value wins, ties take the lower index.
        let pair = |v: f32, i: i32| [v.to_ne_bytes(), i.to_ne_bytes()].concat();
        let a = [pair(1.0, 4), pair(2.0, 1)].concat();
        let mut b = [pair(1.0, 2), pair(3.0, 0)].concat();
        assert!(unsafe { apply(&Op::MinLoc, Elem::F32I32, a.as_ptr(), b.as_mut_ptr(), 2) });
        assert_eq!(b, [pair(1.0, 2), pair(2.0, 1)].concat());
    }
}
