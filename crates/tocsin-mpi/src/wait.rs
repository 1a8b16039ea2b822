//! Completion of requests (MPI-4.1 §3.7.3–3.8): `MPI_Wait`, `MPI_Test` and their
//! `all`/`any`/`some` forms, `MPI_Request_free`, `MPI_Request_get_status`, `MPI_Cancel`,
//! and the status queries `MPI_Get_count`, `MPI_Get_elements`, `MPI_Test_cancelled`,
//! `MPI_Status_set_elements`, `MPI_Status_set_cancelled`.
//!
//! Owns the rules of completion: a null or inactive request gives the empty status; a
//! completed nonpersistent request is freed (handle set to MPI_REQUEST_NULL), a persistent
//! one becomes inactive; the multiple-completion calls report failures with
//! `MPI_ERR_IN_STATUS` and `MPI_ERROR` in each status. Waiting on several requests uses
//! tocsin's waiting routine (`Comm::wait_until`), which sleeps in the sleeping progress
//! modes and notices dead peers; a single `MPI_Wait` uses the request's own wait.

use std::ffi::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::abi::*;
use crate::error::{finish, raise, MpiErr, MpiResult};
use crate::handle::{self, CommObj};
use crate::request::{self, free_request, Active, Post, ReqObj};
use crate::status::{self, St};

/// Completes a request whose operation is complete (or that is inactive or done): its
/// status and outcome, the completion action run (a truncated receive is unpacked as far
/// as it was delivered and its status filled). `None` if still in flight.
pub(crate) fn complete(r: &mut ReqObj) -> Option<(St, MpiResult<()>)> {
    if let Active::Raw(raw) = &r.active {
        if let Some(Err(tocsin::Error::Truncated {
            message_len,
            buffer_len,
            from,
            tag,
        })) = raw.outcome()
        {
            let post = std::mem::replace(&mut r.post, Post::None);
            let got = St {
                bytes: buffer_len as u64,
                ..St::empty()
            };
            // Runs the completion action (unpacking) on the bytes delivered.
            let mut tmp = ReqObj::new(Active::Done(Ok(got)), post, r.comm, r.recv);
            let _ = tmp.poll();
            let e = MpiErr::from(tocsin::Error::Truncated {
                message_len,
                buffer_len,
                from,
                tag,
            });
            r.active = Active::Done(Err(e.clone()));
            let st = St {
                source: from as c_int,
                tag,
                bytes: buffer_len as u64,
                ..St::empty()
            };
            return Some((st, Err(e)));
        }
    }
    match r.poll()? {
        Ok(st) => Some((st, Ok(()))),
        Err(e) => Some((St::empty(), Err(e))),
    }
}

/// After completion: frees a nonpersistent request (handle to MPI_REQUEST_NULL), makes a
/// persistent one inactive.
///
/// # Safety
/// `h` points to the live handle of `r`.
unsafe fn retire(h: *mut MPI_Request, r: &mut ReqObj) {
    if r.is_persistent() {
        r.active = Active::Inactive;
        r.post = Post::None;
    } else {
        // SAFETY: the caller's contract.
        unsafe { free_request(h) };
    }
}

/// The communicator of a request, for its error handler.
fn req_comm<'a>(c: MPI_Comm) -> Option<(&'a CommObj, MPI_Comm)> {
    // SAFETY: the handle was valid when the request was posted (a communicator freed
    // since is caught by the magic check in the common case).
    unsafe { handle::comm(c) }.ok().map(|o| (o, c))
}

// ---- Requests freed while in flight ----------------------------------------------------------

/// Requests freed by MPI_Request_free before completing: kept (with their buffers) until
/// their operation completes.
static DETACHED: Mutex<Vec<ReqObj>> = Mutex::new(Vec::new());
static N_DETACHED: AtomicUsize = AtomicUsize::new(0);

/// Drops the detached requests that completed (after running their completion action).
pub(crate) fn reap_detached() {
    crate::p2p::bsend_reap();
    if N_DETACHED.load(Ordering::Relaxed) == 0 {
        return;
    }
    let mut v = DETACHED.lock().unwrap_or_else(|p| p.into_inner());
    v.retain_mut(|r| {
        if r.is_complete() {
            let _ = complete(r);
            false
        } else {
            true
        }
    });
    N_DETACHED.store(v.len(), Ordering::Relaxed);
}

