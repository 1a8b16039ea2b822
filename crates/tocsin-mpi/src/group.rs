//! Groups (MPI-4.1 §7.3): `MPI_Group_size`, `rank`, `incl`, `excl`, `range_incl`,
//! `range_excl`, `translate_ranks`, `union`, `intersection`, `difference`, `compare`,
//! `free`. Local operations on tocsin's [`tocsin::Group`]; errors go to
//! MPI_COMM_WORLD's handler.

use std::ffi::c_int;

use crate::abi::*;
use crate::error::{finish, MpiErr, MpiResult};
use crate::handle;

/// Runs a group function body and routes its error.
fn run(func: &str, f: impl FnOnce() -> MpiResult<()>) -> c_int {
    finish(func, None, f())
}

fn out<T>(p: *mut T, what: &str) -> MpiResult<*mut T> {
    if p.is_null() {
        return Err(MpiErr::new(MPI_ERR_ARG, format!("{what} is NULL")));
    }
    Ok(p)
}

/// Ranks of a group from C, checked: in range and distinct.
///
/// # Safety
/// `ranks` holds `n` ints.
unsafe fn rank_list(g: &tocsin::Group, n: c_int, ranks: *const c_int) -> MpiResult<Vec<u32>> {
    let n =
        usize::try_from(n).map_err(|_| MpiErr::new(MPI_ERR_ARG, format!("n = {n} is negative")))?;
    if n > 0 && ranks.is_null() {
        return Err(MpiErr::new(MPI_ERR_ARG, "ranks is NULL"));
    }
    let s: &[c_int] = if n == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(ranks, n) }
    };
    check_ranks(g, s.iter().copied())
}

fn check_ranks(g: &tocsin::Group, it: impl Iterator<Item = c_int>) -> MpiResult<Vec<u32>> {
    let mut seen = vec![false; g.size() as usize];
    let mut v = Vec::new();
    for r in it {
        let u = u32::try_from(r)
            .ok()
            .filter(|&u| u < g.size())
            .ok_or_else(|| {
                MpiErr::new(
                    MPI_ERR_RANK,
                    format!("rank {r} is not in the group (size {})", g.size()),
                )
            })?;
        if std::mem::replace(&mut seen[u as usize], true) {
            return Err(MpiErr::new(
                MPI_ERR_RANK,
                format!("rank {r} is listed twice"),
            ));
        }
        v.push(u);
    }
    Ok(v)
}

/// `MPI_Group_size`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Group_size(group: MPI_Group, size: *mut c_int) -> c_int {
    run("MPI_Group_size", || {
        // SAFETY: the caller's handle; output checked.
        unsafe {
            let g = handle::group(group)?;
            out(size, "size")?.write(g.size() as c_int);
        }
        Ok(())
    })
}

/// `MPI_Group_rank`: this process's rank in the group, MPI_UNDEFINED if not a member.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Group_rank(group: MPI_Group, rank: *mut c_int) -> c_int {
    run("MPI_Group_rank", || {
        // SAFETY: the caller's handle; output checked.
        unsafe {
            let g = handle::group(group)?;
            out(rank, "rank")?.write(g.rank().map_or(MPI_UNDEFINED, |r| r as c_int));
        }
        Ok(())
    })
}

/// `MPI_Group_incl`: the members `ranks` (in that order). Errors: `MPI_ERR_GROUP`,
/// `MPI_ERR_RANK` (out of range or repeated), `MPI_ERR_ARG`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Group_incl(
    group: MPI_Group,
    n: c_int,
    ranks: *const c_int,
    newgroup: *mut MPI_Group,
) -> c_int {
    run("MPI_Group_incl", || {
        // SAFETY: the caller's handle and arrays; output checked.
        unsafe {
            let g = handle::group(group)?;
            let v = rank_list(&g, n, ranks)?;
            out(newgroup, "newgroup")?.write(handle::new_group(g.incl(&v)?));
        }
        Ok(())
    })
}

