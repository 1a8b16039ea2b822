//! `tocsin bench notify`: one-way notification latency of every wake-up mechanism tocsin
//! could use, between two threads and between two processes, on the same core, on two
//! cores, and across NUMA nodes.
//!
//! Owns the notification micro-benchmark: the mechanisms (spinning on a shared flag, a
//! shared futex, eventfd, a real-time signal to a busy receiver, the same signal to a
//! receiver blocked in `sigtimedwait`, and UINTR where the machine and the library allow),
//! the placement of the two sides (hwloc cores, via [`crate::probe::topology`]), the
//! ping-pong method, its statistics, its table, JSON and plot. It does not use tocsin's
//! communicator: it measures the raw mechanisms the progress modes are built from.
//!
//! ## Method
//! Side A notifies side B, B notifies A back; A times each round trip with `Instant`
//! (`CLOCK_MONOTONIC`) and records half of it (one-way = RTT/2). Warm-up iterations are
//! dropped. Each case runs `--iters` round trips (a quarter of them for the blocking
//! mechanisms) or stops after `--case-secs`, whichever comes first; the JSON records how
//! many were measured. Both sides bind themselves with `sched_setaffinity` to the first
//! PU of a hwloc core: *same-core* puts both on one PU (they time-share it), *other-core*
//! on two cores of one NUMA node, *other-numa* on cores of two nodes (skipped when hwloc
//! shows one node).
//!
//! - `flag`: B spins on a word in a `MAP_SHARED` page that A stores to (and back).
//! - `futex`: the same words, and the receiver sleeps in `FUTEX_WAIT` (shared, not private)
//!   until the sender's `FUTEX_WAKE`.
//! - `eventfd`: one eventfd per direction, blocking `read`/`write`.
//! - `signal`: a real-time signal sent with `tgkill` to the peer *thread*, which is busy
//!   computing; its handler only increments an atomic counter that the compute loop checks
//!   between chunks of arithmetic. This is tocsin's case: an interrupt reaching a rank that
//!   computes.
//! - `signal-wait`: the same signal, blocked, taken by a receiver waiting in `sigtimedwait`
//!   (its 100 ms timeout is only a hang guard; a healthy round trip never reaches it).
//! - `uintr`: a user interrupt (`SENDUIPI`) to the peer thread, which is busy computing
//!   exactly as in `signal`: each side's receiving thread registers the library's handler
//!   entry (`uintr_register_handler`), creates a vector fd (`uintr_vector_fd`) and executes
//!   `STUI`; the entry calls this benchmark's hook ([`on_uintr`], installed with
//!   `entry::set_hook`), which only increments an atomic counter. The sending thread holds a
//!   UITT index for the peer's vector fd (`uintr_register_sender`). Between threads the fd
//!   is registered directly; between processes the child sends its fd number and pid through
//!   a pipe and the parent takes the fd with `pidfd_getfd`, while the child registers to the
//!   parent's vector fd, which it inherited through `fork` (see `Case::fork_and_drive`).
//!   Runs only when `tocsin::interrupt::uintr::support().require()` is `Ok`; otherwise the
//!   mechanism is reported as skipped with that reason, and no UINTR instruction or system
//!   call is ever executed.
//!
//! On the same core the spinning sides (`flag`, and the busy loops of `signal` and `uintr`) call
//! `sched_yield` between checks, since otherwise each hop would wait for the scheduler to
//! preempt the spinner (a time slice, milliseconds).
//!
//! Hang guards: the calling thread is a watchdog. After `--case-secs` plus 10 s, or at once
//! if the child process died, it sets the shared `abort` word (with the reason), keeps
//! waking both sides (futex wake, eventfd write, signals) and kills the child; a forked
//! child also dies with its parent thread (`PR_SET_PDEATHSIG`). The case is then reported
//! as skipped with that reason.

use std::hint::black_box;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use plotters::prelude::*;
use serde_json::{json, Value};

use crate::bench::util;
use crate::probe;

/// Arguments of `tocsin bench notify`.
#[derive(clap::Args, Debug, Clone)]
pub struct NotifyArgs {
    /// Round trips measured per case for `flag`; the blocking and signal mechanisms get a
    /// quarter of it (at least 50). Each case also stops after --case-secs. 1..=10000000.
    #[arg(long, default_value_t = 50_000, value_name = "N", value_parser = parse_iters)]
    pub iters: usize,
    /// Time limit of one case, seconds (the case then reports fewer iterations); more than
    /// 0 and at most 3600.
    #[arg(long, default_value_t = 1.5, value_name = "SECONDS")]
    pub case_secs: f64,
    /// Only these mechanisms (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "MECH,...")]
    pub only: Vec<Mech>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Draw grouped bars of the medians into FILE (.svg or .png).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Largest `--iters`: the samples of a case are kept in memory (8 bytes each).
pub const MAX_ITERS: usize = 10_000_000;
/// Longest `--case-secs`, seconds.
pub const MAX_CASE_SECS: f64 = 3600.0;

/// Parses `--iters`: `1..=MAX_ITERS`.
fn parse_iters(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_ITERS).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number of round trips in 1..={MAX_ITERS}"
        )),
    }
}

/// A notification mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mech {
    /// Spin on a flag in shared memory.
    Flag,
    /// Shared futex wait/wake.
    Futex,
    /// eventfd, blocking read/write.
    Eventfd,
    /// Real-time signal (tgkill) to a busy receiver; the handler sets a flag.
    Signal,
    /// Real-time signal to a receiver blocked in sigtimedwait.
    SignalWait,
    /// x86 user interrupt (SENDUIPI).
    Uintr,
}

impl Mech {
    const ALL: [Mech; 6] = [
        Mech::Flag,
        Mech::Futex,
        Mech::Eventfd,
        Mech::Signal,
        Mech::SignalWait,
        Mech::Uintr,
    ];

    /// The name used in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Mech::Flag => "flag",
            Mech::Futex => "futex",
            Mech::Eventfd => "eventfd",
            Mech::Signal => "signal",
            Mech::SignalWait => "signal-wait",
            Mech::Uintr => "uintr",
        }
    }

    /// What the receiver does while it waits.
    fn receiver(self) -> &'static str {
        match self {
            Mech::Flag => "spinning",
            Mech::Signal => "busy",
            Mech::Uintr => "busy",
            Mech::Futex | Mech::Eventfd | Mech::SignalWait => "blocked",
        }
    }

    /// Mechanisms whose round trip costs a wake-up get fewer iterations.
    fn slow(self) -> bool {
        !matches!(self, Mech::Flag)
    }

    fn uses_signals(self) -> bool {
        matches!(self, Mech::Signal | Mech::SignalWait)
    }
}

/// Threads of one process, or two processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Between {
    /// Two threads of this process.
    Threads,
    /// This process and a forked child.
    Processes,
}

impl Between {
    fn name(self) -> &'static str {
        match self {
            Between::Threads => "threads",
            Between::Processes => "processes",
        }
    }
}

/// Where the two sides run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Both on one PU.
    SameCore,
    /// Two cores of one NUMA node.
    OtherCore,
    /// Cores of two NUMA nodes.
    OtherNuma,
}

impl Placement {
    fn name(self) -> &'static str {
        match self {
            Placement::SameCore => "same-core",
            Placement::OtherCore => "other-core",
            Placement::OtherNuma => "other-numa",
        }
    }
}

/// One measured case.
#[derive(Debug, Clone)]
pub struct Row {
    /// Mechanism.
    pub mech: Mech,
    /// Threads or processes.
    pub between: Between,
    /// Placement.
    pub placement: Placement,
    /// The PUs of A and B.
    pub pus: (usize, usize),
    /// One-way latencies, µs, sorted.
    pub samples: Vec<f64>,
    /// Signal sends retried after EAGAIN (a full per-user signal queue); such a case's
    /// latencies include the retries.
    pub send_retries: u32,
}

