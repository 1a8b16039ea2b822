//! The protocol core: request state machines for eager and rendezvous (RTS/CTS/FIN) transfers,
//! matching, unexpected messages and per-peer send queues.
//!
//! Sans I/O, in the spirit of quinn-proto: [`Core`] consumes records that a driver received
//! ([`Core::on_record`]) and pushes records through the [`Driver`] trait, which owns the
//! actual rings and single-copy (CMA) transfers. Tests drive two cores through an in-memory
//! driver. This module never blocks, sleeps or makes a system call itself; it touches user
//! buffers only through the raw pointers the API layer lent it for the life of a request.
//!
//! ## Protocols
//! - **Eager** (`len ≤ eager threshold`): one EAGER record; the send completes when it is in
//!   the ring. An unmatched one is copied to the unexpected queue.
//! - **Rendezvous**: the sender posts an RTS (envelope, length, its buffer address). The
//!   receiver, once matched, either
//!   - *reads* the data itself with CMA and answers FIN (when it is waiting: the rank that
//!     waits does the copy), or
//!   - answers CTS with its buffer address and the bytes it accepts; the sender then
//!     *writes* with CMA and sends FIN to the receiver, or, if CMA is off or fails, streams
//!     DATA chunks through the ring (two copies, pipelined);
//!   - or, when both wait (the RTS carries [`FLAG_SENDER_WAITS`]: a blocking send) and the
//!     message is large (`split_min`: 4 eager thresholds, at least 256 KiB), *splits* the
//!     copy: a CTS with `offset` = the receiver's share (half, page-aligned) asks the sender
//!     to write the rest, while the receiver reads its share; the receive completes with the
//!     sender's FIN. Offered only once a CMA copy with that peer has succeeded; should the
//!     sender's write fail it streams its share as DATA from `offset`, should the receiver's
//!     read fail the receive fails ([`Fail::Malformed`]) when the sender's FIN comes, not
//!     before (the sender may still be writing into the buffer).
//! - A truncating receive accepts only its buffer's length; the rest is never transferred and
//!   the receive completes with [`Fail::Truncated`]; the sender completes normally.
//!
//! Non-overtaking: each pair's ring is FIFO, EAGER and RTS records to a peer leave in post
//! order through one queue, and matching takes the oldest candidates ([`crate::matching`]).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::matching::{Envelope, Pattern, PostedQueue, UnexpectedQueue};
use crate::wire::{
    Header, Kind, EAGER_HDR_LEN, FLAG_CMA, FLAG_SENDER_WAITS, FLAG_TO_RECEIVER, FULL_HDR_LEN,
};
use crate::{Rank, Tag, ANY_SOURCE};

/// What a completed receive (or a probe) found: who sent it, with which tag, how many bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status {
    /// Rank of the sender (for a send: this rank).
    pub source: Rank,
    /// Tag of the message.
    pub tag: Tag,
    /// Length of the message, bytes (for a send: the bytes sent).
    pub len: usize,
}

impl Status {
    /// The number of whole `T` elements in the message.
    pub fn count<T>(&self) -> usize {
        self.len / std::mem::size_of::<T>().max(1)
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    /// The message was longer than the receive buffer (the status still tells the source
    /// and tag; `buffer_len` bytes were delivered).
    Truncated {
        /// Message length, bytes.
        message_len: usize,
        /// Buffer length, bytes.
        buffer_len: usize,
    },
    /// The peer is gone (died, or finished cleanly) and the request can no longer complete.
    PeerDied {
        /// The rank that is gone.
        rank: Rank,
    },
    /// The request was cancelled before it matched ([`Core::cancel`]); nothing was
    /// transferred.
    Cancelled,
    /// The peer sent something invalid for this request.
    Malformed {
        /// The peer.
        rank: Rank,
        /// What was wrong.
        detail: &'static str,
    },
}

const PENDING: u32 = 0;
const DONE: u32 = 1;

/// The completion cell of one request, shared between its owner (the API handle) and the
/// core. The core writes the outcome then publishes `DONE` with `Release`; the owner reads
/// it after an `Acquire` load of `DONE`. A request may thus complete "behind the back" of
/// the thread that owns it (in another thread, or later in a handler).
#[derive(Debug)]
pub struct ReqShared {
    state: AtomicU32,
    /// The core's token of the request while it is live (0: none); read by the owner to
    /// cancel it, under the engine lock.
    tok: AtomicU64,
    recv: bool,
    out: UnsafeCell<(Status, Option<Fail>)>,
}

// SAFETY: `out` is written only by the core before the `Release` store of DONE, and read
// only after an `Acquire` load of DONE; it is never written again after DONE.
unsafe impl Sync for ReqShared {}
// SAFETY: the contents are plain data.
unsafe impl Send for ReqShared {}

impl ReqShared {
    /// A pending cell; `recv` says whether it belongs to a receive. Allocates: create cells
    /// for a handler's use beforehand (collective schedules do).
    pub(crate) fn new(recv: bool) -> Arc<ReqShared> {
        Arc::new(ReqShared {
            state: AtomicU32::new(PENDING),
            tok: AtomicU64::new(0),
            recv,
            out: UnsafeCell::new((
                Status {
                    source: 0,
                    tag: 0,
                    len: 0,
                },
                None,
            )),
        })
    }
    /// Makes a completed cell pending again, for reuse (its owner holds the only
    /// reference, so nobody can observe the change).
    pub(crate) fn reset(&mut self) {
        *self.state.get_mut() = PENDING;
        *self.tok.get_mut() = 0;
    }

    /// `true` for a receive, `false` for a send.
    pub fn is_recv(&self) -> bool {
        self.recv
    }
    /// `true` once the request has completed.
    pub fn is_complete(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }
    /// The outcome, once complete.
    pub fn outcome(&self) -> Option<(Status, Option<Fail>)> {
        if self.is_complete() {
            // SAFETY: DONE was observed with Acquire; `out` is immutable from then on.
            Some(unsafe { (*self.out.get()).clone() })
        } else {
            None
        }
    }
    /// Publishes the outcome. Only its one completer calls this, once (the core for
    /// point-to-point requests, the schedule executor for collectives), under the engine
    /// lock. Async-signal-safe.
    pub(crate) fn complete(&self, st: Status, fail: Option<Fail>) {
        crate::diag::debug_check!(!self.is_complete());
        // SAFETY: only the core (one thread at a time, under the engine lock) writes, and
        // only before publishing DONE; the owner does not read before DONE.
        unsafe { *self.out.get() = (st, fail) };
        self.state.store(DONE, Ordering::Release);
    }
}

/// The I/O a [`Core`] needs from a transport. Implemented by the shared-memory driver and
/// by the in-memory test driver.
pub trait Driver {
    /// Appends one record `[header | payload]` to the ring toward `peer`; `false` if the
    /// ring is full (nothing written, the core retries later).
    fn try_push(&mut self, peer: Rank, hdr: &Header, payload: &[u8]) -> bool;
    /// Largest record body (header + payload) accepted toward `peer`, bytes. May grow over
    /// time (after [`Driver::grow`]), never shrinks.
    fn max_record(&self, peer: Rank) -> usize;
    /// The core would send a `len`-byte record toward `peer` if [`Driver::max_record`]
    /// allowed it: the transport may open a path that carries it (shared memory: claim one
    /// of the peer's fast rings). Async-signal-safe.
    fn grow(&mut self, peer: Rank, len: usize) {
        let _ = (peer, len);
    }
    /// Payload bytes of each DATA record of a pipelined rendezvous toward `peer` (capped by
    /// [`Driver::max_record`]): `configured` (`TOCSIN_CHUNK_BYTES`) for rings, whose chunks
    /// pipeline copies in and out; a transport that streams may prefer fewer, larger ones.
    fn chunk(&self, peer: Rank, configured: usize) -> usize {
        let _ = peer;
        configured
    }
    /// Copies `local.len()` bytes from address `remote` in `peer`'s memory (CMA read).
    ///
    /// # Errors
    /// The OS error (EPERM when ptrace rules forbid it, ESRCH if the peer is gone…).
    fn cma_read(&mut self, peer: Rank, remote: u64, local: &mut [u8]) -> std::io::Result<()>;
    /// Copies `local` to address `remote` in `peer`'s memory (CMA write).
    ///
    /// # Errors
    /// As [`Driver::cma_read`].
    fn cma_write(&mut self, peer: Rank, remote: u64, local: &[u8]) -> std::io::Result<()>;
}

/// What [`Core::on_record`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Handled: the driver may drop it from the ring.
    Consumed,
    /// Not handled because that would allocate in no-allocation mode: leave it at the head
    /// of its ring and hand it to the next progress pass made outside a handler.
    LeftInRing,
}

