//! Bad input never crashes, never hangs, and always names what was wrong: overflowing
//! `TOCSIN_*` values under a real job, launcher and benchmark arguments, and a second
//! `tocsin::init` after a failed one.
//!
//! Every run goes through `common::run`, whose deadline is a hang guard only.
//! A clean failure is an exit status of 1 or 2 (not a signal, not an abort's 134, not a
//! panic's 101) with the variable or option and what it accepts on stderr.

mod common;

use std::process::Command;
use std::time::Duration;

const TOCSIN: &str = env!("CARGO_BIN_EXE_tocsin");
const TESTRANK: &str = env!("CARGO_BIN_EXE_tocsin-testrank");
const LIMIT: Duration = Duration::from_secs(60);

/// Asserts `o` is a clean failure (exit code in `codes`) whose stderr holds every needle.
fn assert_clean_failure(o: &common::Outcome, what: &str, codes: &[i32], needles: &[&str]) {
    assert!(
        o.code.is_some_and(|c| codes.contains(&c)),
        "{what}: expected exit code in {codes:?}, got {:?}\nstderr:\n{}",
        o.code,
        o.stderr
    );
    for n in needles {
        assert!(
            o.stderr.contains(n),
            "{what}: stderr lacks {n:?}\nstderr:\n{}",
            o.stderr
        );
    }
    for bad in [
        "panicked",
        "capacity overflow",
        "memory allocation of",
        "SIGSEGV",
    ] {
        assert!(
            !o.stderr.contains(bad),
            "{what}: stderr shows a crash ({bad})\nstderr:\n{}",
            o.stderr
        );
    }
}