impl Row {
    /// The `p`-th percentile (0–100) of the one-way latencies, µs (nearest rank): the tails
    /// (p10, p90, p99). The median is [`Row::median`].
    pub fn pct(&self, p: f64) -> f64 {
        percentile(&self.samples, p)
    }

    /// The median one-way latency, µs: [`util::median`]'s definition (an even count averages
    /// the two middle samples), as every other benchmark reports.
    pub fn median(&self) -> f64 {
        util::median_sorted(&self.samples)
    }
}

/// Nearest-rank percentile of sorted `v`; NaN if empty.
fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

/// A case or a whole mechanism that did not run, and why.
#[derive(Debug, Clone)]
pub struct Skip {
    /// Mechanism name, or `all` for a placement nobody can run.
    pub mechanism: String,
    /// Threads/processes, if the skip concerns one.
    pub between: Option<&'static str>,
    /// Placement, if the skip concerns one.
    pub placement: Option<&'static str>,
    /// Why.
    pub reason: String,
}

// ---------------------------------------------------------------------------------------
// Entry point

/// Entry point of `tocsin bench notify` (runs in this process; no launcher).
pub fn main(a: NotifyArgs) -> ExitCode {
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tocsin bench notify: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: &NotifyArgs) -> Result<(), String> {
    if let Some(p) = &a.plot {
        plot_format(p)?;
    }
    if a.iters == 0 {
        return Err("--iters must be at least 1".into());
    }
    if !(a.case_secs > 0.0 && a.case_secs <= MAX_CASE_SECS) {
        return Err(format!(
            "--case-secs {} is out of range: more than 0 and at most {MAX_CASE_SECS} seconds",
            a.case_secs
        ));
    }
    let mechs: Vec<Mech> = if a.only.is_empty() {
        Mech::ALL.to_vec()
    } else {
        Mech::ALL
            .iter()
            .copied()
            .filter(|m| a.only.contains(m))
            .collect()
    };
    let (places, mut skipped) = placements();
    let mut rows = Vec::new();
    let signals = if mechs.iter().any(|m| m.uses_signals()) {
        match Signals::install() {
            Ok(s) => Some(s),
            Err(e) => {
                for m in mechs.iter().filter(|m| m.uses_signals()) {
                    skipped.push(Skip {
                        mechanism: m.name().into(),
                        between: None,
                        placement: None,
                        reason: e.clone(),
                    });
                }
                None
            }
        }
    } else {
        None
    };
    let progress = !a.quiet && !a.json && io::IsTerminal::is_terminal(&io::stderr());
    let total = mechs.len() * 2 * places.len();
    let mut k = 0;
    for &m in &mechs {
        // Installed only for the UINTR cases, and only when the machine supports UINTR.
        let mut hook = None;
        if m == Mech::Uintr {
            match uintr_support() {
                Ok(()) => hook = Some(UintrHook::install()),
                Err(reason) => {
                    skipped.push(Skip {
                        mechanism: "uintr".into(),
                        between: None,
                        placement: None,
                        reason,
                    });
                    continue;
                }
            }
        }
        if m.uses_signals() && signals.is_none() {
            continue;
        }
        for between in [Between::Threads, Between::Processes] {
            for &(placement, pa, pb) in &places {
                k += 1;
                if progress {
                    eprint!(
                        "\r\x1b[K[{k}/{total}] {} {} {}",
                        m.name(),
                        between.name(),
                        placement.name()
                    );
                }
                let n = if m.slow() {
                    (a.iters / 4).max(50).min(a.iters.max(50))
                } else {
                    a.iters
                };
                let case = Case {
                    mech: m,
                    between,
                    pus: (pa, pb),
                    yield_: pa == pb,
                    iters: n,
                    warmup: (n / 10).clamp(5, 1000),
                    cap: Duration::from_secs_f64(a.case_secs),
                };
                match case.run() {
                    Ok((samples, send_retries)) => rows.push(Row {
                        mech: m,
                        between,
                        placement,
                        pus: (pa, pb),
                        samples,
                        send_retries,
                    }),
                    Err(e) => skipped.push(Skip {
                        mechanism: m.name().into(),
                        between: Some(between.name()),
                        placement: Some(placement.name()),
                        reason: format!("failed: {e}"),
                    }),
                }
            }
        }
        // Every handler of the cases is unregistered by now (their threads and child
        // processes are gone): the entry's dispatch goes back to the progress engine.
        drop(hook);
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    drop(signals);
    let mut text = if a.json {
        serde_json::to_string_pretty(&to_json(&rows, &skipped)).unwrap_or_default() + "\n"
    } else {
        table(&rows, &skipped)
    };
    if let Some(p) = &a.plot {
        plot(p, &rows)?;
        if !a.json {
            text += &format!("plot: {}\n", p.display());
        }
    }
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = io::Write::write_all(&mut io::stdout().lock(), text.as_bytes());
    Ok(())
}

/// The placements this machine allows, as (placement, PU of A, PU of B), and the skipped
/// ones with their reason.
fn placements() -> (Vec<(Placement, usize, usize)>, Vec<Skip>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let skip = |p: Placement, why: String| Skip {
        mechanism: "all".into(),
        between: None,
        placement: Some(p.name()),
        reason: why,
    };
    // (first PU, NUMA node) of every usable core; hwloc, else the affinity mask.
    let (cores, numa_nodes, note): (Vec<(usize, usize)>, usize, Option<String>) =
        match probe::topology() {
            Ok(t) => (
                t.cores
                    .iter()
                    .filter(|c| c.usable)
                    .filter_map(|c| {
                        c.pus
                            .iter()
                            .copied()
                            .find(|p| t.affinity.contains(p))
                            .map(|p| (p, c.numa))
                    })
                    .collect(),
                t.numa_nodes,
                None,
            ),
            Err(e) => (
                probe::affinity().into_iter().map(|p| (p, 0)).collect(),
                1,
                Some(format!("{e}; PUs from sched_getaffinity used as cores")),
            ),
        };
    let Some(&(a, na)) = cores.first() else {
        skipped.push(skip(Placement::SameCore, "no usable core".into()));
        return (out, skipped);
    };
    out.push((Placement::SameCore, a, a));
    let other = cores
        .iter()
        .skip(1)
        .find(|c| c.1 == na)
        .or_else(|| cores.get(1));
    match other {
        Some(&(b, _)) => out.push((Placement::OtherCore, a, b)),
        None => skipped.push(skip(
            Placement::OtherCore,
            "this process may run on one core only".into(),
        )),
    }
    if numa_nodes <= 1 {
        skipped.push(skip(
            Placement::OtherNuma,
            format!(
                "hwloc shows {numa_nodes} NUMA node{}",
                if numa_nodes == 1 { "" } else { "s" }
            ) + &note.map(|n| format!(" ({n})")).unwrap_or_default(),
        ));
    } else {
        match cores.iter().find(|c| c.1 != na) {
            Some(&(b, _)) => out.push((Placement::OtherNuma, a, b)),
            None => skipped.push(skip(
                Placement::OtherNuma,
                format!("hwloc shows {numa_nodes} NUMA nodes but this process may run on cores of one only"),
            )),
        }
    }
    (out, skipped)
}

/// `Ok` if the UINTR cases can run here, else why not (the reason of the `uintr` skip).
///
/// `support()` reads CPUID and `/proc/cpuinfo` and issues a (then undone) handler
/// registration only when both report UINTR: on a machine without it, nothing UINTR-specific
/// executes, here or later (every UINTR call of this file is reached only through `Ok`).
pub fn uintr_support() -> Result<(), String> {
    tocsin::interrupt::uintr::support()
        .require()
        .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------
// UINTR: the library's handler entry, with this benchmark's hook; one receiver and one
// sender registration per side.
//
// ABI: Intel's `uintr-linux-kernel` tree, as wrapped by `tocsin::interrupt::uintr` (system
// calls 471–475, man pages `tools/uintr/manpages`; shared/reference/uintr.md §1.1–1.2).
// Handlers and vector fds are per *thread* and not inherited by `fork`; a vector fd is; a
// UITT index is valid in the process that registered it. Every registration below is made
// by the thread that uses it (the receiving thread registers its handler, the thread that
// executes `SENDUIPI` registers as sender), which is right for both the per-task UITT of the
// 2021 RFC and the per-mm UITT of the later tree.

/// The user-interrupt vector that notifies side `i` (0 = A, 1 = B). Vectors are per
/// receiving thread (0–63); distinct ones let the hook tell the two sides apart when both
/// are threads of this process.
const UVEC: [u64; 2] = [
    tocsin::interrupt::uintr::VECTOR,
    tocsin::interrupt::uintr::VECTOR + 1,
];

/// The hook the library's handler entry calls with the delivered vector, in interrupt
/// context: async-signal-safe (one atomic increment, no allocation, no lock, cannot unwind).
/// The entry saved every register and the extended state before calling it.
pub extern "C" fn on_uintr(vector: u64) {
    if vector == UVEC[0] {
        HITS[0].fetch_add(1, Ordering::Release);
    } else if vector == UVEC[1] {
        HITS[1].fetch_add(1, Ordering::Release);
    }
}

/// [`on_uintr`] installed as the handler entry's hook; dropping gives the entry back to the
/// progress engine. Created only after `uintr_support()` said yes.
struct UintrHook;

impl UintrHook {
    fn install() -> UintrHook {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `on_uintr` only touches atomics and cannot unwind; no communicator runs in
        // this process.
        unsafe {
            tocsin::interrupt::uintr::entry::set_hook(Some(on_uintr));
        }
        UintrHook
    }
}

impl Drop for UintrHook {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: clearing the hook; the engine's dispatch is the library's default.
        unsafe {
            tocsin::interrupt::uintr::entry::set_hook(None);
        }
    }
}

/// The UINTR calls of a case, by the number sent through the child's pipe.
const UINTR_CALLS: [&str; 4] = [
    "?",
    "uintr_register_handler",
    "uintr_vector_fd",
    "uintr_register_sender",
];
const CALL_HANDLER: i32 = 1;
const CALL_VECTOR_FD: i32 = 2;
const CALL_SENDER: i32 = 3;

/// A failed UINTR call, without allocation (it may happen in the forked child).
#[derive(Debug, Clone, Copy)]
struct UintrFail {
    /// Index into [`UINTR_CALLS`].
    call: i32,
    errno: i32,
}

impl UintrFail {
    fn new(call: i32, e: &io::Error) -> UintrFail {
        UintrFail {
            call,
            errno: e.raw_os_error().unwrap_or(0),
        }
    }

    /// The explanation, naming the side (`A` or `B`).
    fn describe(self, side: &str) -> String {
        let call = UINTR_CALLS.get(self.call as usize).copied().unwrap_or("?");
        format!(
            "side {side}: {}",
            tocsin::interrupt::uintr::explain(call, &io::Error::from_raw_os_error(self.errno))
        )
    }
}

/// This thread as a UINTR receiver: handler registered, vector fd, UIF set. Dropping
/// unregisters the handler (then closes the fd); it is neither `Send` nor `Sync` so that
/// the drop happens on the thread that registered.
struct UintrRx {
    fd: OwnedFd,
    _thread_bound: PhantomData<*const ()>,
}

impl UintrRx {
    /// Registers the calling thread as side `side`'s receiver. Async-signal-safe and
    /// allocation-free (also runs in the forked child). Call only after `uintr_support()`.
    fn new(side: usize) -> Result<UintrRx, UintrFail> {
        use tocsin::interrupt::uintr;
        #[cfg(target_arch = "x86_64")]
        uintr::register_handler().map_err(|e| UintrFail::new(CALL_HANDLER, &e))?;
        #[cfg(not(target_arch = "x86_64"))]
        return Err(UintrFail {
            call: CALL_HANDLER,
            errno: libc::ENOSYS,
        });
        match uintr::vector_fd(UVEC[side]) {
            Ok(fd) => {
                // Registered: STUI cannot raise #UD now. From here on interrupts are taken.
                uintr::stui();
                Ok(UintrRx {
                    fd,
                    _thread_bound: PhantomData,
                })
            }
            Err(e) => {
                uintr::unregister_handler();
                Err(UintrFail::new(CALL_VECTOR_FD, &e))
            }
        }
    }
}

impl Drop for UintrRx {
    fn drop(&mut self) {
        tocsin::interrupt::uintr::unregister_handler();
    }
}

/// A UITT index of this process for a peer's vector fd. Dropping unregisters it
/// (`uintr_unregister_sender(index, 0)`, system call 475 of the later tree, which takes the
/// index; the 2021 RFC took the fd, but the library follows the later tree's numbers), then
/// closes the fd if this process had to take it from the peer.
struct UintrTx {
    index: u64,
    _fd: Option<OwnedFd>,
}

impl UintrTx {
    /// Registers this process as a sender to `uvec`. Async-signal-safe and allocation-free.
    /// Call only after `uintr_support()`, on the thread that will send.
    fn register(uvec: &OwnedFd) -> Result<UintrTx, UintrFail> {
        use tocsin::interrupt::uintr::{KernelRegistrar, Registrar};
        match KernelRegistrar.register_sender(uvec) {
            Ok(index) => Ok(UintrTx { index, _fd: None }),
            Err(e) => Err(UintrFail::new(CALL_SENDER, &e)),
        }
    }

    /// Takes descriptor `fd` of process `pid` (`pidfd_getfd`) and registers to it.
    fn register_remote(pid: i32, fd: i32) -> Result<UintrTx, String> {
        use tocsin::interrupt::uintr::{explain, KernelRegistrar, Registrar};
        let local = KernelRegistrar.get_fd(pid, fd).map_err(|e| {
            format!(
                "side A: taking B's vector fd {fd} of pid {pid}: {}",
                explain("pidfd_getfd", &e)
            )
        })?;
        let mut tx = UintrTx::register(&local).map_err(|f| f.describe("A"))?;
        // Kept open for as long as the registration, as the library's `Senders` does.
        tx._fd = Some(local);
        Ok(tx)
    }
}

impl Drop for UintrTx {
    fn drop(&mut self) {
        // SAFETY: integer arguments; `index` was returned by `uintr_register_sender` in this
        // process and is unregistered once (errors ignored: nothing left to undo).
        unsafe {
            libc::syscall(
                tocsin::interrupt::uintr::SYS_UINTR_UNREGISTER_SENDER,
                self.index,
                0u32,
            )
        };
    }
}

/// What the forked child B reports through the pipe: `[0, pid, vector fd]` once its
/// receiver and its sender registration are in place, or `[call, errno, 0]` (a `CALL_*`).
type ChildReport = [i32; 3];

/// In the forked child: B's receiver, then B's sender registration to A's vector fd (the
/// parent's, inherited through `fork`), reported on `report`. Async-signal-safe and
/// allocation-free. `None` if a step failed (reported).
fn child_uintr(a_fd: &OwnedFd, report: RawFd) -> Option<(UintrRx, UintrTx)> {
    let r = UintrRx::new(1).and_then(|rx| UintrTx::register(a_fd).map(|tx| (rx, tx)));
    let msg: ChildReport = match &r {
        // SAFETY: no arguments.
        Ok((rx, _)) => [0, unsafe { libc::getpid() }, rx.fd.as_raw_fd()],
        Err(f) => [f.call, f.errno, 0],
    };
    // SAFETY: 12 bytes from a local to the pipe's write end (atomic: below PIPE_BUF).
    let n = unsafe {
        libc::write(
            report,
            msg.as_ptr().cast(),
            std::mem::size_of::<ChildReport>(),
        )
    };
    if n != std::mem::size_of::<ChildReport>() as isize {
        return None;
    }
    r.ok()
}

/// In the parent: reads the child's report (EOF if it died first) and registers as a
/// sender to its vector fd.
fn parent_uintr(report: &OwnedFd, child: libc::pid_t) -> Result<UintrTx, String> {
    let mut msg: ChildReport = [0; 3];
    let want = std::mem::size_of::<ChildReport>();
    let mut got = 0usize;
    while got < want {
        // SAFETY: reading into the rest of a local buffer of `want` bytes.
        let n = unsafe {
            libc::read(
                report.as_raw_fd(),
                msg.as_mut_ptr().cast::<u8>().add(got).cast(),
                want - got,
            )
        };
        if n > 0 {
            got += n as usize;
        } else if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        } else if n == 0 {
            return Err("child B ended before reporting its UINTR setup".into());
        } else {
            return Err(format!(
                "reading child B's UINTR report: {}",
                io::Error::last_os_error()
            ));
        }
    }
    match msg {
        [0, pid, fd] if pid == child => UintrTx::register_remote(pid, fd),
        [0, pid, _] => Err(format!("child B reported pid {pid}, not {child}")),
        [call, errno, _] => Err(UintrFail { call, errno }.describe("B")),
    }
}