/// Keeps an in-flight request's operation and buffers until it completes (its handle may
/// then be freed).
pub(crate) fn detach(r: &mut ReqObj) {
    let active = std::mem::replace(&mut r.active, Active::Inactive);
    let post = std::mem::replace(&mut r.post, Post::None);
    let mut v = DETACHED.lock().unwrap_or_else(|p| p.into_inner());
    v.push(ReqObj::new(active, post, r.comm, r.recv));
    N_DETACHED.store(v.len(), Ordering::Relaxed);
}

// ---- Single completion ------------------------------------------------------------------------

/// `MPI_Wait`: blocks until the request completes, fills `status`, frees the request (a
/// persistent one becomes inactive). MPI_REQUEST_NULL or an inactive request: empty status
/// at once. Errors: `MPI_ERR_REQUEST` (invalid handle), `MPI_ERR_ARG` (NULL `request`), and
/// the operation's own (`MPI_ERR_TRUNCATE` with the status filled, `MPI_ERR_PROC_ABORTED`)
/// through the error handler of the request's communicator.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Wait(request: *mut MPI_Request, status: *mut MPI_Status) -> c_int {
    const F: &str = "MPI_Wait";
    if request.is_null() {
        return raise(F, None, MpiErr::new(MPI_ERR_ARG, "request is NULL"));
    }
    // SAFETY: non-null `MPI_Request *` from the caller.
    let r = match unsafe { request::request(*request) } {
        Ok(Some(r)) => r,
        Ok(None) => {
            // SAFETY: `status` is MPI_STATUS_IGNORE or writable.
            unsafe { status::write(status, &St::empty(), false) };
            return MPI_SUCCESS;
        }
        Err(e) => return raise(F, None, e),
    };
    let werr = match &r.active {
        Active::Raw(raw) => raw.wait().err(),
        _ => None,
    };
    let comm = r.comm;
    let Some((st, res)) = complete(r) else {
        let e = werr.map_or_else(
            || MpiErr::new(MPI_ERR_INTERN, "wait returned before completion"),
            MpiErr::from,
        );
        return raise(F, req_comm(comm), e);
    };
    // SAFETY: `status` is MPI_STATUS_IGNORE or writable; `request` holds r's handle.
    unsafe {
        status::write(status, &st, false);
        retire(request, r);
    }
    reap_detached();
    finish(F, req_comm(comm), res)
}

/// `MPI_Test`: one progress pass; if the request completed, `*flag` = true and as
/// `MPI_Wait`; else `*flag` = false. MPI_REQUEST_NULL or inactive: true, empty status.
/// Errors: as `MPI_Wait`, and `MPI_ERR_ARG` for a NULL `flag`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Test(
    request: *mut MPI_Request,
    flag: *mut c_int,
    status: *mut MPI_Status,
) -> c_int {
    const F: &str = "MPI_Test";
    if request.is_null() || flag.is_null() {
        return raise(F, None, MpiErr::new(MPI_ERR_ARG, "request or flag is NULL"));
    }
    // SAFETY: non-null `MPI_Request *` from the caller.
    let r = match unsafe { request::request(*request) } {
        Ok(Some(r)) => r,
        Ok(None) => {
            // SAFETY: writable pointers from the caller (checked non-null / ignore).
            unsafe {
                flag.write(1);
                status::write(status, &St::empty(), false);
            }
            return MPI_SUCCESS;
        }
        Err(e) => return raise(F, None, e),
    };
    if let Active::Raw(raw) = &r.active {
        let _ = raw.test();
    }
    let comm = r.comm;
    let Some((st, res)) = complete(r) else {
        // SAFETY: non-null `int *`.
        unsafe { flag.write(0) };
        return MPI_SUCCESS;
    };
    // SAFETY: writable pointers from the caller; `request` holds r's handle.
    unsafe {
        flag.write(1);
        status::write(status, &st, false);
        retire(request, r);
    }
    reap_detached();
    finish(F, req_comm(comm), res)
}

