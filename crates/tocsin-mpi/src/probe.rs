//! Probes (MPI-4.1 §3.8.1–3.8.3): `MPI_Probe`, `MPI_Iprobe`, and the matched probes
//! `MPI_Mprobe`, `MPI_Improbe`, `MPI_Mrecv`, `MPI_Imrecv` (tocsin's `Comm::mprobe`: the
//! message leaves the matching queue, so no other receive can take it).
//!
//! Owns the `MPI_Message` handles: a user handle is a heap object with a magic word,
//! `MPI_MESSAGE_NO_PROC` a probe of `MPI_PROC_NULL`, `MPI_MESSAGE_NULL` once received.

use std::ffi::{c_int, c_void};

use crate::abi::*;
use crate::error::{finish, raise, with_comm, MpiErr, MpiResult};
use crate::p2p::{proc_null_status, recv_tag, source_rank, typed};
use crate::request::{new_request, Active, Post, ReqObj};
use crate::status::{self, St};

/// `MPI_Probe`: blocks until a message matching (`source`, `tag`) can be received; its
/// status (source, tag, byte count for `MPI_Get_count`) without receiving it. From
/// MPI_PROC_NULL: at once, source MPI_PROC_NULL, tag MPI_ANY_TAG, count 0. Errors:
/// `MPI_ERR_COMM`, `MPI_ERR_RANK`, `MPI_ERR_TAG`, `MPI_ERR_PROC_ABORTED`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Probe(
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: the caller's handle; `status` ignore or writable.
    unsafe {
        with_comm("MPI_Probe", comm, |c| {
            let src = source_rank(c, source)?;
            let tag = recv_tag(tag)?;
            let st = match src {
                None => proc_null_status(),
                Some(s) => St::from_tocsin(&c.comm.probe(s, tag)?),
            };
            status::write(status, &st, false);
            Ok(())
        })
    }
}

/// `MPI_Iprobe`: one progress pass; `*flag` true and the status if a matching message can
/// be received, else false. From MPI_PROC_NULL: true, the MPI_PROC_NULL status. Errors:
/// as `MPI_Probe`, `MPI_ERR_ARG` for a NULL `flag`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Iprobe(
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    flag: *mut c_int,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: the caller's handle; `flag` checked, `status` ignore or writable.
    unsafe {
        with_comm("MPI_Iprobe", comm, |c| {
            if flag.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "flag is NULL"));
            }
            let src = source_rank(c, source)?;
            let tag = recv_tag(tag)?;
            let st = match src {
                None => Some(proc_null_status()),
                Some(s) => {
                    c.comm.progress();
                    c.comm.iprobe(s, tag)?.map(|s| St::from_tocsin(&s))
                }
            };
            flag.write(c_int::from(st.is_some()));
            if let Some(st) = st {
                status::write(status, &st, false);
            }
            Ok(())
        })
    }
}

const MSG_MAGIC: u64 = 0x746f_6373_6d73_6773;

struct MsgObj {
    magic: u64,
    msg: tocsin::Message,
    comm: MPI_Comm,
}

fn new_message(m: tocsin::Message, comm: MPI_Comm) -> MPI_Message {
    Box::into_raw(Box::new(MsgObj {
        magic: MSG_MAGIC,
        msg: m,
        comm,
    })) as MPI_Message
}

/// Takes the message object out of `*h` (sets it to `MPI_MESSAGE_NULL`); `None` for
/// `MPI_MESSAGE_NO_PROC`.
///
/// # Safety
/// `h` points to a handle from a matched probe.
unsafe fn take_message(h: *mut MPI_Message) -> MpiResult<Option<MsgObj>> {
    if h.is_null() {
        return Err(MpiErr::new(MPI_ERR_ARG, "message is NULL"));
    }
    // SAFETY: non-null pointer to a handle (the caller's contract).
    let v = unsafe { *h } as usize;
    match v {
        MPI_MESSAGE_NO_PROC => {
            // SAFETY: as above.
            unsafe { *h = MPI_MESSAGE_NULL as MPI_Message };
            Ok(None)
        }
        v if v < 4096 => Err(MpiErr::new(
            MPI_ERR_REQUEST,
            format!("{v:#x} is not a matched message (MPI_MESSAGE_NULL: received already?)"),
        )),
        _ => {
            let p = v as *mut MsgObj;
            // SAFETY: a user message handle is a pointer from `new_message`; the magic
            // word tells a live one.
            if !p.is_aligned() || unsafe { (*p).magic } != MSG_MAGIC {
                return Err(MpiErr::new(MPI_ERR_REQUEST, "not a live message handle"));
            }
            // SAFETY: checked live; the box came from `new_message`.
            let mut b = unsafe { Box::from_raw(p) };
            b.magic = 0;
            // SAFETY: as above.
            unsafe { *h = MPI_MESSAGE_NULL as MPI_Message };
            Ok(Some(*b))
        }
    }
}

/// `MPI_Mprobe`: blocks until a matching message has arrived and takes it: `*message`
/// names it for `MPI_Mrecv`/`MPI_Imrecv` (no other receive can match it). From
/// MPI_PROC_NULL: `MPI_MESSAGE_NO_PROC` at once. Errors as `MPI_Probe`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Mprobe(
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    message: *mut MPI_Message,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: the caller's handle and pointers.
    unsafe {
        with_comm("MPI_Mprobe", comm, |c| {
            if message.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "message is NULL"));
            }
            let src = source_rank(c, source)?;
            let tag = recv_tag(tag)?;
            let st = match src {
                None => {
                    message.write(MPI_MESSAGE_NO_PROC as MPI_Message);
                    proc_null_status()
                }
                Some(s) => {
                    let m = c.comm.mprobe(s, tag)?;
                    let st = St::from_tocsin(&m.status());
                    message.write(new_message(m, comm));
                    st
                }
            };
            status::write(status, &st, false);
            Ok(())
        })
    }
}

