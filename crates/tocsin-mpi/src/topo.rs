//! Cartesian topologies (MPI-4.1 §8): `MPI_Dims_create`, `MPI_Cart_create`,
//! `MPI_Cart_coords`, `MPI_Cart_rank`, `MPI_Cart_get`, `MPI_Cartdim_get`,
//! `MPI_Cart_shift`, `MPI_Topo_test`.
//!
//! A Cartesian communicator is a dup (or split, when the grid is smaller than the
//! communicator) of the old one; its grid lives in a side table keyed by the handle value,
//! dropped by `MPI_Comm_free` ([`drop_topo`]) and copied by `MPI_Comm_dup`
//! ([`copy_topo`]). Ranks are never reordered (`reorder` is ignored, as MPI allows).
//! Graph topologies are not implemented.

use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::Mutex;

use crate::abi::*;
use crate::error::{finish, with_comm, MpiErr, MpiResult};
use crate::handle;

/// A Cartesian grid.
#[derive(Clone)]
struct Cart {
    dims: Vec<c_int>,
    periods: Vec<bool>,
}

static CARTS: Mutex<Option<HashMap<usize, Cart>>> = Mutex::new(None);

fn with_carts<R>(f: impl FnOnce(&mut HashMap<usize, Cart>) -> R) -> R {
    let mut g = CARTS.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// Forgets the topology of a communicator being freed.
pub(crate) fn drop_topo(h: MPI_Comm) {
    with_carts(|m| m.remove(&(h as usize)));
}

/// Gives `new` the topology of `old` (MPI_Comm_dup).
pub(crate) fn copy_topo(old: MPI_Comm, new: MPI_Comm) {
    with_carts(|m| {
        if let Some(c) = m.get(&(old as usize)).cloned() {
            m.insert(new as usize, c);
        }
    });
}

fn cart_of(h: MPI_Comm) -> MpiResult<Cart> {
    with_carts(|m| m.get(&(h as usize)).cloned()).ok_or_else(|| {
        MpiErr::new(
            MPI_ERR_TOPOLOGY,
            "the communicator has no Cartesian topology (MPI_Cart_create)",
        )
    })
}

/// Reads `n` ints (n may be 0).
///
/// # Safety
/// `p` holds `n` ints when `n > 0`.
unsafe fn ints<'a>(p: *const c_int, n: usize, what: &str) -> MpiResult<&'a [c_int]> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(MpiErr::new(MPI_ERR_ARG, format!("{what} is NULL")));
    }
    // SAFETY: the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// Prime factors, largest first.
fn factors(mut n: u64) -> Vec<u64> {
    let mut f = Vec::new();
    let mut p = 2;
    while p * p <= n {
        while n % p == 0 {
            f.push(p);
            n /= p;
        }
        p += 1;
    }
    if n > 1 {
        f.push(n);
    }
    f.reverse();
    f
}

/// The balanced completion of `dims` (0 entries free) for `nnodes`.
fn dims_create(nnodes: c_int, dims: &mut [c_int]) -> MpiResult<()> {
    if nnodes <= 0 {
        return Err(MpiErr::new(
            MPI_ERR_DIMS,
            format!("nnodes = {nnodes} must be positive"),
        ));
    }
    let mut fixed: u64 = 1;
    for &d in dims.iter() {
        if d < 0 {
            return Err(MpiErr::new(
                MPI_ERR_DIMS,
                format!("dims has a negative entry {d}"),
            ));
        }
        if d > 0 {
            fixed = fixed.saturating_mul(d as u64);
        }
    }
    let n = nnodes as u64;
    if n % fixed != 0 {
        return Err(MpiErr::new(
            MPI_ERR_DIMS,
            format!("nnodes = {nnodes} is not a multiple of the product {fixed} of the fixed dims"),
        ));
    }
    let free: Vec<usize> = (0..dims.len()).filter(|&i| dims[i] == 0).collect();
    let rest = n / fixed;
    if free.is_empty() {
        if rest != 1 {
            return Err(MpiErr::new(
                MPI_ERR_DIMS,
                format!("the fixed dims multiply to {fixed}, not nnodes = {nnodes}"),
            ));
        }
        return Ok(());
    }
    let mut vals = vec![1u64; free.len()];
    for f in factors(rest) {
        // Give the factor to the currently smallest dimension.
        if let Some(m) = (0..vals.len()).min_by_key(|&i| vals[i]) {
            vals[m] *= f;
        }
    }
    vals.sort_unstable_by(|a, b| b.cmp(a));
    for (i, v) in free.into_iter().zip(vals) {
        dims[i] = v as c_int;
    }
    Ok(())
}

