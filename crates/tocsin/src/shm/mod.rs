//! The shared-memory driver: one segment per job and host, per-pair rings, per-rank control
//! blocks (pid, doorbell), and single-copy transfers through Linux CMA.
//!
//! Owns the segment's layout, its creation and attachment during bootstrap, and the
//! [`Driver`](crate::protocol::Driver) implementation over its rings. It must not know about
//! requests or matching (that is [`crate::protocol`]) nor decide when to wait or sleep (that
//! is `crate::progress`).
//!
//! ## Segment
//! Rank 0 creates it as an anonymous `memfd` (no name in `/dev/shm` at all); the others open
//! it through `/proc/<pid of rank 0>/fd/<fd>`, published through PMI. With `TOCSIN_SHM=posix`
//! it is instead a POSIX object `/tocsin-<128 random bits>`, mode 0600, created exclusively,
//! and unlinked by rank 0 as soon as every rank has mapped it, or when rank 0 leaves the
//! bootstrap with an error; if rank 0 is killed before that, its reaper process unlinks it
//! ([`reaper`]; the launcher also unlinks it if the job dies before that).
//!
//! | offset | content |
//! |---|---|
//! | 0 | header line: magic, layout version, rank count, ring bytes, progress mode |
//! | 64 + 128·r | control block of rank r: line A (pid, tid, sleepers, polling, finished), line B (doorbell futex, interrupt pending) |
//! | rings base + (s·n + d)·(64 + cap) | ring from rank s to rank d: control line (consumer's head at 0, producer's "space wanted" word at 8) + data |
//!
//! Total: `64 + 128·n + n²·(64 + cap)` bytes ([`segment_len`]), so the segment grows as n²:
//! with the default rings ([`default_ring_bytes`]) at most about 64 MiB up to 32 ranks, then
//! n² × 64 KiB (1 GiB at 128 ranks, 4 GiB at 256). Only the pages touched cost memory.

use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, AtomicI32, AtomicU32, AtomicU64, Ordering};

mod reaper;

use crate::error::{Error, Result};
use crate::pmi::Pmi;
use crate::protocol::Driver;
use crate::ring::{self, Consumer, Producer, ShmRing, LINE};
use crate::sys::{self, Mapping};
use crate::wire::Header;
use crate::Rank;

const MAGIC: u64 = 0x7463_6f73_696e_0001; // "tcosin" + layout 1
const CTRL_BYTES: usize = 2 * LINE;

/// Per-rank control block in the segment.
///
/// Line A is written by the rank itself (its state), line B by its senders.
#[repr(C, align(64))]
pub(crate) struct Control {
    /// Process id of the rank (written at attach).
    pub pid: AtomicI32,
    /// Thread id of the registered thread, target of signals (written at attach).
    pub tid: AtomicI32,
    /// Threads of this rank asleep on `bell` ("armed"): senders ring only if non-zero.
    pub sleepers: AtomicU32,
    /// Threads of this rank polling its rings in a wait: senders need not interrupt.
    pub polling: AtomicU32,
    /// 1 once the rank has finished cleanly (dropped its communicator after pushing every
    /// record it had): it will publish nothing more. Written with `Release` after its last
    /// record.
    pub finished: AtomicU32,
    /// The real-time signal this rank's handler is installed for (`signal` mode; 0 if
    /// none): senders use each peer's own, so ranks need not agree on one.
    pub signo: AtomicI32,
    _pad: [u8; LINE - 24],
    /// The doorbell: a futex word bumped by senders that found `sleepers > 0`.
    pub bell: AtomicU32,
    /// 1 while an interrupt (signal or user interrupt) to this rank is outstanding.
    pub irq_pending: AtomicU32,
}

#[repr(C)]
struct SegHeader {
    magic: AtomicU64,
    nranks: AtomicU32,
    mode: AtomicU32,
    ring_cap: AtomicU64,
}

/// A mapped job segment.
pub(crate) struct Segment {
    map: Mapping,
    n: u32,
    cap: usize,
    posix_name: Option<String>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("n", &self.n)
            .field("cap", &self.cap)
            .finish()
    }
}

