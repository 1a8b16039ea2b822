//! Alltoall(v), chosen by size: short blocks linearly (all n − 1 sends and receives posted
//! at once, Open MPI's `basic_linear`), longer ones by pairwise exchange (n − 1 rounds; in
//! round k rank r sends to r + k and receives from r − k: one peer at a time per link,
//! MPICH's long-message algorithm).
//!
//! Owns only the schedules. `sblocks`/`rblocks` are `(offset, len)` per rank in `Send`
//! and `Recv`.

use super::sched::{Buf, Schedule};
use crate::Rank;

/// Blocks of at most this many bytes (the largest) go linearly.
pub(crate) const SHORT: usize = 256;

/// Alltoall(v). `in_place`: the input is `Recv` itself, laid out as `rblocks` (copied to a
/// temporary first).
pub(crate) fn alltoall(
    me: Rank,
    n: u32,
    sblocks: &[(usize, usize)],
    rblocks: &[(usize, usize)],
    in_place: bool,
) -> Schedule {
    let mut s = Schedule::new();
    let (src, sb): (Buf, &[(usize, usize)]) = if in_place {
        let total = rblocks.iter().map(|b| b.0 + b.1).max().unwrap_or(0);
        let t = s.tmp(total);
        s.copy(Buf::Recv.at(0), t.at(0), total);
        s.round();
        (t, rblocks)
    } else {
        (Buf::Send, sblocks)
    };
    let (so, sl) = sb[me as usize];
    let (ro, _) = rblocks[me as usize];
    s.copy(src.at(so), Buf::Recv.at(ro), sl);
    let largest = sb.iter().chain(rblocks).map(|b| b.1).max().unwrap_or(0);
    for k in 1..n {
        if largest > SHORT {
            s.round();
        }
        let to = (me + k) % n;
        let from = (me + n - k) % n;
        let (so, sl) = sb[to as usize];
        let (ro, rl) = rblocks[from as usize];
        s.send(src.at(so), sl, to).recv(Buf::Recv.at(ro), rl, from);
    }
    s
}