/// `MPI_Request_get_status`: like `MPI_Test` but never frees or deactivates the request.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Request_get_status(
    request: MPI_Request,
    flag: *mut c_int,
    status: *mut MPI_Status,
) -> c_int {
    const F: &str = "MPI_Request_get_status";
    if flag.is_null() {
        return raise(F, None, MpiErr::new(MPI_ERR_ARG, "flag is NULL"));
    }
    // SAFETY: the caller's handle.
    let r = match unsafe { request::request(request) } {
        Ok(Some(r)) => r,
        Ok(None) => {
            // SAFETY: writable pointers from the caller.
            unsafe {
                flag.write(1);
                status::write(status, &St::empty(), false);
            }
            return MPI_SUCCESS;
        }
        Err(e) => return raise(F, None, e),
    };
    if let Active::Raw(raw) = &r.active {
        let _ = raw.test();
    }
    let comm = r.comm;
    let Some((st, res)) = complete(r) else {
        // SAFETY: non-null `int *`.
        unsafe { flag.write(0) };
        return MPI_SUCCESS;
    };
    // SAFETY: writable pointers from the caller.
    unsafe {
        flag.write(1);
        status::write(status, &st, false);
    }
    finish(F, req_comm(comm), res)
}

/// `MPI_Request_free`: frees the request; one still in flight completes in the background
/// (its buffers must stay untouched until then, as MPI says). Sets the handle to
/// MPI_REQUEST_NULL. Errors: `MPI_ERR_REQUEST` for MPI_REQUEST_NULL or an invalid handle.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Request_free(request: *mut MPI_Request) -> c_int {
    const F: &str = "MPI_Request_free";
    if request.is_null() {
        return raise(F, None, MpiErr::new(MPI_ERR_ARG, "request is NULL"));
    }
    // SAFETY: non-null `MPI_Request *` from the caller.
    let r = match unsafe { request::request(*request) } {
        Ok(Some(r)) => r,
        Ok(None) => {
            return raise(
                F,
                None,
                MpiErr::new(MPI_ERR_REQUEST, "MPI_REQUEST_NULL cannot be freed"),
            )
        }
        Err(e) => return raise(F, None, e),
    };
    if !r.is_complete() {
        detach(r);
    } else if matches!(r.active, Active::Raw(_)) {
        let _ = complete(r);
    }
    // SAFETY: `request` holds r's live handle.
    unsafe { free_request(request) };
    reap_detached();
    MPI_SUCCESS
}

/// `MPI_Cancel`: cancels a receive that has not matched (it then completes with
/// `MPI_Test_cancelled` true); a send or a matched receive is not cancelled (it completes
/// normally), which MPI allows. The request must still be completed by a wait or test.
/// Errors: `MPI_ERR_REQUEST` for MPI_REQUEST_NULL or an invalid handle.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Cancel(request: *mut MPI_Request) -> c_int {
    const F: &str = "MPI_Cancel";
    if request.is_null() {
        return raise(F, None, MpiErr::new(MPI_ERR_ARG, "request is NULL"));
    }
    // SAFETY: non-null `MPI_Request *` from the caller.
    match unsafe { request::request(*request) } {
        Ok(Some(r)) => {
            if let Active::Raw(raw) = &r.active {
                raw.cancel();
            }
            MPI_SUCCESS
        }
        Ok(None) => raise(
            F,
            None,
            MpiErr::new(MPI_ERR_REQUEST, "MPI_REQUEST_NULL cannot be cancelled"),
        ),
        Err(e) => raise(F, None, e),
    }
}

// ---- Multiple completion ------------------------------------------------------------------------

