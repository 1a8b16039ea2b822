//! Running collective schedules: posts each round's sends and receives, runs its local
//! copies and reductions, moves to the next round when they all completed, and completes
//! the collective's request after the last.
//!
//! Owns [`Running`] (a schedule in flight with its buffers and preallocated request cells)
//! and [`Colls`] (those of one rank). Called under the engine lock after every progress
//! pass, in a handler too: [`Running::advance`] allocates nothing there (cells made at
//! start, room in the core checked with `Core::can_post`, user operations left to ordinary
//! passes), and a schedule finished in a handler is dropped by the next ordinary pass.
//! It must not know how records travel (the core and the transports do).

use std::sync::Arc;

use crate::coll::op::{apply, Elem, Op};
use crate::coll::sched::{At, Buf, Schedule, Step};
use crate::protocol::{Core, Driver, Fail, ReqShared, Status};
use crate::{Rank, Tag};

/// A collective in flight.
pub(crate) struct Running {
    sched: Schedule,
    /// Next round to start (`rounds.len()`: all started).
    round: usize,
    started: bool,
    send: *const u8,
    recv: *mut u8,
    /// All temporary buffers in one allocation, each starting at `tmp_off[i]` (64-byte
    /// aligned offsets).
    tmp: Vec<u8>,
    tmp_off: Vec<usize>,
    op: Option<(Op, Elem)>,
    ctx: u16,
    tag: Tag,
    /// Communicator rank → world rank.
    world: Arc<[Rank]>,
    /// Cells of the steps of the current round, in step order, and whether each is a send
    /// (capacity reserved at `new`: filled in handlers too).
    cur: Vec<(Arc<ReqShared>, bool)>,
    /// Cells for the rounds still to come (popped as they are posted), given by
    /// [`Colls::start`] from its pool.
    spare: Vec<Arc<ReqShared>>,
    /// The collective's own request.
    pub(crate) done: Arc<ReqShared>,
    failing: Option<Fail>,
    me: Rank,
    /// Its eager messages ask peers to act: false for the rounds posted when it starts
    /// (every rank starts the collective itself, and progresses it then), true for those a
    /// progress pass posts later (a peer may be computing meanwhile).
    urgent: bool,
}

// SAFETY: the raw buffer pointers are lent by the API layer for the collective's whole life
// and only dereferenced under the engine lock.
unsafe impl Send for Running {}

