//! Request objects behind `MPI_Request` handles: a tocsin request in flight plus what must
//! happen when it completes (unpacking a non-contiguous receive, releasing a packed send
//! buffer), persistent requests, and requests completed at once (MPI_PROC_NULL).
//!
//! Owns [`ReqObj`] and its life: creation, completion ([`ReqObj::poll`]), freeing. The
//! wait/test functions (`p2p`), collectives and persistent requests build on it. Must not
//! post messages itself: a persistent request's `start` closure does.

use std::ffi::c_int;
use std::sync::Arc;

use crate::abi::*;
use crate::datatype::{pack, Datatype};
use crate::error::{MpiErr, MpiResult};
use crate::status::St;

const REQ_MAGIC: u64 = 0x746f_6373_7265_7175;

/// What to do when the underlying request completes.
pub enum Post {
    /// Nothing.
    None,
    /// A packed send buffer to keep alive until then.
    Keep(Vec<u8>),
    /// Unpack `tmp` (the packed message) into `buf` as `count` elements of `dt`.
    Unpack {
        /// The packed bytes received.
        tmp: Vec<u8>,
        /// The receive datatype.
        dt: Arc<Datatype>,
        /// Elements.
        count: usize,
        /// The user's buffer.
        buf: *mut u8,
    },
    /// Several actions (collectives with packed inputs and outputs).
    Many(Vec<Post>),
    /// An action that does not depend on the byte count (collectives: their completion
    /// status carries no length; the closure unpacks temporaries and releases them).
    Then(Box<dyn FnOnce()>),
}

impl Post {
    /// Runs the action once the request completed with `bytes` received.
    fn run(&mut self, bytes: usize) {
        match std::mem::replace(self, Post::None) {
            Post::Unpack {
                tmp,
                dt,
                count,
                buf,
            } => {
                let n = bytes.min(tmp.len());
                // SAFETY: `buf` is the user's receive buffer for `count` elements of `dt`,
                // lent until completion (MPI's contract); `tmp[..n]` is a prefix of the
                // packed message, which unpacks into at most those elements.
                unsafe { pack::unpack(&dt, count, &tmp[..n], buf) };
            }
            Post::Many(v) => {
                for mut p in v {
                    p.run(bytes);
                }
            }
            Post::Then(f) => f(),
            _ => {}
        }
    }
}

/// The state of a request.
pub enum Active {
    /// In flight.
    Raw(tocsin::RawRequest),
    /// Completed already (its outcome).
    Done(MpiResult<St>),
    /// A persistent request not started (or completed and waited for).
    Inactive,
}

/// Restarts a persistent request: posts its operation again.
pub type Start = Box<dyn FnMut() -> MpiResult<(Active, Post)>>;

/// A request object.
pub struct ReqObj {
    magic: u64,
    /// Its state.
    pub active: Active,
    /// What to do at completion.
    pub post: Post,
    /// The communicator it belongs to (for its error handler).
    pub comm: MPI_Comm,
    /// For a persistent request: how to start it again.
    pub start: Option<Start>,
    /// A receive (MPI_Request_get_status and cancel semantics).
    pub recv: bool,
}

// SAFETY: the raw pointers (user buffers, the communicator handle) are the application's,
// used by whichever thread completes the request, as MPI allows.
unsafe impl Send for ReqObj {}

impl ReqObj {
    /// A request in state `active`.
    pub fn new(active: Active, post: Post, comm: MPI_Comm, recv: bool) -> ReqObj {
        ReqObj {
            magic: REQ_MAGIC,
            active,
            post,
            comm,
            start: None,
            recv,
        }
    }

    /// Its outcome if complete (no progress made); runs the completion action once.
    pub fn poll(&mut self) -> Option<MpiResult<St>> {
        let out = match &self.active {
            Active::Raw(r) => match r.outcome()? {
                Ok(s) => Ok(St::from_tocsin(&s)),
                Err(tocsin::Error::Cancelled { .. }) => Ok(St {
                    cancelled: true,
                    ..St::empty()
                }),
                Err(e) => Err(MpiErr::from(e)),
            },
            Active::Done(r) => r.clone(),
            Active::Inactive => return Some(Ok(St::empty())),
        };
        if let Ok(s) = &out {
            self.post.run(s.bytes as usize);
        }
        self.post = Post::None;
        self.active = Active::Done(out.clone());
        Some(out)
    }

    /// `true` if complete (or inactive).
    pub fn is_complete(&self) -> bool {
        match &self.active {
            Active::Raw(r) => r.is_complete(),
            _ => true,
        }
    }

    /// `true` for a persistent request.
    pub fn is_persistent(&self) -> bool {
        self.start.is_some()
    }
}

/// A new request handle.
pub fn new_request(r: ReqObj) -> MPI_Request {
    Box::into_raw(Box::new(r)) as MPI_Request
}

/// The request object behind `h`; `None` for MPI_REQUEST_NULL.
///
/// # Errors
/// `MPI_ERR_REQUEST` for another predefined value or a pointer that is not a live request.
///
/// # Safety
/// `h` is MPI_REQUEST_NULL or a handle from [`new_request`] not yet freed (checked by its
/// magic word).
pub unsafe fn request<'a>(h: MPI_Request) -> MpiResult<Option<&'a mut ReqObj>> {
    match h as usize {
        MPI_REQUEST_NULL => Ok(None),
        v if v < 4096 => Err(MpiErr::new(
            MPI_ERR_REQUEST,
            format!("{v:#x} is not a request handle"),
        )),
        _ => {
            let p = h as *mut ReqObj;
            // SAFETY: as in `handle::comm`.
            if !p.is_aligned() || unsafe { (*p).magic } != REQ_MAGIC {
                return Err(MpiErr::new(MPI_ERR_REQUEST, "not a live request handle"));
            }
            // SAFETY: checked above; MPI forbids two threads using one request at once.
            Ok(Some(unsafe { &mut *p }))
        }
    }
}

/// Frees the request object `h` (it must be complete or never started) and sets the
/// handle to MPI_REQUEST_NULL.
///
/// # Safety
/// `h` points to a live handle from [`new_request`].
pub unsafe fn free_request(h: *mut MPI_Request) {
    // SAFETY: the caller's contract.
    let p = unsafe { *h } as *mut ReqObj;
    // SAFETY: as above; the box came from `new_request`.
    let mut b = unsafe { Box::from_raw(p) };
    b.magic = 0;
    drop(b);
    // SAFETY: writable handle (caller's contract).
    unsafe { *h = MPI_REQUEST_NULL as MPI_Request };
}

/// Error class for an integer count that is negative.
pub fn check_count(count: c_int) -> MpiResult<usize> {
    usize::try_from(count)
        .map_err(|_| MpiErr::new(MPI_ERR_COUNT, format!("count {count} is negative")))
}
