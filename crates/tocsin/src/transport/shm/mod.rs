//! The shared-memory driver: one segment per job and host, per-rank control blocks (pid,
//! doorbell) and inboxes, per-pair fast rings, and single-copy transfers through Linux CMA.
//!
//! Owns the segment's layout, its creation and attachment during bootstrap, and the
//! [`Driver`](crate::protocol::Driver) implementation over its inboxes and rings. It must not
//! know about requests or matching (that is [`crate::protocol`]) nor decide when to wait or
//! sleep (that is `crate::progress`).
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
//! | 0 | header line: magic, layout version, rank count, ring bytes, progress mode, fast rings per rank |
//! | 64 + 128·l | control block of local rank l: line A (pid, tid, sleepers, polling, finished), line B (doorbell futex, interrupt pending) |
//! | 64 + 128·n | gone bitmap: bit l once local rank l finished or was found dead (liveness, below) |
//! | inboxes + l·[`inbox::inbox_bytes`] | inbox of l: tail, "space wanted" bitmap, 128 slots of 256 bytes ([`inbox`]) |
//! | rings + (l·k + j)·(64 + cap) | fast ring j toward l: control line (consumer's head at 0, producer's "space wanted" word at 8, owner at 16) + data |
//!
//! Total: `64 + 128·n + n·(32 KiB + 64·⌈n/512⌉) + n·k·(64 + cap)` bytes ([`segment_len`]):
//! **O(n)** for a fixed `k`. Every rank can reach every other through its inbox (records up
//! to [`inbox::MAX_BODY`] bytes: small eager messages and the rendezvous' RTS/CTS/FIN; larger
//! messages by CMA); each rank also has `k` fast rings that carry whole eager messages:
//!
//! - **Static** (`k = n − 1`, the default up to [`STATIC_MAX`] + 1 ranks per node): ring j
//!   toward l belongs to the j-th other rank, as per-pair rings always did; the inboxes are
//!   never used.
//! - **Dynamic** (more ranks, or `TOCSIN_FAST_PATHS` below n − 1): a sender that has posted
//!   [`FAST_AFTER`] records to a peer claims one of that peer's free rings (CAS on its owner
//!   word, as Open MPI's vader fast boxes), posts a *switch* through the inbox, then sends
//!   through the ring: the switch keeps its records in order. Pairs beyond `k` keep the
//!   inbox. Rings are never handed back (a job's talkative pairs stay talkative).
//!
//! Only touched pages cost memory: an idle pair costs nothing, an inbox costs the slots its
//! traffic cycles through.
//!
//! A killed rank blocks no one: an inbox slot it claimed but never published is skipped once
//! the engine finds it dead ([`inbox`]); a ring it owned is only read by its consumer.
//!
//! ## Liveness in O(1) per rank
//! Each rank watches one process only: the next local rank that is neither finished nor
//! dead (a ring of watchers, as a heartbeat ring). When its watched rank exits without having
//! finished, it sets that rank's bit in the gone bitmap and bumps the header's gone epoch,
//! then watches the next one; a rank that finishes sets its own bit. Every rank reads the
//! epoch (one shared line) and, when it moved, the bitmap (n/64 words): a node of n ranks
//! makes n probes per period instead of n².
use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, AtomicI32, AtomicU32, AtomicU64, Ordering};

pub(crate) mod inbox;
mod reaper;

use super::node::{hex, hex_bytes, unhex};
use crate::error::{Error, Result};
use crate::pmi::Pmi;
use crate::protocol::{Core, Driver, Taken};
use crate::ring::{self, Consumer, Producer, ShmRing, LINE};
use crate::sys::{self, Mapping};
use crate::wire::Header;
use crate::Rank;
use inbox::{Popped, ShmInbox};

const MAGIC: u64 = 0x7463_6f73_696e_0003; // "tcosin" + layout 3
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
    /// 1 if this rank sleeps in `epoll_wait` (it has TCP peers) rather than on the futex:
    /// a sender that rings its doorbell also sends a datagram to its doorbell socket.
    pub bell_sock: AtomicU32,
    /// `thread` mode: the progress thread is asleep on `pt_bell` and armed, a sum of
    /// [`crate::interrupt::WATCH_ANY`] (ring for every record) and
    /// [`crate::interrupt::WATCH_URGENT`] (only for records that ask the rank to act).
    pub pt_watch: AtomicU32,
    _pad: [u8; LINE - 32],
    /// The doorbell: a futex word bumped by senders that found `sleepers > 0`.
    pub bell: AtomicU32,
    /// 1 while an interrupt (signal or user interrupt) to this rank is outstanding.
    pub irq_pending: AtomicU32,
    /// `thread` mode: the progress thread's doorbell, a futex word bumped by senders that
    /// found `pt_watch` asking for their records ([`crate::interrupt::watcher_rings`]).
    pub pt_bell: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<Control>() <= CTRL_BYTES);

impl Control {
    /// A control block with every word 0 (a rank alone, with no node segment).
    pub(crate) fn zeroed() -> Control {
        Control {
            pid: AtomicI32::new(0),
            tid: AtomicI32::new(0),
            sleepers: AtomicU32::new(0),
            polling: AtomicU32::new(0),
            finished: AtomicU32::new(0),
            signo: AtomicI32::new(0),
            bell_sock: AtomicU32::new(0),
            pt_watch: AtomicU32::new(0),
            _pad: [0; LINE - 32],
            bell: AtomicU32::new(0),
            irq_pending: AtomicU32::new(0),
            pt_bell: AtomicU32::new(0),
        }
    }
}

#[repr(C)]
struct SegHeader {
    magic: AtomicU64,
    nranks: AtomicU32,
    mode: AtomicU32,
    ring_cap: AtomicU64,
    nonce: AtomicU64,
    fast: AtomicU32,
    /// Bumped after every change of the gone bitmap (a rank finished or was found dead).
    gone_epoch: AtomicU32,
}

/// Most other ranks of a node for which every pair gets its ring at start-up (static fast
/// rings, `k = n − 1`); above, each rank has [`DYNAMIC_FAST_PATHS`] rings claimed on use.
pub(crate) const STATIC_MAX: u32 = 32;
/// Fast rings per rank in the dynamic layout (more than [`STATIC_MAX`] + 1 ranks per node),
/// as Open MPI's `btl_vader_fbox_max`: a 3-D stencil's six neighbours and the partners of
/// the collectives' recursive doubling up to 2²⁶ ranks fit.
pub(crate) const DYNAMIC_FAST_PATHS: u32 = 32;
/// Records a sender posts through a peer's inbox before it claims one of that peer's fast
/// rings (dynamic layout): pairs that talk once (a barrier at start-up) leave the rings to
/// those that talk often.
pub(crate) const FAST_AFTER: u32 = 16;
/// Bytes of fast rings per rank the default ring size aims at (`k × cap`): 4 MiB.
const RING_BUDGET: usize = 4 << 20;

/// Fast rings per rank for a node of `n` ranks: `configured` (`TOCSIN_FAST_PATHS`, at most
/// `n − 1`), else `n − 1` up to [`STATIC_MAX`], else [`DYNAMIC_FAST_PATHS`].
pub(crate) fn fast_paths(n: u32, configured: Option<u32>) -> u32 {
    let others = n.saturating_sub(1);
    match configured {
        Some(k) => k.min(others),
        None if others <= STATIC_MAX => others,
        None => DYNAMIC_FAST_PATHS,
    }
}

