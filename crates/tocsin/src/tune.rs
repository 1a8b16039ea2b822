//! Thresholds by measurement: a short calibration of this machine, the cost model that turns
//! its measurements into protocol settings, and the per-user cache that keeps them.
//!
//! Owns the choice of four values that used to be constants tuned on one machine: the
//! eager/rendezvous threshold (`TOCSIN_EAGER_THRESHOLD`), whether the single-copy CMA
//! rendezvous is used (`TOCSIN_CMA`), the pipelined-rendezvous chunk (`TOCSIN_CHUNK_BYTES`)
//! and the spin before a waiting thread sleeps (`TOCSIN_SPIN_US`). It must not touch the
//! shared-memory layout, the rings or the wait loop (it only hands values to [`Config`]),
//! nor talk to PMI itself: `init` publishes rank 0's values ([`Tuned::encode`]) and the
//! other ranks read them ([`Tuned::decode`]), so every rank of a job uses the same settings.
//!
//! ## What is measured ([`calibrate`], single process, well under a second)
//! On two threads pinned to two distinct CPUs when the affinity allows it, medians of
//! repeated samples ([`SAMPLES`] per point, each long enough, [`BATCH_BYTES`], for the clock
//! to be negligible):
//! - `memcpy` time at every power of two [`MIN_SIZE`]..=[`MAX_SIZE`], *hot* (the same two
//!   buffers again and again: cache-resident up to the cache size) and *cold* (marching
//!   through a pool twice the last-level cache, so no line is still cached); and, at the
//!   chunk sizes, *paired*: cold while the other thread copies too (the pipelined
//!   rendezvous copies on both sides at once, sharing the memory bandwidth);
//! - CMA (`process_vm_readv` on this process's own pid) at the same sizes, hot and cold: the
//!   system call, the per-page pinning and the copy. Failure (seccomp, `ENOSYS`) is recorded
//!   as "CMA unavailable";
//! - the one-way latency `h` of a cache-line handoff between the two threads (half a
//!   round trip of a flag ping-pong): what one RTS, CTS or FIN record costs;
//! - the futex wake-up latency `w`: one thread asleep in `FUTEX_WAIT`, woken by the other,
//!   from the waker's `store` to the sleeper's return.
//!
//! ## The cost model ([`derive`], a pure function of the measurements)
//! With `copy_hot(s)`, `copy_cold(s)`, `cma_hot(s)`, `cma_cold(s)` the medians at size `s`
//! (ns), and `N` = [`MAX_SIZE`]:
//! - **pipelined rendezvous** of `n` bytes in chunks of `c`: sender copies into the ring,
//!   receiver copies out, the two streams overlap, every chunk costs
//!   [`PIPE_CHUNK_HANDOFFS`]` = 2` handoffs (its record, the ring space it frees), and the
//!   pipeline fills with one chunk:
//!   `pipe(n, c) = ⌈n/c⌉·(copy(c) + 2h) + copy(c) + 2h`.
//! - **chunk** = the power of two `c` in [`MIN_TUNED_CHUNK`]..=[`MAX_TUNED_CHUNK`] minimising
//!   `pipe(N, c)` with `copy = copy_pair_cold` (large messages are not cached, and both
//!   sides copy at once); ties go to the smaller chunk.
//! - **CMA** is used when it works and `cma_cold(N) < `[`CMA_PREFERENCE`]`·pipe(N, chunk)`
//!   (the model leaves out costs of the pipeline only: its ring bookkeeping and cache use).
//! - **eager threshold**: an eager message costs `eager(s) = `[`EAGER_HANDOFFS`]`·h + 2·copy_hot(s)`
//!   (copy into the ring, copy out); a rendezvous `rndv(s) = `[`RNDV_HANDOFFS`]`·h + cma_hot(s)`
//!   with CMA, else `… + pipe(s, min(chunk, s))` with `copy = copy_hot`. With `s*` the smallest
//!   power of two ≥ [`MIN_TUNED_EAGER`] where `rndv(s*) < eager(s*)`, the threshold (largest
//!   eager message) is `s*/2`, clamped to [`MIN_TUNED_EAGER`]..=[`MAX_TUNED_EAGER`]; when
//!   the rendezvous never wins up to `2·`[`MAX_TUNED_EAGER`] it is [`MAX_TUNED_EAGER`].
//!   `init` still lowers it for large jobs so that an eager record fits a quarter of a ring
//!   (`transport::shm::default_eager_threshold`).
//! - **spin** = `⌈`[`SPIN_WAKE_MULTIPLE`]`·w⌉` µs clamped to
//!   [`MIN_TUNED_SPIN_US`]..=[`MAX_TUNED_SPIN_US`]: a message arriving after the spin has
//!   already waited at least the spin, to which the wake-up adds at most 1/`SPIN_WAKE_MULTIPLE`
//!   (5 %); the ceiling bounds the CPU an idle rank burns per wait. Reported by `tocsin
//!   tune` for comparison only: the engine adapts its spin at `init` from the wake-up cost
//!   each rank measures then (`progress::spin`: 4 w within 20–250 µs, none when
//!   oversubscribed), so that it follows the machine's state at the time of the job.
//!
//! A measurement that is not a finite non-negative number leaves the value it feeds at its
//! built-in default ([`Tunables::builtin`]); absurd but finite ones are clamped by the ranges
//! above. Nothing here is tuned to a machine: every input is measured.
//!
//! ## The cache
//! One JSON file per machine kind in `$TOCSIN_CACHE_DIR`, else `$XDG_CACHE_HOME/tocsin/`,
//! else `~/.cache/tocsin/`, keyed by the CPU model (`/proc/cpuinfo` "model name"), the
//! online CPU count and the kernel release ([`CacheKey`]); written atomically (temporary
//! file, then `rename`). It keeps the measurements; the values are derived again on load, so
//! a newer model applies to old measurements. An unreadable or corrupt file is ignored (with
//! a debug log) and measured again.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{Config, DEFAULT_EAGER_THRESHOLD, DEFAULT_SPIN_US};

/// Smallest message size measured, bytes (1 KiB).
pub const MIN_SIZE: usize = 1 << 10;
/// Largest message size measured, bytes (4 MiB): the size at which CMA and the pipeline
/// chunk are decided.
pub const MAX_SIZE: usize = 4 << 20;
/// Samples per measured point; the median is kept.
pub const SAMPLES: usize = 11;
/// Least bytes copied per timed sample (small sizes repeat the copy), so that reading the
/// clock (tens of ns) stays under 1 % of a sample.
pub const BATCH_BYTES: usize = 256 << 10;
/// Round trips per handoff sample.
pub const HANDOFF_ROUND_TRIPS: usize = 64;
/// Handoff samples (median kept).
pub const HANDOFF_SAMPLES: usize = 15;
/// Futex wake-up samples (median kept).
pub const WAKE_SAMPLES: usize = 15;
/// How long the waker waits after the sleeper announced itself, so that the sleeper is
/// really inside `FUTEX_WAIT` when woken, µs.
pub const WAKE_SETTLE_US: u64 = 50;
/// Longest a threaded phase (handoff, wake-up) may take; past it the samples gathered so far
/// are used (another process may be hogging a CPU), ms.
pub const PHASE_BUDGET_MS: u64 = 100;
/// Smallest pool for cold copies, bytes (when the last-level cache size is unknown or small):
/// source and destination halves, each holding at least two of the largest copy.
pub const MIN_COLD_POOL: usize = 4 * MAX_SIZE;
/// Largest pool for cold copies, bytes: bounds memory and time on machines with huge caches
/// (where the largest "cold" sizes may then be partly cached).
pub const MAX_COLD_POOL: usize = 64 << 20;

