//! Point-to-point communication (MPI-4.1 §3): blocking and nonblocking sends and receives
//! in every mode, `MPI_Sendrecv(_replace)`, buffered sends with `MPI_Buffer_attach/detach`,
//! and the `_c` large-count forms.
//!
//! Owns the translation of MPI arguments (ranks with `MPI_PROC_NULL`/`MPI_ANY_SOURCE`, tags
//! with `MPI_ANY_TAG`, typed buffers) into tocsin calls, and the posting of sends and
//! receives as request objects ([`post_send`], [`post_recv`], used by the persistent
//! requests too). Contiguous datatypes go to tocsin in place (no copy); others are packed
//! into a temporary buffer (sends) or received into one and unpacked at completion.
//!
//! Synchronous sends (`MPI_Ssend`, `MPI_Issend`) use tocsin's synchronous send (the
//! rendezvous whatever the size); ready sends are standard sends, which MPI allows.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::abi::*;
use crate::datatype::{pack, Datatype};
use crate::error::{with_comm, MpiErr, MpiResult};
use crate::handle::{self, CommObj};
use crate::request::{new_request, Active, Post, ReqObj};
use crate::status::{self, St};

/// A destination rank: `None` for MPI_PROC_NULL.
///
/// # Errors
/// `MPI_ERR_RANK` for a rank outside `0..size` (MPI_ANY_SOURCE included).
pub(crate) fn dest_rank(c: &CommObj, dest: c_int) -> MpiResult<Option<u32>> {
    if dest == MPI_PROC_NULL {
        return Ok(None);
    }
    match u32::try_from(dest) {
        Ok(d) if d < c.comm.size() => Ok(Some(d)),
        _ => Err(MpiErr::new(
            MPI_ERR_RANK,
            format!(
                "invalid destination rank {dest}: the communicator has {} ranks (valid: 0..{}, or MPI_PROC_NULL)",
                c.comm.size(),
                c.comm.size()
            ),
        )),
    }
}

/// A source rank: `None` for MPI_PROC_NULL, tocsin's ANY_SOURCE for MPI_ANY_SOURCE.
///
/// # Errors
/// `MPI_ERR_RANK` for a rank outside `0..size`.
pub(crate) fn source_rank(c: &CommObj, src: c_int) -> MpiResult<Option<u32>> {
    match src {
        MPI_PROC_NULL => Ok(None),
        MPI_ANY_SOURCE => Ok(Some(tocsin::ANY_SOURCE)),
        _ => match u32::try_from(src) {
            Ok(s) if s < c.comm.size() => Ok(Some(s)),
            _ => Err(MpiErr::new(
                MPI_ERR_RANK,
                format!(
                    "invalid source rank {src}: the communicator has {} ranks (valid: 0..{}, MPI_ANY_SOURCE or MPI_PROC_NULL)",
                    c.comm.size(),
                    c.comm.size()
                ),
            )),
        },
    }
}

/// A send tag (0..=MPI_TAG_UB).
///
/// # Errors
/// `MPI_ERR_TAG` for a negative tag.
pub(crate) fn send_tag(tag: c_int) -> MpiResult<i32> {
    if tag < 0 {
        return Err(MpiErr::new(
            MPI_ERR_TAG,
            format!(
                "invalid send tag {tag}: tags are 0..={} (MPI_TAG_UB)",
                i32::MAX
            ),
        ));
    }
    Ok(tag)
}

/// A receive tag: MPI_ANY_TAG becomes tocsin's ANY_TAG.
///
/// # Errors
/// `MPI_ERR_TAG` for a negative tag other than MPI_ANY_TAG.
pub(crate) fn recv_tag(tag: c_int) -> MpiResult<i32> {
    if tag == MPI_ANY_TAG {
        return Ok(tocsin::ANY_TAG);
    }
    if tag < 0 {
        return Err(MpiErr::new(
            MPI_ERR_TAG,
            format!(
                "invalid receive tag {tag}: tags are 0..={} or MPI_ANY_TAG",
                i32::MAX
            ),
        ));
    }
    Ok(tag)
}

/// A count (`int` or `MPI_Count`).
///
/// # Errors
/// `MPI_ERR_COUNT` for a negative count.
pub(crate) fn count_of(count: i64) -> MpiResult<usize> {
    usize::try_from(count)
        .map_err(|_| MpiErr::new(MPI_ERR_COUNT, format!("count {count} is negative")))
}

/// The status of an operation with MPI_PROC_NULL.
pub(crate) fn proc_null_status() -> St {
    St {
        source: MPI_PROC_NULL,
        ..St::empty()
    }
}

/// A typed buffer checked for communication: the datatype, the element count and the
/// packed length.
pub(crate) struct Typed<'a> {
    /// The datatype.
    pub dt: &'a Arc<Datatype>,
    /// Elements.
    pub count: usize,
    /// `count * size` bytes.
    pub bytes: usize,
}

