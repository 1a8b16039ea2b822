//! Point-to-point integration tests: `tocsin-testrank CASE` started under `tocsin run` (and
//! once under MPICH's `mpiexec.hydra`), checked by exit status and by every rank's
//! `ok CASE rank R/N` line.
//!
//! Every job runs in its own process group with a deadline: on timeout the whole group
//! (launcher and ranks) is killed with SIGKILL and the test fails with the output so far.
//! Jobs run one at a time (a lock): the machine has few cores, poll-mode ranks spin, and
//! the `/dev/shm` checks compare directory listings.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const TOCSIN: &str = env!("CARGO_BIN_EXE_tocsin");
const TESTRANK: &str = env!("CARGO_BIN_EXE_tocsin-testrank");

/// Deadline of a whole job.
const JOB_TIMEOUT: Duration = Duration::from_secs(120);
/// The rank program's own watchdog (`TESTRANK_TIMEOUT`), shorter so that it reports the
/// step a stuck rank is in before the job deadline kills everything.
const RANK_WATCHDOG_SECS: &str = "90";

/// Serializes jobs (see the module comment).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// Job control with a hang guard

/// A running job: the launcher (or a lone rank) in its own process group, its output
/// collected line by line.
struct Job {
    what: String,
    child: Child,
    start: Instant,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    reaped: bool,
}

/// How a job ended.
#[derive(Debug)]
struct Outcome {
    what: String,
    /// Exit code, or `None` if killed by a signal (see `signal`).
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    /// Processes of the job's group still alive after the launcher exited (killed then).
    stragglers: bool,
}

impl Outcome {
    fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }
    fn report(&self) -> String {
        format!(
            "job: {}\nexit code {:?}, signal {:?}, timed out: {}, {:.1} s, stragglers: {}\n\
             --- stdout ---\n{}--- stderr ---\n{}",
            self.what,
            self.code,
            self.signal,
            self.timed_out,
            self.elapsed.as_secs_f64(),
            self.stragglers,
            self.stdout,
            self.stderr
        )
    }
}

fn reader(src: impl Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(src).lines() {
            match line {
                Ok(l) => sink.lock().unwrap().push(l),
                Err(_) => break,
            }
        }
    })
}