fn rings_base(n: u32) -> usize {
    LINE + CTRL_BYTES * n as usize
}

/// Largest job segment tocsin maps, bytes: 64 TiB, half the 47-bit user address space of
/// x86-64. Only touched pages cost memory, but a larger mapping cannot succeed.
pub(crate) const MAX_SEGMENT_BYTES: usize = 1 << 46;

/// Bytes of a segment for `n` ranks with `cap`-byte rings: the header line, `n` control
/// blocks and `n²` rings (`64 + 128·n + n²·(64 + cap)`), or `None` if that overflows `usize`.
pub(crate) fn segment_len(n: u32, cap: usize) -> Option<usize> {
    let n = n as usize;
    let rings = n.checked_mul(n)?.checked_mul(LINE.checked_add(cap)?)?;
    LINE.checked_add(CTRL_BYTES.checked_mul(n)?)?
        .checked_add(rings)
}

/// Default ring size for `n` ranks, bytes: half of `64 MiB / n²` rounded up to a power of
/// two, clamped to 64 KiB..=1 MiB, then raised (up to [`crate::config::MAX_RING_BYTES`]) so
/// that `eager` bytes plus a header fit in a quarter of it. The segment ([`segment_len`])
/// therefore stays at or below about 64 MiB up to 32 ranks (1 MiB rings up to 7 ranks, 64 KiB
/// from 23), then grows as n² × 64 KiB: 256 MiB at 64 ranks, 1 GiB at 128, 4 GiB at 256,
/// 1 TiB at 4096. Saturating: never overflows, whatever `n` and `eager`.
pub(crate) fn default_ring_bytes(n: u32, eager: usize) -> usize {
    let pairs = (n as usize).saturating_mul(n as usize).max(1);
    let mut cap = ((64usize << 20) / pairs).next_power_of_two() / 2;
    cap = cap.clamp(64 << 10, 1 << 20);
    let need = eager
        .saturating_add(64 + ring::WORD)
        .saturating_mul(4)
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX);
    cap.max(need).min(crate::config::MAX_RING_BYTES)
}

/// Default eager threshold for `n` ranks: [`crate::config::DEFAULT_EAGER_THRESHOLD`], or
/// less when rings are small (the largest power of two that lets an eager record fit a
/// quarter of the ring), at least 64 bytes.
pub(crate) fn default_eager_threshold(n: u32, ring_bytes: Option<usize>) -> usize {
    let cap = ring_bytes.unwrap_or_else(|| default_ring_bytes(n, 0));
    let room = ring::max_body(cap).saturating_sub(64);
    let pow = if room == 0 {
        0
    } else {
        1usize << (usize::BITS - 1 - room.leading_zeros())
    };
    pow.clamp(64, crate::config::DEFAULT_EAGER_THRESHOLD)
}

/// [`segment_len`] as a result: an overflowing or unmappable segment is an [`Error::Config`]
/// naming `TOCSIN_RING_BYTES`, reported before anything is created or mapped.
pub(crate) fn checked_segment_len(n: u32, cap: usize) -> Result<usize> {
    let too_big = |what: String| {
        Error::Config {
        name: "TOCSIN_RING_BYTES",
        value: cap.to_string(),
        reason: format!(
            "the shared segment for {n} ranks (64 + 128·n + n²·(64 + ring bytes)) {what}, \
             more than the {MAX_SEGMENT_BYTES}-byte limit: lower TOCSIN_RING_BYTES or run fewer ranks"
        ),
    }
    };
    match segment_len(n, cap) {
        None => Err(too_big("overflows".into())),
        Some(len) if len > MAX_SEGMENT_BYTES => Err(too_big(format!("would be {len} bytes"))),
        Some(len) => Ok(len),
    }
}

fn pmi_err(what: &str, e: std::io::Error) -> Error {
    Error::io(what.to_string(), e)
}

