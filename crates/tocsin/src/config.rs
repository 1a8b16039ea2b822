//! Start-up configuration: progress mode, protocol thresholds, driver options.
//!
//! Owns [`Config`] and its parsing from `TOCSIN_*` environment variables. It must not
//! touch the network or shared memory: [`Config::init`] hands over to the communicator.

use crate::error::{Error, Result};

/// How requests progress while the application waits. Chosen at start-up with
/// `TOCSIN_PROGRESS` or [`Config::progress`]; the API is the same in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProgressMode {
    /// `wait` spins on progress forever: lowest latency, burns the core.
    Poll,
    /// `wait` spins a short budget (a few times the wake-up cost measured at `init`, or
    /// [`Config::spin_us`]) then sleeps on a futex doorbell in the shared segment; a sender
    /// rings it only when the receiver declared itself asleep.
    Block,
    /// As `block`, plus a progress thread per rank (PIOMan-style), so requests progress
    /// while the application computes: it parks while the rank's own threads wait in
    /// tocsin, and otherwise spins the same short budget (never when oversubscribed) then
    /// sleeps on the doorbell. Bind it with [`Config::progress_core`] /
    /// `TOCSIN_PROGRESS_CORE`.
    Thread,
    /// As `block`, plus: a sender that posts work for a peer that is neither polling nor
    /// asleep raises a real-time signal on the peer's registered thread, whose handler
    /// (on an alternate signal stack) makes progress. See [`crate::interrupt::signal`].
    Signal,
    /// As `signal`, with x86 user interrupts (SENDUIPI) instead of signals. Needs a CPU with
    /// UINTR and a kernel with Intel's UINTR patches; see [`crate::interrupt::uintr`].
    Uintr,
}

impl ProgressMode {
    /// The name used by `TOCSIN_PROGRESS` (`"poll"`, `"block"`, `"thread"`, `"signal"`,
    /// `"uintr"`).
    pub fn name(self) -> &'static str {
        match self {
            ProgressMode::Poll => "poll",
            ProgressMode::Block => "block",
            ProgressMode::Thread => "thread",
            ProgressMode::Signal => "signal",
            ProgressMode::Uintr => "uintr",
        }
    }

    /// Every mode, in the order `TOCSIN_PROGRESS` documents them.
    pub const ALL: [ProgressMode; 5] = [
        ProgressMode::Poll,
        ProgressMode::Block,
        ProgressMode::Thread,
        ProgressMode::Signal,
        ProgressMode::Uintr,
    ];

    /// `true` for the modes whose `wait` sleeps on the doorbell after spinning.
    pub fn sleeps(self) -> bool {
        self != ProgressMode::Poll
    }

    /// `true` for the modes where a sender interrupts a peer that is not waiting.
    pub fn interrupts(self) -> bool {
        matches!(self, ProgressMode::Signal | ProgressMode::Uintr)
    }
}

impl std::str::FromStr for ProgressMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "poll" => Ok(ProgressMode::Poll),
            "block" => Ok(ProgressMode::Block),
            "thread" => Ok(ProgressMode::Thread),
            "signal" => Ok(ProgressMode::Signal),
            "uintr" => Ok(ProgressMode::Uintr),
            _ => Err(Error::Config {
                name: "TOCSIN_PROGRESS",
                value: s.into(),
                reason: "expected one of poll, block, thread, signal, uintr".into(),
            }),
        }
    }
}

/// Largest default eager/rendezvous threshold, bytes, and the built-in value used when this
/// machine is not measured (`TOCSIN_TUNE=0`; see [`crate::tune`]). Measured with `tocsin bench pingpong`
/// on the development machine (BENCHMARKS.md): up to 64 KiB the two-copy eager path beats
/// the single-copy CMA rendezvous (2.2 vs 5.9 µs at 64 KiB), whose system call and page
/// pinning cost about 4 µs. With many ranks the default shrinks so that four eager messages
/// fit in each (smaller) ring: see [`Config::eager_threshold_bytes`].
pub const DEFAULT_EAGER_THRESHOLD: usize = 64 * 1024;

/// Spin before a waiting thread sleeps when none is configured, µs, and the engine could not
/// measure its wake-up cost (see [`crate::progress`]'s spin budget, which otherwise adapts
/// the spin to that cost, between 20 and 250 µs). Also the most the adaptive spin may reach
/// with a wake-up this slow. On the development VM waking a sleeping thread costs 16–30 µs
/// plus the idle-exit of its vCPU; 250 µs keeps a rank blocked 200 ms under 2 ms of CPU
/// even where each of its sleeps costs more (BENCHMARKS.md).
pub const DEFAULT_SPIN_US: u64 = 250;

/// Smallest per-pair ring accepted (`TOCSIN_RING_BYTES`), bytes.
pub const MIN_RING_BYTES: usize = 4096;

