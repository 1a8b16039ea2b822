//! Communicator and collective integration tests: `tocsin-collrank CASE` under `tocsin run`
//! on 1 to 5 ranks, in every progress mode and over TCP on loopback, checked by exit status
//! and every rank's `ok CASE rank R/N` line (the cases check every byte of every result;
//! see the program's module doc).

use std::time::Duration;

mod common;
use common::{serial, tocsin_run, Job};

const COLLRANK: &str = env!("CARGO_BIN_EXE_tocsin-collrank");
const JOB_TIMEOUT: Duration = Duration::from_secs(180);

fn check(n: u32, case: &str, mode: &str, env: &[(&str, &str)]) {
    let _g = serial();
    let mut cmd = tocsin_run(n, COLLRANK);
    cmd.args(["--timeout", "120", case])
        .env("TOCSIN_PROGRESS", mode)
        .envs(env.iter().copied());
    let o = Job::spawn(&mut cmd).wait(JOB_TIMEOUT);
    eprintln!("{}", o.report());
    o.assert_ranks_ok(n, case);
}

const TCP: [(&str, &str); 2] = [("TOCSIN_NOLOCAL", "1"), ("TOCSIN_TCP_IF", "lo")];

#[test]
fn collectives_on_1_to_5_ranks_poll() {
    for n in 1..=5 {
        check(n, "coll", "poll", &[]);
    }
}

#[test]
fn collectives_block_signal_thread() {
    for mode in ["block", "signal", "thread"] {
        check(3, "coll", mode, &[]);
    }
    check(4, "coll", "signal", &[]);
}

#[test]
fn collectives_over_tcp() {
    check(3, "coll", "poll", &TCP);
    check(2, "coll", "signal", &TCP);
}

#[test]
fn communicators() {
    for (n, mode) in [
        (1, "poll"),
        (2, "poll"),
        (4, "poll"),
        (3, "block"),
        (4, "signal"),
        (3, "thread"),
    ] {
        check(n, "comms", mode, &[]);
    }
    check(3, "comms", "poll", &TCP);
}

#[test]
fn nonblocking_collectives_progress_behind_the_back() {
    for (n, mode) in [
        (2, "poll"),
        (3, "block"),
        (2, "signal"),
        (3, "signal"),
        (2, "thread"),
        (4, "thread"),
    ] {
        check(n, "icoll", mode, &[]);
    }
    check(2, "icoll", "signal", &TCP);
    // Oversubscribed: the progress thread starts with the first nonblocking collective and
    // is rung only for the records that ask the rank to act (a collective's later rounds).
    check(4, "icoll", "thread", &[("TOCSIN_OVERSUBSCRIBED", "1")]);
}

#[test]
fn collective_with_a_dead_member_fails_with_peer_died() {
    // 3 ranks: the allreduce runs as a schedule; 4 ranks: directly in the calling thread
    // (recursive doubling), where rank 0's partners are alive but one of them gives up.
    for (n, mode) in [
        (3, "poll"),
        (3, "block"),
        (3, "signal"),
        (4, "poll"),
        (4, "signal"),
    ] {
        let _g = serial();
        let mut cmd = tocsin_run(n, COLLRANK);
        cmd.args(["--timeout", "60", "coll-die"])
            .env("TOCSIN_PROGRESS", mode);
        let o = Job::spawn(&mut cmd).wait(JOB_TIMEOUT);
        eprintln!("{}", o.report());
        // The last rank exits with code 0 without finishing (no tocsin shutdown): the
        // launcher lets the job go on, and every other rank must get PeerDied and report ok.
        for r in 0..n - 1 {
            assert!(
                o.stdout.contains(&format!("ok coll-die rank {r}/{n}")),
                "rank {r} of {n} did not report ok in {mode} mode"
            );
        }
    }
}

#[test]
fn synchronous_sends_matched_probes_persistent_requests() {
    for mode in ["poll", "block", "signal", "thread"] {
        check(2, "p2p-extra", mode, &[]);
    }
    check(3, "p2p-extra", "poll", &[]);
    check(2, "p2p-extra", "block", &TCP);
}
