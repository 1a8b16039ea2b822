//! `tocsin-soak`: robustness test program (soak, overlap, interrupt storms, modes matrix,
//! EINTR), one case per run, for `tests/robustness.rs`.
//!
//! Usage: `tocsin run -n N -- tocsin-soak [--timeout S] CASE [CASE OPTIONS]`;
//! `tocsin-soak help CASE` lists a case's options, and an unknown case or option is an error.
//! Every rank runs the case, checks real outcomes (every byte, statuses, counts) and prints
//! `ok CASE rank R/N` on success; on failure it prints `FAIL CASE rank R/N: why` on stderr
//! and exits 1. If `tocsin::init` fails it prints `init failed: ERROR` on stderr and exits 2.
//! A watchdog ends a rank stuck longer than `--timeout` seconds (default 300) with exit code
//! 3, printing the last phase it reached and its per-thread message counters. Lines starting
//! with `RESULT` on stdout are observations the tests parse (`key=value` pairs). The harness
//! (reporting, watchdog, message contents) is [`tocsin_cli::testkit`].
//!
//! Cases (ranks needed):
//! - `soak` (≥2): `--messages` (100,000) messages in total, spread over `--threads` (2)
//!   application threads per rank (thread 0 is the one that called `tocsin::init`, i.e. the
//!   registered thread of `signal` mode), each with its own tag space, and over every pair of
//!   ranks: thread T of each rank meets thread T of every other rank once, in the rounds of a
//!   round-robin tournament (each round pairs the ranks up; an odd rank count leaves one out
//!   per round), and runs that pair's schedule with it. Sizes are random with
//!   a deterministic `--seed`: mostly small, some around the eager threshold, a few
//!   rendezvous up to `--max-size` (1 MiB). Steps are single blocking send/recv (or
//!   isend + compute + wait, or irecv + compute/test loop) and batches of up to 6 mixed
//!   isend/irecv in a `scope` with compute between posting and waiting. Between operations
//!   each thread computes (busy loop that never calls tocsin) 0..=`--compute-us` (50) µs.
//!   Contents derive from (seed, thread, index); statuses, the bytes past the message in the
//!   receive buffer, per-thread and per-pair counts (checked against the schedule and against
//!   the peer's counts) and checksums (the sum of the checksums of the messages sent one way,
//!   computed by the sender, against the same sum over the bytes received, computed by the
//!   receiver) are verified. Prints `RESULT soak ... sent=S received=R ...` per rank. With `--main idle`, every application thread is spawned and the
//!   thread that called `tocsin::init` only joins them (in `signal` mode, interrupts then
//!   land in `pthread_join`).
//! - `overlap` (2): rank 0 posts `irecv` (`--side recv`) or `isend` (`--side send`) of
//!   `--bytes` (4 MiB), computes `--compute-ms` (300) ms without calling tocsin, then records
//!   `Request::is_complete()` before waiting; rank 1 waits in `send` / `recv`. `--order posted`
//!   makes the peer start 50 ms late (the receive is posted before the message arrives),
//!   `--order unexpected` makes rank 0 post 50 ms late. So that the outcome does not depend on
//!   rank 1 being scheduled within the 300 ms, rank 1 writes to a pipe of rank 0's (through
//!   `/proc/PID/fd/N`) when its blocking call returned, and rank 0 keeps computing (with a
//!   non-blocking `read` of that pipe every 100 µs) until it sees that notice — in `signal`,
//!   `uintr` and `thread` modes for at most 10 s more (hang guard), in the others for at
//!   most another 300 ms.
//!   Prints `RESULT overlap ... peer_done_while_computing=BOOL complete_before_wait=BOOL`
//!   and rank 0's notification counters (`tocsin::Stats`: `handler_records=N` ...).
//! - `storm` (2): rank 0 sends small messages as fast as it can for `--storm-ms` (2000) ms
//!   while rank 1 performs `--work` LCG+floating-point iterations (a count, not a time)
//!   without calling tocsin; rank 1's result must equal the same work done before the storm
//!   (bit for bit) and the LCG's closed form; then rank 1 receives every message in order and
//!   checks its index and content. Receives for the first 64 messages are posted before the
//!   work; how many completed during it is printed (`pre_posted_complete_after_work`).
//! - `storm-recv` (2): rank 0 floods rank 1's registered thread with a signal (`--with
//!   tocsin`: tocsin's own signal, number taken from `TOCSIN_SIGNAL`, which must then be a
//!   plain number; `--with app`: SIGUSR1, for which rank 1 installs a counting handler without
//!   `SA_RESTART`) from a helper thread, one every `--gap-us` (20) µs, while its main thread
//!   sends `--rounds` (512) messages, alternately rendezvous (`--big`, 2 MiB, and more) and
//!   small, that rank 1 receives with blocking `recv`. The flood is paced because real-time
//!   signals queue: unpaced, it outruns their delivery (several µs each in a KVM guest) and
//!   the target thread spends all its time entering handlers.
//! - `ring` (≥1): `--rounds` (10) rounds of: token around the ring, non-blocking exchange
//!   with both neighbours of a size cycling from 0 to `--big` (4 MiB), ANY_SOURCE gather at
//!   rank 0, barrier.
//! - `eintr` (2): rank 1's registered thread, with receives for a burst of messages already
//!   posted, sits in a system call while rank 0 sends the burst (eager and rendezvous,
//!   rendezvous last): `std::thread::sleep`, raw `nanosleep`, a blocking `read` on a pipe and
//!   `poll` on it without timeout. The pipe is written by rank 0 (through
//!   `/proc/PID/fd/N`) once its sends completed (in `signal`/`uintr`/`thread` modes, where
//!   rank 1 must progress while blocked: the case fails if they do not complete within 10 s;
//!   in the others it writes after posting them). Prints per phase `RESULT eintr phase=P eintr=K
//!   complete_before_wait=C/M elapsed_ms=T`; every message is verified.

use std::hint::black_box;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tocsin::{Comm, ProgressMode, Rank, Status, Tag, ANY_SOURCE};
use tocsin_cli::ensure;
use tocsin_cli::testkit::checks::{self, SENTINEL};
use tocsin_cli::testkit::data::{check, checksum, fill, mix, Rng};
use tocsin_cli::testkit::report::{self, fail, step as phase};
use tocsin_cli::testkit::{Ctx, R};

/// Messages completed per application thread (soak), for the watchdog's report.
static COUNTERS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

fn counters() -> String {
    let c: Vec<u64> = COUNTERS.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    format!("; per-thread messages done: {c:?}")
}

// ---------------------------------------------------------------------------------------
// Options.

/// The options: `--timeout`, then the case with its own options.
#[derive(Parser, Debug)]
#[command(
    name = "tocsin-soak",
    about = "Robustness test program: one case per run (see the source's module doc)"
)]
struct Cli {
    /// Seconds after which the watchdog ends a stuck rank (exit code 3).
    #[arg(long, global = true, default_value_t = 300)]
    timeout: u64,
    #[command(subcommand)]
    case: Case,
}

#[derive(Subcommand, Debug)]
enum Case {
    /// Random traffic between every pair of ranks, several threads per rank.
    Soak(SoakOpts),
    /// A request progresses while its rank computes (2 ranks).
    Overlap(OverlapOpts),
    /// Small messages flood a computing rank (2 ranks).
    Storm(StormOpts),
    /// Signals flood a rank inside blocking receives (2 ranks).
    StormRecv(StormRecvOpts),
    /// Token ring and neighbour exchanges (≥1 rank).
    Ring(RingOpts),
    /// The registered thread sits in system calls while messages arrive (2 ranks).
    Eintr(EintrOpts),
}