/// Largest per-pair ring accepted (`TOCSIN_RING_BYTES`), bytes: 1 GiB. The job segment holds
/// n² rings, so even at this ceiling a 2-rank job maps 4 GiB; larger rings would only waste
/// address space (a record never exceeds a quarter of its ring).
pub const MAX_RING_BYTES: usize = 1 << 30;

/// Largest eager threshold accepted (`TOCSIN_EAGER_THRESHOLD`), bytes: an eager message and
/// its header must fit a quarter of the largest ring ([`MAX_RING_BYTES`]), i.e.
/// 268 435 432 bytes. The ring actually used must also hold it: `init` checks the threshold
/// against the ring size in force.
pub const MAX_EAGER_THRESHOLD: usize =
    crate::ring::max_body(MAX_RING_BYTES) - crate::wire::EAGER_HDR_LEN;

/// Smallest pipelined-rendezvous chunk accepted (`TOCSIN_CHUNK_BYTES`), bytes.
pub const MIN_CHUNK_BYTES: usize = 64;

/// Largest pipelined-rendezvous chunk accepted (`TOCSIN_CHUNK_BYTES`), bytes. A chunk is also
/// clamped to what one ring record can carry, so larger values would change nothing.
pub const MAX_CHUNK_BYTES: usize = MAX_RING_BYTES;

/// Most fast rings per rank accepted (`TOCSIN_FAST_PATHS`): the ring index travels in 16
/// bits.
pub const MAX_FAST_PATHS: u32 = 65_535;

/// Longest spin accepted (`TOCSIN_SPIN_US`), µs: 10 s. Beyond that a waiting thread should
/// simply use `poll` mode.
pub const MAX_SPIN_US: u64 = 10_000_000;

/// Start-up settings. Build with [`Config::default`] or [`Config::from_env`], adjust with
/// the builder methods, then call [`Config::init`].
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) progress: ProgressMode,
    pub(crate) eager_threshold: usize,
    pub(crate) eager_auto: bool,
    pub(crate) cma: bool,
    /// `cma`, `chunk_bytes` were set explicitly (environment or builder): tuned values do
    /// not replace them.
    pub(crate) cma_set: bool,
    pub(crate) chunk_set: bool,
    /// `TOCSIN_TUNE`: use measured values (cache or calibration) where nothing is set.
    pub(crate) tune: bool,
    pub(crate) ring_bytes: Option<usize>,
    /// `None`: adaptive (the engine measures its wake-up cost); `Some`: `TOCSIN_SPIN_US`.
    pub(crate) spin_us: Option<u64>,
    pub(crate) chunk_bytes: usize,
    pub(crate) posix_shm: bool,
    /// Every peer through the network transport, none through shared memory.
    pub(crate) nolocal: bool,
    /// `TOCSIN_TCP_IF`: the interface (name or IPv4 CIDR) TCP peers reach this rank on.
    pub(crate) tcp_if: Option<String>,
    pub(crate) signal: Option<i32>,
    pub(crate) progress_core: Option<usize>,
    /// `None`: detect (more local ranks than online CPUs).
    pub(crate) oversubscribed: Option<bool>,
    /// `TOCSIN_FAST_PATHS`: fast rings per rank (`None`: by the node's rank count).
    pub(crate) fast_paths: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            progress: ProgressMode::Poll,
            eager_threshold: DEFAULT_EAGER_THRESHOLD,
            eager_auto: true,
            cma: true,
            cma_set: false,
            chunk_set: false,
            tune: true,
            ring_bytes: None,
            spin_us: None,
            chunk_bytes: crate::tune::DEFAULT_CHUNK_BYTES,
            posix_shm: false,
            nolocal: false,
            tcp_if: None,
            signal: None,
            progress_core: None,
            oversubscribed: None,
            fast_paths: None,
        }
    }
}

/// How [`Config`] reads a variable: `std::env::var`, or a table in tests.
type Lookup<'a> = &'a dyn Fn(&str) -> std::result::Result<String, std::env::VarError>;

/// Reads a boolean variable: `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`; anything
/// else is an [`Error::Config`] naming it.
fn env_bool(get: Lookup<'_>, name: &'static str) -> Result<Option<bool>> {
    let Some(v) = env_parse::<String>(get, name, "0 or 1")? else {
        return Ok(None);
    };
    match v.as_str() {
        "0" | "false" | "no" | "off" => Ok(Some(false)),
        "1" | "true" | "yes" | "on" => Ok(Some(true)),
        _ => Err(Error::Config {
            name,
            value: v,
            reason: "expected 0 or 1".into(),
        }),
    }
}

