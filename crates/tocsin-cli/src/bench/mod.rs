//! `tocsin bench`: the benchmark suite (`pingpong`, `overlap`, `idle`) on 2 ranks.
//!
//! Owns the command line of the benchmarks, starting their 2 ranks (re-executing itself
//! through [`crate::launcher::launch`] when not already under a PMI launcher), and the output
//! of rank 0: an OSU-style table or JSON on stdout, progress bars on stderr, plots. The
//! methods and JSON schemas are those of the MPICH/Open MPI reference programs in
//! `bench/peers/*.c`, so that our numbers and theirs can be compared side by side
//! (`--compare FILE.json`). Benchmarks only use tocsin's public API.
//!
//! Submodules: [`pingpong`], [`overlap`], [`idle`] (one benchmark each), [`schema`] (the
//! JSON documents), [`plot`] (plotters figures), [`util`] (clocks, sizes, medians, progress
//! bars).

pub mod idle;
pub mod notify;
pub mod overlap;
pub mod pingpong;
pub mod plot;
pub mod schema;
pub mod util;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::launcher::{self, Bind, LaunchSpec};

/// Environment variable set by a self-launching `tocsin bench` for its ranks when its own
/// stderr is a terminal, so that rank 0 draws progress bars even if the launcher forwards
/// its stderr through a pipe.
pub const TTY_ENV: &str = "TOCSIN_BENCH_TTY";

/// Arguments of `tocsin bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    cmd: BenchCmd,
}

/// The benchmarks.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum BenchCmd {
    /// OSU-style ping-pong: one-way latency (RTT/2) and bandwidth from 0 B to --max-size.
    Pingpong(pingpong::PingpongArgs),
    /// Overlap of communication and computation (MadMPI-benchmark method), both sides.
    Overlap(overlap::OverlapArgs),
    /// CPU time used by a rank blocked in a receive while its peer sleeps.
    Idle(idle::IdleArgs),
    /// One-way notification latency: flag, futex, eventfd, signal, UINTR; threads/processes.
    Notify(notify::NotifyArgs),
    /// Redraw the figure of saved results (JSON of one benchmark kind, ours or the peers').
    Plot(plot::PlotArgs),
}

impl BenchCmd {
    /// The benchmark's name, as in the JSON `"bench"` field.
    fn name(&self) -> &'static str {
        match self {
            BenchCmd::Pingpong(_) => "pingpong",
            BenchCmd::Overlap(_) => "overlap",
            BenchCmd::Idle(_) => "idle",
            BenchCmd::Notify(_) => "notify",
            BenchCmd::Plot(_) => "plot",
        }
    }

    fn common(&self) -> &Common {
        match self {
            BenchCmd::Pingpong(a) => &a.common,
            BenchCmd::Overlap(a) => &a.common,
            BenchCmd::Idle(a) => &a.common,
            BenchCmd::Notify(_) | BenchCmd::Plot(_) => {
                unreachable!("notify and plot run in-process, without ranks")
            }
        }
    }
}

/// Progress mode requested on the command line (the ranks get it as `TOCSIN_PROGRESS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    /// Spin on progress while waiting.
    Poll,
    /// Spin briefly, then sleep on the doorbell.
    Block,
    /// `block` plus a progress thread per rank.
    Thread,
    /// `block` plus real-time signals to a computing peer.
    Signal,
    /// `block` plus x86 user interrupts (needs UINTR hardware and kernel).
    Uintr,
}

impl ProgressArg {
    /// The `TOCSIN_PROGRESS` value.
    pub fn name(self) -> &'static str {
        match self {
            ProgressArg::Poll => "poll",
            ProgressArg::Block => "block",
            ProgressArg::Thread => "thread",
            ProgressArg::Signal => "signal",
            ProgressArg::Uintr => "uintr",
        }
    }
}

/// Options shared by every benchmark.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Progress mode of the ranks (sets TOCSIN_PROGRESS; under an external launcher the
    /// environment decides).
    #[arg(long, value_enum)]
    pub progress: Option<ProgressArg>,
    /// Print one JSON document (the bench/peers schema) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Draw the results into FILE (.svg or .png).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Overlay the results of other implementations (JSON of the same schema, e.g.
    /// target/peers/mpich-pingpong.json); repeatable. Used by --plot.
    #[arg(long, value_name = "FILE.json")]
    pub compare: Vec<PathBuf>,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    /// Before starting, wait up to SECS seconds for the machine to be idle (other
    /// processes using < 10% of the CPUs over a second), as bench/peers/run.sh does.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub wait_idle: u64,
}

/// Errors of the benchmarks.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// From the library.
    #[error("tocsin: {0}")]
    Tocsin(#[from] tocsin::Error),
    /// Reading or writing a file.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A JSON document.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Drawing a plot.
    #[error("plot: {0}")]
    Plot(String),
    /// Bad arguments or a bad job shape.
    #[error("{0}")]
    Usage(String),
    /// Starting the ranks.
    #[error("launch: {0}")]
    Launch(String),
    /// A failure rank 0 reports; the other ranks exit with an error, silently.
    #[error("(reported by rank 0)")]
    Silent,
}

/// Result of the benchmark code.
pub type BResult<T> = Result<T, BenchError>;

