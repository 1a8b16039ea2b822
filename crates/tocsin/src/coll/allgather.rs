//! Allgather(v), chosen by size: short blocks go linearly (every rank posts its n − 1
//! sends and receives at once: one round, as Open MPI's `basic_linear`), longer ones
//! around the ring (n − 1 rounds, each rank's link carries (n − 1)/n of the result;
//! Thakur, Rabenseifner and Gropp, IJHPCA 2005).
//!
//! Owns only the schedules. Blocks are `(offset, len)` in `Recv`, one per rank.

use super::sched::{Buf, Schedule};
use crate::Rank;

/// Results of at most this many bytes in all go linearly.
pub(crate) const SHORT: usize = 32 * 1024;

/// Allgather(v) of rank blocks into `Recv`; rank `me`'s input is at `Send` unless
/// `in_place` (then already in its block).
pub(crate) fn allgather(me: Rank, n: u32, blocks: &[(usize, usize)], in_place: bool) -> Schedule {
    let mut s = Schedule::new();
    let (o, l) = blocks[me as usize];
    if !in_place {
        s.copy(Buf::Send.at(0), Buf::Recv.at(o), l);
    }
    let total: usize = blocks.iter().map(|b| b.1).sum();
    if total <= SHORT {
        s.round();
        for r in (0..n).filter(|&r| r != me) {
            s.send(Buf::Recv.at(o), l, r);
            let (ro, rl) = blocks[r as usize];
            s.recv(Buf::Recv.at(ro), rl, r);
        }
    } else {
        // Rank me starts with block me = (me + 1 + (n − 1)) mod n.
        super::allreduce::ring_allgather(&mut s, me, n, blocks, Buf::Recv, n - 1);
    }
    s
}
