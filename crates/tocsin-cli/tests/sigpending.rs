//! Signal mode with the real-time signal queue exhausted (`RLIMIT_SIGPENDING` at a handful,
//! or 0): senders that cannot interrupt leave the work for the peer's next pass, so every
//! message still arrives intact and nothing hangs; and `tocsin probe` reports the limit.
//!
//! The limit is set with `setrlimit` between `fork` and `exec` of `tocsin` (inherited by the
//! launcher and its ranks). Every child runs under a deadline and is killed past it.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{command, run, TOCSIN};

const HOLD: &str = env!("CARGO_BIN_EXE_tocsin-hold");

/// `tocsin ARGS` with `RLIMIT_SIGPENDING` set to `limit` (soft and hard).
fn tocsin_with_sigpending(limit: u64, args: &[&str]) -> Command {
    let mut cmd = command(TOCSIN);
    cmd.args(args);
    // SAFETY: setrlimit is async-signal-safe and touches no memory but the local struct.
    unsafe {
        cmd.pre_exec(move || {
            let rl = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_SIGPENDING, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

fn exchange_under(limit: u64, n: u32, count: usize) {
    let ns = n.to_string();
    let cs = count.to_string();
    let mut cmd = tocsin_with_sigpending(
        limit,
        &[
            "run",
            "-n",
            &ns,
            "--",
            HOLD,
            "--count",
            &cs,
            "--max-bytes",
            "262144",
        ],
    );
    cmd.env("TOCSIN_PROGRESS", "signal");
    let out = run(&mut cmd, Duration::from_secs(240));
    assert_eq!(
        out.code,
        Some(0),
        "job failed with RLIMIT_SIGPENDING={limit}\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    let per_rank = (n as usize - 1) * count;
    for r in 0..n {
        let want = format!("ok hold rank {r}/{n}: {per_rank} messages,");
        assert!(
            out.stdout.lines().any(|l| l.starts_with(&want)),
            "rank {r} did not check all {per_rank} messages:\n{}\nstderr:\n{}",
            out.stdout,
            out.stderr
        );
    }
}

#[test]
fn signal_mode_delivers_everything_with_a_tiny_signal_queue() {
    exchange_under(4, 4, 150);
}

#[test]
fn signal_mode_delivers_everything_with_no_signal_queue_at_all() {
    exchange_under(0, 2, 150);
}

#[test]
fn probe_reports_the_sigpending_limit() {
    let mut cmd = tocsin_with_sigpending(4, &["probe", "--json"]);
    let out = run(&mut cmd, Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let j: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}):\n{}", out.stdout));
    let q = &j["items"]["signal_queue"];
    assert_eq!(q["limit"].as_u64(), Some(4), "{q:#}");
    let detail = q["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("of 4") && detail.contains("RLIMIT_SIGPENDING"),
        "{detail}"
    );

    let mut cmd = tocsin_with_sigpending(4, &["probe"]);
    let out = run(&mut cmd, Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("signal_queue"))
        .unwrap_or_else(|| panic!("no signal_queue line:\n{}", out.stdout));
    assert!(
        line.contains("of 4") && line.contains("RLIMIT_SIGPENDING"),
        "{line}"
    );
}
