//! Inclusive and exclusive scan: recursive doubling (MPICH's algorithm): in round k, rank
//! r exchanges its partial result with r XOR 2^k; the lower rank's data is always the left
//! operand, so non-commutative operations keep rank order.
//!
//! Owns only the schedules.

use super::sched::{Buf, Schedule};
use crate::Rank;

/// Scan (`exclusive`: exscan, whose rank 0 result is left untouched) of `count` elements
/// of `esz` bytes into `Recv`. `in_place`: the input is `Recv`.
pub(crate) fn recursive_doubling(
    me: Rank,
    n: u32,
    count: usize,
    esz: usize,
    in_place: bool,
    exclusive: bool,
) -> Schedule {
    let bytes = count * esz;
    let mut s = Schedule::new();
    let input = if in_place { Buf::Recv } else { Buf::Send };
    let partial = s.tmp(bytes).at(0);
    let tmp = s.tmp(bytes).at(0);
    s.copy(input.at(0), partial, bytes);
    if !exclusive && !in_place {
        s.copy(Buf::Send.at(0), Buf::Recv.at(0), bytes);
    }
    let mut first = true;
    let mut mask = 1;
    while mask < n {
        let dst = me ^ mask;
        if dst < n {
            s.round().send(partial, bytes, dst).recv(tmp, bytes, dst);
            s.round();
            if me > dst {
                // partial = tmp ⊕ partial; result = tmp ⊕ result (tmp holds lower ranks).
                s.reduce(tmp, partial, count, false);
                if exclusive && first {
                    s.copy(tmp, Buf::Recv.at(0), bytes);
                } else {
                    s.reduce(tmp, Buf::Recv.at(0), count, false);
                }
                first = false;
            } else {
                // partial = partial ⊕ tmp (tmp used as scratch).
                s.reduce(tmp, partial, count, true);
            }
        }
        mask <<= 1;
    }
    s
}