/// A mapped job segment.
pub(crate) struct Segment {
    map: Mapping,
    n: u32,
    k: u32,
    cap: usize,
    posix_name: Option<String>,
}

/// Where the parts of a segment are: a copy of its base address and geometry, for the
/// transport's halves. Valid while the [`Segment`] it came from is mapped (the engine drops
/// its transport halves before its node view, which owns the segment).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegView {
    base: *mut u8,
    n: u32,
    k: u32,
    cap: usize,
}

// SAFETY: a view of shared memory accessed only through the ring and inbox protocols
// (atomics for every word two processes may touch at once).
unsafe impl Send for SegView {}
// SAFETY: as for `Send`.
unsafe impl Sync for SegView {}

impl SegView {
    fn check(&self, l: u32, j: u32) {
        if l >= self.n || j >= self.k.max(1) {
            crate::diag::fatal("shm: an inbox or ring outside the segment");
        }
    }

    /// The inbox of local rank `l`.
    pub(crate) fn inbox(&self, l: u32) -> ShmInbox {
        self.check(l, 0);
        let off = inboxes_base(self.n) + l as usize * inbox::inbox_bytes(self.n);
        // SAFETY: inside the mapping (layout above), 64-byte aligned, zero at creation, and
        // mapped while the view is used (the view's contract).
        unsafe { ShmInbox::from_raw(self.base.add(off), self.n) }
    }

    fn ring_off(&self, l: u32, j: u32) -> usize {
        self.check(l, j);
        rings_base(self.n) + (l as usize * self.k as usize + j as usize) * ring::footprint(self.cap)
    }

    /// Fast ring `j` toward local rank `l`.
    pub(crate) fn ring(&self, l: u32, j: u32) -> ShmRing {
        let off = self.ring_off(l, j);
        // SAFETY: as in `inbox`; the range is the ring's `footprint(cap)` bytes.
        unsafe { ShmRing::from_raw(self.base.add(off), self.cap) }
    }

    /// A word of the control line of ring `j` toward `l`, at byte `at` (8: the producer's
    /// "space wanted"; 16: the owner, local index + 1, 0 if free), outside the ring's own
    /// protocol (which uses bytes 0..8).
    fn ring_word(&self, l: u32, j: u32, at: usize) -> &AtomicU32 {
        let off = self.ring_off(l, j) + at;
        // SAFETY: inside the ring's 64-byte control line, 4-aligned, only accessed
        // atomically; mapped while the view is used.
        unsafe { &*(self.base.add(off) as *const AtomicU32) }
    }

    /// The "space wanted" word of ring `j` toward `l`: its producer sets it while records
    /// wait for lack of room; the consumer, after freeing space, clears it and notifies the
    /// producer ([`SegView::space_freed`]).
    pub(crate) fn space_wanted(&self, l: u32, j: u32) -> &AtomicU32 {
        self.ring_word(l, j, 8)
    }

    /// The owner word of ring `j` toward `l` (dynamic layout).
    fn owner(&self, l: u32, j: u32) -> &AtomicU32 {
        self.ring_word(l, j, 16)
    }

    /// After local rank `l` consumed from its ring `j`: `true` if the producer asked to be
    /// told (the word is cleared; the caller then notifies it as for a record). The
    /// `SeqCst` fence pairs with the producer's `SeqCst` store of the word followed by its
    /// re-check of the ring (Dekker). Async-signal-safe.
    pub(crate) fn space_freed(&self, l: u32, j: u32) -> bool {
        fence(Ordering::SeqCst);
        let w = self.space_wanted(l, j);
        w.load(Ordering::Relaxed) != 0 && w.swap(0, Ordering::SeqCst) != 0
    }
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("n", &self.n)
            .field("cap", &self.cap)
            .finish()
    }
}

/// The gone bitmap: bit l set once local rank l finished (it sets its own bit after its
/// `finished` word) or was found dead (by the rank that watches it).
fn gone_base(n: u32) -> usize {
    LINE + CTRL_BYTES * n as usize
}

/// Lines of the gone bitmap.
fn gone_lines(n: u32) -> usize {
    (n as usize).div_ceil(8 * LINE)
}

fn inboxes_base(n: u32) -> usize {
    gone_base(n) + gone_lines(n) * LINE
}

fn rings_base(n: u32) -> usize {
    inboxes_base(n) + n as usize * inbox::inbox_bytes(n)
}

/// The static ring index of sender `s` toward receiver `l` (`k = n − 1`): the senders in
/// local order, skipping `l`.
fn static_slot(s: u32, l: u32) -> u32 {
    if s < l {
        s
    } else {
        s - 1
    }
}

/// Largest job segment tocsin maps, bytes: 64 TiB, half the 47-bit user address space of
/// x86-64. Only touched pages cost memory, but a larger mapping cannot succeed.
pub(crate) const MAX_SEGMENT_BYTES: usize = 1 << 46;

/// Bytes of a segment for `n` ranks with `k` fast rings of `cap` bytes per rank: the header
/// line, `n` control blocks, the gone bitmap, `n` inboxes and `n·k` rings
/// (`64 + 128·n + 64·⌈n/512⌉ + n·inbox_bytes(n) + n·k·(64 + cap)`), or `None` if that
/// overflows `usize`.
pub(crate) fn segment_len(n: u32, k: u32, cap: usize) -> Option<usize> {
    let nn = n as usize;
    let rings = nn
        .checked_mul(k as usize)?
        .checked_mul(LINE.checked_add(cap)?)?;
    let inboxes = nn.checked_mul(inbox::inbox_bytes(n))?;
    LINE.checked_add(CTRL_BYTES.checked_mul(nn)?)?
        .checked_add(gone_lines(n) * LINE)?
        .checked_add(inboxes)?
        .checked_add(rings)
}