/// Checks a (buffer, count, datatype) triple.
///
/// # Errors
/// `MPI_ERR_COUNT` (negative, or a byte length that overflows), `MPI_ERR_TYPE`,
/// `MPI_ERR_BUFFER` (NULL buffer with data at an address below 4096, which cannot be
/// MPI_BOTTOM plus absolute displacements).
///
/// # Safety
/// `dt` as for [`handle::datatype`].
pub(crate) unsafe fn typed<'a>(
    buf: *const c_void,
    count: i64,
    dt: MPI_Datatype,
) -> MpiResult<Typed<'a>> {
    let count = count_of(count)?;
    // SAFETY: forwarded.
    let dt = unsafe { handle::comm_datatype(dt)? };
    let bytes = pack::pack_size(dt, count).map_err(|_| {
        MpiErr::new(
            MPI_ERR_COUNT,
            format!("count {count} of a {}-byte datatype overflows", dt.size()),
        )
    })?;
    if buf.is_null() && bytes > 0 && dt.true_lb().unsigned_abs() < 4096 {
        return Err(MpiErr::new(
            MPI_ERR_BUFFER,
            format!("buffer is NULL with {bytes} bytes of data"),
        ));
    }
    Ok(Typed { dt, count, bytes })
}

/// A send buffer as bytes: the user's memory for a contiguous type, else a packed copy.
pub(crate) enum SendData {
    /// In place (`ptr` valid for `len` bytes, or dangling if 0).
    Place(*const u8, usize),
    /// Packed.
    Packed(Vec<u8>),
}

impl SendData {
    /// Pointer and length.
    pub fn raw(&self) -> (*const u8, usize) {
        match self {
            SendData::Place(p, n) => (*p, *n),
            SendData::Packed(v) => (v.as_ptr(), v.len()),
        }
    }
}

/// The bytes to send of a typed buffer.
///
/// # Safety
/// `buf` holds `t.count` elements of `t.dt` (MPI's contract).
pub(crate) unsafe fn send_data(buf: *const c_void, t: &Typed<'_>) -> SendData {
    if t.bytes == 0 {
        return SendData::Place(std::ptr::NonNull::<u8>::dangling().as_ptr(), 0);
    }
    if t.dt.is_contiguous() {
        SendData::Place((buf as *const u8).wrapping_offset(t.dt.true_lb()), t.bytes)
    } else {
        let mut v = vec![0u8; t.bytes];
        // SAFETY: the caller's contract: the type map of `count` elements is readable.
        unsafe { pack::pack(t.dt, t.count, buf as *const u8, &mut v) };
        SendData::Packed(v)
    }
}

/// Posts a send of a checked typed buffer (`dest` None: MPI_PROC_NULL, completes at once).
///
/// # Errors
/// As tocsin's `isend_raw`.
///
/// # Safety
/// `buf` holds the data and stays untouched until completion (MPI's contract).
pub(crate) unsafe fn post_send_typed(
    c: &CommObj,
    h: MPI_Comm,
    buf: *const c_void,
    t: &Typed<'_>,
    dest: Option<u32>,
    tag: i32,
    sync: bool,
) -> MpiResult<ReqObj> {
    let Some(dest) = dest else {
        return Ok(ReqObj::new(
            Active::Done(Ok(proc_null_status())),
            Post::None,
            h,
            false,
        ));
    };
    // SAFETY: forwarded.
    let data = unsafe { send_data(buf, t) };
    let (p, n) = data.raw();
    // SAFETY: `p` is readable for `n` bytes until completion: the user's buffer (MPI
    // contract) or the packed Vec, kept alive by `Post::Keep` (its heap block does not move).
    let r = unsafe {
        if sync {
            c.comm.issend_raw(p, n, dest, tag)?
        } else {
            c.comm.isend_raw(p, n, dest, tag)?
        }
    };
    let post = match data {
        SendData::Packed(v) => Post::Keep(v),
        SendData::Place(..) => Post::None,
    };
    Ok(ReqObj::new(Active::Raw(r), post, h, false))
}

/// Checks the arguments of a send and posts it.
///
/// # Errors
/// `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_BUFFER`, `MPI_ERR_RANK`, `MPI_ERR_TAG`, and
/// tocsin's.
///
/// # Safety
/// As [`post_send_typed`]; `dt` a datatype handle.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn post_send(
    c: &CommObj,
    h: MPI_Comm,
    buf: *const c_void,
    count: i64,
    dt: MPI_Datatype,
    dest: c_int,
    tag: c_int,
) -> MpiResult<ReqObj> {
    // SAFETY: forwarded.
    unsafe { post_send_mode(c, h, buf, count, dt, dest, tag, false) }
}

/// [`post_send`], synchronous (`sync`: completes once a receive matched it) or not.
///
/// # Errors
/// As [`post_send`].
///
/// # Safety
/// As [`post_send`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn post_send_mode(
    c: &CommObj,
    h: MPI_Comm,
    buf: *const c_void,
    count: i64,
    dt: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    sync: bool,
) -> MpiResult<ReqObj> {
    // SAFETY: forwarded.
    let t = unsafe { typed(buf, count, dt)? };
    let dest = dest_rank(c, dest)?;
    let tag = send_tag(tag)?;
    // SAFETY: forwarded.
    unsafe { post_send_typed(c, h, buf, &t, dest, tag, sync) }
}