/// The request objects of an array (None: null); `Err` on an invalid handle.
///
/// # Safety
/// `reqs` holds `count` handles (or `count` is 0).
unsafe fn objects<'a>(
    count: c_int,
    reqs: *mut MPI_Request,
) -> MpiResult<(Vec<Option<&'a mut ReqObj>>, &'a mut [MPI_Request])> {
    let n = usize::try_from(count)
        .map_err(|_| MpiErr::new(MPI_ERR_COUNT, format!("count {count} is negative")))?;
    if n == 0 {
        return Ok((Vec::new(), &mut []));
    }
    if reqs.is_null() {
        return Err(MpiErr::new(MPI_ERR_ARG, "array_of_requests is NULL"));
    }
    // SAFETY: `count` handles at `reqs` (MPI's contract).
    let hs = unsafe { std::slice::from_raw_parts_mut(reqs, n) };
    let mut v = Vec::with_capacity(n);
    for (i, &h) in hs.iter().enumerate() {
        // SAFETY: the caller's handles.
        match unsafe { request::request(h) } {
            Ok(o) => v.push(o.filter(|r| !matches!(r.active, Active::Inactive))),
            Err(e) => return Err(MpiErr::new(e.class, format!("request {i}: {}", e.msg))),
        }
    }
    Ok((v, hs))
}

/// Waits (tocsin's waiting routine) until `done()` holds.
fn wait_for(done: impl FnMut() -> bool) -> MpiResult<()> {
    handle::state()?.world.comm.wait_until(done);
    Ok(())
}

/// One progress pass.
fn progress() -> MpiResult<()> {
    handle::state()?.world.comm.progress();
    Ok(())
}

/// Writes status `i` of an array (unless MPI_STATUSES_IGNORE).
///
/// # Safety
/// `sts` is null or holds more than `i` statuses.
unsafe fn write_at(sts: *mut MPI_Status, i: usize, s: &St, with_error: bool) {
    if !sts.is_null() {
        // SAFETY: the caller's contract.
        unsafe { status::write(sts.add(i), s, with_error) };
    }
}

/// Completes the requests at `idx` (all complete), writing statuses at `out[k]` for the
/// k-th; returns the first failure (index, error).
///
/// # Safety
/// `hs[i]` is the handle of `objs[i]`; `sts` null or with room for `idx.len()` (by
/// position `pos(k, i)`).
unsafe fn complete_set(
    objs: &mut [Option<&mut ReqObj>],
    hs: &mut [MPI_Request],
    idx: &[usize],
    sts: *mut MPI_Status,
    pos: impl Fn(usize, usize) -> usize,
) -> Option<(usize, MPI_Comm, MpiErr)> {
    let mut results = Vec::with_capacity(idx.len());
    let mut first: Option<(usize, MPI_Comm, MpiErr)> = None;
    for &i in idx {
        let Some(r) = objs[i].as_deref_mut() else {
            results.push(St::empty());
            continue;
        };
        let comm = r.comm;
        let (mut st, res) = complete(r).unwrap_or_else(|| {
            (
                St::empty(),
                Err(MpiErr::new(MPI_ERR_INTERN, "request not complete")),
            )
        });
        if let Err(e) = res {
            st.error = e.class;
            if first.is_none() {
                first = Some((i, comm, e));
            }
        }
        // SAFETY: `hs[i]` is r's handle.
        unsafe { retire(&mut hs[i], r) };
        objs[i] = None;
        results.push(st);
    }
    let with_error = first.is_some();
    for (k, (&i, st)) in idx.iter().zip(&results).enumerate() {
        // SAFETY: the caller's contract.
        unsafe { write_at(sts, pos(k, i), st, with_error) };
    }
    first
}

/// The error of a multiple-completion call: MPI_ERR_IN_STATUS naming the first failure.
fn in_status(func: &str, first: Option<(usize, MPI_Comm, MpiErr)>) -> c_int {
    reap_detached();
    match first {
        None => MPI_SUCCESS,
        Some((i, comm, e)) => raise(
            func,
            req_comm(comm),
            MpiErr::new(
                MPI_ERR_IN_STATUS,
                format!(
                    "request {i} failed: {} ({}); see MPI_ERROR of the statuses",
                    e.msg,
                    crate::error::class_name(e.class).unwrap_or("MPI_ERR_UNKNOWN")
                ),
            ),
        ),
    }
}