impl Segment {
    /// Creates (rank 0) or attaches (others) the job segment through PMI. Collective: every
    /// rank calls it. Also checks that every rank runs on this host and with the same
    /// progress mode.
    ///
    /// # Errors
    /// [`Error::Unsupported`] if ranks are on different hosts; [`Error::Config`] if their
    /// progress modes or ring sizes differ; [`Error::Io`] for system call failures;
    /// [`Error::Pmi`] if the launcher fails.
    ///
    /// Each rank makes O(1) PMI requests (rank 0: two puts; the others: two gets), so the
    /// bootstrap of n ranks costs the launcher O(n), not O(n²): a rank checks its host
    /// against rank 0's only (equality is transitive), and publishes its pid, thread id and
    /// signal in its control block, read by the others after the last barrier.
    pub(crate) fn bootstrap(
        pmi: &mut Pmi,
        cap: usize,
        mode: u32,
        posix: bool,
        signo: i32,
    ) -> Result<Segment> {
        let me = pmi.rank();
        let n = pmi.size();
        let host = sys::hostname();
        let len = checked_segment_len(n, cap)?;
        let mut keep_fd = None;
        let mut posix_name = None;
        let mut reaper = None;
        let seg = if me == 0 {
            let (fd, contact) = if posix {
                let mut r = [0u8; 16];
                sys::random_bytes(&mut r).map_err(|e| pmi_err("getrandom", e))?;
                let name = format!("/tocsin-{}", hex_bytes(&r));
                // Unlinks the name on every exit from here, SIGKILL included (see `reaper`).
                reaper = match reaper::Reaper::spawn(&name) {
                    Ok(rp) => Some(rp),
                    Err(e) => {
                        tracing::debug!(error = %e, "no reaper for {name}: a SIGKILL now leaks it");
                        None
                    }
                };
                let fd = sys::shm_create(&name, len).map_err(|e| {
                    pmi_err(
                        &format!(
                            "creating shared memory {name} ({len} bytes for {n} ranks; \
                             lower TOCSIN_RING_BYTES to shrink it)"
                        ),
                        e,
                    )
                })?;
                pmi.put("tocsin.shm.posix", &name)?;
                posix_name = Some(name.clone());
                (fd, format!("posix:{name}"))
            } else {
                let fd = sys::memfd("tocsin-job", len).map_err(|e| {
                    pmi_err(
                        &format!(
                            "creating a {len}-byte memfd segment for {n} ranks (lower \
                             TOCSIN_RING_BYTES to shrink it)"
                        ),
                        e,
                    )
                })?;
                let c = format!("memfd:{}:{}", std::process::id(), fd.as_raw_fd());
                (fd, c)
            };
            let map = Mapping::map(&fd, len).map_err(|e| {
                pmi_err(
                    &format!(
                        "mapping the {len}-byte segment (lower TOCSIN_RING_BYTES to shrink it)"
                    ),
                    e,
                )
            })?;
            keep_fd = Some(fd); // keep it open until every rank has attached
            let s = Segment {
                map,
                n,
                cap,
                posix_name: posix_name.clone(),
            };
            let h = s.header();
            h.nranks.store(n, Ordering::Relaxed);
            h.mode.store(mode, Ordering::Relaxed);
            h.ring_cap.store(cap as u64, Ordering::Relaxed);
            h.magic.store(MAGIC, Ordering::Release);
            pmi.put("tocsin.host", &hex(&host))?;
            pmi.put("tocsin.shm", &contact)?;
            pmi.barrier()?;
            s
        } else {
            pmi.barrier()?;
            let h0 = unhex(&pmi.get("tocsin.host")?);
            if h0 != host {
                return Err(Error::Unsupported(format!(
                    "rank 0 runs on host {h0:?} and rank {me} on {host:?}: tocsin has only the shared-memory driver so far, all ranks must share one host"
                )));
            }
            let contact = pmi.get("tocsin.shm")?;
            let fd = if let Some(name) = contact.strip_prefix("posix:") {
                sys::shm_open(name)
                    .map_err(|e| pmi_err(&format!("opening shared memory {name}"), e))?
            } else {
                let mut it = contact.strip_prefix("memfd:").unwrap_or("").split(':');
                let (pid, fd) = match (
                    it.next().and_then(|p| p.parse().ok()),
                    it.next().and_then(|f| f.parse().ok()),
                ) {
                    (Some(p), Some(f)) => (p, f),
                    _ => {
                        return Err(Error::Pmi(format!(
                            "malformed segment contact {contact:?} from rank 0"
                        )))
                    }
                };
                sys::open_proc_fd(pid, fd).map_err(|e| {
                    pmi_err(
                        &format!(
                            "opening rank 0's segment /proc/{pid}/fd/{fd} (try TOCSIN_SHM=posix)"
                        ),
                        e,
                    )
                })?
            };
            let flen = sys::fd_len(&fd).map_err(|e| pmi_err("fstat of the segment", e))?;
            if flen != len {
                return Err(Error::Config {
                    name: "TOCSIN_RING_BYTES",
                    value: cap.to_string(),
                    reason: format!("rank 0's segment is {flen} bytes but this rank expects {len}: ranks disagree on TOCSIN_RING_BYTES / TOCSIN_EAGER_THRESHOLD"),
                });
            }
            let map = Mapping::map(&fd, len).map_err(|e| pmi_err("mapping the segment", e))?;
            let s = Segment {
                map,
                n,
                cap,
                posix_name: None,
            };
            let h = s.header();
            if h.magic.load(Ordering::Acquire) != MAGIC || h.nranks.load(Ordering::Relaxed) != n {
                return Err(Error::Unsupported(
                    "the job segment has an unknown layout (mixed tocsin versions?)".into(),
                ));
            }
            let m = h.mode.load(Ordering::Relaxed);
            if m != mode {
                return Err(Error::Config {
                    name: "TOCSIN_PROGRESS",
                    value: mode_name(mode).into(),
                    reason: format!(
                        "rank 0 runs in {} mode: every rank must use the same progress mode",
                        mode_name(m)
                    ),
                });
            }
            s
        };
        seg.control(me).signo.store(signo, Ordering::Release);
        seg.control(me)
            .pid
            .store(std::process::id() as i32, Ordering::Release);
        // The calling thread is the registered thread, target of signals.
        seg.control(me)
            .tid
            .store(crate::interrupt::signal::gettid(), Ordering::Release);
        pmi.barrier()?; // every rank mapped the segment and published its pid
        drop(keep_fd);
        if let Some(name) = &seg.posix_name {
            sys::shm_unlink(name);
        }
        drop(reaper);
        Ok(seg)
    }