/// Checks the arguments of a receive and posts it.
///
/// # Errors
/// `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_BUFFER`, `MPI_ERR_RANK`, `MPI_ERR_TAG`, and
/// tocsin's.
///
/// # Safety
/// `buf` is writable for the type map of `count` elements of `dt` and not accessed until
/// completion (MPI's contract).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn post_recv(
    c: &CommObj,
    h: MPI_Comm,
    buf: *mut c_void,
    count: i64,
    dt: MPI_Datatype,
    source: c_int,
    tag: c_int,
) -> MpiResult<ReqObj> {
    // SAFETY: forwarded.
    let t = unsafe { typed(buf, count, dt)? };
    let source = source_rank(c, source)?;
    let tag = recv_tag(tag)?;
    let Some(source) = source else {
        return Ok(ReqObj::new(
            Active::Done(Ok(proc_null_status())),
            Post::None,
            h,
            true,
        ));
    };
    if t.bytes == 0 || t.dt.is_contiguous() {
        let p = if t.bytes == 0 {
            std::ptr::NonNull::<u8>::dangling().as_ptr()
        } else {
            (buf as *mut u8).wrapping_offset(t.dt.true_lb())
        };
        // SAFETY: `p` is the start of the user's contiguous receive area of `t.bytes` bytes
        // (the caller's contract), or dangling with length 0.
        let r = unsafe { c.comm.irecv_raw(p, t.bytes, source, tag)? };
        Ok(ReqObj::new(Active::Raw(r), Post::None, h, true))
    } else {
        let mut tmp = vec![0u8; t.bytes];
        // SAFETY: `tmp` is writable for its length; its heap block is kept (not moved) in
        // the `Post::Unpack` of the request until completion.
        let r = unsafe { c.comm.irecv_raw(tmp.as_mut_ptr(), t.bytes, source, tag)? };
        Ok(ReqObj::new(
            Active::Raw(r),
            Post::Unpack {
                tmp,
                dt: t.dt.clone(),
                count: t.count,
                buf: buf as *mut u8,
            },
            h,
            true,
        ))
    }
}

/// A blocking receive's outcome from tocsin's: the status, and the error if any (the
/// status is filled on truncation).
pub(crate) fn recv_outcome(r: tocsin::Result<tocsin::Status>) -> (St, MpiResult<()>) {
    match r {
        Ok(s) => (St::from_tocsin(&s), Ok(())),
        Err(tocsin::Error::Truncated {
            message_len,
            buffer_len,
            from,
            tag,
        }) => {
            let st = St {
                source: from as c_int,
                tag,
                bytes: buffer_len as u64,
                ..St::empty()
            };
            let e = tocsin::Error::Truncated {
                message_len,
                buffer_len,
                from,
                tag,
            };
            (st, Err(MpiErr::from(e)))
        }
        Err(e) => (St::empty(), Err(MpiErr::from(e))),
    }
}

/// Blocking send (every mode): the fast path, no request object.
///
/// # Safety
/// MPI's contract for the arguments.
#[allow(clippy::too_many_arguments)]
unsafe fn send_blocking(
    func: &str,
    sync: bool,
    buf: *const c_void,
    count: i64,
    dt: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: `comm` is the caller's handle.
    unsafe {
        with_comm(func, comm, |c| {
            let t = typed(buf, count, dt)?;
            let Some(dest) = dest_rank(c, dest)? else {
                send_tag(tag)?;
                return Ok(());
            };
            let tag = send_tag(tag)?;
            match send_data(buf, &t) {
                SendData::Place(p, n) => {
                    let s: &[u8] = if n == 0 {
                        &[]
                    } else {
                        // SAFETY: the user's contiguous send area of `n` bytes.
                        std::slice::from_raw_parts(p, n)
                    };
                    if sync {
                        c.comm.ssend(s, dest, tag)?;
                    } else {
                        c.comm.send(s, dest, tag)?;
                    }
                }
                SendData::Packed(v) if sync => c.comm.ssend(&v, dest, tag)?,
                SendData::Packed(v) => c.comm.send(&v, dest, tag)?,
            }
            Ok(())
        })
    }
}

/// The common case of a blocking send, decided without building anything: a valid
/// communicator, a predefined contiguous datatype, a rank and tag in range, data not at
/// NULL. Returns `None` (nothing done) for anything else, which the general path checks
/// and reports.
///
/// # Safety
/// MPI's contract for the arguments.
#[inline]
unsafe fn send_fast(
    buf: *const c_void,
    count: c_int,
    dt: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
) -> Option<c_int> {
    let esz = crate::datatype::predefined::contiguous_size(dt as usize)?;
    // SAFETY: the caller's handle (looked up, magic-checked).
    let c = unsafe { handle::comm_fast(comm) }?;
    let dest = u32::try_from(dest).ok().filter(|&d| d < c.comm.size())?;
    let bytes = usize::try_from(count).ok()?.checked_mul(esz)?;
    if tag < 0 || (buf.is_null() && bytes > 0) {
        return None;
    }
    let s: &[u8] = if bytes == 0 {
        &[]
    } else {
        // SAFETY: `count` contiguous elements at `buf` (MPI's contract), non-null.
        unsafe { std::slice::from_raw_parts(buf as *const u8, bytes) }
    };
    Some(match c.comm.send(s, dest, tag) {
        Ok(()) => MPI_SUCCESS,
        Err(e) => crate::error::raise("MPI_Send", Some((c, comm)), MpiErr::from(e)),
    })
}

