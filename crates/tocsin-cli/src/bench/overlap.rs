//! `tocsin bench overlap`: overlap of communication and computation, the MadMPI-benchmark
//! method exactly as `bench/peers/overlap.c` implements it (A. Denis, F. Trahay, "MPI
//! Overlap: Benchmark and Analysis", ICPP 2016).
//!
//! Two sides, on ranks 0 and 1:
//! - sender side: rank 0 computes `t1; isend(s); compute(t); wait; recv(ack, 0 B); t2`,
//!   rank 1 waits in `recv(s); send(ack)`;
//! - receiver side: rank 1 computes `t1; irecv(s); send(go, 0 B); compute(t); wait; t2`,
//!   rank 0 waits in `recv(go); send(s)`.
//!
//! Before each timed iteration the waiting rank sends a 0-byte "ready" message, so that it
//! is (about) inside its blocking call when the clock starts. `lat0`, the median one-way
//! latency of a 0-byte ping-pong measured at start-up, is subtracted from every time (it
//! removes the 0-byte ack/go inside the timed region). For each size and compute time t:
//! `T_comm = median(time(s, 0)) - lat0`, `T_total = median(time(s, t)) - lat0`,
//! `overlap = (T_comm + t - T_total) / min(T_comm, t)` clamped to 0–100 %.
//! 100 % = the transfer was hidden behind the computation, 0 % = serialized.
//!
//! Order: for each size, for each t, `--warmup` untimed then `--reps` timed iterations
//! (`--interleave`: for each rep, for each t). The compute loop never calls tocsin.

use tocsin::Comm;

use super::schema::{self, Doc, OverlapDoc, OverlapRow};
use super::util::{self, compute_stolen, now_us};
use super::{plot, BResult, BenchError, Common};

const TAG_DATA: tocsin::Tag = 0;
const TAG_CTRL: tocsin::Tag = 1;

/// Which sides to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Side {
    /// Only the sender computes.
    Sender,
    /// Only the receiver computes.
    Receiver,
    /// Both, sender first.
    Both,
}

/// Largest `--reps` and `--warmup`: bounds the sample table (reps × compute times).
pub const MAX_REPS: u64 = 100_000;
/// Largest compute time of `--compute-us`, µs (60 s).
pub const MAX_COMPUTE_US: u64 = 60_000_000;

/// Bytes the overlap benchmark allocates over the whole job: 2 ranks × one buffer of the
/// largest size.
pub fn job_buffer_bytes(a: &OverlapArgs) -> u64 {
    2 * a.sizes.iter().copied().max().unwrap_or(0) as u64
}

/// Options of `tocsin bench overlap`.
#[derive(clap::Args, Debug, Clone)]
pub struct OverlapArgs {
    /// Message sizes, comma-separated, K/M/G suffixes; each at most 1G, and a buffer of the
    /// largest per rank must fit in available memory.
    #[arg(long, value_delimiter = ',', default_value = "32K,256K,1M,4M,16M",
          value_parser = util::parse_message_size)]
    pub sizes: Vec<usize>,
    /// Compute times, µs, comma-separated (0, the reference, is always added); each at most
    /// 60000000 (60 s).
    #[arg(
        long,
        visible_alias = "compute",
        value_delimiter = ',',
        default_value = "0,10,50,200,1000,5000",
        value_parser = clap::value_parser!(u64).range(0..=MAX_COMPUTE_US)
    )]
    pub compute_us: Vec<u64>,
    /// Timed repetitions per point (the median is used); 1..=100000.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=MAX_REPS))]
    pub reps: u64,
    /// Untimed iterations before each point; 0..=100000.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=MAX_REPS))]
    pub warmup: u64,
    /// Which side computes.
    #[arg(long, value_enum, default_value_t = Side::Both)]
    pub side: Side,
    /// Run `for rep { for t }` instead of `for t { warmup; for rep }`.
    #[arg(long)]
    pub interleave: bool,
    #[command(flatten)]
    pub common: Common,
}

/// The compute grid with t = 0 (the reference) at index 0, as overlap.c arranges it.
pub fn grid(comps: &[u64]) -> Vec<u64> {
    let mut v = comps.to_vec();
    match v.iter().position(|&t| t == 0) {
        Some(i) => v.swap(0, i),
        None => v.insert(0, 0),
    }
    v
}