/// A pipe (`O_CLOEXEC`): (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: a valid array of two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

// ---------------------------------------------------------------------------------------
// Signals: two real-time signals, one per direction, whose handler counts deliveries.

/// Signal number that notifies side `i` (0 = A, 1 = B).
static SIGNO: [AtomicI32; 2] = [AtomicI32::new(0), AtomicI32::new(0)];
/// Deliveries of `SIGNO[i]` since the case started.
static HITS: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];

/// The handler: async-signal-safe, it only touches atomics (and not `errno`).
extern "C" fn on_signal(sig: libc::c_int) {
    if SIGNO[0].load(Ordering::Relaxed) == sig {
        HITS[0].fetch_add(1, Ordering::Release);
    } else if SIGNO[1].load(Ordering::Relaxed) == sig {
        HITS[1].fetch_add(1, Ordering::Release);
    }
}

/// The two installed signals; dropping leaves them ignored (a late signal must not kill
/// the process with the default action).
struct Signals;

impl Signals {
    fn install() -> Result<Signals, String> {
        for slot in &SIGNO {
            let s = tocsin::interrupt::signal::pick_free_signal()
                .map_err(|e| format!("no free real-time signal: {e}"))?;
            // SAFETY: zeroed sigaction, then filled; the handler only touches atomics.
            let r = unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                act.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut act.sa_mask);
                libc::sigaction(s, &act, std::ptr::null_mut())
            };
            if r != 0 {
                return Err(format!("sigaction({s}): {}", io::Error::last_os_error()));
            }
            slot.store(s, Ordering::SeqCst);
        }
        Ok(Signals)
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for slot in &SIGNO {
            let s = slot.load(Ordering::SeqCst);
            if s != 0 {
                // SAFETY: SIG_IGN for a real-time signal we installed.
                unsafe {
                    let mut act: libc::sigaction = std::mem::zeroed();
                    act.sa_sigaction = libc::SIG_IGN;
                    libc::sigaction(s, &act, std::ptr::null_mut());
                }
            }
        }
    }
}

