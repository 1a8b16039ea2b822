//! Persistent requests (MPI-4.1 §3.9): `MPI_Send_init`, `MPI_Ssend_init`, `MPI_Rsend_init`,
//! `MPI_Bsend_init`, `MPI_Recv_init` (and `_c` forms), `MPI_Start`, `MPI_Startall`.
//!
//! A persistent request is a [`ReqObj`] created inactive with a `start` closure that posts
//! the operation again (arguments checked once at creation, and again at each start, since
//! the communicator or datatype could have been freed). Completion by a wait or test makes
//! it inactive again (see `wait`); `MPI_Request_free` frees it.
//! Deviations: synchronous and ready modes are standard sends (see `p2p`).

use std::ffi::{c_int, c_void};

use crate::abi::*;
use crate::error::{raise, with_comm, MpiErr, MpiResult};
use crate::handle;
use crate::p2p::{
    bsend, count_of, dest_rank, post_recv, post_send, recv_tag, send_tag, source_rank, typed,
};
use crate::request::{self, new_request, Active, Post, ReqObj};
use crate::status::St;

#[derive(Clone, Copy)]
enum Kind {
    Send,
    Bsend,
    Recv,
}

/// Creates an inactive persistent request.
///
/// # Safety
/// MPI's contract for the arguments (the buffer stays valid while the request exists).
#[allow(clippy::too_many_arguments)]
unsafe fn init(
    func: &str,
    kind: Kind,
    buf: *mut c_void,
    count: i64,
    dt: MPI_Datatype,
    peer: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's handle and arguments.
    unsafe {
        with_comm(func, comm, |c| {
            if request.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "request is NULL"));
            }
            count_of(count)?;
            typed(buf, count, dt)?;
            match kind {
                Kind::Recv => {
                    source_rank(c, peer)?;
                    recv_tag(tag)?;
                }
                _ => {
                    dest_rank(c, peer)?;
                    send_tag(tag)?;
                }
            }
            // The closure is called by MPI_Start: the handles were valid at creation and are
            // looked up (magic-checked) again at each start; the buffer is the
            // application's, valid while the request exists (MPI's contract).
            let start = move || -> MpiResult<(Active, Post)> {
                let c = handle::comm(comm)?;
                let mut r = match kind {
                    Kind::Send => post_send(c, comm, buf, count, dt, peer, tag)?,
                    Kind::Recv => post_recv(c, comm, buf, count, dt, peer, tag)?,
                    Kind::Bsend => {
                        bsend(c, buf, count, dt, peer, tag)?;
                        ReqObj::new(Active::Done(Ok(St::empty())), Post::None, comm, false)
                    }
                };
                let a = std::mem::replace(&mut r.active, Active::Inactive);
                let p = std::mem::replace(&mut r.post, Post::None);
                Ok((a, p))
            };
            let mut r = ReqObj::new(
                Active::Inactive,
                Post::None,
                comm,
                matches!(kind, Kind::Recv),
            );
            r.start = Some(Box::new(start));
            request.write(new_request(r));
            Ok(())
        })
    }
}

/// `MPI_Send_init`: an inactive persistent standard send; `MPI_Start` posts it.
/// Errors (checked now): those of `MPI_Isend`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Send_init(
    buf: *const c_void,
    count: c_int,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract (a send buffer is only read).
    unsafe {
        init(
            "MPI_Send_init",
            Kind::Send,
            buf as *mut c_void,
            count.into(),
            datatype,
            dest,
            tag,
            comm,
            request,
        )
    }
}

/// `MPI_Send_init_c`: `MPI_Send_init` with an `MPI_Count` count.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Send_init_c(
    buf: *const c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract (a send buffer is only read).
    unsafe {
        init(
            "MPI_Send_init_c",
            Kind::Send,
            buf as *mut c_void,
            count,
            datatype,
            dest,
            tag,
            comm,
            request,
        )
    }
}

/// `MPI_Ssend_init`: persistent synchronous send; deviation: a standard send.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ssend_init(
    buf: *const c_void,
    count: c_int,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract (a send buffer is only read).
    unsafe {
        init(
            "MPI_Ssend_init",
            Kind::Send,
            buf as *mut c_void,
            count.into(),
            datatype,
            dest,
            tag,
            comm,
            request,
        )
    }
}

/// `MPI_Ssend_init_c`: `MPI_Ssend_init` with an `MPI_Count` count.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ssend_init_c(
    buf: *const c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract (a send buffer is only read).
    unsafe {
        init(
            "MPI_Ssend_init_c",
            Kind::Send,
            buf as *mut c_void,
            count,
            datatype,
            dest,
            tag,
            comm,
            request,
        )
    }
}

/// `MPI_Rsend_init`: persistent ready send, a standard send.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Rsend_init(
    buf: *const c_void,
    count: c_int,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract (a send buffer is only read).
    unsafe {
        init(
            "MPI_Rsend_init",
            Kind::Send,
            buf as *mut c_void,
            count.into(),
            datatype,
            dest,
            tag,
            comm,
            request,
        )
    }
}

