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

use super::node::{hex, hex_bytes, unhex};
use crate::error::{Error, Result};
use crate::pmi::Pmi;
use crate::protocol::{Core, Driver, Taken};
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
    /// 1 if this rank sleeps in `epoll_wait` (it has TCP peers) rather than on the futex:
    /// a sender that rings its doorbell also sends a datagram to its doorbell socket.
    pub bell_sock: AtomicU32,
    _pad: [u8; LINE - 28],
    /// The doorbell: a futex word bumped by senders that found `sleepers > 0`.
    pub bell: AtomicU32,
    /// 1 while an interrupt (signal or user interrupt) to this rank is outstanding.
    pub irq_pending: AtomicU32,
}

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
            _pad: [0; LINE - 28],
            bell: AtomicU32::new(0),
            irq_pending: AtomicU32::new(0),
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
        let len = checked_segment_len(n, cap)?;
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
                cap,
                posix_name: posix_name.clone(),
            };
            let mut nonce = [0u8; 8];
            sys::random_bytes(&mut nonce).map_err(|e| pmi_err("getrandom", e))?;
            let h = s.header();
            h.nranks.store(n, Ordering::Relaxed);
            h.mode.store(mode, Ordering::Relaxed);
            h.ring_cap.store(cap as u64, Ordering::Relaxed);
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
                    reason: format!("rank {leader}'s segment is {flen} bytes but this rank expects {len}: ranks disagree on TOCSIN_RING_BYTES / TOCSIN_EAGER_THRESHOLD"),
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
                    "the node segment has an unknown layout (mixed tocsin versions?)".into(),
                ));
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
            pids,
            seg,
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
    /// `irq_pending`). The `SeqCst` fence pairs with `r`'s `SeqCst` updates of
    /// `sleepers`/`polling` followed by a re-poll (Dekker): either `r` sees our records or we
    /// see the state that makes us ring or interrupt it. Async-signal-safe.
    pub(crate) fn notify(&self, r: Rank, sleeps: bool, interrupts: bool) {
        use crate::interrupt::{claim_interrupt, decide, Notify};
        let c = self.control(r);
        fence(Ordering::SeqCst);
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

    /// The "space wanted" word of the ring from `src` to `dst`, both of this node
    /// ([`Segment::space_wanted`]).
    pub(crate) fn space_wanted(&self, src: Rank, dst: Rank) -> &AtomicU32 {
        self.seg
            .space_wanted(self.local_of[src as usize], self.local_of[dst as usize])
    }

    /// [`Segment::space_freed`] for the ring from `src` to `dst`. Async-signal-safe.
    pub(crate) fn space_freed(&self, src: Rank, dst: Rank) -> bool {
        self.seg
            .space_freed(self.local_of[src as usize], self.local_of[dst as usize])
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

    /// The two halves of this rank's shared-memory transport: producers of its outgoing
    /// rings and consumers of its incoming ones, by rank (`None` off the node).
    pub(crate) fn halves(&self) -> (ShmTx, ShmRx) {
        let n = self.local_of.len();
        let mut producers = Vec::with_capacity(n);
        let mut consumers = Vec::with_capacity(n);
        for p in 0..n as Rank {
            let l = self.local_of[p as usize];
            if p != self.me && l != NOT_LOCAL {
                producers.push(Some(Producer::new(self.seg.ring(self.me_local, l))));
                consumers.push(Some(Consumer::new(self.seg.ring(l, self.me_local))));
            } else {
                producers.push(None);
                consumers.push(None);
            }
        }
        (
            ShmTx {
                producers,
                pids: self.pids.clone(),
                max_record: ring::max_body(self.seg.cap()),
            },
            ShmRx { consumers },
        )
    }
}

/// The sending half of the shared-memory transport: one ring producer per node peer, and CMA.
pub(crate) struct ShmTx {
    producers: Vec<Option<Producer<ShmRing>>>,
    pids: Vec<i32>,
    max_record: usize,
}

impl ShmTx {
    /// Appends one record toward `peer` (a node peer); `false` if its ring is full.
    /// Async-signal-safe.
    pub(crate) fn try_push(&mut self, peer: Rank, hdr: &Header, payload: &[u8]) -> bool {
        let Some(Some(p)) = self.producers.get_mut(peer as usize) else {
            crate::diag::fatal("shm: a record pushed toward a rank without a ring");
        };
        let hl = hdr.encoded_len();
        p.try_push(hl + payload.len(), &mut |b| {
            hdr.encode(b);
            b[hl..].copy_from_slice(payload);
        })
    }
    /// Largest record body, bytes (a quarter of a ring).
    pub(crate) fn max_record(&self) -> usize {
        self.max_record
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

/// The receiving half of the shared-memory transport: the consuming end of each node peer's
/// ring toward this rank.
pub(crate) struct ShmRx {
    consumers: Vec<Option<Consumer<ShmRing>>>,
}

impl ShmRx {
    /// Drains every node peer's ring (up to [`super::BATCH`] records each) into the core;
    /// after consuming from a ring, tells its producer if it asked for space. Async-signal-
    /// safe when `cx.handler`.
    pub(crate) fn poll(
        &mut self,
        core: &mut Core,
        tx: &mut dyn Driver,
        node: &ShmNode,
        cx: &super::PollCx<'_>,
        out: &mut super::PassOut,
    ) {
        for (p, c) in self.consumers.iter_mut().enumerate() {
            let Some(c) = c else { continue };
            let p = p as Rank;
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
                        // A handler could not store this record without allocating. Keep
                        // `irq_pending` set so that peers stop interrupting a rank whose
                        // handlers cannot help; the next ordinary pass takes it from here.
                        cx.stalled.store(true, Ordering::SeqCst);
                        node.me().irq_pending.store(1, Ordering::SeqCst);
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
            if popped && cx.sleeps && node.space_freed(p, node.me) {
                node.notify(p, true, cx.interrupts);
            }
        }
    }

    /// Handles every record `peer` published, without the batch limit (ordinary context: the
    /// unexpected queue may grow). `Err` if one is malformed.
    pub(crate) fn drain(
        &mut self,
        core: &mut Core,
        tx: &mut dyn Driver,
        peer: Rank,
    ) -> std::result::Result<(), ()> {
        let Some(Some(c)) = self.consumers.get_mut(peer as usize) else {
            return Ok(());
        };
        loop {
            let r = c.pop_with(|rec| match core.on_record(tx, peer, rec) {
                Ok(_) => (true, true),
                Err(_) => (true, false),
            });
            match r {
                Ok(Some(true)) => {}
                Ok(None) => return Ok(()),
                Ok(Some(false)) | Err(_) => return Err(()),
            }
        }
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