/// Default fast-ring size for `n` ranks per node, bytes: [`RING_BUDGET`] (4 MiB) shared by
/// the rank's `k` rings ([`fast_paths`] with no override), rounded down to a power of two and
/// clamped to 64 KiB..=1 MiB, then raised (up to [`crate::config::MAX_RING_BYTES`]) so that
/// `eager` bytes plus a header fit in a quarter of it: 1 MiB up to 4 ranks, 128 KiB from 33
/// on, so a rank's rings stay at or below about 4 MiB whatever `n`. Saturating: never
/// overflows, whatever `n` and `eager`.
pub(crate) fn default_ring_bytes(n: u32, eager: usize) -> usize {
    let k = fast_paths(n, None).max(1) as usize;
    let share = RING_BUDGET / k;
    let mut cap = 1usize << (usize::BITS - 1 - share.leading_zeros());
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
/// quarter of the ring), at least 64 bytes. Pairs without a fast ring (dynamic layout) send
/// eagerly only what fits an inbox slot.
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
pub(crate) fn checked_segment_len(n: u32, k: u32, cap: usize) -> Result<usize> {
    let too_big = |what: String| Error::Config {
        name: "TOCSIN_RING_BYTES",
        value: cap.to_string(),
        reason: format!(
            "the shared segment for {n} ranks with {k} fast rings each \
             (64 + 128·n + n·inbox + n·k·(64 + ring bytes)) {what}, more than the \
             {MAX_SEGMENT_BYTES}-byte limit: lower TOCSIN_RING_BYTES or TOCSIN_FAST_PATHS"
        ),
    };
    if n > inbox::MAX_RANKS {
        return Err(Error::Unsupported(format!(
            "{n} ranks on one node: the shared-memory transport names at most {} (set TOCSIN_NOLOCAL=1 to use TCP)",
            inbox::MAX_RANKS
        )));
    }
    match segment_len(n, k, cap) {
        None => Err(too_big("overflows".into())),
        Some(len) if len > MAX_SEGMENT_BYTES => Err(too_big(format!("would be {len} bytes"))),
        Some(len) => Ok(len),
    }
}

fn pmi_err(what: &str, e: std::io::Error) -> Error {
    Error::io(what.to_string(), e)
}

impl Segment {
    /// Creates (the node's leader, `local[0]`) or attaches (the node's other ranks) the
    /// node's segment through PMI; `local` lists the ranks of this node, ascending, and the
    /// segment is indexed by the position in it (the local index). Collective: every rank
    /// of the job calls it (two PMI barriers). Also checks that the node's ranks really
    /// share one (node key: hostname, boot id, IPC namespace) and use the same progress mode.
    ///
    /// # Errors
    /// [`Error::Unsupported`] if the launcher placed on one node ranks that do not share
    /// one; [`Error::Config`] if progress modes or ring sizes differ; [`Error::Io`] for
    /// system call failures; [`Error::Pmi`] if the launcher fails.
    ///
    /// Each rank makes O(1) PMI requests (a leader: two puts; the others: two gets), so the
    /// bootstrap of n ranks costs the launcher O(n), not O(n²): a rank checks its node key
    /// against its leader's only, and publishes its pid, thread id and signal in its control
    /// block, read by the others after the last barrier.
    pub(crate) fn bootstrap(
        pmi: &mut Pmi,
        local: &[Rank],
        cap: usize,
        fast: Option<u32>,
        mode: u32,
        posix: bool,
        signo: i32,
    ) -> Result<Segment> {
        let me = pmi.rank();
        let Some(li) = local.iter().position(|&r| r == me) else {
            return Err(Error::Unsupported(
                "internal: this rank is not among its node's ranks".into(),
            ));
        };
        let leader = local[0];
        let n = local.len() as u32;
        let key = super::node::node_key();
        let k = fast_paths(n, fast);
        let len = checked_segment_len(n, k, cap)?;
        let mut keep_fd = None;
        let mut posix_name = None;
        let mut reaper = None;
        let seg = if li == 0 {
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
                if leader == 0 {
                    pmi.put("tocsin.shm.posix", &name)?;
                }
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
                k,
                cap,
                posix_name: posix_name.clone(),
            };
            let mut nonce = [0u8; 8];
            sys::random_bytes(&mut nonce).map_err(|e| pmi_err("getrandom", e))?;
            let h = s.header();
            h.nranks.store(n, Ordering::Relaxed);
            h.mode.store(mode, Ordering::Relaxed);
            h.ring_cap.store(cap as u64, Ordering::Relaxed);
            h.fast.store(k, Ordering::Relaxed);
            h.nonce.store(u64::from_ne_bytes(nonce), Ordering::Relaxed);
            h.magic.store(MAGIC, Ordering::Release);
            if n > 1 {
                pmi.put(&format!("tocsin.host.{leader}"), &hex(&key))?;
                pmi.put(&format!("tocsin.shm.{leader}"), &contact)?;
            }
            pmi.barrier()?;
            s
        } else {
            pmi.barrier()?;
            let k0 = unhex(&pmi.get(&format!("tocsin.host.{leader}"))?);
            if k0 != key {
                let host = |k: &str| k.split('|').next().unwrap_or("").to_string();
                return Err(Error::Unsupported(format!(
                    "the launcher places ranks {leader} and {me} on one node, but they do not share one \
                     (hosts {:?} and {:?}; boot id or IPC namespace differ): no shared memory between \
                     them; set TOCSIN_NOLOCAL=1 to use TCP between all ranks, or fix the launcher's \
                     PMI_process_mapping",
                    host(&k0),
                    host(&key)
                )));
            }
            let contact = pmi.get(&format!("tocsin.shm.{leader}"))?;
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
                            "malformed segment contact {contact:?} from rank {leader}"
                        )))
                    }
                };
                sys::open_proc_fd(pid, fd).map_err(|e| {
                    pmi_err(
                        &format!(
                            "opening rank {leader}'s segment /proc/{pid}/fd/{fd} (try TOCSIN_SHM=posix)"
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
                    reason: format!("rank {leader}'s segment is {flen} bytes but this rank expects {len}: ranks disagree on TOCSIN_RING_BYTES / TOCSIN_EAGER_THRESHOLD / TOCSIN_FAST_PATHS"),
                });
            }
            let map = Mapping::map(&fd, len).map_err(|e| pmi_err("mapping the segment", e))?;
            let s = Segment {
                map,
                n,
                k,
                cap,
                posix_name: None,
            };
            let h = s.header();
            if h.magic.load(Ordering::Acquire) != MAGIC || h.nranks.load(Ordering::Relaxed) != n {
                return Err(Error::Unsupported(
                    "the node segment has an unknown layout (mixed tocsin versions?)".into(),
                ));
            }
            if h.fast.load(Ordering::Relaxed) != k {
                return Err(Error::Config {
                    name: "TOCSIN_FAST_PATHS",
                    value: k.to_string(),
                    reason: format!(
                        "rank {leader} gives each rank {} fast rings: every rank must use the same TOCSIN_FAST_PATHS",
                        h.fast.load(Ordering::Relaxed)
                    ),
                });
            }
            let m = h.mode.load(Ordering::Relaxed);
            if m != mode {
                return Err(Error::Config {
                    name: "TOCSIN_PROGRESS",
                    value: mode_name(mode).into(),
                    reason: format!(
                        "rank {leader} runs in {} mode: every rank must use the same progress mode",
                        mode_name(m)
                    ),
                });
            }
            s
        };
        let c = seg.control(li as u32);
        c.signo.store(signo, Ordering::Release);
        c.pid.store(std::process::id() as i32, Ordering::Release);
        // The calling thread is the registered thread, target of signals.
        c.tid
            .store(crate::interrupt::signal::gettid(), Ordering::Release);
        pmi.barrier()?; // every rank mapped its node's segment and published its pid
        drop(keep_fd);
        if let Some(name) = &seg.posix_name {
            sys::shm_unlink(name);
        }
        drop(reaper);
        Ok(seg)
    }

    /// A random number drawn by the node's leader, the same for every rank of the node:
    /// names the node's doorbell sockets.
    pub(crate) fn nonce(&self) -> u64 {
        self.header().nonce.load(Ordering::Relaxed)
    }

    /// Word `i` of the gone bitmap.
    fn gone_word(&self, i: usize) -> &AtomicU64 {
        if i >= (self.n as usize).div_ceil(64) {
            crate::diag::fatal("shm: a gone-bitmap word outside the node");
        }
        // SAFETY: inside the gone bitmap (layout above), 8-aligned, atomics only.
        unsafe { &*(self.map.ptr().add(gone_base(self.n) + 8 * i) as *const AtomicU64) }
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

    /// Pre-faults fast ring `j` toward local rank `l` in this process ([`Mapping::populate`],
    /// best effort).
    fn populate_ring(&self, l: u32, j: u32) {
        let off = self.view().ring_off(l, j);
        self.map.populate(off, ring::footprint(self.cap));
    }

    /// Where the inboxes and rings are, for the transport's halves.
    pub(crate) fn view(&self) -> SegView {
        SegView {
            base: self.map.ptr(),
            n: self.n,
            k: self.k,
            cap: self.cap,
        }
    }

    /// Bytes of the mapping (virtual size: only touched pages cost memory).
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Fast rings per rank.
    pub(crate) fn fast_paths(&self) -> u32 {
        self.k
    }

    /// `true` if every pair has its ring from the start (`k = n − 1`): inboxes unused.
    pub(crate) fn is_static(&self) -> bool {
        self.k + 1 >= self.n
    }
}