#[derive(clap::Args, Debug)]
struct SoakOpts {
    /// Messages in the whole job (each counted once, at its sender).
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Application threads per rank (1..=8).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=8))]
    threads: u32,
    /// Seed of the schedule and the contents.
    #[arg(long, default_value_t = 0x0070_C51A)]
    seed: u64,
    /// Largest message, bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_size: usize,
    /// Largest computation between two operations, µs.
    #[arg(long, default_value_t = 50)]
    compute_us: u64,
    /// `idle`: the thread that called `tocsin::init` only joins the application threads.
    #[arg(long, default_value = "works", value_parser = ["works", "idle"])]
    main: String,
}

#[derive(clap::Args, Debug)]
struct OverlapOpts {
    /// Rank 0's request: `recv` (irecv) or `send` (isend).
    #[arg(long, default_value = "recv", value_parser = ["recv", "send"])]
    side: String,
    /// `posted`: the peer starts 50 ms late; `unexpected`: rank 0 posts 50 ms late.
    #[arg(long, default_value = "posted", value_parser = ["posted", "unexpected"])]
    order: String,
    /// Message size, bytes.
    #[arg(long, default_value_t = 4 << 20)]
    bytes: usize,
    /// Computation of rank 0, ms.
    #[arg(long, default_value_t = 300)]
    compute_ms: u64,
}

#[derive(clap::Args, Debug)]
struct StormOpts {
    /// How long rank 0 sends, ms.
    #[arg(long, default_value_t = 2000)]
    storm_ms: u64,
    /// Iterations of rank 1's work.
    #[arg(long, default_value_t = 55_000_000)]
    work: u64,
    /// Seed of the contents.
    #[arg(long, default_value_t = 0x5702)]
    seed: u64,
}

#[derive(clap::Args, Debug)]
struct StormRecvOpts {
    /// `tocsin`: tocsin's own signal (`TOCSIN_SIGNAL`, a number); `app`: SIGUSR1.
    #[arg(long, default_value = "tocsin", value_parser = ["tocsin", "app"])]
    with: String,
    /// Messages rank 0 sends.
    #[arg(long, default_value_t = 512)]
    rounds: u64,
    /// Size of the rendezvous messages, bytes (and more).
    #[arg(long, default_value_t = 2 << 20)]
    big: usize,
    /// Gap between two signals, µs.
    #[arg(long, default_value_t = 20)]
    gap_us: u64,
}

#[derive(clap::Args, Debug)]
struct RingOpts {
    /// Rounds.
    #[arg(long, default_value_t = 10)]
    rounds: u64,
    /// Largest exchanged size, bytes.
    #[arg(long, default_value_t = 4 << 20)]
    big: usize,
}

#[derive(clap::Args, Debug)]
struct EintrOpts {
    /// How long the registered thread sleeps in each phase, ms.
    #[arg(long, default_value_t = 400)]
    sleep_ms: u64,
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// Busy loop for `d` that never calls tocsin (the application "computing").
fn compute(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        for _ in 0..32 {
            std::hint::spin_loop();
        }
    }
}

/// Checks a status; fails the case (the rank exits) if it is not the expected one.
fn status_is(st: &Status, source: Rank, tag: Tag, len: usize) -> R {
    checks::status(st, source, tag, len).map_err(fail)
}

// ---------------------------------------------------------------------------------------
// main

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    report::set_case(matches.subcommand_name().unwrap_or("?"));
    report::start_watchdog(Duration::from_secs(cli.timeout), counters);
    phase("init");
    let comm = match tocsin::init() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("init failed: {e}");
            return ExitCode::from(2);
        }
    };
    report::set_rank(&comm);
    let r = match &cli.case {
        Case::Soak(o) => soak(&comm, o),
        Case::Overlap(o) => overlap(&comm, o),
        Case::Storm(o) => storm(&comm, o),
        Case::StormRecv(o) => storm_recv(&comm, o),
        Case::Ring(o) => ring(&comm, o),
        Case::Eintr(o) => eintr(&comm, o),
    };
    report::finish(r)
}

/// Fails unless the job has exactly `n` ranks.
fn need(comm: &Comm, n: u32) -> R {
    ensure!(
        comm.size() == n,
        "this case needs exactly {n} ranks, not {}",
        comm.size()
    );
    Ok(())
}

fn mode(comm: &Comm) -> ProgressMode {
    comm.config().progress_mode()
}

// ---------------------------------------------------------------------------------------
// soak

/// Most messages one batch holds.
const MAX_BATCH: usize = 6;
/// Receive buffers are longer than the message by up to this; those bytes must stay intact.
const SLACK: usize = 64;
/// Tag of the final exchange of counts.
const COUNTS_TAG: Tag = 0x7000_0000;

#[derive(Clone, Copy, Debug)]
struct Msg {
    /// The sending end of the pair: 0 for its lower rank, 1 for the higher.
    from: Rank,
    size: usize,
    tag: Tag,
    key: u64,
}

enum Step {
    /// One message; `how` picks blocking or non-blocking variants on each side.
    Single(Msg, u64),
    Batch(Vec<Msg>),
}

/// The schedule of one thread pair, identical on both ranks.
struct Sched {
    rng: Rng,
    seed: u64,
    thread: u32,
    i: u64,
    n: u64,
    max: usize,
}

impl Sched {
    fn new(seed: u64, thread: u32, n: u64, max: usize) -> Sched {
        Sched {
            rng: Rng(mix(seed, thread as u64, 0x5C4E_D01E)),
            seed,
            thread,
            i: 0,
            n,
            max,
        }
    }

    fn size(&mut self) -> usize {
        let r = self.rng.below(1000);
        let s = if r < 800 {
            self.rng.below(1024)
        } else if r < 950 {
            // Around the eager threshold (16 KiB), on both sides of it.
            1024 + self.rng.below(16 * 1024 - 1024 + 512)
        } else if r < 990 {
            16 * 1024 + self.rng.below(112 * 1024)
        } else {
            128 * 1024 + self.rng.below((1 << 20) - 128 * 1024 + 1)
        };
        (s as usize).min(self.max)
    }

    fn msg(&mut self) -> Msg {
        let from = self.rng.below(2) as Rank;
        let size = self.size();
        let tag = ((self.thread as Tag) << 20) | (self.i & 0xF_FFFF) as Tag;
        let key = mix(self.seed, self.thread as u64, self.i);
        self.i += 1;
        Msg {
            from,
            size,
            tag,
            key,
        }
    }

    fn next_step(&mut self) -> Option<Step> {
        if self.i >= self.n {
            return None;
        }
        if self.rng.below(100) < 35 {
            let how = self.rng.next_u64();
            Some(Step::Single(self.msg(), how))
        } else {
            let k = (1 + self.rng.below(MAX_BATCH as u64)).min(self.n - self.i);
            Some(Step::Batch((0..k).map(|_| self.msg()).collect()))
        }
    }
}

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
struct Counts {
    /// Messages the lower rank of the pair sent to the higher one (`[0]`), and the other way.
    msgs: [u64; 2],
    /// Their bytes.
    bytes: [u64; 2],
    /// Wrapping sums of their checksums: of the bytes sent at the sender, of the bytes
    /// received at the receiver.
    sums: [u64; 2],
}

