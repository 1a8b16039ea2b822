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
    /// `wait` spins for [`Config::spin_us`] then sleeps on a futex doorbell in the shared
    /// segment; a sender rings it only when the receiver declared itself asleep.
    Block,
    /// As `block`, plus a progress thread per rank (PIOMan-style) that spins a bounded time
    /// then sleeps on the doorbell, so requests progress while the application computes.
    /// Bind it with [`Config::progress_core`] / `TOCSIN_PROGRESS_CORE`.
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
    /// The name used by `TOCSIN_PROGRESS` (`"poll"`, `"block"`).
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

/// Largest default eager/rendezvous threshold, bytes. Measured with `tocsin bench pingpong`
/// on the development machine (BENCHMARKS.md): up to 64 KiB the two-copy eager path beats
/// the single-copy CMA rendezvous (2.2 vs 5.9 µs at 64 KiB), whose system call and page
/// pinning cost about 4 µs. With many ranks the default shrinks so that four eager messages
/// fit in each (smaller) ring: see [`Config::eager_threshold_bytes`].
pub const DEFAULT_EAGER_THRESHOLD: usize = 64 * 1024;

/// Default spin before a waiting thread sleeps, µs. On the development VM waking a sleeping
/// thread costs 16–30 µs plus the idle-exit of its vCPU, which a waiting peer pays on every
/// message it sleeps through; a 1 ms spin keeps that off messages that arrive within 1 ms,
/// while a rank blocked 200 ms still uses about 1.2 ms of CPU (BENCHMARKS.md).
pub const DEFAULT_SPIN_US: u64 = 1000;

/// Start-up settings. Build with [`Config::default`] or [`Config::from_env`], adjust with
/// the builder methods, then call [`Config::init`].
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) progress: ProgressMode,
    pub(crate) eager_threshold: usize,
    pub(crate) eager_auto: bool,
    pub(crate) cma: bool,
    pub(crate) ring_bytes: Option<usize>,
    pub(crate) spin_us: u64,
    pub(crate) chunk_bytes: usize,
    pub(crate) posix_shm: bool,
    pub(crate) signal: Option<i32>,
    pub(crate) progress_core: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            progress: ProgressMode::Poll,
            eager_threshold: DEFAULT_EAGER_THRESHOLD,
            eager_auto: true,
            cma: true,
            ring_bytes: None,
            spin_us: DEFAULT_SPIN_US,
            chunk_bytes: 64 * 1024,
            posix_shm: false,
            signal: None,
            progress_core: None,
        }
    }
}