/// Environment variables of the test process that would change what a job does.
fn scrub(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("TOCSIN_") || k.starts_with("TESTRANK_") || k.starts_with("PMI_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("TESTRANK_TIMEOUT", RANK_WATCHDOG_SECS);
}

impl Job {
    fn spawn(mut cmd: Command, env: &[(&str, &str)]) -> Job {
        scrub(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let what = format!("{cmd:?}");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            reader(child.stdout.take().unwrap(), out.clone()),
            reader(child.stderr.take().unwrap(), err.clone()),
        ];
        Job {
            what,
            child,
            start: Instant::now(),
            out,
            err,
            readers,
            reaped: false,
        }
    }

    fn pgid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Whether the launcher has exited (without reaping it, so its process group id stays
    /// reserved and can still be signalled safely).
    fn exited(&self) -> bool {
        // SAFETY: waitid on our own child with WNOWAIT only reads its state.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::waitid(
                libc::P_PID,
                self.child.id(),
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            r == 0 && info.si_pid() != 0
        }
    }

    fn kill_group(&self) {
        // SAFETY: plain kill(2) on our own, not yet reaped, process group.
        unsafe {
            libc::kill(-self.pgid(), libc::SIGKILL);
        }
    }

    /// Live (not zombie) processes of the job's group other than the launcher.
    fn group_members(&self) -> Vec<i32> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid != self.pgid())
            .filter(|&pid| {
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    return false;
                };
                // Fields after the command name: state, ppid, pgrp, …
                let rest: Vec<&str> = stat
                    .rsplit_once(')')
                    .map_or("", |(_, r)| r)
                    .split_whitespace()
                    .collect();
                rest.len() > 2 && rest[0] != "Z" && rest[2].parse() == Ok(self.pgid())
            })
            .collect()
    }

    fn stdout_lines(&self) -> Vec<String> {
        self.out.lock().unwrap().clone()
    }

    /// Waits until a stdout line satisfies `f`; returns it, or `None` at the deadline or
    /// when the job ended first.
    fn wait_line(&self, timeout: Duration, f: impl Fn(&str) -> bool) -> Option<String> {
        let t0 = Instant::now();
        loop {
            if let Some(l) = self.out.lock().unwrap().iter().find(|l| f(l)) {
                return Some(l.clone());
            }
            if t0.elapsed() > timeout || self.exited() {
                // One last look: the line may have been read after the exit.
                std::thread::sleep(Duration::from_millis(50));
                return self.out.lock().unwrap().iter().find(|l| f(l)).cloned();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the job to end, at most `timeout`; kills the whole group at the deadline.
    fn wait(mut self, timeout: Duration) -> Outcome {
        let mut timed_out = false;
        while !self.exited() {
            if self.start.elapsed() > timeout {
                timed_out = true;
                self.kill_group();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // The launcher is gone (or killed): any rank left in its group is a straggler.
        let mut stragglers = false;
        if !timed_out {
            let t0 = Instant::now();
            while !self.group_members().is_empty() && t0.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(20));
            }
            stragglers = !self.group_members().is_empty();
        }
        self.kill_group();
        let st = self.child.wait().expect("wait for the launcher");
        self.reaped = true;
        let elapsed = self.start.elapsed();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        use std::os::unix::process::ExitStatusExt;
        let join = |v: &Arc<Mutex<Vec<String>>>| {
            v.lock().unwrap().iter().map(|l| format!("{l}\n")).collect()
        };
        Outcome {
            what: self.what.clone(),
            code: st.code(),
            signal: st.signal(),
            timed_out,
            stdout: join(&self.out),
            stderr: join(&self.err),
            elapsed,
            stragglers,
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        // A panicking test must not leave a job behind.
        if !self.reaped {
            self.kill_group();
            let _ = self.child.wait();
        }
    }
}

fn tocsin_run(n: u32, case: &str, env: &[(&str, &str)]) -> Job {
    let mut cmd = Command::new(TOCSIN);
    cmd.args(["run", "-n", &n.to_string(), "--", TESTRANK, case]);
    Job::spawn(cmd, env)
}

fn hydra_path() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("mpiexec.hydra"))
        .find(|p| p.is_file())
}

/// Checks that the job succeeded and that every rank printed `ok CASE rank R/N`.
fn assert_ok(o: &Outcome, n: u32, case: &str) {
    assert!(o.success(), "the job failed\n{}", o.report());
    assert!(!o.stragglers, "ranks outlived the launcher\n{}", o.report());
    for r in 0..n {
        let want = format!("ok {case} rank {r}/{n}");
        assert!(
            o.stdout
                .lines()
                .any(|l| l.trim_end().ends_with(&want) || l.contains(&format!("{want} "))),
            "rank {r} did not print {want:?}\n{}",
            o.report()
        );
    }
}

/// Runs `case` on `n` ranks under `tocsin run` and asserts success.
fn case(n: u32, name: &str, env: &[(&str, &str)]) -> Outcome {
    let _g = serial();
    let o = tocsin_run(n, name, env).wait(JOB_TIMEOUT);
    assert_ok(&o, n, name);
    eprintln!("{}", o.report());
    o
}

/// Environment variables of a job.
type Env<'a> = &'a [(&'a str, &'a str)];

const BLOCK: (&str, &str) = ("TOCSIN_PROGRESS", "block");
const NO_CMA: (&str, &str) = ("TOCSIN_CMA", "0");
/// Smallest rings (4 KiB): records wait for room all the time.
const TINY_RING: (&str, &str) = ("TOCSIN_RING_BYTES", "4096");
/// An eager threshold that fits [`TINY_RING`].
const EAGER_900: (&str, &str) = ("TOCSIN_EAGER_THRESHOLD", "900");
/// Every message with a byte in it goes through the rendezvous.
const EAGER_0: (&str, &str) = ("TOCSIN_EAGER_THRESHOLD", "0");

// ---------------------------------------------------------------------------------------
// sizes: 0, 1, eager−1, eager, eager+1, 4 MiB+3; blocking / non-blocking; both orders

#[test]
fn sizes_cma_poll() {
    case(2, "sizes", &[]);
}

#[test]
fn sizes_pipelined_poll() {
    case(2, "sizes", &[NO_CMA]);
}

#[test]
fn sizes_cma_block() {
    case(2, "sizes", &[BLOCK]);
}

#[test]
fn sizes_pipelined_block() {
    case(2, "sizes", &[NO_CMA, BLOCK]);
}

#[test]
fn sizes_pipelined_small_chunks_low_threshold() {
    case(
        2,
        "sizes",
        &[
            NO_CMA,
            ("TOCSIN_CHUNK_BYTES", "4096"),
            ("TOCSIN_EAGER_THRESHOLD", "1000"),
        ],
    );
}

#[test]
fn sizes_three_ranks_block() {
    case(3, "sizes", &[BLOCK]);
}

#[test]
fn sizes_pipelined_odd_chunks() {
    case(2, "sizes", &[NO_CMA, ("TOCSIN_CHUNK_BYTES", "4097")]);
    case(2, "sizes", &[NO_CMA, BLOCK, ("TOCSIN_CHUNK_BYTES", "64")]);
}

#[test]
fn sizes_tiny_rings() {
    case(2, "sizes", &[TINY_RING, EAGER_900]);
    case(2, "sizes", &[TINY_RING, EAGER_900, NO_CMA, BLOCK]);
}

#[test]
fn sizes_eager_threshold_0() {
    case(2, "sizes", &[EAGER_0]);
    case(2, "sizes", &[EAGER_0, NO_CMA, BLOCK]);
}

/// TOCSIN_SHM=posix works, and leaves nothing in /dev/shm after a clean run.
#[test]
fn sizes_posix_shm() {
    let before = dev_shm_tocsin();
    case(2, "sizes", &[("TOCSIN_SHM", "posix")]);
    case(3, "sizes", &[("TOCSIN_SHM", "posix"), NO_CMA, BLOCK]);
    let _g = serial();
    assert_no_new_shm(&before, "after clean posix-mode runs");
}

// ---------------------------------------------------------------------------------------
// wildcards

#[test]
fn wildcards_3_ranks_poll() {
    case(3, "wildcards", &[]);
}

#[test]
fn wildcards_4_ranks_block() {
    case(4, "wildcards", &[BLOCK]);
}

#[test]
fn wildcards_4_ranks_pipelined_block() {
    case(4, "wildcards", &[NO_CMA, BLOCK]);
}

#[test]
fn wildcards_4_ranks_all_rendezvous_block() {
    case(4, "wildcards", &[EAGER_0, BLOCK]);
    case(4, "wildcards", &[EAGER_0, NO_CMA, BLOCK]);
}

// ---------------------------------------------------------------------------------------
// ordering

#[test]
fn ordering_cma_poll() {
    case(2, "ordering", &[]);
}

#[test]
fn ordering_pipelined_block() {
    case(2, "ordering", &[NO_CMA, BLOCK]);
}

#[test]
fn ordering_tiny_rings_block() {
    case(2, "ordering", &[TINY_RING, EAGER_900, BLOCK]);
    case(2, "ordering", &[TINY_RING, EAGER_900, NO_CMA, BLOCK]);
}

// ---------------------------------------------------------------------------------------
// flood: thousands of unexpected messages, full rings, received by tag in another order

#[test]
fn flood_2_ranks_poll() {
    case(2, "flood", &[]);
}

#[test]
fn flood_3_ranks_block() {
    case(3, "flood", &[BLOCK]);
}

#[test]
fn flood_3_ranks_tiny_rings_pipelined_block() {
    case(3, "flood", &[TINY_RING, EAGER_900, NO_CMA, BLOCK]);
}

// ---------------------------------------------------------------------------------------
// truncation

#[test]
fn truncation_cma_poll() {
    case(2, "truncation", &[]);
}

#[test]
fn truncation_pipelined_poll() {
    case(2, "truncation", &[NO_CMA]);
}

#[test]
fn truncation_cma_block_3_ranks() {
    case(3, "truncation", &[BLOCK]);
}

#[test]
fn truncation_all_rendezvous_and_tiny_rings() {
    case(2, "truncation", &[EAGER_0, BLOCK]);
    case(2, "truncation", &[TINY_RING, EAGER_900, NO_CMA, BLOCK]);
}

// ---------------------------------------------------------------------------------------
// self-send

#[test]
fn self_send_cma() {
    case(2, "self", &[]);
}

#[test]
fn self_send_pipelined_block() {
    case(2, "self", &[NO_CMA, BLOCK]);
}

#[test]
fn self_send_all_rendezvous() {
    case(2, "self", &[EAGER_0]);
    case(2, "self", &[EAGER_0, NO_CMA, BLOCK]);
}

/// Without any launcher the program is rank 0 of a world of one.
#[test]
fn self_send_singleton_without_launcher() {
    let _g = serial();
    for env in [&[][..], &[NO_CMA, BLOCK][..]] {
        let o = Job::spawn(
            {
                let mut c = Command::new(TESTRANK);
                c.arg("self");
                c
            },
            env,
        )
        .wait(JOB_TIMEOUT);
        assert_ok(&o, 1, "self");
    }
}

// ---------------------------------------------------------------------------------------
// 10,000 random messages with checksums

#[test]
fn random_10000_messages_4_ranks_block() {
    let o = case(4, "random", &[BLOCK]);
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

#[test]
fn random_10000_messages_4_ranks_pipelined_block() {
    case(4, "random", &[NO_CMA, BLOCK]);
}

#[test]
fn random_4_ranks_tiny_rings_block() {
    case(
        4,
        "random",
        &[
            TINY_RING,
            EAGER_900,
            BLOCK,
            ("TESTRANK_RANDOM_TOTAL", "4000"),
        ],
    );
}

#[test]
fn random_4_ranks_all_rendezvous_pipelined_block() {
    case(
        4,
        "random",
        &[
            EAGER_0,
            NO_CMA,
            BLOCK,
            ("TESTRANK_RANDOM_TOTAL", "2000"),
            ("TESTRANK_RANDOM_MAX", "70000"),
        ],
    );
}

#[test]
fn random_2_ranks_poll_low_threshold() {
    case(
        2,
        "random",
        &[
            ("TOCSIN_EAGER_THRESHOLD", "2048"),
            ("TESTRANK_RANDOM_TOTAL", "4000"),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// probe / iprobe

#[test]
fn probe_poll() {
    case(2, "probe", &[]);
}

#[test]
fn probe_block_3_ranks() {
    case(3, "probe", &[BLOCK]);
}

// ---------------------------------------------------------------------------------------
// errors

#[test]
fn errors_3_ranks() {
    case(3, "errors", &[]);
}

/// `Comm::sendrecv` posts its receive before checking the send's arguments: with an invalid
/// destination the `?` drops the posted receive, whose `Drop` waits forever.
#[test]
fn errors_sendrecv_invalid_destination() {
    case(2, "errors-sendrecv", &[("TESTRANK_TIMEOUT", "20")]);
}

// ---------------------------------------------------------------------------------------
// sendrecv, wait_any / wait_all / test

#[test]
fn sendrecv_4_ranks_block() {
    case(4, "sendrecv", &[BLOCK]);
}

#[test]
fn sendrecv_2_ranks_pipelined_poll() {
    case(2, "sendrecv", &[NO_CMA]);
}

#[test]
fn waitany_4_ranks_block() {
    case(4, "waitany", &[BLOCK]);
}

#[test]
fn waitany_2_ranks_poll() {
    case(2, "waitany", &[]);
}

#[test]
fn waitany_2_ranks_pipelined_poll() {
    case(2, "waitany", &[NO_CMA]);
}

// ---------------------------------------------------------------------------------------
// a peer that dies

#[test]
fn die_poll_3_ranks() {
    case(3, "die", &[]);
}

#[test]
fn die_block_3_ranks() {
    case(3, "die", &[BLOCK]);
}

#[test]
fn die_pipelined_2_ranks() {
    case(2, "die", &[NO_CMA]);
}

#[test]
fn die_rendezvous_in_flight_cma() {
    case(2, "die-rendezvous", &[]);
}

#[test]
fn die_rendezvous_in_flight_pipelined_block() {
    case(2, "die-rendezvous", &[NO_CMA, BLOCK]);
}

// ---------------------------------------------------------------------------------------
// long waits; block mode must sleep

#[test]
fn sleepy_block() {
    case(2, "sleepy", &[BLOCK]);
}

#[test]
fn sleepy_pipelined_block() {
    case(2, "sleepy", &[NO_CMA, BLOCK]);
}

#[test]
fn sleepy_poll() {
    case(2, "sleepy", &[]);
}

/// Poll and block modes: a computation while a message arrives is not slowed down (the
/// receive completes at the next call).
#[test]
fn background_poll_and_block() {
    case(2, "background", &[]);
    case(
        2,
        "background",
        &[BLOCK, NO_CMA, ("TESTRANK_BG_LEN", "2000000")],
    );
}

// ---------------------------------------------------------------------------------------
// threads

#[test]
fn threads_2_per_rank_block() {
    case(2, "threads", &[BLOCK]);
}

#[test]
fn threads_2_per_rank_pipelined_block() {
    case(2, "threads", &[NO_CMA, BLOCK]);
}

#[test]
fn threads_2_per_rank_poll() {
    case(2, "threads", &[("TESTRANK_THREAD_ITERS", "60")]);
}

/// Cross-thread self-sends wake a sleeping receiver; producer / consumer threads.
#[test]
fn threads_cross_block() {
    case(2, "threads-cross", &[BLOCK]);
    case(3, "threads-cross", &[BLOCK, NO_CMA, EAGER_0]);
}

#[test]
fn threads_cross_poll() {
    case(2, "threads-cross", &[("TESTRANK_THREAD_ITERS", "20")]);
}

#[test]
fn threads_3_per_rank_4_ranks_block() {
    case(4, "threads", &[BLOCK, ("TESTRANK_THREADS", "3")]);
}

/// A message that had already arrived when its sender died is discarded instead of being
/// delivered (in every mode; see the `die-unexpected` case).
#[test]
fn die_unexpected_message_survives_the_sender() {
    case(2, "die-unexpected", &[]);
    case(2, "die-unexpected", &[BLOCK]);
}

// ---------------------------------------------------------------------------------------
// progress modes thread and signal: the same cases, plus background progress

const THREAD: (&str, &str) = ("TOCSIN_PROGRESS", "thread");
const SIGNAL: (&str, &str) = ("TOCSIN_PROGRESS", "signal");

/// The point-to-point cases in one progress mode.
fn mode_p2p(mode: (&str, &str)) {
    case(2, "sizes", &[mode]);
    case(2, "sizes", &[mode, NO_CMA]);
    case(3, "wildcards", &[mode]);
    case(2, "ordering", &[mode]);
    case(2, "truncation", &[mode]);
    case(2, "self", &[mode]);
    case(2, "probe", &[mode]);
    case(3, "errors", &[mode]);
    case(3, "sendrecv", &[mode]);
    case(3, "waitany", &[mode]);
}

/// Heavier traffic in one progress mode.
fn mode_stress(mode: (&str, &str)) {
    case(3, "flood", &[mode]);
    case(2, "threads", &[mode]);
    case(2, "threads-cross", &[mode]);
    case(
        4,
        "random",
        &[
            mode,
            TINY_RING,
            EAGER_900,
            ("TESTRANK_RANDOM_TOTAL", "4000"),
        ],
    );
    case(2, "die-rendezvous", &[mode]);
}

#[test]
fn thread_mode_p2p() {
    mode_p2p(THREAD);
}

#[test]
fn thread_mode_stress() {
    mode_stress(THREAD);
}

/// The progress thread completes a receive while the application computes, and waits
/// sleep.
#[test]
fn thread_mode_background_progress() {
    case(2, "background", &[THREAD]);
    case(2, "background", &[THREAD, ("TESTRANK_BG_LEN", "1000000")]);
    case(
        2,
        "background",
        &[THREAD, NO_CMA, ("TESTRANK_BG_LEN", "2000000")],
    );
    case(2, "sleepy", &[THREAD]);
    case(2, "sleepy", &[THREAD, NO_CMA]);
}

/// Thread mode, rank 1 exits after one send (same library bug as
/// `die_unexpected_message_survives_the_sender`: the progress thread has already moved the
/// message to the unexpected queue when the death is noticed).
#[test]
fn thread_mode_die() {
    case(3, "die", &[THREAD]);
}

#[test]
fn signal_mode_p2p() {
    mode_p2p(SIGNAL);
}

#[test]
fn signal_mode_stress() {
    mode_stress(SIGNAL);
    case(3, "die", &[SIGNAL]);
}

/// A receive posted before a computation must complete during it in signal mode.
#[test]
fn signal_mode_background_progress() {
    case(2, "background", &[SIGNAL]);
    case(2, "background", &[SIGNAL, ("TESTRANK_BG_LEN", "1000000")]);
    // Many eager messages into tiny rings while the receiver computes: handlers must not
    // starve it.
    case(
        2,
        "background",
        &[
            SIGNAL,
            TINY_RING,
            EAGER_900,
            ("TESTRANK_BG_LEN", "900"),
            ("TESTRANK_BG_COUNT", "200"),
        ],
    );
    case(2, "sleepy", &[SIGNAL]);
}

/// A pipelined rendezvous (no CMA) larger than the ring, sent to a rank that computes:
/// the computing rank must be neither starved nor left without progress.
#[test]
fn signal_mode_pipelined_rendezvous_to_computing_rank() {
    case(
        2,
        "background",
        &[
            SIGNAL,
            NO_CMA,
            ("TESTRANK_BG_LEN", "2000000"),
            ("TESTRANK_TIMEOUT", "20"),
        ],
    );
    case(
        2,
        "background",
        &[
            SIGNAL,
            NO_CMA,
            TINY_RING,
            EAGER_900,
            ("TESTRANK_BG_LEN", "100000"),
            ("TESTRANK_TIMEOUT", "20"),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// /dev/shm hygiene

fn dev_shm_tocsin() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("tocsin-"))
                .collect()
        })
        .unwrap_or_default()
}

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
    let job = tocsin_run(
        3,
        "hold",
        &[("TOCSIN_SHM", "posix"), ("TESTRANK_HOLD_SECS", "60"), BLOCK],
    );
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
        let job = tocsin_run(
            2,
            "hold-bootstrap",
            &[("TOCSIN_SHM", "posix"), ("TESTRANK_HOLD_SECS", "60")],
        );
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
    let job = tocsin_run(
        2,
        "hold",
        &[("TOCSIN_SHM", "posix"), ("TESTRANK_HOLD_SECS", "60")],
    );
    let p = pids(&job, 2);
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(job.child.id() as i32, libc::SIGTERM);
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
    let job = tocsin_run(3, "hold", &[("TESTRANK_HOLD_SECS", "60"), BLOCK]);
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

#[test]
fn cases_under_mpiexec_hydra() {
    let Some(hydra) = hydra_path() else {
        eprintln!("SKIPPED: mpiexec.hydra is not on PATH (install MPICH to run this test)");
        return;
    };
    let _g = serial();
    let runs: [(u32, &str, Env); 7] = [
        (2, "sizes", &[]),
        (2, "sizes", &[NO_CMA, BLOCK]),
        (3, "wildcards", &[BLOCK]),
        (2, "probe", &[]),
        (3, "sendrecv", &[BLOCK]),
        (2, "truncation", &[]),
        (4, "random", &[BLOCK, ("TESTRANK_RANDOM_TOTAL", "2000")]),
    ];
    for (n, name, env) in runs {
        let mut cmd = Command::new(&hydra);
        cmd.args(["-n", &n.to_string(), TESTRANK, name]);
        let o = Job::spawn(cmd, env).wait(JOB_TIMEOUT);
        assert_ok(&o, n, name);
    }
}