/// `MPI_Group_excl`: the members not in `ranks` (in group order). Errors: as
/// `MPI_Group_incl`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Group_excl(
    group: MPI_Group,
    n: c_int,
    ranks: *const c_int,
    newgroup: *mut MPI_Group,
) -> c_int {
    run("MPI_Group_excl", || {
        // SAFETY: the caller's handle and arrays; output checked.
        unsafe {
            let g = handle::group(group)?;
            let v = rank_list(&g, n, ranks)?;
            out(newgroup, "newgroup")?.write(handle::new_group(g.excl(&v)?));
        }
        Ok(())
    })
}

/// The ranks of `n` (first, last, stride) triplets.
///
/// # Safety
/// `ranges` holds `n` triplets.
unsafe fn range_list(
    g: &tocsin::Group,
    n: c_int,
    ranges: *const [c_int; 3],
) -> MpiResult<Vec<u32>> {
    let n =
        usize::try_from(n).map_err(|_| MpiErr::new(MPI_ERR_ARG, format!("n = {n} is negative")))?;
    if n > 0 && ranges.is_null() {
        return Err(MpiErr::new(MPI_ERR_ARG, "ranges is NULL"));
    }
    let s: &[[c_int; 3]] = if n == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(ranges, n) }
    };
    let mut all = Vec::new();
    for &[first, last, stride] in s {
        if stride == 0 {
            return Err(MpiErr::new(MPI_ERR_ARG, "a range has stride 0"));
        }
        let (mut r, first, last, stride) = (first as i64, first as i64, last as i64, stride as i64);
        if (stride > 0 && first > last) || (stride < 0 && first < last) {
            return Err(MpiErr::new(
                MPI_ERR_RANK,
                format!("range ({first}, {last}, {stride}) is empty the wrong way"),
            ));
        }
        while (stride > 0 && r <= last) || (stride < 0 && r >= last) {
            if all.len() > g.size() as usize {
                break;
            }
            all.push(c_int::try_from(r).unwrap_or(-1));
            r += stride;
        }
    }
    check_ranks(g, all.into_iter())
}

/// `MPI_Group_range_incl`: `MPI_Group_incl` of the ranks of (first, last, stride) triplets.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Group_range_incl(
    group: MPI_Group,
    n: c_int,
    ranges: *mut [c_int; 3],
    newgroup: *mut MPI_Group,
) -> c_int {
    run("MPI_Group_range_incl", || {
        // SAFETY: the caller's handle and arrays; output checked.
        unsafe {
            let g = handle::group(group)?;
            let v = range_list(&g, n, ranges)?;
            out(newgroup, "newgroup")?.write(handle::new_group(g.incl(&v)?));
        }
        Ok(())
    })
}

/// `MPI_Group_range_excl`: `MPI_Group_excl` of the ranks of (first, last, stride) triplets.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Group_range_excl(
    group: MPI_Group,
    n: c_int,
    ranges: *mut [c_int; 3],
    newgroup: *mut MPI_Group,
) -> c_int {
    run("MPI_Group_range_excl", || {
        // SAFETY: the caller's handle and arrays; output checked.
        unsafe {
            let g = handle::group(group)?;
            let v = range_list(&g, n, ranges)?;
            out(newgroup, "newgroup")?.write(handle::new_group(g.excl(&v)?));
        }
        Ok(())
    })
}