/// The `"impl"` of our JSON documents.
pub fn impl_name() -> String {
    format!("tocsin {}", env!("CARGO_PKG_VERSION"))
}

/// `true` when this process was started by a PMI launcher (it is one of the ranks).
fn under_launcher() -> bool {
    std::env::var_os("PMI_FD").is_some() || std::env::var_os("PMI_PORT").is_some()
}

/// Entry point of `tocsin bench`: launches 2 ranks of itself, or runs as one of them.
pub fn main(a: BenchArgs) -> ExitCode {
    if let BenchCmd::Notify(n) = a.cmd {
        return notify::main(n);
    }
    if let BenchCmd::Plot(p) = &a.cmd {
        return match plot::replot(p) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tocsin bench plot: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Err(e) = check_sizes(&a.cmd) {
        eprintln!("tocsin bench: {e}");
        return ExitCode::from(2);
    }
    let r = if under_launcher() {
        run_rank(&a.cmd).map(|()| 0)
    } else {
        self_launch(&a.cmd)
    };
    match r {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(BenchError::Silent) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tocsin bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Checks, before any rank starts or allocates, that the job's message buffers fit in the
/// memory available (each size is already bounded by [`util::MAX_MESSAGE_BYTES`]).
fn check_sizes(cmd: &BenchCmd) -> Result<(), String> {
    match cmd {
        BenchCmd::Pingpong(a) => util::check_memory(
            &format!("--max-size {}", util::fmt_size(a.max_size)),
            pingpong::job_buffer_bytes(a),
        ),
        BenchCmd::Overlap(a) => util::check_memory("--sizes", overlap::job_buffer_bytes(a)),
        _ => Ok(()),
    }
}

/// Checks what can be checked before starting ranks, then re-executes this program with
/// the same arguments as 2 ranks bound to distinct cores.
fn self_launch(cmd: &BenchCmd) -> BResult<i32> {
    let c = cmd.common();
    if let Some(p) = &c.plot {
        plot::check_path(p)?;
    }
    for f in &c.compare {
        let d = schema::load_any(f)?;
        if d.bench() != cmd.name() {
            return Err(BenchError::Usage(format!(
                "--compare {}: a \"{}\" document, not \"{}\"",
                f.display(),
                d.bench(),
                cmd.name()
            )));
        }
    }
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    if let Some(p) = c.progress {
        env.push(("TOCSIN_PROGRESS".into(), p.name().into()));
    }
    if !c.quiet && util::stderr_is_terminal() {
        env.push((TTY_ENV.into(), "1".into()));
    }
    let spec = LaunchSpec {
        n: 2,
        bind: Bind::Core,
        tag_output: false,
        keep_going: false,
        program: std::env::current_exe()?,
        args: std::env::args_os().skip(1).collect(),
        env,
    };
    if c.wait_idle > 0 {
        util::wait_idle(
            std::time::Duration::from_secs(c.wait_idle),
            DISTURBED_FOREIGN_PCT,
        );
    }
    let meter = util::Disturbance::start();
    let code = launcher::launch(&spec).map_err(|e| BenchError::Launch(e.to_string()))?;
    if let Some((foreign, steal)) = meter.finish().filter(|_| code == 0) {
        if foreign > DISTURBED_FOREIGN_PCT || steal > DISTURBED_STEAL_PCT {
            eprintln!(
                "tocsin bench: warning: other processes used {foreign:.0}% and the hypervisor \
                 stole {steal:.0}% of the CPUs during the run: numbers disturbed, rerun on a \
                 quiet machine"
            );
        }
    }
    Ok(code)
}

/// Above this share of the machine's CPU used by other processes during a run, the run is
/// reported as disturbed (the threshold of bench/peers/run.sh).
pub const DISTURBED_FOREIGN_PCT: f64 = 10.0;
/// Above this share of CPU time stolen by the hypervisor, the run is reported as disturbed.
pub const DISTURBED_STEAL_PCT: f64 = 5.0;

/// Runs the benchmark as one rank of a 2-rank job.
fn run_rank(cmd: &BenchCmd) -> BResult<()> {
    let comm = tocsin::init()?;
    if comm.size() != 2 {
        if comm.rank() != 0 {
            return Err(BenchError::Silent);
        }
        return Err(BenchError::Usage(format!(
            "the benchmarks run on exactly 2 ranks (this job has {}); run `tocsin bench` \
             without a launcher to get 2",
            comm.size()
        )));
    }
    let c = cmd.common();
    let mode = comm.config().progress_mode().name();
    if comm.rank() == 0 {
        if let Some(p) = c.progress {
            if p.name() != mode {
                eprintln!(
                    "tocsin bench: warning: --progress {} ignored under this launcher: \
                     TOCSIN_PROGRESS gives mode {mode}",
                    p.name()
                );
            }
        }
    }
    let r = match cmd {
        BenchCmd::Pingpong(a) => pingpong::run(&comm, a),
        BenchCmd::Overlap(a) => overlap::run(&comm, a),
        BenchCmd::Idle(a) => idle::run(&comm, a),
        BenchCmd::Notify(_) | BenchCmd::Plot(_) => {
            unreachable!("notify and plot run in-process, without ranks")
        }
    };
    if r.is_ok() {
        // Nobody leaves while the peer may still need it.
        comm.barrier()?;
    }
    r
}