/// The common case of a blocking receive (as [`send_fast`]): `None` for anything else.
///
/// # Safety
/// MPI's contract for the arguments.
#[inline]
unsafe fn recv_fast(
    buf: *mut c_void,
    count: c_int,
    dt: MPI_Datatype,
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    status: *mut MPI_Status,
) -> Option<c_int> {
    let esz = crate::datatype::predefined::contiguous_size(dt as usize)?;
    // SAFETY: the caller's handle (looked up, magic-checked).
    let c = unsafe { handle::comm_fast(comm) }?;
    let src = match source {
        MPI_ANY_SOURCE => tocsin::ANY_SOURCE,
        s => u32::try_from(s).ok().filter(|&s| s < c.comm.size())?,
    };
    let tag = match tag {
        MPI_ANY_TAG => tocsin::ANY_TAG,
        t if t >= 0 => t,
        _ => return None,
    };
    let bytes = usize::try_from(count).ok()?.checked_mul(esz)?;
    if buf.is_null() && bytes > 0 {
        return None;
    }
    let s: &mut [u8] = if bytes == 0 {
        &mut []
    } else {
        // SAFETY: `count` contiguous elements at `buf` (MPI's contract), non-null.
        unsafe { std::slice::from_raw_parts_mut(buf as *mut u8, bytes) }
    };
    let r = c.comm.recv(s, src, tag);
    if let Ok(st) = &r {
        if !status.is_null() {
            // SAFETY: `status` is writable (MPI's contract), not MPI_STATUS_IGNORE.
            unsafe { status::write(status, &status::St::from_tocsin(st), false) };
        }
        return Some(MPI_SUCCESS);
    }
    let (st, r) = recv_outcome(r);
    // SAFETY: `status` is MPI_STATUS_IGNORE or writable.
    unsafe { status::write(status, &st, false) };
    Some(match r {
        Ok(()) => MPI_SUCCESS,
        Err(e) => crate::error::raise("MPI_Recv", Some((c, comm)), e),
    })
}

/// Blocking receive: the fast path, no request object.
///
/// # Safety
/// MPI's contract for the arguments.
#[allow(clippy::too_many_arguments)]
unsafe fn recv_blocking(
    func: &str,
    buf: *mut c_void,
    count: i64,
    dt: MPI_Datatype,
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: `comm` is the caller's handle.
    unsafe {
        with_comm(func, comm, |c| {
            let t = typed(buf, count, dt)?;
            let src = source_rank(c, source)?;
            let tag = recv_tag(tag)?;
            let Some(src) = src else {
                status::write(status, &proc_null_status(), false);
                return Ok(());
            };
            let (st, r) = if t.bytes == 0 || t.dt.is_contiguous() {
                let s: &mut [u8] = if t.bytes == 0 {
                    &mut []
                } else {
                    // SAFETY: the user's contiguous receive area of `t.bytes` bytes.
                    std::slice::from_raw_parts_mut(
                        (buf as *mut u8).wrapping_offset(t.dt.true_lb()),
                        t.bytes,
                    )
                };
                recv_outcome(c.comm.recv(s, src, tag))
            } else {
                let mut tmp = vec![0u8; t.bytes];
                let out = recv_outcome(c.comm.recv(&mut tmp, src, tag));
                let n = (out.0.bytes as usize).min(tmp.len());
                // SAFETY: the user's buffer holds the type map of `count` elements
                // (MPI's contract); `tmp[..n]` is a prefix of their packed form.
                pack::unpack(t.dt, t.count, &tmp[..n], buf as *mut u8);
                out
            };
            status::write(status, &st, false);
            r
        })
    }
}

/// Posts a nonblocking send and returns its handle.
///
/// # Safety
/// MPI's contract for the arguments.
#[allow(clippy::too_many_arguments)]
unsafe fn isend(
    func: &str,
    sync: bool,
    buf: *const c_void,
    count: i64,
    dt: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: `comm` is the caller's handle.
    unsafe {
        with_comm(func, comm, |c| {
            if request.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "request is NULL"));
            }
            let r = post_send_mode(c, comm, buf, count, dt, dest, tag, sync)?;
            request.write(new_request(r));
            Ok(())
        })
    }
}

/// Posts a nonblocking receive and returns its handle.
///
/// # Safety
/// MPI's contract for the arguments.
#[allow(clippy::too_many_arguments)]
unsafe fn irecv(
    func: &str,
    buf: *mut c_void,
    count: i64,
    dt: MPI_Datatype,
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: `comm` is the caller's handle.
    unsafe {
        with_comm(func, comm, |c| {
            if request.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "request is NULL"));
            }
            let r = post_recv(c, comm, buf, count, dt, source, tag)?;
            request.write(new_request(r));
            Ok(())
        })
    }
}

