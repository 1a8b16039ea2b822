//! The public communicator API: [`Comm`], [`Scope`], [`Request`], [`Status`], groups and
//! communicator creation.
//!
//! Owns argument checking, rank translation between a communicator and the world, and the
//! borrow rules that keep buffers alive while in flight. It must not know about rings,
//! headers or drivers: everything goes through the progress engine
//! (`crate::progress::Engine`), which names ranks by their world rank.

mod collective;
pub(crate) mod context;
mod group;
mod matched;
mod raw;

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytemuck::Pod;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::progress::{Engine, ReqHandle};
use crate::{Rank, Tag, ANY_SOURCE, ANY_TAG};

pub use collective::Collective;
pub use group::{Compare, Group};
pub use matched::{test_any, wait_some, Message, Persistent};
pub use raw::RawRequest;

pub use crate::protocol::Status;

/// The process's world: its engine and its context-id table. When the last communicator
/// goes, the engine's progress thread and handler registration (which hold or reach the
/// engine) are shut down.
pub(crate) struct World {
    eng: Arc<Engine>,
    ctxs: Mutex<context::ContextIds>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.eng.shutdown();
    }
}

/// What one communicator is: its contexts, its group, this rank in it.
pub(crate) struct CommInfo {
    world: Arc<World>,
    /// Point-to-point context (even); its collectives use `ctx + 1`.
    pub(crate) ctx: u16,
    rank: Rank,
    size: u32,
    group: Group,
    /// World rank → rank here (`u32::MAX`: not a member); `None` when identical.
    rev: Option<Vec<Rank>>,
    /// Sequence number of the next collective (its tag).
    seq: AtomicU32,
    name: Mutex<String>,
}

impl Drop for CommInfo {
    fn drop(&mut self) {
        if let Ok(mut c) = self.world.ctxs.lock() {
            c.release(self.ctx as usize / 2);
        }
    }
}

impl CommInfo {
    /// World rank of rank `r` of this communicator (`r < size`).
    #[inline]
    pub(crate) fn world_rank(&self, r: Rank) -> Rank {
        self.group.world_ranks()[r as usize]
    }

    /// Rank here of world rank `w` (`w` itself if not a member, which cannot happen for a
    /// message on this communicator's contexts).
    #[inline]
    pub(crate) fn local_rank(&self, w: Rank) -> Rank {
        match &self.rev {
            None => w,
            Some(v) => match v.get(w as usize) {
                Some(&r) if r != u32::MAX => r,
                _ => w,
            },
        }
    }

    /// A status with its source translated to this communicator.
    pub(crate) fn localize(&self, st: Status) -> Status {
        Status {
            source: self.local_rank(st.source),
            ..st
        }
    }

    /// A result with ranks translated to this communicator.
    pub(crate) fn localize_res(&self, r: Result<Status>) -> Result<Status> {
        match r {
            Ok(st) => Ok(self.localize(st)),
            Err(Error::Truncated {
                message_len,
                buffer_len,
                from,
                tag,
            }) => Err(Error::Truncated {
                message_len,
                buffer_len,
                from: self.local_rank(from),
                tag,
            }),
            Err(Error::Cancelled { peer, tag }) if peer != ANY_SOURCE => Err(Error::Cancelled {
                peer: self.local_rank(peer),
                tag,
            }),
            Err(e) => Err(e),
        }
    }

    /// The tag of the next collective on this communicator.
    pub(crate) fn next_tag(&self) -> Tag {
        (self.seq.fetch_add(1, Ordering::Relaxed) & 0x3FFF_FFFF) as Tag
    }
}

