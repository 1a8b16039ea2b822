//! End-to-end tests of the `jacobi` application: `tocsin run -n N -- jacobi --check` must
//! exit successfully and report that the parallel result matches the serial one.
//!
//! Each job runs in its own process group under a deadline: if it hangs, the whole group
//! (launcher and ranks) is killed and the test fails with the output seen so far. The jobs
//! run one at a time so that ranks of different tests do not compete for the (few) cores.

use std::time::Duration;

mod common;
use common::{run, serial, tocsin_run, Outcome};

const JACOBI: &str = env!("CARGO_BIN_EXE_jacobi");
const DEADLINE: Duration = Duration::from_secs(120);

/// Runs `tocsin run -n N -- jacobi ARGS` with `TOCSIN_PROGRESS=progress` and `env`, one job
/// at a time; kills the job's process group and panics if it outlives [`DEADLINE`].
fn run_job(n: u32, progress: &str, env: &[(&str, &str)], args: &[&str]) -> Outcome {
    let _guard = serial();
    let mut cmd = tocsin_run(n, JACOBI);
    cmd.args(args)
        .env("TOCSIN_PROGRESS", progress)
        .envs(env.iter().copied());
    run(&mut cmd, DEADLINE)
}

/// The value printed after `max abs difference = ` (the line may carry a rank prefix).
fn max_diff(stdout: &str) -> Option<f64> {
    let key = "max abs difference = ";
    let line = stdout.lines().find(|l| l.contains(key))?;
    let rest = &line[line.find(key)? + key.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// Runs a checked job (200 iterations) and asserts it passed.
fn check_passes(n: u32, progress: &str, nx: usize, ny: usize) {
    check_passes_with(n, progress, nx, ny, &[], &[]);
}

fn check_passes_with(
    n: u32,
    progress: &str,
    nx: usize,
    ny: usize,
    env: &[(&str, &str)],
    extra: &[&str],
) {
    let (nx, ny) = (nx.to_string(), ny.to_string());
    let mut args = vec![
        "--nx", &nx, "--ny", &ny, "--iters", "200", "--report", "50", "--check",
    ];
    args.extend_from_slice(extra);
    let o = run_job(n, progress, env, &args);
    assert_eq!(o.code, Some(0), "job failed\n{}", o.report());
    let d = max_diff(&o.stdout).unwrap_or_else(|| panic!("no check line\n{}", o.report()));
    assert!(
        d <= 1e-10,
        "max abs difference {d} too large\n{}",
        o.report()
    );
    assert!(
        o.stdout.contains("PASSED"),
        "check not reported as passed\n{}",
        o.report()
    );
    assert_eq!(
        o.stdout.matches("check: max abs difference").count(),
        1,
        "only rank 0 should report the check\n{}",
        o.report()
    );
    // The residual reports and the timing line come from rank 0.
    assert!(
        o.stdout.contains("MLUP/s"),
        "no timing line\n{}",
        o.report()
    );
    let residuals = o.stdout.matches("residual max").count();
    assert_eq!(residuals, 4, "expected 4 residual reports\n{}", o.report());
}

#[test]
fn one_rank_matches_serial() {
    check_passes(1, "poll", 96, 80);
}

#[test]
fn two_ranks_poll_match_serial() {
    check_passes(2, "poll", 96, 80);
}

#[test]
fn two_ranks_block_match_serial() {
    check_passes(2, "block", 96, 80);
}

#[test]
fn four_ranks_2x2_match_serial() {
    check_passes(4, "block", 96, 80);
}

#[test]
fn three_ranks_uneven_blocks_match_serial() {
    // 97 columns over 3 ranks: 33 + 32 + 32.
    check_passes(3, "block", 97, 81);
}

#[test]
fn rendezvous_halos_match_serial() {
    // With a 256-byte eager threshold every halo (rows of 48 f64, columns of 40) goes
    // through the rendezvous protocol; poll mode with explicit tests during the update.
    let env = [("TOCSIN_EAGER_THRESHOLD", "256")];
    check_passes_with(4, "block", 96, 80, &env, &[]);
    check_passes_with(2, "poll", 96, 80, &env, &["--test-rows", "4"]);
}

#[test]
fn grid_too_small_is_a_clear_error() {
    let o = run_job(4, "block", &[], &["--nx", "1", "--ny", "8", "--iters", "5"]);
    assert_ne!(
        o.code,
        Some(0),
        "a 1-column grid on 2 x 2 ranks must fail\n{}",
        o.report()
    );
    assert!(
        o.stderr.contains("too small"),
        "no clear message\n{}",
        o.report()
    );
}

#[test]
fn parses_max_diff() {
    assert_eq!(
        max_diff("[0] check: max abs difference = 0.000e0 (at x=0, y=0; tolerance 1e-10)"),
        Some(0.0)
    );
    assert_eq!(max_diff("nothing"), None);
}

#[test]
fn oversubscribed_ranks_match_serial_and_the_launcher_says_so() {
    // 8 and 16 ranks on this machine's cores: waits yield (poll) or sleep at once.
    for (n, progress) in [(8, "poll"), (8, "block"), (16, "signal")] {
        check_passes(n, progress, 256, 256);
    }
    let o = run_job(
        8,
        "poll",
        &[],
        &["--nx", "64", "--ny", "64", "--iters", "10"],
    );
    assert_eq!(o.code, Some(0), "{}", o.report());
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    if cores < 8 {
        assert!(
            o.stderr.contains("oversubscribed"),
            "the launcher should say the node is oversubscribed\n{}",
            o.report()
        );
    }
}