/// Start-up parameters of a [`Core`].
#[derive(Debug, Clone, Copy)]
pub struct CoreConfig {
    /// This rank.
    pub me: Rank,
    /// Number of ranks.
    pub size: u32,
    /// Largest eager message, bytes.
    pub eager_threshold: usize,
    /// Pipelined rendezvous chunk, bytes.
    pub chunk: usize,
    /// Whether CMA may be used at all.
    pub cma: bool,
    /// Capacity reserved for each queue (posted, unexpected, per-peer), items.
    pub queue_capacity: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// Send queued for its EAGER/RTS record; recv posted, unmatched.
    Queued,
    WaitCts,
    Streaming,
    WaitFin,
    WaitData,
}

#[derive(Debug)]
struct Req {
    shared: Arc<ReqShared>,
    send: bool,
    peer: Rank,
    tag: Tag,
    ctx: u16,
    buf: *mut u8,
    len: usize,
    st: St,
    msg_len: usize,
    accept: usize,
    done_bytes: usize,
    remote: u64,
    /// Synchronous send: goes through the rendezvous whatever its size, so that it
    /// completes only once a receive matched it (MPI_Ssend).
    sync: bool,
    /// Its EAGER record asks the peer to act (a collective's later round: the peer's
    /// schedule waits for it while the application may compute).
    urgent: bool,
    /// Send: posted by a blocking send, whose thread waits for it (its RTS says so, see
    /// [`FLAG_SENDER_WAITS`]).
    waits: bool,
    /// Receive of a CMA split: this rank's read of its share failed (the error is in
    /// `cma_failure`); the receive fails when the sender's FIN comes (not before: the
    /// sender may still be writing into the buffer).
    split_failed: bool,
}

/// A receive of at least this many bytes, by a waiting receiver, from a sender waiting in a
/// blocking send, is copied by both (CMA split): half each, so that two idle cores copy.
/// Expressed in eager thresholds (a measured value: where a single copy starts to beat the
/// ring's two): the split costs one more CTS round trip and possibly a wake-up of the
/// sender, repaid only when each half is itself several rendezvous-sized copies.
const SPLIT_MIN_EAGERS: usize = 4;
/// Smallest CMA split whatever the eager threshold, bytes.
const SPLIT_MIN_BYTES: usize = 256 << 10;
/// The receiver's share of a CMA split ends on this boundary (pages: each side pins and
/// copies whole pages).
const SPLIT_ALIGN: usize = 4096;

#[derive(Debug)]
struct Slot {
    gen: u32,
    req: Option<Req>,
}

#[derive(Debug)]
enum Ctrl {
    Cts {
        sreq: u64,
        rreq: u64,
        addr: u64,
        len: usize,
        cma: bool,
        /// Where in the message the accepted bytes start (0; the receiver's share of a
        /// CMA split otherwise).
        offset: usize,
    },
    Fin {
        to_receiver: bool,
        token: u64,
        /// The transfer belongs to a collective (odd context): the peer's schedule waits
        /// for this FIN to start its next round, so it is worth an interrupt.
        urgent: bool,
    },
}

#[derive(Debug)]
enum Unexp {
    Eager(Vec<u8>),
    Rts {
        sreq: u64,
        addr: u64,
        len: usize,
        /// The RTS's flags ([`FLAG_CMA`], [`FLAG_SENDER_WAITS`]).
        flags: u8,
    },
    /// A rendezvous-size send to self, waiting for its receive.
    SelfSend(u64),
}

#[derive(Debug)]
struct PeerQ {
    ctrl: VecDeque<Ctrl>,
    msgs: VecDeque<u64>,
    streams: VecDeque<u64>,
    cma_ok: bool,
    /// A CMA copy with this peer succeeded: a split (in which this rank's read follows a
    /// CTS it cannot take back) is offered only then.
    cma_proven: bool,
    /// Gone: died, or finished cleanly (`finished`). Nothing more will come from it.
    dead: bool,
    finished: bool,
    touched: bool,
    /// A record pushed since the last notification needs the peer to act (RTS, CTS, DATA),
    /// or our records wait for space in its ring: worth an interrupt.
    urgent: bool,
}

/// The protocol state of one rank. See the module documentation.
#[derive(Debug)]
pub struct Core {
    cfg: CoreConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    posted: PostedQueue<u64>,
    unexpected: UnexpectedQueue<Unexp>,
    /// Messages taken out of `unexpected` by a matched probe, waiting for their receive.
    claimed: Vec<Option<(Envelope, Unexp)>>,
    peers: Vec<PeerQ>,
    pool: Vec<Vec<u8>>,
    /// Whether the rank is blocked waiting (then a matched RTS is read here rather than
    /// answered with a CTS). Set by the progress engine.
    pub receiver_waiting: bool,
    /// Whether the send being posted is a blocking one (its thread waits for it, so its
    /// RTS may offer a CMA split: [`FLAG_SENDER_WAITS`]). Set by the progress engine
    /// around the post only.
    pub sender_waiting: bool,
    /// Smallest message copied by both sides when both wait (CMA split), bytes.
    split_min: usize,
    /// Requests completed so far (wrapping): the engine wakes the rank's other sleeping
    /// threads after a pass that completed some.
    pub completions: u64,
    /// The first CMA failure since the engine last looked: (peer, errno). The core then
    /// uses the pipelined path with that peer; the engine reports it once.
    pub cma_failure: Option<(Rank, i32)>,
    /// No-allocation mode, set while progress runs in a signal or interrupt handler: a
    /// record whose handling would need memory the core has not reserved is left in its
    /// ring ([`Taken::LeftInRing`]).
    pub no_alloc: bool,
    /// Some record may be waiting for ring space (set by every queueing, cleared by
    /// [`Core::has_backlog`] when it finds none): a pass with nothing queued looks at no
    /// peer's queues, whatever the rank count.
    queued: bool,
}

// SAFETY: the raw buffer pointers in `Req` are lent by the API layer for the request's whole
// life and are only dereferenced by whichever thread holds the engine lock.
unsafe impl Send for Core {}