impl Running {
    /// A schedule ready to run with the caller's buffers (`send` read only; `recv` written;
    /// either may be dangling when the schedule does not address it). `op` is the
    /// reduction (operation and element type) of `Reduce` steps.
    ///
    /// # Safety
    /// The buffers must cover every byte the schedule addresses and stay valid (and, for
    /// `recv`, unaliased) until `done` completes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn new(
        sched: Schedule,
        send: *const u8,
        recv: *mut u8,
        op: Option<(Op, Elem)>,
        ctx: u16,
        tag: Tag,
        world: Arc<[Rank]>,
        me: Rank,
    ) -> Running {
        // Buffers a schedule does not address may be null: a dangling but non-null pointer
        // keeps zero-length slices of them valid.
        let dangling = std::ptr::NonNull::<u8>::dangling().as_ptr();
        let send = if send.is_null() {
            dangling
        } else {
            send as *mut u8
        };
        let recv = if recv.is_null() { dangling } else { recv };
        let n = sched.comm_steps();
        let most = sched.max_round_comm();
        let mut tmp_off = Vec::with_capacity(sched.tmps.len());
        let mut total = 0usize;
        for &b in &sched.tmps {
            tmp_off.push(total);
            total += b.div_ceil(64) * 64;
        }
        // Zeroed: a temporary is always written (copied or received into) before it is
        // read, but zeroing keeps every byte initialized whatever a schedule does.
        let tmp = vec![0u8; total];
        Running {
            sched,
            round: 0,
            started: false,
            send,
            recv,
            tmp,
            tmp_off,
            op,
            ctx,
            tag,
            world,
            cur: Vec::with_capacity(most),
            spare: Vec::with_capacity(n),
            done: ReqShared::new(false),
            failing: None,
            me,
            urgent: false,
        }
    }

    /// Requests of the largest round (to reserve in the core beforehand).
    pub(crate) fn max_round_comm(&self) -> usize {
        self.sched.max_round_comm()
    }

    /// `true` once the collective's request has completed.
    pub(crate) fn finished(&self) -> bool {
        self.done.is_complete()
    }

    /// `true` if world rank `r` is a member of the communicator.
    pub(crate) fn involves(&self, r: Rank) -> bool {
        self.world.contains(&r)
    }

    fn ptr(&mut self, a: At) -> *mut u8 {
        match a.buf {
            // SAFETY (of the callers' offsets): the schedule addresses bytes within the
            // buffers lent at `new`; `wrapping_add` itself is safe.
            Buf::Send => (self.send as *mut u8).wrapping_add(a.off),
            Buf::Recv => self.recv.wrapping_add(a.off),
            Buf::Tmp(i) => self.tmp.as_mut_ptr().wrapping_add(self.tmp_off[i] + a.off),
        }
    }

    /// Fails the collective (a member is gone): cancels what can be, completes once nothing
    /// is in flight any more.
    pub(crate) fn fail(&mut self, core: &mut Core, why: Fail) {
        if self.finished() || self.failing.is_some() {
            return;
        }
        for (c, _) in &self.cur {
            core.cancel(c);
        }
        self.failing = Some(why);
    }

    /// Runs rounds as far as their requests allow. `handler`: in a signal or interrupt
    /// handler (allocates nothing; leaves user operations and rounds the core has no room
    /// for to the next ordinary pass). Returns whether anything was done.
    pub(crate) fn advance(&mut self, core: &mut Core, drv: &mut dyn Driver, handler: bool) -> bool {
        let mut did = false;
        loop {
            if self.finished() {
                return did;
            }
            if self.started && !self.cur.iter().all(|(c, _)| c.is_complete()) {
                return did;
            }
            // The current round is over: any failure? A send to a rank that finished
            // cleanly is not one: that rank completed its part of the collective (a
            // correct program finishes only after its collectives), so it needs nothing
            // more from us.
            if self.failing.is_none() {
                if let Some(f) = self
                    .cur
                    .iter()
                    .filter_map(|(c, send)| {
                        let send = *send;
                        let f = c.outcome().and_then(|(_, f)| f)?;
                        match f {
                            Fail::Cancelled => None,
                            Fail::PeerDied { rank } if send && core.is_finished(rank) => None,
                            f => Some(f),
                        }
                    })
                    .next()
                {
                    self.failing = Some(f);
                }
            }
            if let Some(f) = self.failing.clone() {
                self.complete(core, Some(f));
                return true;
            }
            if self.round == self.sched.rounds() {
                self.complete(core, None);
                return true;
            }
            let i = self.round;
            let steps = self.sched.round_steps(i);
            let ncomm = steps.iter().filter(|s| s.is_comm()).count();
            let user = self.op.as_ref().is_some_and(|(o, _)| o.is_user())
                && steps.iter().any(|s| matches!(s, Step::Reduce { .. }));
            if handler && (user || !core.can_post(ncomm)) {
                return did;
            }
            self.started = true;
            did = true;
            self.cur.clear();
            self.round += 1;
            let n = self.sched.round_steps(i).len();
            for k in 0..n {
                match self.sched.round_steps(i)[k] {
                    Step::Copy { from, to, len } => {
                        let (f, t) = (self.ptr(from), self.ptr(to));
                        // SAFETY: both regions lie in buffers lent for the collective
                        // (`new`'s contract) or owned here; `copy` allows overlap.
                        unsafe { std::ptr::copy(f, t, len) };
                    }
                    Step::Reduce {
                        from,
                        into,
                        count,
                        rev,
                    } => self.reduce(from, into, count, rev),
                    Step::Send { .. } | Step::Recv { .. } => {}
                }
            }
            for k in 0..n {
                match self.sched.round_steps(i)[k] {
                    Step::Send { at, len, to } => {
                        let cell = self.cell();
                        let p = self.ptr(at);
                        let dest = self.world[to as usize];
                        core.post_send_with(
                            drv,
                            cell.clone(),
                            p,
                            len,
                            dest,
                            self.tag,
                            self.ctx,
                            self.urgent,
                        );
                        self.cur.push((cell, true));
                    }
                    Step::Recv { at, len, from } => {
                        let cell = self.cell();
                        let p = self.ptr(at);
                        let src = self.world[from as usize];
                        core.post_recv_with(drv, cell.clone(), p, len, src, self.tag, self.ctx);
                        self.cur.push((cell, false));
                    }
                    _ => {}
                }
            }
        }
    }

    fn cell(&mut self) -> Arc<ReqShared> {
        match self.spare.pop() {
            Some(c) => c,
            // Counted at `new`: one cell per send or receive of the schedule.
            None => crate::diag::fatal("collective schedule: more steps than cells"),
        }
    }

    fn reduce(&mut self, from: At, into: At, count: usize, rev: bool) {
        let Some((op, elem)) = self.op.clone() else {
            crate::diag::fatal("collective schedule: a reduction without an operation");
        };
        let (f, t) = (self.ptr(from), self.ptr(into));
        let bytes = count * elem.size();
        // With `rev`: from = into ⊕ from, then into = from.
        let (a, b) = if rev {
            (t as *const u8, f)
        } else {
            (f as *const u8, t)
        };
        match &op {
            Op::User { f: uf, .. } => {
                // SAFETY: both regions lie in the collective's buffers, `bytes` long, and
                // are distinct places of the schedule (never the same region).
                let (x, y) = unsafe {
                    (
                        std::slice::from_raw_parts(a, bytes),
                        std::slice::from_raw_parts_mut(b, bytes),
                    )
                };
                uf(x, y);
            }
            _ => {
                // SAFETY: as above; the operation was checked against `elem` at start.
                unsafe { apply(&op, elem, a, b, count) };
            }
        }
        if rev {
            // SAFETY: as above.
            unsafe { std::ptr::copy(f, t, bytes) };
        }
    }

    fn complete(&mut self, core: &mut Core, fail: Option<Fail>) {
        let st = Status {
            source: self.me,
            tag: self.tag,
            len: 0,
        };
        core.count_completion();
        self.done.complete(st, fail);
    }
}

