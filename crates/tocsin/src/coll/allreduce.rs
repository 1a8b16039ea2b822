//! Allreduce, chosen by size (Thakur, Rabenseifner and Gropp, IJHPCA 2005; Patarasuk and
//! Yuan, "Bandwidth optimal all-reduce algorithms for clusters of workstations", JPDC 2009):
//! - [`recursive_doubling`] for short messages: ⌈log2 n⌉ exchanges of the whole vector
//!   (ranks beyond the largest power of two first fold into a partner, MPICH's way);
//! - [`ring`] for long ones: a ring reduce-scatter then a ring allgather, 2·(n−1)/n·len
//!   bytes per rank, each element combined once per rank;
//! - a non-commutative operation: binomial reduce to rank 0 in rank order, then a binomial
//!   broadcast.
//!
//! Owns only the schedules. The result is in [`Buf::Recv`] (which holds the input too under
//! MPI_IN_PLACE).

use super::sched::{even_blocks, Buf, Schedule};
use crate::Rank;

/// Vectors of at least this many bytes (and one element per rank) use the ring.
pub(crate) const LONG: usize = 64 * 1024;

/// Allreduce of `count` elements of `esz` bytes, chosen by size and commutativity.
pub(crate) fn allreduce(
    me: Rank,
    n: u32,
    count: usize,
    esz: usize,
    commutative: bool,
    in_place: bool,
) -> Schedule {
    if !commutative {
        let mut s = super::reduce::binomial(me, n, 0, count, esz, false, in_place, Buf::Recv.at(0));
        s.then(super::bcast::binomial(me, n, 0, count * esz));
        return s;
    }
    if count * esz < LONG || count < n as usize {
        recursive_doubling(me, n, count, esz, in_place)
    } else {
        ring(me, n, count, esz, in_place)
    }
}

/// Recursive doubling (commutative operations).
pub(crate) fn recursive_doubling(
    me: Rank,
    n: u32,
    count: usize,
    esz: usize,
    in_place: bool,
) -> Schedule {
    let bytes = count * esz;
    let mut s = Schedule::new();
    let acc = Buf::Recv.at(0);
    if !in_place {
        s.copy(Buf::Send.at(0), acc, bytes);
    }
    let tmp = s.tmp(bytes).at(0);
    let pof2 = if n.is_power_of_two() {
        n
    } else {
        n.next_power_of_two() / 2
    };
    let rem = n - pof2;
    let newrank = if me < 2 * rem {
        if me % 2 == 0 {
            s.round().send(acc, bytes, me + 1);
            None
        } else {
            s.round().recv(tmp, bytes, me - 1);
            s.round().reduce(tmp, acc, count, false);
            Some(me / 2)
        }
    } else {
        Some(me - rem)
    };
    if let Some(nr) = newrank {
        let mut mask = 1;
        while mask < pof2 {
            let pn = nr ^ mask;
            let partner = if pn < rem { pn * 2 + 1 } else { pn + rem };
            s.round()
                .send(acc, bytes, partner)
                .recv(tmp, bytes, partner);
            s.round().reduce(tmp, acc, count, false);
            mask <<= 1;
        }
    }
    if me < 2 * rem {
        if me % 2 == 1 {
            s.round().send(acc, bytes, me - 1);
        } else {
            s.round().recv(acc, bytes, me + 1);
        }
    }
    s
}

/// Ring reduce-scatter of `count` elements in `acc` (in place; `n` near-equal blocks):
/// afterwards rank `me` holds the full result of block `(me + 1 + shift) mod n`.
pub(crate) fn ring_reduce_scatter(
    s: &mut Schedule,
    me: Rank,
    n: u32,
    blocks: &[(usize, usize)],
    acc: Buf,
    esz: usize,
    shift: u32,
) {
    let maxb = blocks.iter().map(|b| b.1).max().unwrap_or(0);
    let tmp = s.tmp(maxb);
    let (left, right) = ((me + n - 1) % n, (me + 1) % n);
    let blk = |k: u32| blocks[(k % n) as usize];
    let mut last: Option<(usize, usize)> = None;
    for k in 0..n - 1 {
        s.round();
        if let Some((off, len)) = last {
            s.reduce(tmp.at(0), acc.at(off), len / esz, false);
        }
        let (so, sl) = blk(me + shift + 2 * n - k);
        let (ro, rl) = blk(me + shift + 2 * n - k - 1);
        s.send(acc.at(so), sl, right).recv(tmp.at(0), rl, left);
        last = Some((ro, rl));
    }
    if let Some((off, len)) = last {
        s.round().reduce(tmp.at(0), acc.at(off), len / esz, false);
    }
}

/// Ring allgather of blocks of `buf` in place: rank `me` starts holding block
/// `(me + 1 + shift) mod n`.
pub(crate) fn ring_allgather(
    s: &mut Schedule,
    me: Rank,
    n: u32,
    blocks: &[(usize, usize)],
    buf: Buf,
    shift: u32,
) {
    let (left, right) = ((me + n - 1) % n, (me + 1) % n);
    let blk = |k: u32| blocks[(k % n) as usize];
    for k in 0..n - 1 {
        let (so, sl) = blk(me + shift + 1 + 2 * n - k);
        let (ro, rl) = blk(me + shift + 2 * n - k);
        s.round()
            .send(buf.at(so), sl, right)
            .recv(buf.at(ro), rl, left);
    }
}

/// Ring allreduce (commutative operations): reduce-scatter then allgather.
pub(crate) fn ring(me: Rank, n: u32, count: usize, esz: usize, in_place: bool) -> Schedule {
    let mut s = Schedule::new();
    if !in_place {
        s.copy(Buf::Send.at(0), Buf::Recv.at(0), count * esz);
    }
    let blocks = even_blocks(count, esz, n);
    ring_reduce_scatter(&mut s, me, n, &blocks, Buf::Recv, esz, 0);
    ring_allgather(&mut s, me, n, &blocks, Buf::Recv, 0);
    s
}
