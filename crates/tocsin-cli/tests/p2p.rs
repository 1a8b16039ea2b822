//! Point-to-point integration tests: `tocsin-testrank CASE` started under `tocsin run` (and
//! once under MPICH's `mpiexec.hydra`), checked by exit status, by the absence of ranks
//! outliving the launcher and by every rank's `ok CASE rank R/N` line.
//!
//! Most tests are rows of a table ([`p2p_tests!`]): a test name and the jobs it runs, each
//! job a [`Run`] (ranks, case, progress mode, environment, case options). A test runs every
//! one of its jobs and, if some fail, names each failing job (the output of each is printed
//! as it fails). Tests that act on a job while it runs (/dev/shm hygiene) or check more than
//! success (message counts) are written out below the table.
//!
//! Jobs run through `common` (own process group, clean environment, deadline; see its
//! module doc), one at a time ([`serial`]): the machine has few cores, poll-mode ranks spin,
//! and the `/dev/shm` checks compare directory listings.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{command, serial, tocsin_run, Job, Outcome};

const TESTRANK: &str = env!("CARGO_BIN_EXE_tocsin-testrank");

/// Deadline of a whole job.
const JOB_TIMEOUT: Duration = Duration::from_secs(120);
/// The rank program's own watchdog (`--timeout`), shorter so that it reports the step a
/// stuck rank is in before the job deadline kills everything.
const RANK_WATCHDOG_SECS: &str = "90";

/// Environment variables of a job.
type Env = &'static [(&'static str, &'static str)];

/// One job: `tocsin run -n ranks -- tocsin-testrank [--timeout 90] CASE ARGS…` with
/// `TOCSIN_PROGRESS=mode` and `env`.
#[derive(Clone, Copy, Debug)]
struct Run {
    ranks: u32,
    case: &'static str,
    mode: &'static str,
    env: Env,
    /// The case's options (`tocsin-testrank help CASE`), and `--timeout S` to replace the
    /// default watchdog.
    args: &'static [&'static str],
}

/// A [`Run`] (a table row).
const fn run(
    ranks: u32,
    case: &'static str,
    mode: &'static str,
    env: Env,
    args: &'static [&'static str],
) -> Run {
    Run {
        ranks,
        case,
        mode,
        env,
        args,
    }
}

impl Run {
    /// How a failure names the job.
    fn label(&self) -> String {
        let env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "-n {} {} mode={} env=[{}] args={:?}",
            self.ranks,
            self.case,
            self.mode,
            env.join(" "),
            self.args
        )
    }

    /// The testrank command line after the program: watchdog, case, options.
    fn testrank_args(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if !self.args.contains(&"--timeout") {
            v.extend(["--timeout", RANK_WATCHDOG_SECS]);
        }
        v.push(self.case);
        v.extend_from_slice(self.args);
        v
    }

    /// Sets the job's environment on `cmd`.
    fn env_on(&self, cmd: &mut Command) {
        cmd.env("TOCSIN_PROGRESS", self.mode)
            .envs(self.env.iter().copied());
    }

    /// Starts the job under `tocsin run`.
    fn start(&self) -> Job {
        let mut cmd = tocsin_run(self.ranks, TESTRANK);
        cmd.args(self.testrank_args());
        self.env_on(&mut cmd);
        Job::spawn(&mut cmd)
    }

    /// Runs the job (one at a time) and asserts its success.
    fn check(&self) -> Outcome {
        let _g = serial();
        let o = self.start().wait(JOB_TIMEOUT);
        o.assert_ranks_ok(self.ranks, self.case);
        eprintln!("{}", o.report());
        o
    }
}

/// Runs every job of `runs`, then fails naming each one that failed.
fn check_all(runs: &[Run]) {
    let failed: Vec<String> = runs
        .iter()
        .filter(|r| catch_unwind(AssertUnwindSafe(|| r.check())).is_err())
        .map(Run::label)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} jobs failed (output above):\n  {}",
        failed.len(),
        runs.len(),
        failed.join("\n  ")
    );
}