/// One timed iteration on the computing rank (returns its time and the time taken from its
/// computation, µs) or the matching part on the waiting rank (returns zeros).
fn one_iter(comm: &Comm, sender_side: bool, buf: &mut [u8], t: f64) -> BResult<(f64, f64)> {
    let rank = comm.rank();
    let computing = if sender_side { 0 } else { 1 };
    let peer = 1 - rank;
    if rank == computing {
        comm.recv::<u8>(&mut [], peer, TAG_CTRL)?; // ready
        let t1 = now_us();
        let mut stolen = 0.0;
        if sender_side {
            comm.scope(|s| {
                let r = s.isend(&*buf, peer, TAG_DATA)?;
                stolen = compute_stolen(t);
                r.wait()
            })?;
            comm.recv::<u8>(&mut [], peer, TAG_CTRL)?; // ack
        } else {
            comm.scope(|s| {
                let r = s.irecv(&mut *buf, peer, TAG_DATA)?;
                comm.send::<u8>(&[], peer, TAG_CTRL)?; // go
                stolen = compute_stolen(t);
                r.wait()
            })?;
        }
        Ok((now_us() - t1, stolen))
    } else {
        comm.send::<u8>(&[], peer, TAG_CTRL)?; // ready
        if sender_side {
            comm.recv(buf, peer, TAG_DATA)?;
            comm.send::<u8>(&[], peer, TAG_CTRL)?; // ack
        } else {
            comm.recv::<u8>(&mut [], peer, TAG_CTRL)?; // go
            comm.send(&*buf, peer, TAG_DATA)?;
        }
        Ok((0.0, 0.0))
    }
}

/// Median one-way latency of a 0-byte ping-pong on the control tag, rank 0's value on both.
fn calibrate_lat0(comm: &Comm) -> BResult<f64> {
    const N: usize = 2000;
    const WARM: usize = 200;
    let rank = comm.rank();
    let peer = 1 - rank;
    let mut v = Vec::with_capacity(N);
    for k in 0..WARM + N {
        let t1 = now_us();
        if rank == 0 {
            comm.send::<u8>(&[], peer, TAG_CTRL)?;
            comm.recv::<u8>(&mut [], peer, TAG_CTRL)?;
        } else {
            comm.recv::<u8>(&mut [], peer, TAG_CTRL)?;
            comm.send::<u8>(&[], peer, TAG_CTRL)?;
        }
        if k >= WARM {
            v.push((now_us() - t1) / 2.0);
        }
    }
    let mut m = [util::median(&mut v)];
    if rank == 0 {
        comm.send(&m, peer, TAG_CTRL)?;
    } else {
        comm.recv(&mut m, peer, TAG_CTRL)?;
    }
    Ok(m[0])
}

/// The overlap ratio of one point, clamped to [0, 1].
pub fn overlap_ratio(comm_us: f64, comp_us: f64, total_us: f64) -> f64 {
    let mn = comm_us.min(comp_us);
    let ov = if mn > 0.0 {
        (comm_us + comp_us - total_us) / mn
    } else {
        0.0
    };
    ov.clamp(0.0, 1.0)
}