/// A communicator: a group of ranks and the contexts their messages travel in. The world
/// communicator comes from [`crate::init`]; others from [`Comm::dup`], [`Comm::split`],
/// [`Comm::split_type`] and [`Comm::create`]. Cheap to clone (shared handle; a clone is
/// the *same* communicator); `Send + Sync`, so several threads of a rank may communicate
/// at once.
#[derive(Clone)]
pub struct Comm {
    pub(crate) eng: Arc<Engine>,
    pub(crate) info: Arc<CommInfo>,
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Comm")
            .field("rank", &self.rank())
            .field("size", &self.size())
            .field("context", &self.info.ctx)
            .finish()
    }
}

fn bytes_of<T: Pod>(buf: &[T]) -> &[u8] {
    bytemuck::cast_slice(buf)
}
fn bytes_of_mut<T: Pod>(buf: &mut [T]) -> &mut [u8] {
    bytemuck::cast_slice_mut(buf)
}

// Defined here rather than in `config` so that `config` does not depend on `comm`.
impl Config {
    /// Bootstraps through PMI (or as a singleton) and returns the world communicator.
    ///
    /// # Errors
    /// [`Error::Config`] for a setting out of range or inconsistent settings (checked before
    /// the launcher is contacted), or a shared segment whose size (n² rings) overflows or
    /// exceeds 64 TiB (naming `TOCSIN_RING_BYTES`, checked before anything is mapped);
    /// [`Error::Pmi`] if the launcher cannot be reached or answers wrongly, or if an earlier
    /// `init` in this process already used (and closed) the launcher connection: the error
    /// then quotes why that one failed; [`Error::Io`] if the shared segment cannot be
    /// created or mapped; [`Error::AlreadyInitialized`] on a second call in one process.
    pub fn init(self) -> Result<Comm> {
        self.validate()?;
        Comm::init(self).inspect_err(crate::pmi::note_init_failure)
    }
}

impl Comm {
    pub(crate) fn init(cfg: Config) -> Result<Comm> {
        let eng = Engine::init(cfg)?;
        let world = Arc::new(World {
            eng: eng.clone(),
            ctxs: Mutex::new(context::ContextIds::new()),
        });
        let n = eng.size();
        let info = CommInfo {
            world,
            ctx: 0,
            rank: eng.rank(),
            size: n,
            group: Group::from_world((0..n).collect(), eng.rank()),
            rev: None,
            seq: AtomicU32::new(0),
            name: Mutex::new("MPI_COMM_WORLD".into()),
        };
        Ok(Comm {
            eng,
            info: Arc::new(info),
        })
    }

    /// The communicator of this process alone (MPI_COMM_SELF): rank 0 of 1, on its own
    /// reserved contexts. Local (no communication); every call returns the same
    /// communicator.
    pub fn self_comm(&self) -> Comm {
        let me = self.eng.rank();
        let info = CommInfo {
            world: self.info.world.clone(),
            ctx: 2,
            rank: 0,
            size: 1,
            group: Group::from_world(vec![me], me),
            rev: Some({
                let mut v = vec![u32::MAX; self.eng.size() as usize];
                v[me as usize] = 0;
                v
            }),
            seq: AtomicU32::new(0),
            name: Mutex::new("MPI_COMM_SELF".into()),
        };
        Comm {
            eng: self.eng.clone(),
            info: Arc::new(info),
        }
    }

    /// Ends the whole job (MPI_Abort): prints nothing itself; asks the launcher to kill
    /// every rank with exit code `code` (PMI `abort`, `msg` shown by the launcher), then
    /// exits this process with `code`.
    pub fn abort(&self, code: i32, msg: &str) -> ! {
        self.eng.abort(code, msg)
    }

    /// Finishes this process's part in the job (MPI_Finalize): flushes what is queued,
    /// stops the progress thread and the interrupt handler, tells the peers this rank
    /// finished (its messages stay receivable; operations that need it fail with
    /// `PeerDied`), and leaves the launcher. Communication afterwards is erroneous.
    /// Called implicitly when the last handle of the world goes.
    pub fn finalize(&self) {
        self.eng.finalize();
    }