/// Record handoffs on the eager path: the record's arrival.
pub const EAGER_HANDOFFS: f64 = 1.0;
/// Record handoffs on the rendezvous path: RTS, CTS (or the receiver's CMA start), FIN.
pub const RNDV_HANDOFFS: f64 = 3.0;
/// Handoffs per pipelined chunk: the chunk's record, and the ring space it frees (seen by
/// the sender).
pub const PIPE_CHUNK_HANDOFFS: f64 = 2.0;
/// CMA is kept unless the pipelined copy is modelled this much faster: the model leaves out
/// the ring's bookkeeping per chunk and the cache the ring occupies (every byte crosses the
/// cache twice), which both favour CMA.
pub const CMA_PREFERENCE: f64 = 1.2;
/// Smallest eager threshold the model chooses, bytes.
pub const MIN_TUNED_EAGER: usize = 1 << 10;
/// Largest eager threshold the model chooses, bytes: the built-in default, which rings of
/// the default size hold for small jobs.
pub const MAX_TUNED_EAGER: usize = DEFAULT_EAGER_THRESHOLD;
/// Smallest pipeline chunk the model chooses, bytes (a page).
pub const MIN_TUNED_CHUNK: usize = 4 << 10;
/// Largest pipeline chunk the model chooses, bytes (the engine also clamps a chunk to what
/// a ring record carries).
pub const MAX_TUNED_CHUNK: usize = 1 << 20;
/// Spin = this many futex wake-ups: a message arriving after the spin pays at most 5 % more
/// than it already waited.
pub const SPIN_WAKE_MULTIPLE: f64 = 20.0;
/// Smallest spin the model chooses, µs.
pub const MIN_TUNED_SPIN_US: u64 = 20;
/// Largest spin the model chooses, µs: a rank blocked 200 ms then burns at most about 1 ms
/// of CPU per wait.
pub const MAX_TUNED_SPIN_US: u64 = 1000;
/// Built-in pipeline chunk, bytes (used when not measured).
pub const DEFAULT_CHUNK_BYTES: usize = 64 << 10;
/// Version of the cache file's format; files of another version are ignored.
pub const CACHE_FORMAT: u32 = 1;
/// The PMI key under which rank 0 publishes the job's values.
pub const PMI_KEY: &str = "tocsin.tune";

/// Environment variable that replaces the cache directory (tests, shared installs).
pub const CACHE_DIR_ENV: &str = "TOCSIN_CACHE_DIR";

// ---------------------------------------------------------------------------------------
// Measurements and values

/// The medians at one message size, ns per operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Message size, bytes.
    pub bytes: usize,
    /// `memcpy` with both buffers cache-resident (as far as they fit), ns.
    pub memcpy_hot_ns: f64,
    /// `memcpy` with neither buffer cached, ns.
    pub memcpy_cold_ns: f64,
    /// `memcpy`, cold, while the other thread makes the same copies at the same time (the
    /// two copies of a pipelined rendezvous share the memory bus), ns; measured at the
    /// chunk sizes only ([`MIN_TUNED_CHUNK`]..=[`MAX_TUNED_CHUNK`]).
    #[serde(default)]
    pub memcpy_pair_cold_ns: Option<f64>,
    /// CMA read of this process's own memory, hot, ns; `None` when CMA failed.
    pub cma_hot_ns: Option<f64>,
    /// CMA read, cold, ns; `None` when CMA failed.
    pub cma_cold_ns: Option<f64>,
}

/// Everything [`calibrate`] measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    /// One point per power-of-two size, ascending, [`MIN_SIZE`]..=[`MAX_SIZE`].
    pub points: Vec<Point>,
    /// Why CMA is unavailable (`None`: it works).
    pub cma_error: Option<String>,
    /// One-way latency of a cache-line handoff between two threads, ns.
    pub handoff_ns: f64,
    /// Futex wake-up latency (store + `FUTEX_WAKE` to the sleeper's return), ns.
    pub wake_ns: f64,
    /// The two CPUs the threads ran on (`None`: not pinned).
    pub cpus: Option<(usize, usize)>,
    /// Size of the cold-copy pool, bytes (twice the last-level cache, clamped).
    pub cold_pool_bytes: usize,
    /// How long the calibration took, ms.
    pub elapsed_ms: f64,
}

/// The four protocol values chosen from measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tunables {
    /// Largest message sent eagerly, bytes.
    pub eager_threshold: usize,
    /// Use the single-copy CMA rendezvous.
    pub cma: bool,
    /// Pipelined-rendezvous chunk, bytes.
    pub chunk_bytes: usize,
    /// Spin before sleeping the model suggests, µs (reported, not applied: see the module
    /// doc).
    pub spin_us: u64,
}

impl Tunables {
    /// The built-in defaults: 64 KiB eager threshold, CMA on, 64 KiB chunks, and
    /// [`DEFAULT_SPIN_US`] (the adaptive spin's ceiling).
    pub const fn builtin() -> Tunables {
        Tunables {
            eager_threshold: DEFAULT_EAGER_THRESHOLD,
            cma: true,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            spin_us: DEFAULT_SPIN_US,
        }
    }
}

/// Where a job's tuned values came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// Read from the per-user cache.
    Cache,
    /// Measured now (and stored in the cache).
    Calibrated,
    /// The built-in defaults: tuning off (`TOCSIN_TUNE=0`), no cache in a single-rank job,
    /// or nothing measurable.
    Default,
}

impl Origin {
    /// A short name: `cache`, `calibrated`, `default`.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Cache => "cache",
            Origin::Calibrated => "calibrated",
            Origin::Default => "default",
        }
    }
}

/// The values a job uses where no `TOCSIN_*` variable overrides them, and their origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuned {
    /// The values.
    pub values: Tunables,
    /// Where they came from.
    pub origin: Origin,
}

impl Tuned {
    /// The PMI value rank 0 publishes: `t1.EAGER.CMA.CHUNK.SPIN.ORIGIN` (no spaces, no `=`).
    pub fn encode(&self) -> String {
        let v = &self.values;
        format!(
            "t1.{}.{}.{}.{}.{}",
            v.eager_threshold,
            u8::from(v.cma),
            v.chunk_bytes,
            v.spin_us,
            self.origin.name()
        )
    }

