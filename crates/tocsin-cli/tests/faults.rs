//! Fault-handling integration tests: `tocsin-faultrank CASE` under `tocsin run`, checked by
//! exit status, by every surviving rank's `ok CASE rank R/N` line, and for killed jobs by
//! what is left in `/dev/shm`.
//!
//! Cases where a rank dies and the others must go on use `tocsin run --keep-going` (a
//! launcher that leaves survivors running, as hydra's `-disable-auto-cleanup`); without it
//! the launcher must end the whole job. Time limits are hang guards with wide margins, not
//! speed checks. Jobs run one at a time (poll-mode ranks spin; `/dev/shm` is compared).

mod common;

use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const TOCSIN: &str = env!("CARGO_BIN_EXE_tocsin");
const FAULTRANK: &str = env!("CARGO_BIN_EXE_tocsin-faultrank");
/// Hang guard of a whole job.
const LIMIT: Duration = Duration::from_secs(120);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `tocsin run [--keep-going] -n N -- tocsin-faultrank ARGS` with `env`.
fn job(n: u32, keep_going: bool, args: &[&str], env: &[(&str, &str)]) -> common::Outcome {
    let mut cmd = Command::new(TOCSIN);
    cmd.arg("run");
    if keep_going {
        cmd.arg("--keep-going");
    }
    cmd.args(["-n", &n.to_string(), "--", FAULTRANK])
        .args(args)
        .args(["--timeout", "90"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    common::run(&mut cmd, LIMIT)
}

/// Asserts that every rank in `ranks` printed its `ok` line.
fn assert_ok(out: &common::Outcome, case: &str, n: u32, ranks: &[u32], what: &str) {
    for r in ranks {
        let line = format!("ok {case} rank {r}/{n}");
        assert!(
            out.stdout.lines().any(|l| l.trim() == line),
            "{what}: rank {r} did not finish {case} (exit {:?})\nstdout:\n{}\nstderr:\n{}",
            out.code,
            out.stdout,
            out.stderr
        );
    }
}

fn all(n: u32) -> Vec<u32> {
    (0..n).collect()
}

#[test]
fn wait_any_test_loop_iprobe_and_probe_end_when_the_peer_dies() {
    for mode in ["poll", "block", "thread", "signal"] {
        let _g = serial();
        let out = job(2, true, &["wait-any-dead"], &[("TOCSIN_PROGRESS", mode)]);
        assert_ok(&out, "wait-any-dead", 2, &[0], mode);
        assert!(
            out.stderr.contains("exited without finishing"),
            "{mode}: the death should be reported once on stderr:\n{}",
            out.stderr
        );
    }
}

#[test]
fn a_rank_that_finishes_cleanly_is_not_a_failed_peer() {
    for mode in ["poll", "block", "thread", "signal"] {
        let _g = serial();
        let out = job(4, false, &["manager"], &[("TOCSIN_PROGRESS", mode)]);
        assert_eq!(out.code, Some(0), "{mode}: {}", out.stderr);
        assert_ok(&out, "manager", 4, &all(4), mode);
        assert!(
            !out.stderr.contains("exited without finishing"),
            "{mode}: a clean finish was reported as a death:\n{}",
            out.stderr
        );
    }
}

#[test]
fn cancel_and_early_returns() {
    for mode in ["poll", "block", "thread", "signal"] {
        let _g = serial();
        let out = job(2, false, &["cancel"], &[("TOCSIN_PROGRESS", mode)]);
        assert_eq!(out.code, Some(0), "{mode}: {}", out.stderr);
        assert_ok(&out, "cancel", 2, &all(2), mode);
    }
}

#[test]
fn a_panicking_scope_cancels_and_waits_for_transfers_under_way() {
    for (mode, cma) in [
        ("poll", "1"),
        ("block", "1"),
        ("signal", "1"),
        ("block", "0"),
    ] {
        let _g = serial();
        let out = job(
            2,
            false,
            &["scope-panic"],
            &[("TOCSIN_PROGRESS", mode), ("TOCSIN_CMA", cma)],
        );
        assert_eq!(out.code, Some(0), "{mode} cma={cma}: {}", out.stderr);
        assert_ok(&out, "scope-panic", 2, &all(2), mode);
    }
}

#[test]
fn a_panicking_scope_with_a_transfer_that_cannot_end_aborts() {
    let _g = serial();
    let out = job(
        2,
        false,
        &["scope-panic-abort"],
        &[("TOCSIN_PROGRESS", "block")],
    );
    assert_eq!(
        out.code,
        Some(128 + libc::SIGABRT),
        "the rank should abort (SIGABRT): {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("tocsin: fatal: a panic unwound a tocsin scope"),
        "{}",
        out.stderr
    );
}

#[test]
fn eager_messages_of_a_dead_peer_stay_receivable_in_a_deep_ring() {
    for mode in ["poll", "block", "thread", "signal"] {
        let _g = serial();
        let out = job(
            2,
            true,
            &["dead-deep-ring", "--count", "20000"],
            &[("TOCSIN_PROGRESS", mode), ("TOCSIN_RING_BYTES", "67108864")],
        );
        assert_ok(&out, "dead-deep-ring", 2, &[0], mode);
    }
}

#[test]
fn a_sender_behind_a_full_ring_sleeps_until_space_is_freed() {
    for mode in ["block", "thread", "signal"] {
        let _g = serial();
        let out = job(
            2,
            false,
            &["full-ring-sleeps"],
            &[("TOCSIN_PROGRESS", mode), ("TOCSIN_RING_BYTES", "65536")],
        );
        assert_eq!(out.code, Some(0), "{mode}: {}\n{}", out.stdout, out.stderr);
        assert_ok(&out, "full-ring-sleeps", 2, &all(2), mode);
    }
}

#[test]
fn a_deep_ring_is_received_whole_in_every_mode() {
    for mode in ["poll", "block", "thread", "signal"] {
        let _g = serial();
        let out = job(
            2,
            false,
            &["deep-ring", "--count", "200000"],
            &[
                ("TOCSIN_PROGRESS", mode),
                ("TOCSIN_RING_BYTES", "268435456"),
            ],
        );
        assert_eq!(out.code, Some(0), "{mode}: {}", out.stderr);
        assert_ok(&out, "deep-ring", 2, &all(2), mode);
        if let Some(l) = out.stdout.lines().find(|l| l.contains("deep-ring:")) {
            eprintln!("{l}");
        }
    }
}

const PHASES: [&str; 6] = ["eager", "rts", "cts", "pipeline", "barrier", "handler"];

fn phase_env(phase: &str) -> Vec<(&'static str, &'static str)> {
    let mode = if phase == "handler" {
        "signal"
    } else {
        "block"
    };
    let cma = if phase == "pipeline" { "0" } else { "1" };
    vec![("TOCSIN_PROGRESS", mode), ("TOCSIN_CMA", cma)]
}

#[test]
fn survivors_fail_only_what_needed_the_rank_killed_at_each_phase() {
    for phase in PHASES {
        let _g = serial();
        let out = job(3, true, &["phases", "--die-at", phase], &phase_env(phase));
        assert_ok(&out, "phases", 3, &[0, 1], phase);
        assert_eq!(
            out.code,
            Some(128 + libc::SIGKILL),
            "{phase}: the job's exit code is the victim's: {}",
            out.stderr
        );
    }
}

#[test]
fn a_rank_killed_at_any_phase_ends_the_job_and_leaves_nothing_in_dev_shm() {
    for phase in ["startup"].into_iter().chain(PHASES) {
        let _g = serial();
        let before = common::dev_shm_tocsin();
        let mut env = phase_env(phase);
        env.push(("TOCSIN_SHM", "posix"));
        let t = Instant::now();
        let out = job(3, false, &["phases", "--die-at", phase], &env);
        let took = t.elapsed();
        assert_ne!(out.code, Some(0), "{phase}: the job must fail");
        assert!(
            out.stderr.contains("was killed by signal 9"),
            "{phase}: the launcher names the killed rank:\n{}",
            out.stderr
        );
        // Hang guard, 5× the promise: the job ends within 1 s of the death (it dies at most
        // 0.3 s after start-up), not at the rank watchdog.
        assert!(
            took < Duration::from_secs(5),
            "{phase}: the job took {took:?} to end"
        );
        std::thread::sleep(Duration::from_millis(200));
        let after = common::dev_shm_tocsin();
        let left: Vec<_> = after.difference(&before).collect();
        assert!(left.is_empty(), "{phase}: left in /dev/shm: {left:?}");
    }
}

#[test]
fn without_pidfds_deaths_are_still_seen_and_the_fallback_is_reported() {
    // RLIMIT_NOFILE so low that some pidfd_open calls fail (EMFILE), set in the ranks only.
    let mut triggered = false;
    for nofile in [4, 5, 6] {
        let _g = serial();
        let script = format!("ulimit -n {nofile}; exec \"$0\" \"$@\"");
        let mut cmd = Command::new(TOCSIN);
        cmd.args(["run", "--keep-going", "-n", "3", "--", "sh", "-c", &script])
            .args([FAULTRANK, "phases", "--die-at", "eager", "--timeout", "90"])
            .env("TOCSIN_PROGRESS", "block");
        let out = common::run(&mut cmd, LIMIT);
        if !out.stderr.contains("cannot open a pidfd") {
            continue;
        }
        triggered = true;
        assert_ok(&out, "phases", 3, &[0, 1], &format!("nofile={nofile}"));
    }
    assert!(triggered, "no RLIMIT_NOFILE tried made pidfd_open fail");
}

#[test]
fn warnings_reach_stderr_without_a_tracing_subscriber() {
    let _g = serial();
    let out = job(
        2,
        false,
        &["cancel"],
        &[
            ("TOCSIN_PROGRESS", "thread"),
            ("TOCSIN_PROGRESS_CORE", "999"),
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<_> = out
        .stderr
        .lines()
        .filter(|l| l.contains("TOCSIN_PROGRESS_CORE=999"))
        .collect();
    assert_eq!(lines.len(), 2, "one warning per rank:\n{}", out.stderr);
    assert!(lines.iter().all(|l| l.starts_with("tocsin warning (rank ")));
}