impl Counts {
    /// What the schedule alone determines (not the checksums).
    fn scheduled(&self) -> ([u64; 2], [u64; 2]) {
        (self.msgs, self.bytes)
    }
    fn words(&self) -> [u64; 6] {
        let (m, b, s) = (self.msgs, self.bytes, self.sums);
        [m[0], m[1], b[0], b[1], s[0], s[1]]
    }
}

#[derive(Default)]
struct Stats {
    /// Messages and bytes this rank sent, and received.
    sent: u64,
    received: u64,
    bytes: u64,
    rendezvous: u64,
    nb_posted: u64,
    nb_complete_before_wait: u64,
}

/// Rounds of the round-robin tournament over `n` ranks.
fn rounds(n: u32) -> u32 {
    n + n % 2 - 1
}

/// The partner of `me` in round `k` of a round-robin tournament over `n` ranks (circle
/// method: the last player stays, the others turn), or `None` when `me` sits the round out
/// (odd `n`). Every pair meets in exactly one round.
fn partner(k: u32, me: Rank, n: u32) -> Option<Rank> {
    let players = n + n % 2;
    let m = players - 1;
    let p = if me == m {
        k
    } else if me == k {
        m
    } else {
        (2 * k + m - me) % m
    };
    (p < n).then_some(p)
}

/// What every rank knows of the whole soak: who sends what to whom.
struct Plan {
    n: u32,
    seed: u64,
    max: usize,
    /// Messages of each thread index, over all pairs.
    per_thread: Vec<u64>,
}

impl Plan {
    fn new(n: u32, o: &SoakOpts) -> Plan {
        let t = o.threads as u64;
        Plan {
            n,
            seed: o.seed,
            max: o.max_size,
            per_thread: (0..t)
                .map(|i| o.messages / t + u64::from(i < o.messages % t))
                .collect(),
        }
    }

    /// The pair's number, 0 for (0, 1), in the order (0,1), (0,2), …, (1,2), ….
    fn pair_index(&self, lo: Rank, hi: Rank) -> u64 {
        let before: u64 = (0..lo).map(|a| u64::from(self.n - 1 - a)).sum();
        before + u64::from(hi - lo - 1)
    }

    /// The schedule thread `t` of ranks `a` and `b` follow together.
    fn sched(&self, t: u32, a: Rank, b: Rank) -> Sched {
        let (lo, hi) = (a.min(b), a.max(b));
        let pairs = u64::from(self.n) * u64::from(self.n - 1) / 2;
        let i = self.pair_index(lo, hi);
        let all = self.per_thread[t as usize];
        let mine = all / pairs + u64::from(i < all % pairs);
        // Pair (0, 1) keeps the seed itself: 2-rank soaks are those of earlier versions.
        Sched::new(self.seed ^ i, t, mine, self.max)
    }
}

fn soak(comm: &Comm, o: &SoakOpts) -> R {
    ensure!(comm.size() >= 2, "this case needs at least 2 ranks");
    let (me, n) = (comm.rank(), comm.size());
    let threads = o.threads;
    let compute_us = o.compute_us;
    let main_idle = o.main == "idle";
    let plan = Plan::new(n, o);
    let plan = &plan;
    let eager = comm.config().eager_threshold_bytes();
    // Expected counts, from the schedule alone: [thread][round].
    let expect: Vec<Vec<Option<Counts>>> = (0..threads)
        .map(|t| {
            (0..rounds(n))
                .map(|k| {
                    let p = partner(k, me, n)?;
                    let mut e = Counts::default();
                    let mut s = plan.sched(t, me, p);
                    while let Some(step) = s.next_step() {
                        let ms = match step {
                            Step::Single(m, _) => vec![m],
                            Step::Batch(ms) => ms,
                        };
                        for m in ms {
                            e.msgs[m.from as usize] += 1;
                            e.bytes[m.from as usize] += m.size as u64;
                        }
                    }
                    Some(e)
                })
                .collect()
        })
        .collect();
    comm.barrier().with_ctx(|| "barrier".into())?;
    phase("soak traffic");
    let start = Instant::now();
    type Out = R<(Stats, Vec<Option<Counts>>)>;
    let results: Vec<Out> = std::thread::scope(|ts| {
        let run = move |c: &Comm, t: u32| -> Out {
            soak_thread(c, t, plan, compute_us, eager).map_err(|e| format!("thread {t}: {e}"))
        };
        let first_spawned = if main_idle { 0 } else { 1 };
        let handles: Vec<_> = (first_spawned..threads)
            .map(|t| {
                let c = comm.clone();
                ts.spawn(move || run(&c, t))
            })
            .collect();
        let mut v = Vec::new();
        if !main_idle {
            v.push(run(comm, 0));
        }
        v.extend(
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into()))),
        );
        v
    });
    let elapsed = start.elapsed();
    let mut stats = Vec::new();
    let mut counts = Vec::new();
    for r in results {
        let (s, c) = r?;
        stats.push(s);
        counts.push(c);
    }
    phase("soak counts");
    // My counts against the schedule, then, pair by pair in round order, against the peer's
    // (counts and checksums).
    for (t, (got, want)) in counts.iter().zip(&expect).enumerate() {
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            ensure!(
                g.map(|g| g.scheduled()) == w.map(|w| w.scheduled()),
                "thread {t}, round {k}: counted {g:?}, the schedule says {w:?}"
            );
        }
    }
    for k in 0..rounds(n) {
        let Some(peer) = partner(k, me, n) else {
            continue;
        };
        let mine: Vec<u64> = counts
            .iter()
            .flat_map(|c| c[k as usize].unwrap_or_default().words())
            .collect();
        let mut theirs = vec![0u64; mine.len() + 1];
        let st = comm
            .sendrecv(&mine, peer, COUNTS_TAG, &mut theirs, peer, COUNTS_TAG)
            .with_ctx(|| format!("exchanging counts with rank {peer}"))?;
        checks::status(&st, peer, COUNTS_TAG, mine.len() * 8)
            .map_err(|e| fail(format!("counts from rank {peer}: {e}")))?;
        ensure!(
            theirs[..mine.len()] == mine[..],
            "rank {peer} counted (messages, bytes, checksums per thread) {:?}, I counted {mine:?}",
            &theirs[..mine.len()]
        );
    }
    let sent: u64 = stats.iter().map(|s| s.sent).sum();
    let received: u64 = stats.iter().map(|s| s.received).sum();
    let bytes: u64 = stats.iter().map(|s| s.bytes).sum();
    let rdv: u64 = stats.iter().map(|s| s.rendezvous).sum();
    let posted: u64 = stats.iter().map(|s| s.nb_posted).sum();
    let early: u64 = stats.iter().map(|s| s.nb_complete_before_wait).sum();
    println!(
        "RESULT soak rank={me} ranks={n} mode={} threads={threads} main_idle={main_idle} messages={} \
         sent={sent} received={received} bytes={bytes} rendezvous={rdv} \
         nonblocking_complete_before_wait={early}/{posted} elapsed_s={:.2}",
        mode(comm).name(),
        sent + received,
        elapsed.as_secs_f64()
    );
    comm.barrier().with_ctx(|| "final barrier".into())
}