/// `name: [runs…];` rows, each expanded into one `#[test] fn name` running [`check_all`].
macro_rules! p2p_tests {
    ($( $(#[$meta:meta])* $name:ident: $runs:expr; )*) => {
        $(
            $(#[$meta])*
            #[test]
            fn $name() {
                check_all(&$runs);
            }
        )*
    };
}

const NO_CMA: (&str, &str) = ("TOCSIN_CMA", "0");
/// Smallest rings (4 KiB): records wait for room all the time.
const TINY_RING: (&str, &str) = ("TOCSIN_RING_BYTES", "4096");
/// An eager threshold that fits [`TINY_RING`].
const EAGER_900: (&str, &str) = ("TOCSIN_EAGER_THRESHOLD", "900");
/// Every message with a byte in it goes through the rendezvous.
const EAGER_0: (&str, &str) = ("TOCSIN_EAGER_THRESHOLD", "0");

/// Every peer through the TCP transport, on loopback (`TOCSIN_NOLOCAL=1`).
const TCP: (&str, &str) = ("TOCSIN_NOLOCAL", "1");
/// Declares the node oversubscribed: waits yield or sleep without spinning.
const OVERSUB: (&str, &str) = ("TOCSIN_OVERSUBSCRIBED", "1");
/// Loopback: tests never use the machine's external address.
const LO: (&str, &str) = ("TOCSIN_TCP_IF", "lo");

/// The point-to-point suite over TCP on loopback, in one progress mode.
const fn tcp_p2p(mode: &'static str) -> [Run; 16] {
    [
        run(2, "sizes", mode, &[TCP, LO], &[]),
        run(4, "wildcards", mode, &[TCP, LO], &[]),
        run(2, "ordering", mode, &[TCP, LO], &[]),
        run(2, "truncation", mode, &[TCP, LO], &[]),
        run(2, "self", mode, &[TCP, LO], &[]),
        run(2, "probe", mode, &[TCP, LO], &[]),
        run(3, "errors", mode, &[TCP, LO], &[]),
        run(3, "sendrecv", mode, &[TCP, LO], &[]),
        run(4, "waitany", mode, &[TCP, LO], &[]),
        run(3, "flood", mode, &[TCP, LO], &[]),
        run(4, "random", mode, &[TCP, LO], &["--total", "4000"]),
        run(2, "threads", mode, &[TCP, LO], &[]),
        run(3, "die", mode, &[TCP, LO], &[]),
        run(2, "die-rendezvous", mode, &[TCP, LO], &[]),
        run(2, "die-unexpected", mode, &[TCP, LO], &[]),
        run(2, "sleepy", mode, &[TCP, LO], &[]),
    ]
}

/// The point-to-point cases in one progress mode.
const fn mode_p2p(mode: &'static str) -> [Run; 10] {
    [
        run(2, "sizes", mode, &[], &[]),
        run(2, "sizes", mode, &[NO_CMA], &[]),
        run(3, "wildcards", mode, &[], &[]),
        run(2, "ordering", mode, &[], &[]),
        run(2, "truncation", mode, &[], &[]),
        run(2, "self", mode, &[], &[]),
        run(2, "probe", mode, &[], &[]),
        run(3, "errors", mode, &[], &[]),
        run(3, "sendrecv", mode, &[], &[]),
        run(3, "waitany", mode, &[], &[]),
    ]
}

/// Heavier traffic in one progress mode.
const fn mode_stress(mode: &'static str) -> [Run; 5] {
    [
        run(3, "flood", mode, &[], &[]),
        run(2, "threads", mode, &[], &[]),
        run(2, "threads-cross", mode, &[], &[]),
        run(
            4,
            "random",
            mode,
            &[TINY_RING, EAGER_900],
            &["--total", "4000"],
        ),
        run(2, "die-rendezvous", mode, &[], &[]),
    ]
}

/// No fast ring at all: every record through the peers' inboxes (the dynamic layout's
/// fallback, which pairs beyond the rings use).
const INBOX_ONLY: (&str, &str) = ("TOCSIN_FAST_PATHS", "0");
/// One fast ring per rank: with 4 ranks, three senders race to claim each rank's ring and
/// the losers stay on the inbox (the dynamic layout of nodes above 33 ranks).
const ONE_FAST_PATH: (&str, &str) = ("TOCSIN_FAST_PATHS", "1");
/// An eager threshold an inbox slot carries: cases that count on eager sends completing
/// without the receiver (`sizes`) keep that promise toward ring-less peers.
const EAGER_200: (&str, &str) = ("TOCSIN_EAGER_THRESHOLD", "200");

/// The point-to-point cases over the dynamic shared-memory layout (`$fast` is
/// [`INBOX_ONLY`] or [`ONE_FAST_PATH`]), in one progress mode (a macro: the environment
/// tables must be constants).
macro_rules! dynamic_p2p {
    ($mode:expr, $fast:expr) => {
        [
            run(4, "sizes", $mode, &[$fast, EAGER_200], &[]),
            run(2, "sizes", $mode, &[$fast, EAGER_200, NO_CMA], &[]),
            run(4, "wildcards", $mode, &[$fast], &[]),
            run(4, "ordering", $mode, &[$fast], &[]),
            run(4, "flood", $mode, &[$fast], &[]),
            run(4, "random", $mode, &[$fast], &["--total", "4000"]),
            run(4, "truncation", $mode, &[$fast, EAGER_200], &[]),
            run(4, "waitany", $mode, &[$fast, EAGER_200], &[]),
            run(3, "errors", $mode, &[$fast, EAGER_200], &[]),
            run(3, "die", $mode, &[$fast], &[]),
            run(2, "die-rendezvous", $mode, &[$fast], &[]),
        ]
    };
}

/// `a` then `b`.
fn concat(a: &[Run], b: &[Run]) -> Vec<Run> {
    a.iter().chain(b).copied().collect()
}

p2p_tests! {
    // --- the dynamic node layout: inboxes only, and one fast ring per rank claimed on use
    dynamic_inbox_only_poll: dynamic_p2p!("poll", INBOX_ONLY);
    dynamic_inbox_only_block: dynamic_p2p!("block", INBOX_ONLY);
    dynamic_one_fast_path_block: dynamic_p2p!("block", ONE_FAST_PATH);
    dynamic_one_fast_path_signal: dynamic_p2p!("signal", ONE_FAST_PATH);

    // --- sizes: 0, 1, eager−1, eager, eager+1, 4 MiB+3; blocking / non-blocking; both orders
    sizes_cma_poll: [run(2, "sizes", "poll", &[], &[])];
    sizes_pipelined_poll: [run(2, "sizes", "poll", &[NO_CMA], &[])];
    sizes_cma_block: [run(2, "sizes", "block", &[], &[])];
    sizes_pipelined_block: [run(2, "sizes", "block", &[NO_CMA], &[])];
    sizes_pipelined_small_chunks_low_threshold: [run(
        2,
        "sizes",
        "poll",
        &[NO_CMA, ("TOCSIN_CHUNK_BYTES", "4096"), ("TOCSIN_EAGER_THRESHOLD", "1000")],
        &[],
    )];
    sizes_three_ranks_block: [run(3, "sizes", "block", &[], &[])];
    sizes_pipelined_odd_chunks: [
        run(2, "sizes", "poll", &[NO_CMA, ("TOCSIN_CHUNK_BYTES", "4097")], &[]),
        run(2, "sizes", "block", &[NO_CMA, ("TOCSIN_CHUNK_BYTES", "64")], &[]),
    ];
    sizes_tiny_rings: [
        run(2, "sizes", "poll", &[TINY_RING, EAGER_900], &[]),
        run(2, "sizes", "block", &[TINY_RING, EAGER_900, NO_CMA], &[]),
    ];
    sizes_eager_threshold_0: [
        run(2, "sizes", "poll", &[EAGER_0], &[]),
        run(2, "sizes", "block", &[EAGER_0, NO_CMA], &[]),
    ];

    // --- wildcards
    wildcards_3_ranks_poll: [run(3, "wildcards", "poll", &[], &[])];
    wildcards_4_ranks_block: [run(4, "wildcards", "block", &[], &[])];
    wildcards_4_ranks_pipelined_block: [run(4, "wildcards", "block", &[NO_CMA], &[])];
    wildcards_4_ranks_all_rendezvous_block: [
        run(4, "wildcards", "block", &[EAGER_0], &[]),
        run(4, "wildcards", "block", &[EAGER_0, NO_CMA], &[]),
    ];

    // --- ordering
    ordering_cma_poll: [run(2, "ordering", "poll", &[], &[])];
    ordering_pipelined_block: [run(2, "ordering", "block", &[NO_CMA], &[])];
    ordering_tiny_rings_block: [
        run(2, "ordering", "block", &[TINY_RING, EAGER_900], &[]),
        run(2, "ordering", "block", &[TINY_RING, EAGER_900, NO_CMA], &[]),
    ];

    // --- flood: thousands of unexpected messages, full rings, received by tag in another order
    flood_2_ranks_poll: [run(2, "flood", "poll", &[], &[])];
    flood_3_ranks_block: [run(3, "flood", "block", &[], &[])];
    flood_3_ranks_tiny_rings_pipelined_block: [
        run(3, "flood", "block", &[TINY_RING, EAGER_900, NO_CMA], &[]),
    ];

    // --- truncation
    truncation_cma_poll: [run(2, "truncation", "poll", &[], &[])];
    truncation_pipelined_poll: [run(2, "truncation", "poll", &[NO_CMA], &[])];
    truncation_cma_block_3_ranks: [run(3, "truncation", "block", &[], &[])];
    truncation_all_rendezvous_and_tiny_rings: [
        run(2, "truncation", "block", &[EAGER_0], &[]),
        run(2, "truncation", "block", &[TINY_RING, EAGER_900, NO_CMA], &[]),
    ];

    // --- self-send
    self_send_cma: [run(2, "self", "poll", &[], &[])];
    self_send_pipelined_block: [run(2, "self", "block", &[NO_CMA], &[])];
    self_send_all_rendezvous: [
        run(2, "self", "poll", &[EAGER_0], &[]),
        run(2, "self", "block", &[EAGER_0, NO_CMA], &[]),
    ];

    // --- random messages with checksums (the 10,000-message block-mode one is below)
    random_10000_messages_4_ranks_pipelined_block: [run(4, "random", "block", &[NO_CMA], &[])];
    random_4_ranks_tiny_rings_block: [
        run(4, "random", "block", &[TINY_RING, EAGER_900], &["--total", "4000"]),
    ];
    random_4_ranks_all_rendezvous_pipelined_block: [run(
        4,
        "random",
        "block",
        &[EAGER_0, NO_CMA],
        &["--total", "2000", "--max", "70000"],
    )];
    random_2_ranks_poll_low_threshold: [run(
        2,
        "random",
        "poll",
        &[("TOCSIN_EAGER_THRESHOLD", "2048")],
        &["--total", "4000"],
    )];

    // --- probe / iprobe
    probe_poll: [run(2, "probe", "poll", &[], &[])];
    probe_block_3_ranks: [run(3, "probe", "block", &[], &[])];

    // --- errors
    errors_3_ranks: [run(3, "errors", "poll", &[], &[])];
    /// `Comm::sendrecv` posts its receive before checking the send's arguments: with an
    /// invalid destination the `?` drops the posted receive, whose `Drop` waits forever.
    errors_sendrecv_invalid_destination: [
        run(2, "errors-sendrecv", "poll", &[], &["--timeout", "20"]),
    ];

    // --- sendrecv, wait_any / wait_all / test
    sendrecv_4_ranks_block: [run(4, "sendrecv", "block", &[], &[])];
    sendrecv_2_ranks_pipelined_poll: [run(2, "sendrecv", "poll", &[NO_CMA], &[])];
    waitany_4_ranks_block: [run(4, "waitany", "block", &[], &[])];
    waitany_2_ranks_poll: [run(2, "waitany", "poll", &[], &[])];
    waitany_2_ranks_pipelined_poll: [run(2, "waitany", "poll", &[NO_CMA], &[])];

    // --- a peer that dies
    die_poll_3_ranks: [run(3, "die", "poll", &[], &[])];
    /// The dead rank's watcher computes: the rank waiting on it probes it directly.
    die_watcher_busy: [
        run(3, "die-watcher-busy", "block", &[], &[]),
        run(4, "die-watcher-busy", "poll", &[INBOX_ONLY], &[]),
    ];
    die_block_3_ranks: [run(3, "die", "block", &[], &[])];
    die_pipelined_2_ranks: [run(2, "die", "poll", &[NO_CMA], &[])];
    die_rendezvous_in_flight_cma: [run(2, "die-rendezvous", "poll", &[], &[])];
    die_rendezvous_in_flight_pipelined_block: [
        run(2, "die-rendezvous", "block", &[NO_CMA], &[]),
    ];
    /// A message that had already arrived when its sender died is discarded instead of being
    /// delivered (in every mode; see the `die-unexpected` case).
    die_unexpected_message_survives_the_sender: [
        run(2, "die-unexpected", "poll", &[], &[]),
        run(2, "die-unexpected", "block", &[], &[]),
    ];

    // --- long waits; block mode must sleep
    sleepy_block: [run(2, "sleepy", "block", &[], &[])];
    sleepy_pipelined_block: [run(2, "sleepy", "block", &[NO_CMA], &[])];
    sleepy_poll: [run(2, "sleepy", "poll", &[], &[])];
    /// Poll and block modes: a computation while a message arrives is not slowed down (the
    /// receive completes at the next call).
    background_poll_and_block: [
        run(2, "background", "poll", &[], &[]),
        run(2, "background", "block", &[NO_CMA], &["--len", "2000000"]),
    ];

    // --- threads
    threads_2_per_rank_block: [run(2, "threads", "block", &[], &[])];
    threads_2_per_rank_pipelined_block: [run(2, "threads", "block", &[NO_CMA], &[])];
    threads_2_per_rank_poll: [run(2, "threads", "poll", &[], &["--iters", "60"])];
    /// Cross-thread self-sends wake a sleeping receiver; producer / consumer threads.
    threads_cross_block: [
        run(2, "threads-cross", "block", &[], &[]),
        run(3, "threads-cross", "block", &[NO_CMA, EAGER_0], &[]),
    ];
    threads_cross_poll: [run(2, "threads-cross", "poll", &[], &["--iters", "20"])];
    threads_3_per_rank_4_ranks_block: [run(4, "threads", "block", &[], &["--threads", "3"])];

    // --- the TCP transport on loopback (TOCSIN_NOLOCAL=1): the suite in every mode
    tcp_nolocal_poll: tcp_p2p("poll");
    tcp_nolocal_block: concat(&tcp_p2p("block"), &[
        run(2, "sizes", "block", &[TCP, LO, EAGER_0], &[]),
        run(2, "sizes", "block", &[TCP, LO, ("TOCSIN_CHUNK_BYTES", "4097")], &[]),
        run(2, "threads-cross", "block", &[TCP, LO], &[]),
    ]);
    tcp_nolocal_thread: concat(&tcp_p2p("thread"), &[
        run(2, "background", "thread", &[TCP, LO], &["--len", "1000000"]),
    ]);
    /// Signal mode over TCP: the kernel raises the signal when data arrives, and the
    /// computing rank's handler receives.
    tcp_nolocal_signal: concat(&tcp_p2p("signal"), &[
        run(2, "background", "signal", &[TCP, LO], &[]),
        run(2, "background", "signal", &[TCP, LO], &["--len", "1000000"]),
    ]);

    // --- progress modes thread and signal: the same cases, plus background progress
    thread_mode_p2p: mode_p2p("thread");
    thread_mode_stress: mode_stress("thread");
    /// The progress thread completes a receive while the application computes, and waits
    /// sleep.
    thread_mode_background_progress: [
        run(2, "background", "thread", &[], &[]),
        run(2, "background", "thread", &[], &["--len", "1000000"]),
        run(2, "background", "thread", &[NO_CMA], &["--len", "2000000"]),
        run(2, "sleepy", "thread", &[], &[]),
        run(2, "sleepy", "thread", &[NO_CMA], &[]),
    ];
    /// The progress thread parks while its rank waits (here in a barrier) and is handed the
    /// watch back, without being woken, when the wait ends: the rendezvous that arrives
    /// while the rank then computes must still be answered by it (single-copy and
    /// pipelined), also on an oversubscribed node (no spin at all; there the hand-off arms
    /// it for records that ask the rank to act only). The computation (40 ms) is shorter
    /// than a parked thread's longest sleep (50 ms): only the hand-off can make the progress
    /// thread answer in time. In the last two oversubscribed cases the progress thread
    /// exists before the barrier (on an oversubscribed node it starts with the rank's first
    /// transfer that may need it: the warm-up message) and parks there while rank 1 waits
    /// 155 ms for rank 0: its parks time out 50, 100, 150, 200 ms after the warm-up, so
    /// without the hand-off it would look next well after the 30 ms computation ended.
    thread_mode_progress_after_a_wait: [
        run(2, "background", "thread", &[], &["--barrier", "--len", "1000000", "--send-after-ms", "1", "--compute-ms", "40"]),
        run(2, "background", "thread", &[NO_CMA], &["--barrier", "--len", "2000000", "--send-after-ms", "1", "--compute-ms", "40"]),
        run(2, "background", "thread", &[OVERSUB], &["--barrier", "--len", "1000000", "--send-after-ms", "1", "--compute-ms", "40"]),
        run(2, "background", "thread", &[OVERSUB], &["--warmup", "--barrier", "--barrier-late-ms", "155", "--len", "1000000", "--send-after-ms", "1", "--compute-ms", "30"]),
        run(2, "background", "thread", &[OVERSUB, NO_CMA], &["--warmup", "--barrier", "--barrier-late-ms", "155", "--len", "2000000", "--send-after-ms", "1", "--compute-ms", "30"]),
        run(3, "background", "thread", &[OVERSUB, NO_CMA], &["--barrier", "--len", "300000", "--count", "3"]),
    ];
    /// Thread mode on a node declared oversubscribed: the progress thread starts with the
    /// rank's first post that may need it and is rung only for the records that ask the
    /// rank to act; everything still arrives, in order, and nothing waits forever.
    thread_mode_oversubscribed: [
        run(2, "sizes", "thread", &[OVERSUB], &[]),
        run(2, "sizes", "thread", &[OVERSUB, NO_CMA], &[]),
        run(2, "truncation", "thread", &[OVERSUB], &[]),
        run(3, "flood", "thread", &[OVERSUB], &[]),
        run(2, "threads-cross", "thread", &[OVERSUB], &[]),
        run(4, "random", "thread", &[OVERSUB, TINY_RING, EAGER_900], &["--total", "4000"]),
        run(2, "sleepy", "thread", &[OVERSUB], &[]),
        run(2, "background", "thread", &[OVERSUB, TINY_RING, EAGER_900], &["--len", "900", "--count", "200"]),
    ];
    /// Thread mode, rank 1 exits after one send (same library bug as
    /// `die_unexpected_message_survives_the_sender`: the progress thread has already moved
    /// the message to the unexpected queue when the death is noticed).
    thread_mode_die: [
        run(3, "die", "thread", &[], &[]),
        // Oversubscribed: the rendezvous send to the dead rank starts the progress thread.
        run(3, "die", "thread", &[OVERSUB], &[]),
        run(2, "die-rendezvous", "thread", &[OVERSUB], &[]),
    ];
    signal_mode_p2p: mode_p2p("signal");
    signal_mode_stress: concat(&mode_stress("signal"), &[run(3, "die", "signal", &[], &[])]);
    /// A receive posted before a computation must complete during it in signal mode.
    signal_mode_background_progress: [
        run(2, "background", "signal", &[], &[]),
        run(2, "background", "signal", &[], &["--len", "1000000"]),
        // Many eager messages into tiny rings while the receiver computes: handlers must
        // not starve it.
        run(2, "background", "signal", &[TINY_RING, EAGER_900], &["--len", "900", "--count", "200"]),
        run(2, "sleepy", "signal", &[], &[]),
    ];
    /// A pipelined rendezvous (no CMA) larger than the ring, sent to a rank that computes:
    /// the computing rank must be neither starved nor left without progress.
    signal_mode_pipelined_rendezvous_to_computing_rank: [
        run(2, "background", "signal", &[NO_CMA], &["--len", "2000000", "--timeout", "20"]),
        run(
            2,
            "background",
            "signal",
            &[NO_CMA, TINY_RING, EAGER_900],
            &["--len", "100000", "--timeout", "20"],
        ),
    ];
}

// ---------------------------------------------------------------------------------------
// Tests that check more than the jobs' success

/// 10,000 random messages with checksums; the ranks' `sent N` reports add up to at least
/// that.
#[test]
fn random_10000_messages_4_ranks_block() {
    let o = run(4, "random", "block", &[], &[]).check();
    let sent: u64 = o
        .stdout
        .lines()
        .filter_map(|l| {
            l.split("sent ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(sent >= 10_000, "only {sent} messages sent\n{}", o.report());
}

/// TOCSIN_SHM=posix works, and leaves nothing in /dev/shm after a clean run.
#[test]
fn sizes_posix_shm() {
    const SHM_POSIX: (&str, &str) = ("TOCSIN_SHM", "posix");
    let before = dev_shm_tocsin();
    check_all(&[
        run(2, "sizes", "poll", &[SHM_POSIX], &[]),
        run(3, "sizes", "block", &[SHM_POSIX, NO_CMA], &[]),
    ]);
    let _g = serial();
    assert_no_new_shm(&before, "after clean posix-mode runs");
}

/// Without any launcher the program is rank 0 of a world of one.
#[test]
fn self_send_singleton_without_launcher() {
    let _g = serial();
    for r in [
        run(1, "self", "poll", &[], &[]),
        run(1, "self", "block", &[NO_CMA], &[]),
    ] {
        let mut cmd = command(TESTRANK);
        cmd.args(r.testrank_args());
        r.env_on(&mut cmd);
        let o = Job::spawn(&mut cmd).wait(JOB_TIMEOUT);
        o.assert_ranks_ok(1, "self");
    }
}

// ---------------------------------------------------------------------------------------
// /dev/shm hygiene

use common::dev_shm_tocsin;

/// Asserts no `/dev/shm/tocsin-*` entry exists that was not in `before`. Entries of other
/// jobs running at the same time on the machine vanish quickly (unlinked once attached), so
/// a new entry must persist for 3 s to count.
fn assert_no_new_shm(before: &BTreeSet<String>, ctx: &str) {
    let t0 = Instant::now();
    loop {
        let new: Vec<String> = dev_shm_tocsin().difference(before).cloned().collect();
        if new.is_empty() {
            return;
        }
        if t0.elapsed() > Duration::from_secs(3) {
            panic!("new /dev/shm entries {new:?} left behind: {ctx}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `pid R PID` lines printed by the `hold` cases, as (rank, pid).
fn pids(job: &Job, n: u32) -> Vec<i32> {
    let mut v = vec![0; n as usize];
    for r in 0..n {
        let prefix = format!("pid {r} ");
        let l = job
            .wait_line(Duration::from_secs(30), |l| l.starts_with(&prefix))
            .unwrap_or_else(|| {
                panic!(
                    "rank {r} never printed its pid; stdout so far: {:?}",
                    job.stdout_lines()
                )
            });
        v[r as usize] = l[prefix.len()..].trim().parse().expect("pid");
    }
    v
}

/// The `/dev/shm/…` objects a process maps, as listed in `/proc/PID/maps`, with whether
/// the kernel marks them deleted.
fn shm_maps(pid: i32) -> Vec<(String, bool)> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut v: Vec<(String, bool)> = maps
        .lines()
        .filter_map(|l| {
            let i = l.find("/dev/shm/")?;
            let rest = &l[i..];
            let deleted = rest.ends_with(" (deleted)");
            Some((rest.trim_end_matches(" (deleted)").to_string(), deleted))
        })
        .collect();
    v.dedup();
    v
}

fn maps_contain(pid: i32, what: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|m| m.contains(what))
        .unwrap_or(false)
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn sigkill(pid: i32) {
    // SAFETY: kill(2) on a rank of our own job.
    let r = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(r, 0, "kill -9 {pid}: {}", std::io::Error::last_os_error());
}

/// TOCSIN_SHM=posix: rank 0 unlinks the object once everyone attached, so SIGKILL of a rank
/// in the middle of the run leaves nothing in /dev/shm.
#[test]
fn posix_shm_rank_killed_mid_run_leaves_nothing() {
    let _g = serial();
    let before = dev_shm_tocsin();
    let job = run(
        3,
        "hold",
        "block",
        &[("TOCSIN_SHM", "posix")],
        &["--secs", "60"],
    )
    .start();
    let p = pids(&job, 3);
    let maps = shm_maps(p[0]);
    assert!(
        maps.iter().any(|(n, _)| n.starts_with("/dev/shm/tocsin-")),
        "TOCSIN_SHM=posix but rank 0 maps no /dev/shm/tocsin-* object: {maps:?}"
    );
    for (name, deleted) in &maps {
        assert!(
            *deleted && !Path::new(name).exists(),
            "{name} still has a name after every rank attached"
        );
    }
    sigkill(p[1]);
    let o = job.wait(Duration::from_secs(30));
    assert!(
        !o.timed_out && !o.success(),
        "the job should end with a failure once a rank is killed\n{}",
        o.report()
    );
    assert!(!o.stragglers, "ranks outlived the launcher\n{}", o.report());
    for (r, &pid) in p.iter().enumerate() {
        assert!(
            !alive(pid),
            "rank {r} (pid {pid}) still alive\n{}",
            o.report()
        );
    }
    assert_no_new_shm(&before, "after SIGKILL of rank 1 in posix mode");
}

/// TOCSIN_SHM=posix with a rank killed while rank 0 is still inside the bootstrap (the
/// object exists and has its name): the launcher must unlink the name published under
/// `tocsin.shm.posix`. Killing rank 0 itself, the creator, leaves only the launcher to do it.
#[test]
fn posix_shm_rank_killed_during_bootstrap_is_unlinked_by_launcher() {
    let _g = serial();
    for victim in [1usize, 0] {
        let before = dev_shm_tocsin();
        let job = run(
            2,
            "hold-bootstrap",
            "poll",
            &[("TOCSIN_SHM", "posix")],
            &["--secs", "60"],
        )
        .start();
        let p = pids(&job, 2);
        // Wait until rank 0 mapped its fresh, still named, object.
        let t0 = Instant::now();
        let name = loop {
            let m = shm_maps(p[0]);
            if let Some((n, deleted)) = m.iter().find(|(n, _)| n.starts_with("/dev/shm/tocsin-")) {
                assert!(
                    !deleted,
                    "rank 0 unlinked {n} although rank 1 has not attached yet"
                );
                break n.clone();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20) && alive(p[0]),
                "rank 0 never mapped a /dev/shm/tocsin-* object; stdout {:?}",
                job.stdout_lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            Path::new(&name).exists(),
            "{name} is mapped but not in /dev/shm"
        );
        sigkill(p[victim]);
        let o = job.wait(Duration::from_secs(30));
        assert!(
            !o.timed_out && !o.success(),
            "the job should end with a failure once rank {victim} is killed\n{}",
            o.report()
        );
        assert!(!o.stragglers, "ranks outlived the launcher\n{}", o.report());
        assert!(
            !Path::new(&name).exists(),
            "{name} left in /dev/shm after rank {victim} was killed during the bootstrap\n{}",
            o.report()
        );
        assert_no_new_shm(
            &before,
            &format!("after SIGKILL of rank {victim} during the bootstrap"),
        );
    }
}

/// TOCSIN_SHM=posix, the launcher itself is told to stop (SIGTERM): every rank goes, and
/// nothing stays in /dev/shm.
#[test]
fn posix_shm_launcher_sigterm_leaves_nothing() {
    let _g = serial();
    let before = dev_shm_tocsin();
    let job = run(
        2,
        "hold",
        "poll",
        &[("TOCSIN_SHM", "posix")],
        &["--secs", "60"],
    )
    .start();
    let p = pids(&job, 2);
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(job.pid(), libc::SIGTERM);
    }
    let o = job.wait(Duration::from_secs(30));
    assert!(
        !o.timed_out && !o.success(),
        "the job should end with a failure on SIGTERM\n{}",
        o.report()
    );
    assert!(!o.stragglers, "ranks outlived the launcher\n{}", o.report());
    for (r, &pid) in p.iter().enumerate() {
        assert!(
            !alive(pid),
            "rank {r} (pid {pid}) survived SIGTERM of the launcher"
        );
    }
    assert_no_new_shm(&before, "after SIGTERM of the launcher in posix mode");
}

/// Default mode (memfd): no name is ever created in /dev/shm, during the run or after a
/// rank is killed.
#[test]
fn memfd_mode_creates_nothing_in_dev_shm() {
    let _g = serial();
    let before = dev_shm_tocsin();
    let job = run(3, "hold", "block", &[], &["--secs", "60"]).start();
    let p = pids(&job, 3);
    for (r, &pid) in p.iter().enumerate() {
        let m = shm_maps(pid);
        assert!(
            m.is_empty(),
            "rank {r} maps /dev/shm objects in memfd mode: {m:?}"
        );
        assert!(
            maps_contain(pid, "memfd:tocsin"),
            "rank {r} does not map the memfd segment"
        );
    }
    assert_no_new_shm(&before, "during a memfd-mode run");
    sigkill(p[2]);
    let o = job.wait(Duration::from_secs(30));
    assert!(!o.timed_out && !o.success(), "{}", o.report());
    assert_no_new_shm(&before, "after SIGKILL of a rank in memfd mode");
}

// ---------------------------------------------------------------------------------------
// under MPICH's launcher

fn hydra_path() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("mpiexec.hydra"))
        .find(|p| p.is_file())
}

/// Runs each of `runs` under `mpiexec.hydra HYDRA_ARGS -n N testrank …` (skipped, saying
/// why, without MPICH).
fn under_hydra(hydra_args: &[&str], runs: &[Run]) {
    let Some(hydra) = hydra_path() else {
        eprintln!("SKIPPED: mpiexec.hydra is not on PATH (install MPICH to run this test)");
        return;
    };
    let _g = serial();
    for r in runs {
        let mut cmd = command(&hydra);
        cmd.args(hydra_args)
            .args(["-n", &r.ranks.to_string(), TESTRANK])
            .args(r.testrank_args());
        r.env_on(&mut cmd);
        let o = Job::spawn(&mut cmd).wait(JOB_TIMEOUT);
        o.assert_ranks_ok(r.ranks, r.case);
    }
}

#[test]
fn cases_under_mpiexec_hydra() {
    under_hydra(
        &[],
        &[
            run(2, "sizes", "poll", &[], &[]),
            run(2, "sizes", "block", &[NO_CMA], &[]),
            run(3, "wildcards", "block", &[], &[]),
            run(2, "probe", "poll", &[], &[]),
            run(3, "sendrecv", "block", &[], &[]),
            run(2, "truncation", "poll", &[], &[]),
            run(4, "random", "block", &[], &["--total", "2000"]),
        ],
    );
}

/// hydra told that this machine is two hosts (`-hosts localhost,127.0.0.1 -ppn 2`): two
/// "nodes" of two ranks each, shared memory inside each, TCP between them, on loopback.
#[test]
fn two_nodes_on_one_host_under_mpiexec_hydra_mix_shm_and_tcp() {
    under_hydra(
        &["-hosts", "localhost,127.0.0.1", "-ppn", "2"],
        &[
            run(4, "sizes", "poll", &[LO], &[]),
            run(4, "wildcards", "block", &[LO], &[]),
            run(4, "waitany", "poll", &[LO], &[]),
            run(4, "waitany", "block", &[LO], &[]),
            run(4, "random", "block", &[LO], &["--total", "4000"]),
            run(4, "random", "signal", &[LO], &["--total", "2000"]),
            run(4, "flood", "thread", &[LO], &[]),
            run(4, "threads-cross", "block", &[LO], &[]),
        ],
    );
}