    /// The world rank of rank `r` of this communicator (`None` if `r` is out of range).
    pub fn world_rank(&self, r: Rank) -> Option<Rank> {
        (r < self.size()).then(|| self.info.world_rank(r))
    }

    /// This process's rank in the communicator, `0..size()`.
    pub fn rank(&self) -> Rank {
        self.info.rank
    }

    /// This rank's notification counters (interrupts, handler runs, doorbells, sleeps):
    /// see [`crate::stats`].
    pub fn stats(&self) -> crate::Stats {
        crate::stats::stats()
    }

    /// Number of ranks in the communicator.
    pub fn size(&self) -> u32 {
        self.info.size
    }

    /// The transport that serves `peer`: `"self"` (this rank), `"shm"` (a rank of this
    /// node: shared-memory rings and CMA) or `"tcp"` (a rank of another node, or any rank
    /// under `TOCSIN_NOLOCAL=1`).
    ///
    /// # Errors
    /// [`Error::InvalidRank`] if `peer` is not a rank of the communicator.
    pub fn transport(&self, peer: Rank) -> Result<&'static str> {
        if peer >= self.size() {
            return Err(Error::InvalidRank {
                rank: peer,
                size: self.size(),
            });
        }
        Ok(self.eng.transport_name(self.info.world_rank(peer)))
    }

    /// The configuration this communicator runs with.
    pub fn config(&self) -> &Config {
        self.eng.config()
    }

    pub(crate) fn check_dest(&self, dest: Rank, tag: Tag) -> Result<()> {
        if dest == ANY_SOURCE {
            return Err(Error::AnySourceOnSend);
        }
        if dest >= self.size() {
            return Err(Error::InvalidRank {
                rank: dest,
                size: self.size(),
            });
        }
        if tag < 0 {
            return Err(Error::InvalidTag { tag });
        }
        Ok(())
    }

    pub(crate) fn check_source(&self, source: Rank, tag: Tag) -> Result<()> {
        if source != ANY_SOURCE && source >= self.size() {
            return Err(Error::InvalidRank {
                rank: source,
                size: self.size(),
            });
        }
        if tag < 0 && tag != ANY_TAG {
            return Err(Error::InvalidTag { tag });
        }
        Ok(())
    }

    /// Sends `buf` to rank `dest` with `tag` and returns once `buf` may be reused
    /// (eager: copied out; rendezvous: delivered).
    ///
    /// # Errors
    /// [`Error::InvalidRank`], [`Error::InvalidTag`], [`Error::AnySourceOnSend`],
    /// [`Error::PeerDied`] if `dest` dies before the message is delivered.
    pub fn send<T: Pod>(&self, buf: &[T], dest: Rank, tag: Tag) -> Result<()> {
        self.check_dest(dest, tag)?;
        let b = bytes_of(buf);
        let (w, ctx) = (self.info.world_rank(dest), self.info.ctx);
        if self.eng.try_send_eager_now(b, w, tag, ctx) {
            return Ok(());
        }
        let h = self.eng.post_send(b.as_ptr(), b.len(), w, tag, ctx, true)?;
        self.eng.wait(&h).map(|_| ())
    }

    /// Receives into `buf` a message from `source` (or [`ANY_SOURCE`]) with `tag` (or
    /// [`ANY_TAG`]). Returns the [`Status`]; `status.len` bytes of `buf` were written.
    ///
    /// # Errors
    /// [`Error::Truncated`] if the message is longer than `buf` (the first `buf.len()` bytes
    /// are delivered), [`Error::InvalidRank`], [`Error::InvalidTag`], [`Error::PeerDied`].
    pub fn recv<T: Pod>(&self, buf: &mut [T], source: Rank, tag: Tag) -> Result<Status> {
        self.check_source(source, tag)?;
        let b = bytes_of_mut(buf);
        let h = self.eng.post_recv_blocking(
            b.as_mut_ptr(),
            b.len(),
            self.source_world(source),
            tag,
            self.info.ctx,
        );
        let r = self.info.localize_res(self.eng.wait(&h));
        crate::progress::recycle_cell(h);
        r
    }

    /// World rank of a source (or [`ANY_SOURCE`]), checked beforehand.
    pub(crate) fn source_world(&self, source: Rank) -> Rank {
        if source == ANY_SOURCE {
            ANY_SOURCE
        } else {
            self.info.world_rank(source)
        }
    }

    /// Sends `sbuf` to `dest` and receives into `rbuf` from `source` at the same time, so
    /// that pairs of ranks exchanging with each other cannot deadlock.
    ///
    /// # Errors
    /// Those of [`Comm::send`] and [`Comm::recv`]; the receive's status is returned.
    #[allow(clippy::too_many_arguments)]
    pub fn sendrecv<S: Pod, R: Pod>(
        &self,
        sbuf: &[S],
        dest: Rank,
        stag: Tag,
        rbuf: &mut [R],
        source: Rank,
        rtag: Tag,
    ) -> Result<Status> {
        // Check both sides before posting anything: a receive posted and then abandoned
        // because the send was invalid would wait forever in its scope.
        self.check_dest(dest, stag)?;
        self.check_source(source, rtag)?;
        self.scope(|s| {
            let r = s.irecv(rbuf, source, rtag)?;
            let q = s.isend(sbuf, dest, stag)?;
            let st = r.wait();
            q.wait()?;
            st
        })
    }

    /// Blocks until a message matching (`source`, `tag`) can be received, and returns its
    /// status without receiving it.
    ///
    /// # Errors
    /// [`Error::InvalidRank`], [`Error::InvalidTag`], [`Error::PeerDied`].
    pub fn probe(&self, source: Rank, tag: Tag) -> Result<Status> {
        self.check_source(source, tag)?;
        self.info.localize_res(
            self.eng
                .probe(self.source_world(source), tag, self.info.ctx),
        )
    }

    /// Like [`Comm::probe`] but returns `None` at once if no such message has arrived.
    ///
    /// # Errors
    /// [`Error::InvalidRank`], [`Error::InvalidTag`].
    pub fn iprobe(&self, source: Rank, tag: Tag) -> Result<Option<Status>> {
        self.check_source(source, tag)?;
        let st = self
            .eng
            .iprobe(self.source_world(source), tag, self.info.ctx)?;
        Ok(st.map(|s| self.info.localize(s)))
    }

    /// Runs `f` with a [`Scope`] in which non-blocking requests can be posted. Every request
    /// still pending when `f` returns is finished before `scope` returns: receives that
    /// have not matched are cancelled (nobody can wait for them any more), the others are
    /// waited for (their errors, if any, are dropped: wait explicitly to see them).
    ///
    /// If `f` panics, the scope cancels what it can and waits up to
    /// [`SCOPE_UNWIND_GRACE`] for transfers already under way (a peer may be writing into
    /// a receive buffer); if some are still in flight then, it aborts the process with a
    /// message rather than let the buffers be freed under a peer's copy (as MPI's default
    /// error handler would end the job).
    pub fn scope<'env, F, R>(&'env self, f: F) -> R
    where
        F: for<'s> FnOnce(&'s Scope<'s, 'env>) -> R,
    {
        let scope = Scope {
            comm: self,
            pending: RefCell::new(Vec::new()),
            _scope: PhantomData,
        };
        f(&scope)
        // `scope` drops here (and on unwinding): see `Drop for Scope`.
    }
}