/// Blocks (`how = SIG_BLOCK`) or unblocks `sig` in the calling thread.
fn mask(how: libc::c_int, sig: i32) {
    // SAFETY: a local sigset; pthread_sigmask on the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// `tgkill`: 0, or the errno. Async-signal-safe.
fn tgkill(pid: i32, tid: i32, sig: i32) -> i32 {
    // SAFETY: integer arguments only; errno is read right after the call, on this thread.
    unsafe {
        if libc::syscall(libc::SYS_tgkill, pid, tid, sig) == 0 {
            0
        } else {
            *libc::__errno_location()
        }
    }
}

/// Why an RT signal send fails with EAGAIN: the queue limit is per *user*, so other
/// processes of the same user that let signals pile up make every sender fail.
const EAGAIN_WHY: &str = "tgkill failed with EAGAIN: the per-user limit of queued \
    real-time signals (RLIMIT_SIGPENDING; SigQ in /proc/self/status) is reached, usually \
    because other processes of this user let signals pile up";

// ---------------------------------------------------------------------------------------
// Shared page

/// A word alone on its cache lines (no false sharing between the two directions).
#[repr(C, align(128))]
struct Line<T>(T);

/// The page both sides share (`MAP_SHARED`, so a forked child shares it too).
#[repr(C)]
struct Shared {
    /// Sequence number last sent to side `i` (flag and futex word).
    to: [Line<AtomicU32>; 2],
    /// Non-zero (one of the `ABORT_*` reasons) once the case is aborted: every wait then
    /// returns `false`.
    abort: Line<AtomicU32>,
    /// Set by A before its last notification: B leaves.
    stop: AtomicU32,
    /// B is bound, masked and published its ids.
    ready: AtomicU32,
    /// Signal sends that failed with EAGAIN and were retried (both sides).
    eagain: AtomicU32,
    /// Process and thread ids of each side (signals, watchdog).
    pid: [AtomicI32; 2],
    tid: [AtomicI32; 2],
}

/// `Shared::abort`: the case exceeded its time limit.
const ABORT_TIME: u32 = 1;
/// `Shared::abort`: the child process died.
const ABORT_CHILD: u32 = 2;
/// `Shared::abort`: side B could not bind itself to its PU.
const ABORT_BIND: u32 = 3;
/// `Shared::abort`: side A's UINTR setup failed after B's (side A reports why).
const ABORT_SETUP: u32 = 4;

/// An anonymous `MAP_SHARED` mapping holding a [`Shared`].
struct Shm {
    ptr: *mut Shared,
    len: usize,
}

// SAFETY: the mapping is only accessed through `&Shared`, whose fields are atomics.
unsafe impl Sync for Shm {}
// SAFETY: as above; the pointer owns the mapping.
unsafe impl Send for Shm {}

impl Shm {
    fn new() -> io::Result<Shm> {
        let len = std::mem::size_of::<Shared>().next_multiple_of(4096);
        // SAFETY: a fresh anonymous shared mapping; the kernel zeroes it, and all-zero is a
        // valid `Shared` (atomics of 0).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Shm { ptr: p.cast(), len })
    }

    fn get(&self) -> &Shared {
        // SAFETY: `ptr` is a live, page-aligned mapping of at least size_of::<Shared>()
        // zero-initialised bytes, valid until drop.
        unsafe { &*self.ptr }
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: our mapping; no reference to it outlives `self`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

fn futex(word: &AtomicU32, op: libc::c_int, val: u32) -> libc::c_long {
    // SAFETY: `word` is a valid aligned u32 (shared futex: no FUTEX_PRIVATE_FLAG, as the
    // word may be in a page shared with another process); no timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op,
            val,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0,
        )
    }
}

/// A PU set holding `pu`, for `sched_setaffinity`.
fn cpu_set(pu: usize) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if pu < libc::CPU_SETSIZE as usize {
        // SAFETY: `pu` is below CPU_SETSIZE, so the bit lies inside `set`.
        unsafe { libc::CPU_SET(pu, &mut set) };
    }
    set
}

