//! Every algorithm run by an in-memory simulator of n ranks (sans I/O): a send completes
//! only once its receive matched it (rendezvous semantics, so a schedule that relies on
//! buffering deadlocks here), messages between two ranks match in order, a receive must
//! get exactly the bytes it expects. Results are checked against a direct computation.

#![allow(clippy::needless_range_loop)]

use std::collections::VecDeque;
use std::sync::Arc;

use super::op::{apply, Elem, Op};
use super::sched::{At, Buf, Schedule, Step};
use super::*;
use crate::Rank;

struct RankState {
    send: Vec<u8>,
    recv: Vec<u8>,
    tmps: Vec<Vec<u8>>,
    sched: Schedule,
    round: usize,
    started: bool,
    recvs: Vec<(At, usize, Rank, bool)>,
    sends: usize,
}

impl RankState {
    fn ptr(&mut self, a: At) -> *mut u8 {
        match a.buf {
            Buf::Send => self.send.as_mut_ptr().wrapping_add(a.off),
            Buf::Recv => self.recv.as_mut_ptr().wrapping_add(a.off),
            Buf::Tmp(i) => self.tmps[i].as_mut_ptr().wrapping_add(a.off),
        }
    }
    fn check(&self, a: At, len: usize) {
        let cap = match a.buf {
            Buf::Send => self.send.len(),
            Buf::Recv => self.recv.len(),
            Buf::Tmp(i) => self.tmps[i].len(),
        };
        assert!(a.off + len <= cap, "{a:?}+{len} outside a buffer of {cap}");
    }
}

/// Runs one schedule per rank; `sends` and `recvs` are the caller's buffers (in place: the
/// same contents). Returns the receive buffers.
fn simulate(
    scheds: Vec<Schedule>,
    sends: Vec<Vec<u8>>,
    recvs: Vec<Vec<u8>>,
    op: Option<(Op, Elem)>,
) -> Vec<Vec<u8>> {
    let n = scheds.len();
    let mut st: Vec<RankState> = scheds
        .into_iter()
        .zip(sends.into_iter().zip(recvs))
        .map(|(s, (send, recv))| RankState {
            tmps: s.tmps.iter().map(|&b| vec![0u8; b]).collect(),
            send,
            recv,
            sched: s,
            round: 0,
            started: false,
            recvs: vec![],
            sends: 0,
        })
        .collect();
    // chan[src][dst]: messages in flight (bytes, sender rank, consumed flag shared).
    let mut chan: Vec<Vec<VecDeque<Vec<u8>>>> = vec![vec![VecDeque::new(); n]; n];
    // consumed[src]: sends of the current round consumed.
    let mut consumed = vec![0usize; n];
    loop {
        let mut progress = false;
        for r in 0..n {
            let s = &mut st[r];
            if s.round == s.sched.rounds() {
                continue;
            }
            if !s.started {
                s.started = true;
                progress = true;
                s.recvs.clear();
                s.sends = 0;
                consumed[r] = 0;
                let steps = s.sched.round_steps(s.round).to_vec();
                for step in &steps {
                    match *step {
                        Step::Copy { from, to, len } => {
                            s.check(from, len);
                            s.check(to, len);
                            let (f, t) = (s.ptr(from), s.ptr(to));
                            unsafe { std::ptr::copy(f, t, len) };
                        }
                        Step::Reduce {
                            from,
                            into,
                            count,
                            rev,
                        } => {
                            let (o, e) = op.clone().expect("reduce without op");
                            let bytes = count * e.size();
                            s.check(from, bytes);
                            s.check(into, bytes);
                            let (f, t) = (s.ptr(from), s.ptr(into));
                            let (a, b) = if rev {
                                (t as *const u8, f)
                            } else {
                                (f as *const u8, t)
                            };
                            match &o {
                                Op::User { f: uf, .. } => unsafe {
                                    uf(
                                        std::slice::from_raw_parts(a, bytes),
                                        std::slice::from_raw_parts_mut(b, bytes),
                                    )
                                },
                                _ => assert!(unsafe { apply(&o, e, a, b, count) }),
                            }
                            if rev {
                                unsafe { std::ptr::copy(f, t, bytes) };
                            }
                        }
                        _ => {}
                    }
                }
                for step in &steps {
                    match *step {
                        Step::Send { at, len, to } => {
                            assert_ne!(to as usize, r, "a schedule sends to itself");
                            s.check(at, len);
                            let p = s.ptr(at);
                            let data = unsafe { std::slice::from_raw_parts(p, len) }.to_vec();
                            chan[r][to as usize].push_back(data);
                            s.sends += 1;
                        }
                        Step::Recv { at, len, from } => {
                            assert_ne!(from as usize, r, "a schedule receives from itself");
                            s.check(at, len);
                            s.recvs.push((at, len, from, false));
                        }
                        _ => {}
                    }
                }
            }
            // Match receives in post order per source.
            for i in 0..st[r].recvs.len() {
                let (at, len, from, done) = st[r].recvs[i];
                if done {
                    continue;
                }
                // Only the oldest unmatched receive from `from` may match.
                if st[r].recvs[..i].iter().any(|x| x.2 == from && !x.3) {
                    continue;
                }
                if let Some(m) = chan[from as usize][r].pop_front() {
                    assert_eq!(
                        m.len(),
                        len,
                        "rank {r} expected {len} bytes from {from}, got {}",
                        m.len()
                    );
                    let p = st[r].ptr(at);
                    unsafe { std::ptr::copy_nonoverlapping(m.as_ptr(), p, len) };
                    st[r].recvs[i].3 = true;
                    consumed[from as usize] += 1;
                    progress = true;
                }
            }
        }
        // A rank's round ends when its receives matched and its sends were consumed.
        let mut all_done = true;
        for r in 0..n {
            let s = &mut st[r];
            if s.round == s.sched.rounds() {
                continue;
            }
            all_done = false;
            let sends_left = chan
                .iter()
                .enumerate()
                .filter(|(src, _)| *src == r)
                .map(|(_, c)| c.iter().map(|q| q.len()).sum::<usize>())
                .sum::<usize>();
            if s.started && s.recvs.iter().all(|x| x.3) && sends_left == 0 {
                s.round += 1;
                s.started = false;
                progress = true;
            }
        }
        if all_done {
            break;
        }
        assert!(
            progress,
            "deadlock: ranks at rounds {:?}",
            st.iter().map(|s| s.round).collect::<Vec<_>>()
        );
    }
    st.into_iter().map(|s| s.recv).collect()
}