/// Reads `name` through `get` and parses it as a `T`; `what` (what is accepted) goes into
/// the error, with the value as typed.
fn env_parse<T: std::str::FromStr>(
    get: Lookup<'_>,
    name: &'static str,
    what: &str,
) -> Result<Option<T>> {
    match get(name) {
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => v.trim().parse().map(Some).map_err(|_| Error::Config {
            name,
            value: v.clone(),
            reason: format!("expected {what}"),
        }),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(Error::Config {
            name,
            value: v.to_string_lossy().into_owned(),
            reason: "not valid UTF-8".into(),
        }),
    }
}

/// Parses a byte count: digits, optionally followed by a binary suffix `K`, `M` or `G`
/// (also `KiB`, `MiB`, `GiB`, any case): `65536`, `64K`, `1M`. `None` if malformed or too
/// large for `usize`.
fn parse_bytes(v: &str) -> Option<usize> {
    let t = v.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    let n: usize = num.parse().ok()?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return None,
    };
    n.checked_mul(1usize << shift)
}

/// A `TOCSIN_*` byte count ([`parse_bytes`]); `what` names the accepted values.
fn env_bytes(get: Lookup<'_>, name: &'static str, what: &str) -> Result<Option<usize>> {
    match env_parse::<String>(get, name, what)? {
        None => Ok(None),
        Some(v) => parse_bytes(&v).map(Some).ok_or_else(|| Error::Config {
            name,
            value: v,
            reason: format!("expected {what} (digits, optionally with K, M or G: 64K, 1M)"),
        }),
    }
}

impl Config {
    /// Defaults overridden by the environment (byte counts accept a binary suffix: `64K`,
    /// `1M`, `1G`):
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `TOCSIN_PROGRESS` | `poll`, `block`, `thread`, `signal` or `uintr` | `poll` |
    /// | `TOCSIN_EAGER_THRESHOLD` | largest eager message, bytes, `0..=`[`MAX_EAGER_THRESHOLD`] (and at most a quarter of the ring in force) | measured (1 KiB..=64 KiB), else 65536; at most a quarter of the default ring (32768 above 9 ranks, 16384 above 17) |
    /// | `TOCSIN_CMA` | `0` disables the single-copy (CMA) rendezvous, `1` uses it when permitted | measured, else `1` |
    /// | `TOCSIN_TUNE` | `0`: the four measured values below keep their built-in defaults; read by rank 0 for the whole job | `1`: rank 0 reads the tuned cache, or calibrates this machine (< 0.3 s) when there is none, and every rank uses its values ([`crate::tune`]) |
    /// | `TOCSIN_CACHE_DIR` | directory of the tuned cache | `$XDG_CACHE_HOME/tocsin`, else `~/.cache/tocsin` |
    /// | `TOCSIN_RING_BYTES` | bytes of each fast ring: a power of two in [`MIN_RING_BYTES`]`..=`[`MAX_RING_BYTES`] (4 KiB to 1 GiB) | by rank count, see below |
    /// | `TOCSIN_FAST_PATHS` | fast rings per rank, `0..=`[`MAX_FAST_PATHS`] (at most the node's ranks − 1; fewer than that: rings claimed by the pairs that talk most, the others through inboxes) | ranks − 1 up to 33 ranks per node, 32 above |
    /// | `TOCSIN_SPIN_US` | `block` and up: µs spent spinning before sleeping, `0..=`[`MAX_SPIN_US`] | adaptive: 4× the wake-up cost measured at `init`, 20..=250 µs (none when oversubscribed) |
    /// | `TOCSIN_CHUNK_BYTES` | pipelined rendezvous chunk, bytes, [`MIN_CHUNK_BYTES`]`..=`[`MAX_CHUNK_BYTES`] | measured (4 KiB..=1 MiB), else 65536 |
    /// | `TOCSIN_SIGNAL` | `signal` mode: a signal number in `SIGRTMIN..=SIGRTMAX`, or `rtmin+K` | first free of `rtmin+3..` |
    /// | `TOCSIN_PROGRESS_CORE` | `thread` mode: hwloc index of the core the progress thread is bound to | unbound (inherits the rank's binding) |
    /// | `TOCSIN_NOLOCAL` | `1`: every peer through TCP, none through shared memory (as MPICH's `MPIR_CVAR_NOLOCAL`), for tests and comparisons | `0` |
    /// | `TOCSIN_TCP_IF` | the interface TCP peers reach this rank on: a name (`eth0`, `lo`) or an IPv4 CIDR (`10.0.0.0/8`) | the address the host name resolves to |
    /// | `TOCSIN_SHM` | `memfd` (no name anywhere) or `posix` (`/dev/shm`, unlinked once mapped) | `memfd` |
    /// | `TOCSIN_OVERSUBSCRIBED` | `1`: more ranks than cores, waits yield the core (`poll`) or sleep without spinning (`block` and up); `0`: never; `auto` | `auto`: local ranks (`MPI_LOCALNRANKS`) above the online CPUs |
    ///
    /// An explicit variable (or builder call) always wins over the measured value; as for
    /// every setting, all ranks of a job must agree on it. The measured values are rank 0's,
    /// published through PMI, so ranks without overrides agree by construction.
    ///
    /// The node's shared segment holds a 64-byte header, and per rank a 128-byte control
    /// block, a 32 KiB inbox (every peer can post small records to it) and `k` fast rings
    /// (`TOCSIN_FAST_PATHS`): `64 + 128·n + n·(32 KiB + 64·⌈n/512⌉) + n·k·(64 + ring bytes)`,
    /// O(n) for a fixed `k`. Up to 33 ranks per node every pair has its ring from the start
    /// (`k = n − 1`); above, each rank has 32 rings, claimed by the peers that send it the
    /// most. By default a ring gets 4 MiB / k rounded down to a power of two, clamped to
    /// 64 KiB..=1 MiB (and raised if the eager threshold needs it): about 4 MiB of rings per
    /// rank whatever `n` (128 MiB at 33 ranks, 512 MiB at 128, 4 GiB at 1,024, of which only
    /// touched pages cost memory). `init` refuses a segment whose size overflows or exceeds
    /// what can be mapped, naming `TOCSIN_RING_BYTES`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable, the value as typed and what is accepted.
    pub fn from_env() -> Result<Config> {
        Self::from_lookup(&|k| std::env::var(k))
    }