/// Most buffers kept for unexpected eager messages (each `eager_threshold` bytes).
const POOL: usize = 64;
/// Bytes the pool may reserve in all: fewer buffers when eager messages are large (a
/// handler that finds the pool empty leaves the record in its ring for the next pass).
const POOL_BYTES: usize = 16 << 20;

/// Buffers in the pool for a given eager threshold: `POOL_BYTES / eager`, 4 to [`POOL`].
fn pool_len(eager: usize) -> usize {
    (POOL_BYTES / eager.max(1)).clamp(4, POOL)
}

fn tok_index(t: u64) -> usize {
    ((t & 0xFFFF_FFFF) as usize).wrapping_sub(1)
}

impl Core {
    /// A core with empty queues.
    pub fn new(cfg: CoreConfig) -> Core {
        let q = cfg.queue_capacity;
        Core {
            cfg,
            slots: Vec::with_capacity(q),
            free: Vec::with_capacity(q),
            posted: PostedQueue::with_capacity(q),
            unexpected: UnexpectedQueue::with_capacity(q),
            claimed: Vec::new(),
            peers: (0..cfg.size)
                .map(|_| PeerQ {
                    ctrl: VecDeque::with_capacity(q),
                    msgs: VecDeque::with_capacity(q),
                    streams: VecDeque::with_capacity(16),
                    cma_ok: cfg.cma,
                    cma_proven: false,
                    dead: false,
                    finished: false,
                    touched: false,
                    urgent: false,
                })
                .collect(),
            pool: (0..pool_len(cfg.eager_threshold))
                .map(|_| Vec::with_capacity(cfg.eager_threshold))
                .collect(),
            receiver_waiting: false,
            sender_waiting: false,
            split_min: cfg
                .eager_threshold
                .saturating_mul(SPLIT_MIN_EAGERS)
                .max(SPLIT_MIN_BYTES),
            queued: false,
            completions: 0,
            cma_failure: None,
            no_alloc: false,
        }
    }