/// Thread `t` of this rank: the pair schedules with thread `t` of every other rank, round by
/// round; the counts of each round (`None` when this rank sits it out).
fn soak_thread(
    comm: &Comm,
    t: u32,
    plan: &Plan,
    compute_us: u64,
    eager: usize,
) -> R<(Stats, Vec<Option<Counts>>)> {
    let (me, n) = (comm.rank(), comm.size());
    let max = plan.max;
    let mut w = Worker {
        comm,
        local: Rng(mix(plan.seed ^ 0x10CA1, t as u64, me as u64)),
        compute_us,
        eager,
        sbufs: (0..MAX_BATCH).map(|_| vec![0u8; max]).collect(),
        rbufs: (0..MAX_BATCH).map(|_| vec![0u8; max + SLACK]).collect(),
        st: Stats::default(),
        done: &COUNTERS[t as usize % COUNTERS.len()],
    };
    let mut per_round = Vec::new();
    for k in 0..rounds(n) {
        per_round.push(match partner(k, me, n) {
            None => None,
            Some(p) => {
                phase(format!(
                    "soak traffic, thread {t}, round {k}, with rank {p}"
                ));
                Some(w.pair(p, plan.sched(t, me, p))?)
            }
        });
    }
    Ok((w.st, per_round))
}

/// One application thread's state across its pairs.
struct Worker<'a> {
    comm: &'a Comm,
    /// Local randomness (think times, receive slack): not shared with the peer.
    local: Rng,
    compute_us: u64,
    eager: usize,
    sbufs: Vec<Vec<u8>>,
    rbufs: Vec<Vec<u8>>,
    st: Stats,
    done: &'static AtomicU64,
}

impl Worker<'_> {
    /// Runs `sched` with `peer`; the pair's counts.
    fn pair(&mut self, peer: Rank, mut sched: Sched) -> R<Counts> {
        let comm = self.comm;
        let me = comm.rank();
        // Which end of the pair I am: schedules name the lower rank 0, the higher 1.
        let side = Rank::from(me > peer);
        let compute_us = self.compute_us;
        let eager = self.eager;
        let think = move |rng: &mut Rng| {
            compute(Duration::from_nanos(rng.below(compute_us * 1000 + 1)));
        };
        let (sbufs, rbufs, local, st, done) = (
            &mut self.sbufs,
            &mut self.rbufs,
            &mut self.local,
            &mut self.st,
            self.done,
        );
        let mut counts = Counts::default();
        // Receive capacity for a message: its size plus 0..SLACK, the slack set to SENTINEL.
        let prep_recv = |rb: &mut [u8], m: &Msg, rng: &mut Rng| -> usize {
            let cap = m.size + rng.below(SLACK as u64 + 1) as usize;
            rb[m.size..cap].fill(SENTINEL);
            cap
        };
        let verify = |rb: &[u8], cap: usize, m: &Msg, status: &Status| -> R {
            checks::status(status, peer, m.tag, m.size)
                .and_then(|_| check(&rb[..m.size], m.key))
                .and_then(|_| checks::untouched(&rb[..cap], m.size))
                .map_err(|e| fail(format!("message {m:?} from rank {peer}: {e}")))
        };
        // Counts a completed message; `data` is what was sent or received.
        let mut account = |st: &mut Stats, m: &Msg, data: &[u8]| {
            let d = m.from as usize;
            counts.msgs[d] += 1;
            counts.bytes[d] += m.size as u64;
            counts.sums[d] = counts.sums[d].wrapping_add(checksum(data));
            if m.from == side {
                st.sent += 1;
            } else {
                st.received += 1;
            }
            st.bytes += m.size as u64;
            st.rendezvous += u64::from(m.size > eager);
            done.fetch_add(1, Ordering::Relaxed);
        };
        while let Some(step) = sched.next_step() {
            match step {
                Step::Single(m, how) => {
                    think(local);
                    if m.from == side {
                        let sb = &mut sbufs[0][..m.size];
                        fill(sb, m.key);
                        if how % 2 == 0 {
                            comm.send(&*sb, peer, m.tag)
                                .with_ctx(|| format!("send {m:?}"))?;
                        } else {
                            comm.scope(|s| -> R {
                                let q = s
                                    .isend(&*sb, peer, m.tag)
                                    .with_ctx(|| format!("isend {m:?}"))?;
                                think(local);
                                st.nb_posted += 1;
                                st.nb_complete_before_wait += u64::from(q.is_complete());
                                q.wait().with_ctx(|| format!("wait isend {m:?}"))?;
                                Ok(())
                            })?;
                        }
                        account(st, &m, sb);
                    } else {
                        let rb = &mut rbufs[0];
                        let cap = prep_recv(rb, &m, local);
                        let status = match how % 3 {
                            0 => comm
                                .recv(&mut rb[..cap], peer, m.tag)
                                .with_ctx(|| format!("recv {m:?}"))?,
                            1 => comm.scope(|s| -> R<Status> {
                                let r = s
                                    .irecv(&mut rb[..cap], peer, m.tag)
                                    .with_ctx(|| format!("irecv {m:?}"))?;
                                think(local);
                                st.nb_posted += 1;
                                st.nb_complete_before_wait += u64::from(r.is_complete());
                                r.wait().with_ctx(|| format!("wait irecv {m:?}"))
                            })?,
                            _ => comm.scope(|s| -> R<Status> {
                                // MPI-style: compute in slices, test between them.
                                let mut r = s
                                    .irecv(&mut rb[..cap], peer, m.tag)
                                    .with_ctx(|| format!("irecv {m:?}"))?;
                                loop {
                                    compute(Duration::from_micros(2));
                                    if let Some(s) =
                                        r.test().with_ctx(|| format!("test irecv {m:?}"))?
                                    {
                                        return Ok(s);
                                    }
                                }
                            })?,
                        };
                        verify(rb, cap, &m, &status)?;
                        account(st, &m, &rb[..m.size]);
                    }
                }
                Step::Batch(ms) => {
                    for (m, sb) in ms.iter().zip(sbufs.iter_mut()) {
                        if m.from == side {
                            fill(&mut sb[..m.size], m.key);
                        }
                    }
                    let caps: Vec<usize> = ms
                        .iter()
                        .zip(rbufs.iter_mut())
                        .map(|(m, rb)| {
                            if m.from == side {
                                0
                            } else {
                                prep_recv(rb, m, local)
                            }
                        })
                        .collect();
                    let statuses = comm.scope(|s| -> R<Vec<Status>> {
                        let mut reqs = Vec::with_capacity(ms.len());
                        for ((m, sb), (rb, &cap)) in ms
                            .iter()
                            .zip(sbufs.iter())
                            .zip(rbufs.iter_mut().zip(caps.iter()))
                        {
                            let r = if m.from == side {
                                s.isend(&sb[..m.size], peer, m.tag)
                            } else {
                                s.irecv(&mut rb[..cap], peer, m.tag)
                            };
                            reqs.push(r.with_ctx(|| format!("posting {m:?}"))?);
                        }
                        think(local);
                        st.nb_posted += reqs.len() as u64;
                        st.nb_complete_before_wait +=
                            reqs.iter().filter(|r| r.is_complete()).count() as u64;
                        let mut out = Vec::with_capacity(reqs.len());
                        for (r, m) in reqs.into_iter().zip(ms.iter()) {
                            out.push(r.wait().with_ctx(|| format!("wait {m:?}"))?);
                        }
                        Ok(out)
                    })?;
                    for ((((m, rb), sb), status), &cap) in ms
                        .iter()
                        .zip(rbufs.iter())
                        .zip(sbufs.iter())
                        .zip(statuses.iter())
                        .zip(caps.iter())
                    {
                        if m.from == side {
                            checks::status(status, me, m.tag, m.size)
                                .map_err(|e| fail(format!("send {m:?}: {e}")))?;
                            account(st, m, &sb[..m.size]);
                        } else {
                            verify(rb, cap, m, status)?;
                            account(st, m, &rb[..m.size]);
                        }
                    }
                }
            }
        }
        Ok(counts)
    }
}