/// `MPI_Group_translate_ranks`: the rank in `group2` of each of `ranks1` in `group1`
/// (MPI_UNDEFINED if absent; MPI_PROC_NULL maps to MPI_PROC_NULL).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Group_translate_ranks(
    group1: MPI_Group,
    n: c_int,
    ranks1: *const c_int,
    group2: MPI_Group,
    ranks2: *mut c_int,
) -> c_int {
    run("MPI_Group_translate_ranks", || {
        // SAFETY: the caller's handles and arrays (`n` entries each).
        unsafe {
            let g1 = handle::group(group1)?;
            let g2 = handle::group(group2)?;
            let n = usize::try_from(n)
                .map_err(|_| MpiErr::new(MPI_ERR_ARG, format!("n = {n} is negative")))?;
            if n == 0 {
                return Ok(());
            }
            if ranks1.is_null() || ranks2.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "ranks1 or ranks2 is NULL"));
            }
            let inp = std::slice::from_raw_parts(ranks1, n);
            for (i, &r) in inp.iter().enumerate() {
                let v = if r == MPI_PROC_NULL {
                    MPI_PROC_NULL
                } else {
                    let u = u32::try_from(r)
                        .ok()
                        .filter(|&u| u < g1.size())
                        .ok_or_else(|| {
                            MpiErr::new(
                                MPI_ERR_RANK,
                                format!("rank {r} is not in group1 (size {})", g1.size()),
                            )
                        })?;
                    g1.translate_ranks(&[u], &g2)?
                        .first()
                        .copied()
                        .flatten()
                        .map_or(MPI_UNDEFINED, |x| x as c_int)
                };
                ranks2.add(i).write(v);
            }
        }
        Ok(())
    })
}

/// Shared body of the set operations.
///
/// # Safety
/// The caller's handles and output.
unsafe fn setop(
    func: &str,
    g1: MPI_Group,
    g2: MPI_Group,
    newgroup: *mut MPI_Group,
    f: fn(&tocsin::Group, &tocsin::Group) -> tocsin::Group,
) -> c_int {
    run(func, || {
        // SAFETY: forwarded.
        unsafe {
            let a = handle::group(g1)?;
            let b = handle::group(g2)?;
            out(newgroup, "newgroup")?.write(handle::new_group(f(&a, &b)));
        }
        Ok(())
    })
}

/// `MPI_Group_union`: the members of `group1`, then those of `group2` not in `group1`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Group_union(
    group1: MPI_Group,
    group2: MPI_Group,
    newgroup: *mut MPI_Group,
) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        setop("MPI_Group_union", group1, group2, newgroup, |a, b| {
            a.union(b)
        })
    }
}

/// `MPI_Group_intersection`: the members of `group1` also in `group2` (group1's order).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Group_intersection(
    group1: MPI_Group,
    group2: MPI_Group,
    newgroup: *mut MPI_Group,
) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        setop(
            "MPI_Group_intersection",
            group1,
            group2,
            newgroup,
            |a, b| a.intersection(b),
        )
    }
}

/// `MPI_Group_difference`: the members of `group1` not in `group2`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Group_difference(
    group1: MPI_Group,
    group2: MPI_Group,
    newgroup: *mut MPI_Group,
) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        setop("MPI_Group_difference", group1, group2, newgroup, |a, b| {
            a.difference(b)
        })
    }
}

/// `MPI_Group_compare`: MPI_IDENT, MPI_SIMILAR or MPI_UNEQUAL.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Group_compare(
    group1: MPI_Group,
    group2: MPI_Group,
    result: *mut c_int,
) -> c_int {
    run("MPI_Group_compare", || {
        // SAFETY: the caller's handles; output checked.
        unsafe {
            let a = handle::group(group1)?;
            let b = handle::group(group2)?;
            out(result, "result")?.write(crate::comm::compare_value(a.compare(&b)));
        }
        Ok(())
    })
}

/// `MPI_Group_free`: frees the group and sets the handle to MPI_GROUP_NULL. Errors:
/// `MPI_ERR_GROUP`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Group_free(group: *mut MPI_Group) -> c_int {
    run("MPI_Group_free", || {
        // SAFETY: the caller's pointer (checked) and handle.
        unsafe {
            let p = out(group, "group")?;
            handle::free_group(p.read())?;
            p.write(MPI_GROUP_NULL as MPI_Group);
        }
        Ok(())
    })
}
