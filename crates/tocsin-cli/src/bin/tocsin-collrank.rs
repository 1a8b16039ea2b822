//! `tocsin-collrank`: the communicator and collective test program, one case per run, for
//! `tests/coll.rs`.
//!
//! Usage: `tocsin run -n N -- tocsin-collrank [--timeout S] CASE`. Every rank runs the case,
//! checks real outcomes (every byte of every result against a direct computation, error
//! variants) and prints `ok CASE rank R/N`; on failure `FAIL CASE rank R/N: why` on stderr
//! and exit 1; a watchdog ends a rank stuck past `--timeout` seconds (exit 3).
//!
//! Cases (any number of ranks unless said):
//! - `coll`: every collective (barrier, bcast, reduce, allreduce and in place, gather(v),
//!   scatter(v), allgather(v), alltoall(v), reduce_scatter(_block), scan, exscan) at sizes
//!   on both sides of each algorithm threshold, every root, predefined and user
//!   (non-commutative, order checked) operations, and the argument errors.
//! - `comms`: dup (a message on the dup never matches a receive on the parent), split by
//!   parity with reversed keys (ranks, sizes, collectives and point-to-point inside),
//!   split with MPI_UNDEFINED, create from a group, compare, groups and rank translation,
//!   split_shared, many communicators created and freed (context ids recycled), self_comm.
//! - `icoll`: nonblocking collectives (ibarrier, ibcast, ireduce, iallreduce, iallgather,
//!   ialltoall, igather, iscatter, iscan) several in flight at once, waited in another
//!   order; in the interrupt and thread modes, a 1 MiB iallreduce started before a
//!   computation without any tocsin call must have completed during it.
//! - `p2p-extra` (≥2): synchronous sends wait for the matching receive (rank 1 posts it
//!   after 400 ms), matched probes take a message so that a later receive gets the next
//!   one, persistent send/receive requests started five times, `test_any`/`wait_some`.
//! - `coll-die` (≥3): the last rank exits without joining an allreduce; the others must get
//!   `PeerDied` within seconds, even those whose own partners are alive (with 4 ranks the
//!   allreduce runs directly in the calling thread, pairwise).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tocsin::{Comm, Compare, Error, Op, ProgressMode, Rank};
use tocsin_cli::ensure;
use tocsin_cli::testkit::report::{self, step};
use tocsin_cli::testkit::{Ctx, R};

#[derive(Parser, Debug)]
#[command(
    name = "tocsin-collrank",
    about = "Communicator and collective test program"
)]
struct Cli {
    /// Seconds after which the watchdog ends a stuck rank (exit code 3).
    #[arg(long, global = true, default_value_t = 60)]
    timeout: u64,
    #[command(subcommand)]
    case: Case,
}

#[derive(Subcommand, Debug, Clone)]
enum Case {
    /// Every collective, checked.
    Coll,
    /// Communicator creation and isolation.
    Comms,
    /// Nonblocking collectives and their progress.
    Icoll,
    /// A rank missing from a collective exits.
    CollDie,
    /// Synchronous sends, matched probes, persistent requests, test_any/wait_some.
    P2pExtra,
}

fn val(r: Rank, i: usize) -> i64 {
    (r as i64 + 1) * 1_000_003 + i as i64 * 7
}