/// `MPI_Dims_create`: fills the 0 entries of `dims` so that the product of all is `nnodes`,
/// as balanced as possible, in non-increasing order (prime factors given, largest first,
/// to the smallest dimension). Errors: `MPI_ERR_DIMS` (negative entries, `nnodes` not a
/// multiple of the fixed entries), `MPI_ERR_ARG`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Dims_create(nnodes: c_int, ndims: c_int, dims: *mut c_int) -> c_int {
    let r = (|| {
        let n = usize::try_from(ndims)
            .map_err(|_| MpiErr::new(MPI_ERR_DIMS, format!("ndims = {ndims} is negative")))?;
        if n == 0 {
            return Ok(());
        }
        if dims.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "dims is NULL"));
        }
        // SAFETY: `ndims` ints at `dims` (MPI's contract).
        let d = unsafe { std::slice::from_raw_parts_mut(dims, n) };
        dims_create(nnodes, d)
    })();
    finish("MPI_Dims_create", None, r)
}

/// `MPI_Cart_create`: a communicator with a Cartesian grid `dims` (row-major ranks,
/// `periods` per dimension); ranks beyond the grid get MPI_COMM_NULL. Collective.
/// Errors: `MPI_ERR_COMM`, `MPI_ERR_DIMS` (negative), `MPI_ERR_TOPOLOGY` (grid larger than
/// the communicator), `MPI_ERR_ARG`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Cart_create(
    comm_old: MPI_Comm,
    ndims: c_int,
    dims: *const c_int,
    periods: *const c_int,
    _reorder: c_int,
    comm_cart: *mut MPI_Comm,
) -> c_int {
    // SAFETY: the caller's handle and arrays.
    unsafe {
        with_comm("MPI_Cart_create", comm_old, |c| {
            if comm_cart.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "comm_cart is NULL"));
            }
            let n = usize::try_from(ndims)
                .map_err(|_| MpiErr::new(MPI_ERR_DIMS, format!("ndims = {ndims} is negative")))?;
            let d = ints(dims, n, "dims")?.to_vec();
            let p = ints(periods, n, "periods")?;
            let mut total: u64 = 1;
            for &x in &d {
                if x <= 0 {
                    return Err(MpiErr::new(
                        MPI_ERR_DIMS,
                        format!("dims has a non-positive entry {x}"),
                    ));
                }
                total = total.saturating_mul(x as u64);
            }
            let size = u64::from(c.comm.size());
            if total > size {
                return Err(MpiErr::new(
                    MPI_ERR_TOPOLOGY,
                    format!("the grid has {total} ranks, the communicator {size}"),
                ));
            }
            let newc = if total == size {
                Some(c.comm.dup()?)
            } else {
                let me = u64::from(c.comm.rank());
                c.comm
                    .split((me < total).then_some(0), c.comm.rank() as i32)?
            };
            let cart = Cart {
                dims: d,
                periods: p.iter().map(|&x| x != 0).collect(),
            };
            let h = match newc {
                None => MPI_COMM_NULL as MPI_Comm,
                Some(nc) => {
                    let h = handle::new_comm(nc);
                    if let Ok(o) = handle::comm(h) {
                        o.errh.store(
                            c.errh.load(std::sync::atomic::Ordering::Relaxed),
                            std::sync::atomic::Ordering::Relaxed,
                        );
                    }
                    with_carts(|m| m.insert(h as usize, cart));
                    h
                }
            };
            comm_cart.write(h);
            Ok(())
        })
    }
}