    /// The inverse of [`encode`](Self::encode); `None` if `s` is malformed.
    pub fn decode(s: &str) -> Option<Tuned> {
        let mut it = s.split('.');
        if it.next()? != "t1" {
            return None;
        }
        let eager_threshold = it.next()?.parse().ok()?;
        let cma = match it.next()? {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        let chunk_bytes = it.next()?.parse().ok()?;
        let spin_us = it.next()?.parse().ok()?;
        let origin = match it.next()? {
            "cache" => Origin::Cache,
            "calibrated" => Origin::Calibrated,
            "default" => Origin::Default,
            _ => return None,
        };
        if it.next().is_some() {
            return None;
        }
        Some(Tuned {
            values: Tunables {
                eager_threshold,
                cma,
                chunk_bytes,
                spin_us,
            },
            origin,
        })
    }
}

// ---------------------------------------------------------------------------------------
// The cost model

/// A finite, non-negative measurement.
fn usable(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

/// `pipe(n, c) = ⌈n/c⌉·(copy(c) + k·h) + copy(c) + k·h` with `k` =
/// [`PIPE_CHUNK_HANDOFFS`] (ns): see the module doc.
pub fn pipe_ns(n: usize, c: usize, copy_c_ns: f64, h: f64) -> f64 {
    let c = c.max(1);
    let chunks = n.div_ceil(c) as f64;
    let per = copy_c_ns + PIPE_CHUNK_HANDOFFS * h;
    chunks * per + per
}

/// The value of `f` at the point of size `bytes`, if measured and usable.
fn at(m: &Measurements, bytes: usize, f: impl Fn(&Point) -> Option<f64>) -> Option<f64> {
    m.points
        .iter()
        .find(|p| p.bytes == bytes)
        .and_then(f)
        .filter(|x| usable(*x))
}

/// The values [`derive`] chose, with the formula's inputs for each, one line a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Derivation {
    /// The chosen values.
    pub values: Tunables,
    /// For each value (`eager_threshold`, `cma`, `chunk_bytes`, `spin_us`): the formula
    /// with its inputs, for `tocsin tune`.
    pub why: Vec<(&'static str, String)>,
}

/// Powers of two from `lo` to `hi` inclusive.
fn pow2s(lo: usize, hi: usize) -> impl Iterator<Item = usize> {
    std::iter::successors(Some(lo), move |&s| s.checked_mul(2).filter(|&t| t <= hi))
}

/// The cost model: measurements → values (pure; see the module doc for the formulas).
pub fn derive(m: &Measurements) -> Derivation {
    let mut v = Tunables::builtin();
    let mut why = Vec::new();
    let h = m.handoff_ns;
    let h_ok = usable(h);
    let largest = m.points.iter().map(|p| p.bytes).max().unwrap_or(0);

    // Chunk: argmin over c of pipe(N, c) with cold copies.
    let mut best: Option<(usize, f64)> = None;
    let mut tried = Vec::new();
    if h_ok && largest > 0 {
        for c in pow2s(MIN_TUNED_CHUNK, MAX_TUNED_CHUNK.min(largest)) {
            if let Some(cc) = at(m, c, |p| p.memcpy_pair_cold_ns) {
                let t = pipe_ns(largest, c, cc, h);
                tried.push(format!("{}:{:.1}", kib(c), t / 1000.0));
                if best.is_none_or(|(_, b)| t < b) {
                    best = Some((c, t));
                }
            }
        }
    }
    let pipe_largest = match best {
        Some((c, t)) => {
            v.chunk_bytes = c;
            why.push((
                "chunk_bytes",
                format!(
                    "argmin_c pipe({}, c) = (⌈N/c⌉ + 1)·(copy_pair_cold(c) + {PIPE_CHUNK_HANDOFFS}·h), h = {h:.0} ns; \
                     pipe in µs by c: {} → {}",
                    kib(largest),
                    tried.join(" "),
                    kib(c)
                ),
            ));
            Some(t)
        }
        None => {
            why.push((
                "chunk_bytes",
                "no usable copy or handoff measurement: built-in default".into(),
            ));
            None
        }
    };

    // CMA: works, and beats the pipelined copy at the largest size (cold).
    let cma_largest = at(m, largest, |p| p.cma_cold_ns);
    v.cma = match (&m.cma_error, cma_largest, pipe_largest) {
        (Some(e), _, _) => {
            why.push(("cma", format!("CMA unavailable ({e})")));
            false
        }
        (None, Some(c), Some(p)) => {
            why.push((
                "cma",
                format!(
                    "cma_cold({}) = {:.1} µs {} {CMA_PREFERENCE}·pipe({}, {}) = {CMA_PREFERENCE}·{:.1} µs",
                    kib(largest),
                    c / 1000.0,
                    if c < CMA_PREFERENCE * p { "<" } else { "≥" },
                    kib(largest),
                    kib(v.chunk_bytes),
                    p / 1000.0
                ),
            ));
            c < CMA_PREFERENCE * p
        }
        (None, _, _) => {
            why.push((
                "cma",
                "no usable CMA or pipeline measurement: built-in default".into(),
            ));
            Tunables::builtin().cma
        }
    };

    // Eager threshold: half the smallest size where the rendezvous wins.
    let (use_cma, chunk) = (v.cma, v.chunk_bytes);
    let rndv = |s: usize| -> Option<f64> {
        if use_cma {
            at(m, s, |p| p.cma_hot_ns).map(|c| RNDV_HANDOFFS * h + c)
        } else {
            let c = chunk.min(s);
            at(m, c, |p| Some(p.memcpy_hot_ns)).map(|cc| RNDV_HANDOFFS * h + pipe_ns(s, c, cc, h))
        }
    };
    let eager =
        |s: usize| at(m, s, |p| Some(p.memcpy_hot_ns)).map(|c| EAGER_HANDOFFS * h + 2.0 * c);
    if h_ok {
        let mut cmp = Vec::new();
        let mut chosen = None;
        let mut complete = true;
        for s in pow2s(MIN_TUNED_EAGER, 2 * MAX_TUNED_EAGER) {
            match (eager(s), rndv(s)) {
                (Some(e), Some(r)) => {
                    cmp.push(format!("{}: {:.2}/{:.2}", kib(s), e / 1000.0, r / 1000.0));
                    if r < e {
                        chosen = Some((s / 2).clamp(MIN_TUNED_EAGER, MAX_TUNED_EAGER));
                        break;
                    }
                }
                _ => {
                    complete = false;
                    break;
                }
            }
        }
        let path = if use_cma {
            "cma_hot(s)"
        } else {
            "pipe(s, chunk)"
        };
        match (chosen, complete) {
            (Some(t), _) => {
                v.eager_threshold = t;
                why.push((
                    "eager_threshold",
                    format!(
                        "s*/2 with s* the first s where rndv(s) = {RNDV_HANDOFFS}·h + {path} < eager(s) = \
                         {EAGER_HANDOFFS}·h + 2·copy_hot(s), h = {h:.0} ns; eager/rndv µs: {} → {}",
                        cmp.join(", "),
                        kib(t)
                    ),
                ));
            }
            (None, true) => {
                v.eager_threshold = MAX_TUNED_EAGER;
                why.push((
                    "eager_threshold",
                    format!(
                        "rndv(s) = {RNDV_HANDOFFS}·h + {path} never below eager(s) = {EAGER_HANDOFFS}·h + \
                         2·copy_hot(s) up to {}, h = {h:.0} ns; eager/rndv µs: {} → the largest, {}",
                        kib(2 * MAX_TUNED_EAGER),
                        cmp.join(", "),
                        kib(MAX_TUNED_EAGER)
                    ),
                ));
            }
            (None, false) => why.push((
                "eager_threshold",
                "copy or rendezvous not measured at every size: built-in default".into(),
            )),
        }
    } else {
        why.push((
            "eager_threshold",
            "no usable handoff measurement: built-in default".into(),
        ));
    }

    // Spin: a multiple of the wake-up cost, clamped.
    if usable(m.wake_ns) {
        let raw = (SPIN_WAKE_MULTIPLE * m.wake_ns / 1000.0).ceil();
        // `as` saturates; the clamp then bounds it.
        v.spin_us = (raw as u64).clamp(MIN_TUNED_SPIN_US, MAX_TUNED_SPIN_US);
        why.push((
            "spin_us",
            format!(
                "⌈{SPIN_WAKE_MULTIPLE}·w⌉ clamped to {MIN_TUNED_SPIN_US}..={MAX_TUNED_SPIN_US} µs, \
                 w = {:.1} µs → {} µs",
                m.wake_ns / 1000.0,
                v.spin_us
            ),
        ));
    } else {
        why.push((
            "spin_us",
            "no usable wake-up measurement: built-in default".into(),
        ));
    }
    Derivation { values: v, why }
}

/// `bytes` as `N KiB` / `N MiB` / `N B`.
pub fn kib(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

/// The CMA fixed cost (system call, ns) and per-page cost (ns per 4 KiB page) of a
/// least-squares line through the hot CMA medians; `None` without CMA. For reports only:
/// the model uses the medians themselves.
pub fn cma_fit(m: &Measurements) -> Option<(f64, f64)> {
    let pts: Vec<(f64, f64)> = m
        .points
        .iter()
        .filter_map(|p| {
            p.cma_hot_ns
                .filter(|x| usable(*x))
                .map(|t| (p.bytes.div_ceil(4096) as f64, t))
        })
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as f64;
    let (sx, sy) = pts.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let sxx: f64 = pts.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let sxy: f64 = pts.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    if sxx == 0.0 {
        return None;
    }
    let b = sxy / sxx;
    Some((my - b * mx, b))
}

// ---------------------------------------------------------------------------------------
// Calibration

/// Median of `v` (NaN if empty).
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let k = v.len() / 2;
    if v.len() % 2 == 1 {
        v[k]
    } else {
        (v[k - 1] + v[k]) / 2.0
    }
}

/// A position marching through a cold pool of `len` bytes: each copy takes the next `s`
/// bytes, across sizes and kinds of copy, so that a line comes back only after the whole
/// pool has been touched (restarting at 0 for each size would find the previous size's
/// lines still in the last-level cache).
struct March {
    at: usize,
    len: usize,
}

impl March {
    fn next(&mut self, s: usize) -> usize {
        if self.at + s > self.len {
            self.at = 0;
        }
        let o = self.at;
        self.at += s;
        o
    }
}

/// Median over [`SAMPLES`] samples (after one warm-up) of the time of one `op(i)`, each
/// sample running `op` enough times to copy [`BATCH_BYTES`]; `Err` if `op` fails.
fn time_op(bytes: usize, mut op: impl FnMut(usize) -> io::Result<()>) -> io::Result<f64> {
    let reps = BATCH_BYTES.div_ceil(bytes.max(1)).max(1);
    let mut samples = Vec::with_capacity(SAMPLES);
    let mut i = 0usize;
    op(i)?; // warm-up
    for _ in 0..SAMPLES {
        let t = Instant::now();
        for _ in 0..reps {
            i += 1;
            op(i)?;
        }
        samples.push(t.elapsed().as_nanos() as f64 / reps as f64);
    }
    Ok(median(&mut samples))
}

/// The last-level cache size, bytes, from sysfs (`None` if unknown).
fn llc_bytes() -> Option<usize> {
    let mut best = None;
    for i in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
        let Ok(s) = fs::read_to_string(format!("{dir}/size")) else {
            continue;
        };
        let s = s.trim();
        let (num, mul) = match s.as_bytes().last() {
            Some(b'K') => (&s[..s.len() - 1], 1usize << 10),
            Some(b'M') => (&s[..s.len() - 1], 1 << 20),
            Some(b'G') => (&s[..s.len() - 1], 1 << 30),
            _ => (s, 1),
        };
        if let Ok(n) = num.parse::<usize>() {
            let b = n.saturating_mul(mul);
            best = Some(best.map_or(b, |x: usize| x.max(b)));
        }
    }
    best
}

/// The copies of one thread: memcpy and CMA, hot and cold, at every size. `pool` (at least
/// four times [`MAX_SIZE`]) holds the cold copies' source (first half) and destination.
fn measure_copies(pool: &mut [u8]) -> (Vec<Point>, Option<String>) {
    let sizes: Vec<usize> = pow2s(MIN_SIZE, MAX_SIZE).collect();
    let mut src = vec![0x5au8; MAX_SIZE];
    let mut dst = vec![0u8; MAX_SIZE];
    let half = pool.len() / 2;
    let pid = std::process::id() as libc::pid_t;
    let mut cma_error: Option<String> = None;
    let mut points = Vec::with_capacity(sizes.len());
    let mut march = March { at: 0, len: half };
    for (k, &s) in sizes.iter().enumerate() {
        src[k] = k as u8;
        let hot = time_op(s, |_| {
            dst[..s].copy_from_slice(std::hint::black_box(&src[..s]));
            std::hint::black_box(&mut dst);
            Ok(())
        })
        .unwrap_or(f64::NAN);
        // Cold: march through the pool so that a line comes back only after 2·half bytes.
        let (psrc, pdst) = pool.split_at_mut(half);
        let cold = time_op(s, |_| {
            let o = march.next(s);
            pdst[o..o + s].copy_from_slice(std::hint::black_box(&psrc[o..o + s]));
            std::hint::black_box(&mut *pdst);
            Ok(())
        })
        .unwrap_or(f64::NAN);
        let (mut cma_hot, mut cma_cold) = (None, None);
        if cma_error.is_none() {
            let remote = src.as_ptr() as u64;
            match time_op(s, |_| crate::sys::cma_read(pid, remote, &mut dst[..s])) {
                Ok(t) => cma_hot = Some(t),
                Err(e) => cma_error = Some(format!("process_vm_readv: {e}")),
            }
        }
        if cma_error.is_none() {
            let base = psrc.as_ptr() as u64;
            match time_op(s, |_| {
                let o = march.next(s);
                crate::sys::cma_read(pid, base + o as u64, &mut pdst[o..o + s])
            }) {
                Ok(t) => cma_cold = Some(t),
                Err(e) => cma_error = Some(format!("process_vm_readv: {e}")),
            }
        }
        points.push(Point {
            bytes: s,
            memcpy_hot_ns: hot,
            memcpy_cold_ns: cold,
            memcpy_pair_cold_ns: None,
            cma_hot_ns: cma_hot,
            cma_cold_ns: cma_cold,
        });
    }
    if cma_error.is_some() {
        for p in &mut points {
            p.cma_hot_ns = None;
            p.cma_cold_ns = None;
        }
    }
    (points, cma_error)
}

/// Cold copies made by two threads at once, one on each half of `pool` (each half at least
/// four times [`MAX_TUNED_CHUNK`]), at the chunk sizes: `(size, ns per copy)` as the first
/// thread saw it. Sizes where the threads could not start together are left out.
fn measure_pair(pool: &mut [u8], cpus: Option<(usize, usize)>) -> Vec<(usize, f64)> {
    let sizes: Vec<usize> = pow2s(MIN_TUNED_CHUNK, MAX_TUNED_CHUNK).collect();
    let arrived = AtomicU32::new(0);
    let stop = AtomicBool::new(false);
    let (ha, hb) = pool.split_at_mut(pool.len() / 2);
    let run = |half: &mut [u8], cpu: Option<usize>| -> Vec<(usize, f64)> {
        if let Some(c) = cpu {
            pin(c);
        }
        let deadline = Instant::now() + Duration::from_millis(PHASE_BUDGET_MS);
        let q = half.len() / 2;
        let (psrc, pdst) = half.split_at_mut(q);
        let mut out = Vec::with_capacity(sizes.len());
        let mut march = March { at: 0, len: q };
        for (k, &s) in sizes.iter().enumerate() {
            arrived.fetch_add(1, Ordering::AcqRel);
            let want = 2 * (k as u32 + 1);
            if !spin_until(|| arrived.load(Ordering::Acquire) >= want, &stop, deadline) {
                stop.store(true, Ordering::Relaxed);
                break;
            }
            if let Ok(t) = time_op(s, |_| {
                let o = march.next(s);
                pdst[o..o + s].copy_from_slice(std::hint::black_box(&psrc[o..o + s]));
                std::hint::black_box(&mut *pdst);
                Ok(())
            }) {
                out.push((s, t));
            }
        }
        out
    };
    std::thread::scope(|sc| {
        let b = sc.spawn(|| run(hb, cpus.map(|c| c.1)));
        let a = run(ha, cpus.map(|c| c.0));
        let _ = b.join();
        a
    })
}

/// A flag on a cache line of its own.
#[repr(align(128))]
struct Line(AtomicU64);

/// Spins until `f()`, yielding the CPU after a while (the other thread may share it);
/// `false` if `stop` was raised or `deadline` passed.
fn spin_until(f: impl Fn() -> bool, stop: &AtomicBool, deadline: Instant) -> bool {
    let mut n = 0u32;
    while !f() {
        n = n.wrapping_add(1);
        if n % 256 == 0 {
            if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                return false;
            }
            if n % 4096 == 0 {
                std::thread::yield_now();
            }
        }
        std::hint::spin_loop();
    }
    true
}

