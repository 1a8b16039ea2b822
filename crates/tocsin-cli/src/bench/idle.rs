//! `tocsin bench idle`: CPU consumed by a rank blocked in a receive, as `bench/peers/idle.c`.
//!
//! Repeated `--reps` times (5), after a barrier: rank 0 sleeps `--delay-ms` (200 ms) and
//! sends 8 bytes; rank 1 receives them, measuring around the `recv`:
//! wall time (`CLOCK_MONOTONIC`), CPU time of the whole process (`CLOCK_PROCESS_CPUTIME_ID`,
//! so a helper thread of the library would be counted), its user/system split
//! (`getrusage`), and `cpu_pct = 100 * cpu / wall`. Polling shows about 100 %, a rank that
//! sleeps in the kernel about 0 %.

use tocsin::Comm;

use super::schema::{self, Doc, IdleDoc, IdleRow};
use super::util::{self, cpu_us, now_us};
use super::{plot, BResult, Common};

const TAG_DATA: tocsin::Tag = 0;
const TAG_RESULTS: tocsin::Tag = 1;

/// Options of `tocsin bench idle`.
#[derive(clap::Args, Debug, Clone)]
pub struct IdleArgs {
    /// How long rank 0 sleeps before sending, ms.
    #[arg(long, visible_alias = "sleep-ms", default_value_t = 200)]
    pub delay_ms: u64,
    /// Repetitions.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub reps: u64,
    #[command(flatten)]
    pub common: Common,
}

/// Runs the measurement on both ranks; rank 0 prints the table or JSON and draws the plot.
pub fn run(comm: &Comm, a: &IdleArgs) -> BResult<()> {
    let rank = comm.rank();
    let c = &a.common;
    let compare = if rank == 0 {
        schema::load_compare(&c.compare, "idle", |d| match d {
            Doc::Idle(i) => Some(i),
            _ => None,
        })?
    } else {
        Vec::new()
    };
    let mode = comm.config().progress_mode().name();
    let reps = a.reps as usize;
    // wall, cpu, user, sys per repetition
    let mut res = vec![0.0f64; 4 * reps];
    let mut msg = *b"tocsin!\0";
    let pb = util::Progress::new(rank, c.quiet, a.reps, "idle");
    for r in 0..reps {
        comm.barrier()?;
        if rank == 0 {
            std::thread::sleep(std::time::Duration::from_millis(a.delay_ms));
            comm.send(&msg, 1, TAG_DATA)?;
        } else {
            let (u0, s0) = util::rusage_ms();
            let (c0, w0) = (cpu_us(), now_us());
            comm.recv(&mut msg, 0, TAG_DATA)?;
            let (w1, c1) = (now_us(), cpu_us());
            let (u1, s1) = util::rusage_ms();
            res[4 * r..4 * r + 4].copy_from_slice(&[
                (w1 - w0) * 1e-3,
                (c1 - c0) * 1e-3,
                u1 - u0,
                s1 - s0,
            ]);
        }
        pb.inc(1);
    }
    pb.finish();
    if rank == 1 {
        comm.send(&res, 0, TAG_RESULTS)?;
        return Ok(());
    }
    comm.recv(&mut res, 1, TAG_RESULTS)?;
    let rows: Vec<IdleRow> = res
        .chunks_exact(4)
        .map(|x| {
            let pct = if x[0] > 0.0 { 100.0 * x[1] / x[0] } else { 0.0 };
            IdleRow {
                wall_ms: util::round(x[0], 3),
                cpu_ms: util::round(x[1], 3),
                user_ms: util::round(x[2], 3),
                sys_ms: util::round(x[3], 3),
                cpu_pct: util::round(pct, 1),
            }
        })
        .collect();
    let doc = IdleDoc {
        impl_: super::impl_name(),
        bench: "idle".into(),
        mode: Some(mode.into()),
        sleep_ms: a.delay_ms,
        results: rows,
    };
    if c.json {
        schema::print_json(&doc)?;
    } else {
        println!(
            "# {}, mode {mode}: rank 1 blocked in recv while rank 0 sleeps {} ms",
            super::impl_name(),
            a.delay_ms
        );
        println!(
            "# {:>10} {:>10} {:>10} {:>10} {:>8}",
            "wall_ms", "cpu_ms", "user_ms", "sys_ms", "cpu_pct"
        );
        for r in &doc.results {
            println!(
                "  {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>8.1}",
                r.wall_ms, r.cpu_ms, r.user_ms, r.sys_ms, r.cpu_pct
            );
        }
        let (w, cpu) = medians(&doc);
        println!(
            "# median: wall {w:.1} ms, CPU {cpu:.1} ms ({:.1}% of the wall time)",
            if w > 0.0 { 100.0 * cpu / w } else { 0.0 }
        );
    }
    if let Some(p) = &c.plot {
        plot::idle(p, &doc, &compare)?;
        if !c.json {
            println!("# plot: {}", p.display());
        }
    }
    Ok(())
}

/// Median wall and CPU time of a document, ms.
pub fn medians(d: &IdleDoc) -> (f64, f64) {
    let mut w: Vec<f64> = d.results.iter().map(|r| r.wall_ms).collect();
    let mut c: Vec<f64> = d.results.iter().map(|r| r.cpu_ms).collect();
    (util::median(&mut w), util::median(&mut c))
}