    /// [`from_env`](Self::from_env) reading variables through `get` (testable).
    fn from_lookup(get: Lookup<'_>) -> Result<Config> {
        let mut c = Config::default();
        if let Some(p) = env_parse::<String>(
            get,
            "TOCSIN_PROGRESS",
            "one of poll, block, thread, signal, uintr",
        )? {
            c.progress = p.parse()?;
        }
        if let Some(v) = env_bytes(
            get,
            "TOCSIN_EAGER_THRESHOLD",
            &format!("a byte count in 0..={MAX_EAGER_THRESHOLD}"),
        )? {
            c.eager_threshold = v;
            c.eager_auto = false;
        }
        if let Some(v) = env_bool(get, "TOCSIN_CMA")? {
            c.cma = v;
            c.cma_set = true;
        }
        if let Some(v) = env_bool(get, "TOCSIN_TUNE")? {
            c.tune = v;
        }
        if let Some(v) = env_bool(get, "TOCSIN_NOLOCAL")? {
            c.nolocal = v;
        }
        if let Some(v) =
            env_parse::<String>(get, "TOCSIN_TCP_IF", "an interface name or IPv4 CIDR")?
        {
            if v.is_empty() || v.len() > 64 {
                return Err(Error::Config {
                    name: "TOCSIN_TCP_IF",
                    value: v,
                    reason: "expected an interface name (lo, eth0) or an IPv4 CIDR (10.0.0.0/8)"
                        .into(),
                });
            }
            c.tcp_if = Some(v);
        }
        if let Some(v) = env_bytes(
            get,
            "TOCSIN_RING_BYTES",
            &format!("a byte count, a power of two in {MIN_RING_BYTES}..={MAX_RING_BYTES}"),
        )? {
            c.ring_bytes = Some(v);
        }
        if let Some(v) = env_parse::<u32>(
            get,
            "TOCSIN_FAST_PATHS",
            &format!("a ring count in 0..={MAX_FAST_PATHS}"),
        )? {
            if v > MAX_FAST_PATHS {
                return Err(Error::Config {
                    name: "TOCSIN_FAST_PATHS",
                    value: v.to_string(),
                    reason: format!("expected a ring count in 0..={MAX_FAST_PATHS}"),
                });
            }
            c.fast_paths = Some(v);
        }
        if let Some(v) = env_parse(
            get,
            "TOCSIN_SPIN_US",
            &format!("a number of microseconds in 0..={MAX_SPIN_US}"),
        )? {
            c.spin_us = Some(v);
        }
        if let Some(v) = env_bytes(
            get,
            "TOCSIN_CHUNK_BYTES",
            &format!("a byte count in {MIN_CHUNK_BYTES}..={MAX_CHUNK_BYTES}"),
        )? {
            c.chunk_bytes = v;
            c.chunk_set = true;
        }
        if let Some(v) = env_parse::<String>(get, "TOCSIN_SHM", "memfd or posix")? {
            c.posix_shm = match v.as_str() {
                "memfd" => false,
                "posix" => true,
                _ => {
                    return Err(Error::Config {
                        name: "TOCSIN_SHM",
                        value: v,
                        reason: "expected memfd or posix".into(),
                    })
                }
            };
        }
        if let Some(v) = env_parse::<String>(get, "TOCSIN_SIGNAL", "a signal number or rtmin+K")? {
            c.signal = Some(parse_signal(&v)?);
        }
        if let Some(v) = env_parse(
            get,
            "TOCSIN_PROGRESS_CORE",
            "a core index (hwloc logical index, 0 to the number of cores - 1)",
        )? {
            c.progress_core = Some(v);
        }
        if let Some(v) = env_parse::<String>(get, "TOCSIN_OVERSUBSCRIBED", "0, 1 or auto")? {
            c.oversubscribed = match v.as_str() {
                "1" => Some(true),
                "0" => Some(false),
                "auto" | "" => None,
                _ => {
                    return Err(Error::Config {
                        name: "TOCSIN_OVERSUBSCRIBED",
                        value: v,
                        reason: "expected 0, 1 or auto".into(),
                    })
                }
            };
        }
        // Quote the value as typed, not as parsed.
        c.validate().map_err(|e| match e {
            Error::Config {
                name,
                value,
                reason,
            } => Error::Config {
                name,
                value: get(name).ok().filter(|v| !v.is_empty()).unwrap_or(value),
                reason,
            },
            e => e,
        })?;
        Ok(c)
    }