fn coords_of(cart: &Cart, rank: u32) -> Vec<c_int> {
    let mut out = vec![0; cart.dims.len()];
    let mut r = rank as i64;
    for i in (0..cart.dims.len()).rev() {
        let d = i64::from(cart.dims[i]);
        out[i] = (r % d) as c_int;
        r /= d;
    }
    out
}

/// The rank at `coords` (periodic dimensions wrap), or `None` outside the grid.
fn rank_of(cart: &Cart, coords: &[c_int]) -> Option<c_int> {
    let mut r: i64 = 0;
    for (i, &x) in coords.iter().enumerate() {
        let d = i64::from(cart.dims[i]);
        let mut x = i64::from(x);
        if cart.periods[i] {
            x = x.rem_euclid(d);
        } else if x < 0 || x >= d {
            return None;
        }
        r = r * d + x;
    }
    c_int::try_from(r).ok()
}

/// `MPI_Cart_coords`: the coordinates of `rank` (row-major). Errors: `MPI_ERR_TOPOLOGY`,
/// `MPI_ERR_RANK`, `MPI_ERR_ARG` (`maxdims` smaller than the grid's dimensions).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Cart_coords(
    comm: MPI_Comm,
    rank: c_int,
    maxdims: c_int,
    coords: *mut c_int,
) -> c_int {
    // SAFETY: the caller's handle; `maxdims` ints at `coords`.
    unsafe {
        with_comm("MPI_Cart_coords", comm, |c| {
            let cart = cart_of(comm)?;
            let r = u32::try_from(rank)
                .ok()
                .filter(|&r| r < c.comm.size())
                .ok_or_else(|| {
                    MpiErr::new(
                        MPI_ERR_RANK,
                        format!(
                            "rank {rank} is not in the communicator (size {})",
                            c.comm.size()
                        ),
                    )
                })?;
            let v = coords_of(&cart, r);
            if (maxdims as i64) < v.len() as i64 || (!v.is_empty() && coords.is_null()) {
                return Err(MpiErr::new(
                    MPI_ERR_ARG,
                    format!(
                        "maxdims = {maxdims} < {} dimensions (or coords NULL)",
                        v.len()
                    ),
                ));
            }
            std::ptr::copy_nonoverlapping(v.as_ptr(), coords, v.len());
            Ok(())
        })
    }
}

/// `MPI_Cart_rank`: the rank at `coords` (periodic dimensions wrap). Errors:
/// `MPI_ERR_TOPOLOGY`, `MPI_ERR_RANK` (outside a non-periodic dimension).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Cart_rank(
    comm: MPI_Comm,
    coords: *const c_int,
    rank: *mut c_int,
) -> c_int {
    // SAFETY: the caller's handle; `ndims` ints at `coords`.
    unsafe {
        with_comm("MPI_Cart_rank", comm, |_| {
            let cart = cart_of(comm)?;
            let x = ints(coords, cart.dims.len(), "coords")?;
            if rank.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "rank is NULL"));
            }
            let r = rank_of(&cart, x).ok_or_else(|| {
                MpiErr::new(
                    MPI_ERR_RANK,
                    format!("coordinates {x:?} are outside the grid {:?}", cart.dims),
                )
            })?;
            rank.write(r);
            Ok(())
        })
    }
}

/// `MPI_Cart_get`: the grid's dims, periods and this rank's coordinates (first
/// `maxdims` entries).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Cart_get(
    comm: MPI_Comm,
    maxdims: c_int,
    dims: *mut c_int,
    periods: *mut c_int,
    coords: *mut c_int,
) -> c_int {
    // SAFETY: the caller's handle; `maxdims` ints at each array.
    unsafe {
        with_comm("MPI_Cart_get", comm, |c| {
            let cart = cart_of(comm)?;
            let n = cart.dims.len().min(usize::try_from(maxdims).unwrap_or(0));
            if n > 0 && (dims.is_null() || periods.is_null() || coords.is_null()) {
                return Err(MpiErr::new(MPI_ERR_ARG, "dims, periods or coords is NULL"));
            }
            let me = coords_of(&cart, c.comm.rank());
            for (i, (&d, (&p, &x))) in cart
                .dims
                .iter()
                .zip(cart.periods.iter().zip(&me))
                .take(n)
                .enumerate()
            {
                dims.add(i).write(d);
                periods.add(i).write(c_int::from(p));
                coords.add(i).write(x);
            }
            Ok(())
        })
    }
}