fn env_parse<T: std::str::FromStr>(name: &'static str, what: &str) -> Result<Option<T>> {
    match std::env::var(name) {
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

impl Config {
    /// Defaults overridden by the environment:
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `TOCSIN_PROGRESS` | `poll` or `block` | `poll` |
    /// | `TOCSIN_EAGER_THRESHOLD` | largest eager message, bytes | 65536 up to 8 ranks, less above |
    /// | `TOCSIN_CMA` | `0` disables the single-copy (CMA) rendezvous | `1` |
    /// | `TOCSIN_RING_BYTES` | bytes of each per-pair ring (power of two, ≥ 4096) | by rank count |
    /// | `TOCSIN_SPIN_US` | `block` and up: µs spent spinning before sleeping | 1000 |
    /// | `TOCSIN_CHUNK_BYTES` | pipelined rendezvous chunk, bytes | 65536 |
    /// | `TOCSIN_SIGNAL` | `signal` mode: signal number, or `rtmin+K` | first free of `rtmin+3..` |
    /// | `TOCSIN_PROGRESS_CORE` | `thread` mode: hwloc index of the core the progress thread is bound to | unbound (inherits the rank's binding) |
    /// | `TOCSIN_SHM` | `memfd` (no name anywhere) or `posix` (`/dev/shm`, unlinked once mapped) | `memfd` |
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable and the value it could not use.
    pub fn from_env() -> Result<Config> {
        let mut c = Config::default();
        if let Some(p) = env_parse::<String>("TOCSIN_PROGRESS", "poll or block")? {
            c.progress = p.parse()?;
        }
        if let Some(v) = env_parse("TOCSIN_EAGER_THRESHOLD", "a byte count")? {
            c.eager_threshold = v;
            c.eager_auto = false;
        }
        if let Some(v) = env_parse::<String>("TOCSIN_CMA", "0 or 1")? {
            c.cma = match v.as_str() {
                "0" | "false" | "no" | "off" => false,
                "1" | "true" | "yes" | "on" => true,
                _ => {
                    return Err(Error::Config {
                        name: "TOCSIN_CMA",
                        value: v,
                        reason: "expected 0 or 1".into(),
                    })
                }
            };
        }
        if let Some(v) = env_parse("TOCSIN_RING_BYTES", "a byte count")? {
            c.ring_bytes = Some(v);
        }
        if let Some(v) = env_parse("TOCSIN_SPIN_US", "microseconds")? {
            c.spin_us = v;
        }
        if let Some(v) = env_parse("TOCSIN_CHUNK_BYTES", "a byte count")? {
            c.chunk_bytes = v;
        }
        if let Some(v) = env_parse::<String>("TOCSIN_SHM", "memfd or posix")? {
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
        if let Some(v) = env_parse::<String>("TOCSIN_SIGNAL", "a signal number or rtmin+K")? {
            c.signal = Some(parse_signal(&v)?);
        }
        if let Some(v) = env_parse("TOCSIN_PROGRESS_CORE", "a core index")? {
            c.progress_core = Some(v);
        }
        c.validate()?;
        Ok(c)
    }

    /// Sets the progress mode.
    pub fn progress(mut self, mode: ProgressMode) -> Self {
        self.progress = mode;
        self
    }
    /// Sets the largest message sent eagerly, bytes; larger ones use the rendezvous.
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
        self
    }
    /// Sets the size of each per-pair ring, bytes (a power of two, at least 4096).
    pub fn ring_bytes(mut self, bytes: usize) -> Self {
        self.ring_bytes = Some(bytes);
        self
    }
    /// `block` mode: how long `wait` spins before it sleeps, µs.
    pub fn spin_us(mut self, us: u64) -> Self {
        self.spin_us = us;
        self
    }
    /// Chunk size of the pipelined (non-CMA) rendezvous, bytes.
    pub fn chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk_bytes = bytes;
        self
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

    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(s) = self.signal {
            let (lo, hi) = (libc::SIGRTMIN(), libc::SIGRTMAX());
            if s < lo || s > hi {
                return Err(Error::Config {
                    name: "TOCSIN_SIGNAL",
                    value: s.to_string(),
                    reason: format!("must be a real-time signal, {lo}..={hi} on this system"),
                });
            }
        }
        if let Some(r) = self.ring_bytes {
            if !r.is_power_of_two() || r < 4096 {
                return Err(Error::Config {
                    name: "TOCSIN_RING_BYTES",
                    value: r.to_string(),
                    reason: "must be a power of two of at least 4096".into(),
                });
            }
        }
        if self.chunk_bytes < 64 {
            return Err(Error::Config {
                name: "TOCSIN_CHUNK_BYTES",
                value: self.chunk_bytes.to_string(),
                reason: "must be at least 64".into(),
            });
        }
        Ok(())
    }

    /// Bootstraps through PMI (or as a singleton) and returns the world communicator.
    ///
    /// # Errors
    /// [`Error::Config`] for inconsistent settings, [`Error::Pmi`] if the launcher cannot
    /// be reached, [`Error::Io`] if the shared segment cannot be created or mapped,
    /// [`Error::AlreadyInitialized`] on a second call in one process.
    pub fn init(self) -> Result<crate::Comm> {
        self.validate()?;
        crate::comm::Comm::init(self)
    }
}

/// Parses `TOCSIN_SIGNAL`: an absolute number (`40`) or `rtmin+K` (`rtmin+3`).
fn parse_signal(v: &str) -> Result<i32> {
    let bad = |reason: &str| Error::Config {
        name: "TOCSIN_SIGNAL",
        value: v.into(),
        reason: reason.into(),
    };
    let l = v.to_ascii_lowercase();
    if let Some(k) = l
        .strip_prefix("rtmin+")
        .or_else(|| l.strip_prefix("sigrtmin+"))
    {
        let k: i32 = k
            .parse()
            .map_err(|_| bad("expected rtmin+K with K a number"))?;
        Ok(libc::SIGRTMIN() + k)
    } else if l == "rtmin" || l == "sigrtmin" {
        Ok(libc::SIGRTMIN())
    } else {
        v.parse()
            .map_err(|_| bad("expected a signal number or rtmin+K"))
    }
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

    #[test]
    fn ring_bytes_must_be_a_power_of_two() {
        assert!(Config::default().ring_bytes(5000).validate().is_err());
        assert!(Config::default().ring_bytes(1 << 16).validate().is_ok());
    }
}