    fn alloc(&mut self, req: Req) -> u64 {
        let idx = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                self.slots.push(Slot { gen: 0, req: None });
                // `finish` must never allocate: room for every slot in the free list.
                self.free.reserve(self.slots.len());
                self.slots.len() - 1
            }
        };
        let s = &mut self.slots[idx];
        s.gen = s.gen.wrapping_add(1);
        let tok = (s.gen as u64) << 32 | (idx as u64 + 1);
        req.shared.tok.store(tok, Ordering::Relaxed);
        s.req = Some(req);
        tok
    }

    /// The live request `tok`, which the caller knows exists (a token taken from our own
    /// queues). Reachable from handlers: an impossible state ends the process.
    fn live(&mut self, tok: u64) -> &mut Req {
        match self.get(tok) {
            Some(r) => r,
            None => crate::diag::fatal("protocol: a queued request token is not live"),
        }
    }

    fn get(&mut self, tok: u64) -> Option<&mut Req> {
        let s = self.slots.get_mut(tok_index(tok))?;
        if s.gen as u64 != tok >> 32 {
            return None;
        }
        s.req.as_mut()
    }

    fn finish(&mut self, tok: u64, st: Status, fail: Option<Fail>) {
        let idx = tok_index(tok);
        let Some(req) = self.slots[idx].req.as_ref() else {
            return;
        };
        let cell: *const ReqShared = Arc::as_ptr(&req.shared);
        self.completions = self.completions.wrapping_add(1);
        self.free.push(idx as u32); // capacity reserved in `alloc`: no allocation
                                    // Release the core's reference *before* publishing completion: the owner holds its
                                    // own reference until it has seen DONE, so this never frees (no deallocation here,
                                    // which may run in a handler), and once DONE is published the core no longer
                                    // touches the cell. Dropped in place (not moved out: a request is ~100 bytes).
        self.slots[idx].req = None;
        // SAFETY: the owner's reference keeps the cell alive until it observes DONE, which
        // happens only after (or during) this call.
        unsafe { (*cell).complete(st, fail) };
    }

    fn finish_recv(&mut self, tok: u64) {
        let r = self.live(tok);
        let st = Status {
            source: r.peer,
            tag: r.tag,
            len: r.msg_len.min(r.len),
        };
        let fail = if r.split_failed {
            // Our share of a CMA split could not be read: the data is incomplete.
            Some(Fail::Malformed {
                rank: r.peer,
                detail: "its buffer could not be read (CMA) for this rank's share of the message",
            })
        } else {
            (r.msg_len > r.len).then_some(Fail::Truncated {
                message_len: r.msg_len,
                buffer_len: r.len,
            })
        };
        self.finish(tok, st, fail);
    }

    fn finish_send(&mut self, tok: u64) {
        let me = self.cfg.me;
        let r = self.live(tok);
        let st = Status {
            source: me,
            tag: r.tag,
            len: r.len,
        };
        self.finish(tok, st, None);
    }

    /// Peers with records pushed since the last call, and whether one of those records asks
    /// the peer to act (see [`Core::flush`]); cleared. FIN and EAGER records need no action
    /// from a computing peer: they complete at its next call, or in its next handler.
    pub fn take_touched(&mut self, mut f: impl FnMut(Rank, bool)) {
        for (i, p) in self.peers.iter_mut().enumerate() {
            if std::mem::take(&mut p.touched) {
                f(i as Rank, std::mem::take(&mut p.urgent));
            }
        }
    }

    /// `true` if some record is waiting for ring space. O(1) when nothing was queued since
    /// the last call that found no backlog; else a scan of the peers' queues.
    pub fn has_backlog(&mut self) -> bool {
        if !self.queued {
            return false;
        }
        self.queued = self
            .peers
            .iter()
            .any(|p| !p.ctrl.is_empty() || !p.msgs.is_empty() || !p.streams.is_empty());
        self.queued
    }

    /// Fast path of a blocking eager send: if `buf` is eager-sized, `dest` is another live
    /// rank with no message queued toward it (so order is kept) and its ring has room, the
    /// message is pushed now and no request is created. Returns `false` when the caller must
    /// take the ordinary path ([`Core::post_send`]).
    pub fn try_send_eager_now(
        &mut self,
        drv: &mut dyn Driver,
        buf: &[u8],
        dest: Rank,
        tag: Tag,
        ctx: u16,
    ) -> bool {
        let p = dest as usize;
        if dest == self.cfg.me
            || buf.len() > self.cfg.eager_threshold
            || self.peers[p].dead
            || !self.peers[p].msgs.is_empty()
        {
            return false;
        }
        if buf.len() > self.eager_limit(drv, dest) {
            drv.grow(dest, buf.len() + EAGER_HDR_LEN);
            if buf.len() > self.eager_limit(drv, dest) {
                return false;
            }
        }
        let mut h = Header::new(Kind::Eager);
        h.len = buf.len() as u64;
        h.ctx = ctx;
        h.tag = tag;
        if !drv.try_push(dest, &h, buf) {
            return false;
        }
        self.peers[p].touched = true;
        true
    }

    /// Posts a send of `len` bytes at `buf` to `dest`. The buffer must stay valid and
    /// unmodified until the returned cell completes.
    pub fn post_send(
        &mut self,
        drv: &mut dyn Driver,
        buf: *const u8,
        len: usize,
        dest: Rank,
        tag: Tag,
        ctx: u16,
    ) -> Arc<ReqShared> {
        self.post_send_with(drv, ReqShared::new(false), buf, len, dest, tag, ctx, false)
    }

    /// A synchronous send (MPI_Ssend): as [`Core::post_send`], but it completes only once
    /// a receive has matched it (its message takes the rendezvous whatever its size).
    pub fn post_ssend(
        &mut self,
        drv: &mut dyn Driver,
        buf: *const u8,
        len: usize,
        dest: Rank,
        tag: Tag,
        ctx: u16,
    ) -> Arc<ReqShared> {
        self.send_impl(
            drv,
            ReqShared::new(false),
            buf,
            len,
            dest,
            tag,
            ctx,
            true,
            false,
        )
    }

    /// [`Core::post_send`] completing the cell `shared` (a fresh pending send cell made
    /// beforehand): allocates nothing when [`Core::can_post`] said so and `dest` is another
    /// rank, so a handler may call it. `urgent`: even an EAGER record of it asks the peer
    /// to act (see [`Core::take_touched`]).
    #[allow(clippy::too_many_arguments)]
    pub fn post_send_with(
        &mut self,
        drv: &mut dyn Driver,
        shared: Arc<ReqShared>,
        buf: *const u8,
        len: usize,
        dest: Rank,
        tag: Tag,
        ctx: u16,
        urgent: bool,
    ) -> Arc<ReqShared> {
        self.send_impl(drv, shared, buf, len, dest, tag, ctx, false, urgent)
    }

    #[allow(clippy::too_many_arguments)]
    fn send_impl(
        &mut self,
        drv: &mut dyn Driver,
        shared: Arc<ReqShared>,
        buf: *const u8,
        len: usize,
        dest: Rank,
        tag: Tag,
        ctx: u16,
        sync: bool,
        urgent: bool,
    ) -> Arc<ReqShared> {
        let me = self.cfg.me;
        if self.peers[dest as usize].dead {
            shared.complete(
                Status {
                    source: me,
                    tag,
                    len,
                },
                Some(Fail::PeerDied { rank: dest }),
            );
            return shared;
        }
        let tok = self.alloc(Req {
            shared: shared.clone(),
            send: true,
            peer: dest,
            tag,
            ctx,
            buf: buf as *mut u8,
            len,
            st: St::Queued,
            msg_len: len,
            accept: 0,
            done_bytes: 0,
            remote: 0,
            sync,
            urgent,
            waits: self.sender_waiting,
            split_failed: false,
        });
        if dest == me {
            self.send_to_self(tok);
        } else {
            self.peers[dest as usize].msgs.push_back(tok);
            self.queued = true;
            self.flush(drv, dest);
        }
        shared
    }

    fn send_to_self(&mut self, tok: u64) {
        let me = self.cfg.me;
        let (tag, ctx, buf, len) = {
            let r = self.live(tok);
            (r.tag, r.ctx, r.buf, r.len)
        };
        let env = Envelope {
            source: me,
            tag,
            ctx,
        };
        if let Some((_, rtok)) = self.posted.take_match(&env) {
            self.copy_local(tok, rtok, me, tag);
            return;
        }
        if len <= self.cfg.eager_threshold && !self.live(tok).sync {
            let mut v = self.pool.pop().unwrap_or_default();
            v.clear();
            // SAFETY: `buf` is the sender's live buffer of `len` bytes.
            v.extend_from_slice(unsafe { std::slice::from_raw_parts(buf, len) });
            self.unexpected.push(env, Unexp::Eager(v));
            self.finish_send(tok);
        } else {
            self.unexpected.push(env, Unexp::SelfSend(tok));
        }
    }

    fn copy_local(&mut self, stok: u64, rtok: u64, source: Rank, tag: Tag) {
        let (sbuf, slen) = {
            let s = self.live(stok);
            (s.buf as *const u8, s.len)
        };
        let r = self.live(rtok);
        r.peer = source;
        r.tag = tag;
        r.msg_len = slen;
        let n = slen.min(r.len);
        // SAFETY: both buffers are live request buffers of at least `n` bytes; a send and a
        // receive buffer cannot overlap (one is borrowed shared, the other exclusively).
        unsafe { std::ptr::copy_nonoverlapping(sbuf, r.buf, n) };
        self.finish_send(stok);
        self.finish_recv(rtok);
    }

    /// Posts a receive into `len` bytes at `buf` from `source` (or [`ANY_SOURCE`]). The
    /// buffer must stay valid and unaliased until the returned cell completes.
    #[allow(clippy::too_many_arguments)]
    pub fn post_recv(
        &mut self,
        drv: &mut dyn Driver,
        buf: *mut u8,
        len: usize,
        source: Rank,
        tag: Tag,
        ctx: u16,
    ) -> Arc<ReqShared> {
        self.post_recv_with(drv, ReqShared::new(true), buf, len, source, tag, ctx)
    }

    /// [`Core::post_recv`] completing the cell `shared` (a fresh pending receive cell made
    /// beforehand): allocates nothing when [`Core::can_post`] said so, so a handler may
    /// call it.
    #[allow(clippy::too_many_arguments)]
    pub fn post_recv_with(
        &mut self,
        drv: &mut dyn Driver,
        shared: Arc<ReqShared>,
        buf: *mut u8,
        len: usize,
        source: Rank,
        tag: Tag,
        ctx: u16,
    ) -> Arc<ReqShared> {
        let pat = Pattern { source, tag, ctx };
        let gone = if source == ANY_SOURCE {
            // Self-sends can still match; another live rank too.
            source != self.cfg.me && self.all_others_gone()
        } else {
            source != self.cfg.me && self.peers[source as usize].dead
        };
        if gone && self.unexpected.peek_match(&pat).is_none() {
            let rank = if source == ANY_SOURCE {
                self.last_gone()
            } else {
                source
            };
            shared.complete(
                Status {
                    source,
                    tag,
                    len: 0,
                },
                Some(Fail::PeerDied { rank }),
            );
            return shared;
        }
        let tok = self.alloc(Req {
            shared: shared.clone(),
            send: false,
            peer: source,
            tag,
            ctx,
            buf,
            len,
            st: St::Queued,
            msg_len: 0,
            accept: 0,
            done_bytes: 0,
            remote: 0,
            sync: false,
            urgent: false,
            waits: false,
            split_failed: false,
        });
        match self.unexpected.take_match(&pat) {
            None => self.posted.push(pat, tok),
            Some((env, u)) => {
                {
                    let r = self.live(tok);
                    r.peer = env.source;
                    r.tag = env.tag;
                }
                match u {
                    Unexp::Eager(data) => {
                        self.deliver_eager(tok, &data);
                        self.recycle(data);
                    }
                    Unexp::Rts {
                        sreq,
                        addr,
                        len,
                        flags,
                    } => self.start_rndv_recv(drv, tok, env.source, sreq, addr, len, flags),
                    Unexp::SelfSend(stok) => self.copy_local(stok, tok, env.source, env.tag),
                }
            }
        }
        shared
    }

    fn recycle(&mut self, v: Vec<u8>) {
        if self.pool.len() < pool_len(self.cfg.eager_threshold)
            && v.capacity() <= 2 * self.cfg.eager_threshold.max(64)
        {
            self.pool.push(v);
        }
    }

    fn deliver_eager(&mut self, tok: u64, data: &[u8]) {
        let r = self.live(tok);
        r.msg_len = data.len();
        let n = data.len().min(r.len);
        // SAFETY: `r.buf` is the live receive buffer of `r.len ≥ n` bytes.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), r.buf, n) };
        self.finish_recv(tok);
    }

    #[allow(clippy::too_many_arguments)]
    fn start_rndv_recv(
        &mut self,
        drv: &mut dyn Driver,
        tok: u64,
        peer: Rank,
        sreq: u64,
        addr: u64,
        msg_len: usize,
        flags: u8,
    ) {
        let waiting = self.receiver_waiting;
        let sender_cma = flags & FLAG_CMA != 0;
        let cma_ok = self.peers[peer as usize].cma_ok;
        let (buf, accept) = {
            let r = self.live(tok);
            r.peer = peer;
            r.msg_len = msg_len;
            r.accept = msg_len.min(r.len);
            r.remote = sreq;
            (r.buf, r.accept)
        };
        if sender_cma && cma_ok && waiting {
            // Both wait (the sender in a blocking send): split the copy, the sender writing
            // the second half while this rank reads the first.
            let split = flags & FLAG_SENDER_WAITS != 0
                && self.peers[peer as usize].cma_proven
                && accept >= self.split_min;
            let mine = if split {
                (accept / 2) & !(SPLIT_ALIGN - 1)
            } else {
                accept
            };
            if split {
                {
                    let r = self.live(tok);
                    r.st = St::WaitFin;
                    // Should the sender's CMA write fail, it streams its share as DATA
                    // from here.
                    r.done_bytes = mine;
                }
                self.queue_cts(drv, peer, sreq, tok, buf, mine..accept, true);
            }
            // SAFETY: `buf` is the live receive buffer, at least `accept ≥ mine` bytes.
            let local = unsafe { std::slice::from_raw_parts_mut(buf, mine) };
            match drv.cma_read(peer, addr, local) {
                Ok(()) if split => {
                    // The receive completes with the sender's FIN for its half.
                    return;
                }
                Err(e) if split => {
                    // The CTS is out: the sender writes its half and sends FIN; the
                    // receive fails then (the buffer is not handed back before).
                    self.cma_refused(peer, &e);
                    self.live(tok).split_failed = true;
                    return;
                }
                Ok(()) => {
                    self.peers[peer as usize].cma_proven = true;
                    let urgent = self.live(tok).ctx & 1 == 1;
                    self.queue_ctrl(
                        drv,
                        peer,
                        Ctrl::Fin {
                            to_receiver: false,
                            token: sreq,
                            urgent,
                        },
                    );
                    self.finish_recv(tok);
                    return;
                }
                Err(e) => self.cma_refused(peer, &e),
            }
        }
        let cma = self.peers[peer as usize].cma_ok;
        self.live(tok).st = if cma { St::WaitFin } else { St::WaitData };
        self.queue_cts(drv, peer, sreq, tok, buf, 0..accept, cma);
        if !cma && accept == 0 {
            self.finish_recv(tok);
        }
    }

    /// Queues a CTS asking `peer`'s send `sreq` for bytes `part` of its message, for
    /// receive `tok` whose buffer starts at `buf` (written there with CMA when `cma`, else
    /// streamed as DATA).
    #[allow(clippy::too_many_arguments)]
    fn queue_cts(
        &mut self,
        drv: &mut dyn Driver,
        peer: Rank,
        sreq: u64,
        tok: u64,
        buf: *mut u8,
        part: std::ops::Range<usize>,
        cma: bool,
    ) {
        let c = Ctrl::Cts {
            sreq,
            rreq: tok,
            addr: buf as u64 + part.start as u64,
            len: part.len(),
            cma,
            offset: part.start,
        };
        self.queue_ctrl(drv, peer, c);
    }

    /// A CMA copy with `peer` failed: the pipelined path from now on, reported once.
    fn cma_refused(&mut self, peer: Rank, e: &std::io::Error) {
        self.cma_failure
            .get_or_insert((peer, e.raw_os_error().unwrap_or(0)));
        self.peers[peer as usize].cma_ok = false;
    }

    fn queue_ctrl(&mut self, drv: &mut dyn Driver, peer: Rank, c: Ctrl) {
        self.peers[peer as usize].ctrl.push_back(c);
        self.queued = true;
        self.flush(drv, peer);
    }

    /// Our records toward peer index `p` wait for ring space: the peer must drain its ring.
    fn backlogged(&mut self, p: usize) {
        self.peers[p].touched = true;
        self.peers[p].urgent = true;
    }

    /// Largest eager message toward `peer` now: the threshold, capped by what the path
    /// toward it carries whole (a node peer without a fast ring takes small records only).
    fn eager_limit(&self, drv: &dyn Driver, peer: Rank) -> usize {
        self.cfg
            .eager_threshold
            .min(drv.max_record(peer).saturating_sub(EAGER_HDR_LEN))
    }

    /// Pushes as many queued records toward `peer` as its ring accepts, in order: control
    /// records first, then EAGER/RTS in post order, then DATA chunks.
    pub fn flush(&mut self, drv: &mut dyn Driver, peer: Rank) {
        let p = peer as usize;
        while let Some(c) = self.peers[p].ctrl.front() {
            let mut coll_fin = false;
            let h = match *c {
                Ctrl::Cts {
                    sreq,
                    rreq,
                    addr,
                    len,
                    cma,
                    offset,
                } => {
                    let mut h = Header::new(Kind::Cts);
                    h.sreq = sreq;
                    h.rreq = rreq;
                    h.addr = addr;
                    h.len = len as u64;
                    h.offset = offset as u64;
                    h.flags = if cma { FLAG_CMA } else { 0 };
                    h
                }
                Ctrl::Fin {
                    to_receiver,
                    token,
                    urgent,
                } => {
                    coll_fin |= urgent;
                    let mut h = Header::new(Kind::Fin);
                    if to_receiver {
                        h.flags = FLAG_TO_RECEIVER;
                        h.rreq = token;
                    } else {
                        h.sreq = token;
                    }
                    h
                }
            };
            if !drv.try_push(peer, &h, &[]) {
                self.backlogged(p);
                return;
            }
            self.peers[p].touched = true;
            self.peers[p].urgent |= h.kind == Kind::Cts || coll_fin;
            self.peers[p].ctrl.pop_front();
        }
        // Eager only what the path toward the peer carries whole (a node peer without a
        // fast ring takes small records only: ask for one first).
        let mut eager = self.eager_limit(drv, peer);
        while let Some(&tok) = self.peers[p].msgs.front() {
            let len = self.live(tok).len;
            if len > eager && len <= self.cfg.eager_threshold {
                drv.grow(peer, len + EAGER_HDR_LEN);
                eager = self.eager_limit(drv, peer);
            }
            let cma_ok = self.peers[p].cma_ok;
            let r = self.live(tok);
            let r_urgent = r.urgent;
            let mut h;
            let payload: &[u8];
            if r.len <= eager && !r.sync {
                h = Header::new(Kind::Eager);
                h.len = r.len as u64;
                // SAFETY: the send buffer is live and unmodified until completion.
                payload = unsafe { std::slice::from_raw_parts(r.buf, r.len) };
            } else {
                h = Header::new(Kind::Rts);
                h.len = r.len as u64;
                h.sreq = tok;
                h.addr = r.buf as u64;
                h.flags = if cma_ok { FLAG_CMA } else { 0 };
                if r.waits {
                    h.flags |= FLAG_SENDER_WAITS;
                }
                payload = &[];
            }
            h.ctx = r.ctx;
            h.tag = r.tag;
            if !drv.try_push(peer, &h, payload) {
                self.backlogged(p);
                return;
            }
            self.peers[p].touched = true;
            // A collective's later rounds ask the peer to act even when eager: its
            // schedule waits for them (nonblocking collectives progress in the handler).
            self.peers[p].urgent |= h.kind == Kind::Rts || (h.kind == Kind::Eager && r_urgent);
            self.peers[p].msgs.pop_front();
            if h.kind == Kind::Eager {
                self.finish_send(tok);
            } else {
                self.live(tok).st = St::WaitCts;
            }
        }
        let max_chunk = drv.max_record(peer).saturating_sub(FULL_HDR_LEN).max(1);
        let chunk = drv.chunk(peer, self.cfg.chunk).max(1);
        while let Some(&tok) = self.peers[p].streams.front() {
            let chunk = chunk.min(max_chunk);
            loop {
                let r = self.live(tok);
                if r.done_bytes == r.accept {
                    break;
                }
                let n = chunk.min(r.accept - r.done_bytes);
                let mut h = Header::new(Kind::Data);
                h.len = n as u64;
                h.rreq = r.remote;
                h.offset = r.done_bytes as u64;
                // SAFETY: the send buffer is live; `done_bytes + n ≤ accept ≤ len`.
                let payload = unsafe { std::slice::from_raw_parts(r.buf.add(r.done_bytes), n) };
                if !drv.try_push(peer, &h, payload) {
                    self.backlogged(p);
                    return;
                }
                self.peers[p].touched = true;
                self.peers[p].urgent = true;
                self.live(tok).done_bytes += n;
            }
            self.peers[p].streams.pop_front();
            self.finish_send(tok);
        }
    }

    /// Retries every peer's queued records.
    pub fn flush_all(&mut self, drv: &mut dyn Driver) {
        for p in 0..self.cfg.size {
            if p != self.cfg.me {
                self.flush(drv, p);
            }
        }
    }

    /// `true` if a record of `kind` with `payload` bytes can be handled without allocating.
    /// EAGER and RTS may become unexpected (a queue entry; EAGER also a pooled buffer large
    /// enough); RTS may answer a CTS or FIN and CTS may answer a FIN or start a stream
    /// (room toward every peer); DATA and FIN only copy into or complete live requests.
    fn headroom(&self, kind: Kind, payload: usize) -> bool {
        let ctrl_room = || {
            self.peers
                .iter()
                .all(|p| p.ctrl.len() < p.ctrl.capacity() && p.streams.len() < p.streams.capacity())
        };
        match kind {
            Kind::Eager => {
                self.unexpected.has_room()
                    && self.pool.last().is_some_and(|v| v.capacity() >= payload)
            }
            Kind::Rts => self.unexpected.has_room() && ctrl_room(),
            Kind::Cts => ctrl_room(),
            Kind::Data | Kind::Fin => true,
        }
    }

    /// Makes room for `n` more live requests (ordinary context: may allocate), so that
    /// [`Core::can_post`] can admit them in a handler.
    pub fn reserve_requests(&mut self, n: usize) {
        while self.free.len() < n {
            self.slots.push(Slot { gen: 0, req: None });
            self.free.reserve(self.slots.len());
            self.free.push((self.slots.len() - 1) as u32);
        }
        self.posted.reserve(n);
        for p in &mut self.peers {
            p.msgs.reserve(n);
        }
    }

    /// `true` if `n` sends or receives toward other ranks can be posted
    /// ([`Core::post_send_with`], [`Core::post_recv_with`]) without allocating: request
    /// slots, posted-queue room, send-queue room toward every peer, and room for the control
    /// records a matched rendezvous answers with. Async-signal-safe.
    pub fn can_post(&self, n: usize) -> bool {
        self.free.len() >= n
            && self.posted.spare() >= n
            && self.peers.iter().all(|p| {
                p.msgs.capacity() - p.msgs.len() >= n
                    && p.ctrl.capacity() - p.ctrl.len() >= n
                    && p.streams.len() < p.streams.capacity()
            })
    }

    /// Counts a completion made outside the core (a collective schedule), so that the
    /// engine wakes the rank's sleeping threads after the pass.
    pub fn count_completion(&mut self) {
        self.completions = self.completions.wrapping_add(1);
    }

    /// Handles one record received from `peer`.
    ///
    /// Returns whether it was consumed ([`Taken`]).
    ///
    /// # Errors
    /// [`Fail::Malformed`] if the record cannot be decoded or names a request that does not
    /// exist or is not in a state to receive it. The caller should then treat `peer` as
    /// failed ([`Core::fail_peer`]).
    pub fn on_record(
        &mut self,
        drv: &mut dyn Driver,
        peer: Rank,
        rec: &[u8],
    ) -> Result<Taken, Fail> {
        let malformed = |detail| Fail::Malformed { rank: peer, detail };
        let (h, payload) = Header::decode(rec).map_err(|_| malformed("undecodable header"))?;
        if self.no_alloc && !self.headroom(h.kind, payload.len()) {
            return Ok(Taken::LeftInRing);
        }
        match h.kind {
            Kind::Eager | Kind::Rts => {
                let env = Envelope {
                    source: peer,
                    tag: h.tag,
                    ctx: h.ctx,
                };
                if h.tag < 0 {
                    return Err(malformed("negative tag"));
                }
                match self.posted.take_match(&env) {
                    Some((_, tok)) => {
                        {
                            let r = self.live(tok);
                            r.peer = peer;
                            r.tag = h.tag;
                        }
                        if h.kind == Kind::Eager {
                            self.deliver_eager(tok, payload);
                        } else {
                            self.start_rndv_recv(
                                drv,
                                tok,
                                peer,
                                h.sreq,
                                h.addr,
                                h.len as usize,
                                h.flags,
                            );
                        }
                    }
                    None => {
                        let u = if h.kind == Kind::Eager {
                            let mut v = self.pool.pop().unwrap_or_default();
                            v.clear();
                            v.extend_from_slice(payload);
                            Unexp::Eager(v)
                        } else {
                            Unexp::Rts {
                                sreq: h.sreq,
                                addr: h.addr,
                                len: h.len as usize,
                                flags: h.flags,
                            }
                        };
                        self.unexpected.push(env, u);
                    }
                }
            }
            Kind::Cts => {
                let tok = h.sreq;
                let accept = h.len as usize;
                let offset = h.offset as usize;
                let ok = matches!(self.get(tok), Some(r) if r.send && r.peer == peer && r.st == St::WaitCts
                    && offset.checked_add(accept).is_some_and(|end| end <= r.len));
                if !ok {
                    return Err(malformed("CTS for no send awaiting one"));
                }
                if offset > 0 && h.flags & FLAG_CMA == 0 {
                    return Err(malformed("CTS with an offset but no CMA address"));
                }
                let split = offset > 0;
                // A split's CTS asks for our share whatever we concluded of CMA since the
                // RTS: the receiver reads its own share meanwhile and waits for our FIN.
                let cma = h.flags & FLAG_CMA != 0 && (self.peers[peer as usize].cma_ok || split);
                let buf = {
                    let r = self.live(tok);
                    // Bytes `offset..offset + accept` of the message are ours to deliver
                    // (by CMA, else streamed as DATA from `offset`).
                    r.accept = offset + accept;
                    r.done_bytes = offset;
                    r.remote = h.rreq;
                    // SAFETY: `offset + accept ≤ len` (checked above): inside the send buffer.
                    unsafe { r.buf.add(offset) }
                };
                if cma {
                    let res = if accept == 0 {
                        Ok(())
                    } else {
                        // SAFETY: the send buffer is live and `accept ≤ len`.
                        drv.cma_write(peer, h.addr, unsafe {
                            std::slice::from_raw_parts(buf, accept)
                        })
                    };
                    match res {
                        Ok(()) => {
                            self.peers[peer as usize].cma_proven |= accept > 0;
                            let urgent = self.live(tok).ctx & 1 == 1;
                            self.queue_ctrl(
                                drv,
                                peer,
                                Ctrl::Fin {
                                    to_receiver: true,
                                    token: h.rreq,
                                    urgent,
                                },
                            );
                            self.finish_send(tok);
                            return Ok(Taken::Consumed);
                        }
                        Err(e) => self.cma_refused(peer, &e),
                    }
                }
                if accept == 0 {
                    self.finish_send(tok);
                    return Ok(Taken::Consumed);
                }
                // Our share streamed as DATA (a split's receiver, waiting for our FIN,
                // takes DATA from its share's end: see `start_rndv_recv`).
                self.live(tok).st = St::Streaming;
                self.peers[peer as usize].streams.push_back(tok);
                self.queued = true;
                self.flush(drv, peer);
            }
            Kind::Data => {
                let tok = h.rreq;
                let n = payload.len();
                let off = h.offset as usize;
                let r = match self.get(tok) {
                    Some(r)
                        if !r.send
                            && r.peer == peer
                            && matches!(r.st, St::WaitData | St::WaitFin)
                            && off == r.done_bytes
                            && off + n <= r.accept =>
                    {
                        r
                    }
                    _ => return Err(malformed("DATA for no receive expecting it")),
                };
                // SAFETY: `off + n ≤ accept ≤ len` of the live receive buffer.
                unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), r.buf.add(off), n) };
                r.done_bytes += n;
                if r.done_bytes == r.accept {
                    self.finish_recv(tok);
                }
            }
            Kind::Fin => {
                if h.flags & FLAG_TO_RECEIVER != 0 {
                    let tok = h.rreq;
                    let ok = matches!(self.get(tok), Some(r) if !r.send && r.peer == peer && r.st == St::WaitFin);
                    if !ok {
                        return Err(malformed("FIN for no receive awaiting one"));
                    }
                    self.finish_recv(tok);
                } else {
                    let tok = h.sreq;
                    let ok = matches!(self.get(tok), Some(r) if r.send && r.peer == peer && r.st == St::WaitCts);
                    if !ok {
                        return Err(malformed("FIN for no send awaiting one"));
                    }
                    self.finish_send(tok);
                }
            }
        }
        Ok(Taken::Consumed)
    }

    /// The status of the oldest unexpected message matching (`source`, `tag`, `ctx`).
    pub fn iprobe(&self, source: Rank, tag: Tag, ctx: u16) -> Option<Status> {
        let (env, u) = self.unexpected.peek_match(&Pattern { source, tag, ctx })?;
        let len = match u {
            Unexp::Eager(v) => v.len(),
            Unexp::Rts { len, .. } => *len,
            Unexp::SelfSend(t) => {
                let s = &self.slots[tok_index(*t)];
                s.req.as_ref().map_or(0, |r| r.len)
            }
        };
        Some(Status {
            source: env.source,
            tag: env.tag,
            len,
        })
    }

    /// Matched probe (MPI_Improbe): takes the oldest unexpected message matching
    /// (`source`, `tag`, `ctx`) out of the queue, so that no other receive can match it,
    /// and returns its status and a token for [`Core::post_mrecv`].
    pub fn improbe(&mut self, source: Rank, tag: Tag, ctx: u16) -> Option<(Status, u64)> {
        let st = self.iprobe(source, tag, ctx)?;
        let (env, u) = self.unexpected.take_match(&Pattern { source, tag, ctx })?;
        let id = match self.claimed.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.claimed.push(None);
                self.claimed.len() - 1
            }
        };
        self.claimed[id] = Some((env, u));
        Some((st, id as u64))
    }

    /// Receives the message `msg` taken by [`Core::improbe`] into `len` bytes at `buf`
    /// (MPI_Mrecv). A message whose rendezvous sender is gone fails with `PeerDied`.
    pub fn post_mrecv(
        &mut self,
        drv: &mut dyn Driver,
        msg: u64,
        buf: *mut u8,
        len: usize,
    ) -> Arc<ReqShared> {
        let shared = ReqShared::new(true);
        let Some((env, u)) = self.claimed.get_mut(msg as usize).and_then(Option::take) else {
            shared.complete(
                Status {
                    source: ANY_SOURCE,
                    tag: 0,
                    len: 0,
                },
                Some(Fail::Malformed {
                    rank: self.cfg.me,
                    detail: "no such matched message (received already?)",
                }),
            );
            return shared;
        };
        if env.source != self.cfg.me
            && self.peers[env.source as usize].dead
            && matches!(u, Unexp::Rts { .. })
        {
            shared.complete(
                Status {
                    source: env.source,
                    tag: env.tag,
                    len: 0,
                },
                Some(Fail::PeerDied { rank: env.source }),
            );
            return shared;
        }
        let tok = self.alloc(Req {
            shared: shared.clone(),
            send: false,
            peer: env.source,
            tag: env.tag,
            ctx: env.ctx,
            buf,
            len,
            st: St::Queued,
            msg_len: 0,
            accept: 0,
            done_bytes: 0,
            remote: 0,
            sync: false,
            urgent: false,
            waits: false,
            split_failed: false,
        });
        match u {
            Unexp::Eager(data) => {
                self.deliver_eager(tok, &data);
                self.recycle(data);
            }
            Unexp::Rts {
                sreq,
                addr,
                len,
                flags,
            } => self.start_rndv_recv(drv, tok, env.source, sreq, addr, len, flags),
            Unexp::SelfSend(stok) => self.copy_local(stok, tok, env.source, env.tag),
        }
        shared
    }

    /// Marks `peer` dead (its process exited without finishing): see [`Core::peer_gone`].
    pub fn fail_peer(&mut self, peer: Rank) {
        self.peer_gone(peer, false);
    }

    /// Marks `peer` gone, having died (`finished == false`) or finished cleanly (dropped
    /// its communicator, `true`), once every record it published has been handled.
    /// Completes with [`Fail::PeerDied`] exactly the requests that can no longer complete:
    /// sends to it, receives naming it, rendezvous transfers with it, and `ANY_SOURCE`
    /// receives only once *every* other rank is gone (until then another rank may still
    /// match them). Its queued records are dropped. Complete eager messages it sent stay in
    /// the unexpected queue and can still be received; its rendezvous announcements are
    /// dropped (the data was in its memory).
    /// Appends to `out` (without repeats, at most `max` ranks) the other ranks that live
    /// requests name: sends, receives from one source (not `ANY_SOURCE`), transfers under
    /// way. The engine probes these directly, whatever rank watches them.
    pub fn waited_peers(&self, out: &mut Vec<Rank>, max: usize) {
        for s in &self.slots {
            if out.len() >= max {
                return;
            }
            if let Some(r) = &s.req {
                let p = r.peer;
                if p != ANY_SOURCE
                    && p != self.cfg.me
                    && (p as usize) < self.peers.len()
                    && !self.peers[p as usize].dead
                    && !out.contains(&p)
                {
                    out.push(p);
                }
            }
        }
    }

    pub fn peer_gone(&mut self, peer: Rank, finished: bool) {
        let p = &mut self.peers[peer as usize];
        if p.dead {
            return;
        }
        p.dead = true;
        p.finished = finished;
        p.ctrl.clear();
        p.msgs.clear();
        p.streams.clear();
        let all_gone = self.all_others_gone();
        let mut toks = Vec::new();
        self.posted.drain_where(
            |pat, _| pat.source == peer || (all_gone && pat.source == ANY_SOURCE),
            |_, t| toks.push(t),
        );
        self.unexpected.drain_where(
            |e, u| e.source == peer && matches!(u, Unexp::Rts { .. }),
            |_, _| {},
        );
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(r) = &s.req {
                let t = (s.gen as u64) << 32 | (i as u64 + 1);
                // A posted receive's `peer` is its pattern's source until it matches.
                let posted_any = !r.send && r.st == St::Queued && r.peer == ANY_SOURCE;
                if r.peer == peer && !posted_any && !toks.contains(&t) {
                    toks.push(t);
                }
            }
        }
        for t in toks {
            let (tag, send) = match self.get(t) {
                Some(r) => (r.tag, r.send),
                None => continue,
            };
            let st = Status {
                source: if send { self.cfg.me } else { peer },
                tag,
                len: 0,
            };
            self.finish(t, st, Some(Fail::PeerDied { rank: peer }));
        }
    }

    /// `true` if the world has other ranks and all of them are gone.
    pub fn all_others_gone(&self) -> bool {
        self.cfg.size > 1
            && self
                .peers
                .iter()
                .enumerate()
                .all(|(i, p)| i as Rank == self.cfg.me || p.dead)
    }

    /// Cancels the request `h` if it has not matched yet (MPI_Cancel semantics): a receive
    /// still in the posted queue, or a send whose EAGER/RTS record has not left this rank,
    /// completes at once with [`Fail::Cancelled`] and `true` is returned. A request that has
    /// matched, or is already complete, is left alone (`false`): it completes normally.
    pub fn cancel(&mut self, h: &ReqShared) -> bool {
        if h.is_complete() {
            return false;
        }
        let tok = h.tok.load(Ordering::Relaxed);
        let (send, peer, tag, st) = match self.get(tok) {
            Some(r) if std::ptr::eq(Arc::as_ptr(&r.shared), h) => (r.send, r.peer, r.tag, r.st),
            _ => return false,
        };
        if st != St::Queued {
            return false;
        }
        let mut found = false;
        if send {
            if peer == self.cfg.me {
                self.unexpected.drain_where(
                    |_, u| matches!(u, Unexp::SelfSend(t) if *t == tok),
                    |_, _| found = true,
                );
            } else {
                let q = &mut self.peers[peer as usize].msgs;
                if let Some(i) = q.iter().position(|&t| t == tok) {
                    q.remove(i);
                    found = true;
                }
            }
        } else {
            self.posted
                .drain_where(|_, t| *t == tok, |_, _| found = true);
        }
        if found {
            let source = if send { self.cfg.me } else { peer };
            self.finish(
                tok,
                Status {
                    source,
                    tag,
                    len: 0,
                },
                Some(Fail::Cancelled),
            );
        }
        found
    }

    /// `true` if `peer` holds the address of one of our live receive buffers with leave to
    /// write into it (a CTS offering a single-copy write was sent, no FIN yet). Completing
    /// such a receive while `peer` still runs would hand back a buffer it may still write.
    pub fn exposed_to(&self, peer: Rank) -> bool {
        self.slots.iter().any(|s| {
            s.req
                .as_ref()
                .is_some_and(|r| !r.send && r.peer == peer && r.st == St::WaitFin)
        })
    }

    /// `true` if every record of ours toward `peer` has left (nothing waits for ring space).
    pub fn flushed_to(&self, peer: Rank) -> bool {
        let p = &self.peers[peer as usize];
        p.ctrl.is_empty() && p.msgs.is_empty() && p.streams.is_empty()
    }

    /// Some gone rank other than this one (the highest), for errors about `ANY_SOURCE`.
    pub fn last_gone(&self) -> Rank {
        (0..self.cfg.size)
            .rev()
            .find(|&r| r != self.cfg.me && self.peers[r as usize].dead)
            .unwrap_or(self.cfg.me)
    }

    /// For a stream transport that received the header of a DATA record from `peer` but not
    /// yet its payload: where the `h.len` payload bytes go (inside the live receive
    /// buffer), so that the transport reads them there directly, with no intermediate
    /// copy. Call [`Core::data_written`] once they are all there. The target stays valid
    /// until then: a matched receive cannot be cancelled, and it fails only if `peer` is
    /// marked gone, after which the transport must not write any more.
    ///
    /// # Errors
    /// [`Fail::Malformed`] if no receive expects this chunk (as [`Core::on_record`]).
    pub fn data_target(&mut self, peer: Rank, h: &Header) -> Result<*mut u8, Fail> {
        let n = h.len as usize;
        let off = h.offset as usize;
        match self.get(h.rreq) {
            Some(r)
                if h.kind == Kind::Data
                    && !r.send
                    && r.peer == peer
                    && matches!(r.st, St::WaitData | St::WaitFin)
                    && off == r.done_bytes
                    && off.checked_add(n).is_some_and(|e| e <= r.accept) =>
            {
                // SAFETY: `off + n ≤ accept ≤ len` of the live receive buffer.
                Ok(unsafe { r.buf.add(off) })
            }
            _ => Err(Fail::Malformed {
                rank: peer,
                detail: "DATA for no receive expecting it",
            }),
        }
    }

    /// The payload of `h` (a DATA record from `peer`) was written at
    /// [`Core::data_target`]: accounts for it, completing the receive after its last chunk.
    /// Async-signal-safe.
    pub fn data_written(&mut self, peer: Rank, h: &Header) {
        let tok = h.rreq;
        let done = match self.get(tok) {
            Some(r) if !r.send && r.peer == peer => {
                r.done_bytes += h.len as usize;
                r.done_bytes == r.accept
            }
            _ => return,
        };
        if done {
            self.finish_recv(tok);
        }
    }

    /// Says whether single-copy transfers (CMA) may be tried with `peer` (the transport
    /// serving it offers them): `false` for peers of other nodes.
    pub fn set_single_copy(&mut self, peer: Rank, ok: bool) {
        if let Some(p) = self.peers.get_mut(peer as usize) {
            p.cma_ok = ok && self.cfg.cma;
        }
    }

    /// `true` if `peer` finished cleanly (marked gone by [`Core::peer_gone`] with
    /// `finished`).
    pub fn is_finished(&self, peer: Rank) -> bool {
        let p = &self.peers[peer as usize];
        p.dead && p.finished
    }

    /// `true` if `peer` has been marked gone (died or finished).
    pub fn is_dead(&self, peer: Rank) -> bool {
        self.peers[peer as usize].dead
    }

    /// Number of requests in flight (for tests).
    #[cfg(test)]
    pub fn live_requests(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests;
