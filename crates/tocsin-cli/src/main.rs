//! `tocsin`: the launcher (`tocsin run`, a PMI-1 server), the benchmarks (`tocsin bench`),
//! the machine report (`tocsin probe`) and the calibration (`tocsin tune`).

use clap::{Parser, Subcommand};

mod bench;
mod launcher;
mod probe;
mod tune;

/// tocsin: interrupt-driven message passing for HPC.
#[derive(Parser, Debug)]
#[command(name = "tocsin", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start N local ranks of PROGRAM (PMI-1 server, output forwarding, binding).
    Run(launcher::RunArgs),
    /// Benchmarks: pingpong, overlap, idle, notify (and plot to redraw saved results).
    Bench(bench::BenchArgs),
    /// What this machine offers: UINTR, CMA, signals, futex/eventfd/pidfd/memfd, topology.
    Probe(probe::ProbeArgs),
    /// Measure this machine and choose the eager threshold, CMA, pipeline chunk and spin
    /// (cached per user; every job's rank 0 reads the cache).
    Tune(tune::TuneArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TOCSIN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run(a) => launcher::main(a),
        Cmd::Bench(a) => bench::main(a),
        Cmd::Probe(a) => probe::main(a),
        Cmd::Tune(a) => tune::main(a),
    }
}