/// `MPI_Waitall`: waits for every request; statuses in `array_of_statuses` (or
/// MPI_STATUSES_IGNORE). If one fails, every status gets its `MPI_ERROR` and the call
/// returns `MPI_ERR_IN_STATUS`. Errors: also `MPI_ERR_REQUEST`, `MPI_ERR_COUNT`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Waitall(
    count: c_int,
    array_of_requests: *mut MPI_Request,
    array_of_statuses: *mut MPI_Status,
) -> c_int {
    const F: &str = "MPI_Waitall";
    // SAFETY: the caller's array.
    let (mut objs, hs) = match unsafe { objects(count, array_of_requests) } {
        Ok(x) => x,
        Err(e) => return raise(F, None, e),
    };
    // Requests complete for good: after each pass, look again only from the first one that
    // was still pending (a window of 64 sends is not rescanned whole after every pass).
    let mut first_pending = 0;
    if let Err(e) = wait_for(|| {
        while first_pending < objs.len()
            && objs[first_pending].as_ref().is_none_or(|r| r.is_complete())
        {
            first_pending += 1;
        }
        first_pending == objs.len()
    }) {
        return raise(F, None, e);
    }
    let idx: Vec<usize> = (0..objs.len()).collect();
    // SAFETY: `hs` are the handles of `objs`; statuses has `count` entries.
    let first = unsafe { complete_set(&mut objs, hs, &idx, array_of_statuses, |_, i| i) };
    in_status(F, first)
}

/// `MPI_Testall`: one progress pass; if every request is complete, `*flag` = true and as
/// `MPI_Waitall`; else `*flag` = false and nothing is completed.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Testall(
    count: c_int,
    array_of_requests: *mut MPI_Request,
    flag: *mut c_int,
    array_of_statuses: *mut MPI_Status,
) -> c_int {
    const F: &str = "MPI_Testall";
    if flag.is_null() {
        return raise(F, None, MpiErr::new(MPI_ERR_ARG, "flag is NULL"));
    }
    // SAFETY: the caller's array.
    let (mut objs, hs) = match unsafe { objects(count, array_of_requests) } {
        Ok(x) => x,
        Err(e) => return raise(F, None, e),
    };
    if let Err(e) = progress() {
        return raise(F, None, e);
    }
    if !objs.iter().flatten().all(|r| r.is_complete()) {
        // SAFETY: non-null `int *`.
        unsafe { flag.write(0) };
        return MPI_SUCCESS;
    }
    // SAFETY: non-null `int *`.
    unsafe { flag.write(1) };
    let idx: Vec<usize> = (0..objs.len()).collect();
    // SAFETY: as in MPI_Waitall.
    let first = unsafe { complete_set(&mut objs, hs, &idx, array_of_statuses, |_, i| i) };
    in_status(F, first)
}

/// Shared body of Waitany/Testany.
///
/// # Safety
/// MPI's contract for the arguments.
unsafe fn any(
    func: &str,
    block: bool,
    count: c_int,
    reqs: *mut MPI_Request,
    index: *mut c_int,
    flag: *mut c_int,
    status: *mut MPI_Status,
) -> c_int {
    if index.is_null() {
        return raise(func, None, MpiErr::new(MPI_ERR_ARG, "index is NULL"));
    }
    // SAFETY: the caller's array.
    let (mut objs, hs) = match unsafe { objects(count, reqs) } {
        Ok(x) => x,
        Err(e) => return raise(func, None, e),
    };
    let set_flag = |v: c_int| {
        if !flag.is_null() {
            // SAFETY: non-null `int *` from the caller.
            unsafe { flag.write(v) };
        }
    };
    if objs.iter().all(Option::is_none) {
        // SAFETY: writable pointers from the caller.
        unsafe {
            index.write(MPI_UNDEFINED);
            status::write(status, &St::empty(), false);
        }
        set_flag(1);
        return MPI_SUCCESS;
    }
    let r = if block {
        wait_for(|| objs.iter().flatten().any(|r| r.is_complete()))
    } else {
        progress()
    };
    if let Err(e) = r {
        return raise(func, None, e);
    }
    let Some(i) = objs
        .iter()
        .position(|o| o.as_ref().is_some_and(|r| r.is_complete()))
    else {
        // SAFETY: non-null `int *`.
        unsafe { index.write(MPI_UNDEFINED) };
        set_flag(0);
        return MPI_SUCCESS;
    };
    set_flag(1);
    // SAFETY: non-null `int *`.
    unsafe { index.write(i as c_int) };
    let Some(r) = objs[i].as_deref_mut() else {
        return MPI_SUCCESS;
    };
    let comm = r.comm;
    let (st, res) = complete(r).unwrap_or_else(|| {
        (
            St::empty(),
            Err(MpiErr::new(MPI_ERR_INTERN, "request not complete")),
        )
    });
    // SAFETY: writable status or ignore; `hs[i]` is r's handle.
    unsafe {
        status::write(status, &st, false);
        retire(&mut hs[i], r);
    }
    reap_detached();
    finish(func, req_comm(comm), res)
}