/// `MPI_Send`: blocking standard send. Contiguous datatypes are sent in place; others are
/// packed first. Errors: `MPI_ERR_COMM`, `MPI_ERR_COUNT`, `MPI_ERR_TYPE`, `MPI_ERR_BUFFER`,
/// `MPI_ERR_RANK`, `MPI_ERR_TAG`, `MPI_ERR_PROC_ABORTED` (destination died).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Send(
    buf: *const c_void,
    count: c_int,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    if let Some(rc) = unsafe { send_fast(buf, count, datatype, dest, tag, comm) } {
        return rc;
    }
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        send_blocking(
            "MPI_Send",
            false,
            buf,
            count.into(),
            datatype,
            dest,
            tag,
            comm,
        )
    }
}

/// `MPI_Send_c`: `MPI_Send` with an `MPI_Count` count.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Send_c(
    buf: *const c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe { send_blocking("MPI_Send_c", false, buf, count, datatype, dest, tag, comm) }
}

/// `MPI_Ssend`: synchronous send: returns once the matching receive has started (the
/// message takes tocsin's rendezvous whatever its size).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ssend(
    buf: *const c_void,
    count: c_int,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        send_blocking(
            "MPI_Ssend",
            true,
            buf,
            count.into(),
            datatype,
            dest,
            tag,
            comm,
        )
    }
}

/// `MPI_Ssend_c`: `MPI_Ssend` with an `MPI_Count` count.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ssend_c(
    buf: *const c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe { send_blocking("MPI_Ssend_c", true, buf, count, datatype, dest, tag, comm) }
}

/// `MPI_Rsend`: ready send, implemented as a standard send (allowed by MPI).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Rsend(
    buf: *const c_void,
    count: c_int,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        send_blocking(
            "MPI_Rsend",
            false,
            buf,
            count.into(),
            datatype,
            dest,
            tag,
            comm,
        )
    }
}

/// `MPI_Rsend_c`: `MPI_Rsend` with an `MPI_Count` count.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Rsend_c(
    buf: *const c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe { send_blocking("MPI_Rsend_c", false, buf, count, datatype, dest, tag, comm) }
}

/// `MPI_Recv`: blocking receive (no request object: the latency path). Fills `status`
/// (source, tag, byte count) unless MPI_STATUS_IGNORE; from MPI_PROC_NULL: source
/// MPI_PROC_NULL, tag MPI_ANY_TAG, count 0. Errors: as `MPI_Send`, and `MPI_ERR_TRUNCATE`
/// when the message is longer than the buffer (the buffer holds its first part, the status
/// is filled).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Recv(
    buf: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    if let Some(rc) = unsafe { recv_fast(buf, count, datatype, source, tag, comm, status) } {
        return rc;
    }
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        recv_blocking(
            "MPI_Recv",
            buf,
            count.into(),
            datatype,
            source,
            tag,
            comm,
            status,
        )
    }
}

/// `MPI_Recv_c`: `MPI_Recv` with an `MPI_Count` count.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Recv_c(
    buf: *mut c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        recv_blocking(
            "MPI_Recv_c",
            buf,
            count,
            datatype,
            source,
            tag,
            comm,
            status,
        )
    }
}

/// `MPI_Isend`: nonblocking standard send; the buffer must not change until the request
/// completes. Errors: as `MPI_Send`, and `MPI_ERR_ARG` for a NULL `request`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Isend(
    buf: *const c_void,
    count: c_int,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        isend(
            "MPI_Isend",
            false,
            buf,
            count.into(),
            datatype,
            dest,
            tag,
            comm,
            request,
        )
    }
}

/// `MPI_Isend_c`: `MPI_Isend` with an `MPI_Count` count.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Isend_c(
    buf: *const c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        isend(
            "MPI_Isend_c",
            false,
            buf,
            count,
            datatype,
            dest,
            tag,
            comm,
            request,
        )
    }
}

/// `MPI_Issend`: nonblocking synchronous send: completes once the matching receive has
/// started.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Issend(
    buf: *const c_void,
    count: c_int,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        isend(
            "MPI_Issend",
            true,
            buf,
            count.into(),
            datatype,
            dest,
            tag,
            comm,
            request,
        )
    }
}

/// `MPI_Irsend`: nonblocking ready send, a standard `MPI_Isend`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Irsend(
    buf: *const c_void,
    count: c_int,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        isend(
            "MPI_Irsend",
            false,
            buf,
            count.into(),
            datatype,
            dest,
            tag,
            comm,
            request,
        )
    }
}