/// Binds the calling thread to `cpu`; `false` if refused.
fn pin(cpu: usize) -> bool {
    crate::sys::bind_thread(&[cpu])
}

/// Two distinct CPUs for the two threads: the first two this process may use, else (a
/// rank bound to one CPU) that one and the next online CPU.
fn pick_cpus() -> Option<(usize, usize)> {
    let a = crate::sys::thread_cpus().unwrap_or_default();
    match a.len() {
        0 => None,
        1 => {
            let n = crate::sys::online_cpus();
            (n > 1).then(|| (a[0], (a[0] + 1) % n.min(libc::CPU_SETSIZE as usize)))
        }
        _ => Some((a[0], a[1])),
    }
}

/// One-way handoff latency and futex wake-up latency between two threads, ns.
fn measure_threads(cpus: Option<(usize, usize)>) -> (f64, f64, bool) {
    let ping = Line(AtomicU64::new(0));
    let pong = Line(AtomicU64::new(0));
    let word = AtomicU32::new(0);
    let armed = AtomicBool::new(false);
    let woke_at = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let epoch = Instant::now();
    let pinned = AtomicBool::new(true);
    let result = std::thread::scope(|s| {
        let b = s.spawn(|| {
            if let Some((_, c)) = cpus {
                if !pin(c) {
                    pinned.store(false, Ordering::Relaxed);
                }
            }
            let deadline = Instant::now() + Duration::from_millis(2 * PHASE_BUDGET_MS);
            // Handoff: echo every ping.
            let total = (HANDOFF_SAMPLES * HANDOFF_ROUND_TRIPS + 1) as u64;
            for i in 1..=total {
                if !spin_until(|| ping.0.load(Ordering::Acquire) >= i, &stop, deadline) {
                    break;
                }
                pong.0.store(i, Ordering::Release);
            }
            // Wake-up: sleep on `word` until the waker sets it; record when we woke.
            for k in 1..=WAKE_SAMPLES as u32 {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                armed.store(true, Ordering::Release);
                while word.load(Ordering::Acquire) < k {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    crate::sys::futex_wait(&word, k - 1, Duration::from_millis(20));
                }
                woke_at.store(epoch.elapsed().as_nanos() as u64, Ordering::Release);
            }
        });
        if let Some((c, _)) = cpus {
            if !pin(c) {
                pinned.store(false, Ordering::Relaxed);
            }
        }
        let deadline = Instant::now() + Duration::from_millis(PHASE_BUDGET_MS);
        let mut hs = Vec::with_capacity(HANDOFF_SAMPLES);
        let mut i = 0u64;
        // One round trip first, so that both threads are running.
        i += 1;
        ping.0.store(i, Ordering::Release);
        let mut ok = spin_until(|| pong.0.load(Ordering::Acquire) >= i, &stop, deadline);
        for _ in 0..HANDOFF_SAMPLES {
            if !ok {
                break;
            }
            let t = Instant::now();
            for _ in 0..HANDOFF_ROUND_TRIPS {
                i += 1;
                ping.0.store(i, Ordering::Release);
                if !spin_until(|| pong.0.load(Ordering::Acquire) >= i, &stop, deadline) {
                    ok = false;
                    break;
                }
            }
            if ok {
                hs.push(t.elapsed().as_nanos() as f64 / (2 * HANDOFF_ROUND_TRIPS) as f64);
            }
        }
        if !ok {
            // Release the echo thread from the handoff loop.
            ping.0.store(u64::MAX, Ordering::Release);
        }
        let deadline = Instant::now() + Duration::from_millis(PHASE_BUDGET_MS);
        let mut ws = Vec::with_capacity(WAKE_SAMPLES);
        for k in 1..=WAKE_SAMPLES as u32 {
            if !spin_until(|| armed.swap(false, Ordering::AcqRel), &stop, deadline) {
                break;
            }
            // Let the sleeper reach FUTEX_WAIT (spinning, not sleeping: no wake-up of our own).
            let settle = Instant::now() + Duration::from_micros(WAKE_SETTLE_US);
            while Instant::now() < settle {
                std::hint::spin_loop();
            }
            woke_at.store(0, Ordering::Release);
            let t0 = epoch.elapsed().as_nanos() as u64;
            word.store(k, Ordering::Release);
            crate::sys::futex_wake_all(&word);
            if !spin_until(|| woke_at.load(Ordering::Acquire) != 0, &stop, deadline) {
                break;
            }
            let t1 = woke_at.load(Ordering::Acquire);
            ws.push(t1.saturating_sub(t0) as f64);
        }
        stop.store(true, Ordering::Relaxed);
        word.store(u32::MAX, Ordering::Release);
        crate::sys::futex_wake_all(&word);
        let joined = b.join().is_ok();
        (median(&mut hs), median(&mut ws), joined)
    });
    let (h, w, joined) = result;
    if !joined {
        return (f64::NAN, f64::NAN, false);
    }
    (h, w, pinned.load(Ordering::Relaxed))
}

