//! `tocsin bench pingpong`: OSU-style one-way latency and bandwidth (osu_latency method),
//! the same method, sizes and formulas as `bench/peers/pingpong.c`.
//!
//! For each size (0, 1, 2, 4, …, `--max-size`): `warmup` untimed round trips, then `iters`
//! timed ones (rank 0: `send; recv`, rank 1: `recv; send`, blocking), with a 0-byte
//! message on another tag starting both ranks' timed phase together.
//! One-way latency = total time / iters / 2 (µs); bandwidth = bytes / latency (MB/s, 10^6 B/s).
//! Iterations: `--iters` (10000) up to 8 KiB, then scaled by 8 KiB/size with a floor of
//! `--iters-min` (100); warm-up = iters/10 (at least 10) or `--warmup`. `--rounds R` repeats
//! each size R times and reports the median round. Before the sizes, 50000 untimed 0-byte
//! round trips warm up the path (`--global-warmup`). Separate, page-aligned, pre-touched send and receive
//! buffers are reused across iterations (cache-hot, as OSU does).

use tocsin::Comm;

use super::schema::{self, Doc, PingpongDoc, PingpongRow};
use super::util::{self, now_us};
use super::{plot, BResult, Common};

const TAG_DATA: tocsin::Tag = 0;
const TAG_SYNC: tocsin::Tag = 1;

/// Options of `tocsin bench pingpong`.
#[derive(clap::Args, Debug, Clone)]
pub struct PingpongArgs {
    /// Largest message size (powers of two from 1 B up to it, plus 0); K/M/G suffixes; at
    /// most 1G, and the 4 buffers of that size (2 per rank) must fit in available memory.
    #[arg(long, visible_alias = "max-bytes", default_value = "4M", value_parser = util::parse_message_size)]
    pub max_size: usize,
    /// Timed round trips for sizes up to 8 KiB (scaled down by size above); 1..=10^9.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=MAX_ITERS))]
    pub iters: u64,
    /// Fewest timed round trips of a large size; 1..=10^9.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=MAX_ITERS))]
    pub iters_min: u64,
    /// Untimed round trips before each size (default: iters/10, at least 10); 0..=10^9.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=MAX_ITERS))]
    pub warmup: Option<u64>,
    /// Repetitions of each size; the median is reported.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub rounds: u64,
    /// Untimed 0-byte round trips before the first size (pingpong.c: 50000); 0..=10^9.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(0..=MAX_ITERS))]
    pub global_warmup: u64,
    #[command(flatten)]
    pub common: Common,
}

/// Largest iteration count of any option, so that counts and their sums never overflow.
pub const MAX_ITERS: u64 = 1_000_000_000;

/// Bytes the ping-pong allocates over the whole job: 2 ranks × 2 buffers of `max_size`.
pub fn job_buffer_bytes(a: &PingpongArgs) -> u64 {
    4 * a.max_size as u64
}

/// The sizes measured: 0, then powers of two up to `max`.
pub fn sizes(max: usize) -> Vec<usize> {
    let mut v = vec![0];
    let mut s = 1;
    while s <= max {
        v.push(s);
        s *= 2;
    }
    v
}

/// Timed round trips for size `s` (pingpong.c's rule).
pub fn iters_for(s: usize, a: &PingpongArgs) -> u64 {
    if s > 8192 {
        (a.iters.saturating_mul(8192) / s as u64).max(a.iters_min)
    } else {
        a.iters
    }
}

fn round_trip(comm: &Comm, rank: u32, sbuf: &[u8], rbuf: &mut [u8]) -> BResult<()> {
    let peer = 1 - rank;
    if rank == 0 {
        comm.send(sbuf, peer, TAG_DATA)?;
        comm.recv(rbuf, peer, TAG_DATA)?;
    } else {
        comm.recv(rbuf, peer, TAG_DATA)?;
        comm.send(sbuf, peer, TAG_DATA)?;
    }
    Ok(())
}

/// Runs the ping-pong on both ranks; rank 0 prints the table or JSON and draws the plot.
pub fn run(comm: &Comm, a: &PingpongArgs) -> BResult<()> {
    let rank = comm.rank();
    let peer = 1 - rank;
    let c = &a.common;
    let compare = if rank == 0 {
        schema::load_compare(&c.compare, "pingpong", |d| match d {
            Doc::Pingpong(p) => Some(p),
            _ => None,
        })?
    } else {
        Vec::new()
    };
    let mode = comm.config().progress_mode().name();
    let sizes = sizes(a.max_size);
    let sbuf = util::AlignedBuf::new(a.max_size, b'a');
    let mut rbuf = util::AlignedBuf::new(a.max_size, b'b');

    let mut pb = util::Progress::new(rank, c.quiet, sizes.len() as u64, "pingpong");
    if rank == 0 && !c.json {
        pb.line(format!(
            "# {} ping-pong, mode {mode}, one-way latency = RTT/2, {} round(s)",
            super::impl_name(),
            a.rounds
        ));
        pb.line(format!(
            "# {:<10} {:>14} {:>16} {:>8}",
            "Size", "Latency(us)", "Bandwidth(MB/s)", "Iters"
        ));
    }
    pb.set_message("warm-up".into());

    comm.barrier()?;
    for _ in 0..a.global_warmup {
        round_trip(comm, rank, &sbuf[..0], &mut rbuf[..0])?;
    }

    let mut rows = Vec::with_capacity(sizes.len());
    for &s in &sizes {
        pb.set_message(format!("{} B", util::fmt_size(s)));
        let iters = iters_for(s, a);
        let warm = a.warmup.unwrap_or((iters / 10).max(10));
        let mut lat_round = Vec::with_capacity(a.rounds as usize);
        for _ in 0..a.rounds {
            let mut t0 = 0.0;
            comm.barrier()?;
            for k in 0..warm + iters {
                if k == warm {
                    // Start both ranks' timed phase together.
                    if rank == 0 {
                        comm.recv::<u8>(&mut [], peer, TAG_SYNC)?;
                    } else {
                        comm.send::<u8>(&[], peer, TAG_SYNC)?;
                    }
                    t0 = now_us();
                }
                round_trip(comm, rank, &sbuf[..s], &mut rbuf[..s])?;
            }
            let t1 = now_us();
            lat_round.push((t1 - t0) / iters as f64 / 2.0);
        }
        if rank == 0 {
            let lat = util::median(&mut lat_round);
            let bw = if s > 0 { s as f64 / lat } else { 0.0 };
            if !c.json {
                pb.line(format!("  {s:<10} {lat:>14.3} {bw:>16.1} {iters:>8}"));
            }
            rows.push(PingpongRow {
                bytes: s as u64,
                iters,
                latency_us: util::round(lat, 4),
                bandwidth_mbps: util::round_sig4(bw),
            });
        }
        pb.inc(1);
    }
    pb.finish();
    if rank != 0 {
        return Ok(());
    }
    let doc = PingpongDoc {
        impl_: super::impl_name(),
        bench: "pingpong".into(),
        mode: Some(mode.into()),
        rounds: Some(a.rounds),
        results: rows,
    };
    if c.json {
        schema::print_json(&doc)?;
    }
    if let Some(p) = &c.plot {
        plot::pingpong(p, &doc, &compare)?;
        if !c.json {
            println!("# plot: {}", p.display());
        }
    }
    Ok(())
}