fn mode_name(m: u32) -> &'static str {
    crate::ProgressMode::ALL
        .get(m as usize)
        .map_or("unknown", |p| p.name())
}

/// Not on this node (in [`ShmNode`]'s rank → local index map).
const NOT_LOCAL: u32 = u32::MAX;

/// How this rank interrupts the computing peers of its node.
pub(crate) enum Interrupter {
    /// Nobody is interrupted (poll, block, thread modes).
    None,
    /// Each local peer's signal and registered thread (from its control block), by rank.
    Signal {
        /// Signal of each rank (0: not local).
        signos: Vec<i32>,
        /// Registered thread of each rank (0: not local).
        tids: Vec<i32>,
    },
    /// SENDUIPI through this rank's UITT entries, by rank.
    Uintr(crate::interrupt::uintr::Senders),
}

/// The datagram sockets that wake node peers sleeping in `epoll_wait` (ranks with TCP
/// peers), as UCX's shared-memory transport does: one unbound sending socket, and each local
/// peer's abstract address, built at start-up so that ringing never allocates.
struct BellSockets {
    tx: std::os::fd::OwnedFd,
    addrs: Vec<sys::UnixAddr>,
}

/// This rank's view of its node, shared outside the engine lock: the segment, which ranks
/// are on the node, and how to wake (doorbell) or interrupt (signal, user interrupt) each.
/// Every method takes global ranks; those of other nodes are never rung nor interrupted.
pub(crate) struct ShmNode {
    // Declared first: dropped before `seg` (nothing of it points into the segment, but the
    // order documents that the segment outlives everything built on it).
    interrupter: Interrupter,
    bells: Option<BellSockets>,
    /// A signal could not be queued (EAGAIN: `RLIMIT_SIGPENDING` reached); taken by the
    /// next ordinary pass, which reports it.
    sigqueue_full: std::sync::atomic::AtomicBool,
    me: Rank,
    me_local: u32,
    local_of: Vec<u32>,
    /// Local index → rank.
    ranks: Vec<Rank>,
    pids: Vec<i32>,
    seg: Segment,
}

impl ShmNode {
    /// The node view of `seg`, whose local index `i` is rank `local[i]`; `n` ranks in the
    /// job. Reads the local peers' pids from their control blocks (after the bootstrap's
    /// last barrier).
    pub(crate) fn new(seg: Segment, me: Rank, local: &[Rank], n: u32) -> ShmNode {
        let mut local_of = vec![NOT_LOCAL; n as usize];
        for (i, &r) in local.iter().enumerate() {
            local_of[r as usize] = i as u32;
        }
        let me_local = local_of[me as usize];
        let pids = (0..n)
            .map(|r| match local_of[r as usize] {
                NOT_LOCAL => 0,
                l => seg.control(l).pid.load(Ordering::Acquire),
            })
            .collect();
        ShmNode {
            interrupter: Interrupter::None,
            bells: None,
            sigqueue_full: std::sync::atomic::AtomicBool::new(false),
            me,
            me_local,
            local_of,
            ranks: local.to_vec(),
            pids,
            seg,
        }
    }

    /// The local rank after `r` in the node's order (wrapping), `None` if that is this rank
    /// (no other rank left to watch).
    pub(crate) fn next_local(&self, r: Rank) -> Option<Rank> {
        let l = *self.local_of.get(r as usize)?;
        let next = self.ranks[(l as usize + 1) % self.ranks.len()];
        (next != self.me).then_some(next)
    }

    /// The gone epoch: changes after every new bit in the gone bitmap.
    pub(crate) fn gone_epoch(&self) -> u32 {
        self.seg.header().gone_epoch.load(Ordering::Acquire)
    }