/// Binds the calling thread. Async-signal-safe (one system call).
fn bind(set: &libc::cpu_set_t) -> bool {
    // SAFETY: a valid cpu set of the stated size; 0 = the calling thread.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) == 0 }
}

// ---------------------------------------------------------------------------------------
// One side's operations. Everything here is async-signal-safe and allocation-free: it
// also runs in a forked child of a multi-threaded process.

struct End<'a> {
    mech: Mech,
    sh: &'a Shared,
    /// 0 = A, 1 = B.
    me: usize,
    /// Same core: spinning loops yield the PU to the peer.
    yield_: bool,
    /// `efd[i]`: the eventfd that notifies side `i`.
    efd: [RawFd; 2],
    /// `uintr`: this process's UITT index for the peer's vector fd, registered by this
    /// side's thread before it serves or drives (`None` for the other mechanisms).
    uitt: Option<u64>,
}

impl End<'_> {
    fn peer(&self) -> usize {
        1 - self.me
    }

    fn aborted(&self) -> bool {
        self.sh.abort.0.load(Ordering::Relaxed) != 0
    }

    /// Why the case was aborted.
    fn abort_reason(&self) -> String {
        let why = match self.sh.abort.0.load(Ordering::SeqCst) {
            ABORT_CHILD => "the child process B died",
            ABORT_BIND => "side B could not bind itself to its PU",
            ABORT_SETUP => "side A's UINTR setup failed",
            _ => "the case exceeded its time limit (watchdog)",
        };
        match self.sh.eagain.load(Ordering::SeqCst) {
            0 => why.to_owned(),
            n => format!("{why}; {EAGAIN_WHY} ({n} retries)"),
        }
    }

    /// Publishes this side's ids and prepares its signal mask.
    fn start(&self) {
        // SAFETY: no arguments.
        let (pid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
        self.sh.pid[self.me].store(pid, Ordering::SeqCst);
        self.sh.tid[self.me].store(tid, Ordering::SeqCst);
        let sig = SIGNO[self.me].load(Ordering::SeqCst);
        match self.mech {
            Mech::SignalWait => mask(libc::SIG_BLOCK, sig),
            Mech::Signal => mask(libc::SIG_UNBLOCK, sig),
            _ => {}
        }
    }

    /// Tells the peer that `seq` is there.
    fn notify(&self, seq: u32) {
        let p = self.peer();
        match self.mech {
            Mech::Flag => self.sh.to[p].0.store(seq, Ordering::Release),
            Mech::Futex => {
                self.sh.to[p].0.store(seq, Ordering::Release);
                futex(&self.sh.to[p].0, libc::FUTEX_WAKE, 1);
            }
            Mech::Eventfd => {
                let one = 1u64;
                // SAFETY: an 8-byte value to an eventfd open for the whole case.
                unsafe { libc::write(self.efd[p], (&one as *const u64).cast(), 8) };
            }
            Mech::Signal | Mech::SignalWait => {
                let (pid, tid) = (
                    self.sh.pid[p].load(Ordering::Relaxed),
                    self.sh.tid[p].load(Ordering::Relaxed),
                );
                let sig = SIGNO[p].load(Ordering::Relaxed);
                // EAGAIN: nothing was queued; retry (counted) until it goes or the case is
                // aborted. Any other error (ESRCH: the peer is gone) is left to the watchdog.
                while tgkill(pid, tid, sig) == libc::EAGAIN && !self.aborted() {
                    self.sh.eagain.fetch_add(1, Ordering::Relaxed);
                    // SAFETY: no arguments.
                    unsafe { libc::sched_yield() };
                }
            }
            Mech::Uintr => {
                debug_assert!(self.uitt.is_some(), "uintr side without a UITT index");
                if let Some(index) = self.uitt {
                    // SAFETY: `index` was returned by `uintr_register_sender` on this thread
                    // of this process (`UintrTx`), which stays registered while we run.
                    unsafe { tocsin::interrupt::uintr::senduipi(index) };
                }
            }
        }
    }

    /// Waits until the peer notified `seq`; `false` if the watchdog aborted the case.
    fn wait(&self, seq: u32) -> bool {
        let me = self.me;
        match self.mech {
            Mech::Flag => {
                let w = &self.sh.to[me].0;
                let mut n = 0u32;
                while w.load(Ordering::Acquire) != seq {
                    if self.yield_ {
                        // SAFETY: no arguments.
                        unsafe { libc::sched_yield() };
                    } else {
                        std::hint::spin_loop();
                    }
                    n = n.wrapping_add(1);
                    if n % 1024 == 0 && self.aborted() {
                        return false;
                    }
                }
                true
            }
            Mech::Futex => {
                let w = &self.sh.to[me].0;
                loop {
                    let v = w.load(Ordering::Acquire);
                    if v == seq {
                        return true;
                    }
                    if self.aborted() {
                        return false;
                    }
                    futex(w, libc::FUTEX_WAIT, v);
                }
            }
            Mech::Eventfd => loop {
                let mut v = 0u64;
                // SAFETY: reading 8 bytes into a local from an eventfd open for the case.
                let r = unsafe { libc::read(self.efd[me], (&mut v as *mut u64).cast(), 8) };
                if r == 8 {
                    return !self.aborted();
                }
                // SAFETY: this thread's errno.
                if r < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
                    continue;
                }
                return false;
            },
            Mech::Signal | Mech::Uintr => {
                // The receiver computes; the handler's counter (`on_signal` or the UINTR
                // hook `on_uintr`) is checked between chunks.
                let hits = &HITS[me];
                let mut x = seq as u64;
                let mut n = 0u32;
                while hits.load(Ordering::Acquire) < seq {
                    for _ in 0..16 {
                        x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
                    }
                    if self.yield_ {
                        // SAFETY: no arguments.
                        unsafe { libc::sched_yield() };
                    }
                    n = n.wrapping_add(1);
                    if n % 1024 == 0 && self.aborted() {
                        return false;
                    }
                }
                black_box(x);
                true
            }
            Mech::SignalWait => {
                let sig = SIGNO[me].load(Ordering::Relaxed);
                // A timeout (never reached in a healthy case) so that the watchdog's abort is
                // seen even when its kick cannot be queued (EAGAIN, full signal queue).
                let timeout = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 100_000_000,
                };
                // SAFETY: a local sigset holding the blocked signal and a valid timeout;
                // sigtimedwait takes the signal.
                unsafe {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, sig);
                    loop {
                        let r = libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout);
                        if r == sig {
                            return !self.aborted();
                        }
                        if self.aborted() {
                            return false;
                        }
                    }
                }
            }
        }
    }

    /// Side B: answers every notification until told to stop or aborted.
    fn serve(&self) {
        self.start();
        self.sh.ready.store(1, Ordering::SeqCst);
        let mut seq = 1u32;
        while self.wait(seq) && self.sh.stop.load(Ordering::Acquire) == 0 {
            self.notify(seq);
            seq = seq.wrapping_add(1);
        }
    }

    /// Side A: the timed ping-pong. Returns the one-way latencies (µs), unsorted.
    fn drive(&self, iters: usize, warmup: usize, cap: Duration) -> Result<Vec<f64>, String> {
        self.start();
        while self.sh.ready.load(Ordering::SeqCst) == 0 {
            if self.aborted() {
                return Err(format!(
                    "the peer never became ready: {}",
                    self.abort_reason()
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut out = Vec::with_capacity(iters);
        let start = Instant::now();
        let mut seq = 0u32;
        let mut i = 0usize;
        let r = loop {
            if i >= warmup + iters {
                break Ok(());
            }
            seq = seq.wrapping_add(1);
            let t0 = Instant::now();
            self.notify(seq);
            if !self.wait(seq) {
                let why = self.abort_reason();
                break Err(format!("aborted after {i} round trips: {why}"));
            }
            let dt = t0.elapsed();
            if i >= warmup {
                out.push(dt.as_secs_f64() * 1e6 / 2.0);
            }
            i += 1;
            if out.len() >= 20 && start.elapsed() > cap {
                break Ok(());
            }
        };
        // Release B: it wakes, sees `stop` and leaves without answering.
        self.sh.stop.store(1, Ordering::Release);
        self.notify(seq.wrapping_add(1));
        r.map(|()| out)
    }
}

// ---------------------------------------------------------------------------------------
// One case

struct Case {
    mech: Mech,
    between: Between,
    pus: (usize, usize),
    yield_: bool,
    iters: usize,
    warmup: usize,
    cap: Duration,
}

/// The two eventfds of a case, closed on drop.
struct EventFds([RawFd; 2]);

impl EventFds {
    fn new(want: bool) -> io::Result<EventFds> {
        let mut fds = [-1; 2];
        if want {
            for fd in &mut fds {
                // SAFETY: plain flags.
                *fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
                if *fd < 0 {
                    let e = io::Error::last_os_error();
                    drop(EventFds(fds));
                    return Err(e);
                }
            }
        }
        Ok(EventFds(fds))
    }
}

impl Drop for EventFds {
    fn drop(&mut self) {
        for &fd in &self.0 {
            if fd >= 0 {
                // SAFETY: descriptors we created.
                unsafe { libc::close(fd) };
            }
        }
    }
}

impl Case {
    /// Runs the case: sorted one-way latencies in µs and the EAGAIN retries of signal
    /// sends, or why it failed.
    fn run(&self) -> Result<(Vec<f64>, u32), String> {
        let shm = Shm::new().map_err(|e| format!("mmap: {e}"))?;
        let efd = EventFds::new(self.mech == Mech::Eventfd).map_err(|e| format!("eventfd: {e}"))?;
        for h in &HITS {
            h.store(0, Ordering::SeqCst);
        }
        let sh = shm.get();
        let end = |me| End {
            mech: self.mech,
            sh,
            me,
            yield_: self.yield_,
            efd: efd.0,
            uitt: None,
        };
        let (set_a, set_b) = (cpu_set(self.pus.0), cpu_set(self.pus.1));
        // The child's pid while it may be killed (not yet reaped), else 0.
        let child = Mutex::new(0);
        let done = AtomicBool::new(false);
        let r = std::thread::scope(|s| {
            let a = s.spawn(|| {
                let r = if !bind(&set_a) {
                    Err(format!(
                        "sched_setaffinity(PU {}): {}",
                        self.pus.0,
                        io::Error::last_os_error()
                    ))
                } else {
                    // uintr: A's receiver, registered on this thread (the one that waits)
                    // before B exists, so that a forked B inherits its vector fd.
                    let rx_a = if self.mech == Mech::Uintr {
                        UintrRx::new(0).map(Some).map_err(|f| f.describe("A"))
                    } else {
                        Ok(None)
                    };
                    match rx_a {
                        Err(e) => Err(e),
                        Ok(rx_a) => {
                            let a_fd = rx_a.as_ref().map(|rx| &rx.fd);
                            let r = match self.between {
                                Between::Threads => self.pair_threads(&end, a_fd, &set_b, sh),
                                Between::Processes => {
                                    self.fork_and_drive(&end(0), &end(1), a_fd, &set_b, &child)
                                }
                            };
                            // B is joined or reaped: A's handler can go.
                            drop(rx_a);
                            r
                        }
                    }
                };
                done.store(true, Ordering::SeqCst);
                r
            });
            self.watch(sh, &efd, &done, &child);
            a.join().unwrap_or_else(|_| Err("side A panicked".into()))
        });
        let mut v = r?;
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return Err("no sample".into());
        }
        Ok((v, sh.eagain.load(Ordering::SeqCst)))
    }

    /// Starts B on a thread of its own, drives A on the calling thread, joins B.
    ///
    /// `uintr` (`a_fd` is A's vector fd): B registers its receiver and a sender index for
    /// `a_fd`, then hands A a duplicate of its own vector fd, for which A registers.
    fn pair_threads<'e, F>(
        &self,
        end: &F,
        a_fd: Option<&OwnedFd>,
        set_b: &libc::cpu_set_t,
        sh: &Shared,
    ) -> Result<Vec<f64>, String>
    where
        F: Fn(usize) -> End<'e> + Sync,
    {
        std::thread::scope(|s| {
            let (report, reported) = std::sync::mpsc::sync_channel::<Result<OwnedFd, String>>(1);
            let b = s.spawn(move || -> Result<(), String> {
                if !bind(set_b) {
                    sh.abort.0.store(ABORT_BIND, Ordering::SeqCst);
                    return Err(format!("binding B to PU {} failed", self.pus.1));
                }
                let Some(a_fd) = a_fd else {
                    end(1).serve();
                    return Ok(());
                };
                let setup = UintrRx::new(1)
                    .and_then(|rx| UintrTx::register(a_fd).map(|tx| (rx, tx)))
                    .map_err(|f| f.describe("B"))
                    .and_then(|(rx, tx)| match rx.fd.try_clone() {
                        Ok(dup) => Ok((rx, tx, dup)),
                        Err(e) => Err(format!("side B: duplicating its vector fd: {e}")),
                    });
                match setup {
                    Err(e) => {
                        let _ = report.send(Err(e.clone()));
                        Err(e)
                    }
                    Ok((rx, tx, dup)) => {
                        let _ = report.send(Ok(dup));
                        End {
                            uitt: Some(tx.index),
                            ..end(1)
                        }
                        .serve();
                        // Done sending, then done receiving.
                        drop(tx);
                        drop(rx);
                        Ok(())
                    }
                }
            });
            let r = match a_fd {
                None => end(0).drive(self.iters, self.warmup, self.cap),
                Some(_) => match reported.recv() {
                    Ok(Ok(b_fd)) => match UintrTx::register(&b_fd) {
                        Ok(mut tx) => {
                            tx._fd = Some(b_fd);
                            let r = End {
                                uitt: Some(tx.index),
                                ..end(0)
                            }
                            .drive(self.iters, self.warmup, self.cap);
                            drop(tx);
                            r
                        }
                        Err(f) => {
                            // B is serving: make it leave.
                            let _ = sh.abort.0.compare_exchange(
                                0,
                                ABORT_SETUP,
                                Ordering::SeqCst,
                                Ordering::SeqCst,
                            );
                            Err(f.describe("A"))
                        }
                    },
                    // B failed and returns the same error (or why it left) from `join`.
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err("side B ended before its UINTR setup".into()),
                },
            };
            match b.join() {
                Ok(Ok(())) => r,
                Ok(Err(e)) => Err(e),
                Err(_) => Err("side B panicked".into()),
            }
        })
    }

    /// Forks B, drives A, reaps B.
    ///
    /// `uintr` (`a_fd` is A's vector fd, inherited by the child): the child registers its
    /// receiver and a sender index for its copy of `a_fd` (through `fork`, not
    /// `pidfd_getfd`: taking the parent's descriptor needs ptrace rights over the parent,
    /// which Yama's `ptrace_scope = 1` denies to a child), and reports its pid and vector fd
    /// number through a pipe; the parent takes that fd with `pidfd_getfd` (allowed: the
    /// child is its descendant) and registers as sender.
    fn fork_and_drive(
        &self,
        a: &End<'_>,
        b: &End<'_>,
        a_fd: Option<&OwnedFd>,
        set_b: &libc::cpu_set_t,
        child: &Mutex<libc::pid_t>,
    ) -> Result<Vec<f64>, String> {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        let report = match a_fd {
            Some(_) => Some(pipe().map_err(|e| format!("pipe: {e}"))?),
            None => None,
        };
        // SAFETY: fork from a multi-threaded process: the child runs only async-signal-safe,
        // allocation-free code (`End::serve`, `child_uintr`, raw system calls) and leaves
        // with `_exit`.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: in the child: async-signal-safe calls only, never returns.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                if libc::getppid() != parent {
                    libc::_exit(2);
                }
                if !bind(set_b) {
                    b.sh.abort.0.store(ABORT_BIND, Ordering::SeqCst);
                    libc::_exit(3);
                }
                match (a_fd, &report) {
                    (Some(a_fd), Some((_, w))) => match child_uintr(a_fd, w.as_raw_fd()) {
                        Some((rx, tx)) => {
                            End {
                                uitt: Some(tx.index),
                                ..*b
                            }
                            .serve();
                            // Done sending, then done receiving.
                            drop(tx);
                            drop(rx);
                        }
                        // Reported to the parent (or the pipe failed: it sees EOF).
                        None => libc::_exit(4),
                    },
                    _ => b.serve(),
                }
                libc::_exit(0);
            }
        }
        *child.lock().unwrap_or_else(|e| e.into_inner()) = pid;
        let r = match report {
            None => a.drive(self.iters, self.warmup, self.cap),
            Some((rd, wr)) => {
                // Only the child writes: its exit then reads as EOF.
                drop(wr);
                match parent_uintr(&rd, pid) {
                    Ok(tx) => {
                        let r = End {
                            uitt: Some(tx.index),
                            ..*a
                        }
                        .drive(self.iters, self.warmup, self.cap);
                        drop(tx);
                        r
                    }
                    Err(e) => {
                        // If B is serving, make it leave; an earlier reason (e.g. B could
                        // not bind, or the watchdog killed it) stays and is reported.
                        match a.sh.abort.0.compare_exchange(
                            0,
                            ABORT_SETUP,
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        ) {
                            Ok(_) => Err(e),
                            Err(_) => Err(format!("{e}: {}", a.abort_reason())),
                        }
                    }
                }
            }
        };
        // Reap B (it leaves on `stop`; killed if it does not). Its exit is first observed
        // without reaping (WNOWAIT) so that the watchdog stops using the pid before the
        // kernel may reuse it.
        let t = Instant::now();
        loop {
            // SAFETY: a zeroed siginfo is a valid out-parameter; `pid` is our child.
            let exited = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                let w = libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
                );
                w < 0 || info.si_pid() == pid
            };
            if exited {
                break;
            }
            if t.elapsed() > Duration::from_secs(5) {
                // SAFETY: our child, not yet reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        *child.lock().unwrap_or_else(|e| e.into_inner()) = 0;
        let mut status = 0;
        // SAFETY: our exited child; `status` is a valid out-parameter.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if r.is_ok() && !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            return Err(format!(
                "child B ended abnormally (wait status {status:#x})"
            ));
        }
        r
    }

    /// The watchdog (runs on the calling thread until side A is done): after the time limit
    /// plus 10 s, or as soon as the child process died, aborts and keeps waking both sides.
    fn watch(&self, sh: &Shared, efd: &EventFds, done: &AtomicBool, child: &Mutex<libc::pid_t>) {
        let start = Instant::now();
        let deadline = start + self.cap + Duration::from_secs(10);
        while !done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
            let why = if child_gone(child) {
                ABORT_CHILD
            } else if Instant::now() >= deadline
                || (sh.eagain.load(Ordering::Relaxed) > 0 && start.elapsed() > self.cap * 2)
            {
                // (A full signal queue would stall the case until the deadline: give up
                // sooner.)
                ABORT_TIME
            } else {
                continue;
            };
            // The first reason stays.
            let _ = sh
                .abort
                .0
                .compare_exchange(0, why, Ordering::SeqCst, Ordering::SeqCst);
            {
                // Holding the lock: side A cannot reap the child (and free its pid) meanwhile.
                let c = child.lock().unwrap_or_else(|e| e.into_inner());
                if *c > 0 {
                    // SAFETY: our child, not yet reaped.
                    unsafe { libc::kill(*c, libc::SIGKILL) };
                }
            }
            for (i, signo) in SIGNO.iter().enumerate() {
                futex(&sh.to[i].0, libc::FUTEX_WAKE, i32::MAX as u32);
                if efd.0[i] >= 0 {
                    let one = 1u64;
                    // SAFETY: 8 bytes to an eventfd of this case.
                    unsafe { libc::write(efd.0[i], (&one as *const u64).cast(), 8) };
                }
                let (pid, tid) = (
                    sh.pid[i].load(Ordering::SeqCst),
                    sh.tid[i].load(Ordering::SeqCst),
                );
                let sig = signo.load(Ordering::SeqCst);
                // Only our own threads: a child process is killed instead.
                // SAFETY: getpid has no preconditions.
                let ours = pid == unsafe { libc::getpid() };
                if self.mech.uses_signals() && ours && tid > 0 && sig > 0 {
                    tgkill(pid, tid, sig);
                }
            }
        }
    }
}

