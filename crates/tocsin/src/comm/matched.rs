//! Synchronous sends, matched probes and persistent requests (MPI-4.1 §3.4, §3.8.2, §3.9).
//!
//! Owns [`Message`] (a message taken by a matched probe, to be received exactly once) and
//! [`Persistent`] (a send or receive set up once and started many times), and the
//! synchronous send entry points. Everything goes through the engine.

use std::sync::Arc;

use bytemuck::Pod;

use super::{bytes_of, bytes_of_mut, Comm, CommInfo, Request, Scope};
use crate::error::Result;
use crate::progress::Engine;
use crate::{Rank, RawRequest, Status, Tag};

/// A message taken out of the unexpected queue by [`Comm::mprobe`] or [`Comm::improbe`]:
/// no other receive can match it any more; receive it with [`Message::recv`] (or
/// [`Scope::imrecv`]). A message dropped without being received is lost (MPI requires it
/// to be received).
#[must_use = "a matched message must be received: no other receive can match it"]
pub struct Message {
    eng: Arc<Engine>,
    info: Arc<CommInfo>,
    id: u64,
    status: Status,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("status", &self.status)
            .finish()
    }
}

impl Message {
    /// Its status: source (rank in the communicator), tag, length in bytes.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Receives it into `buf` (MPI_Mrecv).
    ///
    /// # Errors
    /// [`crate::Error::Truncated`] if longer than `buf`; [`crate::Error::PeerDied`] if a
    /// rendezvous sender died meanwhile.
    pub fn recv<T: Pod>(self, buf: &mut [T]) -> Result<Status> {
        let b = bytes_of_mut(buf);
        let h = self.eng.post_mrecv(self.id, b.as_mut_ptr(), b.len());
        self.info.localize_res(self.eng.wait(&h))
    }

    /// Starts receiving it into `len` bytes at `buf` (MPI_Imrecv on raw memory).
    ///
    /// # Safety
    /// As [`Comm::irecv_raw`].
    pub unsafe fn imrecv_raw(self, buf: *mut u8, len: usize) -> RawRequest {
        let h = self.eng.post_mrecv(self.id, buf, len);
        RawRequest::from_parts(self.eng.clone(), self.info.clone(), h)
    }
}

impl Comm {
    fn message(&self, (st, id): (Status, u64)) -> Message {
        Message {
            eng: self.eng.clone(),
            info: self.info.clone(),
            id,
            status: self.info.localize(st),
        }
    }

    /// Blocks until a message matching (`source`, `tag`) has arrived and takes it
    /// (MPI_Mprobe): the returned [`Message`] is received with [`Message::recv`], and no
    /// other receive can match it meanwhile (unlike [`Comm::probe`], whose message another
    /// thread's receive may take first).
    ///
    /// # Errors
    /// As [`Comm::probe`].
    pub fn mprobe(&self, source: Rank, tag: Tag) -> Result<Message> {
        self.check_source(source, tag)?;
        let m = self
            .eng
            .mprobe(self.source_world(source), tag, self.info.ctx)?;
        Ok(self.message(m))
    }

    /// Like [`Comm::mprobe`] but returns `None` at once if no such message has arrived
    /// (MPI_Improbe).
    ///
    /// # Errors
    /// As [`Comm::iprobe`].
    pub fn improbe(&self, source: Rank, tag: Tag) -> Result<Option<Message>> {
        self.check_source(source, tag)?;
        let m = self
            .eng
            .improbe(self.source_world(source), tag, self.info.ctx)?;
        Ok(m.map(|m| self.message(m)))
    }

    /// Sends `buf` and returns once a receive has matched it (MPI_Ssend): whatever its
    /// size, the message takes the rendezvous.
    ///
    /// # Errors
    /// As [`Comm::send`].
    pub fn ssend<T: Pod>(&self, buf: &[T], dest: Rank, tag: Tag) -> Result<()> {
        self.check_dest(dest, tag)?;
        let b = bytes_of(buf);
        let h = self.eng.post_ssend(
            b.as_ptr(),
            b.len(),
            self.info.world_rank(dest),
            tag,
            self.info.ctx,
        )?;
        self.eng.wait(&h).map(|_| ())
    }

    /// Starts a synchronous send of `len` bytes at `buf` (MPI_Issend on raw memory).
    ///
    /// # Safety
    /// As [`Comm::isend_raw`].
    ///
    /// # Errors
    /// As [`Comm::send`]'s argument checks.
    pub unsafe fn issend_raw(
        &self,
        buf: *const u8,
        len: usize,
        dest: Rank,
        tag: Tag,
    ) -> Result<RawRequest> {
        self.check_dest(dest, tag)?;
        let h = self
            .eng
            .post_ssend(buf, len, self.info.world_rank(dest), tag, self.info.ctx)?;
        Ok(RawRequest::new(self, h))
    }
}

/// What a persistent request does each time it starts.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Send { dest: Rank, tag: Tag, sync: bool },
    Recv { source: Rank, tag: Tag },
}

/// A persistent request (MPI_Send_init / MPI_Recv_init): its arguments are checked once;
/// [`Persistent::start`] posts it again, [`Persistent::wait`] completes the current
/// instance. The buffer stays lent to the scope.
pub struct Persistent<'s, 'env: 's> {
    scope: &'s Scope<'s, 'env>,
    ptr: *mut u8,
    len: usize,
    kind: Kind,
    cur: Option<Request<'s>>,
}