    /// Marks rank `r` of this node gone (finished, or found dead by its watcher): sets its
    /// bit, then bumps the epoch.
    pub(crate) fn mark_gone(&self, r: Rank) {
        let l = self.local_of[r as usize] as usize;
        let w = self.seg.gone_word(l / 64);
        if w.fetch_or(1 << (l % 64), Ordering::SeqCst) & (1 << (l % 64)) == 0 {
            self.seg.header().gone_epoch.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Calls `f` for every rank of this node whose bit in the gone bitmap is set and not in
    /// `seen` (one word per 64 local ranks), and records it there.
    pub(crate) fn new_gone(&self, seen: &mut Vec<u64>, mut f: impl FnMut(Rank)) {
        let words = self.ranks.len().div_ceil(64);
        seen.resize(words, 0);
        for (i, old) in seen.iter_mut().enumerate() {
            let w = self.seg.gone_word(i).load(Ordering::Acquire);
            let mut fresh = w & !*old;
            *old = w;
            while fresh != 0 {
                let b = fresh.trailing_zeros() as usize;
                fresh &= fresh - 1;
                if let Some(&r) = self.ranks.get(i * 64 + b) {
                    f(r);
                }
            }
        }
    }

    /// The ranks of this node other than this one, ascending.
    pub(crate) fn peers(&self) -> impl Iterator<Item = Rank> + '_ {
        (0..self.local_of.len() as Rank)
            .filter(move |&r| r != self.me && self.local_of[r as usize] != NOT_LOCAL)
    }

    /// Control block of rank `r` of this node. Reachable from handlers: a rank of another
    /// node ends the process ([`crate::diag::fatal`]).
    pub(crate) fn control(&self, r: Rank) -> &Control {
        match self.local_of.get(r as usize) {
            Some(&l) if l != NOT_LOCAL => self.seg.control(l),
            _ => crate::diag::fatal("shm: control block of a rank of another node"),
        }
    }

    /// This rank's control block.
    pub(crate) fn me(&self) -> &Control {
        self.seg.control(self.me_local)
    }

    /// Process id of `r` if on this node, else 0.
    pub(crate) fn pid(&self, r: Rank) -> i32 {
        self.pids.get(r as usize).copied().unwrap_or(0)
    }

    /// Sets how computing peers are interrupted (after the handler is installed).
    pub(crate) fn set_interrupter(&mut self, i: Interrupter) {
        self.interrupter = i;
    }

    /// Binds this rank's doorbell socket (it will sleep in `epoll_wait`, having TCP peers)
    /// and prepares the sending side; publishes `bell_sock` so that node peers ring it.
    ///
    /// # Errors
    /// The socket calls' errors.
    pub(crate) fn bind_bell_socket(&mut self) -> std::io::Result<std::os::fd::OwnedFd> {
        let addrs = self.bell_addrs();
        let rx = sys::unix_dgram()?;
        sys::bind_unix(&rx, &addrs[self.me_local as usize])?;
        self.bells = Some(BellSockets {
            tx: sys::unix_dgram()?,
            addrs,
        });
        self.me().bell_sock.store(1, Ordering::SeqCst);
        Ok(rx)
    }

    /// The doorbell socket address of each local rank: `\0tocsin-<node nonce>-<local index>`.
    fn bell_addrs(&self) -> Vec<sys::UnixAddr> {
        let nonce = self.seg.nonce();
        (0..self.seg.n)
            .map(|l| sys::UnixAddr::abstract_name(&format!("tocsin-{nonce:016x}-{l}")))
            .collect()
    }

    /// Prepares to ring node peers' doorbell sockets (a rank with no TCP peer of its own may
    /// have node peers that sleep in `epoll_wait`).
    pub(crate) fn prepare_bell_sockets(&mut self) {
        if self.bells.is_some() {
            return;
        }
        let addrs = self.bell_addrs();
        if let Ok(tx) = sys::unix_dgram() {
            self.bells = Some(BellSockets { tx, addrs });
        }
    }

    /// After pushing records to rank `r` of this node: what `r`'s published state asks for
    /// ([`crate::interrupt::decide`]): rings its doorbell, or interrupts it (coalesced on
    /// `irq_pending`); and rings its progress thread's doorbell if that thread watches for
    /// such records ([`crate::interrupt::watcher_rings`]; `urgent`: one of them asks `r` to
    /// act). The `SeqCst` fence pairs with `r`'s `SeqCst` updates of
    /// `sleepers`/`polling`/`pt_watch` followed by a re-poll (Dekker): either `r` sees our
    /// records or we see the state that makes us ring or interrupt it. Async-signal-safe.
    pub(crate) fn notify(&self, r: Rank, sleeps: bool, interrupts: bool, urgent: bool) {
        use crate::interrupt::{claim_interrupt, decide, watcher_rings, Notify};
        let c = self.control(r);
        fence(Ordering::SeqCst);
        if sleeps && watcher_rings(c.pt_watch.load(Ordering::Relaxed), urgent) {
            self.wake_pt(r);
        }
        match decide(
            sleeps,
            interrupts,
            c.sleepers.load(Ordering::Relaxed),
            c.polling.load(Ordering::Relaxed),
        ) {
            Notify::Nothing => {}
            Notify::Doorbell => self.wake(r),
            Notify::Interrupt => {
                if claim_interrupt(&c.irq_pending) {
                    self.interrupt(r);
                } else {
                    crate::stats::bump(crate::stats::Counter::InterruptsCoalesced);
                }
            }
        }
    }

    /// Sends an interrupt to `peer` (already claimed). Async-signal-safe.
    fn interrupt(&self, peer: Rank) {
        use crate::interrupt::{signal, uintr};
        match &self.interrupter {
            Interrupter::None => {}
            Interrupter::Signal { signos, tids } => {
                let (pid, tid) = (self.pid(peer), tids[peer as usize]);
                let signo = signos[peer as usize];
                let mut tries = 0;
                let mut sent = true;
                while let Err(e) = signal::send(pid, tid, signo) {
                    // EAGAIN: the user's queue of pending real-time signals is full
                    // (RLIMIT_SIGPENDING); nothing was queued. Retry briefly, then release
                    // the claim so that the next record posted to this peer tries again
                    // (the records themselves wait safely in the ring). ESRCH: the peer is
                    // gone; liveness checks will report it.
                    tries += 1;
                    if e.raw_os_error() == Some(libc::EAGAIN) && tries > 3 {
                        // Reported by the next ordinary pass (this may be a handler).
                        self.sigqueue_full.store(true, Ordering::Relaxed);
                    }
                    if e.raw_os_error() != Some(libc::EAGAIN) || tries > 3 {
                        self.control(peer).irq_pending.store(0, Ordering::SeqCst);
                        sent = false;
                        break;
                    }
                    std::hint::spin_loop();
                }
                if sent {
                    crate::stats::bump(crate::stats::Counter::InterruptsSent);
                }
            }
            Interrupter::Uintr(s) => {
                if let Some(i) = s.index(peer) {
                    // SAFETY: `i` was returned by uintr_register_sender in this process.
                    unsafe { uintr::senduipi(i) };
                    crate::stats::bump(crate::stats::Counter::InterruptsSent);
                }
            }
        }
    }

    /// `true` once (then cleared) if a signal could not be queued since the last call.
    pub(crate) fn take_sigqueue_full(&self) -> bool {
        self.sigqueue_full.load(Ordering::Relaxed)
            && self.sigqueue_full.swap(false, Ordering::Relaxed)
    }

    /// Bumps rank `r`'s doorbell and wakes its sleepers: the futex, and its doorbell socket
    /// if it sleeps in `epoll_wait`. Async-signal-safe (no allocation: addresses are built
    /// at start-up).
    pub(crate) fn wake(&self, r: Rank) {
        self.wake_n(r, 1);
    }

    /// [`ShmNode::wake`], with `k` datagrams when `r` sleeps in `epoll_wait` (one for each
    /// of its sleeping threads: each takes at most one). Async-signal-safe.
    pub(crate) fn wake_n(&self, r: Rank, k: u32) {
        let c = self.control(r);
        c.bell.fetch_add(1, Ordering::Release);
        sys::futex_wake_all(&c.bell);
        if c.bell_sock.load(Ordering::Acquire) != 0 {
            if let Some(b) = &self.bells {
                for _ in 0..k.max(1) {
                    sys::send_unix(&b.tx, &b.addrs[self.local_of[r as usize] as usize]);
                }
            }
        }
        crate::stats::bump(crate::stats::Counter::Doorbells);
    }

    /// Bumps rank `r`'s progress-thread doorbell and wakes the thread (`thread` mode: it
    /// sleeps on that futex word only, never in `epoll_wait`). Async-signal-safe.
    pub(crate) fn wake_pt(&self, r: Rank) {
        let c = self.control(r);
        c.pt_bell.fetch_add(1, Ordering::Release);
        sys::futex_wake_all(&c.pt_bell);
        crate::stats::bump(crate::stats::Counter::Doorbells);
    }

    /// The segment (for reports: size, layout).
    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The two halves of this rank's shared-memory transport: the sending half (inbox
    /// poster, ring producers, CMA) and the receiving half (its inbox, the rings toward it),
    /// both indexed by rank.
    pub(crate) fn halves(&self) -> (ShmTx, ShmRx) {
        let n = self.local_of.len();
        let view = self.seg.view();
        let k = self.seg.fast_paths();
        let stat = self.seg.is_static();
        let mut paths = Vec::with_capacity(n);
        let mut producers = Vec::with_capacity(n);
        let mut rings: Vec<Option<(Rank, Consumer<ShmRing>)>> = (0..k).map(|_| None).collect();
        let mut ring_of = vec![NO_RING; n];
        let mut ranks = vec![0 as Rank; self.seg.n as usize];
        for p in 0..n as Rank {
            let l = self.local_of[p as usize];
            if l == NOT_LOCAL {
                paths.push(Path::Off);
                producers.push(None);
                continue;
            }
            ranks[l as usize] = p;
            if p == self.me {
                paths.push(Path::Off);
                producers.push(None);
            } else if stat {
                let j = static_slot(self.me_local, l);
                paths.push(Path::Ring(j as u16));
                producers.push(Some(Producer::new(view.ring(l, j))));
                let jr = static_slot(l, self.me_local);
                // Both ends of every ring this rank uses, faulted in now rather than one
                // page fault per 64 small records during the first lap (the first
                // measured sizes of a latency benchmark). Static layout only (at most
                // STATIC_MAX + 1 ranks): a dynamic layout's rings are claimed on use.
                self.seg.populate_ring(l, j);
                self.seg.populate_ring(self.me_local, jr);
                rings[jr as usize] = Some((p, Consumer::new(view.ring(self.me_local, jr))));
                ring_of[p as usize] = jr;
            } else {
                paths.push(Path::Inbox { sent: 0 });
                producers.push(None);
            }
        }
        (
            ShmTx {
                view,
                me_local: self.me_local,
                local_of: self.local_of.clone(),
                paths,
                producers,
                pids: self.pids.clone(),
            },
            ShmRx {
                view,
                me_local: self.me_local,
                ranks,
                rings,
                ring_of,
                inbox: (!stat).then(|| inbox::Reader::new(view.inbox(self.me_local))),
            },
        )
    }
}

/// No fast ring (in [`ShmRx`]'s rank → ring map).
const NO_RING: u32 = u32::MAX;

/// How this rank's records reach one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Not a node peer (or this rank).
    Off,
    /// Through the peer's inbox; `sent` records so far (dynamic layout: a fast ring is
    /// claimed at [`FAST_AFTER`]).
    Inbox { sent: u32 },
    /// Fast ring `j` of the peer is ours, but the switch record is not posted yet (its
    /// inbox was full).
    Claimed(u16),
    /// Through the peer's fast ring `j`.
    Ring(u16),
}