/// `true` if the child (if any) has exited, without reaping it.
fn child_gone(child: &Mutex<libc::pid_t>) -> bool {
    let c = child.lock().unwrap_or_else(|e| e.into_inner());
    if *c <= 0 {
        return false;
    }
    // SAFETY: a zeroed siginfo is a valid out-parameter; `*c` is our unreaped child (the
    // lock keeps side A from reaping it meanwhile).
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let w = libc::waitid(
            libc::P_PID,
            *c as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        w == 0 && info.si_pid() == *c
    }
}

// ---------------------------------------------------------------------------------------
// Output

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn to_json(rows: &[Row], skipped: &[Skip]) -> Value {
    json!({
        "bench": "notify",
        "impl": format!("tocsin {}", env!("CARGO_PKG_VERSION")),
        "cpu": probe::cpu_name(),
        "unit": "us",
        "method": "ping-pong, one-way = RTT/2, Instant (CLOCK_MONOTONIC), warm-up dropped",
        "results": rows.iter().map(|r| json!({
            "mechanism": r.mech.name(),
            "between": r.between.name(),
            "placement": r.placement.name(),
            "receiver": r.mech.receiver(),
            "pus": [r.pus.0, r.pus.1],
            "median_us": r3(r.median()),
            "p10_us": r3(r.pct(10.0)),
            "p90_us": r3(r.pct(90.0)),
            "p99_us": r3(r.pct(99.0)),
            "iters": r.samples.len(),
            "send_retries": r.send_retries,
        })).collect::<Vec<_>>(),
        "skipped": skipped.iter().map(|s| {
            let mut o = json!({ "mechanism": s.mechanism, "reason": s.reason });
            if let Some(b) = s.between { o["between"] = json!(b); }
            if let Some(p) = s.placement { o["placement"] = json!(p); }
            o
        }).collect::<Vec<_>>(),
    })
}