    /// Sets the progress mode.
    pub fn progress(mut self, mode: ProgressMode) -> Self {
        self.progress = mode;
        self
    }
    /// Sets the largest message sent eagerly, bytes; larger ones use the rendezvous.
    /// Accepted: `0..=`[`MAX_EAGER_THRESHOLD`], and small enough that a message and its
    /// header fit a quarter of the ring in force (checked by [`Config::init`]).
    pub fn eager_threshold(mut self, bytes: usize) -> Self {
        self.eager_threshold = bytes;
        self.eager_auto = false;
        self
    }
    /// Enables or disables the single-copy rendezvous through Linux CMA
    /// (`process_vm_readv`/`process_vm_writev`); when off, large messages are pipelined
    /// through shared-memory chunks.
    pub fn cma(mut self, enabled: bool) -> Self {
        self.cma = enabled;
        self.cma_set = true;
        self
    }
    /// With `false` (`TOCSIN_TUNE=0`), the eager threshold, CMA, chunk and spin not set
    /// explicitly keep their built-in defaults instead of values measured on this machine
    /// ([`crate::tune`]). Rank 0's setting applies to the whole job.
    pub fn tune(mut self, yes: bool) -> Self {
        self.tune = yes;
        self
    }
    /// With `true`, every peer is reached through the network transport (TCP), even on this
    /// node (`TOCSIN_NOLOCAL=1`).
    pub fn nolocal(mut self, yes: bool) -> Self {
        self.nolocal = yes;
        self
    }
    /// The interface TCP peers reach this rank on: a name (`lo`) or an IPv4 CIDR
    /// (`10.0.0.0/8`), as `TOCSIN_TCP_IF`.
    pub fn tcp_interface(mut self, spec: impl Into<String>) -> Self {
        self.tcp_if = Some(spec.into());
        self
    }
    /// Sets the size of each per-pair ring, bytes: a power of two in
    /// [`MIN_RING_BYTES`]`..=`[`MAX_RING_BYTES`] (checked by [`Config::init`], which also
    /// checks that the whole segment, n² rings, can be mapped).
    pub fn ring_bytes(mut self, bytes: usize) -> Self {
        self.ring_bytes = Some(bytes);
        self
    }
    /// `block` mode and up: how long `wait` spins before it sleeps, µs
    /// (`0..=`[`MAX_SPIN_US`]), instead of the adaptive spin (a small multiple of the
    /// measured wake-up cost).
    pub fn spin_us(mut self, us: u64) -> Self {
        self.spin_us = Some(us);
        self
    }
    /// Chunk size of the pipelined (non-CMA) rendezvous, bytes
    /// ([`MIN_CHUNK_BYTES`]`..=`[`MAX_CHUNK_BYTES`]; clamped to what a ring record carries).
    pub fn chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk_bytes = bytes;
        self.chunk_set = true;
        self
    }

    /// Every value [`crate::tune`] chooses was set explicitly: nothing to tune.
    pub(crate) fn all_tunables_set(&self) -> bool {
        !self.eager_auto && self.cma_set && self.chunk_set
    }

    /// Uses a POSIX shared-memory object (unlinked once every rank mapped it) instead of a
    /// memfd for the job segment.
    pub fn posix_shm(mut self, yes: bool) -> Self {
        self.posix_shm = yes;
        self
    }

    /// `signal` mode: the real-time signal to use (an absolute number between `SIGRTMIN`
    /// and `SIGRTMAX`).
    pub fn signal(mut self, signo: i32) -> Self {
        self.signal = Some(signo);
        self
    }

    /// `thread` mode: bind the progress thread to this core (hwloc logical index).
    pub fn progress_core(mut self, core: usize) -> Self {
        self.progress_core = Some(core);
        self
    }

    /// Declares the node oversubscribed (more ranks than cores: waits yield the core) or
    /// not; by default it is detected at `init` (local ranks, from the launcher's
    /// `MPI_LOCALNRANKS`, above the online CPUs).
    pub fn oversubscribed(mut self, yes: bool) -> Self {
        self.oversubscribed = Some(yes);
        self
    }

    /// The progress mode chosen.
    pub fn progress_mode(&self) -> ProgressMode {
        self.progress
    }
    /// The eager threshold, bytes. On a running communicator's config (`Comm::config`), the
    /// value in force; before `init`, the one set, or the 64 KiB maximum of the default (which
    /// `init` lowers for large jobs: the power of two that lets four eager messages fit in a
    /// ring of the default size).
    pub fn eager_threshold_bytes(&self) -> usize {
        self.eager_threshold
    }

    /// Checks every setting against its bounds (those of the `TOCSIN_*` table in
    /// [`Config::from_env`]). What depends on the job size (the segment, and the eager
    /// threshold against the ring in force) is checked during `init`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting, its value and what is accepted.
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(s) = self.signal {
            let (lo, hi) = (libc::SIGRTMIN(), libc::SIGRTMAX());
            if s < lo || s > hi {
                return Err(Error::Config {
                    name: "TOCSIN_SIGNAL",
                    value: s.to_string(),
                    reason: format!(
                        "must be a real-time signal, {lo}..={hi} (rtmin+0..=rtmin+{}) on this system",
                        hi - lo
                    ),
                });
            }
        }
        if let Some(r) = self.ring_bytes {
            if !r.is_power_of_two() || !(MIN_RING_BYTES..=MAX_RING_BYTES).contains(&r) {
                return Err(Error::Config {
                    name: "TOCSIN_RING_BYTES",
                    value: r.to_string(),
                    reason: format!(
                        "must be a power of two in {MIN_RING_BYTES}..={MAX_RING_BYTES} \
                         (4 KiB to 1 GiB per ring; the segment holds n² rings)"
                    ),
                });
            }
        }
        if self.eager_threshold > MAX_EAGER_THRESHOLD {
            return Err(Error::Config {
                name: "TOCSIN_EAGER_THRESHOLD",
                value: self.eager_threshold.to_string(),
                reason: format!(
                    "must be in 0..={MAX_EAGER_THRESHOLD} bytes (an eager message and its \
                     header must fit a quarter of the largest ring, {MAX_RING_BYTES} bytes)"
                ),
            });
        }
        if let (Some(ring), false) = (self.ring_bytes, self.eager_auto) {
            // Both explicit: check now, before the launcher connection is used.
            let most = crate::ring::max_body(ring) - crate::wire::EAGER_HDR_LEN;
            if self.eager_threshold > most {
                return Err(Error::Config {
                    name: "TOCSIN_EAGER_THRESHOLD",
                    value: self.eager_threshold.to_string(),
                    reason: format!(
                        "must be in 0..={most} bytes with TOCSIN_RING_BYTES={ring} (an eager \
                         message and its header must fit a quarter of a ring): lower it or \
                         raise TOCSIN_RING_BYTES"
                    ),
                });
            }
        }
        if !(MIN_CHUNK_BYTES..=MAX_CHUNK_BYTES).contains(&self.chunk_bytes) {
            return Err(Error::Config {
                name: "TOCSIN_CHUNK_BYTES",
                value: self.chunk_bytes.to_string(),
                reason: format!("must be in {MIN_CHUNK_BYTES}..={MAX_CHUNK_BYTES} bytes"),
            });
        }
        if let Some(us) = self.spin_us.filter(|&us| us > MAX_SPIN_US) {
            return Err(Error::Config {
                name: "TOCSIN_SPIN_US",
                value: us.to_string(),
                reason: format!(
                    "must be in 0..={MAX_SPIN_US} µs (10 s); use TOCSIN_PROGRESS=poll to spin forever"
                ),
            });
        }
        Ok(())
    }
}