    fn header(&self) -> &SegHeader {
        // SAFETY: the mapping starts with a page-aligned SegHeader-sized area that is only
        // accessed through atomics.
        unsafe { &*(self.map.ptr() as *const SegHeader) }
    }

    /// Control block of rank `r`.
    pub(crate) fn control(&self, r: Rank) -> &Control {
        if r >= self.n {
            crate::diag::fatal("shm: control block of a rank outside the job");
        }
        // SAFETY: inside the mapping (layout above), 64-byte aligned, atomics only.
        unsafe { &*(self.map.ptr().add(LINE + CTRL_BYTES * r as usize) as *const Control) }
    }

    /// The ring carrying records from `src` to `dst`.
    pub(crate) fn ring(&self, src: Rank, dst: Rank) -> ShmRing {
        let off = rings_base(self.n)
            + (src as usize * self.n as usize + dst as usize) * ring::footprint(self.cap);
        crate::diag::debug_check!(off + ring::footprint(self.cap) <= self.map.len());
        // SAFETY: the range is inside the mapping, 64-byte aligned, zero at creation, and
        // lives as long as `self`; the engine drops its rings before the segment.
        unsafe { ShmRing::from_raw(self.map.ptr().add(off), self.cap) }
    }

    /// Ring bytes.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// After pushing records to rank `r`: what `r`'s published state asks for
    /// ([`crate::interrupt::decide`]). The `SeqCst` fence pairs with `r`'s `SeqCst` updates of
    /// `sleepers`/`polling` followed by a re-poll (Dekker): either `r` sees our records or we
    /// see the state that makes us ring or interrupt it. Rings the doorbell itself; returns
    /// `true` if the caller must send an interrupt (already claimed: coalesced).
    /// Async-signal-safe.
    pub(crate) fn notify(&self, r: Rank, sleeps: bool, interrupts: bool) -> bool {
        use crate::interrupt::{claim_interrupt, decide, Notify};
        let c = self.control(r);
        fence(Ordering::SeqCst);
        match decide(
            sleeps,
            interrupts,
            c.sleepers.load(Ordering::Relaxed),
            c.polling.load(Ordering::Relaxed),
        ) {
            Notify::Nothing => false,
            Notify::Doorbell => {
                self.wake(r);
                false
            }
            Notify::Interrupt => {
                let claimed = claim_interrupt(&c.irq_pending);
                if !claimed {
                    crate::stats::bump(crate::stats::Counter::InterruptsCoalesced);
                }
                claimed
            }
        }
    }