fn table(rows: &[Row], skipped: &[Skip]) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# tocsin bench notify — one-way notification latency (RTT/2), µs"
    );
    let _ = writeln!(t, "# {}", probe::cpu_name());
    let _ = writeln!(
        t,
        "{:<12} {:<10} {:<11} {:<9} {:>5} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "mechanism",
        "between",
        "placement",
        "receiver",
        "PUs",
        "median",
        "p10",
        "p90",
        "p99",
        "iters"
    );
    for r in rows {
        let _ = writeln!(
            t,
            "{:<12} {:<10} {:<11} {:<9} {:>5} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>8}",
            r.mech.name(),
            r.between.name(),
            r.placement.name(),
            r.mech.receiver(),
            format!("{},{}", r.pus.0, r.pus.1),
            r.median(),
            r.pct(10.0),
            r.pct(90.0),
            r.pct(99.0),
            r.samples.len()
        );
    }
    for s in skipped {
        let what = [Some(s.mechanism.as_str()), s.between, s.placement]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let _ = writeln!(t, "skipped: {what}: {}", s.reason);
    }
    for r in rows.iter().filter(|r| r.send_retries > 0) {
        let _ = writeln!(
            t,
            "warning: {} {} {}: {} signal sends retried; {EAGAIN_WHY}: its latencies include the retries",
            r.mech.name(),
            r.between.name(),
            r.placement.name(),
            r.send_retries
        );
    }
    let _ = writeln!(
        t,
        "# signal: receiver busy computing, its handler bumps an atomic the compute loop \
         checks; signal-wait: receiver blocked in sigtimedwait; uintr: SENDUIPI to a busy \
         receiver, its handler bumps an atomic likewise; same-core: both on one PU, \
         spinning sides call sched_yield"
    );
    t
}

