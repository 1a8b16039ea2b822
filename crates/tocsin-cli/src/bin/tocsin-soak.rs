//! `tocsin-soak`: robustness test program (soak, overlap, interrupt storms, modes matrix,
//! EINTR), one case per run, for `tests/robustness.rs`.
//!
//! Usage: `tocsin run -n N -- tocsin-soak CASE [--key value]...`. Every rank runs the case,
//! checks real outcomes (every byte, statuses, counts) and prints `ok CASE rank R/N` on
//! success; on failure it prints `FAIL CASE rank R/N: why` on stderr and exits 1. If
//! `tocsin::init` fails it prints `init failed: ERROR` on stderr and exits 2. A watchdog ends
//! a rank stuck longer than `--timeout` seconds (default 300) with exit code 3, printing the
//! last phase it reached and its per-thread message counters. Lines starting with `RESULT`
//! on stdout are observations the tests parse (`key=value` pairs).
//!
//! Cases (ranks needed):
//! - `soak` (2): `--messages` (100,000) messages in total, spread over `--threads` (2)
//!   application threads per rank (thread 0 is the one that called `tocsin::init`, i.e. the
//!   registered thread of `signal` mode), each with its own tag space. Sizes are random with
//!   a deterministic `--seed`: mostly small, some around the eager threshold, a few
//!   rendezvous up to `--max-size` (1 MiB). Steps are single blocking send/recv (or
//!   isend + compute + wait, or irecv + compute/test loop) and batches of up to 6 mixed
//!   isend/irecv in a `scope` with compute between posting and waiting. Between operations
//!   each thread computes (busy loop that never calls tocsin) 0..=`--compute-us` (50) µs.
//!   Contents derive from (seed, thread, index); statuses, the bytes past the message in the
//!   receive buffer, per-thread counts (checked against the schedule and against the peer's
//!   counts) are verified. With `--main idle`, every application thread is spawned and the
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
//!   Prints `RESULT overlap ... peer_done_while_computing=BOOL complete_before_wait=BOOL`.
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

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tocsin::{Comm, ProgressMode, Rank, Status, Tag, ANY_SOURCE};

/// A case's outcome: `Err` carries the message printed on failure.
type R<T = ()> = Result<T, String>;

macro_rules! ensure {
    ($c:expr, $($a:tt)+) => {
        if !$c {
            return Err(format!($($a)+));
        }
    };
}

/// Maps a tocsin error to the failure message, with what was being done.
trait Ctx<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> R<T>;
}
impl<T> Ctx<T> for Result<T, tocsin::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> R<T> {
        self.map_err(|e| format!("{}: {e}", what()))
    }
}

// ---------------------------------------------------------------------------------------
// Diagnostics for the watchdog.

static PHASE: Mutex<String> = Mutex::new(String::new());
/// Messages completed per application thread (soak), for the watchdog's report.
static COUNTERS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

fn phase(s: impl Into<String>) {
    *PHASE.lock().unwrap_or_else(|e| e.into_inner()) = s.into();
}

fn start_watchdog(timeout: Duration, case: String) {
    std::thread::spawn(move || {
        std::thread::sleep(timeout);
        let p = PHASE.lock().map(|g| g.clone()).unwrap_or_default();
        let c: Vec<u64> = COUNTERS.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        eprintln!(
            "TIMEOUT {case} pid {}: stuck after {timeout:?}; last phase: {p}; per-thread messages done: {c:?}",
            std::process::id()
        );
        let _ = std::io::stderr().flush();
        // SAFETY: `_exit` ends the process at once; nothing to uphold.
        unsafe { libc::_exit(3) };
    });
}

// ---------------------------------------------------------------------------------------
// Options.

struct Opts(HashMap<String, String>);

impl Opts {
    fn parse(args: &[String]) -> R<Opts> {
        let mut m = HashMap::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let k = k
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --key value, got {k:?}"))?;
            let v = it.next().ok_or_else(|| format!("--{k} needs a value"))?;
            m.insert(k.to_owned(), v.clone());
        }
        Ok(Opts(m))
    }
    fn get<T: std::str::FromStr>(&self, k: &str, default: T) -> R<T> {
        match self.0.get(k) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("bad value {v:?} for --{k}")),
        }
    }
    fn str(&self, k: &str, default: &str) -> String {
        self.0.get(k).cloned().unwrap_or_else(|| default.to_owned())
    }
}