/// Measures this machine (see the module doc): copies, CMA, handoff and wake-up latency.
/// Takes a few hundred ms at most; never fails (what cannot be measured is NaN or `None`,
/// which [`derive`] replaces by built-in defaults).
pub fn calibrate() -> Measurements {
    let start = Instant::now();
    let pool_bytes = llc_bytes()
        .map_or(MIN_COLD_POOL, |l| l.saturating_mul(2))
        .clamp(MIN_COLD_POOL, MAX_COLD_POOL);
    let cpus = pick_cpus();
    // The copies run on a thread of their own, pinned like the handoff's first thread, so the
    // caller's binding is untouched; it also touches the pool first (its NUMA node).
    let copies = std::thread::scope(|s| {
        s.spawn(|| {
            if let Some((c, _)) = cpus {
                pin(c);
            }
            let mut pool = vec![0xa5u8; pool_bytes];
            let r = measure_copies(&mut pool);
            (r, pool)
        })
        .join()
    });
    let ((mut points, cma_error), mut pool) = match copies {
        Ok(x) => x,
        Err(_) => (
            (Vec::new(), Some("calibration thread failed".into())),
            Vec::new(),
        ),
    };
    if pool.len() >= 8 * MAX_TUNED_CHUNK {
        for (s, t) in measure_pair(&mut pool, cpus) {
            if let Some(p) = points.iter_mut().find(|p| p.bytes == s) {
                p.memcpy_pair_cold_ns = Some(t);
            }
        }
    }
    drop(pool);
    let pool = pool_bytes;
    let (handoff_ns, wake_ns, pinned) = measure_threads(cpus);
    Measurements {
        points,
        cma_error,
        handoff_ns,
        wake_ns,
        cpus: cpus.filter(|_| pinned),
        cold_pool_bytes: pool,
        elapsed_ms: start.elapsed().as_secs_f64() * 1000.0,
    }
}