/// `MPI_Irecv`: nonblocking receive; the buffer is filled (unpacked, for a non-contiguous
/// datatype) when the request completes. Errors: as `MPI_Recv`'s argument checks, and
/// `MPI_ERR_ARG` for a NULL `request`; truncation is reported by the completing call.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Irecv(
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
        irecv(
            "MPI_Irecv",
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

/// `MPI_Irecv_c`: `MPI_Irecv` with an `MPI_Count` count.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Irecv_c(
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
        irecv(
            "MPI_Irecv_c",
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

// ---- Sendrecv ----------------------------------------------------------------------------

/// Completes a request posted here, blocking (tocsin's wait), and returns status and
/// outcome.
pub(crate) fn wait_req(mut r: ReqObj) -> (St, MpiResult<()>) {
    let werr = match &r.active {
        Active::Raw(raw) => raw.wait().err(),
        _ => None,
    };
    match crate::wait::complete(&mut r) {
        Some(x) => x,
        None => {
            // Still in flight (its wait failed): keep its buffers alive until it completes.
            crate::wait::detach(&mut r);
            let e = werr.map_or_else(
                || MpiErr::new(MPI_ERR_INTERN, "wait returned before completion"),
                MpiErr::from,
            );
            (St::empty(), Err(e))
        }
    }
}

/// `MPI_Sendrecv`: sends and receives at once (the receive is posted first, so that pairs
/// of ranks exchanging cannot deadlock). Errors: those of `MPI_Send` and `MPI_Recv`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Sendrecv(
    sendbuf: *const c_void,
    sendcount: c_int,
    sendtype: MPI_Datatype,
    dest: c_int,
    sendtag: c_int,
    recvbuf: *mut c_void,
    recvcount: c_int,
    recvtype: MPI_Datatype,
    source: c_int,
    recvtag: c_int,
    comm: MPI_Comm,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        sendrecv(
            "MPI_Sendrecv",
            sendbuf,
            sendcount.into(),
            sendtype,
            dest,
            sendtag,
            recvbuf,
            recvcount.into(),
            recvtype,
            source,
            recvtag,
            comm,
            status,
        )
    }
}

/// `MPI_Sendrecv_c`: `MPI_Sendrecv` with `MPI_Count` counts.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Sendrecv_c(
    sendbuf: *const c_void,
    sendcount: MPI_Count,
    sendtype: MPI_Datatype,
    dest: c_int,
    sendtag: c_int,
    recvbuf: *mut c_void,
    recvcount: MPI_Count,
    recvtype: MPI_Datatype,
    source: c_int,
    recvtag: c_int,
    comm: MPI_Comm,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        sendrecv(
            "MPI_Sendrecv_c",
            sendbuf,
            sendcount,
            sendtype,
            dest,
            sendtag,
            recvbuf,
            recvcount,
            recvtype,
            source,
            recvtag,
            comm,
            status,
        )
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn sendrecv(
    func: &str,
    sendbuf: *const c_void,
    sendcount: i64,
    sendtype: MPI_Datatype,
    dest: c_int,
    sendtag: c_int,
    recvbuf: *mut c_void,
    recvcount: i64,
    recvtype: MPI_Datatype,
    source: c_int,
    recvtag: c_int,
    comm: MPI_Comm,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: `comm` is the caller's handle; buffers per MPI's contract.
    unsafe {
        with_comm(func, comm, |c| {
            // Check the send side before posting the receive: a receive abandoned
            // because the send was invalid would stay posted.
            let t = typed(sendbuf, sendcount, sendtype)?;
            let d = dest_rank(c, dest)?;
            let stag = send_tag(sendtag)?;
            let rr = post_recv(c, comm, recvbuf, recvcount, recvtype, source, recvtag)?;
            let sr = match post_send_typed(c, comm, sendbuf, &t, d, stag, false) {
                Ok(s) => s,
                Err(e) => {
                    if let Active::Raw(raw) = &rr.active {
                        raw.cancel();
                    }
                    let _ = wait_req(rr);
                    return Err(e);
                }
            };
            let (st, r) = wait_req(rr);
            let (_, s) = wait_req(sr);
            status::write(status, &st, false);
            s.and(r)
        })
    }
}

/// `MPI_Sendrecv_replace`: sends the buffer's contents and replaces them with the message
/// received (the outgoing data is packed into a temporary first). Errors: as
/// `MPI_Sendrecv`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Sendrecv_replace(
    buf: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    dest: c_int,
    sendtag: c_int,
    source: c_int,
    recvtag: c_int,
    comm: MPI_Comm,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        sendrecv_replace(
            "MPI_Sendrecv_replace",
            buf,
            count.into(),
            datatype,
            dest,
            sendtag,
            source,
            recvtag,
            comm,
            status,
        )
    }
}

