//! CMA refused by the kernel (a seccomp filter installed by `tocsin-nocma` makes
//! `process_vm_readv`/`writev` fail with EPERM, as for ranks of different users or under
//! Yama): rendezvous messages still arrive byte for byte through the pipelined path, in
//! every progress mode, whether both ranks or only one of them are refused.
//!
//! The engine's warning ("CMA … refused") is checked only when it appears: it is printed
//! once per rank when the fallback is taken. Every child runs under a deadline.

use std::time::Duration;

mod common;
use common::{command, run, TOCSIN};

const HOLD: &str = env!("CARGO_BIN_EXE_tocsin-hold");
const NOCMA: &str = env!("CARGO_BIN_EXE_tocsin-nocma");

#[test]
fn the_filter_refuses_cma_with_eperm() {
    let mut cmd = command(NOCMA);
    cmd.arg("--check");
    let out = run(&mut cmd, Duration::from_secs(30));
    assert_eq!(
        out.code,
        Some(0),
        "the seccomp filter does not refuse CMA:\n{}",
        out.stderr
    );
}

/// A 2-rank job under the filter (`refused`: value of NOCMA_RANKS, `None`: every rank),
/// messages up to 4 MiB (rendezvous, several chunks), in `mode`.
fn job(mode: &str, refused: Option<&str>) {
    let mut cmd = command(TOCSIN);
    cmd.args(["run", "-n", "2", "--", NOCMA, HOLD])
        .args(["--count", "25", "--max-bytes", "4194304"])
        .env("TOCSIN_PROGRESS", mode);
    match refused {
        Some(r) => cmd.env("NOCMA_RANKS", r),
        None => cmd.env_remove("NOCMA_RANKS"),
    };
    let what = format!("2 ranks, CMA refused for {refused:?}, {mode} mode");
    let out = run(&mut cmd, Duration::from_secs(180));
    assert_eq!(
        out.code,
        Some(0),
        "{what}: job failed\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    for r in 0..2 {
        let want = format!("ok hold rank {r}/2: 25 messages,");
        assert!(
            out.stdout.lines().any(|l| l.starts_with(&want)),
            "{what}: rank {r} did not check its messages:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }
    // The warning, if the engine prints one, says why, once per rank at most.
    let warns: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("CMA") && l.contains("refused"))
        .collect();
    assert!(
        warns.len() <= 2,
        "{what}: repeated warnings:\n{}",
        out.stderr
    );
    if warns.is_empty() {
        eprintln!("{what}: no CMA warning printed (stderr: {:?})", out.stderr);
    }
}

#[test]
fn poll_mode_falls_back_to_the_pipelined_copy() {
    job("poll", None);
}

#[test]
fn block_mode_falls_back_to_the_pipelined_copy() {
    job("block", None);
}

#[test]
fn signal_mode_falls_back_to_the_pipelined_copy() {
    job("signal", None);
}

#[test]
fn one_refused_rank_is_enough_to_fall_back() {
    job("poll", Some("1"));
    job("block", Some("0"));
}