/// How long a scope that unwinds (a panic in its closure) waits for transfers already under
/// way before aborting the process.
pub const SCOPE_UNWIND_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Where non-blocking requests live; see [`Comm::scope`]. A buffer lent to a request stays
/// borrowed until the scope ends, so it cannot be read or written while in flight.
pub struct Scope<'s, 'env: 's> {
    comm: &'env Comm,
    pending: RefCell<Vec<ReqHandle>>,
    _scope: PhantomData<&'s mut &'env ()>,
}

impl Drop for Scope<'_, '_> {
    fn drop(&mut self) {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        if pending.iter().all(|h| h.is_complete()) {
            return;
        }
        let eng = &self.comm.eng;
        let unwinding = std::thread::panicking();
        for h in &pending {
            if !h.is_complete() && (unwinding || h.is_recv()) {
                // Unmatched receives nobody can wait for; on unwinding also unsent sends.
                eng.cancel(h);
            }
        }
        if !unwinding {
            for h in &pending {
                let _ = eng.wait(h);
            }
            return;
        }
        let deadline = std::time::Instant::now() + SCOPE_UNWIND_GRACE;
        let quiet = eng.wait_until(|| pending.iter().all(|h| h.is_complete()), Some(deadline));
        if !quiet {
            crate::diag::fatal(
                "a panic unwound a tocsin scope while transfers were still in flight \
                 (a peer may still write into their buffers); aborting the process",
            );
        }
    }
}