impl std::fmt::Debug for Persistent<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persistent")
            .field("kind", &self.kind)
            .field("active", &self.cur.is_some())
            .finish()
    }
}

impl<'s, 'env> Persistent<'s, 'env> {
    /// Starts an instance (MPI_Start). An instance still active is waited for first.
    ///
    /// # Errors
    /// That of the previous instance, if it failed; posting errors.
    pub fn start(&mut self) -> Result<()> {
        if let Some(r) = self.cur.take() {
            r.wait()?;
        }
        let c = self.scope.comm();
        let h = match self.kind {
            Kind::Send { dest, tag, sync } => {
                let w = c.info.world_rank(dest);
                if sync {
                    c.eng.post_ssend(self.ptr, self.len, w, tag, c.info.ctx)?
                } else {
                    c.eng
                        .post_send(self.ptr, self.len, w, tag, c.info.ctx, false)?
                }
            }
            Kind::Recv { source, tag } => c.eng.post_recv(
                self.ptr,
                self.len,
                c.source_world(source),
                tag,
                c.info.ctx,
                false,
            )?,
        };
        self.cur = Some(self.scope.track(h));
        Ok(())
    }

    /// Completes the current instance (MPI_Wait); `None` if none is active.
    ///
    /// # Errors
    /// As [`Request::wait`].
    pub fn wait(&mut self) -> Result<Option<Status>> {
        match self.cur.take() {
            Some(r) => r.wait().map(Some),
            None => Ok(None),
        }
    }

    /// `true` while an instance is active and not complete.
    pub fn is_active(&self) -> bool {
        self.cur.as_ref().is_some_and(|r| !r.is_complete())
    }
}

impl<'s, 'env> Scope<'s, 'env> {
    /// A persistent send of `buf` to `dest` with `tag` (MPI_Send_init; `sync`:
    /// MPI_Ssend_init). Not started.
    ///
    /// # Errors
    /// As [`Comm::send`]'s argument checks.
    pub fn send_init<T: Pod>(
        &'s self,
        buf: &'s [T],
        dest: Rank,
        tag: Tag,
        sync: bool,
    ) -> Result<Persistent<'s, 'env>> {
        self.comm().check_dest(dest, tag)?;
        let b = bytes_of(buf);
        Ok(Persistent {
            scope: self,
            ptr: b.as_ptr() as *mut u8,
            len: b.len(),
            kind: Kind::Send { dest, tag, sync },
            cur: None,
        })
    }

    /// A persistent receive into `buf` (MPI_Recv_init). Not started.
    ///
    /// # Errors
    /// As [`Comm::recv`]'s argument checks.
    pub fn recv_init<T: Pod>(
        &'s self,
        buf: &'s mut [T],
        source: Rank,
        tag: Tag,
    ) -> Result<Persistent<'s, 'env>> {
        self.comm().check_source(source, tag)?;
        let b = bytes_of_mut(buf);
        Ok(Persistent {
            scope: self,
            ptr: b.as_mut_ptr(),
            len: b.len(),
            kind: Kind::Recv { source, tag },
            cur: None,
        })
    }

    /// Starts a synchronous send (MPI_Issend): completes once a receive matched it.
    ///
    /// # Errors
    /// As [`Scope::isend`].
    pub fn issend<T: Pod>(&'s self, buf: &'s [T], dest: Rank, tag: Tag) -> Result<Request<'s>> {
        let c = self.comm();
        c.check_dest(dest, tag)?;
        let b = bytes_of(buf);
        let h = c.eng.post_ssend(
            b.as_ptr(),
            b.len(),
            c.info.world_rank(dest),
            tag,
            c.info.ctx,
        )?;
        Ok(self.track(h))
    }

    /// Starts receiving a message taken by a matched probe (MPI_Imrecv).
    pub fn imrecv<T: Pod>(&'s self, msg: Message, buf: &'s mut [T]) -> Request<'s> {
        let b = bytes_of_mut(buf);
        let h = msg.eng.post_mrecv(msg.id, b.as_mut_ptr(), b.len());
        self.track(h)
    }
}

/// One progress pass, then the first complete still-active request, left inactive
/// (MPI_Testany); `Ok(None)` if none has completed.
///
/// # Errors
/// The error of the request that completed.
pub fn test_any(reqs: &mut [Request<'_>]) -> Result<Option<(usize, Status)>> {
    if let Some(r) = reqs.iter().find(|r| r.active) {
        r.eng.progress_once()?;
    }
    match reqs.iter().position(|r| r.active && r.is_complete()) {
        None => Ok(None),
        Some(i) => {
            reqs[i].active = false;
            reqs[i]
                .info
                .localize_res(reqs[i].eng.outcome(&reqs[i].handle))
                .map(|s| Some((i, s)))
        }
    }
}

/// Waits until at least one still-active request completes, then returns every one that
/// has, each left inactive (MPI_Waitsome), with its outcome; empty if none is active.
pub fn wait_some(reqs: &mut [Request<'_>]) -> Vec<(usize, Result<Status>)> {
    let Some(first) = reqs.iter().find(|r| r.active) else {
        return Vec::new();
    };
    let eng = first.eng;
    eng.wait_until(|| reqs.iter().any(|r| r.active && r.is_complete()), None);
    let mut out = Vec::new();
    for (i, r) in reqs.iter_mut().enumerate() {
        if r.active && r.is_complete() {
            r.active = false;
            out.push((i, r.info.localize_res(r.eng.outcome(&r.handle))));
        }
    }
    out
}
