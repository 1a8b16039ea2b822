//! Broadcast, chosen by size as MPICH does (Thakur, Rabenseifner and Gropp, "Optimization
//! of Collective Communication Operations in MPICH", IJHPCA 2005):
//! - [`binomial`] tree for short messages or few ranks: ⌈log2 n⌉ steps of the whole
//!   message;
//! - [`scatter_ring_allgather`] (van de Geijn) for long messages on 8 ranks or more: a
//!   binomial scatter of n blocks, then a ring allgather, ≈ 2·len bytes per rank whatever n.
//!
//! Owns only the schedules. The buffer is [`Buf::Recv`] on every rank (the root's holds the
//! data).

use super::sched::{Buf, Schedule};
use crate::Rank;

/// Messages of at least this many bytes use [`scatter_ring_allgather`] (MPICH's
/// `MPIR_CVAR_BCAST_LONG_MSG_SIZE` is 512 KiB; its medium range uses the same scatter).
pub(crate) const LONG: usize = 12 * 1024;
/// Fewest ranks for which the scatter-allgather pays (MPICH: `BCAST_MIN_PROCS` = 8).
pub(crate) const MIN_RANKS: u32 = 8;

/// The broadcast of `len` bytes from `root`, chosen by size.
pub(crate) fn bcast(me: Rank, n: u32, root: Rank, len: usize) -> Schedule {
    if len < LONG || n < MIN_RANKS {
        binomial(me, n, root, len)
    } else {
        scatter_ring_allgather(me, n, root, len)
    }
}

/// Parent of relative rank `vr` and the lowest bit set in it (`n` rounded up to a power of
/// two for the root).
fn parent(vr: u32, n: u32) -> (Option<u32>, u32) {
    let mut mask = 1;
    while mask < n {
        if vr & mask != 0 {
            return (Some(vr - mask), mask);
        }
        mask <<= 1;
    }
    (None, mask)
}

/// Binomial-tree broadcast.
pub(crate) fn binomial(me: Rank, n: u32, root: Rank, len: usize) -> Schedule {
    let mut s = Schedule::new();
    let vr = (me + n - root) % n;
    let real = |v: u32| (v + root) % n;
    let (p, mask) = parent(vr, n);
    if let Some(p) = p {
        s.round().recv(Buf::Recv.at(0), len, real(p));
    }
    s.round();
    let mut m = mask >> 1;
    while m > 0 {
        if vr + m < n {
            s.send(Buf::Recv.at(0), len, real(vr + m));
        }
        m >>= 1;
    }
    s
}

/// Scatter (binomial) then ring allgather (van de Geijn).
pub(crate) fn scatter_ring_allgather(me: Rank, n: u32, root: Rank, len: usize) -> Schedule {
    let mut s = Schedule::new();
    let vr = (me + n - root) % n;
    let real = |v: u32| (v + root) % n;
    let chunk = len.div_ceil(n as usize);
    // Bytes of relative blocks [lo, hi).
    let span = |lo: u32, hi: u32| {
        let a = (lo as usize * chunk).min(len);
        let b = (hi.min(n) as usize * chunk).min(len);
        (a, b - a)
    };
    let (p, mask) = parent(vr, n);
    if let Some(p) = p {
        let (off, l) = span(vr, vr + mask);
        s.round().recv(Buf::Recv.at(off), l, real(p));
    }
    s.round();
    let mut m = mask >> 1;
    while m > 0 {
        if vr + m < n {
            let (off, l) = span(vr + m, vr + 2 * m);
            s.send(Buf::Recv.at(off), l, real(vr + m));
        }
        m >>= 1;
    }
    let (left, right) = (real((vr + n - 1) % n), real((vr + 1) % n));
    for k in 0..n - 1 {
        let sb = (vr + n - k) % n;
        let rb = (vr + 2 * n - k - 1) % n;
        let (so, sl) = span(sb, sb + 1);
        let (ro, rl) = span(rb, rb + 1);
        s.round()
            .send(Buf::Recv.at(so), sl, right)
            .recv(Buf::Recv.at(ro), rl, left);
    }
    s
}