impl<'s, 'env> Scope<'s, 'env> {
    /// The communicator of this scope.
    pub fn comm(&self) -> &'env Comm {
        self.comm
    }

    /// Starts sending `buf` to `dest` with `tag`; see [`Comm::send`].
    ///
    /// # Errors
    /// As [`Comm::send`], for the arguments; delivery errors come from [`Request::wait`].
    pub fn isend<T: Pod>(&'s self, buf: &'s [T], dest: Rank, tag: Tag) -> Result<Request<'s>> {
        self.comm.check_dest(dest, tag)?;
        let b = bytes_of(buf);
        let c = self.comm;
        let h = c.eng.post_send(
            b.as_ptr(),
            b.len(),
            c.info.world_rank(dest),
            tag,
            c.info.ctx,
            false,
        )?;
        Ok(self.track(h))
    }

    /// Starts receiving into `buf`; see [`Comm::recv`].
    ///
    /// # Errors
    /// As [`Comm::recv`], for the arguments; delivery errors come from [`Request::wait`].
    pub fn irecv<T: Pod>(
        &'s self,
        buf: &'s mut [T],
        source: Rank,
        tag: Tag,
    ) -> Result<Request<'s>> {
        self.comm.check_source(source, tag)?;
        let b = bytes_of_mut(buf);
        let c = self.comm;
        let h = c.eng.post_recv(
            b.as_mut_ptr(),
            b.len(),
            c.source_world(source),
            tag,
            c.info.ctx,
            false,
        )?;
        Ok(self.track(h))
    }

    /// Like [`Scope::irecv`], but [`RecvRequest::wait`] hands the buffer back once the
    /// message is in, so it can be read inside the scope (e.g. to unpack a halo as soon as
    /// it arrives).
    ///
    /// # Errors
    /// As [`Scope::irecv`].
    pub fn irecv_buf<T: Pod>(
        &'s self,
        buf: &'s mut [T],
        source: Rank,
        tag: Tag,
    ) -> Result<RecvRequest<'s, T>> {
        let ptr = buf.as_mut_ptr();
        let len = buf.len();
        let req = self.irecv(buf, source, tag)?;
        Ok(RecvRequest { req, ptr, len })
    }

    pub(crate) fn track(&'s self, h: ReqHandle) -> Request<'s> {
        {
            let mut p = self.pending.borrow_mut();
            // Forget requests that completed: the list stays as long as the requests in
            // flight, not as the scope's history.
            if p.len() >= 64 && p.len().is_power_of_two() {
                p.retain(|h| !h.is_complete());
            }
            p.push(h.clone());
        }
        Request {
            eng: &self.comm.eng,
            info: &self.comm.info,
            handle: h,
            active: true,
            _buf: PhantomData,
        }
    }
}