/// The sending half of the shared-memory transport: the peers' inboxes, the fast rings this
/// rank produces into, and CMA.
pub(crate) struct ShmTx {
    view: SegView,
    me_local: u32,
    local_of: Vec<u32>,
    paths: Vec<Path>,
    producers: Vec<Option<Producer<ShmRing>>>,
    pids: Vec<i32>,
}

impl ShmTx {
    fn local(&self, peer: Rank) -> u32 {
        match self.local_of.get(peer as usize) {
            Some(&l) if l != NOT_LOCAL => l,
            _ => crate::diag::fatal("shm: a record pushed toward a rank of another node"),
        }
    }

    /// Claims a free fast ring of `peer` (local index `l`): CAS of an owner word from 0 to
    /// our local index + 1, starting at our own index so that claimers spread. Async-
    /// signal-safe.
    fn claim(&mut self, peer: Rank, l: u32) -> bool {
        let k = self.view.k;
        for i in 0..k {
            let j = (self.me_local + i) % k;
            if self
                .view
                .owner(l, j)
                .compare_exchange(0, self.me_local + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                self.paths[peer as usize] = Path::Claimed(j as u16);
                self.producers[peer as usize] = Some(Producer::new(self.view.ring(l, j)));
                return true;
            }
        }
        false
    }

    /// Appends one record toward `peer` (a node peer) through its fast ring or its inbox;
    /// `false` if there is no room now. Async-signal-safe.
    pub(crate) fn try_push(&mut self, peer: Rank, hdr: &Header, payload: &[u8]) -> bool {
        let Some(&path) = self.paths.get(peer as usize) else {
            crate::diag::fatal("shm: a record pushed toward a rank outside the job");
        };
        let hl = hdr.encoded_len();
        let len = hl + payload.len();
        let mut fill = |b: &mut [u8]| {
            hdr.encode(b);
            b[hl..].copy_from_slice(payload);
        };
        // The ring path (every pair of a small node) needs nothing more than its producer.
        match path {
            Path::Ring(_) => {}
            Path::Claimed(j) => {
                let ib = self.view.inbox(self.local(peer));
                if !inbox::post(&ib, self.me_local, inbox::Kind::Switch, j, 0, &mut |_| {}) {
                    return false;
                }
                self.paths[peer as usize] = Path::Ring(j);
            }
            Path::Inbox { sent } => {
                let l = self.local(peer);
                if sent == FAST_AFTER && self.view.k > 0 && self.claim(peer, l) {
                    return self.try_push(peer, hdr, payload);
                }
                if len > inbox::MAX_BODY {
                    crate::diag::fatal("shm: a record larger than an inbox slot");
                }
                let ok = inbox::post(
                    &self.view.inbox(l),
                    self.me_local,
                    inbox::Kind::Record,
                    0,
                    len,
                    &mut fill,
                );
                if ok {
                    self.paths[peer as usize] = Path::Inbox {
                        sent: sent.saturating_add(1),
                    };
                }
                return ok;
            }
            Path::Off => crate::diag::fatal("shm: a record pushed toward a rank without a path"),
        }
        match self.producers.get_mut(peer as usize) {
            Some(Some(p)) => p.try_push(len, &mut fill),
            _ => crate::diag::fatal("shm: a ring path without its producer"),
        }
    }

    /// A `len`-byte record toward `peer` would not fit its inbox: claims one of its fast
    /// rings if it has a free one (dynamic layout). Async-signal-safe.
    pub(crate) fn grow(&mut self, peer: Rank, len: usize) {
        if let Some(Path::Inbox { .. }) = self.paths.get(peer as usize) {
            if len > inbox::MAX_BODY && len <= ring::max_body(self.view.cap) && self.view.k > 0 {
                let l = self.local(peer);
                self.claim(peer, l);
            }
        }
    }

    /// Largest record body toward `peer`, bytes: a quarter of a ring once the pair has one,
    /// else one inbox slot ([`inbox::MAX_BODY`]). Only ever grows.
    pub(crate) fn max_record(&self, peer: Rank) -> usize {
        match self.paths.get(peer as usize) {
            Some(Path::Ring(_) | Path::Claimed(_)) => ring::max_body(self.view.cap),
            _ => inbox::MAX_BODY,
        }
    }

    /// Records toward `peer` wait for room: asks it to tell us when it frees some (the
    /// ring's "space wanted" word, or our bit in its inbox). The caller then retries once
    /// after a `SeqCst` fence. Async-signal-safe.
    pub(crate) fn want_space(&self, peer: Rank) {
        let l = self.local(peer);
        match self.paths[peer as usize] {
            Path::Ring(j) => self
                .view
                .space_wanted(l, u32::from(j))
                .store(1, Ordering::SeqCst),
            Path::Inbox { .. } | Path::Claimed(_) => self.view.inbox(l).want_space(self.me_local),
            Path::Off => {}
        }
    }