// ---------------------------------------------------------------------------------------
// overlap

const OVERLAP_TAG: Tag = 77;
/// How long a rank keeps computing (overlap) or waits (eintr) for the peer to finish in the
/// modes that must progress behind the application's back; a hang guard, far above need.
const NOTICE_BOUND: Duration = Duration::from_secs(10);

fn overlap(comm: &Comm, o: &OverlapOpts) -> R {
    need(comm, 2)?;
    let (side, order, bytes, ms) = (o.side.as_str(), o.order.as_str(), o.bytes, o.compute_ms);
    let key = mix(0x0E1A, bytes as u64, 1);
    let late = Duration::from_millis(50);
    let m = mode(comm);
    // Modes in which the request must complete while rank 0 computes.
    let progresses = matches!(
        m,
        ProgressMode::Signal | ProgressMode::Uintr | ProgressMode::Thread
    );
    let me = comm.rank();
    // Out-of-band notice from rank 1 to rank 0 ("my blocking call returned"), through a
    // pipe of rank 0's: rank 0 computes at least `ms`, then until the notice, so the check
    // does not depend on rank 1 being scheduled in time.
    let oob = Pipe::new()?;
    let mut ids = [std::process::id() as u64, oob.w as u64];
    if me == 0 {
        comm.send(&ids, 1, INFO_TAG)
            .with_ctx(|| "send pipe".into())?;
    } else {
        comm.recv(&mut ids, 0, INFO_TAG)
            .with_ctx(|| "recv pipe".into())?;
    }
    comm.barrier().with_ctx(|| "barrier".into())?;
    phase(format!("overlap {side} {order}"));
    // Rank 0 posts and computes; rank 1 waits in a blocking call.
    let app_late = order == "unexpected";
    if me == 0 {
        if app_late {
            std::thread::sleep(late);
        }
        let mut buf = vec![0u8; bytes];
        if side == "send" {
            fill(&mut buf, key);
        }
        let (complete, noticed, compute_time) = comm.scope(|s| -> R<(bool, bool, Duration)> {
            let mut req = if side == "recv" {
                s.irecv(&mut buf[..], 1, OVERLAP_TAG)
            } else {
                s.isend(&buf[..], 1, OVERLAP_TAG)
            }
            .with_ctx(|| "posting".into())?;
            let t = Instant::now();
            compute(Duration::from_millis(ms));
            // Then until rank 1's notice (a system call every 100 µs: a signal pending
            // since before the notice has run its handler when `read` returns). Without
            // progress behind our back, rank 1 cannot finish: give up after `ms` more.
            let mut noticed = false;
            let bound = if progresses {
                Duration::from_millis(ms) + NOTICE_BOUND
            } else {
                Duration::from_millis(2 * ms)
            };
            while t.elapsed() < bound {
                if oob.try_read()? {
                    noticed = true;
                    break;
                }
                compute(Duration::from_micros(100));
            }
            let dt = t.elapsed();
            // Complete, or after one progress pass: records that need no answer (EAGER, FIN)
            // do not interrupt a computing rank; anything that needed its work (RTS, CTS,
            // DATA) must have been handled while it computed.
            let complete = req.is_complete() || req.test().with_ctx(|| "test".into())?.is_some();
            let st = req.wait().with_ctx(|| "wait".into())?;
            status_is(&st, if side == "recv" { 1 } else { 0 }, OVERLAP_TAG, bytes)?;
            Ok((complete, noticed, dt))
        })?;
        if side == "recv" {
            check(&buf, key)?;
        }
        if !noticed {
            // The notice comes once rank 1's call returned, after our wait.
            while !oob.try_read()? {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        println!(
            "RESULT overlap side={side} order={order} mode={} bytes={bytes} compute_ms={} \
             peer_done_while_computing={noticed} complete_before_wait={complete} {}",
            m.name(),
            compute_time.as_millis(),
            comm.stats()
        );
    } else {
        if !app_late {
            std::thread::sleep(late);
        }
        let mut buf = vec![0u8; bytes];
        if side == "recv" {
            fill(&mut buf, key);
            comm.send(&buf, 0, OVERLAP_TAG).with_ctx(|| "send".into())?;
        } else {
            let st = comm
                .recv(&mut buf, 0, OVERLAP_TAG)
                .with_ctx(|| "recv".into())?;
            status_is(&st, 0, OVERLAP_TAG, bytes)?;
            check(&buf, key)?;
        }
        Pipe::notify(ids[0], ids[1])?;
    }
    comm.barrier().with_ctx(|| "final barrier".into())
}

/// A pipe for out-of-band notices between ranks: the peer opens the write end through
/// `/proc/PID/fd/N`.
struct Pipe {
    r: i32,
    w: i32,
}

impl Pipe {
    fn new() -> R<Pipe> {
        let mut fds = [0i32; 2];
        // SAFETY: a valid array of two ints.
        ensure!(
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } == 0,
            "pipe2: {}",
            std::io::Error::last_os_error()
        );
        Ok(Pipe {
            r: fds[0],
            w: fds[1],
        })
    }

    /// Whether a notice arrived (consumes one byte). Retries EINTR.
    fn try_read(&self) -> R<bool> {
        loop {
            let mut b = [0u8; 1];
            // SAFETY: a valid one-byte buffer; `r` is our open descriptor.
            let n = unsafe { libc::read(self.r, b.as_mut_ptr().cast(), 1) };
            if n == 1 {
                return Ok(true);
            }
            match errno() {
                libc::EAGAIN => return Ok(false),
                libc::EINTR => continue,
                e => return Err(format!("read notice pipe: {n}, errno {e}")),
            }
        }
    }

    /// Writes one byte into process `pid`'s descriptor `fd`.
    fn notify(pid: u64, fd: u64) -> R {
        let path = format!("/proc/{pid}/fd/{fd}");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"x"))
            .map_err(|e| format!("notifying through {path}: {e}"))
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: our own descriptors, closed once.
        unsafe {
            libc::close(self.r);
            libc::close(self.w);
        }
    }
}

// ---------------------------------------------------------------------------------------
// storm

const STORM_TAG: Tag = 5;
/// Storm messages whose receives rank 1 posts before working.
const PRE_POSTED: usize = 64;
const INFO_TAG: Tag = 6;
const LCG_A: u64 = 6364136223846793005;
const LCG_C: u64 = 1442695040888963407;