// ---------------------------------------------------------------------------------------
// Deterministic content.

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A key identifying one message's content.
fn mix(a: u64, b: u64, c: u64) -> u64 {
    let mut s = a ^ b.rotate_left(21) ^ c.rotate_left(42) ^ 0xD1B5_4A32_D192_ED03;
    splitmix(&mut s) ^ splitmix(&mut s)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        splitmix(&mut self.0)
    }
    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Fills `buf` with the content of message `key`.
fn fill(buf: &mut [u8], key: u64) {
    let mut s = key;
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        c.copy_from_slice(&splitmix(&mut s).to_le_bytes());
    }
    let rest = chunks.into_remainder();
    let w = splitmix(&mut s).to_le_bytes();
    rest.copy_from_slice(&w[..rest.len()]);
}

/// Checks that `buf` holds the content of message `key`; on mismatch, names the first byte.
fn check(buf: &[u8], key: u64) -> R {
    let mut s = key;
    let mut chunks = buf.chunks_exact(8);
    for (i, c) in (&mut chunks).enumerate() {
        let w = splitmix(&mut s).to_le_bytes();
        if c != w {
            let j = c
                .iter()
                .zip(w.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(format!(
                "content differs at byte {} of {}: got {:#04x}, expected {:#04x}",
                i * 8 + j,
                buf.len(),
                c[j],
                w[j]
            ));
        }
    }
    let rest = chunks.remainder();
    let w = splitmix(&mut s).to_le_bytes();
    ensure!(
        rest == &w[..rest.len()],
        "content differs in the last {} bytes of {}",
        rest.len(),
        buf.len()
    );
    Ok(())
}

/// Busy loop for `d` that never calls tocsin (the application "computing").
fn compute(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        for _ in 0..32 {
            std::hint::spin_loop();
        }
    }
}

fn status_is(st: &Status, source: Rank, tag: Tag, len: usize) -> R {
    ensure!(
        st.source == source && st.tag == tag && st.len == len,
        "status {st:?}, expected source {source} tag {tag} len {len}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// main

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(case) = args.first().cloned() else {
        eprintln!("usage: tocsin-soak CASE [--key value]... (see the module documentation)");
        return ExitCode::from(2);
    };
    let opts = match Opts::parse(&args[1..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tocsin-soak: {e}");
            return ExitCode::from(2);
        }
    };
    let timeout = opts.get("timeout", 300u64).unwrap_or(300);
    start_watchdog(Duration::from_secs(timeout), case.clone());
    phase("init");
    let comm = match tocsin::init() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("init failed: {e}");
            return ExitCode::from(2);
        }
    };
    let (me, n) = (comm.rank(), comm.size());
    let r = match case.as_str() {
        "soak" => soak(&comm, &opts),
        "overlap" => overlap(&comm, &opts),
        "storm" => storm(&comm, &opts),
        "storm-recv" => storm_recv(&comm, &opts),
        "ring" => ring(&comm, &opts),
        "eintr" => eintr(&comm, &opts),
        _ => Err(format!("unknown case {case:?}")),
    };
    match r {
        Ok(()) => {
            println!("ok {case} rank {me}/{n}");
            let _ = std::io::stdout().flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("FAIL {case} rank {me}/{n}: {e}");
            let _ = std::io::stderr().flush();
            ExitCode::from(1)
        }
    }
}

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
const SENTINEL: u8 = 0xEE;
/// Tag of the final exchange of counts.
const COUNTS_TAG: Tag = 0x7000_0000;