    /// The "space wanted" word of the ring from `src` to `dst` (offset 8 of the ring's
    /// control line, next to the consumer's head): `src` sets it while records wait for lack
    /// of room (before sleeping; in the interrupt modes after every pass that leaves some);
    /// `dst`, after freeing space, clears it and notifies `src` ([`Segment::space_freed`]).
    pub(crate) fn space_wanted(&self, src: Rank, dst: Rank) -> &AtomicU32 {
        let off = rings_base(self.n)
            + (src as usize * self.n as usize + dst as usize) * ring::footprint(self.cap)
            + 8;
        // SAFETY: inside the ring's 64-byte control line, whose first 8 bytes are the head
        // and the rest unused by the ring; 4-aligned; only accessed atomically.
        unsafe { &*(self.map.ptr().add(off) as *const AtomicU32) }
    }

    /// After this rank (`dst`) consumed records from `src`'s ring: `true` if `src` asked to
    /// be told when space frees up (the word is cleared; the caller then notifies `src` as
    /// for a record: doorbell if it sleeps, interrupt if it computes). The `SeqCst` fence
    /// pairs with `src`'s `SeqCst` store of the word followed by its re-check of the ring
    /// (Dekker): either it sees the space or we see the word. Async-signal-safe.
    pub(crate) fn space_freed(&self, src: Rank, dst: Rank) -> bool {
        fence(Ordering::SeqCst);
        let w = self.space_wanted(src, dst);
        w.load(Ordering::Relaxed) != 0 && w.swap(0, Ordering::SeqCst) != 0
    }

    /// Bumps rank `r`'s doorbell and wakes its sleepers.
    pub(crate) fn wake(&self, r: Rank) {
        let c = self.control(r);
        c.bell.fetch_add(1, Ordering::Release);
        sys::futex_wake_all(&c.bell);
        crate::stats::bump(crate::stats::Counter::Doorbells);
    }
}

fn mode_name(m: u32) -> &'static str {
    crate::ProgressMode::ALL
        .get(m as usize)
        .map_or("unknown", |p| p.name())
}