/// `MPI_Cartdim_get`: the number of dimensions of the grid.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Cartdim_get(comm: MPI_Comm, ndims: *mut c_int) -> c_int {
    // SAFETY: the caller's handle; output checked.
    unsafe {
        with_comm("MPI_Cartdim_get", comm, |_| {
            let cart = cart_of(comm)?;
            if ndims.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "ndims is NULL"));
            }
            ndims.write(cart.dims.len() as c_int);
            Ok(())
        })
    }
}

/// `MPI_Cart_shift`: the source and destination ranks of a shift by `disp` along
/// `direction` (MPI_PROC_NULL off the edge of a non-periodic dimension).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Cart_shift(
    comm: MPI_Comm,
    direction: c_int,
    disp: c_int,
    rank_source: *mut c_int,
    rank_dest: *mut c_int,
) -> c_int {
    // SAFETY: the caller's handle; outputs checked.
    unsafe {
        with_comm("MPI_Cart_shift", comm, |c| {
            let cart = cart_of(comm)?;
            let d = usize::try_from(direction)
                .ok()
                .filter(|&d| d < cart.dims.len())
                .ok_or_else(|| {
                    MpiErr::new(
                        MPI_ERR_ARG,
                        format!(
                            "direction {direction}: the grid has {} dimensions",
                            cart.dims.len()
                        ),
                    )
                })?;
            if rank_source.is_null() || rank_dest.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "rank_source or rank_dest is NULL"));
            }
            let me = coords_of(&cart, c.comm.rank());
            let at = |delta: i64| {
                let mut x = me.clone();
                x[d] = (i64::from(x[d]) + delta).clamp(i64::from(c_int::MIN), i64::from(c_int::MAX))
                    as c_int;
                rank_of(&cart, &x).unwrap_or(MPI_PROC_NULL)
            };
            rank_source.write(at(-i64::from(disp)));
            rank_dest.write(at(i64::from(disp)));
            Ok(())
        })
    }
}

/// `MPI_Topo_test`: MPI_CART for a Cartesian communicator, else MPI_UNDEFINED.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Topo_test(comm: MPI_Comm, status: *mut c_int) -> c_int {
    // SAFETY: the caller's handle; output checked.
    unsafe {
        with_comm("MPI_Topo_test", comm, |_| {
            if status.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "status is NULL"));
            }
            let t = if cart_of(comm).is_ok() {
                MPI_CART
            } else {
                MPI_UNDEFINED
            };
            status.write(t);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dc(n: c_int, mut d: Vec<c_int>) -> Vec<c_int> {
        dims_create(n, &mut d).unwrap();
        d
    }

    #[test]
    fn dims_create_balanced() {
        assert_eq!(dc(12, vec![0, 0]), vec![4, 3]);
        assert_eq!(dc(16, vec![0, 0, 0]), vec![4, 2, 2]);
        assert_eq!(dc(6, vec![0, 0]), vec![3, 2]);
        assert_eq!(dc(7, vec![0, 0]), vec![7, 1]);
        assert_eq!(dc(24, vec![0, 2, 0]), vec![4, 2, 3]);
        assert_eq!(dc(1, vec![0, 0]), vec![1, 1]);
        assert!(dims_create(10, &mut [3, 0]).is_err());
        assert!(dims_create(4, &mut [-1, 0]).is_err());
    }

    #[test]
    fn cart_rank_coords_roundtrip() {
        let c = Cart {
            dims: vec![3, 4],
            periods: vec![true, false],
        };
        for r in 0..12 {
            assert_eq!(rank_of(&c, &coords_of(&c, r)), Some(r as c_int));
        }
        assert_eq!(rank_of(&c, &[-1, 0]), Some(8));
        assert_eq!(rank_of(&c, &[0, 4]), None);
    }
}