/// The application's own work: `iters` steps of an LCG feeding a floating-point
/// accumulation. Returns (steps done, LCG state, accumulator bits).
fn work(iters: u64) -> (u64, u64, u64) {
    let mut x = 0x1234_5678_9ABC_DEF0u64;
    let mut f = 0.0f64;
    let mut n = 0u64;
    while n < iters {
        x = x.wrapping_mul(LCG_A).wrapping_add(LCG_C);
        f = f * 0.999_999_9 + (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        n = black_box(n + 1);
    }
    (n, x, f.to_bits())
}

/// The LCG state after `n` steps from `x`, in O(log n) (Brown's jump-ahead).
fn lcg_jump(x: u64, mut n: u64) -> u64 {
    let (mut am, mut ap) = (1u64, 0u64);
    let (mut cm, mut cp) = (LCG_A, LCG_C);
    while n > 0 {
        if n & 1 == 1 {
            am = am.wrapping_mul(cm);
            ap = ap.wrapping_mul(cm).wrapping_add(cp);
        }
        cp = cm.wrapping_add(1).wrapping_mul(cp);
        cm = cm.wrapping_mul(cm);
        n >>= 1;
    }
    am.wrapping_mul(x).wrapping_add(ap)
}

fn storm_msg(buf: &mut Vec<u8>, seed: u64, i: u64) {
    let size = 8 + (mix(seed, i, 0x57) % 193) as usize;
    buf.resize(size, 0);
    buf[..8].copy_from_slice(&i.to_le_bytes());
    fill(&mut buf[8..], mix(seed, i, 0x58));
}

fn storm(comm: &Comm, o: &StormOpts) -> R {
    need(comm, 2)?;
    let (storm_ms, iters, seed) = (o.storm_ms, o.work, o.seed);
    if comm.rank() == 1 {
        // Reference: the same work with no traffic.
        phase("storm: reference work");
        let t = Instant::now();
        let reference = work(iters);
        let ref_time = t.elapsed();
        ensure!(
            reference.0 == iters && reference.1 == lcg_jump(0x1234_5678_9ABC_DEF0, iters),
            "reference work is wrong: {reference:?}"
        );
        comm.barrier().with_ctx(|| "barrier".into())?;
        phase("storm: work under the storm");
        // The first messages have receives posted before the work: how many completed by
        // its end shows whether they progressed while we computed.
        let mut early_bufs = vec![[0u8; 256]; PRE_POSTED];
        let (early, early_st, got, storm_time) = comm.scope(|s| -> R<_> {
            let mut reqs = Vec::new();
            for b in early_bufs.iter_mut() {
                reqs.push(
                    s.irecv(&mut b[..], 0, STORM_TAG)
                        .with_ctx(|| "irecv".into())?,
                );
            }
            let t = Instant::now();
            let got = work(iters);
            let storm_time = t.elapsed();
            let early = reqs.iter().filter(|r| r.is_complete()).count();
            let mut sts = Vec::new();
            for r in reqs {
                sts.push(r.wait().with_ctx(|| "wait pre-posted irecv".into())?);
            }
            Ok((early, sts, got, storm_time))
        })?;
        ensure!(
            got.0 == iters,
            "counted {} iterations, expected {iters}",
            got.0
        );
        ensure!(
            got == reference,
            "work under the storm gave {got:?}, without it {reference:?}"
        );
        phase("storm: receiving");
        let mut buf = vec![0u8; 256];
        let mut expect = vec![0u8; 256];
        let mut i = 0u64;
        let mut pre = early_bufs.iter().zip(early_st);
        let count = loop {
            let st = match pre.next() {
                Some((b, st)) => {
                    buf[..st.len].copy_from_slice(&b[..st.len]);
                    st
                }
                None => comm
                    .recv(&mut buf, 0, STORM_TAG)
                    .with_ctx(|| format!("recv storm message {i}"))?,
            };
            let idx = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
            if idx == u64::MAX {
                ensure!(st.len == 16, "end marker of {} bytes", st.len);
                break u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
            }
            ensure!(
                idx == i,
                "storm message {i} carries index {idx}: order broken"
            );
            storm_msg(&mut expect, seed, i);
            status_is(&st, 0, STORM_TAG, expect.len())?;
            ensure!(
                buf[..st.len] == expect[..],
                "storm message {i}: content differs"
            );
            i += 1;
        };
        ensure!(count == i, "rank 0 sent {count} messages, received {i}");
        println!(
            "RESULT storm mode={} messages={count} pre_posted_complete_after_work={early}/{PRE_POSTED} \
             work_iters={iters} work_ms_alone={} work_ms_storm={}",
            mode(comm).name(),
            ref_time.as_millis(),
            storm_time.as_millis()
        );
    } else {
        comm.barrier().with_ctx(|| "barrier".into())?;
        phase("storm: sending");
        let t = Instant::now();
        let mut buf = Vec::with_capacity(256);
        let mut i = 0u64;
        // At least the messages rank 1 pre-posted receives for.
        while (i as usize) < PRE_POSTED || t.elapsed() < Duration::from_millis(storm_ms) {
            storm_msg(&mut buf, seed, i);
            comm.send(&buf, 1, STORM_TAG)
                .with_ctx(|| format!("send storm message {i}"))?;
            i += 1;
        }
        let mut end = [0u8; 16];
        end[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        end[8..].copy_from_slice(&i.to_le_bytes());
        comm.send(&end, 1, STORM_TAG)
            .with_ctx(|| "send end marker".into())?;
        println!(
            "RESULT storm-sender mode={} messages={i} sending_ms={}",
            mode(comm).name(),
            t.elapsed().as_millis()
        );
    }
    comm.barrier().with_ctx(|| "final barrier".into())
}

static APP_SIGNALS: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    APP_SIGNALS.fetch_add(1, Ordering::Relaxed);
}

fn storm_recv(comm: &Comm, o: &StormRecvOpts) -> R {
    need(comm, 2)?;
    let (with, rounds, big) = (o.with.as_str(), o.rounds, o.big);
    let gap = Duration::from_micros(o.gap_us);
    let signo = match with {
        "tocsin" => std::env::var("TOCSIN_SIGNAL")
            .ok()
            .and_then(|v| v.parse::<i32>().ok())
            .ok_or("--with tocsin needs TOCSIN_SIGNAL set to a signal number")?,
        "app" => libc::SIGUSR1,
        _ => return Err("--with tocsin|app".into()),
    };
    let size_of = |r: u64| -> usize {
        if r % 2 == 0 {
            big + r as usize * 4097
        } else {
            1 + (r as usize * 997) % 16384
        }
    };
    let key_of = |r: u64| mix(0x5707, r, 9);
    if comm.rank() == 1 {
        if with == "app" {
            // SAFETY: a zeroed sigaction then filled; the handler is async-signal-safe
            // (one atomic add). No SA_RESTART: interrupted system calls fail with EINTR.
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = count_signal as *const () as usize;
                act.sa_flags = 0;
                libc::sigemptyset(&mut act.sa_mask);
                ensure!(
                    libc::sigaction(signo, &act, std::ptr::null_mut()) == 0,
                    "sigaction: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
        // SAFETY: no arguments.
        let ids = [std::process::id() as u64, unsafe { libc::gettid() } as u64];
        comm.send(&ids, 0, INFO_TAG)
            .with_ctx(|| "send ids".into())?;
        phase("storm-recv: receiving");
        let mut buf = vec![0u8; big + rounds as usize * 4097 + 1];
        for r in 0..rounds {
            let st = comm
                .recv(&mut buf, 0, STORM_TAG)
                .with_ctx(|| format!("recv round {r}"))?;
            status_is(&st, 0, STORM_TAG, size_of(r))?;
            check(&buf[..st.len], key_of(r)).map_err(|e| format!("round {r}: {e}"))?;
        }
        comm.send(&[0u8], 0, INFO_TAG)
            .with_ctx(|| "send done".into())?;
        println!(
            "RESULT storm-recv with={with} mode={} rounds={rounds} app_handler_runs={}",
            mode(comm).name(),
            APP_SIGNALS.load(Ordering::Relaxed)
        );
    } else {
        let mut ids = [0u64; 2];
        comm.recv(&mut ids, 1, INFO_TAG)
            .with_ctx(|| "recv ids".into())?;
        let (pid, tid) = (ids[0] as i32, ids[1] as i32);
        let stop = AtomicBool::new(false);
        phase("storm-recv: sending under the storm");
        let (sent, refused) = std::thread::scope(|ts| -> R<(u64, u64)> {
            let flood = ts.spawn(|| {
                let (mut ok, mut refused) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    // Paced: real-time signals queue (they do not coalesce as standard ones
                    // do), so an unpaced flood outruns their delivery and livelocks the
                    // target thread in signal delivery, whatever its handler does.
                    compute(gap);
                    // SAFETY: integer arguments only.
                    let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, signo) };
                    if r == 0 {
                        ok += 1;
                    } else {
                        refused += 1;
                        std::thread::yield_now();
                    }
                }
                (ok, refused)
            });
            let res = (|| -> R {
                let mut buf = vec![0u8; big + rounds as usize * 4097 + 1];
                for r in 0..rounds {
                    let b = &mut buf[..size_of(r)];
                    fill(b, key_of(r));
                    comm.send(&*b, 1, STORM_TAG)
                        .with_ctx(|| format!("send round {r}"))?;
                }
                // Keep the storm on until rank 1 has checked everything.
                let mut done = [0u8; 1];
                comm.recv(&mut done, 1, INFO_TAG)
                    .with_ctx(|| "recv done".into())?;
                Ok(())
            })();
            stop.store(true, Ordering::Relaxed);
            let counts = flood.join().map_err(|_| "flood thread panicked")?;
            res.map(|_| counts)
        })?;
        ensure!(
            sent > 0,
            "no signal could be sent to rank 1 ({refused} refused)"
        );
        println!(
            "RESULT storm-recv-sender with={with} mode={} signals_sent={sent} refused={refused}",
            mode(comm).name()
        );
    }
    comm.barrier().with_ctx(|| "final barrier".into())
}

