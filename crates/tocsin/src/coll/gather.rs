//! Gather(v) and scatter(v): the linear algorithms (Open MPI's `basic_linear`, MPICH's
//! choice for the v-variants): the root posts one receive (or send) per rank at once, the
//! others one send (or receive). One round; the root's link carries every block.
//!
//! Owns only the schedules. Blocks are `(offset, len)` in bytes, one per rank.

use super::sched::{At, Buf, Schedule};
use crate::Rank;

/// Gather: rank r's `len_me` bytes at `Send` go to the root's `Recv` block r.
/// `in_place`: the root's own block is already in place.
pub(crate) fn linear_gather(
    me: Rank,
    n: u32,
    root: Rank,
    len_me: usize,
    blocks: &[(usize, usize)],
    in_place: bool,
) -> Schedule {
    let mut s = Schedule::new();
    if me != root {
        s.send(Buf::Send.at(0), len_me, root);
        return s;
    }
    if !in_place {
        let (o, l) = blocks[root as usize];
        s.copy(Buf::Send.at(0), Buf::Recv.at(o), l.min(len_me));
    }
    for r in (0..n).filter(|&r| r != root) {
        let (o, l) = blocks[r as usize];
        s.recv(Buf::Recv.at(o), l, r);
    }
    s
}

/// Scatter: the root's block r of `src` (normally `Buf::Send`) goes to rank r's `Recv`
/// (`len_me` bytes). `in_place`: the root keeps its block where it is.
pub(crate) fn linear_scatter(
    me: Rank,
    n: u32,
    root: Rank,
    src: Buf,
    blocks: &[(usize, usize)],
    len_me: usize,
    in_place: bool,
) -> Schedule {
    let mut s = Schedule::new();
    if me != root {
        s.recv(Buf::Recv.at(0), len_me, root);
        return s;
    }
    if !in_place {
        let (o, l) = blocks[root as usize];
        s.copy(src.at(o), Buf::Recv.at(0), l.min(len_me));
    }
    for r in (0..n).filter(|&r| r != root) {
        let (o, l) = blocks[r as usize];
        s.send(At { buf: src, off: o }, l, r);
    }
    s
}
