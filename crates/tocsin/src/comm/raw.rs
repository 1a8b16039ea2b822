//! Requests that are not tied to a [`Scope`](crate::Scope): the foundation of the C layer
//! (`tocsin-mpi`), where a request outlives any Rust borrow. Posting one is `unsafe`: the
//! caller vouches for the buffer's life; once posted, waiting, testing and cancelling are
//! safe.
//!
//! Owns [`RawRequest`] and the raw posting functions. Must not know about rings or
//! headers: everything goes through the engine.

use std::sync::Arc;

use super::{Comm, CommInfo};
use crate::error::Result;
use crate::progress::{Engine, ReqHandle};
use crate::{Rank, Status, Tag};

/// A pending operation on raw buffers ([`Comm::isend_raw`], [`Comm::irecv_raw`],
/// [`Comm::start_collective`]). Owns its communicator's handle, so it may outlive the
/// [`Comm`] it came from. Dropping it does not cancel it (the buffer contract of its
/// posting still holds until it completes).
pub struct RawRequest {
    eng: Arc<Engine>,
    info: Arc<CommInfo>,
    h: ReqHandle,
}

impl std::fmt::Debug for RawRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRequest")
            .field("complete", &self.h.is_complete())
            .field("recv", &self.h.is_recv())
            .finish()
    }
}

impl RawRequest {
    pub(crate) fn from_parts(eng: Arc<Engine>, info: Arc<CommInfo>, h: ReqHandle) -> RawRequest {
        RawRequest { eng, info, h }
    }

    pub(crate) fn new(c: &Comm, h: ReqHandle) -> RawRequest {
        RawRequest {
            eng: c.eng.clone(),
            info: c.info.clone(),
            h,
        }
    }

    /// `true` once complete (no progress made).
    pub fn is_complete(&self) -> bool {
        self.h.is_complete()
    }

    /// `true` for a receive.
    pub fn is_recv(&self) -> bool {
        self.h.is_recv()
    }

    /// Blocks until complete (the engine's one waiting routine: sleeps in the sleeping
    /// modes, fails with `PeerDied` within about a second of a peer's end).
    ///
    /// # Errors
    /// As [`crate::Request::wait`].
    pub fn wait(&self) -> Result<Status> {
        self.info.localize_res(self.eng.wait(&self.h))
    }

    /// One progress pass; the outcome if complete.
    ///
    /// # Errors
    /// As [`crate::Request::test`].
    pub fn test(&self) -> Result<Option<Status>> {
        match self.eng.test(&self.h) {
            None => Ok(None),
            Some(()) => self.info.localize_res(self.eng.outcome(&self.h)).map(Some),
        }
    }

    /// The outcome, if complete (no progress made).
    ///
    /// # Errors
    /// As [`RawRequest::wait`].
    pub fn outcome(&self) -> Option<Result<Status>> {
        self.h
            .is_complete()
            .then(|| self.info.localize_res(self.eng.outcome(&self.h)))
    }

    /// Cancels it if it has not matched (see [`crate::Request::cancel`]).
    pub fn cancel(&self) -> bool {
        self.eng.cancel(&self.h)
    }
}

impl Comm {
    /// Starts sending `len` bytes at `buf` to `dest` with `tag`.
    ///
    /// # Safety
    /// `buf` must be readable for `len` bytes and left unmodified until the request
    /// completes (it may be dangling when `len` is 0).
    ///
    /// # Errors
    /// As [`Comm::send`]'s argument checks.
    pub unsafe fn isend_raw(
        &self,
        buf: *const u8,
        len: usize,
        dest: Rank,
        tag: Tag,
    ) -> Result<RawRequest> {
        self.check_dest(dest, tag)?;
        let h = self.eng.post_send(
            buf,
            len,
            self.info.world_rank(dest),
            tag,
            self.info.ctx,
            false,
        )?;
        Ok(RawRequest::new(self, h))
    }

    /// Starts receiving at most `len` bytes into `buf` from `source` (or `ANY_SOURCE`)
    /// with `tag` (or `ANY_TAG`).
    ///
    /// # Safety
    /// `buf` must be writable for `len` bytes, not accessed by anything else until the
    /// request completes (it may be dangling when `len` is 0).
    ///
    /// # Errors
    /// As [`Comm::recv`]'s argument checks.
    pub unsafe fn irecv_raw(
        &self,
        buf: *mut u8,
        len: usize,
        source: Rank,
        tag: Tag,
    ) -> Result<RawRequest> {
        self.check_source(source, tag)?;
        let h = self.eng.post_recv(
            buf,
            len,
            self.source_world(source),
            tag,
            self.info.ctx,
            false,
        )?;
        Ok(RawRequest::new(self, h))
    }

    /// Waits, making progress as the mode does (spin, then sleep in the sleeping modes;
    /// peers checked every [`crate::LIVENESS_PERIOD`]), until `done()` holds: the building
    /// block of MPI_Waitany/Waitsome over raw requests. `done` is called after every pass
    /// and after every wake-up.
    pub fn wait_until(&self, done: impl FnMut() -> bool) {
        self.eng.wait_until(done, None);
    }

    /// One progress pass if no other thread is making progress (MPI_Test's and
    /// MPI_Iprobe's progress).
    pub fn progress(&self) {
        let _ = self.eng.progress_once();
    }
}