#[derive(Clone, Copy, Debug)]
struct Msg {
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
            let how = self.rng.next();
            Some(Step::Single(self.msg(), how))
        } else {
            let k = (1 + self.rng.below(MAX_BATCH as u64)).min(self.n - self.i);
            Some(Step::Batch((0..k).map(|_| self.msg()).collect()))
        }
    }
}

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
struct Counts {
    /// Messages and bytes rank 0 sent to rank 1, and rank 1 to rank 0.
    msgs: [u64; 2],
    bytes: [u64; 2],
}

#[derive(Default)]
struct Stats {
    counts: Counts,
    rendezvous: u64,
    nb_posted: u64,
    nb_complete_before_wait: u64,
}

fn soak(comm: &Comm, o: &Opts) -> R {
    need(comm, 2)?;
    let total: u64 = o.get("messages", 100_000)?;
    let threads: u32 = o.get("threads", 2)?;
    let seed: u64 = o.get("seed", 0x0070_C51A)?;
    let max: usize = o.get("max-size", 1 << 20)?;
    let compute_us: u64 = o.get("compute-us", 50)?;
    let main_idle = match o.str("main", "works").as_str() {
        "works" => false,
        "idle" => true,
        m => return Err(format!("--main works|idle, not {m:?}")),
    };
    ensure!((1..=8).contains(&threads), "--threads must be 1..=8");
    let eager = comm.config().eager_threshold_bytes();
    let per = |t: u32| total / threads as u64 + u64::from((t as u64) < total % threads as u64);
    // Expected counts, from the schedule alone.
    let mut expect = vec![Counts::default(); threads as usize];
    for (t, e) in expect.iter_mut().enumerate() {
        let mut s = Sched::new(seed, t as u32, per(t as u32), max);
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
    }
    comm.barrier().ctx(|| "barrier".into())?;
    phase("soak traffic");
    let start = Instant::now();
    let results: Vec<R<Stats>> = std::thread::scope(|ts| {
        let run = move |c: &Comm, t: u32| {
            soak_thread(c, t, seed, per(t), max, compute_us, eager)
                .map_err(|e| format!("thread {t}: {e}"))
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
    for r in results {
        stats.push(r?);
    }
    phase("soak counts");
    // My counts against the schedule, then against the peer's.
    let mut mine = Vec::new();
    for (t, s) in stats.iter().enumerate() {
        ensure!(
            s.counts == expect[t],
            "thread {t}: counted {:?}, the schedule says {:?}",
            s.counts,
            expect[t]
        );
        mine.extend(s.counts.msgs);
        mine.extend(s.counts.bytes);
    }
    let peer = 1 - comm.rank();
    let mut theirs = vec![0u64; mine.len() + 1];
    let st = comm
        .sendrecv(&mine, peer, COUNTS_TAG, &mut theirs, peer, COUNTS_TAG)
        .ctx(|| "exchanging counts".into())?;
    status_is(&st, peer, COUNTS_TAG, mine.len() * 8)?;
    ensure!(
        theirs[..mine.len()] == mine[..],
        "the peer counted {:?}, I counted {mine:?}",
        &theirs[..mine.len()]
    );
    let msgs: u64 = stats
        .iter()
        .map(|s| s.counts.msgs.iter().sum::<u64>())
        .sum();
    let bytes: u64 = stats
        .iter()
        .map(|s| s.counts.bytes.iter().sum::<u64>())
        .sum();
    let rdv: u64 = stats.iter().map(|s| s.rendezvous).sum();
    let posted: u64 = stats.iter().map(|s| s.nb_posted).sum();
    let early: u64 = stats.iter().map(|s| s.nb_complete_before_wait).sum();
    println!(
        "RESULT soak rank={} mode={} threads={threads} main_idle={main_idle} messages={msgs} bytes={bytes} rendezvous={rdv} \
         nonblocking_complete_before_wait={early}/{posted} elapsed_s={:.2}",
        comm.rank(),
        mode(comm).name(),
        elapsed.as_secs_f64()
    );
    comm.barrier().ctx(|| "final barrier".into())
}

#[allow(clippy::too_many_arguments)]
fn soak_thread(
    comm: &Comm,
    t: u32,
    seed: u64,
    n: u64,
    max: usize,
    compute_us: u64,
    eager: usize,
) -> R<Stats> {
    let me = comm.rank();
    let peer = 1 - me;
    let mut sched = Sched::new(seed, t, n, max);
    let mut local = Rng(mix(seed ^ 0x10CA1, t as u64, me as u64));
    let think = move |rng: &mut Rng| {
        compute(Duration::from_nanos(rng.below(compute_us * 1000 + 1)));
    };
    let mut sbufs: Vec<Vec<u8>> = (0..MAX_BATCH).map(|_| vec![0u8; max]).collect();
    let mut rbufs: Vec<Vec<u8>> = (0..MAX_BATCH).map(|_| vec![0u8; max + SLACK]).collect();
    let mut st = Stats::default();
    let done = &COUNTERS[t as usize % COUNTERS.len()];
    // Receive capacity for a message: its size plus 0..SLACK, the slack set to SENTINEL.
    let prep_recv = |rb: &mut [u8], m: &Msg, rng: &mut Rng| -> usize {
        let cap = m.size + rng.below(SLACK as u64 + 1) as usize;
        rb[m.size..cap].fill(SENTINEL);
        cap
    };
    let verify = |rb: &[u8], cap: usize, m: &Msg, status: &Status| -> R {
        status_is(status, peer, m.tag, m.size)
            .and_then(|_| check(&rb[..m.size], m.key))
            .and_then(|_| {
                ensure!(
                    rb[m.size..cap].iter().all(|&b| b == SENTINEL),
                    "bytes written past the message ({} bytes) in a {cap}-byte buffer",
                    m.size
                );
                Ok(())
            })
            .map_err(|e| format!("message {m:?}: {e}"))
    };
    let account = |st: &mut Stats, m: &Msg| {
        st.counts.msgs[m.from as usize] += 1;
        st.counts.bytes[m.from as usize] += m.size as u64;
        st.rendezvous += u64::from(m.size > eager);
        done.fetch_add(1, Ordering::Relaxed);
    };
    while let Some(step) = sched.next_step() {
        match step {
            Step::Single(m, how) => {
                think(&mut local);
                if m.from == me {
                    let sb = &mut sbufs[0][..m.size];
                    fill(sb, m.key);
                    if how % 2 == 0 {
                        comm.send(&*sb, peer, m.tag).ctx(|| format!("send {m:?}"))?;
                    } else {
                        comm.scope(|s| -> R {
                            let q = s.isend(&*sb, peer, m.tag).ctx(|| format!("isend {m:?}"))?;
                            think(&mut local);
                            st.nb_posted += 1;
                            st.nb_complete_before_wait += u64::from(q.is_complete());
                            q.wait().ctx(|| format!("wait isend {m:?}"))?;
                            Ok(())
                        })?;
                    }
                } else {
                    let rb = &mut rbufs[0];
                    let cap = prep_recv(rb, &m, &mut local);
                    let status = match how % 3 {
                        0 => comm
                            .recv(&mut rb[..cap], peer, m.tag)
                            .ctx(|| format!("recv {m:?}"))?,
                        1 => comm.scope(|s| -> R<Status> {
                            let r = s
                                .irecv(&mut rb[..cap], peer, m.tag)
                                .ctx(|| format!("irecv {m:?}"))?;
                            think(&mut local);
                            st.nb_posted += 1;
                            st.nb_complete_before_wait += u64::from(r.is_complete());
                            r.wait().ctx(|| format!("wait irecv {m:?}"))
                        })?,
                        _ => comm.scope(|s| -> R<Status> {
                            // MPI-style: compute in slices, test between them.
                            let mut r = s
                                .irecv(&mut rb[..cap], peer, m.tag)
                                .ctx(|| format!("irecv {m:?}"))?;
                            loop {
                                compute(Duration::from_micros(2));
                                if let Some(s) = r.test().ctx(|| format!("test irecv {m:?}"))? {
                                    return Ok(s);
                                }
                            }
                        })?,
                    };
                    verify(rb, cap, &m, &status)?;
                }
                account(&mut st, &m);
            }
            Step::Batch(ms) => {
                for (m, sb) in ms.iter().zip(sbufs.iter_mut()) {
                    if m.from == me {
                        fill(&mut sb[..m.size], m.key);
                    }
                }
                let caps: Vec<usize> = ms
                    .iter()
                    .zip(rbufs.iter_mut())
                    .map(|(m, rb)| {
                        if m.from == me {
                            0
                        } else {
                            prep_recv(rb, m, &mut local)
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
                        let r = if m.from == me {
                            s.isend(&sb[..m.size], peer, m.tag)
                        } else {
                            s.irecv(&mut rb[..cap], peer, m.tag)
                        };
                        reqs.push(r.ctx(|| format!("posting {m:?}"))?);
                    }
                    think(&mut local);
                    st.nb_posted += reqs.len() as u64;
                    st.nb_complete_before_wait +=
                        reqs.iter().filter(|r| r.is_complete()).count() as u64;
                    let mut out = Vec::with_capacity(reqs.len());
                    for (r, m) in reqs.into_iter().zip(ms.iter()) {
                        out.push(r.wait().ctx(|| format!("wait {m:?}"))?);
                    }
                    Ok(out)
                })?;
                for (((m, rb), status), &cap) in ms
                    .iter()
                    .zip(rbufs.iter())
                    .zip(statuses.iter())
                    .zip(caps.iter())
                {
                    if m.from == me {
                        status_is(status, me, m.tag, m.size)
                            .map_err(|e| format!("send {m:?}: {e}"))?;
                    } else {
                        verify(rb, cap, m, status)?;
                    }
                    account(&mut st, m);
                }
            }
        }
    }
    Ok(st)
}

// ---------------------------------------------------------------------------------------
// overlap

const OVERLAP_TAG: Tag = 77;
/// How long a rank keeps computing (overlap) or waits (eintr) for the peer to finish in the
/// modes that must progress behind the application's back; a hang guard, far above need.
const NOTICE_BOUND: Duration = Duration::from_secs(10);

fn overlap(comm: &Comm, o: &Opts) -> R {
    need(comm, 2)?;
    let side = o.str("side", "recv");
    let order = o.str("order", "posted");
    let bytes: usize = o.get("bytes", 4 << 20)?;
    let ms: u64 = o.get("compute-ms", 300)?;
    ensure!(side == "recv" || side == "send", "--side recv|send");
    ensure!(
        order == "posted" || order == "unexpected",
        "--order posted|unexpected"
    );
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
        comm.send(&ids, 1, INFO_TAG).ctx(|| "send pipe".into())?;
    } else {
        comm.recv(&mut ids, 0, INFO_TAG)
            .ctx(|| "recv pipe".into())?;
    }
    comm.barrier().ctx(|| "barrier".into())?;
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
            .ctx(|| "posting".into())?;
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
            let complete = req.is_complete() || req.test().ctx(|| "test".into())?.is_some();
            let st = req.wait().ctx(|| "wait".into())?;
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
             peer_done_while_computing={noticed} complete_before_wait={complete}",
            m.name(),
            compute_time.as_millis()
        );
    } else {
        if !app_late {
            std::thread::sleep(late);
        }
        let mut buf = vec![0u8; bytes];
        if side == "recv" {
            fill(&mut buf, key);
            comm.send(&buf, 0, OVERLAP_TAG).ctx(|| "send".into())?;
        } else {
            let st = comm.recv(&mut buf, 0, OVERLAP_TAG).ctx(|| "recv".into())?;
            status_is(&st, 0, OVERLAP_TAG, bytes)?;
            check(&buf, key)?;
        }
        Pipe::notify(ids[0], ids[1])?;
    }
    comm.barrier().ctx(|| "final barrier".into())
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

fn storm(comm: &Comm, o: &Opts) -> R {
    need(comm, 2)?;
    let storm_ms: u64 = o.get("storm-ms", 2000)?;
    let iters: u64 = o.get("work", 55_000_000)?;
    let seed: u64 = o.get("seed", 0x5702)?;
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
        comm.barrier().ctx(|| "barrier".into())?;
        phase("storm: work under the storm");
        // The first messages have receives posted before the work: how many completed by
        // its end shows whether they progressed while we computed.
        let mut early_bufs = vec![[0u8; 256]; PRE_POSTED];
        let (early, early_st, got, storm_time) = comm.scope(|s| -> R<_> {
            let mut reqs = Vec::new();
            for b in early_bufs.iter_mut() {
                reqs.push(s.irecv(&mut b[..], 0, STORM_TAG).ctx(|| "irecv".into())?);
            }
            let t = Instant::now();
            let got = work(iters);
            let storm_time = t.elapsed();
            let early = reqs.iter().filter(|r| r.is_complete()).count();
            let mut sts = Vec::new();
            for r in reqs {
                sts.push(r.wait().ctx(|| "wait pre-posted irecv".into())?);
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
                    .ctx(|| format!("recv storm message {i}"))?,
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
        comm.barrier().ctx(|| "barrier".into())?;
        phase("storm: sending");
        let t = Instant::now();
        let mut buf = Vec::with_capacity(256);
        let mut i = 0u64;
        // At least the messages rank 1 pre-posted receives for.
        while (i as usize) < PRE_POSTED || t.elapsed() < Duration::from_millis(storm_ms) {
            storm_msg(&mut buf, seed, i);
            comm.send(&buf, 1, STORM_TAG)
                .ctx(|| format!("send storm message {i}"))?;
            i += 1;
        }
        let mut end = [0u8; 16];
        end[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        end[8..].copy_from_slice(&i.to_le_bytes());
        comm.send(&end, 1, STORM_TAG)
            .ctx(|| "send end marker".into())?;
        println!(
            "RESULT storm-sender mode={} messages={i} sending_ms={}",
            mode(comm).name(),
            t.elapsed().as_millis()
        );
    }
    comm.barrier().ctx(|| "final barrier".into())
}

static APP_SIGNALS: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    APP_SIGNALS.fetch_add(1, Ordering::Relaxed);
}

fn storm_recv(comm: &Comm, o: &Opts) -> R {
    need(comm, 2)?;
    let with = o.str("with", "tocsin");
    let rounds: u64 = o.get("rounds", 512)?;
    let big: usize = o.get("big", 2 << 20)?;
    let gap = Duration::from_micros(o.get("gap-us", 20)?);
    let signo = match with.as_str() {
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
        comm.send(&ids, 0, INFO_TAG).ctx(|| "send ids".into())?;
        phase("storm-recv: receiving");
        let mut buf = vec![0u8; big + rounds as usize * 4097 + 1];
        for r in 0..rounds {
            let st = comm
                .recv(&mut buf, 0, STORM_TAG)
                .ctx(|| format!("recv round {r}"))?;
            status_is(&st, 0, STORM_TAG, size_of(r))?;
            check(&buf[..st.len], key_of(r)).map_err(|e| format!("round {r}: {e}"))?;
        }
        comm.send(&[0u8], 0, INFO_TAG).ctx(|| "send done".into())?;
        println!(
            "RESULT storm-recv with={with} mode={} rounds={rounds} app_handler_runs={}",
            mode(comm).name(),
            APP_SIGNALS.load(Ordering::Relaxed)
        );
    } else {
        let mut ids = [0u64; 2];
        comm.recv(&mut ids, 1, INFO_TAG).ctx(|| "recv ids".into())?;
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
                        .ctx(|| format!("send round {r}"))?;
                }
                // Keep the storm on until rank 1 has checked everything.
                let mut done = [0u8; 1];
                comm.recv(&mut done, 1, INFO_TAG)
                    .ctx(|| "recv done".into())?;
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
    comm.barrier().ctx(|| "final barrier".into())
}

// ---------------------------------------------------------------------------------------
// ring

fn ring(comm: &Comm, o: &Opts) -> R {
    let rounds: u64 = o.get("rounds", 10)?;
    let big: usize = o.get("big", 4 << 20)?;
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
            comm.send(&token, next, rt).ctx(|| "send token".into())?;
            let st = comm
                .recv(&mut token, prev, rt)
                .ctx(|| "recv token".into())?;
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
                .ctx(|| "recv token".into())?;
            status_is(&st, prev, rt, 8)?;
            ensure!(
                token[0] == start + me as u64 - 1,
                "round {round}: token {}",
                token[0]
            );
            token[0] += 1;
            comm.send(&token, next, rt).ctx(|| "send token".into())?;
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
                .ctx(|| "irecv prev".into())?;
            let r2 = s
                .irecv(&mut in_next[..size], next, rt + 2)
                .ctx(|| "irecv next".into())?;
            let q1 = s
                .isend(&out_next[..size], next, rt + 1)
                .ctx(|| "isend next".into())?;
            let q2 = s
                .isend(&out_prev[..size], prev, rt + 2)
                .ctx(|| "isend prev".into())?;
            q1.wait().ctx(|| "wait isend next".into())?;
            q2.wait().ctx(|| "wait isend prev".into())?;
            let a = r1.wait().ctx(|| "wait irecv prev".into())?;
            let b = r2.wait().ctx(|| "wait irecv next".into())?;
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
                    .ctx(|| "recv ANY_SOURCE".into())?;
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
                .ctx(|| "send gather".into())?;
        }
        comm.barrier().ctx(|| "barrier".into())?;
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

fn eintr(comm: &Comm, o: &Opts) -> R {
    need(comm, 2)?;
    let sleep_ms: u64 = o.get("sleep-ms", 400)?;
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
        comm.send(&ids, 0, INFO_TAG).ctx(|| "send ids".into())?;
        let mut bufs: Vec<Vec<u8>> = BURST.iter().map(|&s| vec![0u8; s]).collect();
        for (p, name) in phases.iter().enumerate() {
            phase(format!("eintr {name}"));
            comm.barrier().ctx(|| "barrier".into())?;
            let mut eintrs = 0u64;
            let t = Instant::now();
            let (early, statuses) = comm.scope(|s| -> R<(usize, Vec<Status>)> {
                let mut reqs = Vec::new();
                for (i, b) in bufs.iter_mut().enumerate() {
                    reqs.push(
                        s.irecv(&mut b[..], 0, tag(p, i))
                            .ctx(|| format!("irecv {i}"))?,
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
                    out.push(r.wait().ctx(|| format!("wait irecv {i}"))?);
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
        comm.recv(&mut ids, 1, INFO_TAG).ctx(|| "recv ids".into())?;
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
            comm.barrier().ctx(|| "barrier".into())?;
            // Let rank 1 enter its system call.
            std::thread::sleep(Duration::from_millis(20));
            comm.scope(|s| -> R {
                let mut reqs = Vec::new();
                for (i, b) in bufs.iter().enumerate() {
                    reqs.push(s.isend(&b[..], 1, tag(p, i)).ctx(|| format!("isend {i}"))?);
                    // Spread the burst: each post finds rank 1 inside its system call.
                    std::thread::sleep(Duration::from_millis(2));
                }
                if p < 2 {
                    for (i, r) in reqs.into_iter().enumerate() {
                        r.wait().ctx(|| format!("wait isend {i}"))?;
                    }
                } else if strict {
                    // Our rendezvous sends need rank 1's progress while it is blocked in
                    // `read`/`poll`; give up after NOTICE_BOUND (then release it anyway).
                    let t = Instant::now();
                    let mut stuck = false;
                    while !reqs.iter().all(|r| r.is_complete()) {
                        for (i, r) in reqs.iter_mut().enumerate() {
                            r.test().ctx(|| format!("test isend {i}"))?;
                        }
                        if t.elapsed() > NOTICE_BOUND {
                            stuck = true;
                            break;
                        }
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    pipe.write_all(b"x").map_err(|e| format!("write pipe: {e}"))?;
                    for (i, r) in reqs.into_iter().enumerate() {
                        r.wait().ctx(|| format!("wait isend {i}"))?;
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
                        r.wait().ctx(|| format!("wait isend {i}"))?;
                    }
                }
                Ok(())
            })?;
        }
    }
    comm.barrier().ctx(|| "final barrier".into())
}