// ---------------------------------------------------------------------------------------
// ring

fn ring(comm: &Comm, o: &RingOpts) -> R {
    let (rounds, big) = (o.rounds, o.big);
    let (me, n) = (comm.rank(), comm.size());
    let next = (me + 1) % n;
    let prev = (me + n - 1) % n;
    let sizes = [0usize, 1, 1000, 16 * 1024, 16 * 1024 + 1, 200_000, big];
    let mut out_next = vec![0u8; big];
    let mut out_prev = vec![0u8; big];
    let mut in_prev = vec![0u8; big];
    let mut in_next = vec![0u8; big];
    for round in 0..rounds {
        phase(format!("ring round {round}: token"));
        let start = round * 1000;
        let rt = round as Tag * 10;
        let mut token = [0u64; 1];
        if me == 0 {
            token[0] = start;
            comm.send(&token, next, rt)
                .with_ctx(|| "send token".into())?;
            let st = comm
                .recv(&mut token, prev, rt)
                .with_ctx(|| "recv token".into())?;
            status_is(&st, prev, rt, 8)?;
            ensure!(
                token[0] == start + n as u64 - 1,
                "round {round}: token came back as {}, expected {}",
                token[0],
                start + n as u64 - 1
            );
        } else {
            let st = comm
                .recv(&mut token, prev, rt)
                .with_ctx(|| "recv token".into())?;
            status_is(&st, prev, rt, 8)?;
            ensure!(
                token[0] == start + me as u64 - 1,
                "round {round}: token {}",
                token[0]
            );
            token[0] += 1;
            comm.send(&token, next, rt)
                .with_ctx(|| "send token".into())?;
        }
        phase(format!("ring round {round}: exchange"));
        let size = sizes[round as usize % sizes.len()].min(big);
        // Message from a to b in this round.
        let key = |a: Rank, b: Rank| mix(round, a as u64, b as u64);
        fill(&mut out_next[..size], key(me, next));
        fill(&mut out_prev[..size], key(me, prev));
        let (a, b) = comm.scope(|s| -> R<(Status, Status)> {
            let r1 = s
                .irecv(&mut in_prev[..size], prev, rt + 1)
                .with_ctx(|| "irecv prev".into())?;
            let r2 = s
                .irecv(&mut in_next[..size], next, rt + 2)
                .with_ctx(|| "irecv next".into())?;
            let q1 = s
                .isend(&out_next[..size], next, rt + 1)
                .with_ctx(|| "isend next".into())?;
            let q2 = s
                .isend(&out_prev[..size], prev, rt + 2)
                .with_ctx(|| "isend prev".into())?;
            q1.wait().with_ctx(|| "wait isend next".into())?;
            q2.wait().with_ctx(|| "wait isend prev".into())?;
            let a = r1.wait().with_ctx(|| "wait irecv prev".into())?;
            let b = r2.wait().with_ctx(|| "wait irecv next".into())?;
            Ok((a, b))
        })?;
        status_is(&a, prev, rt + 1, size)?;
        status_is(&b, next, rt + 2, size)?;
        check(&in_prev[..size], key(prev, me))
            .map_err(|e| format!("round {round} from prev: {e}"))?;
        check(&in_next[..size], key(next, me))
            .map_err(|e| format!("round {round} from next: {e}"))?;
        phase(format!("ring round {round}: gather"));
        if me == 0 {
            let mut seen = vec![false; n as usize];
            for _ in 1..n {
                let mut v = [0u64; 2];
                let st = comm
                    .recv(&mut v, ANY_SOURCE, rt + 3)
                    .with_ctx(|| "recv ANY_SOURCE".into())?;
                ensure!(st.len == 16 && st.source != 0, "gather status {st:?}");
                ensure!(
                    v == [st.source as u64, round],
                    "gather from {}: {v:?}",
                    st.source
                );
                ensure!(
                    !seen[st.source as usize],
                    "two gather messages from {}",
                    st.source
                );
                seen[st.source as usize] = true;
            }
        } else {
            comm.send(&[me as u64, round], 0, rt + 3)
                .with_ctx(|| "send gather".into())?;
        }
        comm.barrier().with_ctx(|| "barrier".into())?;
    }
    if me == 0 {
        println!(
            "RESULT ring mode={} ranks={n} rounds={rounds}",
            mode(comm).name()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// eintr

const EINTR_TAG: Tag = 40;

/// The burst rank 0 sends in each phase: eager and rendezvous, rendezvous last.
const BURST: [usize; 12] = [
    8,
    100,
    4096,
    16 * 1024,
    16 * 1024 + 1,
    0,
    100_000,
    1,
    1 << 20,
    2000,
    64,
    300_000,
];

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn eintr(comm: &Comm, o: &EintrOpts) -> R {
    need(comm, 2)?;
    let sleep_ms = o.sleep_ms;
    let m = mode(comm);
    let strict = matches!(
        m,
        ProgressMode::Signal | ProgressMode::Uintr | ProgressMode::Thread
    );
    let phases = ["sleep", "nanosleep", "read", "poll"];
    let key = |p: usize, i: usize| mix(0xE1, p as u64, i as u64);
    let tag = |p: usize, i: usize| EINTR_TAG + (p * BURST.len() + i) as Tag;
    if comm.rank() == 1 {
        let mut fds = [0i32; 2];
        // SAFETY: a valid array of two ints.
        ensure!(
            unsafe { libc::pipe(fds.as_mut_ptr()) } == 0,
            "pipe: {}",
            std::io::Error::last_os_error()
        );
        let ids = [std::process::id() as u64, fds[1] as u64];
        comm.send(&ids, 0, INFO_TAG)
            .with_ctx(|| "send ids".into())?;
        let mut bufs: Vec<Vec<u8>> = BURST.iter().map(|&s| vec![0u8; s]).collect();
        for (p, name) in phases.iter().enumerate() {
            phase(format!("eintr {name}"));
            comm.barrier().with_ctx(|| "barrier".into())?;
            let mut eintrs = 0u64;
            let t = Instant::now();
            let (early, statuses) = comm.scope(|s| -> R<(usize, Vec<Status>)> {
                let mut reqs = Vec::new();
                for (i, b) in bufs.iter_mut().enumerate() {
                    reqs.push(
                        s.irecv(&mut b[..], 0, tag(p, i))
                            .with_ctx(|| format!("irecv {i}"))?,
                    );
                }
                match *name {
                    "sleep" => std::thread::sleep(Duration::from_millis(sleep_ms)),
                    "nanosleep" => {
                        let mut req = libc::timespec {
                            tv_sec: (sleep_ms / 1000) as libc::time_t,
                            tv_nsec: ((sleep_ms % 1000) * 1_000_000) as libc::c_long,
                        };
                        loop {
                            let mut rem = libc::timespec {
                                tv_sec: 0,
                                tv_nsec: 0,
                            };
                            // SAFETY: valid timespec pointers.
                            if unsafe { libc::nanosleep(&req, &mut rem) } == 0 {
                                break;
                            }
                            ensure!(errno() == libc::EINTR, "nanosleep: errno {}", errno());
                            eintrs += 1;
                            req = rem;
                        }
                    }
                    "read" => loop {
                        let mut b = [0u8; 1];
                        // SAFETY: a valid one-byte buffer.
                        let r = unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
                        if r == 1 {
                            break;
                        }
                        ensure!(
                            r < 0 && errno() == libc::EINTR,
                            "read: {r}, errno {}",
                            errno()
                        );
                        eintrs += 1;
                    },
                    _ => {
                        loop {
                            let mut pfd = libc::pollfd {
                                fd: fds[0],
                                events: libc::POLLIN,
                                revents: 0,
                            };
                            // SAFETY: one valid pollfd.
                            let r = unsafe { libc::poll(&mut pfd, 1, -1) };
                            if r == 1 {
                                break;
                            }
                            ensure!(
                                r < 0 && errno() == libc::EINTR,
                                "poll: {r}, errno {}",
                                errno()
                            );
                            eintrs += 1;
                        }
                        let mut b = [0u8; 1];
                        // SAFETY: a valid one-byte buffer; poll said it is readable.
                        let r = unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
                        ensure!(r == 1, "read after poll: {r}");
                    }
                }
                // As in `overlap`: complete, or after one progress pass.
                let early = reqs
                    .iter_mut()
                    .filter_map(|r| {
                        (r.is_complete() || matches!(r.test(), Ok(Some(_)))).then_some(())
                    })
                    .count();
                let mut out = Vec::new();
                for (i, r) in reqs.into_iter().enumerate() {
                    out.push(r.wait().with_ctx(|| format!("wait irecv {i}"))?);
                }
                Ok((early, out))
            })?;
            let elapsed = t.elapsed();
            for (i, (st, b)) in statuses.iter().zip(bufs.iter()).enumerate() {
                status_is(st, 0, tag(p, i), BURST[i])?;
                check(b, key(p, i)).map_err(|e| format!("phase {name} message {i}: {e}"))?;
            }
            println!(
                "RESULT eintr phase={name} mode={} eintr={eintrs} complete_before_wait={early}/{} elapsed_ms={} requested_ms={}",
                m.name(),
                BURST.len(),
                elapsed.as_millis(),
                if p < 2 { sleep_ms } else { 0 }
            );
        }
    } else {
        let mut ids = [0u64; 2];
        comm.recv(&mut ids, 1, INFO_TAG)
            .with_ctx(|| "recv ids".into())?;
        let path = format!("/proc/{}/fd/{}", ids[0], ids[1]);
        let mut pipe = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| format!("opening rank 1's pipe {path}: {e}"))?;
        for (p, name) in phases.iter().enumerate() {
            phase(format!("eintr {name}"));
            let bufs: Vec<Vec<u8>> = BURST
                .iter()
                .enumerate()
                .map(|(i, &s)| {
                    let mut b = vec![0u8; s];
                    fill(&mut b, key(p, i));
                    b
                })
                .collect();
            comm.barrier().with_ctx(|| "barrier".into())?;
            // Let rank 1 enter its system call.
            std::thread::sleep(Duration::from_millis(20));
            comm.scope(|s| -> R {
                let mut reqs = Vec::new();
                for (i, b) in bufs.iter().enumerate() {
                    reqs.push(s.isend(&b[..], 1, tag(p, i)).with_ctx(|| format!("isend {i}"))?);
                    // Spread the burst: each post finds rank 1 inside its system call.
                    std::thread::sleep(Duration::from_millis(2));
                }
                if p < 2 {
                    for (i, r) in reqs.into_iter().enumerate() {
                        r.wait().with_ctx(|| format!("wait isend {i}"))?;
                    }
                } else if strict {
                    // Our rendezvous sends need rank 1's progress while it is blocked in
                    // `read`/`poll`; give up after NOTICE_BOUND (then release it anyway).
                    let t = Instant::now();
                    let mut stuck = false;
                    while !reqs.iter().all(|r| r.is_complete()) {
                        for (i, r) in reqs.iter_mut().enumerate() {
                            r.test().with_ctx(|| format!("test isend {i}"))?;
                        }
                        if t.elapsed() > NOTICE_BOUND {
                            stuck = true;
                            break;
                        }
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    pipe.write_all(b"x").map_err(|e| format!("write pipe: {e}"))?;
                    for (i, r) in reqs.into_iter().enumerate() {
                        r.wait().with_ctx(|| format!("wait isend {i}"))?;
                    }
                    ensure!(
                        !stuck,
                        "phase {name}: the burst to rank 1 did not complete within {NOTICE_BOUND:?} \
                         while rank 1's registered thread was blocked in a system call: no \
                         progress behind its back in {} mode",
                        m.name()
                    );
                } else {
                    // Rank 1 cannot progress in this mode while it reads: release it first.
                    std::thread::sleep(Duration::from_millis(100));
                    pipe.write_all(b"x").map_err(|e| format!("write pipe: {e}"))?;
                    for (i, r) in reqs.into_iter().enumerate() {
                        r.wait().with_ctx(|| format!("wait isend {i}"))?;
                    }
                }
                Ok(())
            })?;
        }
    }
    comm.barrier().with_ctx(|| "final barrier".into())
}