fn hex_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
fn hex(s: &str) -> String {
    hex_bytes(s.as_bytes())
}
fn unhex(s: &str) -> String {
    let b: Vec<u8> = (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    String::from_utf8_lossy(&b).into_owned()
}

/// The sending side of the shared-memory driver: one producer per peer, plus CMA.
pub(crate) struct ShmDriver {
    producers: Vec<Option<Producer<ShmRing>>>,
    pids: Vec<i32>,
    max_record: usize,
}

impl ShmDriver {
    /// Producers of `me`'s outgoing rings and the peers' pids (read from the segment).
    pub(crate) fn new(
        seg: Option<&Segment>,
        me: Rank,
        n: u32,
    ) -> (ShmDriver, Vec<Option<Consumer<ShmRing>>>) {
        let mut producers = Vec::with_capacity(n as usize);
        let mut consumers = Vec::with_capacity(n as usize);
        let mut pids = Vec::with_capacity(n as usize);
        for p in 0..n {
            match seg {
                Some(s) if p != me => {
                    producers.push(Some(Producer::new(s.ring(me, p))));
                    consumers.push(Some(Consumer::new(s.ring(p, me))));
                    pids.push(s.control(p).pid.load(Ordering::Acquire));
                }
                _ => {
                    producers.push(None);
                    consumers.push(None);
                    pids.push(std::process::id() as i32);
                }
            }
        }
        let max_record = seg.map_or(1 << 20, |s| ring::max_body(s.cap()));
        (
            ShmDriver {
                producers,
                pids,
                max_record,
            },
            consumers,
        )
    }

    /// Process id of `r`.
    pub(crate) fn pid(&self, r: Rank) -> i32 {
        self.pids[r as usize]
    }
}

impl Driver for ShmDriver {
    fn try_push(&mut self, peer: Rank, hdr: &Header, payload: &[u8]) -> bool {
        let Some(Some(p)) = self.producers.get_mut(peer as usize) else {
            crate::diag::fatal("shm: a record pushed toward a rank without a ring");
        };
        let hl = hdr.encoded_len();
        p.try_push(hl + payload.len(), &mut |b| {
            hdr.encode(b);
            b[hl..].copy_from_slice(payload);
        })
    }
    fn max_record(&self) -> usize {
        self.max_record
    }
    fn cma_read(&mut self, peer: Rank, remote: u64, local: &mut [u8]) -> std::io::Result<()> {
        sys::cma_read(self.pids[peer as usize], remote, local)
    }
    fn cma_write(&mut self, peer: Rank, remote: u64, local: &[u8]) -> std::io::Result<()> {
        sys::cma_write(self.pids[peer as usize], remote, local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_shrink_with_the_job() {
        assert_eq!(default_eager_threshold(2, None), 64 << 10);
        assert_eq!(default_eager_threshold(8, None), 64 << 10);
        assert_eq!(default_eager_threshold(16, None), 16 << 10);
        assert_eq!(default_eager_threshold(64, None), 8 << 10);
        assert_eq!(default_eager_threshold(2, Some(4096)), 512);
        for n in [1, 2, 3, 4, 8, 16, 64, 256] {
            let e = default_eager_threshold(n, None);
            let cap = default_ring_bytes(n, e);
            assert!(
                e + crate::wire::EAGER_HDR_LEN <= ring::max_body(cap),
                "n={n}"
            );
        }
    }

    #[test]
    fn segment_sizes_are_what_the_docs_say() {
        // 64 + 128·n + n²·(64 + cap)
        assert_eq!(segment_len(2, 4096), Some(64 + 256 + 4 * (64 + 4096)));
        let at = |n: u32| segment_len(n, default_ring_bytes(n, default_eager_threshold(n, None)));
        for n in 1..=32 {
            assert!(
                at(n).unwrap() <= 65 << 20,
                "at most about 64 MiB up to 32 ranks"
            );
        }
        assert_eq!(default_ring_bytes(7, 64 << 10), 1 << 20);
        assert_eq!(
            default_ring_bytes(23, default_eager_threshold(23, None)),
            64 << 10
        );
        let n2 = |n: usize| n * n * (64 << 10);
        assert!(at(64).unwrap() > n2(64) && at(64).unwrap() < n2(64) * 21 / 20);
        assert!(
            at(256).unwrap() > 4 << 30,
            "n² × 64 KiB: 4 GiB at 256 ranks"
        );
    }

    #[test]
    fn huge_segments_are_config_errors_not_overflows() {
        // 2^62-byte rings: the unchecked sum wrapped to a few hundred bytes (then segfaulted).
        assert_eq!(segment_len(2, 1 << 62), None);
        assert_eq!(segment_len(u32::MAX, 1 << 30), None);
        for (n, cap) in [
            (2, 1usize << 62),
            (2, usize::MAX),
            (u32::MAX, 4096),
            (100_000, 1 << 30),
        ] {
            match checked_segment_len(n, cap) {
                Err(
                    e @ Error::Config {
                        name: "TOCSIN_RING_BYTES",
                        ..
                    },
                ) => {
                    let s = e.to_string();
                    assert!(s.contains("n²") && s.contains("limit"), "{s}");
                }
                other => panic!("n={n} cap={cap}: {other:?}"),
            }
        }
        assert!(checked_segment_len(2, 1 << 30).is_ok());
        // Defaults saturate instead of overflowing.
        for n in [0, 1, 65_536, u32::MAX] {
            for eager in [0, 1 << 20, usize::MAX / 2, usize::MAX] {
                let cap = default_ring_bytes(n, eager);
                assert!(cap.is_power_of_two() && cap <= crate::config::MAX_RING_BYTES);
            }
        }
    }
}
