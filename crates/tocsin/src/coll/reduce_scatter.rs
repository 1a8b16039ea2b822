//! Reduce-scatter(-block): a ring reduce-scatter for commutative operations (each rank
//! sends (n − 1)/n of the vector and combines its share once per peer; Patarasuk and Yuan,
//! JPDC 2009), else a binomial reduce to rank 0 in rank order followed by a linear scatter.
//!
//! Owns only the schedules. `counts[r]` elements of `esz` bytes go to rank r, in rank
//! order in the input; the result lands at `Recv`.

use super::sched::{Buf, Schedule};
use crate::Rank;

/// Reduce-scatter. `in_place`: the input is `Recv` (MPI_IN_PLACE).
pub(crate) fn reduce_scatter(
    me: Rank,
    n: u32,
    counts: &[usize],
    esz: usize,
    commutative: bool,
    in_place: bool,
) -> Schedule {
    let mut blocks = Vec::with_capacity(counts.len());
    let mut off = 0;
    for &c in counts {
        blocks.push((off, c * esz));
        off += c * esz;
    }
    let total = off;
    let src = if in_place { Buf::Recv } else { Buf::Send };
    let mut s = Schedule::new();
    let acc = s.tmp(total);
    if commutative {
        s.copy(src.at(0), acc.at(0), total);
        // shift n − 1: rank me ends with block me.
        super::allreduce::ring_reduce_scatter(&mut s, me, n, &blocks, acc, esz, n - 1);
        let (o, l) = blocks[me as usize];
        s.round().copy(acc.at(o), Buf::Recv.at(0), l);
        return s;
    }
    // Rank 0 reduces the whole vector into `acc` (every rank's input copied there first),
    // then scatters it.
    s.copy(src.at(0), acc.at(0), total);
    super::reduce::binomial_into(
        &mut s,
        me,
        n,
        0,
        total / esz.max(1),
        esz,
        false,
        true,
        acc.at(0),
    );
    // Linear scatter from rank 0's accumulator (its steps added here: `acc` is this
    // schedule's temporary).
    s.round();
    if me == 0 {
        s.copy(acc.at(0), Buf::Recv.at(0), blocks[0].1);
        for r in 1..n {
            let (o, l) = blocks[r as usize];
            s.send(acc.at(o), l, r);
        }
    } else {
        s.recv(Buf::Recv.at(0), blocks[me as usize].1, 0);
    }
    s
}