/// `MPI_Sendrecv_replace_c`: `MPI_Sendrecv_replace` with an `MPI_Count` count.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Sendrecv_replace_c(
    buf: *mut c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    dest: c_int,
    sendtag: c_int,
    source: c_int,
    recvtag: c_int,
    comm: MPI_Comm,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        sendrecv_replace(
            "MPI_Sendrecv_replace_c",
            buf,
            count,
            datatype,
            dest,
            sendtag,
            source,
            recvtag,
            comm,
            status,
        )
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn sendrecv_replace(
    func: &str,
    buf: *mut c_void,
    count: i64,
    datatype: MPI_Datatype,
    dest: c_int,
    sendtag: c_int,
    source: c_int,
    recvtag: c_int,
    comm: MPI_Comm,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: `comm` is the caller's handle; buffer per MPI's contract.
    unsafe {
        with_comm(func, comm, |c| {
            let t = typed(buf, count, datatype)?;
            let d = dest_rank(c, dest)?;
            let stag = send_tag(sendtag)?;
            let mut copy = vec![0u8; t.bytes];
            if t.bytes > 0 {
                pack::pack(t.dt, t.count, buf as *const u8, &mut copy);
            }
            let rr = post_recv(c, comm, buf, count, datatype, source, recvtag)?;
            let sr = match d {
                None => None,
                Some(d) => match c.comm.isend_raw(copy.as_ptr(), copy.len(), d, stag) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        if let Active::Raw(raw) = &rr.active {
                            raw.cancel();
                        }
                        let _ = wait_req(rr);
                        return Err(e.into());
                    }
                },
            };
            let (st, r) = wait_req(rr);
            let s = match sr {
                Some(s) => s.wait().map(|_| ()).map_err(MpiErr::from),
                None => Ok(()),
            };
            drop(copy);
            status::write(status, &st, false);
            s.and(r)
        })
    }
}

// ---- Buffered mode ------------------------------------------------------------------------

/// The attached buffer (address, size) and the buffered sends in flight.
struct Attached {
    buf: usize,
    size: usize,
    pending: Vec<(tocsin::RawRequest, Vec<u8>)>,
}

static BSEND: Mutex<Attached> = Mutex::new(Attached {
    buf: 0,
    size: 0,
    pending: Vec::new(),
});
/// Buffered sends in flight (skip the lock when 0).
static BSEND_PENDING: AtomicUsize = AtomicUsize::new(0);

fn bsend_lock() -> std::sync::MutexGuard<'static, Attached> {
    BSEND.lock().unwrap_or_else(|p| p.into_inner())
}

impl Attached {
    fn reap(&mut self) {
        self.pending.retain(|(r, _)| !r.is_complete());
        BSEND_PENDING.store(self.pending.len(), Ordering::Relaxed);
    }
    fn used(&self) -> usize {
        self.pending
            .iter()
            .map(|(_, v)| v.len() + MPI_BSEND_OVERHEAD as usize)
            .sum()
    }
}

/// Drops the buffered sends that completed.
pub(crate) fn bsend_reap() {
    if BSEND_PENDING.load(Ordering::Relaxed) > 0 {
        bsend_lock().reap();
    }
}

/// A buffered send: the data is copied (packed) out, accounted against the attached
/// buffer, and sent from the copy; returns at once.
///
/// # Errors
/// `MPI_ERR_BUFFER` if the attached buffer (minus `MPI_BSEND_OVERHEAD` per message in
/// flight) has no room for it; the argument errors of a send.
///
/// # Safety
/// MPI's contract for the arguments.
pub(crate) unsafe fn bsend(
    c: &CommObj,
    buf: *const c_void,
    count: i64,
    dt: MPI_Datatype,
    dest: c_int,
    tag: c_int,
) -> MpiResult<()> {
    // SAFETY: forwarded.
    let t = unsafe { typed(buf, count, dt)? };
    let Some(d) = dest_rank(c, dest)? else {
        send_tag(tag)?;
        return Ok(());
    };
    let tag = send_tag(tag)?;
    let mut a = bsend_lock();
    a.reap();
    let need = t.bytes + MPI_BSEND_OVERHEAD as usize;
    if a.buf != MPI_BUFFER_AUTOMATIC_VALUE && a.used() + need > a.size {
        return Err(MpiErr::new(
            MPI_ERR_BUFFER,
            format!(
                "buffered send of {} bytes: the attached buffer has {} bytes, {} in use (each message takes MPI_BSEND_OVERHEAD = {} more); attach a larger buffer with MPI_Buffer_attach",
                t.bytes,
                a.size,
                a.used(),
                MPI_BSEND_OVERHEAD
            ),
        ));
    }
    let mut v = vec![0u8; t.bytes];
    if t.bytes > 0 {
        // SAFETY: the caller's contract: the type map of `count` elements is readable.
        unsafe { pack::pack(t.dt, t.count, buf as *const u8, &mut v) };
    }
    // SAFETY: `v`'s heap block stays alive (in `pending`) until the send completes.
    let r = unsafe { c.comm.isend_raw(v.as_ptr(), v.len(), d, tag)? };
    a.pending.push((r, v));
    BSEND_PENDING.store(a.pending.len(), Ordering::Relaxed);
    Ok(())
}

/// `MPI_BUFFER_AUTOMATIC` (`(void*)2`): no limit on buffered sends.
const MPI_BUFFER_AUTOMATIC_VALUE: usize = 2;