/// `MPI_Rsend_init_c`: `MPI_Rsend_init` with an `MPI_Count` count.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Rsend_init_c(
    buf: *const c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract (a send buffer is only read).
    unsafe {
        init(
            "MPI_Rsend_init_c",
            Kind::Send,
            buf as *mut c_void,
            count,
            datatype,
            dest,
            tag,
            comm,
            request,
        )
    }
}

/// `MPI_Bsend_init`: persistent buffered send: each start copies the data out (as
/// `MPI_Bsend`) and completes at once.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Bsend_init(
    buf: *const c_void,
    count: c_int,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract (a send buffer is only read).
    unsafe {
        init(
            "MPI_Bsend_init",
            Kind::Bsend,
            buf as *mut c_void,
            count.into(),
            datatype,
            dest,
            tag,
            comm,
            request,
        )
    }
}

/// `MPI_Bsend_init_c`: `MPI_Bsend_init` with an `MPI_Count` count.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Bsend_init_c(
    buf: *const c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract (a send buffer is only read).
    unsafe {
        init(
            "MPI_Bsend_init_c",
            Kind::Bsend,
            buf as *mut c_void,
            count,
            datatype,
            dest,
            tag,
            comm,
            request,
        )
    }
}

/// `MPI_Recv_init`: an inactive persistent receive; `MPI_Start` posts it. Errors (checked
/// now): those of `MPI_Irecv`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Recv_init(
    buf: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        init(
            "MPI_Recv_init",
            Kind::Recv,
            buf,
            count.into(),
            datatype,
            source,
            tag,
            comm,
            request,
        )
    }
}

/// `MPI_Recv_init_c`: `MPI_Recv_init` with an `MPI_Count` count.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Recv_init_c(
    buf: *mut c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        init(
            "MPI_Recv_init_c",
            Kind::Recv,
            buf,
            count,
            datatype,
            source,
            tag,
            comm,
            request,
        )
    }
}

/// Starts the persistent request `h`.
///
/// # Safety
/// `h` a request handle.
unsafe fn start_one(h: MPI_Request) -> Result<(), (MPI_Comm, MpiErr)> {
    let null = MPI_COMM_NULL as MPI_Comm;
    // SAFETY: the caller's handle.
    let r = match unsafe { request::request(h) } {
        Ok(Some(r)) => r,
        Ok(None) => {
            return Err((
                null,
                MpiErr::new(MPI_ERR_REQUEST, "MPI_REQUEST_NULL cannot be started"),
            ))
        }
        Err(e) => return Err((null, e)),
    };
    let comm = r.comm;
    if !matches!(r.active, Active::Inactive) {
        return Err((
            comm,
            MpiErr::new(
                MPI_ERR_REQUEST,
                "request is active (complete it with MPI_Wait/MPI_Test before starting it again)",
            ),
        ));
    }
    let Some(f) = r.start.as_mut() else {
        return Err((
            comm,
            MpiErr::new(MPI_ERR_REQUEST, "not a persistent request"),
        ));
    };
    let (a, p) = f().map_err(|e| (comm, e))?;
    r.active = a;
    r.post = p;
    Ok(())
}

fn start_err(func: &str, comm: MPI_Comm, e: MpiErr) -> c_int {
    // SAFETY: a request's communicator handle (or MPI_COMM_NULL: world's handler).
    match unsafe { handle::comm(comm) } {
        Ok(c) => raise(func, Some((c, comm)), e),
        Err(_) => raise(func, None, e),
    }
}

/// `MPI_Start`: starts an inactive persistent request. Errors: `MPI_ERR_REQUEST` (null,
/// invalid, not persistent, or active), and those of posting the operation.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Start(request: *mut MPI_Request) -> c_int {
    if request.is_null() {
        return raise(
            "MPI_Start",
            None,
            MpiErr::new(MPI_ERR_ARG, "request is NULL"),
        );
    }
    // SAFETY: non-null `MPI_Request *` from the caller.
    match unsafe { start_one(*request) } {
        Ok(()) => MPI_SUCCESS,
        Err((c, e)) => start_err("MPI_Start", c, e),
    }
}

/// `MPI_Startall`: `MPI_Start` on each request, in order; stops at the first failure.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Startall(count: c_int, array_of_requests: *mut MPI_Request) -> c_int {
    let n = match usize::try_from(count) {
        Ok(n) => n,
        Err(_) => {
            return raise(
                "MPI_Startall",
                None,
                MpiErr::new(MPI_ERR_COUNT, format!("count {count} is negative")),
            )
        }
    };
    if n > 0 && array_of_requests.is_null() {
        return raise(
            "MPI_Startall",
            None,
            MpiErr::new(MPI_ERR_ARG, "array_of_requests is NULL"),
        );
    }
    for i in 0..n {
        // SAFETY: `count` handles at `array_of_requests` (MPI's contract).
        if let Err((c, e)) = unsafe { start_one(*array_of_requests.add(i)) } {
            let e = MpiErr::new(e.class, format!("request {i}: {}", e.msg));
            return start_err("MPI_Startall", c, e);
        }
    }
    MPI_SUCCESS
}