/// The collectives in flight on one rank, and request cells kept for reuse (a collective
/// then costs no allocation per message).
#[derive(Default)]
pub(crate) struct Colls {
    list: Vec<Running>,
    pool: Vec<Arc<ReqShared>>,
}

/// Cells kept at most in the pool.
const POOL_CELLS: usize = 1024;

impl Colls {
    /// Adds a collective (ordinary context) and starts its first rounds.
    pub(crate) fn start(&mut self, core: &mut Core, drv: &mut dyn Driver, mut r: Running) {
        let need: usize =
            self.list.iter().map(|r| r.max_round_comm()).sum::<usize>() + r.max_round_comm();
        core.reserve_requests(need);
        let n = r.spare.capacity();
        for _ in 0..n {
            let c = self.pool.pop().unwrap_or_else(|| ReqShared::new(true));
            r.spare.push(c);
        }
        r.advance(core, drv, false);
        r.urgent = true;
        self.list.push(r);
    }

    /// Advances every collective; ordinary passes also drop finished ones.
    pub(crate) fn advance(&mut self, core: &mut Core, drv: &mut dyn Driver, handler: bool) -> bool {
        let mut did = false;
        for r in &mut self.list {
            did |= r.advance(core, drv, handler);
        }
        if !handler && self.list.iter().any(Running::finished) {
            let pool = &mut self.pool;
            self.list.retain_mut(|r| {
                if !r.finished() {
                    return true;
                }
                // Used cells come back once complete and ours alone; unused ones as they are.
                for mut c in r.cur.drain(..).map(|(c, _)| c) {
                    if pool.len() < POOL_CELLS && c.is_complete() {
                        if let Some(m) = Arc::get_mut(&mut c) {
                            m.reset();
                            pool.push(c);
                        }
                    }
                }
                for c in r.spare.drain(..) {
                    if pool.len() < POOL_CELLS && Arc::strong_count(&c) == 1 && !c.is_complete() {
                        pool.push(c);
                    }
                }
                false
            });
        }
        did
    }

    /// Fails the collectives that involve world rank `r` (gone).
    pub(crate) fn peer_gone(&mut self, core: &mut Core, drv: &mut dyn Driver, r: Rank) {
        for c in &mut self.list {
            if c.involves(r) {
                c.fail(core, Fail::PeerDied { rank: r });
                c.advance(core, drv, false);
            }
        }
    }

    /// `true` if no collective is in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