/// `MPI_Bsend`: buffered send; returns once the data is copied. Errors: `MPI_ERR_BUFFER` if
/// the attached buffer is too small (none attached: size 0), and those of `MPI_Send`.
/// The attached memory itself is not written: the copy lives on the heap; only its size
/// is accounted.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Bsend(
    buf: *const c_void,
    count: c_int,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        with_comm("MPI_Bsend", comm, |c| {
            bsend(c, buf, count.into(), datatype, dest, tag)
        })
    }
}

/// `MPI_Bsend_c`: `MPI_Bsend` with an `MPI_Count` count.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Bsend_c(
    buf: *const c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        with_comm("MPI_Bsend_c", comm, |c| {
            bsend(c, buf, count, datatype, dest, tag)
        })
    }
}

/// `MPI_Ibsend`: nonblocking buffered send: the copy is made at once, so the request is
/// complete on return. Errors: as `MPI_Bsend`, `MPI_ERR_ARG` for a NULL `request`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Ibsend(
    buf: *const c_void,
    count: c_int,
    datatype: MPI_Datatype,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: the caller's arguments, MPI's contract.
    unsafe {
        with_comm("MPI_Ibsend", comm, |c| {
            if request.is_null() {
                return Err(MpiErr::new(MPI_ERR_ARG, "request is NULL"));
            }
            bsend(c, buf, count.into(), datatype, dest, tag)?;
            request.write(new_request(ReqObj::new(
                Active::Done(Ok(St::empty())),
                Post::None,
                comm,
                false,
            )));
            Ok(())
        })
    }
}

fn buffer_attach(func: &str, buffer: *mut c_void, size: i64) -> c_int {
    let r = (|| {
        let size = usize::try_from(size)
            .map_err(|_| MpiErr::new(MPI_ERR_ARG, format!("buffer size {size} is negative")))?;
        if buffer.is_null() && size > 0 {
            return Err(MpiErr::new(MPI_ERR_BUFFER, "buffer is NULL"));
        }
        let mut a = bsend_lock();
        if a.buf != 0 {
            return Err(MpiErr::new(
                MPI_ERR_BUFFER,
                "a buffer is already attached (MPI_Buffer_detach it first)",
            ));
        }
        a.buf = buffer as usize;
        a.size = size;
        Ok(())
    })();
    crate::error::finish(func, None, r)
}

/// `MPI_Buffer_attach`: attaches the buffer that buffered sends account against
/// (`MPI_BUFFER_AUTOMATIC`: no limit). Errors: `MPI_ERR_BUFFER` if one is attached
/// already or `buffer` is NULL, `MPI_ERR_ARG` for a negative size.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Buffer_attach(buffer: *mut c_void, size: c_int) -> c_int {
    buffer_attach("MPI_Buffer_attach", buffer, size.into())
}

/// `MPI_Buffer_attach_c`: `MPI_Buffer_attach` with an `MPI_Count` size.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Buffer_attach_c(buffer: *mut c_void, size: MPI_Count) -> c_int {
    buffer_attach("MPI_Buffer_attach_c", buffer, size)
}

/// Waits for every buffered send, detaches the buffer: (address, size).
fn buffer_detach() -> MpiResult<(usize, usize)> {
    let st = handle::state()?;
    let mut a = bsend_lock();
    let pending = std::mem::take(&mut a.pending);
    st.world
        .comm
        .wait_until(|| pending.iter().all(|(r, _)| r.is_complete()));
    BSEND_PENDING.store(0, Ordering::Relaxed);
    drop(pending);
    let out = (a.buf, a.size);
    a.buf = 0;
    a.size = 0;
    Ok(out)
}

/// `MPI_Buffer_detach`: waits until every buffered send has been delivered, detaches the
/// buffer and returns its address (in `*(void **)buffer_addr`) and size. With no buffer
/// attached: NULL and 0.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Buffer_detach(buffer_addr: *mut c_void, size: *mut c_int) -> c_int {
    let r = buffer_detach().map(|(b, s)| {
        if !buffer_addr.is_null() {
            // SAFETY: MPI passes the address of a `void *` to receive the buffer address.
            unsafe { (buffer_addr as *mut *mut c_void).write_unaligned(b as *mut c_void) };
        }
        if !size.is_null() {
            // SAFETY: writable `int *` from the caller.
            unsafe { size.write(c_int::try_from(s).unwrap_or(c_int::MAX)) };
        }
    });
    crate::error::finish("MPI_Buffer_detach", None, r)
}

/// `MPI_Buffer_detach_c`: `MPI_Buffer_detach` with an `MPI_Count` size.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Buffer_detach_c(
    buffer_addr: *mut c_void,
    size: *mut MPI_Count,
) -> c_int {
    let r = buffer_detach().map(|(b, s)| {
        if !buffer_addr.is_null() {
            // SAFETY: MPI passes the address of a `void *` to receive the buffer address.
            unsafe { (buffer_addr as *mut *mut c_void).write_unaligned(b as *mut c_void) };
        }
        if !size.is_null() {
            // SAFETY: writable `MPI_Count *` from the caller.
            unsafe { size.write(s as MPI_Count) };
        }
    });
    crate::error::finish("MPI_Buffer_detach_c", None, r)
}