/// `MPI_Waitany`: waits until one of the requests completes, completes it (the lowest
/// index among those complete), sets `*index` and `status`. All null or inactive:
/// `*index` = MPI_UNDEFINED, empty status. Errors: the operation's, returned directly.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Waitany(
    count: c_int,
    array_of_requests: *mut MPI_Request,
    index: *mut c_int,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe {
        any(
            "MPI_Waitany",
            true,
            count,
            array_of_requests,
            index,
            std::ptr::null_mut(),
            status,
        )
    }
}

/// `MPI_Testany`: one progress pass, then as `MPI_Waitany` if one is complete (`*flag`
/// true), else `*flag` false and `*index` MPI_UNDEFINED. All null or inactive: `*flag`
/// true, `*index` MPI_UNDEFINED.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Testany(
    count: c_int,
    array_of_requests: *mut MPI_Request,
    index: *mut c_int,
    flag: *mut c_int,
    status: *mut MPI_Status,
) -> c_int {
    if flag.is_null() {
        return raise(
            "MPI_Testany",
            None,
            MpiErr::new(MPI_ERR_ARG, "flag is NULL"),
        );
    }
    // SAFETY: the caller's arguments.
    unsafe {
        any(
            "MPI_Testany",
            false,
            count,
            array_of_requests,
            index,
            flag,
            status,
        )
    }
}

/// Shared body of Waitsome/Testsome.
///
/// # Safety
/// MPI's contract for the arguments.
unsafe fn some(
    func: &str,
    block: bool,
    incount: c_int,
    reqs: *mut MPI_Request,
    outcount: *mut c_int,
    indices: *mut c_int,
    sts: *mut MPI_Status,
) -> c_int {
    if outcount.is_null() {
        return raise(func, None, MpiErr::new(MPI_ERR_ARG, "outcount is NULL"));
    }
    // SAFETY: the caller's array.
    let (mut objs, hs) = match unsafe { objects(incount, reqs) } {
        Ok(x) => x,
        Err(e) => return raise(func, None, e),
    };
    if objs.iter().all(Option::is_none) {
        // SAFETY: non-null `int *`.
        unsafe { outcount.write(MPI_UNDEFINED) };
        return MPI_SUCCESS;
    }
    let r = if block {
        wait_for(|| objs.iter().flatten().any(|r| r.is_complete()))
    } else {
        progress()
    };
    if let Err(e) = r {
        return raise(func, None, e);
    }
    let idx: Vec<usize> = (0..objs.len())
        .filter(|&i| objs[i].as_ref().is_some_and(|r| r.is_complete()))
        .collect();
    if !idx.is_empty() && indices.is_null() {
        return raise(
            func,
            None,
            MpiErr::new(MPI_ERR_ARG, "array_of_indices is NULL"),
        );
    }
    // SAFETY: non-null pointers with room for `incount` entries (MPI's contract).
    unsafe {
        outcount.write(idx.len() as c_int);
        for (k, &i) in idx.iter().enumerate() {
            indices.add(k).write(i as c_int);
        }
    }
    // SAFETY: as in MPI_Waitall; statuses by position k.
    let first = unsafe { complete_set(&mut objs, hs, &idx, sts, |k, _| k) };
    in_status(func, first)
}

/// `MPI_Waitsome`: waits until at least one request completes, completes all those that
/// are: `*outcount`, their indices and statuses. All null or inactive: `*outcount` =
/// MPI_UNDEFINED. A failure: `MPI_ERR_IN_STATUS`, `MPI_ERROR` set in the statuses returned.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Waitsome(
    incount: c_int,
    array_of_requests: *mut MPI_Request,
    outcount: *mut c_int,
    array_of_indices: *mut c_int,
    array_of_statuses: *mut MPI_Status,
) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe {
        some(
            "MPI_Waitsome",
            true,
            incount,
            array_of_requests,
            outcount,
            array_of_indices,
            array_of_statuses,
        )
    }
}