/// Runs the overlap grid on both ranks; rank 0 prints the table or JSON and draws the plot.
pub fn run(comm: &Comm, a: &OverlapArgs) -> BResult<()> {
    let rank = comm.rank();
    let c = &a.common;
    if a.sizes.is_empty() {
        return Err(BenchError::Usage("--sizes: empty list".into()));
    }
    let compare = if rank == 0 {
        schema::load_compare(&c.compare, "overlap", |d| match d {
            Doc::Overlap(o) => Some(o),
            _ => None,
        })?
    } else {
        Vec::new()
    };
    let mode = comm.config().progress_mode().name();
    let comps = grid(&a.compute_us);
    let maxs = a.sizes.iter().copied().max().unwrap_or(0);
    let mut buf = util::AlignedBuf::new(maxs, if rank == 0 { b's' } else { b'r' });
    let sides: Vec<bool> = match a.side {
        Side::Sender => vec![true],
        Side::Receiver => vec![false],
        Side::Both => vec![true, false],
    };
    let nc = comps.len();
    let reps = a.reps as usize;
    let mut samples = vec![0.0f64; reps * nc];
    let mut stolen = vec![0.0f64; reps * nc];

    let lat0 = calibrate_lat0(comm)?;
    let steps = (sides.len() * a.sizes.len() * nc) as u64 * (a.warmup + a.reps);
    let mut pb = util::Progress::new(rank, c.quiet, steps, "overlap");
    if rank == 0 && !c.json {
        pb.line(format!(
            "# {} overlap (MadMPI-benchmark method), mode {mode}, lat0 = {lat0:.3} us, \
             median of {reps} reps",
            super::impl_name()
        ));
        pb.line(format!(
            "# {:<8} {:>10} {:>10} {:>10} {:>10} {:>8} {:>10}",
            "side", "bytes", "compute_us", "comm_us", "total_us", "overlap%", "stolen_us"
        ));
    }

    let mut rows = Vec::new();
    for &sender_side in &sides {
        let sname = if sender_side { "sender" } else { "receiver" };
        let computing = if sender_side { 0 } else { 1 };
        for &s in &a.sizes {
            pb.set_message(format!("{sname} {}", util::fmt_size(s)));
            let b = &mut buf[..s];
            comm.barrier()?;
            if a.interleave {
                for _ in 0..a.warmup {
                    for &t in &comps {
                        one_iter(comm, sender_side, b, t as f64)?;
                    }
                    pb.inc(nc as u64);
                }
                for r in 0..reps {
                    for (j, &t) in comps.iter().enumerate() {
                        (samples[j * reps + r], stolen[j * reps + r]) =
                            one_iter(comm, sender_side, b, t as f64)?;
                    }
                    pb.inc(nc as u64);
                }
            } else {
                for (j, &t) in comps.iter().enumerate() {
                    for _ in 0..a.warmup {
                        one_iter(comm, sender_side, b, t as f64)?;
                    }
                    for r in 0..reps {
                        (samples[j * reps + r], stolen[j * reps + r]) =
                            one_iter(comm, sender_side, b, t as f64)?;
                    }
                    pb.inc(a.warmup + a.reps);
                }
            }
            // med[0..nc]: median times; med[nc..2nc]: median stolen times.
            let mut med = vec![0.0f64; 2 * nc];
            if rank == computing {
                for j in 0..nc {
                    let mut tmp = samples[j * reps..(j + 1) * reps].to_vec();
                    med[j] = (util::median(&mut tmp) - lat0).max(0.0);
                    let mut st = stolen[j * reps..(j + 1) * reps].to_vec();
                    med[nc + j] = util::median(&mut st);
                }
            }
            if computing != 0 {
                if rank == computing {
                    comm.send(&med, 0, TAG_CTRL)?;
                } else {
                    comm.recv(&mut med, computing, TAG_CTRL)?;
                }
            }
            if rank == 0 {
                let comm_us = med[0];
                for j in 1..nc {
                    let (comp, total, st) = (comps[j] as f64, med[j], med[nc + j]);
                    let ov = 100.0 * overlap_ratio(comm_us, comp, total);
                    if !c.json {
                        pb.line(format!(
                            "  {sname:<8} {s:>10} {:>10} {comm_us:>10.2} {total:>10.2} {ov:>8.1} \
                             {st:>10.2}",
                            comps[j]
                        ));
                    }
                    rows.push(OverlapRow {
                        side: sname.into(),
                        bytes: s as u64,
                        compute_us: comps[j],
                        comm_us: util::round(comm_us, 3),
                        total_us: util::round(total, 3),
                        overlap_pct: util::round(ov, 1),
                        stolen_us: Some(util::round(st, 3)),
                    });
                }
            }
        }
    }
    pb.finish();
    if rank != 0 {
        return Ok(());
    }
    let doc = OverlapDoc {
        impl_: super::impl_name(),
        bench: "overlap".into(),
        mode: Some(mode.into()),
        lat0_us: util::round(lat0, 4),
        reps: a.reps,
        results: rows,
    };
    if c.json {
        schema::print_json(&doc)?;
    }
    if let Some(p) = &c.plot {
        plot::overlap(p, &doc, &compare)?;
        if !c.json {
            println!("# plot: {}", p.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_puts_zero_first() {
        assert_eq!(grid(&[10, 0, 50]), vec![0, 10, 50]);
        assert_eq!(grid(&[10, 50]), vec![0, 10, 50]);
        assert_eq!(grid(&[0]), vec![0]);
    }

    #[test]
    fn ratio() {
        // Fully hidden: total = max(comm, comp).
        assert_eq!(overlap_ratio(100.0, 200.0, 200.0), 1.0);
        // Serialized.
        assert_eq!(overlap_ratio(100.0, 200.0, 300.0), 0.0);
        // Half of the shorter one hidden.
        assert!((overlap_ratio(100.0, 200.0, 250.0) - 0.5).abs() < 1e-12);
        // Clamped.
        assert_eq!(overlap_ratio(100.0, 200.0, 400.0), 0.0);
        assert_eq!(overlap_ratio(0.0, 200.0, 200.0), 0.0);
    }
}
