//! Reduce: the binomial tree (MPICH's and Open MPI's algorithm for short messages): each
//! rank receives the partial results of its subtrees (all at once, into one temporary
//! each), combines them in rank order and sends the result to its parent. A non-commutative
//! operation reduces to rank 0 over the ranks in order, then rank 0 sends the result to
//! the root (as MPICH does).
//!
//! Owns only the schedule.

use super::sched::{At, Buf, Schedule};
use crate::Rank;

/// Reduce of `count` elements of `esz` bytes to `root`; the result lands at `result` on
/// the root (normally `Buf::Recv.at(0)`). `in_place`: the root's input is already at
/// `result` (MPI_IN_PLACE).
#[allow(clippy::too_many_arguments)]
pub(crate) fn binomial(
    me: Rank,
    n: u32,
    root: Rank,
    count: usize,
    esz: usize,
    commutative: bool,
    in_place: bool,
    result: At,
) -> Schedule {
    let mut s = Schedule::new();
    binomial_into(
        &mut s,
        me,
        n,
        root,
        count,
        esz,
        commutative,
        in_place,
        result,
    );
    s
}

/// [`binomial`], appended to `s` (its temporaries added to `s`'s).
#[allow(clippy::too_many_arguments)]
pub(crate) fn binomial_into(
    s: &mut Schedule,
    me: Rank,
    n: u32,
    root: Rank,
    count: usize,
    esz: usize,
    commutative: bool,
    in_place: bool,
    result: At,
) {
    let bytes = count * esz;
    let tree_root = if commutative { root } else { 0 };
    let vr = (me + n - tree_root) % n;
    let real = |v: u32| (v + tree_root) % n;
    let acc = if me == root && tree_root == root {
        result
    } else {
        s.tmp(bytes).at(0)
    };
    s.round();
    if !(in_place && me == root && acc == result) {
        let src = if in_place { result } else { Buf::Send.at(0) };
        s.copy(src, acc, bytes);
    }
    let mut children = Vec::new();
    let mut parent = None;
    let mut mask = 1;
    while mask < n {
        if vr & mask == 0 {
            if vr | mask < n {
                let t = s.tmp(bytes).at(0);
                s.recv(t, bytes, real(vr | mask));
                children.push(t);
            }
        } else {
            parent = Some(real(vr & !mask));
            break;
        }
        mask <<= 1;
    }
    s.round();
    for t in children {
        // Children hold higher ranks: acc = acc ⊕ child keeps rank order.
        s.reduce(t, acc, count, !commutative);
    }
    if let Some(p) = parent {
        s.send(acc, bytes, p);
    }
    if tree_root != root {
        s.round();
        if me == tree_root {
            s.send(acc, bytes, root);
        } else if me == root {
            s.recv(result, bytes, tree_root);
        }
    }
}
