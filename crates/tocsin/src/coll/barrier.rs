//! Barrier: the dissemination algorithm (Hensgen, Finkel and Manber, "Two algorithms for
//! barrier synchronization", 1988; MPICH's and Open MPI's default for any size):
//! ⌈log2 n⌉ rounds; in round k, rank r sends a zero-byte message to r + 2^k and receives
//! one from r − 2^k (mod n).
//!
//! Owns only the schedule of a barrier.

use super::sched::{Buf, Schedule};
use crate::Rank;

/// Dissemination barrier of rank `me` among `n`.
pub(crate) fn dissemination(me: Rank, n: u32) -> Schedule {
    let mut s = Schedule::new();
    let mut d = 1;
    while d < n {
        s.round()
            .send(Buf::Recv.at(0), 0, (me + d) % n)
            .recv(Buf::Recv.at(0), 0, (me + n - d) % n);
        d *= 2;
    }
    s
}