// ---------------------------------------------------------------------------------------
// Cache

/// What a cache file is valid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    /// `/proc/cpuinfo` "model name" (or the architecture when absent).
    pub cpu_model: String,
    /// Online CPUs.
    pub cores: usize,
    /// Kernel release (`uname -r`).
    pub kernel: String,
}

impl CacheKey {
    /// This machine's key.
    pub fn current() -> CacheKey {
        let cpu_model = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
        let n = crate::sys::online_cpus();
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        CacheKey {
            cpu_model,
            cores: n,
            kernel,
        }
    }

    /// The cache file's name: the key's fields with every character outside
    /// `[A-Za-z0-9.-]` replaced by `_`.
    pub fn file_name(&self) -> String {
        let raw = format!("{}-{}cpu-{}", self.cpu_model, self.cores, self.kernel);
        let mut s: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(200)
            .collect();
        s.push_str(".json");
        s
    }
}

/// A cache file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheFile {
    /// [`CACHE_FORMAT`].
    pub format: u32,
    /// What it is valid for.
    pub key: CacheKey,
    /// The measurements (the values are derived from them again on load).
    pub measured: Measurements,
    /// The values derived when written, for people reading the file.
    pub values: Tunables,
    /// The library version that wrote it.
    pub written_by: String,
}

/// The cache directory: `$TOCSIN_CACHE_DIR`, else `$XDG_CACHE_HOME/tocsin`, else
/// `$HOME/.cache/tocsin`; `None` when none is set.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var(CACHE_DIR_ENV)
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("tocsin")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("tocsin")))
}

/// This machine's cache file (`None` without a cache directory).
pub fn cache_path() -> Option<PathBuf> {
    cache_dir().map(|d| d.join(CacheKey::current().file_name()))
}

/// Reads the cache file at `path` for `key`: `None` (with a debug log saying why) if it is
/// absent, unreadable, corrupt, of another format or another machine.
pub fn load_from(path: &Path, key: &CacheKey) -> Option<Measurements> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::debug!(path = %path.display(), error = %e, "tuning cache unreadable: ignored");
            }
            return None;
        }
    };
    match serde_json::from_str::<CacheFile>(&text) {
        Ok(f) if f.format == CACHE_FORMAT && f.key == *key => Some(f.measured),
        Ok(f) => {
            tracing::debug!(path = %path.display(), format = f.format, "tuning cache for another format or machine: ignored");
            None
        }
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "tuning cache corrupt: ignored, measuring again");
            None
        }
    }
}

/// Writes `m` for `key` to `path` atomically (a temporary file in the same directory, then
/// `rename`), creating the directory.
///
/// # Errors
/// Any I/O error creating the directory or writing the file.
pub fn store_to(path: &Path, key: &CacheKey, m: &Measurements) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "cache path has no directory")
    })?;
    fs::create_dir_all(dir)?;
    let file = CacheFile {
        format: CACHE_FORMAT,
        key: key.clone(),
        measured: m.clone(),
        values: derive(m).values,
        written_by: format!("tocsin {}", env!("CARGO_PKG_VERSION")),
    };
    let text = serde_json::to_string_pretty(&file).map_err(io::Error::other)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let r = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// This machine's cached measurements, if any (see [`load_from`]).
pub fn load() -> Option<(PathBuf, Measurements)> {
    let path = cache_path()?;
    let m = load_from(&path, &CacheKey::current())?;
    Some((path, m))
}

/// Stores `m` as this machine's measurements; returns the file written.
///
/// # Errors
/// No cache directory, or an I/O error (see [`store_to`]).
pub fn store(m: &Measurements) -> io::Result<PathBuf> {
    let path = cache_path().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no cache directory (set TOCSIN_CACHE_DIR, XDG_CACHE_HOME or HOME)",
        )
    })?;
    store_to(&path, &CacheKey::current(), m)?;
    Ok(path)
}

// ---------------------------------------------------------------------------------------
// What a job uses

/// Rank 0's values for a job of `size` ranks: the built-in defaults when `cfg` turns tuning
/// off (`TOCSIN_TUNE=0`) or overrides all four values; else the cache; else, in a job of
/// more than one rank, a calibration (stored in the cache; a failure to store is logged at
/// debug level). A single-rank job does not calibrate (it has no peer to tune for), nor an
/// `oversubscribed` node (more ranks than CPUs starting at once would skew the measurements
/// and the cache would keep them).
pub fn for_job(cfg: &Config, size: u32, oversubscribed: bool) -> Tuned {
    let default = Tuned {
        values: Tunables::builtin(),
        origin: Origin::Default,
    };
    if !cfg.tune || cfg.all_tunables_set() {
        return default;
    }
    if let Some((_, m)) = load() {
        return Tuned {
            values: derive(&m).values,
            origin: Origin::Cache,
        };
    }
    if size <= 1 {
        return default;
    }
    if oversubscribed {
        // More ranks than CPUs are starting now: a calibration would measure a loaded
        // machine and cache it. Defaults for this job; `tocsin tune` ahead of time.
        tracing::debug!("oversubscribed node: no calibration (run `tocsin tune` ahead of time)");
        return default;
    }
    let m = calibrate();
    tracing::debug!(elapsed_ms = m.elapsed_ms, "calibrated this machine");
    if let Err(e) = store(&m) {
        tracing::debug!(error = %e, "tuning cache not written");
    }
    Tuned {
        values: derive(&m).values,
        origin: Origin::Calibrated,
    }
}

/// Applies `t` to every value of `cfg` that no `TOCSIN_*` variable (or builder call) set.
/// The eager threshold only goes down from the one `init` chose for the ring in force, so
/// that an eager record still fits a quarter of a ring.
///
/// CMA stays on in the modes that progress while the application computes (`thread`,
/// `signal`, `uintr`) whatever the latency model says: its one copy is made by the side
/// that waits, while the pipelined copy makes the computing side copy half the bytes in its
/// handlers (no overlap). The model decides in `poll` and `block`, where both sides wait.
pub(crate) fn apply(cfg: &mut Config, t: &Tunables) {
    if cfg.eager_auto {
        cfg.eager_threshold = cfg.eager_threshold.min(t.eager_threshold);
    }
    if !cfg.cma_set {
        cfg.cma = t.cma || overlap_mode(cfg.progress);
    }
    if !cfg.chunk_set
        && (crate::config::MIN_CHUNK_BYTES..=crate::config::MAX_CHUNK_BYTES)
            .contains(&t.chunk_bytes)
    {
        cfg.chunk_bytes = t.chunk_bytes;
    }
}

/// The modes whose ranks progress while they compute: CMA is kept there (see [`apply`]).
pub(crate) fn overlap_mode(m: crate::ProgressMode) -> bool {
    use crate::ProgressMode as P;
    matches!(m, P::Thread | P::Signal | P::Uintr)
}

/// Where one value in force comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Its `TOCSIN_*` variable (or a [`Config`] builder call).
    Env,
    /// The tuned cache file.
    Cache(PathBuf),
    /// The built-in default; the text says why no tuned value applies.
    Default(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Env => write!(f, "env override"),
            Source::Cache(p) => write!(f, "tuned cache {}", p.display()),
            Source::Default(why) => write!(f, "built-in default ({why})"),
        }
    }
}

/// One value a job started now would use, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The variable that overrides it (`TOCSIN_EAGER_THRESHOLD`, …).
    pub var: &'static str,
    /// The value (bytes, `0`/`1`, or µs as the variable takes it).
    pub value: u64,
    /// Where it comes from.
    pub source: Source,
}