/// 2×2 integer matrices (4 i64 each) multiplied: associative, not commutative.
fn matmul() -> Op {
    Op::user(false, |a: &[i64], b: &mut [i64]| {
        for (m, n) in a.chunks(4).zip(b.chunks_mut(4)) {
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
    })
}

fn mat_of(r: Rank) -> [i64; 4] {
    [1, r as i64 + 1, 0, 1 + (r as i64 % 3)]
}

fn mat_mul(m: &[i64; 4], n: &[i64; 4]) -> [i64; 4] {
    [
        m[0] * n[0] + m[1] * n[2],
        m[0] * n[1] + m[1] * n[3],
        m[2] * n[0] + m[3] * n[2],
        m[2] * n[1] + m[3] * n[3],
    ]
}

/// x0 · x1 · … · x(k−1).
fn mat_prefix(k: u32) -> [i64; 4] {
    let mut acc = [1, 0, 0, 1];
    for r in 0..k {
        acc = mat_mul(&acc, &mat_of(r));
    }
    acc
}

fn case_coll(comm: &Comm) -> R {
    let (me, n) = (comm.rank(), comm.size());
    let nu = n as usize;
    step("barrier");
    comm.barrier().ctx("barrier")?;
    for len in [0usize, 1, 1000, 5000, 70_000] {
        for root in 0..n {
            step(format!("bcast len {len} root {root}"));
            let want: Vec<u8> = (0..len).map(|i| (i * 13 + root as usize) as u8).collect();
            let mut b = if me == root {
                want.clone()
            } else {
                vec![0u8; len]
            };
            comm.bcast(&mut b, root).ctx("bcast")?;
            ensure!(b == want, "bcast len {len} root {root}: wrong bytes");
        }
    }
    for count in [1usize, 100, 10_000] {
        let send: Vec<i64> = (0..count).map(|i| val(me, i)).collect();
        let sum: Vec<i64> = (0..count)
            .map(|i| (0..n).map(|r| val(r, i)).sum())
            .collect();
        let max: Vec<i64> = (0..count).map(|i| val(n - 1, i)).collect();
        for root in [0, n - 1] {
            step(format!("reduce {count} root {root}"));
            let mut out = vec![0i64; if me == root { count } else { 0 }];
            comm.reduce(&send, &mut out, Op::Sum, root).ctx("reduce")?;
            if me == root {
                ensure!(out == sum, "reduce sum count {count} root {root}");
            }
        }
        step(format!("allreduce {count}"));
        let mut out = vec![0i64; count];
        comm.allreduce(&send, &mut out, Op::Sum).ctx("allreduce")?;
        ensure!(out == sum, "allreduce sum count {count}");
        comm.allreduce(&send, &mut out, Op::Max)
            .ctx("allreduce max")?;
        ensure!(out == max, "allreduce max count {count}");
        let mut inplace = send.clone();
        comm.allreduce_in_place(&mut inplace, Op::Sum)
            .ctx("allreduce in place")?;
        ensure!(inplace == sum, "allreduce in place count {count}");
        let fs: Vec<f64> = (0..count).map(|i| i as f64 + me as f64 * 0.5).collect();
        let mut fo = vec![0f64; count];
        comm.allreduce(&fs, &mut fo, Op::Sum).ctx("allreduce f64")?;
        for (i, v) in fo.iter().enumerate() {
            let want: f64 = (0..n).map(|r| i as f64 + r as f64 * 0.5).sum();
            ensure!(
                (v - want).abs() < 1e-6,
                "allreduce f64 [{i}] = {v}, want {want}"
            );
        }
        step(format!("scan {count}"));
        comm.scan(&send, &mut out, Op::Sum).ctx("scan")?;
        for (i, v) in out.iter().enumerate() {
            ensure!(*v == (0..=me).map(|r| val(r, i)).sum::<i64>(), "scan [{i}]");
        }
        let mut ex = vec![-1i64; count];
        comm.exscan(&send, &mut ex, Op::Sum).ctx("exscan")?;
        if me > 0 {
            for (i, v) in ex.iter().enumerate() {
                ensure!(
                    *v == (0..me).map(|r| val(r, i)).sum::<i64>(),
                    "exscan [{i}]"
                );
            }
        }
    }
    step("non-commutative user op");
    let m: Vec<i64> = mat_of(me).to_vec();
    let mut out = vec![0i64; 4];
    comm.allreduce(&m, &mut out, matmul())
        .ctx("allreduce matmul")?;
    ensure!(
        out == mat_prefix(n),
        "allreduce matmul: {out:?} vs {:?}",
        mat_prefix(n)
    );
    for root in 0..n {
        let mut o = vec![0i64; if me == root { 4 } else { 0 }];
        comm.reduce(&m, &mut o, matmul(), root)
            .ctx("reduce matmul")?;
        if me == root {
            ensure!(o == mat_prefix(n), "reduce matmul root {root}");
        }
    }
    comm.scan(&m, &mut out, matmul()).ctx("scan matmul")?;
    ensure!(out == mat_prefix(me + 1), "scan matmul");
    for len in [3usize, 3000] {
        step(format!("gather/scatter/allgather/alltoall {len}"));
        let mine: Vec<u32> = (0..len).map(|i| me * 100_000 + i as u32).collect();
        let all: Vec<u32> = (0..n)
            .flat_map(|r| (0..len).map(move |i| r * 100_000 + i as u32))
            .collect();
        for root in [0, n - 1] {
            let mut g = vec![0u32; if me == root { nu * len } else { 0 }];
            comm.gather(&mine, &mut g, root).ctx("gather")?;
            if me == root {
                ensure!(g == all, "gather len {len} root {root}");
            }
            let mut s = vec![0u32; len];
            let src = if me == root { all.clone() } else { vec![] };
            comm.scatter(&src, &mut s, root).ctx("scatter")?;
            ensure!(s == mine, "scatter len {len} root {root}");
        }
        let mut ag = vec![0u32; nu * len];
        comm.allgather(&mine, &mut ag).ctx("allgather")?;
        ensure!(ag == all, "allgather len {len}");
        let a2a: Vec<u32> = (0..n)
            .flat_map(|j| (0..len).map(move |i| me * 1000 + j * 10 + i as u32))
            .collect();
        let mut got = vec![0u32; nu * len];
        comm.alltoall(&a2a, &mut got).ctx("alltoall")?;
        let want: Vec<u32> = (0..n)
            .flat_map(|j| (0..len).map(move |i| j * 1000 + me * 10 + i as u32))
            .collect();
        ensure!(got == want, "alltoall len {len}");
    }
    step("v-variants");
    // Rank r contributes r + 1 elements.
    let counts: Vec<usize> = (0..nu).map(|r| r + 1).collect();
    let displs: Vec<usize> = (0..nu).map(|r| r * (r + 1) / 2 + r).collect();
    let total = displs[nu - 1] + counts[nu - 1];
    let mine: Vec<u16> = (0..=me as usize)
        .map(|i| (me as usize * 50 + i) as u16)
        .collect();
    let mut agv = vec![0u16; total];
    comm.allgatherv(&mine, &mut agv, &counts, &displs)
        .ctx("allgatherv")?;
    for r in 0..nu {
        for i in 0..=r {
            ensure!(
                agv[displs[r] + i] == (r * 50 + i) as u16,
                "allgatherv rank {r} elem {i}"
            );
        }
    }
    let mut gv = vec![0u16; if me == 0 { total } else { 0 }];
    comm.gatherv(&mine, &mut gv, &counts, &displs, 0)
        .ctx("gatherv")?;
    if me == 0 {
        ensure!(
            gv.iter().zip(&agv).enumerate().all(|(i, (a, b))| a == b
                || !displs
                    .iter()
                    .zip(&counts)
                    .any(|(d, c)| i >= *d && i < d + c)),
            "gatherv"
        );
    }
    let mut sv = vec![0u16; me as usize + 1];
    comm.scatterv(&agv, &counts, &displs, &mut sv, 0)
        .ctx("scatterv")?;
    ensure!(sv == mine, "scatterv");
    let sc: Vec<usize> = (0..nu).map(|j| (me as usize + j) % 3).collect();
    let rc: Vec<usize> = (0..nu).map(|j| (j + me as usize) % 3).collect();
    let prefix = |c: &[usize]| {
        c.iter()
            .scan(0, |a, x| {
                let d = *a;
                *a += x;
                Some(d)
            })
            .collect::<Vec<_>>()
    };
    let (sd, rd) = (prefix(&sc), prefix(&rc));
    let sbuf: Vec<u32> = (0..nu)
        .flat_map(|j| (0..sc[j]).map(move |i| me * 100 + j as u32 * 10 + i as u32))
        .collect();
    let mut rbuf = vec![0u32; rc.iter().sum()];
    comm.alltoallv(&sbuf, &sc, &sd, &mut rbuf, &rc, &rd)
        .ctx("alltoallv")?;
    for j in 0..nu {
        for i in 0..rc[j] {
            ensure!(
                rbuf[rd[j] + i] == j as u32 * 100 + me * 10 + i as u32,
                "alltoallv from {j} elem {i}"
            );
        }
    }
    step("reduce_scatter");
    let per = 5usize;
    let send: Vec<i32> = (0..nu * per).map(|i| me as i32 * 3 + i as i32).collect();
    let mut rs = vec![0i32; per];
    comm.reduce_scatter_block(&send, &mut rs, Op::Sum)
        .ctx("reduce_scatter_block")?;
    for (k, v) in rs.iter().enumerate() {
        let i = me as usize * per + k;
        ensure!(
            *v == (0..n as i32).map(|r| r * 3 + i as i32).sum::<i32>(),
            "reduce_scatter_block [{k}]"
        );
    }
    let counts: Vec<usize> = (0..nu).map(|r| r % 2 + 1).collect();
    let send: Vec<i32> = (0..counts.iter().sum::<usize>())
        .map(|i| i as i32 + me as i32)
        .collect();
    let mut rs = vec![0i32; counts[me as usize]];
    comm.reduce_scatter(&send, &mut rs, &counts, Op::Sum)
        .ctx("reduce_scatter")?;
    let off: usize = counts[..me as usize].iter().sum();
    for (k, v) in rs.iter().enumerate() {
        ensure!(
            *v == (0..n as i32).map(|r| (off + k) as i32 + r).sum::<i32>(),
            "reduce_scatter [{k}]"
        );
    }
    step("argument errors");
    let e = comm.bcast(&mut [0u8; 4], n).unwrap_err();
    ensure!(
        matches!(e, Error::InvalidRank { rank, .. } if rank == n),
        "bcast bad root: {e}"
    );
    let e = comm.allreduce(&[1.0f64], &mut [0.0], Op::Band).unwrap_err();
    ensure!(
        matches!(
            e,
            Error::InvalidArgument {
                what: "operation",
                ..
            }
        ),
        "band on f64: {e}"
    );
    let e = comm.allreduce(&[1i32, 2], &mut [0], Op::Sum).unwrap_err();
    ensure!(
        matches!(e, Error::InvalidArgument { .. }),
        "length mismatch: {e}"
    );
    comm.barrier().ctx("final barrier")?;
    Ok(())
}

fn case_comms(comm: &Comm) -> R {
    let (me, n) = (comm.rank(), comm.size());
    step("dup");
    let d = comm.dup().ctx("dup")?;
    ensure!(d.rank() == me && d.size() == n, "dup rank/size");
    ensure!(comm.compare(&d) == Compare::Congruent, "compare dup");
    ensure!(
        comm.compare(&comm.clone()) == Compare::Ident,
        "compare clone"
    );
    if n >= 2 {
        // A message on the dup must not match a receive on the parent.
        if me == 0 {
            d.send(&[1u8], 1, 5).ctx("send on dup")?;
            comm.send(&[2u8], 1, 5).ctx("send on parent")?;
        } else if me == 1 {
            let mut b = [0u8];
            comm.recv(&mut b, 0, 5).ctx("recv on parent")?;
            ensure!(b[0] == 2, "parent receive got the dup's message");
            d.recv(&mut b, 0, 5).ctx("recv on dup")?;
            ensure!(b[0] == 1, "dup receive");
        }
    }
    step("split by parity, reversed keys");
    let s = comm
        .split(Some(me % 2), -(me as i32))
        .ctx("split")?
        .ok_or_else(|| report::fail("split gave None".into()))?;
    let members: Vec<Rank> = (0..n).filter(|r| r % 2 == me % 2).rev().collect();
    ensure!(
        s.size() as usize == members.len(),
        "split size {}",
        s.size()
    );
    ensure!(
        s.rank() as usize == members.iter().position(|&r| r == me).unwrap_or(99),
        "split rank {}",
        s.rank()
    );
    let mut sum = [0u64];
    s.allreduce(&[me as u64], &mut sum, Op::Sum)
        .ctx("allreduce on split")?;
    ensure!(
        sum[0] == members.iter().map(|&r| r as u64).sum::<u64>(),
        "split allreduce"
    );
    // Point-to-point inside: a ring by split rank; sources in statuses are split ranks.
    if s.size() > 1 {
        let to = (s.rank() + 1) % s.size();
        let from = (s.rank() + s.size() - 1) % s.size();
        let mut b = [0u32];
        let st = s
            .sendrecv(&[me], to, 9, &mut b, tocsin::ANY_SOURCE, 9)
            .ctx("sendrecv on split")?;
        ensure!(
            st.source == from,
            "status source {} is not the split rank {from}",
            st.source
        );
        ensure!(
            s.world_rank(from) == Some(b[0]),
            "split ring got {} from split rank {from}",
            b[0]
        );
    }
    let g = s.group();
    let wg = comm.group();
    let t = g
        .translate_ranks(&(0..g.size()).collect::<Vec<_>>(), &wg)
        .ctx("translate")?;
    ensure!(
        t.iter().map(|x| x.unwrap_or(u32::MAX)).collect::<Vec<_>>() == members,
        "translate ranks {t:?}"
    );
    step("split with undefined");
    let u = comm
        .split((me != 0).then_some(0), 0)
        .ctx("split undefined")?;
    ensure!(
        u.is_some() == (me != 0),
        "split undefined gave {:?}",
        u.is_some()
    );
    if let Some(u) = &u {
        ensure!(
            u.size() == n - 1 && u.rank() == me - 1,
            "split minus rank 0"
        );
        u.barrier().ctx("barrier without rank 0")?;
    }
    step("create from group");
    let evens = wg
        .incl(&(0..n).filter(|r| r % 2 == 0).collect::<Vec<_>>())
        .ctx("incl")?;
    let c = comm.create(&evens).ctx("create")?;
    ensure!(c.is_some() == (me % 2 == 0), "create membership");
    if let Some(c) = &c {
        ensure!(
            c.compare(&s) == Compare::Similar || n <= 2,
            "create vs split: {:?}",
            c.compare(&s)
        );
        let mut v = vec![me; 1];
        c.bcast(&mut v, 0).ctx("bcast on created")?;
        ensure!(v[0] == 0, "bcast on created");
    }
    step("split_shared");
    let sh = comm.split_shared(0).ctx("split_shared")?;
    let expect_alone = std::env::var("TOCSIN_NOLOCAL").is_ok_and(|v| v == "1");
    if expect_alone {
        ensure!(
            sh.size() == 1,
            "split_shared under NOLOCAL has {} ranks",
            sh.size()
        );
    } else {
        ensure!(
            sh.size() == n,
            "split_shared on one node has {} ranks",
            sh.size()
        );
    }
    step("many communicators");
    for i in 0..300 {
        let x = comm.dup().with_ctx(|| format!("dup #{i}"))?;
        if i % 50 == 0 {
            x.barrier().ctx("barrier on dup")?;
        }
        x.free();
    }
    let held: Vec<Comm> = (0..40)
        .map(|_| comm.dup())
        .collect::<tocsin::Result<_>>()
        .ctx("40 dups")?;
    for (i, h) in held.iter().enumerate() {
        let mut v = [me as u64 + i as u64];
        h.allreduce_in_place(&mut v, Op::Max)
            .ctx("allreduce on held dup")?;
        ensure!(v[0] == (n - 1) as u64 + i as u64, "held dup {i}");
    }
    step("self");
    let sc = comm.self_comm();
    ensure!(sc.size() == 1 && sc.rank() == 0, "self comm");
    let mut b = [0u8; 3];
    sc.scope(|sp| -> R {
        let r = sp.irecv(&mut b, 0, 1).ctx("irecv self")?;
        sc.send(b"abc", 0, 1).ctx("send self")?;
        let st = r.wait().ctx("wait self")?;
        ensure!(st.source == 0 && st.len == 3, "self status");
        Ok(())
    })?;
    ensure!(&b == b"abc", "self data");
    comm.barrier().ctx("final barrier")?;
    Ok(())
}

fn spin(d: Duration) -> u64 {
    let t = Instant::now();
    let mut x = 0u64;
    while t.elapsed() < d {
        for i in 0..1000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
    }
    x
}

fn case_icoll(comm: &Comm) -> R {
    let (me, n) = (comm.rank(), comm.size());
    let nu = n as usize;
    step("several nonblocking collectives at once");
    let send: Vec<i64> = (0..1000).map(|i| val(me, i)).collect();
    let mut ar = vec![0i64; 1000];
    let mut bc = vec![if me == 0 { 7u8 } else { 0 }; 50_000];
    let mut ag = vec![0u32; nu * 10];
    let mine = vec![me; 10];
    let a2a: Vec<u32> = (0..nu as u32 * 3).map(|i| me * 100 + i).collect();
    let mut a2ar = vec![0u32; nu * 3];
    let mut red = vec![0i64; 1000];
    let mut sc = vec![0i64; 1000];
    comm.scope(|s| -> R {
        let r1 = s.iallreduce(&send, &mut ar, Op::Sum).ctx("iallreduce")?;
        let r2 = s.ibcast(&mut bc, 0).ctx("ibcast")?;
        let r3 = s.ibarrier().ctx("ibarrier")?;
        let r4 = s.iallgather(&mine, &mut ag).ctx("iallgather")?;
        let r5 = s.ialltoall(&a2a, &mut a2ar).ctx("ialltoall")?;
        let r6 = s.ireduce(&send, &mut red, Op::Sum, n - 1).ctx("ireduce")?;
        let r7 = s.iscan(&send, &mut sc, Op::Sum).ctx("iscan")?;
        // Waited in another order than started.
        r7.wait().ctx("wait iscan")?;
        r5.wait().ctx("wait ialltoall")?;
        r3.wait().ctx("wait ibarrier")?;
        r1.wait().ctx("wait iallreduce")?;
        r6.wait().ctx("wait ireduce")?;
        r2.wait().ctx("wait ibcast")?;
        r4.wait().ctx("wait iallgather")?;
        Ok(())
    })?;
    for i in 0..1000 {
        let sum: i64 = (0..n).map(|r| val(r, i)).sum();
        ensure!(ar[i] == sum, "iallreduce [{i}]");
        if me == n - 1 {
            ensure!(red[i] == sum, "ireduce [{i}]");
        }
        ensure!(
            sc[i] == (0..=me).map(|r| val(r, i)).sum::<i64>(),
            "iscan [{i}]"
        );
    }
    ensure!(bc.iter().all(|&b| b == 7), "ibcast");
    ensure!(
        ag.chunks(10)
            .enumerate()
            .all(|(r, c)| c.iter().all(|&x| x == r as u32)),
        "iallgather"
    );
    for j in 0..nu {
        for i in 0..3 {
            ensure!(
                a2ar[j * 3 + i] == j as u32 * 100 + me * 3 + i as u32,
                "ialltoall from {j}"
            );
        }
    }
    step("igather / iscatter");
    let all: Vec<u32> = (0..n * 4).collect();
    let mut g = vec![0u32; nu * 4];
    let mine: Vec<u32> = (me * 4..me * 4 + 4).collect();
    let mut s4 = vec![0u32; 4];
    comm.scope(|s| -> R {
        let a = s.igather(&mine, &mut g, 0).ctx("igather")?;
        let b = s.iscatter(&all, &mut s4, 0).ctx("iscatter")?;
        a.wait().ctx("wait igather")?;
        b.wait().ctx("wait iscatter")?;
        Ok(())
    })?;
    if me == 0 {
        ensure!(g == all, "igather");
    }
    ensure!(s4 == mine, "iscatter");
    let mode = comm.config().progress_mode();
    let behind = matches!(
        mode,
        ProgressMode::Signal | ProgressMode::Thread | ProgressMode::Uintr
    );
    step("iallreduce during a computation");
    comm.barrier().ctx("barrier")?;
    let big: Vec<f64> = (0..131_072).map(|i| i as f64 + me as f64).collect();
    let mut out = vec![0f64; big.len()];
    let done_during = comm.scope(|s| -> R<bool> {
        let mut r = s
            .iallreduce(&big, &mut out, Op::Sum)
            .ctx("iallreduce 1 MiB")?;
        // No tocsin call for 2 s (a hang guard's margin: the transfer takes milliseconds).
        spin(Duration::from_secs(2));
        let done = r.is_complete();
        r.test().ctx("test")?;
        r.wait().ctx("wait iallreduce 1 MiB")?;
        Ok(done)
    })?;
    for (i, v) in out.iter().enumerate().step_by(997) {
        let want: f64 = (0..n).map(|r| i as f64 + r as f64).sum();
        ensure!(*v == want, "iallreduce 1 MiB [{i}] = {v}, want {want}");
    }
    if behind {
        ensure!(
            done_during,
            "in {mode:?} mode the iallreduce did not progress during the computation"
        );
    }
    println!("icoll rank {me}: completed during computation: {done_during}");
    comm.barrier().ctx("final barrier")?;
    Ok(())
}

fn case_coll_die(comm: &Comm) -> R {
    let (me, n) = (comm.rank(), comm.size());
    ensure!(n >= 3, "coll-die needs at least 3 ranks");
    comm.barrier().ctx("barrier")?;
    if me == n - 1 {
        std::process::exit(0);
    }
    let t = Instant::now();
    let mut out = [0u64];
    let r = comm.allreduce(&[1u64], &mut out, Op::Sum);
    ensure!(
        matches!(r, Err(Error::PeerDied { .. })),
        "allreduce without the last rank gave {r:?}"
    );
    ensure!(
        t.elapsed() < Duration::from_secs(10),
        "PeerDied after {:?}",
        t.elapsed()
    );
    Ok(())
}

fn case_p2p_extra(comm: &Comm) -> R {
    let me = comm.rank();
    ensure!(comm.size() >= 2, "p2p-extra needs 2 ranks");
    step("ssend waits for the receive");
    comm.barrier().ctx("barrier")?;
    for len in [8usize, 200_000] {
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        if me == 0 {
            let t = Instant::now();
            comm.ssend(&data, 1, 3).ctx("ssend")?;
            let waited = t.elapsed();
            ensure!(waited >= Duration::from_millis(300), "ssend of {len} B returned after {waited:?}, before the receive was posted (400 ms)");
        } else if me == 1 {
            std::thread::sleep(Duration::from_millis(400));
            let mut b = vec![0u8; len];
            comm.recv(&mut b, 0, 3).ctx("recv of ssend")?;
            ensure!(b == data, "ssend data");
        }
        comm.barrier().ctx("barrier")?;
    }
    step("matched probe");
    if me == 0 {
        comm.send(b"first", 1, 7).ctx("send first")?;
        comm.send(&vec![9u8; 100_000], 1, 7).ctx("send second")?;
    } else if me == 1 {
        let m = comm.mprobe(0, 7).ctx("mprobe")?;
        ensure!(
            m.status().len == 5 && m.status().source == 0,
            "mprobe status {:?}",
            m.status()
        );
        // The probed message is no longer matchable: this receive gets the second one.
        let mut big = vec![0u8; 100_000];
        let st = comm.recv(&mut big, 0, 7).ctx("recv second")?;
        ensure!(
            st.len == 100_000 && big.iter().all(|&b| b == 9),
            "recv after mprobe got {st:?}"
        );
        let mut b = [0u8; 5];
        m.recv(&mut b).ctx("mrecv")?;
        ensure!(&b == b"first", "mrecv data");
        ensure!(
            comm.improbe(0, 7).ctx("improbe")?.is_none(),
            "improbe found a message"
        );
    }
    comm.barrier().ctx("barrier")?;
    step("persistent requests");
    let out: Vec<u64> = (0..1000).collect();
    let mut inb = vec![0u64; 1000];
    let peer = 1 - me.min(1);
    if me < 2 {
        comm.scope(|s| -> R {
            let mut snd = s.send_init(&out, peer, 11, me == 0).ctx("send_init")?;
            let mut rcv = s.recv_init(&mut inb, peer, 11).ctx("recv_init")?;
            for i in 0..5 {
                rcv.start().with_ctx(|| format!("start recv {i}"))?;
                snd.start().with_ctx(|| format!("start send {i}"))?;
                snd.wait().ctx("wait send")?;
                let st = rcv.wait().ctx("wait recv")?;
                ensure!(
                    st.is_some_and(|s| s.len == 8000),
                    "persistent recv {i}: {st:?}"
                );
            }
            Ok(())
        })?;
        ensure!(inb == out, "persistent data");
    }
    step("test_any / wait_some");
    if me < 2 {
        let mut a = [0u8; 4];
        let mut b = [0u8; 4];
        comm.scope(|s| -> R {
            let mut reqs = vec![
                s.irecv(&mut a, peer, 20).ctx("irecv a")?,
                s.irecv(&mut b, peer, 21).ctx("irecv b")?,
            ];
            comm.send(&[1u8; 4], peer, 21).ctx("send 21")?;
            comm.send(&[2u8; 4], peer, 20).ctx("send 20")?;
            let first = loop {
                if let Some((i, st)) = tocsin::test_any(&mut reqs).ctx("test_any")? {
                    ensure!(
                        st.len == 4 && st.tag == 20 + i as i32,
                        "test_any status {st:?} for #{i}"
                    );
                    break i;
                }
            };
            let rest = tocsin::wait_some(&mut reqs);
            ensure!(
                rest.len() == 1 && rest[0].0 == 1 - first,
                "wait_some gave {:?}",
                rest.iter().map(|r| r.0).collect::<Vec<_>>()
            );
            for (i, r) in rest {
                r.with_ctx(|| format!("wait_some #{i}"))?;
            }
            ensure!(
                tocsin::wait_some(&mut reqs).is_empty(),
                "wait_some on inactive requests"
            );
            Ok(())
        })?;
        ensure!(a == [2; 4] && b == [1; 4], "test_any/wait_some data");
    }
    comm.barrier().ctx("final barrier")?;
    Ok(())
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let name = matches.subcommand_name().unwrap_or("?").to_owned();
    report::set_case(&name);
    report::start_watchdog(Duration::from_secs(cli.timeout), String::new);
    step("init");
    let comm = match tocsin::init() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("FAIL {name}: tocsin::init: {e} ({e:?})");
            return ExitCode::from(1);
        }
    };
    report::set_rank(&comm);
    let r = match cli.case {
        Case::Coll => case_coll(&comm),
        Case::Comms => case_comms(&comm),
        Case::Icoll => case_icoll(&comm),
        Case::CollDie => case_coll_die(&comm),
        Case::P2pExtra => case_p2p_extra(&comm),
    };
    drop(comm);
    report::finish(r)
}