/// `MPI_Testsome`: one progress pass, then as `MPI_Waitsome` without waiting
/// (`*outcount` may be 0).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Testsome(
    incount: c_int,
    array_of_requests: *mut MPI_Request,
    outcount: *mut c_int,
    array_of_indices: *mut c_int,
    array_of_statuses: *mut MPI_Status,
) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe {
        some(
            "MPI_Testsome",
            false,
            incount,
            array_of_requests,
            outcount,
            array_of_indices,
            array_of_statuses,
        )
    }
}

// ---- Status queries ----------------------------------------------------------------------------

/// The byte count of a status and the datatype, checked.
///
/// # Safety
/// `st` null or readable; `dt` a datatype handle.
unsafe fn status_dt<'a>(
    st: *const MPI_Status,
    dt: MPI_Datatype,
) -> MpiResult<(usize, &'a std::sync::Arc<crate::datatype::Datatype>)> {
    if st.is_null() {
        return Err(MpiErr::new(
            MPI_ERR_ARG,
            "status is NULL (MPI_STATUS_IGNORE cannot be queried)",
        ));
    }
    // SAFETY: non-null, readable (the caller's contract).
    let b = status::bytes(unsafe { &*st });
    // SAFETY: forwarded.
    let (d, _) = unsafe { handle::datatype(dt)? };
    Ok((usize::try_from(b).unwrap_or(usize::MAX), d))
}

fn to_int(v: Option<u64>) -> c_int {
    v.and_then(|v| c_int::try_from(v).ok())
        .unwrap_or(MPI_UNDEFINED)
}

fn to_count(v: Option<u64>) -> MPI_Count {
    v.and_then(|v| MPI_Count::try_from(v).ok())
        .unwrap_or(MPI_UNDEFINED as MPI_Count)
}

/// `MPI_Get_count`: the number of whole `datatype` elements received (MPI_UNDEFINED if the
/// byte count is not a multiple of the type size, or does not fit an int). Errors:
/// `MPI_ERR_TYPE`, `MPI_ERR_ARG` (NULL status or count).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Get_count(
    status: *const MPI_Status,
    datatype: MPI_Datatype,
    count: *mut c_int,
) -> c_int {
    // SAFETY: the caller's arguments.
    let r = unsafe { status_dt(status, datatype) }.and_then(|(b, d)| {
        if count.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "count is NULL"));
        }
        // SAFETY: non-null `int *`.
        unsafe { count.write(to_int(d.get_count(b))) };
        Ok(())
    });
    finish("MPI_Get_count", None, r)
}

/// `MPI_Get_count_c`: `MPI_Get_count` with an `MPI_Count` result.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Get_count_c(
    status: *const MPI_Status,
    datatype: MPI_Datatype,
    count: *mut MPI_Count,
) -> c_int {
    // SAFETY: the caller's arguments.
    let r = unsafe { status_dt(status, datatype) }.and_then(|(b, d)| {
        if count.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "count is NULL"));
        }
        // SAFETY: non-null `MPI_Count *`.
        unsafe { count.write(to_count(d.get_count(b))) };
        Ok(())
    });
    finish("MPI_Get_count_c", None, r)
}

/// `MPI_Get_elements`: the number of basic elements received (counting a partial last
/// element's whole basic elements; MPI_UNDEFINED if the count ends inside one).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Get_elements(
    status: *const MPI_Status,
    datatype: MPI_Datatype,
    count: *mut c_int,
) -> c_int {
    // SAFETY: the caller's arguments.
    let r = unsafe { status_dt(status, datatype) }.and_then(|(b, d)| {
        if count.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "count is NULL"));
        }
        // SAFETY: non-null `int *`.
        unsafe { count.write(to_int(d.get_elements(b))) };
        Ok(())
    });
    finish("MPI_Get_elements", None, r)
}