fn i64s(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}
fn to_i64s(b: &[u8]) -> Vec<i64> {
    b.chunks(8)
        .map(|c| i64::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}
fn input(r: usize, count: usize) -> Vec<i64> {
    (0..count)
        .map(|i| (r as i64 + 1) * 1000 + i as i64)
        .collect()
}

/// A non-commutative associative op on 2×2 matrices of u64 (4 U64 elements each).
fn matmul() -> Op {
    Op::User {
        f: Arc::new(|a: &[u8], b: &mut [u8]| {
            let x = to_i64s(a);
            let mut y = to_i64s(b);
            for (m, n) in x.chunks(4).zip(y.chunks_mut(4)) {
                let r = [
                    m[0].wrapping_mul(n[0])
                        .wrapping_add(m[1].wrapping_mul(n[2])),
                    m[0].wrapping_mul(n[1])
                        .wrapping_add(m[1].wrapping_mul(n[3])),
                    m[2].wrapping_mul(n[0])
                        .wrapping_add(m[3].wrapping_mul(n[2])),
                    m[2].wrapping_mul(n[1])
                        .wrapping_add(m[3].wrapping_mul(n[3])),
                ];
                n.copy_from_slice(&r);
            }
            b.copy_from_slice(&i64s(&y));
        }),
        commutative: false,
    }
}

fn combine(op: &Op, xs: &[Vec<i64>]) -> Vec<i64> {
    // x0 ⊕ x1 ⊕ … in rank order.
    let mut acc = xs[xs.len() - 1].clone();
    for x in xs[..xs.len() - 1].iter().rev() {
        let mut b = i64s(&acc);
        match op {
            Op::User { f, .. } => f(&i64s(x), &mut b),
            o => assert!(unsafe { apply(o, Elem::I64, i64s(x).as_ptr(), b.as_mut_ptr(), x.len()) }),
        }
        acc = to_i64s(&b);
    }
    acc
}

const NS: [u32; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 11];

#[test]
fn barrier_completes() {
    for n in NS {
        let s = (0..n).map(|r| barrier::dissemination(r, n)).collect();
        simulate(s, vec![vec![]; n as usize], vec![vec![]; n as usize], None);
    }
}

#[test]
fn bcast_both_algorithms() {
    for n in NS {
        for len in [0usize, 1, 7, 100, 4099] {
            for root in [0, n / 2, n - 1] {
                for algo in 0..2 {
                    let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                    let s = (0..n)
                        .map(|r| {
                            if algo == 0 {
                                bcast::binomial(r, n, root, len)
                            } else {
                                bcast::scatter_ring_allgather(r, n, root, len)
                            }
                        })
                        .collect();
                    let recvs = (0..n)
                        .map(|r| {
                            if r == root {
                                data.clone()
                            } else {
                                vec![0; len]
                            }
                        })
                        .collect();
                    let out = simulate(s, vec![vec![]; n as usize], recvs, None);
                    assert!(
                        out.iter().all(|o| *o == data),
                        "n={n} len={len} root={root} algo={algo}"
                    );
                }
            }
        }
    }
}

#[test]
fn reduce_commutative_and_not() {
    for n in NS {
        for (op, count) in [(Op::Sum, 5usize), (Op::Max, 1), (matmul(), 8)] {
            for root in [0, n - 1] {
                let xs: Vec<Vec<i64>> = (0..n as usize).map(|r| input(r, count)).collect();
                let want = combine(&op, &xs);
                let s = (0..n)
                    .map(|r| {
                        reduce::binomial(
                            r,
                            n,
                            root,
                            count,
                            8,
                            op.commutative(),
                            false,
                            Buf::Recv.at(0),
                        )
                    })
                    .collect();
                let out = simulate(
                    s,
                    xs.iter().map(|x| i64s(x)).collect(),
                    vec![vec![0; count * 8]; n as usize],
                    Some((op.clone(), Elem::I64)),
                );
                assert_eq!(
                    to_i64s(&out[root as usize]),
                    want,
                    "n={n} {op:?} root={root}"
                );
            }
        }
    }
}

#[test]
fn allreduce_every_path() {
    for n in NS {
        for (op, count) in [
            (Op::Sum, 3usize),
            (Op::Sum, 9000),
            (Op::Min, 40),
            (matmul(), 4),
        ] {
            for in_place in [false, true] {
                let xs: Vec<Vec<i64>> = (0..n as usize).map(|r| input(r, count)).collect();
                let want = combine(&op, &xs);
                let s = (0..n)
                    .map(|r| allreduce::allreduce(r, n, count, 8, op.commutative(), in_place))
                    .collect();
                let (sends, recvs) = if in_place {
                    (
                        vec![vec![]; n as usize],
                        xs.iter().map(|x| i64s(x)).collect(),
                    )
                } else {
                    (
                        xs.iter().map(|x| i64s(x)).collect(),
                        vec![vec![0; count * 8]; n as usize],
                    )
                };
                let out = simulate(s, sends, recvs, Some((op.clone(), Elem::I64)));
                for (r, o) in out.iter().enumerate() {
                    assert_eq!(to_i64s(o), want, "n={n} {op:?} count={count} rank {r}");
                }
                if op.commutative() && count > n as usize {
                    // Both commutative algorithms explicitly.
                    let s = (0..n)
                        .map(|r| allreduce::ring(r, n, count, 8, false))
                        .collect();
                    let out = simulate(
                        s,
                        xs.iter().map(|x| i64s(x)).collect(),
                        vec![vec![0; count * 8]; n as usize],
                        Some((op.clone(), Elem::I64)),
                    );
                    assert!(out.iter().all(|o| to_i64s(o) == want), "ring n={n}");
                    let s = (0..n)
                        .map(|r| allreduce::recursive_doubling(r, n, count, 8, false))
                        .collect();
                    let out = simulate(
                        s,
                        xs.iter().map(|x| i64s(x)).collect(),
                        vec![vec![0; count * 8]; n as usize],
                        Some((op.clone(), Elem::I64)),
                    );
                    assert!(
                        out.iter().all(|o| to_i64s(o) == want),
                        "recursive doubling n={n}"
                    );
                }
            }
        }
    }
}

fn blocks_uniform(n: u32, len: usize) -> Vec<(usize, usize)> {
    (0..n as usize).map(|i| (i * len, len)).collect()
}

#[test]
fn gather_scatter_allgather_alltoall() {
    for n in NS {
        let nu = n as usize;
        for len in [0usize, 3, 5000] {
            let data = |r: usize| -> Vec<u8> { (0..len).map(|i| (r * 31 + i) as u8).collect() };
            let all: Vec<u8> = (0..nu).flat_map(data).collect();
            let b = blocks_uniform(n, len);
            for root in [0, n - 1] {
                let s = (0..n)
                    .map(|r| gather::linear_gather(r, n, root, len, &b, false))
                    .collect();
                let out = simulate(
                    s,
                    (0..nu).map(data).collect(),
                    vec![vec![0; nu * len]; nu],
                    None,
                );
                assert_eq!(out[root as usize], all, "gather n={n}");
                let s = (0..n)
                    .map(|r| gather::linear_scatter(r, n, root, Buf::Send, &b, len, false))
                    .collect();
                let out = simulate(s, vec![all.clone(); nu], vec![vec![0; len]; nu], None);
                for r in 0..nu {
                    assert_eq!(out[r], data(r), "scatter n={n}");
                }
            }
            for in_place in [false, true] {
                let s = (0..n)
                    .map(|r| allgather::allgather(r, n, &b, in_place))
                    .collect();
                let recvs = (0..nu)
                    .map(|r| {
                        let mut v = vec![0; nu * len];
                        if in_place {
                            v[r * len..(r + 1) * len].copy_from_slice(&data(r));
                        }
                        v
                    })
                    .collect();
                let out = simulate(s, (0..nu).map(data).collect(), recvs, None);
                assert!(out.iter().all(|o| *o == all), "allgather n={n} len={len}");
                // alltoall: rank r's block j is (r, j).
                let a2a = |r: usize| -> Vec<u8> {
                    (0..nu)
                        .flat_map(|j| (0..len).map(move |i| (r * 13 + j * 7 + i) as u8))
                        .collect()
                };
                let want = |r: usize| -> Vec<u8> {
                    (0..nu)
                        .flat_map(|j| (0..len).map(move |i| (j * 13 + r * 7 + i) as u8))
                        .collect()
                };
                let s = (0..n)
                    .map(|r| alltoall::alltoall(r, n, &b, &b, in_place))
                    .collect();
                let (sends, recvs) = if in_place {
                    (vec![vec![]; nu], (0..nu).map(a2a).collect())
                } else {
                    ((0..nu).map(a2a).collect(), vec![vec![0; nu * len]; nu])
                };
                let out = simulate(s, sends, recvs, None);
                for r in 0..nu {
                    assert_eq!(
                        out[r],
                        want(r),
                        "alltoall n={n} len={len} in_place={in_place}"
                    );
                }
            }
        }
    }
}

#[test]
fn reduce_scatter_and_scans() {
    for n in NS {
        let nu = n as usize;
        for op in [Op::Sum, matmul()] {
            let per = 4usize;
            let counts: Vec<usize> = (0..nu).map(|r| per * (1 + r % 2)).collect();
            let total: usize = counts.iter().sum();
            let xs: Vec<Vec<i64>> = (0..nu).map(|r| input(r, total)).collect();
            let want = combine(&op, &xs);
            let s = (0..n)
                .map(|r| reduce_scatter::reduce_scatter(r, n, &counts, 8, op.commutative(), false))
                .collect();
            let out = simulate(
                s,
                xs.iter().map(|x| i64s(x)).collect(),
                counts.iter().map(|&c| vec![0; c * 8]).collect(),
                Some((op.clone(), Elem::I64)),
            );
            let mut off = 0;
            for r in 0..nu {
                assert_eq!(
                    to_i64s(&out[r]),
                    want[off..off + counts[r]].to_vec(),
                    "reduce_scatter n={n} {op:?} rank {r}"
                );
                off += counts[r];
            }
            for exclusive in [false, true] {
                let xs: Vec<Vec<i64>> = (0..nu).map(|r| input(r, per)).collect();
                let s = (0..n)
                    .map(|r| scan::recursive_doubling(r, n, per, 8, false, exclusive))
                    .collect();
                let out = simulate(
                    s,
                    xs.iter().map(|x| i64s(x)).collect(),
                    vec![vec![0; per * 8]; nu],
                    Some((op.clone(), Elem::I64)),
                );
                for r in 0..nu {
                    let upto = if exclusive { r } else { r + 1 };
                    if upto == 0 {
                        continue;
                    }
                    assert_eq!(
                        to_i64s(&out[r]),
                        combine(&op, &xs[..upto]),
                        "scan n={n} excl={exclusive} rank {r}"
                    );
                }
            }
        }
    }
}