enum Fmt {
    Svg,
    Png,
}

fn plot_format(p: &Path) -> Result<Fmt, String> {
    let f = match p
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => Fmt::Svg,
        Some("png") => Fmt::Png,
        _ => {
            return Err(format!(
                "--plot {}: the file name must end in .svg or .png",
                p.display()
            ))
        }
    };
    if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !d.is_dir() {
            return Err(format!(
                "--plot {}: no directory {}",
                p.display(),
                d.display()
            ));
        }
    }
    Ok(f)
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// Grouped bars of the medians: one group per mechanism, one bar per (between, placement),
/// log scale.
fn plot(path: &Path, rows: &[Row]) -> Result<(), String> {
    let r = match plot_format(path)? {
        Fmt::Svg => {
            let root = SVGBackend::new(path, (1100, 560)).into_drawing_area();
            draw(&root, rows).and_then(|()| root.present().map_err(|e| e.to_string()))
        }
        Fmt::Png => {
            let root = BitMapBackend::new(path, (1100, 560)).into_drawing_area();
            draw(&root, rows).and_then(|()| root.present().map_err(|e| e.to_string()))
        }
    };
    r.map_err(|e| format!("plot {}: {e}", path.display()))
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    rows: &[Row],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut mechs: Vec<Mech> = Vec::new();
    let mut series: Vec<(Between, Placement)> = Vec::new();
    for r in rows {
        if !mechs.contains(&r.mech) {
            mechs.push(r.mech);
        }
        if !series.contains(&(r.between, r.placement)) {
            series.push((r.between, r.placement));
        }
    }
    let meds: Vec<f64> = rows
        .iter()
        .map(|r| r.median())
        .filter(|v| *v > 0.0)
        .collect();
    let lo = meds.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = meds.iter().copied().fold(0.0f64, f64::max);
    let (lo, hi) = if meds.is_empty() {
        (0.01, 100.0)
    } else {
        (lo / 3.0, hi * 3.0)
    };
    let n = mechs.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Notification latency, one-way (median of RTT/2), µs — log scale",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, (lo..hi).log_scale())
        .map_err(|x| e(&x))?;
    let names: Vec<&str> = mechs.iter().map(|m| m.name()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n + 1)
        .x_label_formatter(&|v| {
            let i = v.round();
            if (v - i).abs() < 0.01 && i >= 0.0 && (i as usize) < names.len() {
                names[i as usize].to_owned()
            } else {
                String::new()
            }
        })
        .y_desc("µs")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|x| e(&x))?;
    let k = series.len().max(1) as f64;
    let width = 0.8 / k;
    for (si, &(b, p)) in series.iter().enumerate() {
        let c = COLOURS[si % COLOURS.len()];
        let bars: Vec<Rectangle<(f64, f64)>> = rows
            .iter()
            .filter(|r| r.between == b && r.placement == p && r.median() > 0.0)
            .map(|r| {
                let g = mechs.iter().position(|m| *m == r.mech).unwrap_or(0) as f64;
                let x0 = g - 0.4 + si as f64 * width;
                Rectangle::new([(x0, lo), (x0 + width * 0.9, r.median())], c.filled())
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(|x| e(&x))?
            .label(format!("{} {}", b.name(), p.name()))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 10.0), 10.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert!(percentile(&[], 50.0).is_nan());
        assert_eq!(percentile(&[3.0], 90.0), 3.0);
    }

    #[test]
    fn median_of_an_even_count_averages_the_middles() {
        let row = Row {
            mech: Mech::Flag,
            between: Between::Threads,
            placement: Placement::SameCore,
            pus: (0, 0),
            samples: vec![1.0, 2.0, 4.0, 9.0],
            send_retries: 0,
        };
        assert_eq!(row.median(), 3.0);
        assert_eq!(row.median(), util::median(&mut row.samples.clone()));
        let odd = Row {
            samples: vec![1.0, 2.0, 4.0],
            ..row
        };
        assert_eq!(odd.median(), 2.0);
    }

    /// The parent's side of the child's UINTR report, on the paths that issue no UINTR
    /// system call: a failure reported by the child, a pid that does not match, EOF.
    #[test]
    fn child_uintr_reports_are_parsed() {
        let send = |msg: Option<ChildReport>| {
            let (rd, wr) = pipe().expect("pipe");
            if let Some(m) = msg {
                // SAFETY: 12 bytes from a local to a pipe we own.
                let n = unsafe {
                    libc::write(
                        wr.as_raw_fd(),
                        m.as_ptr().cast(),
                        std::mem::size_of::<ChildReport>(),
                    )
                };
                assert_eq!(n, 12);
            }
            drop(wr);
            parent_uintr(&rd, 4242).map(|_| ()).unwrap_err()
        };
        let e = send(Some([CALL_HANDLER, libc::ENOSYS, 0]));
        assert!(
            e.contains("side B") && e.contains("uintr_register_handler") && e.contains("ENOSYS"),
            "{e}"
        );
        let e = send(Some([CALL_SENDER, libc::ENOSPC, 0]));
        assert!(
            e.contains("uintr_register_sender") && e.contains("ENOSPC"),
            "{e}"
        );
        let e = send(Some([0, 4243, 5]));
        assert!(e.contains("4243") && e.contains("4242"), "{e}");
        let e = send(None);
        assert!(e.contains("ended before reporting"), "{e}");
    }

    #[test]
    fn uintr_hook_counts_per_side() {
        // Called directly (no interrupt): the vector selects the side's counter.
        let before = [
            HITS[0].load(Ordering::SeqCst),
            HITS[1].load(Ordering::SeqCst),
        ];
        on_uintr(UVEC[1]);
        on_uintr(UVEC[0]);
        on_uintr(UVEC[1]);
        on_uintr(63);
        assert_eq!(HITS[0].load(Ordering::SeqCst) - before[0], 1);
        assert_eq!(HITS[1].load(Ordering::SeqCst) - before[1], 2);
    }

    #[test]
    fn plot_names_are_checked() {
        assert!(plot_format(Path::new("x.svg")).is_ok());
        assert!(plot_format(Path::new("x.PNG")).is_ok());
        assert!(plot_format(Path::new("x.jpg")).is_err());
        assert!(plot_format(Path::new("/nonexistent-dir/x.svg")).is_err());
    }
}
