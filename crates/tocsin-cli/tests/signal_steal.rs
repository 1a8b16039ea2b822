//! Signal mode never takes the application's signal: an application that blocks
//! `SIGRTMIN+3` and reads it through a `signalfd` before `tocsin::init` still gets every one
//! of them (tocsin picks another signal), and naming that signal in `TOCSIN_SIGNAL` is refused
//! at `init` with an error that says why. An application that replaces tocsin's handler or
//! blocks its signal after `init` gets one warning saying so, and every message still
//! arrives. Every child runs under a deadline.

use std::time::Duration;

mod common;
use common::{command, run, Outcome, TOCSIN};

const HOLD: &str = env!("CARGO_BIN_EXE_tocsin-hold");

fn job(extra_env: &[(&str, String)]) -> Outcome {
    let mut cmd = command(TOCSIN);
    cmd.args(["run", "-n", "2", "--", HOLD])
        .args(["--count", "40", "--signalfd", "10"])
        .env("TOCSIN_PROGRESS", "signal");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    run(&mut cmd, Duration::from_secs(120))
}

#[test]
fn a_signalfd_application_keeps_all_its_signals() {
    let out = job(&[]);
    assert_eq!(
        out.code,
        Some(0),
        "job failed\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    for r in 0..2 {
        let want = format!("signalfd rank {r}: 10 of 10 SIGRTMIN+3 delivered");
        assert!(
            out.stdout.lines().any(|l| l == want),
            "rank {r} lost signals to tocsin:\n{}\n{}",
            out.stdout,
            out.stderr
        );
        let ok = format!("ok hold rank {r}/2: 40 messages,");
        assert!(
            out.stdout.lines().any(|l| l.starts_with(&ok)),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn naming_the_applications_signal_is_refused_at_init() {
    let s = (libc::SIGRTMIN() + 3).to_string();
    let out = job(&[("TOCSIN_SIGNAL", s.clone())]);
    assert_ne!(
        out.code,
        Some(0),
        "init accepted a signal the application reads"
    );
    assert!(
        out.stderr.contains("TOCSIN_SIGNAL")
            && out.stderr.contains(&s)
            && out.stderr.contains("blocked"),
        "the error does not say which signal and why:\n{}",
        out.stderr
    );
}

/// A 2-rank signal-mode job whose ranks take tocsin's signal back after `init` (`how`).
fn stolen_after_init(how: &str) -> Outcome {
    let s = (libc::SIGRTMIN() + 5).to_string();
    let mut cmd = command(TOCSIN);
    cmd.args(["run", "-n", "2", "--", HOLD, how])
        .args(["--stall-ms", "400", "--count", "40"])
        .env("TOCSIN_PROGRESS", "signal")
        .env("TOCSIN_SIGNAL", &s);
    let out = run(&mut cmd, Duration::from_secs(120));
    assert_eq!(
        out.code,
        Some(0),
        "{how}: job failed\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    for r in 0..2 {
        let ok = format!("ok hold rank {r}/2: 40 messages,");
        assert!(
            out.stdout.lines().any(|l| l.starts_with(&ok)),
            "{how}: {}",
            out.stdout
        );
    }
    out
}

fn warnings_about(out: &Outcome, what: &str) -> usize {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("tocsin warning") && l.contains(what))
        .count()
}

#[test]
fn a_handler_replaced_after_init_is_reported_once_per_rank() {
    let out = stolen_after_init("--replace-handler");
    let n = warnings_about(&out, "handler for signal");
    assert!(
        (1..=2).contains(&n),
        "expected one warning per rank that waited, got {n}:\n{}",
        out.stderr
    );
}

#[test]
fn a_signal_blocked_after_init_is_reported_once_per_rank() {
    let out = stolen_after_init("--block-signal");
    let n = warnings_about(&out, "is blocked in the registered thread");
    assert!(
        (1..=2).contains(&n),
        "expected one warning per rank that waited, got {n}:\n{}",
        out.stderr
    );
}