/// `tocsin run -n 2 -- tocsin-testrank sizes` with `env` set for the ranks.
fn job_with(env: &[(&str, &str)]) -> common::Outcome {
    let mut cmd = Command::new(TOCSIN);
    cmd.args(["run", "-n", "2", "--", TESTRANK, "sizes"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    common::run(&mut cmd, LIMIT)
}

#[test]
fn overflowing_ring_bytes_is_a_named_error_not_a_segfault() {
    // 2^62: the segment size used to wrap around and the ranks segfaulted.
    let o = job_with(&[("TOCSIN_RING_BYTES", "4611686018427387904")]);
    assert_clean_failure(
        &o,
        "TOCSIN_RING_BYTES=2^62",
        &[1],
        &[
            "TOCSIN_RING_BYTES",
            "\"4611686018427387904\"",
            "4096..=1073741824",
        ],
    );
}

#[test]
fn huge_eager_thresholds_are_named_errors_not_aborts() {
    // 32 GiB used to abort (allocation), 2^64-1 to panic with "capacity overflow".
    for v in ["34359738368", "18446744073709551615"] {
        let o = job_with(&[("TOCSIN_EAGER_THRESHOLD", v)]);
        assert_clean_failure(
            &o,
            &format!("TOCSIN_EAGER_THRESHOLD={v}"),
            &[1],
            &[
                "TOCSIN_EAGER_THRESHOLD",
                &format!("\"{v}\""),
                "0..=268435432",
            ],
        );
    }
    // Fits the largest ring but not the ring asked for.
    let o = job_with(&[
        ("TOCSIN_RING_BYTES", "4096"),
        ("TOCSIN_EAGER_THRESHOLD", "2048"),
    ]);
    assert_clean_failure(
        &o,
        "TOCSIN_EAGER_THRESHOLD=2048 with 4 KiB rings",
        &[1],
        &[
            "TOCSIN_EAGER_THRESHOLD",
            "0..=1000",
            "TOCSIN_RING_BYTES=4096",
        ],
    );
}

#[test]
fn signal_overflow_shows_what_was_typed() {
    let o = job_with(&[
        ("TOCSIN_PROGRESS", "signal"),
        ("TOCSIN_SIGNAL", "rtmin+2147483647"),
    ]);
    assert_clean_failure(
        &o,
        "TOCSIN_SIGNAL=rtmin+2147483647",
        &[1],
        &["TOCSIN_SIGNAL", "\"rtmin+2147483647\"", "rtmin+K"],
    );
}

#[test]
fn other_out_of_range_values_are_named() {
    for (var, v, accepted) in [
        ("TOCSIN_SPIN_US", "18446744073709551615", "0..=10000000"),
        ("TOCSIN_CHUNK_BYTES", "1", "64..=1073741824"),
        ("TOCSIN_RING_BYTES", "5000", "power of two"),
        (
            "TOCSIN_PROGRESS",
            "spin",
            "poll, block, thread, signal, uintr",
        ),
    ] {
        let o = job_with(&[(var, v)]);
        assert_clean_failure(
            &o,
            &format!("{var}={v}"),
            &[1],
            &[var, &format!("\"{v}\""), accepted],
        );
    }
}

#[test]
fn launcher_rank_count_is_bounded() {
    for n in ["4294967295", "4097", "0", "-1", "lots"] {
        let mut cmd = Command::new(TOCSIN);
        cmd.args(["run", "-n", n, "--", "true"]);
        let o = common::run(&mut cmd, LIMIT);
        assert_clean_failure(&o, &format!("-n {n}"), &[2], &["-n", "4096"]);
    }
}

#[test]
fn bench_sizes_are_bounded() {
    for args in [
        &["bench", "pingpong", "--max-size", "100G"][..],
        &["bench", "pingpong", "--max-size", "99999999999999999999"],
        &["bench", "overlap", "--sizes", "1K,2G"],
    ] {
        let mut cmd = Command::new(TOCSIN);
        cmd.args(args);
        let o = common::run(&mut cmd, LIMIT);
        assert_clean_failure(&o, &args.join(" "), &[2], &[args[2], "1G"]);
    }
    for args in [
        &["bench", "pingpong", "--iters", "18446744073709551615"][..],
        &["bench", "overlap", "--reps", "18446744073709551615"],
        &["bench", "notify", "--iters", "18446744073709551615"],
    ] {
        let mut cmd = Command::new(TOCSIN);
        cmd.args(args);
        let o = common::run(&mut cmd, LIMIT);
        assert_clean_failure(&o, &args.join(" "), &[2], &[args[2], "..="]);
    }
    let mut cmd = Command::new(TOCSIN);
    cmd.args(["bench", "notify", "-q", "--case-secs", "1e30"]);
    let o = common::run(&mut cmd, LIMIT);
    assert_clean_failure(&o, "--case-secs 1e30", &[1, 2], &["--case-secs", "3600"]);
}

/// Set (to the case name) when this test binary runs as a rank of `tocsin run`.
const CHILD_ENV: &str = "TOCSIN_BAD_INPUT_CHILD";

/// The rank side of [`retry_after_a_failed_init_reports_the_first_failure`]: runs only as a
/// rank (with [`CHILD_ENV`] set); in a normal test run it does nothing.
#[test]
fn child_init_twice() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    // Passes validation, fails after the launcher connection was taken: no UINTR here.
    let first = match tocsin::init() {
        Ok(_) => {
            eprintln!("CHILD-SKIP: this machine offers uintr mode");
            return;
        }
        Err(e) => e.to_string(),
    };
    let second = match tocsin::init() {
        Ok(_) => panic!("the second init succeeded after the first failed with: {first}"),
        Err(e) => e.to_string(),
    };
    eprintln!("CHILD-FIRST: {first}");
    eprintln!("CHILD-SECOND: {second}");
}

#[test]
fn retry_after_a_failed_init_reports_the_first_failure() {
    let me = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(TOCSIN);
    cmd.args(["run", "-n", "1", "--"])
        .arg(me)
        .args([
            "--exact",
            "child_init_twice",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "retry")
        .env("TOCSIN_PROGRESS", "uintr");
    let o = common::run(&mut cmd, LIMIT);
    assert_eq!(
        o.code,
        Some(0),
        "stderr:\n{}\nstdout:\n{}",
        o.stderr,
        o.stdout
    );
    if o.stderr.contains("CHILD-SKIP") {
        return;
    }
    let line = |tag: &str| {
        o.stderr
            .lines()
            .find_map(|l| l.strip_prefix(tag))
            .unwrap_or_else(|| panic!("no {tag} line in stderr:\n{}", o.stderr))
            .to_owned()
    };
    let (first, second) = (line("CHILD-FIRST: "), line("CHILD-SECOND: "));
    assert!(
        !second.contains("not an open file descriptor"),
        "the retry reported a vanished descriptor: {second}"
    );
    assert!(
        second.contains("PMI_FD=") && second.contains("earlier initialization"),
        "{second}"
    );
    assert!(
        second.contains(&first),
        "the retry does not quote the first failure ({first}): {second}"
    );
}

#[test]
fn jacobi_grid_and_process_grid_are_bounded() {
    const JACOBI: &str = env!("CARGO_BIN_EXE_jacobi");
    for (args, needles) in [
        (
            &["--nx", "18446744073709551615"][..],
            &["--nx 18446744073709551615", "too large"][..],
        ),
        (
            &["--nx", "10000000", "--ny", "10000000"],
            &["--nx 10000000 --ny 10000000", "available"],
        ),
        (
            &["--px", "9223372036854775809", "--py", "2"],
            &["--px 9223372036854775809", "px × py must be 2"],
        ),
    ] {
        let mut cmd = Command::new(TOCSIN);
        cmd.args(["run", "-n", "2", "--", JACOBI]).args(args);
        let what = format!("jacobi {}", args.join(" "));
        let o = common::run(&mut cmd, LIMIT);
        assert_clean_failure(&o, &what, &[2], needles);
    }
}

#[test]
fn ranks_on_different_hosts_are_refused_with_both_host_names() {
    // Rank 1 runs in its own UTS namespace with another hostname: to tocsin it is on
    // another host, which tocsin must refuse by name (the launcher placed both on one node).
    let script = "if [ \"$PMI_RANK\" = 1 ]; then exec unshare -u sh -c 'hostname tocsin-other-host && exec \"$0\" sizes' \"$0\"; else exec \"$0\" sizes; fi";
    let mut cmd = Command::new(TOCSIN);
    cmd.args(["run", "-n", "2", "--", "sh", "-c", script, TESTRANK]);
    let o = common::run(&mut cmd, LIMIT);
    if o.stderr.contains("unshare failed") {
        assert!(
            std::env::var_os("CI").is_none(),
            "unshare -u must work in CI (root): {}",
            o.stderr
        );
        eprintln!("skipped: cannot create a UTS namespace here: {}", o.stderr);
        return;
    }
    assert_ne!(o.code, Some(0), "{}", o.stderr);
    assert!(
        o.stderr.contains("tocsin-other-host")
            && o.stderr.contains("do not share one")
            && o.stderr.contains("TOCSIN_NOLOCAL=1"),
        "{}",
        o.stderr
    );
}