/// Parses `TOCSIN_SIGNAL`: an absolute number (`40`) or `rtmin+K` (`rtmin+3`), which must
/// name a real-time signal (`SIGRTMIN..=SIGRTMAX`). Errors quote the text as typed.
fn parse_signal(v: &str) -> Result<i32> {
    let (lo, hi) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let bad = |reason: String| Error::Config {
        name: "TOCSIN_SIGNAL",
        value: v.into(),
        reason,
    };
    let range = || {
        format!(
            "must be a real-time signal: a number in {lo}..={hi} or rtmin+K with K in 0..={} on this system",
            hi - lo
        )
    };
    let l = v.trim().to_ascii_lowercase();
    let signo = if let Some(k) = l
        .strip_prefix("rtmin+")
        .or_else(|| l.strip_prefix("sigrtmin+"))
    {
        let k: i32 = k.parse().map_err(|_| {
            bad(format!(
                "expected rtmin+K with K a number in 0..={}",
                hi - lo
            ))
        })?;
        lo.checked_add(k).ok_or_else(|| bad(range()))?
    } else if l == "rtmin" || l == "sigrtmin" {
        lo
    } else {
        l.parse()
            .map_err(|_| bad(format!("expected a signal number or rtmin+K; {}", range())))?
    };
    if !(lo..=hi).contains(&signo) {
        return Err(bad(range()));
    }
    Ok(signo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_name() {
        for m in ProgressMode::ALL {
            assert_eq!(m.name().parse::<ProgressMode>().unwrap(), m);
        }
        let e = "spin".parse::<ProgressMode>().unwrap_err().to_string();
        assert!(
            e.contains("TOCSIN_PROGRESS") && e.contains("spin") && e.contains("signal"),
            "{e}"
        );
    }

    #[test]
    fn signals_parse_and_validate() {
        assert_eq!(parse_signal("rtmin+3").unwrap(), libc::SIGRTMIN() + 3);
        assert_eq!(parse_signal("40").unwrap(), 40);
        assert!(parse_signal("usr1").is_err());
        assert!(Config::default().signal(libc::SIGUSR1).validate().is_err());
        assert!(Config::default()
            .signal(libc::SIGRTMIN() + 1)
            .validate()
            .is_ok());
    }

    /// The error of `r`, which must be `Error::Config` for `name`, as text.
    fn config_err<T: std::fmt::Debug>(r: Result<T>, name: &str) -> String {
        match r {
            Err(e @ Error::Config { name: n, .. }) if n == name => e.to_string(),
            other => panic!("expected Error::Config for {name}, got {other:?}"),
        }
    }

    #[test]
    fn signal_overflow_quotes_what_was_typed() {
        for typed in [
            "rtmin+2147483647",
            "RTMIN+2147483647",
            "rtmin+99",
            "rtmin+-1",
            "2147483647",
            "-5",
            "rtmin+x",
        ] {
            let e = config_err(parse_signal(typed), "TOCSIN_SIGNAL");
            assert!(e.contains(&format!("{typed:?}")), "{typed}: {e}");
            assert!(
                e.contains("rtmin+"),
                "{typed}: {e} (must say what is accepted)"
            );
        }
        let e = config_err(parse_signal("rtmin+2147483647"), "TOCSIN_SIGNAL");
        assert!(!e.contains("=\"-"), "a wrapped negative number leaked: {e}");
        let hi = libc::SIGRTMAX() - libc::SIGRTMIN();
        assert_eq!(
            parse_signal(&format!("rtmin+{hi}")).unwrap(),
            libc::SIGRTMAX()
        );
    }

    #[test]
    fn ring_bytes_must_be_a_power_of_two() {
        assert!(Config::default().ring_bytes(5000).validate().is_err());
        assert!(Config::default().ring_bytes(1 << 16).validate().is_ok());
    }

    #[test]
    fn sizes_are_bounded() {
        let ok = |c: Config| c.validate().unwrap();
        ok(Config::default().ring_bytes(MIN_RING_BYTES));
        ok(Config::default().ring_bytes(MAX_RING_BYTES));
        ok(Config::default().eager_threshold(MAX_EAGER_THRESHOLD));
        ok(Config::default().eager_threshold(0));
        ok(Config::default().spin_us(MAX_SPIN_US));
        ok(Config::default().chunk_bytes(MAX_CHUNK_BYTES));
        for (c, name) in [
            (Config::default().ring_bytes(1 << 62), "TOCSIN_RING_BYTES"),
            (Config::default().ring_bytes(2048), "TOCSIN_RING_BYTES"),
            (
                Config::default().ring_bytes(MAX_RING_BYTES * 2),
                "TOCSIN_RING_BYTES",
            ),
            (
                Config::default().eager_threshold(32 << 30),
                "TOCSIN_EAGER_THRESHOLD",
            ),
            (
                Config::default().eager_threshold(usize::MAX),
                "TOCSIN_EAGER_THRESHOLD",
            ),
            (
                Config::default().eager_threshold(MAX_EAGER_THRESHOLD + 1),
                "TOCSIN_EAGER_THRESHOLD",
            ),
            (Config::default().chunk_bytes(1), "TOCSIN_CHUNK_BYTES"),
            (
                Config::default().chunk_bytes(usize::MAX),
                "TOCSIN_CHUNK_BYTES",
            ),
            (Config::default().spin_us(u64::MAX), "TOCSIN_SPIN_US"),
        ] {
            let e = config_err(c.validate(), name);
            assert!(e.contains("..="), "{name}: {e} (must say what is accepted)");
        }
        let e = config_err(
            Config::default()
                .ring_bytes(4096)
                .eager_threshold(2048)
                .validate(),
            "TOCSIN_EAGER_THRESHOLD",
        );
        assert!(
            e.contains("0..=1000") && e.contains("TOCSIN_RING_BYTES=4096"),
            "{e}"
        );
        ok(Config::default().ring_bytes(4096).eager_threshold(1000));
        ok(Config::default().ring_bytes(4096)); // automatic threshold: init derives it
                                                // The largest eager message fits a quarter of the largest ring.
        assert!(
            MAX_EAGER_THRESHOLD + crate::wire::EAGER_HDR_LEN
                <= crate::ring::max_body(MAX_RING_BYTES)
        );
    }

    fn lookup(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> std::result::Result<String, std::env::VarError> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
                .ok_or(std::env::VarError::NotPresent)
        }
    }

    #[test]
    fn environment_values_are_bounded_and_quoted_as_typed() {
        for (pairs, name, typed, accepted) in [
            (
                &[("TOCSIN_RING_BYTES", "4611686018427387904")][..],
                "TOCSIN_RING_BYTES",
                "4611686018427387904",
                "4096..=1073741824",
            ),
            (
                &[("TOCSIN_RING_BYTES", " 65537")][..],
                "TOCSIN_RING_BYTES",
                " 65537",
                "power of two",
            ),
            (
                &[("TOCSIN_EAGER_THRESHOLD", "34359738368")][..],
                "TOCSIN_EAGER_THRESHOLD",
                "34359738368",
                "0..=268435432",
            ),
            (
                &[("TOCSIN_EAGER_THRESHOLD", "18446744073709551615")][..],
                "TOCSIN_EAGER_THRESHOLD",
                "18446744073709551615",
                "0..=268435432",
            ),
            (
                &[("TOCSIN_EAGER_THRESHOLD", "18446744073709551616")][..],
                "TOCSIN_EAGER_THRESHOLD",
                "18446744073709551616",
                "0..=268435432",
            ),
            (
                &[("TOCSIN_SPIN_US", "18446744073709551615")][..],
                "TOCSIN_SPIN_US",
                "18446744073709551615",
                "0..=10000000",
            ),
            (
                &[("TOCSIN_CHUNK_BYTES", "8")][..],
                "TOCSIN_CHUNK_BYTES",
                "8",
                "64..=1073741824",
            ),
            (
                &[("TOCSIN_SIGNAL", "rtmin+2147483647")][..],
                "TOCSIN_SIGNAL",
                "rtmin+2147483647",
                "rtmin+K",
            ),
            (
                &[("TOCSIN_PROGRESS", "spin")][..],
                "TOCSIN_PROGRESS",
                "spin",
                "poll, block, thread, signal, uintr",
            ),
            (
                &[("TOCSIN_PROGRESS_CORE", "-1")][..],
                "TOCSIN_PROGRESS_CORE",
                "-1",
                "core index",
            ),
        ] {
            let get = lookup(pairs);
            let e = config_err(Config::from_lookup(&get), name);
            assert!(e.contains(&format!("{typed:?}")), "{e}");
            assert!(e.contains(accepted), "{e}");
        }
        let get = lookup(&[
            ("TOCSIN_RING_BYTES", "1073741824"),
            ("TOCSIN_EAGER_THRESHOLD", "268435432"),
            ("TOCSIN_SPIN_US", "10000000"),
        ]);
        let c = Config::from_lookup(&get).unwrap();
        assert_eq!(c.ring_bytes, Some(MAX_RING_BYTES));
        assert_eq!(c.eager_threshold_bytes(), MAX_EAGER_THRESHOLD);
    }

    #[test]
    fn byte_counts_take_binary_suffixes() {
        let get = lookup(&[
            ("TOCSIN_RING_BYTES", "1M"),
            ("TOCSIN_EAGER_THRESHOLD", "16k"),
            ("TOCSIN_CHUNK_BYTES", "64KiB"),
        ]);
        let c = Config::from_lookup(&get).unwrap();
        assert_eq!(c.ring_bytes, Some(1 << 20));
        assert_eq!(c.eager_threshold_bytes(), 16 << 10);
        assert_eq!(c.chunk_bytes, 64 << 10);
        for pairs in [
            &[("TOCSIN_RING_BYTES", "2X")][..],
            &[("TOCSIN_RING_BYTES", "K")][..],
            &[("TOCSIN_RING_BYTES", "1.5M")][..],
            &[("TOCSIN_RING_BYTES", "-4K")][..],
            &[("TOCSIN_RING_BYTES", "99999999999G")][..],
        ] {
            let typed = pairs[0].1;
            let get = lookup(pairs);
            let e = config_err(Config::from_lookup(&get), "TOCSIN_RING_BYTES");
            assert!(e.contains(&format!("{typed:?}")), "{e}");
            assert!(e.contains("64K, 1M"), "{e}");
        }
    }
}