/// A pending non-blocking operation, created by [`Scope::isend`] or [`Scope::irecv`].
///
/// Once complete, [`Request::wait`] and [`Request::test`] report its outcome (the same each
/// time they are asked). Dropping a receive that has not matched cancels it (nobody can
/// wait for it any more); dropping any other unfinished request leaves it to its scope,
/// which waits for it when it closes. So an early `?` return between `irecv` and `wait`
/// never hangs on a message that does not come, and a buffer is never freed while a
/// transfer into or out of it is under way.
#[must_use = "dropping a receive that has not matched cancels it: wait for it, or keep it until the scope ends"]
pub struct Request<'s> {
    eng: &'s Arc<Engine>,
    info: &'s CommInfo,
    handle: ReqHandle,
    /// Cleared once [`wait_any`] has returned it (MPI: the request becomes inactive).
    active: bool,
    _buf: PhantomData<&'s mut [u8]>,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("complete", &self.handle.is_complete())
            .field("active", &self.active)
            .finish()
    }
}

impl Request<'_> {
    /// Blocks until the request completes, according to the progress mode, and returns its
    /// status. Goes through the engine's one waiting routine: fails with
    /// [`Error::PeerDied`] within about [`LIVENESS_PERIOD`](crate::LIVENESS_PERIOD) of the
    /// peer's end.
    ///
    /// # Errors
    /// [`Error::Truncated`] (receives), [`Error::PeerDied`], [`Error::Cancelled`], or the
    /// error the request completed with.
    pub fn wait(self) -> Result<Status> {
        self.info.localize_res(self.eng.wait(&self.handle))
    }

    /// Makes progress and returns `Some(status)` if the request has completed, `None` if it
    /// is still pending. Checks peers too (at most every
    /// [`LIVENESS_PERIOD`](crate::LIVENESS_PERIOD)), so a loop of `test` on a request whose
    /// peer is gone ends with [`Error::PeerDied`] instead of spinning forever.
    ///
    /// # Errors
    /// As [`Request::wait`], once the request completed with an error (every time it is
    /// tested after that).
    pub fn test(&mut self) -> Result<Option<Status>> {
        match self.eng.test(&self.handle) {
            None => Ok(None),
            Some(()) => self
                .info
                .localize_res(self.eng.outcome(&self.handle))
                .map(Some),
        }
    }

    /// `true` once the request has completed (without making progress).
    pub fn is_complete(&self) -> bool {
        self.handle.is_complete()
    }

    /// Cancels the request if it has not matched yet (MPI_Cancel semantics): a receive not
    /// yet matched by a message, or a send whose message has not left this rank (its ring
    /// was full), then completes with [`Error::Cancelled`] and nothing is transferred.
    /// A request that has matched completes normally. Returns `true` if it was cancelled.
    pub fn cancel(&mut self) -> bool {
        self.eng.cancel(&self.handle)
    }
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        if !self.handle.is_complete() && self.handle.is_recv() {
            self.eng.cancel(&self.handle);
        }
    }
}

/// A receive that returns its buffer when it completes; see [`Scope::irecv_buf`].
#[must_use = "dropping a receive that has not matched cancels it: wait for it"]
pub struct RecvRequest<'s, T> {
    req: Request<'s>,
    ptr: *mut T,
    len: usize,
}

impl<T> std::fmt::Debug for RecvRequest<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.req.fmt(f)
    }
}

impl<'s, T: Pod> RecvRequest<'s, T> {
    /// Waits for the message and returns its status (or error) with the buffer, now free to
    /// read and write for the rest of the scope.
    pub fn wait(self) -> (Result<Status>, &'s mut [T]) {
        let RecvRequest { req, ptr, len } = self;
        let st = req.wait();
        // SAFETY: `ptr/len` come from the `&'s mut [T]` moved into `irecv_buf`, whose only
        // other user was the request; it has completed, so the engine no longer touches the
        // buffer, and this is the only place the borrow is handed back (wait consumes self).
        (st, unsafe { std::slice::from_raw_parts_mut(ptr, len) })
    }