/// The four values a small job (up to 11 ranks, whose rings hold 64 KiB eager records)
/// started with `cfg` would use, and where each comes from; reads the cache, never
/// calibrates. Larger jobs lower the eager threshold to fit their rings.
pub fn effective(cfg: &Config) -> Vec<Setting> {
    let tuned = if !cfg.tune {
        Err("TOCSIN_TUNE=0".to_owned())
    } else {
        match load() {
            Some((p, m)) => Ok((p, derive(&m).values)),
            None => Err(match cache_path() {
                Some(p) => format!(
                    "no tuned cache at {}: rank 0 of the next job calibrates, or run `tocsin tune`",
                    p.display()
                ),
                None => "no cache directory".to_owned(),
            }),
        }
    };
    let b = Tunables::builtin();
    let one = |var: &'static str, set: bool, own: u64, pick: fn(&Tunables) -> u64| -> Setting {
        if set {
            return Setting {
                var,
                value: own,
                source: Source::Env,
            };
        }
        match &tuned {
            Ok((p, t)) => Setting {
                var,
                value: pick(t),
                source: Source::Cache(p.clone()),
            },
            Err(why) => Setting {
                var,
                value: pick(&b),
                source: Source::Default(why.clone()),
            },
        }
    };
    vec![
        one(
            "TOCSIN_EAGER_THRESHOLD",
            !cfg.eager_auto,
            cfg.eager_threshold as u64,
            |t| t.eager_threshold as u64,
        ),
        one("TOCSIN_CMA", cfg.cma_set, u64::from(cfg.cma), |t| {
            u64::from(t.cma)
        }),
        one(
            "TOCSIN_CHUNK_BYTES",
            cfg.chunk_set,
            cfg.chunk_bytes as u64,
            |t| t.chunk_bytes as u64,
        ),
        match cfg.spin_us {
            Some(us) => Setting {
                var: "TOCSIN_SPIN_US",
                value: us,
                source: Source::Env,
            },
            None => Setting {
                var: "TOCSIN_SPIN_US",
                value: crate::config::DEFAULT_SPIN_US,
                source: Source::Default(
                    "adaptive: each rank measures its futex wake-up at init and spins 4× that, \
                     20–250 µs (none when oversubscribed)"
                        .to_owned(),
                ),
            },
        },
    ]
    .into_iter()
    .map(|mut s| {
        // The overlap modes keep CMA whatever the model says ([`apply`]).
        if s.var == "TOCSIN_CMA" && !cfg.cma_set && overlap_mode(cfg.progress) {
            s.value = 1;
        }
        s
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine where copies cost `bw` bytes/ns hot and half that cold (`pair` times more
    /// when both threads copy), CMA costs `cma = (fixed, per_page)` ns plus a copy, and `h`,
    /// `w` as given.
    fn machine_with(bw: f64, pair: f64, cma: Option<(f64, f64)>, h: f64, w: f64) -> Measurements {
        let points = pow2s(MIN_SIZE, MAX_SIZE)
            .map(|s| {
                let hot = s as f64 / bw;
                let cold = 2.0 * hot;
                let pages = s.div_ceil(4096) as f64;
                Point {
                    bytes: s,
                    memcpy_hot_ns: hot,
                    memcpy_cold_ns: cold,
                    memcpy_pair_cold_ns: (MIN_TUNED_CHUNK..=MAX_TUNED_CHUNK)
                        .contains(&s)
                        .then_some(pair * cold),
                    cma_hot_ns: cma.map(|(f, p)| f + p * pages + hot),
                    cma_cold_ns: cma.map(|(f, p)| f + p * pages + cold),
                }
            })
            .collect();
        Measurements {
            points,
            cma_error: cma.is_none().then(|| "ENOSYS".to_owned()),
            handoff_ns: h,
            wake_ns: w,
            cpus: Some((0, 1)),
            cold_pool_bytes: 32 << 20,
            elapsed_ms: 100.0,
        }
    }

    /// [`machine_with`] where two concurrent copies each take twice as long (memory-bound).
    fn machine(bw: f64, cma: Option<(f64, f64)>, h: f64, w: f64) -> Measurements {
        machine_with(bw, 2.0, cma, h, w)
    }

    #[test]
    fn cheap_cma_lowers_the_threshold() {
        // 10 B/ns copies; CMA 1 µs + 50 ns/page: at 16 KiB eager = 100 + 3277 ns,
        // rndv = 300 + 1000 + 200 + 1638 ns, so s* = 16 KiB at most.
        let m = machine(10.0, Some((1000.0, 50.0)), 100.0, 20_000.0);
        let d = derive(&m);
        assert!(d.values.cma, "{d:?}");
        assert!(d.values.eager_threshold < MAX_TUNED_EAGER, "{d:?}");
        assert!(d.values.eager_threshold >= MIN_TUNED_EAGER);
        assert!(d.values.eager_threshold.is_power_of_two());
        // Rendezvous wins at twice the threshold, not at the threshold itself.
        let e = |s: usize| EAGER_HANDOFFS * 100.0 + 2.0 * s as f64 / 10.0;
        let r = |s: usize| {
            RNDV_HANDOFFS * 100.0 + 1000.0 + 50.0 * s.div_ceil(4096) as f64 + s as f64 / 10.0
        };
        let t = d.values.eager_threshold;
        assert!(r(2 * t) < e(2 * t));
        assert!(r(t) >= e(t) || t == MIN_TUNED_EAGER);
        assert_eq!(d.why.len(), 4);
    }

    #[test]
    fn costly_cma_call_keeps_the_largest_threshold() {
        // CMA 50 µs a call: never beats two copies up to 128 KiB, but wins at 4 MiB over a
        // memory-bound pipeline.
        let d = derive(&machine(10.0, Some((50_000.0, 50.0)), 100.0, 20_000.0));
        assert!(d.values.cma, "{d:?}");
        assert_eq!(d.values.eager_threshold, MAX_TUNED_EAGER, "{d:?}");
    }

    #[test]
    fn cma_loses_to_a_pipeline_that_overlaps_for_free() {
        // Concurrent copies as fast as single ones, CMA 500 ns a page dearer than a copy
        // (as on the development VM).
        let d = derive(&machine_with(
            10.0,
            1.0,
            Some((5000.0, 500.0)),
            100.0,
            1000.0,
        ));
        assert!(!d.values.cma, "{d:?}");
        assert!(
            d.why.iter().any(|(k, w)| *k == "cma" && w.contains('≥')),
            "{d:?}"
        );
    }

    #[test]
    fn cma_unavailable_means_the_pipeline() {
        let m = machine(10.0, None, 100.0, 20_000.0);
        let d = derive(&m);
        assert!(!d.values.cma);
        assert!(d
            .why
            .iter()
            .any(|(k, w)| *k == "cma" && w.contains("ENOSYS")));
        assert!((MIN_TUNED_CHUNK..=MAX_TUNED_CHUNK).contains(&d.values.chunk_bytes));
        assert!((MIN_TUNED_EAGER..=MAX_TUNED_EAGER).contains(&d.values.eager_threshold));
        // Without CMA a rendezvous of one chunk costs two copies and more handoffs than an
        // eager message: the threshold is at least the chunk (or the largest).
        assert!(
            d.values.eager_threshold >= d.values.chunk_bytes.min(MAX_TUNED_EAGER),
            "{d:?}"
        );
    }

    #[test]
    fn chunk_balances_handoffs_and_fill() {
        // Optimum near sqrt(N·h·bw): larger handoffs give larger chunks.
        let small = derive(&machine(10.0, None, 10.0, 1000.0))
            .values
            .chunk_bytes;
        let large = derive(&machine(10.0, None, 10_000.0, 1000.0))
            .values
            .chunk_bytes;
        assert!(small < large, "{small} {large}");
        assert!(small >= MIN_TUNED_CHUNK && large <= MAX_TUNED_CHUNK);
    }

    #[test]
    fn spin_follows_the_wake_up_cost_clamped() {
        let spin = |w: f64| derive(&machine(10.0, None, 100.0, w)).values.spin_us;
        assert_eq!(spin(20_000.0), 400);
        assert_eq!(spin(0.0), MIN_TUNED_SPIN_US);
        assert_eq!(spin(1e15), MAX_TUNED_SPIN_US);
        assert_eq!(spin(f64::INFINITY), DEFAULT_SPIN_US);
        assert_eq!(spin(f64::NAN), DEFAULT_SPIN_US);
    }

    #[test]
    fn absurd_measurements_are_clamped_or_ignored() {
        // Handoffs of a second: rendezvous never wins, chunks as large as allowed.
        let d = derive(&machine(10.0, Some((1.0, 1.0)), 1e9, 1e9)).values;
        assert_eq!(d.eager_threshold, MAX_TUNED_EAGER);
        assert_eq!(d.chunk_bytes, MAX_TUNED_CHUNK);
        assert_eq!(d.spin_us, MAX_TUNED_SPIN_US);
        // Free CMA: the smallest threshold.
        let d = derive(&machine(1.0, Some((0.0, 0.0)), 0.0, 1.0)).values;
        assert_eq!(d.eager_threshold, MIN_TUNED_EAGER);
        assert!(d.cma);
        // Negative or NaN handoff: built-in threshold and chunk.
        for h in [-5.0, f64::NAN] {
            let d = derive(&machine(10.0, Some((1000.0, 50.0)), h, 1000.0)).values;
            assert_eq!(d.eager_threshold, DEFAULT_EAGER_THRESHOLD);
            assert_eq!(d.chunk_bytes, DEFAULT_CHUNK_BYTES);
        }
        // No points at all.
        let mut m = machine(10.0, None, 100.0, 1000.0);
        m.points.clear();
        let d = derive(&m).values;
        assert_eq!(d.eager_threshold, DEFAULT_EAGER_THRESHOLD);
        assert_eq!(d.chunk_bytes, DEFAULT_CHUNK_BYTES);
        // A NaN copy at one size stops the scan there: built-in threshold.
        let mut m = machine(10.0, Some((50_000.0, 50.0)), 100.0, 1000.0);
        m.points[2].memcpy_hot_ns = f64::NAN;
        assert_eq!(derive(&m).values.eager_threshold, DEFAULT_EAGER_THRESHOLD);
        // Paired copies never measured: built-in chunk; CMA kept as built in.
        let mut m = machine(10.0, Some((1000.0, 50.0)), 100.0, 1000.0);
        for p in &mut m.points {
            p.memcpy_pair_cold_ns = None;
        }
        let d = derive(&m).values;
        assert_eq!(d.chunk_bytes, DEFAULT_CHUNK_BYTES);
        assert!(d.cma);
    }

    #[test]
    fn pmi_encoding_round_trips() {
        let t = Tuned {
            values: Tunables {
                eager_threshold: 8192,
                cma: false,
                chunk_bytes: 131072,
                spin_us: 420,
            },
            origin: Origin::Calibrated,
        };
        let s = t.encode();
        assert!(!s.contains(' ') && !s.contains('='), "{s}");
        assert_eq!(Tuned::decode(&s), Some(t));
        for bad in [
            "",
            "t2.1.1.1.1.cache",
            "t1.1.2.1.1.cache",
            "t1.x.1.1.1.cache",
            "t1.1.1.1.1.cache.x",
            "t1.1.1.1.1.what",
        ] {
            assert_eq!(Tuned::decode(bad), None, "{bad}");
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tocsin-tune-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn cache_round_trips_and_ignores_corrupt_or_foreign_files() {
        let dir = temp_dir("cache");
        let key = CacheKey {
            cpu_model: "Test CPU @ 1.0GHz".into(),
            cores: 2,
            kernel: "6.1.0-test".into(),
        };
        let path = dir.join(key.file_name());
        assert!(!key.file_name().contains(' ') && !key.file_name().contains('@'));
        assert_eq!(load_from(&path, &key), None, "absent");
        let m = machine(10.0, Some((1000.0, 50.0)), 100.0, 20_000.0);
        store_to(&path, &key, &m).unwrap();
        assert_eq!(load_from(&path, &key), Some(m.clone()));
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // Another machine's key: ignored.
        let other = CacheKey {
            cores: 64,
            ..key.clone()
        };
        assert_eq!(load_from(&path, &other), None);
        // Corrupt: ignored, then overwritten by a new measurement.
        for junk in ["{not json", "", "{\"format\": 1}", "\u{0}\u{1}"] {
            fs::write(&path, junk).unwrap();
            assert_eq!(load_from(&path, &key), None, "{junk:?}");
        }
        store_to(&path, &key, &m).unwrap();
        assert_eq!(load_from(&path, &key), Some(m));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn calibration_measures_something() {
        let m = calibrate();
        assert_eq!(m.points.len(), pow2s(MIN_SIZE, MAX_SIZE).count());
        for p in &m.points {
            assert!(usable(p.memcpy_hot_ns) && usable(p.memcpy_cold_ns), "{p:?}");
            assert_eq!(p.cma_hot_ns.is_some(), m.cma_error.is_none());
        }
        assert!(usable(m.handoff_ns) && usable(m.wake_ns), "{m:?}");
        let d = derive(&m).values;
        assert!((MIN_TUNED_EAGER..=MAX_TUNED_EAGER).contains(&d.eager_threshold));
        assert!((MIN_TUNED_CHUNK..=MAX_TUNED_CHUNK).contains(&d.chunk_bytes));
        assert!((MIN_TUNED_SPIN_US..=MAX_TUNED_SPIN_US).contains(&d.spin_us));
    }

    #[test]
    fn overrides_win_and_tuned_values_fit_the_ring() {
        let t = Tunables {
            eager_threshold: 4096,
            cma: false,
            chunk_bytes: 8192,
            spin_us: 77,
        };
        // What init chose for a small ring.
        let mut c = Config {
            eager_threshold: 2048,
            ..Config::default()
        };
        apply(&mut c, &t);
        assert_eq!(c.eager_threshold, 2048, "never above the ring's default");
        assert!(!c.cma);
        assert_eq!(
            (c.chunk_bytes, c.spin_us),
            (8192, None),
            "the spin adapts at init"
        );
        let mut c = Config::default()
            .eager_threshold(100)
            .cma(true)
            .chunk_bytes(4096)
            .spin_us(5);
        apply(&mut c, &t);
        assert_eq!(
            (c.eager_threshold, c.cma, c.chunk_bytes, c.spin_us),
            (100, true, 4096, Some(5))
        );
        assert!(c.all_tunables_set());
        let e = effective(&c.spin_us(5));
        assert!(e.iter().all(|s| s.source == Source::Env), "{e:?}");
        let e = effective(&Config::default().tune(false));
        assert!(
            e[..3]
                .iter()
                .all(|s| matches!(&s.source, Source::Default(w) if w.contains("TOCSIN_TUNE=0"))),
            "{e:?}"
        );
        assert!(
            matches!(&e[3].source, Source::Default(w) if w.contains("adaptive")),
            "{e:?}"
        );
        assert_eq!(e[0].value, DEFAULT_EAGER_THRESHOLD as u64);
        assert_eq!(
            for_job(&Config::default().tune(false), 4, false).origin,
            Origin::Default
        );
    }
}