    /// CMA read from `peer`'s memory.
    pub(crate) fn cma_read(
        &mut self,
        peer: Rank,
        remote: u64,
        local: &mut [u8],
    ) -> std::io::Result<()> {
        sys::cma_read(self.pids[peer as usize], remote, local)
    }
    /// CMA write into `peer`'s memory.
    pub(crate) fn cma_write(
        &mut self,
        peer: Rank,
        remote: u64,
        local: &[u8],
    ) -> std::io::Result<()> {
        sys::cma_write(self.pids[peer as usize], remote, local)
    }
}

/// Records taken from the inbox per progress pass (all senders together).
const INBOX_BATCH: usize = 4 * super::BATCH;
/// How long [`ShmRx::drain`] waits for a live sender to finish writing the inbox slot at the
/// head (it holds every record behind it).
const DRAIN_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The receiving half of the shared-memory transport: this rank's inbox (dynamic layout)
/// and the consuming end of every fast ring toward it.
pub(crate) struct ShmRx {
    view: SegView,
    me_local: u32,
    /// Local index → rank.
    ranks: Vec<Rank>,
    /// Fast ring j toward this rank: its producer and consumer, once it has one.
    rings: Vec<Option<(Rank, Consumer<ShmRing>)>>,
    /// Rank → its fast ring toward this rank ([`NO_RING`]).
    ring_of: Vec<u32>,
    inbox: Option<inbox::Reader<ShmInbox>>,
}

/// What one inbox slot turned out to be.
enum Slot {
    /// Handled (or dropped: its sender is gone).
    Done,
    /// A handler could not take this record: leave it.
    Left,
    /// Malformed from this rank.
    Bad(Rank),
}

impl ShmRx {
    /// Drains every fast ring toward this rank (up to [`super::BATCH`] records each) and the
    /// inbox (up to [`INBOX_BATCH`]) into the core; after consuming, tells producers that
    /// asked for space. Async-signal-safe when `cx.handler`.
    pub(crate) fn poll(
        &mut self,
        core: &mut Core,
        tx: &mut dyn Driver,
        node: &ShmNode,
        cx: &super::PollCx<'_>,
        out: &mut super::PassOut,
    ) {
        for (j, slot) in self.rings.iter_mut().enumerate() {
            let Some((p, c)) = slot else { continue };
            let p = *p;
            if core.is_dead(p) {
                continue;
            }
            let mut popped = false;
            let mut ended = false;
            for _ in 0..super::BATCH {
                let r = c.pop_with(|rec| match core.on_record(tx, p, rec) {
                    Ok(Taken::LeftInRing) => (false, Ok(false)),
                    Ok(Taken::Consumed) => (true, Ok(true)),
                    Err(f) => (true, Err(f)),
                });
                match r {
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Ok(Some(Ok(false))) => {
                        Self::stall(node, cx);
                        break;
                    }
                    Ok(Some(Ok(true))) => {
                        if cx.handler {
                            crate::stats::bump(crate::stats::Counter::HandlerRecords);
                        }
                        out.did = true;
                        popped = true;
                    }
                    Ok(Some(Err(_))) | Err(_) => {
                        popped = true;
                        ended = true;
                        cx.bad_peer(p);
                        break;
                    }
                }
            }
            if !ended && !c.is_empty() {
                out.unread = true;
            }
            // Only sleeping modes' producers ask to be told (poll mode pays no fence). A
            // producer that asked is rung if it sleeps, interrupted if it computes (signal,
            // uintr), left alone if it polls.
            if popped && cx.sleeps && self.view.space_freed(self.me_local, j as u32) {
                node.notify(p, true, cx.interrupts, true);
            }
        }
        if self.inbox.is_some() {
            self.poll_inbox(core, tx, node, cx, out);
        }
    }

    /// A handler could not store a record without allocating. Keep `irq_pending` set so
    /// that peers stop interrupting a rank whose handlers cannot help; the next ordinary
    /// pass takes it from here.
    fn stall(node: &ShmNode, cx: &super::PollCx<'_>) {
        cx.stalled.store(true, Ordering::SeqCst);
        node.me().irq_pending.store(1, Ordering::SeqCst);
    }

    /// Takes up to [`INBOX_BATCH`] inbox slots. Async-signal-safe when `cx.handler`.
    fn poll_inbox(
        &mut self,
        core: &mut Core,
        tx: &mut dyn Driver,
        node: &ShmNode,
        cx: &super::PollCx<'_>,
        out: &mut super::PassOut,
    ) {
        let mut popped = false;
        for _ in 0..INBOX_BATCH {
            match self.take_slot(core, tx) {
                Ok(Popped::Empty) => break,
                Ok(Popped::Busy(s)) => {
                    // A sender is writing the head slot. If it is dead, skip it; else
                    // it will publish in an instant: do not sleep meanwhile.
                    match self.ranks.get(s as usize) {
                        Some(&p) if !core.is_dead(p) => {
                            out.unread = true;
                            break;
                        }
                        _ => {
                            if let Some(r) = &mut self.inbox {
                                r.skip_claimed(s);
                            }
                            popped = true;
                        }
                    }
                }
                Ok(Popped::Got(Slot::Done)) => {
                    if cx.handler {
                        crate::stats::bump(crate::stats::Counter::HandlerRecords);
                    }
                    out.did = true;
                    popped = true;
                }
                Ok(Popped::Got(Slot::Left)) => {
                    Self::stall(node, cx);
                    break;
                }
                Ok(Popped::Got(Slot::Bad(p))) => {
                    popped = true;
                    cx.bad_peer(p);
                }
                Err(e) => {
                    popped = true;
                    if let Some(&p) = self.ranks.get(e.sender as usize) {
                        cx.bad_peer(p);
                    }
                }
            }
        }
        if self.inbox.as_ref().is_some_and(|r| !r.is_empty()) {
            out.unread = true;
        }
        if popped && cx.sleeps {
            let ranks = &self.ranks;
            self.view.inbox(self.me_local).take_wanters(|s| {
                if let Some(&p) = ranks.get(s as usize) {
                    node.notify(p, true, cx.interrupts, true);
                }
            });
        }
    }

    /// Takes the inbox's head slot: a record goes to the core (dropped if its sender is
    /// gone), a switch activates the sender's fast ring. Async-signal-safe.
    fn take_slot(
        &mut self,
        core: &mut Core,
        tx: &mut dyn Driver,
    ) -> std::result::Result<Popped<Slot>, inbox::Corrupt> {
        let Some(reader) = &mut self.inbox else {
            return Ok(Popped::Empty);
        };
        let (ranks, rings, ring_of, view, me_local) = (
            &self.ranks,
            &mut self.rings,
            &mut self.ring_of,
            &self.view,
            self.me_local,
        );
        reader.pop_with(|s, kind, arg, body| {
            let Some(&p) = ranks.get(s as usize) else {
                return (true, Slot::Done);
            };
            match kind {
                inbox::Kind::Record => {
                    if core.is_dead(p) {
                        return (true, Slot::Done);
                    }
                    match core.on_record(tx, p, body) {
                        Ok(Taken::LeftInRing) => (false, Slot::Left),
                        Ok(Taken::Consumed) => (true, Slot::Done),
                        Err(_) => (true, Slot::Bad(p)),
                    }
                }
                inbox::Kind::Switch => {
                    let j = u32::from(arg);
                    let ok = j < view.k
                        && rings[j as usize].is_none()
                        && ring_of[p as usize] == NO_RING
                        && view.owner(me_local, j).load(Ordering::Acquire) == s + 1;
                    if !ok {
                        return (true, Slot::Bad(p));
                    }
                    rings[j as usize] = Some((p, Consumer::new(view.ring(me_local, j))));
                    ring_of[p as usize] = j;
                    (true, Slot::Done)
                }
            }
        })
    }