    /// As [`Request::test`].
    ///
    /// # Errors
    /// As [`Request::test`].
    pub fn test(&mut self) -> Result<Option<Status>> {
        self.req.test()
    }

    /// As [`Request::is_complete`].
    pub fn is_complete(&self) -> bool {
        self.req.is_complete()
    }
}

/// Waits for every request and returns their statuses in order.
///
/// # Errors
/// The first error among the requests (all are still waited for).
pub fn wait_all(reqs: Vec<Request<'_>>) -> Result<Vec<Status>> {
    let mut out = Vec::with_capacity(reqs.len());
    let mut first_err = None;
    for r in reqs {
        match r.wait() {
            Ok(s) => out.push(s),
            Err(e) => {
                if first_err.is_none() {
                    first_err = Some(e)
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Waits until one of the still-active requests completes; returns its index and status
/// and leaves it inactive (later calls skip it, as MPI_Waitany sets it to
/// `MPI_REQUEST_NULL`). Returns `Ok(None)` if no request is active. Goes through the
/// engine's one waiting routine: sleeps in the sleeping modes and fails with
/// [`Error::PeerDied`] within about [`LIVENESS_PERIOD`](crate::LIVENESS_PERIOD) when the
/// request that completes depended on a gone peer.
///
/// # Errors
/// The error of the request that completed (it is left inactive too).
pub fn wait_any(reqs: &mut [Request<'_>]) -> Result<Option<(usize, Status)>> {
    let Some(first) = reqs.iter().find(|r| r.active) else {
        return Ok(None);
    };
    let eng = first.eng;
    let mut idx = None;
    eng.wait_until(
        || {
            idx = reqs.iter().position(|r| r.active && r.handle.is_complete());
            idx.is_some()
        },
        None,
    );
    let Some(i) = idx else { return Ok(None) };
    reqs[i].active = false;
    reqs[i]
        .info
        .localize_res(eng.outcome(&reqs[i].handle))
        .map(|s| Some((i, s)))
}

#[cfg(test)]
mod tests {
    /// A singleton world (no launcher): self-sends through every API path.
    #[test]
    fn singleton_self_messages_and_buffer_handback() {
        let comm = match crate::init() {
            Ok(c) => c,
            // Another test in this process initialized first.
            Err(crate::Error::AlreadyInitialized) => return,
            Err(e) => panic!("{e}"),
        };
        assert_eq!((comm.rank(), comm.size()), (0, 1));
        let out: Vec<u32> = (0..50_000).collect(); // 200 KB: rendezvous to self
        let mut inb = vec![0u32; 50_000];
        comm.scope(|s| {
            let r = s.irecv_buf(&mut inb, 0, 3).unwrap();
            let q = s.isend(&out, 0, 3).unwrap();
            let (st, buf) = r.wait();
            assert_eq!(st.unwrap().len, 200_000);
            assert_eq!(buf[49_999], 49_999);
            buf[0] = 7; // readable and writable inside the scope
            q.wait().unwrap();
        });
        assert_eq!(inb[0], 7);
        comm.send(b"hi", 0, 1).unwrap();
        assert_eq!(comm.iprobe(0, 1).unwrap().unwrap().len, 2);
        let mut b = [0u8; 1];
        let e = comm.recv(&mut b, 0, 1).unwrap_err();
        assert!(
            matches!(
                e,
                crate::Error::Truncated {
                    message_len: 2,
                    buffer_len: 1,
                    ..
                }
            ),
            "{e}"
        );
        assert!(matches!(
            comm.send(b"x", 1, 0),
            Err(crate::Error::InvalidRank { rank: 1, size: 1 })
        ));
        assert!(matches!(
            comm.send(b"x", 0, -3),
            Err(crate::Error::InvalidTag { tag: -3 })
        ));
        comm.barrier().unwrap();
    }
}