/// `MPI_Get_elements_c`: `MPI_Get_elements` with an `MPI_Count` result.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Get_elements_c(
    status: *const MPI_Status,
    datatype: MPI_Datatype,
    count: *mut MPI_Count,
) -> c_int {
    // SAFETY: the caller's arguments.
    let r = unsafe { status_dt(status, datatype) }.and_then(|(b, d)| {
        if count.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "count is NULL"));
        }
        // SAFETY: non-null `MPI_Count *`.
        unsafe { count.write(to_count(d.get_elements(b))) };
        Ok(())
    });
    finish("MPI_Get_elements_c", None, r)
}

/// `MPI_Get_elements_x`: as `MPI_Get_elements_c` (the MPI-3 name).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Get_elements_x(
    status: *const MPI_Status,
    datatype: MPI_Datatype,
    count: *mut MPI_Count,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { PMPI_Get_elements_c(status, datatype, count) }
}

fn set_elements(func: &str, st: *mut MPI_Status, dt: MPI_Datatype, count: i64) -> c_int {
    let r = (|| {
        if st.is_null() {
            return Err(MpiErr::new(MPI_ERR_ARG, "status is NULL"));
        }
        let n = u64::try_from(count)
            .map_err(|_| MpiErr::new(MPI_ERR_COUNT, format!("count {count} is negative")))?;
        // SAFETY: the caller's handle.
        let (d, _) = unsafe { handle::datatype(dt)? };
        let ne = d.num_elements();
        let size = d.size() as u64;
        let bytes = match (n.checked_div(ne), n.checked_rem(ne)) {
            (Some(full), Some(rem)) => full
                .saturating_mul(size)
                .saturating_add(rem.saturating_mul(size) / ne),
            _ => 0,
        };
        // SAFETY: non-null, writable status.
        status::set_bytes(unsafe { &mut *st }, bytes);
        Ok(())
    })();
    finish(func, None, r)
}

/// `MPI_Status_set_elements`: makes the status say `count` basic elements of `datatype`
/// were received (`MPI_Get_elements` then returns `count`; exact for types whose basic
/// elements all have one size, else the byte count is prorated).
#[no_mangle]
pub unsafe extern "C" fn PMPI_Status_set_elements(
    status: *mut MPI_Status,
    datatype: MPI_Datatype,
    count: c_int,
) -> c_int {
    set_elements("MPI_Status_set_elements", status, datatype, count.into())
}

/// `MPI_Status_set_elements_c`: with an `MPI_Count` count.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Status_set_elements_c(
    status: *mut MPI_Status,
    datatype: MPI_Datatype,
    count: MPI_Count,
) -> c_int {
    set_elements("MPI_Status_set_elements_c", status, datatype, count)
}

/// `MPI_Status_set_elements_x`: as `MPI_Status_set_elements_c`.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Status_set_elements_x(
    status: *mut MPI_Status,
    datatype: MPI_Datatype,
    count: MPI_Count,
) -> c_int {
    set_elements("MPI_Status_set_elements_x", status, datatype, count)
}

/// `MPI_Status_set_cancelled`: sets the flag `MPI_Test_cancelled` reads.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Status_set_cancelled(status: *mut MPI_Status, flag: c_int) -> c_int {
    if status.is_null() {
        return raise(
            "MPI_Status_set_cancelled",
            None,
            MpiErr::new(MPI_ERR_ARG, "status is NULL"),
        );
    }
    // SAFETY: non-null, writable status.
    status::set_cancelled(unsafe { &mut *status }, flag != 0);
    MPI_SUCCESS
}

/// `MPI_Test_cancelled`: whether the request of `status` was cancelled.
#[no_mangle]
pub unsafe extern "C" fn PMPI_Test_cancelled(status: *const MPI_Status, flag: *mut c_int) -> c_int {
    if status.is_null() || flag.is_null() {
        return raise(
            "MPI_Test_cancelled",
            None,
            MpiErr::new(MPI_ERR_ARG, "status or flag is NULL"),
        );
    }
    // SAFETY: non-null pointers from the caller.
    unsafe { flag.write(c_int::from(status::cancelled(&*status))) };
    MPI_SUCCESS
}