/// `MPI_Improbe`: as `MPI_Mprobe` without blocking: `*flag` false (and `*message`
/// untouched) if no matching message has arrived.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Improbe(
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    flag: *mut c_int,
    message: *mut MPI_Message,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: the caller's handle and pointers.
    unsafe {
        with_comm("MPI_Improbe", comm, |c| {
            if message.is_null() || flag.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "flag or message is NULL"));
            }
            let src = source_rank(c, source)?;
            let tag = recv_tag(tag)?;
            match src {
                None => {
                    message.write(MPI_MESSAGE_NO_PROC as MPI_Message);
                    flag.write(1);
                    status::write(status, &proc_null_status(), false);
                }
                Some(s) => match c.comm.improbe(s, tag)? {
                    Some(m) => {
                        status::write(status, &St::from_tocsin(&m.status()), false);
                        message.write(new_message(m, comm));
                        flag.write(1);
                    }
                    None => flag.write(0),
                },
            }
            Ok(())
        })
    }
}

/// Posts the receive of a matched message into a typed buffer.
///
/// # Safety
/// MPI's contract for the buffer.
unsafe fn mrecv_post(
    m: MsgObj,
    buf: *mut c_void,
    count: i64,
    dt: MPI_Datatype,
) -> MpiResult<ReqObj> {
    // SAFETY: forwarded.
    let t = unsafe { typed(buf, count, dt)? };
    if t.bytes == 0 || t.dt.is_contiguous() {
        let p = if t.bytes == 0 {
            std::ptr::NonNull::<u8>::dangling().as_ptr()
        } else {
            (buf as *mut u8).wrapping_offset(t.dt.true_lb())
        };
        // SAFETY: the user's contiguous receive area (MPI's contract) or dangling, 0 bytes.
        let r = unsafe { m.msg.imrecv_raw(p, t.bytes) };
        Ok(ReqObj::new(Active::Raw(r), Post::None, m.comm, true))
    } else {
        let mut tmp = vec![0u8; t.bytes];
        // SAFETY: `tmp` is kept (its heap block unmoved) in `Post::Unpack` until completion.
        let r = unsafe { m.msg.imrecv_raw(tmp.as_mut_ptr(), t.bytes) };
        Ok(ReqObj::new(
            Active::Raw(r),
            Post::Unpack {
                tmp,
                dt: t.dt.clone(),
                count: t.count,
                buf: buf as *mut u8,
            },
            m.comm,
            true,
        ))
    }
}

/// `MPI_Mrecv`: receives the matched message `*message` (set to `MPI_MESSAGE_NULL`).
/// Errors: `MPI_ERR_REQUEST` for an invalid message, `MPI_ERR_TRUNCATE`, the datatype's.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Mrecv(
    buf: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    message: *mut MPI_Message,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: the caller's pointers.
    let m = match unsafe { take_message(message) } {
        Ok(m) => m,
        Err(e) => return raise("MPI_Mrecv", None, e),
    };
    let Some(m) = m else {
        // SAFETY: status ignore or writable.
        unsafe { status::write(status, &proc_null_status(), false) };
        return MPI_SUCCESS;
    };
    let comm = m.comm;
    // SAFETY: MPI's contract for the buffer.
    let r = unsafe { mrecv_post(m, buf, count.into(), datatype) };
    let (st, res) = match r {
        Ok(r) => crate::p2p::wait_req(r),
        Err(e) => (St::empty(), Err(e)),
    };
    // SAFETY: status ignore or writable.
    unsafe { status::write(status, &st, false) };
    // SAFETY: the message's communicator handle.
    match unsafe { crate::handle::comm(comm) } {
        Ok(c) => finish("MPI_Mrecv", Some((c, comm)), res),
        Err(_) => finish("MPI_Mrecv", None, res),
    }
}

/// `MPI_Imrecv`: starts receiving the matched message `*message` (set to
/// `MPI_MESSAGE_NULL`); `*request` completes as a receive.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Imrecv(
    buf: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    message: *mut MPI_Message,
    request: *mut MPI_Request,
) -> c_int {
    if request.is_null() {
        return raise(
            "MPI_Imrecv",
            None,
            MpiErr::new(MPI_ERR_ARG, "request is NULL"),
        );
    }
    // SAFETY: the caller's pointers.
    let m = match unsafe { take_message(message) } {
        Ok(m) => m,
        Err(e) => return raise("MPI_Imrecv", None, e),
    };
    let r = match m {
        None => Ok(ReqObj::new(
            Active::Done(Ok(proc_null_status())),
            Post::None,
            MPI_COMM_WORLD as MPI_Comm,
            true,
        )),
        // SAFETY: MPI's contract for the buffer.
        Some(m) => unsafe { mrecv_post(m, buf, count.into(), datatype) },
    };
    match r {
        Ok(r) => {
            // SAFETY: non-null request pointer.
            unsafe { request.write(new_request(r)) };
            MPI_SUCCESS
        }
        Err(e) => raise("MPI_Imrecv", None, e),
    }
}