    /// Handles every record `peer` published, without the batch limit (ordinary context: the
    /// unexpected queue may grow): the whole inbox (waiting up to [`DRAIN_BUSY_WAIT`] for a
    /// live sender's slot at the head), then `peer`'s fast ring. `Err` if one of `peer`'s
    /// records is malformed.
    pub(crate) fn drain(
        &mut self,
        core: &mut Core,
        tx: &mut dyn Driver,
        peer: Rank,
    ) -> std::result::Result<(), ()> {
        let mut bad = false;
        let mut since: Option<std::time::Instant> = None;
        while self.inbox.is_some() {
            match self.take_slot(core, tx) {
                Ok(Popped::Empty) => break,
                Ok(Popped::Busy(s)) => {
                    let alive = self
                        .ranks
                        .get(s as usize)
                        .is_some_and(|&p| !core.is_dead(p));
                    let t0 = *since.get_or_insert_with(std::time::Instant::now);
                    if !alive || t0.elapsed() > DRAIN_BUSY_WAIT {
                        if !alive {
                            if let Some(r) = &mut self.inbox {
                                r.skip_claimed(s);
                            }
                            continue;
                        }
                        break;
                    }
                    std::thread::yield_now();
                }
                Ok(Popped::Got(Slot::Bad(p))) if p == peer => bad = true,
                Ok(Popped::Got(_)) => since = None,
                Err(e) => bad |= self.ranks.get(e.sender as usize) == Some(&peer),
            }
        }
        let Some(&j) = self.ring_of.get(peer as usize) else {
            return Ok(());
        };
        if let Some(Some((_, c))) = self.rings.get_mut(j as usize) {
            loop {
                let r = c.pop_with(|rec| match core.on_record(tx, peer, rec) {
                    Ok(_) => (true, true),
                    Err(_) => (true, false),
                });
                match r {
                    Ok(Some(true)) => {}
                    Ok(None) => break,
                    Ok(Some(false)) | Err(_) => return Err(()),
                }
            }
        }
        if bad {
            Err(())
        } else {
            Ok(())
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_shrink_with_the_job() {
        assert_eq!(default_eager_threshold(2, None), 64 << 10);
        assert_eq!(default_eager_threshold(5, None), 64 << 10);
        assert_eq!(default_eager_threshold(16, None), 32 << 10);
        assert_eq!(default_eager_threshold(64, None), 16 << 10);
        assert_eq!(default_eager_threshold(1024, None), 16 << 10);
        assert_eq!(default_eager_threshold(2, Some(4096)), 512);
        for n in [1, 2, 3, 4, 8, 16, 33, 34, 64, 256, 1024] {
            let e = default_eager_threshold(n, None);
            let cap = default_ring_bytes(n, e);
            assert!(
                e + crate::wire::EAGER_HDR_LEN <= ring::max_body(cap),
                "n={n}"
            );
        }
    }

    #[test]
    fn fast_paths_are_static_then_bounded() {
        assert_eq!(fast_paths(1, None), 0);
        assert_eq!(fast_paths(2, None), 1);
        assert_eq!(fast_paths(33, None), 32);
        assert_eq!(fast_paths(34, None), DYNAMIC_FAST_PATHS);
        assert_eq!(fast_paths(1024, None), DYNAMIC_FAST_PATHS);
        assert_eq!(fast_paths(4, Some(1)), 1);
        assert_eq!(fast_paths(4, Some(0)), 0);
        assert_eq!(fast_paths(4, Some(100)), 3, "at most n − 1");
    }

    #[test]
    fn segment_grows_linearly() {
        // 64 + 128·n + n·inbox + n·k·(64 + cap)
        assert_eq!(
            segment_len(2, 1, 4096),
            Some(64 + 256 + 64 + 2 * inbox::inbox_bytes(2) + 2 * (64 + 4096))
        );
        assert_eq!(inbox::inbox_bytes(2), 3 * 64 + 128 * 256);
        let at = |n: u32| {
            let cap = default_ring_bytes(n, default_eager_threshold(n, None));
            segment_len(n, fast_paths(n, None), cap).unwrap()
        };
        // Per rank: at most a 32 KiB inbox, a control block, a bitmap and about 4 MiB of
        // rings, whatever n.
        for n in [2u32, 8, 33, 34, 64, 256, 1024, 4096] {
            let per_rank = at(n) / n as usize;
            assert!(
                per_rank <= (4 << 20) + (64 << 10) + n as usize / 8 + 256,
                "n={n}: {per_rank} bytes per rank"
            );
        }
        assert!(
            at(1024) < 5 << 30,
            "O(n): about 4 GiB at 1,024 ranks, not n² rings"
        );
    }

    #[test]
    fn huge_segments_are_config_errors_not_overflows() {
        // 2^62-byte rings: an unchecked sum wraps to a few hundred bytes (then segfaults).
        assert_eq!(segment_len(8, 1, 1 << 62), None);
        assert_eq!(segment_len(u32::MAX, 1 << 20, 1 << 30), None);
        for (n, k, cap) in [
            (8, 1, 1usize << 62),
            (2, 1, usize::MAX),
            (100_000, 32, 1 << 30),
        ] {
            match checked_segment_len(n, k, cap) {
                Err(
                    e @ Error::Config {
                        name: "TOCSIN_RING_BYTES",
                        ..
                    },
                ) => {
                    let s = e.to_string();
                    assert!(s.contains("fast rings") && s.contains("limit"), "{s}");
                }
                other => panic!("n={n} cap={cap}: {other:?}"),
            }
        }
        assert!(matches!(
            checked_segment_len(u32::MAX, 1, 4096),
            Err(Error::Unsupported(_))
        ));
        assert!(checked_segment_len(2, 1, 1 << 30).is_ok());
        // Defaults saturate instead of overflowing.
        for n in [0, 1, 65_536, u32::MAX] {
            for eager in [0, 1 << 20, usize::MAX / 2, usize::MAX] {
                let cap = default_ring_bytes(n, eager);
                assert!(cap.is_power_of_two() && cap <= crate::config::MAX_RING_BYTES);
            }
        }
    }

    #[test]
    fn static_slots_are_a_bijection() {
        for n in 2..9u32 {
            for l in 0..n {
                let mut seen = vec![false; n as usize - 1];
                for s in (0..n).filter(|&s| s != l) {
                    let j = static_slot(s, l) as usize;
                    assert!(!seen[j]);
                    seen[j] = true;
                }
            }
        }
    }
}
